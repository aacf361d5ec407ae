//! What a verified document must also satisfy before anything is released
//! to it, or before an auditor calls it valid: expected PCRs, the challenge
//! nonce, the document's age and the debug-mode rule. Pure functions; the
//! caller supplies the time. The policy file itself is `hermetic-policy`'s,
//! shared with `hermetic-eif`.

use std::time::Duration;

use hermetic_attestation::{rfc3339_ms, Document};

pub use hermetic_policy::{
    check_secret_name, Error as PolicyFileError, PolicyFile, SecretPolicy, DEFAULT_MAX_AGE,
    POLICY_PCRS,
};

/// SHA-256 over every policy in canonical form: for each name in byte order,
/// the text `hermetic-verifier policy get NAME` prints (a policy file holding
/// that one `[secrets.NAME]`, written by `hermetic-policy`: fields explicit,
/// PCRs by index), concatenated. An auditor recomputes it with
/// `for n in $(policy list | LC_ALL=C sort); do policy get $n; done | sha256sum`.
/// No policies: SHA-256 of nothing.
pub fn policy_digest<'a>(
    policies: impl IntoIterator<Item = (&'a str, &'a SecretPolicy)>,
) -> [u8; 32] {
    let mut sorted: Vec<(&str, &SecretPolicy)> = policies.into_iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for (name, policy) in sorted {
        ctx.update(policy.to_toml(name).as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// How far a document's timestamp may run ahead of the verifier's clock.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// A refusal by policy. `reason()` codes are stable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    #[error("debug-mode enclave (PCR0, PCR1 and PCR2 are all zero): its memory is readable by the parent and it proves no image")]
    DebugEnclave,
    #[error("PCR{index} is {actual}, expected {expected}")]
    PcrMismatch {
        index: u8,
        expected: String,
        actual: String,
    },
    #[error("no allowed measurement set matches the document's PCRs")]
    NoMeasurementMatches,
    #[error("the document carries no nonce, and one is required")]
    NonceMissing,
    #[error("the document's nonce is not the expected one")]
    NonceMismatch,
    #[error("the document is {age_secs} s old; at most {max_secs} s is allowed")]
    DocumentTooOld { age_secs: u64, max_secs: u64 },
    #[error("the document's timestamp {timestamp} is ahead of the verifier's clock")]
    DocumentFromFuture { timestamp: String },
}

impl PolicyError {
    pub fn reason(&self) -> &'static str {
        match self {
            PolicyError::DebugEnclave => "debug_enclave",
            PolicyError::PcrMismatch { .. } | PolicyError::NoMeasurementMatches => "pcr_mismatch",
            PolicyError::NonceMissing => "nonce_missing",
            PolicyError::NonceMismatch => "nonce_mismatch",
            PolicyError::DocumentTooOld { .. } => "document_too_old",
            PolicyError::DocumentFromFuture { .. } => "document_from_future",
        }
    }
}

/// Expected PCR values by index (any subset of 0..=31).
pub type Measurements = hermetic_policy::Pcrs;

/// Debug-mode enclaves are refused unless explicitly allowed.
pub fn check_debug(doc: &Document, allow_debug: bool) -> Result<(), PolicyError> {
    if doc.is_debug_mode() && !allow_debug {
        return Err(PolicyError::DebugEnclave);
    }
    Ok(())
}

/// Every expected PCR must be present with exactly the expected value.
pub fn check_pcrs(doc: &Document, expected: &Measurements) -> Result<(), PolicyError> {
    match hermetic_policy::mismatches(expected, &doc.pcrs)
        .into_iter()
        .next()
    {
        None => Ok(()),
        Some(diff) => Err(PolicyError::PcrMismatch {
            index: diff.index,
            expected: hex::encode(diff.expected),
            actual: diff
                .actual
                .map(hex::encode)
                .unwrap_or_else(|| "absent".into()),
        }),
    }
}

/// A secret's policy against a document: the debug rule, then the
/// measurement sets (every PCR of at least one must match). With a single
/// set the mismatch names the PCR; with several it says that none matched.
pub fn check_document(policy: &SecretPolicy, doc: &Document) -> Result<(), PolicyError> {
    check_debug(doc, policy.allow_debug)?;
    let mut first_error = None;
    for set in &policy.measurements {
        match check_pcrs(doc, set) {
            Ok(()) => return Ok(()),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match (policy.measurements.len(), first_error) {
        (1, Some(e)) => Err(e),
        _ => Err(PolicyError::NoMeasurementMatches),
    }
}

/// The document must carry exactly `expected`. (Nonces are public
/// challenges, not secrets: a plain comparison is enough.)
pub fn check_nonce(doc: &Document, expected: &[u8]) -> Result<(), PolicyError> {
    let got = doc.nonce.as_deref().ok_or(PolicyError::NonceMissing)?;
    if got != expected {
        return Err(PolicyError::NonceMismatch);
    }
    Ok(())
}

/// The document must be at most `max_age` old at `now_ms` and not from the
/// future (beyond [`CLOCK_SKEW`]).
pub fn check_age(doc: &Document, now_ms: u64, max_age: Duration) -> Result<(), PolicyError> {
    let skew_ms = CLOCK_SKEW.as_millis() as u64;
    if doc.timestamp_ms > now_ms.saturating_add(skew_ms) {
        return Err(PolicyError::DocumentFromFuture {
            timestamp: rfc3339_ms(doc.timestamp_ms),
        });
    }
    let age_ms = now_ms.saturating_sub(doc.timestamp_ms);
    if u128::from(age_ms) > max_age.as_millis() {
        return Err(PolicyError::DocumentTooOld {
            age_secs: age_ms / 1000,
            max_secs: max_age.as_secs(),
        });
    }
    Ok(())
}
