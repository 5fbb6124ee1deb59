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
