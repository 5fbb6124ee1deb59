//! send: from arguments and from stdin; encrypted rooms never get plaintext;
//! what ratchet reports per message matches what the server stored and what
//! the receiver decrypted.

use serde_json::Value;

use crate::common::{api, enc, register, TestEnv};

fn by_event(records: &[Value]) -> std::collections::HashMap<String, Value> {
    records.iter().map(|r| (r["event_id"].as_str().unwrap().to_owned(), r.clone())).collect()
}

#[test]
fn messages_from_arguments_and_stdin_decrypt_at_the_receiver() {
    let env = TestEnv::new();
    let (alice, bob) = (register("alice"), register("bob"));
    env.login("alice", &alice);
    env.login("bob", &bob);
    let room = env.encrypted_room("alice", &[("bob", &bob)], &[]);

    let mut sent = env.run("alice", &["--json", "send", &room, "first", "second message"]).success().records("sent");
    let stdin_run = env.run_stdin("alice", &["--json", "send", &room], b"line one\n\nline two\r\nline three");
    let stdin_run = stdin_run.success();
    assert!(stdin_run.stderr.contains("line 2 is empty; skipped"), "{}", stdin_run.stderr);
    let from_stdin = stdin_run.records("sent");
    assert_eq!(from_stdin.iter().map(|r| r["seq"].as_u64().unwrap()).collect::<Vec<_>>(), vec![1, 3, 4]);
    sent.extend(from_stdin);
    let texts = ["first", "second message", "line one", "line two", "line three"];
    assert_eq!(sent.len(), texts.len());

    for record in &sent {
        assert_eq!(record["encrypted"], true, "{record}");
        // What the server stored is ciphertext, not the text.
        let (status, event) = api(
            "GET",
            &env.token("alice"),
            &format!("/_matrix/client/v3/rooms/{}/event/{}", enc(&room), enc(record["event_id"].as_str().unwrap())),
            None,
        );
        assert_eq!(status, 200);
        assert_eq!(event["type"], "m.room.encrypted");
        assert_eq!(event["content"]["algorithm"], "m.megolm.v1.aes-sha2");
        assert!(event["content"].get("body").is_none());
        assert_eq!(event["content"]["session_id"], record["session_id"]);
    }
    // One session, indexes 0.. in order, across the two processes.
    let indexes: Vec<u64> = sent.iter().map(|r| r["message_index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, vec![0, 1, 2, 3, 4]);

    // Bob decrypts every one; his view of session and index (read from the
    // ciphertext) equals what alice reported.
    let received = by_event(&env.run("bob", &["--json", "messages", &room]).success().records("message"));
    for (record, text) in sent.iter().zip(texts) {
        let got = &received[record["event_id"].as_str().unwrap()];
        assert_eq!(got["body"], text);
        assert_eq!(got["encrypted"], true);
        assert_eq!(got["session_id"], record["session_id"]);
        assert_eq!(got["message_index"], record["message_index"]);
        assert_eq!(got["sender"], alice.user_id.as_str());
    }
}

#[test]
fn plaintext_room_says_so() {
    let env = TestEnv::new();
    let alice = register("alice");
    env.login("alice", &alice);
    let room = env.run("alice", &["--json", "room", "create"]).success().records("room")[0]["room_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let sent = env.run("alice", &["--json", "send", &room, "in the clear"]).success().records("sent");
    assert_eq!(sent[0]["encrypted"], false);
    assert!(sent[0]["session_id"].is_null());
    let human = env.run("alice", &["send", &room, "again"]).success();
    assert!(human.stdout.contains("(not encrypted)"), "{}", human.stdout);
}

#[test]
fn invalid_utf8_on_stdin_stops_with_partial_status() {
    let env = TestEnv::new();
    let alice = register("alice");
    env.login("alice", &alice);
    let room = env.encrypted_room("alice", &[], &[]);
    let run = env.run_stdin("alice", &["--json", "send", &room], b"good line\n\xff\xfe bad\nnever sent\n").code(3);
    let sent = run.records("sent");
    assert_eq!(sent.len(), 1);
    assert!(run.stderr.contains("line 2 of stdin is not valid UTF-8"), "{}", run.stderr);
}

/// Issue 14: a reader that goes away (`| head -1`) never stops a batch: all
/// twenty messages reach bob, the pipeline exits 0, and stderr says why the
/// records stopped.
#[test]
fn a_closed_stdout_never_stops_a_batch() {
    let (env, _alice, _bob, room) = TestEnv::alice_and_bob(&[]);
    let script = "seq 1 20 | \"$@\" 2>\"$0\" | head -1";
    let stderr_file = env.home().join("send.err");
    let cmd = crate::common::wrapped(
        &env,
        "alice",
        &["--json", "send", &room],
        "bash",
        &["-c", script, stderr_file.to_str().unwrap()],
    );
    let run = env.run_with(cmd, None).success();
    assert_eq!(run.records("sent").len(), 1, "head kept one record: {}", run.stdout);
    let got = env.run("bob", &["--json", "messages", &room, "--limit", "50"]).success().records("message");
    let bodies: Vec<String> = got.iter().map(|m| m["body"].as_str().unwrap().to_owned()).collect();
    let expected: Vec<String> = (1..=20).map(|i| i.to_string()).collect();
    assert_eq!(bodies, expected, "every line went out, once, in order");
    let said = std::fs::read_to_string(&stderr_file).unwrap();
    assert!(said.contains("all 20 message(s) were sent"), "{said}");
}

/// Issue 14, item 6: --txn-prefix names one batch. Tomorrow's report under
/// today's prefix is refused (exit 2, nothing sent), not called sent; the
/// same input is delivered once; the journal is this device's and goes at
/// logout.
#[test]
fn a_reused_prefix_with_new_text_is_refused_and_the_journal_belongs_to_the_device() {
    let (env, alice, _bob, room) = TestEnv::alice_and_bob(&[]);
    let send =
        |input: &str| env.run_stdin("alice", &["--json", "send", &room, "--txn-prefix", "nightly"], input.as_bytes());
    let first = send("monday one\nmonday two\n").success().records("sent");
    assert!(first.iter().all(|r| r["already_sent"] == false));
    let again = send("monday one\nmonday two\n").success().records("sent");
    assert!(again.iter().all(|r| r["already_sent"] == true), "{again:?}");
    let refused = send("tuesday one\ntuesday two\n").code(2);
    assert!(refused.stderr.contains("already used for a different message"), "{}", refused.stderr);
    assert!(refused.stdout.is_empty());
    let got = env.run("bob", &["--json", "messages", &room]).success().records("message");
    let bodies: Vec<&str> = got.iter().filter_map(|m| m["body"].as_str()).collect();
    assert_eq!(bodies, ["monday one", "monday two"], "tuesday's lines were not sent");

    // After logout and a new login the old journal is gone: a new device
    // may reuse the prefix.
    env.run("alice", &["logout", "--yes"]).success();
    assert!(!env.profile_dir("alice").join("state.sqlite3").exists());
    // (A second login is not cross-signed yet: it sends in legacy mode.)
    env.login_all_devices("alice", &alice);
    let fresh = send("tuesday one\n").success().records("sent");
    assert_eq!(fresh[0]["already_sent"], false);
}

/// Issue 14, item 8: notices and emotes; blank messages skipped the same
/// from arguments as from stdin; an already-sent message says so in human
/// output; under --json an error is JSON only.
#[test]
fn notices_emotes_blank_arguments_and_json_only_errors() {
    let (env, _alice, _bob, room) = TestEnv::alice_and_bob(&[]);
    env.run("alice", &["send", &room, "--notice", "a bot speaks"]).success();
    env.run("alice", &["send", &room, "--emote", "waves"]).success();
    let got = env.run("bob", &["--json", "messages", &room]).success().records("message");
    let kinds: Vec<(&str, &str)> =
        got.iter().map(|m| (m["msgtype"].as_str().unwrap(), m["body"].as_str().unwrap())).collect();
    assert_eq!(kinds, [("m.notice", "a bot speaks"), ("m.emote", "waves")]);
    // Shown as clients show them (issue 20).
    let human = env.run("bob", &["messages", &room]).success().stdout;
    let alice_id = got[1]["sender"].as_str().unwrap();
    assert!(human.contains(&format!("* {alice_id} waves")), "{human}");
    assert!(human.contains(&format!("{alice_id} (notice): a bot speaks")), "{human}");

    let blank = env.run("alice", &["--json", "send", &room, "  ", "kept", ""]).success();
    assert_eq!(blank.records("sent").len(), 1);
    assert!(blank.stderr.contains("argument 1 is empty"), "{}", blank.stderr);
    let all_blank = env.run("alice", &["--json", "send", &room, " "]).code(2);
    // JSON only: every stderr line parses, warnings included (issue 20).
    let kinds: Vec<String> = all_blank
        .stderr
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            v["type"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(kinds, ["warning", "error"], "{}", all_blank.stderr);

    let again = |input: &str| env.run_stdin("alice", &["send", &room, "--txn-prefix", "p"], input.as_bytes());
    again("once\n").success();
    let human = again("once\n").success();
    assert!(human.stdout.contains("(already sent)"), "{}", human.stdout);
}

/// Issue 22: ratchet shares room keys itself before it encrypts (no second
/// SDK pass), so it must share with exactly whom matrix-sdk would: under
/// history visibility `joined`, members who are only invited get no key
/// (they may not read what is sent before they join); once they join, they
/// do. Checked at the invitee's device: which room keys arrived.
#[test]
fn under_joined_visibility_an_invitee_gets_no_room_key_until_it_joins() {
    let (env, _alice, _bob, room) = TestEnv::alice_and_bob(&[]);
    env.set_history_visibility("alice", &room, "joined");
    let dave = register("dave");
    env.login("dave", &dave);
    env.run("alice", &["room", "invite", &room, &dave.user_id]).success();
    let before = env.run("alice", &["--json", "send", &room, "before dave joins"]).success().records("sent").remove(0);
    env.run("dave", &["room", "join", &room]).success();
    let after = env.run("alice", &["--json", "send", &room, "after dave joined"]).success().records("sent").remove(0);
    env.run("dave", &["sync"]).success();
    // The SDK may share the same session with a new member, from the index
    // of the next message: what dave holds must start after `before`.
    let inbound = env.run("dave", &["--json", "sessions", &room]).success().records("inbound_session");
    let index = |r: &Value, field: &str| r[field].as_u64().unwrap();
    for s in inbound.iter().filter(|s| s["session_id"] == before["session_id"]) {
        assert!(
            index(s, "first_known_index") > index(&before, "message_index"),
            "the invitee got the key of what was sent before it joined: {s} / {before}"
        );
    }
    let got = inbound.iter().find(|s| s["session_id"] == after["session_id"]).expect("the member got no key");
    assert!(index(got, "first_known_index") <= index(&after, "message_index"), "{got} / {after}");
    let read = env.run("dave", &["--json", "messages", &room, "--limit", "5"]).success();
    assert!(
        read.records("message").iter().any(|m| m["body"] == "after dave joined"),
        "dave does not read what came after his join: {}",
        read.stdout
    );
}

/// Issue 30, item 2: the same --txn-prefix with the first message the same
/// and a later one changed. Nothing new was sent, so it is bad input (exit
/// 2) as the README says, not "sent 1 message(s)" (exit 3) with a hint to
/// run it again (which fails the same way); the hint it gives works.
#[test]
fn a_prefix_reused_with_a_later_message_changed_is_bad_input_and_its_hint_works() {
    let (env, _alice, _bob, room) = TestEnv::alice_and_bob(&[]);
    env.run("alice", &["send", "--txn-prefix", "T1", &room, "one", "two"]).success();
    let refused = env.run("alice", &["send", "--txn-prefix", "T1", &room, "one", "TWO"]).code(2);
    assert!(refused.stderr.contains("already used for a different message"), "{}", refused.stderr);
    assert!(refused.stderr.contains("nothing new was sent"), "{}", refused.stderr);
    assert!(!refused.stderr.contains("run the same command again"), "no hint that fails: {}", refused.stderr);
    assert!(!refused.stderr.contains("sent 1 message"), "{}", refused.stderr);
    // The hint: a new prefix for new content (`T1-$(date +%F)`), through a shell.
    let hint = refused
        .stderr
        .lines()
        .find_map(|l| l.split("e.g. ").nth(1))
        .unwrap_or_else(|| panic!("{}", refused.stderr))
        .trim()
        .to_owned();
    assert!(hint.starts_with("T1-$(date"), "{hint}");
    let line = format!("ratchet --profile alice send --txn-prefix \"{hint}\" '{room}' one TWO");
    let again = env.paste(&line).success();
    assert!(again.stdout.lines().count() >= 2, "{}", again.stdout);
    let got = env.run("bob", &["--json", "messages", &room]).success().records("message");
    let bodies: Vec<&str> = got.iter().filter_map(|m| m["body"].as_str()).collect();
    assert_eq!(bodies, ["one", "two", "one", "TWO"]);
}
