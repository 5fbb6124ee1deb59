//! `CommandContext`: what every command gets. It owns the resolved settings,
//! the output printer, and — built lazily, on first use — the profile lock and
//! the restored Matrix client, so commands that need neither (`--help`,
//! `logout` of a missing profile) never touch the store or the network.
//!
//! The client is built in exactly one place, [`CommandContext::build_client`].

use std::path::Path;

use matrix_sdk::config::RequestConfig;
use matrix_sdk::store::RoomLoadSettings;
use matrix_sdk::{Client, SqliteStoreConfig};

use crate::error::{store_mismatch, CliError, CliResult};
use crate::lock::{self, ProfileLock};
use crate::output::Output;
use crate::session::{self, SessionError, SessionFile, StoreSecret, StoreSecretSource};
use crate::settings::Settings;

pub(crate) struct CommandContext {
    pub(crate) settings: Settings,
    pub(crate) out: Output,
    lock: Option<ProfileLock>,
    client: Option<(Client, SessionFile)>,
}

impl CommandContext {
    pub(crate) fn new(settings: Settings, out: Output) -> Self {
        CommandContext { settings, out, lock: None, client: None }
    }

    /// Closes the client and the store, keeping only the printer.
    pub(crate) fn into_output(self) -> Output {
        self.out
    }

    /// Takes the profile lock (once); every command that opens the store or
    /// changes the profile's files holds it until it exits.
    pub(crate) async fn lock_profile(&mut self) -> CliResult<()> {
        if self.lock.is_none() {
            session::ensure_dir(&self.settings.paths.dir).map_err(session_error)?;
            let lock = lock::acquire(&self.settings.paths.lock_file, self.settings.lock_timeout, &self.out).await?;
            self.lock = Some(lock);
        }
        Ok(())
    }

    /// The restored client of this profile, built on first use.
    pub(crate) async fn client(&mut self) -> CliResult<Client> {
        if let Some((client, _)) = &self.client {
            return Ok(client.clone());
        }
        let session = self.load_session()?;
        self.lock_profile().await?;
        let secret = self.store_secret(&session)?;
        if !self.settings.paths.crypto_db().exists() {
            // Restoring into an empty store would create a fresh Olm account
            // under the old device id: other devices would see its identity
            // key change and refuse it. Refuse instead.
            return Err(CliError::auth(format!(
                "the encrypted store for this session is missing ({})",
                self.settings.paths.store_dir.display()
            ))
            .with_hint("without it this device's Olm account is gone; log in again to make a new device")
            .with_hint("run `ratchet logout` then `ratchet login`"));
        }
        let client = self.build_client(&session.homeserver, &secret).await?;
        client
            .matrix_auth()
            .restore_session(session.matrix_session(), RoomLoadSettings::default())
            .await
            .map_err(CliError::from)?;
        let key = client.encryption().curve25519_key().await.map(|k| k.to_base64());
        if key.as_deref() != Some(session.identity_key.as_str()) {
            return Err(store_mismatch());
        }
        tracing::debug!(user_id = %session.user_id, device_id = %session.device_id, "session restored");
        self.client = Some((client.clone(), session));
        Ok(client)
    }

    /// Closes the client (keeping the profile lock) and returns the store's
    /// secret, for work on the store files that must not race the SDK's
    /// caches. The SDK's start-up task is awaited first (bounded) so it is
    /// not cut off mid-write.
    pub(crate) async fn close_client(&mut self) -> CliResult<StoreSecret> {
        let (client, session) = self.client.take().ok_or_else(|| CliError::internal("no client to close"))?;
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            client.encryption().wait_for_e2ee_initialization_tasks(),
        )
        .await;
        drop(client);
        self.store_secret(&session)
    }

    /// The saved session (after `client()` or `load_session()`).
    pub(crate) fn session(&self) -> Option<&SessionFile> {
        self.client.as_ref().map(|(_, s)| s)
    }

    pub(crate) fn load_session(&self) -> CliResult<SessionFile> {
        let out = &self.out;
        session::load(&self.settings.paths, &mut |w| out.warn(w)).map_err(session_error)
    }

    fn store_secret(&self, session: &SessionFile) -> CliResult<StoreSecret> {
        let from_env = self.settings.store_passphrase_env.as_ref().map(|s| StoreSecret::Passphrase(s.0.clone()));
        match session.store_secret {
            StoreSecretSource::Env => from_env.ok_or_else(|| {
                CliError::usage(
                    "this profile's store passphrase is not on disk and RATCHET_STORE_PASSPHRASE is not set",
                )
                .with_hint("set RATCHET_STORE_PASSPHRASE to the passphrase used at login")
            }),
            StoreSecretSource::File => {
                let out = &self.out;
                session::read_key_file(&self.settings.paths, &mut |w| out.warn(w))
                    .map_err(session_error)?
                    .map(|key| StoreSecret::Key(Box::new(key)))
                    .ok_or_else(|| {
                        CliError::auth(format!(
                            "the store key file {} is missing",
                            self.settings.paths.key_file.display()
                        ))
                        .with_hint("without it the encrypted store cannot be opened; log in again")
                    })
            }
        }
    }

    /// The one place a `Client` is built: homeserver, encrypted SQLite store,
    /// bounded request timeouts and retries.
    pub(crate) async fn build_client(&self, homeserver: &str, secret: &StoreSecret) -> CliResult<Client> {
        build_client(homeserver, &self.settings.paths.store_dir, secret, &self.settings).await
    }
}

async fn build_client(homeserver: &str, store: &Path, secret: &StoreSecret, settings: &Settings) -> CliResult<Client> {
    let store_config = match secret {
        StoreSecret::Key(key) => SqliteStoreConfig::new(store).key(Some(key)),
        StoreSecret::Passphrase(p) => SqliteStoreConfig::new(store).passphrase(Some(p)),
    };
    // A retry limit bounds how long an unreachable server can stall us; the
    // SDK's default is to retry forever.
    let requests = RequestConfig::new().timeout(settings.request_timeout).retry_limit(2);
    Ok(Client::builder()
        .homeserver_url(homeserver)
        .sqlite_store_with_config_and_cache_path(store_config, None::<&Path>)
        .request_config(requests)
        .with_room_key_recipient_strategy(crate::crypto::recipient_strategy())
        .build()
        .await?)
}

pub(crate) fn session_error(err: SessionError) -> CliError {
    match err {
        SessionError::Missing(dir) => CliError::auth(format!("not logged in (no session in {})", dir.display()))
            .with_hint("run `ratchet login --homeserver URL --user USER` first"),
        SessionError::Corrupt { .. } => CliError::auth(err.to_string())
            .with_hint("run `ratchet logout` and `ratchet login` to start this profile afresh"),
        SessionError::Io { .. } => CliError::failed(err.to_string()),
    }
}
