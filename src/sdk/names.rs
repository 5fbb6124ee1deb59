//! ratchet's own names for the SDK's enums that reach the JSON contract:
//! stable snake_case strings, so that a variant renamed in matrix-sdk
//! changes nothing a script reads (a new variant fails to compile here).

use matrix_sdk::deserialized_responses::ToDeviceUnableToDecryptReason as R;

/// Why a to-device event was not decrypted (`to_device.utd_reason`).
pub(crate) fn to_device_utd_reason(reason: &R) -> &'static str {
    match reason {
        R::DecryptionFailure => "decryption_failure",
        R::UnverifiedSenderDevice => "unverified_sender_device",
        R::NoOlmMachine => "no_olm_machine",
        R::EncryptionIsDisabled => "encryption_disabled",
    }
}
