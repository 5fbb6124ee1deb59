//! Recovery and key backup (issue 13), against Synapse and Element's crypto
//! stack: an account Element set up, recovered by ratchet with Element's
//! recovery key; ratchet's recovery key used by Element; a wrong key; keys
//! in the backup when a command exits; a lost key brought back from it.

use serde_json::{json, Value};

use crate::common::js_peer::JsPeer;
use crate::common::{api, register, synapse, TestEnv};

/// The server's current backup: (version, keys in it).
fn server_backup(env: &TestEnv, profile: &str) -> (String, u64) {
    let (status, info) = api("GET", &env.token(profile), "/_matrix/client/v3/room_keys/version", None);
    assert_eq!(status, 200, "{info}");
    (info["version"].as_str().unwrap().to_owned(), info["count"].as_u64().unwrap())
}

fn status(env: &TestEnv, profile: &str) -> Value {
    env.run(profile, &["--json", "recovery", "status"]).success().records("recovery_status").remove(0)
}

#[test]
fn an_account_element_set_up_is_recovered_and_its_history_restored_from_the_backup() {
    let env = TestEnv::new();
    let (alice, jo) = (register("alice"), register("jo"));
    env.login("alice", &alice);
    let mut js = JsPeer::login(&jo, "exclude-insecure", true);
    let recovery_key = js.call(json!({"cmd": "setup_recovery"}))["recovery_key"].as_str().unwrap().to_owned();
    let room = env.encrypted_room("alice", &[], &["--invite", &js.user_id]);
    js.join(&room);
    let old = [js.send(&room, "before ratchet existed"), js.send(&room, "also before")];
    js.call(json!({"cmd": "backup_now", "at_least": 1}));

    // ratchet as a second device of jo's account: not verified at login.
    let login = env.login_with("jo2", &jo, &synapse().url, &["--json"], &[]).success().records("login");
    assert_eq!(login[0]["cross_signing"], "existing");
    let (_, in_backup) = server_backup(&env, "jo2");
    assert!(in_backup >= 1, "js uploaded its room key to the backup");
    assert_eq!(status(&env, "jo2")["cross_signed"], false);
    let before = env.run("jo2", &["--json", "messages", &room]).code(3).records("utd");
    assert!(before.len() >= 2, "the history is unreadable before recovery: {before:?}");
    // doctor's first fix is the recovery key (the account has secret
    // storage), and it says what it checked.
    let doctor = env.run("jo2", &["--json", "doctor", &room]).code(3).records("diagnosis");
    let d = doctor.iter().find(|d| d["event_id"].as_str() == Some(old[0].as_str())).expect("a diagnosis");
    // History from before this device: one diagnosis for the session
    // (both messages), and no unwedge (issue 19).
    assert_eq!(d["cause"], "sent_before_this_device", "{d}");
    assert_eq!(d["event_ids"].as_array().unwrap().len(), 2, "{d}");
    assert!(!d["fix"].to_string().contains("unwedge"), "{d}");
    assert!(d["fix"][0].as_str().unwrap().starts_with("ratchet --profile jo2 recovery recover"), "{d}");
    assert!(d["checked"].as_array().unwrap().iter().any(|c| c.as_str().unwrap().starts_with("key backup")), "{d}");

    // A wrong key: exit 4, nothing changed.
    let wrong = env.run_stdin(
        "jo2",
        &["recovery", "recover", "--key-stdin"],
        b"EsTX u2Qe auRQ Crg9 Y7AH Y1pe AMbv 4Jpx Fu9C CGkR VinK 3xC2\n",
    );
    assert_eq!(wrong.code, 4, "{}", wrong.stderr);
    assert!(wrong.stderr.contains("recovery key is wrong"), "{}", wrong.stderr);
    let unchanged = status(&env, "jo2");
    assert_eq!(unchanged["cross_signed"], false);
    assert!(unchanged["backup_version"].is_null(), "{unchanged}");

    // The right key, as Element printed it.
    let recovered = env
        .run_stdin("jo2", &["--json", "recovery", "recover", "--key-stdin"], format!("{recovery_key}\n").as_bytes())
        .success()
        .records("recovery_status")
        .remove(0);
    assert_eq!(recovered["cross_signed"], true, "{recovered}");
    assert_eq!(recovered["cross_signing_keys_here"], true, "{recovered}");
    assert_eq!(recovered["backup_version"].as_str(), Some(server_backup(&env, "jo2").0.as_str()));
    // The backup's keys are counted from the server, not from this device
    // (which holds none yet), and the next step is named (issue 19).
    assert_eq!(recovered["backup_keys_on_server"].as_u64(), Some(server_backup(&env, "jo2").1), "{recovered}");
    assert_eq!(recovered["room_keys"], 0, "{recovered}");
    let human = env.run("jo2", &["recovery", "status"]).success();
    assert!(human.stdout.contains(&format!("{in_backup} room key(s)")), "{}", human.stdout);
    assert!(human.stderr.contains("ratchet --profile jo2 backup restore"), "{}", human.stderr);

    // History from before this device existed, from the backup.
    let restored = env.run("jo2", &["--json", "backup", "restore", &room]).success().records("backup_restored");
    // Both messages are in one Megolm session: one room key.
    assert_eq!(restored[0]["imported"], 1, "{restored:?}");
    let got = env.run("jo2", &["--json", "messages", &room]).success().records("message");
    for id in &old {
        assert!(got.iter().any(|m| m["event_id"].as_str() == Some(id.as_str())), "{id} decrypts now: {got:?}");
    }

    // Cross-signed now: Element's crypto (exclude-insecure) reads it.
    let sent = env.run("jo2", &["--json", "send", &room, "from the recovered device"]).success().records("sent");
    let id = sent[0]["event_id"].as_str().unwrap().to_owned();
    let theirs = js.messages(&room, &[&id], 30_000);
    let seen = theirs.iter().find(|m| m["event_id"].as_str() == Some(id.as_str())).unwrap();
    assert_eq!(seen["body"], "from the recovered device", "{seen}");
}

