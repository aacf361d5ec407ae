//! JSON wire types: round trips, pinned field names, conversions.

use aws_lc_rs::rand::SystemRandom;
use hermetic_envelope::wire::{
    ChallengeResponse, Refusal, ReleaseRequest, ReleaseResponse, WrappedSecret,
};
use hermetic_envelope::{open, seal, EnclaveKey, EnvelopeError, ReleaseContext, SealedSecret};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

fn round_trip<T>(value: &T) -> T
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let text = serde_json::to_string(value).unwrap();
    let back: T = serde_json::from_str(&text).unwrap();
    assert_eq!(&back, value);
    back
}

fn challenge() -> ChallengeResponse {
    ChallengeResponse::new(&[0x00, 0xab, 0xff, 0x10], "2026-11-27T08:00:00Z")
}

fn request() -> ReleaseRequest {
    ReleaseRequest::new(
        &[0xd2, 0x84, 0x44, 0xa1],
        vec!["db-password".into(), "api-token".into()],
    )
}

fn wrapped() -> WrappedSecret {
    WrappedSecret {
        name: "db-password".into(),
        version: 7,
        enc: "AAEC".into(),
        ciphertext: "/+8=".into(),
    }
}

#[test]
fn round_trips() {
    round_trip(&challenge());
    round_trip(&request());
    round_trip(&ReleaseResponse {
        secrets: vec![wrapped(), wrapped()],
        receipt: None,
    });
    round_trip(&ReleaseResponse {
        secrets: vec![],
        receipt: None,
    });
    round_trip(&wrapped());
    round_trip(&Refusal::new(
        "nonce_expired",
        "the challenge nonce has expired",
    ));
    let mut big = wrapped();
    big.version = u64::MAX;
    round_trip(&big);
}

#[test]
fn json_field_names_are_pinned() {
    assert_eq!(
        serde_json::to_string(&challenge()).unwrap(),
        r#"{"nonce":"00abff10","expires_at":"2026-11-27T08:00:00Z"}"#
    );
    assert_eq!(
        serde_json::to_string(&request()).unwrap(),
        r#"{"attestation_document":"0oREoQ==","secrets":["db-password","api-token"]}"#
    );
    assert_eq!(
        serde_json::to_string(&wrapped()).unwrap(),
        r#"{"name":"db-password","version":7,"enc":"AAEC","ciphertext":"/+8="}"#
    );
    assert_eq!(
        serde_json::to_value(ReleaseResponse {
            secrets: vec![wrapped()],
            receipt: None
        })
        .unwrap(),
        json!({"secrets": [{"name": "db-password", "version": 7, "enc": "AAEC", "ciphertext": "/+8="}]})
    );
    assert_eq!(
        serde_json::to_string(&Refusal::new("attestation_invalid", "bad signature")).unwrap(),
        r#"{"reason":"attestation_invalid","message":"bad signature"}"#
    );
}

#[test]
fn parses_what_the_other_side_writes() {
    let c: ChallengeResponse =
        serde_json::from_value(json!({"nonce": "0a0b", "expires_at": "2026-11-27T08:00:00Z"}))
            .unwrap();
    assert_eq!(c.nonce_bytes().unwrap(), vec![0x0a, 0x0b]);

    let r: ReleaseRequest =
        serde_json::from_value(json!({"attestation_document": "0oREoQ==", "secrets": ["a"]}))
            .unwrap();
    assert_eq!(
        r.attestation_document_bytes().unwrap(),
        vec![0xd2, 0x84, 0x44, 0xa1]
    );
    assert_eq!(r.secrets, vec!["a".to_string()]);

    let f: Refusal = serde_json::from_value(json!({"reason": "x_y", "message": "m"})).unwrap();
    assert_eq!(f, Refusal::new("x_y", "m"));
}

#[test]
fn unknown_fields_are_ignored_and_missing_fields_refused() {
    let w: WrappedSecret = serde_json::from_value(json!({
        "name": "n", "version": 1, "enc": "", "ciphertext": "", "future": true
    }))
    .unwrap();
    assert_eq!(w.name, "n");

    for missing in ["name", "version", "enc", "ciphertext"] {
        let mut v = serde_json::to_value(wrapped()).unwrap();
        v.as_object_mut().unwrap().remove(missing);
        assert!(
            serde_json::from_value::<WrappedSecret>(v).is_err(),
            "{missing}"
        );
    }
    assert!(serde_json::from_value::<ReleaseRequest>(json!({"secrets": []})).is_err());
    assert!(serde_json::from_value::<ChallengeResponse>(json!({"nonce": "00"})).is_err());
    assert!(serde_json::from_value::<Refusal>(json!({"reason": "r"})).is_err());
    assert!(serde_json::from_value::<ReleaseResponse>(json!({})).is_err());
}

#[test]
fn version_must_be_an_unsigned_integer() {
    for bad in [json!(-1), json!(1.5), json!("7"), json!(null)] {
        let mut v = serde_json::to_value(wrapped()).unwrap();
        v["version"] = bad.clone();
        assert!(serde_json::from_value::<WrappedSecret>(v).is_err(), "{bad}");
    }
}

