//! Custody records and messages on hostile bytes: `genesis.json`,
//! custodian public and private key strings, the `--verifier-measurements`
//! file, and the unseal and join JSON bodies. Every parser round-trips
//! what it accepts, and a sealed verifier (an `Unsealer` that holds a real
//! genesis record and has noted its own attestation document) never
//! unseals, nor counts a share, from bytes an attacker made up.
#![no_main]

use std::sync::{Mutex, OnceLock};

use aws_lc_rs::rand::SystemRandom;
use hermetic_attestation::simulator::TestPki;
use hermetic_attestation::Document;
use hermetic_custody::{
    genesis, CustodianKey, CustodianPublicKey, ForwardedKey, GenesisParams, GenesisRecord,
    JoinHello, JoinOffer, JoinRequest, PinnedMeasurements, ResealedShare, Unsealer,
};
use hermetic_envelope::EnclaveKey;
use libfuzzer_sys::fuzz_target;

/// 2027-01-15T08:00:00Z, the simulated PKI's "now".
const NOW: u64 = 1_800_000_000;

struct Sealed {
    unsealer: Mutex<Unsealer>,
    genesis_id: [u8; 16],
    document_sha256: [u8; 32],
}

/// A 2-of-3 genesis and a sealed verifier that noted one document of its
/// own (so hostile shares naming it reach the HPKE opening).
fn sealed() -> &'static Sealed {
    static S: OnceLock<Sealed> = OnceLock::new();
    S.get_or_init(|| {
        let rng = SystemRandom::new();
        let keys: Vec<CustodianKey> = (0..3)
            .map(|_| CustodianKey::generate(&rng).unwrap())
            .collect();
        let (_, record) = genesis(
            &GenesisParams {
                deployment: "hermetic-fuzz".into(),
                custodians: keys.iter().map(|k| k.public_key().clone()).collect(),
                threshold: 2,
                allow_single_custodian: false,
            },
            &rng,
        )
        .unwrap();
        let genesis_id = *record.genesis_id();
        let mut unsealer = Unsealer::new(record, EnclaveKey::generate(&rng).unwrap());
        let req = unsealer.attestation_request(&[7; 32]).unwrap();
        let pki = TestPki::generate(NOW as i64).unwrap();
        let leaf = pki
            .issue_leaf("i-0abc-enc0def", NOW as i64 - 600, NOW as i64 + 3600)
            .unwrap();
        let doc = leaf
            .sign(&Document {
                module_id: "i-0abc-enc0def".into(),
                digest: "SHA384".into(),
                timestamp_ms: NOW * 1000,
                pcrs: (0u8..16).map(|i| (i, vec![i; 48])).collect(),
                certificate: leaf.der.clone(),
                cabundle: pki.cabundle(),
                public_key: req.public_key.map(|k| k.to_vec()),
                user_data: Some(req.user_data.clone()),
                nonce: Some(req.nonce.clone()),
                unknown_fields: vec![],
            })
            .unwrap();
        unsealer.attested(&doc).unwrap();
        let document_sha256 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &doc)
            .as_ref()
            .try_into()
            .unwrap();
        Sealed {
            unsealer: Mutex::new(unsealer),
            genesis_id,
            document_sha256,
        }
    })
}

fn round_trips<T>(data: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    if let Ok(v) = serde_json::from_slice::<T>(data) {
        let again: T = serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
        assert_eq!(again, v);
    }
}

fn submit_hostile(share: &ResealedShare) {
    let s = sealed();
    let mut unsealer = s.unsealer.lock().unwrap();
    let before = unsealer.progress();
    assert!(
        unsealer.submit(share).is_err(),
        "a made-up share was taken: {share:?}"
    );
    assert_eq!(unsealer.progress(), before);
}

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = GenesisRecord::from_json(data) {
        let json = record.to_json();
        assert_eq!(GenesisRecord::from_json(json.as_bytes()).unwrap(), record);
        assert!(record.threshold() >= 1);
        assert!(usize::from(record.threshold()) <= record.custodian_count());
        for share in record.shares() {
            assert_eq!(record.share_of(&share.custodian).unwrap(), share);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(key) = CustodianPublicKey::parse(text) {
            let again = CustodianPublicKey::parse(&key.to_string()).unwrap();
            assert!(again == key);
            assert_eq!(again.fingerprint(), key.fingerprint());
        }
        if let Ok(key) = CustodianKey::parse(text) {
            let again = CustodianKey::parse(&key.to_file_text()).unwrap();
            assert!(again.public_key() == key.public_key());
        }
        if let Ok(pins) = PinnedMeasurements::parse(text) {
            assert!(hermetic_policy::pins_image(pins.pcrs()));
        }
    }
    round_trips::<JoinHello>(data);
    round_trips::<JoinOffer>(data);
    round_trips::<JoinRequest>(data);
    round_trips::<ForwardedKey>(data);
    round_trips::<ResealedShare>(data);

    // The unseal route's body, as sent.
    if let Ok(share) = serde_json::from_slice::<ResealedShare>(data) {
        submit_hostile(&share);
    }
    // The same with the genesis and document a real custodian would name,
    // so that the HPKE opening and the share checks see hostile bytes.
    if let Some((&index, rest)) = data.split_first() {
        let split = rest.len().min(32);
        submit_hostile(&ResealedShare {
            genesis_id: sealed().genesis_id,
            index: index % 4,
            document_sha256: sealed().document_sha256,
            enc: rest[..split].to_vec(),
            ciphertext: rest[split..].to_vec(),
        });
    }
});
