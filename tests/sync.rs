//! sync: one incremental sync that returns at once, and --follow, which
//! streams until interrupted and exits 0 with the store intact.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{register, TestEnv};

#[test]
fn sync_prints_what_arrived_and_then_nothing_new() {
    let (env, _alice, _bob, room) = TestEnv::alice_and_bob(&[]);
    env.run("bob", &["sync"]).success();
    let sent = env.run("alice", &["--json", "send", &room, "ping", "pong"]).success().records("sent");

    let run = env.run("bob", &["--json", "sync"]).success();
    let msgs = run.records("message");
    assert_eq!(msgs.len(), 2, "{}", run.stdout);
    assert_eq!(msgs[0]["body"], "ping");
    for (got, sent) in msgs.iter().zip(&sent) {
        assert_eq!(got["event_id"], sent["event_id"]);
        assert_eq!(got["session_id"], sent["session_id"]);
        // Issue 14, item 4: the index read from the ciphertext, as in
        // `messages` (the SDK keeps no ciphertext of a sync event).
        assert_eq!(got["message_index"], sent["message_index"], "{got}");
        assert!(got["message_index"].is_u64(), "{got}");
    }
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
    let (env, _alice, _bob, room) = TestEnv::alice_and_bob(&[]);
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

/// `sync --follow --json` running in the background, its stdout lines read
/// on a thread.
struct Follower {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<Value>,
}

/// The follower's warm-path socket, once it is there (at most 30 s).
fn wait_for_socket(env: &TestEnv, profile: &str) -> std::path::PathBuf {
    let socket = env.profile_dir(profile).join("send.sock");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "the follower made no {}", socket.display());
        std::thread::sleep(Duration::from_millis(50));
    }
    socket
}

/// `agent` for `profile` (with ratchet's debug lines on its stderr), once
/// it answers on its socket.
fn start_agent(env: &TestEnv, profile: &str) -> crate::common::Background {
    let mut agent = env.spawn(profile, &["--json", "-vv", "agent"]);
    agent.wait_for_stderr("Agent running", Duration::from_secs(30));
    let socket = wait_for_socket(env, profile);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < deadline, "the agent does not answer on {}", socket.display());
        std::thread::sleep(Duration::from_millis(50));
    }
    agent
}

