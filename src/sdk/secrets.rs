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
//!   password is checked: the caller confirms first, and checks the
//!   password with the server ([`check_password`]) before it is called.

use matrix_sdk::encryption::recovery::RecoveryError;
use matrix_sdk::encryption::secret_storage::SecretStorageError;
use matrix_sdk::ruma::api::client::uiaa;
use matrix_sdk::Client;

use crate::error::{CliError, CliResult};
use crate::profile::session::Secret;

/// Sets up secret storage and a key backup for an account that has
/// neither; returns the new recovery key (the only copy: print it once).
///
/// The key is taken from the SDK's progress (`EnableProgress::Done`) as
/// soon as secret storage holds everything, so a failure after that (the
/// SDK's own state refresh) cannot lose it: it comes back with a warning.
/// With `replace`, an account whose secret storage exists gets a new
/// recovery key for it, when this device holds every secret (all three
/// cross-signing keys and the backup key) so nothing is left out of the
/// new storage: the way back from a key lost to an interrupted `enable`.
pub(crate) async fn enable(client: &Client, replace: bool) -> CliResult<(Secret, Option<String>)> {
    use futures_util::{FutureExt, StreamExt};
    use matrix_sdk::encryption::recovery::EnableProgress;
    let encryption = client.encryption();
    let (_, keys) = super::trust::own_state(client).await?;
    let all_keys = keys.master && keys.self_signing && keys.user_signing;
    if encryption.secret_storage().is_enabled().await? {
        if !replace {
            return Err(CliError::failed(
                "this account already has secret storage (set up by Element or another device)",
            )
            .with_hint(format!(
                "`{}` with the recovery key you were given uses it",
                crate::ui::hint::ratchet("recovery recover")
            ))
            .with_hint("making a new one would replace the recovery key every other device knows")
            .with_hint(if all_keys {
                format!(
                    "if its key was lost (an interrupted `recovery enable`), `{}` \
                     makes a new one (clients then accept only the new key)",
                    crate::ui::hint::ratchet("recovery enable --replace-key")
                )
            } else {
                format!(
                    "if its key was lost, `{}` starts over (destructive)",
                    crate::ui::hint::ratchet("recovery reset")
                )
            }));
        }
        let backup = super::backup::version_here(client).await?;
        if !all_keys || backup.is_none() {
            return Err(CliError::failed(
                "this device does not hold every secret (the three cross-signing keys and the backup key)",
            )
            .with_hint("a new recovery key made here would leave the missing ones out of secret storage")
            .with_hint(format!(
                "`{}` with the current key first, or `{}`",
                crate::ui::hint::ratchet("recovery recover"),
                crate::ui::hint::ratchet("recovery reset")
            )));
        }
        // What `Recovery::reset_key` does, minus its state refresh after the
        // new key is in place (a failure there would lose the key).
        let store = encryption.secret_storage().create_secret_store().await.map_err(|e| {
            CliError::failed("could not replace the recovery key").with_source(e).with_hint(format!(
                "if it failed part-way the old key may no longer be accepted: run `{}` again",
                crate::ui::hint::ratchet(
                    "recovery enable \
                 --replace-key"
                )
            ))
        })?;
        return Ok((Secret::new(store.secret_storage_key()), None));
    }
    if replace {
        return Err(CliError::usage("--replace-key: this account has no secret storage to replace the key of")
            .with_hint(format!("`{}` sets it up", crate::ui::hint::ratchet("recovery enable"))));
    }
    if !all_keys {
        let facts = super::trust::own_facts(client).await?;
        if !facts.identity {
            return Err(CliError::failed("this account has no cross-signing identity to keep in secret storage")
                .with_hint(format!(
                    "`{}` makes one and signs this device; then `{}`",
                    crate::ui::hint::ratchet("identity --create"),
                    crate::ui::hint::ratchet("recovery enable")
                )));
        }
        // Another device holds the keys (the account's first one, say): the
        // way out is verifying this one with it, or setting up secret
        // storage there. Not `recovery recover` (there is no secret storage
        // to recover from) nor `identity --create` (there is an identity).
        let mut e = CliError::failed(
            "this device does not hold the account's cross-signing keys: another device of yours does",
        )
        .with_hint(format!(
            "`{}` on a device that holds them sets up secret storage for the account",
            crate::ui::hint::theirs("recovery enable")
        ));
        for how in crate::e2ee::trust::how_to_verify_this_device(facts) {
            e = e.with_hint(format!("or verify this device: {how}"));
        }
        return Err(e);
    }
    let recovery = encryption.recovery();
    let enable = recovery.enable();
    let mut progress = enable.subscribe_to_progress();
    let result = enable.await;
    // What the progress channel holds by now (never waiting: a failed
    // enable may leave it open).
    let mut seen = None;
    while let Some(Some(update)) = progress.next().now_or_never() {
        if let Ok(EnableProgress::Done { recovery_key }) = &update {
            seen = Some(recovery_key.clone());
        }
    }
    match (result, seen) {
        (Ok(key), _) => Ok((Secret::new(key), None)),
        (Err(e), Some(key)) => {
            Ok((Secret::new(key), Some(format!("recovery was set up, but the SDK failed afterwards: {e}"))))
        }
        (Err(RecoveryError::BackupExistsOnServer), None) => {
            Err(CliError::failed("a key backup exists on the server that this device cannot open").with_hint(format!(
                "`{}` with the account's recovery key connects to it",
                crate::ui::hint::ratchet("recovery recover")
            )))
        }
        (Err(e), None) => Err(CliError::failed("could not set up recovery; no recovery key was made")
            .with_source(e)
            .with_hint(format!("running `{}` again resumes it", crate::ui::hint::ratchet("recovery enable")))),
    }
}

