//! The peer that runs Element's crypto stack: `tests/peer/js/js_peer.mjs`,
//! matrix-js-sdk 37.5.0 with its Rust crypto (WASM) on Node, installed by
//! `scripts/setup-js-peer.sh`. One long-lived Node process per device (its
//! crypto store is in memory), driven by one JSON command per line.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};

use super::{synapse, TestUser};

fn peer_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| setup(&[]))
}

/// The newest matrix-js-sdk (43.0.0, `tests/peer/js-next`), for history
/// sharing on invite (MSC4268), which 37.5.0 predates.
fn next_peer_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| setup(&["next"]))
}

fn setup(args: &[&str]) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out =
        Command::new(root.join("scripts/setup-js-peer.sh")).args(args).output().expect("scripts/setup-js-peer.sh runs");
    assert!(out.status.success(), "setting up the js peer failed:\n{}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8(out.stdout).expect("utf-8 path").trim())
}

pub struct JsPeer {
    child: Child,
    stdin: ChildStdin,
    answers: Receiver<String>,
    log: tempfile::NamedTempFile,
    pub user_id: String,
    pub device_id: String,
}

/// How long one command may take (sends wait for key sharing, messages
/// wait for keys).
const LIMIT: Duration = Duration::from_secs(90);

impl JsPeer {
    /// Logs `user` in as a new js-sdk device. `isolation` is
    /// "exclude-insecure" (js-sdk's `OnlySignedDevicesIsolationMode`, as
    /// Element) or "all-devices"; `bootstrap` creates and uploads a
    /// cross-signing identity, as Element does on a first login.
    pub fn login(user: &TestUser, isolation: &str, bootstrap: bool) -> JsPeer {
        Self::login_in(peer_dir(), user, isolation, bootstrap)
    }

    /// The same, on the newest matrix-js-sdk (`tests/peer/js-next`).
    pub fn login_next(user: &TestUser, isolation: &str, bootstrap: bool) -> JsPeer {
        Self::login_in(next_peer_dir(), user, isolation, bootstrap)
    }

    fn login_in(dir: &Path, user: &TestUser, isolation: &str, bootstrap: bool) -> JsPeer {
        let log = tempfile::Builder::new().prefix("js-peer-").suffix(".log").tempfile().expect("log file");
        let mut child = Command::new("node")
            .arg(dir.join("js_peer.mjs"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log.reopen().expect("log file"))
            .spawn()
            .expect("node runs");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, answers) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut peer = JsPeer { child, stdin, answers, log, user_id: String::new(), device_id: String::new() };
        let login = peer.call(json!({
            "cmd": "login", "homeserver": synapse().url, "user": user.localpart, "password": user.password,
            "isolation": isolation, "bootstrap": bootstrap,
        }));
        peer.user_id = login["user_id"].as_str().expect("user_id").to_owned();
        peer.device_id = login["device_id"].as_str().expect("device_id").to_owned();
        peer
    }

    /// Sends one command and returns its answer (panics, with the peer's
    /// log, when it failed or took too long).
    pub fn call(&mut self, command: Value) -> Value {
        writeln!(self.stdin, "{command}").expect("js peer stdin");
        self.stdin.flush().expect("js peer stdin");
        let line = self
            .answers
            .recv_timeout(LIMIT)
            .unwrap_or_else(|e| panic!("js peer gave no answer to {command} ({e}); its log:\n{}", self.log_text()));
        let answer: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("js peer said {line}: {e}"));
        assert_eq!(answer["ok"], true, "js peer failed {command}: {answer}\nits log:\n{}", self.log_text());
        answer
    }

    fn log_text(&self) -> String {
        let text = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        let start = text.len().saturating_sub(6000);
        text[text.ceil_char_boundary(start)..].to_owned()
    }

    pub fn join(&mut self, room_id: &str) {
        self.call(json!({"cmd": "join", "room_id": room_id}));
    }

    pub fn send(&mut self, room_id: &str, text: &str) -> String {
        self.call(json!({"cmd": "send", "room_id": room_id, "text": text}))["event_id"].as_str().unwrap().to_owned()
    }

    /// The room's messages as js sees them (`event_id, sender, encrypted,
    /// body, utd`), after waiting up to `timeout_ms` for `wait_for` to arrive
    /// and decrypt.
    pub fn messages(&mut self, room_id: &str, wait_for: &[&str], timeout_ms: u64) -> Vec<Value> {
        let answer =
            self.call(json!({"cmd": "messages", "room_id": room_id, "wait_for": wait_for, "timeout_ms": timeout_ms}));
        answer["messages"].as_array().expect("messages").clone()
    }

    /// js's view of a device: `known, signed_by_owner, cross_signing_verified,
    /// locally_verified`.
    pub fn device(&mut self, user_id: &str, device_id: &str) -> Value {
        self.call(json!({"cmd": "device", "user_id": user_id, "device_id": device_id}))
    }
}

impl Drop for JsPeer {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"cmd": "quit"}));
        let _ = self.stdin.flush();
        for _ in 0..20 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
