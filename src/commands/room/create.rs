//! `ratchet room create`.

use clap::Args;
use matrix_sdk::ruma::api::client::room::create_room::v3::{Request, RoomPreset};
use matrix_sdk::ruma::events::room::encryption::RoomEncryptionEventContent;
use matrix_sdk::ruma::events::InitialStateEvent;
use matrix_sdk::ruma::{EventEncryptionAlgorithm, UInt};
use tracing::instrument;

use super::RoomRecord;
use crate::context::CommandContext;
use crate::error::{CliError, CliResult};
use crate::rooms;

/// Create a private room, optionally encrypted, and invite people.
///
/// With --encrypted the room is created with `m.room.encryption` in its
/// initial state (algorithm m.megolm.v1.aes-sha2, rule R1), so no message is
/// ever sent in it unencrypted; --rotation-msgs and --rotation-ms set the
/// Megolm rotation limits (R2, R5).
///
/// Examples:
///
///   ratchet room create --name team --encrypted --invite @bob:example.org
///   ratchet room create --encrypted --rotation-msgs 3 --rotation-ms 60000
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct CreateArgs {
    /// Room name
    #[arg(long)]
    name: Option<String>,

    /// Room topic
    #[arg(long)]
    topic: Option<String>,

    /// Invite this user (repeatable); a bare name means one on your server
    #[arg(long, value_name = "USER")]
    invite: Vec<String>,

    /// Enable end-to-end encryption from the start
    #[arg(long)]
    encrypted: bool,

    /// Rotate the Megolm session after this many messages (rotation_period_msgs) [default: 100]
    #[arg(long, value_name = "N", requires = "encrypted", value_parser = parse_rotation_msgs, allow_negative_numbers = true)]
    rotation_msgs: Option<u64>,

    /// Rotate the Megolm session after this many milliseconds (rotation_period_ms) [default: 604800000]
    #[arg(long, value_name = "MS", requires = "encrypted", value_parser = parse_rotation_ms, allow_negative_numbers = true)]
    rotation_ms: Option<u64>,
}

/// Upper bounds: past these a "rotation" setting means "never", which R5
/// forbids ("may not be reused indefinitely").
pub(crate) const MAX_ROTATION_MSGS: u64 = 1_000_000;
pub(crate) const MAX_ROTATION_MS: u64 = 365 * 24 * 3600 * 1000;

pub(crate) fn parse_rotation_msgs(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(0) => Err("must be at least 1 (a session has to encrypt something)".into()),
        Ok(n) if n > MAX_ROTATION_MSGS => Err(format!("must be at most {MAX_ROTATION_MSGS}")),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{s}` is not a positive whole number")),
    }
}

pub(crate) fn parse_rotation_ms(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(0) => Err("must be at least 1 millisecond".into()),
        Ok(n) if n > MAX_ROTATION_MS => Err(format!("must be at most {MAX_ROTATION_MS} (one year)")),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{s}` is not a positive whole number of milliseconds")),
    }
}

/// The `m.room.encryption` content for the given limits (R1, R2).
pub(crate) fn encryption_content(msgs: Option<u64>, ms: Option<u64>) -> RoomEncryptionEventContent {
    let mut content = RoomEncryptionEventContent::new(EventEncryptionAlgorithm::MegolmV1AesSha2);
    content.rotation_period_msgs = msgs.map(|n| UInt::new(n).expect("bounded by the parser"));
    content.rotation_period_ms = ms.map(|n| UInt::new(n).expect("bounded by the parser"));
    content
}

#[instrument(skip_all)]
pub(crate) async fn cmd_create(ctx: &mut CommandContext, args: &CreateArgs) -> CliResult {
    let client = ctx.client().await?;
    let own = client.user_id().ok_or_else(|| CliError::internal("no user id"))?.to_owned();
    let invite = args.invite.iter().map(|u| rooms::parse_user(u, &own)).collect::<CliResult<Vec<_>>>()?;

    let mut request = Request::new();
    request.name = args.name.clone();
    request.topic = args.topic.clone();
    request.invite = invite;
    request.preset = Some(RoomPreset::PrivateChat);
    if args.encrypted {
        let content = encryption_content(args.rotation_msgs, args.rotation_ms);
        request.initial_state = vec![InitialStateEvent::with_empty_state_key(content).to_raw_any()];
    }
    let room = client.create_room(request).await?;
    // Fetch the new room's state so the record (and the store) knows it.
    crate::crypto::sync_now(&client).await?;
    let room = client.get_room(room.room_id()).unwrap_or(room);
    ctx.out.data(&RoomRecord::of(&room))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_limits() {
        assert_eq!(parse_rotation_msgs("3"), Ok(3));
        assert!(parse_rotation_msgs("0").is_err());
        assert!(parse_rotation_msgs("-1").is_err());
        assert!(parse_rotation_msgs("abc").is_err());
        assert!(parse_rotation_msgs("99999999999999999999999").is_err());
        assert_eq!(parse_rotation_ms("2000"), Ok(2000));
        assert!(parse_rotation_ms("0").is_err());
        assert!(parse_rotation_ms(&(MAX_ROTATION_MS + 1).to_string()).is_err());
    }

    #[test]
    fn encryption_content_carries_limits() {
        let json = serde_json::to_value(encryption_content(Some(3), Some(2000))).unwrap();
        assert_eq!(json["algorithm"], "m.megolm.v1.aes-sha2");
        assert_eq!(json["rotation_period_msgs"], 3);
        assert_eq!(json["rotation_period_ms"], 2000);
        let plain = serde_json::to_value(encryption_content(None, None)).unwrap();
        assert!(plain.get("rotation_period_msgs").is_none());
    }
}

#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Exactly 1..=MAX is accepted, as written; nothing panics.
        #[test]
        fn rotation_msgs_bounds(n in any::<i128>()) {
            let ok = parse_rotation_msgs(&n.to_string()).is_ok();
            prop_assert_eq!(ok, (1..=MAX_ROTATION_MSGS as i128).contains(&n));
        }

        #[test]
        fn rotation_ms_bounds(n in any::<i128>()) {
            let parsed = parse_rotation_ms(&n.to_string());
            prop_assert_eq!(parsed.is_ok(), (1..=MAX_ROTATION_MS as i128).contains(&n));
            if let Ok(v) = parsed { prop_assert_eq!(v as i128, n); }
        }

        #[test]
        fn counts_from_any_text_never_panic(s in "\\PC{0,40}") {
            let _ = parse_rotation_msgs(&s);
            let _ = parse_rotation_ms(&s);
        }
    }
}
