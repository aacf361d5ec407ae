//! The enclave's ephemeral key: one per boot, derived from NSM entropy, held
//! in memory only. Its public half goes into the attestation document's
//! `public_key`, so the verifier seals secrets to a key that only this boot
//! of the measured image holds.

use hermetic_envelope::{EnclaveKey, EnvelopeError, Zeroizing, MIN_IKM_LEN};

use crate::nsm::{AttestationRequest, Nsm, NsmError};

/// `GetRandom` calls tried before giving up on collecting [`MIN_IKM_LEN`]
/// bytes (one call returns plenty on the real and simulated NSM).
const MAX_RANDOM_CALLS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("NSM GetRandom failed: {0}")]
    Nsm(#[from] NsmError),
    #[error("the NSM returned fewer than {MIN_IKM_LEN} random bytes in {MAX_RANDOM_CALLS} calls")]
    NotEnoughEntropy,
    #[error("key derivation failed: {0}")]
    Envelope(#[from] EnvelopeError),
}

impl KeyError {
    pub fn reason(&self) -> &'static str {
        match self {
            KeyError::Nsm(e) => e.reason(),
            KeyError::NotEnoughEntropy => "nsm_not_enough_entropy",
            KeyError::Envelope(e) => e.reason(),
        }
    }
}

/// Derives this boot's key from [`MIN_IKM_LEN`] (32) bytes of NSM entropy.
pub fn boot_key(nsm: &dyn Nsm) -> Result<EnclaveKey, KeyError> {
    let mut ikm = Zeroizing::new(Vec::with_capacity(MIN_IKM_LEN));
    for _ in 0..MAX_RANDOM_CALLS {
        let random = Zeroizing::new(nsm.get_random()?);
        let need = MIN_IKM_LEN - ikm.len();
        ikm.extend_from_slice(&random[..need.min(random.len())]);
        if ikm.len() == MIN_IKM_LEN {
            return Ok(EnclaveKey::from_ikm(&ikm)?);
        }
    }
    Err(KeyError::NotEnoughEntropy)
}

/// An `Attestation` request that binds `key`'s public half.
pub fn attestation_request(
    key: &EnclaveKey,
    nonce: Option<Vec<u8>>,
    user_data: Option<Vec<u8>>,
) -> AttestationRequest {
    AttestationRequest {
        user_data,
        nonce,
        public_key: Some(key.public_key_bytes().to_vec()),
    }
}
