//! messages: decrypted history; undecryptable events shown with the SDK's
//! reason and session id, and exit status 3.

use crate::common::{register, TestEnv};

#[test]
fn events_from_before_joining_are_reported_undecryptable() {
    let env = TestEnv::new();
    let (alice, bob) = (register("alice"), register("bob"));
    env.login("alice", &alice);
    env.login("bob", &bob);
    let room = env.encrypted_room("alice", &[], &[]);
    // Sent while bob is not in the room: alice's session key reaches him only
    // when she next sends, and then from the index after this message.
    let early = env.run("alice", &["--json", "send", &room, "before bob"]).success().records("sent");
    env.run("alice", &["room", "invite", &room, &bob.user_id]).success();
    env.run("bob", &["room", "join", &room]).success();
    let late = env.run("alice", &["--json", "send", &room, "after bob"]).success().records("sent");

    let run = env.run("bob", &["--json", "messages", &room]).code(3);
    let utd = run.records("utd");
    assert_eq!(utd.len(), 1, "{}", run.stdout);
    assert_eq!(utd[0]["event_id"], early[0]["event_id"]);
    assert_eq!(utd[0]["session_id"], early[0]["session_id"]);
    assert_eq!(utd[0]["message_index"], early[0]["message_index"]);
    // Joining does not rotate the session (only leaving does), so bob holds
    // the same session from index 1 on: index 0 is before what he knows.
    assert_eq!(late[0]["session_id"], early[0]["session_id"]);
    assert_eq!(late[0]["message_index"], 1);
    assert_eq!(utd[0]["reason"], "unknown_megolm_message_index");
    let msgs = run.records("message");
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["event_id"], late[0]["event_id"]);
    assert_eq!(msgs[0]["body"], "after bob");
    assert_eq!(run.error_lines(), vec!["error: 1 of 2 messages could not be decrypted"]);

    // Human output names the failure too.
    let human = env.run("bob", &["messages", &room]).code(3);
    assert!(human.stdout.contains("** unable to decrypt: unknown_megolm_message_index"), "{}", human.stdout);
}

#[test]
fn limit_and_all() {
    let env = TestEnv::new();
    let alice = register("alice");
    env.login("alice", &alice);
    let room = env.encrypted_room("alice", &[], &[]);
    env.run("alice", &["send", &room, "a", "b", "c"]).success();
    let last_two = env.run("alice", &["--json", "messages", &room, "--limit", "2"]).success().records("message");
    let bodies: Vec<&str> = last_two.iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, vec!["b", "c"]);
    let all = env.run("alice", &["--json", "messages", &room, "--all"]).success();
    let events = all.records("event");
    assert!(events.iter().any(|e| e["event_type"] == "m.room.encryption"), "{}", all.stdout);
    env.run("alice", &["messages", &room, "--limit", "0"]).code(2);
}

/// Issue 14: text from the network cannot drive the terminal. Escape
/// sequences and a bell in a body are shown inert in human output; a
/// multi-line body continues indented under its first line; JSON keeps the
/// exact text.
#[test]
fn escape_sequences_in_a_body_are_shown_inert() {
    let (env, _alice, _bob, room) = crate::common::TestEnv::alice_and_bob(&[]);
    let nasty = "\u{1b}[2J\u{1b}[31mred\u{7}\nsecond line\n[2026-01-01 00:00:00] @mallory:x: forged";
    env.run("alice", &["send", &room, nasty]).success();
    let human = env.run("bob", &["messages", &room]).success();
    assert!(!human.stdout.contains('\u{1b}') && !human.stdout.contains('\u{7}'), "{:?}", human.stdout);
    assert!(human.stdout.contains("\\x1b[2J\\x1b[31mred\\x07"), "{}", human.stdout);
    assert!(
        human.stdout.contains("\n    second line\n    [2026-01-01 00:00:00] @mallory:x: forged"),
        "{}",
        human.stdout
    );
    let json = env.run("bob", &["--json", "messages", &room]).success().records("message");
    assert_eq!(json.last().unwrap()["body"], nasty, "JSON keeps the exact text");
}
