//! `CommandContext`: what every command gets. It owns the resolved settings,
//! the output printer, the profile (its files and, once taken, its lock) and
//! — built lazily, on first use — the restored Matrix client, so commands
//! that need none of it (`--help`, `logout` of a missing profile) never touch
//! the store or the network.

use matrix_sdk::Client;

use crate::e2ee::trust::Isolation;
use crate::error::{store_mismatch, CliError, CliResult};
use crate::profile::megolm_ledger::MegolmLedger;
use crate::profile::olm_ledger::OlmLedger;
use crate::profile::session::{SessionFile, StoreSecret, StoreSecretSource};
use crate::profile::Ledger;
use crate::profile::Profile;
use crate::settings::Settings;
use crate::ui::output::Output;

/// At most this many syncs in a row for one command's catch-up on queued
/// to-device events (a bound, in case a server keeps sending full pages).
pub(crate) const MAX_TO_DEVICE_PAGES: usize = 50;

pub(crate) struct CommandContext {
    pub(crate) settings: Settings,
    pub(crate) out: Output,
    pub(crate) profile: Profile,
    client: Option<(Client, SessionFile, crate::sdk::client::Parked)>,
    /// The stores and HTTP client the client was built on, kept for the
    /// next one when it is rebuilt ([`Self::reopen_client`]).
    opened: Option<crate::sdk::client::Opened>,
    /// `login` is finishing an interrupted login (no warning about it).
    pub(crate) finishing_login: bool,
    /// This command turned key backup on for the account (`m.key_backup`,
    /// `recovery enable`): the store's copy of the setting is older.
    pub(crate) backup_turned_on: bool,
}

impl CommandContext {
    pub(crate) fn new(settings: Settings, out: Output) -> Self {
        let profile = Profile::new(settings.profile_dir.clone());
        CommandContext {
            settings,
            out,
            profile,
            client: None,
            opened: None,
            finishing_login: false,
            backup_turned_on: false,
        }
    }

    /// Takes the profile lock (once); every command that opens the store or
    /// changes the profile's files holds it until it exits.
    pub(crate) async fn lock_profile(&mut self) -> CliResult<()> {
        self.profile.lock(self.settings.lock_timeout, &self.out).await
    }

    /// The restored client of this profile, built on first use.
    pub(crate) async fn client(&mut self) -> CliResult<Client> {
        if let Some((client, _, _)) = &self.client {
            return Ok(client.clone());
        }
        let session = self.load_session()?;
        if session.setup_pending && !self.finishing_login {
            self.out.warn(format!(
                "this device's login was interrupted before its set-up finished (device keys, cross-signing): \
                 run the same `{}` again to finish it",
                crate::ui::hint::ratchet("login")
            ));
        }
        self.lock_profile().await?;
        let secret = self.store_secret(&session)?;
        let mut session = session;
        if let Err(why) = session.unseal(&secret) {
            if matches!(why, crate::profile::session::Unseal::WrongSecret)
                && session.store_secret == StoreSecretSource::File
            {
                // A store.key that does not open the tokens: damaged (then
                // it does not open the store either, said as such), or
                // another device's, with its store.
                let isolation = self.settings.isolation.or(session.isolation).unwrap_or_default();
                self.build_client(&session.homeserver, &secret, isolation, session.oauth.is_some(), None).await?;
                return Err(store_mismatch());
            }
            return Err(self.unseal_error(&session, why));
        }
        if session.tokens_in_clear() {
            // An older ratchet kept them in clear: sealed now (issue 31).
            self.profile.save_session(&session, &secret)?;
            tracing::debug!("sealed the session's tokens, which an older ratchet kept in clear");
        }
        let paths = self.profile.paths();
        if !paths.crypto_db().exists() {
            // Restoring into an empty store would create a fresh Olm account
            // under the old device id: other devices would see its identity
            // key change and refuse it. Refuse instead.
            return Err(CliError::auth(format!(
                "the encrypted store for this session is missing ({})",
                paths.store_dir.display()
            ))
            .with_hint("without it this device's Olm account is gone; log in again to make a new device")
            .with_hint(format!(
                "run `{}` then `{}`",
                crate::ui::hint::ratchet("logout"),
                crate::ui::hint::ratchet("login")
            )));
        }
        let isolation = self.settings.isolation.or(session.isolation).unwrap_or_default();
        // A rebuild in this process reuses the stores it opened, when they
        // are still this session's.
        let reuse = self.opened.take().filter(|o| o.still_at(&paths.crypto_db()));
        let reusing = reuse.is_some();
        let (client, opened) =
            self.build_client(&session.homeserver, &secret, isolation, session.oauth.is_some(), reuse).await?;
        let (key, parked) = match &session.oauth {
            Some(oauth) => {
                let restored =
                    crate::sdk::client::restore_oauth(&client, session.matrix_session(), &oauth.client_id).await?;
                crate::sdk::client::keep_refreshed_tokens(&client, self.profile.token_saver(secret.clone()))?;
                restored
            }
            None => crate::sdk::client::restore(&client, session.matrix_session()).await?,
        };
        if key.as_deref() != Some(session.identity_key.as_str()) {
            return Err(store_mismatch());
        }
        if reusing {
            tracing::debug!("client rebuilt on the open stores");
        } else {
            tracing::debug!("client built on newly opened stores");
        }
        self.opened = Some(opened);
        // ratchet's own state, once the store proved to be this device's
        // and its secret right: a damaged database stops every command that
        // would run the rules it holds (exit 1, naming the file).
        let state = self.open_state(&secret, crate::profile::state::Opening::Existing)?;
        // Backups, resumed from the store (no request): what the SDK's
        // parked start-up task would have done, except for a version the
        // server said is gone.
        crate::sdk::backup::resume(&client, state.backup_gone()?.as_deref()).await?;
        tracing::debug!(user_id = %session.user_id, device_id = %session.device_id, "session restored");
        self.client = Some((client.clone(), session, parked));
        Ok(client)
    }

