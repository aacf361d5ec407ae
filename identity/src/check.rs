//! The pure check of a verifier's identity: document bytes, the key the
//! server presented, the pins, the trusted roots and the time in; the
//! verified identity or the first failed check out. No I/O, no clock.

use std::time::Duration;

use hermetic_attestation::{At, Verifier};
use hermetic_policy::{mismatches, PcrDiff, Pcrs};
use rustls_pki_types::UnixTime;

use crate::binding::{expected_user_data, spki_sha256, INTAKE_KEY_LEN};
use crate::pins::Pins;

/// Oldest document accepted. The verifier re-attests every hour
/// (`server::REFRESH_INTERVAL`), well inside the three hours an NSM leaf
/// certificate lives (nsm-api docs/attestation_process.md §3.2: the
/// certificate is valid for 3 hours); two hours leave it one missed
/// refresh.
pub const MAX_DOCUMENT_AGE: Duration = Duration::from_secs(2 * 3600);
/// How far in the future a document's timestamp may be (clock skew between
/// the client and the verifier's NSM).
pub const MAX_FUTURE_SKEW: Duration = Duration::from_secs(60);

/// What a client learns from a verified identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierIdentity {
    pub module_id: String,
    /// The document's timestamp (ms since the epoch).
    pub timestamp_ms: u64,
    /// Every PCR of the verifier enclave.
    pub pcrs: Pcrs,
    /// SHA-256 of the TLS key's SubjectPublicKeyInfo the document binds.
    pub tls_spki_sha256: [u8; 32],
    /// The attested intake key (X25519): owners seal values to this key.
    pub intake_key: [u8; INTAKE_KEY_LEN],
}

/// Why a verifier's identity was refused. [`IdentityError::reason`] is a
/// stable code; `Display` the sentence.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IdentityError {
    #[error("the verifier sent no attestation document with its certificate (is it an attested verifier, `serve --nsm`?)")]
    NoDocument,
    #[error("the verifier's attestation document does not verify: {0}")]
    Attestation(#[source] hermetic_attestation::Error),
    #[error("the verifier runs in debug mode (PCR0, PCR1 and PCR2 all zero): its memory is readable from the parent")]
    DebugMode,
    #[error("the verifier's measurements differ from the pinned ones: {}", describe(.0))]
    MeasurementsMismatch(Vec<PcrDiff>),
    #[error(
        "the verifier's attestation document is {age_secs} s old; at most {max_secs} s is accepted"
    )]
    Stale { age_secs: u64, max_secs: u64 },
    #[error("the verifier's attestation document is dated {ahead_secs} s in the future")]
    FromTheFuture { ahead_secs: u64 },
    #[error("the verifier's TLS key is not the one its attestation document binds: {0}")]
    KeyNotBound(&'static str),
    #[error("the verifier's certificate cannot be read: {0}")]
    BadCertificate(String),
}

fn describe(diffs: &[PcrDiff]) -> String {
    diffs
        .iter()
        .map(|d| match &d.actual {
            Some(a) => format!(
                "PCR{} is {}…, pinned {}…",
                d.index,
                prefix(a),
                prefix(&d.expected)
            ),
            None => format!("PCR{} is absent", d.index),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The first 8 bytes in hex: enough to tell values apart in a message.
fn prefix(value: &[u8]) -> String {
    hex::encode(&value[..value.len().min(8)])
}

impl IdentityError {
    pub fn reason(&self) -> &'static str {
        match self {
            IdentityError::NoDocument => "verifier_not_attested",
            IdentityError::Attestation(_) => "verifier_attestation_invalid",
            IdentityError::DebugMode => "verifier_debug_mode",
            IdentityError::MeasurementsMismatch(_) => "verifier_measurements_mismatch",
            IdentityError::Stale { .. } | IdentityError::FromTheFuture { .. } => {
                "verifier_attestation_stale"
            }
            IdentityError::KeyNotBound(_) => "verifier_key_not_bound",
            IdentityError::BadCertificate(_) => "verifier_bad_certificate",
        }
    }
}

/// Checks that `document` is a genuine attestation (chain to one of
/// `verifier`'s roots, valid at `now`), of a verifier image `pins` allows,
/// not in debug mode, at most `max_age` old, that binds `tls_spki_der` (the
/// presented certificate's SubjectPublicKeyInfo) and an intake key.
pub fn check_identity(
    document: &[u8],
    tls_spki_der: &[u8],
    pins: &Pins,
    verifier: &Verifier,
    now: UnixTime,
    max_age: Duration,
) -> Result<VerifierIdentity, IdentityError> {
    if document.is_empty() {
        return Err(IdentityError::NoDocument);
    }
    let attested = verifier
        .verify(document, At::Time(now))
        .map_err(IdentityError::Attestation)?;
    let doc = attested.document;
    // Debug mode zeroes PCR0–2 (AWS Nitro Enclaves User Guide, "Debug mode";
    // DESIGN.md facts); checked before the pins so the reason is the real one.
    if doc.is_debug_mode() {
        return Err(IdentityError::DebugMode);
    }
    let pcrs: Pcrs = doc.pcrs.clone();
    let mut closest: Option<Vec<PcrDiff>> = None;
    let matched = pins.sets().iter().any(|set| {
        let diffs = mismatches(set, &pcrs);
        let empty = diffs.is_empty();
        if closest.as_ref().is_none_or(|c| diffs.len() < c.len()) {
            closest = Some(diffs);
        }
        empty
    });
    if !matched {
        return Err(IdentityError::MeasurementsMismatch(
            closest.unwrap_or_default(),
        ));
    }
    let now_ms = now.as_secs().saturating_mul(1000);
    if doc.timestamp_ms > now_ms.saturating_add(MAX_FUTURE_SKEW.as_millis() as u64) {
        return Err(IdentityError::FromTheFuture {
            ahead_secs: (doc.timestamp_ms - now_ms) / 1000,
        });
    }
    let age_ms = now_ms.saturating_sub(doc.timestamp_ms);
    if age_ms > max_age.as_millis() as u64 {
        return Err(IdentityError::Stale {
            age_secs: age_ms / 1000,
            max_secs: max_age.as_secs(),
        });
    }
    let intake: [u8; INTAKE_KEY_LEN] = doc
        .public_key
        .as_deref()
        .and_then(|k| k.try_into().ok())
        .ok_or(IdentityError::KeyNotBound(
            "the document's public_key is not a 32-byte intake key",
        ))?;
    let want = expected_user_data(tls_spki_der, &intake);
    match doc.user_data.as_deref() {
        Some(got) if got == want.as_slice() => {}
        Some(got) if got.starts_with(crate::BINDING_LABEL) => {
            return Err(IdentityError::KeyNotBound(
                "the document binds another TLS key than the one presented",
            ))
        }
        _ => {
            return Err(IdentityError::KeyNotBound(
                "the document's user_data is not a hermetic-verifier/v1 binding",
            ))
        }
    }
    Ok(VerifierIdentity {
        module_id: doc.module_id,
        timestamp_ms: doc.timestamp_ms,
        pcrs,
        tls_spki_sha256: spki_sha256(tls_spki_der),
        intake_key: intake,
    })
}

/// The SubjectPublicKeyInfo (DER) of a certificate.
pub fn spki_of(cert_der: &[u8]) -> Result<Vec<u8>, IdentityError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| IdentityError::BadCertificate(e.to_string()))?;
    Ok(cert.tbs_certificate.subject_pki.raw.to_vec())
}
