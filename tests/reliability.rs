//! Concurrency, faults and secrets at rest.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{register, TestEnv};

/// Eight processes on one profile at once, 25 messages each: the profile lock
/// serialises them, nothing is lost or duplicated, and no Megolm (session,
/// index) pair is ever used twice — checked at the receiver.
#[test]
fn concurrent_processes_on_one_profile_never_reuse_a_ratchet_state() {
    let env = TestEnv::new();
    let (alice, bob) = (register("alice"), register("bob"));
    env.login("alice", &alice);
    env.login("bob", &bob);
    let room = env.encrypted_room("alice", &[("bob", &bob)], &[]);

    let mut children = Vec::new();
    for p in 0..8 {
        let lines: String = (0..25).map(|i| format!("p{p}-m{i}\n")).collect();
        let mut child = env
            .command("alice", &["--json", "send", &room])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(lines.as_bytes()).unwrap();
        children.push(child);
    }
    let mut sent = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            sent.push(serde_json::from_str::<Value>(line).unwrap());
        }
    }
    assert_eq!(sent.len(), 200);
    let pairs: BTreeSet<(String, u64)> = sent
        .iter()
        .map(|r| (r["session_id"].as_str().unwrap().to_owned(), r["message_index"].as_u64().unwrap()))
        .collect();
    assert_eq!(pairs.len(), 200, "a (session, index) pair was reported twice");

    let got = env.run("bob", &["--json", "messages", &room, "--limit", "300"]).success().records("message");
    assert_eq!(got.len(), 200, "bob decrypts all 200");
    let bodies: BTreeSet<&str> = got.iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies.len(), 200, "no duplicates at the receiver");
    let seen: BTreeSet<(String, u64)> = got
        .iter()
        .map(|m| (m["session_id"].as_str().unwrap().to_owned(), m["message_index"].as_u64().unwrap()))
        .collect();
    assert_eq!(seen, pairs, "the receiver's (session, index) pairs are the ones reported, each once");
}

#[test]
fn a_busy_profile_waits_then_fails_clearly() {
    let env = TestEnv::new();
    let alice = register("alice");
    env.login("alice", &alice);
    let room =
        env.run("alice", &["--json", "room", "create"]).success().json()[0]["room_id"].as_str().unwrap().to_owned();
    // A batch send holds the profile while it reads its input (this one is
    // never closed until the end of the test).
    let mut holder = env
        .command("alice", &["send", &room])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let input = holder.stdin.as_mut().unwrap();
    writeln!(input, "holding").unwrap();
    input.flush().unwrap();
    // It holds the profile once the lock file names it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(env.profile_dir("alice").join("lock"))
        .unwrap_or_default()
        .starts_with(&format!("{} ", holder.id()))
    {
        assert!(Instant::now() < deadline, "the batch never took the profile");
        std::thread::sleep(Duration::from_millis(50));
    }
    let start = Instant::now();
    let run = env.run("alice", &["--lock-timeout", "2", "whoami"]).code(1);
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(2) && waited < Duration::from_secs(20), "{waited:?}");
    let line = run.error_lines()[0].clone();
    assert!(
        line.contains("in use by another ratchet process") && line.contains(&format!("pid {}", holder.id())),
        "{line}"
    );
    assert!(run.stderr.contains("--lock-timeout"), "{}", run.stderr);
    drop(holder.stdin.take());
    assert_eq!(holder.wait().unwrap().code(), Some(0));
    env.run("alice", &["--lock-timeout", "0", "whoami"]).success();
}

