//! `ratchet login`: password login that creates this profile's device, its
//! encrypted store and its session file, and uploads the device keys.

use clap::Args;
use serde::Serialize;
use tracing::instrument;

use crate::context::CommandContext;
use crate::e2ee::trust::{CrossSigningAtLogin, Isolation};
use crate::error::{CliError, CliResult, ErrorKind};
use crate::profile::session::{self, Secret, SessionFile, StoreSecret, StoreSecretSource};
use crate::sdk;
use crate::ui::output::Record;

/// Log in (with a password, or an access token) and set up this profile's device.
///
/// The password never goes on the command line. It comes from, in order:
/// `--password-stdin` (first line of stdin), the RATCHET_PASSWORD environment
/// variable, or a prompt when stdin is a terminal.
///
/// The homeserver: --homeserver URL, or found from a full user id
/// (@alice:example.org) through https://example.org/.well-known/matrix/client
/// as every Matrix client finds it (and example.org itself when it has no
/// .well-known).
///
/// Single sign-on (--sso) and OAuth 2.0 (--oauth, next-generation auth:
/// servers run with the Matrix Authentication Service, such as matrix.org)
/// sign in in a browser: ratchet prints the address (and opens it on a
/// desktop; --no-browser only prints), listens on 127.0.0.1 for the
/// browser's return, and refuses an answer it did not ask for. An OAuth
/// login registers ratchet with the server's authorization service,
/// refreshes its short-lived access token as it expires (the new tokens
/// sealed in session.json), and `logout` revokes it.
///
/// An access token an admin provisioned for a bot (--access-token-stdin, or
/// RATCHET_ACCESS_TOKEN) takes over that token's device instead: checked
/// with the server, and refused when the device already has encryption keys
/// (a second crypto store for one device breaks its encryption). The
/// cross-signing identity is then made only where the server asks no
/// password for it.
///
/// The device's store is encrypted: with a random key kept in
/// `<profile>/store.key` (0600), or with RATCHET_STORE_PASSPHRASE if set at
/// login (then no key is written to disk and it must be set on every run).
/// The access token is kept in session.json encrypted the same way.
///
/// Cross-signing (MSC4153): on an account with no cross-signing identity,
/// login creates one (master, self-signing and user-signing keys, uploaded
/// with the login password where the server asks for it) and signs this
/// device with it, as Element does on a first login; other users' clients
/// in "exclude insecure devices" mode then share keys with this device and
/// decrypt what it sends. On an account that already has an identity, this
/// device is not yet signed by it: login says so, and how to verify it.
/// --no-bootstrap skips all of this. --isolation given here is remembered
/// for the profile.
///
/// Examples:
///
///   ratchet login --user @alice:matrix.example
///   ratchet login --homeserver https://matrix.example --user alice
///   ratchet login --homeserver https://matrix.example --sso
///   ratchet login --user @alice:matrix.org --oauth
///   ratchet --profile bot login --homeserver https://matrix.example \
///       --access-token-stdin < token.txt
///   echo "$PW" | ratchet --profile bot login \
///       --homeserver http://127.0.0.1:8008 --user bot --password-stdin
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
#[command(group(clap::ArgGroup::new("browser_login").args(["sso", "oauth"])))]
pub(crate) struct LoginArgs {
    /// Homeserver URL, with its scheme (https://matrix.example); found from --user's server name when left out
    #[arg(long, env = "RATCHET_HOMESERVER", hide_env_values = true, value_parser = parse_homeserver)]
    homeserver: Option<String>,

    /// User name, or full user id (@alice:matrix.example: its server is then found without --homeserver)
    #[arg(long, short)]
    user: Option<String>,

    /// Display name of the new device, as other users see it
    #[arg(long, default_value = "ratchet")]
    device_name: String,

    /// Read the password from the first line of stdin
    #[arg(long)]
    password_stdin: bool,

    /// Sign in through the homeserver's single sign-on in a browser (m.login.sso)
    #[arg(long, conflicts_with_all = ["password_stdin", "access_token_stdin", "oauth"])]
    sso: bool,

