//! Every row at rest is AES-256-GCM under a key derived from the master key,
//! bound to where it belongs.
//!
//! Keys: HKDF-SHA256 (RFC 5869, aws-lc-rs `hkdf`) over the master key, one
//! per purpose, the `info` naming the purpose and (for everything but the
//! meta rows, which hold the deployment id itself) the deployment:
//! - `meta`: the key check, the deployment id and the intake key seed;
//! - `rows|DEPLOYMENT`: every other row (secret heads, values, policies,
//!   token entries);
//! - `token-mac|DEPLOYMENT`: HMAC-SHA256 keys of the token table.
//!
//! A stored row is `u64 version || 96-bit random nonce || ciphertext || tag`
//! and its associated data is `label || table || row key || version` (each
//! length-prefixed): an edited row fails to open, a row moved under another
//! key or into another table fails, and the version a row claims is
//! authenticated, so the reader can compare it with the version the
//! secret's head row expects (a row put back from before a later change is
//! then refused as rolled back). Which version a row must carry is the
//! store's business (`mod.rs`), not this module's.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::{hkdf, hmac, rand::SecureRandom};
use hermetic_envelope::Zeroizing;

use super::master_key::MasterKey;
use super::StoreError;

const SALT: &[u8] = b"hermetic/v2 store";
const AAD_LABEL: &[u8] = b"hermetic/v2 row";
const TAG_LEN: usize = 16;
const VERSION_LEN: usize = 8;

/// Why a stored row was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowFault {
    /// It does not open under its table, key and claimed version.
    Tampered,
}

/// The AEAD for one purpose.
pub(crate) struct RowKey {
    key: LessSafeKey,
}

struct Len(usize);
impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn derive(master: &MasterKey, info: &[&[u8]]) -> Result<Zeroizing<[u8; 32]>, StoreError> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(master.bytes());
    let mut out = Zeroizing::new([0u8; 32]);
    prk.expand(info, Len(32))
        .and_then(|okm| okm.fill(&mut out[..]))
        .map_err(|_| StoreError::Crypto("key derivation failed"))?;
    Ok(out)
}

fn push(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn aad(table: &str, key: &[u8], version: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(AAD_LABEL.len() + 16 + table.len() + key.len());
    out.extend_from_slice(AAD_LABEL);
    push(&mut out, table.as_bytes());
    push(&mut out, key);
    out.extend_from_slice(&version.to_be_bytes());
    out
}

impl RowKey {
    /// The key for the meta rows (not bound to a deployment: they hold it).
    pub(crate) fn meta(master: &MasterKey) -> Result<Self, StoreError> {
        let key = derive(master, &[b"meta"])?;
        Self::from_bytes(&key)
    }

    /// The key for every other row of `deployment`.
    pub(crate) fn rows(master: &MasterKey, deployment: &str) -> Result<Self, StoreError> {
        let key = derive(master, &[b"rows|", deployment.as_bytes()])?;
        Self::from_bytes(&key)
    }

    fn from_bytes(bytes: &[u8; 32]) -> Result<Self, StoreError> {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| StoreError::Crypto("unusable derived key"))?;
        Ok(RowKey {
            key: LessSafeKey::new(unbound),
        })
    }

    /// `version || nonce || ciphertext || tag`.
    pub(crate) fn seal(
        &self,
        table: &str,
        key: &[u8],
        version: u64,
        plaintext: &[u8],
        rng: &dyn SecureRandom,
    ) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce)
            .map_err(|_| StoreError::Crypto("the random number generator failed"))?;
        let head = VERSION_LEN + NONCE_LEN;
        let mut buf = Vec::with_capacity(head + plaintext.len() + TAG_LEN);
        buf.extend_from_slice(&version.to_be_bytes());
        buf.extend_from_slice(&nonce);
        buf.extend_from_slice(plaintext);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(table, key, version)),
                &mut buf[head..],
            )
            .map_err(|_| StoreError::Crypto("encryption failed"))?;
        buf.extend_from_slice(tag.as_ref());
        Ok(buf)
    }

    /// The row's authenticated version and plaintext, or `Tampered` when it
    /// does not open as a row of `table` under `key`.
    pub(crate) fn open(
        &self,
        table: &str,
        key: &[u8],
        stored: &[u8],
    ) -> Result<(u64, Zeroizing<Vec<u8>>), RowFault> {
        if stored.len() < VERSION_LEN + NONCE_LEN + TAG_LEN {
            return Err(RowFault::Tampered);
        }
        let (version, rest) = stored.split_at(VERSION_LEN);
        let version = u64::from_be_bytes(version.try_into().map_err(|_| RowFault::Tampered)?);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| RowFault::Tampered)?;
        let mut buf = Zeroizing::new(sealed.to_vec());
        let len = self
            .key
            .open_in_place(nonce, Aad::from(aad(table, key, version)), &mut buf[..])
            .map_err(|_| RowFault::Tampered)?
            .len();
        buf.truncate(len);
        Ok((version, buf))
    }
}