/// Unlocks secret storage with a recovery key: imports the cross-signing
/// private keys and the backup key, signs this device, turns backup on.
///
/// When the server has no key backup at all (deleted from another device),
/// a new one is made and its key stored in secret storage beside the
/// others, so that every device with the recovery key reads it: what
/// `recover_and_fix_backup` does, without its deletion of a backup whose
/// key does not match (that backup may be the only copy of some keys).
/// Returns whether a new backup was made.
///
/// Also: cross-signing keys this device holds that secret storage lacks
/// (an identity made with `identity --create` on an account whose secret
/// storage was set up without one) are stored in it; and a run cut short
/// between making the new backup and storing its key (secret storage then
/// holds the old key: the SDK calls it inconsistent) is finished.
pub(crate) async fn recover(client: &Client, key: &Secret) -> CliResult<bool> {
    use matrix_sdk::ruma::events::secret::request::SecretName;
    let recovery = client.encryption().recovery();
    let reopen = || async {
        client
            .encryption()
            .secret_storage()
            .open_secret_store(key.expose().trim())
            .await
            .map_err(|e| CliError::failed("could not reopen secret storage").with_source(e))
    };
    let export = |store: matrix_sdk::encryption::secret_storage::SecretStore| async move {
        store
            .export_secrets()
            .await
            .map_err(|e| CliError::failed("could not store this device's secrets in secret storage").with_source(e))
    };
    match recovery.recover(key.expose().trim()).await {
        Ok(()) => {
            let keys_here = client.encryption().cross_signing_status().await.is_some_and(|s| s.is_complete());
            let backups = client.encryption().backups();
            if backups.fetch_exists_on_server().await? {
                if keys_here {
                    let store = reopen().await?;
                    let stored = store.get_secret(SecretName::CrossSigningMasterKey).await.ok().flatten();
                    if stored.is_none() {
                        export(store).await?;
                    }
                }
                return Ok(false);
            }
            // A version resumed from the store that the server no longer has.
            super::backup::forget(client).await?;
            recovery
                .enable_backup()
                .await
                .map_err(|e| CliError::failed("could not make a new key backup").with_source(e))?;
            export(reopen().await?).await?;
            Ok(true)
        }
        Err(RecoveryError::SecretStorage(SecretStorageError::InconsistentBackupDecryptionKey)) => {
            // The cross-signing keys are imported by now. If this device
            // backs up to the server's current backup (it made it, in a
            // `recover` cut short before storing its key), storing the key
            // finishes that run.
            let here = super::backup::version_here(client).await?;
            let server = super::backup::on_server(client).await?.map(|(v, _)| v);
            if here.is_some() && here == server {
                export(reopen().await?).await?;
                return Ok(false);
            }
            Err(CliError::failed("the backup key in secret storage does not open the server's key backup")
                .with_hint("another device replaced the backup without storing its key; on that device, store it (in Element: Settings, Encryption)")
                .with_hint("the cross-signing keys were imported: this device is verified"))
        }
        Err(RecoveryError::SecretStorage(SecretStorageError::SecretStorageKey(e))) => {
            Err(CliError::auth("the recovery key is wrong; nothing was changed")
                .with_source(e)
                .with_hint("it is the key Element showed when you set up recovery (48 characters in groups of 4)"))
        }
        Err(RecoveryError::SecretStorage(SecretStorageError::MissingKeyInfo { .. })) => {
            Err(CliError::failed("this account has no secret storage to recover from")
                .with_hint(format!("`{}` sets it up", crate::ui::hint::ratchet("recovery enable"))))
        }
        Err(e) => Err(CliError::failed("could not recover").with_source(e)),
    }
}

