//! The record stream (what syncs brought, delivered once by `sync`), the
//! undecryptable events kept to retry, each room's last kept event and the
//! gaps in its timeline, and the undecryptable Olm messages awaiting
//! recovery.

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::{bump, counter, set_counter, Kept, StateDb, FAILURE_TTL_MS, KEEP_DAYS, KEEP_DELIVERED, MAX_PENDING};
use crate::error::{CliError, CliResult};
use crate::ui::output::Captured;

/// An Olm message that could not be decrypted: who sent it, with which key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OlmFailure {
    pub(crate) sender: String,
    pub(crate) sender_key: String,
}

/// An event that could not be decrypted when it came, kept so that every
/// command that syncs can retry it once something may have made it
/// decryptable (a room key, a forward, a backup restore, its sender's
/// device keys).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PendingUtd {
    pub(crate) room_id: String,
    pub(crate) event_id: String,
    /// The event as the server sent it (encrypted).
    pub(crate) event: serde_json::Value,
    /// When it came (ms).
    pub(crate) seen_ms: u64,
    /// Its `utd` record's sequence number (for the cursor a late
    /// decryption names).
    #[serde(default)]
    pub(crate) seq: i64,
    /// It was refused for trust in its sender (MSC4153), not for a
    /// missing key.
    #[serde(default)]
    pub(crate) trust: bool,
}

/// A room's timeline as a sync gave it, `limited`: events between `until`
/// (the last one kept) and `from` (where the sync's own timeline begins)
/// were left out, and are fetched with `/messages`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Gap {
    pub(crate) room_id: String,
    /// The pagination token to fetch backward from.
    pub(crate) from: String,
    /// The last event kept before the gap; none for a room joined since
    /// the last sync (the fill stops at this account's join).
    pub(crate) until: Option<String>,
    /// The undelivered records that came after the gap (the sync's own, of
    /// this room), moved after the fill.
    #[serde(default)]
    pub(crate) after: Vec<i64>,
    /// Events fetched by earlier fills of this gap.
    #[serde(default)]
    pub(crate) fetched: u64,
}

/// A gap to fill at the next chance (any command that syncs).
pub(crate) const GAP_OPEN: i64 = 1;
/// A gap a fill stopped short of, for `sync --fill-gap`.
pub(crate) const GAP_BEYOND: i64 = 2;
/// A gap filled.
pub(crate) const GAP_CLOSED: i64 = 0;
/// Undecryptable events kept to retry at most (the newest).
const MAX_UTDS: i64 = 5_000;

/// What one sync brought, for [`StateDb::append_sync`].
#[derive(Default)]
pub(crate) struct SyncWrite<'a> {
    pub(crate) records: &'a [Captured],
    pub(crate) failures: &'a [OlmFailure],
    /// Undecryptable events, by their record's place in `records`.
    pub(crate) utds: Vec<(usize, PendingUtd)>,
    /// (room, its last timeline event).
    pub(crate) marks: Vec<(String, String)>,
    /// Gaps, each with the places in `records` of its room's records.
    pub(crate) gaps: Vec<(Gap, Vec<usize>)>,
    /// This is a sync (not only records): later syncs fill gaps.
    pub(crate) synced: bool,
}

impl StateDb {
    // ---- the record stream -------------------------------------------------

    /// Appends records in one transaction; returns their sequence numbers.
    /// Past [`MAX_PENDING`] undelivered records, the oldest of them go, and
    /// are counted for `sync` to report.
    pub(crate) fn append(&self, records: &[Captured]) -> CliResult<Vec<i64>> {
        self.append_sync(&SyncWrite { records, ..SyncWrite::default() })
    }

