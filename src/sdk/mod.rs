//! The only code that reaches into matrix-sdk's internals, behind a small
//! typed facade: the crypto machine (through `Client::olm_machine_for_testing`,
//! feature `testing`, the SDK's own `OlmMachine` of this process), the raw
//! crypto store, and the client's construction. Commands call these
//! functions; they never hold the crypto machine themselves.
//!
//! Each place where matrix-sdk 0.18 deviates from the rules, and what
//! ratchet does instead, is named here once:
//!
//! | deviation | rule | ratchet | where |
//! |---|---|---|---|
//! | `rotation_period_ms` below one hour is taken as one hour (`OutboundGroupSession::safe_rotation_period`); `rotation_period_msgs` clamped to 1..=10000 | R5 | rotates itself, exactly, before each send, and checks the age again right before encrypting | [`megolm`] |
//! | encrypts with the newest *created* Olm session, not the one that last received (matrix-rust-sdk#3356) | R7 | a minimal patch to matrix-sdk-crypto (`vendor/`, `patches/matrix-sdk-crypto-r7.diff`) makes it choose by R7; `olm` shows both choices | [`olm`] |
//! | on an undecryptable Olm message it creates a session only if its newest is over an hour old, and never sends the `m.dummy` it queues; with no session it does nothing (matrix-rust-sdk#3427) | R9–R11 | does the recovery itself | [`recovery`] |
//! | sends `m.room_key_request` only to our own devices, once one is verified | R13 | asks the sender's devices too | [`keys`] |
//! | the crypto store has no delete API | — | QA's deliberate deletions open the SQLite store directly | [`rawstore`] |
//! | the crypto machine re-enables the stored backup version at every start-up, also one the server deleted; a backup key received after verification waits in the secret inbox for the (parked) start-up task | — | remembers a gone version and turns it off; takes a received key up | [`backup`] |
//! | in exclude-insecure mode, drops a history bundle (MSC4268) from an inviter whose identity it has not fetched (matrix-rust-sdk#5770); a bundle after the join waits for a background task that restore parks | — | remembers who was refused and says so at `room join` (the inviter's `room invite` shares again); takes late bundles after each sync | [`history`] |
//! | in exclude-insecure mode, refuses an imported key's messages once the sender's device is known (an imported key cannot prove its device) | — | reads them marked `insecure_source`, as Element shows them | [`history`] |
//! | `Recovery::reset_identity` deletes the backup and secret storage before the password is checked | — | checks the password first | [`secrets`] |
//!
//! Nothing here returns secret key material: only ids, counters and times.

pub(crate) mod backup;
pub(crate) mod client;
pub(crate) mod discovery;
pub(crate) mod history;
pub(crate) mod keys;
pub(crate) mod media;
pub(crate) mod megolm;
pub(crate) mod names;
pub(crate) mod olm;
pub(crate) mod rawstore;
pub(crate) mod recovery;
pub(crate) mod secrets;
pub(crate) mod trust;
pub(crate) mod verify;

use std::time::Duration;

use matrix_sdk::Client;
use matrix_sdk_crypto::{CollectStrategy, DecryptionSettings, OlmMachine, TrustRequirement};

use crate::e2ee::trust::Isolation;

use crate::error::{CliError, CliResult};

/// The crypto machine of this client (absent only before login, which every
/// caller is past). `OlmMachine` is a handle (an `Arc`): cloning it out of
/// the SDK's lock means no guard is held across ratchet's own awaits.
async fn machine(client: &Client) -> CliResult<OlmMachine> {
    client.olm_machine_for_testing().await.clone().ok_or_else(|| CliError::internal("no crypto machine after login"))
}

/// This process's device-isolation mode, set once where the client is
/// built ([`client::build`]; one client per process).
static ISOLATION: std::sync::OnceLock<Isolation> = std::sync::OnceLock::new();

/// Who gets room keys (MSC4153). Given to the client builder and used by
/// [`megolm::preshare`], so a pre-shared session goes to exactly the devices
/// a send would reach. `IdentityBasedStrategy` is what Element uses in its
/// "exclude insecure devices" mode: devices not cross-signed by their owner
/// get `m.room_key.withheld` with `m.unverified`.
pub(crate) fn recipient_strategy() -> CollectStrategy {
    match ISOLATION.get().copied().unwrap_or_default() {
        Isolation::ExcludeInsecure => CollectStrategy::IdentityBasedStrategy,
        Isolation::AllDevices => CollectStrategy::AllDevices,
    }
}

