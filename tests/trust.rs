//! The trust layer (MSC4153): cross-signing at login, identity, local
//! trust, device isolation — against Synapse, the nio peer (which cannot
//! cross-sign) and Element's own crypto stack (matrix-js-sdk with its Rust
//! crypto, in both isolation modes).

use serde_json::Value;

use crate::common::js_peer::JsPeer;
use crate::common::peer::NioPeer;
use crate::common::{api, register, synapse, TestEnv};

fn identity(env: &TestEnv, profile: &str, user: Option<&str>) -> Value {
    let mut args = vec!["--json", "identity"];
    args.extend(user);
    env.run(profile, &args).success().records("identity").remove(0)
}

#[test]
fn login_creates_an_identity_once_and_a_second_device_needs_verifying() {
    let env = TestEnv::new();
    let alice = register("alice");
    let first = env.login("alice", &alice);
    assert_eq!(first["cross_signing"], "created", "{first}");
    assert_eq!(first["cross_signed"], true);
    assert_eq!(first["isolation"], "exclude-insecure");

    // The server holds the identity, and this device carries its signature.
    let (_, keys) = api(
        "POST",
        &env.token("alice"),
        "/_matrix/client/v3/keys/query",
        Some(serde_json::json!({"device_keys": {alice.user_id.clone(): []}})),
    );
    let master = keys["master_keys"][&alice.user_id]["keys"].as_object().expect("a master key on the server");
    let master = master.values().next().unwrap().as_str().unwrap().to_owned();
    let mine = identity(&env, "alice", None);
    assert_eq!(mine["master_key"].as_str(), Some(master.as_str()), "{mine}");
    assert_eq!(mine["this_device_cross_signed"], true);
    assert_eq!(mine["private_keys"], serde_json::json!({"master": true, "self_signing": true, "user_signing": true}));

    // A second device of the account: the identity is not replaced, and the
    // device is not signed by it yet.
    let second = env.login_with("alice2", &alice, &synapse().url, &["--json"], &[]).success();
    let record = second.records("login").remove(0);
    assert_eq!(record["cross_signing"], "existing", "{record}");
    assert_eq!(record["cross_signed"], false);
    assert!(second.stderr.contains("not verified"), "{}", second.stderr);
    let theirs = identity(&env, "alice2", None);
    assert_eq!(theirs["master_key"].as_str(), Some(master.as_str()), "the identity was kept: {theirs}");
    assert_eq!(theirs["this_device_cross_signed"], false);
    assert_eq!(
        theirs["private_keys"],
        serde_json::json!({"master": false, "self_signing": false, "user_signing": false})
    );
    // The first device sees the second as insecure.
    let devices = env.run("alice", &["--json", "devices", &alice.user_id]).success().records("device");
    let insecure: Vec<&Value> = devices.iter().filter(|d| d["cross_signed_by_owner"] == false).collect();
    assert_eq!(insecure.len(), 1, "{devices:?}");
    assert_eq!(insecure[0]["device_id"], record["device_id"]);

    // An insecure device may not send in exclude-insecure mode: a clear
    // error, nothing sent.
    let room = env.encrypted_room("alice", &[], &[]);
    env.run("alice2", &["room", "join", &room]).success();
    let refused = env.run("alice2", &["send", &room, "from the insecure device"]).code(1);
    assert!(refused.stderr.contains("not verified by your cross-signing identity"), "{}", refused.stderr);
    assert!(refused.stderr.contains("--isolation all-devices"), "{}", refused.stderr);

    // --no-bootstrap: no identity at all.
    let carol = register("carol");
    let skipped = env.login_with("carol", &carol, &synapse().url, &["--json"], &["--no-bootstrap"]).success();
    let skipped = skipped.records("login").remove(0);
    assert_eq!(skipped["cross_signing"], "skipped");
    assert_eq!(skipped["cross_signed"], false);
    assert!(identity(&env, "carol", None)["master_key"].is_null());
    assert!(identity(&env, "alice", Some(&carol.user_id))["master_key"].is_null());
    let of_alice = identity(&env, "carol", Some(&alice.user_id));
    assert_eq!(of_alice["master_key"].as_str(), Some(master.as_str()));
    assert_eq!(of_alice["verified"], false);
    assert_eq!(of_alice["verification_violation"], false);
}

