//! Issue 29: history sharing on invite (MSC4268, spec v1.19), ratchet to
//! ratchet, in the default (exclude-insecure) isolation mode — the
//! scenarios of matrix-rust-sdk's own `shared_history.rs` integration
//! tests: shared on invite and read by the new member, the history
//! visibility respected (`m.history_not_shared`), the opt-out, a bundle
//! that arrives after the join and is taken by the next process, keys
//! downloaded from the backup first, and the room key rotated when a
//! member leaves or is banned.

use serde_json::{json, Value};

use crate::common::js_peer::JsPeer;
use crate::common::{api, enc, register, TestEnv};

fn send(env: &TestEnv, profile: &str, room: &str, texts: &[&str]) -> Vec<Value> {
    let mut args = vec!["--json", "send", room];
    args.extend_from_slice(texts);
    env.run(profile, &args).success().records("sent")
}

/// `messages ROOM` as `profile`: the message records and the utd records.
fn history(env: &TestEnv, profile: &str, room: &str) -> (Vec<Value>, Vec<Value>) {
    // Exit 3 (partial) when some could not be decrypted.
    let run = env.run(profile, &["--json", "messages", room, "--limit", "50"]);
    assert!(run.code == 0 || run.code == 3, "{}\n{}", run.stdout, run.stderr);
    (run.records("message"), run.records("utd"))
}

fn body_of<'a>(records: &'a [Value], body: &str) -> Option<&'a Value> {
    records.iter().find(|r| r["body"] == body)
}

/// carol, in exclude-insecure mode, has fetched alice's identity before
/// (`devices`; sharing any room with her does it too): matrix-sdk 0.18
/// drops a bundle from an identity not fetched yet (matrix-rust-sdk#5770,
/// tested below).
fn knows(env: &TestEnv, profile: &str, user: &str) {
    env.run(profile, &["--json", "devices", user]).success();
}

