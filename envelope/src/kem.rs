//! DHKEM(X25519, HKDF-SHA256), KEM 0x0020 of RFC 9180 section 4.1, over aws-lc-rs: X25519 and
//! HKDF-SHA256 from AWS-LC, the workspace's one crypto provider. It implements `hpke::Kem`, so
//! the hpke crate still runs the key schedule (section 5.1) and the AEAD; only the KEM moves.
//!
//! Why: the release path seals one secret per request, an ephemeral key (a basepoint
//! multiplication) and one Diffie-Hellman. With curve25519-dalek's portable field arithmetic
//! (the hpke crate's `x25519` feature) those two took about a sixth of the service's CPU in a
//! loaded release bench; AWS-LC's X25519 (s2n-bignum assembly) does them in a fraction of that.
//!
//! Only base mode is spoken here (`suite` asks for nothing else): an encapsulation or
//! decapsulation with a sender's key (AuthEncap/AuthDecap) is refused with `EncapError` /
//! `DecapError`.

use std::sync::Arc;

use aws_lc_rs::agreement::{self, UnparsedPublicKey, X25519};
use aws_lc_rs::hkdf::{self, KeyType, Salt, HKDF_SHA256};
use hpke::hybrid_array::typenum::U32;
use hpke::kem::SharedSecret;
use hpke::rand_core::CryptoRng;
use hpke::{Deserializable, HpkeError, Serializable};
use subtle::{Choice, ConstantTimeEq};
use zeroize::Zeroizing;

/// `Nsk`, `Npk`, `Nenc` and `Nsecret` of DHKEM(X25519, HKDF-SHA256): RFC 9180 section 7.1.
const LEN: usize = 32;

/// `suite_id = concat("KEM", I2OSP(kem_id, 2))`, RFC 9180 section 4.1.
const SUITE_ID: [u8; 5] = *b"KEM\x00\x20";

/// RFC 9180 section 4: the version label of every labeled KDF call.
const VERSION: &[u8] = b"HPKE-v1";

/// DHKEM(X25519, HKDF-SHA256) with AWS-LC's X25519 and HKDF.
#[derive(Debug)]
pub struct X25519HkdfSha256;

/// An X25519 public key (32 bytes, RFC 7748). Any 32 bytes parse; a low-order point is
/// refused by the Diffie-Hellman step (its all-zero output, RFC 9180 section 7.1.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey([u8; LEN]);

/// An X25519 private key: its clamped bytes (RFC 9180 section 7.1.2: serialization clamps),
/// its public key, and AWS-LC's parsed key for the Diffie-Hellman step. The bytes are zeroized
/// on drop; AWS-LC clears its own copy when it frees it (`OPENSSL_free` cleanses).
#[derive(Clone)]
pub struct PrivateKey {
    bytes: Zeroizing<[u8; LEN]>,
    public: PublicKey,
    key: Arc<agreement::PrivateKey>,
}

/// The encapsulated key `enc`: the ephemeral public key, serialized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncappedKey([u8; LEN]);

/// AWS-LC refused an operation on well-formed input: X25519 key parsing and the public key
/// fail only when it cannot allocate, the Diffie-Hellman step also on a low-order point.
#[derive(Debug)]
pub(crate) struct KemFailed;

impl PrivateKey {
    /// Clamps `sk` (RFC 7748 section 5) and computes its public key.
    fn new(sk: &[u8; LEN]) -> Result<PrivateKey, KemFailed> {
        let mut bytes = Zeroizing::new(*sk);
        bytes[0] &= 248;
        bytes[31] &= 127;
        bytes[31] |= 64;
        let key = agreement::PrivateKey::from_private_key(&X25519, bytes.as_slice())
            .map_err(|_| KemFailed)?;
        let public = key.compute_public_key().map_err(|_| KemFailed)?;
        let public = PublicKey(public.as_ref().try_into().map_err(|_| KemFailed)?);
        Ok(PrivateKey {
            bytes,
            public,
            key: Arc::new(key),
        })
    }