    /// Opens the profile's state database with the store's secret (see
    /// `profile::state`); warnings go to stderr.
    pub(crate) fn open_state(
        &mut self,
        secret: &StoreSecret,
        opening: crate::profile::state::Opening,
    ) -> CliResult<std::sync::Arc<crate::profile::state::StateDb>> {
        let out = &self.out;
        self.profile.open_state(secret, opening, &mut |w| out.warn(w))
    }

    /// The state database (opened with the client).
    pub(crate) fn state(&self) -> CliResult<&crate::profile::state::StateDb> {
        self.profile.state()
    }

    /// Drops the client and restores a new one from the store (the lock is
    /// held): after another process had the profile (`sync --follow`), what
    /// the old one kept in memory — Olm sessions, the account, the sync
    /// position — may be behind the store.
    pub(crate) async fn reopen_client(&mut self) -> CliResult<Client> {
        self.client = None;
        self.client().await
    }

    /// Gives up this context's client (keeping the profile lock) and
    /// returns the store's secret, for work on the store files.
    ///
    /// The `Client` is a handle shared with the tasks the SDK spawned; with
    /// those parked at restore (see `sdk::client::SpawnParked`) this was the
    /// last handle in use, but the SDK's caches are not flushed or closed by
    /// dropping it. So work on the store files happens only in a command
    /// that wrote nothing through the client since it was restored (the
    /// `debug` commands read, then call this).
    pub(crate) async fn close_client(&mut self) -> CliResult<StoreSecret> {
        let (client, session, parked) = self.client.take().ok_or_else(|| CliError::internal("no client to close"))?;
        // The stores' connections close with their last handle.
        drop((client, parked, self.opened.take()));
        self.store_secret(&session)
    }

