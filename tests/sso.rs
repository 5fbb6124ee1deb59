//! Single sign-on (issue 31): `login --sso` against a Synapse that delegates
//! to a real OpenID Connect provider (tests/peer/sso/provider.mjs, the
//! `oidc-provider` package), signed in with a real browser (Debian's
//! chromium, headless, driven by tests/peer/sso/browser.mjs) from the
//! address ratchet printed, as a person would with `--no-browser`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

use crate::common::synapse::Synapse;
use crate::common::{synapse, TestEnv};

/// The single sign-on peer's directory (npm packages installed once).
fn peer_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new(root.join("scripts/setup-js-peer.sh")).arg("sso").output().expect("setup-js-peer.sh");
        assert!(out.status.success(), "setup-js-peer.sh sso: {}", String::from_utf8_lossy(&out.stderr));
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

/// A Synapse that offers single sign-on through an OpenID Connect provider
/// of its own (two identity providers, `oidc-one` and `oidc-two`).
struct SsoServer {
    synapse: Synapse,
    provider: Child,
    /// Kept open: a provider writing to a closed pipe would die.
    _output: BufReader<std::process::ChildStdout>,
    /// Dropped last (fields drop in order; `Drop` runs first).
    _turn: std::sync::MutexGuard<'static, ()>,
}

/// One single sign-on scenario at a time: each runs a Synapse, an identity
/// provider and headless Chromium, enough to starve the timing of the tests
/// beside them on two cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl SsoServer {
    fn start() -> SsoServer {
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let dir = peer_dir();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let issuer = format!("http://127.0.0.1:{port}");
        let synapse = Synapse::private_with(&[("RATCHET_SYNAPSE_OIDC_ISSUER", &issuer)]);
        let callback = format!("{}/_synapse/client/oidc/callback", synapse.url);
        let mut provider = Command::new("node")
            .arg(dir.join("provider.mjs"))
            .arg(port.to_string())
            .arg(callback)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("node");
        let mut line = String::new();
        let mut output = BufReader::new(provider.stdout.take().unwrap());
        output.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "the OpenID provider did not start");
        SsoServer { _turn: turn, synapse, provider, _output: output }
    }
}

impl Drop for SsoServer {
    fn drop(&mut self) {
        drop(self.provider.stdin.take());
        let _ = self.provider.kill();
        let _ = self.provider.wait();
    }
}

/// A `ratchet login --sso --no-browser` under way: its first stdout line is
/// the `sso` record with the address to sign in at.
struct SsoLogin {
    child: Child,
    stdout: BufReader<std::process::ChildStdout>,
    url: String,
}

impl SsoLogin {
    fn start(env: &TestEnv, profile: &str, homeserver: &str, extra: &[&str]) -> SsoLogin {
        let mut args = vec!["--json", "login", "--homeserver", homeserver, "--sso", "--no-browser"];
        args.extend_from_slice(extra);
        let mut child = env.command(profile, &args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let record: Value = serde_json::from_str(&line).unwrap_or_else(|_| {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err);
            panic!("no sso record: {line:?} {err}")
        });
        assert_eq!(record["type"], "sso", "{record}");
        assert_eq!(record["browser_opened"], false);
        SsoLogin { child, stdout, url: record["url"].as_str().unwrap().to_owned() }
    }

    /// Waits for it to end: (exit code, stdout records after the `sso` one, stderr).
    fn finish(mut self) -> (i32, Vec<Value>, String) {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.stdout, &mut rest).unwrap();
        let mut stderr = String::new();
        std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        let status = self.child.wait().unwrap();
        let records = rest.lines().map(|l| serde_json::from_str(l).expect("JSON")).collect();
        (status.code().unwrap_or(-1), records, stderr)
    }
}

/// Signs in at `url` as `user` with headless Chromium; the last page's text.
fn browser(url: &str, user: &str) -> String {
    let out = Command::new("node").arg(peer_dir().join("browser.mjs")).arg(url).arg(user).output().expect("node");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "the browser did not get back to ratchet: {text}");
    text
}