/// Alice invites carol into a room where alice and bob talked: the invite
/// shares the keys (alice's own and bob's), carol's join takes them, and
/// carol reads the history with its marker — who shared it.
#[test]
fn an_invite_shares_the_history_and_the_new_member_reads_it_marked() {
    let (env, alice, _bob, room) = TestEnv::alice_and_bob(&[]);
    let carol = register("carol");
    env.login("carol", &carol);
    knows(&env, "carol", &alice.user_id);
    send(&env, "alice", &room, &["from alice before carol"]);
    send(&env, "bob", &room, &["from bob before carol"]);
    env.run("alice", &["sync"]).success();

    let inv = env.run("alice", &["-vvv", "--json", "room", "invite", &room, &carol.user_id]).success();
    eprintln!(
        "INVITE {}",
        inv.stderr
            .lines()
            .filter(|l| l.contains("istory") || l.contains("bundle") || l.contains("share"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let invited = inv.records("invited");
    assert_eq!(invited[0]["history"], "shared", "{invited:?}");
    assert!(invited[0]["history_keys"].as_u64().unwrap() >= 2, "alice's and bob's sessions: {invited:?}");
    assert_eq!(invited[0]["history_not_shared"], 0);

    let joined = env.run("carol", &["--json", "room", "join", &room]).success();
    let record = &joined.records("room")[0];
    assert!(record["history_keys"].as_u64().unwrap() >= 2, "{}", joined.stdout);
    assert_eq!(record["history_shared_by"], alice.user_id.as_str());
    assert!(joined.stderr.contains("shared by"), "{}", joined.stderr);

    let (messages, utds) = history(&env, "carol", &room);
    assert!(utds.is_empty(), "everything from before the invite decrypts: {utds:?}");
    for body in ["from alice before carol", "from bob before carol"] {
        let m = body_of(&messages, body).unwrap_or_else(|| panic!("{body}: {messages:?}"));
        assert_eq!(m["shared_by"], alice.user_id.as_str(), "{m}");
        assert!(m["shared_by_device"].is_string(), "{m}");
    }
    // `sessions` tells those keys apart.
    let inbound = env.run("carol", &["--json", "sessions", &room]).success().records("inbound_session");
    assert!(inbound.len() >= 2 && inbound.iter().all(|s| s["shared_by"] == alice.user_id.as_str()), "{inbound:?}");
    // The human line says it, as Element marks such messages.
    let human = env.run("carol", &["messages", &room]).success();
    let line = human.stdout.lines().find(|l| l.contains("from bob before carol")).expect("bob's line");
    assert!(line.contains(&format!("history shared by {}", alice.user_id)), "{line}");
    // What is sent after the join comes by the ordinary way: no marker.
    send(&env, "alice", &room, &["after carol joined"]);
    let (messages, _) = history(&env, "carol", &room);
    assert_eq!(body_of(&messages, "after carol joined").expect("read")["shared_by"], Value::Null);
}

/// History visibility is respected: keys of messages sent while it was
/// `joined` go as `m.history_not_shared`, and an invite while it is
/// `joined` shares nothing; `--no-history` shares nothing either.
#[test]
fn history_visibility_and_the_opt_out_are_respected() {
    let (env, alice, _bob, room) = TestEnv::alice_and_bob(&[]);
    let (carol, dave, erin) = (register("carol"), register("dave"), register("erin"));
    env.login("carol", &carol);
    env.login("dave", &dave);
    env.login("erin", &erin);
    knows(&env, "erin", &alice.user_id);
    send(&env, "alice", &room, &["shared one"]);
    env.set_history_visibility("alice", &room, "joined");
    env.run("alice", &["sync"]).success();
    send(&env, "alice", &room, &["said while joined-only"]);

    // While the visibility is `joined`, nothing is shared.
    let invited = env.run("alice", &["--json", "room", "invite", &room, &carol.user_id]).success().records("invited");
    assert_eq!(invited[0]["history"], "not_shared", "{invited:?}");
    assert_eq!(invited[0]["history_reason"], "visibility_joined");
    let human = env.run("alice", &["room", "invite", &room, &dave.user_id, "--no-history"]).success();
    assert!(human.stdout.contains("history not shared (--no-history)"), "{}", human.stdout);

    // Back to `shared`: the earlier session goes, the joined-only one is
    // told `m.history_not_shared`.
    env.set_history_visibility("alice", &room, "shared");
    env.run("alice", &["sync"]).success();
    let invited = env.run("alice", &["--json", "room", "invite", &room, &erin.user_id]).success().records("invited");
    assert_eq!(invited[0]["history"], "shared", "{invited:?}");
    assert!(invited[0]["history_not_shared"].as_u64().unwrap() >= 1, "{invited:?}");
    env.run("erin", &["--json", "room", "join", &room]).success();
    let (messages, utds) = history(&env, "erin", &room);
    assert!(body_of(&messages, "shared one").is_some(), "{messages:?}");
    // Synapse shows erin nothing of what was said while `joined` applied;
    // if it does, its key is withheld as not shared, never decrypted.
    assert!(body_of(&messages, "said while joined-only").is_none(), "{messages:?}");
    for u in &utds {
        assert_eq!(u["withheld_code"], "m.history_not_shared", "{u}");
    }

    // Dave, invited with --no-history, reads nothing from before.
    env.run("dave", &["--json", "room", "join", &room]).success();
    let (messages, _) = history(&env, "dave", &room);
    assert!(body_of(&messages, "shared one").is_none(), "{messages:?}");
}

/// A bundle that comes after the join (carol joined an invite that shared
/// nothing; alice then shares with `room invite` again): the join's
/// process is gone, and the next process that syncs takes it, within the
/// SDK's day, and the messages carol could not read are delivered.
#[test]
fn a_bundle_after_the_join_is_taken_by_the_next_process() {
    let (env, alice, _bob, room) = TestEnv::alice_and_bob(&[]);
    let carol = register("carol");
    env.login("carol", &carol);
    knows(&env, "carol", &alice.user_id);
    send(&env, "alice", &room, &["before carol, late"]);
    env.run("alice", &["room", "invite", &room, &carol.user_id, "--no-history"]).success();
    env.run("carol", &["--json", "room", "join", &room]).success();
    let first = env.run("carol", &["--json", "sync"]).success();
    let utd = first.records("utd");
    assert!(utd.iter().any(|u| u["sender"] == alice.user_id.as_str()), "undecryptable at first: {}", first.stdout);

    // Inviting a member again shares the history (and says the invite
    // itself had nothing to do).
    let again = env.run("alice", &["--json", "room", "invite", &room, &carol.user_id]).success().records("invited");
    assert_eq!(again[0]["already"], "joined", "{again:?}");
    assert_eq!(again[0]["history"], "shared", "{again:?}");

    let later = env.run("carol", &["--json", "sync"]).success();
    assert!(later.stderr.contains("shared when inviting you"), "{}", later.stderr);
    let late = later.records("message");
    let m = body_of(&late, "before carol, late").unwrap_or_else(|| panic!("{}", later.stdout));
    assert!(m["replaces"].is_string(), "delivered as the late decryption of the utd: {m}");
    assert_eq!(m["shared_by"], alice.user_id.as_str());
}

/// The inviter's keys are fetched from the backup before sharing: alice's
/// second device, which never received the room's keys, shares them.
#[test]
fn the_inviter_downloads_the_room_keys_from_the_backup_first() {
    let (env, alice, _bob, room) = TestEnv::alice_and_bob(&[]);
    let carol = register("carol");
    env.login("carol", &carol);
    knows(&env, "carol", &alice.user_id);
    let enabled = env.run("alice", &["--json", "recovery", "enable"]).success();
    let key = enabled.records("recovery_key")[0]["recovery_key"].as_str().expect("recovery key").to_owned();
    send(&env, "alice", &room, &["backed up before the second device"]);
    env.run("alice", &["--json", "backup", "status"]).success();

    // A second device of alice, recovered (secrets, not room keys).
    env.login("alice2", &alice);
    env.run_stdin("alice2", &["recovery", "recover", "--key-stdin"], format!("{key}\n").as_bytes()).success();
    let invited = env.run("alice2", &["--json", "room", "invite", &room, &carol.user_id]).success().records("invited");
    assert_eq!(invited[0]["history"], "shared", "{invited:?}");
    assert!(invited[0]["history_keys"].as_u64().unwrap() >= 1, "{invited:?}");
    env.run("carol", &["--json", "room", "join", &room]).success();
    let (messages, _) = history(&env, "carol", &room);
    let m = body_of(&messages, "backed up before the second device").unwrap_or_else(|| panic!("{messages:?}"));
    assert_eq!(m["shared_by"], alice.user_id.as_str());
}

/// The room key is rotated when a member leaves and when one is banned:
/// the next message is in a new session that the one gone never got.
#[test]
fn the_room_key_is_rotated_when_a_member_leaves_and_when_one_is_banned() {
    let (env, alice, bob, room) = TestEnv::alice_and_bob(&[]);
    let carol = register("carol");
    env.login("carol", &carol);
    env.run("alice", &["room", "invite", &room, &carol.user_id]).success();
    env.run("carol", &["room", "join", &room]).success();
    let carol_device = env.run("carol", &["--json", "whoami"]).success().records("whoami")[0]["device_id"].clone();
    let bob_device = env.run("bob", &["--json", "whoami"]).success().records("whoami")[0]["device_id"].clone();
    let _ = alice;

    let first = send(&env, "alice", &room, &["all three"]);
    // Bob leaves: a new session, not shared with bob.
    env.run("bob", &["room", "leave", &room]).success();
    let after_leave = send(&env, "alice", &room, &["bob has left"]);
    assert_ne!(after_leave[0]["session_id"], first[0]["session_id"], "{after_leave:?}");
    assert!(after_leave[0]["rotation"].is_string(), "{after_leave:?}");
    let out = env.run("alice", &["--json", "sessions", &room]).success().records("outbound_session");
    let shared = out[0]["shared_with"].as_array().unwrap();
    assert!(!shared.iter().any(|d| d["device_id"] == bob_device), "{shared:?}");

    // Carol is banned (through the server: ratchet has no ban command).
    let (status, reply) = api(
        "POST",
        &env.token("alice"),
        &format!("/_matrix/client/v3/rooms/{}/ban", enc(&room)),
        Some(serde_json::json!({ "user_id": carol.user_id })),
    );
    assert_eq!(status, 200, "{reply}");
    let after_ban = send(&env, "alice", &room, &["carol is banned"]);
    assert_ne!(after_ban[0]["session_id"], after_leave[0]["session_id"], "{after_ban:?}");
    let out = env.run("alice", &["--json", "sessions", &room]).success().records("outbound_session");
    let shared = out[0]["shared_with"].as_array().unwrap();
    assert!(!shared.iter().any(|d| d["device_id"] == carol_device), "{shared:?}");
    let _ = bob;
}

/// First contact in exclude-insecure mode: carol has never fetched alice's
/// identity, and matrix-sdk 0.18 drops alice's bundle (matrix-rust-sdk#5770).
/// `room join` says so and names what gets the history again; pasted on
/// alice's side, it does, and carol's next sync delivers it.
#[test]
fn a_bundle_refused_at_first_contact_is_said_and_the_hint_gets_it_again() {
    let (env, alice, _bob, room) = TestEnv::alice_and_bob(&[]);
    let carol = register("carol");
    env.login("carol", &carol);
    send(&env, "alice", &room, &["before first contact"]);
    env.run("alice", &["room", "invite", &room, &carol.user_id]).success();
    let joined = env.run("carol", &["--json", "room", "join", &room]).success();
    let record = &joined.records("room")[0];
    assert_eq!(record["history_refused_from"], alice.user_id.as_str(), "{}\n{}", joined.stdout, joined.stderr);
    let line = joined.stderr.lines().find(|l| l.contains("matrix-rust-sdk#5770")).expect("said");
    let hint = line.split("with: ").nth(1).expect("a command").trim_end_matches("\"}").trim();
    let hint = hint.split('"').next().unwrap().to_owned();
    // On alice's side (her own default profile there: here, named).
    let pasted = env.paste(&hint.replacen("ratchet ", "ratchet --profile alice ", 1)).success();
    assert!(pasted.stdout.contains("shared history"), "{}", pasted.stdout);
    let later = env.run("carol", &["--json", "sync"]).success();
    let m = later.records("message");
    let m = body_of(&m, "before first contact").unwrap_or_else(|| panic!("{}\n{}", later.stdout, later.stderr));
    assert_eq!(m["shared_by"], alice.user_id.as_str());
}

/// First contact in all-devices mode: nothing is dropped.
#[test]
fn first_contact_in_all_devices_mode_takes_the_history_at_the_join() {
    let (env, alice, _bob, room) = TestEnv::alice_and_bob(&[]);
    let carol = register("carol");
    env.login_all_devices("carol", &carol);
    send(&env, "alice", &room, &["all devices"]);
    env.run("alice", &["room", "invite", &room, &carol.user_id]).success();
    let joined = env.run("carol", &["--json", "room", "join", &room]).success();
    assert_eq!(joined.records("room")[0]["history_shared_by"], alice.user_id.as_str(), "{}", joined.stderr);
    let (messages, _) = history(&env, "carol", &room);
    assert_eq!(body_of(&messages, "all devices").expect("read")["shared_by"], alice.user_id.as_str());
}

/// With Element's newest crypto stack (matrix-js-sdk 43.0.0 and
/// crypto-wasm 18.9.0, `tests/peer/js-next`), both ways, in exclude-insecure
/// mode: Element's invite shares its history and ratchet reads it, marked;
/// ratchet's invite shares and Element reads it.
#[test]
fn element_s_newest_stack_and_ratchet_share_history_both_ways() {
    let env = TestEnv::new();
    let (bob, jo, kim) = (register("bob"), register("jo"), register("kim"));
    env.login("bob", &bob);
    let mut jo = JsPeer::login_next(&jo, "exclude-insecure", true);
    knows(&env, "bob", &jo.user_id);
    let room = jo.call(json!({"cmd": "create_room"}))["room_id"].as_str().expect("room").to_owned();
    jo.send(&room, "from Element, before the invite");
    jo.call(json!({"cmd": "invite", "room_id": room, "user_id": bob.user_id}));
    let joined = env.run("bob", &["--json", "room", "join", &room]).success();
    assert_eq!(joined.records("room")[0]["history_shared_by"], jo.user_id.as_str(), "{}", joined.stderr);
    let (messages, utds) = history(&env, "bob", &room);
    assert!(utds.is_empty(), "{utds:?}");
    let m = body_of(&messages, "from Element, before the invite").unwrap_or_else(|| panic!("{messages:?}"));
    assert_eq!(m["shared_by"], jo.user_id.as_str());

    // The other way: ratchet invites another Element user.
    let sent = send(&env, "bob", &room, &["from ratchet, before kim"]);
    let event = sent[0]["event_id"].as_str().unwrap().to_owned();
    let mut kim = JsPeer::login_next(&kim, "exclude-insecure", true);
    let invited = env.run("bob", &["--json", "room", "invite", &room, &kim.user_id]).success().records("invited");
    assert_eq!(invited[0]["history"], "shared", "{invited:?}");
    kim.call(json!({"cmd": "join", "room_id": room, "wait_invite": true}));
    let seen = kim.messages(&room, &[&event], 30_000);
    let got = seen.iter().find(|m| m["event_id"] == event.as_str()).expect("kim sees it");
    assert_eq!(got["body"], "from ratchet, before kim", "{seen:?}");
}
