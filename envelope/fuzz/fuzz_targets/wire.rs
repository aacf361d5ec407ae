//! The release API's JSON bodies and the sealed-value intake on hostile
//! bytes: the verifier's `POST /release` body (`ReleaseRequest`), the
//! answers an enclave reads (`ChallengeResponse`, `ReleaseResponse` with
//! its receipt, `Refusal`), a sealed secret's wire form, and a value
//! sealed to the verifier's intake key (`enc || ciphertext`, what `secret
//! put` submits). What parses round-trips; nothing an attacker made up
//! opens under the enclave's or the verifier's key.
#![no_main]

use std::sync::OnceLock;

use hermetic_envelope::wire::{
    ChallengeResponse, Receipt, Refusal, ReleaseRequest, ReleaseResponse, WrappedSecret,
};
use hermetic_envelope::{
    open, open_value, EnclaveKey, IntakeContext, ReleaseContext, SealedSecret, SealedValue,
};
use libfuzzer_sys::fuzz_target;

fn key() -> &'static EnclaveKey {
    static K: OnceLock<EnclaveKey> = OnceLock::new();
    K.get_or_init(|| EnclaveKey::from_ikm(&[9; 32]).unwrap())
}

fn round_trips<T>(data: &[u8]) -> Option<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let v = serde_json::from_slice::<T>(data).ok()?;
    let again: T = serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
    assert_eq!(again, v);
    Some(v)
}

fuzz_target!(|data: &[u8]| {
    if let Some(req) = round_trips::<ReleaseRequest>(data) {
        if let Ok(doc) = req.attestation_document_bytes() {
            let again = ReleaseRequest::new(&doc, req.secrets.clone());
            assert_eq!(again.attestation_document_bytes().unwrap(), doc);
        }
    }
    if let Some(ch) = round_trips::<ChallengeResponse>(data) {
        if let Ok(nonce) = ch.nonce_bytes() {
            // Lower-case hex only: one spelling per nonce.
            assert_eq!(ChallengeResponse::new(&nonce, ch.expires_at.clone()), ch);
        }
    }
    if let Some(resp) = round_trips::<ReleaseResponse>(data) {
        for w in &resp.secrets {
            if let Ok(sealed) = SealedSecret::try_from(w) {
                let back = WrappedSecret::from(&sealed);
                assert_eq!(SealedSecret::try_from(&back).unwrap(), sealed);
                // A made-up secret never opens under the enclave's key,
                // whatever nonce it claims to answer.
                let ctx = ReleaseContext::new(w.name.clone(), w.version, vec![1u8; 32]);
                assert!(open(key(), &sealed, &ctx).is_err());
            }
        }
    }
    let _ = round_trips::<Receipt>(data);
    let _ = round_trips::<Refusal>(data);
    let _ = round_trips::<WrappedSecret>(data);

    // Intake: `enc || ciphertext` as submitted by `secret put`.
    if let Ok(sealed) = SealedValue::from_bytes(data) {
        assert_eq!(sealed.to_bytes(), data);
        let ctx = IntakeContext::new("hermetic-fuzz", "db-password");
        assert!(open_value(key(), &sealed, &ctx).is_err());
    } else {
        assert!(data.len() < hermetic_envelope::ENC_LEN + hermetic_envelope::TAG_LEN);
    }
    // Context encodings: length-prefixed, so distinct fields give distinct
    // bytes; over-long fields are refused, never a panic.
    if let Ok(text) = std::str::from_utf8(data) {
        let mid = text
            .char_indices()
            .nth(text.chars().count() / 2)
            .map_or(0, |(i, _)| i);
        let (a, b) = text.split_at(mid);
        if let (Ok(x), Ok(y)) = (
            IntakeContext::new(a, b).encode(),
            IntakeContext::new(b, a).encode(),
        ) {
            assert_eq!(x == y, a == b);
        }
        let _ = ReleaseContext::new(text, 1, data.to_vec()).encode();
    }
});
