//! Issue 28: `sync` delivers every event once, in order, decrypted when it
//! can be — across gaps larger than one sync response (Synapse and
//! ratchet's filter give 50 events per room per sync), a follower stopped
//! through a burst, a key that comes later through another process, and two
//! processes that would both deliver. The sender is the nio peer (an
//! independent client), so nothing here relies on ratchet's own sending.

use std::time::Duration;

use serde_json::Value;

use crate::common::peer::NioPeer;
use crate::common::{register, TestEnv};

const WAIT: Duration = Duration::from_secs(120);

/// The bodies of the `message` records, in order.
fn bodies(records: &[Value]) -> Vec<String> {
    records.iter().filter(|v| v["type"] == "message").filter_map(|v| v["body"].as_str().map(str::to_owned)).collect()
}

/// The bodies starting with `prefix` in human lines (`… sender: BODY  [megolm …]`), in order.
fn human_bodies(stdout: &str, prefix: &str) -> Vec<String> {
    let marker = format!(": {prefix} ");
    stdout
        .lines()
        .filter_map(|l| {
            let at = l.find(&marker)? + 2;
            let rest = &l[at..];
            Some(rest.split("  [").next().unwrap_or(rest).trim().to_owned())
        })
        .collect()
}

fn texts(prefix: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{prefix} {i}")).collect()
}

/// nio sends `texts` (one process, in order).
fn burst(env: &TestEnv, nio: &NioPeer, room: &str, texts: &[String]) {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    for chunk in refs.chunks(100) {
        assert_eq!(nio.send(env, room, chunk).len(), chunk.len());
    }
}

/// 30 and then 300 messages between two syncs: each delivered once, in
/// order, decrypted; no gap record (300 is within the fill's budget).
#[test]
fn thirty_and_three_hundred_messages_between_two_syncs_are_all_delivered_once_in_order() {
    let env = TestEnv::new();
    let (_alice, _nina, nio, room) = env.alice_and_nio();
    env.run("alice", &["sync"]).success();
    for (prefix, n) in [("thirty", 30), ("three hundred", 300)] {
        let sent = texts(prefix, n);
        burst(&env, &nio, &room, &sent);
        let run = env.run("alice", &["--json", "sync"]).success();
        let got: Vec<String> = bodies(&run.json()).into_iter().filter(|b| b.starts_with(prefix)).collect();
        assert_eq!(got, sent, "{prefix}: every message once, in order");
        assert!(run.records("utd").is_empty(), "{}", run.stdout);
        assert!(run.records("gap").is_empty(), "{}", run.stdout);
        // Each carries its Megolm position, read from its ciphertext.
        let first = run.records("message").into_iter().find(|m| m["body"] == sent[0].as_str()).unwrap();
        assert!(first["message_index"].is_u64() && first["session_id"].is_string(), "{first}");
    }
    let again = env.run("alice", &["--json", "sync"]).success();
    assert!(bodies(&again.json()).is_empty(), "{}", again.stdout);
}

/// A follower stopped (SIGSTOP, as a suspended laptop) while 80 messages
/// arrive, then continued: all 80 delivered once, in order.
#[test]
fn a_follower_stopped_through_a_burst_delivers_all_of_it() {
    let env = TestEnv::new();
    let (_alice, _nina, nio, room) = env.alice_and_nio();
    env.run("alice", &["sync"]).success();
    let mut follower = env.spawn("alice", &["--json", "sync", "--follow"]);
    follower.wait_for_stderr("Following", WAIT);
    follower.signal("-STOP");
    let sent = texts("burst", 80);
    burst(&env, &nio, &room, &sent);
    follower.signal("-CONT");
    follower.wait_for_match("the last message", |v| v["body"] == "burst 80", WAIT);
    follower.signal("-TERM");
    let run = follower.finish(WAIT).success();
    assert_eq!(bodies(&run.json()), sent, "{}", run.stdout);
    assert!(run.records("gap").is_empty(), "{}", run.stdout);
}

