//! The enclave retries a refusal (with a fresh challenge) when
//! `hermetic_envelope::wire::is_transient(status, reason)` says so. This
//! checks that, over every refusal the public API sends, that is exactly
//! the refusals that can pass on a later try, and that every reason the
//! enclave retries on is one the verifier really sends.

use std::collections::BTreeSet;

use hermetic_envelope::wire::{is_transient, TRANSIENT_REASONS};
use hermetic_envelope::EnvelopeError;

use super::state::{issue_status, status_of};
use crate::challenge::{IssueError, NonceError};
use crate::policy::PolicyError;
use crate::release::ReleaseError;

/// No wildcards: a new variant of these refusals does not compile until it
/// is listed below.
fn _every_variant_is_listed(
    release: &ReleaseError,
    nonce: NonceError,
    issue: IssueError,
    policy: &PolicyError,
) {
    match release {
        ReleaseError::NoSecretsRequested
        | ReleaseError::TooManySecrets { .. }
        | ReleaseError::InvalidSecretName { .. }
        | ReleaseError::DuplicateSecret { .. }
        | ReleaseError::Attestation(_)
        | ReleaseError::NonceMissing
        | ReleaseError::Nonce(_)
        | ReleaseError::UnknownSecret { .. }
        | ReleaseError::NoPolicy { .. }
        | ReleaseError::Policy { .. }
        | ReleaseError::StoredRow { .. }
        | ReleaseError::PublicKeyMissing
        | ReleaseError::PublicKey(_) => {}
    }
    match nonce {
        NonceError::Unknown
        | NonceError::Expired
        | NonceError::Replayed
        | NonceError::Unavailable => {}
    }
    match issue {
        IssueError::Full
        | IssueError::TooManyForAddress
        | IssueError::Rng
        | IssueError::Unavailable => {}
    }
    match policy {
        PolicyError::DebugEnclave
        | PolicyError::PcrMismatch { .. }
        | PolicyError::NoMeasurementMatches
        | PolicyError::NonceMissing
        | PolicyError::NonceMismatch
        | PolicyError::DocumentTooOld { .. }
        | PolicyError::DocumentFromFuture { .. } => {}
    }
}

/// One of each release refusal (the core's reasons are all final; three
/// stand for them).
fn release_errors() -> Vec<ReleaseError> {
    let nonces = [
        NonceError::Unknown,
        NonceError::Expired,
        NonceError::Replayed,
        NonceError::Unavailable,
    ];
    let policy = [
        PolicyError::DebugEnclave,
        PolicyError::PcrMismatch {
            index: 0,
            expected: String::new(),
            actual: String::new(),
        },
        PolicyError::NoMeasurementMatches,
        PolicyError::NonceMissing,
        PolicyError::NonceMismatch,
        PolicyError::DocumentTooOld {
            age_secs: 1,
            max_secs: 0,
        },
        PolicyError::DocumentFromFuture {
            timestamp: String::new(),
        },
    ];
    let name = || "s".to_owned();
    let mut all = vec![
        ReleaseError::NoSecretsRequested,
        ReleaseError::TooManySecrets { count: 65, max: 64 },
        ReleaseError::InvalidSecretName {
            index: 0,
            reason: "",
        },
        ReleaseError::DuplicateSecret { name: name() },
        ReleaseError::Attestation(hermetic_attestation::Error::BadSignature),
        ReleaseError::Attestation(hermetic_attestation::Error::UntrustedRoot {
            fingerprint: String::new(),
        }),
        ReleaseError::Attestation(hermetic_attestation::Error::Empty),
        ReleaseError::NonceMissing,
        ReleaseError::UnknownSecret { name: name() },
        ReleaseError::NoPolicy { name: name() },
        ReleaseError::StoredRow {
            name: name(),
            rolled_back: false,
        },
        ReleaseError::StoredRow {
            name: name(),
            rolled_back: true,
        },
        ReleaseError::PublicKeyMissing,
        ReleaseError::PublicKey(EnvelopeError::InvalidPublicKeyLength {
            actual: 0,
            expected: 32,
        }),
    ];
    all.extend(nonces.map(ReleaseError::Nonce));
    all.extend(policy.map(|error| ReleaseError::Policy {
        name: name(),
        error,
    }));
    all
}

