//! Cross-signing and device trust in matrix-sdk: bootstrapping an identity
//! at login, reading identities and devices, and setting local trust.
//!
//! Pitfalls from the sources (shared/trust-layer.md §1):
//! * `bootstrap_cross_signing` on an account that already has an identity
//!   *replaces* it; only `bootstrap_cross_signing_if_needed` is used here,
//!   and only after a keys query has told whether one exists.
//! * After a bootstrap the store's copy of this device carries the new
//!   signature only after a keys query for our own user: [`own_state`]
//!   queries before it answers.
//! * The SDK's `verification_state()` is computed by its start-up task,
//!   which ratchet parks (`sdk::client`): it is computed here instead.

use matrix_sdk::encryption::identities::UserIdentity;
use matrix_sdk::ruma::api::client::uiaa;
use matrix_sdk::ruma::{DeviceId, UserId};
use matrix_sdk::Client;

use crate::e2ee::trust::{CrossSigningAtLogin, LocalTrust};
use crate::error::{CliError, CliResult};
use crate::profile::session::Secret;

/// At login: creates the account's cross-signing identity if it has none
/// (master, self-signing and user-signing keys) and signs this device with
/// it, as Element does on a first login. The upload's user-interactive auth,
/// where the server asks for it, uses the login password. An account that
/// already has an identity is left alone: this device must be verified.
/// `password` is `None` for an access-token login: where the server then
/// asks for it, nothing is made ([`CrossSigningAtLogin::NeedsPassword`]).
pub(crate) async fn bootstrap_at_login(client: &Client, password: Option<&Secret>) -> CliResult<CrossSigningAtLogin> {
    let own = client.user_id().ok_or_else(|| CliError::internal("no user id after login"))?.to_owned();
    let encryption = client.encryption();
    // A resumed login (or `identity --create`) whose bootstrap made the
    // private keys here: the SDK saved them, and their public half, before
    // any upload, so whether the server got them (and this device's
    // signature) is unknown. Upload again: the same keys (the SDK reuses
    // the private identity it holds), idempotent on the server.
    // Not when the server has another identity (its master key is not the
    // one these private keys make: then the store's own identity is not
    // verified): that would replace it.
    let complete = encryption.cross_signing_status().await.is_some_and(|s| s.is_complete());
    let identity = encryption.request_user_identity(&own).await?;
    if complete && identity.as_ref().is_none_or(|i| i.is_verified()) {
        if !upload_identity(client, &own, password, true).await? {
            return Ok(CrossSigningAtLogin::NeedsPassword);
        }
        encryption.request_user_identity(&own).await?;
        return Ok(CrossSigningAtLogin::Created);
    }
    if identity.is_some() {
        return Ok(CrossSigningAtLogin::Existing);
    }
    if !upload_identity(client, &own, password, false).await? {
        return Ok(CrossSigningAtLogin::NeedsPassword);
    }
    // The new signature on this device reaches the store with the next
    // keys query for our own user.
    encryption.request_user_identity(&own).await?;
    Ok(CrossSigningAtLogin::Created)
}

/// Creates (or, with `again`, re-uploads the one held here) the
/// cross-signing identity, with the password for the server's
/// user-interactive auth where it asks. `false`: it asked, and there is no
/// password (the keys made stay in the store for `identity --create`).
async fn upload_identity(client: &Client, own: &UserId, password: Option<&Secret>, again: bool) -> CliResult<bool> {
    let encryption = client.encryption();
    let first = if again {
        encryption.bootstrap_cross_signing(None).await
    } else {
        encryption.bootstrap_cross_signing_if_needed(None).await
    };
    if let Err(first) = first {
        let Some(info) = first.as_uiaa_response() else {
            return Err(CliError::failed("could not set up cross-signing").with_source(first));
        };
        let Some(password) = password else { return Ok(false) };
        let mut auth = uiaa::Password::new(uiaa::UserIdentifier::from(own.to_owned()), password.expose().to_owned());
        auth.session = info.session.clone();
        // The identity the first call created locally is reused, not
        // replaced (its private keys are in the store now).
        encryption
            .bootstrap_cross_signing(Some(uiaa::AuthData::Password(auth)))
            .await
            .map_err(|e| CliError::failed("could not upload the cross-signing keys").with_source(e))?;
    }
    Ok(true)
}

/// The private cross-signing keys this device holds.
#[derive(Debug, Clone, Copy, serde::Serialize, schemars::JsonSchema)]
pub(crate) struct PrivateKeys {
    pub(crate) master: bool,
    pub(crate) self_signing: bool,
    pub(crate) user_signing: bool,
}