impl Follower {
    fn start(env: &TestEnv, profile: &str) -> Follower {
        let mut cmd = env.command(profile, &["--json", "sync", "--follow"]);
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        assert!(line.contains("Following"), "{line}");
        // stderr is closed from here on, on purpose: ratchet's later status
        // lines ("Stopped.") must not turn into a panic on a closed pipe.
        drop(stderr);
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in stdout.lines().map_while(Result::ok) {
                if tx.send(serde_json::from_str::<Value>(&l).unwrap()).is_err() {
                    break;
                }
            }
        });
        Follower { child, lines }
    }

    /// Waits (at most 60 s) for a record matching `pred`.
    fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(v) if pred(&v) => return v,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("no {what} within 60 s");
    }

    /// Every record until one matches `pred` (at most 120 s).
    fn collect_until(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    let done = pred(&v);
                    seen.push(v);
                    if done {
                        return seen;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no {what} within 120 s; got {seen:#?}");
    }

    fn stop(self) {
        self.stop_with("-INT");
    }

    fn stop_with(mut self, signal: &str) {
        let pid = self.child.id().to_string();
        std::process::Command::new("kill").args([signal, &pid]).status().unwrap();
        assert_eq!(self.child.wait().unwrap().code(), Some(0));
    }
}

#[test]
fn follow_delivers_late_decryptions_and_reports_rotations() {
    use crate::common::peer::NioPeer;
    let env = TestEnv::new();
    let (alice, bob, nina) = (register("alice"), register("bob"), register("nina"));
    env.login_all_devices("alice", &alice);
    env.login_all_devices("bob", &bob);
    let nio = NioPeer::login(&env, &nina);
    let room = env.encrypted_room("alice", &[("bob", &bob)], &["--invite", &nina.user_id]);
    nio.join(&env, &room);
    env.run("bob", &["sync"]).success();

    let follower = Follower::start(&env, "bob");
    // A message whose key comes two seconds after it.
    let sent = nio.run(&env, &["send-late", &room, "the key comes later", "2"]).success();
    let event_id = sent.records("sent")[0]["event_id"].clone();
    let utd = follower.wait_for("utd", |v| v["type"] == "utd" && v["event_id"] == event_id);
    assert_eq!(utd["reason"], "missing_megolm_session");
    // Issue 28: once its key comes, the full message, naming the utd.
    let late = follower.wait_for("the late message", |v| v["type"] == "message" && v["event_id"] == event_id);
    assert_eq!(late["body"], "the key comes later");
    assert_eq!(late["replaces"], utd["cursor"], "{late}");
    assert!(late["waited_ms"].as_u64().unwrap() >= 1000, "{late}");

    // A rotation by alice, seen from bob's side.
    let first = env.run("alice", &["--json", "send", &room, "a"]).success().records("sent");
    follower.wait_for("alice's first message", |v| v["type"] == "message" && v["body"] == "a");
    env.run("alice", &["rotate", &room]).success();
    let second = env.run("alice", &["--json", "send", &room, "b"]).success().records("sent");
    let seen = follower.wait_for("rotation_seen", |v| v["type"] == "rotation_seen");
    assert_eq!(seen["sender"], alice.user_id.as_str());
    assert_eq!(seen["old_session_id"], first[0]["session_id"]);
    assert_eq!(seen["new_session_id"], second[0]["session_id"]);
    follower.stop();
}

/// Issue 14, item 2: `sync` prints every event exactly once, whatever other
/// commands synced in between (they keep what they received for it).
#[test]
fn sync_prints_what_other_commands_received_exactly_once() {
    let (env, _alice, _bob, room) = TestEnv::alice_and_bob(&[]);
    env.run("bob", &["sync"]).success();
    for (i, between) in
        [vec!["room", "list"], vec!["send", &room, "bob talks"], vec!["messages", &room]].into_iter().enumerate()
    {
        let text = format!("alice {i}");
        let sent = env.run("alice", &["--json", "send", &room, &text]).success().records("sent");
        let mut args = vec!["--json"];
        args.extend(between.iter().copied());
        env.run("bob", &args).success();
        let sync = env.run("bob", &["--json", "sync"]).success();
        let seen: Vec<_> =
            sync.records("message").into_iter().filter(|m| m["event_id"] == sent[0]["event_id"]).collect();
        assert_eq!(seen.len(), 1, "after `{}`, sync shows alice's message once: {}", between.join(" "), sync.stdout);
        assert_eq!(seen[0]["body"], text.as_str());
        assert_eq!(seen[0]["message_index"], sent[0]["message_index"], "kept with its index: {}", seen[0]);
        let again = env.run("bob", &["--json", "sync"]).success();
        assert!(
            again.records("message").iter().all(|m| m["event_id"] != sent[0]["event_id"]),
            "a second sync does not repeat it: {}",
            again.stdout
        );
    }
}

/// Issue 14, item 4: every human line of the stream names its room.
#[test]
fn human_sync_lines_name_their_room() {
    let (env, _alice, _bob, room) = TestEnv::alice_and_bob(&["--name", "ops"]);
    env.run("bob", &["sync"]).success();
    env.run("alice", &["send", &room, "which room?"]).success();
    let human = env.run("bob", &["sync"]).success();
    let line = human.stdout.lines().find(|l| l.contains("which room?")).unwrap_or_else(|| panic!("{}", human.stdout));
    assert!(line.starts_with("[ops] "), "{line}");
}

/// Issue 14, item 3: while `sync --follow` runs, every other command on the
/// same profile works — 20 sends, a rotation, an unwedge (R9–R11), reads —
/// and the follower prints each incoming event once. Only one process
/// syncs at a time, so no to-device event is decrypted twice: no Olm
/// message is undecryptable at either side (a false wedge would show as a
/// `to_device` record with a `utd_reason`, then a `recovery`).
#[test]
fn follow_while_the_same_profile_sends_rotates_and_unwedges() {
    let env = TestEnv::new();
    let (alice, bob) = (register("alice"), register("bob"));
    let alice_device = env.login("alice", &alice)["device_id"].as_str().unwrap().to_owned();
    env.login("bob", &bob);
    let room = env.encrypted_room("alice", &[("bob", &bob)], &[]);
    let follower = Follower::start(&env, "bob");
    // A follower that held the profile would make each of these wait out
    // the lock timeout and fail.
    let bob_cmd = |args: &[&str]| {
        let mut all = vec!["--lock-timeout", "20"];
        all.extend_from_slice(args);
        env.run("bob", &all).success()
    };
    let mut bob_sent = Vec::new();
    for i in 0..20 {
        let body = format!("from bob {i}");
        bob_sent.push(bob_cmd(&["--json", "send", &room, &body]).records("sent").remove(0));
        if i % 5 == 0 {
            env.run("alice", &["send", &room, &format!("from alice {i}")]).success();
        }
        match i {
            7 => drop(bob_cmd(&["rotate", &room])),
            11 => drop(bob_cmd(&["unwedge", &alice.user_id, &alice_device])),
            13 => drop(bob_cmd(&["sessions", &room])),
            17 => drop(bob_cmd(&["messages", &room, "--limit", "3"])),
            _ => {}
        }
    }
    env.run("alice", &["send", &room, "last from alice"]).success();
    let seen =
        follower.collect_until("alice's last message", |v| v["type"] == "message" && v["body"] == "last from alice");
    // One more event after it, so that a duplicate delivered late would show.
    env.run("alice", &["send", &room, "sentinel"]).success();
    let mut seen = seen;
    seen.extend(follower.collect_until("the sentinel", |v| v["type"] == "message" && v["body"] == "sentinel"));
    follower.stop();

    let bodies: Vec<&str> =
        seen.iter().filter(|v| v["type"] == "message").map(|v| v["body"].as_str().unwrap()).collect();
    let mut expected: Vec<String> = (0..20).map(|i| format!("from bob {i}")).collect();
    expected.extend([0, 5, 10, 15].map(|i| format!("from alice {i}")));
    expected.extend(["last from alice".to_owned(), "sentinel".to_owned()]);
    for body in &expected {
        let n = bodies.iter().filter(|b| **b == body.as_str()).count();
        assert_eq!(n, 1, "{body:?} printed {n} times by the follower: {bodies:?}");
    }
    assert_eq!(bodies.len(), expected.len(), "{bodies:?}");
    // Item 4: each carries its Megolm position, as `messages` would show it.
    for sent in &bob_sent {
        let printed = seen.iter().find(|v| v["event_id"] == sent["event_id"]).unwrap();
        assert_eq!((&printed["session_id"], &printed["message_index"]), (&sent["session_id"], &sent["message_index"]));
    }
    assert!(seen.iter().filter(|v| v["type"] == "message").all(|v| v["message_index"].is_u64()), "{seen:#?}");
    let utd: Vec<&Value> = seen.iter().filter(|v| v["type"] == "utd").collect();
    assert!(utd.is_empty(), "{utd:#?}");
    let olm_failures: Vec<&Value> = seen
        .iter()
        .filter(|v| v["type"] == "to_device" && !v["utd_reason"].is_null() || v["type"] == "recovery")
        .collect();
    assert!(olm_failures.is_empty(), "a false wedge at the follower: {olm_failures:#?}");

    // alice's side: every Olm message decrypted (the unwedging m.dummy
    // among them), and all 20 of bob's messages read.
    let at_alice = env.run("alice", &["--json", "sync"]).success();
    let failed: Vec<Value> = at_alice.records("to_device").into_iter().filter(|v| !v["utd_reason"].is_null()).collect();
    assert!(failed.is_empty(), "{failed:#?}");
    let read = env.run("alice", &["--json", "messages", &room, "--limit", "60"]).success();
    assert!(read.records("utd").is_empty(), "{}", read.stdout);
    let got: Vec<Value> = read.records("message").into_iter().map(|m| m["event_id"].clone()).collect();
    for sent in &bob_sent {
        assert!(got.contains(&sent["event_id"]), "alice did not read {}", sent["event_id"]);
    }
}

/// A follower rebuilds its client after each turn another process had:
/// the old client (its stores, their SQLite connections, the tasks the SDK
/// parked at restore) must go with it, or a long-running follower beside a
/// busy script runs out of file descriptors. Linux only (`/proc`).
#[test]
fn a_follower_leaks_nothing_across_other_commands() {
    let env = TestEnv::new();
    let bob = register("bob");
    env.login("bob", &bob);
    let room =
        env.run("bob", &["--json", "room", "create"]).success().json()[0]["room_id"].as_str().unwrap().to_owned();
    let follower = Follower::start(&env, "bob");
    let pid = follower.child.id();
    let count = || std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count();
    let others = |from: usize, to: usize| {
        for i in from..to {
            let body = format!("note {i}");
            // --standalone: a process of its own, which the follower's
            // next turn notices (the warm path would send from the follower).
            env.run("bob", &["send", "--standalone", &room, &body]).success();
            // Printed by the follower's next turn, after a rebuild.
            follower.wait_for(&body, |v| v["type"] == "message" && v["body"] == body.as_str());
        }
    };
    others(0, 3);
    let fds = count();
    others(3, 23);
    // A leak is about 9 files a rebuild (180 here); a connection or a
    // blocking thread's file may come and go.
    let fds_after = count();
    assert!(fds_after <= fds + 5, "open files {fds} -> {fds_after} over 20 rebuilds");
    // A plain `kill` ends it as Ctrl-C does: between turns, exit 0.
    follower.stop_with("-TERM");
}

/// Issue 22, the warm path: while `sync --follow` runs, `send ROOM TEXT…`
/// from another process is handed to the follower over `send.sock` (0600)
/// and sent by its client; the asking process prints the same records,
/// warnings and error, and exits with the same code, as a standalone send.
/// The peer decrypting each message is the proof it went out right.
#[test]
fn a_send_is_handed_to_the_follower_with_the_same_answers() {
    use std::os::unix::fs::PermissionsExt;
    let (env, _alice, _bob, room) = TestEnv::alice_and_bob(&[]);
    let follower = Follower::start(&env, "bob");
    let socket = wait_for_socket(&env, "bob");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "send.sock is {mode:o}");

    // -v says which path a send took (a debug line; nothing else differs).
    let warm = env.run("bob", &["--json", "-v", "send", &room, "warm one", "", "warm two"]).success();
    assert!(warm.stderr.contains("warm path"), "not handed over: {}", warm.stderr);
    let sent = warm.records("sent");
    assert_eq!(sent.len(), 2, "{}", warm.stdout);
    assert_eq!(sent.iter().map(|s| s["seq"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 3]);
    assert_eq!(sent[0]["session_id"], sent[1]["session_id"]);
    assert_eq!(sent[1]["message_index"].as_u64().unwrap(), sent[0]["message_index"].as_u64().unwrap() + 1);
    // The blank argument's warning came back to the asking process's stderr.
    assert!(warm.stderr.contains(r#""message":"argument 2 is empty; skipped""#), "{}", warm.stderr);
    let cold = env.run("bob", &["--json", "-v", "send", "--standalone", &room, "cold one"]).success();
    assert!(!cold.stderr.contains("warm path"), "{}", cold.stderr);
    let cold_sent = &cold.records("sent")[0];
    assert_eq!(cold_sent["session_id"], sent[0]["session_id"]);
    assert_eq!(cold_sent["message_index"].as_u64().unwrap(), sent[1]["message_index"].as_u64().unwrap() + 1);

    // Failures: the same error line and exit code either way.
    for args in [
        vec!["--json", "send", "!nowhere:localhost", "x"],
        vec!["--json", "send", &room, "", " "],
        vec!["--json", "send", "--txn-prefix", "p", &room, "first"],
        vec!["--json", "send", "--txn-prefix", "p", &room, "other text"],
    ] {
        let warm = env.run("bob", &args);
        let mut standalone = args.clone();
        standalone.insert(2, "--standalone");
        let cold = env.run("bob", &standalone);
        assert_eq!(warm.code, cold.code, "{args:?}: {} vs {}", warm.stderr, cold.stderr);
        // The whole error record: kind, exit code, message, causes, hints.
        let errors = |run: &crate::common::Run| -> Vec<Value> {
            run.stderr
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|v| v["type"] == "error")
                .collect()
        };
        if args.last() == Some(&"first") {
            // The same batch twice: the standalone run finds it delivered.
            assert_eq!(cold.records("sent")[0]["already_sent"], true, "{}", cold.stdout);
        } else {
            assert_ne!(warm.code, 0, "{args:?}");
            assert_eq!(errors(&warm), errors(&cold), "{args:?}");
            assert_eq!(errors(&warm).len(), 1, "{}", warm.stderr);
        }
    }

    // Another isolation mode than the follower's: declined, sent from the
    // asking process instead (and still delivered).
    let other = env.run("bob", &["--json", "-v", "--isolation", "all-devices", "send", &room, "declined"]).success();
    assert!(other.stderr.contains("declined"), "{}", other.stderr);
    assert_eq!(other.records("sent").len(), 1);

    // Printed once each by the follower, and decrypted by alice.
    follower.collect_until("the declined one", |v| v["type"] == "message" && v["body"] == "declined");
    let read = env.run("alice", &["--json", "messages", &room, "--limit", "10"]).success();
    assert!(read.records("utd").is_empty(), "{}", read.stdout);
    let bodies: Vec<String> = read.records("message").iter().map(|m| m["body"].as_str().unwrap().to_owned()).collect();
    for body in ["warm one", "warm two", "cold one", "first", "declined"] {
        assert_eq!(bodies.iter().filter(|b| *b == body).count(), 1, "{body}: {bodies:?}");
    }

    // A follower killed leaves its socket behind: sends go on without it.
    let mut follower = follower;
    follower.child.kill().unwrap();
    follower.child.wait().unwrap();
    assert!(socket.exists());
    let after = env.run("bob", &["--json", "-v", "send", &room, "after the kill"]).success();
    assert!(!after.stderr.contains("warm path"), "{}", after.stderr);
    assert_eq!(after.records("sent").len(), 1);
    // The next one takes the socket over: `agent`, which prints nothing it
    // receives and consumes nothing.
    env.run("bob", &["sync"]).success();
    let mut agent = env.spawn("bob", &["--json", "agent"]);
    agent.wait_for_stderr("Agent running", Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < deadline, "the agent does not answer on {}", socket.display());
        std::thread::sleep(Duration::from_millis(50));
    }
    let again = env.run("bob", &["--json", "-v", "send", &room, "warm again"]).success();
    assert!(again.stderr.contains("warm path"), "{}", again.stderr);
    env.run("alice", &["send", &room, "to the agent"]).success();
    std::thread::sleep(Duration::from_secs(2));
    agent.signal("-INT");
    let stopped = agent.finish(Duration::from_secs(30));
    assert_eq!(stopped.code, 0, "{}", stopped.stderr);
    assert!(stopped.stdout.is_empty(), "the agent printed: {}", stopped.stdout);
    assert!(!socket.exists(), "an agent that stopped left its socket");
    let bodies = |run: crate::common::Run| -> Vec<String> {
        run.records("message").iter().map(|m| m["body"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(bodies(env.run("bob", &["--json", "sync"]).success()), ["warm again", "to the agent"]);
}

/// The warm path's hand-over, against followers that misbehave (a stand-in
/// listening on `send.sock`): one that never answers is passed over after a
/// while and the send goes out from the asking process, once; one that
/// takes the messages and dies before answering is a failed send (exit 1),
/// never a silent success or a second send from the asking process.
#[test]
fn a_follower_that_does_not_answer_is_passed_over_and_one_that_dies_fails_the_send() {
    use std::io::{BufRead, Write};
    use std::os::unix::net::UnixListener;
    let (env, _alice, _bob, room) = TestEnv::alice_and_bob(&[]);
    let socket = env.profile_dir("bob").join("send.sock");

    // Silent: reads the request, says nothing.
    let listener = UnixListener::bind(&socket).unwrap();
    let silent = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut request = String::new();
        BufReader::new(&conn).read_line(&mut request).unwrap();
        // Held open until the asking process hangs up.
        let mut rest = String::new();
        let _ = BufReader::new(&conn).read_line(&mut rest);
        (request, rest)
    });
    let started = Instant::now();
    let run = env.run("bob", &["--json", "-v", "send", &room, "passed over"]).success();
    let (request, rest) = silent.join().unwrap();
    assert!(request.contains("passed over"), "{request}");
    assert!(rest.is_empty(), "the asking process said more than its request: {rest}");
    assert!(started.elapsed() >= Duration::from_secs(10), "it did not wait for the follower");
    assert!(run.stderr.contains("did not take the messages"), "{}", run.stderr);
    assert_eq!(run.records("sent").len(), 1);
    std::fs::remove_file(&socket).unwrap();

    // Dies after `accepted` and the go-ahead.
    let listener = UnixListener::bind(&socket).unwrap();
    let dying = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        conn.write_all(b"{\"r\":\"accepted\"}\n").unwrap();
        line.clear();
        reader.read_line(&mut line).unwrap();
        line
    });
    let run = env.run("bob", &["--json", "send", &room, "lost with the follower"]).code(1);
    assert_eq!(dying.join().unwrap().trim(), r#"{"r":"go"}"#);
    assert!(run.records("sent").is_empty(), "{}", run.stdout);
    assert!(run.stderr.contains("stopped before it finished"), "{}", run.stderr);
    std::fs::remove_file(&socket).unwrap();

    // alice reads "passed over" once, and nothing of the second.
    let read = env.run("alice", &["--json", "messages", &room, "--limit", "5"]).success();
    let bodies: Vec<String> = read.records("message").iter().map(|m| m["body"].as_str().unwrap().to_owned()).collect();
    assert_eq!(bodies.iter().filter(|b| *b == "passed over").count(), 1, "{bodies:?}");
    assert!(!bodies.iter().any(|b| b == "lost with the follower"), "{bodies:?}");
}

/// Issue 30: a follower stopped with SIGSTOP. The first `send` waits for it
/// (it may only be busy), says once why it sends by itself, and later sends
/// ask the stopped follower only briefly, saying nothing more; once it runs
/// again it takes the next send (the warm path), and the note is gone.
#[test]
fn a_stopped_follower_is_said_once_and_not_waited_for_again() {
    let (env, _alice, _bob, room) = TestEnv::alice_and_bob(&[]);
    let follower = Follower::start(&env, "bob");
    wait_for_socket(&env, "bob");
    let pid = follower.child.id().to_string();
    let signal = |sig: &str| {
        assert!(std::process::Command::new("kill").args([sig, &pid]).status().unwrap().success());
    };
    // Stopped between turns: a turn holds the profile, and a turn stopped
    // would hold it for good (the test is of a follower that is not in
    // the way, only unanswering). Its periodic turn may be under way.
    let lock = env.profile_dir("bob").join("lock");
    let free = || std::fs::File::open(&lock).unwrap().try_lock().is_ok();
    for _ in 0..100 {
        signal("-STOP");
        if free() {
            break;
        }
        signal("-CONT");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(free(), "the follower was stopped between turns");
    let first = env.run("bob", &["--json", "-vv", "send", &room, "one"]).success();
    assert_eq!(first.records("sent").len(), 1);
    let said = |run: &crate::common::Run| {
        run.stderr.lines().filter(|l| l.contains(r#""type":"status""#) && l.contains("did not take")).count()
    };
    assert_eq!(said(&first), 1, "said once, as a status record: {}", first.stderr);
    let note = env.profile_dir("bob").join("send.sock.passed");
    assert!(note.exists(), "the follower is noted as passed over");
    for text in ["two", "three"] {
        let later = env.run("bob", &["--json", "-vv", "send", &room, text]).success();
        assert_eq!(later.records("sent").len(), 1);
        assert_eq!(said(&later), 0, "not said again: {}", later.stderr);
        assert!(later.stderr.contains("passed over before did not answer at once"), "asked briefly: {}", later.stderr);
    }
    signal("-CONT");
    // Running again: it takes the send within the brief wait (between
    // turns it answers at once); a turn under way may make one more send
    // go its own way, so a few tries are allowed.
    let mut warm = false;
    for i in 0..5 {
        let run = env.run("bob", &["--json", "-v", "send", &room, &format!("after {i}")]).success();
        if run.stderr.contains("warm path") {
            warm = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(warm, "the follower took no send once running again");
    assert!(!note.exists(), "the note is gone once it answers");
    let got = env.run("alice", &["--json", "messages", &room, "--limit", "10"]).success();
    let records = got.records("message");
    let bodies: Vec<&str> = records.iter().filter_map(|m| m["body"].as_str()).collect();
    for text in ["one", "two", "three"] {
        assert_eq!(bodies.iter().filter(|b| **b == text).count(), 1, "{text} once: {bodies:?}");
    }
    follower.stop();
}

/// Issue 30, item 6: a human `sync` after a join gives no line to the
/// room's furniture (creation, power levels, join rules), which stays in
/// the JSON stream; membership and encryption still have their lines.
#[test]
fn a_human_sync_leaves_out_the_room_s_furniture() {
    let env = TestEnv::new();
    let (alice, bob) = (register("alice"), register("bob"));
    env.login("alice", &alice);
    env.login("bob", &bob);
    let room = env.encrypted_room("alice", &[], &["--invite", &bob.user_id]);
    env.run("bob", &["room", "join", &room]).success();
    // The same stream twice: human, then JSON from the cursor before it.
    let human = env.run("bob", &["sync"]).success();
    assert!(!human.stdout.contains("m.room.power_levels"), "{}", human.stdout);
    assert!(!human.stdout.contains("m.room.create"), "{}", human.stdout);
    assert!(human.stdout.contains("m.room.member"), "memberships keep their lines: {}", human.stdout);
    assert!(human.stdout.contains("m.room.encryption"), "{}", human.stdout);
    // Off a terminal it names the cursor before what it delivered.
    let cursor = human
        .stderr
        .split("delivered after cursor ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("{}", human.stderr))
        .trim()
        .to_owned();
    let json = env.run("bob", &["--json", "sync", "--after-cursor", &cursor]).success();
    let types: Vec<String> =
        json.records("event").iter().filter_map(|e| e["event_type"].as_str().map(str::to_owned)).collect();
    assert!(types.iter().any(|t| t == "m.room.power_levels"), "kept in the JSON stream: {types:?}");
}

/// Issue 30's review: on the warm path, what the follower's context says
/// while serving a request (here the backup upload after the send finding
/// the backup deleted) reaches the process that asked, not the follower's
/// own stderr.
#[test]
fn a_warm_send_s_backup_warning_reaches_the_asking_process() {
    let (env, _alice, _bob, _room) = TestEnv::alice_and_bob(&[]);
    env.run("bob", &["recovery", "enable"]).success();
    let room = env.encrypted_room("bob", &[], &["--rotation-msgs", "1"]);
    env.run("bob", &["send", &room, "backed up"]).success();
    let (_, info) = crate::common::api("GET", &env.token("bob"), "/_matrix/client/v3/room_keys/version", None);
    let version = info["version"].as_str().expect("a backup").to_owned();
    let follower = Follower::start(&env, "bob");
    wait_for_socket(&env, "bob");
    let (status, _) = crate::common::api(
        "DELETE",
        &env.token("bob"),
        &format!("/_matrix/client/v3/room_keys/version/{version}"),
        None,
    );
    assert_eq!(status, 200);
    let warm = env.run("bob", &["--json", "-v", "send", &room, "after the deletion"]).success();
    assert!(warm.stderr.contains("warm path"), "not handed over: {}", warm.stderr);
    assert_eq!(warm.records("sent").len(), 1);
    let warned: Vec<&str> = warm.stderr.lines().filter(|l| l.contains(r#""type":"warning""#)).collect();
    assert_eq!(warned.len(), 1, "{}", warm.stderr);
    assert!(warned[0].contains(&format!("version {version} was deleted")), "{}", warned[0]);
    follower.stop();
}

/// Issue 33: while an agent runs, a one-shot `sync` delivers what the
/// agent kept, with no client and no request of its own, and says how long
/// ago the agent last synced. It takes the profile without counting a
/// turn, so the agent goes on with its client; `sync --standalone` syncs
/// itself, and the agent then rebuilds its client (once: the check that
/// the warm ones did not make it rebuild).
#[test]
fn a_one_shot_sync_delivers_what_the_agent_kept_and_the_agent_stays_warm() {
    let (env, _alice, _bob, room) = TestEnv::alice_and_bob(&[]);
    env.run("bob", &["sync"]).success();
    let agent = start_agent(&env, "bob");
    // Each text is delivered by warm one-shot syncs once the agent kept it
    // (its long poll returns with it): a turn of the agent's in between.
    let delivered_warm = |text: &str| {
        env.run("alice", &["send", &room, text]).success();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let run = env.run("bob", &["--json", "-vv", "sync"]).success();
            assert!(run.stderr.contains("warm path"), "{}", run.stderr);
            let summary = run.records("sync").remove(0);
            assert!(summary["follower_synced_ms_ago"].as_u64().is_some_and(|ms| ms < 60_000), "{summary}");
            if run.records("message").iter().any(|m| m["body"] == text) {
                return;
            }
            assert!(Instant::now() < deadline, "`{text}` was never delivered");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    delivered_warm("kept by the agent");
    delivered_warm("and again");
    let human = env.run("bob", &["sync"]).success();
    assert!(human.stdout.contains("kept by this profile's agent"), "{}", human.stdout);

    let cold = env.run("bob", &["--json", "-vv", "sync", "--standalone"]).success();
    assert!(!cold.stderr.contains("warm path"), "{}", cold.stderr);
    assert!(cold.records("sync")[0]["follower_synced_ms_ago"].is_null());
    delivered_warm("after a sync of its own");
    agent.signal("-INT");
    let stopped = agent.finish(Duration::from_secs(30));
    assert_eq!(stopped.code, 0, "{}", stopped.stderr);
    let rebuilt = stopped.stderr.matches("another process had the profile").count();
    assert_eq!(rebuilt, 1, "rebuilt for the standalone sync only: {}", stopped.stderr);
}

/// Issue 33, a warm path that stays warm: with an agent running, a
/// standalone command between two warm sends no longer makes the agent
/// open its stores again (it rebuilds its client on the open ones, once
/// per other process), and the echo of the standalone send does not make
/// the next warm send wait for a turn. What the agent does after each
/// interleaved command must still be right: the Megolm message index goes
/// on from the standalone send's (R4; a stale client would use an index
/// twice), a session rotated by another process is the one used next, and
/// a member another process invited gets the key (R13). Each is proven by
/// the readers decrypting every message.
#[test]
fn the_agent_answers_right_after_other_processes_without_reopening_its_stores() {
    let (env, _alice, _bob, room) = TestEnv::alice_and_bob(&[]);
    env.run("bob", &["sync"]).success();
    let agent = start_agent(&env, "bob");
    let sent = |args: &[&str]| -> Value {
        let run = env.run("bob", args).success();
        let warm = run.stderr.contains("warm path");
        assert_eq!(warm, !args.contains(&"--standalone"), "{args:?}: {}", run.stderr);
        run.records("sent").remove(0)
    };
    let mut bodies = Vec::new();
    let mut last: Option<Value> = None;
    for round in 0..4 {
        let (cold, warm) = (format!("standalone {round}"), format!("warm {round}"));
        let c = sent(&["--json", "-v", "send", "--standalone", &room, &cold]);
        let w = sent(&["--json", "-v", "send", &room, &warm]);
        // One session, one index after the other, across both processes.
        assert_eq!(w["session_id"], c["session_id"], "{c} / {w}");
        assert_eq!(w["message_index"].as_u64().unwrap(), c["message_index"].as_u64().unwrap() + 1, "{c} / {w}");
        if let Some(last) = &last {
            assert_eq!(c["message_index"].as_u64().unwrap(), last["message_index"].as_u64().unwrap() + 1);
        }
        last = Some(w);
        bodies.extend([cold, warm]);
    }
    // Rotated by another process: the agent's next message is in the new
    // session, from index 0.
    let before = last.take().unwrap();
    env.run("bob", &["rotate", &room]).success();
    let after = sent(&["--json", "-v", "send", &room, "after the rotation"]);
    assert_ne!(after["session_id"], before["session_id"], "{after}");
    assert_eq!(after["message_index"], 0, "{after}");
    bodies.push("after the rotation".into());
    // A member another process invited (and who joined): the agent's next
    // message reaches them.
    let charlie = register("charlie");
    env.login("charlie", &charlie);
    env.run("bob", &["room", "invite", &room, &charlie.user_id]).success();
    env.run("charlie", &["room", "join", &room]).success();
    env.run("bob", &["send", &room, "for charlie too"]).success();
    bodies.push("for charlie too".into());

    for reader in ["alice", "charlie"] {
        // charlie cannot read what came before the join (exit 3 for those).
        let read = env.run(reader, &["--json", "messages", &room, "--limit", "30"]);
        assert!(read.code == 0 || (reader == "charlie" && read.code == 3), "{}", read.stderr);
        let got: Vec<String> =
            read.records("message").iter().filter_map(|m| m["body"].as_str().map(str::to_owned)).collect();
        let wanted: &[String] = if reader == "alice" { &bodies } else { &bodies[bodies.len() - 1..] };
        for body in wanted {
            assert_eq!(got.iter().filter(|b| *b == body).count(), 1, "{reader} did not read {body}: {}", read.stdout);
        }
    }
    agent.signal("-INT");
    let stopped = agent.finish(Duration::from_secs(30));
    assert_eq!(stopped.code, 0, "{}", stopped.stderr);
    // Stores opened once, at the start; every rebuild since on them.
    assert_eq!(stopped.stderr.matches("client built on newly opened stores").count(), 1, "{}", stopped.stderr);
    assert!(stopped.stderr.matches("client rebuilt on the open stores").count() >= 4, "{}", stopped.stderr);
}