/// A `send` after a burst keeps the burst for `sync` (its own sync fills
/// the gap), and says why its Megolm session changed: matrix-sdk reloads
/// the member list after a limited timeline and rotates
/// (`member_list_reload`).
#[test]
fn a_send_after_a_burst_then_sync_delivers_all_and_names_the_rotation() {
    let env = TestEnv::new();
    let (_alice, _nina, nio, room) = env.alice_and_nio();
    let before = env.run("alice", &["--json", "send", &room, "before"]).success().records("sent");
    env.run("alice", &["sync"]).success();
    let sent = texts("while away", 80);
    burst(&env, &nio, &room, &sent);
    let after = env.run("alice", &["--json", "send", &room, "after"]).success().records("sent");
    assert_ne!(after[0]["session_id"], before[0]["session_id"]);
    assert_eq!(after[0]["rotation"], "member_list_reload", "{}", after[0]);
    let run = env.run("alice", &["--json", "sync"]).success();
    let got: Vec<String> = bodies(&run.json()).into_iter().filter(|b| b.starts_with("while away")).collect();
    assert_eq!(got, sent, "{}", run.stdout);
    // The peer read alice's message in the new session.
    let at_nio = nio.messages(&env, &room).success();
    assert!(at_nio.records("message").iter().any(|m| m["body"] == "after"), "{}", at_nio.stdout);
}

/// Past the fill's budget (here RATCHET_GAP_LIMIT=20): the newest events
/// within it are delivered after a `gap` record whose command, pasted as
/// printed, delivers the rest; every message once.
#[test]
fn a_gap_beyond_the_budget_is_a_record_whose_command_fetches_the_rest() {
    let mut env = TestEnv::new();
    let (_alice, _nina, nio, room) = env.alice_and_nio();
    env.run("alice", &["sync"]).success();
    let sent = texts("many", 100);
    burst(&env, &nio, &room, &sent);
    env.set_env("RATCHET_GAP_LIMIT", "20");
    let run = env.run("alice", &["--json", "sync"]).success();
    let records = run.json();
    let gaps = run.records("gap");
    assert_eq!(gaps.len(), 1, "{}", run.stdout);
    let gap = &gaps[0];
    assert_eq!(gap["room_id"], room.as_str());
    assert_eq!(gap["reason"], "budget");
    assert_eq!(gap["fetched"], 20);
    // The gap record comes before the room's messages: what it names is older.
    let gap_at = records.iter().position(|v| v["type"] == "gap").unwrap();
    let first_message = records.iter().position(|v| v["type"] == "message").unwrap();
    assert!(gap_at < first_message, "{}", run.stdout);
    let first = bodies(&records);
    assert_eq!(first, sent[30..].to_vec(), "the newest 70: 20 filled, then the sync's own 50");
    // The command, pasted.
    let command = gap["command"].as_str().unwrap();
    assert!(command.contains("--fill-gap"), "{command}");
    let rest = env.paste(command).success();
    assert_eq!(human_bodies(&rest.stdout, "many"), sent[..30].to_vec(), "the rest, in order: {}", rest.stdout);
    // Pasted again: nothing more, and no error.
    let again = env.paste(command).success();
    assert!(human_bodies(&again.stdout, "many").is_empty(), "{}", again.stdout);
}

/// Two `sync` processes on one profile would split the stream: the second
/// is refused (exit 2) naming the first's pid, and nothing is lost.
#[test]
fn a_second_delivering_sync_is_refused_naming_the_first() {
    let (env, _alice, _bob, room) = TestEnv::alice_and_bob(&[]);
    env.run("bob", &["sync"]).success();
    let mut follower = env.spawn("bob", &["--json", "sync", "--follow"]);
    follower.wait_for_stderr("Following", WAIT);
    for args in [&["--json", "sync", "--follow"][..], &["--json", "sync"][..]] {
        let second = env.run("bob", args).code(2);
        let error: Value = serde_json::from_str(second.stderr.lines().last().unwrap()).unwrap();
        assert!(error["message"].as_str().unwrap().contains("is delivering"), "{error}");
        assert!(second.stdout.is_empty(), "{}", second.stdout);
    }
    let sent = texts("one stream", 8);
    let refs: Vec<&str> = sent.iter().map(String::as_str).collect();
    let mut args = vec!["send", &room];
    args.extend(refs);
    env.run("alice", &args).success();
    follower.wait_for_match("the last message", |v| v["body"] == "one stream 8", WAIT);
    follower.signal("-TERM");
    let run = follower.finish(WAIT).success();
    assert_eq!(bodies(&run.json()), sent);
    // `chat` is a view, not a second deliverer: it runs beside a follower.
    let chat_ok = env.spawn("bob", &["--json", "chat", &room]);
    let mut follower = env.spawn("bob", &["--json", "sync", "--follow"]);
    follower.wait_for_stderr("Following", WAIT);
    follower.signal("-TERM");
    follower.finish(WAIT).success();
    chat_ok.finish(WAIT).success();
}