/// Every (status, reason) that `/v1/challenge`, `/v1/release` and the
/// layers around them answer with.
fn public_refusals() -> Vec<(u16, &'static str)> {
    let mut out: Vec<(u16, &'static str)> = release_errors()
        .iter()
        .map(|e| (status_of(e).as_u16(), e.reason()))
        .collect();
    // `AppState::challenge`: the book's reason.
    for e in [
        IssueError::Full,
        IssueError::TooManyForAddress,
        IssueError::Rng,
        IssueError::Unavailable,
    ] {
        out.push((issue_status(&e).as_u16(), e.reason()));
    }
    // `AppState::release` around the decision: unreadable body or document,
    // a secret deleted meanwhile, the store, sealing, the audit log.
    out.extend([
        (400, "bad_request"),
        (400, "envelope_bad_base64"),
        (403, "unknown_secret"),
        (500, hermetic_envelope::wire::reason::STORE_ERROR),
        (503, "store_unavailable"),
        (403, EnvelopeError::SealFailed.reason()),
        (403, EnvelopeError::RandomFailed.reason()),
        (
            403,
            EnvelopeError::ContextTooLarge {
                field: "nonce",
                actual: 0,
                max: 0,
            }
            .reason(),
        ),
        (500, hermetic_envelope::wire::reason::AUDIT_LOG_UNAVAILABLE),
        (503, hermetic_envelope::wire::reason::WITNESS_UNAVAILABLE),
    ]);
    // The layers (`api.rs`): rate limit, time limit, body limit, routing,
    // a failed release task.
    out.extend([
        (429, hermetic_envelope::wire::reason::RATE_LIMITED),
        (503, hermetic_envelope::wire::reason::TIMEOUT),
        (413, "request_too_large"),
        (404, "not_found"),
        (405, "method_not_allowed"),
        (500, hermetic_envelope::wire::reason::INTERNAL_ERROR),
    ]);
    out
}

/// What passes on a later try: the verifier restarted or another instance
/// answered (the nonce book is in memory), time ran out, or the service was
/// overloaded or failing inside. Everything else refuses this enclave's
/// measurements, document or request, and would again.
const EXPECTED_TRANSIENT: [&str; 12] = [
    "nonce_unknown",
    "nonce_expired",
    "challenge_capacity",
    "too_many_outstanding_nonces",
    "rng_failed",
    "rate_limited",
    "timeout",
    "store_error",
    "store_unavailable",
    "audit_log_unavailable",
    "witness_unavailable",
    "internal_error",
];

#[test]
fn the_enclave_retries_exactly_the_transient_refusals() {
    let refusals = public_refusals();
    for (status, reason) in &refusals {
        assert_eq!(
            is_transient(*status, reason),
            EXPECTED_TRANSIENT.contains(reason),
            "{status} {reason}"
        );
    }
    // Each reason the enclave retries on is one this verifier sends: a
    // misspelt one (`unknown_nonce`) would never match.
    let sent: BTreeSet<&str> = refusals.iter().map(|(_, r)| *r).collect();
    for reason in TRANSIENT_REASONS {
        assert!(sent.contains(reason), "{reason} is never sent");
    }
    // The final refusals the brief names are among those sent, and final.
    for reason in [
        "pcr_mismatch",
        "debug_enclave",
        "unknown_secret",
        "no_policy",
        "untrusted_root",
        "bad_signature",
        "nonce_replayed",
    ] {
        assert!(sent.contains(reason), "{reason}");
        assert!(!is_transient(403, reason), "{reason}");
    }
}
