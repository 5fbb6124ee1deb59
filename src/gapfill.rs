//! Gap-free sync. A server gives each room at most the filter's timeline
//! limit of events per `/sync` ([`TIMELINE_LIMIT`]); when more came since
//! the last sync, the room's timeline is `limited` and what came between is
//! left out. Every command that syncs keeps the sync's records first, with
//! the gap (`profile::state::Gap`: where to fetch from, and the last event
//! kept before it); then this module fetches the gap backward with
//! `/messages` until it reaches that event (or, for a room joined since the
//! last sync, this account's join), decrypts it, and keeps its records
//! *before* the sync's own records of that room (they are moved after it,
//! undelivered), in one transaction.
//!
//! The work per gap is bounded ([`Budget`]: 1,000 events and 30 s by
//! default, `RATCHET_GAP_LIMIT` for the count). Past it, the newest events
//! within the budget are kept, preceded by a `gap` record that says how far
//! the fill reached and names the command that fetches the rest
//! (`ratchet sync --fill-gap ID`): never silence. A request that fails ends
//! the fill the same way.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use matrix_sdk::deserialized_responses::TimelineEvent;
use matrix_sdk::ruma::api::client::message::get_message_events;
use matrix_sdk::ruma::RoomId;
use matrix_sdk::Client;
use serde::Serialize;
use serde_json::Value;

use crate::error::{CliError, CliResult};
use crate::events::{render, Rendered};
use crate::profile::state::{Gap, StateDb, GAP_CLOSED, GAP_OPEN};
use crate::ui::output::{Output, Record};
use crate::ui::terminal::inert;

/// The timeline limit of ratchet's sync filter: events per room per sync.
/// Synapse's default (no filter) is 10; 50 keeps a busy room's burst in
/// one response, and beyond it the gap is filled with pages of
/// [`PAGE`] events.
pub(crate) const TIMELINE_LIMIT: u32 = 50;
/// The timeline limit of a device's first sync, which starts its stream
/// and fills no gap: Synapse's default window of history.
pub(crate) const FIRST_TIMELINE_LIMIT: u32 = 10;
/// Events per `/messages` request while filling.
const PAGE: u32 = 250;
/// Events fetched at most by one `sync --fill-gap` (a bound, not a budget).
const FILL_GAP_AT_MOST: usize = 100_000;

/// How much one fill of one gap may do.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    pub(crate) events: usize,
    pub(crate) time: Duration,
}

impl Budget {
    /// The automatic fill's budget: 1,000 events (`RATCHET_GAP_LIMIT`
    /// changes it) and 30 s per gap.
    pub(crate) fn automatic() -> Budget {
        let events = std::env::var("RATCHET_GAP_LIMIT").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
        Budget { events, time: Duration::from_secs(30) }
    }

    fn unbounded() -> Budget {
        Budget { events: FILL_GAP_AT_MOST, time: Duration::from_secs(24 * 3600) }
    }
}

/// Where a fill stopped short: what the `gap` record says.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct GapRecord {
    pub(crate) room_id: String,
    /// The gap's number, for `sync --fill-gap`.
    pub(crate) gap: i64,
    /// Events of the gap fetched so far (they follow this record).
    pub(crate) fetched: u64,
    /// The last event delivered before the gap (null: the room was joined
    /// since the sync before, and the fill goes back to the join).
    pub(crate) after_event_id: Option<String>,
    /// Why the fill stopped: `budget` (its count or time) or `error`.
    pub(crate) reason: &'static str,
    /// The command that fetches the rest of the gap, to paste.
    pub(crate) command: String,
    #[serde(skip)]
    pub(crate) room_label: Option<String>,
}

impl Record for GapRecord {
    const TYPE: &'static str = "gap";
    fn human(&self) -> String {
        let why = match self.reason {
            "budget" => "more than one sync fetches",
            _ => "the server did not answer",
        };
        format!(
            "{} gap: older events of this room were not fetched ({why}; {} fetched). To fetch them: {}",
            self.room_label.as_deref().map(inert).unwrap_or_default(),
            self.fetched,
            self.command
        )
    }
}

/// Fills every gap the syncs kept and have not filled yet (a kill between
/// the two leaves one for the next command that syncs). Returns the new
/// sequence number of every record moved after a fill, by its old one.
pub(crate) async fn fill_open(client: &Client, out: &Output, db: &StateDb) -> CliResult<HashMap<i64, i64>> {
    let mut moved = HashMap::new();
    for (id, gap) in db.gaps(GAP_OPEN)? {
        // One gap that fails (it stays open for the next command) does
        // not hold up the others, nor lose what they moved.
        match fill(client, out, db, id, &gap, Budget::automatic()).await {
            Ok(m) => moved.extend(m),
            Err(e) => out.warn(format!("a gap in {} could not be filled yet: {}", inert(&gap.room_id), e.message)),
        }
    }
    Ok(moved)
}

/// `sync --fill-gap ID`: the rest of a gap an earlier fill stopped short
/// of, without the budget. Its events are kept at the end of the stream
/// (what came after them was delivered already).
pub(crate) async fn fill_rest(client: &Client, out: &Output, db: &StateDb, id: i64) -> CliResult {
    let Some((state, gap)) = db.gap(id)? else {
        return Err(CliError::usage(format!("this profile has no gap {id}"))
            .with_hint("use the number of a `gap` record that `sync` printed for this profile"));
    };
    if state == GAP_CLOSED {
        out.status(format!("gap {id} was filled already"));
        return Ok(());
    }
    if state == GAP_OPEN {
        // Not yet tried: this sync's own fill takes it, in its place.
        return Ok(());
    }
    let rest = Gap { after: Vec::new(), ..gap };
    fill(client, out, db, id, &rest, Budget::unbounded()).await?;
    Ok(())
}

