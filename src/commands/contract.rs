//! The JSON Lines contract, derived from the record types themselves.
//!
//! Every record type derives its JSON schema (`schemars`). This test-only
//! module lists each type with the commands that print it, snapshots the
//! schemas (`snapshots/…__record_schemas.snap`), and renders the README's
//! "JSON output" table from them: a field added, renamed or removed fails
//! here until the snapshot is accepted and the README says so.
//!
//! `RATCHET_BLESS=1 cargo test contract` rewrites the README table.

use schemars::JsonSchema;
use serde_json::{Map, Value};

use crate::ui::output::Record;

/// One record type: its `type`, the commands that print it, its schema,
/// and a short note for the table.
struct Entry {
    kind: &'static str,
    from: &'static str,
    schema: Value,
    note: &'static str,
}

fn entry<R: Record + JsonSchema>(from: &'static str, note: &'static str) -> Entry {
    let schema = schemars::SchemaGenerator::default().into_root_schema_for::<R>();
    Entry { kind: R::TYPE, from, schema: serde_json::to_value(schema).expect("schemas serialise"), note }
}

fn entries() -> Vec<Entry> {
    use super::*;
    use crate::events;
    vec![
        entry::<login::LoginRecord>("login", ""),
        entry::<crate::sso::SsoRecord>("login --sso/--oauth", "before the sign-in: the address to open"),
        entry::<logout::LogoutRecord>("logout", ""),
        entry::<whoami::WhoamiRecord>("whoami", ""),
        entry::<whoami::AccessTokenRecord>("whoami --access-token", ""),
        entry::<room::RoomRecord>("room create/join/list", "`state`: joined, invited, left, knocked or banned"),
        entry::<room::invite::InvitedRecord>("room invite", ""),
        entry::<room::members::MemberRecord>("room members", "`membership`: join or invite"),
        entry::<events::LeftRecord>("room leave, sync", "also `cursor` when sync or chat prints it"),
        entry::<crate::batch::SentRecord>(
            "send, chat",
            "`seq` is the 1-based position in the batch; in chat, the line number",
        ),
        entry::<encrypt::EncryptRecord>("encrypt", ""),
        entry::<room::info::RoomInfoRecord>(
            "room info",
            "the limits as ratchet applies them; `kept_by_r3` when the room loosened them and the stricter ones \
             seen before are kept",
        ),
        entry::<sessions::OutboundRecord>("sessions", ""),
        entry::<sessions::InboundRecord>("sessions", ""),
        entry::<rotate::RotatedRecord>("rotate", ""),
        entry::<devices::DeviceRecord>("devices", "`local_trust`: verified, blacklisted, ignored or unset"),
        entry::<identity::IdentityRecord>("identity", ""),
        entry::<trust::LocalTrustRecord>("trust", ""),
        entry::<verify::SasRecord>("verify", "the emoji to compare; off a terminal one line of stdin answers it"),
        entry::<verify::VerifiedRecord>("verify", ""),
        entry::<olm::OlmDeviceRecord>("olm", ""),
        entry::<unwedge::UnwedgedRecord>("unwedge", ""),
        entry::<crate::sdk::recovery::RecoveryRecord>("sync", "also `cursor` when sync or chat prints it"),
        entry::<crate::stream::InboxGapRecord>(
            "sync",
            "printed first when undelivered records were dropped unseen (ratchet keeps 50,000 for `sync`)",
        ),
        entry::<keys::request::KeyRequestRecord>("keys request", ""),
        entry::<recovery::enable::RecoveryKeyRecord>("recovery enable", "the recovery key, shown this once"),
        entry::<recovery::RecoveryStatusRecord>("recovery status/recover/reset", ""),
        entry::<recovery::reset::ApprovalRecord>(
            "recovery reset",
            "for an OAuth 2.0 or single sign-on account: printed before the wait",
        ),
        entry::<backup::status::BackupStatusRecord>("backup status", ""),
        entry::<backup::restore::RestoredRecord>("backup restore", ""),
        entry::<keys::export::ExportedRecord>("keys export", ""),
        entry::<keys::import::ImportedRecord>("keys import", ""),
        entry::<debug::forget_olm::ForgotOlmRecord>("debug forget-olm", ""),
        entry::<debug::forget_room_key::ForgotRoomKeyRecord>("debug forget-room-key", ""),
        entry::<doctor::DiagnosisRecord>("doctor", "`sender_device_state`: known, deleted or unknown"),
        entry::<doctor::DeliveryRecord>("doctor --sent", "`device_state`: known, deleted or gone"),
        entry::<certify::CertifiedRecord>("certify", ""),
        entry::<events::MessageRecord>("messages, sync, chat", "also `cursor` when sync or chat prints it"),
        entry::<events::UtdRecord>("messages, sync, chat", "also `cursor` when sync or chat prints it"),
        entry::<events::EventRecord>("messages --all, sync", "also `cursor` when sync or chat prints it"),
        entry::<download::DownloadedRecord>("download", "on stderr as a status line with -o -"),
        entry::<crate::stream::InviteRecord>("sync", "also `cursor` when sync or chat prints it"),
        entry::<crate::stream::ToDeviceRecord>("sync", "also `cursor` when sync or chat prints it"),
        entry::<crate::gapfill::GapRecord>(
            "sync",
            "a room's gap that one sync did not fetch (past its budget, or the server failed); also `cursor`",
        ),
        entry::<crate::stream::IdentityResetRecord>(
            "sync",
            "your identity was reset on another device; `fixes` verify this device again; also `cursor`",
        ),
        entry::<crate::stream::RotationSeenRecord>("sync --follow", "also `cursor` when sync or chat prints it"),
        entry::<crate::stream::SyncSummary>("sync", "a closing summary"),
        entry::<crate::ui::output::StatusRecord>("any, on **stderr**", "under `--json`; silenced by `-q`"),
        entry::<crate::ui::output::WarningRecord>("any, on **stderr**", "under `--json`; `warning:` lines otherwise"),
        entry::<crate::ui::output::ErrorRecord>(
            "any, on **stderr**",
            "`kind`: failed, usage, partial, auth, refused, internal or declined (a confirmation answered no)",
        ),
    ]
}

