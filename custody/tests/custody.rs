//! The custody ceremonies through the crate's public API, with attestation documents signed by
//! the attestation crate's simulator (an AWS-shaped test PKI). Time is fixed: no verdict here
//! depends on the real clock.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use hermetic_attestation::simulator::{Leaf, TestPki};
use hermetic_attestation::{Document, TrustedRoot, UnixTime};
use hermetic_custody::{
    genesis, reseal, AttestationPolicy, AttestationRequest, CustodianKey, CustodianPublicKey,
    Error, GenesisParams, GenesisRecord, JoinOffer, Joiner, MasterKey, PinnedMeasurements,
    ResealedShare, Responder, UnsealPolicy, UnsealProgress, Unsealer,
};
use hermetic_envelope::EnclaveKey;

/// 2027-01-15T08:00:00Z, a fixed "now".
const NOW: u64 = 1_800_000_000;
const MAX_AGE: Duration = Duration::from_secs(300);

fn now() -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(NOW))
}

fn rng() -> SystemRandom {
    SystemRandom::new()
}

/// Production-like PCRs for image `image`; PCR4 (the parent instance) from `instance`.
fn pcrs(image: u8, instance: u8) -> BTreeMap<u8, Vec<u8>> {
    (0u8..16)
        .map(|i| {
            let v = match i {
                0 | 1 | 2 | 8 => vec![image.wrapping_add(i); 48],
                4 => vec![instance; 48],
                _ => vec![0; 48],
            };
            (i, v)
        })
        .collect()
}

fn debug_pcrs(image: u8) -> BTreeMap<u8, Vec<u8>> {
    let mut p = pcrs(image, 1);
    for i in 0..3 {
        p.insert(i, vec![0; 48]);
    }
    p
}

/// A simulated NSM: a test PKI, a leaf, and the enclave's PCRs.
struct Nsm {
    pki: TestPki,
    leaf: Leaf,
    pcrs: BTreeMap<u8, Vec<u8>>,
}

impl Nsm {
    fn new(pcrs: BTreeMap<u8, Vec<u8>>) -> Self {
        let now = NOW as i64;
        let pki = TestPki::generate(now).unwrap();
        let leaf = pki
            .issue_leaf("i-0abc-enc0def", now - 600, now + 3 * 3600)
            .unwrap();
        Nsm { pki, leaf, pcrs }
    }

    /// Another enclave under the same PKI (same root), with other PCRs.
    fn sibling(&self, pcrs: BTreeMap<u8, Vec<u8>>) -> Nsm {
        let pki = TestPki::from_pem_bundle(&self.pki.to_pem_bundle()).unwrap();
        let now = NOW as i64;
        let leaf = pki
            .issue_leaf("i-0fed-enc0cba", now - 600, now + 3 * 3600)
            .unwrap();
        Nsm { pki, leaf, pcrs }
    }

    fn root(&self) -> TrustedRoot {
        TrustedRoot::from_der(self.pki.root_der()).unwrap()
    }

    fn sign(&self, doc: &Document) -> Vec<u8> {
        self.leaf.sign(doc).unwrap()
    }

    fn document(&self, req: &AttestationRequest, timestamp_secs: u64) -> Document {
        Document {
            module_id: "i-0abc-enc0def".into(),
            digest: "SHA384".into(),
            timestamp_ms: timestamp_secs * 1000,
            pcrs: self.pcrs.clone(),
            certificate: self.leaf.der.clone(),
            cabundle: self.pki.cabundle(),
            public_key: req.public_key.map(|k| k.to_vec()),
            user_data: Some(req.user_data.clone()),
            nonce: Some(req.nonce.clone()),
            unknown_fields: vec![],
        }
    }

    fn attest(&self, req: &AttestationRequest) -> Vec<u8> {
        self.sign(&self.document(req, NOW - 5))
    }
}

struct Custodians {
    keys: Vec<CustodianKey>,
}

impl Custodians {
    fn new(n: usize) -> Self {
        Custodians {
            keys: (0..n)
                .map(|_| CustodianKey::generate(&rng()).unwrap())
                .collect(),
        }
    }

    fn public(&self) -> Vec<CustodianPublicKey> {
        self.keys.iter().map(|k| k.public_key().clone()).collect()
    }
}

fn params(custodians: &Custodians, k: u8) -> GenesisParams {
    GenesisParams {
        deployment: "hermetic-test".into(),
        custodians: custodians.public(),
        threshold: k,
        allow_single_custodian: false,
    }
}

