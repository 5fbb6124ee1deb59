//! The JSON Lines contract: every record every command prints parses into
//! the typed struct documented for its `type` (README "JSON output"), with no
//! field missing or unknown — a rename or removal fails here.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::common::{register, TestEnv};

macro_rules! records {
    ($($tag:literal => $name:ident { $($field:ident : $ty:ty),* $(,)? })*) => {
        $(
            #[derive(Debug, Deserialize)]
            #[serde(deny_unknown_fields)]
            #[allow(dead_code)]
            struct $name {
                #[serde(rename = "type")]
                record_type: String,
                $($field: $ty),*
            }
        )*

        /// Parses one line into its typed record; returns the type.
        fn check(line: &Value) -> String {
            let kind = line["type"].as_str().unwrap_or_else(|| panic!("no type: {line}")).to_owned();
            match kind.as_str() {
                $($tag => parse::<$name>(line),)*
                other => panic!("undocumented record type {other}: {line}"),
            }
            kind
        }

        const ALL_TYPES: &[&str] = &[$($tag),*];
    };
}

fn parse<T: DeserializeOwned>(line: &Value) {
    if let Err(e) = serde_json::from_value::<T>(line.clone()) {
        panic!("{} does not match its documented fields: {e}\n{line}", line["type"]);
    }
}

