//! The independent peer: `tests/peer/nio_peer.py`, a Matrix client built on
//! matrix-nio (no matrix-sdk code), run from the project's peer venv.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;
use tempfile::TempDir;

use super::{synapse, Run, TestEnv, TestUser};

fn python() -> &'static PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new(root.join("scripts/setup-peer.sh")).output().expect("scripts/setup-peer.sh runs");
        assert!(out.status.success(), "setting up the nio peer failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let venv = String::from_utf8(out.stdout).expect("utf-8 path");
        PathBuf::from(venv.trim()).join("bin/python")
    })
}

pub struct NioPeer {
    state: TempDir,
    pub user: TestUser,
    pub device_id: String,
}

impl NioPeer {
    pub fn login(env: &TestEnv, user: &TestUser) -> NioPeer {
        let state = tempfile::Builder::new().prefix("nio-peer-").tempdir().expect("temp dir");
        let mut peer = NioPeer { state, user: user.clone(), device_id: String::new() };
        let run = peer.run(env, &["login", &synapse().url, &user.localpart, &user.password]).success();
        peer.device_id = run.records("login")[0]["device_id"].as_str().expect("device_id").to_owned();
        peer
    }

    pub fn run(&self, env: &TestEnv, args: &[&str]) -> Run {
        let mut cmd = Command::new(python());
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peer/nio_peer.py")).arg(self.state.path()).args(args);
        env.run_with(cmd, None)
    }

    pub fn join(&self, env: &TestEnv, room_id: &str) {
        self.run(env, &["join", room_id]).success();
    }

    /// The peer's view of the room: `message` and `utd` records.
    pub fn messages(&self, env: &TestEnv, room_id: &str) -> Run {
        self.run(env, &["messages", room_id, "100"])
    }

    pub fn send(&self, env: &TestEnv, room_id: &str, texts: &[&str]) -> Vec<Value> {
        let mut args = vec!["send", room_id];
        args.extend_from_slice(texts);
        self.run(env, &args).success().records("sent")
    }
}