fn unseal_policy(nsm: &Nsm) -> UnsealPolicy {
    let mut pinned = BTreeMap::new();
    for i in [0u8, 1, 2, 8] {
        pinned.insert(i, nsm.pcrs[&i].clone());
    }
    UnsealPolicy {
        measurements: PinnedMeasurements::new(pinned).unwrap(),
        attestation: AttestationPolicy::new(vec![nsm.root()], MAX_AGE),
    }
}

/// One custodian's round: a fresh nonce, the enclave's document, the custodian's reseal.
fn custodian_round(
    custodian: &CustodianKey,
    record: &GenesisRecord,
    unsealer: &mut Unsealer,
    nsm: &Nsm,
    policy: &UnsealPolicy,
) -> Result<ResealedShare, Error> {
    let nonce = [custodian.public_key().as_bytes()[0]; 32];
    let req = unsealer.attestation_request(&nonce).unwrap();
    let doc = nsm.attest(&req);
    unsealer.attested(&doc).unwrap();
    reseal(custodian, record, &doc, &nonce, policy, now(), &rng())
}

fn sealed_verifier(record: &GenesisRecord) -> Unsealer {
    Unsealer::new(record.clone(), EnclaveKey::generate(&rng()).unwrap())
}

fn expect_unsealed(p: UnsealProgress) -> MasterKey {
    match p {
        UnsealProgress::Unsealed(key) => key,
        other => panic!("still sealed: {other:?}"),
    }
}

#[test]
fn genesis_two_of_three_and_two_custodians_unseal() {
    let custodians = Custodians::new(3);
    let (key, record) = genesis(&params(&custodians, 2), &rng()).unwrap();
    assert_eq!(record.threshold(), 2);
    assert_eq!(record.custodian_count(), 3);
    // The record survives its JSON form, which is what is stored and printed.
    let record = GenesisRecord::from_json(record.to_json().as_bytes()).unwrap();

    let nsm = Nsm::new(pcrs(0x10, 1));
    let policy = unseal_policy(&nsm);
    for pair in [[0, 1], [2, 0], [1, 2]] {
        let mut unsealer = sealed_verifier(&record);
        let first = custodian_round(
            &custodians.keys[pair[0]],
            &record,
            &mut unsealer,
            &nsm,
            &policy,
        )
        .unwrap();
        match unsealer.submit(&first).unwrap() {
            UnsealProgress::Sealed { have, need } => assert_eq!((have, need), (1, 2)),
            UnsealProgress::Unsealed(_) => panic!("one share unsealed a 2-of-3 key"),
        }
        let second = custodian_round(
            &custodians.keys[pair[1]],
            &record,
            &mut unsealer,
            &nsm,
            &policy,
        )
        .unwrap();
        let back = expect_unsealed(unsealer.submit(&second).unwrap());
        assert_eq!(back.expose_secret(), key.expose_secret());
        assert_eq!(
            unsealer.submit(&second).unwrap_err(),
            Error::AlreadyUnsealed
        );
    }
}

#[test]
fn one_custodian_is_not_enough_even_twice() {
    let custodians = Custodians::new(3);
    let (_, record) = genesis(&params(&custodians, 2), &rng()).unwrap();
    let nsm = Nsm::new(pcrs(0x10, 1));
    let policy = unseal_policy(&nsm);
    let mut unsealer = sealed_verifier(&record);
    let share =
        custodian_round(&custodians.keys[0], &record, &mut unsealer, &nsm, &policy).unwrap();
    // The same share again, and the same custodian re-sealing anew: counted once.
    let again =
        custodian_round(&custodians.keys[0], &record, &mut unsealer, &nsm, &policy).unwrap();
    for s in [&share, &share, &again] {
        match unsealer.submit(s).unwrap() {
            UnsealProgress::Sealed { have, need } => assert_eq!((have, need), (1, 2)),
            UnsealProgress::Unsealed(_) => panic!("unsealed with one custodian"),
        }
    }
    assert_eq!(unsealer.progress(), (1, 2));
}