#[test]
fn sealed_secret_converts_both_ways() {
    let sealed = SealedSecret {
        name: "db-password".into(),
        version: 7,
        enc: vec![0, 1, 2],
        ciphertext: vec![0xff, 0xef],
    };
    let w = WrappedSecret::from(&sealed);
    assert_eq!(w, wrapped());
    assert_eq!(SealedSecret::try_from(&w).unwrap(), sealed);
    assert_eq!(SealedSecret::try_from(w.clone()).unwrap(), sealed);
    assert_eq!(WrappedSecret::from(sealed), w);
}

#[test]
fn bad_base64_is_a_typed_error_naming_the_field() {
    // Not base64, unpadded, URL-safe alphabet, whitespace, non-canonical trailing bits.
    for bad in ["not base64!", "AAE", "-_8=", "AA EC", "AB=="] {
        let mut w = wrapped();
        w.enc = bad.into();
        assert_eq!(
            SealedSecret::try_from(&w),
            Err(EnvelopeError::InvalidBase64 { field: "enc" }),
            "{bad}"
        );
        let mut w = wrapped();
        w.ciphertext = bad.into();
        let err = SealedSecret::try_from(&w).unwrap_err();
        assert_eq!(
            err,
            EnvelopeError::InvalidBase64 {
                field: "ciphertext"
            }
        );
        assert_eq!(err.reason(), "envelope_bad_base64");
    }
    let r = ReleaseRequest {
        attestation_document: "***".into(),
        secrets: vec![],
    };
    assert_eq!(
        r.attestation_document_bytes(),
        Err(EnvelopeError::InvalidBase64 {
            field: "attestation_document"
        })
    );
}

#[test]
fn nonce_must_be_lower_case_hex() {
    for bad in ["0A", "0", "zz", "0x00", " 00"] {
        let c = ChallengeResponse {
            nonce: bad.into(),
            expires_at: "2026-11-27T08:00:00Z".into(),
        };
        let err = c.nonce_bytes().unwrap_err();
        assert_eq!(err, EnvelopeError::InvalidHex { field: "nonce" }, "{bad}");
        assert_eq!(err.reason(), "envelope_bad_hex");
    }
    assert_eq!(
        challenge().nonce_bytes().unwrap(),
        vec![0x00, 0xab, 0xff, 0x10]
    );
}

#[test]
fn refusal_from_envelope_error() {
    let err = EnvelopeError::VersionMismatch {
        sealed: 1,
        expected: 2,
    };
    let r = Refusal::from(&err);
    assert_eq!(r.reason, "envelope_version_mismatch");
    assert_eq!(r.message, err.to_string());
    assert_eq!(Refusal::from(err), r);
}

#[test]
fn end_to_end_over_json() {
    let rng = SystemRandom::new();
    let key = EnclaveKey::generate(&rng).unwrap();
    let challenge = ChallengeResponse::new(&[0x42; 32], "2026-11-27T08:00:00Z");
    let challenge: ChallengeResponse =
        serde_json::from_str(&serde_json::to_string(&challenge).unwrap()).unwrap();
    let nonce = challenge.nonce_bytes().unwrap();

    // Verifier side.
    let ctx = ReleaseContext::new("db-password", 3, nonce.clone());
    let sealed = seal(&key.recipient(), &ctx, b"s3cret", &rng).unwrap();
    let body = serde_json::to_string(&ReleaseResponse {
        secrets: vec![WrappedSecret::from(&sealed)],
        receipt: None,
    })
    .unwrap();

    // Enclave side.
    let response: ReleaseResponse = serde_json::from_str(&body).unwrap();
    let got = SealedSecret::try_from(&response.secrets[0]).unwrap();
    let plaintext = open(&key, &got, &ReleaseContext::new("db-password", 3, nonce)).unwrap();
    assert_eq!(plaintext.as_slice(), b"s3cret");
}

#[test]
fn transient_reasons_are_pinned_and_retried() {
    use hermetic_envelope::wire::{is_transient, TRANSIENT_REASONS};
    // The codes are part of the protocol: pinned as the verifier sends them.
    assert_eq!(
        TRANSIENT_REASONS,
        [
            "nonce_unknown",
            "nonce_expired",
            "challenge_capacity",
            "too_many_outstanding_nonces",
            "rng_failed",
            "rate_limited",
            "timeout",
            "store_error",
            "audit_log_unavailable",
            "witness_unavailable",
            "internal_error",
        ]
    );
    for reason in TRANSIENT_REASONS {
        assert!(is_transient(403, reason), "{reason}");
    }
    // Server trouble and rate limiting, whatever the body said.
    assert!(is_transient(502, "http_error"));
    assert!(is_transient(503, "anything"));
    assert!(is_transient(429, "anything"));
    // Final refusals, and a reason spelt the way no verifier sends it.
    for reason in [
        "pcr_mismatch",
        "debug_enclave",
        "unknown_secret",
        "no_policy",
        "nonce_replayed",
        "untrusted_root",
        "bad_signature",
        "public_key_missing",
        "unknown_nonce",
    ] {
        assert!(!is_transient(403, reason), "{reason}");
    }
    assert!(!is_transient(400, "bad_request"));
    assert!(!is_transient(413, "request_too_large"));
}
