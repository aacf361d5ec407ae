//! Every NSM request on the simulated backend, through the `Nsm` trait, and
//! its documents through hermetic-attestation's verifier.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;

use aws_lc_rs::digest::{Context, SHA384};
use common::{simulator, T0_MS};
use hermetic_attestation::{decode, At, TrustedRoot, Verifier};
use hermetic_enclave::nsm::{
    AttestationRequest, Measurements, Nsm, PcrDigest, PkiOrigin, PkiStore, SimulatedNsm,
    SimulatorOptions, MAX_NONCE_LEN, MAX_PUBLIC_KEY_LEN, MAX_USER_DATA_LEN, SIM_RANDOM_LEN,
};
use hermetic_enclave::{keys, FixedClock};

fn verifier_for(dir: &std::path::Path) -> Verifier {
    let pem = std::fs::read(dir.join("root.pem")).unwrap();
    Verifier::new(vec![TrustedRoot::from_pem(&pem).unwrap()])
}

fn sha384(parts: &[&[u8]]) -> Vec<u8> {
    let mut ctx = Context::new(&SHA384);
    for p in parts {
        ctx.update(p);
    }
    ctx.finish().as_ref().to_vec()
}

#[test]
fn attestation_round_trips_with_and_without_each_optional_field() {
    let dir = tempfile::tempdir().unwrap();
    let (nsm, _) = simulator(dir.path(), SimulatorOptions::default());
    let verifier = verifier_for(dir.path());
    let key = keys::boot_key(&nsm).unwrap();
    let pk = key.public_key_bytes().to_vec();
    let cases = [
        (None, None, None),
        (Some(b"user".to_vec()), None, None),
        (None, Some(vec![7u8; 32]), None),
        (None, None, Some(pk.clone())),
        (Some(Vec::new()), Some(Vec::new()), Some(pk.clone())),
        (
            Some(vec![1; MAX_USER_DATA_LEN]),
            Some(vec![2; MAX_NONCE_LEN]),
            Some(vec![3; MAX_PUBLIC_KEY_LEN]),
        ),
    ];
    for (user_data, nonce, public_key) in cases {
        let request = AttestationRequest {
            user_data: user_data.clone(),
            nonce: nonce.clone(),
            public_key: public_key.clone(),
        };
        let bytes = nsm.attestation(&request).unwrap();
        let attested = verifier.verify(&bytes, At::DocumentTimestamp).unwrap();
        let doc = attested.document;
        assert_eq!(doc.user_data, user_data);
        assert_eq!(doc.nonce, nonce);
        assert_eq!(doc.public_key, public_key);
        assert_eq!(doc.timestamp_ms, T0_MS);
        assert_eq!(doc.module_id, nsm.module_id());
        assert_eq!(doc.digest, "SHA384");
        assert!(doc.unknown_fields.is_empty());
        assert!(!doc.is_debug_mode());
    }
}

#[test]
fn documents_are_refused_by_a_verifier_that_trusts_only_aws() {
    let dir = tempfile::tempdir().unwrap();
    let (nsm, _) = simulator(dir.path(), SimulatorOptions::default());
    let bytes = nsm.attestation(&AttestationRequest::default()).unwrap();
    let err = Verifier::aws()
        .unwrap()
        .verify(&bytes, At::DocumentTimestamp)
        .unwrap_err();
    assert_eq!(err.reason(), "untrusted_root");
    // And they are not valid outside their leaf's lifetime.
    let late = hermetic_attestation::UnixTime::since_unix_epoch(std::time::Duration::from_millis(
        T0_MS + 4 * 3600 * 1000,
    ));
    let err = verifier_for(dir.path())
        .verify(&bytes, At::Time(late))
        .unwrap_err();
    assert_eq!(err.reason(), "chain_expired");
}

#[test]
fn attestation_limits_follow_the_spec_and_the_driver() {
    let dir = tempfile::tempdir().unwrap();
    let (nsm, _) = simulator(dir.path(), SimulatorOptions::default());
    let too_large = [
        AttestationRequest {
            user_data: Some(vec![0; MAX_USER_DATA_LEN + 1]),
            ..Default::default()
        },
        AttestationRequest {
            nonce: Some(vec![0; MAX_NONCE_LEN + 1]),
            ..Default::default()
        },
        AttestationRequest {
            public_key: Some(vec![0; MAX_PUBLIC_KEY_LEN + 1]),
            ..Default::default()
        },
    ];
    for request in too_large {
        let err = nsm.attestation(&request).unwrap_err();
        assert_eq!(err.reason(), "nsm_input_too_large", "{request:?}");
    }
    let empty_key = AttestationRequest {
        public_key: Some(Vec::new()),
        ..Default::default()
    };
    assert_eq!(
        nsm.attestation(&empty_key).unwrap_err().reason(),
        "nsm_invalid_argument"
    );
}