/// Whose events are decrypted (MSC4153). `CrossSignedOrLegacy`, not
/// `CrossSigned`: keys that came from a backup or were forwarded carry no
/// sender trust and decrypt only under the former.
fn decryption_settings(isolation: Isolation) -> DecryptionSettings {
    let sender_device_trust_requirement = match isolation {
        Isolation::ExcludeInsecure => TrustRequirement::CrossSignedOrLegacy,
        Isolation::AllDevices => TrustRequirement::Untrusted,
    };
    DecryptionSettings { sender_device_trust_requirement }
}

/// What a loop in here that syncs by itself (`verify`) does with each
/// response: keep its events for the next `ratchet sync`, so that nothing
/// a command received is lost to it (issue 14). See `context::Keeper`.
pub(crate) trait KeepSync {
    fn keep<'a>(
        &'a self,
        client: &'a Client,
        response: &'a matrix_sdk::sync::SyncResponse,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = CliResult<()>> + 'a>>;
}

/// Whether more to-device events may be queued after this response: a
/// server hands them out a page at a time (Synapse: 100 per /sync; the spec
/// sets no size), so any response that brought some may have left more. The
/// next response, empty, says the queue is drained. The SDK's count (after
/// processing) is not the server's, so no page size is assumed.
pub(crate) fn more_to_device(response: &matrix_sdk::sync::SyncResponse) -> bool {
    !response.to_device.is_empty()
}

/// One incremental sync that returns at once (never long-polls), with
/// ratchet's filter ([`sync_filter`]).
pub(crate) async fn sync_now(client: &Client) -> CliResult<matrix_sdk::sync::SyncResponse> {
    // A device's first sync starts its stream (`stream::stage`: it fills
    // no gap); what came before is history, which `messages` reads. It asks
    // for Synapse's default window, not the fuller one that keeps a burst
    // between two syncs in one response: on an account in hundreds of rooms
    // the first sync was mostly the server serialising, and matrix-sdk and
    // ratchet keeping, events nobody asked for (issue 33).
    use matrix_sdk::store::StateStoreDataKey;
    let first = matches!(client.state_store().get_kv_data(StateStoreDataKey::SyncToken).await, Ok(None));
    let limit = if first { crate::gapfill::FIRST_TIMELINE_LIMIT } else { crate::gapfill::TIMELINE_LIMIT };
    let settings = matrix_sdk::config::SyncSettings::default()
        .timeout(std::time::Duration::ZERO)
        .filter(matrix_sdk::ruma::api::client::sync::sync_events::v3::Filter::FilterDefinition(sync_filter(limit)));
    Ok(client.sync_once(settings).await?)
}

/// ratchet's sync filter, sent inline with every sync: members
/// lazy-loaded (the senders of the timeline's events come with it; the
/// full list is loaded before a room key is shared), and a timeline of
/// `limit` events per room ([`crate::gapfill::TIMELINE_LIMIT`], or
/// [`crate::gapfill::FIRST_TIMELINE_LIMIT`] for a device's first sync). A timeline that
/// still comes back `limited` is filled (`gapfill`).
fn sync_filter(limit: u32) -> matrix_sdk::ruma::api::client::filter::FilterDefinition {
    use matrix_sdk::ruma::api::client::filter::{FilterDefinition, LazyLoadOptions, RoomEventFilter, RoomFilter};
    let mut timeline = RoomEventFilter::default();
    timeline.limit = Some(matrix_sdk::ruma::UInt::from(limit));
    timeline.lazy_load_options = LazyLoadOptions::Enabled { include_redundant_members: false };
    let mut state = RoomEventFilter::default();
    state.lazy_load_options = LazyLoadOptions::Enabled { include_redundant_members: false };
    let mut room = RoomFilter::default();
    room.timeline = timeline;
    room.state = state;
    let mut filter = FilterDefinition::default();
    filter.room = room;
    filter
}

/// Waits until the server has something new after `since`, or `timeout`
/// passed: a `/sync` long-poll whose answer is dropped unread (it asks for
/// one timeline event per room and no presence or ephemeral events, so that
/// typing and receipts do not wake it). It changes nothing here or on the
/// server — the sync that follows fetches from the same position, which the
/// server has already been told of — so it runs without the profile lock
/// and may be abandoned at any point: this is how `sync --follow` waits
/// while other commands use the profile.
///
/// A failure is not reported here: the sync that follows reports it.
/// `path` (relative: `_matrix/client/…`) under the homeserver's URL, its
/// own path kept when it has one (`https://example.org/matrix/`).
pub(crate) fn client_api_url(client: &Client, path: &str) -> Result<url::Url, url::ParseError> {
    let mut base = client.homeserver();
    if !base.path().ends_with('/') {
        let with_slash = format!("{}/", base.path());
        base.set_path(&with_slash);
    }
    base.join(path)
}