/// A user's cross-signing identity as this device sees it.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    /// The master key (base64), if the user has an identity.
    pub(crate) master_key: Option<String>,
    /// Verified by us: for our own identity, trusted on this device; for
    /// another user, signed by our user-signing key (or locally verified).
    pub(crate) verified: bool,
    pub(crate) previously_verified: bool,
    /// We verified them once and their identity changed since.
    pub(crate) verification_violation: bool,
    /// Never verified by us, and their identity changed since this device
    /// first saw it (a "pin violation", Element's "identity was reset").
    pub(crate) identity_changed: bool,
}

impl Identity {
    fn of(identity: Option<&UserIdentity>) -> Identity {
        match identity {
            Some(i) => Identity {
                master_key: i.master_key().get_first_key().map(|k| k.to_base64()),
                verified: i.is_verified(),
                previously_verified: i.was_previously_verified(),
                verification_violation: i.has_verification_violation(),
                identity_changed: false,
            },
            None => Identity {
                master_key: None,
                verified: false,
                previously_verified: false,
                verification_violation: false,
                identity_changed: false,
            },
        }
    }
}

/// Our own master key as this device's store knows it (no request), and
/// whether this device is signed by that identity.
pub(crate) async fn own_master_key(client: &Client) -> CliResult<(Option<String>, bool)> {
    let own = client.user_id().ok_or_else(|| CliError::internal("no user id"))?.to_owned();
    let identity = client.encryption().get_user_identity(&own).await?;
    let key = identity.as_ref().and_then(|i| i.master_key().get_first_key().map(|k| k.to_base64()));
    let signed = client.encryption().get_own_device().await?.is_some_and(|d| d.is_cross_signed_by_owner());
    Ok((key, signed))
}

/// `user`'s identity, after asking the server for it (a keys query).
pub(crate) async fn identity(client: &Client, user: &UserId) -> CliResult<Identity> {
    let found = client.encryption().request_user_identity(user).await?;
    let mut identity = Identity::of(found.as_ref());
    identity.identity_changed = needs_approval(client, user).await?;
    Ok(identity)
}

/// Whether USER's identity changed since this device first saw it, and was
/// never verified by us (matrix-sdk's `identity_needs_user_approval`,
/// reached through the crypto machine: matrix-sdk 0.18 does not re-export it).
async fn needs_approval(client: &Client, user: &UserId) -> CliResult<bool> {
    let machine = super::machine(client).await?;
    Ok(match machine.get_identity(user, None).await? {
        Some(matrix_sdk_crypto::UserIdentity::Other(other)) => other.identity_needs_user_approval(),
        _ => false,
    })
}

/// Accepts USER's changed identity, unverified (Element's "OK" on "their
/// identity was reset"): this device remembers it as theirs from now on.
/// False when there was nothing to accept.
pub(crate) async fn acknowledge_identity(client: &Client, user: &UserId) -> CliResult<bool> {
    if !needs_approval(client, user).await? {
        return Ok(false);
    }
    let Some(identity) = client.encryption().get_user_identity(user).await? else { return Ok(false) };
    identity.pin().await?;
    Ok(true)
}

/// Our own side: whether this device is cross-signed by our identity, and
/// which private keys it holds (after a keys query for our own user).
pub(crate) async fn own_state(client: &Client) -> CliResult<(bool, PrivateKeys)> {
    let own = client.user_id().ok_or_else(|| CliError::internal("no user id"))?.to_owned();
    client.encryption().request_user_identity(&own).await?;
    let cross_signed = client.encryption().get_own_device().await?.is_some_and(|d| d.is_cross_signed_by_owner());
    let status = client.encryption().cross_signing_status().await;
    let keys = PrivateKeys {
        master: status.as_ref().is_some_and(|s| s.has_master),
        self_signing: status.as_ref().is_some_and(|s| s.has_self_signing),
        user_signing: status.as_ref().is_some_and(|s| s.has_user_signing),
    };
    Ok((cross_signed, keys))
}

/// Whether this device is cross-signed by its owner, from the store (no
/// request): what MSC4153 calls a secure device.
pub(crate) async fn own_device_cross_signed(client: &Client) -> CliResult<bool> {
    Ok(client.encryption().get_own_device().await?.is_some_and(|d| d.is_cross_signed_by_owner()))
}

