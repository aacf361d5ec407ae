//! JSON wire types of the release API, shared by the verifier (server) and the enclave (client).
//!
//! Field names are part of the protocol and pinned by tests. Unknown fields are ignored when
//! reading, so either side may add optional fields later.
//!
//! 1. `POST /challenge` answers [`ChallengeResponse`].
//! 2. `POST /release` takes [`ReleaseRequest`] and answers [`ReleaseResponse`].
//! 3. Every non-2xx answer carries a [`Refusal`].

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::{EnvelopeError, SealedSecret};

/// A fresh challenge nonce for the enclave to put into its attestation document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChallengeResponse {
    /// The nonce, lower-case hex.
    pub nonce: String,
    /// When the nonce stops being accepted, RFC 3339 (for example `2026-11-27T08:00:00Z`).
    pub expires_at: String,
}

impl ChallengeResponse {
    /// Builds a response from raw nonce bytes (hex-encoded here) and an RFC 3339 timestamp.
    pub fn new(nonce: &[u8], expires_at: impl Into<String>) -> Self {
        ChallengeResponse {
            nonce: hex::encode(nonce),
            expires_at: expires_at.into(),
        }
    }

    /// The raw nonce bytes. Only lower-case hex is accepted.
    pub fn nonce_bytes(&self) -> Result<Vec<u8>, EnvelopeError> {
        decode_lower_hex("nonce", &self.nonce)
    }
}

/// The enclave's request for secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleaseRequest {
    /// The NSM attestation document (COSE_Sign1, CBOR), standard padded base64.
    pub attestation_document: String,
    /// Names of the secrets asked for.
    pub secrets: Vec<String>,
}

impl ReleaseRequest {
    /// Builds a request from the raw attestation document (base64-encoded here).
    pub fn new(attestation_document: &[u8], secrets: Vec<String>) -> Self {
        ReleaseRequest {
            attestation_document: STANDARD.encode(attestation_document),
            secrets,
        }
    }

    /// The raw attestation document.
    pub fn attestation_document_bytes(&self) -> Result<Vec<u8>, EnvelopeError> {
        decode_base64("attestation_document", &self.attestation_document)
    }
}

/// The verifier's answer to a granted [`ReleaseRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleaseResponse {
    /// One entry per released secret.
    pub secrets: Vec<WrappedSecret>,
    /// Proof that the grant is in the verifier's transparency log (absent
    /// from verifiers that predate it; enclaves that pin a log key refuse
    /// an answer without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
}

/// A release's log receipt: the signed checkpoint that covers the
/// release's own record, the record's leaf index, the record itself (the
/// leaf bytes, JSON) and the RFC 6962 inclusion proof (standard base64
/// hashes, leaf's sibling first), as in a C2SP tlog-proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Receipt {
    /// The signed checkpoint note (c2sp.org/tlog-checkpoint).
    pub checkpoint: String,
    /// The record's leaf index.
    pub index: u64,
    /// The leaf: the release record's JSON, exactly as hashed.
    pub leaf: String,
    /// The inclusion proof, one base64 SHA-256 hash each.
    pub proof: Vec<String>,
}

/// A [`SealedSecret`] on the wire: `enc` and `ciphertext` in standard padded base64.
///
/// `version` is a JSON number; values above 2^53 do not survive JavaScript clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WrappedSecret {
    /// Name of the secret.
    pub name: String,
    /// Version of the secret.
    pub version: u64,
    /// HPKE encapsulated key, base64.
    pub enc: String,
    /// AEAD ciphertext with tag, base64.
    pub ciphertext: String,
}

impl From<&SealedSecret> for WrappedSecret {
    fn from(sealed: &SealedSecret) -> Self {
        WrappedSecret {
            name: sealed.name.clone(),
            version: sealed.version,
            enc: STANDARD.encode(&sealed.enc),
            ciphertext: STANDARD.encode(&sealed.ciphertext),
        }
    }
}

impl From<SealedSecret> for WrappedSecret {
    fn from(sealed: SealedSecret) -> Self {
        WrappedSecret::from(&sealed)
    }
}

impl TryFrom<&WrappedSecret> for SealedSecret {
    type Error = EnvelopeError;

    /// Fails with [`EnvelopeError::InvalidBase64`] naming the field (`enc` or `ciphertext`).
    fn try_from(wrapped: &WrappedSecret) -> Result<Self, EnvelopeError> {
        Ok(SealedSecret {
            name: wrapped.name.clone(),
            version: wrapped.version,
            enc: decode_base64("enc", &wrapped.enc)?,
            ciphertext: decode_base64("ciphertext", &wrapped.ciphertext)?,
        })
    }
}