    /// `DH(sk, pk)`: the shared X25519 point, refused when it is all zero.
    fn dh(&self, peer: &[u8; LEN]) -> Result<Zeroizing<[u8; LEN]>, KemFailed> {
        agreement::agree(
            &self.key,
            UnparsedPublicKey::new(&X25519, peer),
            KemFailed,
            |shared| {
                let mut out = Zeroizing::new([0u8; LEN]);
                if shared.len() != LEN {
                    return Err(KemFailed);
                }
                out.copy_from_slice(shared);
                Ok(out)
            },
        )
    }
}

/// RFC 9180 section 7.1.3, DeriveKeyPair for X25519:
/// `sk = LabeledExpand(LabeledExtract("", "dkp_prk", ikm), "sk", "", Nsk)`.
pub(crate) fn derive_keypair(ikm: &[u8]) -> Result<PrivateKey, KemFailed> {
    let prk = labeled_extract(b"dkp_prk", ikm);
    let mut sk = Zeroizing::new([0u8; LEN]);
    labeled_expand(&prk, b"sk", &[], sk.as_mut_slice())?;
    PrivateKey::new(&sk)
}

/// `LabeledExtract("", label, ikm)` (RFC 9180 section 4; every KEM call has an empty salt).
fn labeled_extract(label: &[u8], ikm: &[u8]) -> hkdf::Prk {
    let mut labeled = Zeroizing::new(Vec::with_capacity(
        VERSION.len() + SUITE_ID.len() + label.len() + ikm.len(),
    ));
    labeled.extend_from_slice(VERSION);
    labeled.extend_from_slice(&SUITE_ID);
    labeled.extend_from_slice(label);
    labeled.extend_from_slice(ikm);
    Salt::new(HKDF_SHA256, &[]).extract(&labeled)
}

