//! The one error type of this crate, with one stable reason code per variant.

use hermetic_envelope::EnvelopeError;

/// Why a custody operation was refused.
///
/// [`reason`](Error::reason) gives a stable snake_case code for the wire and the log. No
/// message contains key material, a share or plaintext: only indexes, lengths, PCR indexes and
/// fingerprints (which are public).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The threshold is outside `1..=custodians` or there are more than
    /// [`MAX_CUSTODIANS`](crate::MAX_CUSTODIANS) custodians.
    #[error(
        "threshold {threshold} of {custodians} custodians is not allowed (1 <= K <= N <= {max})"
    )]
    InvalidThreshold {
        /// K.
        threshold: usize,
        /// N.
        custodians: usize,
        /// The largest N.
        max: usize,
    },
    /// K = 1 lets any single custodian restore the key: development only, asked for explicitly.
    #[error(
        "a threshold of 1 lets one custodian restore the key; it is allowed only for development"
    )]
    SingleCustodianThreshold,
    /// The same custodian key appears twice (it would hold two shares).
    #[error("custodian {fingerprint} is listed more than once")]
    DuplicateCustodian {
        /// Its fingerprint.
        fingerprint: String,
    },
    /// A deployment id is empty, too long or not printable ASCII.
    #[error("the deployment id must be 1 to {max} printable ASCII characters")]
    InvalidDeployment {
        /// Longest accepted id.
        max: usize,
    },
    /// The random number generator failed; nothing was produced.
    #[error("the random number generator failed")]
    RandomFailed,
    /// The secret-sharing library refused (never expected with validated parameters).
    #[error("secret sharing failed")]
    SharingFailed,
    /// A custodian public key string is malformed.
    #[error("custodian public key: {0}")]
    BadCustodianPublicKey(&'static str),
    /// A custodian private key file is malformed.
    #[error("custodian private key file: {0}")]
    BadCustodianKeyFile(&'static str),
    /// A genesis record is malformed or inconsistent.
    #[error("genesis record: {0}")]
    BadGenesisRecord(&'static str),
    /// A protocol message is malformed.
    #[error("message: {0}")]
    BadMessage(&'static str),
    /// A pinned-measurements file is malformed.
    #[error("measurements file: {0}")]
    BadMeasurements(String),
    /// The pinned measurements name neither PCR0, nor PCR8, nor both PCR1 and PCR2.
    #[error("the pinned measurements do not identify an enclave image (name PCR0, PCR8, or PCR1 and PCR2)")]
    MeasurementsDoNotPinImage,
    /// This custodian's key holds no share in the genesis record.
    #[error("custodian {fingerprint} holds no share in this genesis record")]
    NotACustodian {
        /// The custodian's fingerprint.
        fingerprint: String,
    },
    /// Sealing to a recipient failed.
    #[error("sealing failed: {0}")]
    Seal(EnvelopeError),
    /// A custodian's own share did not open with its key: not its share, or altered.
    #[error("the custodian's share did not open (wrong key, wrong record, or altered)")]
    ShareOpenFailed,
    /// The attestation document did not verify (chain, root, signature, encoding).
    #[error("attestation document refused: {0}")]
    Attestation(hermetic_attestation::Error),
    /// The document comes from a debug-mode enclave (PCR0-2 all zero): its memory is open to
    /// the parent instance.
    #[error("the enclave runs in debug mode")]
    DebugEnclave,
    /// A PCR differs from the pinned value, or from the peer's own.
    #[error("PCR{index} differs from the expected measurement")]
    PcrMismatch {
        /// The first PCR that differs.
        index: u8,
    },
    /// The document is older than allowed.
    #[error("the document is {age_secs}s old; at most {max_secs}s is allowed")]
    DocumentTooOld {
        /// Its age.
        age_secs: u64,
        /// The limit.
        max_secs: u64,
    },
    /// The document's timestamp is ahead of the given time by more than the allowed skew.
    #[error("the document's timestamp is in the future")]
    DocumentFromFuture,
    /// The document carries no (or an empty) public key.
    #[error("the document carries no public key")]
    PublicKeyMissing,
    /// The document's public key is not an X25519 HPKE key (32 bytes).
    #[error("the document's public key is {len} bytes, not a 32-byte X25519 HPKE key")]
    PublicKeyNotHpke {
        /// Its length.
        len: usize,
    },
    /// The document carries no nonce where one is required.
    #[error("the document carries no nonce")]
    NonceMissing,
    /// The document's nonce is not the one that was asked for.
    #[error("the document's nonce is not the challenge that was issued")]
    NonceMismatch,
    /// The document's user data does not bind the peer's document as required.
    #[error("the document's user data does not bind the expected peer document")]
    BindingMismatch,
    /// A message names another genesis (or deployment) than the one in use.
    #[error("the message belongs to another genesis")]
    WrongGenesis,
    /// A re-sealed share names a share index the record does not have.
    #[error("share index {index} is not in the genesis record")]
    UnknownShareIndex {
        /// The index named.
        index: u8,
    },
    /// A re-sealed share is bound to a document this enclave did not produce.
    #[error("the share is bound to an attestation document this enclave did not issue")]
    UnknownDocument,
    /// A re-sealed share did not open with this enclave's key: sealed to another key or altered.
    #[error("the re-sealed share did not open with this enclave's key")]
    ResealedShareOpenFailed,
    /// A re-sealed share opened but is not the share the genesis recorded for its index
    /// (made up by whoever sealed it to this enclave's public key).
    #[error("share {index} does not match its check value in the genesis record")]
    ShareCheckFailed {
        /// Its index.
        index: u8,
    },
    /// K shares combined to a key that does not match the genesis commitment: a share was
    /// wrong. The collected shares are discarded.
    #[error("the combined key does not match the genesis commitment; shares discarded")]
    CommitmentMismatch,
    /// The key is already unsealed; no more shares are taken.
    #[error("the key is already unsealed")]
    AlreadyUnsealed,
    /// A forwarding challenge is not one this responder issued, or was already used.
    #[error("the challenge is unknown or already used")]
    ChallengeUnknown,
    /// A forwarding challenge expired before it was answered.
    #[error("the challenge expired")]
    ChallengeExpired,
    /// Too many forwarding challenges are outstanding.
    #[error("too many outstanding challenges")]
    ChallengeCapacity,
    /// The forwarded key did not open with the joiner's key, or was altered.
    #[error("the forwarded key did not open")]
    ForwardOpenFailed,
}

impl Error {
    /// Stable snake_case code.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::InvalidThreshold { .. } => "invalid_threshold",
            Error::SingleCustodianThreshold => "single_custodian_threshold",
            Error::DuplicateCustodian { .. } => "duplicate_custodian",
            Error::InvalidDeployment { .. } => "invalid_deployment",
            Error::RandomFailed => "rng_failed",
            Error::SharingFailed => "sharing_failed",
            Error::BadCustodianPublicKey(_) => "bad_custodian_public_key",
            Error::BadCustodianKeyFile(_) => "bad_custodian_key_file",
            Error::BadGenesisRecord(_) => "bad_genesis_record",
            Error::BadMessage(_) => "bad_request",
            Error::BadMeasurements(_) => "bad_measurements",
            Error::MeasurementsDoNotPinImage => "measurements_do_not_pin_image",
            Error::NotACustodian { .. } => "not_a_custodian",
            Error::Seal(e) => e.reason(),
            Error::ShareOpenFailed => "share_open_failed",
            Error::Attestation(e) => e.reason(),
            Error::DebugEnclave => "debug_enclave",
            Error::PcrMismatch { .. } => "pcr_mismatch",
            Error::DocumentTooOld { .. } => "document_too_old",
            Error::DocumentFromFuture => "document_from_future",
            Error::PublicKeyMissing => "public_key_missing",
            Error::PublicKeyNotHpke { .. } => "public_key_not_hpke",
            Error::NonceMissing => "nonce_missing",
            Error::NonceMismatch => "nonce_mismatch",
            Error::BindingMismatch => "binding_mismatch",
            Error::WrongGenesis => "wrong_genesis",
            Error::UnknownShareIndex { .. } => "unknown_share_index",
            Error::UnknownDocument => "unknown_document",
            Error::ResealedShareOpenFailed => "resealed_share_open_failed",
            Error::ShareCheckFailed { .. } => "share_check_failed",
            Error::CommitmentMismatch => "commitment_mismatch",
            Error::AlreadyUnsealed => "already_unsealed",
            Error::ChallengeUnknown => "challenge_unknown",
            Error::ChallengeExpired => "challenge_expired",
            Error::ChallengeCapacity => "challenge_capacity",
            Error::ForwardOpenFailed => "forward_open_failed",
        }
    }
}