/// Follows a `$ref` into the root's `$defs`, and drops `null` from an
/// `Option`'s `anyOf`.
fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    if let Some(name) = schema["$ref"].as_str().and_then(|r| r.strip_prefix("#/$defs/")) {
        return resolve(root, &root["$defs"][name]);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(variants) = schema[key].as_array() {
            let non_null: Vec<&Value> = variants.iter().filter(|v| v["type"] != "null").collect();
            if let [only] = non_null.as_slice() {
                return resolve(root, only);
            }
        }
    }
    schema
}

/// The values of a string enum (`enum`, or `oneOf` of `const`s).
fn enum_values(schema: &Value) -> Option<Vec<String>> {
    if let Some(values) = schema["enum"].as_array() {
        return Some(values.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect());
    }
    let variants = schema["oneOf"].as_array()?;
    let consts: Vec<String> = variants.iter().filter_map(|v| v["const"].as_str().map(str::to_owned)).collect();
    (consts.len() == variants.len()).then_some(consts)
}

fn fields(root: &Value, object: &Value) -> String {
    let Some(properties) = object["properties"].as_object() else { return String::new() };
    properties.iter().map(|(name, schema)| field(root, name, schema)).collect::<Vec<_>>().join(", ")
}

fn field(root: &Value, name: &str, schema: &Value) -> String {
    let schema = resolve(root, schema);
    if let Some(values) = enum_values(schema) {
        return format!("{name} ({})", values.join("/"));
    }
    let is = |t: &str| schema["type"] == t || schema["type"].as_array().is_some_and(|a| a.iter().any(|v| v == t));
    if is("array") {
        let items = resolve(root, &schema["items"]);
        if items["properties"].is_object() {
            return format!("{name}[{{{}}}]", fields(root, items));
        }
        return format!("{name}[]");
    }
    if is("object") && schema["properties"].is_object() {
        return format!("{name} {{{}}}", fields(root, schema));
    }
    name.to_owned()
}

/// The README table, as generated.
fn table() -> String {
    let mut out = String::from("| type | from | fields |\n|---|---|---|\n");
    for e in entries() {
        let note = if e.note.is_empty() { String::new() } else { format!(" ({})", e.note) };
        out.push_str(&format!("| `{}` | {} | `{}`{note} |\n", e.kind, e.from, fields(&e.schema, &e.schema)));
    }
    out
}

const BEGIN: &str = "<!-- records:begin (generated from the record types by src/commands/contract.rs) -->\n";
const END: &str = "<!-- records:end -->";

#[test]
fn every_record_type_is_listed_once() {
    let mut kinds: Vec<&str> = entries().iter().map(|e| e.kind).collect();
    let count = kinds.len();
    kinds.sort();
    kinds.dedup();
    assert_eq!(kinds.len(), count, "a record type is listed twice");
}

#[test]
fn record_schemas_are_stable() {
    let all: Map<String, Value> = entries().into_iter().map(|e| (e.kind.to_owned(), e.schema)).collect();
    insta::assert_json_snapshot!("record_schemas", all);
}

#[test]
fn readme_table_is_generated_from_the_records() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).expect("README.md");
    let start = readme.find(BEGIN).expect("README has the records:begin marker") + BEGIN.len();
    let end = readme[start..].find(END).expect("README has the records:end marker") + start;
    let generated = table();
    if readme[start..end] != generated {
        if std::env::var_os("RATCHET_BLESS").is_some() {
            std::fs::write(&path, format!("{}{generated}{}", &readme[..start], &readme[end..])).expect("write README");
            return;
        }
        panic!(
            "README's JSON table differs from the record types; run `RATCHET_BLESS=1 cargo test contract` and \
             review the diff.\n--- generated ---\n{generated}"
        );
    }
}
