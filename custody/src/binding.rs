//! What each sealed value is bound to (HPKE `info` and AEAD `aad`, through
//! `hermetic_envelope::BoundContext`), and the commitment to the master key.
//!
//! Every label differs, so a value sealed for one step never opens as another.

use aws_lc_rs::hmac;
use hermetic_envelope::BoundContext;

use crate::key::MasterKey;

/// A share sealed to its custodian at genesis.
pub(crate) const SHARE_LABEL: &str = "hermetic/v1 bound custody-share";
/// A share re-sealed by its custodian to an attested verifier enclave.
pub(crate) const RESEAL_LABEL: &str = "hermetic/v1 bound custody-reseal";
/// The master key forwarded from a running verifier to a joining one.
pub(crate) const FORWARD_LABEL: &str = "hermetic/v1 bound custody-forward";
/// HMAC message prefix of the commitment.
const COMMITMENT_LABEL: &[u8] = b"hermetic/v1 custody-commitment";

/// Genesis: deployment, genesis id, threshold, share index, custodian public key.
pub(crate) fn share(
    deployment: &str,
    genesis_id: &[u8; 16],
    threshold: u8,
    index: u8,
    custodian: &[u8; 32],
) -> BoundContext {
    BoundContext::new(SHARE_LABEL)
        .field(deployment)
        .field(genesis_id)
        .field([threshold])
        .field([index])
        .field(custodian)
}

/// Re-seal: as at genesis, plus the SHA-256 of the verifier's attestation document the
/// custodian checked (which carries the key it seals to).
pub(crate) fn reseal(
    deployment: &str,
    genesis_id: &[u8; 16],
    threshold: u8,
    index: u8,
    custodian: &[u8; 32],
    document_sha256: &[u8; 32],
) -> BoundContext {
    BoundContext::new(RESEAL_LABEL)
        .field(deployment)
        .field(genesis_id)
        .field([threshold])
        .field([index])
        .field(custodian)
        .field(document_sha256)
}

/// Forwarding: deployment, genesis id, and both documents of the mutual attestation.
pub(crate) fn forward(
    deployment: &str,
    genesis_id: &[u8; 16],
    responder_document_sha256: &[u8; 32],
    joiner_document_sha256: &[u8; 32],
) -> BoundContext {
    BoundContext::new(FORWARD_LABEL)
        .field(deployment)
        .field(genesis_id)
        .field(responder_document_sha256)
        .field(joiner_document_sha256)
}

/// HMAC message prefix of each share's check value.
const SHARE_CHECK_LABEL: &[u8] = b"hermetic/v1 custody-share-check";

fn check_message(label: &[u8], deployment: &str, genesis_id: &[u8; 16], index: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(label.len() + 16 + deployment.len() + 16 + index.len());
    for field in [label, deployment.as_bytes(), genesis_id, index] {
        m.extend_from_slice(&(field.len() as u32).to_be_bytes());
        m.extend_from_slice(field);
    }
    m
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut out = [0u8; 32];
    out.copy_from_slice(hmac::sign(&k, message).as_ref());
    out
}

fn hmac_matches(key: &[u8], message: &[u8], expected: &[u8; 32]) -> bool {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::verify(&k, message, expected).is_ok()
}

/// HMAC-SHA256 keyed by the master key over the deployment and genesis id. HMAC is a PRF, so
/// the value reveals nothing of the key (RFC 2104 section 6), yet a wrong key gives another
/// value.
pub(crate) fn commitment(key: &MasterKey, deployment: &str, genesis_id: &[u8; 16]) -> [u8; 32] {
    hmac_sha256(
        key.expose_secret(),
        &check_message(COMMITMENT_LABEL, deployment, genesis_id, &[]),
    )
}

/// Constant-time check of [`commitment`].
pub(crate) fn commitment_matches(
    key: &MasterKey,
    deployment: &str,
    genesis_id: &[u8; 16],
    expected: &[u8; 32],
) -> bool {
    hmac_matches(
        key.expose_secret(),
        &check_message(COMMITMENT_LABEL, deployment, genesis_id, &[]),
        expected,
    )
}

/// A share's check value: HMAC-SHA256 keyed by the share over deployment, genesis id and
/// index. Each share alone is 32 uniformly random bytes when K >= 2 (and the key itself when
/// K = 1), so the value reveals nothing usable; it lets the unsealing enclave refuse a made-up
/// share on its own, instead of finding a wrong key only after K shares.
pub(crate) fn share_check(
    share: &[u8],
    deployment: &str,
    genesis_id: &[u8; 16],
    index: u8,
) -> [u8; 32] {
    hmac_sha256(
        share,
        &check_message(SHARE_CHECK_LABEL, deployment, genesis_id, &[index]),
    )
}

/// Constant-time check of [`share_check`].
pub(crate) fn share_check_matches(
    share: &[u8],
    deployment: &str,
    genesis_id: &[u8; 16],
    index: u8,
    expected: &[u8; 32],
) -> bool {
    hmac_matches(
        share,
        &check_message(SHARE_CHECK_LABEL, deployment, genesis_id, &[index]),
        expected,
    )
}

/// SHA-256 of a byte string.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}
