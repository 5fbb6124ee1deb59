//! Terminal and pipeline conventions: completions and man page, -q, colour,
//! --log-file without secrets, and a reader that closes the pipe early.

use std::process::Stdio;

use crate::common::{register, synapse, TestEnv};

#[test]
fn completions_and_man_page_come_from_the_cli_definition() {
    let env = TestEnv::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let run = env.run("p", &["completions", shell]).success();
        assert!(run.stdout.contains("unwedge") && run.stdout.contains("forget-room-key"), "{shell}");
    }
    let man = env.run("p", &["man"]).success();
    assert!(man.stdout.contains(".TH ratchet"), "{}", &man.stdout[..200.min(man.stdout.len())]);
    assert!(man.stdout.contains("unwedge"));
    let json = env.run("p", &["--json", "completions", "bash"]).code(2);
    assert!(json.stdout.is_empty());
    env.run("p", &["completions", "tcsh"]).code(2);
}

#[test]
fn quiet_silences_status_but_never_data() {
    let env = TestEnv::new();
    let (a, b) = (register("quiet"), register("loud"));
    let args = |u: &crate::common::TestUser| {
        vec![
            "--json".to_owned(),
            "login".into(),
            "--homeserver".into(),
            synapse().url.clone(),
            "--user".into(),
            u.localpart.clone(),
            "--password-stdin".into(),
        ]
    };
    let mut quiet = args(&a);
    quiet.insert(0, "-q".into());
    let quiet_args: Vec<&str> = quiet.iter().map(String::as_str).collect();
    let run = env.run_stdin("a", &quiet_args, format!("{}\n", a.password).as_bytes()).success();
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    assert_eq!(run.records("login").len(), 1);
    let loud = args(&b);
    let loud_args: Vec<&str> = loud.iter().map(String::as_str).collect();
    let run = env.run_stdin("b", &loud_args, format!("{}\n", b.password).as_bytes()).success();
    assert!(run.stderr.contains("Logging in"), "{}", run.stderr);
    assert_eq!(run.records("login").len(), 1);
}

#[test]
fn colour_only_when_asked_or_on_a_terminal() {
    let env = TestEnv::new();
    let plain = env.run("nobody", &["whoami"]).code(4);
    assert!(!plain.stderr.contains('\x1b'), "{:?}", plain.stderr);
    let coloured = env.run("nobody", &["--color", "always", "whoami"]).code(4);
    // Bold red, then reset, around the label only.
    assert!(coloured.stderr.starts_with("\x1b[1m\x1b[31merror:\x1b[0m"), "{:?}", coloured.stderr);
    let never = env.run("nobody", &["--color", "never", "whoami"]).code(4);
    assert!(!never.stderr.contains('\x1b'));
    // With colour forced (CLICOLOR_FORCE, as a terminal would allow),
    // NO_COLOR alone turns it off.
    let mut forced = TestEnv::new();
    forced.set_env("CLICOLOR_FORCE", "1");
    forced.set_env("NO_COLOR", "");
    let auto = forced.run("nobody", &["whoami"]).code(4);
    assert!(auto.stderr.contains("\x1b[31merror:"), "CLICOLOR_FORCE colours: {:?}", auto.stderr);
    forced.set_env("NO_COLOR", "1");
    let no_color = forced.run("nobody", &["whoami"]).code(4);
    assert!(!no_color.stderr.contains('\x1b'), "NO_COLOR wins: {:?}", no_color.stderr);
}

#[test]
fn log_file_traces_everything_but_secrets() {
    let env = TestEnv::new();
    let alice = register("alice");
    let log = env.home().join("trace.log");
    let log_arg = log.to_str().unwrap();
    let run = env.login_with("alice", &alice, &synapse().url, &["-vvv", "--log-file", log_arg], &[]).success();
    let room = env.encrypted_room("alice", &[], &[]);
    env.run("alice", &["-vvv", "--log-file", log_arg, "send", &room, "traced"]).success();
    let trace = std::fs::read_to_string(&log).unwrap();
    assert!(trace.lines().count() > 50, "a full trace: {} lines", trace.lines().count());
    assert!(trace.contains("matrix_sdk_crypto"), "crypto logs are in the trace");

    let token = env.token("alice");
    let key = std::fs::read_to_string(env.profile_dir("alice").join("store.key")).unwrap();
    for (what, secret) in
        [("access token", token.as_str()), ("password", alice.password.as_str()), ("store key", key.trim())]
    {
        assert!(!trace.contains(secret), "the {what} is in the --log-file trace");
        assert!(!run.stderr.contains(secret), "the {what} is in the -vvv stderr");
    }
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let env = TestEnv::new();
    let alice = register("alice");
    env.login("alice", &alice);
    let room = env.encrypted_room("alice", &[], &[]);
    env.run("alice", &["send", &room, "one", "two", "three"]).success();
    // The reader goes away before ratchet writes (like `ratchet … | head -0`).
    let mut child = env
        .command("alice", &["--json", "messages", &room])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn verbosity_flags_and_ratchet_log() {
    let env = TestEnv::new();
    let alice = register("alice");
    env.login("alice", &alice);
    let token = env.token("alice");

    let quiet = env.run("alice", &["sync"]).success();
    assert!(!quiet.stderr.contains("DEBUG"), "{}", quiet.stderr);
    // -v: ratchet's own debug lines.
    let v = env.run("alice", &["-v", "sync"]).success();
    assert!(v.stderr.contains("DEBUG") && v.stderr.contains("session restored"), "{}", v.stderr);
    let debug_targets = |stderr: &str| -> Vec<String> {
        stderr
            .lines()
            .filter(|l| l.contains(" DEBUG "))
            .filter_map(|l| l.split(": ").find(|part| part.contains("::") || part.starts_with("ratchet")))
            .map(|t| t.rsplit(' ').next().unwrap_or(t).to_owned())
            .collect()
    };
    let targets = debug_targets(&v.stderr);
    assert!(targets.iter().all(|t| t.starts_with("ratchet")), "-v debugs ratchet only: {targets:?}");
    // -vv: the crypto crate's debug lines too.
    let vv = env.run("alice", &["-vv", "sync"]).success();
    assert!(debug_targets(&vv.stderr).iter().any(|t| t.starts_with("matrix_sdk_crypto")), "{}", vv.stderr);
    // RATCHET_LOG overrides -v both ways.
    let mut cmd = env.command("alice", &["sync"]);
    cmd.env("RATCHET_LOG", "ratchet=debug");
    let by_env = env.run_with(cmd, None).success();
    assert!(by_env.stderr.contains("session restored"), "{}", by_env.stderr);
    let mut cmd = env.command("alice", &["-vv", "sync"]);
    cmd.env("RATCHET_LOG", "off");
    let off = env.run_with(cmd, None).success();
    assert!(!off.stderr.contains("DEBUG"), "{}", off.stderr);
    // A bad spec is a usage error, not silence.
    let mut cmd = env.command("alice", &["sync"]);
    cmd.env("RATCHET_LOG", "ratchet=loudest");
    env.run_with(cmd, None).code(2);
    for run in [&v, &vv, &by_env] {
        assert!(!run.stderr.contains(&token), "the access token never reaches a log");
    }
}