/// Checks the account password with the server, changing nothing: a
/// user-interactive-auth round trip on `POST /delete_devices` with an empty
/// list (the server authorises it, then deletes no device). What
/// `reset_identity` needs first, as matrix-sdk destroys the backup and
/// secret storage before the server ever sees the password.
pub(crate) async fn check_password(client: &Client, password: &Secret) -> CliResult<()> {
    let own = client.user_id().ok_or_else(|| CliError::internal("no user id"))?.to_owned();
    let session = match client.delete_devices(&[], None).await {
        // The server asked for no authorisation (a user-interactive auth
        // done recently counts for a while, if the server is configured
        // so): the reset's own upload will not ask either, so no wrong
        // password can fail it half-way.
        Ok(_) => return Ok(()),
        Err(e) => match e.as_uiaa_response() {
            Some(info) => info.session.clone(),
            None if matches!(
                e.client_api_error_kind(),
                Some(
                    matrix_sdk::ruma::api::error::ErrorKind::Unrecognized
                        | matrix_sdk::ruma::api::error::ErrorKind::NotFound
                )
            ) =>
            {
                return Err(CliError::failed("the server does not take a password for this (OAuth account)")
                    .with_hint(format!(
                        "reset the identity in Element, then `{}`",
                        crate::ui::hint::ratchet("recovery recover")
                    )));
            }
            None => return Err(e.into()),
        },
    };
    let mut auth = uiaa::Password::new(uiaa::UserIdentifier::from(own), password.expose().to_owned());
    auth.session = session;
    match client.delete_devices(&[], Some(uiaa::AuthData::Password(auth))).await {
        Ok(_) => Ok(()),
        Err(e) if e.as_uiaa_response().is_some() => Err(CliError::auth("the password is wrong; nothing was changed")
            .with_source(e)
            .with_hint("it is this account's login password (--password-stdin, RATCHET_PASSWORD or the prompt)")),
        Err(e) => Err(e.into()),
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
                    .with_hint(format!(
                        "reset the identity in Element, then `{}`",
                        crate::ui::hint::ratchet("recovery recover")
                    )));
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

/// [`reset_identity`] on a server whose authentication is delegated to an
/// OAuth 2.0 service (next-generation auth): there is no password, and the
/// server answers the upload with the address where its owner approves a
/// reset (MSC4312). `approve` is told that address (to print it, and
/// perhaps open it); the SDK then tries the upload again twice a second,
/// for two minutes, until the approval is given.
///
/// The order is matrix-sdk's (and Element's): the backup and secret storage
/// are deleted before the server is asked, as a server says only then
/// whether it wants an approval, and a probe of its own would need a
/// changed key. An approval never given leaves them deleted and the
/// identity as it was; `recovery reset` run again approves and finishes.
pub(crate) async fn reset_identity_oauth(client: &Client, approve: impl FnOnce(&str) -> CliResult) -> CliResult<()> {
    let Some(handle) = start_reset(client).await? else { return Ok(()) };
    match handle.auth_type() {
        matrix_sdk::encryption::CrossSigningResetAuthType::OAuth(info) => approve(info.approval_url.as_str())?,
        matrix_sdk::encryption::CrossSigningResetAuthType::Uiaa(_) => {
            return Err(CliError::failed(
                "the server asks for a password for the reset, but this login has none (OAuth)",
            )
            .with_hint("reset the identity in Element, then `ratchet recovery recover`"));
        }
    }
    handle.reset(None).await.map_err(|e| {
        CliError::failed("the reset was not approved within two minutes (or the server refused it)")
            .with_source(e)
            .with_hint(format!(
                "approve it at the address above, then run `{}` again",
                crate::ui::hint::ratchet("recovery reset --yes")
            ))
    })
}

/// How the server authorises a change of this account's keys
/// (user-interactive auth), asked with a request that changes nothing
/// (`POST /delete_devices` with an empty list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReAuth {
    /// It asks nothing now.
    None,
    /// The account password (`m.login.password`).
    Password,
    /// Single sign-on in a browser only (`m.login.sso`: an account made by
    /// single sign-on has no password).
    Sso,
}