type S = String;
type O<T> = Option<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Candidate {
    room_id: S,
    name: O<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct SharedWith {
    user_id: S,
    device_id: S,
    message_index: O<u32>,
    withheld: O<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct OlmSession {
    session_id: S,
    created_ms: u64,
    last_used_ms: u64,
    last_received_ms: O<u64>,
    sdk_last_received_ms: O<u64>,
    created_using_fallback_key: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct PrivateKeys {
    master: bool,
    self_signing: bool,
    user_signing: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct FileRef {
    name: O<S>,
    size: O<u64>,
    mimetype: O<S>,
    url: O<S>,
    encrypted: bool,
    width: O<u64>,
    height: O<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Previous {
    rotation_period_msgs: O<u64>,
    rotation_period_ms: O<u64>,
}

records! {
    "login" => Login {
        user_id: S, device_id: S, homeserver: S, profile: S, curve25519: S, ed25519: O<S>, cross_signing: S,
        cross_signed: bool, isolation: S, discovered: O<S>,
    }
    "sso" => Sso { url: S, provider: O<S>, redirect: S, browser_opened: bool }
    "access_token" => AccessToken { access_token: S }
    "logout" => Logout {
        user_id: O<S>, device_id: O<S>, server_logout: bool, removed: Vec<S>, room_keys: O<usize>,
        room_keys_backed_up: O<usize>,
    }
    "whoami" => Whoami { user_id: S, device_id: S, homeserver: S, profile: S, curve25519: S, ed25519: S }
    "room" => Room {
        room_id: S, name: O<S>, state: S, encrypted: bool, history_keys: O<usize>, history_shared_by: O<S>,
        history_refused_from: O<S>,
    }
    "invited" => Invited {
        room_id: S, user_id: S, already: O<S>, history: O<S>, history_keys: O<usize>, history_not_shared: O<usize>,
        history_reason: O<S>,
    }
    "member" => Member { room_id: S, user_id: S, display_name: O<S>, membership: S }
    "left" => Left { room_id: S, cursor: O<S> }
    "inbox_gap" => InboxGap { dropped: u64 }
    "invite" => Invite { room_id: S, cursor: O<S> }
    "room_info" => RoomInfo {
        room_id: S, name: O<S>, encrypted: bool, algorithm: O<S>, rotation_period_msgs: O<u64>,
        rotation_period_msgs_is_default: O<bool>, rotation_period_ms: O<u64>, rotation_period_ms_is_default: O<bool>,
        kept_by_r3: O<bool>, history_visibility: S, joined_members: usize, isolation: S,
    }
    "sent" => Sent {
        room_id: S, event_id: S, seq: usize, encrypted: bool, session_id: O<S>, message_index: O<u32>,
        new_session: bool, rotation: O<S>, already_sent: bool, mxc: O<S>,
    }
    "downloaded" => Downloaded {
        room_id: S, event_id: S, path: O<S>, name: O<S>, size: u64, mimetype: O<S>, sha256: S, encrypted: bool,
    }
    "message" => Message {
        room_id: S, event_id: O<S>, sender: O<S>, origin_server_ts: O<u64>, event_type: S, msgtype: O<S>,
        body: O<S>, file: O<FileRef>, encrypted: bool, session_id: O<S>, message_index: O<u32>, sender_device: O<S>,
        key_from_backup: bool, shared_by: O<S>, shared_by_device: O<S>, sender_trust: O<S>, replaces: O<S>,
        waited_ms: O<u64>, cursor: O<S>,
    }
    "utd" => Utd {
        room_id: S, event_id: O<S>, sender: O<S>, origin_server_ts: O<u64>, session_id: O<S>,
        message_index: O<u32>, sender_device: O<S>, reason: S, withheld_code: O<S>, sender_trust: O<S>,
        cursor: O<S>,
    }
    "event" => Event {
        room_id: S, event_id: O<S>, sender: O<S>, origin_server_ts: O<u64>, event_type: S, state_key: O<S>,
        encrypted: bool, cursor: O<S>,
    }
    "to_device" => ToDevice {
        event_type: S, sender: O<S>, encrypted: bool, utd_reason: O<S>, sender_key: O<S>, sender_device: O<S>, room_id: O<S>,
        session_id: O<S>, forward: O<S>, dropped_because: O<S>, cursor: O<S>,
    }
    "sync" => Sync { rooms: usize, events: usize, utd: usize, to_device: usize, follower_synced_ms_ago: O<u64> }
    "recovery" => Recovery {
        step: S, user_id: S, device_id: O<S>, session_id: O<S>, room_id: O<S>, created_by: O<S>,
        wait_ms: O<u64>, request_id: O<S>, message: O<S>, cursor: O<S>,
    }
    "identity_reset" => IdentityReset {
        user_id: S, old_master_key: S, new_master_key: S, this_device_cross_signed: bool, fixes: Vec<S>, cursor: O<S>,
    }
    "gap" => Gap {
        room_id: S, gap: i64, fetched: u64, after_event_id: O<S>, reason: S, command: S, cursor: O<S>,
    }
    "rotation_seen" => RotationSeen {
        room_id: S, sender: S, sender_device: S, old_session_id: S, new_session_id: S, cursor: O<S>,
    }
    "encryption" => Encryption {
        room_id: S, changed: bool, algorithm: S, rotation_period_msgs: O<u64>, rotation_period_ms: O<u64>,
        previous: O<Previous>,
    }
    "outbound_session" => Outbound {
        room_id: S, session_id: S, created_ms: u64, created_precise: bool, age_ms: u64, messages_encrypted: u64,
        rotation_period_msgs: u64, messages_left: u64, rotation_period_ms: u64, time_left_ms: u64, expired: bool,
        expired_reason: O<S>, invalidated: bool, shared: bool, shared_with: Vec<SharedWith>, isolation: S,
    }
    "inbound_session" => Inbound {
        room_id: S, session_id: S, sender_key: S, sender: O<S>, sender_device: O<S>, first_known_index: u32,
        imported: bool, shared_by: O<S>,
    }
    "rotated" => Rotated { room_id: S, old_session_id: O<S>, new_session_id: O<S>, to_device_requests: O<usize> }
    "device" => Device {
        user_id: S, device_id: S, display_name: O<S>, curve25519: O<S>, ed25519: O<S>, verified: bool,
        cross_signed_by_owner: bool, local_trust: S, own: bool, deleted: bool,
    }
    "identity" => Identity {
        user_id: S, own: bool, master_key: O<S>, verified: bool, previously_verified: bool,
        verification_violation: bool, identity_changed: bool, this_device_cross_signed: O<bool>,
        private_keys: O<PrivateKeys>,
    }
    "local_trust" => LocalTrust { user_id: S, device_id: S, local_trust: S, previous: S }
    "approval" => Approval { url: S, browser_opened: bool }
    "recovery_key" => RecoveryKey { recovery_key: S, backup_version: O<S> }
    "recovery_status" => RecoveryStatus {
        secret_storage: bool, cross_signed: bool, cross_signing_keys_here: bool, backup_version: O<S>,
        room_keys: usize, room_keys_backed_up: usize, server_backup_version: O<S>, backup_keys_on_server: O<u64>,
    }
    "backup_status" => BackupStatus {
        server_version: O<S>, keys_on_server: O<u64>, version_here: O<S>, keys_here: usize, backed_up: usize,
        pending: usize, account_enabled: O<bool>,
    }
    "backup_restored" => BackupRestored { backup_version: S, rooms: usize, imported: usize }
    "olm_device" => OlmDevice {
        user_id: S, device_id: S, curve25519: S, session_count: usize, r8_min_cap: usize,
        sessions: Vec<OlmSession>, r7_choice: O<S>, sdk_choice: O<S>, choices_differ: bool,
    }
    "unwedged" => Unwedged { user_id: S, device_id: S, session_id: S, dummy_sent: bool, forced: bool }
    "key_request" => KeyRequest { room_id: S, session_id: S, sender: S, sender_key: S, request_id: S }
    "certified" => Certified { user_id: S, device_id: S, ed25519: S, already: bool }
    "keys_exported" => KeysExported { file: S, exported: usize }
    "keys_imported" => KeysImported { file: S, imported: usize, total: usize }
    "forgot_olm" => ForgotOlm { user_id: S, device_id: S, curve25519: S, deleted_sessions: Vec<S> }
    "forgot_room_key" => ForgotRoomKey { room_id: S, session_id: S, sender_key: S, first_known_index: u32 }
    "diagnosis" => Diagnosis {
        room_id: S, event_id: O<S>, event_ids: Vec<S>, sender: O<S>, sender_device: O<S>, session_id: O<S>, message_index: O<u32>,
        reason: S, withheld_code: O<S>, session_held: bool, first_known_index: O<u32>, sender_device_state: S,
        olm_sessions_with_sender: O<usize>, key_requested_ms: O<u64>, cause: S, explanation: S, fix: Vec<S>,
        reproduce: O<S>, checked: Vec<S>,
    }
    "delivery" => Delivery {
        room_id: S, session_id: S, event_ids: Vec<S>, message_indexes: Vec<u32>, user_id: O<S>, device_id: O<S>,
        given_from_index: O<u32>, withheld_code: O<S>, can_read: O<bool>, unreadable_event_ids: Vec<S>,
        device_state: S, cross_signed: O<bool>, olm_sessions: O<usize>, cause: S, explanation: S, fix: Vec<S>,
        past: O<S>,
    }
    "status" => Status { message: S }
    "warning" => Warning { message: S }
    "error" => Error { kind: S, exit_code: u8, message: S, causes: Vec<S>, hints: Vec<S>, candidates: O<Vec<Candidate>> }
}

#[test]
fn every_command_s_json_matches_the_documented_records() {
    let env = TestEnv::new();
    let (alice, bob, carol) = (register("alice"), register("bob"), register("carol"));
    let mut seen = std::collections::BTreeSet::new();
    let mut take = |run: crate::common::Run| {
        for line in run.json() {
            seen.insert(check(&line));
        }
        for line in run.stderr.lines().filter(|l| l.starts_with('{')) {
            seen.insert(check(&serde_json::from_str(line).unwrap()));
        }
        run
    };
    env.login("alice", &alice);
    let bob_login = env.login("bob", &bob);
    take(
        env.run_stdin(
            "carol",
            &[
                "--json",
                "login",
                "--homeserver",
                &crate::common::synapse().url,
                "--user",
                &carol.localpart,
                "--password-stdin",
            ],
            format!("{}\n", carol.password).as_bytes(),
        )
        .success(),
    );
    let bob_device = bob_login["device_id"].as_str().unwrap().to_owned();
    let alice_device =
        take(env.run("alice", &["--json", "whoami"]).success()).json()[0]["device_id"].as_str().unwrap().to_owned();

    let room = take(env.run("alice", &["--json", "room", "create", "--encrypted", "--rotation-msgs", "2"]).success())
        .records("room")[0]["room_id"]
        .as_str()
        .unwrap()
        .to_owned();
    take(env.run("alice", &["--json", "send", &room, "before bob"]).success());
    take(env.run("alice", &["--json", "room", "invite", &room, &bob.user_id]).success());
    take(env.run("alice", &["--json", "room", "invite", &room, &carol.user_id]).success());
    let synced = take(env.run("bob", &["--json", "sync"]).success());
    // Every record sync delivers carries its cursor (issue 18); the closing
    // summary is not a delivered record.
    let delivered: Vec<Value> = synced.json().into_iter().filter(|v| v["type"] != "sync").collect();
    assert!(!delivered.is_empty() && delivered.iter().all(|v| v["cursor"].is_string()), "{}", synced.stdout);
    take(env.run("bob", &["--json", "room", "join", &room]).success());
    take(env.run("carol", &["--json", "room", "join", &room]).success());
    take(env.run("alice", &["--json", "send", &room, "one", "two", "three"]).success());
    take(env.run("bob", &["--json", "messages", &room, "--all"]).code(3));
    take(env.run("bob", &["--json", "doctor", &room]).code(3));
    // "before bob" went before bob joined: his devices cannot read it.
    take(env.run("alice", &["--json", "doctor", &room, "--sent"]).code(3));
    take(env.run("alice", &["--json", "room", "info", &room]).success());
    take(env.run("alice", &["--json", "room", "list"]).success());
    take(env.run("alice", &["--json", "room", "members", &room]).success());
    take(env.run("alice", &["--json", "encrypt", &room, "--rotation-msgs", "2"]).success());
    take(env.run("alice", &["--json", "sessions", &room]).success());
    take(env.run("alice", &["--json", "rotate", &room, "--share"]).success());
    take(env.run("alice", &["--json", "devices", &bob.user_id]).success());
    take(env.run("alice", &["--json", "olm", &bob.user_id]).success());
    take(env.run("alice", &["--json", "identity"]).success());
    take(env.run("alice", &["--json", "identity", &bob.user_id]).success());
    take(env.run("alice", &["--json", "trust", &bob.user_id, &bob_device, "ignored"]).success());
    take(env.run("alice", &["--json", "trust", &bob.user_id, &bob_device, "unset"]).success());
    take(env.run("alice", &["--json", "recovery", "enable"]).success());
    take(env.run("alice", &["--json", "recovery", "status"]).success());
    take(env.run("alice", &["--json", "backup", "status"]).success());
    take(env.run("alice", &["--json", "backup", "restore"]).success());
    take(env.run("alice", &["--json", "unwedge", &bob.user_id, &bob_device]).success());
    take(env.run("bob", &["--json", "keys", "request", &room]).success());
    let file = env.home().join("k.txt");
    take(
        env.run_stdin("bob", &["--json", "keys", "export", file.to_str().unwrap(), "--passphrase-stdin"], b"p\n")
            .success(),
    );
    take(
        env.run_stdin("bob", &["--json", "keys", "import", file.to_str().unwrap(), "--passphrase-stdin"], b"p\n")
            .success(),
    );
    take(env.run("bob", &["--json", "debug", "forget-olm", &alice.user_id, &alice_device, "--yes"]).success());
    take(env.run("alice", &["--json", "rotate", &room]).success());
    take(env.run("alice", &["--json", "send", &room, "over the wedge"]).success());
    let attachment = env.home().join("a.txt");
    std::fs::write(&attachment, b"a file").unwrap();
    let sent_file =
        take(env.run("alice", &["--json", "send", &room, "--file", attachment.to_str().unwrap()]).success());
    let file_event = sent_file.records("sent")[0]["event_id"].as_str().unwrap().to_owned();
    let copy = env.home().join("a-copy.txt");
    take(env.run("alice", &["--json", "download", &room, &file_event, "-o", copy.to_str().unwrap()]).success());
    take(env.run("alice", &["--json", "whoami", "--access-token"]).success());
    take(env.run("bob", &["--json", "sync"]).success());
    let sessions = take(env.run("bob", &["--json", "sessions", &room]).success()).records("inbound_session");
    let sid = sessions[0]["session_id"].as_str().unwrap().to_owned();
    take(env.run("bob", &["--json", "debug", "forget-room-key", &room, &sid, "--yes"]).success());
    take(env.run("carol", &["--json", "room", "leave", &room]).success());
    take(env.run("carol", &["--json", "sync"]).success());
    take(env.run("nobody", &["--json", "whoami"]).code(4));
    // A usage error from the command line parser: the same error record.
    let usage = take(env.run("alice", &["--json", "messages", &room, "--limit", "0"]).code(2));
    assert!(usage.stderr.starts_with(r#"{"type":"error","kind":"usage""#), "{}", usage.stderr);
    let mut bare = env.command("alice", &["--json", "room"]);
    bare.env_remove("RATCHET_PROFILE");
    let bare = take(env.run_with(bare, None).code(2));
    assert!(bare.stderr.starts_with(r#"{"type":"error","kind":"usage""#), "{}", bare.stderr);
    // Names match ignoring case when nothing matches exactly; rooms one
    // name names come as fields (issue 20).
    take(env.run("alice", &["--json", "room", "create", "--name", "Twin"]).success());
    take(env.run("alice", &["--json", "room", "create", "--name", "TWIN"]).success());
    let exact = take(env.run("alice", &["--json", "send", "Twin", "x"]).success());
    assert_eq!(exact.records("sent").len(), 1, "an exact match wins");
    let ambiguous = take(env.run("alice", &["--json", "send", "tWiN", "x"]).code(2));
    let error: Value = serde_json::from_str(ambiguous.stderr.lines().last().unwrap()).unwrap();
    let names: Vec<&str> =
        error["candidates"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2, "{error}");
    assert!(names.contains(&"Twin") && names.contains(&"TWIN"), "{error}");
    take(env.run("carol", &["--json", "logout", "--yes"]).success());

    // Produced by `sync --follow` and a fill past its budget (tests/sync.rs
    // and tests/stream.rs check their content), and by undelivered records
    // past 50,000 (unit-tested in profile::state).
    // `certified` needs a second device of one account: tests/verify.rs;
    // `sso` and `approval` an identity provider and a browser: tests/sso.rs.
    let follow_only = ["gap", "identity_reset", "rotation_seen", "inbox_gap", "certified", "sso", "approval"];
    let missing: Vec<&&str> = ALL_TYPES.iter().filter(|t| !seen.contains(**t) && !follow_only.contains(t)).collect();
    assert!(missing.is_empty(), "record types never produced here: {missing:?}");
}

/// The README documents exactly these record types.
#[test]
fn readme_documents_every_record_type() {
    let readme = include_str!("../README.md");
    for t in ALL_TYPES {
        assert!(readme.contains(&format!("`{t}`")), "README does not document record type `{t}`");
    }
}
