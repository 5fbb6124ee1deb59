//! Issue 18: ratchet's own state in one encrypted, transactional database
//! (`<profile>/state.sqlite3`): nothing in clear, nothing lost, nothing
//! twice; cursors; the old files migrated; a damaged database refused.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{register, wrapped, TestEnv};

const WAIT: Duration = Duration::from_secs(60);

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return found };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// Fails if any file ratchet keeps (data, config and cache dirs) holds
/// `canary`.
fn assert_nowhere(env: &TestEnv, canary: &str, after: &str) {
    let mut scanned = 0;
    for base in ["data", "config", "cache"] {
        for path in files_under(&env.home().join(base)) {
            let bytes = std::fs::read(&path).unwrap_or_default();
            scanned += 1;
            assert!(
                !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
                "after `{after}`, {} holds a received message in clear",
                path.display()
            );
        }
    }
    assert!(scanned > 5, "the scan found the profile's files ({scanned})");
}

/// The message bodies of JSON records, in order.
fn bodies(records: &[Value]) -> Vec<String> {
    records.iter().filter(|v| v["type"] == "message").map(|v| v["body"].as_str().unwrap_or("").to_owned()).collect()
}

/// No received message's text is in any file of the profile after any
/// kind of command, with the generated store key and with a passphrase
/// (RATCHET_STORE_PASSPHRASE): bob sends a canary before each of alice's
/// commands, whose own sync receives it.
#[test]
fn no_received_text_in_any_file_after_any_command() {
    for passphrase in [false, true] {
        let mut env = TestEnv::new();
        if passphrase {
            env.set_env("RATCHET_STORE_PASSPHRASE", "a passphrase for the stores");
        }
        let (alice, bob) = (register("alice"), register("bob"));
        env.login("alice", &alice);
        env.login("bob", &bob);
        let room = env.encrypted_room("alice", &[("bob", &bob)], &["--name", "ops"]);
        let canary = format!("TOPSECRET-{}-{passphrase}", std::process::id());
        let mut n = 0;
        let mut check = |args: &[&str], stdin: Option<&[u8]>| {
            n += 1;
            let body = format!("{canary} {n}");
            env.run("bob", &["send", &room, &body]).success();
            let run = match stdin {
                Some(input) => env.run_stdin("alice", args, input),
                None => env.run("alice", args),
            };
            assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
            assert_nowhere(&env, &canary, &args.join(" "));
        };
        check(&["room", "list"], None);
        check(&["send", &room, "a reply"], None);
        check(&["--json", "messages", &room], None);
        check(&["--json", "chat", "ops"], Some(b"from chat\n"));
        check(&["recovery", "enable"], None);
        check(&["backup", "restore"], None);
        check(&["--json", "sync"], None);
        // A follower, stopped by SIGTERM between turns.
        env.run("bob", &["send", &room, &format!("{canary} follow")]).success();
        let mut follow = env.spawn("alice", &["--json", "sync", "--follow"]);
        follow.wait_for_match("the canary", |v| v["body"] == format!("{canary} follow").as_str(), WAIT);
        follow.signal("-TERM");
        follow.finish(WAIT).success();
        assert_nowhere(&env, &canary, "sync --follow");
        // The state database is there, private, and what the scan read.
        let db = env.profile_dir("alice").join("state.sqlite3");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&db).unwrap().permissions().mode() & 0o777, 0o600);
    }
}

