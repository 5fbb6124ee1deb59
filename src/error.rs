//! The error type every command returns, and the mapping from errors to exit
//! codes. Exit codes are public contract (README "Exit codes"): scripts branch
//! on them, so a kind never changes its code.
//!
//! matrix-sdk errors are classified here, once, by the `From` impls; commands
//! add context and hints but never pick exit codes themselves.

use std::fmt;

use matrix_sdk::ruma::api::error::ErrorKind as ApiErrorKind;

/// What went wrong, as far as a script needs to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// The command failed: bad room, server refused, network. Exit 1.
    Failed,
    /// The command line itself is wrong. Exit 2 (clap's own code).
    Usage,
    /// The run finished but some items failed (undecryptable events, unsent
    /// messages). Exit 3.
    Partial,
    /// No session, or the server rejected our credentials: log in again. Exit 4.
    Auth,
    /// A protocol rule forbids it (R3, R11). Exit 5.
    Refused,
    /// A bug in ratchet. Exit 101, like a panic.
    Internal,
    /// stdout was closed by the reader (`ratchet … | head`): not a failure.
    /// Exit 0, and nothing is printed.
    PipeClosed,
    /// The user answered "no" to a confirmation: a choice, not an error.
    /// Exit 1 (nothing was done), the message printed without `error:`.
    Declined,
}

impl ErrorKind {
    pub(crate) fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Failed => 1,
            ErrorKind::Usage => 2,
            ErrorKind::Partial => 3,
            ErrorKind::Auth => 4,
            ErrorKind::Refused => 5,
            ErrorKind::Internal => 101,
            ErrorKind::PipeClosed => 0,
            ErrorKind::Declined => 1,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            ErrorKind::Failed => "failed",
            ErrorKind::Usage => "usage",
            ErrorKind::Partial => "partial",
            ErrorKind::Auth => "auth",
            ErrorKind::Refused => "refused",
            ErrorKind::Internal => "internal",
            ErrorKind::PipeClosed => "pipe_closed",
            ErrorKind::Declined => "declined",
        }
    }

    /// The kind a [`ErrorKind::name`] names.
    pub(crate) fn from_name(name: &str) -> Option<ErrorKind> {
        [
            ErrorKind::Failed,
            ErrorKind::Usage,
            ErrorKind::Partial,
            ErrorKind::Auth,
            ErrorKind::Refused,
            ErrorKind::Internal,
            ErrorKind::PipeClosed,
            ErrorKind::Declined,
        ]
        .into_iter()
        .find(|k| k.name() == name)
    }
}

/// One of the rooms an ambiguous room name named.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub(crate) struct Candidate {
    pub(crate) room_id: String,
    pub(crate) name: Option<String>,
}

/// An error on its way to the user: a message, its causes and hints.
#[derive(Debug)]
pub(crate) struct CliError {
    pub(crate) kind: ErrorKind,
    pub(crate) message: String,
    pub(crate) source: Option<anyhow::Error>,
    pub(crate) hints: Vec<String>,
    /// The rooms an ambiguous name named (for `--json`'s `candidates`).
    pub(crate) candidates: Vec<Candidate>,
}

pub(crate) type CliResult<T = ()> = Result<T, CliError>;

impl CliError {
    /// Whether the request that failed may still have reached the server
    /// and been acted on: the connection broke after it was sent (no
    /// answer, a timeout) or the server (or a proxy before it) answered
    /// with a 5xx. A refusal (4xx) or a connection never made is not.
    pub(crate) fn may_have_reached_server(&self) -> bool {
        let Some(source) = &self.source else { return false };
        let http = source.downcast_ref::<matrix_sdk::HttpError>().or_else(|| match source.downcast_ref() {
            Some(matrix_sdk::Error::Http(http)) => Some(&**http),
            _ => None,
        });
        match http {
            Some(matrix_sdk::HttpError::Reqwest(e)) => !e.is_connect() && !e.is_builder(),
            Some(other) => other.as_client_api_error().is_some_and(|api| api.status_code.is_server_error()),
            None => false,
        }
    }
}

