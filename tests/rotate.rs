//! rotate (force a new Megolm session), rotate --share (pre-share it), and
//! sessions (inspect outbound and inbound sessions).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::common::{register, TestEnv};

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn rotate_starts_a_never_seen_session_at_index_0() {
    let (env, _alice, _bob, room) = TestEnv::alice_and_bob(&[]);
    let before = env.run("alice", &["--json", "send", &room, "a", "b"]).success().records("sent");

    let rotated = env.run("alice", &["--json", "rotate", &room]).success().records("rotated");
    assert_eq!(rotated[0]["old_session_id"], before[0]["session_id"]);
    assert!(rotated[0]["new_session_id"].is_null());
    // The alias Element users know works too (and finds nothing to discard
    // that was not already discarded: the same old session).
    env.run("alice", &["discard-session", &room]).success();

    let after = env.run("alice", &["--json", "send", &room, "c"]).success().records("sent");
    assert_ne!(after[0]["session_id"], before[0]["session_id"]);
    assert_eq!(after[0]["message_index"], 0);
    assert_eq!(after[0]["rotation"], "forced");

    let got = env.run("bob", &["--json", "messages", &room]).success().records("message");
    assert_eq!(got.last().unwrap()["body"], "c");
    assert_eq!(got.last().unwrap()["session_id"], after[0]["session_id"]);
}

#[test]
fn rotate_share_gives_receivers_the_key_before_any_message() {
    let (env, alice, _bob, room) = TestEnv::alice_and_bob(&[]);
    let first = env.run("alice", &["--json", "send", &room, "hello"]).success().records("sent");
    let bob_device = env.run("bob", &["--json", "whoami"]).success().records("whoami")[0]["device_id"].clone();

    let rotated = env.run("alice", &["--json", "rotate", &room, "--share"]).success().records("rotated");
    let new_id = rotated[0]["new_session_id"].as_str().unwrap().to_owned();
    assert_ne!(Value::from(new_id.as_str()), first[0]["session_id"]);
    assert!(rotated[0]["to_device_requests"].as_u64().unwrap() >= 1);

    // Bob holds it now, before any message used it.
    let inbound = env.run("bob", &["--json", "sessions", &room]).success().records("inbound_session");
    let held = inbound.iter().find(|s| s["session_id"] == new_id.as_str()).expect("bob holds the new session");
    assert_eq!(held["first_known_index"], 0);
    assert_eq!(held["sender"], alice.user_id.as_str());

    // Alice's outbound session is it, shared with bob's device from index 0.
    let out = env.run("alice", &["--json", "sessions", &room]).success().records("outbound_session");
    assert_eq!(out[0]["session_id"], new_id.as_str());
    assert_eq!(out[0]["messages_encrypted"], 0);
    let shared = out[0]["shared_with"].as_array().unwrap();
    assert!(shared.iter().any(|d| d["device_id"] == bob_device && d["message_index"] == 0), "{shared:?}");

    let next = env.run("alice", &["--json", "send", &room, "uses the shared one"]).success().records("sent");
    assert_eq!(next[0]["session_id"], new_id.as_str());
    assert_eq!(next[0]["message_index"], 0);
    let got = env.run("bob", &["--json", "messages", &room]).success().records("message");
    assert_eq!(got.last().unwrap()["body"], "uses the shared one");
}

#[test]
fn sessions_reports_counts_against_the_limits_and_no_key_material() {
    let env = TestEnv::new();
    let (alice, bob) = (register("alice"), register("bob"));
    env.login("alice", &alice);
    env.login("bob", &bob);
    let room = env.encrypted_room("alice", &[("bob", &bob)], &["--rotation-msgs", "5", "--rotation-ms", "600000"]);
    let sent = env.run("alice", &["--json", "send", &room, "1", "2"]).success().records("sent");

    let run = env.run("alice", &["--json", "sessions", &room]).success();
    let out = &run.records("outbound_session")[0];
    assert_eq!(out["session_id"], sent[0]["session_id"]);
    assert_eq!(out["messages_encrypted"], 2);
    assert_eq!(out["rotation_period_msgs"], 5);
    assert_eq!(out["messages_left"], 3);
    assert_eq!(out["rotation_period_ms"], 600000);
    assert!(out["time_left_ms"].as_u64().unwrap() <= 600000);
    assert_eq!(out["expired"], false);
    assert_eq!(out["invalidated"], false);
    assert_eq!(out["created_precise"], true);
    // Exactly the documented fields: nothing like a pickle or a key slipped in.
    let expected: BTreeSet<String> = [
        "type",
        "room_id",
        "session_id",
        "created_ms",
        "created_precise",
        "age_ms",
        "messages_encrypted",
        "rotation_period_msgs",
        "messages_left",
        "rotation_period_ms",
        "time_left_ms",
        "expired",
        "expired_reason",
        "invalidated",
        "shared",
        "shared_with",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(keys(out), expected);

    let inbound = env.run("bob", &["--json", "sessions", &room]).success().records("inbound_session");
    let s = inbound.iter().find(|s| s["session_id"] == sent[0]["session_id"]).expect("bob has alice's session");
    assert_eq!(s["first_known_index"], 0);
    assert_eq!(s["imported"], false);
    let expected: BTreeSet<String> =
        ["type", "room_id", "session_id", "sender_key", "sender", "sender_device", "first_known_index", "imported"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    assert_eq!(keys(s), expected);

    // Human output, too, carries the counts.
    let human = env.run("alice", &["sessions", &room]).success();
    assert!(human.stdout.contains("messages  2 of 5 (3 left)"), "{}", human.stdout);
}