    /// Sign in through the homeserver's OAuth 2.0 authorization service in a browser (next-generation auth, MSC3861)
    #[arg(long, conflicts_with_all = ["password_stdin", "access_token_stdin"])]
    oauth: bool,

    /// With --sso: the identity provider, by id or name, when the server offers several
    #[arg(long, requires = "sso", value_name = "ID")]
    idp: Option<String>,

    /// With --sso or --oauth: only print the sign-in address; open no browser
    #[arg(long, requires = "browser_login")]
    no_browser: bool,

    /// With --sso or --oauth: how long to wait for the sign-in in the browser, in seconds
    #[arg(long, requires = "browser_login", value_name = "SECONDS", default_value_t = 300)]
    sso_timeout: u64,

    /// Take over the device of an existing access token (a provisioned bot's) read from stdin's first line; RATCHET_ACCESS_TOKEN does the same
    #[arg(long, conflicts_with = "password_stdin")]
    access_token_stdin: bool,

    /// Do not create a cross-signing identity (the device stays insecure in MSC4153's sense)
    #[arg(long)]
    no_bootstrap: bool,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct LoginRecord {
    user_id: String,
    device_id: String,
    homeserver: String,
    profile: String,
    curve25519: String,
    ed25519: Option<String>,
    /// What login did about cross-signing.
    cross_signing: CrossSigningAtLogin,
    /// Whether this device is now cross-signed by its owner.
    cross_signed: bool,
    /// The device-isolation mode of the profile.
    isolation: Isolation,
    /// How the homeserver was found when --homeserver was left out: from the
    /// server name's `.well-known` (`well_known`), or the server name itself
    /// (`server_name`).
    #[serde(skip_serializing_if = "Option::is_none")]
    discovered: Option<sdk::discovery::Found>,
}

impl Record for LoginRecord {
    const TYPE: &'static str = "login";
    fn human(&self) -> String {
        let cross_signing = match self.cross_signing {
            CrossSigningAtLogin::Created => "identity created; this device is signed by it",
            CrossSigningAtLogin::Existing => "the account has an identity; this device is NOT verified yet",
            CrossSigningAtLogin::Skipped => "skipped (--no-bootstrap); this device is not cross-signed",
            CrossSigningAtLogin::NeedsPassword => {
                "not created: the server asks for the account password (`identity --create`)"
            }
        };
        format!(
            "Logged in as {} (device {}) on {}\nprofile:    {}\ncurve25519: {}\ned25519:    {}\ncross-signing: {cross_signing}\nisolation:  {}",
            self.user_id,
            self.device_id,
            self.homeserver,
            self.profile,
            self.curve25519,
            self.ed25519.as_deref().unwrap_or("?"),
            self.isolation.name()
        )
    }
}

fn parse_homeserver(s: &str) -> Result<String, String> {
    // `localhost:8008` parses as a URL with scheme `localhost`: without
    // `://` there is no scheme as far as a person is concerned.
    if !s.contains("://") {
        return Err(format!("`{s}` has no scheme; did you mean https://{s} (or http://{s} for a local server)?"));
    }
    let url = url::Url::parse(s).map_err(|e| format!("`{s}` is not a valid URL: {e}"))?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(s.trim_end_matches('/').to_owned()),
        "http" | "https" => Err(format!("`{s}` has no host")),
        other => Err(format!("`{s}` uses scheme `{other}`; use http or https")),
    }
}

#[instrument(skip_all)]
pub(crate) async fn cmd_login(ctx: &mut CommandContext, args: &LoginArgs) -> CliResult {
    let dir = ctx.profile.paths().dir.clone();
    let fresh = !dir.exists();
    let outcome = login(ctx, args).await;
    if outcome.is_err() && fresh {
        // A failed first login leaves no empty profile behind.
        let _ = std::fs::remove_file(&ctx.profile.paths().lock_file);
        let _ = std::fs::remove_dir(&dir);
    }
    outcome
}