    /// After a command: every room key this device got or made is
    /// uploaded to the backup before the process exits (nothing exists only
    /// here once ratchet returned 0), also when only part of the work was
    /// done (exit 3). No request when nothing is pending or there is no
    /// backup. A command that did its work but whose keys could not be
    /// uploaded exits 3 (partial), never 1: what it did is done (a `send`
    /// delivered), and a script must not redo it. A backup gone from the
    /// server is a warning (see [`Self::upload_backup`]).
    pub(crate) async fn finish(&mut self, result: CliResult<()>) -> CliResult<()> {
        if crate::sdk::client::refreshed_tokens_unsaved() {
            self.out.warn(format!(
                "the OAuth 2.0 access token was refreshed, but the new tokens could not be written to {}: the next \
                 command may be refused, and need `{}` again",
                self.profile.paths().session_file.display(),
                crate::ui::hint::ratchet("login --oauth")
            ));
        }
        let partial = result.as_ref().is_err_and(|e| e.kind == crate::error::ErrorKind::Partial);
        if result.is_err() && !partial {
            return result;
        }
        // A follower that stopped between turns no longer holds the profile
        // (and uploaded at each turn): the store is not its to write.
        if !self.profile.is_locked() {
            return result;
        }
        if let Some((client, _, _)) = &self.client {
            let client = client.clone();
            // A backup key another device of ours sent (after a
            // verification) is taken up before the upload.
            match crate::sdk::backup::adopt_received_key(&client).await {
                Ok(Some(version)) => {
                    if let Err(e) = self.state().and_then(|db| db.set_backup_gone(None)) {
                        tracing::debug!(error = %e.message, "could not clear the note of a gone backup");
                    }
                    self.out.status(format!("Backup key received: this device now backs up to version {version}."));
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e.message, "could not take up a received backup key"),
            }
            match self.upload_backup(&client).await {
                Ok(n) if n > 0 => tracing::debug!(uploaded = n, "room keys uploaded to the backup"),
                Ok(_) => {}
                Err(e) if result.is_ok() => {
                    let mut partial = CliError::new(
                        crate::error::ErrorKind::Partial,
                        format!("done, but this device's new room keys are not in the key backup yet: {}", e.message),
                    );
                    for hint in e.hints {
                        partial = partial.with_hint(hint);
                    }
                    return Err(partial);
                }
                Err(e) => self.out.warn(format!("room keys not uploaded to the key backup: {}", e.message)),
            }
        }
        result
    }

    /// Uploads the room keys waiting for the backup; returns how many went
    /// up. A backup the server no longer has (deleted or replaced by
    /// another device, Element's "delete backup" say) is not an error: backup is
    /// turned off here, the version remembered so that no later command
    /// turns it back on, and one warning names the fix.
    pub(crate) async fn upload_backup(&mut self, client: &Client) -> CliResult<usize> {
        use crate::sdk::backup::Upload;
        match crate::sdk::backup::upload_pending(client, !self.backup_turned_on).await? {
            Upload::Sent(n) => Ok(n),
            Upload::Gone { version, current, sent } => {
                // What is there now: asked again (best effort). Not the
                // error's `current_version`, which Synapse fills with the
                // version asked for; and a 404 may also mean a new backup
                // replaced it (Element's reset deletes the old version first).
                let _ = current;
                let now = crate::sdk::backup::on_server(client).await.ok().flatten().map(|(v, _)| v);
                self.backup_gone(&version, now.as_deref())?;
                Ok(sent)
            }
        }
    }

    /// Whether the backup this device uploads to is still the server's
    /// (for commands that ask the server about it anyway: `recovery
    /// status`, `backup status`, a one-shot `sync`). One that is gone
    /// (deleted or replaced by another device) is handled as an upload
    /// would find it: backup off here, remembered, one warning with the fix.
    pub(crate) async fn check_backup_still_there(&mut self, client: &Client) -> CliResult<()> {
        let Some(here) = crate::sdk::backup::version_here(client).await? else { return Ok(()) };
        let now = match crate::sdk::backup::on_server(client).await {
            Ok(now) => now.map(|(v, _)| v),
            Err(e) => {
                tracing::debug!(error = %e.message, "could not ask the server for its backup");
                return Ok(());
            }
        };
        if now.as_deref() == Some(here.as_str()) {
            return Ok(());
        }
        crate::sdk::backup::forget(client).await?;
        self.backup_gone(&here, now.as_deref())
    }

    /// Backup version VERSION is gone from the server (CURRENT is what is
    /// there now): remembered, so that no later command turns it back on,
    /// and said once with the fix.
    fn backup_gone(&mut self, version: &str, current: Option<&str>) -> CliResult<()> {
        self.state()?.set_backup_gone(Some(version))?;
        let (what, fix) = match current {
            Some(new) => (
                format!("was replaced by version {new} (made by another device)"),
                format!(
                    "`{}` with the account's recovery key connects this device to version {new}",
                    crate::ui::hint::ratchet("recovery recover")
                ),
            ),
            None => (
                "was deleted from the server (by another device), and there is no backup now".to_owned(),
                format!(
                    "`{}` with the account's recovery key makes a new backup (`{}` on an account without a \
                     recovery key)",
                    crate::ui::hint::ratchet("recovery recover"),
                    crate::ui::hint::ratchet("recovery enable")
                ),
            ),
        };
        self.out.warn(format!(
            "key backup version {version} {what}: backup is now off on this device, and its new room keys are kept \
             only here; {fix}"
        ));
        Ok(())
    }

