//! The log's signing key: an Ed25519 seed derived from the master key with
//! HKDF-SHA256 (RFC 5869), its info naming the purpose and the deployment,
//! so the key lives exactly where the master key lives and is never
//! written anywhere. Its name is the log's origin, `hermetic.log/<id>`
//! (c2sp.org/tlog-checkpoint: the key name should be the origin).

use aws_lc_rs::hkdf::{Salt, HKDF_SHA256};
use hermetic_envelope::Zeroizing;
use hermetic_tlog::note::Signer;

use super::LogError;
use crate::store::MasterKey;

/// The origin line of this deployment's checkpoints.
pub fn log_origin(deployment: &str) -> String {
    format!("hermetic.log/{deployment}")
}

/// A fixed salt (RFC 5869 §3.1: a non-secret constant is acceptable); the
/// master key is uniformly random already.
const SALT: &[u8] = b"hermetic log signing key salt v1";

/// The log's signer for `deployment`, derived from `key`.
pub fn log_signer(key: &MasterKey, deployment: &str) -> Result<Signer, LogError> {
    let info = format!("hermetic/log-key/v1\0{deployment}");
    let prk = Salt::new(HKDF_SHA256, SALT).extract(key.bytes());
    let info = [info.as_bytes()];
    let okm = prk
        .expand(&info, HKDF_SHA256)
        .map_err(|_| LogError::Sign("HKDF expand failed".into()))?;
    let mut seed = Zeroizing::new([0u8; 32]);
    okm.fill(&mut seed[..])
        .map_err(|_| LogError::Sign("HKDF fill failed".into()))?;
    Signer::from_seed(&log_origin(deployment), seed).map_err(|e| LogError::Sign(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_depends_on_master_key_and_deployment_only() {
        let a = MasterKey::from_bytes([1; 32]);
        let b = MasterKey::from_bytes([2; 32]);
        let ka = log_signer(&a, "hermetic-one").unwrap().verifier_key();
        assert_eq!(ka, log_signer(&a, "hermetic-one").unwrap().verifier_key());
        assert_ne!(ka, log_signer(&b, "hermetic-one").unwrap().verifier_key());
        let other = log_signer(&a, "hermetic-two").unwrap().verifier_key();
        assert_ne!(ka.public_key(), other.public_key());
        assert_eq!(ka.name(), "hermetic.log/hermetic-one");
    }
}