async fn login(ctx: &mut CommandContext, args: &LoginArgs) -> CliResult {
    let paths = ctx.profile.paths().clone();
    ctx.lock_profile().await?;
    if paths.session_file.exists() {
        let existing = ctx.load_session();
        if let Ok(saved) = &existing {
            if saved.setup_pending {
                return resume(ctx, args, saved.clone()).await;
            }
        }
        let existing = existing.map(|s| s.user_id.to_string()).unwrap_or_else(|_| "?".into());
        return Err(CliError::failed(format!("profile `{}` is already logged in as {existing}", ctx.settings.profile))
            .with_hint(format!(
                "run `{}` first, or pick another profile with --profile NAME",
                crate::ui::hint::ratchet("logout")
            )));
    }
    let homeserver = homeserver_of(ctx, args).await?;
    let credential = credential(ctx, args)?;

    // A store without a session belongs to no device: the login that made
    // it never got the server's answer (a device's session is saved the
    // moment the server makes it). It is moved aside, never deleted: a
    // store is where private keys live.
    if paths.store_dir.exists() {
        // With its key, or it could never be opened again.
        let at = crate::clock::now_ms();
        let aside = paths.store_dir.with_file_name(format!("store.leftover-{at}"));
        ctx.out.warn(format!(
            "moving a leftover store without a session aside: {} -> {} (delete it once you know it holds nothing)",
            paths.store_dir.display(),
            aside.display()
        ));
        std::fs::rename(&paths.store_dir, &aside)?;
        if paths.key_file.exists() {
            std::fs::rename(&paths.key_file, paths.key_file.with_file_name(format!("store.key.leftover-{at}")))?;
        }
    }
    let (secret, source) = match &ctx.settings.store_passphrase_env {
        Some(env) => (StoreSecret::Passphrase(env.clone()), StoreSecretSource::Env),
        None => {
            let key = Box::new(zeroize::Zeroizing::new(session::generate_key()));
            ctx.profile.write_store_key(&key)?;
            (StoreSecret::Key(key), StoreSecretSource::File)
        }
    };

    // ratchet's own state starts anew with the device (and under its key).
    ctx.profile.remove_state()?;
    let made = match ctx.open_state(&secret, crate::profile::state::Opening::New) {
        Ok(_) => make_device(ctx, args, &homeserver, &credential, &secret, source).await,
        Err(e) => Err(e),
    };
    let (client, saved, _parked) = match made {
        Ok(made) => made,
        Err(e) => {
            // No device was made: leave nothing behind that a later login
            // would trip over.
            let _ = std::fs::remove_dir_all(&paths.store_dir);
            let _ = std::fs::remove_file(&paths.key_file);
            let _ = ctx.profile.remove_state();
            return Err(e);
        }
    };
    // From here on the device exists and its session is saved: a failure
    // (or Ctrl-C) leaves it for the next `login` to finish, keys and all.
    let mut record = set_up(ctx, args, &client, credential.password(), saved).await.map_err(unfinished)?;
    record.discovered = homeserver.discovered;
    ctx.out.data(&record)
}

/// The homeserver to log in to, and how it was found.
struct Homeserver {
    url: String,
    discovered: Option<sdk::discovery::Found>,
}

/// --homeserver, or the one the user id's server name leads to.
async fn homeserver_of(ctx: &CommandContext, args: &LoginArgs) -> CliResult<Homeserver> {
    if let Some(url) = &args.homeserver {
        return Ok(Homeserver { url: url.clone(), discovered: None });
    }
    let user = args.user.as_deref().unwrap_or_default();
    let Some(server_name) = sdk::discovery::server_name_of(user) else {
        return Err(CliError::usage(if user.is_empty() {
            "no --homeserver, and no user id to find it from: give --homeserver URL or --user @USER:SERVER".to_owned()
        } else {
            format!(
                "`{}` is a user name without a server: give --homeserver URL, or the full user id",
                crate::ui::terminal::inert(user)
            )
        })
        .with_hint("e.g. --user @alice:example.org (its server is then found as every Matrix client finds it)"));
    };
    ctx.out.status(format!("Looking up the homeserver of {}…", crate::ui::terminal::inert(server_name)));
    let found = sdk::discovery::discover(server_name, ctx.settings.request_timeout).await?;
    let how = match found.found {
        sdk::discovery::Found::WellKnown => format!("named by {}", found.asked),
        sdk::discovery::Found::ServerName => format!("{} has no .well-known: the server name itself", found.asked),
    };
    ctx.out.status(format!("Homeserver: {} ({how})", crate::ui::terminal::inert(&found.homeserver)));
    Ok(Homeserver { url: found.homeserver, discovered: Some(found.found) })
}

