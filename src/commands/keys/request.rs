//! `ratchet keys request`.

use clap::Args;
use matrix_sdk::ruma::api::client::room::get_room_event;
use matrix_sdk::ruma::{OwnedEventId, UserId};
use serde::Serialize;
use serde_json::Value;
use tracing::instrument;

use crate::clock::now_ms;
use crate::context::CommandContext;
use crate::error::{CliError, CliResult};
use crate::events::{recent_history, HistoryEvent};
use crate::rooms;
use crate::ui::output::Record;

/// Ask for Megolm room keys again with m.room_key_request (rule R13).
///
/// The request goes to every device of the session's sender and of your own
/// account. With --event, for the session of that event; with --session, for
/// that session (found in recent history); with neither, for every session
/// that is undecryptable in the last 100 events.
///
/// The request to your own devices goes through matrix-sdk's key-request
/// machinery, so that the key a verified device of yours forwards is
/// accepted when this device next syncs (`sync` says so). matrix-sdk 0.18
/// accepts a forwarded key only from your own verified devices: a key
/// forwarded by another user's device arrives (`sync` shows it) but is
/// dropped, and `sync` says why.
///
/// Examples:
///
///   ratchet keys request '!room:example.org'
///   ratchet keys request '!room:example.org' --event '$eventid'
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct RequestArgs {
    /// Room: id (!…), alias (#name or #name:server), or the room's name
    #[arg(value_parser = rooms::parse_room)]
    room: rooms::RoomArg,
    /// The Megolm session id, or its first characters as shown, if they fit
    /// one session of the room's last 100 events
    #[arg(long, conflicts_with = "event")]
    session: Option<String>,
    /// An event encrypted with the session
    #[arg(long)]
    event: Option<OwnedEventId>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct KeyRequestRecord {
    room_id: String,
    session_id: String,
    sender: String,
    sender_key: String,
    request_id: String,
}

impl Record for KeyRequestRecord {
    const TYPE: &'static str = "key_request";
    fn human(&self) -> String {
        format!(
            "requested session {} of {} from {} (request {})",
            self.session_id, self.room_id, self.sender, self.request_id
        )
    }
}

/// (session id, sender, sender key) of an m.room.encrypted event.
fn session_of(event: &Value) -> Option<(String, String, String)> {
    let content = &event["content"];
    Some((
        content["session_id"].as_str()?.to_owned(),
        event["sender"].as_str()?.to_owned(),
        content["sender_key"].as_str()?.to_owned(),
    ))
}

#[instrument(skip_all)]
pub(crate) async fn cmd_request(ctx: &mut CommandContext, args: &RequestArgs) -> CliResult {
    let client = ctx.client().await?;
    ctx.sync(&client).await?;
    let room = rooms::joined(&client, &args.room).await?;

    let mut wanted: Vec<(String, String, String)> = Vec::new();
    if let Some(event_id) = &args.event {
        let response =
            client.send(get_room_event::v3::Request::new(room.room_id().to_owned(), event_id.clone())).await?;
        let event: Value = response.event.deserialize_as().unwrap_or(Value::Null);
        wanted.push(session_of(&event).ok_or_else(|| {
            CliError::failed(format!("{event_id} is not a Megolm-encrypted event with a sender key"))
        })?);
        // Decrypting it is what makes matrix-sdk record its own request to
        // our own devices (history below is decrypted already).
        let raw: matrix_sdk::ruma::serde::Raw<Value> = matrix_sdk::ruma::serde::Raw::new(&event)
            .map_err(|e| CliError::internal("could not re-read an event").with_source(e))?;
        let _ = room.decrypt_event(crate::events::as_encrypted(&raw), None).await;
    } else {
        let history = recent_history(&room, 100).await?;
        // --session may be the first characters shown of a session id
        // used in this history.
        let session = match &args.session {
            Some(given) => {
                let used = history.iter().filter_map(|h| h.original["content"]["session_id"].as_str());
                Some(crate::ids::by_prefix("Megolm session", given, used)?.unwrap_or_else(|| given.clone()))
            }
            None => None,
        };
        for HistoryEvent { original, event, .. } in history {
            if original["type"] != "m.room.encrypted" {
                continue;
            }
            let Some(found) = session_of(&original) else { continue };
            match &session {
                Some(s) if *s != found.0 => continue,
                Some(_) => {}
                // Without --session: only what cannot be decrypted here.
                None if event.encryption_info().is_some() => continue,
                None => {}
            }
            if !wanted.contains(&found) {
                wanted.push(found);
            }
        }
        if wanted.is_empty() {
            return match &args.session {
                Some(s) => {
                    Err(CliError::failed(format!("no event of session {s} in the last 100 events of {}", args.room))
                        .with_hint("use --event with an event id of that session"))
                }
                None => {
                    ctx.out.status("Nothing undecryptable in the last 100 events; no request sent.");
                    Ok(())
                }
            };
        }
    }
    let mut ledger = ctx.olm_ledger()?;
    // matrix-sdk made its own request to our own devices when it failed to
    // decrypt these events (above): it is recorded in the store, so the
    // forward a verified device of ours sends back is accepted. The next
    // sync sends it; do that now.
    ctx.sync(&client).await?;
    for (session_id, sender, sender_key) in wanted {
        let sender_id = UserId::parse(&sender).map_err(|e| CliError::failed("bad sender in event").with_source(e))?;
        let request_id =
            crate::sdk::keys::request_room_key(&client, room.room_id(), &session_id, &sender_id, &sender_key).await?;
        ledger.key_requests.insert(session_id.clone(), now_ms());
        ledger.save()?;
        ctx.out.data(&KeyRequestRecord {
            room_id: room.room_id().to_string(),
            session_id,
            sender,
            sender_key,
            request_id,
        })?;
    }
    Ok(())
}
