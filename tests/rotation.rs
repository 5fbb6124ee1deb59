//! Exact Megolm rotation (R4, R5): by message count across processes, by age
//! in milliseconds, and what each sent message reports about it — checked
//! against what the receivers (ratchet and nio) decrypt.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use serde_json::Value;

use crate::common::peer::NioPeer;
use crate::common::{register, TestEnv};

fn send(env: &TestEnv, room: &str, texts: &[&str]) -> Vec<Value> {
    let mut args = vec!["--json", "send", room];
    args.extend_from_slice(texts);
    env.run("alice", &args).success().records("sent")
}

#[test]
fn rotation_by_count_is_exact_within_and_across_processes() {
    let env = TestEnv::new();
    let (alice, bob, nina) = (register("alice"), register("bob"), register("nina"));
    env.login_all_devices("alice", &alice);
    env.login("bob", &bob);
    let nio = NioPeer::login(&env, &nina);
    let room = env.encrypted_room("alice", &[("bob", &bob)], &["--rotation-msgs", "3", "--invite", &nina.user_id]);
    nio.join(&env, &room);

    let texts: Vec<String> = (1..=15).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    // Ten from one process, then five processes of one message each.
    let mut sent = send(&env, &room, &refs[..10]);
    for text in &refs[10..] {
        sent.extend(send(&env, &room, &[text]));
    }
    assert_eq!(sent.len(), 15);

    // Sessions of exactly three messages: indexes 0, 1, 2, and the first of
    // each new session says why.
    let indexes: Vec<u64> = sent.iter().map(|r| r["message_index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, [0, 1, 2].repeat(5));
    let sessions: Vec<&str> = sent.iter().map(|r| r["session_id"].as_str().unwrap()).collect();
    assert_eq!(sessions.iter().collect::<BTreeSet<_>>().len(), 5);
    for (i, r) in sent.iter().enumerate() {
        let expected = match i {
            0 => Some("new"),
            i if i % 3 == 0 => Some("message_limit"),
            _ => None,
        };
        assert_eq!(r["rotation"].as_str(), expected, "message {}: {r}", i + 1);
        assert_eq!(r["new_session"], expected.is_some());
        if i % 3 != 0 {
            assert_eq!(r["session_id"], sent[i - 1]["session_id"]);
        }
    }

    // Both receivers decrypt all fifteen and see the same session and index.
    let ours: HashMap<String, Value> = env
        .run("bob", &["--json", "messages", &room, "--limit", "50"])
        .success()
        .records("message")
        .into_iter()
        .map(|m| (m["event_id"].as_str().unwrap().to_owned(), m))
        .collect();
    let view = nio.messages(&env, &room).success();
    let theirs: HashMap<String, Value> =
        view.records("message").into_iter().map(|m| (m["event_id"].as_str().unwrap().to_owned(), m)).collect();
    for (r, text) in sent.iter().zip(&texts) {
        let id = r["event_id"].as_str().unwrap();
        for (who, got) in [("bob", &ours), ("nio", &theirs)] {
            let m = got.get(id).unwrap_or_else(|| panic!("{who} is missing {text}"));
            assert_eq!(m["body"], text.as_str(), "{who}");
            assert_eq!(m["session_id"], r["session_id"], "{who}: {text}");
            assert_eq!(m["message_index"], r["message_index"], "{who}: {text}");
        }
    }
}

#[test]
fn rotation_by_age_honours_milliseconds() {
    let env = TestEnv::new();
    let (alice, bob) = (register("alice"), register("bob"));
    env.login("alice", &alice);
    env.login("bob", &bob);
    let room = env.encrypted_room("alice", &[("bob", &bob)], &["--rotation-ms", "2000"]);

    // Two messages well within two seconds share a session...
    let first = send(&env, &room, &["early one", "early two"]);
    assert_eq!(first[0]["session_id"], first[1]["session_id"]);
    assert_eq!(first[1]["message_index"], 1);
    assert_eq!(first[1]["rotation"], Value::Null);
    // ...and once the session is older than 2000 ms the next one does not.
    // (matrix-sdk alone would keep it for an hour.)
    std::thread::sleep(Duration::from_millis(2100));
    let late = send(&env, &room, &["late"]);
    assert_ne!(late[0]["session_id"], first[0]["session_id"]);
    assert_eq!(late[0]["message_index"], 0);
    assert_eq!(late[0]["rotation"], "age_limit");

    let got = env.run("bob", &["--json", "messages", &room]).success().records("message");
    let bodies: Vec<&str> = got.iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, vec!["early one", "early two", "late"]);
    assert_eq!(got[2]["session_id"], late[0]["session_id"]);
}