/// The hints of a login whose device exists but whose set-up did not
/// finish.
fn unfinished(e: CliError) -> CliError {
    e.with_hint(format!(
        "this device exists and its session is saved: run the same `{}` again to finish setting it up",
        crate::ui::hint::ratchet("login")
    ))
    .with_hint(format!("or `{}` to remove it", crate::ui::hint::ratchet("logout")))
}

/// The next `login` on a profile whose login was interrupted after the
/// server made the device: finishes its set-up with the same store.
async fn resume(ctx: &mut CommandContext, args: &LoginArgs, saved: SessionFile) -> CliResult {
    let same_user = args.user.as_ref().is_none_or(|u| u == saved.user_id.as_str() || u == saved.user_id.localpart());
    let same_server = args.homeserver.as_ref().is_none_or(|h| *h == saved.homeserver);
    if !same_user || !same_server {
        return Err(CliError::failed(format!(
            "profile `{}` holds an unfinished login as {} on {}",
            ctx.settings.profile, saved.user_id, saved.homeserver
        ))
        .with_hint(format!(
            "run `{}` with that user and homeserver to finish it, or `{}` to remove it",
            crate::ui::hint::ratchet("login"),
            crate::ui::hint::ratchet("logout")
        )));
    }
    ctx.out.status(format!("Finishing the interrupted login of device {}…", saved.device_id));
    let credential = credential(ctx, args)?;
    ctx.finishing_login = true;
    let client = ctx.client().await?;
    // The session as restored: its tokens opened (the file keeps them sealed).
    let saved = ctx.session().cloned().unwrap_or(saved);
    let record = set_up(ctx, args, &client, credential.password(), saved).await.map_err(unfinished)?;
    ctx.out.data(&record)
}

/// How this login proves who it is.
enum Credential {
    Password(Secret),
    /// Single sign-on in a browser (`--sso`).
    Sso,
    /// OAuth 2.0 in a browser (`--oauth`).
    OAuth,
    /// An access token of an existing device (a provisioned bot's).
    Token(Secret),
}

impl Credential {
    fn password(&self) -> Option<&Secret> {
        match self {
            Credential::Password(p) => Some(p),
            Credential::Token(_) | Credential::Sso | Credential::OAuth => None,
        }
    }
}

/// The access token (--access-token-stdin, or RATCHET_ACCESS_TOKEN when no
/// password is piped), else the password.
fn credential(ctx: &CommandContext, args: &LoginArgs) -> CliResult<Credential> {
    if args.sso {
        return Ok(Credential::Sso);
    }
    if args.oauth {
        return Ok(Credential::OAuth);
    }
    if args.access_token_stdin {
        return crate::ui::prompt::read_secret(crate::ui::prompt::SecretSources {
            from_stdin: true,
            stdin_flag: "--access-token-stdin",
            what: "access token",
            env: (ctx.settings.access_token_env.as_ref(), "RATCHET_ACCESS_TOKEN"),
            prompt: "",
            no_input: true,
            echo: false,
        })
        .map(Credential::Token);
    }
    if let (Some(token), false) = (&ctx.settings.access_token_env, args.password_stdin) {
        return Ok(Credential::Token(token.clone()));
    }
    if args.user.is_none() {
        return Err(CliError::usage("no --user given (it may be left out only with an access token)")
            .with_hint("e.g. --user @alice:example.org"));
    }
    read_password(ctx, args).map(Credential::Password)
}