#[test]
fn ratchet_s_recovery_key_opens_the_backup_for_element_and_keys_are_in_it_when_commands_exit() {
    let env = TestEnv::new();
    let (alice, bob) = (register("alice"), register("bob"));
    env.login("alice", &alice);
    env.login("bob", &bob);
    let room = env.encrypted_room("alice", &[("bob", &bob)], &["--rotation-msgs", "1"]);
    env.run("alice", &["send", &room, "before the backup"]).success();

    let enabled = env.run("alice", &["--json", "recovery", "enable"]).success();
    let key = enabled.records("recovery_key").remove(0);
    let recovery_key = key["recovery_key"].as_str().unwrap().to_owned();
    assert_eq!(recovery_key.split(' ').count(), 12, "48 characters in groups of 4: {recovery_key}");
    assert!(!enabled.stderr.contains(&recovery_key), "the key goes to stdout only");
    // A second enable would replace it: refused.
    let again = env.run("alice", &["recovery", "enable"]).code(1);
    assert!(again.stderr.contains("recovery recover"), "{}", again.stderr);

    // Every key alice made is on the server when each send exits (each
    // message here is a new session).
    for i in 0..3 {
        env.run("alice", &["send", &room, &format!("backed up {i}")]).success();
        let here = env.run("alice", &["--json", "backup", "status"]).success().records("backup_status").remove(0);
        assert_eq!(here["pending"], 0, "{here}");
        assert_eq!(server_backup(&env, "alice").1, here["keys_here"].as_u64().unwrap(), "{here}");
    }

    // Element's crypto, as a new device of alice's, restores them with the
    // printed key.
    let mut js = JsPeer::login(&alice, "exclude-insecure", false);
    let restored = js.call(json!({"cmd": "restore_backup", "recovery_key": recovery_key}));
    assert!(restored["imported"].as_u64().unwrap() >= 4, "{restored}");
}

