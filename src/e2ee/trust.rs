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
    /// An access-token login on an account with no identity, where the
    /// server asks for the account password to upload one (user-interactive
    /// auth): nothing was done; `identity --create` does it with the password.
    NeedsPassword,
}

/// What is known about the account's trust set-up, for telling the user
/// how to make this device verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OwnFacts {
    /// The account has a cross-signing identity.
    pub(crate) identity: bool,
    /// The account has secret storage (a recovery key exists, Element's or
    /// ratchet's).
    pub(crate) secret_storage: bool,
    /// Other devices of the account that are cross-signed (they can verify
    /// this one).
    pub(crate) verified_siblings: usize,
}

/// How to make this device cross-signed, in the order that works: the
/// recovery key when there is secret storage, a verified device of yours
/// when there is one, a new identity when there is none (or nothing else
/// is left).
pub(crate) fn how_to_verify_this_device(facts: OwnFacts) -> Vec<String> {
    if !facts.identity {
        return vec![format!(
            "your account has no cross-signing identity yet: `{}` creates one and signs this \
             device (nothing is deleted)",
            crate::ui::hint::ratchet("identity --create")
        )
        .to_owned()];
    }
    let mut how = Vec::new();
    if facts.secret_storage {
        how.push(
            format!(
                "`{}` with the recovery key (Element's, or `recovery enable`'s)",
                crate::ui::hint::ratchet("recovery recover")
            )
            .to_owned(),
        );
    }
    if facts.verified_siblings > 0 || !facts.secret_storage {
        how.push(
            format!(
                "`{}`, then start a verification from a verified device of yours (in Element: \
             Settings, Sessions, this session, Verify)",
                crate::ui::hint::ratchet("verify --accept")
            )
            .to_owned(),
        );
    }
    if !facts.secret_storage && facts.verified_siblings == 0 {
        how.push(
            format!(
                "no recovery key and no verified device: `{}` makes a new identity (others must \
             verify you again)",
                crate::ui::hint::ratchet("recovery reset")
            )
            .to_owned(),
        );
    }
    how
}

#[cfg(test)]
mod how_to_verify_tests {
    use super::*;

    #[test]
    fn each_account_gets_the_way_that_works_for_it() {
        let none = how_to_verify_this_device(OwnFacts { identity: false, secret_storage: false, verified_siblings: 0 });
        assert!(none[0].contains("identity --create") && !none.iter().any(|h| h.contains("verify --")));
        assert!(!none.iter().any(|h| h.contains("recovery reset")), "never the destructive way: {none:?}");
        let element =
            how_to_verify_this_device(OwnFacts { identity: true, secret_storage: true, verified_siblings: 0 });
        assert!(element[0].contains("recovery recover"), "{element:?}");
        assert!(!element.iter().any(|h| h.contains("recovery reset")), "{element:?}");
        let both = how_to_verify_this_device(OwnFacts { identity: true, secret_storage: true, verified_siblings: 1 });
        assert_eq!(both.len(), 2, "{both:?}");
        let stuck = how_to_verify_this_device(OwnFacts { identity: true, secret_storage: false, verified_siblings: 0 });
        assert!(stuck.iter().any(|h| h.contains("recovery reset")), "{stuck:?}");
        assert!(!stuck.iter().any(|h| h.contains("recovery recover")), "{stuck:?}");
    }
}
