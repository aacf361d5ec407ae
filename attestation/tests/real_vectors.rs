//! Real AWS documents from ../shared/vectors/attestation, checked against
//! the independent decode in INDEX.json.

use std::path::PathBuf;

use hermetic_attestation::{decode, At, Error, TrustedRoot, UnixTime, Verifier};
use serde_json::Value;

/// The shared vectors, or `None` (with a message) where they are absent.
/// With `CI=true` their absence fails the test instead.
fn vectors() -> Option<PathBuf> {
    hermetic_testkit::vectors::find(env!("CARGO_MANIFEST_DIR"), "attestation/INDEX.json")
}

struct Entry {
    bytes: Vec<u8>,
    meta: Value,
}

fn entries(dir: &std::path::Path, category: &str) -> Vec<Entry> {
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("attestation/INDEX.json")).unwrap())
            .unwrap();
    let list: Vec<Entry> = index
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["category"] == category)
        .map(|e| Entry {
            bytes: std::fs::read(dir.join("attestation").join(e["file"].as_str().unwrap()))
                .unwrap(),
            meta: e.clone(),
        })
        .collect();
    assert!(!list.is_empty(), "no {category} vectors in INDEX.json");
    list
}

fn hex_or_null(v: &Option<Vec<u8>>) -> Value {
    v.as_ref()
        .map(|b| Value::String(hex::encode(b)))
        .unwrap_or(Value::Null)
}

#[test]
fn every_valid_document_verifies_at_its_own_timestamp_and_decodes_as_indexed() {
    let Some(dir) = vectors() else { return };
    let verifier = Verifier::aws().unwrap();
    for e in entries(&dir, "valid") {
        let name = e.meta["file"].as_str().unwrap();
        let attested = verifier
            .verify(&e.bytes, At::DocumentTimestamp)
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        let doc = &attested.document;
        assert_eq!(
            doc.module_id,
            e.meta["module_id"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            doc.timestamp_ms,
            e.meta["timestamp_ms"].as_u64().unwrap(),
            "{name}"
        );
        let pcrs = e.meta["pcrs"].as_object().unwrap();
        assert_eq!(doc.pcrs.len(), pcrs.len(), "{name}");
        for (i, v) in pcrs {
            let i: u8 = i.parse().unwrap();
            assert_eq!(
                hex::encode(&doc.pcrs[&i]),
                v.as_str().unwrap(),
                "{name} PCR{i}"
            );
        }
        assert_eq!(hex_or_null(&doc.public_key), e.meta["public_key"], "{name}");
        assert_eq!(hex_or_null(&doc.user_data), e.meta["user_data"], "{name}");
        assert_eq!(hex_or_null(&doc.nonce), e.meta["nonce"], "{name}");
        let leaf = attested.certificates.last().unwrap();
        let validity = e.meta["leaf_validity"].as_array().unwrap();
        let parse = |v: &Value| {
            hermetic_attestation::parse_rfc3339(v.as_str().unwrap())
                .unwrap()
                .as_secs() as i64
        };
        assert_eq!(leaf.not_before, parse(&validity[0]), "{name}");
        assert_eq!(leaf.not_after, parse(&validity[1]), "{name}");
        assert_eq!(attested.certificates.len(), doc.cabundle.len() + 1);
        assert!(TrustedRoot::aws_nitro().unwrap().sha256() == attested.root_sha256);
    }
}

/// Real documents whose `user_data` and `nonce` are present but zero bytes
/// long (INDEX.json's `""`, not `null`) decode as present-and-empty.
#[test]
fn real_documents_with_empty_fields_decode_them_as_present_and_empty() {
    let Some(dir) = vectors() else { return };
    let verifier = Verifier::aws().unwrap();
    let mut empty_fields = 0;
    for e in entries(&dir, "valid") {
        let doc = verifier
            .verify(&e.bytes, At::DocumentTimestamp)
            .unwrap()
            .document;
        for (key, value) in [("user_data", &doc.user_data), ("nonce", &doc.nonce)] {
            if e.meta[key] == "" {
                assert_eq!(value, &Some(vec![]), "{} {key}", e.meta["file"]);
                empty_fields += 1;
            }
        }
    }
    assert!(empty_fields >= 2, "the shared vectors hold empty fields");
}

#[test]
fn every_valid_document_is_refused_today_because_its_leaf_expired() {
    let Some(dir) = vectors() else { return };
    let verifier = Verifier::aws().unwrap();
    // 2026-11-27: every shared document is from 2021–2025.
    let today = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_795_737_600));
    for e in entries(&dir, "valid") {
        let err = verifier.verify(&e.bytes, At::Time(today)).unwrap_err();
        assert_eq!(err.reason(), "chain_expired", "{}: {err}", e.meta["file"]);
    }
}

