//! doctor: for each undecryptable event, the cause and the fix.

use serde_json::Value;

use crate::common::{register, TestEnv, TestUser};

fn setup() -> (TestEnv, TestUser, String, String) {
    let env = TestEnv::new();
    let (alice, bob) = (register("alice"), register("bob"));
    let alice_device = env.login("alice", &alice)["device_id"].as_str().unwrap().to_owned();
    env.login("bob", &bob);
    let room = env.encrypted_room("alice", &[("bob", &bob)], &[]);
    env.run("alice", &["send", &room, "fine"]).success();
    (env, alice, alice_device, room)
}

fn diagnoses(env: &TestEnv, room: &str) -> Vec<Value> {
    env.run("bob", &["--json", "doctor", room]).code(3).records("diagnosis")
}

#[test]
fn wedged_olm_session_names_unwedge_as_the_fix() {
    let (env, alice, alice_device, room) = setup();
    let ok = env.run("bob", &["--json", "doctor", &room]).success();
    assert!(ok.records("diagnosis").is_empty());

    env.run("bob", &["debug", "forget-olm", &alice.user_id, &alice_device, "--yes"]).success();
    env.run("alice", &["rotate", &room]).success();
    let lost = env.run("alice", &["--json", "send", &room, "lost"]).success().records("sent");
    let d = diagnoses(&env, &room);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0]["event_id"], lost[0]["event_id"]);
    assert_eq!(d[0]["cause"], "olm_session_missing");
    assert_eq!(d[0]["olm_sessions_with_sender"], 0);
    assert_eq!(d[0]["sender_device_state"], "known");
    assert_eq!(d[0]["fix"][0], format!("ratchet unwedge {} {alice_device}", alice.user_id).as_str());
    assert_eq!(d[0]["reproduce"], format!("ratchet debug forget-olm {} {alice_device} --yes", alice.user_id).as_str());
    let human = env.run("bob", &["doctor", &room]).code(3);
    assert!(human.stdout.contains("fix:       ratchet unwedge"), "{}", human.stdout);

    // Following the fix: the next messages decrypt again.
    env.run("bob", &["unwedge", &alice.user_id, &alice_device]).success();
    env.run("alice", &["sync"]).success();
    env.run("alice", &["send", &room, "after the fix"]).success();
    let msgs = env.run("bob", &["--json", "messages", &room]).code(3).records("message");
    assert_eq!(msgs.last().unwrap()["body"], "after the fix");
}

#[test]
fn missing_room_key_names_key_request_and_reproduction() {
    let (env, _alice, _dev, room) = setup();
    let sent = env.run("alice", &["--json", "send", &room, "to forget"]).success().records("sent");
    let session = sent[0]["session_id"].as_str().unwrap();
    env.run("bob", &["messages", &room]).success();
    env.run("bob", &["debug", "forget-room-key", &room, session, "--yes"]).success();
    let d = diagnoses(&env, &room);
    assert_eq!(d.len(), 2, "both messages of the session: {d:?}");
    for x in &d {
        assert_eq!(x["cause"], "room_key_missing");
        assert_eq!(x["session_held"], false);
        assert!(x["fix"][0].as_str().unwrap().starts_with("ratchet keys request"));
        assert!(x["reproduce"].as_str().unwrap().starts_with("ratchet debug forget-room-key"));
    }
    // --event narrows it to one.
    let one = env
        .run("bob", &["--json", "doctor", &room, "--event", sent[0]["event_id"].as_str().unwrap()])
        .code(3)
        .records("diagnosis");
    assert_eq!(one.len(), 1);
}

#[test]
fn message_from_before_the_key_names_the_index() {
    let env = TestEnv::new();
    let (alice, bob) = (register("alice"), register("bob"));
    env.login("alice", &alice);
    env.login("bob", &bob);
    let room = env.encrypted_room("alice", &[], &[]);
    env.run("alice", &["send", &room, "before bob"]).success();
    env.run("alice", &["room", "invite", &room, &bob.user_id]).success();
    env.run("bob", &["room", "join", &room]).success();
    env.run("alice", &["send", &room, "after bob"]).success();
    let d = diagnoses(&env, &room);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["cause"], "index_before_first_known");
    assert_eq!(d[0]["first_known_index"], 1);
    assert_eq!(d[0]["message_index"], 0);
    assert_eq!(d[0]["session_held"], true);
}
