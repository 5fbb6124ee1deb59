//! Global options resolved once, before dispatch: the profile's paths, output
//! mode, timeouts. Commands read `Settings`, never env vars or clap structs.

use std::path::PathBuf;
use std::time::Duration;

use crate::e2ee::trust::Isolation;
use crate::error::CliError;
use crate::global::GlobalArgs;
use crate::profile::session::Secret;

#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) profile: String,
    /// The profile's directory: the data dir + the profile name.
    pub(crate) profile_dir: PathBuf,
    pub(crate) no_input: bool,
    /// `--isolation` / `RATCHET_ISOLATION`, if given; else the profile's.
    pub(crate) isolation: Option<Isolation>,
    pub(crate) request_timeout: Duration,
    pub(crate) lock_timeout: Duration,
    /// `RATCHET_STORE_PASSPHRASE`, if set: the store passphrase then never
    /// touches the disk.
    pub(crate) store_passphrase_env: Option<Secret>,
    /// `RATCHET_PASSWORD`, if set: the login password for scripts.
    pub(crate) password_env: Option<Secret>,
    /// `RATCHET_ACCESS_TOKEN`, if set: `login` takes over the device of
    /// this access token (a provisioned bot's).
    pub(crate) access_token_env: Option<Secret>,
    /// `RATCHET_KEYS_PASSPHRASE`, if set: for key export and import files.
    pub(crate) keys_passphrase_env: Option<Secret>,
    /// `RATCHET_RECOVERY_KEY`, if set: for `recovery recover`.
    pub(crate) recovery_key_env: Option<Secret>,
}

impl Settings {
    pub(crate) fn resolve(global: &GlobalArgs) -> Result<Settings, CliError> {
        validate_profile(&global.profile)?;
        let base = match &global.data_dir {
            Some(dir) => dir.clone(),
            None => dirs::data_dir().map(|d| d.join("ratchet")).ok_or_else(|| {
                CliError::usage("cannot find the platform data directory")
                    .with_hint("set --data-dir or RATCHET_DATA_DIR")
            })?,
        };
        // A hint names the profile unless it is the default one taken by
        // default: `--profile default` typed in a shell whose
        // RATCHET_PROFILE names another must paste as `--profile default`.
        let named = global.profile != "default" || std::env::var_os("RATCHET_PROFILE").is_some();
        crate::ui::hint::init(
            named.then_some(global.profile.as_str()),
            global.data_dir.as_deref().map(|d| absolute(d.to_path_buf())).as_deref(),
        );
        Ok(Settings {
            profile: global.profile.clone(),
            profile_dir: absolute(base).join(&global.profile),
            no_input: global.no_input,
            isolation: global.isolation,
            request_timeout: Duration::from_secs(global.timeout),
            lock_timeout: Duration::from_secs(global.lock_timeout),
            store_passphrase_env: secret_env("RATCHET_STORE_PASSPHRASE"),
            password_env: secret_env("RATCHET_PASSWORD"),
            access_token_env: secret_env("RATCHET_ACCESS_TOKEN"),
            keys_passphrase_env: secret_env("RATCHET_KEYS_PASSPHRASE"),
            recovery_key_env: secret_env("RATCHET_RECOVERY_KEY"),
        })
    }
}

fn secret_env(name: &str) -> Option<Secret> {
    std::env::var(name).ok().filter(|v| !v.is_empty()).map(Secret::new)
}

fn absolute(p: PathBuf) -> PathBuf {
    std::path::absolute(&p).unwrap_or(p)
}

/// Profile names become directory names: keep them to a safe alphabet.
pub(crate) fn validate_profile(name: &str) -> Result<(), CliError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(CliError::usage(format!("invalid profile name `{name}`"))
            .with_hint("use letters, digits, `-`, `_` and `.` (not first), at most 64 characters"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_names() {
        for good in ["default", "alice", "qa-1", "bob_2", "a.b"] {
            assert!(validate_profile(good).is_ok(), "{good}");
        }
        for bad in ["", "..", ".hidden", "a/b", "a b", "ü", &"x".repeat(65)] {
            assert!(validate_profile(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::validate_profile;

    proptest! {
        /// An accepted profile name is one safe path component.
        #[test]
        fn profile_names_are_safe_path_components(s in "\\PC{0,80}") {
            if validate_profile(&s).is_ok() {
                prop_assert!(!s.contains('/') && !s.contains('\\') && s != "." && s != "..");
                let path = std::path::Path::new(&s);
                prop_assert_eq!(path.components().count(), 1);
            }
        }
    }
}
