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
    /// In memory only: on disk the tokens are in `sealed_tokens`. (Read
    /// from a file of a ratchet before issue 31, which kept them in clear;
    /// the next command seals them.)
    #[serde(default, skip_serializing)]
    pub(crate) access_token: String,
    #[serde(default, skip_serializing)]
    pub(crate) refresh_token: Option<String>,
    /// The access and refresh tokens, encrypted under the store secret
    /// (the key in `store.key`, or the passphrase): never in clear on disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) sealed_tokens: Option<SealedTokens>,
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
    /// A login through OAuth 2.0 (next-generation auth, `login --oauth`):
    /// the client the authorization server registered, which refreshes the
    /// access token and revokes it at logout. Absent: a Matrix login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) oauth: Option<OAuthClient>,
}

/// What an OAuth 2.0 login keeps beyond its tokens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OAuthClient {
    /// The id dynamic client registration gave (RFC 7591).
    pub(crate) client_id: String,
}

/// The tokens as `session.json` keeps them: a store cipher of their own
/// (exported under the store secret, as the state database's is), and the
/// tokens' JSON encrypted with it. Kept beside the session rather than in
/// the state database, so that losing that database never loses the login.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct SealedTokens {
    /// The exported cipher, in hex.
    cipher: String,
    /// A `matrix_sdk_store_encryption::EncryptedValueBase64`.
    tokens: serde_json::Value,
}

#[derive(Serialize, Deserialize)]
struct Tokens {
    access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

/// Why sealed tokens did not open.
#[derive(Debug)]
pub(crate) enum Unseal {
    /// The secret does not open them (a wrong passphrase).
    WrongSecret,
    /// The file's tokens are damaged.
    Damaged(String),
}

impl SessionFile {
    /// The file's tokens sealed under `secret`, for saving.
    pub(crate) fn sealed(&self, secret: &StoreSecret) -> Result<SessionFile, String> {
        use matrix_sdk_store_encryption::StoreCipher;
        let cipher = StoreCipher::new().map_err(|e| e.to_string())?;
        let exported = match secret {
            StoreSecret::Key(key) => cipher.export_with_key(key),
            StoreSecret::Passphrase(p) => cipher.export(p.expose()),
        }
        .map_err(|e| e.to_string())?;
        let plain = Zeroizing::new(
            serde_json::to_vec(&Tokens {
                access_token: self.access_token.clone(),
                refresh_token: self.refresh_token.clone(),
            })
            .map_err(|e| e.to_string())?,
        );
        let tokens = cipher.encrypt_value_base64_data(plain.to_vec()).map_err(|e| e.to_string())?;
        let tokens = serde_json::to_value(&tokens).map_err(|e| e.to_string())?;
        let mut sealed = self.clone();
        sealed.sealed_tokens = Some(SealedTokens { cipher: hex(&exported), tokens });
        Ok(sealed)
    }

    /// Whether the file keeps its tokens in clear (an older ratchet's).
    pub(crate) fn tokens_in_clear(&self) -> bool {
        self.sealed_tokens.is_none() && !self.access_token.is_empty()
    }

    /// Opens the sealed tokens with `secret` (a file with them in clear is
    /// left as it is).
    pub(crate) fn unseal(&mut self, secret: &StoreSecret) -> Result<(), Unseal> {
        use matrix_sdk_store_encryption::StoreCipher;
        let Some(sealed) = &self.sealed_tokens else {
            return if self.access_token.is_empty() { Err(Unseal::Damaged("no access token".into())) } else { Ok(()) };
        };
        let exported = unhex(&sealed.cipher).ok_or_else(|| Unseal::Damaged("the sealed tokens' cipher".into()))?;
        let cipher = match secret {
            StoreSecret::Key(key) => StoreCipher::import_with_key(key, &exported),
            StoreSecret::Passphrase(p) => StoreCipher::import(p.expose(), &exported),
        }
        .map_err(|_| Unseal::WrongSecret)?;
        let plain = Zeroizing::new(
            cipher
                .decrypt_value_base64_data(
                    serde_json::from_value(sealed.tokens.clone()).map_err(|e| Unseal::Damaged(e.to_string()))?,
                )
                .map_err(|e| Unseal::Damaged(e.to_string()))?,
        );
        let tokens: Tokens = serde_json::from_slice(&plain).map_err(|e| Unseal::Damaged(e.to_string()))?;
        self.access_token = tokens.access_token;
        self.refresh_token = tokens.refresh_token;
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
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
        sealed_tokens: None,
        identity_key: "key".into(),
        store_secret: StoreSecretSource::File,
        isolation: None,
        setup_pending: false,
        oauth: None,
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