/// Logs in (the server makes the device, or an access token names it) and
/// saves the session at once, marked unfinished.
async fn make_device(
    ctx: &CommandContext,
    args: &LoginArgs,
    homeserver: &Homeserver,
    credential: &Credential,
    secret: &StoreSecret,
    source: StoreSecretSource,
) -> CliResult<(matrix_sdk::Client, SessionFile, Option<sdk::client::Parked>)> {
    let isolation = ctx.settings.isolation.unwrap_or_default();
    let oauth = matches!(credential, Credential::OAuth);
    let (client, _) = ctx.build_client(&homeserver.url, secret, isolation, oauth, None).await?;
    sdk::client::check_scheme(&client, &homeserver.url).await?;
    let made = match credential {
        Credential::Password(password) => password_login(ctx, args, &client, homeserver, password).await?,
        Credential::Sso => sso_login(ctx, args, &client, homeserver).await?,
        Credential::OAuth => oauth_login(ctx, args, &client, homeserver).await?,
        Credential::Token(token) => token_login(ctx, args, &client, homeserver, token).await?,
    };
    let Made { user_id, device_id, access_token, refresh_token, parked, oauth_client } = made;
    let curve25519 = client
        .encryption()
        .curve25519_key()
        .await
        .map(|k| k.to_base64())
        .ok_or_else(|| CliError::internal("no identity key after login"))?;
    let saved = SessionFile {
        homeserver: homeserver.url.clone(),
        user_id,
        device_id,
        access_token,
        refresh_token,
        sealed_tokens: None,
        identity_key: curve25519,
        store_secret: source,
        isolation: ctx.settings.isolation,
        setup_pending: true,
        oauth: oauth_client.map(|client_id| session::OAuthClient { client_id }),
    };
    ctx.profile.save_session(&saved, secret)?;
    if saved.oauth.is_some() {
        // From here on a refresh (the access token may be short-lived)
        // goes straight to the file.
        sdk::client::keep_refreshed_tokens(&client, ctx.profile.token_saver(secret.clone()))?;
    }
    crate::process::kill_point("login_saved");
    Ok((client, saved, parked))
}

/// What a login gave: the device and its tokens (and, for a token
/// login, the SDK tasks its restore parked).
struct Made {
    user_id: matrix_sdk::ruma::OwnedUserId,
    device_id: matrix_sdk::ruma::OwnedDeviceId,
    access_token: String,
    refresh_token: Option<String>,
    parked: Option<sdk::client::Parked>,
    /// The registered client of an OAuth 2.0 login.
    oauth_client: Option<String>,
}

impl From<matrix_sdk::ruma::api::client::session::login::v3::Response> for Made {
    fn from(response: matrix_sdk::ruma::api::client::session::login::v3::Response) -> Made {
        Made {
            user_id: response.user_id,
            device_id: response.device_id,
            access_token: response.access_token,
            refresh_token: response.refresh_token,
            parked: None,
            oauth_client: None,
        }
    }
}

/// `m.login.password`: the server makes the device.
async fn password_login(
    ctx: &CommandContext,
    args: &LoginArgs,
    client: &matrix_sdk::Client,
    homeserver: &Homeserver,
    password: &Secret,
) -> CliResult<Made> {
    let user = args.user.as_deref().unwrap_or_default();
    ctx.out.status(format!("Logging in to {} as {user}…", homeserver.url));
    let response = client
        .matrix_auth()
        .login_username(user, password.expose())
        .initial_device_display_name(&args.device_name)
        .send()
        .await
        .map_err(|e| {
            use matrix_sdk::ruma::api::error::ErrorKind as Api;
            match e.client_api_error_kind() {
                Some(Api::Forbidden) => {
                    CliError::auth("wrong user name or password").with_hint("check both and try again")
                }
                Some(kind) => {
                    let kind = kind.clone();
                    CliError::new(ErrorKind::Auth, format!("the homeserver refused the login ({})", kind.errcode()))
                        .with_source(e)
                }
                None => e.into(),
            }
        })?;
    Ok(Made::from(response))
}

