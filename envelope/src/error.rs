//! The one error type of this crate.

/// Why an envelope or wire operation was refused.
///
/// Every variant has a stable snake_case [`reason`](EnvelopeError::reason) code, suitable for
/// [`Refusal::reason`](crate::wire::Refusal) and for logs. No message ever contains plaintext,
/// key material or ciphertext bytes: only names, versions, lengths and field names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The input keying material handed to [`EnclaveKey::from_ikm`](crate::EnclaveKey::from_ikm)
    /// is shorter than [`MIN_IKM_LEN`](crate::MIN_IKM_LEN).
    #[error("input keying material is {actual} bytes; at least {min} are required")]
    IkmTooShort {
        /// Length that was supplied.
        actual: usize,
        /// Minimum accepted length.
        min: usize,
    },

    /// A recipient public key was not exactly [`PUBLIC_KEY_LEN`](crate::PUBLIC_KEY_LEN) bytes.
    #[error("recipient public key is {actual} bytes; an X25519 public key is {expected}")]
    InvalidPublicKeyLength {
        /// Length that was supplied.
        actual: usize,
        /// The only accepted length.
        expected: usize,
    },

    /// The encoded [`ReleaseContext`](crate::ReleaseContext) (name and nonce) is larger than
    /// [`MAX_NAME_LEN`](crate::MAX_NAME_LEN) / [`MAX_NONCE_LEN`](crate::MAX_NONCE_LEN) allow.
    #[error("release context {field} is {actual} bytes; at most {max} are allowed")]
    ContextTooLarge {
        /// `"name"` or `"nonce"`.
        field: &'static str,
        /// Length that was supplied.
        actual: usize,
        /// Maximum accepted length.
        max: usize,
    },

    /// The random number generator failed; nothing was sealed or generated.
    #[error("the random number generator failed")]
    RandomFailed,

    /// HPKE encapsulation to the recipient key failed (for example a low-order X25519 point,
    /// whose Diffie-Hellman result is all zeros).
    #[error("could not seal to the recipient public key")]
    SealFailed,

    /// The sealed secret carries a different name than the one the opener asked for.
    #[error("sealed secret is named {sealed:?}, but {expected:?} was requested")]
    NameMismatch {
        /// Name carried by the sealed secret.
        sealed: String,
        /// Name the opener asked for.
        expected: String,
    },

    /// The sealed secret carries a different version than the one the opener asked for.
    #[error("sealed secret has version {sealed}, but version {expected} was requested")]
    VersionMismatch {
        /// Version carried by the sealed secret.
        sealed: u64,
        /// Version the opener asked for.
        expected: u64,
    },

    /// Decapsulation or AEAD decryption failed: wrong key, wrong context (name, version or
    /// nonce), or an `enc`/`ciphertext` that was altered or truncated. Deliberately says no more.
    #[error("the sealed secret could not be opened")]
    OpenFailed,

    /// A field that must be standard (padded) base64 was not.
    #[error("field {field} is not valid standard base64")]
    InvalidBase64 {
        /// Name of the JSON field.
        field: &'static str,
    },

    /// A field that must be lower-case hex was not.
    #[error("field {field} is not valid lower-case hex")]
    InvalidHex {
        /// Name of the JSON field.
        field: &'static str,
    },
}

impl EnvelopeError {
    /// Stable snake_case code for this error. These strings are part of the API: the verifier
    /// sends them in [`Refusal::reason`](crate::wire::Refusal) and tests match on them.
    pub fn reason(&self) -> &'static str {
        match self {
            EnvelopeError::IkmTooShort { .. } => "envelope_ikm_too_short",
            EnvelopeError::InvalidPublicKeyLength { .. } => "envelope_bad_public_key",
            EnvelopeError::ContextTooLarge { .. } => "envelope_context_too_large",
            EnvelopeError::RandomFailed => "envelope_rng_failed",
            EnvelopeError::SealFailed => "envelope_seal_failed",
            EnvelopeError::NameMismatch { .. } => "envelope_name_mismatch",
            EnvelopeError::VersionMismatch { .. } => "envelope_version_mismatch",
            EnvelopeError::OpenFailed => "envelope_open_failed",
            EnvelopeError::InvalidBase64 { .. } => "envelope_bad_base64",
            EnvelopeError::InvalidHex { .. } => "envelope_bad_hex",
        }
    }
}
