//! The release decision: document bytes, the secrets asked for, their
//! policies, the nonce book and the time in; a grant or a typed refusal out.
//!
//! No I/O and no clock reads happen here (the caller passes `now`), so every
//! branch is tested directly, without a server. The checks run in this order
//! and the first failure is the answer:
//!
//! 1. the request itself (at least one name, not too many, each a valid
//!    secret name, no duplicates);
//! 2. the attestation core: chain to a trusted root, validity at `now`,
//!    ES384 signature;
//! 3. the nonce: ours, unexpired, unused, consumed atomically;
//! 4. every name is a known secret that has a policy (after attestation, so
//!    that unauthenticated callers cannot probe which names exist);
//! 5. the document's age against every requested secret's `max_age`;
//! 6. each secret's policy: debug rule, then its measurement sets;
//! 7. the document carries a usable public key to seal to (absent and
//!    present-but-empty are both `public_key_missing`).
//!
//! A request is all or nothing: one refused secret refuses the request.

use std::collections::BTreeSet;
use std::time::Duration;

use hermetic_attestation::{At, Document, UnixTime, Verifier};
use hermetic_envelope::{EnvelopeError, RecipientPublicKey};

use crate::challenge::{NonceBook, NonceError};
use crate::policy::{check_age, check_document, check_secret_name, PolicyError, SecretPolicy};

/// Most secrets one request may ask for.
pub const MAX_SECRETS_PER_REQUEST: usize = 64;

/// What the catalog knows about a requested name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// No such secret.
    Unknown,
    /// The secret exists but no policy names it: nothing may receive it.
    NoPolicy,
    Policy(SecretPolicy),
    /// The secret's stored rows were altered (`rolled_back: false`) or put
    /// back from an older state (`true`) outside the verifier.
    RowRefused {
        rolled_back: bool,
    },
}

/// Why a release was refused. `reason()` codes are stable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseError {
    #[error("the request names no secret")]
    NoSecretsRequested,
    #[error("the request names {count} secrets; at most {max} are allowed")]
    TooManySecrets { count: usize, max: usize },
    #[error("secret name number {index} is invalid: {reason}")]
    InvalidSecretName { index: usize, reason: &'static str },
    #[error("the request names secret {name:?} twice")]
    DuplicateSecret { name: String },
    #[error("attestation refused: {0}")]
    Attestation(hermetic_attestation::Error),
    #[error(
        "the document carries no nonce (or an empty one), and a requested secret requires one"
    )]
    NonceMissing,
    #[error(transparent)]
    Nonce(NonceError),
    #[error("no secret named {name:?}")]
    UnknownSecret { name: String },
    #[error("secret {name:?} has no release policy, so nothing may receive it")]
    NoPolicy { name: String },
    #[error("secret {name:?}: {error}")]
    Policy { name: String, error: PolicyError },
    #[error("secret {name:?}: its stored rows were {} outside the verifier, so it is not released", if *rolled_back { "rolled back" } else { "altered" })]
    StoredRow { name: String, rolled_back: bool },
    #[error("the document carries no public key (absent or empty) to seal the secrets to")]
    PublicKeyMissing,
    #[error("the document's public key is unusable: {0}")]
    PublicKey(EnvelopeError),
}

impl ReleaseError {
    pub fn reason(&self) -> &'static str {
        match self {
            ReleaseError::NoSecretsRequested => "no_secrets_requested",
            ReleaseError::TooManySecrets { .. } => "too_many_secrets",
            ReleaseError::InvalidSecretName { .. } => "invalid_name",
            ReleaseError::DuplicateSecret { .. } => "duplicate_secret",
            ReleaseError::Attestation(e) => e.reason(),
            ReleaseError::NonceMissing => "nonce_missing",
            ReleaseError::Nonce(e) => e.reason(),
            ReleaseError::UnknownSecret { .. } => "unknown_secret",
            ReleaseError::NoPolicy { .. } => "no_policy",
            ReleaseError::Policy { error, .. } => error.reason(),
            ReleaseError::StoredRow {
                rolled_back: true, ..
            } => "row_rolled_back",
            ReleaseError::StoredRow { .. } => "row_tampered",
            ReleaseError::PublicKeyMissing => "public_key_missing",
            ReleaseError::PublicKey(e) => e.reason(),
        }
    }
}

/// A refusal, with what the attestation check established when the refusal
/// came after it (the audit log records who was refused).
#[derive(Debug, Clone)]
pub struct Refused {
    pub error: ReleaseError,
    pub attested: Option<Box<AttestedRequest>>,
}

/// What is known of a request whose document verified.
#[derive(Debug, Clone)]
pub struct AttestedRequest {
    pub document: Document,
    /// SHA-256 of the trusted root the document's chain ended in.
    pub root_sha256: [u8; 32],
    /// Whether this request consumed a fresh nonce of ours before it was
    /// refused. Only such refusals can be recorded one by one without
    /// letting anyone grow the log at will: each used up a challenge, and a
    /// replayed or forged request never consumes one.
    pub nonce_consumed: bool,
}