/// Issue 18: a reader that stops early (`sync | grep -m1`) resumes with
/// `sync --after-cursor` and the cursor of the last record it read: the
/// rest comes again, in order; a later plain `sync` repeats none of it.
#[test]
fn a_reader_that_stops_early_resumes_from_its_cursor() {
    let (env, _alice, _bob, room) = TestEnv::alice_and_bob(&[]);
    env.run("bob", &["sync"]).success();
    let texts = ["one", "two", "three", "four"];
    for t in texts {
        env.run("alice", &["send", &room, t]).success();
    }
    let head = env
        .run_with(
            wrapped(&env, "bob", &["--json", "sync"], "bash", &["-c", r#""$0" "$@" | grep -m1 '"body":"one"'"#]),
            None,
        )
        .success();
    let first: Value = serde_json::from_str(head.stdout.trim()).unwrap_or_else(|_| panic!("{}", head.stdout));
    assert_eq!(first["body"], "one");
    let cursor = first["cursor"].as_str().unwrap_or_else(|| panic!("a cursor: {first}"));
    // From the cursor, the rest, in order, each with its own cursor: those
    // written into the pipe before grep left (delivered: the writes went
    // through), and those the closed pipe refused (still undelivered).
    let resumed = env.run("bob", &["--json", "sync", "--after-cursor", cursor]).success();
    assert_eq!(bodies(&resumed.json()), ["two", "three", "four"], "{}", resumed.stdout);
    // Now all are delivered: a plain sync has none of them.
    let plain = env.run("bob", &["--json", "sync"]).success();
    assert!(bodies(&plain.json()).is_empty(), "{}", plain.stdout);
    let cursors: Vec<String> =
        resumed.records("message").iter().map(|m| m["cursor"].as_str().unwrap().to_owned()).collect();
    assert!(cursors.iter().all(|c| c != cursor) && cursors.windows(2).all(|w| w[0] != w[1]), "{cursors:?}");
    // The same resume works twice (nothing consumed), and the last cursor
    // resumes with nothing before what is new.
    let again = env.run("bob", &["--json", "sync", "--after-cursor", cursor]).success();
    assert_eq!(bodies(&again.json()), ["two", "three", "four"]);
    env.run("alice", &["send", &room, "five"]).success();
    let last = env.run("bob", &["--json", "sync", "--after-cursor", &cursors[2]]).success();
    assert_eq!(bodies(&last.json()), ["five"], "{}", last.stdout);
    // A cursor that is not this profile's is bad input (exit 2).
    let bad = env.run("bob", &["sync", "--after-cursor", "deadbeef-1"]).code(2);
    assert!(bad.stderr.contains("not a cursor of this profile"), "{}", bad.stderr);
    let other = env.run("alice", &["--json", "sync"]).success();
    let foreign = other.json().iter().find_map(|v| v["cursor"].as_str().map(str::to_owned));
    if let Some(foreign) = foreign {
        env.run("bob", &["sync", "--after-cursor", &foreign]).code(2);
    }
}

/// SIGKILL at each step of a one-shot sync (RATCHET_KILL_AT, debug builds)
/// loses no record and prints none twice: what the killed run printed and
/// what the next `sync` prints hold each message exactly once. The one
/// window left is matrix-sdk's: between its commit of the sync position
/// (inside `sync_once`) and ratchet's capture, with no request in
/// between. A kill there loses that sync's records from `sync` (the
/// messages are still in the room: `messages` shows them).
#[test]
fn sigkill_at_each_step_of_a_sync_loses_nothing_and_repeats_nothing() {
    let (env, _alice, _bob, room) = TestEnv::alice_and_bob(&[]);
    env.run("bob", &["sync"]).success();
    for step in ["kept", "enriched", "recovered", "delivered_chunk"] {
        let sent: Vec<String> = (1..=3).map(|i| format!("{step} {i}")).collect();
        for text in &sent {
            env.run("alice", &["send", &room, text]).success();
        }
        let mut killed = env.command("bob", &["--json", "sync"]);
        killed.env("RATCHET_KILL_AT", step);
        let killed = env.run_with(killed, None);
        assert_eq!(killed.code, -1, "killed at {step}: {}", killed.stderr);
        let next = env.run("bob", &["--json", "sync"]).success();
        let mut seen = bodies(&killed.json());
        seen.extend(bodies(&next.json()));
        seen.retain(|b| b.starts_with(step));
        assert_eq!(seen, sent, "killed at {step}: each message once, in order\n{}\n{}", killed.stdout, next.stdout);
    }
    // The window (see above), shown: the records of that sync are not
    // delivered, the messages are in the room.
    env.run("alice", &["send", &room, "in the window"]).success();
    let mut killed = env.command("bob", &["--json", "sync"]);
    killed.env("RATCHET_KILL_AT", "synced");
    assert_eq!(env.run_with(killed, None).code, -1);
    let next = env.run("bob", &["--json", "sync"]).success();
    assert!(!bodies(&next.json()).contains(&"in the window".to_owned()), "{}", next.stdout);
    let history = env.run("bob", &["--json", "messages", &room]).success();
    assert!(bodies(&history.json()).contains(&"in the window".to_owned()), "{}", history.stdout);
}

/// A follower killed in the middle of a turn, after the sync's records
/// were kept: the next `sync` prints them.
#[test]
fn a_follower_killed_mid_turn_loses_nothing() {
    let (env, _alice, _bob, room) = TestEnv::alice_and_bob(&[]);
    env.run("bob", &["sync"]).success();
    env.run("alice", &["send", &room, "while following"]).success();
    let mut cmd = env.command("bob", &["--json", "sync", "--follow"]);
    cmd.env("RATCHET_KILL_AT", "kept");
    let killed = env.run_with(cmd, None);
    assert_eq!(killed.code, -1, "{}", killed.stderr);
    let next = env.run("bob", &["--json", "sync"]).success();
    let mut seen = bodies(&killed.json());
    seen.extend(bodies(&next.json()));
    assert_eq!(seen, ["while following"], "{}", next.stdout);
}

/// Issue 18, item 4: `chat` is a view. While it runs, a message arrives in
/// its room; chat shows it, and the next `sync` prints it too, once.
#[test]
fn chat_is_a_view_and_sync_still_delivers_what_it_showed() {
    let (env, _alice, _bob, room) = TestEnv::alice_and_bob(&["--name", "ops"]);
    env.run("bob", &["sync"]).success();
    let mut chat = env.spawn("bob", &["--json", "chat", "ops"]);
    chat.wait_for_stderr("Chatting in", WAIT);
    env.run("alice", &["send", &room, "seen by chat"]).success();
    let shown = chat.wait_for_match("the message", |v| v["body"] == "seen by chat", WAIT);
    assert!(shown["cursor"].is_string(), "chat's records carry cursors: {shown}");
    chat.signal("-TERM");
    chat.finish(WAIT).success();
    let synced = env.run("bob", &["--json", "sync"]).success();
    assert_eq!(bodies(&synced.json()), ["seen by chat"], "{}", synced.stdout);
    let again = env.run("bob", &["--json", "sync"]).success();
    assert!(bodies(&again.json()).is_empty(), "{}", again.stdout);
}

/// A damaged database refuses to run the rules it holds: exit 1 naming
/// the file, nothing sent. Moved aside, ratchet starts a new one and reads
/// the rules as strictest (the Megolm session rotates: record_damaged).
#[test]
fn a_damaged_state_database_is_refused_naming_the_file() {
    let (env, _alice, _bob, room) = TestEnv::alice_and_bob(&[]);
    env.run("alice", &["send", &room, "before"]).success();
    let db = env.profile_dir("alice").join("state.sqlite3");
    std::fs::write(&db, b"not a database at all; ".repeat(400)).unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let refused = env.run("alice", &["--json", "send", &room, "must not go"]).code(1);
    let error: Value = serde_json::from_str(refused.stderr.lines().last().unwrap()).unwrap();
    assert!(error["message"].as_str().unwrap().contains("state.sqlite3"), "{error}");
    let at_bob = env.run("bob", &["--json", "messages", &room]).success();
    assert!(!bodies(&at_bob.json()).contains(&"must not go".to_owned()));
    std::fs::rename(&db, env.profile_dir("alice").join("state.sqlite3.damaged")).unwrap();
    let sent = env.run("alice", &["--json", "send", &room, "after"]).success();
    assert!(sent.stderr.contains("was missing"), "{}", sent.stderr);
    assert_eq!(sent.records("sent")[0]["rotation"], "record_damaged", "{}", sent.stdout);
}

/// A profile in the layout before the database (inbox.jsonl, sent.jsonl,
/// positions.jsonl, megolm.json, olm.json) is migrated at its first
/// command: the inbox's records are delivered by the next `sync`, the send
/// journal still makes a rerun idempotent, and the old files are gone.
#[test]
fn the_old_files_are_migrated_once() {
    let (env, alice, _bob, room) = TestEnv::alice_and_bob(&[]);
    let dir = env.profile_dir("bob");
    let device = env.run("bob", &["--json", "whoami"]).success().json()[0]["device_id"].as_str().unwrap().to_owned();
    // The files as the previous ratchet wrote them.
    for f in ["state.sqlite3", "state.sqlite3-wal", "state.sqlite3-shm"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    let old = json!({"type": "message", "room_id": room, "event_id": "$old", "sender": alice.user_id,
                     "body": "kept by the old inbox"});
    let line = json!({"json": old.to_string(), "human": "kept by the old inbox"});
    std::fs::write(dir.join("inbox.jsonl"), format!("{line}\n{{\"torn\":")).unwrap();
    let entry = json!({"device_id": device, "room_id": room, "txn_id": "old-1",
                       "text_sha256": sha256_hex("old text"), "event_id": "$already",
                       "session_id": null, "message_index": null});
    std::fs::write(dir.join("sent.jsonl"), format!("{entry}\n")).unwrap();
    std::fs::write(dir.join("positions.jsonl"), "").unwrap();
    std::fs::write(dir.join("megolm.json"), r#"{"rooms":{},"strictest":{}}"#).unwrap();
    std::fs::write(dir.join("olm.json"), r#"{"created":{},"last_received":{},"key_requests":{}}"#).unwrap();

    let synced = env.run("bob", &["--json", "sync"]).success();
    assert!(!synced.stderr.contains("was missing"), "the ledgers were migrated: {}", synced.stderr);
    assert_eq!(bodies(&synced.json()).first().map(String::as_str), Some("kept by the old inbox"), "{}", synced.stdout);
    for f in ["inbox.jsonl", "sent.jsonl", "positions.jsonl", "megolm.json", "olm.json"] {
        assert!(!dir.join(f).exists(), "{f} is gone once migrated");
    }
    let rerun = env.run("bob", &["--json", "send", &room, "--txn-prefix", "old", "old text"]).success();
    let sent = &rerun.records("sent")[0];
    assert_eq!((sent["already_sent"].as_bool(), sent["event_id"].as_str()), (Some(true), Some("$already")), "{sent}");
    let again = env.run("bob", &["--json", "sync"]).success();
    assert!(!bodies(&again.json()).contains(&"kept by the old inbox".to_owned()));
}

fn sha256_hex(text: &str) -> String {
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .expect("sha256sum runs");
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_owned()
}