    /// What one sync brought, in one transaction: its records, the
    /// undecryptable Olm messages (for the recovery that will handle
    /// them), the undecryptable events (to retry), each room's last event,
    /// and the gaps its timelines left (filled right after). Returns the
    /// records' sequence numbers.
    pub(crate) fn append_sync(&self, w: &SyncWrite<'_>) -> CliResult<Vec<i64>> {
        if w.records.is_empty() && w.failures.is_empty() && w.marks.is_empty() && w.gaps.is_empty() && !w.synced {
            return Ok(Vec::new());
        }
        let now = crate::clock::now_ms();
        let mut conn = self.conn();
        let txn = conn.transaction().map_err(|e| self.io(e))?;
        for f in w.failures {
            let key = self.hash("olm_failures", &format!("{}\u{0}{}", f.sender, f.sender_key));
            txn.execute(
                "INSERT OR REPLACE INTO olm_failures (key, at_ms, value) VALUES (?1, ?2, ?3)",
                params![key, now as i64, self.seal(f)?],
            )
            .map_err(|e| self.io(e))?;
        }
        let seqs = self.insert_records(&txn, w.records, now)?;
        self.insert_utds(&txn, &w.utds, &seqs)?;
        for (room_id, event_id) in &w.marks {
            txn.execute(
                "INSERT OR REPLACE INTO marks (room, value) VALUES (?1, ?2)",
                params![self.hash("marks", room_id), self.seal(event_id)?],
            )
            .map_err(|e| self.io(e))?;
        }
        for (gap, places) in &w.gaps {
            let mut gap = gap.clone();
            gap.after = places.iter().filter_map(|p| seqs.get(*p).copied()).collect();
            txn.execute("INSERT INTO gaps (state, value) VALUES (?1, ?2)", params![GAP_OPEN, self.seal(&gap)?])
                .map_err(|e| self.io(e))?;
        }
        if w.synced {
            set_counter(&txn, "synced", 1).map_err(|e| self.io(e))?;
        }
        txn.commit().map_err(|e| self.io(e))?;
        Ok(seqs)
    }

    /// Inserts records at the end of the stream (inside `txn`), dropping
    /// the oldest undelivered ones past [`MAX_PENDING`] (counted).
    fn insert_records(&self, txn: &rusqlite::Transaction<'_>, records: &[Captured], now: u64) -> CliResult<Vec<i64>> {
        let mut seqs = Vec::with_capacity(records.len());
        for record in records {
            let room = room_of(&record.json).map(|r| self.hash("records", &r));
            txn.execute(
                "INSERT INTO records (room, at_ms, value) VALUES (?1, ?2, ?3)",
                params![room, now as i64, self.seal(record)?],
            )
            .map_err(|e| self.io(e))?;
            seqs.push(txn.last_insert_rowid());
        }
        let Some(last) = seqs.last().copied() else { return Ok(seqs) };
        let first_pending: Option<i64> = txn
            .query_row("SELECT MIN(seq) FROM records WHERE delivered_ms IS NULL", [], |r| r.get(0))
            .map_err(|e| self.io(e))?;
        if let Some(first) = first_pending.filter(|f| last - f >= MAX_PENDING) {
            let keep_from = last - MAX_PENDING * 4 / 5;
            let dropped = txn
                .execute(
                    "DELETE FROM records WHERE delivered_ms IS NULL AND seq >= ?1 AND seq < ?2",
                    params![first, keep_from],
                )
                .map_err(|e| self.io(e))?;
            bump(txn, "dropped", dropped as i64).map_err(|e| self.io(e))?;
        }
        Ok(seqs)
    }

    /// Keeps undecryptable events to retry (inside `txn`), each with the
    /// sequence number of its `utd` record; the oldest go past
    /// [`MAX_UTDS`].
    fn insert_utds(
        &self,
        txn: &rusqlite::Transaction<'_>,
        utds: &[(usize, PendingUtd)],
        seqs: &[i64],
    ) -> CliResult<()> {
        for (place, utd) in utds {
            let mut utd = utd.clone();
            utd.seq = seqs.get(*place).copied().unwrap_or(0);
            txn.execute(
                "INSERT OR REPLACE INTO utds (event, at_ms, trust, value) VALUES (?1, ?2, ?3, ?4)",
                params![self.hash("utds", &utd.event_id), utd.seen_ms as i64, utd.trust, self.seal(&utd)?],
            )
            .map_err(|e| self.io(e))?;
        }
        if !utds.is_empty() {
            txn.execute(
                "DELETE FROM utds WHERE event NOT IN (SELECT event FROM utds ORDER BY at_ms DESC LIMIT ?1)",
                [MAX_UTDS],
            )
            .map_err(|e| self.io(e))?;
        }
        Ok(())
    }