#[test]
fn exclude_insecure_withholds_from_nio_and_all_devices_shares() {
    let env = TestEnv::new();
    let (alice, nina) = (register("alice"), register("nina"));
    env.login("alice", &alice);
    let nio = NioPeer::login(&env, &nina);
    let room = env.encrypted_room("alice", &[], &["--invite", &nina.user_id]);
    nio.join(&env, &room);

    // Default (exclude-insecure): nio's device is not cross-signed, so it
    // gets m.room_key.withheld with m.unverified instead of the key.
    let sent = env.run("alice", &["--json", "send", &room, "not for insecure devices"]).success().records("sent");
    let out = env.run("alice", &["--json", "sessions", &room]).success().records("outbound_session").remove(0);
    assert_eq!(out["isolation"], "exclude-insecure");
    let to_nio = out["shared_with"].as_array().unwrap().iter().find(|d| d["device_id"] == nio.device_id.as_str());
    assert_eq!(to_nio.expect("nio's device is listed")["withheld"], "m.unverified", "{out}");
    let view = nio.messages(&env, &room).code(3);
    let withheld = view.records("withheld");
    assert!(
        withheld.iter().any(|w| w["code"] == "m.unverified" && w["session_id"] == sent[0]["session_id"]),
        "nio received the withheld notice: {}",
        view.stdout
    );
    assert_eq!(view.records("utd").len(), 1, "{}", view.stdout);

    // all-devices (legacy): nio gets the key and decrypts.
    let legacy =
        env.run("alice", &["--json", "--isolation", "all-devices", "send", &room, "for every device"]).success();
    let legacy = legacy.records("sent").remove(0);
    let view = nio.messages(&env, &room);
    let got = view.records("message");
    assert!(
        got.iter().any(|m| m["event_id"] == legacy["event_id"] && m["body"] == "for every device"),
        "{}",
        view.stdout
    );
}

#[test]
fn blacklisting_a_device_withholds_with_m_blacklisted() {
    let env = TestEnv::new();
    let (alice, bob) = (register("alice"), register("bob"));
    env.login_all_devices("alice", &alice);
    let bob_device = env.login("bob", &bob)["device_id"].as_str().unwrap().to_owned();
    let room = env.encrypted_room("alice", &[("bob", &bob)], &[]);
    let set = env.run("alice", &["--json", "trust", &bob.user_id, &bob_device, "blacklisted"]).success();
    assert_eq!(set.records("local_trust")[0]["previous"], "unset");
    env.run("alice", &["send", &room, "kept from bob"]).success();
    let devices = env.run("alice", &["--json", "devices", &bob.user_id]).success().records("device");
    assert_eq!(devices[0]["local_trust"], "blacklisted");

    let utd = env.run("bob", &["--json", "messages", &room]).code(3).records("utd");
    assert_eq!(utd.len(), 1);
    assert_eq!(utd[0]["withheld_code"], "m.blacklisted", "{utd:?}");
    let doctor = env.run("bob", &["--json", "doctor", &room]).code(3).records("diagnosis");
    assert_eq!(doctor[0]["cause"], "key_withheld");
    let fix = doctor[0]["fix"][0].as_str().unwrap();
    assert!(fix.contains(&format!("ratchet trust {} {bob_device} unset", bob.user_id)), "{fix}");
    assert!(doctor[0]["reproduce"].as_str().unwrap().contains("blacklisted"));

    env.run("alice", &["trust", &bob.user_id, &bob_device, "unset"]).success();
    env.run("alice", &["rotate", &room]).success();
    env.run("alice", &["send", &room, "for bob again"]).success();
    let got = env.run("bob", &["--json", "messages", &room]).code(3).records("message");
    assert_eq!(got.last().unwrap()["body"], "for bob again");
}