#[test]
fn tampered_and_foreign_shares_are_refused() {
    let custodians = Custodians::new(3);
    let (_, record) = genesis(&params(&custodians, 2), &rng()).unwrap();
    let (_, other_record) = genesis(&params(&custodians, 2), &rng()).unwrap();
    let nsm = Nsm::new(pcrs(0x10, 1));
    let policy = unseal_policy(&nsm);
    let mut unsealer = sealed_verifier(&record);
    let good = custodian_round(&custodians.keys[0], &record, &mut unsealer, &nsm, &policy).unwrap();

    let mut flipped = good.clone();
    flipped.ciphertext[0] ^= 1;
    assert_eq!(
        unsealer.submit(&flipped).unwrap_err(),
        Error::ResealedShareOpenFailed
    );
    let mut other_index = good.clone();
    other_index.index = 2;
    assert_eq!(
        unsealer.submit(&other_index).unwrap_err(),
        Error::ResealedShareOpenFailed
    );
    let mut no_index = good.clone();
    no_index.index = 9;
    assert_eq!(
        unsealer.submit(&no_index).unwrap_err(),
        Error::UnknownShareIndex { index: 9 }
    );
    let mut other_doc = good.clone();
    other_doc.document_sha256[0] ^= 1;
    assert_eq!(
        unsealer.submit(&other_doc).unwrap_err(),
        Error::UnknownDocument
    );

    // A share of another genesis (same custodians): refused by id, and, with the id rewritten,
    // by the binding.
    let mut other_unsealer = sealed_verifier(&other_record);
    let foreign = custodian_round(
        &custodians.keys[1],
        &other_record,
        &mut other_unsealer,
        &nsm,
        &policy,
    )
    .unwrap();
    assert_eq!(unsealer.submit(&foreign).unwrap_err(), Error::WrongGenesis);
    // Re-sealed to the other enclave's key: does not open here even with ids made to match.
    let mut relabelled = foreign.clone();
    relabelled.genesis_id = *record.genesis_id();
    // (its document is unknown here; note one so the check reaches the key)
    let nonce = [7u8; 32];
    let doc = nsm.attest(&unsealer.attestation_request(&nonce).unwrap());
    unsealer.attested(&doc).unwrap();
    relabelled.document_sha256 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &doc)
        .as_ref()
        .try_into()
        .unwrap();
    assert_eq!(
        unsealer.submit(&relabelled).unwrap_err(),
        Error::ResealedShareOpenFailed
    );

    // None of that counted; the genuine share still does.
    match unsealer.submit(&good).unwrap() {
        UnsealProgress::Sealed { have, .. } => assert_eq!(have, 1),
        UnsealProgress::Unsealed(_) => panic!(),
    }
}

#[test]
fn a_custodian_refuses_a_verifier_it_should_not_trust() {
    let custodians = Custodians::new(3);
    let (_, record) = genesis(&params(&custodians, 2), &rng()).unwrap();
    let nsm = Nsm::new(pcrs(0x10, 1));
    let policy = unseal_policy(&nsm);
    let custodian = &custodians.keys[0];
    let unsealer = sealed_verifier(&record);
    let nonce = [0x33u8; 32];
    let req = unsealer.attestation_request(&nonce).unwrap();
    let attempt = |doc: &[u8], nonce: &[u8]| {
        reseal(custodian, &record, doc, nonce, &policy, now(), &rng())
            .unwrap_err()
            .reason()
    };

    // Other measurements (another image under the same AWS-shaped root).
    let other = nsm.sibling(pcrs(0x20, 1));
    assert_eq!(attempt(&other.attest(&req), &nonce), "pcr_mismatch");
    // Debug mode: PCR0-2 zero.
    let debug = nsm.sibling(debug_pcrs(0x10));
    assert_eq!(attempt(&debug.attest(&req), &nonce), "debug_enclave");
    // The right PCRs under a root the custodian does not trust.
    let untrusted = Nsm::new(pcrs(0x10, 1));
    assert_eq!(attempt(&untrusted.attest(&req), &nonce), "untrusted_root");
    // Stale, and from the future.
    let stale = nsm.sign(&nsm.document(&req, NOW - 301));
    assert_eq!(attempt(&stale, &nonce), "document_too_old");
    let future = nsm.sign(&nsm.document(&req, NOW + 120));
    assert_eq!(attempt(&future, &nonce), "document_from_future");
    // Another nonce than the custodian's (a replayed document).
    assert_eq!(attempt(&nsm.attest(&req), &[0x44; 32]), "nonce_mismatch");
    // No public key, or one that is not an HPKE X25519 key (a P-384 point, say).
    let mut no_key = nsm.document(&req, NOW - 5);
    no_key.public_key = None;
    assert_eq!(attempt(&nsm.sign(&no_key), &nonce), "public_key_missing");
    no_key.public_key = Some(vec![4; 97]);
    assert_eq!(attempt(&nsm.sign(&no_key), &nonce), "public_key_not_hpke");
    // A document for another genesis record.
    let mut other_record = nsm.document(&req, NOW - 5);
    other_record.user_data = Some(vec![0; 32]);
    assert_eq!(
        attempt(&nsm.sign(&other_record), &nonce),
        "binding_mismatch"
    );
    // Garbage.
    assert_eq!(attempt(b"not a document", &nonce), "malformed_cbor");
    assert_eq!(attempt(b"", &nonce), "empty_document");

    // The genuine document passes; a key that is not the record's custodian is refused.
    assert!(reseal(
        custodian,
        &record,
        &nsm.attest(&req),
        &nonce,
        &policy,
        now(),
        &rng()
    )
    .is_ok());
    let stranger = CustodianKey::generate(&rng()).unwrap();
    assert_eq!(
        reseal(
            &stranger,
            &record,
            &nsm.attest(&req),
            &nonce,
            &policy,
            now(),
            &rng()
        )
        .unwrap_err()
        .reason(),
        "not_a_custodian"
    );
}

