//! The verifier's identity binding on hostile documents: a genuine
//! attestation document (signed by the simulator's AWS-shaped PKI, pinned
//! measurements, fresh) whose `user_data` and `public_key` come from the
//! input. `check_identity` accepts it exactly when `user_data` is the
//! hermetic-verifier/v1 binding of the presented TLS key and a 32-byte
//! intake key — never a look-alike.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use hermetic_attestation::simulator::{Leaf, TestPki};
use hermetic_attestation::{Document, TrustedRoot, UnixTime, Verifier};
use hermetic_identity::{
    check_identity, expected_user_data, Pins, INTAKE_KEY_LEN, MAX_DOCUMENT_AGE, USER_DATA_LEN,
};
use libfuzzer_sys::fuzz_target;

/// 2026-01-15T12:00:00Z.
const NOW: u64 = 1_768_478_400;
/// The presented certificate's SubjectPublicKeyInfo (any fixed bytes: the
/// binding hashes it).
const SPKI: &[u8] = b"fuzz tls spki";

struct Sim {
    pki: TestPki,
    leaf: Leaf,
    verifier: Verifier,
    pins: Pins,
}

fn sim() -> &'static Sim {
    static S: OnceLock<Sim> = OnceLock::new();
    S.get_or_init(|| {
        let pki = TestPki::generate(NOW as i64).unwrap();
        let leaf = pki
            .issue_leaf("i-0abc-enc0def", NOW as i64 - 600, NOW as i64 + 3600)
            .unwrap();
        let verifier = Verifier::new(vec![TrustedRoot::from_der(pki.root_der()).unwrap()]);
        let pins = Pins::new(vec![[(0u8, vec![1u8; 48])].into_iter().collect()]).unwrap();
        Sim {
            pki,
            leaf,
            verifier,
            pins,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    // Input: one byte for the public key's length (0xff: absent), the key,
    // then user_data (absent when empty). Seeds with the real binding and
    // its prefix steer the fuzzer to near misses.
    let Some((&klen, rest)) = data.split_first() else {
        return;
    };
    let (public_key, user_data) = if klen == 0xff {
        (None, rest)
    } else {
        let k = usize::from(klen).min(rest.len());
        (Some(rest[..k].to_vec()), &rest[k..])
    };
    let user_data = (!user_data.is_empty()).then(|| user_data.to_vec());
    let s = sim();
    let doc = s
        .leaf
        .sign(&Document {
            module_id: "i-0abc-enc0def".into(),
            digest: "SHA384".into(),
            timestamp_ms: (NOW - 5) * 1000,
            pcrs: (0u8..16).map(|i| (i, vec![1u8; 48])).collect(),
            certificate: s.leaf.der.clone(),
            cabundle: s.pki.cabundle(),
            public_key: public_key.clone(),
            user_data: user_data.clone(),
            nonce: None,
            unknown_fields: vec![],
        })
        .unwrap();
    let now = UnixTime::since_unix_epoch(Duration::from_secs(NOW));
    let verdict = check_identity(&doc, SPKI, &s.pins, &s.verifier, now, MAX_DOCUMENT_AGE);
    let bound = match (&public_key, &user_data) {
        (Some(k), Some(u)) if k.len() == INTAKE_KEY_LEN => *u == expected_user_data(SPKI, k),
        _ => false,
    };
    match verdict {
        Ok(identity) => {
            assert!(bound, "accepted a document that does not bind the TLS key");
            assert_eq!(
                identity.intake_key.as_slice(),
                public_key.unwrap().as_slice()
            );
            assert_eq!(user_data.unwrap().len(), USER_DATA_LEN);
        }
        Err(e) => {
            assert!(!bound, "refused a correct binding: {e}");
            // Everything but the binding is genuine: the refusal is the
            // binding's, or the attestation core's size limits on
            // public_key / user_data (AWS's 1024 / 512 bytes).
            assert!(
                matches!(
                    e.reason(),
                    "verifier_key_not_bound" | "verifier_attestation_invalid"
                ),
                "unexpected refusal {e}"
            );
        }
    }
    // The same document presented with another TLS key is never accepted.
    if bound {
        let other = check_identity(
            &doc,
            b"another spki",
            &s.pins,
            &s.verifier,
            now,
            MAX_DOCUMENT_AGE,
        );
        assert_eq!(other.unwrap_err().reason(), "verifier_key_not_bound");
    }
});
