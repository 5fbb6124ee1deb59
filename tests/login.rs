//! login, whoami, logout: sessions, the encrypted store, and refusing to
//! restore into a store that is not this device's.

use std::os::unix::fs::PermissionsExt;

use crate::common::{api, register, run_in_pty_typing, synapse, TestEnv};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn login_then_every_later_run_reuses_the_same_device() {
    let env = TestEnv::new();
    let alice = register("alice");
    let login = env.login("alice", &alice);
    assert_eq!(login["user_id"], alice.user_id.as_str());
    let device_id = login["device_id"].as_str().unwrap().to_owned();

    // Secrets at rest: 0600 files in 0700 directories.
    let dir = env.profile_dir("alice");
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("session.json")), 0o600);
    assert_eq!(mode(&dir.join("store.key")), 0o600);
    assert_eq!(mode(&dir.join("store")), 0o700);

    for _ in 0..2 {
        let who = env.run("alice", &["--json", "whoami"]).success().records("whoami");
        assert_eq!(who[0]["device_id"], device_id.as_str());
        assert_eq!(who[0]["curve25519"], login["curve25519"]);
        assert_eq!(who[0]["ed25519"], login["ed25519"]);
        env.run("alice", &["sync"]).success();
    }

    // The server knows exactly one device for alice: the one from login.
    let (status, devices) = api("GET", &env.token("alice"), "/_matrix/client/v3/devices", None);
    assert_eq!(status, 200);
    let ids: Vec<&str> =
        devices["devices"].as_array().unwrap().iter().map(|d| d["device_id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![device_id.as_str()]);

    // And it published our identity key: the keys ratchet printed are the
    // keys other clients get.
    let (_, keys) = api(
        "POST",
        &env.token("alice"),
        "/_matrix/client/v3/keys/query",
        Some(serde_json::json!({"device_keys": {alice.user_id.clone(): []}})),
    );
    let dev = &keys["device_keys"][&alice.user_id][&device_id]["keys"];
    assert_eq!(dev[format!("curve25519:{device_id}")], login["curve25519"]);
}

#[test]
fn store_key_is_never_on_disk_with_env_passphrase() {
    let mut env = TestEnv::new();
    let bob = register("bob");
    env.set_env("RATCHET_STORE_PASSPHRASE", "correct horse battery staple");
    env.set_env("RATCHET_PASSWORD", &bob.password);
    env.run("bob", &["login", "--homeserver", &synapse().url, "--user", &bob.localpart]).success();
    assert!(!env.profile_dir("bob").join("store.key").exists());
    env.run("bob", &["whoami"]).success();

    // Without the passphrase, or with a wrong one: authentication needed
    // (exit 4, issue 30), naming the variable; `whoami` needs it too (it
    // reads this device's keys from the encrypted store).
    let mut cmd = env.command("bob", &["whoami"]);
    cmd.env_remove("RATCHET_STORE_PASSPHRASE");
    let run = env.run_with(cmd, None).code(4);
    assert!(run.stderr.contains("RATCHET_STORE_PASSPHRASE"), "{}", run.stderr);
    let mut cmd = env.command("bob", &["whoami"]);
    cmd.env("RATCHET_STORE_PASSPHRASE", "wrong");
    let run = env.run_with(cmd, None).code(4);
    let said = run.error_lines().join("\n");
    assert!(said.contains("passphrase"), "{}", run.stderr);
    assert!(!run.stderr.contains("aead"), "no cipher library's words: {}", run.stderr);
}

#[test]
fn wrong_password_exits_4_and_leaves_nothing_behind() {
    let env = TestEnv::new();
    let carol = register("carol");
    let run = env
        .run_stdin(
            "carol",
            &["login", "--homeserver", &synapse().url, "--user", &carol.localpart, "--password-stdin"],
            b"not-the-password\n",
        )
        .code(4);
    assert_eq!(run.error_lines(), vec!["error: wrong user name or password"]);
    assert!(run.stdout.is_empty());
    let dir = env.profile_dir("carol");
    assert!(!dir.join("session.json").exists());
    assert!(!dir.join("store").exists());
    assert!(!dir.join("store.key").exists());
    assert!(!dir.exists(), "a failed first login leaves no empty profile directory");
    // And a correct login afterwards works.
    env.login("carol", &carol);
}

#[test]
fn a_second_login_on_one_profile_is_refused() {
    let env = TestEnv::new();
    let dave = register("dave");
    env.login("p", &dave);
    let run = env
        .run_stdin(
            "p",
            &["login", "--homeserver", &synapse().url, "--user", &dave.localpart, "--password-stdin"],
            b"x\n",
        )
        .code(1);
    assert!(run.stderr.contains("already logged in as"), "{}", run.stderr);
    assert!(run.stderr.contains("ratchet --profile p logout"), "{}", run.stderr);
}

#[test]
fn missing_store_refuses_to_restore() {
    let env = TestEnv::new();
    let erin = register("erin");
    env.login("erin", &erin);
    std::fs::remove_dir_all(env.profile_dir("erin").join("store")).unwrap();
    let run = env.run("erin", &["whoami"]).code(4);
    assert_eq!(run.error_lines().len(), 1);
    assert!(run.error_lines()[0].contains("encrypted store for this session is missing"), "{}", run.stderr);
    // Refusing must not have created a fresh (wrong) Olm account.
    assert!(!env.profile_dir("erin").join("store").exists());
}

#[test]
fn store_of_another_device_is_refused() {
    let env = TestEnv::new();
    let frank = register("frank");
    env.login("one", &frank);
    env.login("two", &frank);
    // Give profile "one" the store (and its key) of device "two".
    let (one, two) = (env.profile_dir("one"), env.profile_dir("two"));
    std::fs::remove_dir_all(one.join("store")).unwrap();
    std::fs::rename(two.join("store"), one.join("store")).unwrap();
    std::fs::copy(two.join("store.key"), one.join("store.key")).unwrap();
    let run = env.run("one", &["whoami"]).code(4);
    assert!(run.stderr.contains("belongs to a different device"), "{}", run.stderr);
}

#[test]
fn corrupt_session_file_asks_for_a_new_login() {
    let env = TestEnv::new();
    let gina = register("gina");
    env.login("gina", &gina);
    std::fs::write(env.profile_dir("gina").join("session.json"), "{ not json").unwrap();
    let run = env.run("gina", &["whoami"]).code(4);
    assert!(run.stderr.contains("is damaged"), "{}", run.stderr);
    assert!(run.stderr.contains("hint:"), "{}", run.stderr);
}

#[test]
fn logout_ends_the_session_and_removes_local_data() {
    let env = TestEnv::new();
    let hank = register("hank");
    env.login("hank", &hank);
    let token = env.token("hank");
    let run = env.run("hank", &["--json", "logout", "--yes"]).success();
    let rec = &run.records("logout")[0];
    assert_eq!(rec["server_logout"], true);
    let removed: Vec<&str> = rec["removed"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(removed.len(), 4, "{removed:?}");
    let dir = env.profile_dir("hank");
    assert!(!dir.join("session.json").exists() && !dir.join("store").exists() && !dir.join("store.key").exists());
    assert!(!dir.join("state.sqlite3").exists(), "ratchet's state goes with the device");
    // The token is dead on the server.
    let (status, _) = api("GET", &token, "/_matrix/client/v3/account/whoami", None);
    assert_eq!(status, 401);
    env.run("hank", &["whoami"]).code(4);
}

#[test]
fn device_name_data_dir_and_local_logout() {
    let env = TestEnv::new();
    let alice = register("alice");
    let data = env.home().join("elsewhere");
    let data = data.to_str().unwrap();
    let login =
        env.login_with("alice", &alice, &synapse().url, &["--json", "--data-dir", data], &["--device-name", "QA box"]);
    let login = login.success();
    let device = login.records("login")[0]["device_id"].as_str().unwrap().to_owned();
    // --data-dir holds the profile; the platform data dir is untouched.
    let profile = std::path::Path::new(data).join("alice");
    assert!(profile.join("session.json").exists());
    assert!(!env.profile_dir("alice").exists());
    let token = env.run("alice", &["--data-dir", data, "whoami", "--access-token"]).success().stdout.trim().to_owned();
    let on_disk = std::fs::read_to_string(profile.join("session.json")).unwrap();
    assert!(!on_disk.contains(&token), "the token is not in session.json in clear: {on_disk}");

    // The server shows the display name given at login.
    let (status, found) = api("GET", &token, &format!("/_matrix/client/v3/devices/{device}"), None);
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["display_name"], "QA box");

    // logout --local deletes the local data only: the server still accepts
    // the token (the device lives on there).
    let out =
        env.run("alice", &["--json", "--data-dir", data, "logout", "--local", "--yes"]).success().records("logout");
    assert_eq!(out[0]["server_logout"], false);
    let removed: Vec<&str> = out[0]["removed"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(removed.iter().any(|p| p.ends_with("session.json")), "{removed:?}");
    assert!(removed.iter().any(|p| p.ends_with("store")), "{removed:?}");
    assert!(!profile.join("session.json").exists() && !profile.join("store").exists());
    let (status, _) = api("GET", &token, "/_matrix/client/v3/account/whoami", None);
    assert_eq!(status, 200, "a local logout leaves the server session alone");
}

#[test]
fn password_prompt_on_a_terminal_with_a_spinner() {
    let env = TestEnv::new();
    let alice = register("alice");
    let args = ["login", "--homeserver", &synapse().url, "--user", &alice.localpart];
    let (code, shown) = run_in_pty_typing(&env, "alice", &args, &[("Password for", &alice.password)]);
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains(&format!("Password for {}: ", alice.localpart)), "{shown}");
    // Typed without echo: the password never appears on the screen.
    assert!(!shown.contains(&alice.password), "{shown}");
    // On a terminal, progress is a spinner (drawn only if the step lasts
    // long enough to tick), never the plain status line; off one, the plain
    // line and no spinner.
    assert!(!shown.contains("Uploading device keys…"), "{shown}");
    env.run("alice", &["whoami"]).success();

    let bob = register("bob");
    let piped = env
        .run_stdin(
            "bob",
            &["login", "--homeserver", &synapse().url, "--user", &bob.localpart, "--password-stdin"],
            format!("{}\n", bob.password).as_bytes(),
        )
        .success();
    assert!(piped.stderr.contains("Uploading device keys…"), "{}", piped.stderr);
    assert!(!piped.stderr.contains("uploading device keys and syncing"), "{}", piped.stderr);
    assert!(!piped.stderr.contains('\x1b'), "no terminal, no escape codes: {:?}", piped.stderr);
}

#[test]
fn no_input_never_prompts_even_on_a_terminal() {
    let env = TestEnv::new();
    let alice = register("alice");
    let args = ["--no-input", "login", "--homeserver", &synapse().url, "--user", &alice.localpart];
    let (code, shown) = run_in_pty_typing(&env, "alice", &args, &[]);
    assert_eq!(code, 2, "{shown}");
    assert!(!shown.contains("Password for"), "{shown}");
    assert!(shown.contains("--password-stdin"), "the hint names a way in: {shown}");
    assert!(!env.profile_dir("alice").join("session.json").exists());
}

// ---- server discovery (issue 31) -------------------------------------------

/// A CA of the test's own (`ca.crt`, `ca.key` in `dir`): ratchet trusts it
/// through SSL_CERT_FILE, as a system's own bundle would be trusted.
pub(crate) fn test_ca(dir: &std::path::Path) -> std::path::PathBuf {
    let ok = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=ratchet test CA"])
        .arg("-keyout")
        .arg(dir.join("ca.key"))
        .arg("-out")
        .arg(dir.join("ca.crt"))
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(ok.success());
    dir.join("ca.crt")
}

/// A certificate for 127.0.0.1 signed by the CA in `dir`: (cert, key).
pub(crate) fn server_cert(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (key, csr, cert, ext) = (dir.join("srv.key"), dir.join("srv.csr"), dir.join("srv.crt"), dir.join("srv.ext"));
    let run = |args: &[&std::ffi::OsStr]| {
        let ok = std::process::Command::new("openssl")
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl");
        assert!(ok.success(), "openssl {args:?}");
    };
    run(&[
        "req".as_ref(),
        "-new".as_ref(),
        "-newkey".as_ref(),
        "rsa:2048".as_ref(),
        "-nodes".as_ref(),
        "-subj".as_ref(),
        "/CN=127.0.0.1".as_ref(),
        "-keyout".as_ref(),
        key.as_os_str(),
        "-out".as_ref(),
        csr.as_os_str(),
    ]);
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "x509".as_ref(),
        "-req".as_ref(),
        "-in".as_ref(),
        csr.as_os_str(),
        "-CA".as_ref(),
        dir.join("ca.crt").as_os_str(),
        "-CAkey".as_ref(),
        dir.join("ca.key").as_os_str(),
        "-CAcreateserial".as_ref(),
        "-days".as_ref(),
        "2".as_ref(),
        "-extfile".as_ref(),
        ext.as_os_str(),
        "-out".as_ref(),
        cert.as_os_str(),
    ]);
    (cert, key)
}

