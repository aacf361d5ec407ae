//! Known-answer test: RFC 9180, Appendix A.2.1, "Base Setup Information", for the suite
//! DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305 (mode 0, kem_id 32, kdf_id 1,
//! aead_id 3), with its sequence of encryptions (A.2.1.1) and exported values (A.2.1.2).
//!
//! The values are copied from the RFC's text. They are run through `EnclaveKey::from_ikm` and
//! the `suite` functions that `seal`/`open` use, so what is proven is our use of the hpke crate,
//! not the crate's own tests.

use hpke::Serializable;

use crate::suite;
use crate::EnclaveKey;

// A.2.1. Base Setup Information
const INFO: &str = "4f6465206f6e2061204772656369616e2055726e"; // "Ode on a Grecian Urn"
const IKM_E: &str = "909a9b35d3dc4713a5e72a4da274b55d3d3821a37e5d099e74a647db583a904b";
const PK_EM: &str = "1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a";
const SK_EM: &str = "f4ec9b33b792c372c1d2c2063507b684ef925b8c75a42dbcbf57d63ccd381600";
const IKM_R: &str = "1ac01f181fdf9f352797655161c58b75c656a6cc2716dcb66372da835542e1df";
const PK_RM: &str = "4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a";
const SK_RM: &str = "8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb";
const ENC: &str = "1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a";

// A.2.1.1. Encryptions: every entry has the same pt; aad is "Count-<sequence number>".
const PT: &str = "4265617574792069732074727574682c20747275746820626561757479"; // "Beauty is truth, truth beauty"
const ENCRYPTIONS: &[(u64, &str, &str)] = &[
    (
        0,
        "436f756e742d30",
        "1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28",
    ),
    (
        1,
        "436f756e742d31",
        "6b53c051e4199c518de79594e1c4ab18b96f081549d45ce015be002090bb119e85285337cc95ba5f59992dc98c",
    ),
    (
        2,
        "436f756e742d32",
        "71146bd6795ccc9c49ce25dda112a48f202ad220559502cef1f34271e0cb4b02b4f10ecac6f48c32f878fae86b",
    ),
    (
        4,
        "436f756e742d34",
        "63357a2aa291f5a4e5f27db6baa2af8cf77427c7c1a909e0b37214dd47db122bb153495ff0b02e9e54a50dbe16",
    ),
    (
        255,
        "436f756e742d323535",
        "18ab939d63ddec9f6ac2b60d61d36a7375d2070c9b683861110757062c52b8880a5f6b3936da9cd6c23ef2a95c",
    ),
    (
        256,
        "436f756e742d323536",
        "7a4a13e9ef23978e2c520fd4d2e757514ae160cd0cd05e556ef692370ca53076214c0c40d4c728d6ed9e727a5b",
    ),
];

// A.2.1.2. Exported Values: (exporter_context, L = 32, exported_value)
const EXPORTS: &[(&str, &str)] = &[
    (
        "",
        "4bbd6243b8bb54cec311fac9df81841b6fd61f56538a775e7c80a9f40160606e",
    ),
    (
        "00",
        "8c1df14732580e5501b00f82b10a1647b40713191b7c1240ac80e2b68808ba69",
    ),
    (
        "54657374436f6e74657874", // "TestContext"
        "5acb09211139c43b3090489a9da433e8a30ee7188ba8b0a9a1ccf0c229283e53",
    ),
];

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).expect("test vector is hex")
}

/// RFC 9180 section 7.1.2: SerializePrivateKey for X25519 clamps (RFC 7748 section 5); the
/// appendix prints the unclamped output of DeriveKeyPair's expand step.
fn clamp(mut k: Vec<u8>) -> Vec<u8> {
    k[0] &= 248;
    k[31] &= 127;
    k[31] |= 64;
    k
}

/// Randomness that hands out `ikmE` once, as the RFC's encap does with its fixed ephemeral IKM.
fn fixed_ikm_e() -> impl FnMut(&mut [u8]) -> Result<(), ()> {
    let mut left = h(IKM_E);
    move |buf: &mut [u8]| {
        if buf.len() > left.len() {
            return Err(());
        }
        let rest = left.split_off(buf.len());
        buf.copy_from_slice(&left);
        left = rest;
        Ok(())
    }
}

#[test]
fn derive_key_pair_recipient() {
    let key = EnclaveKey::from_ikm(&h(IKM_R)).unwrap();
    assert_eq!(key.public_key_bytes().to_vec(), h(PK_RM));
    assert_eq!(key.secret().to_bytes().to_vec(), clamp(h(SK_RM)));
    // Clamping (applied by both sides) does not change the key: the vector's skRm, parsed,
    // equals ours.
    let parsed = <suite::PrivateKey as hpke::Deserializable>::from_bytes(&h(SK_RM)).unwrap();
    assert!(parsed == *key.secret());
}

#[test]
fn derive_key_pair_ephemeral_gives_enc() {
    let eph = EnclaveKey::from_ikm(&h(IKM_E)).unwrap();
    assert_eq!(eph.public_key_bytes().to_vec(), h(PK_EM));
    assert_eq!(eph.public_key_bytes().to_vec(), h(ENC));
    assert_eq!(eph.secret().to_bytes().to_vec(), clamp(h(SK_EM)));
}

