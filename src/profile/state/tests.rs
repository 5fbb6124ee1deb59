//! The state database's unit tests.

use super::journal::KEEP_POSITIONS;
use super::*;
use crate::profile::session::{generate_key, Secret};

fn key() -> StoreSecret {
    StoreSecret::Key(Box::new(zeroize::Zeroizing::new(generate_key())))
}

fn rec(n: usize, room: &str) -> Captured {
    Captured { json: format!(r#"{{"type":"message","room_id":"{room}","body":"secret-{n}"}}"#), human: format!("m{n}") }
}

#[test]
fn records_flow_pending_delivered_after_cursor() {
    let tmp = tempfile::tempdir().unwrap();
    let secret = key();
    let db = StateDb::open(tmp.path(), &secret, Opening::New).unwrap().db;
    let seqs = db.append(&[rec(1, "!a"), rec(2, "!b"), rec(3, "!a")]).unwrap();
    assert_eq!(seqs.len(), 3);
    let pending = db.pending(10).unwrap();
    assert_eq!(pending.iter().map(|k| k.record.human.as_str()).collect::<Vec<_>>(), ["m1", "m2", "m3"]);
    // A room's view leaves them pending.
    let a = db.after(0, Some("!a"), 10).unwrap();
    assert_eq!(a.iter().map(|k| k.record.human.as_str()).collect::<Vec<_>>(), ["m1", "m3"]);
    assert_eq!(db.before_pending().unwrap(), seqs[0] - 1);
    db.mark_delivered(seqs[0], seqs[1]).unwrap();
    assert_eq!(db.pending(10).unwrap().len(), 1);
    assert_eq!(db.before_pending().unwrap(), seqs[1]);
    // A reader that stopped after the first gets the second again.
    let cursor = db.cursor(seqs[0]);
    let from = db.resolve_cursor(&cursor).unwrap();
    let again = db.delivered_after(from, 10).unwrap();
    assert_eq!(again.iter().map(|k| k.record.human.as_str()).collect::<Vec<_>>(), ["m2"]);
    // Cursors of another database, or unknown ones, are refused.
    assert!(db.resolve_cursor("ffffffff-1").is_err());
    assert!(db.resolve_cursor(&db.cursor(99)).is_err());
    assert!(db.resolve_cursor("nonsense").is_err());
    // Nothing of the records is on disk in clear.
    drop(db);
    for entry in std::fs::read_dir(tmp.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(7).any(|w| w == b"secret-"));
    }
    // It opens again with its secret, and not with another.
    let back = StateDb::open(tmp.path(), &secret, Opening::Existing).unwrap();
    assert!(back.lost.is_empty());
    assert_eq!(back.db.pending(10).unwrap().len(), 1);
    drop(back);
    // Another secret is an authentication problem (exit 4), not damage.
    let err = StateDb::open(tmp.path(), &key(), Opening::Existing).unwrap_err();
    assert_eq!(err.kind, crate::error::ErrorKind::Auth, "{}", err.message);
    assert!(err.message.contains("does not open"), "{}", err.message);
}

#[test]
fn a_lost_database_reads_strictest_and_old_files_left_behind_are_migrated_later() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("store")).unwrap();
    std::fs::write(tmp.path().join("store").join("matrix-sdk-crypto.sqlite3"), b"").unwrap();
    let secret = key();
    let opened = StateDb::open(tmp.path(), &secret, Opening::Existing).unwrap();
    assert_eq!(opened.lost, ["megolm", "olm"]);
    // The strictest reading is committed with the database itself.
    let Loaded::Present(olm, _) = opened.db.ledger::<crate::profile::olm_ledger::OlmLedger>("olm").unwrap() else {
        panic!("no Olm ledger")
    };
    assert!(olm.all_devices_since.is_some());
    let Loaded::Present(megolm, _) = opened.db.ledger::<crate::profile::megolm_ledger::MegolmLedger>("megolm").unwrap()
    else {
        panic!("no Megolm ledger")
    };
    assert!(megolm.distrust_before.is_some());
    drop(opened);
    // An old inbox written after the database exists (an older ratchet
    // ran) is migrated at the next open, and its ledgers do not replace
    // the ones here.
    let line = serde_json::to_string(&rec(7, "!a")).unwrap();
    std::fs::write(tmp.path().join("inbox.jsonl"), format!("{line}\n")).unwrap();
    std::fs::write(tmp.path().join("olm.json"), "{}").unwrap();
    let again = StateDb::open(tmp.path(), &secret, Opening::Existing).unwrap();
    assert!(again.lost.is_empty());
    assert_eq!(again.db.pending(10).unwrap()[0].record.human, "m7");
    assert!(!tmp.path().join("inbox.jsonl").exists() && !tmp.path().join("olm.json").exists());
    let Loaded::Present(olm, _) = again.db.ledger::<crate::profile::olm_ledger::OlmLedger>("olm").unwrap() else {
        panic!("no Olm ledger")
    };
    assert!(olm.all_devices_since.is_some(), "kept, not replaced by the old file");
}

