//! The session file and the store secret: what makes a restored client the
//! same device as at login. Nothing here logs a token or a passphrase:
//! `SessionFile`'s and `Secret`'s `Debug` redact them, and secrets held in
//! memory are wiped when dropped (`zeroize`).

use std::fmt;

use matrix_sdk::authentication::matrix::MatrixSession;
use matrix_sdk::ruma::{OwnedDeviceId, OwnedUserId};
use matrix_sdk::{SessionMeta, SessionTokens};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::e2ee::trust::Isolation;

/// A secret string (a password, a passphrase) whose `Debug` never shows it
/// and whose memory is wiped when dropped.
#[derive(Clone)]
pub(crate) struct Secret(Zeroizing<String>);

impl Secret {
    pub(crate) fn new(text: String) -> Secret {
        Secret(Zeroizing::new(text))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// `session.json`: enough to restore the login without the password.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct SessionFile {
    pub(crate) homeserver: String,
    pub(crate) user_id: OwnedUserId,
    pub(crate) device_id: OwnedDeviceId,
    pub(crate) access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) refresh_token: Option<String>,
    /// Our curve25519 identity key at login. A restored store must hold the
    /// same Olm account, or it is not this device's store.
    pub(crate) identity_key: String,
    /// Whether the store is unlocked by the generated key in `store.key` or
    /// by the passphrase in `RATCHET_STORE_PASSPHRASE`.
    pub(crate) store_secret: StoreSecretSource,
    /// The device-isolation mode chosen at login with `--isolation`, if one
    /// was; `--isolation` on a later command overrides it for that command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) isolation: Option<Isolation>,
    /// The login that made this device has not finished its set-up (device
    /// keys, first sync, cross-signing): saved as soon as the server made
    /// the device, so that an interruption never leaves a device (and
    /// perhaps new private cross-signing keys) without its session. The
    /// next `login` finishes it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) setup_pending: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StoreSecretSource {
    File,
    Env,
}

/// What unlocks the store. A generated key is 256 random bits and is used
/// as the store key directly; only a human-chosen passphrase goes through
/// the SDK's PBKDF2 (200,000 rounds for each of the four databases, which
/// would otherwise be paid on every command for no added strength).
#[derive(Clone)]
pub(crate) enum StoreSecret {
    Key(Box<Zeroizing<[u8; 32]>>),
    Passphrase(Secret),
}

impl fmt::Debug for SessionFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionFile")
            .field("homeserver", &self.homeserver)
            .field("user_id", &self.user_id)
            .field("device_id", &self.device_id)
            .field("access_token", &"[redacted]")
            .field("identity_key", &self.identity_key)
            .finish_non_exhaustive()
    }
}

impl SessionFile {
    pub(crate) fn matrix_session(&self) -> MatrixSession {
        MatrixSession {
            meta: SessionMeta { user_id: self.user_id.clone(), device_id: self.device_id.clone() },
            tokens: SessionTokens {
                access_token: self.access_token.clone(),
                refresh_token: self.refresh_token.clone(),
            },
        }
    }
}

/// Generates a fresh store key: 32 random bytes.
pub(crate) fn generate_key() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).expect("the OS random source is available");
    bytes
}

pub(crate) fn key_to_hex(key: &[u8; 32]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn key_from_hex(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(key)
}

/// A session file for unit tests.
#[cfg(test)]
pub(crate) fn sample_session() -> SessionFile {
    SessionFile {
        homeserver: "http://127.0.0.1:8008".into(),
        user_id: "@a:localhost".try_into().unwrap(),
        device_id: "DEV".into(),
        access_token: "syt_secret".into(),
        refresh_token: None,
        identity_key: "key".into(),
        store_secret: StoreSecretSource::File,
        isolation: None,
        setup_pending: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        assert!(!format!("{:?}", sample_session()).contains("syt_secret"));
    }

    #[test]
    fn keys_are_random_and_roundtrip_through_hex() {
        let a = generate_key();
        assert_ne!(a, generate_key());
        let hex = key_to_hex(&a);
        assert_eq!(hex.len(), 64);
        assert_eq!(key_from_hex(&hex), Some(a));
        assert_eq!(key_from_hex(&hex[..63]), None);
        assert_eq!(key_from_hex(&"zz".repeat(32)), None);
    }
}
