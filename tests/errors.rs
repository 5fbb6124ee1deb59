//! Bad input: each gets one `error:` line naming the problem, hints where a
//! fix exists, and its documented exit code.

use std::time::{Duration, Instant};

use crate::common::{register, run_in_pty, synapse, TestEnv};

#[test]
fn unreachable_homeserver_fails_with_1_quickly() {
    let env = TestEnv::new();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let start = Instant::now();
    let run = env
        .run_stdin(
            "x",
            &["login", "--homeserver", &format!("http://127.0.0.1:{port}"), "--user", "nobody", "--password-stdin"],
            b"pw\n",
        )
        .code(1);
    assert!(start.elapsed() < Duration::from_secs(30), "took {:?}", start.elapsed());
    assert_eq!(run.error_lines(), vec!["error: could not connect to the homeserver"], "{}", run.stderr);
    assert!(run.stderr.contains("hint: is the homeserver running"), "{}", run.stderr);
    assert!(!env.profile_dir("x").join("session.json").exists());
}

#[test]
fn no_session_exits_4() {
    let env = TestEnv::new();
    for args in [&["whoami"][..], &["sync"], &["send", "!abc:localhost", "hi"], &["room", "list"]] {
        let run = env.run("nobody", args).code(4);
        assert_eq!(run.error_lines().len(), 1, "{args:?}: {}", run.stderr);
        assert!(run.error_lines()[0].starts_with("error: not logged in"), "{}", run.stderr);
        // The hint names the profile (pasted elsewhere it must log *this*
        // profile in) and pastes as is (issue 20).
        assert!(run.stderr.contains("hint: run `ratchet --profile nobody login --homeserver"), "{}", run.stderr);
    }
    // `--profile default` typed in a shell whose RATCHET_PROFILE names
    // another profile: the hint says `--profile default`, or pasted there
    // it would log the other one in.
    let run = env.run("nobody", &["--profile", "default", "whoami"]).code(4);
    assert!(run.stderr.contains("`ratchet --profile default login"), "{}", run.stderr);
    let data = env.home().join("elsewhere");
    let run = env.run("nobody", &["--data-dir", data.to_str().unwrap(), "whoami"]).code(4);
    assert!(
        run.stderr.contains(&format!("`ratchet --data-dir {} --profile nobody login", data.display())),
        "{}",
        run.stderr
    );
}

#[test]
fn unknown_room_exits_1() {
    let env = TestEnv::new();
    let alice = register("alice");
    env.login("alice", &alice);
    let run = env.run("alice", &["send", "!doesnotexist", "hi"]).code(1);
    assert_eq!(run.error_lines(), vec!["error: unknown room !doesnotexist"]);
    let run = env.run("alice", &["messages", "!doesnotexist:localhost"]).code(1);
    assert_eq!(run.error_lines(), vec!["error: unknown room !doesnotexist:localhost"]);
    let run = env.run("alice", &["send", "#nowhere:localhost", "hi"]).code(1);
    assert_eq!(run.error_lines(), vec!["error: could not resolve the alias #nowhere:localhost"], "{}", run.stderr);
}

#[test]
fn send_without_text_on_a_terminal_is_a_usage_error() {
    let env = TestEnv::new();
    let alice = register("alice");
    env.login("alice", &alice);
    let room = env.encrypted_room("alice", &[], &[]);
    let started = Instant::now();
    let (code, shown) = run_in_pty(&env, "alice", &["send", &room]);
    assert_eq!(code, 2, "{shown}");
    assert!(shown.contains("error: no message given"), "{shown}");
    assert!(started.elapsed() < Duration::from_secs(30), "must not wait for input");
    // Nothing was sent.
    let msgs = env.run("alice", &["--json", "messages", &room]).success().records("message");
    assert!(msgs.is_empty());
}

