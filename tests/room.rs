//! room create / invite / join / list / leave, with room ids of both shapes
//! and aliases.

use serde_json::json;

use crate::common::{api, enc, register, TestEnv};

#[test]
fn create_invite_join_by_alias_list_and_leave() {
    let env = TestEnv::new();
    let (alice, bob, carol) = (register("alice"), register("bob"), register("carol"));
    env.login("alice", &alice);
    env.login("bob", &bob);
    env.login("carol", &carol);

    let run = env
        .run("alice", &["--json", "room", "create", "--name", "ops", "--encrypted", "--invite", &bob.user_id])
        .success();
    let room = &run.records("room")[0];
    let room_id = room["room_id"].as_str().unwrap().to_owned();
    assert_eq!(room["encrypted"], true);
    assert_eq!(room["name"], "ops");
    // Synapse 1.163 makes room version 12 rooms: no `:server` in the id.
    assert!(!room_id.contains(':'), "expected a v12 room id, got {room_id}");

    // The server really holds m.room.encryption with the Megolm algorithm (R1).
    let (status, state) = api(
        "GET",
        &env.token("alice"),
        &format!("/_matrix/client/v3/rooms/{}/state/m.room.encryption/", enc(&room_id)),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(state["algorithm"], "m.megolm.v1.aes-sha2");

    // Bob sees the invite in a sync and joins by id.
    let invites = env.run("bob", &["--json", "sync"]).success().records("invite");
    assert!(invites.iter().any(|r| r["room_id"] == room_id.as_str()), "{invites:?}");
    let joined = env.run("bob", &["--json", "room", "join", &room_id]).success().records("room");
    assert_eq!(joined[0]["state"], "joined");
    assert_eq!(joined[0]["encrypted"], true);

    // Carol is invited with `room invite` and joins by alias.
    let alias = format!("#ops-{}:localhost", carol.localpart);
    let (status, _) = api(
        "PUT",
        &env.token("alice"),
        &format!("/_matrix/client/v3/directory/room/{}", enc(&alias)),
        Some(json!({"room_id": room_id})),
    );
    assert_eq!(status, 200);
    let invited = env.run("alice", &["--json", "room", "invite", &alias, &carol.user_id]).success().records("invited");
    assert_eq!(invited[0]["user_id"], carol.user_id.as_str());
    let joined = env.run("carol", &["--json", "room", "join", &alias]).success().records("room");
    assert_eq!(joined[0]["room_id"], room_id.as_str());
    // Inviting a member again: nothing to do, and no error (issue 20; the
    // server refuses it with 403).
    let again = env.run("alice", &["--json", "room", "invite", &alias, &carol.user_id]).success().records("invited");
    assert_eq!(again[0]["already"], "joined", "{again:?}");

    let listed = env.run("carol", &["--json", "room", "list"]).success().records("room");
    assert!(listed.iter().any(|r| r["room_id"] == room_id.as_str() && r["state"] == "joined"), "{listed:?}");

    env.run("carol", &["--json", "room", "leave", &room_id]).success();
    let listed = env.run("carol", &["--json", "room", "list"]).success().records("room");
    assert!(!listed.iter().any(|r| r["room_id"] == room_id.as_str()), "{listed:?}");
    let all = env.run("carol", &["--json", "room", "list", "--all"]).success().records("room");
    assert!(all.iter().any(|r| r["room_id"] == room_id.as_str() && r["state"] == "left"), "{all:?}");
}

#[test]
fn room_ids_with_a_server_part_work_too() {
    let env = TestEnv::new();
    let (alice, bob) = (register("alice"), register("bob"));
    env.login("alice", &alice);
    env.login("bob", &bob);
    // A room version 11 room has a `!opaque:server` id.
    let (status, created) = api(
        "POST",
        &env.token("alice"),
        "/_matrix/client/v3/createRoom",
        Some(json!({"room_version": "11", "invite": [bob.user_id],
                    "initial_state": [{"type": "m.room.encryption", "state_key": "",
                                       "content": {"algorithm": "m.megolm.v1.aes-sha2"}}]})),
    );
    assert_eq!(status, 200, "{created}");
    let room_id = created["room_id"].as_str().unwrap().to_owned();
    assert!(room_id.ends_with(":localhost"), "{room_id}");
    env.run("bob", &["room", "join", &room_id]).success();
    let sent = env.run("alice", &["--json", "send", &room_id, "v11 hello"]).success().records("sent");
    assert_eq!(sent[0]["encrypted"], true);
    let msgs = env.run("bob", &["--json", "messages", &room_id]).success().records("message");
    assert_eq!(msgs.last().unwrap()["body"], "v11 hello");
}

#[test]
fn create_with_a_topic() {
    let env = TestEnv::new();
    let alice = register("alice");
    env.login("alice", &alice);
    let run = env.run("alice", &["--json", "room", "create", "--name", "t", "--topic", "what we test"]).success();
    let room_id = run.records("room")[0]["room_id"].as_str().unwrap().to_owned();
    let (status, topic) = api(
        "GET",
        &env.token("alice"),
        &format!("/_matrix/client/v3/rooms/{}/state/m.room.topic/", enc(&room_id)),
        None,
    );
    assert_eq!(status, 200, "{topic}");
    assert_eq!(topic["topic"], "what we test");
}

/// Issue 14, item 8: an invited encrypted room is listed as encrypted (from
/// the invite's stripped state), before joining.
#[test]
fn an_invited_encrypted_room_is_listed_as_encrypted() {
    let env = TestEnv::new();
    let (alice, bob) = (register("alice"), register("bob"));
    env.login("alice", &alice);
    env.login("bob", &bob);
    let room = env.run("alice", &["--json", "room", "create", "--encrypted", "--invite", &bob.user_id]).success();
    let room_id = room.records("room")[0]["room_id"].as_str().unwrap().to_owned();
    let listed = env.run("bob", &["--json", "room", "list", "--all"]).success().records("room");
    let r = listed.iter().find(|r| r["room_id"] == room_id.as_str()).expect("bob sees the invite");
    assert_eq!(r["state"], "invited");
    assert_eq!(r["encrypted"], true, "{r}");
}

#[test]
fn members_lists_who_is_joined_and_invited() {
    let env = TestEnv::new();
    let (alice, bob, carol) = (register("alice"), register("bob"), register("carol"));
    env.login("alice", &alice);
    env.login("bob", &bob);
    let room = env.encrypted_room("alice", &[("bob", &bob)], &["--invite", &carol.user_id]);
    let members = env.run("alice", &["--json", "room", "members", &room]).success().records("member");
    let seen: Vec<(&str, &str)> =
        members.iter().map(|m| (m["user_id"].as_str().unwrap(), m["membership"].as_str().unwrap())).collect();
    let mut expected =
        vec![(alice.user_id.as_str(), "join"), (bob.user_id.as_str(), "join"), (carol.user_id.as_str(), "invite")];
    expected.sort();
    assert_eq!(seen, expected);
}

/// Issue 14, item 8: ROOM may be a room's name or an alias's local part
/// when it names one room the account knows, or `#alias` on the user's own
/// server; an ambiguous name is a usage error that lists the rooms.
#[test]
fn rooms_by_name_local_alias_and_alias_without_server() {
    let env = TestEnv::new();
    let (alice, bob) = (register("alice"), register("bob"));
    env.login("alice", &alice);
    env.login("bob", &bob);
    let create = |args: &[&str]| {
        let mut all = vec!["--json", "room", "create"];
        all.extend_from_slice(args);
        env.run("alice", &all).success().records("room")[0]["room_id"].as_str().unwrap().to_owned()
    };
    let ops = create(&["--name", "ops desk", "--alias", "ops", "--encrypted", "--invite", &bob.user_id]);
    let twin_a = create(&["--name", "twin"]);
    let twin_b = create(&["--name", "twin"]);

    // By name (with a space), by the alias's local part, by #alias alone.
    for (i, room) in ["ops desk", "ops", "#ops"].iter().enumerate() {
        let sent = env.run("alice", &["--json", "send", room, &format!("m{i}")]).success().records("sent");
        assert_eq!(sent[0]["room_id"], ops.as_str(), "{room}");
    }
    let read = env.run("alice", &["--json", "messages", "ops"]).success().records("message");
    assert_eq!(read.iter().map(|m| m["body"].as_str().unwrap()).collect::<Vec<_>>(), ["m0", "m1", "m2"]);

    // bob joins by the name of the room he is invited to.
    let joined = env.run("bob", &["--json", "room", "join", "ops desk"]).success().records("room");
    assert_eq!(joined[0]["room_id"], ops.as_str());
    assert_eq!(env.run("bob", &["--json", "messages", "ops"]).success().records("message").len(), 3);

    // Two rooms called "twin": refused, both ids named, pasteable.
    let run = env.run("alice", &["send", "twin", "x"]).code(2);
    let error = run.error_lines().join("\n");
    assert!(error.contains("`twin` names 2 rooms"), "{error}");
    assert!(error.contains(&format!("'{twin_a}'")) && error.contains(&format!("'{twin_b}'")), "{error}");
    // Neither a known name nor an alias on the server.
    let run = env.run("alice", &["send", "nowhere", "x"]).code(1);
    assert!(run.error_lines()[0].contains("no room called `nowhere`"), "{}", run.stderr);
    let run = env.run("alice", &["send", "#nowhere", "x"]).code(1);
    assert!(run.stderr.contains("could not resolve the alias #nowhere:"), "{}", run.stderr);
}

/// `room join WORD`: the alias `#WORD` on your own server wins over a room
/// name an inviter chose (issue 19): a stranger cannot capture a join by
/// naming their room after yours.
#[test]
fn join_by_word_prefers_your_server_s_alias_over_an_inviter_s_room_name() {
    let env = TestEnv::new();
    let (alice, mallory, carol) = (register("alice"), register("mallory"), register("carol"));
    env.login("alice", &alice);
    env.login("mallory", &mallory);
    env.login("carol", &carol);
    let word = format!("w{}", carol.localpart);
    let real = env.run("alice", &["--json", "room", "create", "--alias", &word]).success().records("room")[0]
        ["room_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = api(
        "PUT",
        &env.token("alice"),
        &format!("/_matrix/client/v3/rooms/{}/state/m.room.join_rules/", enc(&real)),
        Some(json!({"join_rule": "public"})),
    );
    assert_eq!(status, 200);
    let trap = env
        .run("mallory", &["--json", "room", "create", "--name", &word, "--invite", &carol.user_id])
        .success()
        .records("room")[0]["room_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let joined = env.run("carol", &["--json", "room", "join", &word]).success().records("room");
    assert_eq!(joined[0]["room_id"], real.as_str(), "joined the alias's room, not {trap}");
}