#[test]
fn passphrase_mode_and_a_newer_schema_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let secret = StoreSecret::Passphrase(Secret::new("correct horse".into()));
    let db = StateDb::open(tmp.path(), &secret, Opening::New).unwrap().db;
    db.append(&[rec(1, "!a")]).unwrap();
    db.conn().pragma_update(None, "user_version", SCHEMA + 1).unwrap();
    drop(db);
    let err = StateDb::open(tmp.path(), &secret, Opening::Existing).unwrap_err();
    assert!(err.message.contains("schema version"), "{}", err.message);
}

#[test]
fn a_damaged_file_is_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join(FILE), b"this is not a database, it only looks like one to a user".repeat(100))
        .unwrap();
    let err = StateDb::open(tmp.path(), &key(), Opening::Existing).unwrap_err();
    assert_eq!(err.kind.exit_code(), 1);
    assert!(err.message.contains(FILE), "{}", err.message);
}

#[test]
fn retention_of_pending_records_counts_what_went() {
    let tmp = tempfile::tempdir().unwrap();
    let db = StateDb::open(tmp.path(), &key(), Opening::New).unwrap().db;
    let batch: Vec<Captured> = (0..1000).map(|n| rec(n, "!a")).collect();
    for _ in 0..(MAX_PENDING / 1000 + 1) {
        db.append(&batch).unwrap();
    }
    let pending =
        db.conn().query_row("SELECT COUNT(*) FROM records WHERE delivered_ms IS NULL", [], |r| r.get::<_, i64>(0));
    let pending = pending.unwrap();
    let dropped = db.dropped().unwrap() as i64;
    assert!(pending < MAX_PENDING && dropped > 0, "{pending} {dropped}");
    assert_eq!(pending + dropped, MAX_PENDING + 1000, "every record is kept or counted");
    db.forget_dropped().unwrap();
    assert_eq!(db.dropped().unwrap(), 0);
}

#[test]
fn delivered_records_are_kept_while_young_or_among_the_newest() {
    let tmp = tempfile::tempdir().unwrap();
    let db = StateDb::open(tmp.path(), &key(), Opening::New).unwrap().db;
    let batch: Vec<Captured> = (0..(KEEP_DELIVERED as usize + 500)).map(|n| rec(n, "!a")).collect();
    let seqs = db.append(&batch).unwrap();
    // Delivered a long time ago.
    let old = crate::clock::now_ms() as i64 - (KEEP_DAYS as i64 + 1) * 24 * 3600 * 1000;
    db.conn().execute("UPDATE records SET delivered_ms = ?1", [old]).unwrap();
    let more = db.append(&[rec(0, "!a")]).unwrap();
    db.mark_delivered(more[0], more[0]).unwrap();
    let kept: i64 = db.conn().query_row("SELECT COUNT(*) FROM records", [], |r| r.get(0)).unwrap();
    assert_eq!(kept, KEEP_DELIVERED, "the newest 10,000 are kept");
    // A cursor before what went is refused as too old; one after is fine.
    let err = db.resolve_cursor(&db.cursor(seqs[10])).unwrap_err();
    assert!(err.message.contains("too old"), "{}", err.message);
    assert!(db.resolve_cursor(&db.cursor(*seqs.last().unwrap())).is_ok());
}