#[test]
fn malformed_arguments_are_usage_errors() {
    let env = TestEnv::new();
    for (args, needle) in [
        (&["send", "", "hi"][..], "a room is needed"),
        (&["send", "#a b", "hi"], "is not a valid room id or alias"),
        (&["login", "--homeserver", "localhost:8008", "--user", "u"], "did you mean https://localhost:8008"),
        (&["login", "--homeserver", "ftp://x", "--user", "u"], "use http or https"),
        (&["room", "create", "--rotation-msgs", "3"], "--encrypted"),
        (&["room", "create", "--encrypted", "--rotation-msgs", "0"], "at least 1"),
        (&["messages", "!a:b", "--limit", "5000"], "5000"),
        (&["--profile", "../evil", "whoami"], "invalid profile name"),
        (&["--timeout", "0", "whoami"], "at least 1 second"),
        (&["frobnicate"], "unrecognized subcommand"),
    ] {
        let run = env.run("p", args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(needle), "{args:?}: expected {needle:?} in\n{}", run.stderr);
        assert!(run.stdout.is_empty());
    }
}

#[test]
fn login_without_a_password_source_does_not_prompt_off_a_terminal() {
    let env = TestEnv::new();
    let run = env.run("p", &["login", "--homeserver", &synapse().url, "--user", "someone"]).code(2);
    assert_eq!(run.error_lines(), vec!["error: no password given and no terminal to ask on"]);
    assert!(run.stderr.contains("--password-stdin"), "{}", run.stderr);
}

#[test]
fn json_errors_are_one_line_on_stderr_and_stdout_stays_clean() {
    let env = TestEnv::new();
    let run = env.run("nobody", &["--json", "whoami"]).code(4);
    assert!(run.stdout.is_empty());
    let json_lines: Vec<serde_json::Value> =
        run.stderr.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(json_lines.len(), 1, "{}", run.stderr);
    let e = &json_lines[0];
    assert_eq!(e["type"], "error");
    assert_eq!(e["kind"], "auth");
    assert_eq!(e["exit_code"], 4);
    assert!(e["message"].as_str().unwrap().starts_with("not logged in"));
    assert!(!e["hints"].as_array().unwrap().is_empty());
}

#[test]
fn causes_are_listed_under_caused_by() {
    let env = TestEnv::new();
    // Nothing listens on port 1: the connection is refused.
    let run = env
        .run_stdin(
            "alice",
            &["login", "--homeserver", "http://127.0.0.1:1", "--user", "alice", "--password-stdin"],
            b"pw\n",
        )
        .code(1);
    assert_eq!(run.error_lines(), vec!["error: could not connect to the homeserver"], "{}", run.stderr);
    let caused = run.stderr.split("\nCaused by:\n").nth(1).unwrap_or_else(|| panic!("no Caused by: {}", run.stderr));
    let causes: Vec<&str> = caused.lines().take_while(|l| l.starts_with("  ")).collect();
    assert!(!causes.is_empty(), "{}", run.stderr);
    assert!(causes.iter().any(|c| c.to_lowercase().contains("connect")), "{causes:?}");
    assert!(run.stderr.contains("hint: is the homeserver running"), "{}", run.stderr);
}

/// Issue 14, item 8: `https://` to a plain-HTTP homeserver fails fast with
/// the right URL, instead of waiting out every retry of the timeout.
#[test]
fn https_to_a_plain_http_server_fails_fast_with_a_hint() {
    let env = TestEnv::new();
    let alice = register("alice");
    let https = synapse().url.replacen("http://", "https://", 1);
    // The old behaviour waited out every retry and then said only "timed
    // out"; the diagnosis below is what makes it fail fast.
    let run = env
        .run_stdin("alice", &["login", "--homeserver", &https, "--user", &alice.localpart, "--password-stdin"], b"pw\n")
        .code(1);
    assert!(run.stderr.contains("speaks plain HTTP"), "{}", run.stderr);
    assert!(run.stderr.contains(&format!("use --homeserver {}", synapse().url)), "{}", run.stderr);
    assert!(!env.profile_dir("alice").exists());
}
