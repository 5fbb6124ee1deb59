//! Secret storage and the recovery key, as Element uses them: enable (a new
//! recovery key, secret storage, a backup), recover (the key Element gave:
//! cross-signing keys and the backup key from secret storage, this device
//! signed), reset (a new identity), and the state of all that.
//!
//! Pitfalls from the sources (shared/trust-layer.md §2):
//! * `Recovery::enable` on an account whose secret storage exists (made by
//!   Element) replaces the user's recovery key: [`enable`] refuses and
//!   points to `recover` instead.
//! * A wrong recovery key fails inside `open_secret_store`, before anything
//!   changes: [`recover`] turns that into an authentication error.
//! * `reset_identity` deletes the backup and secret storage before the
//!   password is checked: the caller confirms first, and the password is
//!   in hand before it is called.

use matrix_sdk::encryption::recovery::RecoveryError;
use matrix_sdk::encryption::secret_storage::SecretStorageError;
use matrix_sdk::ruma::api::client::uiaa;
use matrix_sdk::Client;

use crate::error::{CliError, CliResult};
use crate::profile::session::Secret;

/// Sets up secret storage and a key backup for an account that has
/// neither; returns the new recovery key (the only copy: print it once).
pub(crate) async fn enable(client: &Client) -> CliResult<Secret> {
    let encryption = client.encryption();
    if encryption.secret_storage().is_enabled().await? {
        return Err(CliError::failed("this account already has secret storage (set up by Element or another device)")
            .with_hint("`ratchet recovery recover` with the recovery key you were given uses it")
            .with_hint("making a new one would replace the recovery key every other device knows"));
    }
    match encryption.recovery().enable().await {
        Ok(key) => Ok(Secret::new(key)),
        Err(RecoveryError::BackupExistsOnServer) => {
            Err(CliError::failed("a key backup exists on the server that this device cannot open")
                .with_hint("`ratchet recovery recover` with the account's recovery key connects to it"))
        }
        Err(e) => Err(CliError::failed("could not set up recovery").with_source(e)),
    }
}

/// Unlocks secret storage with a recovery key: imports the cross-signing
/// private keys and the backup key, signs this device, turns backup on.
pub(crate) async fn recover(client: &Client, key: &Secret) -> CliResult<()> {
    match client.encryption().recovery().recover(key.expose().trim()).await {
        Ok(()) => Ok(()),
        Err(RecoveryError::SecretStorage(SecretStorageError::SecretStorageKey(e))) => {
            Err(CliError::auth("the recovery key is wrong; nothing was changed")
                .with_source(e)
                .with_hint("it is the key Element showed when you set up recovery (48 characters in groups of 4)"))
        }
        Err(RecoveryError::SecretStorage(SecretStorageError::MissingKeyInfo { .. })) => {
            Err(CliError::failed("this account has no secret storage to recover from")
                .with_hint("`ratchet recovery enable` sets it up"))
        }
        Err(e) => Err(CliError::failed("could not recover").with_source(e)),
    }
}

/// A new cross-signing identity for the account: the old backup and
/// secret storage are deleted, and every other device (and every user
/// who verified you) sees the identity change. The upload is authorised
/// with the account password.
pub(crate) async fn reset_identity(client: &Client, password: &Secret) -> CliResult<()> {
    let own = client.user_id().ok_or_else(|| CliError::internal("no user id"))?.to_owned();
    let handle = client
        .encryption()
        .recovery()
        .reset_identity()
        .await
        .map_err(|e| CliError::failed("could not reset the identity").with_source(e))?;
    if let Some(handle) = handle {
        let session = match handle.auth_type() {
            matrix_sdk::encryption::CrossSigningResetAuthType::Uiaa(info) => info.session.clone(),
            _ => {
                return Err(CliError::failed("the server wants an authorisation ratchet cannot give (OAuth)")
                    .with_hint("reset the identity in Element, then `ratchet recovery recover`"));
            }
        };
        let mut auth = uiaa::Password::new(uiaa::UserIdentifier::from(own), password.expose().to_owned());
        auth.session = session;
        handle
            .reset(Some(uiaa::AuthData::Password(auth)))
            .await
            .map_err(|e| CliError::auth("the server refused the reset (wrong password?)").with_source(e))?;
    }
    Ok(())
}

/// Whether the account has secret storage (a request).
pub(crate) async fn storage_exists(client: &Client) -> CliResult<bool> {
    Ok(client.encryption().secret_storage().is_enabled().await?)
}
