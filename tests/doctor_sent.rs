//! doctor --sent: the sender's side of a decryption failure (issue 32).
//! Each scenario is made on purpose against Synapse, diagnosed from the
//! sender, its suggested fix pasted as printed, and the receiving device
//! then shown to decrypt the next message (a real client's word, never the
//! sender's).

use serde_json::Value;

use crate::common::js_peer::JsPeer;
use crate::common::{register, TestEnv};

/// `doctor --sent` records about one device.
fn about<'a>(records: &'a [Value], user: &str, device: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r["user_id"] == user && r["device_id"] == device)
        .unwrap_or_else(|| panic!("no record for {user} {device}: {records:?}"))
}

fn fixes(record: &Value) -> Vec<String> {
    record["fix"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_owned()).collect()
}

/// A device alice blacklisted (m.blacklisted) and one bob logged in after
/// the send: both named, each with its fix; pasted, bob's devices read
/// alice's next message; the one already sent stays unreadable, as the
/// record says.
#[test]
fn a_blacklisted_device_and_one_that_appeared_after_the_send() {
    let env = TestEnv::new();
    let (alice, bob) = (register("alice"), register("bob"));
    env.login_all_devices("alice", &alice);
    let bob_device = env.login("bob", &bob)["device_id"].as_str().unwrap().to_owned();
    let room = env.encrypted_room("alice", &[("bob", &bob)], &[]);

    // Nothing wrong yet: every device can read.
    let fine = env.run("alice", &["--json", "send", &room, "for everyone"]).success().records("sent");
    let ok = env.run("alice", &["--json", "doctor", &room, "--sent"]).success();
    assert!(ok.records("delivery").is_empty(), "{}", ok.stdout);
    let every = env
        .run("alice", &["--json", "doctor", &room, "--sent", "--event", fine[0]["event_id"].as_str().unwrap()])
        .success()
        .records("delivery");
    let given = about(&every, &bob.user_id, &bob_device);
    assert_eq!((given["cause"].as_str(), given["can_read"].as_bool()), (Some("given"), Some(true)), "{given}");
    assert_eq!(given["given_from_index"], 0);
    assert!(given["olm_sessions"].as_u64().unwrap() >= 1, "{given}");

    env.run("alice", &["trust", &bob.user_id, &bob_device, "blacklisted"]).success();
    env.run("alice", &["rotate", &room]).success();
    let kept = env.run("alice", &["--json", "send", &room, "kept from bob"]).success().records("sent");
    let kept_id = kept[0]["event_id"].as_str().unwrap().to_owned();
    let bob2_device = env.login("bob2", &bob)["device_id"].as_str().unwrap().to_owned();

    let run = env.run("alice", &["--json", "doctor", &room, "--sent"]).code(3);
    let records = run.records("delivery");
    assert!(run.stderr.contains("2 device(s) in the room cannot read"), "{}", run.stderr);
    let black = about(&records, &bob.user_id, &bob_device);
    assert_eq!(black["cause"], "withheld_blacklisted", "{black}");
    assert_eq!(black["withheld_code"], "m.blacklisted");
    assert_eq!(black["can_read"], false);
    assert_eq!(black["unreadable_event_ids"][0], kept_id.as_str());
    assert!(black["past"].as_str().unwrap().contains("stay unreadable"), "{black}");
    let black_fix = fixes(black);
    assert_eq!(black_fix.len(), 2, "{black}");
    assert!(black_fix[0].ends_with(&format!("trust {} {bob_device} unset", bob.user_id)), "{black_fix:?}");
    assert!(black_fix[1].ends_with("--share") && black_fix[1].contains(" rotate "), "{black_fix:?}");
    let new = records
        .iter()
        .find(|r| r["device_id"] == bob2_device.as_str() && r["event_ids"][0] == kept_id.as_str())
        .expect("bob's new device, for the kept message");
    assert_eq!(new["cause"], "device_new", "{new}");
    assert!(new["given_from_index"].is_null() && new["withheld_code"].is_null(), "{new}");
    assert_eq!(fixes(new), black_fix[1..], "the same share makes the next message readable to both");
    // The first message's session was given to bob's first device: it is
    // not listed for it, as it can read it; bob's new device cannot.
    let of_fine = |r: &&Value| r["event_ids"].as_array().unwrap().contains(&fine[0]["event_id"]);
    let fine_ones: Vec<&Value> = records.iter().filter(of_fine).collect();
    assert_eq!(fine_ones.len(), 1, "{records:?}");
    assert_eq!(
        (fine_ones[0]["device_id"].as_str(), fine_ones[0]["cause"].as_str()),
        (Some(bob2_device.as_str()), Some("device_new"))
    );

    // The human form names each device, its fix, and what stays lost.
    let human = env.run("alice", &["doctor", &room, "--sent"]).code(3);
    assert!(human.stdout.contains(&format!("{} {bob_device}: cannot read", bob.user_id)), "{}", human.stdout);
    assert!(human.stdout.contains("fix:  ratchet "), "{}", human.stdout);
    assert!(human.stdout.contains("past: the messages already sent stay unreadable"), "{}", human.stdout);

    for fix in &black_fix {
        env.paste(fix).success();
    }
    let next = env.run("alice", &["--json", "send", &room, "for both of bob's devices"]).success().records("sent");
    let next_id = next[0]["event_id"].as_str().unwrap();
    for profile in ["bob", "bob2"] {
        let view = env.run(profile, &["--json", "messages", &room]).code(3);
        let got = view.records("message");
        assert!(
            got.iter().any(|m| m["event_id"] == next_id && m["body"] == "for both of bob's devices"),
            "{profile}: {}",
            view.stdout
        );
        assert!(view.records("utd").iter().any(|u| u["event_id"] == kept_id.as_str()), "{profile}: {}", view.stdout);
    }
    // The next message's session reached every device.
    env.run("alice", &["--json", "doctor", &room, "--sent", "--event", next_id]).success();
}