/// Element's crypto stack in "exclude insecure devices" mode: a ratchet
/// device that login cross-signed reads and is read; one that is not
/// (--no-bootstrap) is excluded both ways, and says why.
#[test]
fn element_crypto_in_exclude_insecure_mode_reads_and_is_read_by_a_cross_signed_ratchet() {
    let env = TestEnv::new();
    let (alice, jo, dave) = (register("alice"), register("jo"), register("dave"));
    env.login("alice", &alice);
    let mut js = JsPeer::login(&jo, "exclude-insecure", true);
    let room = env.encrypted_room("alice", &[], &["--invite", &js.user_id]);
    js.join(&room);

    // js → ratchet.
    let from_js = js.send(&room, "from Element's crypto");
    let mine = env.run("alice", &["--json", "messages", &room]).success().records("message");
    let got = mine.iter().find(|m| m["event_id"].as_str() == Some(from_js.as_str())).expect("alice has js's message");
    assert_eq!(got["body"], "from Element's crypto");
    // ratchet → js.
    let sent = env.run("alice", &["--json", "send", &room, "from ratchet"]).success().records("sent");
    let id = sent[0]["event_id"].as_str().unwrap().to_owned();
    let theirs = js.messages(&room, &[&id], 30_000);
    let seen = theirs.iter().find(|m| m["event_id"].as_str() == Some(id.as_str())).expect("js has the event");
    assert_eq!(seen["body"], "from ratchet", "{theirs:?}");
    let alice_device = env.run("alice", &["--json", "whoami"]).success().records("whoami")[0]["device_id"].clone();
    let view = js.device(&alice.user_id, alice_device.as_str().unwrap());
    assert_eq!(view["signed_by_owner"], true, "js sees alice's device as cross-signed: {view}");

    // A ratchet device without cross-signing: js withholds its keys
    // (m.unverified), and does not decrypt what it sends.
    env.login_with("dave", &dave, &synapse().url, &[], &["--no-bootstrap"]).success();
    env.run("alice", &["room", "invite", &room, &dave.user_id]).success();
    env.run("dave", &["room", "join", &room]).success();
    let withheld = js.send(&room, "not for an insecure device");
    let utd = env.run("dave", &["--json", "messages", &room]).code(3).records("utd");
    let lost = utd.iter().find(|u| u["event_id"].as_str() == Some(withheld.as_str())).expect("dave cannot read it");
    assert_eq!(lost["withheld_code"], "m.unverified", "{utd:?}");
    let doctor = env.run("dave", &["--json", "doctor", &room]).code(3).records("diagnosis");
    let about =
        |d: &&serde_json::Value| d["event_ids"].as_array().unwrap().iter().any(|e| e.as_str() == Some(&withheld));
    let d = doctor.iter().find(about).unwrap();
    assert_eq!(d["cause"], "key_withheld");
    assert!(d["explanation"].as_str().unwrap().contains("m.unverified"), "{d}");
    // dave's account has no identity (--no-bootstrap): verifying needs one
    // first, and no other device exists to verify from (issue 19).
    let fix = d["fix"][0].as_str().unwrap();
    assert!(
        fix.starts_with("ratchet --profile dave identity --create") && fix.contains("no cross-signing identity"),
        "{d}"
    );
    assert!(!d["fix"].to_string().contains("verify --self"), "no device to verify from: {d}");
    assert!(d["reproduce"].as_str().unwrap().contains("--no-bootstrap"), "{d}");

    // dave can only send in the legacy mode, and js does not decrypt it.
    let from_dave = env
        .run("dave", &["--json", "--isolation", "all-devices", "send", &room, "from an insecure device"])
        .success()
        .records("sent");
    let dave_id = from_dave[0]["event_id"].as_str().unwrap().to_owned();
    let theirs = js.messages(&room, &[&dave_id], 5_000);
    let seen = theirs.iter().find(|m| m["event_id"].as_str() == Some(dave_id.as_str())).expect("js has the event");
    assert!(seen["body"].is_null(), "js must not decrypt an insecure device's message: {seen}");
    assert!(seen["utd"].is_string(), "{seen}");
}

/// Element's crypto stack in its legacy "all devices" mode, with a ratchet
/// device that is not cross-signed and in all-devices mode too: both read
/// each other.
#[test]
fn element_crypto_in_all_devices_mode_and_an_insecure_ratchet_read_each_other() {
    let env = TestEnv::new();
    let (dave, jo) = (register("dave"), register("jo"));
    let login = env
        .login_with("dave", &dave, &synapse().url, &["--json", "--isolation", "all-devices"], &["--no-bootstrap"])
        .success()
        .records("login")
        .remove(0);
    assert_eq!(login["isolation"], "all-devices");
    let mut js = JsPeer::login(&jo, "all-devices", false);
    let room = env.encrypted_room("dave", &[], &["--invite", &js.user_id]);
    js.join(&room);

    let sent = env.run("dave", &["--json", "send", &room, "legacy mode"]).success().records("sent");
    let id = sent[0]["event_id"].as_str().unwrap().to_owned();
    let theirs = js.messages(&room, &[&id], 30_000);
    let seen = theirs.iter().find(|m| m["event_id"].as_str() == Some(id.as_str())).expect("js has the event");
    assert_eq!(seen["body"], "legacy mode", "{theirs:?}");

    let from_js = js.send(&room, "legacy reply");
    let mine = env.run("dave", &["--json", "messages", &room]).success().records("message");
    assert!(mine.iter().any(|m| m["event_id"].as_str() == Some(from_js.as_str()) && m["body"] == "legacy reply"));
    // The mode was remembered at login: no flag needed on later commands.
    let info = env.run("dave", &["--json", "room", "info", &room]).success().records("room_info");
    assert_eq!(info[0]["isolation"], "all-devices");
}