pub(crate) async fn wait_for_news(
    client: &Client,
    since: Option<String>,
    timeout: Duration,
    request_timeout: Duration,
) -> News {
    // A plain request on the client's connection pool, not the SDK's
    // `send`: with an OAuth 2.0 login the SDK would refresh an expired
    // access token right here, without the profile lock, and rotate the
    // refresh token under a command that holds the profile. A 401 is news
    // like any other answer: the turn after it syncs, and refreshes there,
    // under the lock.
    let Some(token) = client.access_token() else { return News::Other };
    let filter = serde_json::json!({
        "room": {"timeline": {"limit": 1}, "ephemeral": {"types": []}},
        "presence": {"types": []},
    });
    let Ok(mut url) = client_api_url(client, "_matrix/client/v3/sync") else { return News::Other };
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("timeout", &timeout.as_millis().to_string()).append_pair("filter", &filter.to_string());
        if let Some(since) = &since {
            query.append_pair("since", since);
        }
    }
    let started = std::time::Instant::now();
    let answer = client.http_client().get(url).bearer_auth(token).timeout(request_timeout + timeout).send().await;
    let failed = match answer {
        Ok(answer) if answer.status().is_success() => {
            let me = client.user_id().map(|u| u.as_str().to_owned()).unwrap_or_default();
            return match answer.bytes().await {
                Ok(body) => serde_json::from_slice(&body)
                    .ok()
                    .and_then(|b| own_echo(&b, &me))
                    .map_or(News::Other, |next_batch| News::OwnEcho { next_batch }),
                Err(_) => News::Other,
            };
        }
        Ok(answer) => format!("HTTP {}", answer.status()),
        Err(e) => e.to_string(),
    };
    tracing::debug!(error = %failed, "waiting for news failed; syncing now");
    // Do not spin against a server that fails at once.
    let rest = Duration::from_secs(2).saturating_sub(started.elapsed());
    tokio::time::sleep(rest).await;
    News::Other
}

/// What a wait for news found ([`wait_for_news`]).
#[derive(Debug, PartialEq)]
pub(crate) enum News {
    /// Only the echo of messages this profile sent (with this access
    /// token, from any of its processes): no state event, no member, device
    /// or to-device change, nothing left out. It changes nothing a send
    /// needs (who must get the room key, the room's settings), so a
    /// follower may serve a send before the turn that keeps it. The
    /// position after it, for the next wait.
    OwnEcho { next_batch: String },
    /// Anything else, nothing within the wait, or a failure: a turn now.
    Other,
}

/// The response's `next_batch` when all it holds is [`News::OwnEcho`].
/// Anything it does not recognise makes it not an echo (a turn then
/// syncs, as it always did).
fn own_echo(body: &serde_json::Value, me: &str) -> Option<String> {
    use serde_json::Value;
    let empty = |v: Option<&Value>| match v {
        None | Some(Value::Null) => true,
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        Some(_) => false,
    };
    let events_empty = |v: Option<&Value>| empty(v) || empty(v.and_then(|v| v.get("events")));
    // Fields it knows to carry nothing a send needs (counts, and the
    // sections checked below); any other one that says something is news.
    const TOP: &[&str] = &[
        "next_batch",
        "rooms",
        "to_device",
        "device_lists",
        "account_data",
        "presence",
        "device_one_time_keys_count",
        "device_unused_fallback_key_types",
        "org.matrix.msc2732.device_unused_fallback_key_types",
    ];
    const ROOM: &[&str] = &[
        "timeline",
        "state",
        "account_data",
        "ephemeral",
        "summary",
        "unread_notifications",
        "unread_thread_notifications",
        "org.matrix.msc2654.unread_count",
    ];
    let unknown = |o: &serde_json::Map<String, Value>, known: &[&str]| {
        o.iter().any(|(k, v)| !known.contains(&k.as_str()) && !empty(Some(v)))
    };
    if unknown(body.as_object()?, TOP) {
        return None;
    }
    if !events_empty(body.get("to_device")) || !events_empty(body.get("account_data")) {
        return None;
    }
    let lists = body.get("device_lists");
    if !empty(lists.and_then(|l| l.get("changed"))) || !empty(lists.and_then(|l| l.get("left"))) {
        return None;
    }
    let rooms = body.get("rooms");
    for other in ["invite", "leave", "knock"] {
        if !empty(rooms.and_then(|r| r.get(other))) {
            return None;
        }
    }
    let joined = rooms.and_then(|r| r.get("join")).and_then(Value::as_object)?;
    let mut echoes = 0;
    for room in joined.values() {
        if unknown(room.as_object()?, ROOM) {
            return None;
        }
        let timeline = room.get("timeline")?;
        if timeline.get("limited").and_then(Value::as_bool).unwrap_or(false)
            || !events_empty(room.get("state"))
            || !events_empty(room.get("account_data"))
            || !events_empty(room.get("ephemeral"))
        {
            return None;
        }
        for event in timeline.get("events").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default() {
            let mine = event.get("sender").and_then(Value::as_str) == Some(me)
                && event.get("state_key").is_none()
                && event.pointer("/unsigned/transaction_id").and_then(Value::as_str).is_some();
            if !mine {
                return None;
            }
            echoes += 1;
        }
    }
    if echoes == 0 {
        return None;
    }
    body.get("next_batch").and_then(Value::as_str).map(str::to_owned)
}