/// A human reader that stops early (`| { head -1; sleep 2; }`: the pipe
/// stays open, so ratchet cannot tell): stderr names the cursor before what
/// this run delivered, and `--after-cursor` with it, pasted, prints it all
/// again, in human mode.
#[test]
fn a_human_reader_that_stops_early_is_told_where_to_resume() {
    let (env, _alice, _bob, room) = TestEnv::alice_and_bob(&[]);
    env.run("bob", &["sync"]).success();
    let sent = texts("line", 40);
    let mut args = vec!["send", room.as_str()];
    args.extend(sent.iter().map(String::as_str));
    env.run("alice", &args).success();
    let cmd = crate::common::wrapped(&env, "bob", &["sync"], "bash", &["-c", r#""$0" "$@" | { head -1; sleep 2; }"#]);
    let run = env.run_with(cmd, None).success();
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    let hint = run
        .stderr
        .lines()
        .find(|l| l.contains("--after-cursor"))
        .unwrap_or_else(|| panic!("no notice: {}", run.stderr))
        .to_owned();
    let command = hint.split('`').nth(1).expect("a command in backticks").to_owned();
    assert!(command.contains("--after-cursor"), "{hint}");
    let resumed = env.paste(&command).success();
    assert_eq!(human_bodies(&resumed.stdout, "line"), sent, "{}", resumed.stdout);
}

/// `chat` started twice with nothing typed shows no record twice; with
/// --replay it first shows the room's undelivered records.
#[test]
fn chat_does_not_replay_at_each_start_unless_asked() {
    let (env, _alice, _bob, room) = TestEnv::alice_and_bob(&[]);
    env.run("bob", &["sync"]).success();
    env.run("alice", &["send", &room, "before chat"]).success();
    let first = env.run_stdin("bob", &["--json", "chat", &room], b"").success();
    assert_eq!(bodies(&first.json()), ["before chat"], "its own first sync brought it: {}", first.stdout);
    let second = env.run_stdin("bob", &["--json", "chat", &room], b"").success();
    assert!(bodies(&second.json()).is_empty(), "not again: {}", second.stdout);
    let replay = env.run_stdin("bob", &["--json", "chat", "--replay", &room], b"").success();
    assert_eq!(bodies(&replay.json()), ["before chat"], "{}", replay.stdout);
    // sync still delivers it, once.
    let synced = env.run("bob", &["--json", "sync"]).success();
    assert_eq!(bodies(&synced.json()), ["before chat"]);
}

/// The newcomer path (issue 28): invited (a message sent meanwhile),
/// `room list`, `room join`, `sync` ×3 — under the default isolation mode, with a cross-signed sender (the
/// js-sdk peer, as Element). The sender's keys are fetched before its
/// message is judged: the message is delivered decrypted, never as
/// `unsigned_device`.
#[test]
fn the_newcomer_path_delivers_the_first_message_decrypted() {
    use crate::common::js_peer::JsPeer;
    let env = TestEnv::new();
    let (alice, eve, newbie) = (register("alice"), register("eve"), register("newbie"));
    env.login("alice", &alice);
    let mut js = JsPeer::login(&eve, "exclude-insecure", true);
    env.login("newbie", &newbie);
    let room = env.encrypted_room("alice", &[], &["--invite", &js.user_id, "--invite", &newbie.user_id]);
    js.join(&room);
    // Sent while newbie is invited: its key comes to newbie's device before
    // newbie knows the sender's keys.
    js.send(&room, "welcome aboard");
    env.run("newbie", &["room", "list"]).success();
    env.run("newbie", &["room", "join", &room]).success();
    let mut got = Vec::new();
    for _ in 0..3 {
        let run = env.run("newbie", &["--json", "sync"]).success();
        for v in run.json() {
            if v["type"] == "utd" {
                assert_ne!(v["sender_trust"], "unsigned_device", "keys not fetched is not an unsigned device: {v}");
            }
            got.push(v);
        }
    }
    let messages: Vec<&Value> = got.iter().filter(|v| v["type"] == "message").collect();
    assert!(messages.iter().any(|m| m["body"] == "welcome aboard"), "{got:?}");
}

/// A key that arrives after its message, through another process: bob's
/// `sync` delivers the message as `utd`; the key comes while bob's `room
/// list` syncs (another process); the next `sync` delivers a full
/// `message` record naming the `utd` it replaces.
#[test]
fn a_key_that_comes_later_through_another_process_turns_the_utd_into_a_message() {
    let env = TestEnv::new();
    let (alice, nina) = (register("alice"), register("nina"));
    env.login_all_devices("alice", &alice);
    let nio = NioPeer::login(&env, &nina);
    let room = env.encrypted_room("alice", &[], &["--invite", &nina.user_id]);
    nio.join(&env, &room);
    env.run("alice", &["sync"]).success();
    // nio sends now and the key 6 s later; alice syncs in between.
    let late = std::thread::scope(|s| {
        let sender = s.spawn(|| nio.run(&env, &["send-late", &room, "the key comes later", "6"]).success());
        std::thread::sleep(Duration::from_secs(3));
        let first = env.run("alice", &["--json", "sync"]).success();
        let sent = sender.join().unwrap();
        (first, sent)
    });
    let (first, sent) = late;
    let event_id = sent.records("sent")[0]["event_id"].clone();
    let utd = first.records("utd").into_iter().find(|u| u["event_id"] == event_id);
    let utd = utd.unwrap_or_else(|| panic!("the message came before its key: {}", first.stdout));
    assert_eq!(utd["reason"], "missing_megolm_session");
    // Another process receives the key.
    env.run("alice", &["room", "list"]).success();
    let next = env.run("alice", &["--json", "sync"]).success();
    let message = next.records("message").into_iter().find(|m| m["event_id"] == event_id);
    let message = message.unwrap_or_else(|| panic!("not delivered: {}", next.stdout));
    assert_eq!(message["body"], "the key comes later");
    assert_eq!(message["replaces"], utd["cursor"], "{message}");
    assert!(message["waited_ms"].as_u64().unwrap() >= 1000, "{message}");
    for field in ["msgtype", "sender_trust", "origin_server_ts", "session_id", "cursor"] {
        assert!(!message[field].is_null(), "{field} in {message}");
    }
    assert!(message["message_index"].is_u64(), "{message}");
    let again = env.run("alice", &["--json", "sync"]).success();
    assert!(again.records("message").is_empty(), "once: {}", again.stdout);
}

/// A key that comes by a key import in another process: the `utd` that
/// `sync` delivered becomes a `message` at the next `sync`, naming it.
#[test]
fn a_key_imported_by_another_process_turns_the_utd_into_a_message() {
    let (env, _alice, _bob, room) = TestEnv::alice_and_bob(&[]);
    let sent = env.run("alice", &["--json", "send", &room, "first"]).success().records("sent");
    let session = sent[0]["session_id"].as_str().unwrap().to_owned();
    env.run("bob", &["sync"]).success();
    let file = env.home().join("keys.txt");
    let file = file.to_str().unwrap();
    env.run_stdin("bob", &["keys", "export", file, "--passphrase-stdin"], b"pass phrase\n").success();
    env.run("bob", &["debug", "forget-room-key", &room, &session, "--yes"]).success();
    let second = env.run("alice", &["--json", "send", &room, "second"]).success().records("sent");
    assert_eq!(second[0]["session_id"], session.as_str(), "the same session");
    let first = env.run("bob", &["--json", "sync"]).success();
    let utd = first.records("utd").into_iter().find(|u| u["event_id"] == second[0]["event_id"]);
    let utd = utd.unwrap_or_else(|| panic!("undecryptable without its key: {}", first.stdout));
    let imported = env.run_stdin("bob", &["keys", "import", file, "--passphrase-stdin"], b"pass phrase\n").success();
    assert!(imported.stderr.contains("decrypt now"), "{}", imported.stderr);
    let next = env.run("bob", &["--json", "sync"]).success();
    let messages = next.records("message");
    assert_eq!(messages.len(), 1, "{}", next.stdout);
    assert_eq!(messages[0]["body"], "second");
    assert_eq!(messages[0]["replaces"], utd["cursor"]);
    assert_eq!(messages[0]["message_index"], second[0]["message_index"]);
}

/// Issue 28, item 7: your own identity reset on another device (as
/// Element's "reset cryptographic identity") is said by `sync` as a record
/// and a human line, with a fix that works when pasted: `recovery recover`
/// with the new recovery key, typed at its prompt, signs this device again.
#[test]
fn an_identity_reset_elsewhere_is_said_with_a_fix_that_works() {
    let env = TestEnv::new();
    let alice = register("alice");
    env.login("alice", &alice);
    env.run("alice", &["sync"]).success();
    let master = |profile: &str| {
        env.run(profile, &["--json", "identity"]).success().records("identity").remove(0)["master_key"].clone()
    };
    let before = master("alice");
    // Another device of alice's resets the identity and makes a new key.
    env.login("alice2", &alice);
    let password = format!("{}\n", alice.password);
    env.run_stdin("alice2", &["recovery", "reset", "--yes", "--password-stdin"], password.as_bytes()).success();
    let enabled = env.run("alice2", &["--json", "recovery", "enable"]).success();
    let key = enabled.records("recovery_key")[0]["recovery_key"].as_str().unwrap().to_owned();
    let after = master("alice2");
    assert_ne!(after, before);
    let here = env.run("alice2", &["--json", "sync"]).success();
    assert!(here.records("identity_reset").is_empty(), "not on the device that made it: {}", here.stdout);

    let mut said = None;
    for _ in 0..3 {
        let run = env.run("alice", &["--json", "sync"]).success();
        if let Some(r) = run.records("identity_reset").pop() {
            said = Some(r);
            break;
        }
    }
    let said = said.expect("sync says the identity was reset");
    assert_eq!(said["old_master_key"], before);
    assert_eq!(said["new_master_key"], after);
    assert_eq!(said["this_device_cross_signed"], false, "{said}");
    assert!(env.run("alice", &["--json", "sync"]).success().records("identity_reset").is_empty(), "said once");
    // The fix, pasted into a terminal, the new key typed at its prompt.
    let fix = said["fixes"][0].as_str().unwrap();
    let words: Vec<&str> = fix.split_whitespace().skip(1).collect();
    assert!(words.contains(&"recover"), "{fix}");
    let (code, screen) = crate::common::run_in_pty_typing(&env, "alice", &words, &[("Recovery key: ", &key)]);
    assert_eq!(code, 0, "{screen}");
    let identity = env.run("alice", &["--json", "identity"]).success().records("identity").remove(0);
    assert_eq!(identity["master_key"], after);
    assert_eq!(identity["this_device_cross_signed"], true, "{identity}");
}

/// A kill between keeping a limited sync's records and filling its gap
/// (`RATCHET_KILL_AT=kept`): the gap is kept with the records, the next
/// command that syncs fills it, and `sync` delivers every message once, in
/// order.
#[test]
fn a_kill_between_keeping_a_sync_and_filling_its_gap_loses_nothing() {
    let env = TestEnv::new();
    let (_alice, _nina, nio, room) = env.alice_and_nio();
    env.run("alice", &["sync"]).success();
    let sent = texts("killed", 80);
    burst(&env, &nio, &room, &sent);
    let mut killed = env.command("alice", &["--json", "sync"]);
    killed.env("RATCHET_KILL_AT", "kept");
    let killed = env.run_with(killed, None);
    assert_eq!(killed.code, -1, "{}", killed.stderr);
    // Another command syncs first: it fills the gap left open.
    env.run("alice", &["room", "list"]).success();
    let next = env.run("alice", &["--json", "sync"]).success();
    let mut seen = bodies(&killed.json());
    seen.extend(bodies(&next.json()));
    seen.retain(|b| b.starts_with("killed"));
    assert_eq!(seen, sent, "{}", next.stdout);
    // A gap number this profile does not have is a usage error.
    let bad = env.run("alice", &["sync", "--fill-gap", "999"]).code(2);
    assert!(bad.stderr.contains("no gap 999"), "{}", bad.stderr);
}

/// A room joined with more history than one response holds: its stream
/// starts at the join's sync (the server's timeline), with no gap fill
/// back into history from before the join and no `gap` record.
#[test]
fn a_room_joined_with_long_history_is_not_filled_back_before_the_join() {
    let env = TestEnv::new();
    let (alice, bob) = (register("alice"), register("bob"));
    env.login("alice", &alice);
    env.login("bob", &bob);
    env.run("bob", &["sync"]).success();
    let room = env.encrypted_room("alice", &[], &[]);
    let earlier = texts("before bob", 70);
    let stdin = earlier.join("\n") + "\n";
    env.run_stdin("alice", &["send", &room], stdin.as_bytes()).success();
    env.run("alice", &["room", "invite", &room, &bob.user_id]).success();
    env.run("bob", &["room", "join", &room]).success();
    let run = env.run("bob", &["--json", "sync"]).success();
    assert!(run.records("gap").is_empty(), "{}", run.stdout);
    let got: Vec<String> = bodies(&run.json()).into_iter().filter(|b| b.starts_with("before bob")).collect();
    assert!(got.len() < 50, "history before the join is not delivered as new: {} of it", got.len());
}
