//! tracing-subscriber set-up: stderr only (stdout is for data), quiet by
//! default, louder with -v, and a full trace in `--log-file` for bug reports.
//!
//! matrix-sdk never logs access tokens or key material at any level (its
//! request spans skip them); ratchet's own spans skip secrets too, and
//! `SessionFile` redacts itself in `Debug`.

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Mutex;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

/// Per-target defaults for `--log-file`: everything crypto, HTTP at debug,
/// the noisy transport crates quiet.
const FILE_FILTER: &str = "info,ratchet=trace,matrix_sdk=debug,matrix_sdk_base=debug,\
matrix_sdk_crypto=trace,matrix_sdk_sqlite=debug,hyper=warn,hyper_util=warn,reqwest=info,rustls=warn";

fn stderr_filter(verbose: u8) -> &'static str {
    match verbose {
        // The SDK logs every failed HTTP request at ERROR, including ones it
        // expects (404 for absent account data) and ones ratchet reports
        // itself; at the default level ratchet's own error is the one shown.
        // ratchet's own /keys/claim (unwedge) makes the crypto crate warn
        // that the response was for "the wrong request"; it is expected.
        // The SDK's start-up task (backups, recovery) may be cut off when a
        // short command exits; what it then logs is not the user's concern.
        // The crypto crate's warnings (a failed decryption, a dropped
        // forward) repeat what ratchet reports as records; -vv shows them.
        0 => "warn,matrix_sdk::http_client=off,matrix_sdk_crypto=error,matrix_sdk::encryption=off,\
              matrix_sdk::client=error",
        1 => "warn,ratchet=debug",
        2 => "warn,ratchet=trace,matrix_sdk_crypto=debug,matrix_sdk=debug",
        _ => "debug,ratchet=trace,matrix_sdk=trace,matrix_sdk_base=trace,matrix_sdk_crypto=trace,hyper=info,hyper_util=info,rustls=info",
    }
}

pub(crate) fn init(verbose: u8, json: bool, ansi: bool, log_file: Option<&Path>) -> Result<(), String> {
    // RATCHET_LOG wins over RUST_LOG, and both over -v.
    let env = std::env::var("RATCHET_LOG").ok().or_else(|| std::env::var("RUST_LOG").ok());
    let stderr_filter = match env.as_deref() {
        Some(spec) if !spec.trim().is_empty() => {
            EnvFilter::try_new(spec).map_err(|e| format!("invalid RATCHET_LOG/RUST_LOG: {e}"))?
        }
        // Under --json stderr holds JSON lines only (`warning`, `error`):
        // log lines there only when asked for (-v, RATCHET_LOG).
        _ if json && verbose == 0 => EnvFilter::new("off"),
        _ => EnvFilter::new(stderr_filter(verbose)),
    };
    let stderr_layer =
        fmt::layer().with_writer(std::io::stderr).with_ansi(ansi).with_target(true).with_filter(stderr_filter);

    let file_layer = match log_file {
        Some(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open log file {}: {e}", path.display()))?;
            Some(fmt::layer().with_writer(Mutex::new(file)).with_ansi(false).with_filter(EnvFilter::new(FILE_FILTER)))
        }
        None => None,
    };

    tracing_subscriber::registry()
        .with(stderr_layer)
        .with(file_layer)
        .try_init()
        .map_err(|e| format!("could not set up logging: {e}"))
}
