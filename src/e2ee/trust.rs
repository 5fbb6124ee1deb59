//! Trust as policy: the device-isolation mode (MSC4153) and the local trust
//! a person can give a device. Plain data; carried out in `sdk::trust` and
//! `sdk::client`.
//!
//! MSC4153 ("exclude insecure devices", now in the spec and mandatory in
//! Element): a device that its owner has not cross-signed is *insecure*.
//! In `exclude-insecure` mode room keys go only to devices cross-signed by
//! their owner (the others get `m.room_key.withheld` with `m.unverified`),
//! and events from insecure devices are not decrypted. `all-devices` is
//! the legacy behaviour: keys to every device, events from every device.

use serde::{Deserialize, Serialize};

/// The device-isolation mode of a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Isolation {
    /// Share room keys only with devices cross-signed by their owner, and
    /// decrypt only what such devices (or pre-cross-signing sessions) sent.
    #[default]
    ExcludeInsecure,
    /// Share with and decrypt from every device (legacy).
    AllDevices,
}

impl Isolation {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Isolation::ExcludeInsecure => "exclude-insecure",
            Isolation::AllDevices => "all-devices",
        }
    }
}

/// What a person says about one device, locally (never sent anywhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LocalTrust {
    /// Trusted as if verified.
    Verified,
    /// Never sent room keys (they get `m.room_key.withheld`, `m.blacklisted`,
    /// in all-devices mode).
    Blacklisted,
    /// Its unverified state is not held against it.
    Ignored,
    /// No local decision.
    Unset,
}

impl LocalTrust {
    pub(crate) fn name(self) -> &'static str {
        match self {
            LocalTrust::Verified => "verified",
            LocalTrust::Blacklisted => "blacklisted",
            LocalTrust::Ignored => "ignored",
            LocalTrust::Unset => "unset",
        }
    }
}

/// What `login` did about cross-signing. Part of the JSON contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CrossSigningAtLogin {
    /// The account had no identity: ratchet created one (master,
    /// self-signing, user-signing keys) and signed this device with it.
    Created,
    /// The account already has an identity made elsewhere: this device is
    /// not yet signed by it and must be verified.
    Existing,
    /// `--no-bootstrap`: nothing was done.
    Skipped,
}
