//! What the verifier's attestation document binds, byte for byte.
//!
//! ```text
//! public_key = intake public key (X25519, 32 bytes)
//! user_data  = "hermetic-verifier/v1" ‖ SHA-256(TLS SubjectPublicKeyInfo DER)
//!                                     ‖ SHA-256(intake public key)
//! ```
//! The NSM signs both fields as given (nsm-api docs/attestation_process.md
//! §3.2: `public_key` and `user_data` are optional byte strings of at most
//! 1024 bytes, copied into the document). The label names the format and
//! its version, so a document made for another purpose (an enclave agent's
//! release request, whose `public_key` is its ephemeral key) never reads as
//! a verifier identity. The intake key is in `public_key` so that a client
//! takes it from the document itself; its hash in `user_data` ties the two
//! fields together.

use aws_lc_rs::digest::{digest, SHA256};

/// The first bytes of `user_data`.
pub const BINDING_LABEL: &[u8] = b"hermetic-verifier/v1";
/// Bytes of an intake public key (X25519, RFC 7748).
pub const INTAKE_KEY_LEN: usize = 32;
/// Bytes of the whole `user_data`.
pub const USER_DATA_LEN: usize = BINDING_LABEL.len() + 32 + 32;

/// SHA-256 of a SubjectPublicKeyInfo (DER).
pub fn spki_sha256(spki_der: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, spki_der).as_ref());
    out
}

/// The `user_data` that binds `tls_spki_der` and `intake_key`.
pub fn expected_user_data(tls_spki_der: &[u8], intake_key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(USER_DATA_LEN);
    out.extend_from_slice(BINDING_LABEL);
    out.extend_from_slice(&spki_sha256(tls_spki_der));
    out.extend_from_slice(digest(&SHA256, intake_key).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_is_label_then_two_hashes() {
        let u = expected_user_data(b"spki", &[7u8; 32]);
        assert_eq!(u.len(), USER_DATA_LEN);
        assert!(u.starts_with(BINDING_LABEL));
        assert_eq!(&u[20..52], &spki_sha256(b"spki"));
        assert_ne!(u, expected_user_data(b"spki2", &[7u8; 32]));
        assert_ne!(u, expected_user_data(b"spki", &[8u8; 32]));
    }
}
