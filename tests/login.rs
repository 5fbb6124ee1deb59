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
    let session: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(profile.join("session.json")).unwrap()).unwrap();
    let token = session["access_token"].as_str().unwrap().to_owned();

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
