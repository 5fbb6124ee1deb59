//! `verify`: emoji verification (SAS) between two ratchet processes (own
//! devices, two users) and with Element's crypto stack in both directions;
//! the verified state on both sides afterwards; a mismatch cancels both.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::js_peer::JsPeer;
use crate::common::{register, synapse, TestEnv};

const WAIT: Duration = Duration::from_secs(60);

fn symbols(sas: &Value) -> Vec<String> {
    sas["emoji"].as_array().unwrap().iter().map(|e| e["symbol"].as_str().unwrap().to_owned()).collect()
}

fn device_of(env: &TestEnv, profile: &str) -> String {
    env.run(profile, &["--json", "whoami"]).success().records("whoami")[0]["device_id"].as_str().unwrap().to_owned()
}

#[test]
fn verify_self_cross_signs_a_second_device() {
    let env = TestEnv::new();
    let alice = register("alice");
    env.login("alice", &alice);
    let second = env.login_with("alice2", &alice, &synapse().url, &["--json"], &[]).success().records("login");
    assert_eq!(second[0]["cross_signed"], false);
    let second_device = second[0]["device_id"].as_str().unwrap().to_owned();
    let room = env.encrypted_room("alice", &[], &[]);
    env.run("alice2", &["room", "join", &room]).success();

    let mut waiting =
        env.spawn("alice2", &["--json", "verify", "--accept", "--from", &alice.user_id, "--yes", "--wait", "60"]);
    waiting.wait_for_stderr("Waiting for a verification request", WAIT);
    let done = env.run("alice", &["--json", "verify", "--self", &second_device, "--yes", "--wait", "60"]).success();
    let verified = done.records("verified").remove(0);
    assert_eq!(verified["own"], true);
    assert_eq!(verified["device_id"], second_device.as_str());
    assert_eq!(verified["other_cross_signed"], true, "the first device signed the second: {verified}");
    let other_side = waiting.finish(WAIT).success();
    assert_eq!(other_side.records("sas").len(), 1, "{}", other_side.stdout);
    assert_eq!(other_side.records("verified")[0]["this_device_cross_signed"], true, "{}", other_side.stdout);

    // Now a first-class device: cross-signed for everyone, and it may send
    // in exclude-insecure mode; the first device reads it.
    let mine = env.run("alice2", &["--json", "identity"]).success().records("identity").remove(0);
    assert_eq!(mine["this_device_cross_signed"], true, "{mine}");
    let sent = env.run("alice2", &["--json", "send", &room, "from the verified device"]).success().records("sent");
    let got = env.run("alice", &["--json", "messages", &room]).success().records("message");
    assert!(got.iter().any(|m| m["event_id"] == sent[0]["event_id"] && m["body"] == "from the verified device"));
}

/// Two users, each side a script: the emoji of both processes are compared
/// by the test, then each is answered on its stdin.
#[test]
fn two_users_compare_emoji_from_a_script_and_a_mismatch_cancels_both() {
    let env = TestEnv::new();
    let (alice, bob, carol) = (register("alice"), register("bob"), register("carol"));
    env.login("alice", &alice);
    env.login("bob", &bob);
    env.login("carol", &carol);
    let room = env.encrypted_room("alice", &[("bob", &bob), ("carol", &carol)], &[]);
    let bob_device = device_of(&env, "bob");
    env.run("alice", &["sync"]).success();
    env.run("bob", &["sync"]).success();

    let verify_pair = |bob_says: &str, during: Option<&str>| {
        let mut at_bob = env.spawn("bob", &["--json", "verify", "--accept", "--from", &alice.user_id, "--wait", "60"]);
        at_bob.wait_for_stderr("Waiting for a verification request", WAIT);
        let mut at_alice = env.spawn("alice", &["--json", "verify", &bob.user_id, &bob_device, "--wait", "60"]);
        let (a, b) = (at_alice.wait_for_record("sas", WAIT), at_bob.wait_for_record("sas", WAIT));
        assert_eq!(symbols(&a).len(), 7);
        assert_eq!(symbols(&a), symbols(&b), "both processes show the same emoji");
        if let Some(text) = during {
            // Sent before the answers: the flow's later syncs receive it.
            env.run("carol", &["send", &room, text]).success();
        }
        at_alice.answer("yes");
        at_bob.answer(bob_says);
        (at_alice.finish(WAIT), at_bob.finish(WAIT))
    };

    // A "no" on one side cancels both; nothing is verified.
    let (at_alice, at_bob) = verify_pair("no", None);
    assert_eq!(at_bob.code, 1, "{}", at_bob.stderr);
    assert!(at_bob.stderr.contains("did not match"), "{}", at_bob.stderr);
    assert_eq!(at_alice.code, 1, "{}", at_alice.stderr);
    assert!(at_alice.stderr.contains("did not match"), "{}", at_alice.stderr);
    let devices = env.run("alice", &["--json", "devices", &bob.user_id]).success().records("device");
    assert_eq!(devices[0]["verified"], false);

    // Both say yes: verified on both sides.
    let (at_alice, at_bob) = verify_pair("yes", Some("said while they verified"));
    at_alice.success();
    at_bob.success();
    // Issue 14: what verify's own syncs received is not lost to `sync`.
    for profile in ["alice", "bob"] {
        let got = env.run(profile, &["--json", "sync"]).success().records("message");
        let n = got.iter().filter(|m| m["body"] == "said while they verified").count();
        assert_eq!(n, 1, "{profile}'s sync after verify: {got:?}");
    }
    let devices = env.run("alice", &["--json", "devices", &bob.user_id]).success().records("device");
    assert_eq!(devices[0]["verified"], true, "{devices:?}");
    let bob_seen = env.run("alice", &["--json", "identity", &bob.user_id]).success().records("identity").remove(0);
    assert_eq!(bob_seen["verified"], true, "alice signed bob's identity: {bob_seen}");
    let alice_seen = env.run("bob", &["--json", "identity", &alice.user_id]).success().records("identity").remove(0);
    assert_eq!(alice_seen["verified"], true, "bob signed alice's identity: {alice_seen}");
}

