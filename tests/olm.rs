//! Olm: devices, sessions per device (R7, R8), unwedge (R9–R11), recovery
//! in `sync` (R9–R11, R13), and what matrix-sdk alone does — checked at
//! runtime, since ratchet's behaviour is defined against it.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::common::{register, TestEnv, TestUser};

struct Pair {
    env: TestEnv,
    alice: TestUser,
    bob: TestUser,
    alice_device: String,
    bob_device: String,
    room: String,
}

/// alice and bob in an encrypted room, with an Olm session from alice to
/// bob already used (alice sent one message).
fn pair() -> Pair {
    let env = TestEnv::new();
    let (alice, bob) = (register("alice"), register("bob"));
    let alice_device = env.login("alice", &alice)["device_id"].as_str().unwrap().to_owned();
    let bob_device = env.login("bob", &bob)["device_id"].as_str().unwrap().to_owned();
    let room = env.encrypted_room("alice", &[("bob", &bob)], &[]);
    env.run("alice", &["send", &room, "hello"]).success();
    env.run("bob", &["sync"]).success();
    Pair { env, alice, bob, alice_device, bob_device, room }
}

/// The `olm_device` record `profile` has for `user`'s `device`.
fn olm_view(env: &TestEnv, profile: &str, user: &TestUser, device: &str) -> Value {
    let run = env.run(profile, &["--json", "olm", &user.user_id, device]).success();
    run.records("olm_device").into_iter().next().expect("one olm_device record")
}

fn session_ids(view: &Value) -> BTreeSet<String> {
    view["sessions"].as_array().unwrap().iter().map(|s| s["session_id"].as_str().unwrap().to_owned()).collect()
}

fn to_device(run: &crate::common::Run, event_type: &str) -> Vec<Value> {
    run.records("to_device").into_iter().filter(|r| r["event_type"] == event_type).collect()
}

#[test]
fn devices_lists_keys_that_match_whoami() {
    let p = pair();
    let bob_who = &p.env.run("bob", &["--json", "whoami"]).success().records("whoami")[0];
    let devices = p.env.run("alice", &["--json", "devices", &p.bob.user_id]).success().records("device");
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0]["device_id"], p.bob_device.as_str());
    assert_eq!(devices[0]["curve25519"], bob_who["curve25519"]);
    assert_eq!(devices[0]["ed25519"], bob_who["ed25519"]);
    assert_eq!(devices[0]["own"], false);
    let all = p.env.run("alice", &["--json", "devices"]).success().records("device");
    assert!(all.iter().any(|d| d["device_id"] == p.alice_device.as_str() && d["own"] == true), "{all:?}");
}

#[test]
fn unwedge_gives_the_peer_a_new_session_announced_by_m_dummy() {
    let p = pair();
    let before = session_ids(&olm_view(&p.env, "bob", &p.alice, &p.alice_device));
    assert_eq!(before.len(), 1, "alice's first message opened one session");

    let rec = p.env.run("alice", &["--json", "unwedge", &p.bob.user_id, &p.bob_device]).success().records("unwedged");
    let new_id = rec[0]["session_id"].as_str().unwrap().to_owned();
    assert_eq!(rec[0]["dummy_sent"], true);
    assert!(!before.contains(&new_id));
    // On alice's side the SDK will now encrypt with the new session.
    let mine = olm_view(&p.env, "alice", &p.bob, &p.bob_device);
    assert_eq!(mine["sdk_choice"], new_id.as_str());

    // Bob receives an Olm-encrypted m.dummy and holds a session he had never
    // seen: only a pre-key message can create one, so this was the new
    // session's pre-key message.
    let sync = p.env.run("bob", &["--json", "sync"]).success();
    let dummies = to_device(&sync, "m.dummy");
    assert_eq!(dummies.len(), 1, "{}", sync.stdout);
    assert_eq!(dummies[0]["sender"], p.alice.user_id.as_str());
    assert_eq!(dummies[0]["encrypted"], true);
    let after = olm_view(&p.env, "bob", &p.alice, &p.alice_device);
    assert!(session_ids(&after).contains(&new_id), "{after}");
    assert_eq!(after["r8_min_cap"], 4);
    assert_eq!(after["session_count"], 2);
}

