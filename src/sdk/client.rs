//! Building and restoring the `Client`: the encrypted SQLite stores, request
//! limits, and the session restore with the SDK's start-up tasks parked.

use std::path::Path;
use std::time::Duration;

use matrix_sdk::authentication::matrix::MatrixSession;
use matrix_sdk::config::{RequestConfig, StoreConfig};
use matrix_sdk::cross_process_lock::CrossProcessLockConfig;
use matrix_sdk::store::RoomLoadSettings;
use matrix_sdk::{Client, SqliteStoreConfig};

use crate::e2ee::trust::Isolation;
use crate::error::{CliError, CliResult};
use crate::profile::session::StoreSecret;

/// Restores a saved login into a built client, with the SDK's start-up
/// tasks parked (see [`SpawnParked`]); returns this device's curve25519
/// identity key, which the caller compares with the one saved at login,
/// and the parked tasks, to be dropped with the client.
pub(crate) async fn restore(client: &Client, session: MatrixSession) -> CliResult<(Option<String>, Parked)> {
    let auth = client.matrix_auth();
    let (restored, parked) = parked(auth.restore_session(session, RoomLoadSettings::default())).await?;
    restored.map_err(CliError::from)?;
    Ok((client.encryption().curve25519_key().await.map(|k| k.to_base64()), parked))
}

/// [`restore`] for a login made through OAuth 2.0 (`login --oauth`): the
/// registered client's id goes with the tokens, for refreshes and logout.
pub(crate) async fn restore_oauth(
    client: &Client,
    session: MatrixSession,
    client_id: &str,
) -> CliResult<(Option<String>, Parked)> {
    use matrix_sdk::authentication::oauth::{ClientId, OAuthSession, UserSession};
    let session = OAuthSession {
        client_id: ClientId::new(client_id.to_owned()),
        user: UserSession { meta: session.meta, tokens: session.tokens },
    };
    let oauth = client.oauth();
    let (restored, parked) = parked(oauth.restore_session(session, RoomLoadSettings::default())).await?;
    restored.map_err(CliError::from)?;
    Ok((client.encryption().curve25519_key().await.map(|k| k.to_base64()), parked))
}

/// Runs `future` with the tasks it spawns parked (see [`SpawnParked`]).
/// It must need neither timers nor I/O of its own (a restore from the
/// store), as the runtime it enters is never driven.
async fn parked<F: std::future::Future>(future: F) -> CliResult<(F::Output, Parked)> {
    let parked = Parked::new()?;
    let output = SpawnParked { inner: Box::pin(future), runtime: parked.handle() }.await;
    Ok((output, parked))
}

/// Set when refreshed tokens could not be saved (see
/// [`refreshed_tokens_unsaved`]).
static UNSAVED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether a refresh this process made could not be saved: the profile's
/// file then holds a refresh token the server has replaced.
pub(crate) fn refreshed_tokens_unsaved() -> bool {
    UNSAVED.load(std::sync::atomic::Ordering::SeqCst)
}

/// Keeps refreshed OAuth 2.0 tokens: matrix-sdk refreshes the access token
/// when the server says it expired, and then calls `save` (the refresh
/// token rotates with it). There is no reload: refreshes happen only under
/// the profile lock (a follower's long poll between turns does not
/// refresh, see `sdk::wait_for_news`), so no other process can have
/// refreshed meanwhile.
pub(crate) fn keep_refreshed_tokens(
    client: &Client,
    save: impl Fn(String, Option<String>) -> Result<(), String> + Send + Sync + 'static,
) -> CliResult<()> {
    client
        .set_session_callbacks(
            Box::new(|_| Err("ratchet does not reload sessions: one process holds a profile at a time".into())),
            Box::new(move |client| {
                let tokens = client.session_tokens().ok_or("no tokens after a refresh")?;
                save(tokens.access_token, tokens.refresh_token).map_err(|e| {
                    UNSAVED.store(true, std::sync::atomic::Ordering::SeqCst);
                    tracing::error!("the refreshed tokens could not be saved: {e}");
                    e.into()
                })
            }),
        )
        .map_err(CliError::from)
}

