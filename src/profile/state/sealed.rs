//! Values sealed with the database's store cipher: every value in
//! `state.sqlite3` is one of these.

use matrix_sdk_store_encryption::{EncryptedValueBase64, StoreCipher};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{CliError, CliResult};

/// Encrypts a value's JSON.
pub(super) fn seal<T: Serialize>(cipher: &StoreCipher, value: &T) -> CliResult<Vec<u8>> {
    let plain =
        serde_json::to_vec(value).map_err(|e| CliError::internal("could not serialise state").with_source(e))?;
    seal_plain(cipher, plain)
}

pub(super) fn seal_plain(cipher: &StoreCipher, plain: Vec<u8>) -> CliResult<Vec<u8>> {
    let sealed = cipher
        .encrypt_value_base64_data(plain)
        .map_err(|e| CliError::internal("could not encrypt state").with_source(e))?;
    serde_json::to_vec(&sealed).map_err(|e| CliError::internal("could not serialise state").with_source(e))
}

pub(super) fn open_plain(cipher: &StoreCipher, bytes: &[u8]) -> Result<Vec<u8>, String> {
    let sealed: EncryptedValueBase64 = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    cipher.decrypt_value_base64_data(sealed).map_err(|e| e.to_string())
}

pub(super) fn open_sealed<T: DeserializeOwned>(cipher: &StoreCipher, bytes: &[u8]) -> Result<T, String> {
    let plain = open_plain(cipher, bytes)?;
    serde_json::from_slice(&plain).map_err(|e| e.to_string())
}