impl CliError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        CliError { kind, message: message.into(), source: None, hints: Vec::new(), candidates: Vec::new() }
    }

    pub(crate) fn failed(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Failed, message)
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, message)
    }

    pub(crate) fn auth(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Auth, message)
    }

    /// The user said no to a confirmation (exit 1, no `error:`).
    pub(crate) fn declined(message: impl Into<String>) -> Self {
        CliError::new(ErrorKind::Declined, message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
            .with_hint("this is a bug in ratchet, please report it with the output of `-vv`")
    }

    pub(crate) fn with_candidates(mut self, candidates: Vec<Candidate>) -> Self {
        self.candidates = candidates;
        self
    }

    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    pub(crate) fn with_source(mut self, source: impl Into<anyhow::Error>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The chain of causes below the message, deduplicated: matrix-sdk often
    /// wraps an error in a layer that prints the same text.
    pub(crate) fn causes(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if let Some(source) = &self.source {
            for cause in source.chain() {
                let text = cause.to_string();
                if text != self.message && out.last() != Some(&text) {
                    out.push(text);
                }
            }
        }
        out
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A session the server no longer takes: exit 4, and the way out.
fn dead_session() -> (ErrorKind, Option<String>) {
    (
        ErrorKind::Auth,
        Some(format!(
            "run `{}` (it clears the dead session), then `{}`",
            crate::ui::hint::ratchet("logout"),
            crate::ui::hint::ratchet("login")
        )),
    )
}

fn classify_api(kind: Option<&ApiErrorKind>) -> Option<(ErrorKind, Option<String>)> {
    match kind? {
        ApiErrorKind::UnknownToken { .. } | ApiErrorKind::MissingToken => Some(dead_session()),
        ApiErrorKind::UserDeactivated => Some((ErrorKind::Auth, None)),
        _ => Some((ErrorKind::Failed, None)),
    }
}

impl From<matrix_sdk::Error> for CliError {
    fn from(err: matrix_sdk::Error) -> Self {
        use matrix_sdk::Error as E;
        match &err {
            E::Http(http) => {
                let http_err: &matrix_sdk::HttpError = http;
                let (kind, hint) = classify_http(http_err);
                let mut e = CliError::new(kind, describe_http(http_err));
                if let Some(h) = hint {
                    e = e.with_hint(h);
                }
                e.with_source(err)
            }
            E::AuthenticationRequired => CliError::auth("the homeserver requires authentication")
                .with_hint(format!("run `{}`", crate::ui::hint::ratchet("login")))
                .with_source(err),
            _ if is_mismatched_account(&err) => store_mismatch().with_source(err),
            _ if recipient_problem(&err).is_some() => {
                let e = recipient_problem(&err).expect("checked");
                e.with_source(err)
            }
            E::CryptoStoreError(_) => CliError::failed("the crypto store failed").with_source(err),
            _ => CliError::failed(err.to_string()).with_source(err),
        }
    }
}

impl From<matrix_sdk::HttpError> for CliError {
    fn from(err: matrix_sdk::HttpError) -> Self {
        let (kind, hint) = classify_http(&err);
        let mut e = CliError::new(kind, describe_http(&err));
        if let Some(h) = hint {
            e = e.with_hint(h);
        }
        e.with_source(err)
    }
}

impl From<matrix_sdk::ClientBuildError> for CliError {
    fn from(err: matrix_sdk::ClientBuildError) -> Self {
        use matrix_sdk::ClientBuildError as B;
        match err {
            B::Http(http) => http.into(),
            // The cipher library's own words (`aead::Error`) tell a person
            // nothing more: in the log only.
            B::SqliteStore(matrix_sdk_sqlite::OpenStoreError::InitCipher(e)) => {
                tracing::debug!(error = %e, "the store cipher did not open");
                CliError::auth(
                    "the store passphrase (or the profile's store.key file) does not open the encrypted store",
                )
                .with_hint("give the passphrase used at login (RATCHET_STORE_PASSPHRASE)")
            }
            B::SqliteStore(_) => CliError::failed("could not open the encrypted store")
                .with_hint(
                    "the store passphrase may be wrong (RATCHET_STORE_PASSPHRASE or the profile's \
                     store.key file), or the store is damaged",
                )
                .with_source(err),
            other => CliError::failed("could not set up the Matrix client").with_source(other),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(err: std::io::Error) -> Self {
        CliError::failed(err.to_string()).with_source(err)
    }
}

/// The store holds another device's Olm account. It surfaces directly, or
/// wrapped in an `OlmError` when the SDK builds its `OlmMachine` at restore.
fn is_mismatched_account(err: &matrix_sdk::Error) -> bool {
    use matrix_sdk::encryption::{CryptoStoreError, OlmError};
    let store = match err {
        matrix_sdk::Error::CryptoStoreError(e) => Some(&**e),
        matrix_sdk::Error::OlmError(e) => match &**e {
            OlmError::Store(e) => Some(e),
            _ => None,
        },
        _ => None,
    };
    matches!(store, Some(CryptoStoreError::MismatchedAccount { .. }))
}

/// Room keys could not be shared under the device-isolation mode
/// (MSC4153): this device or a recipient is not trusted enough.
fn recipient_problem(err: &matrix_sdk::Error) -> Option<CliError> {
    use matrix_sdk::encryption::OlmError;
    use matrix_sdk_crypto::SessionRecipientCollectionError as R;
    let matrix_sdk::Error::OlmError(olm) = err else { return None };
    let OlmError::SessionRecipientCollectionError(problem) = &**olm else { return None };
    let insecure = "in exclude-insecure mode (MSC4153, Element's default) room keys are shared only by a device that \
                    its owner's identity has signed";
    Some(match problem {
        R::CrossSigningNotSetup => CliError::failed("your account has no cross-signing identity")
            .with_hint(insecure)
            .with_hint(format!("`{}` creates one and signs this device", crate::ui::hint::ratchet("identity --create")))
            .with_hint("or send with --isolation all-devices (legacy)"),
        R::SendingFromUnverifiedDevice => {
            CliError::failed("this device is not verified by your cross-signing identity")
                .with_hint(insecure)
                .with_hint(format!(
                    "`{}` with your recovery key (Element's) verifies it",
                    crate::ui::hint::ratchet("recovery recover")
                ))
                .with_hint(format!(
                    "or `{}`, then verify it from a verified device of yours",
                    crate::ui::hint::ratchet("verify --accept")
                ))
                .with_hint(format!(
                    "`{}` says which works for this account; --isolation all-devices sends (legacy)",
                    crate::ui::hint::ratchet("identity")
                ))
        }
        R::VerifiedUserChangedIdentity(users) => CliError::failed(format!(
            "the identity of a user you verified changed ({})",
            users.iter().map(|u| u.as_str()).collect::<Vec<_>>().join(", ")
        ))
        .with_hint(format!(
            "accept the new identity, unverified, and the message goes: {}",
            users
                .iter()
                .map(|u| format!("`{}`", crate::ui::hint::ratchet("identity").arg(u).word("--withdraw-verification")))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .with_hint(format!(
            "then, to verify them again, with them: {} (the request goes into your direct chat, which the changed \
             identity blocks until it is accepted)",
            users
                .iter()
                .map(|u| format!("`{}`", crate::ui::hint::ratchet("verify").arg(u)))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        R::VerifiedUserHasUnsignedDevice(_) => CliError::failed("a verified user has a device they did not sign"),
    })
}

pub(crate) fn store_mismatch() -> CliError {
    CliError::auth("the encrypted store belongs to a different device than the saved session")
        .with_hint("using it would create a second Olm account for one device id and break encryption")
        .with_hint(format!(
            "run `{}` and `{}` to start this profile afresh",
            crate::ui::hint::ratchet("logout"),
            crate::ui::hint::ratchet("login")
        ))
}

/// An OAuth 2.0 session its authorization server ended (the access token
/// expired and the refresh token is refused: revoked, or the grant gone).
fn refresh_refused(err: &matrix_sdk::HttpError) -> bool {
    use matrix_sdk::authentication::oauth::error::{BasicErrorResponseType, RequestTokenError};
    use matrix_sdk::authentication::oauth::OAuthError;
    use matrix_sdk::RefreshTokenError;
    match err {
        matrix_sdk::HttpError::RefreshToken(RefreshTokenError::OAuth(oauth)) => match &**oauth {
            OAuthError::RefreshToken(RequestTokenError::ServerResponse(answer)) => {
                matches!(answer.error(), BasicErrorResponseType::InvalidGrant | BasicErrorResponseType::InvalidClient)
            }
            _ => false,
        },
        matrix_sdk::HttpError::RefreshToken(RefreshTokenError::RefreshTokenRequired) => true,
        _ => false,
    }
}

fn classify_http(err: &matrix_sdk::HttpError) -> (ErrorKind, Option<String>) {
    if refresh_refused(err) {
        // Only an OAuth 2.0 login refreshes: it logs in again the same way.
        return (
            ErrorKind::Auth,
            Some(format!(
                "run `{}` (it clears the dead session), then `{}`",
                crate::ui::hint::ratchet("logout"),
                crate::ui::hint::ratchet("login --oauth")
            )),
        );
    }
    if let Some(found) = classify_api(err.client_api_error_kind()) {
        return found;
    }
    match err {
        matrix_sdk::HttpError::Reqwest(_) => (
            ErrorKind::Failed,
            Some("is the homeserver running and reachable? (see --timeout for slow servers)".to_owned()),
        ),
        _ => (ErrorKind::Failed, None),
    }
}

fn describe_http(err: &matrix_sdk::HttpError) -> String {
    if refresh_refused(err) {
        return "the session was ended at the authorization server: its access token expired, and the refresh \
                token is refused (revoked, or the session signed out elsewhere)"
            .to_owned();
    }
    if let Some(ApiErrorKind::UnknownToken { .. }) = err.client_api_error_kind() {
        return "the homeserver rejected this session's access token (logged out or revoked elsewhere)".to_owned();
    }
    if let Some(api) = err.as_client_api_error() {
        return format!("the homeserver refused the request: {api}");
    }
    match err {
        matrix_sdk::HttpError::Reqwest(e) if e.is_timeout() => "the homeserver did not answer in time".to_owned(),
        matrix_sdk::HttpError::Reqwest(e) if e.is_connect() => "could not connect to the homeserver".to_owned(),
        other => format!("request to the homeserver failed: {other}"),
    }
}

impl From<matrix_sdk::encryption::CryptoStoreError> for CliError {
    fn from(err: matrix_sdk::encryption::CryptoStoreError) -> Self {
        CliError::failed("the crypto store failed").with_source(err)
    }
}