#[test]
fn journal_positions_failures_ledgers() {
    let tmp = tempfile::tempdir().unwrap();
    let db = StateDb::open(tmp.path(), &key(), Opening::New).unwrap().db;
    let entry = JournalEntry {
        room_id: "!r".into(),
        txn_id: "p-1".into(),
        text_sha256: text_hash("hi"),
        event_id: Some("$e".into()),
        session_id: None,
        message_index: None,
        encrypted: Some(true),
        intent_ms: None,
        mxc: None,
    };
    db.journal_put("DEV", &entry).unwrap();
    let got = db.journal_get("DEV", "!r", "p-1").unwrap().unwrap();
    assert_eq!(got.event_id.as_deref(), Some("$e"));
    // Issue 30's review: encrypted although its session is unknown (an
    // interrupted run's event that could not be fetched).
    assert!(got.was_encrypted());
    let older: JournalEntry =
        serde_json::from_str(r#"{"room_id":"!r","txn_id":"p-2","event_id":"$f","session_id":"s","message_index":0}"#)
            .unwrap();
    assert!(older.was_encrypted(), "entries from before the field read it from the session");
    assert!(db.journal_get("OTHER", "!r", "p-1").unwrap().is_none());
    for i in 0..(KEEP_POSITIONS + 10) {
        db.put_position(&Position { event_id: format!("$e{i}"), session_id: "s".into(), message_index: i as u32 })
            .unwrap();
    }
    let ids = vec!["$e0".to_owned(), format!("$e{}", KEEP_POSITIONS + 9)];
    let found = db.positions(&ids).unwrap();
    assert_eq!(found.len(), 1, "the oldest went, the newest is kept");
    let f = OlmFailure { sender: "@b:x".into(), sender_key: "k".into() };
    db.append_sync(&SyncWrite { records: &[rec(1, "!a")], failures: &[f.clone(), f.clone()], ..Default::default() })
        .unwrap();
    assert_eq!(db.failures().unwrap(), vec![f.clone()]);
    db.clear_failures(&[f]).unwrap();
    assert!(db.failures().unwrap().is_empty());
    assert!(matches!(db.ledger::<serde_json::Value>("olm").unwrap(), Loaded::Absent));
    db.save_ledger("olm", br#"{"a":1}"#).unwrap();
    assert!(matches!(db.ledger::<serde_json::Value>("olm").unwrap(), Loaded::Present(..)));
    db.damage_ledger("olm");
    assert!(matches!(db.ledger::<serde_json::Value>("olm").unwrap(), Loaded::Damaged(_)));
}

/// Issue 28: a gap's fill is kept before the sync's own records of its
/// room (moved after it, undelivered), and an undecryptable event that
/// decrypts replaces its `utd` record in place while undelivered, or is
/// appended naming it once delivered.
#[test]
fn a_fill_goes_before_the_sync_and_late_decryptions_settle() {
    let tmp = tempfile::tempdir().unwrap();
    let db = StateDb::open(tmp.path(), &key(), Opening::New).unwrap().db;
    assert!(!db.has_synced().unwrap());
    let utd = |id: &str| PendingUtd {
        room_id: "!a".into(),
        event_id: id.into(),
        event: serde_json::json!({"event_id": id}),
        seen_ms: 1,
        seq: 0,
        trust: false,
    };
    let gap = Gap { room_id: "!a".into(), from: "t1".into(), until: Some("$m".into()), after: vec![], fetched: 0 };
    let records = [rec(1, "!b"), rec(31, "!a"), rec(32, "!a")];
    let w = SyncWrite {
        records: &records,
        utds: vec![(2, utd("$32"))],
        marks: vec![("!a".into(), "$32".into())],
        gaps: vec![(gap, vec![1, 2])],
        synced: true,
        ..Default::default()
    };
    let seqs = db.append_sync(&w).unwrap();
    assert!(db.has_synced().unwrap());
    assert_eq!(db.mark("!a").unwrap().as_deref(), Some("$32"));
    let open = db.gaps(GAP_OPEN).unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].1.after, vec![seqs[1], seqs[2]]);
    // A later sync of the same room, kept before the fill (a kill between):
    // it moves after the fill too.
    db.append(&[rec(33, "!a")]).unwrap();
    let fill = [rec(11, "!a"), rec(12, "!a")];
    let moved = db.fill_gap(open[0].0, &open[0].1, &fill, &[], None).unwrap();
    assert_eq!(moved.len(), 3);
    let order: Vec<String> = db.pending(10).unwrap().into_iter().map(|k| k.record.human).collect();
    assert_eq!(order, ["m1", "m11", "m12", "m31", "m32", "m33"]);
    assert!(db.gaps(GAP_OPEN).unwrap().is_empty());
    // The utd kept its record through the move.
    let pending = db.pending_utds(10, false).unwrap();
    assert_eq!(pending[0].seq, moved[&seqs[2]]);
    // Undelivered: replaced in place.
    let settled = [(pending[0].clone(), Some((rec(320, "!a"), rec(321, "!a"))))];
    db.settle_utds(&settled).unwrap();
    let order: Vec<String> = db.pending(10).unwrap().into_iter().map(|k| k.record.human).collect();
    assert_eq!(order, ["m1", "m11", "m12", "m31", "m320", "m33"]);
    assert!(db.pending_utds(10, false).unwrap().is_empty());
    // Delivered: appended.
    let more = db
        .append_sync(&SyncWrite { records: &[rec(40, "!a")], utds: vec![(0, utd("$40"))], ..Default::default() })
        .unwrap();
    db.mark_delivered(0, more[0]).unwrap();
    let p = db.pending_utds(10, false).unwrap();
    db.settle_utds(&[(p[0].clone(), Some((rec(400, "!a"), rec(401, "!a"))))]).unwrap();
    let order: Vec<String> = db.pending(10).unwrap().into_iter().map(|k| k.record.human).collect();
    assert_eq!(order, ["m401"]);
}

