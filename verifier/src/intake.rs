//! The intake key owners seal values to: an X25519 key derived from the
//! master key with HKDF-SHA256 (RFC 5869), as the log key is
//! (`log::key`), its info naming the purpose and the deployment.
//!
//! Deriving it (rather than keeping a random seed in the store) is what lets
//! replicas agree: every verifier holding the same master key — made at
//! genesis, unsealed by custodians, or forwarded by another replica —
//! advertises the same intake key, so a value sealed to one replica's
//! attested key opens on any other.
//!
//! Stores written before this change hold a random `intake_key_seed` row:
//! it is ignored (left in place, so an older binary can still open the
//! store). After the upgrade the intake key is the derived one; a statement
//! sealed to the old key before the upgrade no longer opens and must be
//! proposed again.

use aws_lc_rs::hkdf::{Salt, HKDF_SHA256};
use hermetic_envelope::{EnclaveKey, Zeroizing};

use crate::store::MasterKey;

/// A fixed salt (RFC 5869 section 3.1: a non-secret constant is acceptable;
/// the master key is uniformly random already).
const SALT: &[u8] = b"hermetic intake key salt v1";

/// The intake key could not be derived (HKDF or key derivation failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the intake key could not be derived from the master key")]
pub struct IntakeKeyError;

/// The intake key of `deployment`, derived from `key`.
pub fn intake_key(key: &MasterKey, deployment: &str) -> Result<EnclaveKey, IntakeKeyError> {
    let info = format!("hermetic/intake-key/v1\0{deployment}");
    let prk = Salt::new(HKDF_SHA256, SALT).extract(key.bytes());
    let info = [info.as_bytes()];
    let okm = prk.expand(&info, HKDF_SHA256).map_err(|_| IntakeKeyError)?;
    let mut ikm = Zeroizing::new([0u8; 32]);
    okm.fill(&mut ikm[..]).map_err(|_| IntakeKeyError)?;
    // RFC 9180 section 7.1.3 DeriveKeyPair: the input keying material
    // becomes the X25519 private key.
    EnclaveKey::from_ikm(&ikm[..]).map_err(|_| IntakeKeyError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_depends_on_master_key_and_deployment_only() {
        let a = MasterKey::from_bytes([1; 32]);
        let b = MasterKey::from_bytes([2; 32]);
        let ka = intake_key(&a, "hermetic-one").unwrap().public_key_bytes();
        assert_eq!(
            ka,
            intake_key(&MasterKey::from_bytes([1; 32]), "hermetic-one")
                .unwrap()
                .public_key_bytes()
        );
        assert_ne!(
            ka,
            intake_key(&b, "hermetic-one").unwrap().public_key_bytes()
        );
        assert_ne!(
            ka,
            intake_key(&a, "hermetic-two").unwrap().public_key_bytes()
        );
    }
}