/// The verifier host's operator holds the genesis record, every store file and the parent
/// instance: it sees documents, nonces and sealed shares, never a custodian key.
#[test]
fn attacker_host_operator_cannot_recover_the_key() {
    let custodians = Custodians::new(3);
    let (key, record) = genesis(&params(&custodians, 2), &rng()).unwrap();
    let json = record.to_json();
    // The key is nowhere in the record, in any encoding.
    use base64::Engine as _;
    for needle in [
        hex::encode(key.expose_secret()),
        base64::engine::general_purpose::STANDARD.encode(key.expose_secret()),
    ] {
        assert!(!json.contains(&needle));
    }

    let nsm = Nsm::new(pcrs(0x10, 1));
    let policy = unseal_policy(&nsm);
    let custodian = &custodians.keys[0];

    // 1. It runs its own process with its own key and signs a document under its own PKI.
    let own = EnclaveKey::generate(&rng()).unwrap();
    let fake_unsealer = Unsealer::new(record.clone(), own);
    let nonce = [1u8; 32];
    let req = fake_unsealer.attestation_request(&nonce).unwrap();
    let forged = Nsm::new(pcrs(0x10, 1)).attest(&req);
    assert_eq!(
        reseal(custodian, &record, &forged, &nonce, &policy, now(), &rng())
            .unwrap_err()
            .reason(),
        "untrusted_root"
    );
    // 2. It takes a genuine document of the verifier enclave and puts its own key in it.
    let real = sealed_verifier(&record);
    let genuine = nsm.document(&real.attestation_request(&nonce).unwrap(), NOW - 5);
    let mut swapped = genuine.clone();
    swapped.public_key = req.public_key.map(|k| k.to_vec());
    let signed = nsm.sign(&genuine);
    let cose = hermetic_attestation::CoseSign1::decode(&signed).unwrap();
    let tampered = hermetic_attestation::CoseSign1 {
        payload: swapped.encode(),
        ..cose
    }
    .encode();
    assert_eq!(
        reseal(
            custodian,
            &record,
            &tampered,
            &nonce,
            &policy,
            now(),
            &rng()
        )
        .unwrap_err()
        .reason(),
        "bad_signature"
    );
    // 3. It boots the same image in debug mode, where it can read enclave memory.
    let debug = nsm.sibling(debug_pcrs(0x10));
    assert_eq!(
        reseal(
            custodian,
            &record,
            &debug.attest(&req),
            &nonce,
            &policy,
            now(),
            &rng()
        )
        .unwrap_err()
        .reason(),
        "debug_enclave"
    );
    // 4. It relays genuine re-sealed shares but opens none: shares sealed to the real enclave
    //    do not open in its own unsealer even after noting the real document.
    let mut real = sealed_verifier(&record);
    let share = custodian_round(custodian, &record, &mut real, &nsm, &policy).unwrap();
    let mut mine = Unsealer::new(record.clone(), EnclaveKey::generate(&rng()).unwrap());
    assert_eq!(mine.submit(&share).unwrap_err(), Error::UnknownDocument);
    // 5. It asks the sealed enclave for a document itself (the attest route is open to it),
    //    then seals a share of its own making to the enclave's public key under the very
    //    binding a custodian uses (every field is public). The share opens, fails its check
    //    value, and is refused alone: the genuine share already held stays.
    let mut victim = sealed_verifier(&record);
    let genuine = custodian_round(custodian, &record, &mut victim, &nsm, &policy).unwrap();
    victim.submit(&genuine).unwrap();
    let operator_nonce = [0x66u8; 32];
    let req = victim.attestation_request(&operator_nonce).unwrap();
    let doc = nsm.attest(&req);
    victim.attested(&doc).unwrap();
    let doc_sha256: [u8; 32] = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &doc)
        .as_ref()
        .try_into()
        .unwrap();
    let target = &record.shares()[1];
    let ctx = hermetic_envelope::BoundContext::new("hermetic/v1 bound custody-reseal")
        .field(record.deployment())
        .field(record.genesis_id())
        .field([record.threshold()])
        .field([target.index])
        .field(target.custodian.as_bytes())
        .field(doc_sha256);
    let enclave_key =
        hermetic_envelope::RecipientPublicKey::from_bytes(&req.public_key.unwrap()).unwrap();
    let made_up = hermetic_envelope::seal_bound(&enclave_key, &ctx, &[0x5a; 32], &rng()).unwrap();
    let forged_share = ResealedShare {
        genesis_id: *record.genesis_id(),
        index: target.index,
        document_sha256: doc_sha256,
        enc: made_up.enc,
        ciphertext: made_up.ciphertext,
    };
    assert_eq!(
        victim.submit(&forged_share).unwrap_err(),
        Error::ShareCheckFailed { index: 2 }
    );
    assert_eq!(victim.progress(), (1, 2));
    // The second genuine custodian still completes the unseal.
    let second = custodian_round(&custodians.keys[1], &record, &mut victim, &nsm, &policy).unwrap();
    let back = expect_unsealed(victim.submit(&second).unwrap());
    assert_eq!(back.expose_secret(), key.expose_secret());
}

