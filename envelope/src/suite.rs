//! The one HPKE suite this crate speaks, as thin wrappers over the `hpke` crate.
//!
//! RFC 9180 base mode with DHKEM(X25519, HKDF-SHA256) (KEM 0x0020), HKDF-SHA256 (KDF 0x0001)
//! and ChaCha20Poly1305 (AEAD 0x0003): the suite of RFC 9180 Appendix A.2. `seal`/`open` and
//! the known-answer tests go through exactly these functions. The KEM is ours over AWS-LC
//! ([`crate::kem`]); the key schedule and the AEAD are the hpke crate's.

use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use zeroize::Zeroizing;

use crate::rng::FallibleRng;

use crate::EnvelopeError;

pub(crate) type Kem = crate::kem::X25519HkdfSha256;
pub(crate) type Kdf = hpke::kdf::HkdfSha256;
pub(crate) type Aead = hpke::aead::ChaCha20Poly1305;
pub(crate) type PublicKey = <Kem as hpke::Kem>::PublicKey;
pub(crate) type PrivateKey = <Kem as hpke::Kem>::PrivateKey;
type EncappedKey = <Kem as hpke::Kem>::EncappedKey;
pub(crate) type SenderContext = hpke::aead::AeadCtxS<Aead, Kdf, Kem>;
pub(crate) type ReceiverContext = hpke::aead::AeadCtxR<Aead, Kdf, Kem>;

/// Source of randomness for the ephemeral key: fills the buffer or reports failure.
pub(crate) type Fill<'a> = dyn FnMut(&mut [u8]) -> Result<(), ()> + 'a;

/// RFC 9180 SetupBaseS: encapsulates to `pk` and returns `(enc, sender context)`.
pub(crate) fn setup_sender(
    pk: &PublicKey,
    info: &[u8],
    fill: &mut Fill<'_>,
) -> Result<(Vec<u8>, SenderContext), EnvelopeError> {
    let mut rng = FallibleRng::new(|b: &mut [u8]| fill(b));
    let result = hpke::setup_sender_with_rng::<Aead, Kdf, Kem>(&OpModeS::Base, pk, info, &mut rng);
    if rng.failed() {
        // Whatever was computed used zeroed "randomness": never let it out.
        return Err(EnvelopeError::RandomFailed);
    }
    let (enc, ctx) = result.map_err(|_| EnvelopeError::SealFailed)?;
    Ok((enc.to_bytes().to_vec(), ctx))
}

/// RFC 9180 SetupBaseR: decapsulates `enc` with `sk`. Any failure is `OpenFailed`.
pub(crate) fn setup_receiver(
    sk: &PrivateKey,
    enc: &[u8],
    info: &[u8],
) -> Result<ReceiverContext, EnvelopeError> {
    let enc = EncappedKey::from_bytes(enc).map_err(|_| EnvelopeError::OpenFailed)?;
    hpke::setup_receiver::<Aead, Kdf, Kem>(&OpModeR::Base, sk, &enc, info)
        .map_err(|_| EnvelopeError::OpenFailed)
}

/// RFC 9180 SealBase (single shot, sequence number 0): returns `(enc, ciphertext)`.
pub(crate) fn seal_base(
    pk: &PublicKey,
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
    fill: &mut Fill<'_>,
) -> Result<(Vec<u8>, Vec<u8>), EnvelopeError> {
    let (enc, mut ctx) = setup_sender(pk, info, fill)?;
    let ciphertext = ctx
        .seal(plaintext, aad)
        .map_err(|_| EnvelopeError::SealFailed)?;
    Ok((enc, ciphertext))
}

/// RFC 9180 OpenBase (single shot, sequence number 0).
pub(crate) fn open_base(
    sk: &PrivateKey,
    enc: &[u8],
    info: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let mut ctx = setup_receiver(sk, enc, info)?;
    ctx.open(ciphertext, aad)
        .map(Zeroizing::new)
        .map_err(|_| EnvelopeError::OpenFailed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EnclaveKey;

    #[test]
    fn rng_failure_is_reported_and_nothing_is_returned() {
        let key = EnclaveKey::from_ikm(&[7u8; 32]).unwrap();
        let pk = key.recipient().0;
        let mut failing = |_: &mut [u8]| Err(());
        assert_eq!(
            seal_base(&pk, b"info", b"aad", b"pt", &mut failing).unwrap_err(),
            EnvelopeError::RandomFailed
        );
    }

    #[test]
    fn fixed_randomness_is_deterministic() {
        let key = EnclaveKey::from_ikm(&[7u8; 32]).unwrap();
        let pk = key.recipient().0;
        let mut fixed = |b: &mut [u8]| {
            b.fill(0x42);
            Ok(())
        };
        let a = seal_base(&pk, b"info", b"aad", b"pt", &mut fixed).unwrap();
        let b = seal_base(&pk, b"info", b"aad", b"pt", &mut fixed).unwrap();
        assert_eq!(a, b);
        let pt = open_base(key.secret(), &a.0, b"info", b"aad", &a.1).unwrap();
        assert_eq!(pt.as_slice(), b"pt");
    }
}