#[test]
fn r11_refuses_a_second_unwedge_within_the_hour_even_from_a_new_process() {
    let p = pair();
    p.env.run("alice", &["unwedge", &p.bob.user_id, &p.bob_device]).success();
    // A new process: the record is on disk.
    let run = p.env.run("alice", &["--json", "unwedge", &p.bob.user_id]).code(5);
    assert!(run.stdout.is_empty());
    assert!(run.error_lines()[0].contains("(R11)"), "{}", run.stderr);
    assert!(run.error_lines()[0].contains(&p.bob_device), "{}", run.stderr);
    assert!(run.error_lines()[0].contains("in 59m") || run.error_lines()[0].contains("in 60m"), "{}", run.stderr);
    let sessions_at_bob = {
        p.env.run("bob", &["sync"]).success();
        session_ids(&olm_view(&p.env, "bob", &p.alice, &p.alice_device))
    };
    assert_eq!(sessions_at_bob.len(), 2, "the refused unwedge created nothing");

    let forced = p.env.run("alice", &["--json", "unwedge", &p.bob.user_id, &p.bob_device, "--force"]).success();
    assert!(forced.stderr.contains("overriding R11"), "{}", forced.stderr);
    let rec = &forced.records("unwedged")[0];
    assert_eq!(rec["forced"], true);
    p.env.run("bob", &["sync"]).success();
    let now = session_ids(&olm_view(&p.env, "bob", &p.alice, &p.alice_device));
    assert!(now.contains(rec["session_id"].as_str().unwrap()));
    assert_eq!(now.len(), 3);

    let unknown = p.env.run("alice", &["unwedge", &p.bob.user_id, "NOSUCHDEVICE"]).code(1);
    assert!(unknown.stderr.contains("unknown device NOSUCHDEVICE"), "{}", unknown.stderr);
}

/// `debug forget-olm` on bob, then alice rotates and sends: her room key
/// cannot be decrypted at bob. Returns the lost message's `sent` record.
fn wedge(p: &Pair) -> Value {
    let forgot = p
        .env
        .run("bob", &["--json", "debug", "forget-olm", &p.alice.user_id, &p.alice_device, "--yes"])
        .success()
        .records("forgot_olm");
    assert!(!forgot[0]["deleted_sessions"].as_array().unwrap().is_empty());
    assert_eq!(olm_view(&p.env, "bob", &p.alice, &p.alice_device)["session_count"], 0);
    p.env.run("alice", &["rotate", &p.room]).success();
    p.env.run("alice", &["--json", "send", &p.room, "lost in the wedge"]).success().records("sent").remove(0)
}

#[test]
fn sync_recovers_from_a_wedged_olm_session() {
    let p = pair();
    let lost = wedge(&p);

    let sync = p.env.run("bob", &["--json", "sync"]).success();
    // The room key arrived over Olm and could not be decrypted...
    let failed: Vec<Value> = to_device(&sync, "m.room.encrypted");
    assert_eq!(failed.len(), 1, "{}", sync.stdout);
    assert_eq!(failed[0]["utd_reason"], "decryption_failure", "ratchet's own name (issue 20)");
    // ...so ratchet replaced the session, sent m.dummy, and asked again for
    // the Megolm session the broken one carried (R9, R10, R13).
    let steps: Vec<Value> = sync.records("recovery");
    let names: Vec<&str> = steps.iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["olm_undecryptable", "new_olm_session", "dummy_sent", "key_request"], "{}", sync.stdout);
    assert_eq!(steps[1]["device_id"], p.alice_device.as_str());
    assert_eq!(steps[1]["created_by"], "ratchet");
    let new_session = steps[1]["session_id"].as_str().unwrap().to_owned();
    assert_eq!(steps[3]["session_id"], lost["session_id"]);
    assert_eq!(steps[3]["room_id"], p.room.as_str());

    // Alice receives both: the m.dummy over the new session, and the request.
    let at_alice = p.env.run("alice", &["--json", "sync"]).success();
    let dummies = to_device(&at_alice, "m.dummy");
    assert_eq!(dummies.len(), 1, "{}", at_alice.stdout);
    assert_eq!(dummies[0]["sender"], p.bob.user_id.as_str());
    assert_eq!(to_device(&at_alice, "m.room_key_request").len(), 1, "{}", at_alice.stdout);
    let alice_view = olm_view(&p.env, "alice", &p.bob, &p.bob_device);
    assert!(session_ids(&alice_view).contains(&new_session));

    // R13 as far as matrix-sdk 0.18 lets it go: alice's SDK answers the
    // request with m.forwarded_room_key, which reaches bob...
    let at_bob = p.env.run("bob", &["--json", "sync"]).success();
    let forwards = to_device(&at_bob, "m.forwarded_room_key");
    assert_eq!(forwards.len(), 1, "{}", at_bob.stdout);
    assert_eq!(forwards[0]["sender"], p.alice.user_id.as_str());
    assert_eq!(forwards[0]["session_id"], lost["session_id"]);
    // ... and is dropped, as sync says: only our own verified devices'
    // forwards are accepted.
    assert_eq!(forwards[0]["forward"], "dropped", "{}", at_bob.stdout);
    assert!(forwards[0]["dropped_because"].as_str().unwrap().contains("another user"), "{}", at_bob.stdout);

    // Bob decrypts alice's next messages, and uses the new session.
    let next = p.env.run("alice", &["--json", "send", &p.room, "after recovery"]).success().records("sent");
    let msgs = p.env.run("bob", &["--json", "messages", &p.room]).code(3);
    let got = msgs.records("message");
    assert_eq!(got.last().unwrap()["body"], "after recovery");
    assert_eq!(got.last().unwrap()["event_id"], next[0]["event_id"]);
    let view = olm_view(&p.env, "bob", &p.alice, &p.alice_device);
    assert_eq!(view["session_count"], 1);
    assert_eq!(view["sdk_choice"], new_session.as_str());
    assert_eq!(view["r7_choice"], new_session.as_str());
    assert_eq!(view["choices_differ"], false);

    // ...and bob's SDK drops the forward: it accepts forwarded keys only from
    // its own verified devices. The lost message stays undecryptable; this
    // pins the SDK's behaviour that the README documents.
    let utd = msgs.records("utd");
    assert!(utd.iter().any(|u| u["event_id"] == lost["event_id"]), "{}", msgs.stdout);
}