/// With Element's crypto stack, each side starting once.
#[test]
fn ratchet_and_element_crypto_verify_each_other_either_side_starting() {
    let env = TestEnv::new();
    let (alice, jo) = (register("alice"), register("jo"));
    env.login("alice", &alice);
    let mut js = JsPeer::login(&jo, "exclude-insecure", true);
    let room = env.encrypted_room("alice", &[], &["--invite", &js.user_id]);
    js.join(&room);
    let alice_device = device_of(&env, "alice");
    env.run("alice", &["sync"]).success();

    // js asks; ratchet accepts and answers from its stdin.
    let mut at_alice = env.spawn("alice", &["--json", "verify", "--accept", "--from", &js.user_id, "--wait", "60"]);
    at_alice.wait_for_stderr("Waiting for a verification request", WAIT);
    js.call(json!({"cmd": "verify_request", "user_id": alice.user_id, "device_id": alice_device}));
    let sas = at_alice.wait_for_record("sas", WAIT);
    // The device as its owner sees it in their sessions list (issue 20).
    assert_eq!(sas["other_device_name"], "js-peer", "{sas}");
    at_alice.answer("yes");
    let js_side = js.call(json!({"cmd": "verify_wait"}));
    assert_eq!(js_side["done"], true, "{js_side}");
    let js_emoji: Vec<String> =
        js_side["emoji"].as_array().unwrap().iter().map(|e| e.as_str().unwrap().to_owned()).collect();
    assert_eq!(js_emoji, symbols(&sas), "js and ratchet showed the same emoji");
    let done = at_alice.finish(WAIT).success();
    assert_eq!(done.records("verified")[0]["device_id"], js.device_id.as_str());
    let devices = env.run("alice", &["--json", "devices", &js.user_id]).success().records("device");
    assert_eq!(devices[0]["verified"], true, "{devices:?}");
    let seen = js.device(&alice.user_id, &alice_device);
    assert!(seen["cross_signing_verified"] == true || seen["locally_verified"] == true, "{seen}");

    // ratchet asks; js accepts. A second flow between the same devices.
    js.call(json!({"cmd": "verify_accept"}));
    let run = env.run("alice", &["--json", "verify", &js.user_id, &js.device_id, "--yes", "--wait", "60"]).success();
    assert_eq!(run.records("verified").len(), 1, "{}", run.stdout);
    let js_side = js.call(json!({"cmd": "verify_wait"}));
    assert_eq!(js_side["done"], true, "{js_side}");
}

