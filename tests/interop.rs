//! Interoperability with a client that shares no code with ratchet
//! (matrix-nio, tests/peer/nio_peer.py): it decrypts what ratchet sent, and
//! ratchet decrypts what it sent. An encrypted message only counts as
//! working when another client has decrypted it.

use crate::common::TestEnv;

#[test]
fn nio_decrypts_ratchet_and_ratchet_decrypts_nio() {
    let env = TestEnv::new();
    let (_alice, nina, nio, room) = env.alice_and_nio();

    let texts = ["one", "two", "three"];
    let mut args = vec!["--json", "send", room.as_str()];
    args.extend_from_slice(&texts);
    let sent = env.run("alice", &args).success().records("sent");

    let view = nio.messages(&env, &room).success();
    let got = view.records("message");
    assert!(view.records("utd").is_empty(), "{}", view.stdout);
    assert_eq!(got.len(), texts.len(), "{}", view.stdout);
    for ((record, text), theirs) in sent.iter().zip(texts).zip(&got) {
        assert_eq!(text_of(theirs, "event_id"), text_of(record, "event_id"));
        assert_eq!(text_of(theirs, "body"), text);
        // nio's view of session and index, parsed from the ciphertext bytes
        // by the peer itself, equals ratchet's report (both present: two
        // nulls must not pass as equal).
        assert_eq!(text_of(theirs, "session_id"), text_of(record, "session_id"));
        assert_eq!(number_of(theirs, "message_index"), number_of(record, "message_index"));
    }

    let from_nio = nio.send(&env, &room, &["hello from nio", "and another"]);
    let mine = env.run("alice", &["--json", "messages", &room]).success().records("message");
    for record in &from_nio {
        let id = text_of(record, "event_id");
        let m = mine.iter().find(|m| m["event_id"].as_str() == Some(id)).expect("ratchet shows nio's message");
        assert_eq!(text_of(m, "body"), text_of(record, "body"));
        assert_eq!(m["encrypted"].as_bool(), Some(true));
        assert_eq!(text_of(m, "sender"), nina.user_id);
        assert_eq!(text_of(m, "sender_device"), nio.device_id);
        assert!(m["message_index"].as_u64().is_some(), "ratchet reads the index of nio's message: {m}");
    }
}

/// A string field that must be present (a null or a number fails).
fn text_of<'a>(record: &'a serde_json::Value, field: &str) -> &'a str {
    record[field].as_str().unwrap_or_else(|| panic!("{field} is not a string in {record}"))
}

/// A number field that must be present.
fn number_of(record: &serde_json::Value, field: &str) -> u64 {
    record[field].as_u64().unwrap_or_else(|| panic!("{field} is not a number in {record}"))
}