#[test]
fn a_forgotten_room_key_comes_back_from_the_backup_and_the_output_says_so() {
    let env = TestEnv::new();
    let (alice, bob) = (register("alice"), register("bob"));
    env.login("alice", &alice);
    env.login("bob", &bob);
    let room = env.encrypted_room("alice", &[("bob", &bob)], &[]);
    env.run("bob", &["recovery", "enable"]).success();
    let sent = env.run("alice", &["--json", "send", &room, "keep me"]).success().records("sent");
    let session = sent[0]["session_id"].as_str().unwrap().to_owned();
    let second = env.run("alice", &["--json", "send", &room, "me too"]).success().records("sent");
    assert_eq!(second[0]["session_id"], session.as_str(), "one session for both");
    // bob receives the key; the command that got it uploads it. Alice's
    // device is cross-signed by her, and bob has not verified her.
    let first = env.run("bob", &["--json", "messages", &room]).success().records("message");
    let m = first.iter().find(|m| m["event_id"] == sent[0]["event_id"]).unwrap();
    assert_eq!(m["sender_trust"], "unverified_identity", "{m}");
    env.run("bob", &["debug", "forget-room-key", &room, &session, "--yes"]).success();

    let back = env.run("bob", &["--json", "messages", &room]).success();
    let m = back.records("message").into_iter().find(|m| m["event_id"] == sent[0]["event_id"]).unwrap();
    assert_eq!(m["body"], "keep me");
    assert_eq!(m["key_from_backup"], true, "{m}");
    // Both messages of the session were decrypted with the key from the
    // backup, and the count says so (issue 20).
    assert!(back.stderr.contains("2 message(s) decrypted with room keys from the key backup"), "{}", back.stderr);
    let both = back.records("message");
    assert!(both.iter().filter(|m| m["key_from_backup"] == true).count() == 2, "{both:?}");
    // A key from the backup cannot prove who sent the message (issue 19):
    // it says so now and at every later use, on the human line too.
    assert_eq!(m["sender_trust"], "insecure_source", "{m}");
    // Held again: the next read needs no backup.
    let again = env.run("bob", &["--json", "messages", &room]).success().records("message");
    assert!(again.iter().all(|m| m["key_from_backup"] == false));
    let m = again.iter().find(|m| m["event_id"] == sent[0]["event_id"]).unwrap();
    assert_eq!(m["sender_trust"], "insecure_source", "{m}");
    let human = env.run("bob", &["messages", &room]).success();
    assert!(
        human.stdout.contains("keep me") && human.stdout.contains("authenticity not guaranteed"),
        "{}",
        human.stdout
    );
}

/// `logout` destroys a device's keys: off a terminal only with --yes, on a
/// terminal after a question that says what the backup holds.
#[test]
fn logout_asks_and_says_what_the_backup_holds() {
    use crate::common::run_in_pty_typing;
    let env = TestEnv::new();
    let (alice, bob) = (register("alice"), register("bob"));
    env.login("alice", &alice);
    env.login("bob", &bob);
    let room = env.encrypted_room("alice", &[("bob", &bob)], &[]);
    env.run("alice", &["send", &room, "a key for bob"]).success();
    env.run("bob", &["messages", &room]).success();

    // Off a terminal, without --yes: refused, nothing deleted, and why.
    let refused = env.run("bob", &["logout"]).code(2);
    assert!(refused.stderr.contains("NOT in the key backup"), "{}", refused.stderr);
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    env.run("bob", &["whoami"]).success();

    // With a backup, everything is in it; on a terminal, "no" keeps all.
    env.run("bob", &["recovery", "enable"]).success();
    let (code, shown) = run_in_pty_typing(&env, "bob", &["logout"], &[("Log out and delete", "n")]);
    assert_eq!(code, 1, "{shown}");
    assert!(shown.contains("all of them in the key backup"), "{shown}");
    // "No" is a choice, not an error (issue 20): said plainly, exit 1.
    assert!(shown.contains("Not logged out; nothing was deleted.") && !shown.contains("error:"), "{shown}");
    env.run("bob", &["whoami"]).success();
    let (code, shown) = run_in_pty_typing(&env, "bob", &["--json", "logout"], &[("Log out and delete", "y")]);
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("\"room_keys_backed_up\":"), "{shown}");
    env.run("bob", &["whoami"]).code(4);
}