#[test]
fn a_wrong_share_fails_the_commitment_and_is_discarded() {
    // Two genesis runs with the same custodians: a 2-of-2 where the record's commitment and
    // its shares disagree (what a malicious custodian or a spliced record produces).
    let custodians = Custodians::new(2);
    let (_, record_a) = genesis(&params(&custodians, 2), &rng()).unwrap();
    let (_, record_b) = genesis(&params(&custodians, 2), &rng()).unwrap();
    // Splice record_a's commitment into record_b: every share opens and matches its check
    // value, but together they restore record_b's key.
    let mut spliced: serde_json::Value = serde_json::from_str(&record_b.to_json()).unwrap();
    let a: serde_json::Value = serde_json::from_str(&record_a.to_json()).unwrap();
    spliced["commitment"] = a["commitment"].clone();
    let spliced = GenesisRecord::from_json(spliced.to_string().as_bytes()).unwrap();

    let nsm = Nsm::new(pcrs(0x10, 1));
    let policy = unseal_policy(&nsm);
    let mut unsealer = sealed_verifier(&spliced);
    let s0 = custodian_round(&custodians.keys[0], &spliced, &mut unsealer, &nsm, &policy).unwrap();
    let s1 = custodian_round(&custodians.keys[1], &spliced, &mut unsealer, &nsm, &policy).unwrap();
    unsealer.submit(&s0).unwrap();
    assert_eq!(unsealer.submit(&s1).unwrap_err(), Error::CommitmentMismatch);
    assert_eq!(unsealer.progress(), (0, 2));
}

#[test]
fn genesis_parameters_are_checked() {
    let three = Custodians::new(3);
    let err = |p: &GenesisParams| genesis(p, &rng()).unwrap_err();
    assert_eq!(err(&params(&three, 1)), Error::SingleCustodianThreshold);
    assert_eq!(err(&params(&three, 4)).reason(), "invalid_threshold");
    assert_eq!(err(&params(&three, 0)).reason(), "invalid_threshold");
    let mut dup = params(&three, 2);
    dup.custodians[2] = dup.custodians[0].clone();
    assert_eq!(err(&dup).reason(), "duplicate_custodian");
    let seventeen = Custodians::new(17);
    assert_eq!(err(&params(&seventeen, 2)).reason(), "invalid_threshold");
    let mut bad_deployment = params(&three, 2);
    bad_deployment.deployment = "has space".into();
    assert_eq!(err(&bad_deployment).reason(), "invalid_deployment");

    // K = 1, for development, when asked for: one custodian alone unseals.
    let mut dev = params(&three, 1);
    dev.allow_single_custodian = true;
    let (key, record) = genesis(&dev, &rng()).unwrap();
    let nsm = Nsm::new(pcrs(0x10, 1));
    let policy = unseal_policy(&nsm);
    let mut unsealer = sealed_verifier(&record);
    let share = custodian_round(&three.keys[2], &record, &mut unsealer, &nsm, &policy).unwrap();
    let back = expect_unsealed(unsealer.submit(&share).unwrap());
    assert_eq!(back.expose_secret(), key.expose_secret());

    // 16 custodians is the most.
    let sixteen = Custodians::new(16);
    let (_, r) = genesis(&params(&sixteen, 9), &rng()).unwrap();
    assert_eq!(r.custodian_count(), 16);
}