/// An event as the server holds it (still encrypted), as JSON.
pub(crate) async fn event_json(
    room: &matrix_sdk::Room,
    event_id: &matrix_sdk::ruma::EventId,
) -> CliResult<serde_json::Value> {
    use matrix_sdk::ruma::api::client::room::get_room_event;
    let response =
        room.client().send(get_room_event::v3::Request::new(room.room_id().to_owned(), event_id.to_owned())).await?;
    Ok(response.event.deserialize_as().unwrap_or(serde_json::Value::Null))
}

/// When this device was made (its Olm account's creation time, in ms;
/// 0 for an account pickled before the SDK kept it: unknown).
pub(crate) async fn device_created_ms(client: &Client) -> CliResult<u64> {
    Ok(u64::from(machine(client).await?.device_creation_time().0))
}

#[cfg(test)]
mod tests {
    use super::own_echo;
    use serde_json::json;

    const ME: &str = "@alice:example.org";

    fn response(room: serde_json::Value) -> serde_json::Value {
        json!({
            "next_batch": "s72",
            "device_one_time_keys_count": {"signed_curve25519": 50},
            "rooms": {"join": {"!r": room}},
        })
    }

    fn message(sender: &str, txn: bool) -> serde_json::Value {
        let mut e = json!({"type": "m.room.encrypted", "sender": sender, "event_id": "$e", "content": {}});
        if txn {
            e["unsigned"] = json!({"transaction_id": "t1"});
        }
        e
    }

    #[test]
    fn the_echo_of_own_messages_is_told_apart() {
        let echo = response(json!({
            "timeline": {"events": [message(ME, true)], "limited": false},
            "unread_notifications": {"highlight_count": 0},
        }));
        assert_eq!(own_echo(&echo, ME).as_deref(), Some("s72"));
    }

    #[test]
    fn anything_a_send_may_need_is_news() {
        let cases = [
            // Someone else's message, or ours from another device.
            response(json!({"timeline": {"events": [message("@bob:example.org", true)]}})),
            response(json!({"timeline": {"events": [message(ME, false)]}})),
            // A state event of ours (a member or the room's settings).
            response(json!({"timeline": {"events": [{"type": "m.room.member", "state_key": ME, "sender": ME,
                "unsigned": {"transaction_id": "t"}}]}})),
            // More than the wait's one event: the rest are unseen.
            response(json!({"timeline": {"events": [message(ME, true)], "limited": true}})),
            response(json!({"timeline": {"events": [message(ME, true)]}, "state": {"events": [{}]}})),
            // Nothing at all (the wait timed out).
            response(json!({"timeline": {"events": []}})),
            json!({"next_batch": "s1"}),
            // Something unknown.
            response(json!({"timeline": {"events": [message(ME, true)]}, "new_section": {"x": 1}})),
        ];
        for (i, case) in cases.iter().enumerate() {
            assert_eq!(own_echo(case, ME), None, "case {i}: {case}");
        }
        let mut with = response(json!({"timeline": {"events": [message(ME, true)]}}));
        for (key, value) in [
            ("to_device", json!({"events": [{}]})),
            ("device_lists", json!({"changed": ["@bob:example.org"]})),
            ("account_data", json!({"events": [{}]})),
            ("surprise", json!(true)),
        ] {
            let mut case = with.clone();
            case[key] = value;
            assert_eq!(own_echo(&case, ME), None, "{key}");
        }
        with["rooms"]["invite"] = json!({"!other": {}});
        assert_eq!(own_echo(&with, ME), None, "an invite");
    }
}
