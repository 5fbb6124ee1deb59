//! sync: one incremental sync that returns at once, and --follow, which
//! streams until interrupted and exits 0 with the store intact.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{register, TestEnv};

#[test]
fn sync_prints_what_arrived_and_then_nothing_new() {
    let env = TestEnv::new();
    let (alice, bob) = (register("alice"), register("bob"));
    env.login("alice", &alice);
    env.login("bob", &bob);
    let room = env.encrypted_room("alice", &[("bob", &bob)], &[]);
    env.run("bob", &["sync"]).success();
    let sent = env.run("alice", &["--json", "send", &room, "ping"]).success().records("sent");

    let run = env.run("bob", &["--json", "sync"]).success();
    let msgs = run.records("message");
    assert_eq!(msgs.len(), 1, "{}", run.stdout);
    assert_eq!(msgs[0]["body"], "ping");
    assert_eq!(msgs[0]["event_id"], sent[0]["event_id"]);
    assert_eq!(msgs[0]["session_id"], sent[0]["session_id"]);
    // The room key came as an Olm-encrypted to-device event.
    let keys: Vec<Value> = run.records("to_device").into_iter().filter(|r| r["event_type"] == "m.room_key").collect();
    assert_eq!(keys.len(), 1, "{}", run.stdout);
    assert_eq!(keys[0]["encrypted"], true);
    assert_eq!(keys[0]["session_id"], sent[0]["session_id"]);
    let summary = &run.records("sync")[0];
    assert_eq!(summary["utd"], 0);

    // Incremental: the same events are not delivered twice.
    let again = env.run("bob", &["--json", "sync"]).success();
    assert!(again.records("message").is_empty(), "{}", again.stdout);
}

#[test]
fn follow_streams_and_ctrl_c_exits_0_with_the_store_intact() {
    let env = TestEnv::new();
    let (alice, bob) = (register("alice"), register("bob"));
    env.login("alice", &alice);
    env.login("bob", &bob);
    let room = env.encrypted_room("alice", &[("bob", &bob)], &[]);
    env.run("bob", &["sync"]).success();

    let mut cmd = env.command("bob", &["--json", "sync", "--follow"]);
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("Following"), "{line}");

    env.run("alice", &["send", &room, "live one"]).success();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = None;
    while Instant::now() < deadline {
        let mut l = String::new();
        if stdout.read_line(&mut l).unwrap() == 0 {
            break;
        }
        let v: Value = serde_json::from_str(&l).unwrap();
        if v["type"] == "message" {
            seen = Some(v);
            break;
        }
    }
    let seen = seen.expect("the live message arrived while following");
    assert_eq!(seen["body"], "live one");

    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "Ctrl-C must exit 0");

    // The store is consistent: the next runs work and nothing is replayed.
    env.run("bob", &["whoami"]).success();
    let after = env.run("bob", &["--json", "messages", &room]).success().records("message");
    assert_eq!(after.last().unwrap()["body"], "live one");
}
