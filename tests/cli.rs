//! ratchet's integration tests: one binary, one module per command, one
//! Synapse for all of them (tests/common/synapse.rs).

mod common;

mod bad_input;
mod chat;
mod cookbook;
mod doctor;
mod doctor_sent;
mod encrypt;
mod errors;
mod files;
mod help;
mod history;
mod interop;
mod json;
mod key_safety;
mod keys;
mod login;
mod messages;
mod olm;
mod recovery;
mod reliability;
mod requests;
mod room;
mod rotate;
mod rotation;
mod send;
mod snapshots;
mod sso;
mod state;
mod stream;
mod sync;
mod terminal;
mod trust;
mod verify;

/// A test file under tests/ that is not declared here would silently never
/// run (autotests is off): fail instead.
#[test]
fn every_test_file_is_wired_in() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let this = std::fs::read_to_string(dir.join("cli.rs")).unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            let stem = path.file_stem().unwrap().to_str().unwrap();
            if stem != "cli" {
                assert!(this.contains(&format!("mod {stem};")), "tests/{stem}.rs is not declared in tests/cli.rs");
            }
        }
    }
}
