//! The rules ratchet implements (`shared/spec/RULES.md`, R1–R13), as plain
//! policy over plain data: no SDK handles, no files, no network, so each is
//! unit-tested without a homeserver.
//!
//! | rules      | module       |
//! |------------|--------------|
//! | R1–R5      | [`rotation`] |
//! | R7–R11     | [`olm`]      |
//! | R9–R11, R13 (steps of a recovery) | [`recovery`] |
//! | MSC4153 device isolation, local trust | [`trust`] |
//! | R4, R6 from the sender's side: who can read what it sent | [`delivery`] |
//!
//! Where matrix-sdk deviates from these rules, the deviation is named in
//! `sdk/`, where ratchet works around it.

pub(crate) mod delivery;
pub(crate) mod olm;
pub(crate) mod recovery;
pub(crate) mod rotation;
pub(crate) mod trust;
