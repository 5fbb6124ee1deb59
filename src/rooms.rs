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
    crate::ui::hint::quote(room)
}

/// ROOM as typed, resolved against what the account knows by [`find`] /
/// [`joined`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RoomArg {
    /// A room id (`!…`) or a full alias (`#name:server`).
    Exact(OwnedRoomOrAliasId),
    /// `#name` without a server part: an alias on the user's own server.
    OwnAlias(String),
    /// Anything else: a room name, or an alias's local part, that names one
    /// room this account is in or invited to (or else an alias `#word` on
    /// the user's own server).
    Name(String),
}

impl std::fmt::Display for RoomArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RoomArg::Exact(id) => write!(f, "{id}"),
            RoomArg::OwnAlias(local) => write!(f, "#{local}"),
            RoomArg::Name(name) => write!(f, "{name}"),
        }
    }
}

/// clap value parser for ROOM: a room id (`!…`), an alias (`#name:server`
/// or `#name` on the user's server), or a room name / alias local part.
pub(crate) fn parse_room(s: &str) -> Result<RoomArg, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("a room is needed: an id (!…), an alias (#name, #name:server) or a room's name".into());
    }
    if s.chars().any(char::is_control) {
        return Err(format!("`{}` is not a room: it contains control characters", s.escape_debug()));
    }
    if !(s.starts_with('!') || s.starts_with('#')) {
        return Ok(RoomArg::Name(s.to_owned()));
    }
    // ruma is lenient here; no server issues ids or aliases with spaces.
    if s.chars().any(char::is_whitespace) {
        return Err(format!("`{s}` is not a valid room id or alias: it contains white space"));
    }
    if let Some(local) = s.strip_prefix('#').filter(|rest| !rest.contains(':')) {
        if local.is_empty() {
            return Err("`#` is not an alias: a name follows it (#team, #team:example.org)".into());
        }
        return Ok(RoomArg::OwnAlias(local.to_owned()));
    }
    <&RoomOrAliasId>::try_from(s)
        .map(|id| RoomArg::Exact(id.to_owned()))
        .map_err(|e| format!("`{s}` is not a valid room id or alias: {e}"))
}

/// `#local` on the user's own server.
fn own_alias(client: &Client, local: &str) -> CliResult<OwnedRoomOrAliasId> {
    let server = client.user_id().map(|u| u.server_name().to_owned()).ok_or_else(|| CliError::internal("no user"))?;
    let full = format!("#{local}:{server}");
    <&RoomOrAliasId>::try_from(full.as_str())
        .map(ToOwned::to_owned)
        .map_err(|e| CliError::usage(format!("`#{local}` is not a valid alias on {server}: {e}")))
}

/// The rooms this account is in or invited to that `name` names: by the
/// room's name, or by the local part of its canonical or alternative
/// aliases. Exact matches first; only when there is none, matches that
/// differ in case (as people type names: `team chat` for "Team Chat").
fn named(client: &Client, name: &str) -> Vec<Room> {
    let rooms: Vec<Room> =
        client.rooms().into_iter().filter(|r| matches!(r.state(), RoomState::Joined | RoomState::Invited)).collect();
    let labels = |r: &Room| -> Vec<String> {
        let mut labels: Vec<String> = r.name().into_iter().collect();
        labels.extend(r.canonical_alias().map(|a| a.alias().to_owned()));
        labels.extend(r.alt_aliases().iter().map(|a| a.alias().to_owned()));
        labels
    };
    let exact: Vec<Room> = rooms.iter().filter(|r| names_match(&labels(r), name, false)).cloned().collect();
    if !exact.is_empty() {
        return exact;
    }
    rooms.into_iter().filter(|r| names_match(&labels(r), name, true)).collect()
}

/// Whether any of a room's labels (name, alias local parts) is `name`;
/// `fold`: ignoring case (Unicode lower-casing).
fn names_match(labels: &[String], name: &str, fold: bool) -> bool {
    if fold {
        let name = name.to_lowercase();
        labels.iter().any(|l| l.to_lowercase() == name)
    } else {
        labels.iter().any(|l| l == name)
    }
}