/// Sets our local trust in a device; returns the previous setting.
pub(crate) async fn set_local_trust(
    client: &Client,
    user: &UserId,
    device: &DeviceId,
    trust: LocalTrust,
) -> CliResult<LocalTrust> {
    use matrix_sdk::encryption::LocalTrust as Sdk;
    let found = client.encryption().get_device(user, device).await?.ok_or_else(|| {
        CliError::failed(format!("unknown device {device} of {user}")).with_hint(format!(
            "`{}` lists the devices ratchet knows",
            crate::ui::hint::ratchet("devices").arg(user.as_str())
        ))
    })?;
    let previous = local_trust_of(found.local_trust_state());
    let wanted = match trust {
        LocalTrust::Verified => Sdk::Verified,
        LocalTrust::Blacklisted => Sdk::BlackListed,
        LocalTrust::Ignored => Sdk::Ignored,
        LocalTrust::Unset => Sdk::Unset,
    };
    found.set_local_trust(wanted).await?;
    Ok(previous)
}

pub(crate) fn local_trust_of(trust: matrix_sdk::encryption::LocalTrust) -> LocalTrust {
    use matrix_sdk::encryption::LocalTrust as Sdk;
    match trust {
        Sdk::Verified => LocalTrust::Verified,
        Sdk::BlackListed => LocalTrust::Blacklisted,
        Sdk::Ignored => LocalTrust::Ignored,
        _ => LocalTrust::Unset,
    }
}

/// The facts `e2ee::trust::how_to_verify_this_device` needs (requests: the
/// own identity, secret storage).
pub(crate) async fn own_facts(client: &Client) -> CliResult<crate::e2ee::trust::OwnFacts> {
    let own = client.user_id().ok_or_else(|| CliError::internal("no user id"))?.to_owned();
    let this = client.device_id().map(|d| d.to_owned());
    let identity = client.encryption().request_user_identity(&own).await?.is_some();
    let secret_storage = client.encryption().secret_storage().is_enabled().await?;
    let devices = client.encryption().get_user_devices(&own).await?;
    let verified_siblings = devices
        .devices()
        .filter(|d| Some(d.device_id()) != this.as_deref() && d.is_cross_signed_by_owner() && !d.is_deleted())
        .count();
    Ok(crate::e2ee::trust::OwnFacts { identity, secret_storage, verified_siblings })
}

/// Accepts a user's changed identity: their verification is withdrawn (a
/// verification violation no longer blocks sending to them; they show as
/// unverified until verified again) and the new master key is pinned.
/// Returns whether there was anything to accept.
pub(crate) async fn withdraw_verification(client: &Client, user: &UserId) -> CliResult<bool> {
    let Some(identity) = client.encryption().request_user_identity(user).await? else {
        return Err(CliError::failed(format!("{user} has no cross-signing identity")));
    };
    if !identity.has_verification_violation() {
        return Ok(false);
    }
    identity
        .withdraw_verification()
        .await
        .map_err(|e| CliError::failed("could not withdraw the verification").with_source(e))?;
    Ok(true)
}

/// What [`certify_own_device`] found.
pub(crate) struct Certified {
    /// The device's Ed25519 key as the server lists it (base64).
    pub(crate) ed25519: String,
    /// It was cross-signed already: nothing was uploaded.
    pub(crate) already: bool,
}

/// Cross-signs another device of our own account with our self-signing key
/// once its Ed25519 key, as the server lists it (after a keys query), is
/// `expected` (element-meta#2709: a bot operator certifies a device without
/// emoji). A different key signs nothing.
pub(crate) async fn certify_own_device(client: &Client, device: &DeviceId, expected: &str) -> CliResult<Certified> {
    let own = client.user_id().ok_or_else(|| CliError::internal("no user id"))?.to_owned();
    if client.device_id() == Some(device) {
        return Err(CliError::usage("that is this device: certify another device of your account")
            .with_hint("this device is cross-signed by `recovery recover` or `verify --accept`"));
    }
    client.encryption().request_user_identity(&own).await?;
    let found = client.encryption().get_device(&own, device).await?.filter(|d| !d.is_deleted());
    let Some(found) = found else {
        return Err(CliError::failed(format!("your account has no device {device}"))
            .with_hint(format!("`{}` lists your devices", crate::ui::hint::ratchet("devices").arg(own.as_str()))));
    };
    let actual = found.ed25519_key().map(|k| k.to_base64()).unwrap_or_default();
    if actual != expected.trim() {
        return Err(CliError::failed(format!(
            "device {device}'s Ed25519 key is {actual} on the server, not the one given: nothing was signed"
        ))
        .with_hint("compare the key the device itself shows (`ratchet whoami` there, or Element's session details)"));
    }
    if found.is_cross_signed_by_owner() {
        return Ok(Certified { ed25519: actual, already: true });
    }
    found.verify().await.map_err(|e| {
        CliError::failed(format!("could not cross-sign device {device}")).with_source(e).with_hint(format!(
            "this device needs your self-signing key: `{}` with your recovery key brings it",
            crate::ui::hint::ratchet("recovery recover")
        ))
    })?;
    Ok(Certified { ed25519: actual, already: false })
}
