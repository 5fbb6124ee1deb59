//! Room and user arguments: parsing (at the command line, so bad ids are
//! usage errors) and resolving to a joined `Room`.
//!
//! Room ids come in two shapes: `!opaque:server` (room versions 1–11) and
//! `!opaque` (room version 12, which Synapse 1.163 creates by default).
//! ruma 0.16 accepts both; neither is ever split on `:` here.

use matrix_sdk::ruma::{OwnedRoomOrAliasId, OwnedUserId, RoomOrAliasId, UserId};
use matrix_sdk::{Client, Room, RoomState};

use crate::error::{CliError, CliResult};

/// A room id or alias as a shell word a person can paste: in single quotes
/// (`!` is history expansion in an interactive bash, `#` starts a comment).
pub(crate) fn quoted(room: &str) -> String {
    format!("'{}'", room.replace('\'', "'\\''"))
}

/// clap value parser for ROOM: a room id (`!…`) or alias (`#…:server`).
pub(crate) fn parse_room(s: &str) -> Result<OwnedRoomOrAliasId, String> {
    let s = s.trim();
    if !(s.starts_with('!') || s.starts_with('#')) {
        return Err(format!("`{s}` is not a room id or alias (room ids start with `!`, aliases with `#`)"));
    }
    // ruma is lenient here; no server issues ids with spaces or controls.
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("`{s}` is not a valid room id or alias: it contains white space"));
    }
    <&RoomOrAliasId>::try_from(s)
        .map(ToOwned::to_owned)
        .map_err(|e| format!("`{s}` is not a valid room id or alias: {e}"))
}

/// A user id: `@name:server`, or a bare `name` completed with our own server.
pub(crate) fn parse_user(s: &str, own: &UserId) -> CliResult<OwnedUserId> {
    let s = s.trim();
    let full = if s.starts_with('@') { s.to_owned() } else { format!("@{s}:{}", own.server_name()) };
    // ruma's parser is lenient (it accepts ids no server would issue, such
    // as ones with spaces); the historical grammar is what servers accept.
    UserId::parse(&full).and_then(|id| id.validate_historical().map(|()| id)).map_err(|e| {
        CliError::usage(format!("`{s}` is not a valid user id: {e}")).with_hint("user ids look like @alice:example.org")
    })
}

/// Resolves ROOM to a room this account has joined (aliases via the server).
pub(crate) async fn joined(client: &Client, room: &RoomOrAliasId) -> CliResult<Room> {
    let found = find(client, room).await?;
    match found.state() {
        RoomState::Joined => Ok(found),
        RoomState::Invited => Err(CliError::failed(format!("you are invited to {room} but have not joined it"))
            .with_hint(format!("run `ratchet room join {}`", quoted(room.as_str())))),
        _ => Err(CliError::failed(format!("you are not a member of {room}"))
            .with_hint(format!("run `ratchet room join {}` if you may join it", quoted(room.as_str())))),
    }
}

/// Resolves ROOM to a room this client knows in any state.
pub(crate) async fn find(client: &Client, room: &RoomOrAliasId) -> CliResult<Room> {
    let room_id = if room.is_room_id() {
        room.as_str().try_into().expect("checked is_room_id")
    } else {
        let alias = room.as_str().try_into().expect("checked alias");
        client
            .resolve_room_alias(alias)
            .await
            .map_err(|e| {
                let base: CliError = e.into();
                CliError::new(base.kind, format!("could not resolve the alias {room}"))
                    .with_source(anyhow::anyhow!(base.message))
            })?
            .room_id
    };
    client.get_room(&room_id).ok_or_else(|| {
        CliError::failed(format!("unknown room {room}"))
            .with_hint("check the id; `ratchet room list` shows the rooms this account knows")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_ids_with_and_without_server() {
        assert!(parse_room("!abc:localhost").is_ok());
        // Room version 12: no server part.
        assert!(parse_room("!U67yZUXtX8-sL_lEIMeA1fk04m5qJJMaUgkBz0HqwrE").is_ok());
        assert!(parse_room("#room:localhost").is_ok());
        assert!(parse_room("room").is_err());
        assert!(parse_room("#nocolon").is_err());
        assert!(parse_room("").is_err());
        assert!(parse_room("!a b:localhost").is_err());
    }

    #[test]
    fn users_complete_with_own_server() {
        let own = UserId::parse("@me:example.org").unwrap();
        assert_eq!(parse_user("bob", &own).unwrap().as_str(), "@bob:example.org");
        assert_eq!(parse_user("@bob:other", &own).unwrap().as_str(), "@bob:other");
        assert!(parse_user("@bad", &own).is_err());
        assert!(parse_user("b o b", &own).is_err());
    }
}

#[cfg(test)]
mod props {
    use matrix_sdk::ruma::UserId;
    use proptest::prelude::*;

    use super::{parse_room, parse_user};

    proptest! {
        /// Whatever is typed, parsing never panics, and what it accepts is a
        /// room id or alias without white space.
        #[test]
        fn room_arguments_never_panic(s in "\\PC{0,80}") {
            if let Ok(id) = parse_room(&s) {
                let id = id.as_str();
                prop_assert!(id.starts_with('!') || id.starts_with('#'));
                prop_assert!(!id.chars().any(char::is_whitespace));
            }
        }

        /// Well-formed ids of both shapes (with and without a server part,
        /// as in room version 12) are accepted unchanged.
        #[test]
        fn well_formed_room_ids_are_accepted(local in "[A-Za-z0-9_-]{1,43}", server in proptest::option::of("[a-z]{1,12}\\.[a-z]{2,6}")) {
            let id = match &server { Some(s) => format!("!{local}:{s}"), None => format!("!{local}") };
            let parsed = parse_room(&id).unwrap();
            prop_assert_eq!(parsed.as_str(), id.as_str());
        }

        #[test]
        fn user_arguments_never_panic(s in "\\PC{0,80}") {
            let own = UserId::parse("@me:example.org").unwrap();
            if let Ok(user) = parse_user(&s, &own) {
                prop_assert!(user.as_str().starts_with('@'));
                prop_assert!(user.validate_historical().is_ok());
            }
        }

        #[test]
        fn bare_names_complete_with_our_server(name in "[a-z0-9._=-]{1,30}") {
            let own = UserId::parse("@me:example.org").unwrap();
            let user = parse_user(&name, &own).unwrap();
            prop_assert_eq!(user.as_str(), format!("@{name}:example.org"));
        }
    }
}
