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

fn commitment_message(deployment: &str, genesis_id: &[u8; 16]) -> Vec<u8> {
    let mut m = Vec::with_capacity(COMMITMENT_LABEL.len() + 8 + deployment.len() + 16);
    for field in [COMMITMENT_LABEL, deployment.as_bytes(), genesis_id] {
        m.extend_from_slice(&(field.len() as u32).to_be_bytes());
        m.extend_from_slice(field);
    }
    m
}

/// HMAC-SHA256 keyed by the master key over the deployment and genesis id. HMAC is a PRF, so
/// the value reveals nothing of the key (RFC 2104 section 6), yet a wrong key gives another
/// value.
pub(crate) fn commitment(key: &MasterKey, deployment: &str, genesis_id: &[u8; 16]) -> [u8; 32] {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key.expose_secret());
    let tag = hmac::sign(&k, &commitment_message(deployment, genesis_id));
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Constant-time check of [`commitment`].
pub(crate) fn commitment_matches(
    key: &MasterKey,
    deployment: &str,
    genesis_id: &[u8; 16],
    expected: &[u8; 32],
) -> bool {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key.expose_secret());
    hmac::verify(&k, &commitment_message(deployment, genesis_id), expected).is_ok()
}

/// SHA-256 of a byte string.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}