/// `LabeledExpand(prk, label, info, L)` with `L = out.len()` (RFC 9180 section 4).
fn labeled_expand(
    prk: &hkdf::Prk,
    label: &[u8],
    info: &[u8],
    out: &mut [u8],
) -> Result<(), KemFailed> {
    struct Len(usize);
    impl KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let length = u16::try_from(out.len())
        .map_err(|_| KemFailed)?
        .to_be_bytes();
    prk.expand(&[&length, VERSION, &SUITE_ID, label, info], Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .map_err(|_| KemFailed)
}

/// RFC 9180 section 4.1: `ExtractAndExpand(dh, kem_context)` with `kem_context = enc || pkRm`.
fn shared_secret(
    dh: &[u8; LEN],
    enc: &[u8; LEN],
    pk_recipient: &[u8; LEN],
) -> Result<SharedSecret<X25519HkdfSha256>, KemFailed> {
    let prk = labeled_extract(b"eae_prk", dh);
    let mut kem_context = [0u8; 2 * LEN];
    kem_context[..LEN].copy_from_slice(enc);
    kem_context[LEN..].copy_from_slice(pk_recipient);
    let mut secret = SharedSecret::<X25519HkdfSha256>::default();
    labeled_expand(
        &prk,
        b"shared_secret",
        &kem_context,
        secret.0.as_mut_slice(),
    )?;
    Ok(secret)
}

impl hpke::Kem for X25519HkdfSha256 {
    type PublicKey = PublicKey;
    type PrivateKey = PrivateKey;
    type EncappedKey = EncappedKey;
    type NSecret = U32;
    const KEM_ID: u16 = 0x0020;

    fn sk_to_pk(sk: &PrivateKey) -> PublicKey {
        sk.public.clone()
    }

    /// The trait's infallible DeriveKeyPair. AWS-LC fails here only when it cannot allocate,
    /// and on that this aborts, as Rust does on any allocation failure. This crate calls the
    /// fallible [`derive_keypair`] instead; the trait needs this for `gen_keypair`.
    fn derive_keypair(ikm: &[u8]) -> (PrivateKey, PublicKey) {
        match derive_keypair(ikm) {
            Ok(sk) => {
                let pk = sk.public.clone();
                (sk, pk)
            }
            Err(KemFailed) => std::process::abort(),
        }
    }

    /// RFC 9180 section 4.1, Decap (base mode only).
    fn decap(
        sk_recip: &PrivateKey,
        pk_sender_id: Option<&PublicKey>,
        encapped_key: &EncappedKey,
    ) -> Result<SharedSecret<Self>, HpkeError> {
        if pk_sender_id.is_some() {
            return Err(HpkeError::DecapError);
        }
        let dh = sk_recip
            .dh(&encapped_key.0)
            .map_err(|_| HpkeError::DecapError)?;
        shared_secret(&dh, &encapped_key.0, &sk_recip.public.0).map_err(|_| HpkeError::DecapError)
    }

    /// RFC 9180 section 4.1, Encap (base mode only): the ephemeral key is DeriveKeyPair of
    /// `Nsk` bytes from `csprng`, as the hpke crate's own DHKEM does (so RFC 9180's vectors,
    /// made from a fixed `ikmE`, reproduce byte for byte).
    fn encap_with_rng(
        pk_recip: &PublicKey,
        sender_id_keypair: Option<(&PrivateKey, &PublicKey)>,
        csprng: &mut impl CryptoRng,
    ) -> Result<(SharedSecret<Self>, EncappedKey), HpkeError> {
        if sender_id_keypair.is_some() {
            return Err(HpkeError::EncapError);
        }
        let mut ikm = Zeroizing::new([0u8; LEN]);
        csprng.fill_bytes(ikm.as_mut_slice());
        let eph = derive_keypair(ikm.as_slice()).map_err(|_| HpkeError::EncapError)?;
        let dh = eph.dh(&pk_recip.0).map_err(|_| HpkeError::EncapError)?;
        let enc = eph.public.0;
        let secret = shared_secret(&dh, &enc, &pk_recip.0).map_err(|_| HpkeError::EncapError)?;
        Ok((secret, EncappedKey(enc)))
    }
}

/// Serializable and Deserializable for a 32-byte value: `|s| bytes` gives its serialization,
/// `|b| build` makes it from exactly 32 bytes (`from_bytes` refuses any other length).
macro_rules! bytes32 {
    ($type:ty, |$s:ident| $bytes:expr, |$b:ident| $build:expr) => {
        impl Serializable for $type {
            type OutputSize = U32;
            fn write_exact(&self, buf: &mut [u8]) {
                let $s = self;
                buf.copy_from_slice($bytes);
            }
        }
        impl Deserializable for $type {
            fn from_bytes(encoded: &[u8]) -> Result<Self, HpkeError> {
                let $b: &[u8; LEN] = encoded
                    .try_into()
                    .map_err(|_| HpkeError::IncorrectInputLength(LEN, encoded.len()))?;
                $build
            }
        }
    };
}

bytes32!(PublicKey, |k| &k.0, |b| Ok(PublicKey(*b)));
bytes32!(EncappedKey, |k| &k.0, |b| Ok(EncappedKey(*b)));
// DeserializePrivateKey clamps its input (RFC 9180 section 7.1.2).
bytes32!(PrivateKey, |k| k.bytes.as_slice(), |b| PrivateKey::new(b)
    .map_err(|_| HpkeError::ValidationError));

impl ConstantTimeEq for PrivateKey {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.bytes.as_slice().ct_eq(other.bytes.as_slice())
    }
}