#[test]
fn a_message_from_a_device_its_owner_never_signed_is_not_decrypted_and_doctor_says_why() {
    let env = TestEnv::new();
    let (alice, dave) = (register("alice"), register("dave"));
    env.login("alice", &alice);
    env.login_with("dave", &dave, &synapse().url, &["--isolation", "all-devices"], &["--no-bootstrap"]).success();
    let room = env.encrypted_room("alice", &[], &["--invite", &dave.user_id]);
    env.run("dave", &["room", "join", &room]).success();
    let sent = env.run("dave", &["--json", "send", &room, "from an unsigned device"]).success().records("sent");

    let utd = env.run("alice", &["--json", "messages", &room]).code(3).records("utd");
    let u = utd.iter().find(|u| u["event_id"] == sent[0]["event_id"]).expect("alice cannot read it");
    assert_eq!(u["reason"], "sender_identity_not_trusted", "{u}");
    assert_eq!(u["sender_trust"], "unsigned_device", "{u}");
    let doctor = env.run("alice", &["--json", "doctor", &room]).code(3).records("diagnosis");
    assert_eq!(doctor[0]["cause"], "sender_device_not_cross_signed", "{doctor:?}");
    assert!(doctor[0]["fix"][1].as_str().unwrap().contains("--isolation all-devices messages"));

    // The legacy mode reads it: the key was there all along.
    let legacy = env.run("alice", &["--json", "--isolation", "all-devices", "messages", &room]).success();
    assert!(legacy.records("message").iter().any(|m| m["body"] == "from an unsigned device"), "{}", legacy.stdout);
}

/// Issue 29: the identity of someone you never verified changes (bob
/// resets it): `identity` says so (`identity_changed`, Element's "their
/// identity was reset"), and the command it names, pasted, acknowledges it.
#[test]
fn a_changed_identity_of_a_user_never_verified_can_be_acknowledged() {
    let (env, _alice, bob, room) = TestEnv::alice_and_bob(&[]);
    let before = identity(&env, "alice", Some(&bob.user_id));
    assert_eq!(before["identity_changed"], false, "{before}");
    let password = format!("{}\n", bob.password);
    env.run_stdin("bob", &["recovery", "reset", "--yes", "--password-stdin"], password.as_bytes()).success();
    env.run("alice", &["sync"]).success();

    let run = env.run("alice", &["identity", &bob.user_id]).success();
    assert!(run.stdout.contains("IDENTITY CHANGED"), "{}", run.stdout);
    let hint = run
        .stderr
        .lines()
        .find_map(|l| l.split('`').nth(1).filter(|c| c.contains("--acknowledge")))
        .unwrap_or_else(|| panic!("a command to acknowledge: {}", run.stderr))
        .to_owned();
    let changed = identity(&env, "alice", Some(&bob.user_id));
    assert_eq!(changed["identity_changed"], true, "{changed}");
    assert_eq!(changed["verification_violation"], false, "never verified: no violation");
    // Nothing is refused meanwhile: bob still reads alice.
    env.run("alice", &["send", &room, "still reaches bob"]).success();
    let got = env.run("bob", &["--json", "messages", &room]).success().records("message");
    assert!(got.iter().any(|m| m["body"] == "still reaches bob"), "{got:?}");

    // The hint names this profile (it is not the default one).
    let pasted = env.paste(&hint).success();
    assert!(pasted.stderr.contains("acknowledged"), "{}", pasted.stderr);
    let after = identity(&env, "alice", Some(&bob.user_id));
    assert_eq!(after["identity_changed"], false, "{after}");
    assert_ne!(after["master_key"], before["master_key"]);
}
