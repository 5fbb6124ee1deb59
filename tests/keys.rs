//! keys export / import / request, and debug forget-room-key: a missing
//! Megolm key made on purpose, and brought back.

use crate::common::{register, run_in_pty_typing, TestEnv};

#[test]
fn a_forgotten_room_key_is_undecryptable_until_imported() {
    let env = TestEnv::new();
    let (alice, bob) = (register("alice"), register("bob"));
    env.login("alice", &alice);
    env.login("bob", &bob);
    let room = env.encrypted_room("alice", &[("bob", &bob)], &[]);
    let sent = env.run("alice", &["--json", "send", &room, "keep me", "and me"]).success().records("sent");
    let session = sent[0]["session_id"].as_str().unwrap().to_owned();
    env.run("bob", &["messages", &room]).success();

    let file = env.home().join("keys.txt");
    let file = file.to_str().unwrap();
    let exported = env
        .run_stdin("bob", &["--json", "keys", "export", file, "--passphrase-stdin"], b"pass phrase\n")
        .success()
        .records("keys_exported");
    assert!(exported[0]["exported"].as_u64().unwrap() >= 1);
    // Never overwrites.
    env.run_stdin("bob", &["keys", "export", file, "--passphrase-stdin"], b"x\n").code(1);

    // Without --yes and without a terminal: refused, nothing deleted.
    let refused = env.run("bob", &["debug", "forget-room-key", &room, &session]).code(2);
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    env.run("bob", &["messages", &room]).success();

    // The session as human output shows it (first 10 characters) is enough.
    let short: String = session.chars().take(10).collect();
    let forgot = env
        .run("bob", &["--json", "debug", "forget-room-key", &room, &short, "--yes"])
        .success()
        .records("forgot_room_key");
    assert_eq!(forgot[0]["session_id"], session.as_str());
    let broken = env.run("bob", &["--json", "messages", &room]).code(3);
    let utd = broken.records("utd");
    assert_eq!(utd.len(), 2, "{}", broken.stdout);
    for u in &utd {
        assert_eq!(u["session_id"], session.as_str());
        assert_eq!(u["reason"], "missing_megolm_session");
    }

    env.run_stdin("bob", &["keys", "import", file, "--passphrase-stdin"], b"wrong\n").code(1);
    let imported = env
        .run_stdin("bob", &["--json", "keys", "import", file, "--passphrase-stdin"], b"pass phrase\n")
        .success()
        .records("keys_imported");
    assert!(imported[0]["imported"].as_u64().unwrap() >= 1);
    let back = env.run("bob", &["--json", "messages", &room]).success().records("message");
    let bodies: Vec<&str> = back.iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, vec!["keep me", "and me"]);
    let again = env.run("bob", &["--json", "sessions", &room]).success().records("inbound_session");
    assert!(again.iter().any(|s| s["session_id"] == session.as_str() && s["imported"] == true), "{again:?}");

    // Forgetting a session bob does not hold is an error.
    env.run("bob", &["debug", "forget-room-key", &room, &session, "--yes"]).success();
    let missing = env.run("bob", &["debug", "forget-room-key", &room, &session, "--yes"]).code(1);
    assert!(missing.stderr.contains("holds no Megolm session"), "{}", missing.stderr);
}

#[test]
fn keys_request_reaches_the_sender() {
    let env = TestEnv::new();
    let (alice, bob) = (register("alice"), register("bob"));
    env.login("alice", &alice);
    env.login("bob", &bob);
    let room = env.encrypted_room("alice", &[("bob", &bob)], &[]);
    let sent = env.run("alice", &["--json", "send", &room, "x"]).success().records("sent");
    env.run("alice", &["sync"]).success();
    let event = sent[0]["event_id"].as_str().unwrap();
    let req = env.run("bob", &["--json", "keys", "request", &room, "--event", event]).success().records("key_request");
    assert_eq!(req[0]["session_id"], sent[0]["session_id"]);
    assert_eq!(req[0]["sender"], alice.user_id.as_str());
    let at_alice = env.run("alice", &["--json", "sync"]).success();
    let requests: Vec<_> =
        at_alice.records("to_device").into_iter().filter(|r| r["event_type"] == "m.room_key_request").collect();
    assert_eq!(requests.len(), 1, "{}", at_alice.stdout);
    assert_eq!(requests[0]["sender"], bob.user_id.as_str());
    // Nothing undecryptable: nothing requested.
    let none = env.run("bob", &["--json", "keys", "request", &room]).success();
    assert!(none.records("key_request").is_empty());
    // Issue 14, item 8: a session id as human output shows it (its first
    // 10 characters) names the session.
    let full = sent[0]["session_id"].as_str().unwrap();
    let short: String = full.chars().take(10).collect();
    let human = env.run("alice", &["messages", &room]).success();
    assert!(human.stdout.contains(&format!("megolm {short} ")), "{}", human.stdout);
    let req = env.run("bob", &["--json", "keys", "request", &room, "--session", &short]).success();
    assert_eq!(req.records("key_request")[0]["session_id"], full);
    let unknown = env.run("bob", &["keys", "request", &room, "--session", "zzzzzzzzzz"]).code(1);
    assert!(unknown.stderr.contains("no event of session zzzzzzzzzz"), "{}", unknown.stderr);
}

#[test]
fn export_of_one_room_and_passphrase_prompts_on_a_terminal() {
    let env = TestEnv::new();
    let (alice, bob) = (register("alice"), register("bob"));
    env.login("alice", &alice);
    env.login("bob", &bob);
    let one = env.encrypted_room("alice", &[("bob", &bob)], &[]);
    let two = env.encrypted_room("alice", &[("bob", &bob)], &[]);
    for room in [&one, &two] {
        env.run("alice", &["send", room, "hi"]).success();
    }
    env.run("bob", &["messages", &one]).success();
    env.run("bob", &["messages", &two]).success();

    let all = env.home().join("all.txt");
    let all = all.to_str().unwrap();
    // On a terminal the passphrase is asked for twice, never echoed.
    let (code, shown) = run_in_pty_typing(
        &env,
        "bob",
        &["keys", "export", all],
        &[("Key file passphrase:", "sesame seed"), ("Again:", "sesame seed")],
    );
    assert_eq!(code, 0, "{shown}");
    assert!(!shown.contains("sesame"), "{shown}");
    // Two answers that differ: refused, no file.
    let mismatch = env.home().join("mismatch.txt");
    let (code, shown) = run_in_pty_typing(
        &env,
        "bob",
        &["keys", "export", mismatch.to_str().unwrap()],
        &[("Key file passphrase:", "one"), ("Again:", "two")],
    );
    assert_eq!(code, 2, "{shown}");
    assert!(shown.contains("the passphrases differ"), "{shown}");
    assert!(!mismatch.exists());

    let room_file = env.home().join("one.txt");
    let room_file = room_file.to_str().unwrap();
    let exported = env
        .run_stdin("bob", &["--json", "keys", "export", room_file, "--room", &one, "--passphrase-stdin"], b"p\n")
        .success()
        .records("keys_exported");
    assert_eq!(exported[0]["exported"], 1, "only the one room's session");

    // The whole export imports with the passphrase typed at the prompt.
    let (code, shown) =
        run_in_pty_typing(&env, "bob", &["--json", "keys", "import", all], &[("Key file passphrase:", "sesame seed")]);
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("\"total\":2"), "both rooms' sessions were in the file: {shown}");
}