/// `m.login.sso`: the browser signs in, `m.login.token` makes the device.
async fn sso_login(
    ctx: &CommandContext,
    args: &LoginArgs,
    client: &matrix_sdk::Client,
    homeserver: &Homeserver,
) -> CliResult<Made> {
    use matrix_sdk::ruma::api::client::session::get_login_types::v3::LoginType;
    let auth = client.matrix_auth();
    let types = auth.get_login_types().await?;
    let Some(sso) = types.flows.iter().find_map(|f| match f {
        LoginType::Sso(sso) => Some(sso),
        _ => None,
    }) else {
        let offered: Vec<&str> = types.flows.iter().map(LoginType::login_type).collect();
        return Err(CliError::failed(format!(
            "{} offers no single sign-on (it offers: {})",
            homeserver.url,
            offered.join(", ")
        ))
        .with_hint("log in with a password (--user, --password-stdin) or an access token instead"));
    };
    let providers: Vec<crate::sso::Provider> = sso
        .identity_providers
        .iter()
        .map(|p| crate::sso::Provider { id: p.id.clone(), name: p.name.clone() })
        .collect();
    let chosen = crate::sso::choose(&providers, args.idp.as_deref())?;
    let idp = chosen.map(|p| p.id.clone());
    let start = |base: String| {
        let auth = auth.clone();
        async move {
            let state = crate::sso::new_state();
            let redirect = format!("{base}/sso?state={state}");
            let url = auth.get_sso_login_url(&redirect, idp.as_deref()).await.map_err(CliError::from)?;
            Ok(crate::sso::Start { url, state })
        }
    };
    let timeout = std::time::Duration::from_secs(args.sso_timeout);
    let token = crate::sso::sign_in(&ctx.out, crate::sso::Flow::Sso, start, chosen, !args.no_browser, timeout).await?;
    ctx.out.status(format!("Signed in; logging in to {}…", homeserver.url));
    let response =
        auth.login_token(token.expose()).initial_device_display_name(&args.device_name).send().await.map_err(|e| {
            match e.client_api_error_kind() {
                Some(kind) => {
                    CliError::auth(format!("the homeserver refused the sign-in's login token ({})", kind.errcode()))
                        .with_source(e)
                }
                None => e.into(),
            }
        })?;
    Ok(Made::from(response))
}

/// An access token of an existing device without keys: taken over.
async fn token_login(
    ctx: &CommandContext,
    args: &LoginArgs,
    client: &matrix_sdk::Client,
    homeserver: &Homeserver,
    token: &Secret,
) -> CliResult<Made> {
    let owner = sdk::client::token_owner(&homeserver.url, token.expose(), ctx.settings.request_timeout).await?;
    if let Some(user) = &args.user {
        if user != owner.user_id.as_str() && user != owner.user_id.localpart() {
            return Err(CliError::auth(format!(
                "the access token is {}'s, not {}'s",
                owner.user_id,
                crate::ui::terminal::inert(user)
            )));
        }
    }
    let Some(device_id) = owner.device_id else {
        return Err(CliError::failed(format!(
            "this access token of {} has no device (an application service's?): end-to-end encryption \
             needs one",
            owner.user_id
        ))
        .with_hint("use a token made by a login (it makes a device), or log in with a password"));
    };
    if owner.device_key.is_some() {
        // A second Olm account under one device id: other devices
        // would see its keys change and refuse it; the first client's
        // sessions would wedge.
        return Err(CliError::new(
            ErrorKind::Refused,
            format!(
                "device {device_id} of {} already has encryption keys on the server (another client set it \
                 up); ratchet would make a second set under the same device id, which breaks encryption for \
                 everyone talking to it; nothing was changed",
                owner.user_id
            ),
        )
        .with_hint(
            "use an access token of a new device (a fresh `POST /login`, or your server admin's), or log in \
             with a password (a new device)",
        ));
    }
    ctx.out.status(format!("Taking over device {device_id} of {} on {}…", owner.user_id, homeserver.url));
    let session = matrix_sdk::authentication::matrix::MatrixSession {
        meta: matrix_sdk::SessionMeta { user_id: owner.user_id.clone(), device_id: device_id.clone() },
        tokens: matrix_sdk::SessionTokens { access_token: token.expose().to_owned(), refresh_token: None },
    };
    let (_, parked) = sdk::client::restore(client, session).await?;
    Ok(Made {
        user_id: owner.user_id,
        device_id,
        access_token: token.expose().to_owned(),
        refresh_token: None,
        parked: Some(parked),
        oauth_client: None,
    })
}

