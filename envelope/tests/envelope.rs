//! Behaviour of `seal`/`open` through the public API only.

use aws_lc_rs::rand::SystemRandom;
use hermetic_envelope::{
    open, seal, EnclaveKey, EnvelopeError, RecipientPublicKey, ReleaseContext, SealedSecret,
    MIN_IKM_LEN, PUBLIC_KEY_LEN,
};

const PLAINTEXT: &[u8] = b"TOP-SECRET-PLAINTEXT-7f3a9c";

fn ctx() -> ReleaseContext {
    ReleaseContext::new("db-password", 7, vec![0xa5; 32])
}

fn key(seed: u8) -> EnclaveKey {
    EnclaveKey::from_ikm(&[seed; 32]).unwrap()
}

fn sealed_for(key: &EnclaveKey, ctx: &ReleaseContext) -> SealedSecret {
    seal(&key.recipient(), ctx, PLAINTEXT, &SystemRandom::new()).unwrap()
}

/// Opens and expects exactly `want`; also checks the error never shows the plaintext.
fn assert_refused(
    key: &EnclaveKey,
    sealed: &SealedSecret,
    expected: &ReleaseContext,
    want: EnvelopeError,
) {
    let err = open(key, sealed, expected).expect_err("must be refused");
    assert_eq!(err, want);
    assert_no_plaintext(&err);
}

fn assert_no_plaintext(err: &EnvelopeError) {
    let shown = format!("{err} {err:?} {err:#?}");
    assert!(
        !shown.contains("TOP-SECRET"),
        "error shows plaintext: {shown}"
    );
    let decimal = format!("{:?}", PLAINTEXT);
    assert!(!shown.contains(&decimal[1..decimal.len() - 1]));
}

#[test]
fn round_trip() {
    let k = key(1);
    let sealed = sealed_for(&k, &ctx());
    assert_eq!(sealed.name, "db-password");
    assert_eq!(sealed.version, 7);
    assert_eq!(sealed.enc.len(), 32);
    assert_eq!(sealed.ciphertext.len(), PLAINTEXT.len() + 16);
    assert_eq!(open(&k, &sealed, &ctx()).unwrap().as_slice(), PLAINTEXT);
}

#[test]
fn round_trip_through_public_key_bytes_and_generated_key() {
    let rng = SystemRandom::new();
    let k = EnclaveKey::generate(&rng).unwrap();
    let recipient = RecipientPublicKey::from_bytes(&k.public_key_bytes()).unwrap();
    assert_eq!(recipient.to_bytes(), k.public_key_bytes());
    for plaintext in [&b""[..], &[0u8; 1][..], &vec![0x5c; 1 << 20][..]] {
        let sealed = seal(&recipient, &ctx(), plaintext, &rng).unwrap();
        assert_eq!(open(&k, &sealed, &ctx()).unwrap().as_slice(), plaintext);
    }
}

#[test]
fn empty_name_and_nonce_are_allowed() {
    let k = key(1);
    let c = ReleaseContext::new("", 0, Vec::new());
    let sealed = sealed_for(&k, &c);
    assert_eq!(open(&k, &sealed, &c).unwrap().as_slice(), PLAINTEXT);
}

#[test]
fn every_seal_uses_a_fresh_ephemeral_key() {
    let k = key(1);
    let a = sealed_for(&k, &ctx());
    let b = sealed_for(&k, &ctx());
    assert_ne!(a.enc, b.enc);
    assert_ne!(a.ciphertext, b.ciphertext);
}

#[test]
fn wrong_key_is_refused() {
    let sealed = sealed_for(&key(1), &ctx());
    assert_refused(&key(2), &sealed, &ctx(), EnvelopeError::OpenFailed);
}

#[test]
fn wrong_name_is_refused() {
    let k = key(1);
    let sealed = sealed_for(&k, &ctx());
    let mut other = ctx();
    other.name = "api-token".into();
    assert_refused(
        &k,
        &sealed,
        &other,
        EnvelopeError::NameMismatch {
            sealed: "db-password".into(),
            expected: "api-token".into(),
        },
    );
    assert_eq!(
        open(&k, &sealed, &other).unwrap_err().reason(),
        "envelope_name_mismatch"
    );
}

#[test]
fn wrong_version_is_refused() {
    let k = key(1);
    let sealed = sealed_for(&k, &ctx());
    let mut other = ctx();
    other.version = 8;
    assert_refused(
        &k,
        &sealed,
        &other,
        EnvelopeError::VersionMismatch {
            sealed: 7,
            expected: 8,
        },
    );
    assert_eq!(
        open(&k, &sealed, &other).unwrap_err().reason(),
        "envelope_version_mismatch"
    );
}