impl TryFrom<WrappedSecret> for SealedSecret {
    type Error = EnvelopeError;

    fn try_from(wrapped: WrappedSecret) -> Result<Self, EnvelopeError> {
        SealedSecret::try_from(&wrapped)
    }
}

/// The refusal reasons that name a passing condition on the verifier's
/// side, which the verifier sends and the enclave retries on (with a fresh
/// challenge). Both sides use these constants, so that a reason cannot be
/// renamed on one side only.
pub mod reason {
    /// The verifier does not know the nonce: it restarted (its nonce book
    /// is in memory) or another instance answered.
    pub const NONCE_UNKNOWN: &str = "nonce_unknown";
    /// The nonce expired before the release arrived.
    pub const NONCE_EXPIRED: &str = "nonce_expired";
    /// Too many outstanding challenges.
    pub const CHALLENGE_CAPACITY: &str = "challenge_capacity";
    /// Too many unused challenges for this address (every enclave behind
    /// one parent shares it); they expire.
    pub const TOO_MANY_OUTSTANDING_NONCES: &str = "too_many_outstanding_nonces";
    /// The verifier's random number generator failed.
    pub const RNG_FAILED: &str = "rng_failed";
    /// Too many requests from this address.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// The request took longer than the verifier's time limit.
    pub const TIMEOUT: &str = "timeout";
    /// The secret store could not be read.
    pub const STORE_ERROR: &str = "store_error";
    /// The audit log could not be written (nothing is released unlogged).
    pub const AUDIT_LOG_UNAVAILABLE: &str = "audit_log_unavailable";
    /// Fewer than the required witnesses cosigned the checkpoint holding
    /// the release record in time (`serve --witness-threshold`): the record
    /// is logged, the secrets are not sent. A retry passes once enough
    /// witnesses answer again.
    pub const WITNESS_UNAVAILABLE: &str = "witness_unavailable";
    /// The verifier failed inside (a task panicked).
    pub const INTERNAL_ERROR: &str = "internal_error";
}

/// Every reason in [`reason`]: a fresh attempt may succeed. Every other
/// reason the verifier sends is final for this enclave (its measurements,
/// its document or its request would be refused again).
pub const TRANSIENT_REASONS: [&str; 11] = [
    reason::NONCE_UNKNOWN,
    reason::NONCE_EXPIRED,
    reason::CHALLENGE_CAPACITY,
    reason::TOO_MANY_OUTSTANDING_NONCES,
    reason::RNG_FAILED,
    reason::RATE_LIMITED,
    reason::TIMEOUT,
    reason::STORE_ERROR,
    reason::AUDIT_LOG_UNAVAILABLE,
    reason::WITNESS_UNAVAILABLE,
    reason::INTERNAL_ERROR,
];

/// Whether a refusal with this HTTP status and reason may pass if tried
/// again with a fresh challenge: a transient reason, rate limiting (429),
/// or any server-side failure (5xx, including a proxy's answer without a
/// [`Refusal`] body).
pub fn is_transient(status: u16, reason: &str) -> bool {
    status == 429 || status >= 500 || TRANSIENT_REASONS.contains(&reason)
}

/// Body of every non-2xx answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Stable snake_case code, for programs (for example `envelope_bad_public_key`).
    pub reason: String,
    /// Human-readable explanation, for people. Never contains secrets.
    pub message: String,
    /// The verifier's id of the request (32 hex characters), also in its
    /// log line, its `x-request-id` header and its audit record, so an
    /// operator can join them. Absent from older verifiers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl Refusal {
    /// Builds a refusal.
    pub fn new(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Refusal {
            reason: reason.into(),
            message: message.into(),
            request_id: None,
        }
    }
}

impl From<&EnvelopeError> for Refusal {
    fn from(err: &EnvelopeError) -> Self {
        Refusal::new(err.reason(), err.to_string())
    }
}

impl From<EnvelopeError> for Refusal {
    fn from(err: EnvelopeError) -> Self {
        Refusal::from(&err)
    }
}

fn decode_base64(field: &'static str, text: &str) -> Result<Vec<u8>, EnvelopeError> {
    STANDARD
        .decode(text)
        .map_err(|_| EnvelopeError::InvalidBase64 { field })
}

fn decode_lower_hex(field: &'static str, text: &str) -> Result<Vec<u8>, EnvelopeError> {
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(EnvelopeError::InvalidHex { field });
    }
    hex::decode(text).map_err(|_| EnvelopeError::InvalidHex { field })
}