/// A granted release: what to seal, to whom, bound to which nonce.
#[derive(Debug, Clone)]
pub struct Grant {
    pub document: Document,
    /// SHA-256 of the trusted root the document's chain ended in.
    pub root_sha256: [u8; 32],
    pub recipient: RecipientPublicKey,
    /// The nonce to bind into each envelope (empty when none was required
    /// and the document carries none).
    pub nonce: Vec<u8>,
    pub secrets: Vec<String>,
}

/// Decides a release. `lookup` answers for each requested name.
pub fn decide(
    verifier: &Verifier,
    document: &[u8],
    names: &[String],
    lookup: &dyn Fn(&str) -> Lookup,
    nonces: &NonceBook,
    now: Duration,
) -> Result<Grant, Refused> {
    let refuse = |error| Refused {
        error,
        attested: None,
    };
    if names.is_empty() {
        return Err(refuse(ReleaseError::NoSecretsRequested));
    }
    if names.len() > MAX_SECRETS_PER_REQUEST {
        return Err(refuse(ReleaseError::TooManySecrets {
            count: names.len(),
            max: MAX_SECRETS_PER_REQUEST,
        }));
    }
    for (index, name) in names.iter().enumerate() {
        check_secret_name(name)
            .map_err(|reason| refuse(ReleaseError::InvalidSecretName { index, reason }))?;
    }
    let mut seen = BTreeSet::new();
    for name in names {
        if !seen.insert(name.as_str()) {
            return Err(refuse(ReleaseError::DuplicateSecret { name: name.clone() }));
        }
    }

    let attested = verifier
        .verify(document, At::Time(UnixTime::since_unix_epoch(now)))
        .map_err(|e| refuse(ReleaseError::Attestation(e)))?;
    let doc = attested.document;
    let root_sha256 = attested.root_sha256;
    let mut nonce_consumed = false;
    let refuse = |error, nonce_consumed| Refused {
        error,
        attested: Some(Box::new(AttestedRequest {
            document: doc.clone(),
            root_sha256,
            nonce_consumed,
        })),
    };

    // Resolve names now, because whether a nonce is required is per secret;
    // but answer nonce refusals first (the order callers rely on).
    let policies: Vec<(&String, Lookup)> = names.iter().map(|n| (n, lookup(n))).collect();
    let nonce_required = policies
        .iter()
        .any(|(_, l)| !matches!(l, Lookup::Policy(p) if !p.nonce_required));
    // A present-but-empty nonce answers no challenge (ours are 32 bytes):
    // it is no nonce, for this decision as for the envelope binding.
    let nonce = match doc.nonce.as_ref().filter(|n| !n.is_empty()) {
        Some(nonce) => {
            nonces
                .consume(nonce, now)
                .map_err(|e| refuse(ReleaseError::Nonce(e), false))?;
            nonce_consumed = true;
            nonce.clone()
        }
        None if nonce_required => return Err(refuse(ReleaseError::NonceMissing, false)),
        None => Vec::new(),
    };
    let refuse = |error| refuse(error, nonce_consumed);

    let mut resolved = Vec::with_capacity(policies.len());
    for (name, found) in policies {
        match found {
            Lookup::Unknown => {
                return Err(refuse(ReleaseError::UnknownSecret { name: name.clone() }))
            }
            Lookup::NoPolicy => return Err(refuse(ReleaseError::NoPolicy { name: name.clone() })),
            Lookup::Policy(p) => resolved.push((name, p)),
            Lookup::RowRefused { rolled_back } => {
                return Err(refuse(ReleaseError::StoredRow {
                    name: name.clone(),
                    rolled_back,
                }))
            }
        }
    }
    let now_ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
    for (name, policy) in &resolved {
        check_age(&doc, now_ms, policy.max_age()).map_err(|error| {
            refuse(ReleaseError::Policy {
                name: (*name).clone(),
                error,
            })
        })?;
    }
    for (name, policy) in &resolved {
        check_document(policy, &doc).map_err(|error| {
            refuse(ReleaseError::Policy {
                name: (*name).clone(),
                error,
            })
        })?;
    }
    // A present-but-empty key (the NSM signs one) is no more usable than
    // an absent one, and is refused the same way.
    let key = doc
        .public_key
        .as_deref()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| refuse(ReleaseError::PublicKeyMissing))?;
    let recipient =
        RecipientPublicKey::from_bytes(key).map_err(|e| refuse(ReleaseError::PublicKey(e)))?;
    Ok(Grant {
        root_sha256,
        recipient,
        nonce,
        secrets: names.to_vec(),
        document: doc,
    })
}
