//! --help for every command: works without a session or network, and
//! teaches (a description and, for the main commands, examples).

use crate::common::TestEnv;

#[test]
fn every_command_has_help() {
    let env = TestEnv::new();
    let commands = crate::common::COMMANDS;
    for cmd in commands {
        let mut args = cmd.to_vec();
        args.push("--help");
        let run = env.run("p", &args).success();
        assert!(run.stdout.contains("Usage: ratchet"), "{cmd:?}: {}", run.stdout);
        assert!(run.stdout.contains("Global options:") || cmd.is_empty(), "{cmd:?}");
        assert!(run.stderr.is_empty(), "{cmd:?}: {}", run.stderr);
    }
    // Every leaf command teaches by example.
    for cmd in commands
        .iter()
        .filter(|c| !c.is_empty() && !matches!(c[..], ["room"] | ["keys"] | ["debug"] | ["recovery"] | ["backup"]))
    {
        let mut args = cmd.to_vec();
        args.push("--help");
        let run = env.run("p", &args).success();
        assert!(run.stdout.contains("Example"), "{cmd:?} --help has an example:\n{}", run.stdout);
    }
    // No profile data was created by asking for help.
    assert!(!env.data_dir().exists());
}

#[test]
fn version() {
    let env = TestEnv::new();
    let run = env.run("p", &["--version"]).success();
    assert!(run.stdout.starts_with("ratchet "), "{}", run.stdout);
}

/// Issue 30, item 6: documents are not data. Under --json, `--help` and
/// `--version` are the same usage error as `man` and `completions` (exit
/// 2, one JSON error line); without it, text, exit 0.
#[test]
fn documents_have_no_json_form_whichever_way_they_are_asked_for() {
    let env = TestEnv::new();
    for args in [&["man"][..], &["completions", "bash"], &["send", "--help"], &["--version"], &["help", "send"]] {
        let plain = env.run("alice", args).success();
        assert!(!plain.stdout.is_empty(), "{args:?}");
        let mut with_json = vec!["--json"];
        with_json.extend_from_slice(args);
        let json = env.run("alice", &with_json).code(2);
        assert!(json.stdout.is_empty(), "{args:?}: {}", json.stdout);
        assert!(json.stderr.contains("no --json form"), "{args:?}: {}", json.stderr);
    }
}

/// Issue 30, item 6: an option that came from the environment
/// (RATCHET_PROFILE, RATCHET_DATA_DIR) is not shown in a usage line as if
/// it had to be typed; one typed on the line still is.
#[test]
fn usage_lines_leave_out_options_from_the_environment() {
    let mut env = TestEnv::new();
    env.set_env("RATCHET_DATA_DIR", "/tmp/ratchet-usage-test");
    let run = env.run("alice", &["send"]).code(2);
    let usage = run.stderr.lines().find(|l| l.starts_with("Usage:")).unwrap_or_else(|| panic!("{}", run.stderr));
    assert_eq!(usage, "Usage: ratchet send <ROOM> [TEXT]...");
    let run = env.run("alice", &["--profile", "alice", "send"]).code(2);
    let usage = run.stderr.lines().find(|l| l.starts_with("Usage:")).unwrap();
    assert_eq!(usage, "Usage: ratchet send --profile <PROFILE> <ROOM> [TEXT]...");
}
