//! `ratchet sync`: one incremental sync, or a stream of them with
//! `--follow`, printing what arrived (see `stream`): room events (decrypted
//! where possible), invites, rooms left, and to-device events, after what
//! other commands received and kept for it (`profile::state`).

use clap::Args;
use serde_json::Value;
use tracing::instrument;

use crate::context::CommandContext;
use crate::error::CliResult;
use crate::follow::{deliver, follow, redeliver, sync_into_inbox, Following};
use crate::stream::{SyncSummary, Watcher};

/// Fetch what arrived since the last run and print it.
///
/// Without --follow, one sync that returns at once (it never waits for new
/// events). With --follow, keeps syncing and prints events as they arrive
/// until interrupted; Ctrl-C (or SIGTERM) exits 0, between syncs, so the
/// store never holds half of one.
///
/// Each event is delivered once, in order: what any command's sync received
/// is kept (encrypted) in the profile until a `sync` prints it, whatever
/// else ran (`chat` only shows its room's). One `sync` (or `sync --follow`)
/// delivers a profile's records at a time; a second is refused (exit 2).
/// Under --json every record carries a `cursor`; a reader that stopped
/// early (`| head`) or crashed resumes with --after-cursor, which prints
/// again what came after that record (the last 10,000 records or 7 days
/// are kept); a closed stdout names the cursor on stderr, in both modes.
///
/// No event is skipped when more arrived than one sync response holds (50
/// per room): the gap is fetched with /messages, back to the last event
/// delivered, and delivered before what came after it. Past 1,000 events
/// (RATCHET_GAP_LIMIT) or 30 s per gap, a `gap` record says so and names
/// the command that fetches the rest (--fill-gap). The first sync after
/// login starts the stream with each room's last 50 events.
///
/// An event that cannot be decrypted is delivered as `utd` and retried by
/// every later command that syncs when keys come (a room key, a forward, a
/// backup restore, its sender's device keys): once it decrypts, it is
/// delivered as a `message` whose `replaces` names the `utd`'s cursor.
///
/// A follower holds the profile only for each short sync, so every other
/// command on the same profile (send, rotate, unwedge, messages…) runs
/// meanwhile, from another terminal or script; what those commands receive
/// is printed by the follower, once. Only one process syncs at a time.
///
/// When an Olm-encrypted to-device message cannot be decrypted, the Olm
/// session with its sender is taken to be wedged and replaced (rules R9–R11):
/// a new session, an m.dummy over it, at most once per device per hour; then
/// an m.room_key_request for the sender's Megolm sessions that are
/// undecryptable in the same sync (R13). Each step is a `recovery` record.
/// --no-recover leaves it to matrix-sdk, which (0.18) never sends the m.dummy.
///
/// While a follower of the profile runs (`agent`, `chat`), a one-shot sync
/// asks it since when it has been waiting for news, and delivers what it
/// kept, with no request of its own: the follower long-polls, so the server
/// hands it anything as it arrives. The summary says how long ago the
/// follower last synced (`follower_synced_ms_ago`); --standalone syncs from
/// this process instead.
///
/// With --follow it also reports senders moving to a new Megolm session
/// (rotation_seen).
///
/// Record types under --json: message, utd, event, invite, left, to_device,
/// recovery, gap, rotation_seen, identity_reset, inbox_gap, and a closing
/// sync summary.
///
/// Examples:
///
///   ratchet sync
///   ratchet --json sync --follow | jq -c 'select(.type == "utd")'
///   ratchet --json sync --after-cursor "$(cat last-cursor)"
///   ratchet sync --fill-gap 3
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct SyncArgs {
    /// Keep syncing until interrupted
    #[arg(long, short)]
    follow: bool,

    /// Do not recover from undecryptable Olm messages (see what matrix-sdk
    /// alone does)
    #[arg(long)]
    no_recover: bool,

    /// First print again, in order, what was delivered after the record
    /// with this cursor (the `cursor` field of a JSON record, or the one a
    /// closed stdout names on stderr): how a reader that stopped early, or
    /// crashed, resumes
    #[arg(long, value_name = "CURSOR")]
    after_cursor: Option<String>,

    /// Fetch the rest of a gap in a room's timeline that a sync stopped
    /// short of (the `gap` number of a `gap` record), then sync as usual;
    /// its events are printed with the rest
    #[arg(long, value_name = "GAP", conflicts_with = "follow")]
    fill_gap: Option<i64>,

    /// Sync from this process even when a follower of the profile (`agent`,
    /// `chat`, `sync --follow`) has kept what the server had: by default a
    /// one-shot sync then delivers that, without a request of its own
    #[arg(long, conflicts_with = "follow")]
    standalone: bool,
}