#[test]
fn sso_signs_in_with_a_real_browser_and_the_device_is_set_up() {
    let server = SsoServer::start();
    let env = TestEnv::new();
    let login = SsoLogin::start(&env, "sam", &server.synapse.url, &["--idp", "oidc-one"]);
    assert!(login.url.starts_with(&server.synapse.url), "{}", login.url);
    let page = browser(&login.url, "sam");
    assert!(page.contains("Signed in"), "{page}");
    let (code, records, stderr) = login.finish();
    assert_eq!(code, 0, "{stderr}");
    let record = &records[0];
    assert_eq!(record["type"], "login");
    assert_eq!(record["user_id"], "@sam:localhost", "{record}");
    // Set up as a password login is: cross-signed (Synapse asks no password
    // for a first identity), keys up, the session kept.
    assert_eq!(record["cross_signing"], "created", "{record}");
    assert_eq!(record["cross_signed"], true, "{record}");
    let who = env.run("sam", &["--json", "whoami"]).success().records("whoami").remove(0);
    assert_eq!(who["device_id"], record["device_id"]);
}

#[test]
fn several_identity_providers_are_listed_and_one_is_chosen() {
    let server = SsoServer::start();
    let env = TestEnv::new();
    let run = env.run("pat", &["login", "--homeserver", &server.synapse.url, "--sso", "--no-browser"]).code(2);
    assert!(run.stderr.contains("--idp"), "{}", run.stderr);
    assert!(run.stderr.contains("oidc-one") && run.stderr.contains("oidc-two"), "{}", run.stderr);
    assert!(!env.profile_dir("pat").exists(), "nothing left behind");
    let login = SsoLogin::start(&env, "pat", &server.synapse.url, &["--idp", "Test IdP two"]);
    browser(&login.url, "pat");
    let (code, records, stderr) = login.finish();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(records[0]["user_id"], "@pat:localhost");
}

/// The user closes the browser: the login stops at its timeout, exit 1,
/// nothing made (no profile, no device on the server). A redirect with a
/// state this login did not start is refused at once, the same way.
#[test]
fn a_closed_browser_or_a_wrong_state_ends_the_login_with_nothing_made() {
    let server = SsoServer::start();
    let env = TestEnv::new();
    let login = SsoLogin::start(&env, "quinn", &server.synapse.url, &["--idp", "oidc-one", "--sso-timeout", "2"]);
    let (code, _, stderr) = login.finish();
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("no sign-in came back within 2 s"), "{stderr}");
    assert!(stderr.contains("--sso-timeout"), "{stderr}");
    assert!(!env.profile_dir("quinn").exists(), "nothing left behind");

    let login = SsoLogin::start(&env, "quinn", &server.synapse.url, &["--idp", "oidc-one"]);
    let redirect = url_param(&login.url, "redirectUrl");
    let forged = redirect.replace("state=", "state=forged").replace("/sso?", "/sso?loginToken=stolen&");
    let _ = ureq::get(&forged).call();
    let (code, _, stderr) = login.finish();
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("state it did not start"), "{stderr}");
    assert!(!env.profile_dir("quinn").exists(), "nothing left behind");
}

/// Two logins at once on two profiles: each gets its own address and its
/// own account.
#[test]
fn two_sso_logins_at_once_on_two_profiles() {
    let server = SsoServer::start();
    let env = TestEnv::new();
    let one = SsoLogin::start(&env, "ro", &server.synapse.url, &["--idp", "oidc-one"]);
    let two = SsoLogin::start(&env, "sy", &server.synapse.url, &["--idp", "oidc-one"]);
    assert_ne!(one.url, two.url);
    let (u1, u2) = (one.url.clone(), two.url.clone());
    let b1 = std::thread::spawn(move || browser(&u1, "ro"));
    let b2 = std::thread::spawn(move || browser(&u2, "sy"));
    b1.join().unwrap();
    b2.join().unwrap();
    let (c1, r1, e1) = one.finish();
    let (c2, r2, e2) = two.finish();
    assert_eq!((c1, c2), (0, 0), "{e1}\n{e2}");
    assert_eq!(r1[0]["user_id"], "@ro:localhost");
    assert_eq!(r2[0]["user_id"], "@sy:localhost");
}

/// A homeserver that offers no single sign-on: exit 1, naming what it does
/// offer, nothing made.
#[test]
fn a_server_without_sso_is_a_clean_error() {
    let env = TestEnv::new();
    let run = env.run("una", &["login", "--homeserver", &synapse().url, "--sso", "--no-browser"]).code(1);
    assert!(run.stderr.contains("offers no single sign-on"), "{}", run.stderr);
    assert!(run.stderr.contains("m.login.password"), "{}", run.stderr);
    assert!(!env.profile_dir("una").exists(), "nothing left behind");
}

/// A query parameter of a URL, decoded.
fn url_param(url: &str, name: &str) -> String {
    let parsed = url::Url::parse(url).unwrap();
    parsed.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned()).unwrap_or_else(|| panic!("{url}"))
}