/// A built client's open stores and HTTP client, for the client a
/// follower rebuilds after another process had the profile
/// (`CommandContext::reopen_client`): the stores keep nothing of the
/// profile in memory that another process could change (matrix-sdk's
/// caches are the client's and its crypto machine's, rebuilt), so the new
/// client reads what the other process wrote through the same
/// connections, without opening, keying and checkpointing both databases
/// again; and it keeps the HTTP connection to the server.
pub(crate) struct Opened {
    state: matrix_sdk::SqliteStateStore,
    crypto: matrix_sdk::SqliteCryptoStore,
    http: matrix_sdk::reqwest::Client,
    /// The crypto database as opened (device, inode): a store another
    /// process replaced since (a logout and a login) is not this one.
    file: (u64, u64),
}

impl Opened {
    /// Whether `crypto_db` is still the database these handles opened.
    pub(crate) fn still_at(&self, crypto_db: &Path) -> bool {
        file_id(crypto_db) == Some(self.file)
    }
}

fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The one place a `Client` is built: homeserver, encrypted SQLite store,
/// bounded request timeouts and retries, and the room-key recipients.
/// With `reuse`, on the stores and HTTP client of an earlier build in this
/// process (see [`Opened`]).
pub(crate) async fn build(
    homeserver: &str,
    store: &Path,
    secret: &StoreSecret,
    request_timeout: Duration,
    isolation: Isolation,
    oauth: bool,
    reuse: Option<Opened>,
) -> CliResult<(Client, Opened)> {
    let _ = super::ISOLATION.set(isolation);
    let crypto_db = store.join(crate::profile::CRYPTO_DB);
    let (state, crypto, http, file) = match reuse {
        Some(Opened { state, crypto, http, file }) => (state, crypto, Some(http), file),
        None => {
            let (state, crypto) = open_stores(store, secret).await?;
            let file = file_id(&crypto_db).ok_or_else(|| CliError::internal("the crypto store has no file"))?;
            (state, crypto, None, file)
        }
    };
    let stores =
        StoreConfig::new(CrossProcessLockConfig::SingleProcess).state_store(state.clone()).crypto_store(crypto.clone());
    // A retry limit bounds how long an unreachable server can stall us; the
    // SDK's default is to retry forever. Four attempts (three retries, after
    // 0.5, 1 and 2 s: the SDK's backoff) ride out the transient 5xx a
    // reverse proxy gives under load, as complement-crypto's
    // TestFailedKeysClaimRetries / TestFailedOneTimeKeyUploadRetries expect
    // (examples/qa/key-requests-504.sh). The SDK counts attempts, not retries.
    let requests = RequestConfig::new().timeout(request_timeout).retry_limit(4);
    let mut builder = Client::builder()
        .homeserver_url(homeserver)
        .store_config(stores)
        .request_config(requests)
        .with_room_key_recipient_strategy(super::recipient_strategy())
        .with_decryption_settings(super::decryption_settings(isolation))
        // History sharing on invite (MSC4268, spec v1.19), as Element does:
        // `room invite` shares the room's keys, a join takes the inviter's
        // (`sdk::history`). Every ratchet device is cross-signed at login,
        // which sharing needs.
        .with_enable_share_history_on_invite(true);
    if oauth {
        // OAuth 2.0 access tokens expire: a 401 M_UNKNOWN_TOKEN makes the
        // SDK refresh and retry (`keep_refreshed_tokens` saves the new ones).
        // Not for Matrix logins, whose refused token must stay an error.
        builder = builder.handle_refresh_tokens();
    }
    if let Some(http) = http {
        builder = builder.http_client(http);
    } else if homeserver.starts_with("http://") && !oauth {
        // Plain HTTP uses no certificates; loading the platform's roots
        // (hundreds of files) would be the slowest part of start-up. (An
        // OAuth 2.0 server is another host, over HTTPS: RFC 7009 wants its
        // revocation over TLS.)
        builder = builder.disable_built_in_root_certificates();
    }
    let client = builder.build().await?;
    let http = client.http_client().clone();
    Ok((client, Opened { state, crypto, http, file }))
}