#[test]
fn pcr_requests_behave_like_the_real_nsm() {
    let dir = tempfile::tempdir().unwrap();
    let (nsm, _) = simulator(dir.path(), SimulatorOptions::default());

    // Boot state (nsm-check.rs): 32 PCRs, 0..16 locked, 0/1/2/4 set, 3 and
    // 5..32 zero.
    let d = nsm.describe_nsm().unwrap();
    assert_eq!(d.max_pcrs, 32);
    assert_eq!(d.digest, PcrDigest::Sha384);
    assert_eq!(d.locked_pcrs, (0..16).collect::<BTreeSet<u16>>());
    assert_eq!(d.module_id, nsm.module_id());
    for i in 0..32u16 {
        let pcr = nsm.describe_pcr(i).unwrap();
        assert_eq!(pcr.data.len(), 48);
        assert_eq!(pcr.locked, i < 16, "PCR{i}");
        let zero = pcr.data.iter().all(|b| *b == 0);
        assert_eq!(zero, ![0, 1, 2, 4].contains(&i), "PCR{i}");
    }
    assert_eq!(
        nsm.describe_pcr(32).unwrap_err().reason(),
        "nsm_invalid_index"
    );

    // Extend is SHA-384(old || data).
    let old = nsm.describe_pcr(16).unwrap().data;
    let new = nsm.extend_pcr(16, b"measured thing").unwrap();
    assert_eq!(new, sha384(&[&old, b"measured thing"]));
    let newer = nsm.extend_pcr(16, b"").unwrap();
    assert_eq!(newer, sha384(&[&new, b""]));
    assert_eq!(nsm.describe_pcr(16).unwrap().data, newer);
    assert_eq!(
        nsm.extend_pcr(32, b"x").unwrap_err().reason(),
        "nsm_invalid_index"
    );
    assert_eq!(
        nsm.extend_pcr(17, &vec![0; 4096]).unwrap_err().reason(),
        "nsm_input_too_large"
    );

    // Locked PCRs refuse extension and a second lock.
    for i in [0u16, 3, 15] {
        let err = nsm.extend_pcr(i, b"x").unwrap_err();
        assert_eq!(err.reason(), "nsm_pcr_locked");
        assert_eq!(err.to_string(), format!("PCR{i} is locked (read-only)"));
        assert_eq!(nsm.lock_pcr(i).unwrap_err().reason(), "nsm_pcr_locked");
    }
    nsm.lock_pcr(16).unwrap();
    assert!(nsm.describe_pcr(16).unwrap().locked);
    assert_eq!(
        nsm.extend_pcr(16, b"x").unwrap_err().reason(),
        "nsm_pcr_locked"
    );
    assert_eq!(nsm.describe_pcr(16).unwrap().data, newer);
    assert_eq!(nsm.lock_pcr(40).unwrap_err().reason(), "nsm_invalid_index");

    // The document carries every locked PCR, including the newly locked one.
    let verifier = verifier_for(dir.path());
    let bytes = nsm.attestation(&AttestationRequest::default()).unwrap();
    let doc = verifier
        .verify(&bytes, At::DocumentTimestamp)
        .unwrap()
        .document;
    assert_eq!(
        doc.pcrs.keys().copied().collect::<Vec<u8>>(),
        (0..17).collect::<Vec<u8>>()
    );
    assert_eq!(doc.pcrs[&16], newer);
    assert_eq!(doc.pcrs[&4], nsm.describe_pcr(4).unwrap().data);

    // LockPCRs: up to max_pcrs succeeds, beyond refuses (nsm-check.rs).
    nsm.extend_pcr(20, b"before").unwrap();
    nsm.lock_pcrs(24).unwrap();
    let d = nsm.describe_nsm().unwrap();
    assert_eq!(d.locked_pcrs, (0..24).collect::<BTreeSet<u16>>());
    assert_eq!(
        nsm.extend_pcr(23, b"x").unwrap_err().reason(),
        "nsm_pcr_locked"
    );
    nsm.extend_pcr(24, b"still open").unwrap();
    assert_eq!(nsm.lock_pcrs(33).unwrap_err().reason(), "nsm_invalid_index");
    nsm.lock_pcrs(32).unwrap();
    assert_eq!(nsm.describe_nsm().unwrap().locked_pcrs.len(), 32);
    assert_eq!(
        nsm.extend_pcr(31, b"x").unwrap_err().reason(),
        "nsm_pcr_locked"
    );
}

