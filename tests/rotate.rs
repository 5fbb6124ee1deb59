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
        "isolation",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(keys(out), expected);

    let inbound = env.run("bob", &["--json", "sessions", &room]).success().records("inbound_session");
    let s = inbound.iter().find(|s| s["session_id"] == sent[0]["session_id"]).expect("bob has alice's session");
    assert_eq!(s["first_known_index"], 0);
    assert_eq!(s["imported"], false);
    let expected: BTreeSet<String> = [
        "type",
        "room_id",
        "session_id",
        "sender_key",
        "sender",
        "sender_device",
        "first_known_index",
        "imported",
        "shared_by",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(keys(s), expected);

    // Human output, too, carries the counts.
    let human = env.run("alice", &["sessions", &room]).success();
    assert!(human.stdout.contains("messages  2 of 5 (3 left)"), "{}", human.stdout);
}

#[test]
fn sessions_shows_expired_and_invalidated_and_sends_say_why() {
    let env = TestEnv::new();
    let (alice, bob, carol) = (register("alice"), register("bob"), register("carol"));
    env.login("alice", &alice);
    env.login("bob", &bob);
    env.login("carol", &carol);
    let room = env.encrypted_room("alice", &[("bob", &bob), ("carol", &carol)], &["--rotation-msgs", "2"]);
    let sessions = |env: &TestEnv| env.run("alice", &["--json", "sessions", &room]).success();
    let send = |text: &str| env.run("alice", &["--json", "send", &room, text]).success().records("sent").remove(0);

    // Two messages reach the limit: expired, and why.
    send("1");
    send("2");
    let out = sessions(&env).records("outbound_session").remove(0);
    assert_eq!(out["expired"], true, "{out}");
    assert_eq!(out["expired_reason"], "message_limit");
    assert_eq!(out["messages_left"], 0);
    let rotated = send("3");
    assert_eq!(rotated["rotation"], "message_limit");

    // Discarded by ratchet: invalidated in the store, "forced" at the send.
    env.run("alice", &["rotate", &room]).success();
    let out = sessions(&env).records("outbound_session").remove(0);
    assert_eq!(out["invalidated"], true, "{out}");
    assert_eq!(send("4")["rotation"], "forced");

    // Discarded by the SDK when someone the session went to leaves (it
    // does so as the sync brings the leave): "invalidated".
    send("5");
    env.run("carol", &["room", "leave", &room]).success();
    assert_eq!(send("6")["rotation"], "invalidated");

    // ... and when the room's history visibility changes (a setting of the
    // session that ratchet does not track): sdk.
    env.set_history_visibility("alice", &room, "joined");
    assert_eq!(send("7")["rotation"], "sdk");

    // Each of these messages decrypts at bob.
    let got = env.run("bob", &["--json", "messages", &room, "--limit", "30"]).success().records("message");
    let bodies: Vec<&str> = got.iter().filter_map(|m| m["body"].as_str()).collect();
    for b in ["1", "2", "3", "4", "5", "6", "7"] {
        assert!(bodies.contains(&b), "bob lacks {b}: {bodies:?}");
    }
}

#[test]
fn olm_with_no_arguments_lists_every_device_with_sessions() {
    let env = TestEnv::new();
    let (alice, bob) = (register("alice"), register("bob"));
    env.login("alice", &alice);
    let bob_device = env.login("bob", &bob)["device_id"].as_str().unwrap().to_owned();
    let room = env.encrypted_room("alice", &[("bob", &bob)], &[]);
    env.run("alice", &["send", &room, "opens a session"]).success();
    let all = env.run("alice", &["--json", "olm"]).success().records("olm_device");
    let bobs = all.iter().find(|d| d["device_id"] == bob_device.as_str()).expect("bob's device is listed");
    assert_eq!(bobs["user_id"], bob.user_id.as_str());
    assert_eq!(bobs["session_count"], 1);
    assert_eq!(bobs["choices_differ"], false);
}

