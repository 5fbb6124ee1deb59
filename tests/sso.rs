//! Single sign-on and OAuth 2.0 (issue 31): `login --sso` against a Synapse
//! that delegates to a real OpenID Connect provider
//! (tests/peer/sso/provider.mjs, the `oidc-provider` package), and `login
//! --oauth` against a Synapse whose authentication is delegated (its
//! `matrix_authentication_service` setting) to an OAuth 2.0 server built on
//! the same package in the place of MAS (tests/peer/sso/oauth-provider.mjs);
//! each signed in with a real browser (Debian's chromium, headless, driven
//! by tests/peer/sso/browser.mjs) from the address ratchet printed, as a
//! person would with `--no-browser`.

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
        let mut cmd = Command::new("node");
        cmd.arg(dir.join("provider.mjs")).arg(port.to_string()).arg(callback);
        let (provider, output) = ready(cmd, "the OpenID provider");
        SsoServer { _turn: turn, synapse, provider, _output: output }
    }
}

/// Starts a peer server (node) and waits for its "ready" line; its stdout
/// is kept open (a server writing to a closed pipe would die).
fn ready(mut cmd: Command, what: &str) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("node");
    let mut line = String::new();
    let mut output = BufReader::new(child.stdout.take().unwrap());
    output.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "{what} did not start");
    (child, output)
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
        SsoLogin::start_with(env, profile, homeserver, "--sso", extra)
    }

    /// `--sso` or `--oauth`.
    fn start_with(env: &TestEnv, profile: &str, homeserver: &str, how: &str, extra: &[&str]) -> SsoLogin {
        let mut args = vec!["--json", "login", "--homeserver", homeserver, how, "--no-browser"];
        args.extend_from_slice(extra);
        SsoLogin::until(env, profile, &args, "sso")
    }

    /// A ratchet command under way whose first stdout line is a `kind`
    /// record with the `url` to open in a browser.
    fn until(env: &TestEnv, profile: &str, args: &[&str], kind: &str) -> SsoLogin {
        let mut child = env.command(profile, args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let record: Value = serde_json::from_str(&line).unwrap_or_else(|_| {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err);
            panic!("no {kind} record: {line:?} {err}")
        });
        assert_eq!(record["type"], kind, "{record}");
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

/// A Synapse whose authentication is delegated to an OAuth 2.0 server in
/// the place of the Matrix Authentication Service (MSC3861; Synapse's
/// `matrix_authentication_service`): no password, no registration; users
/// and devices are made by the service at sign-in. Access tokens live
/// `ttl` seconds.
struct OAuthServer {
    synapse: Synapse,
    /// The server's plain-HTTP port (Synapse's side; the same endpoints).
    port: u16,
    provider: Child,
    _output: BufReader<std::process::ChildStdout>,
    _turn: std::sync::MutexGuard<'static, ()>,
}

impl OAuthServer {
    /// Over HTTPS for clients, with a certificate of a CA made in `env`'s
    /// home (trusted by ratchet through SSL_CERT_FILE, as a system bundle
    /// would be); plain HTTP on another port for Synapse's introspection.
    fn start(env: &mut TestEnv, ttl: u32) -> OAuthServer {
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let dir = peer_dir();
        let ca = crate::login::test_ca(env.home());
        env.set_env("SSL_CERT_FILE", ca.to_str().unwrap());
        let (cert, key) = crate::login::server_cert(env.home());
        let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let (port, tls_port) = (free(), free());
        let endpoint = format!("http://127.0.0.1:{port}/");
        let secret = "ratchet-test-shared-secret";
        // Synapse reads the service's metadata at its first request, so it
        // may start first (the service needs its address).
        let synapse = Synapse::private_with(&[
            ("RATCHET_SYNAPSE_MAS_ENDPOINT", &endpoint),
            ("RATCHET_SYNAPSE_MAS_SECRET", secret),
        ]);
        let mut cmd = Command::new("node");
        cmd.arg(dir.join("oauth-provider.mjs")).arg(port.to_string()).arg(&synapse.url).arg(secret);
        cmd.arg(tls_port.to_string()).arg(cert).arg(key).env("AT_TTL", ttl.to_string());
        let (provider, output) = ready(cmd, "the OAuth 2.0 server");
        OAuthServer { _turn: turn, synapse, port, provider, _output: output }
    }

    /// `ratchet login --oauth` as `user`, signed in with the browser.
    fn login(&self, env: &TestEnv, profile: &str, user: &str) -> Value {
        let login = SsoLogin::start_with(env, profile, &self.synapse.url, "--oauth", &[]);
        let page = browser(&login.url, user);
        assert!(page.contains("Signed in"), "{page}");
        let (code, records, stderr) = login.finish();
        assert_eq!(code, 0, "{stderr}");
        records.into_iter().find(|r| r["type"] == "login").expect("a login record")
    }
}

impl Drop for OAuthServer {
    fn drop(&mut self) {
        drop(self.provider.stdin.take());
        let _ = self.provider.kill();
        let _ = self.provider.wait();
    }
}

/// The sealed tokens of a profile's session.json.
fn sealed_tokens(env: &TestEnv, profile: &str) -> Value {
    let text = std::fs::read_to_string(env.profile_dir(profile).join("session.json")).unwrap();
    let session: Value = serde_json::from_str(&text).unwrap();
    assert!(session["oauth"]["client_id"].is_string(), "{session}");
    session["sealed_tokens"].clone()
}

/// OAuth 2.0 end to end: two users sign in with a browser (ratchet
/// registered as a client, the code flow with PKCE), each device is set up
/// as a password login's is (cross-signed: Synapse asks nothing for a
/// first identity), and one decrypts what the other sends. Access tokens
/// live 3 s: commands after they expire refresh them, and the rotated
/// refresh token is saved (a second expiry refreshes again with it). At
/// logout the token is revoked: the server refuses it.
#[test]
fn oauth_signs_in_refreshes_its_token_and_logout_revokes_it() {
    let mut env = TestEnv::new();
    let server = OAuthServer::start(&mut env, 3);
    let oscar = server.login(&env, "oscar", "oscar");
    assert_eq!(oscar["user_id"], "@oscar:localhost", "{oscar}");
    assert_eq!((oscar["cross_signing"].as_str(), oscar["cross_signed"].as_bool()), (Some("created"), Some(true)));
    let olga = server.login(&env, "olga", "olga");
    assert_eq!(olga["user_id"], "@olga:localhost");

    let room = env
        .run("oscar", &["--json", "room", "create", "--encrypted", "--invite", "@olga:localhost"])
        .success()
        .records("room")[0]["room_id"]
        .as_str()
        .unwrap()
        .to_owned();
    env.run("olga", &["room", "join", &room]).success();
    let sent = env.run("oscar", &["--json", "send", &room, "over OAuth 2.0"]).success().records("sent");
    let got = env.run("olga", &["--json", "messages", &room]).success().records("message");
    assert!(got.iter().any(|m| m["event_id"] == sent[0]["event_id"] && m["body"] == "over OAuth 2.0"), "{got:?}");

    // Expired twice, refreshed twice: the second refresh works only with
    // the refresh token the first one saved (the server rotates them).
    let mut before = sealed_tokens(&env, "oscar");
    for round in 0..2 {
        std::thread::sleep(std::time::Duration::from_secs(4));
        env.run("oscar", &["--json", "sync"]).success();
        let after = sealed_tokens(&env, "oscar");
        assert_ne!(before, after, "round {round}: the refreshed tokens are saved");
        before = after;
    }
    // Revoked at the authorization server behind ratchet's back (a user
    // ending the session in their account page): the next command cannot
    // refresh, and says to log in again (exit 4).
    let session: Value =
        serde_json::from_str(&std::fs::read_to_string(env.profile_dir("olga").join("session.json")).unwrap()).unwrap();
    let olga_token = env.run("olga", &["whoami", "--access-token"]).success().stdout.trim().to_owned();
    let revoked = ureq::post(format!("http://127.0.0.1:{}/token/revocation", server.port)).send_form([
        ("token", olga_token.as_str()),
        ("token_type_hint", "access_token"),
        ("client_id", session["oauth"]["client_id"].as_str().unwrap()),
    ]);
    assert_eq!(revoked.unwrap().status().as_u16(), 200);
    let run = env.run("olga", &["--json", "sync"]).code(4);
    assert!(run.stderr.contains("the session was ended at the authorization server"), "{}", run.stderr);
    let error: Value = serde_json::from_str(run.stderr.lines().last().unwrap()).unwrap();
    assert!(error["hints"][0].as_str().unwrap().contains("logout"), "{error}");

    let token = env.run("oscar", &["whoami", "--access-token"]).success().stdout.trim().to_owned();
    let whoami = |token: &str| {
        ureq::get(format!("{}/_matrix/client/v3/account/whoami", server.synapse.url))
            .header("Authorization", &format!("Bearer {token}"))
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(whoami(&token), 200);
    let out = env.run("oscar", &["--json", "logout", "--yes"]).success().records("logout").remove(0);
    assert_eq!(out["server_logout"], true, "{out}");
    assert_eq!(whoami(&token), 401, "the token was revoked");
}

/// OAuth 2.0's failures: a server without it (exit 1, naming what to do
/// instead), a closed browser (the timeout), and a redirect with a state
/// this login did not start; nothing made in each.
#[test]
fn oauth_fails_cleanly_without_the_server_s_support_a_browser_or_the_right_state() {
    let env = TestEnv::new();
    let run = env.run("vic", &["login", "--homeserver", &synapse().url, "--oauth", "--no-browser"]).code(1);
    assert!(run.stderr.contains("does not offer OAuth 2.0 sign-in"), "{}", run.stderr);
    assert!(run.stderr.contains("--sso"), "{}", run.stderr);
    assert!(!env.profile_dir("vic").exists(), "nothing left behind");

    let mut env = env;
    let server = OAuthServer::start(&mut env, 300);
    let login = SsoLogin::start_with(&env, "vic", &server.synapse.url, "--oauth", &["--sso-timeout", "2"]);
    let (code, _, stderr) = login.finish();
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("no sign-in came back within 2 s"), "{stderr}");
    assert!(!env.profile_dir("vic").exists(), "nothing left behind");

    let login = SsoLogin::start_with(&env, "vic", &server.synapse.url, "--oauth", &[]);
    let redirect = url_param(&login.url, "redirect_uri");
    assert!(redirect.starts_with("http://127.0.0.1:") && redirect.ends_with("/oauth"), "{redirect}");
    let _ = ureq::get(format!("{redirect}?code=stolen&state=forged")).call();
    let (code, _, stderr) = login.finish();
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("state it did not start"), "{stderr}");
    assert!(!env.profile_dir("vic").exists(), "nothing left behind");
}

