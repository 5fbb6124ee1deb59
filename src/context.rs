//! `CommandContext`: what every command gets. It owns the resolved settings,
//! the output printer, and — built lazily, on first use — the profile lock and
//! the restored Matrix client, so commands that need neither (`--help`,
//! `logout` of a missing profile) never touch the store or the network.
//!
//! The client is built in exactly one place, [`CommandContext::build_client`].

use std::path::Path;

use matrix_sdk::config::{RequestConfig, StoreConfig};
use matrix_sdk::cross_process_lock::CrossProcessLockConfig;
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
        let auth = client.matrix_auth();
        let restore = auth.restore_session(session.matrix_session(), RoomLoadSettings::default());
        SpawnParked::new(restore).await.map_err(CliError::from)?;
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
    /// caches. (The SDK's start-up task never ran: see [`SpawnParked`].)
    pub(crate) async fn close_client(&mut self) -> CliResult<StoreSecret> {
        let (client, session) = self.client.take().ok_or_else(|| CliError::internal("no client to close"))?;
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
    }
    // A one-shot command does a handful of store operations at a time; the
    // SDK's default pool of 8 connections per database opens several, each
    // costing file opens and schema reads at start-up.
    .pool_max_size(2);
    // Only the state and crypto stores are kept on disk. ratchet reads
    // history with /messages, never from the SDK's event cache, and has no
    // media: those two stores live in memory, which saves opening (and
    // checkpointing) two more SQLite databases on every run. The profile
    // lock already guarantees one process per store, so the SDK's
    // cross-process lease locks (writes to the store) are not needed.
    let (state, crypto) = tokio::try_join!(
        matrix_sdk::SqliteStateStore::open_with_config(&store_config),
        matrix_sdk::SqliteCryptoStore::open_with_config(&store_config),
    )
    .map_err(|e| CliError::from(matrix_sdk::ClientBuildError::SqliteStore(e)))?;
    let stores = StoreConfig::new(CrossProcessLockConfig::SingleProcess).state_store(state).crypto_store(crypto);
    // A retry limit bounds how long an unreachable server can stall us; the
    // SDK's default is to retry forever.
    let requests = RequestConfig::new().timeout(settings.request_timeout).retry_limit(2);
    let mut builder = Client::builder()
        .homeserver_url(homeserver)
        .store_config(stores)
        .request_config(requests)
        .with_room_key_recipient_strategy(crate::crypto::recipient_strategy())
        // History sharing on invite (MSC4268) needs cross-signing, which
        // ratchet does not set up: the SDK would only warn on every invite.
        .with_enable_share_history_on_invite(false);
    if homeserver.starts_with("http://") {
        // Plain HTTP uses no certificates; loading the platform's roots
        // (hundreds of files) would be the slowest part of start-up.
        builder = builder.disable_built_in_root_certificates();
    }
    Ok(builder.build().await?)
}

/// Runs a future with every task it spawns parked on a runtime that is
/// never driven, so those tasks never run.
///
/// Used for session restore only: matrix-sdk then spawns its key-backup and
/// recovery set-up task, which makes two `GET
/// .../account_data/m.secret_storage.default_key` requests on every start.
/// ratchet uses neither server-side key backup nor secret storage (keys move
/// with `keys export`/`keys import`), and those two requests, concurrent
/// with the sync, made a one-shot send's sync about three times slower on
/// Synapse (see BENCHMARKS.md). Blocking store calls still work (they use
/// the parked runtime's blocking threads, which need no driving); anything
/// needing its timer or I/O driver fails loudly, as it has neither.
struct SpawnParked<F> {
    inner: std::pin::Pin<Box<F>>,
}

impl<F: std::future::Future> SpawnParked<F> {
    fn new(inner: F) -> Self {
        SpawnParked { inner: Box::pin(inner) }
    }
}

fn parked_runtime() -> &'static tokio::runtime::Runtime {
    static PARKED: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    PARKED.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread().build().expect("a runtime without drivers always builds")
    })
}

impl<F: std::future::Future> std::future::Future for SpawnParked<F> {
    type Output = F::Output;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
        // Entered for this poll only, so no guard is held across an await.
        let _parked = parked_runtime().enter();
        self.inner.as_mut().poll(cx)
    }
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
