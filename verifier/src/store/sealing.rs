//! Encryption at rest: AES-256-GCM under the master key, a random 96-bit
//! nonce per value, and the secret's name and version as associated data,
//! so a stored ciphertext moved to another name or version fails to open.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::SecureRandom;
use hermetic_envelope::Zeroizing;

use super::master_key::MasterKey;
use super::StoreError;

const AAD_LABEL: &[u8] = b"hermetic/v1 store";

pub(crate) struct Sealer {
    key: LessSafeKey,
}

/// `label || u32(len(name)) || name || u64(version)`, lengths big-endian.
fn aad(name: &str, version: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(AAD_LABEL.len() + 12 + name.len());
    out.extend_from_slice(AAD_LABEL);
    out.extend_from_slice(&(name.len() as u32).to_be_bytes());
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&version.to_be_bytes());
    out
}

impl Sealer {
    pub(crate) fn new(key: &MasterKey) -> Result<Self, StoreError> {
        let unbound = UnboundKey::new(&AES_256_GCM, key.bytes())
            .map_err(|_| StoreError::MasterKey("unusable master key".into()))?;
        Ok(Sealer {
            key: LessSafeKey::new(unbound),
        })
    }

    /// `nonce || ciphertext || tag`.
    pub(crate) fn seal(
        &self,
        name: &str,
        version: u64,
        plaintext: &[u8],
        rng: &dyn SecureRandom,
    ) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce)
            .map_err(|_| StoreError::Crypto("the random number generator failed"))?;
        let mut buf = Vec::with_capacity(NONCE_LEN + plaintext.len() + 16);
        buf.extend_from_slice(&nonce);
        buf.extend_from_slice(plaintext);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(name, version)),
                &mut buf[NONCE_LEN..],
            )
            .map_err(|_| StoreError::Crypto("encryption failed"))?;
        buf.extend_from_slice(tag.as_ref());
        Ok(buf)
    }

    pub(crate) fn open(
        &self,
        name: &str,
        version: u64,
        stored: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        if stored.len() < NONCE_LEN + 16 {
            return Err(StoreError::Crypto("stored value is truncated"));
        }
        let (nonce, sealed) = stored.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| StoreError::Crypto("stored value is truncated"))?;
        let mut buf = Zeroizing::new(sealed.to_vec());
        let len = self
            .key
            .open_in_place(nonce, Aad::from(aad(name, version)), &mut buf[..])
            .map_err(|_| {
                StoreError::Crypto("stored value does not decrypt (wrong master key or tampering)")
            })?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;

    #[test]
    fn a_value_opens_only_under_its_own_name_and_version() {
        let sealer = Sealer::new(&MasterKey::from_bytes([3; 32])).unwrap();
        let rng = SystemRandom::new();
        let stored = sealer.seal("db", 2, b"value", &rng).unwrap();
        assert_eq!(sealer.open("db", 2, &stored).unwrap().as_slice(), b"value");
        assert!(sealer.open("db", 1, &stored).is_err());
        assert!(sealer.open("dc", 2, &stored).is_err());
        let mut flipped = stored.clone();
        flipped[14] ^= 1;
        assert!(sealer.open("db", 2, &flipped).is_err());
        assert!(sealer.open("db", 2, &stored[..20]).is_err());
        // Random nonces: the same value never seals to the same bytes.
        assert_ne!(stored, sealer.seal("db", 2, b"value", &rng).unwrap());
    }
}