    /// Drops this context's client without closing anything (after a
    /// logout, its token is dead).
    pub(crate) fn forget_client(&mut self) {
        self.client = None;
    }

    /// One incremental sync for a command other than `sync`: what it brings
    /// is kept for the next `sync` (the profile's state database), so no event is
    /// lost because another command moved the sync position. An Olm message
    /// that could not be decrypted is kept too, and the next `sync` recovers
    /// from it (R9–R11, R13); this command does not, so that `doctor` and
    /// friends see a wedge as it is.
    ///
    /// A server hands out queued to-device events a page at a time (Synapse:
    /// 100 per response), so while a response brings any, another sync
    /// follows: otherwise the room keys behind the first page would wait for
    /// the next command, and this one would show their messages as
    /// undecryptable (complement-crypto's
    /// TestToDeviceMessagesAreProcessedInOrder; examples/qa/many-room-keys.sh).
    /// One watcher spans the pages, so an event of an early page whose key
    /// came on a later one is kept as decrypted late, not as undecryptable.
    pub(crate) async fn sync(&mut self, client: &Client) -> CliResult<matrix_sdk::sync::SyncResponse> {
        let mut watcher = crate::stream::Watcher::default();
        let mut pages = 0;
        loop {
            let response = crate::sdk::sync_now(client).await?;
            self.keeper().keep_sync(client, &response, &mut watcher).await?;
            pages += 1;
            if !crate::sdk::more_to_device(&response) || pages >= MAX_TO_DEVICE_PAGES {
                return Ok(response);
            }
            tracing::debug!(pages, "to-device events came: syncing again for any left queued");
        }
    }

    /// After room keys came by another way than a sync (a backup restore,
    /// a key import, recovery): the undecryptable events kept for `sync`
    /// are retried now, so that the next `sync` delivers them decrypted
    /// (each naming the `utd` it replaces). Best effort: a failure leaves
    /// them for the next command that syncs.
    pub(crate) async fn retry_undecryptable(&self, client: &Client) {
        let Ok(db) = self.state() else { return };
        match crate::stream::retry_utds(client, &self.out, db, false).await {
            Ok(0) => {}
            Ok(n) => self.out.status(format!(
                "{n} event(s) kept undecryptable decrypt now; the next `{}` delivers them",
                crate::ui::hint::ratchet("sync")
            )),
            Err(e) => tracing::debug!(error = %e.message, "retrying undecryptable events failed"),
        }
    }