#[test]
fn a_second_wedge_within_the_hour_is_not_unwedged_again() {
    let p = pair();
    wedge(&p);
    let first = p.env.run("bob", &["--json", "sync"]).success();
    assert!(first.records("recovery").iter().any(|r| r["step"] == "dummy_sent"));
    p.env.run("alice", &["sync"]).success();

    wedge(&p);
    let second = p.env.run("bob", &["--json", "sync"]).success();
    let steps: Vec<String> =
        second.records("recovery").iter().map(|r| r["step"].as_str().unwrap().to_owned()).collect();
    assert_eq!(steps, ["olm_undecryptable", "rate_limited"], "{}", second.stdout);
    let wait = second.records("recovery")[1]["wait_ms"].as_u64().unwrap();
    assert!(wait > 3_500_000 && wait <= 3_600_000, "{wait}");
    let at_alice = p.env.run("alice", &["--json", "sync"]).success();
    assert!(to_device(&at_alice, "m.dummy").is_empty(), "{}", at_alice.stdout);
}

/// What ratchet adds is measured against the SDK alone: with recovery off,
/// matrix-sdk 0.18 creates no session and sends no m.dummy for a device it
/// has no session with (matrix-rust-sdk#3427; for an existing session it
/// queues an m.dummy that it never sends, see src/olm.rs).
#[test]
fn matrix_sdk_alone_sends_no_m_dummy() {
    let p = pair();
    wedge(&p);
    for _ in 0..2 {
        let run = p.env.run("bob", &["--json", "sync", "--no-recover"]).success();
        assert!(run.records("recovery").is_empty());
    }
    assert_eq!(olm_view(&p.env, "bob", &p.alice, &p.alice_device)["session_count"], 0);
    let at_alice = p.env.run("alice", &["--json", "sync"]).success();
    assert!(at_alice.records("to_device").is_empty(), "{}", at_alice.stdout);
}