/// Element's crypto stack on a device its owner has not cross-signed:
/// alice (exclude-insecure) withholds with m.unverified, and doctor says
/// only its owner can fix that. Once the owner cross-signs it, doctor
/// names the share, pasted, and Element reads alice's next message.
#[test]
fn an_element_device_its_owner_has_not_cross_signed() {
    let env = TestEnv::new();
    let (alice, jo) = (register("alice"), register("jo"));
    env.login("alice", &alice);
    let mut js = JsPeer::login(&jo, "exclude-insecure", false);
    let room = env.encrypted_room("alice", &[], &["--invite", &js.user_id]);
    js.join(&room);

    let sent = env.run("alice", &["--json", "send", &room, "not for an unsigned device"]).success().records("sent");
    let id = sent[0]["event_id"].as_str().unwrap().to_owned();
    let records = env.run("alice", &["--json", "doctor", &room, "--sent", "--event", &id]).code(3).records("delivery");
    let d = about(&records, &js.user_id, &js.device_id);
    assert_eq!((d["cause"].as_str(), d["withheld_code"].as_str()), (Some("withheld_unverified"), Some("m.unverified")));
    assert_eq!(d["cross_signed"], false);
    assert!(fixes(d).is_empty(), "only its owner can cross-sign it: {d}");
    assert!(d["explanation"].as_str().unwrap().contains("Only they can"), "{d}");
    let theirs = js.messages(&room, &[&id], 5_000);
    let seen = theirs.iter().find(|m| m["event_id"].as_str() == Some(id.as_str())).expect("js has the event");
    assert!(seen["body"].is_null(), "withheld, not readable: {seen}");

    // The owner cross-signs it (Element's "verify this session").
    js.call(serde_json::json!({"cmd": "cross_sign"}));
    let mut d = Value::Null;
    for _ in 0..30 {
        let records =
            env.run("alice", &["--json", "doctor", &room, "--sent", "--event", &id]).code(3).records("delivery");
        d = about(&records, &js.user_id, &js.device_id).clone();
        if d["cross_signed"] == true {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert_eq!(d["cross_signed"], true, "alice sees jo's new identity: {d}");
    assert_eq!(d["cause"], "withheld_unverified");
    let fix = fixes(&d);
    assert_eq!(fix.len(), 1, "{d}");
    env.paste(&fix[0]).success();
    let next = env.run("alice", &["--json", "send", &room, "now for jo's device"]).success().records("sent");
    let next_id = next[0]["event_id"].as_str().unwrap().to_owned();
    let theirs = js.messages(&room, &[&next_id], 30_000);
    let seen = theirs.iter().find(|m| m["event_id"].as_str() == Some(next_id.as_str())).expect("js has it");
    assert_eq!(seen["body"], "now for jo's device", "{theirs:?}");
}

/// Bad input: another user's event, an unencrypted one, --all without
/// --sent.
#[test]
fn doctor_sent_refuses_events_it_cannot_speak_for() {
    let env = TestEnv::new();
    let (alice, bob) = (register("alice"), register("bob"));
    env.login("alice", &alice);
    env.login("bob", &bob);
    let room = env.encrypted_room("alice", &[("bob", &bob)], &[]);
    let theirs = env.run("bob", &["--json", "send", &room, "from bob"]).success().records("sent");
    let run =
        env.run("alice", &["doctor", &room, "--sent", "--event", theirs[0]["event_id"].as_str().unwrap()]).code(1);
    assert!(run.stderr.contains(&format!("sent by {}", bob.user_id)), "{}", run.stderr);
    env.run("alice", &["doctor", &room, "--all"]).code(2);
    // A room where this device sent nothing: nothing to say, exit 0.
    let quiet = env.run("alice", &["doctor", &room, "--sent"]).success();
    assert!(quiet.stdout.is_empty(), "{}", quiet.stdout);
}