pub(crate) async fn reauth_kind(client: &Client) -> CliResult<ReAuth> {
    match client.delete_devices(&[], None).await {
        Ok(_) => Ok(ReAuth::None),
        Err(e) => match e.as_uiaa_response() {
            Some(info) => {
                let offers = |t: uiaa::AuthType| info.flows.iter().any(|f| f.stages.len() == 1 && f.stages[0] == t);
                if offers(uiaa::AuthType::Password) || !offers(uiaa::AuthType::Sso) {
                    Ok(ReAuth::Password)
                } else {
                    Ok(ReAuth::Sso)
                }
            }
            // A server without user-interactive auth here: the password
            // path says what it can.
            None => Ok(ReAuth::Password),
        },
    }
}

/// [`reset_identity`] for an account that authorises with single sign-on
/// only (Element's way for such accounts): the server's fallback page for
/// `m.login.sso` (`/auth/m.login.sso/fallback/web?session=…`) is given to
/// `approve` (to print, and perhaps open); the user signs in there with the
/// identity provider, and the SDK tries the upload again twice a second,
/// for two minutes, with the session's acknowledgement, until the stage is
/// done. The order is the SDK's, as for [`reset_identity_oauth`].
pub(crate) async fn reset_identity_sso(client: &Client, approve: impl FnOnce(&str) -> CliResult) -> CliResult<()> {
    let Some(handle) = start_reset(client).await? else { return Ok(()) };
    let session = match handle.auth_type() {
        matrix_sdk::encryption::CrossSigningResetAuthType::Uiaa(info) => info.session.clone(),
        matrix_sdk::encryption::CrossSigningResetAuthType::OAuth(_) => None,
    }
    .ok_or_else(|| CliError::failed("the server gave no user-interactive auth session for the reset"))?;
    let mut url = super::client_api_url(client, "_matrix/client/v3/auth/m.login.sso/fallback/web")
        .map_err(|e| CliError::internal("the single sign-on page's address").with_source(e))?;
    url.query_pairs_mut().append_pair("session", &session);
    approve(url.as_str())?;
    let ack = uiaa::FallbackAcknowledgement::new(session);
    handle.reset(Some(uiaa::AuthData::FallbackAcknowledgement(ack))).await.map_err(|e| {
        CliError::failed("the single sign-on was not finished within two minutes (or the server refused the reset)")
            .with_source(e)
            .with_hint(format!(
                "run `{}` again, and sign in at the address it prints",
                crate::ui::hint::ratchet("recovery reset --yes")
            ))
    })
}

/// matrix-sdk's identity reset up to the server's answer: deletes the
/// backup and secret storage, makes new cross-signing keys and tries the
/// upload; a handle when the server asks for an authorisation.
async fn start_reset(client: &Client) -> CliResult<Option<matrix_sdk::encryption::recovery::IdentityResetHandle>> {
    client
        .encryption()
        .recovery()
        .reset_identity()
        .await
        .map_err(|e| CliError::failed("could not reset the identity").with_source(e))
}

/// Whether the account has secret storage (a request).
pub(crate) async fn storage_exists(client: &Client) -> CliResult<bool> {
    Ok(client.encryption().secret_storage().is_enabled().await?)
}