    /// What keeps a sync's events for the next `sync`, for loops that sync
    /// by themselves.
    pub(crate) fn keeper(&self) -> Keeper<'_> {
        Keeper { out: &self.out, profile: &self.profile }
    }

    /// The account password: `--password-stdin`, `RATCHET_PASSWORD`, or a
    /// prompt on a terminal (never an argument).
    pub(crate) fn read_password(&self, from_stdin: bool, user: &str) -> CliResult<crate::profile::session::Secret> {
        crate::ui::prompt::read_secret(crate::ui::prompt::SecretSources {
            from_stdin,
            stdin_flag: "--password-stdin",
            what: "password",
            env: (self.settings.password_env.as_ref(), "RATCHET_PASSWORD"),
            prompt: &format!("Password for {user}: "),
            no_input: self.settings.no_input,
            echo: false,
        })
    }

    /// The Megolm ledger, failing closed when damaged (see `Profile`).
    pub(crate) fn megolm_ledger(&self) -> CliResult<Ledger<MegolmLedger>> {
        let out = &self.out;
        self.profile.megolm_ledger(crate::clock::now_ms(), &mut |w| out.warn(w))
    }

    /// The Olm ledger, failing closed when damaged (see `Profile`).
    pub(crate) fn olm_ledger(&self) -> CliResult<Ledger<OlmLedger>> {
        let out = &self.out;
        self.profile.olm_ledger(crate::clock::now_ms(), &mut |w| out.warn(w))
    }

    /// The saved session (after `client()`).
    pub(crate) fn session(&self) -> Option<&SessionFile> {
        self.client.as_ref().map(|(_, s, _)| s)
    }

    /// The session with its tokens opened by the store secret (no lock).
    pub(crate) fn unsealed_session(&self) -> CliResult<SessionFile> {
        let session = self.load_session()?;
        let secret = self.store_secret(&session)?;
        self.unseal(session, &secret)
    }

    /// Opens the session's sealed tokens with the store secret.
    fn unseal(&self, mut session: SessionFile, secret: &StoreSecret) -> CliResult<SessionFile> {
        match session.unseal(secret) {
            Ok(()) => Ok(session),
            Err(why) => Err(self.unseal_error(&session, why)),
        }
    }

    fn unseal_error(&self, session: &SessionFile, why: crate::profile::session::Unseal) -> CliError {
        match why {
            crate::profile::session::Unseal::WrongSecret => match session.store_secret {
                StoreSecretSource::Env => CliError::auth(
                    "the store passphrase (RATCHET_STORE_PASSPHRASE) is not the one this profile was logged in with",
                )
                .with_hint("give the passphrase used at login; without it, `logout` and `login` make a new device"),
                StoreSecretSource::File => CliError::auth(
                    "the profile's store.key file does not open its session: it is damaged, or another device's",
                )
                .with_hint("without the key used at login, `logout` and `login` make a new device"),
            },
            crate::profile::session::Unseal::Damaged(why) => CliError::failed(format!(
                "the session's tokens in {} are damaged ({why})",
                self.profile.paths().session_file.display()
            ))
            .with_hint(format!(
                "run `{}` then `{}` to make a new device",
                crate::ui::hint::ratchet("logout --local"),
                crate::ui::hint::ratchet("login")
            )),
        }
    }

    pub(crate) fn load_session(&self) -> CliResult<SessionFile> {
        let out = &self.out;
        Ok(self.profile.load_session(&mut |w| out.warn(w))?)
    }

    pub(crate) fn store_secret(&self, session: &SessionFile) -> CliResult<StoreSecret> {
        match session.store_secret {
            StoreSecretSource::Env => {
                self.settings.store_passphrase_env.clone().map(StoreSecret::Passphrase).ok_or_else(|| {
                    CliError::auth(
                        "this profile's store passphrase is not on disk and RATCHET_STORE_PASSPHRASE is not set",
                    )
                    .with_hint("set RATCHET_STORE_PASSPHRASE to the passphrase used at login")
                })
            }
            StoreSecretSource::File => {
                let out = &self.out;
                self.profile
                    .read_store_key(&mut |w| out.warn(w))?
                    .map(|key| StoreSecret::Key(Box::new(zeroize::Zeroizing::new(key))))
                    .ok_or_else(|| {
                        CliError::auth(format!(
                            "the store key file {} is missing",
                            self.profile.paths().key_file.display()
                        ))
                        .with_hint("without it the encrypted store cannot be opened; log in again")
                    })
            }
        }
    }

    /// A `Client` on this profile's store (see `sdk::client::build`).
    pub(crate) async fn build_client(
        &self,
        homeserver: &str,
        secret: &StoreSecret,
        isolation: Isolation,
        oauth: bool,
        reuse: Option<crate::sdk::client::Opened>,
    ) -> CliResult<(Client, crate::sdk::client::Opened)> {
        let store = &self.profile.paths().store_dir;
        crate::sdk::client::build(homeserver, store, secret, self.settings.request_timeout, isolation, oauth, reuse)
            .await
    }

    /// The device-isolation mode in force: `--isolation`, else the one set
    /// at login, else exclude-insecure.
    pub(crate) fn isolation(&self) -> Isolation {
        self.settings.isolation.or(self.session().and_then(|s| s.isolation)).unwrap_or_default()
    }
}

/// Keeps what a sync brought in the profile's state database, as records
/// in both forms, for `ratchet sync` (see [`CommandContext::sync`]).
pub(crate) struct Keeper<'a> {
    out: &'a Output,
    profile: &'a Profile,
}