impl PartialEq for PrivateKey {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hpke::Kem as _;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// RFC 7748 section 6.1: Alice's and Bob's keys and their shared secret.
    #[test]
    fn rfc7748_diffie_hellman() {
        let a = h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let a_pub = h("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
        let b = h("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
        let b_pub = h("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
        let shared = h("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
        let alice = PrivateKey::from_bytes(&a).unwrap();
        let bob = PrivateKey::from_bytes(&b).unwrap();
        assert_eq!(alice.public.0.to_vec(), a_pub);
        assert_eq!(bob.public.0.to_vec(), b_pub);
        assert_eq!(alice.dh(&bob.public.0).unwrap().to_vec(), shared);
        assert_eq!(bob.dh(&alice.public.0).unwrap().to_vec(), shared);
    }

    /// A low-order point gives the all-zero shared point: refused on both sides.
    #[test]
    fn low_order_point_is_refused() {
        let sk = derive_keypair(&[9u8; 32]).unwrap();
        let zero = EncappedKey([0u8; LEN]);
        assert!(matches!(
            X25519HkdfSha256::decap(&sk, None, &zero),
            Err(HpkeError::DecapError)
        ));
        let mut rng = crate::rng::FallibleRng::new(|b: &mut [u8]| {
            b.fill(1);
            Ok(())
        });
        assert!(matches!(
            X25519HkdfSha256::encap_with_rng(&PublicKey([0u8; LEN]), None, &mut rng),
            Err(HpkeError::EncapError)
        ));
    }

    #[test]
    fn auth_mode_is_refused() {
        let sk = derive_keypair(&[9u8; 32]).unwrap();
        let pk = sk.public.clone();
        let mut rng = crate::rng::FallibleRng::new(|b: &mut [u8]| {
            b.fill(1);
            Ok(())
        });
        assert!(matches!(
            X25519HkdfSha256::encap_with_rng(&pk, Some((&sk, &pk)), &mut rng),
            Err(HpkeError::EncapError)
        ));
        assert!(matches!(
            X25519HkdfSha256::decap(&sk, Some(&pk), &EncappedKey(pk.0)),
            Err(HpkeError::DecapError)
        ));
    }

    /// Against the hpke crate's own DHKEM (curve25519-dalek) on the same inputs: the same
    /// keys from the same IKM, and what either side seals the other opens.
    #[test]
    fn interoperates_with_the_hpke_crates_dhkem() {
        use hpke::aead::ChaCha20Poly1305 as A;
        use hpke::kdf::HkdfSha256 as K;
        use hpke::kem::X25519HkdfSha256 as Dalek;
        use hpke::{OpModeR, OpModeS};
        for i in 0u8..16 {
            let ikm = [i.wrapping_mul(37).wrapping_add(1); 32];
            let ours = derive_keypair(&ikm).unwrap();
            let (dalek_sk, dalek_pk) = Dalek::derive_keypair(&ikm);
            assert_eq!(ours.public.0.to_vec(), dalek_pk.to_bytes().to_vec());
            assert_eq!(ours.bytes.to_vec(), dalek_sk.to_bytes().to_vec());
            let mut rng = crate::rng::FallibleRng::new(|b: &mut [u8]| {
                b.fill(i ^ 0x5a);
                Ok(())
            });

            // Ours seals, the crate's opens.
            let (enc, ct) = hpke::single_shot_seal_with_rng::<A, K, X25519HkdfSha256>(
                &OpModeS::Base,
                &ours.public,
                b"info",
                b"message",
                b"aad",
                &mut rng,
            )
            .unwrap();
            let dalek_enc = <Dalek as hpke::Kem>::EncappedKey::from_bytes(&enc.to_bytes()).unwrap();
            let pt = hpke::single_shot_open::<A, K, Dalek>(
                &OpModeR::Base,
                &dalek_sk,
                &dalek_enc,
                b"info",
                &ct,
                b"aad",
            )
            .unwrap();
            assert_eq!(pt, b"message");

            // The crate's seals, ours opens.
            let (enc, ct) = hpke::single_shot_seal_with_rng::<A, K, Dalek>(
                &OpModeS::Base,
                &dalek_pk,
                b"info",
                b"message",
                b"aad",
                &mut rng,
            )
            .unwrap();
            let our_enc = EncappedKey::from_bytes(&enc.to_bytes()).unwrap();
            let pt = hpke::single_shot_open::<A, K, X25519HkdfSha256>(
                &OpModeR::Base,
                &ours,
                &our_enc,
                b"info",
                &ct,
                b"aad",
            )
            .unwrap();
            assert_eq!(pt, b"message");
        }
    }

    #[test]
    fn wrong_lengths_are_refused() {
        for len in [0, 31, 33] {
            assert!(PublicKey::from_bytes(&vec![1; len]).is_err());
            assert!(EncappedKey::from_bytes(&vec![1; len]).is_err());
            assert!(PrivateKey::from_bytes(&vec![1; len]).is_err());
        }
    }
}