/// R13 that works: a device that lost a key asks (through matrix-sdk's own
/// key-request machinery), another verified device of the same user
/// answers, the forward is accepted and the event decrypts.
#[test]
fn a_lost_key_is_forwarded_by_another_verified_device_of_the_same_user() {
    let env = TestEnv::new();
    let (alice, bob) = (register("alice"), register("bob"));
    env.login("alice", &alice);
    env.login("bob", &bob);
    let second = env.login_with("bob2", &bob, &synapse().url, &["--json"], &[]).success().records("login");
    let second_device = second[0]["device_id"].as_str().unwrap().to_owned();
    let mut waiting = env.spawn("bob2", &["verify", "--accept", "--from", &bob.user_id, "--yes", "--wait", "60"]);
    waiting.wait_for_stderr("Waiting for a verification request", std::time::Duration::from_secs(60));
    env.run("bob", &["verify", "--self", &second_device, "--yes", "--wait", "60"]).success();
    waiting.finish(std::time::Duration::from_secs(60)).success();

    let room = env.encrypted_room("alice", &[("bob", &bob)], &[]);
    env.run("bob2", &["sync"]).success();
    let sent = env.run("alice", &["--json", "send", &room, "forward me"]).success().records("sent");
    let session = sent[0]["session_id"].as_str().unwrap().to_owned();
    env.run("bob", &["messages", &room]).success();
    env.run("bob2", &["messages", &room]).success();

    env.run("bob2", &["debug", "forget-room-key", &room, &session, "--yes"]).success();
    env.run("bob2", &["messages", &room]).code(3);
    env.run("bob2", &["keys", "request", &room, "--session", &session]).success();
    let answered = env.run("bob", &["--json", "sync"]).success();
    assert!(
        answered.records("to_device").iter().any(|t| t["event_type"] == "m.room_key_request"),
        "bob's first device sees the request: {}",
        answered.stdout
    );
    let got = env.run("bob2", &["--json", "sync"]).success();
    let forward = got.records("to_device").into_iter().find(|t| t["event_type"] == "m.forwarded_room_key");
    let forward = forward.unwrap_or_else(|| panic!("no forward arrived: {}", got.stdout));
    assert_eq!(forward["forward"], "accepted", "{forward}");
    assert_eq!(forward["session_id"], session.as_str());
    let back = env.run("bob2", &["--json", "messages", &room]).success().records("message");
    assert!(back.iter().any(|m| m["event_id"] == sent[0]["event_id"] && m["body"] == "forward me"));
}

