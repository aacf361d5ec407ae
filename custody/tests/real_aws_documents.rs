//! Real AWS attestation documents (../shared/vectors) through a custodian's checks, under the
//! pinned AWS Nitro root, each at its own timestamp: the attestation core accepts them, and
//! custody's own checks then refuse them for what they are not (a sealed verifier of this
//! genesis), never for their chain.

use std::path::PathBuf;
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use hermetic_attestation::{decode, TrustedRoot, UnixTime};
use hermetic_custody::{
    genesis, reseal, AttestationPolicy, CustodianKey, GenesisParams, PinnedMeasurements,
    UnsealPolicy,
};

fn vectors() -> Option<PathBuf> {
    hermetic_testkit::vectors::find(env!("CARGO_MANIFEST_DIR"), "attestation/INDEX.json")
}

#[test]
fn real_documents_pass_the_core_and_are_refused_by_custody_rules() {
    let Some(dir) = vectors() else { return };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("attestation/INDEX.json")).unwrap())
            .unwrap();
    let rng = SystemRandom::new();
    let custodian = CustodianKey::generate(&rng).unwrap();
    let other = CustodianKey::generate(&rng).unwrap();
    let (_, record) = genesis(
        &GenesisParams {
            deployment: "hermetic-real".into(),
            custodians: vec![custodian.public_key().clone(), other.public_key().clone()],
            threshold: 2,
            allow_single_custodian: false,
        },
        &rng,
    )
    .unwrap();
    let mut checked = 0;
    for e in index.as_array().unwrap() {
        if e["category"] != "valid" {
            continue;
        }
        let bytes =
            std::fs::read(dir.join("attestation").join(e["file"].as_str().unwrap())).unwrap();
        let (_, doc) = decode(&bytes).unwrap();
        let at = UnixTime::since_unix_epoch(Duration::from_millis(doc.timestamp_ms));
        let nonce = doc.nonce.clone().unwrap_or_default();
        let own_pcrs = |pcrs: &std::collections::BTreeMap<u8, Vec<u8>>| {
            [0u8, 1, 2, 8]
                .iter()
                .filter_map(|i| pcrs.get(i).map(|v| (*i, v.clone())))
                .collect()
        };
        let policy = |roots: Vec<TrustedRoot>, pinned| UnsealPolicy {
            measurements: PinnedMeasurements::new(pinned).unwrap(),
            attestation: AttestationPolicy::new(roots, Duration::from_secs(300)),
        };
        let aws = || vec![TrustedRoot::aws_nitro().unwrap()];

        // Its own PCRs pinned, the AWS root trusted: the core passes; custody refuses a
        // debug-mode enclave, a document without our nonce, or one not for this record.
        let reason = reseal(
            &custodian,
            &record,
            &bytes,
            &nonce,
            &policy(aws(), own_pcrs(&doc.pcrs)),
            at,
            &rng,
        )
        .unwrap_err()
        .reason();
        let expected = if doc.is_debug_mode() {
            "debug_enclave"
        } else if nonce.is_empty() {
            "nonce_missing"
        } else {
            "binding_mismatch"
        };
        assert_eq!(reason, expected, "{}", e["file"]);

        // Other PCRs pinned (a non-debug document): pcr_mismatch.
        if !doc.is_debug_mode() {
            let mut pinned: std::collections::BTreeMap<u8, Vec<u8>> = own_pcrs(&doc.pcrs);
            pinned.insert(0, vec![0x77; 48]);
            let reason = reseal(
                &custodian,
                &record,
                &bytes,
                &nonce,
                &policy(aws(), pinned),
                at,
                &rng,
            )
            .unwrap_err()
            .reason();
            assert_eq!(reason, "pcr_mismatch", "{}", e["file"]);
        }

        // A custodian trusting only a test root refuses the real chain.
        let now = (doc.timestamp_ms / 1000) as i64;
        let test_root = hermetic_attestation::simulator::TestPki::generate(now).unwrap();
        let reason = reseal(
            &custodian,
            &record,
            &bytes,
            &nonce,
            &policy(
                vec![TrustedRoot::from_der(test_root.root_der()).unwrap()],
                own_pcrs(&doc.pcrs),
            ),
            at,
            &rng,
        )
        .unwrap_err()
        .reason();
        assert_eq!(reason, "untrusted_root", "{}", e["file"]);
        checked += 1;
    }
    assert!(checked > 0, "no valid vectors");
}