#[test]
fn malformed_records_and_messages_are_refused_without_panic() {
    let custodians = Custodians::new(3);
    let (_, record) = genesis(&params(&custodians, 2), &rng()).unwrap();
    let good: serde_json::Value = serde_json::from_str(&record.to_json()).unwrap();
    let mutations: Vec<(&str, serde_json::Value)> = vec![
        ("format", "hermetic-genesis/v2".into()),
        ("deployment", "".into()),
        ("genesis_id", "00".into()),
        ("genesis_id", "ABCDEF0123456789ABCDEF0123456789".into()),
        ("threshold", 4.into()),
        ("threshold", 0.into()),
        ("commitment", "zz".into()),
        ("shares", serde_json::json!([])),
        ("extra", 1.into()),
    ];
    for (field, value) in mutations {
        let mut v = good.clone();
        v[field] = value;
        let e = GenesisRecord::from_json(v.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.reason(), "bad_genesis_record", "{field}");
    }
    for (field, value) in [
        ("index", serde_json::Value::from(3)),
        ("custodian", "hermetic-custodian+00+AA".into()),
        ("enc", "AAAA".into()),
        ("ciphertext", "!!".into()),
        ("check", "00".into()),
    ] {
        let mut v = good.clone();
        v["shares"][0][field] = value;
        assert!(
            GenesisRecord::from_json(v.to_string().as_bytes()).is_err(),
            "{field}"
        );
    }
    let mut dup = good.clone();
    dup["shares"][1]["custodian"] = dup["shares"][0]["custodian"].clone();
    assert!(GenesisRecord::from_json(dup.to_string().as_bytes()).is_err());
    assert!(GenesisRecord::from_json(b"\xff\x00").is_err());

    // Wire messages: strict.
    assert!(serde_json::from_str::<ResealedShare>(r#"{"genesis_id":"00"}"#).is_err());
    let unsealer = sealed_verifier(&record);
    assert!(unsealer.attestation_request(&[0; 8]).is_err());
    assert!(unsealer.attestation_request(&[0; 65]).is_err());
    let mut unsealer = unsealer;
    assert_eq!(
        unsealer.attested(b"junk").unwrap_err().reason(),
        "malformed_cbor"
    );
}

#[test]
fn pinned_measurements_file() {
    let p0 = "ab".repeat(48);
    let ok = PinnedMeasurements::parse(&format!("pcr0 = \"{p0}\"\npcr8 = \"{p0}\"\n")).unwrap();
    assert_eq!(ok.pcrs().len(), 2);
    for bad in [
        format!("pcr3 = \"{p0}\""),  // does not pin the image
        format!("pcr1 = \"{p0}\""),  // nor does PCR1 alone
        format!("pcr9 = \"{p0}\""),  // not a policy PCR
        format!("pcr00 = \"{p0}\""), // one spelling
        format!("pcr0 = \"{}\"", p0.to_uppercase()),
        "pcr0 = \"abcd\"".to_string(),
        "pcr0 = 5".to_string(),
        "not toml [".to_string(),
        String::new(),
    ] {
        assert!(PinnedMeasurements::parse(&bad).is_err(), "{bad}");
    }
}

// ---- forwarding ----

struct Replica {
    nsm: Nsm,
}

fn forward_policy(nsm: &Nsm) -> AttestationPolicy {
    AttestationPolicy::new(vec![nsm.root()], MAX_AGE)
}

fn responder(record: &GenesisRecord, nsm: &Nsm) -> Responder {
    Responder::new(
        record.clone(),
        nsm.pcrs.clone(),
        forward_policy(nsm),
        Duration::from_secs(60),
        4,
    )
}

/// Runs the joiner's side up to its request; returns the joiner, the offer and the request.
fn join(
    joiner_nsm: &Nsm,
    resp: &mut Responder,
    resp_nsm: &Nsm,
) -> Result<(Joiner, JoinOffer, hermetic_custody::JoinRequest), Error> {
    let (mut joiner, hello) =
        Joiner::start(joiner_nsm.pcrs.clone(), forward_policy(joiner_nsm), &rng()).unwrap();
    let doc_r = resp_nsm.attest(&resp.attestation_request(&hello));
    let offer = resp.offer(doc_r, now(), &rng()).unwrap();
    let req = joiner.check_offer(&offer, now())?;
    let doc_j = joiner_nsm.attest(&req);
    let request = joiner.request(doc_j).unwrap();
    Ok((joiner, offer, request))
}

#[test]
fn forwarding_to_a_replica_of_the_same_image() {
    let custodians = Custodians::new(3);
    let (key, record) = genesis(&params(&custodians, 2), &rng()).unwrap();
    let running = Replica {
        nsm: Nsm::new(pcrs(0x10, 1)),
    };
    // Same image, another parent instance (PCR4 differs).
    let joining = running.nsm.sibling(pcrs(0x10, 2));
    let mut resp = responder(&record, &running.nsm);
    let (joiner, _, request) = join(&joining, &mut resp, &running.nsm).unwrap();
    let fwd = resp.forward(&request, &key, now(), &rng()).unwrap();
    // The forwarded message is JSON on the wire.
    let fwd: hermetic_custody::ForwardedKey =
        serde_json::from_str(&serde_json::to_string(&fwd).unwrap()).unwrap();
    let (got, got_record) = joiner.finish(&fwd).unwrap();
    assert_eq!(got.expose_secret(), key.expose_secret());
    assert_eq!(got_record, record);
    assert_eq!(resp.outstanding(), 0);
}

#[test]
fn forwarding_is_refused_to_other_images_debug_and_replays() {
    let custodians = Custodians::new(3);
    let (key, record) = genesis(&params(&custodians, 2), &rng()).unwrap();
    let running = Nsm::new(pcrs(0x10, 1));

    // A joiner of another image: it refuses the responder, and the responder refuses it.
    let other = running.sibling(pcrs(0x20, 2));
    let mut resp = responder(&record, &running);
    assert_eq!(
        join(&other, &mut resp, &running).unwrap_err(),
        Error::PcrMismatch { index: 0 }
    );
    // …even if it skipped its own check (a modified joiner): the responder checks.
    let (mut j, hello) =
        Joiner::start(running.pcrs.clone(), forward_policy(&running), &rng()).unwrap();
    let offer = resp
        .offer(
            running.attest(&resp.attestation_request(&hello)),
            now(),
            &rng(),
        )
        .unwrap();
    let req = j.check_offer(&offer, now()).unwrap();
    let request = j.request(other.attest(&req)).unwrap();
    assert_eq!(
        resp.forward(&request, &key, now(), &rng()).unwrap_err(),
        Error::PcrMismatch { index: 0 }
    );

    // A debug-mode joiner of the same image.
    let debug = running.sibling(debug_pcrs(0x10));
    let (mut j, hello) =
        Joiner::start(running.pcrs.clone(), forward_policy(&running), &rng()).unwrap();
    let offer = resp
        .offer(
            running.attest(&resp.attestation_request(&hello)),
            now(),
            &rng(),
        )
        .unwrap();
    let req = j.check_offer(&offer, now()).unwrap();
    let request = j.request(debug.attest(&req)).unwrap();
    assert_eq!(
        resp.forward(&request, &key, now(), &rng()).unwrap_err(),
        Error::DebugEnclave
    );

    // A genuine join, then its request replayed: the challenge is used up.
    let joining = running.sibling(pcrs(0x10, 3));
    let (_, _, request) = join(&joining, &mut resp, &running).unwrap();
    resp.forward(&request, &key, now(), &rng()).unwrap();
    assert_eq!(
        resp.forward(&request, &key, now(), &rng()).unwrap_err(),
        Error::ChallengeUnknown
    );
    // The old document under a fresh challenge: its nonce is not that challenge.
    let (_, _, fresh) = join(&joining, &mut resp, &running).unwrap();
    let replayed = hermetic_custody::JoinRequest {
        challenge: fresh.challenge,
        attestation_document: request.attestation_document.clone(),
    };
    assert_eq!(
        resp.forward(&replayed, &key, now(), &rng()).unwrap_err(),
        Error::NonceMismatch
    );

    // A challenge answered too late.
    let (_, _, late) = join(&joining, &mut resp, &running).unwrap();
    let later = UnixTime::since_unix_epoch(Duration::from_secs(NOW + 61));
    assert_eq!(
        resp.forward(&late, &key, later, &rng()).unwrap_err(),
        Error::ChallengeExpired
    );
}

#[test]
fn the_joiner_checks_the_responder() {
    let custodians = Custodians::new(3);
    let (_, record) = genesis(&params(&custodians, 2), &rng()).unwrap();
    let joining = Nsm::new(pcrs(0x10, 2));
    let check = |resp_nsm: &Nsm, tweak: &dyn Fn(&mut JoinOffer, &Nsm, &AttestationRequest)| {
        let (mut joiner, hello) =
            Joiner::start(joining.pcrs.clone(), forward_policy(&joining), &rng()).unwrap();
        let mut resp = responder(&record, resp_nsm);
        let req = resp.attestation_request(&hello);
        let mut offer = resp.offer(resp_nsm.attest(&req), now(), &rng()).unwrap();
        tweak(&mut offer, resp_nsm, &req);
        joiner.check_offer(&offer, now()).map(|_| ())
    };
    let none = |_: &mut JoinOffer, _: &Nsm, _: &AttestationRequest| {};
    assert!(check(&joining.sibling(pcrs(0x10, 1)), &none).is_ok());
    // Another image, debug mode, an untrusted root.
    assert_eq!(
        check(&joining.sibling(pcrs(0x20, 1)), &none).unwrap_err(),
        Error::PcrMismatch { index: 0 }
    );
    assert_eq!(
        check(&joining.sibling(debug_pcrs(0x10)), &none).unwrap_err(),
        Error::DebugEnclave
    );
    assert_eq!(
        check(&Nsm::new(pcrs(0x10, 1)), &none).unwrap_err().reason(),
        "untrusted_root"
    );
    let same = joining.sibling(pcrs(0x10, 1));
    // A document with a nonce the joiner did not choose (a replayed offer).
    let wrong_nonce = |o: &mut JoinOffer, n: &Nsm, r: &AttestationRequest| {
        let mut d = n.document(r, NOW - 5);
        d.nonce = Some(vec![9; 32]);
        o.attestation_document = n.sign(&d);
    };
    assert_eq!(
        check(&same, &wrong_nonce).unwrap_err(),
        Error::NonceMismatch
    );
    // A stale document.
    let stale = |o: &mut JoinOffer, n: &Nsm, r: &AttestationRequest| {
        o.attestation_document = n.sign(&n.document(r, NOW - 1000));
    };
    assert_eq!(
        check(&same, &stale).unwrap_err().reason(),
        "document_too_old"
    );
    // A genesis record swapped in transit.
    let swapped = |o: &mut JoinOffer, _: &Nsm, _: &AttestationRequest| {
        let (_, other) = genesis(&params(&custodians, 2), &rng()).unwrap();
        o.genesis = other;
    };
    assert_eq!(check(&same, &swapped).unwrap_err(), Error::BindingMismatch);
}

#[test]
fn responder_challenges_are_bounded() {
    let custodians = Custodians::new(2);
    let (_, record) = genesis(&params(&custodians, 2), &rng()).unwrap();
    let nsm = Nsm::new(pcrs(0x10, 1));
    let mut resp = responder(&record, &nsm);
    let hello = hermetic_custody::JoinHello { nonce: [1; 32] };
    for _ in 0..4 {
        assert!(resp.has_room(now()));
        resp.offer(nsm.attest(&resp.attestation_request(&hello)), now(), &rng())
            .unwrap();
    }
    // Full: known before any document is made.
    assert!(!resp.has_room(now()));
    assert_eq!(
        resp.offer(nsm.attest(&resp.attestation_request(&hello)), now(), &rng())
            .unwrap_err(),
        Error::ChallengeCapacity
    );
    // Expired ones make room.
    let later = UnixTime::since_unix_epoch(Duration::from_secs(NOW + 61));
    assert!(resp.has_room(later));
    assert!(resp
        .offer(nsm.attest(&resp.attestation_request(&hello)), later, &rng())
        .is_ok());
    assert_eq!(resp.outstanding(), 1);
}

#[test]
fn a_responder_never_forwards_a_key_its_record_does_not_commit_to() {
    let custodians = Custodians::new(2);
    let (_, record) = genesis(&params(&custodians, 2), &rng()).unwrap();
    let (other_key, _) = genesis(&params(&custodians, 2), &rng()).unwrap();
    let running = Nsm::new(pcrs(0x10, 1));
    let joining = running.sibling(pcrs(0x10, 2));
    let mut resp = responder(&record, &running);
    let (_, _, request) = join(&joining, &mut resp, &running).unwrap();
    assert_eq!(
        resp.forward(&request, &other_key, now(), &rng())
            .unwrap_err(),
        Error::CommitmentMismatch
    );
}