#[test]
fn single_shot_seal_and_open_sequence_zero() {
    let key = EnclaveKey::from_ikm(&h(IKM_R)).unwrap();
    let (seq, aad, ct) = ENCRYPTIONS[0];
    assert_eq!(seq, 0);

    // Seal with the vector's ephemeral IKM: same enc and ciphertext, byte for byte.
    let (enc, sealed) = suite::seal_base(
        &key.recipient().0,
        &h(INFO),
        &h(aad),
        &h(PT),
        &mut fixed_ikm_e(),
    )
    .unwrap();
    assert_eq!(enc, h(ENC));
    assert_eq!(sealed, h(ct));

    // Open the vector's ciphertext with skRm, enc and info.
    let pt = suite::open_base(key.secret(), &h(ENC), &h(INFO), &h(aad), &h(ct)).unwrap();
    assert_eq!(pt.as_slice(), h(PT).as_slice());
}

#[test]
fn context_sequence_of_encryptions() {
    let key = EnclaveKey::from_ikm(&h(IKM_R)).unwrap();
    let (enc, mut sender) =
        suite::setup_sender(&key.recipient().0, &h(INFO), &mut fixed_ikm_e()).unwrap();
    assert_eq!(enc, h(ENC));
    let mut receiver = suite::setup_receiver(key.secret(), &h(ENC), &h(INFO)).unwrap();

    // The context's sequence number advances on every message, so walk 0..=256 and check the
    // ones the RFC lists. aad is "Count-<seq>" for every step, listed or not.
    let last = ENCRYPTIONS.last().unwrap().0;
    let mut listed = ENCRYPTIONS.iter().peekable();
    let mut checked = 0;
    for seq in 0..=last {
        let aad = format!("Count-{seq}").into_bytes();
        let ct = sender.seal(&h(PT), &aad).unwrap();
        if let Some((_, vector_aad, vector_ct)) = listed.next_if(|(s, _, _)| *s == seq) {
            assert_eq!(aad, h(vector_aad), "aad at sequence {seq}");
            assert_eq!(ct, h(vector_ct), "ciphertext at sequence {seq}");
            checked += 1;
        }
        let pt = receiver.open(&ct, &aad).unwrap();
        assert_eq!(pt, h(PT), "plaintext at sequence {seq}");
    }
    assert_eq!(checked, ENCRYPTIONS.len());
}

#[test]
fn context_opens_listed_vector_ciphertexts() {
    // Receiver side alone: feed it the RFC's ciphertexts; for the unlisted sequence numbers in
    // between, advance it with ciphertexts from a sender built on the vector's ephemeral key.
    let key = EnclaveKey::from_ikm(&h(IKM_R)).unwrap();
    let (_, mut filler) =
        suite::setup_sender(&key.recipient().0, &h(INFO), &mut fixed_ikm_e()).unwrap();
    let mut receiver = suite::setup_receiver(key.secret(), &h(ENC), &h(INFO)).unwrap();
    let mut listed = ENCRYPTIONS.iter().peekable();
    for seq in 0..=ENCRYPTIONS.last().unwrap().0 {
        let aad = format!("Count-{seq}").into_bytes();
        let filler_ct = filler.seal(&h(PT), &aad).unwrap();
        let ct = match listed.next_if(|(s, _, _)| *s == seq) {
            Some((_, _, vector_ct)) => h(vector_ct),
            None => filler_ct,
        };
        assert_eq!(receiver.open(&ct, &aad).unwrap(), h(PT), "sequence {seq}");
    }
}

#[test]
fn exported_values() {
    let key = EnclaveKey::from_ikm(&h(IKM_R)).unwrap();
    let receiver = suite::setup_receiver(key.secret(), &h(ENC), &h(INFO)).unwrap();
    let (_, sender) =
        suite::setup_sender(&key.recipient().0, &h(INFO), &mut fixed_ikm_e()).unwrap();
    for (exporter_context, value) in EXPORTS {
        let mut from_receiver = [0u8; 32];
        receiver
            .export(&h(exporter_context), &mut from_receiver)
            .unwrap();
        assert_eq!(
            from_receiver.to_vec(),
            h(value),
            "receiver export {exporter_context:?}"
        );
        let mut from_sender = [0u8; 32];
        sender
            .export(&h(exporter_context), &mut from_sender)
            .unwrap();
        assert_eq!(
            from_sender.to_vec(),
            h(value),
            "sender export {exporter_context:?}"
        );
    }
}

#[test]
fn vector_ciphertext_refused_with_other_info_or_aad() {
    let key = EnclaveKey::from_ikm(&h(IKM_R)).unwrap();
    let (_, aad, ct) = ENCRYPTIONS[0];
    assert_eq!(
        suite::open_base(
            key.secret(),
            &h(ENC),
            b"Ode on a Grecian Urn!",
            &h(aad),
            &h(ct)
        ),
        Err(crate::EnvelopeError::OpenFailed)
    );
    assert_eq!(
        suite::open_base(key.secret(), &h(ENC), &h(INFO), b"Count-1", &h(ct)),
        Err(crate::EnvelopeError::OpenFailed)
    );
}