/// ratchet's home page, as OAuth 2.0 client registration requires one
/// (`client_uri`); the authorization server shows it on its consent page.
const CLIENT_URI: &str = "https://ratchet.invalid/";

/// OAuth 2.0 (next-generation auth, MSC3861): the server's authorization
/// metadata, ratchet registered as a native client (RFC 7591) with a
/// loopback redirect, the authorization code flow with PKCE in a browser,
/// and the SDK's token exchange, which makes the device.
async fn oauth_login(
    ctx: &CommandContext,
    args: &LoginArgs,
    client: &matrix_sdk::Client,
    homeserver: &Homeserver,
) -> CliResult<Made> {
    use matrix_sdk::authentication::oauth::registration::{ApplicationType, ClientMetadata, Localized, OAuthGrantType};
    let oauth = client.oauth();
    if let Err(e) = oauth.server_metadata().await {
        if e.is_not_supported() {
            return Err(CliError::failed(format!(
                "{} does not offer OAuth 2.0 sign-in (no /_matrix/client/v1/auth_metadata)",
                homeserver.url
            ))
            .with_hint("log in with a password (--user, --password-stdin), --sso, or an access token instead"));
        }
        return Err(CliError::failed("could not read the homeserver's OAuth 2.0 metadata").with_source(e));
    }
    let start = |base: String| {
        let oauth = oauth.clone();
        async move {
            let bad = |e: url::ParseError| CliError::internal("a loopback URL").with_source(e);
            let redirect = url::Url::parse(&format!("{base}/oauth")).map_err(bad)?;
            let mut metadata = ClientMetadata::new(
                ApplicationType::Native,
                vec![OAuthGrantType::AuthorizationCode { redirect_uris: vec![redirect.clone()] }],
                Localized::new(url::Url::parse(CLIENT_URI).map_err(bad)?, []),
            );
            metadata.client_name = Some(Localized::new("ratchet".to_owned(), []));
            let raw = matrix_sdk::ruma::serde::Raw::new(&metadata)
                .map_err(|e| CliError::internal("client metadata").with_source(e))?;
            let data = oauth.login(redirect, None, Some(raw.into()), None).build().await.map_err(|e| {
                CliError::failed("the authorization server refused to register ratchet, or to start a sign-in")
                    .with_source(e)
            })?;
            Ok(crate::sso::Start { url: data.url.to_string(), state: data.state.secret().clone() })
        }
    };
    let timeout = std::time::Duration::from_secs(args.sso_timeout);
    let query = crate::sso::sign_in(&ctx.out, crate::sso::Flow::OAuth, start, None, !args.no_browser, timeout).await?;
    ctx.out.status(format!("Signed in; logging in to {}…", homeserver.url));
    // Not parked: the token exchange needs the runtime's timers and I/O (a
    // password login's `send` runs the SDK's start-up task the same way).
    oauth
        .finish_login(matrix_sdk::utils::UrlOrQuery::Query(query.expose().to_owned()))
        .await
        .map_err(|e| CliError::auth("the authorization server refused the sign-in's code").with_source(e))?;
    let meta = client.session_meta().ok_or_else(|| CliError::internal("no session after an OAuth 2.0 login"))?;
    let tokens = client.session_tokens().ok_or_else(|| CliError::internal("no tokens after an OAuth 2.0 login"))?;
    Ok(Made {
        user_id: meta.user_id.clone(),
        device_id: meta.device_id.clone(),
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        parked: None,
        oauth_client: oauth.client_id().map(|c| c.as_str().to_owned()),
    })
}

