//! Sealing a secret to an enclave key, and opening it inside the enclave.

use aws_lc_rs::rand::SecureRandom;
use zeroize::Zeroizing;

use crate::suite::{self, Fill};
use crate::{EnclaveKey, EnvelopeError, RecipientPublicKey, ReleaseContext};

/// A secret sealed to one enclave key for one [`ReleaseContext`].
///
/// `name` and `version` travel in clear so that the opener can say which secret it got; they
/// are also bound into the ciphertext (through the context), so changing them in transit makes
/// [`open`] fail. Nothing here is secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSecret {
    /// Name of the secret.
    pub name: String,
    /// Version of the secret.
    pub version: u64,
    /// HPKE encapsulated key: the sender's ephemeral X25519 public key, 32 bytes.
    pub enc: Vec<u8>,
    /// ChaCha20Poly1305 ciphertext followed by its 16-byte tag.
    pub ciphertext: Vec<u8>,
}

/// Seals `plaintext` to `recipient`, bound to `ctx` (HPKE base mode; `info` and `aad` are
/// [`ReleaseContext::encode`]). `rng` supplies the 32 bytes of the ephemeral key.
///
/// Fails with [`EnvelopeError::ContextTooLarge`] when the context is over its caps,
/// [`EnvelopeError::RandomFailed`] when `rng` fails, and [`EnvelopeError::SealFailed`] when the
/// recipient key is a low-order point.
pub fn seal(
    recipient: &RecipientPublicKey,
    ctx: &ReleaseContext,
    plaintext: &[u8],
    rng: &dyn SecureRandom,
) -> Result<SealedSecret, EnvelopeError> {
    seal_with(recipient, ctx, plaintext, &mut |buf: &mut [u8]| {
        rng.fill(buf).map_err(|_| ())
    })
}

pub(crate) fn seal_with(
    recipient: &RecipientPublicKey,
    ctx: &ReleaseContext,
    plaintext: &[u8],
    fill: &mut Fill<'_>,
) -> Result<SealedSecret, EnvelopeError> {
    let info = ctx.encode()?;
    let (enc, ciphertext) = suite::seal_base(&recipient.0, &info, &info, plaintext, fill)?;
    Ok(SealedSecret {
        name: ctx.name.clone(),
        version: ctx.version,
        enc,
        ciphertext,
    })
}

/// Opens `sealed` with `key`, provided it was sealed for exactly `expected`.
///
/// Checks, in order: the clear `name` ([`EnvelopeError::NameMismatch`]), the clear `version`
/// ([`EnvelopeError::VersionMismatch`]), the size of `expected`
/// ([`EnvelopeError::ContextTooLarge`]), then decapsulates and decrypts with `info` and `aad`
/// built from `expected` — never from `sealed` — so a different nonce, a different key, or any
/// altered or truncated byte of `enc` or `ciphertext` gives [`EnvelopeError::OpenFailed`].
///
/// The plaintext is returned in a [`Zeroizing`] buffer, wiped when dropped.
pub fn open(
    key: &EnclaveKey,
    sealed: &SealedSecret,
    expected: &ReleaseContext,
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    if sealed.name != expected.name {
        return Err(EnvelopeError::NameMismatch {
            sealed: sealed.name.clone(),
            expected: expected.name.clone(),
        });
    }
    if sealed.version != expected.version {
        return Err(EnvelopeError::VersionMismatch {
            sealed: sealed.version,
            expected: expected.version,
        });
    }
    let info = expected.encode()?;
    suite::open_base(key.secret(), &sealed.enc, &info, &info, &sealed.ciphertext)
}