#[test]
fn read_only_commands_write_no_rule_state() {
    let (env, _alice, _bob, room) = TestEnv::alice_and_bob(&["--rotation-msgs", "7"]);
    env.run("alice", &["send", &room, "hi"]).success();
    let db = env.profile_dir("bob").join("state.sqlite3");
    // A sync keeps R3's strictest limits as the room's m.room.encryption
    // arrives (issue 30's review), in any command: bob's first sync did.
    env.run("bob", &["sync"]).success();
    let kept = ledger_values(&db);
    assert!(kept.iter().any(|(name, _)| name == "megolm"), "R3's record, kept by the sync");
    for args in [vec!["sessions", &room], vec!["room", "info", &room], vec!["olm"], vec!["doctor", &room]] {
        env.run("bob", &args).success();
        assert_eq!(ledger_values(&db), kept, "`{}` wrote a rule ledger", args.join(" "));
    }
    // ... while the limits they show still come from the room (R3 record
    // consulted, not written).
    let info = env.run("bob", &["--json", "room", "info", &room]).success().records("room_info");
    assert_eq!(info[0]["rotation_period_msgs"], 7);
}

/// The rule ledgers' stored (sealed) values: a rewrite changes them (a new
/// nonce), so equal values mean nothing was written.
fn ledger_values(db: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt =
        conn.prepare("SELECT name, value FROM ledgers WHERE name IN ('megolm', 'olm') ORDER BY name").unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
}

/// Damages one ledger's (encrypted) value in the state database, as a bad
/// disk or a bad edit would.
fn damage_ledger(db: &std::path::Path, name: &str) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute("INSERT OR REPLACE INTO ledgers (name, value) VALUES (?1, x'7b206e6f74206a736f6e')", [name]).unwrap();
}

fn has_damaged_copy(db: &std::path::Path, name: &str) -> bool {
    let conn = rusqlite::Connection::open(db).unwrap();
    let n: i64 =
        conn.query_row("SELECT COUNT(*) FROM ledgers WHERE name = ?1 || '.damaged'", [name], |r| r.get(0)).unwrap();
    n == 1
}

/// Issue 14, item 7 (issue 18: the ledgers now live in the state
/// database): rule state fails closed. A damaged Megolm ledger (R3's and
/// R5's record) is not read as empty and trusted: it warns, keeps a copy,
/// and the session whose age it recorded rotates before its next message.
/// A damaged Olm ledger (R11's record) counts a new Olm session as made
/// with every device just now.
#[test]
fn damaged_rule_records_fail_closed() {
    let (env, _alice, bob, room) = TestEnv::alice_and_bob(&["--rotation-msgs", "50"]);
    let first = env.run("alice", &["--json", "send", &room, "one"]).success().records("sent");
    let db = env.profile_dir("alice").join("state.sqlite3");
    damage_ledger(&db, "megolm");
    let run = env.run("alice", &["--json", "send", &room, "two"]).success();
    assert!(run.stderr.contains("the Megolm ledger in") && run.stderr.contains("is damaged"), "{}", run.stderr);
    assert!(has_damaged_copy(&db, "megolm"));
    let two = run.records("sent").remove(0);
    assert_eq!(two["rotation"], "record_damaged", "{two}");
    assert_ne!(two["session_id"], first[0]["session_id"]);
    let three = env.run("alice", &["--json", "send", &room, "three"]).success();
    assert!(three.stderr.is_empty(), "healed: {}", three.stderr);
    assert_eq!(three.records("sent")[0]["session_id"], two["session_id"]);

    let bob_device = env.run("bob", &["--json", "whoami"]).success().records("whoami")[0]["device_id"].clone();
    let bob_device = bob_device.as_str().unwrap();
    damage_ledger(&db, "olm");
    let refused = env.run("alice", &["unwedge", &bob.user_id, bob_device]).code(5);
    assert!(
        refused.stderr.contains("the Olm ledger in") && refused.stderr.contains("is damaged"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("(R11)"), "{}", refused.stderr);
    assert!(has_damaged_copy(&db, "olm"));
    // Still strict in the next process: the marker was saved.
    env.run("alice", &["unwedge", &bob.user_id, bob_device]).code(5);
    env.run("alice", &["unwedge", &bob.user_id, bob_device, "--force"]).success();
}