/// Device keys, a first sync and cross-signing; then the session is
/// saved as finished.
async fn set_up(
    ctx: &CommandContext,
    args: &LoginArgs,
    client: &matrix_sdk::Client,
    password: Option<&Secret>,
    mut saved: SessionFile,
) -> CliResult<LoginRecord> {
    // Device keys and one-time keys go up first, so other devices can start
    // Olm sessions with this one straight away; then one sync.
    let progress = ctx.out.progress("uploading device keys and syncing");
    if progress.is_none() {
        ctx.out.status("Uploading device keys…");
    }
    sdk::keys::upload_device_keys(client).await?;
    // The first sync starts the stream `sync` delivers (each room's last
    // events, and every room's last kept event for gap filling later):
    // kept like every other.
    let first = sdk::sync_now(client).await?;
    ctx.keeper().keep_sync(client, &first, &mut crate::stream::Watcher::default()).await?;
    let cross_signing = if args.no_bootstrap {
        CrossSigningAtLogin::Skipped
    } else {
        let done = sdk::trust::bootstrap_at_login(client, password).await;
        crate::process::kill_point("login_bootstrapped");
        done?
    };
    let cross_signed = sdk::trust::own_device_cross_signed(client).await?;
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    if cross_signing == CrossSigningAtLogin::NeedsPassword {
        ctx.out.warn(format!(
            "this account has no cross-signing identity, and the server asks for the account password to create \
             one: until `{}` does, Element users (who exclude insecure devices by default) will not read this device",
            crate::ui::hint::ratchet("identity --create")
        ));
    }
    if cross_signing == CrossSigningAtLogin::Existing {
        ctx.out.warn(
            "this account already has a cross-signing identity, and this new device is not verified by it: \
             other users' clients in \"exclude insecure devices\" mode (Element's default) will neither share \
             room keys with it nor decrypt what it sends",
        );
        match sdk::trust::own_facts(client).await {
            Ok(facts) => {
                // One line: the ways, in the order that works here.
                let ways = crate::e2ee::trust::how_to_verify_this_device(facts);
                if !ways.is_empty() {
                    ctx.out.status(format!("To verify it: {}", ways.join("; or ")));
                }
            }
            Err(e) => tracing::debug!(error = %e.message, "could not tell how to verify this device"),
        }
        ctx.out.status(format!("`{}` shows where it stands.", crate::ui::hint::ratchet("identity")));
    }
    saved.setup_pending = false;
    if let Some(tokens) = client.session_tokens() {
        // An OAuth 2.0 access token may have been refreshed meanwhile.
        saved.access_token = tokens.access_token;
        saved.refresh_token = tokens.refresh_token;
    }
    let secret = ctx.store_secret(&saved)?;
    ctx.profile.save_session(&saved, &secret)?;
    let isolation = ctx.settings.isolation.or(saved.isolation).unwrap_or_default();
    Ok(LoginRecord {
        user_id: saved.user_id.to_string(),
        device_id: saved.device_id.to_string(),
        homeserver: saved.homeserver.clone(),
        profile: ctx.settings.profile.clone(),
        curve25519: saved.identity_key.clone(),
        ed25519: client.encryption().ed25519_key().await,
        cross_signing,
        cross_signed,
        isolation,
        discovered: None,
    })
}

fn read_password(ctx: &CommandContext, args: &LoginArgs) -> CliResult<Secret> {
    ctx.read_password(args.password_stdin, args.user.as_deref().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn homeserver_urls() {
        assert_eq!(parse_homeserver("http://127.0.0.1:8008/").unwrap(), "http://127.0.0.1:8008");
        assert!(parse_homeserver("127.0.0.1:8008").unwrap_err().contains("no scheme"));
        assert!(parse_homeserver("matrix.org").unwrap_err().contains("https://matrix.org"));
        assert!(parse_homeserver("localhost:8008").unwrap_err().contains("http://localhost:8008"));
        assert!(parse_homeserver("ftp://x").unwrap_err().contains("scheme"));
        assert!(parse_homeserver("http://").is_err());
    }
}