#[test]
fn get_random_returns_fresh_bytes_and_boot_keys_differ() {
    let dir = tempfile::tempdir().unwrap();
    let (nsm, _) = simulator(dir.path(), SimulatorOptions::default());
    let a = nsm.get_random().unwrap();
    let b = nsm.get_random().unwrap();
    assert_eq!(a.len(), SIM_RANDOM_LEN);
    assert_ne!(a, b);
    let k1 = keys::boot_key(&nsm).unwrap();
    let k2 = keys::boot_key(&nsm).unwrap();
    assert_ne!(k1.public_key_bytes(), k2.public_key_bytes());

    // The boot key's public half is what the document binds.
    let request = keys::attestation_request(&k1, Some(vec![9; 16]), None);
    let bytes = nsm.attestation(&request).unwrap();
    let doc = verifier_for(dir.path())
        .verify(&bytes, At::DocumentTimestamp)
        .unwrap()
        .document;
    assert_eq!(doc.public_key.as_deref(), Some(&k1.public_key_bytes()[..]));
}

#[test]
fn debug_mode_zeroes_pcr0_to_pcr2_only() {
    let dir = tempfile::tempdir().unwrap();
    let measurements = Measurements::from_json(&common::eif_describe_json()).unwrap();
    let (nsm, _) = simulator(
        dir.path(),
        SimulatorOptions {
            measurements: Some(measurements),
            debug_mode: true,
        },
    );
    let bytes = nsm.attestation(&AttestationRequest::default()).unwrap();
    let doc = verifier_for(dir.path())
        .verify(&bytes, At::DocumentTimestamp)
        .unwrap()
        .document;
    assert!(doc.is_debug_mode());
    for i in 0..3u8 {
        assert_eq!(doc.pcrs[&i], vec![0; 48]);
    }
    assert_eq!(hex::encode(&doc.pcrs[&8]), common::EIF_PCR8);
    assert!(doc.pcrs[&4].iter().any(|b| *b != 0));
}

#[test]
fn pcrs_loaded_from_eif_measurements_appear_in_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("describe.json");
    std::fs::write(&json_path, common::eif_describe_json()).unwrap();
    let measurements = Measurements::from_file(&json_path).unwrap();
    let (nsm, _) = simulator(
        &dir.path().join("pki"),
        SimulatorOptions {
            measurements: Some(measurements),
            debug_mode: false,
        },
    );
    let bytes = nsm.attestation(&AttestationRequest::default()).unwrap();
    let doc = verifier_for(&dir.path().join("pki"))
        .verify(&bytes, At::DocumentTimestamp)
        .unwrap()
        .document;
    let expected = [
        (0u8, common::EIF_PCR0),
        (1, common::EIF_PCR1),
        (2, common::EIF_PCR2),
        (8, common::EIF_PCR8),
    ];
    for (i, hex_value) in expected {
        assert_eq!(hex::encode(&doc.pcrs[&i]), hex_value, "PCR{i}");
        assert_eq!(
            hex::encode(nsm.describe_pcr(u16::from(i)).unwrap().data),
            hex_value
        );
    }
    assert!(!doc.is_debug_mode());
}

#[test]
fn eif_reference_describe_output_from_the_vectors_loads() {
    let Some(vectors) = common::vectors() else {
        return;
    };
    let path = vectors.join("eif/two_ramdisks_signed.describe.json");
    let m = Measurements::from_file(&path).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for (i, key) in [(0u16, "PCR0"), (1, "PCR1"), (2, "PCR2"), (8, "PCR8")] {
        assert_eq!(
            hex::encode(m.pcrs()[&i]),
            json["measurements"][key].as_str().unwrap(),
            "{key}"
        );
    }
}

#[test]
fn the_leaf_is_reused_until_it_nears_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let (nsm, clock) = simulator(dir.path(), SimulatorOptions::default());
    let verifier = verifier_for(dir.path());
    let leaf_of = |nsm: &SimulatedNsm| {
        let bytes = nsm.attestation(&AttestationRequest::default()).unwrap();
        let attested = verifier.verify(&bytes, At::DocumentTimestamp).unwrap();
        let leaf = attested.certificates.last().unwrap().clone();
        (
            attested.document.certificate,
            leaf.not_before,
            leaf.not_after,
        )
    };
    let (first, nb, na) = leaf_of(&nsm);
    let t0 = (T0_MS / 1000) as i64;
    assert_eq!(nb, t0 - 3);
    assert_eq!(na, t0 + 3 * 3600);
    clock.advance(2 * 3600 * 1000);
    assert_eq!(leaf_of(&nsm).0, first, "reused two hours later");
    clock.advance(50 * 60 * 1000);
    let (second, nb2, _) = leaf_of(&nsm);
    assert_ne!(second, first, "replaced ten minutes before expiry");
    assert_eq!(nb2, t0 + 2 * 3600 + 50 * 60 - 3);
    // A clock that moved back before the leaf's start gets a new leaf too.
    clock.set(T0_MS);
    assert_ne!(leaf_of(&nsm).0, second);
}

