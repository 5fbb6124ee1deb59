//! `ratchet encrypt`: enable encryption in a room with rotation settings
//! (R1, R2), and never weaken it (R3).

use clap::Args;
use matrix_sdk::ruma::EventEncryptionAlgorithm;
use serde::Serialize;
use tracing::instrument;

use crate::context::CommandContext;
use crate::e2ee::rotation::{parse_rotation_ms, parse_rotation_msgs, Rotation, RotationSettings};
use crate::error::{CliError, CliResult, ErrorKind};
use crate::rooms;
use crate::sdk::megolm;
use crate::ui::output::Record;

/// Enable end-to-end encryption in a room, with Megolm rotation settings.
///
/// Sends the state event m.room.encryption with algorithm
/// m.megolm.v1.aes-sha2 (rule R1) and, if given, rotation_period_msgs and
/// rotation_period_ms (R2); left out, receivers use 100 messages and one
/// week (R5).
///
/// Encryption can never be turned off again (R3). In a room that is already
/// encrypted, asking for the same settings does nothing; different settings
/// need --force (exit 5 without it, and nothing is sent), and the algorithm is
/// never changed. After a change the room's current Megolm session is
/// discarded so the next message uses the new settings.
///
/// Examples:
///
///   ratchet encrypt '!room:example.org'
///   ratchet encrypt '!room:example.org' --rotation-msgs 3 --rotation-ms 2000
///   ratchet encrypt '!room:example.org' --rotation-msgs 50 --force
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct EncryptArgs {
    /// Room: id (!…), alias (#name or #name:server), or the room's name
    #[arg(value_parser = rooms::parse_room)]
    room: rooms::RoomArg,

    /// Rotate the Megolm session after this many messages (rotation_period_msgs)
    #[arg(long, value_name = "N", value_parser = parse_rotation_msgs, allow_negative_numbers = true)]
    rotation_msgs: Option<u64>,

    /// Rotate the Megolm session after this many milliseconds (rotation_period_ms)
    #[arg(long, value_name = "MS", value_parser = parse_rotation_ms, allow_negative_numbers = true)]
    rotation_ms: Option<u64>,

    /// Change the settings of a room that is already encrypted
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct EncryptRecord {
    room_id: String,
    /// Whether an m.room.encryption event was sent.
    changed: bool,
    algorithm: &'static str,
    rotation_period_msgs: Option<u64>,
    rotation_period_ms: Option<u64>,
    /// The settings before, when the room was already encrypted.
    previous: Option<RotationSettings>,
}

impl Record for EncryptRecord {
    const TYPE: &'static str = "encryption";
    fn human(&self) -> String {
        let show =
            |v: Option<u64>, default: &str| v.map(|n| n.to_string()).unwrap_or_else(|| format!("{default} (default)"));
        let what = match (self.changed, self.previous) {
            (true, None) => "encryption enabled",
            (true, Some(_)) => "encryption settings changed",
            (false, _) => "already encrypted with these settings; nothing sent",
        };
        format!(
            "{}: {what}\n  algorithm            {}\n  rotation_period_msgs {}\n  rotation_period_ms   {}",
            self.room_id,
            self.algorithm,
            show(self.rotation_period_msgs, "100"),
            show(self.rotation_period_ms, "604800000"),
        )
    }
}

#[instrument(skip_all)]
pub(crate) async fn cmd_encrypt(ctx: &mut CommandContext, args: &EncryptArgs) -> CliResult {
    let client = ctx.client().await?;
    ctx.sync(&client).await?;
    let room = rooms::joined(&client, &args.room).await?;
    let wanted = RotationSettings { rotation_period_msgs: args.rotation_msgs, rotation_period_ms: args.rotation_ms };
    let mut record = EncryptRecord {
        room_id: room.room_id().to_string(),
        changed: false,
        algorithm: "m.megolm.v1.aes-sha2",
        rotation_period_msgs: wanted.rotation_period_msgs,
        rotation_period_ms: wanted.rotation_period_ms,
        previous: None,
    };

    if let Some(current) = room.encryption_settings() {
        let previous = RotationSettings::of(&current);
        record.previous = Some(previous);
        if current.algorithm.as_ref() != Some(&EventEncryptionAlgorithm::MegolmV1AesSha2) {
            // R3: the algorithm is part of what may not be weakened; ratchet
            // never replaces it, whatever it is.
            return Err(CliError::new(
                ErrorKind::Refused,
                format!(
                    "{} uses algorithm {:?}; ratchet never changes a room's algorithm (R3)",
                    args.room, current.algorithm
                ),
            ));
        }
        if previous == wanted {
            return ctx.out.data(&record);
        }
        if !args.force {
            return Err(CliError::new(
                ErrorKind::Refused,
                format!("{} is already encrypted with other settings; nothing was sent", args.room),
            )
            .with_hint(format!(
                "current: rotation_period_msgs {}, rotation_period_ms {}",
                opt(previous.rotation_period_msgs),
                opt(previous.rotation_period_ms)
            ))
            .with_hint(
                "R3: once a room is encrypted, a later m.room.encryption must not weaken it; \
                 clients may ignore changes, so they are never made by accident",
            )
            .with_hint("add --force to send the new settings anyway"));
        }
        if wanted.weaker_than(previous) {
            ctx.out.warn(
                "the new settings rotate less often than the old ones; other clients that follow R3 may keep the \
                 stricter ones (this profile takes the new ones: it is your explicit choice)",
            );
        }
    }

    room.send_state_event(wanted.content()).await?;
    let mut ledger = ctx.megolm_ledger()?;
    // This profile's own, explicit choice (with --force for a change): it
    // replaces the strictest limits seen, which only guard against changes
    // made by others (R3).
    ledger.strictest.insert(room.room_id().to_string(), wanted.limits().as_strictest());
    if record.previous.is_some() {
        // The SDK keeps a session's creation-time settings; start afresh so
        // the new settings govern the next message.
        if let Some(old) = megolm::outbound(&client, room.room_id(), &ledger).await? {
            ledger.record_discard(room.room_id(), &old.session_id, Rotation::SettingsChanged);
        }
        room.discard_room_key().await?;
    }
    ledger.save()?;
    record.changed = true;
    ctx.out.data(&record)
}

fn opt(v: Option<u64>) -> String {
    v.map(|n| n.to_string()).unwrap_or_else(|| "default".into())
}