/// tests/fixtures/https_server.py answering `routes` (path → status, body).
struct HttpsServer {
    child: std::process::Child,
    port: u16,
}

impl HttpsServer {
    fn start(dir: &std::path::Path, routes: serde_json::Value) -> HttpsServer {
        use std::io::BufRead;
        let (cert, key) = server_cert(dir);
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/https_server.py");
        let mut child = std::process::Command::new("python3")
            .arg(script)
            .arg(cert)
            .arg(key)
            .arg(routes.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        HttpsServer { port: line.trim().parse().expect("a port"), child }
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `login --user @alice:SERVER` without --homeserver finds the homeserver
/// through SERVER's `/.well-known/matrix/client` (over HTTPS), and the
/// profile then works as any other.
#[test]
fn the_homeserver_is_found_from_the_user_id_s_well_known() {
    let mut env = TestEnv::new();
    let ca = test_ca(env.home());
    let server = crate::common::synapse::Synapse::with_tls_name(env.home(), "well-known");
    let alice = crate::common::synapse::register_at(&server.url, "alice");
    env.set_env("SSL_CERT_FILE", ca.to_str().unwrap());
    let user = format!("@{}:{}", alice.localpart, server.server_name);
    assert_eq!(alice.user_id, user);
    let args = ["--json", "login", "--user", user.as_str(), "--password-stdin"];
    let run = env.run_stdin("alice", &args, format!("{}\n", alice.password).as_bytes()).success();
    let login = run.records("login").remove(0);
    assert_eq!(login["homeserver"], server.url.as_str(), "{login}");
    assert_eq!(login["discovered"], "well_known", "{login}");
    let asked = format!("https://{}/.well-known/matrix/client", server.server_name);
    assert!(run.stderr.contains(&asked), "says where it looked: {}", run.stderr);
    // The profile works as any other.
    let room = env.run("alice", &["--json", "room", "create", "--encrypted"]).success().records("room")[0]["room_id"]
        .as_str()
        .unwrap()
        .to_owned();
    env.run("alice", &["send", &room, "found"]).success();
}

/// With no `.well-known` (404), the server name itself is the homeserver
/// (the spec's fallback), here over HTTPS.
#[test]
fn without_a_well_known_the_server_name_is_the_homeserver() {
    let mut env = TestEnv::new();
    let ca = test_ca(env.home());
    let server = crate::common::synapse::Synapse::with_tls_name(env.home(), "plain");
    let bob = crate::common::synapse::register_at(&server.url, "bob");
    env.set_env("SSL_CERT_FILE", ca.to_str().unwrap());
    let args = ["--json", "login", "--user", bob.user_id.as_str(), "--password-stdin"];
    let run = env.run_stdin("bob", &args, format!("{}\n", bob.password).as_bytes()).success();
    let login = run.records("login").remove(0);
    assert_eq!(login["homeserver"], format!("https://{}", server.server_name), "{login}");
    assert_eq!(login["discovered"], "server_name", "{login}");
    env.run("bob", &["room", "create"]).success();
}

/// A `.well-known` that is not JSON, names no homeserver, names one that is
/// not a homeserver, or cannot be reached (nothing listening, a certificate
/// not trusted): each an error naming the URL tried, exit 1, and no profile
/// left behind. A bare user name without --homeserver is bad input.
#[test]
fn a_bad_or_unreachable_well_known_is_an_error_naming_it() {
    let mut env = TestEnv::new();
    let ca = test_ca(env.home());
    env.set_env("RATCHET_PASSWORD", "unused");
    let cases = [
        (serde_json::json!({"/.well-known/matrix/client": [200, "{not json"]}), "is not JSON"),
        (serde_json::json!({"/.well-known/matrix/client": [200, "{}"]}), "names no homeserver"),
        (serde_json::json!({"/.well-known/matrix/client": [500, "{}"]}), "answered HTTP 500"),
        (
            serde_json::json!({"/.well-known/matrix/client": [200, "{\"m.homeserver\": {\"base_url\": \"https://127.0.0.1:9\"}}"]}),
            "but it is not one",
        ),
    ];
    env.set_env("SSL_CERT_FILE", ca.to_str().unwrap());
    for (routes, said) in cases {
        let server = HttpsServer::start(env.home(), routes);
        let user = format!("@carol:127.0.0.1:{}", server.port);
        let run = env.run("carol", &["login", "--user", &user]).code(1);
        let asked = format!("https://127.0.0.1:{}/.well-known/matrix/client", server.port);
        assert!(run.stderr.contains(&asked), "names the URL: {}", run.stderr);
        assert!(run.stderr.contains(said), "{said}: {}", run.stderr);
        assert!(run.stderr.contains("--homeserver"), "names the way out: {}", run.stderr);
        assert!(!env.profile_dir("carol").exists(), "nothing left behind");
    }
    // A certificate this machine does not trust.
    let server = HttpsServer::start(env.home(), serde_json::json!({}));
    let mut cmd = env.command("carol", &["login", "--user", &format!("@carol:127.0.0.1:{}", server.port)]);
    cmd.env_remove("SSL_CERT_FILE");
    let run = env.run_with(cmd, None).code(1);
    assert!(run.stderr.contains("could not be reached over TLS"), "{}", run.stderr);
    // Nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let run = env.run("carol", &["login", "--user", &format!("@carol:127.0.0.1:{port}")]).code(1);
    assert!(run.stderr.contains("could not be reached"), "{}", run.stderr);
    // No server in the user name, no --homeserver.
    let run = env.run("carol", &["login", "--user", "carol"]).code(2);
    assert!(run.stderr.contains("full user id"), "{}", run.stderr);
}

// ---- access tokens (issue 31) -----------------------------------------------

/// A login made outside ratchet, as an admin provisions a bot: a device
/// with an access token and no keys. Returns (token, device id).
fn raw_login(user: &crate::common::TestUser) -> (String, String) {
    let body = serde_json::json!({
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user.localpart},
        "password": user.password,
        "initial_device_display_name": "provisioned bot",
    });
    let reply: serde_json::Value = ureq::post(format!("{}/_matrix/client/v3/login", synapse().url))
        .send_json(&body)
        .expect("raw login")
        .body_mut()
        .read_json()
        .unwrap();
    (reply["access_token"].as_str().unwrap().to_owned(), reply["device_id"].as_str().unwrap().to_owned())
}

/// `login --access-token-stdin` takes over the device of a provisioned
/// token: the same device id, keys uploaded, cross-signed (Synapse asks no
/// password for a first identity), the token kept sealed; bob reads what it
/// sends. RATCHET_ACCESS_TOKEN does the same.
#[test]
fn a_provisioned_access_token_takes_over_its_device() {
    let (mut env, _alice, bob, _room) = TestEnv::alice_and_bob(&[]);
    let bot = register("bot");
    let (token, device) = raw_login(&bot);
    let args = ["--json", "login", "--homeserver", synapse().url.as_str(), "--access-token-stdin"];
    let run = env.run_stdin("bot", &args, format!("{token}\n").as_bytes()).success();
    let login = run.records("login").remove(0);
    assert_eq!(login["device_id"], device.as_str(), "{login}");
    assert_eq!(login["user_id"], bot.user_id.as_str());
    assert_eq!(login["cross_signed"], true, "{login}");
    let on_disk = std::fs::read_to_string(env.profile_dir("bot").join("session.json")).unwrap();
    assert!(!on_disk.contains(&token), "the token is sealed: {on_disk}");
    assert_eq!(env.token("bot"), token);
    let room = env.encrypted_room("bot", &[("bob", &bob)], &[]);
    let sent = env.run("bot", &["--json", "send", &room, "provisioned"]).success().records("sent");
    let got = env.run("bob", &["--json", "messages", &room]).success().records("message");
    assert!(got.iter().any(|m| m["event_id"] == sent[0]["event_id"] && m["body"] == "provisioned"), "{got:?}");

    // The environment variable form, for a second bot device.
    let (token2, device2) = raw_login(&bot);
    env.set_env("RATCHET_ACCESS_TOKEN", &token2);
    let run = env.run("bot2", &["--json", "login", "--homeserver", &synapse().url]).success();
    assert_eq!(run.records("login")[0]["device_id"], device2.as_str());
}

/// A token whose device already has keys (another client, here another
/// ratchet profile, set it up) is refused, exit 5, nothing made; a revoked
/// token is exit 4; a token of another user than --user, exit 4.
#[test]
fn an_access_token_of_a_device_with_keys_or_revoked_is_refused() {
    let env = TestEnv::new();
    let eve = register("eve");
    env.login("eve", &eve);
    let used = env.token("eve");
    let args = ["login", "--homeserver", synapse().url.as_str(), "--access-token-stdin"];
    let run = env.run_stdin("copy", &args, format!("{used}\n").as_bytes()).code(5);
    assert!(run.stderr.contains("already has encryption keys"), "{}", run.stderr);
    assert!(!env.profile_dir("copy").exists(), "nothing left behind");
    // The first profile is untouched.
    env.run("eve", &["whoami"]).success();

    let (token, _) = raw_login(&eve);
    let other = register("other");
    let mut with_user = args.to_vec();
    with_user.extend(["--user", other.user_id.as_str()]);
    let run = env.run_stdin("copy", &with_user, format!("{token}\n").as_bytes()).code(4);
    assert!(run.stderr.contains("is @eve"), "{}", run.stderr);

    let (status, _) = api("POST", &token, "/_matrix/client/v3/logout", Some(serde_json::json!({})));
    assert_eq!(status, 200);
    let run = env.run_stdin("copy", &args, format!("{token}\n").as_bytes()).code(4);
    assert!(run.stderr.contains("does not know this access token"), "{}", run.stderr);
    assert!(!env.profile_dir("copy").exists(), "nothing left behind");
}
