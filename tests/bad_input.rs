//! Bad input, table-driven: each case gets exactly one `error:` line naming
//! the problem, its documented exit code, no panic, and nothing on stdout.

use serde_json::json;

use crate::common::{api, register, synapse, TestEnv};

struct Case {
    name: &'static str,
    profile: &'static str,
    args: Vec<String>,
    stdin: Option<Vec<u8>>,
    code: i32,
    needle: &'static str,
}

fn case(name: &'static str, profile: &'static str, args: &[&str], code: i32, needle: &'static str) -> Case {
    Case { name, profile, args: args.iter().map(|s| s.to_string()).collect(), stdin: None, code, needle }
}

#[test]
fn bad_input_table() {
    let env = TestEnv::new();
    let (alice, bob, gone) = (register("alice"), register("bob"), register("gone"));
    env.login("alice", &alice);
    env.login("bob", &bob);
    env.login("revoked", &gone);
    // "revoked": its token is logged out behind ratchet's back.
    let (status, _) = api("POST", &env.token("revoked"), "/_matrix/client/v3/logout", Some(json!({})));
    assert_eq!(status, 200);
    let room = env.encrypted_room("alice", &[], &[]);
    let plain = env.run("alice", &["--json", "room", "create"]).success().records("room")[0]["room_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let left = env.encrypted_room("alice", &[], &[]);
    env.run("alice", &["room", "leave", &left]).success();
    // "damaged": a copy of bob's profile with a truncated crypto database.
    let damaged = env.profile_dir("damaged");
    std::process::Command::new("cp").arg("-r").arg(env.profile_dir("bob")).arg(&damaged).status().unwrap();
    let db = damaged.join("store/matrix-sdk-crypto.sqlite3");
    std::fs::OpenOptions::new().write(true).open(&db).unwrap().set_len(100).unwrap();
    // "truncated": a session file cut short.
    std::process::Command::new("cp")
        .arg("-r")
        .arg(env.profile_dir("bob"))
        .arg(env.profile_dir("truncated"))
        .status()
        .unwrap();
    let session = env.profile_dir("truncated").join("session.json");
    let text = std::fs::read_to_string(&session).unwrap();
    std::fs::write(&session, &text[..text.len() / 2]).unwrap();
    let hs = synapse().url.clone();
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let unreachable = format!("http://127.0.0.1:{closed_port}");
    let keyfile = env.home().join("keys.txt");
    std::fs::write(&keyfile, "not a key export").unwrap();
    let keyfile = keyfile.to_str().unwrap().to_owned();

    let mut cases = vec![
        // Ids and names.
        case("unknown room name", "alice", &["send", "room", "hi"], 1, "no room called `room`"),
        case("chat in an unknown room", "alice", &["chat", "nowhere"], 1, "no room called `nowhere`"),
        case("unknown alias on own server", "alice", &["send", "#team", "hi"], 1, "could not resolve the alias #team:"),
        case("empty room", "alice", &["send", " ", "hi"], 2, "a room is needed"),
        case("a bare #", "alice", &["send", "#", "hi"], 2, "is not an alias"),
        case("room id with a space", "alice", &["send", "!a b:localhost", "hi"], 2, "room id or alias"),
        case("user id without server", "alice", &["room", "invite", &room, "@bob"], 2, "is not a valid user id"),
        case("user id with a space", "alice", &["room", "invite", &room, "b o b"], 2, "is not a valid user id"),
        case("bad profile name", "alice", &["--profile", "../x", "whoami"], 2, "invalid profile name"),
        case("bad event id", "alice", &["doctor", &room, "--event", "notanid"], 2, "--event"),
        case("bad txn prefix", "alice", &["send", &room, "--txn-prefix", "a b", "x"], 2, "--txn-prefix"),
        // Rooms.
        case("unknown room", "alice", &["send", "!nosuchroomatall", "hi"], 1, "unknown room"),
        case("unknown alias", "alice", &["messages", "#nowhere:localhost"], 1, "could not resolve the alias"),
        case("not a member", "alice", &["send", &left, "hi"], 1, "you are not a member"),
        case("rotate a plain room", "alice", &["rotate", &plain], 1, "is not encrypted"),
        case("sessions of a plain room", "alice", &["sessions", &plain], 1, "is not encrypted"),
        // Homeserver and login.
        case(
            "homeserver without scheme",
            "new1",
            &["login", "--homeserver", "localhost:8008", "--user", "u"],
            2,
            "has no scheme",
        ),
        case(
            "homeserver with other scheme",
            "new1",
            &["login", "--homeserver", "ftp://x", "--user", "u"],
            2,
            "use http or https",
        ),
        case("no password source", "new1", &["login", "--homeserver", &hs, "--user", "u"], 2, "no password given"),
        case("logged in already", "alice", &["login", "--homeserver", &hs, "--user", "u"], 1, "already logged in"),
        // Sessions and stores.
        case("no session", "nobody", &["sync"], 4, "not logged in"),
        case("token revoked elsewhere", "revoked", &["sync"], 4, "rejected this session's access token"),
        case("truncated session file", "truncated", &["whoami"], 4, "is damaged"),
        case("truncated SQLite store", "damaged", &["whoami"], 1, "could not open the encrypted store"),
        // Numbers.
        case("rotation msgs 0", "alice", &["encrypt", &room, "--rotation-msgs", "0"], 2, "at least 1"),
        case(
            "rotation msgs negative",
            "alice",
            &["encrypt", &room, "--rotation-msgs", "-3"],
            2,
            "not a positive whole number",
        ),
        case("rotation msgs huge", "alice", &["encrypt", &room, "--rotation-msgs", "99999999999"], 2, "at most"),
        case(
            "rotation ms not a number",
            "alice",
            &["encrypt", &room, "--rotation-ms", "1h"],
            2,
            "not a positive whole number",
        ),
        case("limit 0", "alice", &["messages", &room, "--limit", "0"], 2, "--limit"),
        case("timeout 0", "alice", &["--timeout", "0", "whoami"], 2, "at least 1 second"),
        // Olm and keys.
        case("unwedge unknown device", "alice", &["unwedge", &bob.user_id, "NOSUCHDEV"], 1, "unknown device NOSUCHDEV"),
        case(
            "forget-olm unknown device",
            "alice",
            &["debug", "forget-olm", &bob.user_id, "NOSUCHDEV", "--yes"],
            1,
            "unknown device",
        ),
        case(
            "forget-room-key unknown session",
            "alice",
            &["debug", "forget-room-key", &room, "nosuchsession", "--yes"],
            1,
            "holds no Megolm session",
        ),
        case(
            "import a missing file",
            "alice",
            &["keys", "import", "/nonexistent/keys.txt", "--passphrase-stdin"],
            1,
            "is not a readable file",
        ),
        // The trust layer (issues 12, 13).
        case("verify with nothing to verify", "alice", &["verify"], 2, "say what to verify"),
        case("verify --accept with a target", "alice", &["verify", "--accept", "@x:localhost"], 2, "--accept takes no"),
        // --yes signs whoever asks: it needs the requester named.
        case(
            "verify --accept --yes without --from",
            "alice",
            &["verify", "--accept", "--yes", "--wait", "1"],
            2,
            "--from",
        ),
        case(
            "verify --from-anyone --yes",
            "alice",
            &["verify", "--accept", "--from-anyone", "--yes"],
            2,
            "cannot be used",
        ),
        case("verify this device", "alice", &["verify", "--self", "NOSUCHDEVICE"], 1, "unknown device NOSUCHDEVICE"),
        case(
            "trust an unknown device",
            "alice",
            &["trust", &bob.user_id, "NOSUCHDEVICE", "verified"],
            1,
            "unknown device",
        ),
        case("trust with a bad level", "alice", &["trust", &bob.user_id, "X", "trusted"], 2, "invalid value"),
        case("identity of a malformed user", "alice", &["identity", "@not a user"], 2, "not a valid user id"),
        case("recover with no key source", "alice", &["recovery", "recover"], 2, "no recovery key given"),
        case("restore without a backup key", "alice", &["backup", "restore"], 1, "no backup key"),
        case("reset without --yes off a terminal", "alice", &["recovery", "reset"], 2, "needs --yes"),
        case("logout without --yes off a terminal", "alice", &["logout"], 2, "--yes"),
        case("isolation with a bad mode", "alice", &["--isolation", "none", "whoami"], 2, "invalid value"),
        // Output modes.
        case("completions under --json", "alice", &["--json", "completions", "bash"], 2, "no --json form"),
        case("unknown subcommand", "alice", &["frobnicate"], 2, "unrecognized subcommand"),
    ];
    let with_stdin = |name, profile, args: &[&str], stdin: &[u8], code, needle| Case {
        name,
        profile,
        args: args.iter().map(|s| s.to_string()).collect(),
        stdin: Some(stdin.to_vec()),
        code,
        needle,
    };
    cases.extend([
        with_stdin(
            "wrong password",
            "new2",
            &["login", "--homeserver", &hs, "--user", &bob.localpart, "--password-stdin"],
            b"wrong\n",
            4,
            "wrong user name or password",
        ),
        with_stdin(
            "unknown user",
            "new3",
            &["login", "--homeserver", &hs, "--user", "nosuchuser", "--password-stdin"],
            b"pw\n",
            4,
            "wrong user name or password",
        ),
        with_stdin(
            "unreachable homeserver",
            "new4",
            &["login", "--homeserver", &unreachable, "--user", "u", "--password-stdin"],
            b"pw\n",
            1,
            "could not connect",
        ),
        with_stdin(
            "empty password on stdin",
            "new5",
            &["login", "--homeserver", &hs, "--user", "u", "--password-stdin"],
            b"\n",
            2,
            "empty password",
        ),
        with_stdin("only empty lines on stdin", "alice", &["send", &room], b"\n\n  \n", 2, "stdin had no message"),
        with_stdin("invalid UTF-8 first", "alice", &["send", &room], b"\xff\xfe\n", 2, "not valid UTF-8"),
        with_stdin("message over the event limit", "alice", &["send", &room], &[b'x'; 70_000], 2, "too large"),
        with_stdin(
            "key file that is not one",
            "alice",
            &["keys", "import", &keyfile, "--passphrase-stdin"],
            b"pw\n",
            1,
            "could not import",
        ),
    ]);
    assert!(cases.len() >= 30, "{} cases", cases.len());

    for c in &cases {
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        let run = match &c.stdin {
            Some(input) => env.run_stdin(c.profile, &args, input),
            None => env.run(c.profile, &args),
        };
        let why = format!("case `{}`:\n--- stdout ---\n{}\n--- stderr ---\n{}", c.name, run.stdout, run.stderr);
        assert_eq!(run.code, c.code, "{why}");
        assert!(!run.stderr.contains("panicked"), "{why}");
        // clap's own usage errors print one `error:` line too; under --json
        // the error is one JSON line instead.
        let errors: Vec<&str> =
            run.stderr.lines().filter(|l| l.starts_with("error:") || l.starts_with("{\"type\":\"error\"")).collect();
        assert_eq!(errors.len(), 1, "{why}");
        assert!(run.stderr.contains(c.needle), "expected {:?}: {why}", c.needle);
        assert!(run.stdout.is_empty(), "{why}");
    }
    // Nothing was lost: the encrypted room got no message from all that.
    let msgs = env.run("alice", &["--json", "messages", &room]).success().records("message");
    assert!(msgs.is_empty(), "{msgs:?}");
}