/// Opens (and keys) the state and crypto stores.
async fn open_stores(
    store: &Path,
    secret: &StoreSecret,
) -> CliResult<(matrix_sdk::SqliteStateStore, matrix_sdk::SqliteCryptoStore)> {
    let store_config = match secret {
        StoreSecret::Key(key) => SqliteStoreConfig::new(store).key(Some(&**key)),
        StoreSecret::Passphrase(p) => SqliteStoreConfig::new(store).passphrase(Some(p.expose())),
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
    tokio::try_join!(
        matrix_sdk::SqliteStateStore::open_with_config(&store_config),
        matrix_sdk::SqliteCryptoStore::open_with_config(&store_config),
    )
    .map_err(|e| CliError::from(matrix_sdk::ClientBuildError::SqliteStore(e)))
}

/// Runs a future with every task it spawns parked on a runtime that is
/// never driven, so those tasks never run.
///
/// Used for session restore only: matrix-sdk then spawns its key-backup and
/// recovery set-up task, which makes two `GET
/// .../account_data/m.secret_storage.default_key` requests on every start,
/// concurrent with the sync (it made a one-shot send's sync about three
/// times slower on Synapse, see BENCHMARKS.md). What that task would set up
/// ratchet does itself, in order and under the profile lock
/// (`sdk::backup::resume`, `sdk::secrets`). Blocking store calls still work
/// (they use the parked runtime's blocking threads, which need no driving);
/// anything needing its timer or I/O driver fails loudly, as it has neither.
struct SpawnParked<F> {
    inner: std::pin::Pin<Box<F>>,
    runtime: tokio::runtime::Handle,
}

impl<F: std::future::Future> std::future::Future for SpawnParked<F> {
    type Output = F::Output;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
        // Entered for this poll only, so no guard is held across an await.
        let runtime = self.runtime.clone(); // a handle: the guard must not borrow `self`
        let _entered = runtime.enter();
        self.inner.as_mut().poll(cx)
    }
}

/// The runtime that holds one client's parked tasks. The tasks keep
/// handles on their client (its stores, their open SQLite connections), so
/// they go with it: dropping this drops them, unpolled. A process that
/// rebuilds its client (`sync --follow`) leaks nothing.
pub(crate) struct Parked(Option<tokio::runtime::Runtime>);