#[instrument(skip_all)]
pub(crate) async fn cmd_sync(ctx: &mut CommandContext, args: &SyncArgs) -> CliResult {
    // A plain one-shot sync while a follower of the profile long-polls:
    // what the server had, the follower kept; deliver that, with no
    // client and no request of this process's own (issue 33).
    let plain = !args.follow && !args.standalone && !args.no_recover;
    if plain && args.after_cursor.is_none() && args.fill_gap.is_none() {
        if let Some(since) = crate::warm::follower_waiting_since(ctx) {
            let _delivery = crate::profile::lock::acquire_delivery(&ctx.profile.paths().dir.join("deliver.lock"))?;
            return deliver_what_the_follower_kept(ctx, since).await;
        }
    }
    let client = ctx.client().await?;
    // One delivering process per profile: never two splitting the stream.
    let _delivery = crate::profile::lock::acquire_delivery(&ctx.profile.paths().dir.join("deliver.lock"))?;
    // A cursor that cannot be resumed from fails before anything is synced.
    if let Some(cursor) = &args.after_cursor {
        ctx.state()?.resolve_cursor(cursor)?;
    }
    if args.follow {
        let how = Following {
            no_recover: args.no_recover,
            room: None,
            input: None,
            deliver: true,
            started: "Following; Ctrl-C to stop.".into(),
            view_after: None,
        };
        return follow(ctx, how, args.after_cursor.as_deref()).await;
    }
    let mut summary = SyncSummary::default();
    if let Some(cursor) = &args.after_cursor {
        redeliver(ctx, cursor, &mut summary)?;
    }
    if let Some(gap) = args.fill_gap {
        crate::gapfill::fill_rest(&client, &ctx.out, ctx.state()?, gap).await?;
    }
    let mut ledger = ctx.olm_ledger()?;
    let mut watcher = Watcher::default();
    // A key request from one of our own devices is answered by matrix-sdk
    // once it has an Olm session with that device: when it had to claim one
    // in this sync, the forward goes out with the next. One more sync
    // delivers it, so a one-shot `sync` answers at once.
    let key_request = |r: &matrix_sdk::sync::SyncResponse| {
        r.to_device
            .iter()
            .any(|e| e.to_raw().deserialize_as::<Value>().is_ok_and(|j| j["type"] == "m.room_key_request"))
    };
    let mut response = sync_into_inbox(ctx, &client, &mut ledger, &mut watcher, args.no_recover).await?;
    let mut asked = key_request(&response);
    // To-device events may be left queued behind this page: their room keys
    // are fetched now, as `CommandContext::sync` does.
    let mut pages = 1;
    while crate::sdk::more_to_device(&response) && pages < crate::context::MAX_TO_DEVICE_PAGES {
        response = sync_into_inbox(ctx, &client, &mut ledger, &mut watcher, args.no_recover).await?;
        asked |= key_request(&response);
        pages += 1;
    }
    if asked {
        sync_into_inbox(ctx, &client, &mut ledger, &mut watcher, args.no_recover).await?;
    }
    // A backup deleted or replaced by another device is otherwise noticed
    // only at this device's next key upload (issue 30): one request, made
    // only while backup is on here.
    if let Err(e) = ctx.check_backup_still_there(&client).await {
        tracing::debug!(error = %e.message, "could not check the key backup");
    }
    // What other commands received comes first: the records are delivered
    // in the order they were kept.
    deliver_kept(ctx, summary)
}

/// Delivers what a follower of the profile kept (`follower_waiting_since`
/// said when its last sync ended). The profile is taken without counting a
/// turn: only ratchet's state database is read and marked, nothing the
/// follower keeps in memory, so it goes on without rebuilding its client.
async fn deliver_what_the_follower_kept(ctx: &mut CommandContext, waiting_since_ms: u64) -> CliResult {
    ctx.profile.lock_uncounted(ctx.settings.lock_timeout, &ctx.out).await?;
    let session = ctx.load_session()?;
    let secret = ctx.store_secret(&session)?;
    ctx.open_state(&secret, crate::profile::state::Opening::Existing)?;
    let mut summary = SyncSummary::default();
    summary.follower_synced_ms_ago = Some(crate::clock::now_ms().saturating_sub(waiting_since_ms));
    tracing::debug!("delivering what the profile's follower kept (warm path)");
    deliver_kept(ctx, summary)
}

/// Delivers the kept records, then the summary.
fn deliver_kept(ctx: &CommandContext, mut summary: SyncSummary) -> CliResult {
    let first = deliver(ctx, &mut summary)?;
    // A human reader in a pipe may stop early without closing it (`| {
    // head -1; sleep 2; }`), which ratchet cannot see: say where this
    // delivery began, so what it printed can be printed again. (Under
    // --json every record carries its cursor.)
    if let Some(first) = first.filter(|_| !ctx.out.is_json() && !std::io::IsTerminal::is_terminal(&std::io::stdout())) {
        let from = ctx.state()?.cursor(first - 1);
        ctx.out.status(format!(
            "delivered after cursor {from}; `{}` prints them again",
            crate::ui::hint::ratchet("sync").arg("--after-cursor").arg(&from)
        ));
    }
    ctx.out.data(&summary)
}