/// A follower backs up the room keys its syncs bring, at each turn: it may
/// run for days, and the upload other commands make at exit never comes.
/// Nothing else runs on bob's profile meanwhile; the server's count is read
/// directly.
#[test]
fn a_follower_backs_up_the_room_keys_it_receives() {
    let (env, _alice, _bob, room) = TestEnv::alice_and_bob(&[]);
    env.run("bob", &["recovery", "enable"]).success();
    let (_, before) = server_backup(&env, "bob");
    let wait = std::time::Duration::from_secs(60);
    let mut follower = env.spawn("bob", &["--json", "sync", "--follow"]);
    follower.wait_for_stderr("Following", wait);
    env.run("alice", &["rotate", &room]).success();
    env.run("alice", &["send", &room, "back me up"]).success();
    follower.wait_for_match("alice's message", |v| v["body"] == "back me up", wait);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while server_backup(&env, "bob").1 <= before {
        assert!(std::time::Instant::now() < deadline, "the follower did not back up the new room key");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    follower.signal("-INT");
    assert_eq!(follower.finish(wait).code, 0);
}

/// Issue 29: a second device on an account without secret storage (its
/// first device, ratchet's, never ran `recovery enable`) is told one way
/// that works, not bounced from `recovery recover` to `recovery enable` to
/// `identity --create`: verifying it with the first device. That way,
/// taken, makes it cross-signed.
#[test]
fn a_second_device_without_secret_storage_is_sent_to_verification() {
    let env = TestEnv::new();
    let alice = register("alice");
    env.login("alice", &alice);
    let second = env.login_with("alice2", &alice, &synapse().url, &["--json"], &[]).success().records("login");
    assert_eq!(second[0]["cross_signed"], false);
    let second_device = second[0]["device_id"].as_str().unwrap().to_owned();

    let hints = |run: &crate::common::Run| run.stderr.clone();
    // No prompt for a key that cannot exist.
    let recover = env.run_stdin("alice2", &["recovery", "recover", "--key-stdin"], b"EsTc abcd\n").code(1);
    let said = hints(&recover);
    assert!(said.contains("no secret storage"), "{said}");
    assert!(said.contains("verify --accept"), "{said}");
    let enable = env.run("alice2", &["recovery", "enable"]).code(1);
    let said = hints(&enable);
    assert!(said.contains("verify --accept"), "{said}");
    assert!(!said.contains("identity --create") && !said.contains("recovery recover"), "{said}");
    let create = env.run("alice2", &["identity", "--create"]).code(1);
    assert!(hints(&create).contains("verify --accept"), "{}", hints(&create));

    // The way named: verify this device with the first one.
    let mut waiting =
        env.spawn("alice2", &["--json", "verify", "--accept", "--from", &alice.user_id, "--yes", "--wait", "60"]);
    waiting.wait_for_stderr("Waiting for a verification request", std::time::Duration::from_secs(120));
    env.run("alice", &["--json", "verify", "--self", &second_device, "--yes", "--wait", "60"]).success();
    let other_side = waiting.finish(std::time::Duration::from_secs(120)).success();
    assert_eq!(other_side.records("verified")[0]["this_device_cross_signed"], true, "{}", other_side.stdout);
}

/// Issue 29: a second device reads history from the backup; then the first
/// device resets the identity. matrix-sdk-crypto 0.18 would now refuse
/// every message of those imported keys (`sender_identity_not_trusted`,
/// `unknown_device`), its own account's included, before and after
/// `recovery recover` with the new key; a fresh Element device reads them.
/// ratchet reads them as Element does: readable, marked.
#[test]
fn history_read_from_the_backup_stays_readable_after_an_identity_reset_elsewhere() {
    let env = TestEnv::new();
    let (alice, bob) = (register("alice"), register("bob"));
    env.login("alice", &alice);
    env.login("bob", &bob);
    let room = env.encrypted_room("alice", &[("bob", &bob)], &[]);
    let enabled = env.run("alice", &["--json", "recovery", "enable"]).success();
    let key = enabled.records("recovery_key")[0]["recovery_key"].as_str().unwrap().to_owned();
    env.run("alice", &["send", &room, "alice, in the backup"]).success();
    env.run("bob", &["send", &room, "bob, in the backup"]).success();
    env.run("alice", &["sync"]).success();

    env.login("alice2", &alice);
    env.run_stdin("alice2", &["recovery", "recover", "--key-stdin"], format!("{key}\n").as_bytes()).success();
    env.run("alice2", &["backup", "restore", &room]).success();
    let read = |when: &str| {
        let run = env.run("alice2", &["--json", "messages", &room]);
        let bodies: Vec<Value> = run.records("message").iter().map(|m| m["body"].clone()).collect();
        assert!(run.records("utd").is_empty(), "{when}: {}", run.stdout);
        for body in ["alice, in the backup", "bob, in the backup"] {
            assert!(bodies.contains(&Value::from(body)), "{when}: {body}: {}", run.stdout);
        }
        run
    };
    read("before the reset");

    // The first device resets the identity and sets up a new recovery key.
    let password = format!("{}\n", alice.password);
    env.run_stdin("alice", &["recovery", "reset", "--yes", "--password-stdin"], password.as_bytes()).success();
    let enabled = env.run("alice", &["--json", "recovery", "enable"]).success();
    let new_key = enabled.records("recovery_key")[0]["recovery_key"].as_str().unwrap().to_owned();
    env.run("alice2", &["sync"]).success();
    let after = read("after the reset");
    // Marked: the key came from the backup, its device unprovable.
    let marked = after.records("message");
    assert!(marked.iter().all(|m| m["sender_trust"] != "verified"), "{marked:?}");
    let human = env.run("alice2", &["messages", &room]).success();
    assert!(human.stdout.contains("[? "), "the human lines are marked: {}", human.stdout);

    env.run_stdin("alice2", &["recovery", "recover", "--key-stdin"], format!("{new_key}\n").as_bytes()).success();
    env.run("alice2", &["backup", "restore", &room]).success();
    read("after recover with the new key and restore");
}