impl Parked {
    fn new() -> CliResult<Parked> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| CliError::internal("could not make a runtime for parked tasks").with_source(e))?;
        Ok(Parked(Some(runtime)))
    }

    fn handle(&self) -> tokio::runtime::Handle {
        self.0.as_ref().expect("present until dropped").handle().clone()
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        // Not a plain drop: that waits for blocking threads, which tokio
        // forbids inside another runtime (where this runs).
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Before a login over `https://`: a server that speaks plain HTTP on that
/// port never answers a TLS handshake, and the login would wait out every
/// retry of the request timeout. One short probe finds that out: if the
/// TLS request gets no answer within a few seconds, a plain-HTTP request to
/// the same host and port that returns Matrix's versions JSON says what is
/// wrong.
pub(crate) async fn check_scheme(client: &Client, homeserver: &str) -> CliResult<()> {
    use matrix_sdk::ruma::api::client::discovery::get_supported_versions;
    if !homeserver.starts_with("https://") {
        return Ok(());
    }
    let quick = RequestConfig::new().timeout(Duration::from_secs(5)).retry_limit(0);
    let probe = client.send(get_supported_versions::Request::new()).with_request_config(quick).await;
    let Err(e) = probe else { return Ok(()) };
    let timed_out = matches!(&e, matrix_sdk::HttpError::Reqwest(r) if r.is_timeout());
    if !timed_out {
        return Ok(()); // the login reports whatever else is wrong
    }
    let Ok(url) = url::Url::parse(homeserver) else { return Ok(()) };
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else { return Ok(()) };
    if speaks_plain_matrix(host, port).await {
        let plain = homeserver.replacen("https://", "http://", 1);
        return Err(CliError::failed(format!("{homeserver} does not answer TLS: it speaks plain HTTP"))
            .with_hint(format!("use --homeserver {plain}")));
    }
    Ok(())
}

async fn speaks_plain_matrix(host: &str, port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect((host, port)).await.ok()?;
        let request = format!("GET /_matrix/client/versions HTTP/1.0\r\nHost: {host}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).await.ok()?;
        Some(reply)
    };
    match tokio::time::timeout(Duration::from_secs(3), attempt).await {
        Ok(Some(reply)) => {
            let text = String::from_utf8_lossy(&reply);
            text.starts_with("HTTP/") && text.contains("\"versions\"")
        }
        _ => false,
    }
}

/// Whose an access token is, asked of the homeserver (`/account/whoami`),
/// and whether its device already has encryption keys there (another
/// client set it up): for `login --access-token-stdin`.
pub(crate) struct TokenOwner {
    pub(crate) user_id: matrix_sdk::ruma::OwnedUserId,
    pub(crate) device_id: Option<matrix_sdk::ruma::OwnedDeviceId>,
    /// The device's identity key on the server, if it has one.
    pub(crate) device_key: Option<String>,
}

pub(crate) async fn token_owner(homeserver: &str, token: &str, timeout: Duration) -> CliResult<TokenOwner> {
    use matrix_sdk::reqwest;
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| CliError::internal("could not make an HTTP client").with_source(e))?;
    let call = |request: reqwest::RequestBuilder| async move {
        let response = request.bearer_auth(token).send().await.map_err(|e| {
            CliError::failed(format!("could not reach {homeserver}: {e}"))
                .with_hint("is the homeserver running and reachable? (see --timeout for slow servers)")
        })?;
        let status = response.status();
        let body: serde_json::Value = response.json_value().await;
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(CliError::auth(
                "the homeserver does not know this access token (revoked, expired, or another server's)",
            )
            .with_hint("ask for a new one, or log in with a password"));
        }
        if !status.is_success() {
            return Err(CliError::failed(format!(
                "the homeserver refused the access token's check: HTTP {status} {}",
                crate::ui::terminal::inert(body["errcode"].as_str().unwrap_or(""))
            )));
        }
        Ok(body)
    };
    let whoami = call(http.get(format!("{homeserver}/_matrix/client/v3/account/whoami"))).await?;
    let user_id = whoami["user_id"]
        .as_str()
        .and_then(|u| matrix_sdk::ruma::OwnedUserId::try_from(u).ok())
        .ok_or_else(|| CliError::failed("the homeserver's /account/whoami named no valid user"))?;
    let device_id: Option<matrix_sdk::ruma::OwnedDeviceId> = whoami["device_id"].as_str().map(Into::into);
    let device_key = match &device_id {
        Some(device) => {
            let body = serde_json::json!({ "device_keys": { user_id.as_str(): [device.as_str()] } });
            let request = http
                .post(format!("{homeserver}/_matrix/client/v3/keys/query"))
                .header("Content-Type", "application/json")
                .body(body.to_string());
            let keys = call(request).await?;
            keys["device_keys"][user_id.as_str()][device.as_str()]["keys"][format!("curve25519:{device}")]
                .as_str()
                .map(str::to_owned)
        }
        None => None,
    };
    Ok(TokenOwner { user_id, device_id, device_key })
}

/// A response's JSON body, or `null`.
trait JsonValue {
    async fn json_value(self) -> serde_json::Value;
}

impl JsonValue for matrix_sdk::reqwest::Response {
    async fn json_value(self) -> serde_json::Value {
        match self.bytes().await {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
            Err(_) => serde_json::Value::Null,
        }
    }
}
