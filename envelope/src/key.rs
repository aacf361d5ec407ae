//! The enclave's ephemeral keypair and the recipient public key the verifier seals to.

use core::fmt;

use aws_lc_rs::rand::SecureRandom;
use hpke::{Deserializable, Kem as _, Serializable};
use zeroize::Zeroizing;

use crate::suite::{Kem, PrivateKey, PublicKey};
use crate::EnvelopeError;

/// Length of an X25519 public key (`Npk` of DHKEM(X25519, HKDF-SHA256), RFC 9180 section 7.1).
pub const PUBLIC_KEY_LEN: usize = 32;

/// Least amount of input keying material accepted by [`EnclaveKey::from_ikm`]: `Nsk` of
/// DHKEM(X25519, HKDF-SHA256), as RFC 9180 section 7.1.3 asks for DeriveKeyPair.
pub const MIN_IKM_LEN: usize = 32;

/// The enclave's ephemeral X25519 keypair. Its public half goes into the attestation document;
/// the private half never leaves memory.
///
/// The private key is zeroized when this value is dropped (its bytes are kept in `Zeroizing`,
/// and AWS-LC cleanses its own copy when freeing it; see `src/kem.rs`). `EnclaveKey`
/// deliberately implements neither `Clone`, `Display` nor `Serialize`, and its `Debug` shows
/// only the public key.
pub struct EnclaveKey {
    secret: PrivateKey,
    public: PublicKey,
}

impl EnclaveKey {
    /// Derives the keypair from `ikm` with HPKE's DeriveKeyPair (RFC 9180 section 7.1.3), so the
    /// same bytes always give the same key. `ikm` must be at least [`MIN_IKM_LEN`] bytes of
    /// secret, uniformly random input (from the NSM's GetRandom, for example); the caller should
    /// zeroize its copy afterwards.
    pub fn from_ikm(ikm: &[u8]) -> Result<Self, EnvelopeError> {
        if ikm.len() < MIN_IKM_LEN {
            return Err(EnvelopeError::IkmTooShort {
                actual: ikm.len(),
                min: MIN_IKM_LEN,
            });
        }
        let (secret, public) = Kem::derive_keypair(ikm);
        Ok(EnclaveKey { secret, public })
    }

    /// Generates a fresh keypair from [`MIN_IKM_LEN`] bytes drawn from `rng` (for example
    /// `aws_lc_rs::rand::SystemRandom`).
    pub fn generate(rng: &dyn SecureRandom) -> Result<Self, EnvelopeError> {
        let mut ikm = Zeroizing::new([0u8; MIN_IKM_LEN]);
        rng.fill(ikm.as_mut_slice())
            .map_err(|_| EnvelopeError::RandomFailed)?;
        Self::from_ikm(ikm.as_slice())
    }

    /// The public key, to be placed in the attestation document's `public_key` field.
    pub fn public_key_bytes(&self) -> [u8; PUBLIC_KEY_LEN] {
        let mut out = [0u8; PUBLIC_KEY_LEN];
        self.public.write_exact(&mut out);
        out
    }

    /// The public key as a [`RecipientPublicKey`], for sealing to this enclave (tests, tools).
    pub fn recipient(&self) -> RecipientPublicKey {
        RecipientPublicKey(self.public.clone())
    }

    pub(crate) fn secret(&self) -> &PrivateKey {
        &self.secret
    }
}

// The only secret field is `secret`, whose bytes zeroize themselves on drop.
impl zeroize::ZeroizeOnDrop for EnclaveKey {}

impl fmt::Debug for EnclaveKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnclaveKey")
            .field("public_key", &HexBytes(&self.public_key_bytes()))
            .field("private_key", &format_args!("<redacted>"))
            .finish()
    }
}

/// A public key that secrets are sealed to: the `public_key` of a verified attestation document.
#[derive(Clone, PartialEq, Eq)]
pub struct RecipientPublicKey(pub(crate) PublicKey);

impl RecipientPublicKey {
    /// Parses a raw 32-byte X25519 public key. Any other length is refused with
    /// [`EnvelopeError::InvalidPublicKeyLength`]: an attestation document may carry arbitrary
    /// bytes as its `public_key`.
    ///
    /// A 32-byte string is always a syntactically valid X25519 key; a low-order point is
    /// accepted here and refused by [`seal`](crate::seal) with [`EnvelopeError::SealFailed`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        if bytes.len() != PUBLIC_KEY_LEN {
            return Err(EnvelopeError::InvalidPublicKeyLength {
                actual: bytes.len(),
                expected: PUBLIC_KEY_LEN,
            });
        }
        PublicKey::from_bytes(bytes)
            .map(RecipientPublicKey)
            .map_err(|_| EnvelopeError::InvalidPublicKeyLength {
                actual: bytes.len(),
                expected: PUBLIC_KEY_LEN,
            })
    }

    /// The raw 32 bytes.
    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_LEN] {
        let mut out = [0u8; PUBLIC_KEY_LEN];
        self.0.write_exact(&mut out);
        out
    }
}

impl fmt::Debug for RecipientPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RecipientPublicKey")
            .field(&HexBytes(&self.to_bytes()))
            .finish()
    }
}

/// Lower-case hex in `Debug`, for public values only.
struct HexBytes<'a>(&'a [u8]);

impl fmt::Debug for HexBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}