#[test]
fn module_ids_look_like_aws_ones_and_the_instance_follows_the_pki() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = simulator(dir.path(), SimulatorOptions::default());
    let (b, _) = simulator(dir.path(), SimulatorOptions::default());
    for id in [a.module_id(), b.module_id()] {
        let (instance, enclave) = id.split_once("-enc").unwrap();
        let instance = instance.strip_prefix("i-").unwrap();
        assert_eq!(instance.len(), 17, "{id}");
        assert_eq!(enclave.len(), 16, "{id}");
        assert!(instance
            .chars()
            .chain(enclave.chars())
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        // `enc` + boot time in ms, as AWS writes it.
        assert_eq!(&enclave[..12], format!("{T0_MS:012x}"));
    }
    assert_eq!(a.module_id()[..19], b.module_id()[..19], "same instance");
    assert_eq!(
        a.describe_pcr(4).unwrap().data,
        b.describe_pcr(4).unwrap().data,
        "PCR4 measures the instance"
    );
}

#[test]
fn the_pki_is_generated_once_then_loaded_and_replaced_when_expired() {
    let dir = tempfile::tempdir().unwrap();
    let store = PkiStore::new(dir.path().join("sim"));
    let t0 = (T0_MS / 1000) as i64;
    let (pki, origin) = store.load_or_generate(t0).unwrap();
    assert_eq!(origin, PkiOrigin::Generated);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&store.pki_path()), 0o600);
    assert_eq!(
        std::fs::read_to_string(store.root_path()).unwrap(),
        pki.root_pem()
    );
    // No temporary files are left behind.
    let names: BTreeSet<String> = std::fs::read_dir(store.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["pki.pem".to_string(), "root.pem".to_string()])
    );

    let (again, origin) = store.load_or_generate(t0 + 3600).unwrap();
    assert_eq!(origin, PkiOrigin::Loaded);
    assert_eq!(again.root_pem(), pki.root_pem());

    // A deleted root.pem is written again from pki.pem.
    std::fs::remove_file(store.root_path()).unwrap();
    store.load_or_generate(t0 + 7200).unwrap();
    assert_eq!(
        std::fs::read_to_string(store.root_path()).unwrap(),
        pki.root_pem()
    );

    // The instance CA lives two days, like AWS's short-lived intermediates.
    let (fresh, origin) = store.load_or_generate(t0 + 3 * 86_400).unwrap();
    assert!(
        matches!(origin, PkiOrigin::Regenerated { .. }),
        "{origin:?}"
    );
    assert_ne!(fresh.root_pem(), pki.root_pem());
    assert_eq!(
        std::fs::read_to_string(store.root_path()).unwrap(),
        fresh.root_pem()
    );

    // A damaged pki.pem is an error, not silently replaced.
    std::fs::write(store.pki_path(), "not a pem").unwrap();
    match store.load_or_generate(t0) {
        Err(err) => assert_eq!(err.reason(), "nsm_sim_pki_invalid"),
        Ok(_) => panic!("a damaged pki.pem was accepted"),
    }
}

#[test]
fn the_nsm_is_usable_as_a_trait_object_across_threads() {
    let dir = tempfile::tempdir().unwrap();
    let clock = std::sync::Arc::new(FixedClock::new(T0_MS));
    let (nsm, _) = SimulatedNsm::open(dir.path(), SimulatorOptions::default(), clock).unwrap();
    let nsm: std::sync::Arc<dyn Nsm> = std::sync::Arc::new(nsm);
    let handles: Vec<_> = (0..4u8)
        .map(|i| {
            let nsm = nsm.clone();
            std::thread::spawn(move || {
                nsm.attestation(&AttestationRequest {
                    nonce: Some(vec![i; 8]),
                    ..Default::default()
                })
                .unwrap()
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let (_, doc) = decode(&h.join().unwrap()).unwrap();
        assert_eq!(doc.nonce, Some(vec![i as u8; 8]));
    }
}