/// Issue 30's review: a kill between the migration's commit and the old
/// files' deletion left the inbox to be migrated again, its records twice.
/// What an older ratchet appended since is still taken.
#[test]
fn an_old_inbox_left_after_its_migration_is_not_taken_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let secret = key();
    let line = |n| serde_json::to_string(&rec(n, "!a")).unwrap();
    let first = format!("{}\n{}\n", line(1), line(2));
    std::fs::write(tmp.path().join("inbox.jsonl"), &first).unwrap();
    let opened = StateDb::open(tmp.path(), &secret, Opening::Existing).unwrap();
    assert_eq!(opened.migrated, ["inbox.jsonl"]);
    drop(opened);
    // As if the deletion never happened (killed after the commit).
    std::fs::write(tmp.path().join("inbox.jsonl"), &first).unwrap();
    let again = StateDb::open(tmp.path(), &secret, Opening::Existing).unwrap();
    let humans: Vec<String> = again.db.pending(10).unwrap().into_iter().map(|p| p.record.human).collect();
    assert_eq!(humans, ["m1", "m2"], "each record once");
    assert!(!tmp.path().join("inbox.jsonl").exists());
    drop(again);
    // Left again, and an older ratchet appended a record to it.
    std::fs::write(tmp.path().join("inbox.jsonl"), format!("{first}{}\n", line(3))).unwrap();
    let third = StateDb::open(tmp.path(), &secret, Opening::Existing).unwrap();
    let humans: Vec<String> = third.db.pending(10).unwrap().into_iter().map(|p| p.record.human).collect();
    assert_eq!(humans, ["m1", "m2", "m3"]);
}

/// Issue 30's review: one old file left beside a lost database (an inbox)
/// made the open read it as a migration, and the lost ledgers were not
/// read as strictest. Each ledger no file gave is.
#[test]
fn a_lost_database_with_an_old_inbox_beside_still_reads_strictest() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("store")).unwrap();
    std::fs::write(tmp.path().join("store").join("matrix-sdk-crypto.sqlite3"), b"").unwrap();
    std::fs::write(tmp.path().join("inbox.jsonl"), format!("{}\n", serde_json::to_string(&rec(1, "!a")).unwrap()))
        .unwrap();
    std::fs::write(tmp.path().join("olm.json"), "{}").unwrap();
    let opened = StateDb::open(tmp.path(), &key(), Opening::Existing).unwrap();
    assert_eq!(opened.lost, ["megolm"], "the Olm ledger came from its file");
    let Loaded::Present(megolm, _) = opened.db.ledger::<crate::profile::megolm_ledger::MegolmLedger>("megolm").unwrap()
    else {
        panic!("no Megolm ledger")
    };
    assert!(megolm.distrust_before.is_some());
    let Loaded::Present(olm, _) = opened.db.ledger::<crate::profile::olm_ledger::OlmLedger>("olm").unwrap() else {
        panic!("no Olm ledger")
    };
    assert!(olm.all_devices_since.is_none(), "as the file had it");
}

#[test]
fn a_session_s_sharing_record_accumulates_members_and_keeps_the_sdk_s_latest_devices() {
    let tmp = tempfile::tempdir().unwrap();
    let db = StateDb::open(tmp.path(), &key(), Opening::New).unwrap().db;
    let share = |user: &str, index: Option<u32>, withheld: Option<&str>| crate::e2ee::rotation::SharedWith {
        user_id: user.into(),
        device_id: "DEV".into(),
        message_index: index,
        withheld: withheld.map(str::to_owned),
    };
    assert_eq!(db.shares("s1").unwrap(), None);
    db.put_shares(ShareRecord {
        room_id: "!r".into(),
        session_id: "s1".into(),
        members: vec!["@a:x".into(), "@b:x".into()],
        devices: vec![share("@b:x", None, Some("m.unverified"))],
        unreachable: vec!["far.example".into()],
        first_ms: 1,
        last_ms: 1,
    })
    .unwrap();
    db.put_shares(ShareRecord {
        room_id: "!r".into(),
        session_id: "s1".into(),
        members: vec!["@a:x".into(), "@c:x".into()],
        devices: vec![share("@b:x", Some(4), None), share("@c:x", Some(4), None)],
        unreachable: vec![],
        first_ms: 9,
        last_ms: 9,
    })
    .unwrap();
    let kept = db.shares("s1").unwrap().unwrap();
    assert_eq!(kept.members, ["@a:x", "@b:x", "@c:x"]);
    // @b was withheld at first: the code stays beside the later index.
    assert_eq!(kept.devices, [share("@b:x", Some(4), Some("m.unverified")), share("@c:x", Some(4), None)]);
    assert_eq!(kept.unreachable, ["far.example"]);
    assert_eq!((kept.first_ms, kept.last_ms), (1, 9));
    assert_eq!(db.shares("s2").unwrap(), None);
}