#[test]
fn relabelled_name_or_version_in_transit_is_refused() {
    // Someone rewrites the clear name/version so that they match what the enclave asked for:
    // the ciphertext is still bound to the original context.
    let k = key(1);
    let sealed = sealed_for(&k, &ctx());

    let mut renamed = sealed.clone();
    renamed.name = "api-token".into();
    let mut asked = ctx();
    asked.name = "api-token".into();
    assert_refused(&k, &renamed, &asked, EnvelopeError::OpenFailed);

    let mut reversioned = sealed.clone();
    reversioned.version = 8;
    let mut asked = ctx();
    asked.version = 8;
    assert_refused(&k, &reversioned, &asked, EnvelopeError::OpenFailed);
}

#[test]
fn wrong_nonce_is_refused() {
    let k = key(1);
    let sealed = sealed_for(&k, &ctx());
    for nonce in [vec![0xa5; 31], vec![0xa5; 33], vec![0x5a; 32], Vec::new()] {
        let mut other = ctx();
        other.nonce = nonce;
        assert_refused(&k, &sealed, &other, EnvelopeError::OpenFailed);
    }
    let mut flipped = ctx();
    flipped.nonce[31] ^= 1;
    assert_refused(&k, &sealed, &flipped, EnvelopeError::OpenFailed);
}

#[test]
fn every_flipped_bit_of_enc_is_refused() {
    let k = key(1);
    let sealed = sealed_for(&k, &ctx());
    for bit in 0..sealed.enc.len() * 8 {
        let mut t = sealed.clone();
        t.enc[bit / 8] ^= 1 << (bit % 8);
        assert_refused(&k, &t, &ctx(), EnvelopeError::OpenFailed);
    }
}

#[test]
fn every_flipped_bit_of_ciphertext_is_refused() {
    let k = key(1);
    let sealed = sealed_for(&k, &ctx());
    for bit in 0..sealed.ciphertext.len() * 8 {
        let mut t = sealed.clone();
        t.ciphertext[bit / 8] ^= 1 << (bit % 8);
        assert_refused(&k, &t, &ctx(), EnvelopeError::OpenFailed);
    }
}

#[test]
fn truncated_or_extended_enc_is_refused() {
    let k = key(1);
    let sealed = sealed_for(&k, &ctx());
    for len in 0..sealed.enc.len() {
        let mut t = sealed.clone();
        t.enc.truncate(len);
        assert_refused(&k, &t, &ctx(), EnvelopeError::OpenFailed);
    }
    let mut t = sealed.clone();
    t.enc.push(0);
    assert_refused(&k, &t, &ctx(), EnvelopeError::OpenFailed);
}

#[test]
fn truncated_or_extended_ciphertext_is_refused() {
    let k = key(1);
    let sealed = sealed_for(&k, &ctx());
    for len in 0..sealed.ciphertext.len() {
        let mut t = sealed.clone();
        t.ciphertext.truncate(len);
        assert_refused(&k, &t, &ctx(), EnvelopeError::OpenFailed);
    }
    let mut t = sealed.clone();
    t.ciphertext.push(0);
    assert_refused(&k, &t, &ctx(), EnvelopeError::OpenFailed);
}

#[test]
fn swapped_enc_between_two_seals_is_refused() {
    let k = key(1);
    let a = sealed_for(&k, &ctx());
    let b = sealed_for(&k, &ctx());
    let mut t = a.clone();
    t.enc = b.enc.clone();
    assert_refused(&k, &t, &ctx(), EnvelopeError::OpenFailed);
}

#[test]
fn open_failed_reason_is_stable() {
    assert_eq!(EnvelopeError::OpenFailed.reason(), "envelope_open_failed");
}

#[test]
fn recipient_public_key_rejects_wrong_lengths() {
    for len in [0usize, 1, 31, 33, 64, 65, 97] {
        let err = RecipientPublicKey::from_bytes(&vec![9u8; len]).unwrap_err();
        assert_eq!(
            err,
            EnvelopeError::InvalidPublicKeyLength {
                actual: len,
                expected: PUBLIC_KEY_LEN
            }
        );
        assert_eq!(err.reason(), "envelope_bad_public_key");
    }
    assert!(RecipientPublicKey::from_bytes(&[9u8; PUBLIC_KEY_LEN]).is_ok());
}

#[test]
fn low_order_recipient_key_cannot_be_sealed_to() {
    // u = 0 and u = 1 are small-order X25519 points: the DH result is all zeros, which RFC 9180
    // section 7.1.4 requires to abort.
    let mut one = [0u8; 32];
    one[0] = 1;
    for point in [[0u8; 32], one] {
        let recipient = RecipientPublicKey::from_bytes(&point).unwrap();
        let err = seal(&recipient, &ctx(), PLAINTEXT, &SystemRandom::new()).unwrap_err();
        assert_eq!(err, EnvelopeError::SealFailed);
        assert_eq!(err.reason(), "envelope_seal_failed");
        assert_no_plaintext(&err);
    }
}