/// What ROOM comes to.
enum Target {
    /// An id or alias, for the server (or the store) to resolve.
    Ask(OwnedRoomOrAliasId),
    /// The room the name named.
    Known(Room),
}

/// What ROOM names, as an id or alias the server understands: a name is
/// looked up among the rooms this account knows first (one room, or a
/// usage error listing them), then taken as an alias on the user's server.
fn target(client: &Client, room: &RoomArg) -> CliResult<Target> {
    match room {
        RoomArg::Exact(id) => Ok(Target::Ask(id.clone())),
        RoomArg::OwnAlias(local) => Ok(Target::Ask(own_alias(client, local)?)),
        RoomArg::Name(name) => {
            let mut found = named(client, name);
            match found.len() {
                1 => Ok(Target::Known(found.remove(0))),
                0 if name.chars().any(char::is_whitespace) => Err(no_room_called(name)),
                0 => Ok(Target::Ask(own_alias(client, name).map_err(|_| no_room_called(name))?)),
                n => {
                    let ids: Vec<String> = found.iter().map(|r| quoted(r.room_id().as_str())).collect();
                    let candidates = found
                        .iter()
                        .map(|r| crate::error::Candidate {
                            room_id: r.room_id().to_string(),
                            name: r.name().or_else(|| r.canonical_alias().map(|a| a.to_string())),
                        })
                        .collect();
                    Err(CliError::usage(format!("`{name}` names {n} rooms: {}", ids.join(", ")))
                        .with_hint("give the room id instead")
                        .with_candidates(candidates))
                }
            }
        }
    }
}

fn no_room_called(name: &str) -> CliError {
    CliError::failed(format!("no room called `{name}`: no room you are in or invited to has that name or alias"))
        .with_hint(format!(
            "`{}` shows your rooms; room ids start with `!`, aliases with `#`",
            crate::ui::hint::ratchet("room list")
        ))
}