/// R7 applied to what ratchet sends (issue 29), against the libolm peer:
/// alice's first message opens S1 with the nio device; `unwedge --force`
/// makes S2 (announced by an m.dummy); nio keeps writing over S1 and then
/// loses S2 (as a restore from an older backup would). R7 says use the
/// session that last received: S1. matrix-sdk-crypto 0.18 as published
/// encrypts with the newest created (S2, which nio no longer has: a wedge);
/// with ratchet's patch (`patches/matrix-sdk-crypto-r7.diff`) the next room
/// key goes over S1 and nio decrypts the next message. `olm` shows R7's
/// choice and the SDK's as the same.
#[test]
fn r7_the_next_room_key_goes_over_the_session_that_last_received() {
    let env = TestEnv::new();
    let (alice, nina, nio, room) = env.alice_and_nio();
    env.run("alice", &["send", &room, "opens S1"]).success();
    nio.messages(&env, &room).success();
    let newer = env
        .run("alice", &["--json", "unwedge", &nina.user_id, &nio.device_id, "--force"])
        .success()
        .records("unwedged");
    let newer = newer[0]["session_id"].as_str().unwrap().to_owned();
    // nio takes S2 up (the m.dummy), as a peer does.
    nio.messages(&env, &room).success();
    // The SDK keeps the times in whole seconds: let a second pass so that
    // S1's receipt comes after S2's creation.
    std::thread::sleep(std::time::Duration::from_millis(1100));

    let dummy = nio.run(&env, &["olm-dummy-oldest", &alice.user_id, &env_device(&env, "alice")]).success();
    let older = dummy.records("olm_dummy")[0]["session_id"].as_str().unwrap().to_owned();
    assert_ne!(older, newer);
    env.run("alice", &["sync"]).success();

    let view = olm_view(&env, "alice", &nina, &nio.device_id);
    assert_eq!(view["session_count"], 2, "{view}");
    assert_eq!(view["r7_choice"].as_str(), Some(older.as_str()), "{view}");
    assert_eq!(view["sdk_choice"].as_str(), Some(older.as_str()), "R7 applied: {view}");
    assert_eq!(view["choices_differ"], false);
    let human = env.run("alice", &["olm", &nina.user_id, &nio.device_id]).success();
    assert!(human.stdout.contains("sdk uses, R7 choice"), "{}", human.stdout);

    // nio loses S2; alice's next room key must go over S1.
    let forgot = nio.run(&env, &["olm-forget-newest", &alice.user_id, &env_device(&env, "alice")]).success();
    assert_eq!(forgot.records("olm_forgot")[0]["session_id"].as_str(), Some(newer.as_str()));
    env.run("alice", &["rotate", &room]).success();
    env.run("alice", &["send", &room, "over S1"]).success();
    let at_nio = nio.messages(&env, &room).success();
    let got = at_nio.records("message").into_iter().find(|m| m["body"] == "over S1");
    assert!(got.is_some(), "nio decrypts the message whose key went over S1: {}", at_nio.stdout);
}

fn env_device(env: &TestEnv, profile: &str) -> String {
    env.run(profile, &["--json", "whoami"]).success().records("whoami")[0]["device_id"].as_str().unwrap().to_owned()
}

/// `profile` runs `args` with its clock moved `offset` ahead (libfaketime's
/// `faketime`, installed by scripts/setup-system.sh).
fn run_later(env: &TestEnv, profile: &str, offset: &str, args: &[&str]) -> crate::common::Run {
    env.run_with(crate::common::wrapped(env, profile, args, "faketime", &["-f", offset]), None)
}

/// What matrix-sdk 0.18 does alone with an undecryptable Olm message from a
/// device it holds a session with (`sdk/olm.rs`): nothing while its newest
/// session is under an hour old; past that, it creates a session but never
/// sends the m.dummy it queues. ratchet's recovery then sends it over the
/// SDK's session (`created_by: sdk`).
#[test]
fn matrix_sdk_unwedges_alone_only_past_an_hour_and_without_m_dummy() {
    let p = pair();
    // bob makes S2 and tells alice; her SDK encrypts with S2 from now on.
    let s2 = p.env.run("bob", &["--json", "unwedge", &p.alice.user_id, &p.alice_device]).success();
    let s2 = s2.records("unwedged")[0]["session_id"].as_str().unwrap().to_owned();
    p.env.run("alice", &["sync"]).success();
    // bob loses S2 only: he still holds S1.
    // (By the first 10 characters of its id, as human output shows it.)
    let s2_short: String = s2.chars().take(10).collect();
    let forgot = p.env.run(
        "bob",
        &["--json", "debug", "forget-olm", &p.alice.user_id, &p.alice_device, "--session", &s2_short, "--yes"],
    );
    assert_eq!(forgot.success().records("forgot_olm")[0]["deleted_sessions"], serde_json::json!([s2]));
    assert_eq!(olm_view(&p.env, "bob", &p.alice, &p.alice_device)["session_count"], 1);
    let room_key_over_s2 = || {
        p.env.run("alice", &["rotate", &p.room]).success();
        p.env.run("alice", &["send", &p.room, "over S2"]).success();
    };

    // S1 is minutes old: the SDK does nothing.
    room_key_over_s2();
    let now = p.env.run("bob", &["--json", "sync", "--no-recover"]).success();
    assert!(now.records("to_device").iter().any(|t| t["utd_reason"].is_string()), "{}", now.stdout);
    assert_eq!(olm_view(&p.env, "bob", &p.alice, &p.alice_device)["session_count"], 1);

    // Two hours on, S1 is over an hour old: the SDK makes a session itself,
    // and sends nothing over it.
    room_key_over_s2();
    run_later(&p.env, "bob", "+2h", &["--json", "sync", "--no-recover"]).success();
    let view = olm_view(&p.env, "bob", &p.alice, &p.alice_device);
    assert_eq!(view["session_count"], 2, "{view}");
    let at_alice = p.env.run("alice", &["--json", "sync"]).success();
    assert!(to_device(&at_alice, "m.dummy").is_empty(), "{}", at_alice.stdout);

    // Two more hours on, with ratchet's recovery: the SDK makes one again,
    // and ratchet sends the m.dummy over it.
    room_key_over_s2();
    let run = run_later(&p.env, "bob", "+4h", &["--json", "sync"]).success();
    let created = run.records("recovery");
    let new = created.iter().find(|r| r["step"] == "new_olm_session").unwrap_or_else(|| panic!("{}", run.stdout));
    assert_eq!(new["created_by"], "sdk", "{}", run.stdout);
    assert!(created.iter().any(|r| r["step"] == "dummy_sent"), "{}", run.stdout);
    let at_alice = p.env.run("alice", &["--json", "sync"]).success();
    assert_eq!(to_device(&at_alice, "m.dummy").len(), 1, "{}", at_alice.stdout);
}

