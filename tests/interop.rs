//! Interoperability with a client that shares no code with ratchet
//! (matrix-nio, tests/peer/nio_peer.py): it decrypts what ratchet sent, and
//! ratchet decrypts what it sent. An encrypted message only counts as
//! working when another client has decrypted it.

use crate::common::peer::NioPeer;
use crate::common::{register, TestEnv};

#[test]
fn nio_decrypts_ratchet_and_ratchet_decrypts_nio() {
    let env = TestEnv::new();
    let (alice, nina) = (register("alice"), register("nina"));
    env.login("alice", &alice);
    let nio = NioPeer::login(&env, &nina);
    let room = env.encrypted_room("alice", &[], &["--invite", &nina.user_id]);
    nio.join(&env, &room);

    let texts = ["one", "two", "three"];
    let mut args = vec!["--json", "send", room.as_str()];
    args.extend_from_slice(&texts);
    let sent = env.run("alice", &args).success().records("sent");

    let view = nio.messages(&env, &room).success();
    let got = view.records("message");
    assert!(view.records("utd").is_empty(), "{}", view.stdout);
    assert_eq!(got.len(), texts.len(), "{}", view.stdout);
    for ((record, text), theirs) in sent.iter().zip(texts).zip(&got) {
        assert_eq!(theirs["event_id"], record["event_id"]);
        assert_eq!(theirs["body"], text);
        // nio's view of session and index, parsed from the ciphertext bytes
        // by the peer itself, equals ratchet's report.
        assert_eq!(theirs["session_id"], record["session_id"]);
        assert_eq!(theirs["message_index"], record["message_index"]);
    }

    let from_nio = nio.send(&env, &room, &["hello from nio", "and another"]);
    let mine = env.run("alice", &["--json", "messages", &room]).success().records("message");
    for record in &from_nio {
        let m = mine.iter().find(|m| m["event_id"] == record["event_id"]).expect("ratchet shows nio's message");
        assert_eq!(m["body"], record["body"]);
        assert_eq!(m["encrypted"], true);
        assert_eq!(m["sender"], nina.user_id.as_str());
        assert_eq!(m["sender_device"], nio.device_id.as_str());
    }
}