/// `verify USER`: the user's identity, in a direct chat made for it.
#[test]
fn verifying_a_user_in_a_direct_chat() {
    let env = TestEnv::new();
    let (alice, bob) = (register("alice"), register("bob"));
    env.login("alice", &alice);
    env.login("bob", &bob);
    env.encrypted_room("alice", &[("bob", &bob)], &[]);
    // Another invite from alice, not a direct chat: accepting her
    // verification does not join it.
    let other =
        env.run("alice", &["--json", "room", "create", "--invite", &bob.user_id]).success().records("room").remove(0)
            ["room_id"]
            .as_str()
            .unwrap()
            .to_owned();
    env.run("bob", &["sync"]).success();

    let mut at_bob =
        env.spawn("bob", &["--json", "verify", "--accept", "--from", &alice.user_id, "--yes", "--wait", "60"]);
    at_bob.wait_for_stderr("Waiting for a verification request", WAIT);
    let run = env.run("alice", &["--json", "verify", &bob.user_id, "--yes", "--wait", "60"]).success();
    assert!(run.stderr.contains("direct chat"), "{}", run.stderr);
    assert_eq!(run.records("verified").len(), 1, "{}", run.stdout);
    at_bob.finish(WAIT).success();
    let seen = env.run("alice", &["--json", "identity", &bob.user_id]).success().records("identity").remove(0);
    assert_eq!(seen["verified"], true, "{seen}");
    let rooms = env.run("bob", &["--json", "room", "list"]).success().records("room");
    let left = rooms.iter().find(|r| r["room_id"].as_str() == Some(other.as_str())).expect("still listed");
    assert_eq!(left["state"], "invited", "{left}");
}

/// A bare `--accept` waits for your own devices: another user's request
/// is not taken (it would be signed with your user-signing key).
#[test]
fn a_bare_accept_takes_requests_from_your_own_devices_only() {
    let env = TestEnv::new();
    let (alice, mallory) = (register("alice"), register("mallory"));
    env.login("alice", &alice);
    env.login("mallory", &mallory);
    env.encrypted_room("mallory", &[("alice", &alice)], &[]);
    env.run("mallory", &["sync"]).success();
    let alice_device = env.run("alice", &["--json", "whoami"]).success().records("whoami").remove(0)["device_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut at_alice = env.spawn("alice", &["--json", "verify", "--accept", "--wait", "15"]);
    at_alice.wait_for_stderr("from one of your own devices", WAIT);
    let asked = env.run("mallory", &["verify", &alice.user_id, &alice_device, "--yes", "--wait", "10"]);
    assert_eq!(asked.code, 1, "nobody accepted mallory's request: {}", asked.stderr);
    let run = at_alice.finish(WAIT);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.records("sas").is_empty(), "no emoji with mallory: {}", run.stdout);
    let seen = env.run("alice", &["--json", "identity", &mallory.user_id]).success().records("identity").remove(0);
    assert_eq!(seen["verified"], false, "{seen}");
}

/// Issue 29 (element-meta#2709): a script certifies another device of its
/// own account by its Ed25519 key, no emoji; a different key signs nothing
/// and exits 1; a device signed already is not signed again.
#[test]
fn certify_cross_signs_an_own_device_by_its_key_and_a_mismatch_signs_nothing() {
    let env = TestEnv::new();
    let alice = register("alice");
    env.login("alice", &alice);
    env.login("bot", &alice);
    let who = env.run("bot", &["--json", "whoami"]).success().records("whoami").remove(0);
    let (device, key) = (who["device_id"].as_str().unwrap().to_owned(), who["ed25519"].as_str().unwrap().to_owned());
    let signed = || {
        env.run("bot", &["--json", "identity"]).success().records("identity").remove(0)["this_device_cross_signed"]
            .clone()
    };
    assert_eq!(signed(), false, "a second device starts unverified");

    let mut wrong_key = key.clone();
    wrong_key.replace_range(0..4, if key.starts_with("AAAA") { "BBBB" } else { "AAAA" });
    let wrong = env.run("alice", &["--json", "certify", &device, "--ed25519", &wrong_key]).code(1);
    assert!(wrong.stderr.contains("nothing was signed"), "{}", wrong.stderr);
    assert_eq!(signed(), false, "a mismatch signs nothing");

    let stdin = format!("{key}\n");
    let done = env.run_stdin("alice", &["--json", "certify", &device, "--ed25519-stdin"], stdin.as_bytes()).success();
    assert_eq!(done.records("certified")[0]["already"], false, "{}", done.stdout);
    assert_eq!(signed(), true, "cross-signed by its owner now");
    let again = env.run("alice", &["--json", "certify", &device, "--ed25519", &key]).success();
    assert_eq!(again.records("certified")[0]["already"], true);
}
