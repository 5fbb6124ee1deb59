//! Snapshots of what people read: every `--help`, and the human output of
//! the main commands with volatile values redacted. A change in wording or
//! layout shows up as a diff to review (`cargo insta review`, or
//! `INSTA_UPDATE=always cargo test` to accept).

use crate::common::{register, TestEnv};

use crate::common::COMMANDS;

#[test]
fn help() {
    let env = TestEnv::new();
    for cmd in COMMANDS {
        let mut args = cmd.to_vec();
        args.push("--help");
        let run = env.run("p", &args).success();
        let name = if cmd.is_empty() { "ratchet".to_owned() } else { cmd.join("-") };
        insta::assert_snapshot!(format!("help-{name}"), run.stdout);
    }
}

/// Redactions for ids, keys, times and durations.
fn redacted(f: impl FnOnce()) {
    insta::with_settings!({filters => vec![
        (r"\$[A-Za-z0-9_-]{43}", "[EVENT_ID]"),
        (r"![A-Za-z0-9_-]{43}", "[ROOM_ID]"),
        (r"@[a-z0-9-]+:localhost", "[USER_ID]"),
        (r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "[TS]"),
        (r"[A-Za-z0-9+/]{43}", "[BASE64]"),
        (r"megolm [A-Za-z0-9+/]{10}", "megolm [SESSION]"),
        (r"\b[A-Z]{10}\b", "[DEVICE_ID]"),
        (r"\(age [^)]*\)", "(age [AGE])"),
        (r"time left \S+ of", "time left [LEFT] of"),
    ]}, {
        f();
    });
}

#[test]
fn human_output() {
    let env = TestEnv::new();
    let (alice, bob) = (register("alice"), register("bob"));
    env.login("alice", &alice);
    env.login("bob", &bob);
    let room = env.encrypted_room("alice", &[("bob", &bob)], &["--name", "snap", "--rotation-msgs", "2"]);
    let sent = env.run("alice", &["send", &room, "hello", "second", "third"]).success();
    let messages = env.run("bob", &["messages", &room]).success();
    let info = env.run("alice", &["room", "info", &room]).success();
    let sessions = env.run("alice", &["sessions", &room]).success();
    let encrypt = env.run("alice", &["encrypt", &room, "--rotation-msgs", "2"]).success();
    redacted(|| {
        insta::assert_snapshot!("send", sent.stdout);
        insta::assert_snapshot!("messages", messages.stdout);
        insta::assert_snapshot!("room-info", info.stdout);
        insta::assert_snapshot!("sessions-outbound", sessions.stdout.split("\ninbound").next().unwrap());
        insta::assert_snapshot!("encrypt-no-op", encrypt.stdout);
    });
}