/// One fill of one gap, within `budget`.
async fn fill(
    client: &Client,
    out: &Output,
    db: &StateDb,
    id: i64,
    gap: &Gap,
    budget: Budget,
) -> CliResult<HashMap<i64, i64>> {
    let room = <&RoomId>::try_from(gap.room_id.as_str()).ok().and_then(|r| client.get_room(r));
    let Some(room) = room else {
        // A room this device no longer knows: nothing to fetch with.
        tracing::debug!(room = %gap.room_id, "a gap in a room this device does not know: closed");
        return db.fill_gap(id, gap, &[], &[], None);
    };
    let own = client.user_id().map(|u| u.to_string()).unwrap_or_default();
    let started = Instant::now();
    // Newest first, as the server pages backward.
    let mut fetched: Vec<Value> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut token = gap.from.clone();
    let mut stopped: Option<&'static str> = None;
    'pages: loop {
        let left = budget.events.saturating_sub(fetched.len());
        if left == 0 || started.elapsed() >= budget.time {
            stopped = Some("budget");
            break;
        }
        let mut request = get_message_events::v3::Request::backward(room.room_id().to_owned());
        request.from = Some(token.clone());
        request.limit = matrix_sdk::ruma::UInt::from(PAGE.min(left as u32));
        let response = match client.send(request).await {
            Ok(response) => response,
            Err(e) => {
                out.warn(format!("could not fetch the gap in {}: {e}", inert(&gap.room_id)));
                stopped = Some("error");
                break;
            }
        };
        for raw in &response.chunk {
            let event: Value = raw.deserialize_as().unwrap_or(Value::Null);
            if gap.until.is_some() && event["event_id"].as_str() == gap.until.as_deref() {
                break 'pages;
            }
            // A server that hands a page out twice gives nothing twice.
            if !seen.insert(event["event_id"].as_str().unwrap_or_default().to_owned()) {
                continue;
            }
            let joined = is_join_of(&event, &own);
            fetched.push(event);
            if joined {
                break 'pages;
            }
        }
        match response.end {
            // An empty page with a way on (history visibility hid it all)
            // goes on; a token that does not move ends it.
            Some(end) if end != token => token = end,
            // The start of the room.
            _ => break,
        }
    }
    tracing::debug!(room = %gap.room_id, events = fetched.len(), ?stopped, "gap fetched");
    let name = room.name().unwrap_or_else(|| crate::events::short(&gap.room_id));
    let room_label = Some(format!("[{name}]"));
    let keep = out.capturing();
    let mut utds = Vec::new();
    for original in fetched.iter().rev() {
        let event = if original["type"] == "m.room.encrypted" {
            let Ok(raw) = serde_json::value::to_raw_value(original) else { continue };
            let raw = matrix_sdk::ruma::serde::Raw::<matrix_sdk::ruma::events::AnySyncTimelineEvent>::from_json(raw);
            crate::events::decrypt(&room, &raw).await?
        } else {
            let Ok(raw) = serde_json::value::to_raw_value(original) else { continue };
            TimelineEvent::from_plaintext(matrix_sdk::ruma::serde::Raw::from_json(raw))
        };
        match render(&gap.room_id, &event, Some(original)) {
            Rendered::Message(mut r) => {
                r.room_label = room_label.clone();
                keep.data(&r)?;
            }
            Rendered::Utd(mut r) => {
                r.room_label = room_label.clone();
                if let Some(utd) = crate::stream::pending_utd(&gap.room_id, &r, Some(original.clone())) {
                    utds.push((keep.captured_len(), utd));
                }
                keep.data(&r)?;
            }
            Rendered::Other(mut r) => {
                r.room_label = room_label.clone();
                r.quiet = r.is_furniture();
                keep.data(&r)?;
            }
        }
    }
    let records = keep.take_captured();
    let rest = match stopped {
        None => None,
        Some(reason) => {
            let rest = Gap {
                room_id: gap.room_id.clone(),
                from: token,
                until: gap.until.clone(),
                after: Vec::new(),
                fetched: gap.fetched + fetched.len() as u64,
            };
            let record = GapRecord {
                room_id: gap.room_id.clone(),
                gap: id,
                fetched: rest.fetched,
                after_event_id: gap.until.clone(),
                reason,
                command: crate::ui::hint::ratchet("sync").arg("--fill-gap").arg(id.to_string()).to_string(),
                room_label,
            };
            let keep = out.capturing();
            keep.data(&record)?;
            let record = keep.take_captured().pop().ok_or_else(|| CliError::internal("gap record not captured"))?;
            Some((rest, record))
        }
    };
    db.fill_gap(id, gap, &records, &utds, rest.as_ref().map(|(g, r)| (g, r.clone())))
}

/// Whether an event (its JSON) is `user`'s join of the room: a membership
/// that becomes `join` (not a profile change while joined).
pub(crate) fn is_join_of(event: &Value, user: &str) -> bool {
    event["type"] == "m.room.member"
        && event["state_key"].as_str() == Some(user)
        && event["content"]["membership"] == "join"
        && event["unsigned"]["prev_content"]["membership"] != "join"
}