#[test]
fn low_order_enc_is_refused() {
    let k = key(1);
    let mut t = sealed_for(&k, &ctx());
    t.enc = vec![0; 32];
    assert_refused(&k, &t, &ctx(), EnvelopeError::OpenFailed);
}

#[test]
fn oversized_context_is_refused_not_a_panic() {
    let k = key(1);
    let big_name = ReleaseContext::new("n".repeat(70_000), 1, vec![0; 4]);
    let err = seal(&k.recipient(), &big_name, PLAINTEXT, &SystemRandom::new()).unwrap_err();
    assert_eq!(err.reason(), "envelope_context_too_large");

    let big_nonce = ReleaseContext::new("n", 1, vec![0; 70_000]);
    let err = seal(&k.recipient(), &big_nonce, PLAINTEXT, &SystemRandom::new()).unwrap_err();
    assert_eq!(err.reason(), "envelope_context_too_large");

    // And on the opening side.
    let sealed = sealed_for(&k, &ctx());
    let mut asked = ctx();
    asked.nonce = vec![0; 70_000];
    let err = open(&k, &sealed, &asked).unwrap_err();
    assert_eq!(err.reason(), "envelope_context_too_large");
}

#[test]
fn ikm_must_be_at_least_32_bytes() {
    for len in [0usize, 1, 16, MIN_IKM_LEN - 1] {
        let err = EnclaveKey::from_ikm(&vec![1u8; len]).unwrap_err();
        assert_eq!(
            err,
            EnvelopeError::IkmTooShort {
                actual: len,
                min: MIN_IKM_LEN
            }
        );
        assert_eq!(err.reason(), "envelope_ikm_too_short");
    }
    assert!(EnclaveKey::from_ikm(&[1u8; MIN_IKM_LEN]).is_ok());
    assert!(EnclaveKey::from_ikm(&[1u8; 64]).is_ok());
}

#[test]
fn key_derivation_is_deterministic() {
    assert_eq!(key(1).public_key_bytes(), key(1).public_key_bytes());
    assert_ne!(key(1).public_key_bytes(), key(2).public_key_bytes());
    // All of the IKM counts, not just its first 32 bytes.
    let mut long = [1u8; 48];
    let a = EnclaveKey::from_ikm(&long).unwrap().public_key_bytes();
    long[47] = 2;
    assert_ne!(a, EnclaveKey::from_ikm(&long).unwrap().public_key_bytes());
}

#[test]
fn generated_keys_differ() {
    let rng = SystemRandom::new();
    let a = EnclaveKey::generate(&rng).unwrap();
    let b = EnclaveKey::generate(&rng).unwrap();
    assert_ne!(a.public_key_bytes(), b.public_key_bytes());
}

#[test]
fn debug_of_enclave_key_shows_no_private_material() {
    // RFC 9180 A.2.1's ikmR, whose derived private key is known.
    let ikm =
        hex::decode("1ac01f181fdf9f352797655161c58b75c656a6cc2716dcb66372da835542e1df").unwrap();
    let k = EnclaveKey::from_ikm(&ikm).unwrap();
    let shown = format!("{k:?}");
    assert_eq!(
        shown,
        "EnclaveKey { public_key: 4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a, \
         private_key: <redacted> }"
    );
    let pretty = format!("{k:#?}");
    for secret in [
        // skRm as printed in the RFC, and clamped as stored.
        "8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb",
        "8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e07b",
        "1ac01f181fdf9f352797655161c58b75c656a6cc2716dcb66372da835542e1df",
        "128, 87, 153",
        "26, 192, 31",
    ] {
        assert!(!shown.contains(secret) && !pretty.contains(secret));
    }
    assert!(pretty.contains("<redacted>"));
}

#[test]
fn debug_of_recipient_and_sealed_secret_is_public_data_only() {
    let k = key(1);
    let shown = format!("{:?}", k.recipient());
    assert_eq!(
        shown,
        format!("RecipientPublicKey({})", hex::encode(k.public_key_bytes()))
    );
    let sealed = sealed_for(&k, &ctx());
    assert!(!format!("{sealed:?}").contains("TOP-SECRET"));
}

#[test]
fn types_can_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<EnclaveKey>();
    send_sync::<RecipientPublicKey>();
    send_sync::<SealedSecret>();
    send_sync::<ReleaseContext>();
    send_sync::<EnvelopeError>();
}