/// The id or alias to join for ROOM. A bare word is first an alias on
/// the user's own server (`#WORD:server`, which the server resolves): a
/// room name, or an alias, in an invite is whatever the inviter chose, so
/// it must not win over the server's own alias. Failing that, a room this
/// account is invited to (or in) that the word names.
pub(crate) async fn join_target(client: &Client, room: &RoomArg) -> CliResult<OwnedRoomOrAliasId> {
    if let RoomArg::Name(name) = room {
        if !name.chars().any(char::is_whitespace) {
            if let Ok(alias) = own_alias(client, name) {
                if let Ok(alias) = <&matrix_sdk::ruma::RoomAliasId>::try_from(alias.as_str()) {
                    // Joined by the alias (the server resolves it, with the
                    // servers to join through), once it is known to exist.
                    match client.resolve_room_alias(alias).await {
                        Ok(_) => return Ok(alias.to_owned().into()),
                        Err(e) => tracing::debug!(error = %e, "no alias #{name} on this server; trying room names"),
                    }
                }
            }
        }
    }
    Ok(match target(client, room)? {
        Target::Ask(id) => id,
        Target::Known(found) => found.room_id().to_owned().into(),
    })
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

/// A room as a person knows it, for status lines: its name (escaped: the
/// name is anybody's text) and its id.
pub(crate) fn label(room: &Room) -> String {
    match room.name() {
        Some(name) => format!("{} ({})", crate::ui::terminal::inert(&name), room.room_id()),
        None => room.room_id().to_string(),
    }
}

/// Resolves ROOM to a room this account has joined (aliases via the server).
pub(crate) async fn joined(client: &Client, room: &RoomArg) -> CliResult<Room> {
    let found = find(client, room).await?;
    let join = crate::ui::hint::ratchet("room join").arg(found.room_id().as_str());
    match found.state() {
        RoomState::Joined => Ok(found),
        RoomState::Invited => Err(CliError::failed(format!("you are invited to {room} but have not joined it"))
            .with_hint(format!("run `{join}`"))),
        _ => Err(CliError::failed(format!("you are not a member of {room}"))
            .with_hint(format!("run `{join}` if you may join it"))),
    }
}

/// Resolves ROOM to a room this client knows in any state.
pub(crate) async fn find(client: &Client, room: &RoomArg) -> CliResult<Room> {
    let target = match target(client, room)? {
        Target::Ask(target) => target,
        Target::Known(found) => return Ok(found),
    };
    let room_id = if target.is_room_id() {
        target.as_str().try_into().expect("checked is_room_id")
    } else {
        let alias = target.as_str().try_into().expect("checked alias");
        let resolved = client.resolve_room_alias(alias).await;
        match resolved {
            Ok(r) => r.room_id,
            // A bare word that is neither a known room's name nor an alias.
            Err(_) if matches!(room, RoomArg::Name(_)) => return Err(no_room_called(&room.to_string())),
            Err(e) => {
                let base: CliError = e.into();
                return Err(CliError::new(base.kind, format!("could not resolve the alias {target}"))
                    .with_source(anyhow::anyhow!(base.message)));
            }
        }
    };
    client.get_room(&room_id).ok_or_else(|| {
        CliError::failed(format!("unknown room {room}")).with_hint(format!(
            "check the id; `{}` shows the rooms this account knows",
            crate::ui::hint::ratchet("room list")
        ))
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
        assert!(matches!(parse_room("#room:localhost"), Ok(RoomArg::Exact(_))));
        assert_eq!(parse_room("room"), Ok(RoomArg::Name("room".into())));
        assert_eq!(parse_room("team chat"), Ok(RoomArg::Name("team chat".into())));
        assert_eq!(parse_room("#nocolon"), Ok(RoomArg::OwnAlias("nocolon".into())));
        assert!(parse_room("#").is_err());
        assert!(parse_room("").is_err());
        assert!(parse_room("  ").is_err());
        assert!(parse_room("!a b:localhost").is_err());
        assert!(parse_room("#a b").is_err());
        assert!(parse_room("ops\x1b[2J").is_err());
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

    use super::{parse_room, parse_user, RoomArg};

    proptest! {
        /// Whatever is typed, parsing never panics; an id or alias it
        /// accepts has no white space, and a name is what was typed, trimmed.
        #[test]
        fn room_arguments_never_panic(s in "\\PC{0,80}") {
            match parse_room(&s) {
                Ok(RoomArg::Exact(id)) => {
                    let id = id.as_str();
                    prop_assert!(id.starts_with('!') || id.starts_with('#'));
                    prop_assert!(!id.chars().any(char::is_whitespace));
                }
                Ok(RoomArg::OwnAlias(local)) => {
                    prop_assert!(!local.is_empty() && !local.contains(':'));
                    prop_assert!(!local.chars().any(char::is_whitespace));
                }
                Ok(RoomArg::Name(name)) => {
                    prop_assert_eq!(name.as_str(), s.trim());
                    prop_assert!(!name.starts_with(['!', '#']));
                }
                Err(_) => {}
            }
        }

        /// Well-formed ids of both shapes (with and without a server part,
        /// as in room version 12) are accepted unchanged.
        #[test]
        fn well_formed_room_ids_are_accepted(local in "[A-Za-z0-9_-]{1,43}", server in proptest::option::of("[a-z]{1,12}\\.[a-z]{2,6}")) {
            let id = match &server { Some(s) => format!("!{local}:{s}"), None => format!("!{local}") };
            let parsed = parse_room(&id).unwrap();
            prop_assert_eq!(parsed.to_string(), id);
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

#[cfg(test)]
mod name_tests {
    use super::names_match;

    #[test]
    fn names_match_exactly_then_ignoring_case() {
        let labels = vec!["Team Chat".to_owned(), "ops".to_owned()];
        assert!(names_match(&labels, "Team Chat", false));
        assert!(!names_match(&labels, "team chat", false));
        assert!(names_match(&labels, "team chat", true));
        assert!(names_match(&labels, "OPS", true));
        assert!(names_match(&["Ärger".to_owned()], "ärger", true), "beyond ASCII");
        assert!(!names_match(&labels, "team", true));
    }
}