/// Issue 14: an undecryptable Olm message that another command's sync
/// received is not lost to recovery: the next `sync` shows it and recovers
/// (R9, R10), while `doctor` in between still saw the wedge as it was.
#[test]
fn sync_recovers_from_a_wedge_another_command_received() {
    let p = pair();
    wedge(&p);
    p.env.run("bob", &["room", "list"]).success();
    let seen = p.env.run("bob", &["--json", "doctor", &p.room]).code(3).records("diagnosis");
    assert_eq!(seen.last().unwrap()["cause"], "olm_session_missing", "{seen:?}");
    let run = p.env.run("bob", &["--json", "sync"]).success();
    let utd = run.records("to_device").into_iter().filter(|t| !t["utd_reason"].is_null()).count();
    assert!(utd >= 1, "the failed Olm message is shown by sync: {}", run.stdout);
    let steps: Vec<String> = run.records("recovery").iter().map(|r| r["step"].as_str().unwrap().to_owned()).collect();
    assert!(steps.contains(&"new_olm_session".to_owned()) && steps.contains(&"dummy_sent".to_owned()), "{steps:?}");
}

/// Issue 18: an undecryptable Olm message is consumed by the recovery that
/// handled it. `chat` takes turns beside other commands that keep such
/// messages; before, every turn after another process's fed the same old
/// failure back into recovery (a second `olm_undecryptable`, then
/// `rate_limited`, each turn). Now: one recovery, whatever ran.
#[test]
fn a_failure_is_recovered_from_once_while_chat_takes_turns() {
    let p = pair();
    let wait = std::time::Duration::from_secs(60);
    let mut chat = p.env.spawn("bob", &["--json", "chat", &p.room]);
    chat.wait_for_stderr("Chatting in", wait);
    wedge(&p);
    for turn in ["turn one", "turn two", "turn three"] {
        // Another process on bob's profile syncs (and keeps what it got)...
        p.env.run("bob", &["--lock-timeout", "30", "room", "list"]).success();
        // ...then chat takes a turn: it sends the line, syncs and recovers.
        chat.answer(turn);
        chat.wait_for_match("the line's echo", |v| v["type"] == "message" && v["body"] == turn, wait);
    }
    chat.signal("-TERM");
    chat.finish(wait).success();
    let run = p.env.run("bob", &["--json", "sync"]).success();
    let steps: Vec<String> = run.records("recovery").iter().map(|r| r["step"].as_str().unwrap().to_owned()).collect();
    assert_eq!(steps.iter().filter(|s| *s == "olm_undecryptable").count(), 1, "{steps:?}\n{}", run.stdout);
    assert!(!steps.contains(&"rate_limited".to_owned()), "{steps:?}");
    assert!(steps.contains(&"new_olm_session".to_owned()), "{steps:?}");
}