#[test]
fn secrets_at_rest() {
    let env = TestEnv::new();
    let (alice, bob) = (register("alice"), register("bob"));
    env.login("alice", &alice);
    let login = env.login("bob", &bob);
    let room = env.encrypted_room("alice", &[("bob", &bob)], &[]);
    let body = format!("plaintext-canary-{}", std::process::id());
    env.run("alice", &["send", &room, &body]).success();
    let read = env.run("bob", &["--json", "messages", &room]).success();
    assert!(read.stdout.contains(&body));

    // No file of either profile holds the message body in the clear: the
    // SDK's stores, ratchet's state database, anything else (issue 18:
    // tests/state.rs does this after every kind of command).
    fn walk(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, found);
            } else {
                found.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&env.data_dir(), &mut files);
    assert!(files.iter().any(|f| f.ends_with("state.sqlite3")), "{files:?}");
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        assert!(!bytes.windows(body.len()).any(|w| w == body.as_bytes()), "{} holds the plaintext", path.display());
    }
    // Nor any output: the token, password and store key are never printed.
    let token = env.token("bob");
    let key = std::fs::read_to_string(env.profile_dir("bob").join("store.key")).unwrap();
    for out in [&read.stdout, &read.stderr, &login.to_string()] {
        for secret in [token.as_str(), bob.password.as_str(), key.trim()] {
            assert!(!out.contains(secret));
        }
    }

    // Loose permissions are tightened, with a warning.
    let dir = env.profile_dir("bob");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(dir.join("session.json"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(dir.join("store.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = env.run("bob", &["whoami"]).success();
    assert_eq!(run.stderr.matches("warning:").count(), 3, "{}", run.stderr);
    let mode = |p: std::path::PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(dir.clone()), 0o700);
    assert_eq!(mode(dir.join("session.json")), 0o600);
    assert_eq!(mode(dir.join("store.key")), 0o600);

    // Without its key the store does not open: authentication needed (4).
    std::fs::write(dir.join("store.key"), "00".repeat(32)).unwrap();
    let run = env.run("bob", &["whoami"]).code(4);
    assert!(run.error_lines()[0].contains("does not open"), "{}", run.stderr);
}

fn lines(n: usize, tag: &str) -> String {
    (1..=n).map(|i| format!("{tag} line {i}\n")).collect()
}

/// Streams `ratchet --json send ROOM --txn-prefix PREFIX` fed from `input`;
/// calls `at(k)` when the k-th `sent` record arrives (k = `when`).
fn send_with_interruption(
    env: &TestEnv,
    room: &str,
    prefix: &str,
    input: String,
    when: usize,
    at: impl FnOnce(&std::process::Child),
) -> (Option<i32>, Vec<Value>, String) {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut child = env
        .command("alice", &["--json", "send", room, "--txn-prefix", prefix])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut records = Vec::new();
    let mut at = Some(at);
    let mut line = String::new();
    while stdout.read_line(&mut line).unwrap() > 0 {
        records.push(serde_json::from_str::<Value>(&line).unwrap());
        line.clear();
        if records.len() == when {
            (at.take().unwrap())(&child);
        }
    }
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let status = child.wait().unwrap();
    (status.code(), records, stderr)
}

#[test]
fn homeserver_gone_mid_batch_then_a_rerun_delivers_the_rest_exactly_once() {
    let server = crate::common::Synapse::private();
    let env = TestEnv::new();
    let (alice, bob) =
        (crate::common::register_at(&server.url, "alice"), crate::common::register_at(&server.url, "bob"));
    env.login_at("alice", &alice, &server.url);
    env.login_at("bob", &bob, &server.url);
    let room = env.encrypted_room("alice", &[("bob", &bob)], &[]);

    // 100 lines; the homeserver goes away after the 30th is delivered.
    let (code, first, stderr) = send_with_interruption(&env, &room, "batch", lines(100, "gone"), 30, |_| server.stop());
    assert_eq!(code, Some(3), "{stderr}");
    let delivered = first.len();
    assert!((30..100).contains(&delivered), "{delivered}");
    let seqs: Vec<u64> = first.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=delivered as u64).collect::<Vec<_>>(), "the records say exactly which lines went out");
    // Under --json the error is one JSON line.
    let error = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["type"] == "error")
        .unwrap_or_else(|| panic!("no JSON error: {stderr}"));
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("sent {delivered} message(s); message {} and the rest were not sent", delivered + 1)),
        "{stderr}"
    );
    assert!(stderr.contains("same --txn-prefix"), "{stderr}");

    // Back up; the same command again delivers the rest, each line once.
    server.run();
    let (code, second, stderr) = send_with_interruption(&env, &room, "batch", lines(100, "gone"), 0, |_| {});
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(second.len(), 100);
    let already = second.iter().filter(|r| r["already_sent"] == true).count();
    assert_eq!(already, delivered, "lines delivered before are not sent again");
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(a["event_id"], b["event_id"]);
    }

    let got = env.run("bob", &["--json", "messages", &room, "--limit", "300"]).success().records("message");
    let bodies: Vec<&str> = got.iter().map(|m| m["body"].as_str().unwrap()).collect();
    let expected: Vec<String> = (1..=100).map(|i| format!("gone line {i}")).collect();
    assert_eq!(bodies, expected, "every line exactly once, in order, decrypted at the receiver");
}

#[test]
fn sigkill_mid_send_leaves_a_store_that_works_and_no_reused_index() {
    let env = TestEnv::new();
    let (alice, bob) = (register("alice"), register("bob"));
    env.login("alice", &alice);
    env.login("bob", &bob);
    let room = env.encrypted_room("alice", &[("bob", &bob)], &[]);
    let (code, first, _) = send_with_interruption(&env, &room, "kill", lines(60, "killed"), 10, |child| {
        std::process::Command::new("kill").args(["-KILL", &child.id().to_string()]).status().unwrap();
    });
    assert_eq!(code, None, "killed by a signal");
    assert!(first.len() >= 10 && first.len() < 60);

    // The store opens, the next send works, and the rerun completes the
    // batch with no duplicate.
    let (code, second, stderr) = send_with_interruption(&env, &room, "kill", lines(60, "killed"), 0, |_| {});
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(second.len(), 60);
    let got = env.run("bob", &["--json", "messages", &room, "--limit", "200"]).success().records("message");
    let bodies: Vec<&str> = got.iter().map(|m| m["body"].as_str().unwrap()).collect();
    let expected: Vec<String> = (1..=60).map(|i| format!("killed line {i}")).collect();
    assert_eq!(bodies, expected);
    let pairs: BTreeSet<(String, u64)> = got
        .iter()
        .map(|m| (m["session_id"].as_str().unwrap().to_owned(), m["message_index"].as_u64().unwrap()))
        .collect();
    assert_eq!(pairs.len(), 60, "no Megolm (session, index) pair used twice");
}

#[test]
fn a_stalled_homeserver_times_out_within_bounds() {
    let env = TestEnv::new();
    // Accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().take(16) {
            held.push(conn);
        }
        std::thread::sleep(Duration::from_secs(120));
    });
    let start = Instant::now();
    let run = env
        .run_stdin("x", &["--timeout", "2", "login", "--homeserver", &url, "--user", "u", "--password-stdin"], b"pw\n")
        .code(1);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert_eq!(run.error_lines(), vec!["error: the homeserver did not answer in time"], "{}", run.stderr);
}