#[test]
fn a_valid_document_is_refused_before_its_leaf_existed() {
    let Some(dir) = vectors() else { return };
    let e = entries(&dir, "valid").remove(0);
    let nb =
        hermetic_attestation::parse_rfc3339(e.meta["leaf_validity"][0].as_str().unwrap()).unwrap();
    let before = UnixTime::since_unix_epoch(std::time::Duration::from_secs(nb.as_secs() - 1));
    let err = Verifier::aws()
        .unwrap()
        .verify(&e.bytes, At::Time(before))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::CertificateNotYetValid {
                role: hermetic_attestation::CertRole::Leaf,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn the_bad_signature_document_fails_on_its_signature_only() {
    let Some(dir) = vectors() else { return };
    let verifier = Verifier::aws().unwrap();
    for e in entries(&dir, "bad-signature") {
        assert_eq!(
            verifier
                .verify(&e.bytes, At::DocumentTimestamp)
                .unwrap_err(),
            Error::BadSignature
        );
        let inspection = verifier.inspect(&e.bytes, At::DocumentTimestamp);
        let failed: Vec<_> = inspection.errors().collect();
        assert_eq!(
            failed,
            vec![&Error::BadSignature],
            "chain must pass, signature fail"
        );
    }
}

#[test]
fn the_foreign_pki_document_is_refused() {
    let Some(dir) = vectors() else { return };
    for e in entries(&dir, "foreign-pki") {
        // This self-made document is not even a well-formed COSE_Sign1 (its
        // unprotected header is `null`, RFC 9052 §4.2 requires a map), and
        // its payload has `cabundle: null`: nothing in it chains to AWS.
        let err = Verifier::aws()
            .unwrap()
            .verify(&e.bytes, At::DocumentTimestamp)
            .unwrap_err();
        assert_eq!(err, Error::MalformedCose("unprotected header is not a map"));
    }
}

#[test]
fn real_documents_have_the_shape_the_simulator_copies() {
    let Some(dir) = vectors() else { return };
    for e in entries(&dir, "valid") {
        let (cose, doc) = decode(&e.bytes).unwrap();
        assert!(!cose.tagged, "NSM documents are untagged");
        assert_eq!(
            cose.protected,
            hermetic_attestation::cose::es384_protected_header()
        );
        assert_eq!(doc.cabundle.len(), 4);
        assert!(doc.unknown_fields.is_empty());
        // Our encoder reproduces the NSM's payload byte for byte.
        assert_eq!(doc.encode(), cose.payload, "{}", e.meta["file"]);
    }
}

#[test]
fn a_repeat_chain_is_served_from_the_cache_with_the_same_verdict() {
    let Some(dir) = vectors() else { return };
    let verifier = Verifier::aws().unwrap();
    let e = entries(&dir, "valid").remove(0);
    let first = verifier.verify(&e.bytes, At::DocumentTimestamp).unwrap();
    let second = verifier.verify(&e.bytes, At::DocumentTimestamp).unwrap();
    assert!(!first.chain_from_cache);
    assert!(second.chain_from_cache);
    assert_eq!(first.document, second.document);
    // A cached chain still refuses an expired leaf.
    let today = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_795_737_600));
    assert_eq!(
        verifier
            .verify(&e.bytes, At::Time(today))
            .unwrap_err()
            .reason(),
        "chain_expired"
    );
}

#[test]
fn the_embedded_root_is_pinned_and_is_the_shared_aws_root() {
    let root = TrustedRoot::aws_nitro().unwrap();
    assert_eq!(
        hex::encode_upper(root.sha256()),
        "641A0321A3E244EFE456463195D606317ED7CDCC3C1756E09893F3C68F79BB5B"
    );
    assert!(root.is_aws_nitro());
    let Some(dir) = vectors() else { return };
    let shared = std::fs::read(dir.join("aws-nitro-enclaves-root.pem")).unwrap();
    assert_eq!(TrustedRoot::from_pem(&shared).unwrap(), root);
}

#[test]
fn root_files_that_are_not_one_certificate_are_refused() {
    use hermetic_attestation::RootError;
    assert_eq!(
        TrustedRoot::from_pem(b"").unwrap_err(),
        RootError::NoCertificate
    );
    let two = format!("{0}\n{0}", hermetic_attestation::AWS_NITRO_ROOT_G1_PEM);
    assert_eq!(
        TrustedRoot::from_pem(two.as_bytes()).unwrap_err(),
        RootError::SeveralCertificates
    );
    let garbage = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    assert!(matches!(
        TrustedRoot::from_pem(garbage).unwrap_err(),
        RootError::Certificate(_)
    ));
}