/// The token table's row keys: HMAC-SHA256 under a derived key of the
/// token's SHA-256. A copy of the store alone then cannot confirm a guessed
/// token (nor link a token seen elsewhere to its row); the tokens are 256
/// random bits, so this is defence in depth, the row seal is what stops an
/// inserted or swapped entry. Keyed over the SHA-256 (not the token) so that
/// stores of the previous version, which kept only SHA-256(token), migrate.
pub(crate) struct TokenMac {
    key: hmac::Key,
}

impl TokenMac {
    pub(crate) fn new(master: &MasterKey, deployment: &str) -> Result<Self, StoreError> {
        let bytes = derive(master, &[b"token-mac|", deployment.as_bytes()])?;
        Ok(TokenMac {
            key: hmac::Key::new(hmac::HMAC_SHA256, &bytes[..]),
        })
    }

    pub(crate) fn row_key(&self, token_sha256: &[u8; 32]) -> [u8; 32] {
        let tag = hmac::sign(&self.key, token_sha256);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;

    #[test]
    fn a_row_opens_only_in_its_table_under_its_key_with_its_version() {
        let master = MasterKey::from_bytes([3; 32]);
        let rows = RowKey::rows(&master, "dep-a").unwrap();
        let rng = SystemRandom::new();
        let stored = rows.seal("policies", b"db", 7, b"toml", &rng).unwrap();
        let (v, plain) = rows.open("policies", b"db", &stored).unwrap();
        assert_eq!((v, plain.as_slice()), (7, &b"toml"[..]));
        // Moved to another key or table: refused.
        assert_eq!(
            rows.open("policies", b"dc", &stored).err(),
            Some(RowFault::Tampered)
        );
        assert!(rows.open("secrets", b"db", &stored).is_err());
        // The version is authenticated: claiming another one fails.
        let mut claimed = stored.clone();
        claimed[7] ^= 1;
        assert!(rows.open("policies", b"db", &claimed).is_err());
        // Any flipped byte, or truncation, fails.
        for i in 0..stored.len() {
            let mut flipped = stored.clone();
            flipped[i] ^= 0x80;
            assert!(rows.open("policies", b"db", &flipped).is_err(), "byte {i}");
        }
        assert!(rows.open("policies", b"db", &stored[..30]).is_err());
        // Keys are per purpose and per deployment.
        assert!(RowKey::rows(&master, "dep-b")
            .unwrap()
            .open("policies", b"db", &stored)
            .is_err());
        assert!(RowKey::meta(&master)
            .unwrap()
            .open("policies", b"db", &stored)
            .is_err());
        assert!(RowKey::rows(&MasterKey::from_bytes([4; 32]), "dep-a")
            .unwrap()
            .open("policies", b"db", &stored)
            .is_err());
        // Random nonces: the same row never seals to the same bytes.
        assert_ne!(
            stored,
            rows.seal("policies", b"db", 7, b"toml", &rng).unwrap()
        );
    }

    #[test]
    fn token_row_keys_depend_on_the_master_key_and_deployment() {
        let h = [9u8; 32];
        let a = TokenMac::new(&MasterKey::from_bytes([1; 32]), "d").unwrap();
        assert_eq!(a.row_key(&h), a.row_key(&h));
        assert_ne!(a.row_key(&h), h);
        assert_ne!(a.row_key(&h), a.row_key(&[8u8; 32]));
        let b = TokenMac::new(&MasterKey::from_bytes([1; 32]), "e").unwrap();
        assert_ne!(a.row_key(&h), b.row_key(&h));
    }
}
