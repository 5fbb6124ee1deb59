//! chat: one room followed, each stdin line sent (issue 14, item 3).

use std::time::Duration;

use serde_json::Value;

use crate::common::{register, TestEnv};

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn chat_follows_one_room_sends_each_line_and_sync_still_delivers_everything() {
    let env = TestEnv::new();
    let (alice, bob) = (register("alice"), register("bob"));
    env.login("alice", &alice);
    env.login("bob", &bob);
    let ops = env.encrypted_room("alice", &[("bob", &bob)], &["--name", "ops"]);
    let other = env.encrypted_room("alice", &[("bob", &bob)], &["--name", "other"]);
    env.run("bob", &["sync"]).success();

    let mut chat = env.spawn("bob", &["--json", "chat", "ops"]);
    chat.wait_for_stderr("Chatting in", WAIT);
    let body = |b: &'static str| move |v: &Value| v["type"] == "message" && v["body"] == b;

    env.run("alice", &["send", &ops, "hi bob"]).success();
    env.run("alice", &["send", &other, "elsewhere"]).success();
    let got = chat.wait_for_match("alice's message", body("hi bob"), WAIT);
    assert!(got["message_index"].is_u64(), "{got}");

    chat.answer("hi alice");
    let sent = chat.wait_for_match("the sent record", |v| v["type"] == "sent", WAIT);
    assert_eq!(sent["room_id"], ops.as_str());
    assert!(sent["session_id"].is_string() && sent["message_index"].is_u64(), "{sent}");
    chat.wait_for_match("its echo", body("hi alice"), WAIT);
    // The profile is free meanwhile: another process sends on it.
    env.run("bob", &["--lock-timeout", "20", "send", "ops", "from another process"]).success();
    chat.wait_for_match("the other process's message", body("from another process"), WAIT);
    let run = chat.finish(WAIT).success();

    let printed: Vec<Value> = run.json();
    let count = |b: &str| printed.iter().filter(|v| v["type"] == "message" && v["body"] == b).count();
    for b in ["hi bob", "hi alice", "from another process"] {
        assert_eq!(count(b), 1, "{b:?} in {}", run.stdout);
    }
    assert_eq!(count("elsewhere"), 0, "another room's message is not chat's: {}", run.stdout);
    assert!(printed.iter().all(|v| v["room_id"] == ops.as_str()), "{}", run.stdout);

    // alice decrypts what bob typed.
    let at_alice = env.run("alice", &["--json", "messages", &ops]).success();
    assert!(at_alice.records("utd").is_empty(), "{}", at_alice.stdout);
    assert!(at_alice.records("message").iter().any(|m| m["event_id"] == sent["event_id"] && m["body"] == "hi alice"));
    // chat is a view (issue 18): sync delivers everything, what chat showed
    // included, each once.
    let synced = env.run("bob", &["--json", "sync"]).success();
    let mut bodies: Vec<String> =
        synced.records("message").iter().map(|m| m["body"].as_str().unwrap_or("").to_owned()).collect();
    bodies.sort();
    assert_eq!(bodies, ["elsewhere", "from another process", "hi alice", "hi bob"], "{}", synced.stdout);
}
