//! The QA cookbook (examples/qa/*.sh): every script runs against the test
//! Synapse and must pass. Each script asserts its own outcome.

use std::path::Path;
use std::process::Command;

use crate::common::{synapse, TestEnv};

fn run_script(name: &str) {
    let env = TestEnv::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new("bash");
    cmd.arg(root.join("examples/qa").join(name))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.home())
        .env("TMPDIR", env.home())
        .env("RATCHET", env!("CARGO_BIN_EXE_ratchet"))
        .env("RATCHET_HOMESERVER", &synapse().url)
        .env("NO_COLOR", "1");
    let run = env.run_with(cmd, None);
    assert_eq!(run.code, 0, "examples/qa/{name} failed:\n{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("ok: "), "{name} checked nothing:\n{}", run.stderr);
    assert!(!run.stderr.contains("FAIL"), "{}", run.stderr);
}

#[test]
fn rotation_by_count() {
    run_script("rotation-by-count.sh");
}

#[test]
fn rotation_by_age() {
    run_script("rotation-by-age.sh");
}

#[test]
fn forced_rotation() {
    run_script("forced-rotation.sh");
}

#[test]
fn wedged_olm() {
    run_script("wedged-olm.sh");
}

#[test]
fn missing_key() {
    run_script("missing-key.sh");
}

#[test]
fn no_rotation_on_restart() {
    run_script("no-rotation-on-restart.sh");
}

/// A script added to the cookbook without a test here would never run.
#[test]
fn every_script_has_a_test() {
    let this = include_str!("cookbook.rs");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/qa");
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".sh") && name != "lib.sh" {
            assert!(this.contains(&format!("run_script(\"{name}\")")), "examples/qa/{name} has no test");
        }
    }
}

#[test]
fn unverified_device() {
    run_script("unverified-device.sh");
}

#[test]
fn blacklisted() {
    run_script("blacklisted.sh");
}

#[test]
fn sas_two_profiles() {
    run_script("sas-two-profiles.sh");
}

#[test]
fn backup_restore() {
    run_script("backup-restore.sh");
}

#[test]
fn history_via_backup() {
    run_script("history-via-backup.sh");
}

#[test]
fn own_device_forward() {
    run_script("own-device-forward.sh");
}

#[test]
fn wedged_olm_backup() {
    run_script("wedged-olm-backup.sh");
}

#[test]
fn verification_violation() {
    run_script("verification-violation.sh");
}

#[test]
fn room_key_cycling() {
    run_script("room-key-cycling.sh");
}

#[test]
fn history_before_join() {
    run_script("history-before-join.sh");
}

#[test]
fn rejoin() {
    run_script("rejoin.sh");
}

#[test]
fn fallback_key() {
    run_script("fallback-key.sh");
}