/// `recovery reset --yes --no-browser` on `profile`, whose account has no
/// password: the `approval` record's address is opened in the browser as
/// `user` (signed in there); the reset must then finish with a new
/// identity that signs this device. Returns the address.
fn reset_approved_in_the_browser(env: &TestEnv, profile: &str, user: &str, page_says: &str) -> String {
    let master = || {
        env.run(profile, &["--json", "identity"]).success().records("identity")[0]["master_key"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let before = master();
    let reset = SsoLogin::until(env, profile, &["--json", "recovery", "reset", "--yes", "--no-browser"], "approval");
    let url = reset.url.clone();
    let page = browser(&url, user);
    assert!(page.contains(page_says), "{page}");
    let (code, records, stderr) = reset.finish();
    assert_eq!(code, 0, "{stderr}");
    assert!(records.iter().any(|r| r["type"] == "recovery_status"), "{records:?}");
    assert_ne!(master(), before, "a new identity");
    let who = env.run(profile, &["--json", "identity"]).success().records("identity").remove(0);
    assert_eq!(who["this_device_cross_signed"], true, "the new identity signs this device: {who}");
    url
}

/// A cross-signing reset after an OAuth 2.0 login: no password; the
/// server's approval page (MSC4312) is printed, approved in a browser, and
/// the reset finishes with a new identity that signs this device.
#[test]
fn an_oauth_account_s_identity_reset_is_approved_in_the_browser() {
    let mut env = TestEnv::new();
    let server = OAuthServer::start(&mut env, 300);
    server.login(&env, "pia", "pia");
    let url = reset_approved_in_the_browser(&env, "pia", "pia", "reset allowed for pia");
    assert!(url.contains("action=org.matrix.cross_signing_reset"), "{url}");
}

/// A cross-signing reset on an account made by single sign-on (no
/// password): the server asks for `m.login.sso` only, so ratchet prints
/// its single sign-on page (Element's way), the user signs in there again,
/// and the reset finishes with a new identity that signs this device.
#[test]
fn an_sso_account_s_identity_reset_is_authorised_by_single_sign_on() {
    let server = SsoServer::start();
    let env = TestEnv::new();
    let login = SsoLogin::start(&env, "sol", &server.synapse.url, &["--idp", "oidc-one"]);
    browser(&login.url, "sol");
    let (code, _, stderr) = login.finish();
    assert_eq!(code, 0, "{stderr}");
    let url = reset_approved_in_the_browser(&env, "sol", "sol", "Now we know it");
    let page = format!("{}/_matrix/client/v3/auth/m.login.sso/fallback/web?session=", server.synapse.url);
    assert!(url.starts_with(&page), "{url}");
}

/// OAuth 2.0 with an agent running: access tokens expire every 3 s while
/// the agent long-polls, sends through it (warm) and commands of their own
/// take turns. Every refresh happens under the profile lock and is saved,
/// so neither side ever presents a refresh token the other has replaced
/// (the server would refuse it, and end the session).
#[test]
fn oauth_tokens_refreshed_by_an_agent_and_by_commands_in_turn_stay_valid() {
    let mut env = TestEnv::new();
    let server = OAuthServer::start(&mut env, 3);
    server.login(&env, "otto", "otto");
    let room = env.run("otto", &["--json", "room", "create", "--encrypted"]).success().records("room")[0]["room_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut agent = env.spawn("otto", &["--json", "-v", "agent"]);
    agent.wait_for_stderr("Agent running", std::time::Duration::from_secs(30));
    let socket = env.profile_dir("otto").join("send.sock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(std::time::Instant::now() < deadline, "the agent does not answer");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for round in 0..3 {
        std::thread::sleep(std::time::Duration::from_secs(4));
        let warm = env.run("otto", &["--json", "-v", "send", &room, &format!("warm {round}")]).success();
        assert!(warm.stderr.contains("warm path"), "{}", warm.stderr);
        std::thread::sleep(std::time::Duration::from_secs(4));
        env.run("otto", &["--json", "send", "--standalone", &room, &format!("cold {round}")]).success();
        env.run("otto", &["--json", "sync", "--standalone"]).success();
    }
    agent.signal("-INT");
    let stopped = agent.finish(std::time::Duration::from_secs(30));
    assert_eq!(stopped.code, 0, "{}", stopped.stderr);
    let read = env.run("otto", &["--json", "messages", &room]).success().records("message");
    let bodies: Vec<&str> = read.iter().filter_map(|m| m["body"].as_str()).collect();
    for round in 0..3 {
        assert!(
            bodies.contains(&format!("warm {round}").as_str()) && bodies.contains(&format!("cold {round}").as_str()),
            "{bodies:?}"
        );
    }
}