    // ---- undecryptable events, kept to retry -------------------------------

    /// The undecryptable events kept to retry, newest first, at most
    /// `limit`; with `trust_only`, those refused for trust in their sender.
    pub(crate) fn pending_utds(&self, limit: usize, trust_only: bool) -> CliResult<Vec<PendingUtd>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT value FROM utds WHERE (?2 = 0 OR trust = 1) ORDER BY at_ms DESC LIMIT ?1")
            .map_err(|e| self.io(e))?;
        let rows = stmt
            .query_map(params![limit as i64, trust_only], |r| r.get::<_, Vec<u8>>(0))
            .map_err(|e| self.io(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.io(e))?;
        rows.iter().map(|b| self.open_value(b)).collect()
    }

    /// Events that decrypt now, each with its record in two forms:
    /// `in_place` replaces its `utd` record when that was not delivered
    /// yet; otherwise `late` (naming the `utd`) is appended. None: it
    /// decrypted into nothing to deliver again. They are no longer retried.
    /// One transaction.
    pub(crate) fn settle_utds(&self, settled: &[(PendingUtd, Option<(Captured, Captured)>)]) -> CliResult<()> {
        if settled.is_empty() {
            return Ok(());
        }
        let now = crate::clock::now_ms();
        let mut conn = self.conn();
        let txn = conn.transaction().map_err(|e| self.io(e))?;
        for (utd, records) in settled {
            if let Some((in_place, late)) = records {
                let replaced = txn
                    .execute(
                        "UPDATE records SET value = ?1 WHERE seq = ?2 AND delivered_ms IS NULL",
                        params![self.seal(in_place)?, utd.seq],
                    )
                    .map_err(|e| self.io(e))?;
                if replaced == 0 {
                    self.insert_records(&txn, std::slice::from_ref(late), now)?;
                }
            }
            txn.execute("DELETE FROM utds WHERE event = ?1", [self.hash("utds", &utd.event_id)])
                .map_err(|e| self.io(e))?;
        }
        txn.commit().map_err(|e| self.io(e))
    }

    // ---- each room's last event, and the gaps ------------------------------

    /// The last timeline event kept for a room (where a gap fill stops).
    pub(crate) fn mark(&self, room_id: &str) -> CliResult<Option<String>> {
        let bytes: Option<Vec<u8>> = self
            .conn()
            .query_row("SELECT value FROM marks WHERE room = ?1", [self.hash("marks", room_id)], |r| r.get(0))
            .optional()
            .map_err(|e| self.io(e))?;
        bytes.map(|b| self.open_value(&b)).transpose()
    }

    /// Whether a sync of this profile was kept before (the first one, after
    /// login, fills no gap: there is nothing before it to reach).
    pub(crate) fn has_synced(&self) -> CliResult<bool> {
        counter(&self.conn(), "synced").map(|n| n > 0).map_err(|e| self.io(e))
    }