impl Keeper<'_> {
    /// Keeps a sync's records the moment it returned: staged from the
    /// response and the local stores alone, and appended in one
    /// transaction (with the undecryptable Olm messages, for the recovery
    /// that will handle them) before any request or anything else that can
    /// fail. Then, best effort, fills in what a look-up gives (message
    /// indexes) and adds late decryptions.
    pub(crate) async fn keep_sync(
        &self,
        client: &Client,
        response: &matrix_sdk::sync::SyncResponse,
        watcher: &mut crate::stream::Watcher,
    ) -> CliResult<()> {
        use crate::process::kill_point;
        kill_point("synced");
        let db = self.profile.state()?;
        let first = !db.has_synced()?;
        let staged = crate::stream::stage(client, self.out, response, watcher, db).await;
        let write = crate::profile::state::SyncWrite {
            records: &staged.records,
            failures: &staged.failures,
            utds: staged.utds.clone(),
            marks: staged.marks.clone(),
            gaps: staged.gaps.clone(),
            synced: first,
        };
        let mut seqs = db.append_sync(&write)?;
        kill_point("kept");
        // R3: the strictest rotation limits, recorded as they arrive (not
        // only at this device's next send, by which time a looser
        // m.room.encryption could be the room's current one).
        // Like everything after the records are kept, a failure here is
        // said and ends nothing: the next send records the room's limits
        // again (`Batch::open`).
        let settings = crate::sdk::megolm::sync_settings(response);
        if !settings.is_empty() {
            let out = self.out;
            let recorded =
                self.profile.megolm_ledger(crate::clock::now_ms(), &mut |w| out.warn(w)).and_then(|mut ledger| {
                    for room in crate::sdk::megolm::record_sync_limits(&settings, &mut ledger) {
                        out.warn(format!(
                        "the encryption settings of {room} were loosened; ratchet keeps the stricter rotation limits \
                         seen before (R3)"
                    ));
                    }
                    ledger.save()
                });
            if let Err(e) = recorded {
                out.warn(format!("the rooms' rotation limits of this sync were not recorded (R3): {}", e.message));
            }
        }
        // What follows only adds to what is kept: a failure of it is said,
        // and ends nothing (the follower goes on).
        // The gaps of limited timelines, before anything is delivered; the
        // sync's own records of those rooms move after the fill.
        match crate::gapfill::fill_open(client, self.out, db).await {
            Ok(moved) => seqs.iter_mut().for_each(|s| *s = moved.get(s).copied().unwrap_or(*s)),
            Err(e) => self.out.warn(format!("a gap in a room's timeline could not be filled: {}", e.message)),
        }
        kill_point("filled");
        if let Err(e) = crate::stream::enrich(client, self.out, response, &staged, &seqs, db).await {
            self.out.warn(format!("message indexes of this sync not filled in: {}", e.message));
        }
        kill_point("enriched");
        // Undecryptable events (this sync's, and those any process kept)
        // are retried when something may have made them decryptable.
        let queried = crate::stream::query_senders(client, &staged).await;
        // After to-device events (room keys, forwards) or a key query, all
        // of them; otherwise those refused for trust in their sender, whose
        // keys the SDK may have fetched since (matrix-sdk 0.18's sync
        // response does not say when it did).
        let mut news = queried || !response.to_device.is_empty();
        if let Err(e) = crate::sdk::history::note_refused(client, db, response).await {
            tracing::debug!(error = %e.message, "could not note a refused to-device message");
        }
        // History shared on invite (MSC4268) that came after the join.
        match crate::sdk::history::accept_pending(client).await {
            Ok(accepted) => {
                for a in &accepted {
                    let who = crate::ui::terminal::inert(a.inviter.as_str());
                    self.out.status(if a.keys > 0 {
                        format!(
                            "took {} room keys of {} that {who} shared when inviting you (history from before you \
                             joined)",
                            a.keys, a.room_id
                        )
                    } else {
                        format!(
                            "the history {who} shared for {} added no room key (this device had them all, or their \
                             device is not cross-signed by them)",
                            a.room_id
                        )
                    });
                }
                news |= !accepted.is_empty();
            }
            Err(e) => self.out.warn(format!("history shared on invite could not be taken yet: {}", e.message)),
        }
        if let Err(e) = crate::stream::retry_utds(client, self.out, db, !news).await {
            tracing::debug!(error = %e.message, "retrying undecryptable events failed");
        }
        if let Err(e) = crate::stream::watch_own_identity(client, self.out, db).await {
            tracing::debug!(error = %e.message, "could not compare our own identity with the last one seen");
        }
        Ok(())
    }
}

impl crate::sdk::KeepSync for Keeper<'_> {
    fn keep<'a>(
        &'a self,
        client: &'a Client,
        response: &'a matrix_sdk::sync::SyncResponse,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = CliResult<()>> + 'a>> {
        Box::pin(async move { self.keep_sync(client, response, &mut crate::stream::Watcher::default()).await })
    }
}
