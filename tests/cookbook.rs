//! The QA cookbook (examples/qa/*.sh): every script runs against the test
//! Synapse and must pass. Each script asserts its own outcome.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::{synapse, TestEnv};

fn run_script(name: &str) {
    run_script_with(name, &[]);
}

/// The scripts that say so run a second time with bob on the js-sdk peer
/// (Element's crypto), as complement-crypto runs each scenario across its
/// client pairs.
fn run_script_with_js_peer(name: &str) {
    run_script_with(name, &[("QA_PEER", "js")]);
}

fn run_script_with(name: &str, vars: &[(&str, &str)]) {
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
        .env("NO_COLOR", "1")
        .envs(vars.iter().copied());
    // A script is dozens of commands and helper processes: in a full suite
    // on two cores it runs several times slower than alone
    // (kill-during-to-device.sh: 21 s alone, past 120 s in a full suite).
    let run = env.run_with_limit(cmd, None, Duration::from_secs(300));
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

fn entry_path(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/qa").join(name)
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
            let both_ways = std::fs::read_to_string(entry_path(&name)).unwrap().contains("QA_PEER=js");
            assert_eq!(
                this.contains(&format!("run_script_with_js_peer(\"{name}\")")),
                both_ways,
                "examples/qa/{name}: a script that offers QA_PEER=js runs both ways, and only such a script"
            );
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
fn history_on_invite() {
    run_script("history-on-invite.sh");
}

#[test]
fn rejoin() {
    run_script("rejoin.sh");
}

#[test]
fn fallback_key() {
    run_script("fallback-key.sh");
}

#[test]
fn send_to_device_504() {
    run_script("send-to-device-504.sh");
}

#[test]
fn send_to_device_504_js() {
    run_script_with_js_peer("send-to-device-504.sh");
}

#[test]
fn key_requests_504() {
    run_script("key-requests-504.sh");
}

#[test]
fn key_requests_504_js() {
    run_script_with_js_peer("key-requests-504.sh");
}

#[test]
fn spoofed_sender() {
    run_script("spoofed-sender.sh");
}

#[test]
fn delayed_invite() {
    run_script("delayed-invite.sh");
}

#[test]
fn delayed_invite_js() {
    run_script_with_js_peer("delayed-invite.sh");
}

#[test]
fn send_no_answer() {
    run_script("send-no-answer.sh");
}

#[test]
fn kill_before_keys_upload() {
    run_script("kill-before-keys-upload.sh");
}

#[test]
fn kill_during_to_device() {
    run_script("kill-during-to-device.sh");
}

#[test]
fn to_device_batching() {
    run_script("to-device-batching.sh");
}

#[test]
fn many_room_keys() {
    run_script("many-room-keys.sh");
}

#[test]
fn device_after_invite() {
    run_script("device-after-invite.sh");
}

#[test]
fn wrong_recovery_key() {
    run_script("wrong-recovery-key.sh");
}

#[test]
fn offline_server() {
    run_script("offline-server.sh");
}

#[test]
fn two_processes_olm() {
    run_script("two-processes-olm.sh");
}

#[test]
fn two_processes_otk_upload() {
    run_script("two-processes-otk-upload.sh");
}

#[test]
fn encryption_works() {
    run_script("encryption-works.sh");
}

#[test]
fn encryption_works_js() {
    run_script_with_js_peer("encryption-works.sh");
}

#[test]
fn two_processes_device_list() {
    run_script("two-processes-device-list.sh");
}

#[test]
fn fallback_key_js() {
    run_script_with_js_peer("fallback-key.sh");
}

#[test]
fn kill_before_keys_upload_js() {
    run_script_with_js_peer("kill-before-keys-upload.sh");
}