    /// The gaps in the given state, oldest first.
    pub(crate) fn gaps(&self, state: i64) -> CliResult<Vec<(i64, Gap)>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT id, value FROM gaps WHERE state = ?1 ORDER BY id").map_err(|e| self.io(e))?;
        let rows = stmt
            .query_map([state], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
            .map_err(|e| self.io(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.io(e))?;
        rows.iter().map(|(id, b)| Ok((*id, self.open_value(b)?))).collect()
    }

    /// One gap, with its state.
    pub(crate) fn gap(&self, id: i64) -> CliResult<Option<(i64, Gap)>> {
        let row: Option<(i64, Vec<u8>)> = self
            .conn()
            .query_row("SELECT state, value FROM gaps WHERE id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(|e| self.io(e))?;
        row.map(|(state, b)| Ok((state, self.open_value(&b)?))).transpose()
    }

    /// A gap filled (as far as it went), in one transaction: `fill` (the
    /// gap's events, oldest first, with their undecryptable ones to retry)
    /// is kept, then the undelivered records that came after the gap are
    /// moved after it, so that `sync` delivers the room in order; `rest`,
    /// when the fill stopped short, keeps the gap open for `sync
    /// --fill-gap` (its record is `rest_record`, kept first). Returns the
    /// new sequence number of each moved record, by its old one.
    pub(crate) fn fill_gap(
        &self,
        id: i64,
        gap: &Gap,
        fill: &[Captured],
        utds: &[(usize, PendingUtd)],
        rest: Option<(&Gap, Captured)>,
    ) -> CliResult<std::collections::HashMap<i64, i64>> {
        let now = crate::clock::now_ms();
        let mut conn = self.conn();
        let txn = conn.transaction().map_err(|e| self.io(e))?;
        // What this transaction adds comes after everything already kept.
        let first_new: i64 =
            txn.query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM records", [], |r| r.get(0)).map_err(|e| self.io(e))?;
        match &rest {
            Some((rest, record)) => {
                self.insert_records(&txn, std::slice::from_ref(record), now)?;
                txn.execute(
                    "UPDATE gaps SET state = ?1, value = ?2 WHERE id = ?3",
                    params![GAP_BEYOND, self.seal(rest)?, id],
                )
            }
            None => txn.execute("UPDATE gaps SET state = ?1 WHERE id = ?2", params![GAP_CLOSED, id]),
        }
        .map_err(|e| self.io(e))?;
        let seqs = self.insert_records(&txn, fill, now)?;
        self.insert_utds(&txn, utds, &seqs)?;
        // Every undelivered record of the room from the first that came
        // after the gap moves after the fill: the sync's own, and those of
        // any later sync kept before this fill (a kill in between).
        let mut moved = std::collections::HashMap::new();
        if let Some(from) = gap.after.iter().min() {
            let mut stmt = txn
                .prepare(
                    "SELECT seq, room, value FROM records \
                     WHERE room = ?1 AND seq >= ?2 AND delivered_ms IS NULL ORDER BY seq",
                )
                .map_err(|e| self.io(e))?;
            let rows = stmt
                .query_map(params![self.hash("records", &gap.room_id), from], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, Option<Vec<u8>>>(1)?, r.get::<_, Vec<u8>>(2)?))
                })
                .map_err(|e| self.io(e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.io(e))?;
            drop(stmt);
            for (old, room, value) in rows.into_iter().filter(|(seq, _, _)| *seq < first_new) {
                txn.execute("DELETE FROM records WHERE seq = ?1", [old]).map_err(|e| self.io(e))?;
                txn.execute(
                    "INSERT INTO records (room, at_ms, value) VALUES (?1, ?2, ?3)",
                    params![room, now as i64, value],
                )
                .map_err(|e| self.io(e))?;
                moved.insert(old, txn.last_insert_rowid());
            }
        }
        // Undecryptable events among the moved records name the new ones.
        if !moved.is_empty() {
            let mut stmt = txn.prepare("SELECT event, value FROM utds").map_err(|e| self.io(e))?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?)))
                .map_err(|e| self.io(e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.io(e))?;
            drop(stmt);
            for (key, bytes) in rows {
                let mut utd: PendingUtd = self.open_value(&bytes)?;
                if let Some(new) = moved.get(&utd.seq) {
                    utd.seq = *new;
                    txn.execute("UPDATE utds SET value = ?1 WHERE event = ?2", params![self.seal(&utd)?, key])
                        .map_err(|e| self.io(e))?;
                }
            }
        }
        txn.commit().map_err(|e| self.io(e))?;
        Ok(moved)
    }

    /// Replaces a kept record (a later look-up filled in what the first
    /// capture could not know: a message index).
    pub(crate) fn replace(&self, seq: i64, record: &Captured) -> CliResult<()> {
        let sealed = self.seal(record)?;
        self.conn()
            .execute("UPDATE records SET value = ?1 WHERE seq = ?2", params![sealed, seq])
            .map_err(|e| self.io(e))?;
        Ok(())
    }

    fn read_records(&self, sql: &str, args: impl rusqlite::Params) -> CliResult<Vec<Kept>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(sql).map_err(|e| self.io(e))?;
        let rows = stmt
            .query_map(args, |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
            .map_err(|e| self.io(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.io(e))?;
        rows.into_iter().map(|(seq, bytes)| Ok(Kept { seq, record: self.open_value(&bytes)? })).collect()
    }

    /// The oldest undelivered records, at most `limit`, in order.
    pub(crate) fn pending(&self, limit: usize) -> CliResult<Vec<Kept>> {
        self.read_records(
            "SELECT seq, value FROM records WHERE delivered_ms IS NULL ORDER BY seq LIMIT ?1",
            params![limit as i64],
        )
    }

    /// Records after `after` (delivered or not), at most `limit`, in order;
    /// of one room only when `room` is given.
    pub(crate) fn after(&self, after: i64, room: Option<&str>, limit: usize) -> CliResult<Vec<Kept>> {
        match room {
            Some(room) => self.read_records(
                "SELECT seq, value FROM records WHERE room = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                params![self.hash("records", room), after, limit as i64],
            ),
            None => self.read_records(
                "SELECT seq, value FROM records WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                params![after, limit as i64],
            ),
        }
    }

    /// Delivered records after `after`, at most `limit`, in order (what a
    /// reader that stopped at `after` did not see).
    pub(crate) fn delivered_after(&self, after: i64, limit: usize) -> CliResult<Vec<Kept>> {
        self.read_records(
            "SELECT seq, value FROM records WHERE delivered_ms IS NOT NULL AND seq > ?1 ORDER BY seq LIMIT ?2",
            params![after, limit as i64],
        )
    }

    /// The last record's sequence number (0: none yet).
    pub(crate) fn last_seq(&self) -> CliResult<i64> {
        self.conn().query_row("SELECT COALESCE(MAX(seq), 0) FROM records", [], |r| r.get(0)).map_err(|e| self.io(e))
    }

    /// The sequence number before the first undelivered record (the last
    /// one if none is undelivered).
    pub(crate) fn before_pending(&self) -> CliResult<i64> {
        let conn = self.conn();
        let first: Option<i64> = conn
            .query_row("SELECT MIN(seq) FROM records WHERE delivered_ms IS NULL", [], |r| r.get(0))
            .map_err(|e| self.io(e))?;
        match first {
            Some(first) => Ok(first - 1),
            None => {
                conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM records", [], |r| r.get(0)).map_err(|e| self.io(e))
            }
        }
    }

    /// Marks the undelivered records from `first` to `last` delivered, in
    /// one transaction, and lets the oldest delivered ones go (retention).
    pub(crate) fn mark_delivered(&self, first: i64, last: i64) -> CliResult<()> {
        let now = crate::clock::now_ms() as i64;
        let mut conn = self.conn();
        let txn = conn.transaction().map_err(|e| self.io(e))?;
        txn.execute(
            "UPDATE records SET delivered_ms = ?1 WHERE seq >= ?2 AND seq <= ?3 AND delivered_ms IS NULL",
            params![now, first, last],
        )
        .map_err(|e| self.io(e))?;
        let old = now - (KEEP_DAYS * 24 * 3600 * 1000) as i64;
        let pruned: Option<i64> = txn
            .query_row(
                "SELECT MAX(seq) FROM records WHERE delivered_ms IS NOT NULL AND delivered_ms < ?1 AND seq <= ?2",
                params![old, last - KEEP_DELIVERED],
                |r| r.get(0),
            )
            .map_err(|e| self.io(e))?;
        if let Some(through) = pruned {
            txn.execute(
                "DELETE FROM records WHERE delivered_ms IS NOT NULL AND seq <= ?1 AND delivered_ms < ?2",
                params![through, old],
            )
            .map_err(|e| self.io(e))?;
            let before = counter(&txn, "pruned_through").map_err(|e| self.io(e))?;
            if through > before {
                set_counter(&txn, "pruned_through", through).map_err(|e| self.io(e))?;
            }
        }
        txn.commit().map_err(|e| self.io(e))
    }

    /// The cursor of a record: opaque to scripts.
    pub(crate) fn cursor(&self, seq: i64) -> String {
        format!("{}-{seq}", self.id)
    }

    /// The sequence number a cursor names, if it is this database's and
    /// what follows it is still kept.
    pub(crate) fn resolve_cursor(&self, cursor: &str) -> CliResult<i64> {
        let hint = format!(
            "use the `cursor` of a record printed by `{}` (or `sync --follow`, `chat`) of this profile",
            crate::ui::hint::ratchet("--json sync")
        );
        let seq = cursor
            .split_once('-')
            .filter(|(id, _)| *id == self.id)
            .and_then(|(_, seq)| seq.parse::<i64>().ok())
            .filter(|seq| *seq >= 0)
            .ok_or_else(|| {
                CliError::usage(format!("'{cursor}' is not a cursor of this profile's records")).with_hint(hint.clone())
            })?;
        let conn = self.conn();
        let last: i64 =
            conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM records", [], |r| r.get(0)).map_err(|e| self.io(e))?;
        let pruned = counter(&conn, "pruned_through").map_err(|e| self.io(e))?;
        if seq > last {
            return Err(CliError::usage(format!("cursor '{cursor}' names no record of this profile")).with_hint(hint));
        }
        if seq < pruned {
            return Err(CliError::usage(format!(
                "cursor '{cursor}' is too old: records after it are no longer kept (ratchet keeps the last \
                 {KEEP_DELIVERED} delivered records or {KEEP_DAYS} days of them, whichever is more)"
            ))
            .with_hint(format!(
                "run `{}` without --after-cursor to go on from what is undelivered",
                crate::ui::hint::ratchet("sync")
            )));
        }
        Ok(seq)
    }

    /// How many undelivered records went unseen (past [`MAX_PENDING`]).
    pub(crate) fn dropped(&self) -> CliResult<u64> {
        counter(&self.conn(), "dropped").map(|n| n as u64).map_err(|e| self.io(e))
    }

    /// Forgets the count of dropped records, once `sync` reported it.
    pub(crate) fn forget_dropped(&self) -> CliResult<()> {
        set_counter(&self.conn(), "dropped", 0).map_err(|e| self.io(e))
    }

    // ---- Olm failures awaiting recovery --------------------------------------

    /// The failures not yet recovered from (younger than a day).
    pub(crate) fn failures(&self) -> CliResult<Vec<OlmFailure>> {
        let since = crate::clock::now_ms().saturating_sub(FAILURE_TTL_MS) as i64;
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT value FROM olm_failures WHERE at_ms >= ?1 ORDER BY at_ms")
            .map_err(|e| self.io(e))?;
        let rows = stmt
            .query_map([since], |r| r.get::<_, Vec<u8>>(0))
            .map_err(|e| self.io(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.io(e))?;
        rows.iter().map(|b| self.open_value(b)).collect()
    }

    /// Forgets failures a recovery handled (and those past their day).
    pub(crate) fn clear_failures(&self, handled: &[OlmFailure]) -> CliResult<()> {
        let since = crate::clock::now_ms().saturating_sub(FAILURE_TTL_MS) as i64;
        let mut conn = self.conn();
        let txn = conn.transaction().map_err(|e| self.io(e))?;
        for f in handled {
            let key = self.hash("olm_failures", &format!("{}\u{0}{}", f.sender, f.sender_key));
            txn.execute("DELETE FROM olm_failures WHERE key = ?1", [key]).map_err(|e| self.io(e))?;
        }
        txn.execute("DELETE FROM olm_failures WHERE at_ms < ?1", [since]).map_err(|e| self.io(e))?;
        txn.commit().map_err(|e| self.io(e))
    }
}

/// The room a record is about, from its JSON form.
fn room_of(json: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v["room_id"].as_str().map(str::to_owned)
}
