//! What ratchet asks of the homeserver: no needless request (issue 7). A
//! one-shot send makes exactly the requests a correct client must make — an
//! incremental sync, then the PUT — as counted in Synapse's own access log;
//! an idle sync makes one; `whoami` makes none. The message still decrypts
//! at the receiver.

use crate::common::{synapse, TestEnv};

#[test]
fn a_one_shot_send_makes_only_the_sync_and_the_put() {
    let (env, alice, _bob, room) = TestEnv::alice_and_bob(&[]);
    // The first message creates and shares the Megolm session (keys query,
    // claim, to-device): not the steady state measured here.
    env.run("alice", &["send", &room, "warm-up"]).success();

    let offset = synapse().log_offset();
    let sent = env.run("alice", &["--json", "send", &room, "counted"]).success().records("sent");
    let requests = synapse().requests_since(offset, &alice.user_id, &env.token("alice"));
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert_eq!(requests[0], "GET /_matrix/client/v3/sync");
    let put = format!("PUT /_matrix/client/v3/rooms/{room}/send/m.room.encrypted/");
    assert!(requests[1].starts_with(&put), "{requests:#?}");

    let received = env.run("bob", &["--json", "messages", &room, "--limit", "3"]).success().records("message");
    let got = received.iter().find(|m| m["event_id"] == sent[0]["event_id"]).expect("bob has the message");
    assert_eq!(got["body"], "counted");
    assert_eq!(got["encrypted"], true);
}

#[test]
fn an_idle_sync_makes_one_request_and_whoami_none() {
    let (env, alice, _bob, _room) = TestEnv::alice_and_bob(&[]);
    env.run("alice", &["sync"]).success();

    let offset = synapse().log_offset();
    env.run("alice", &["sync"]).success();
    env.run("alice", &["whoami"]).success();
    let requests = synapse().requests_since(offset, &alice.user_id, &env.token("alice"));
    assert_eq!(requests, vec!["GET /_matrix/client/v3/sync".to_owned()]);
}

/// With key backup on (issue 13), a send in a settled session still makes
/// only the sync and the PUT: nothing is pending for the backup. The send
/// that starts a session makes one more request, its key's upload.
#[test]
fn with_a_backup_a_settled_send_adds_no_request_and_a_new_session_one_upload() {
    let (env, alice, _bob, room) = TestEnv::alice_and_bob(&[]);
    env.run("alice", &["recovery", "enable"]).success();
    env.run("alice", &["send", &room, "warm-up"]).success();

    let offset = synapse().log_offset();
    env.run("alice", &["send", &room, "counted"]).success();
    let requests = synapse().requests_since(offset, &alice.user_id, &env.token("alice"));
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert_eq!(requests[0], "GET /_matrix/client/v3/sync");

    env.run("alice", &["rotate", &room]).success();
    let offset = synapse().log_offset();
    env.run("alice", &["send", &room, "new session"]).success();
    let requests = synapse().requests_since(offset, &alice.user_id, &env.token("alice"));
    let uploads: Vec<&String> =
        requests.iter().filter(|r| r.starts_with("PUT /_matrix/client/v3/room_keys/keys")).collect();
    assert_eq!(uploads.len(), 1, "{requests:#?}");
    assert_eq!(requests.last().map(String::as_str), Some(uploads[0].as_str()), "the upload is the last request");
}
