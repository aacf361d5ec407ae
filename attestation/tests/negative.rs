//! The negative matrix: each case is a document that is well signed by a
//! simulated AWS-shaped PKI except for the one fault under test, and must be
//! refused with exactly the expected error.
//!
//! Every case runs under three verifiers, and their verdicts must agree: no
//! cache at all; the chain cache only, warmed with the fixture's good
//! document; and both the chain and the leaf caches, warmed the same way (so
//! that a faulty document from an enclave already seen meets a cached leaf).

use std::cell::OnceCell;
use std::time::Duration;

use ciborium::value::Value;
use hermetic_attestation::cose::es384_protected_header;
use hermetic_attestation::simulator::{Leaf, TestPki, LEAF_LIFETIME};
use hermetic_attestation::{
    At, Attested, CertRole, ChainCache, CoseSign1, Document, Error, LeafCache, TrustedRoot,
    UnixTime, Verifier,
};

/// A fixed "now" so that nothing here depends on the real clock.
const NOW: i64 = 1_790_000_000;

struct Fixture {
    pki: TestPki,
    leaf: Leaf,
    doc: Document,
    /// The fixture's document as first built, signed: what warms the caches.
    good: Vec<u8>,
    modes: OnceCell<Vec<(&'static str, Verifier)>>,
}

fn fixture_with(pki: TestPki) -> Fixture {
    let leaf = pki
        .issue_leaf(
            "i-0123456789abcdef0-enc0123456789abcdef",
            NOW - 600,
            NOW - 600 + LEAF_LIFETIME.as_secs() as i64,
        )
        .unwrap();
    let doc = Document {
        module_id: "i-0123456789abcdef0-enc0123456789abcdef".into(),
        digest: "SHA384".into(),
        timestamp_ms: (NOW as u64) * 1000,
        pcrs: (0u8..16).map(|i| (i, vec![i; 48])).collect(),
        certificate: leaf.der.clone(),
        cabundle: pki.cabundle(),
        public_key: Some(vec![0x04; 65]),
        user_data: Some(b"user data".to_vec()),
        nonce: Some(vec![0xab; 32]),
        unknown_fields: vec![],
    };
    let good = leaf.sign(&doc).unwrap();
    Fixture {
        pki,
        leaf,
        doc,
        good,
        modes: OnceCell::new(),
    }
}

fn fixture() -> Fixture {
    fixture_with(TestPki::generate(NOW).unwrap())
}

fn at(secs: i64) -> At {
    At::Time(UnixTime::since_unix_epoch(Duration::from_secs(secs as u64)))
}

impl Fixture {
    fn verifier(&self) -> Verifier {
        Verifier::new(vec![TrustedRoot::from_der(self.pki.root_der()).unwrap()])
    }
    /// No cache; the chain cache only; chain and leaf caches. The cached
    /// ones are warmed with the good document at two instants inside its
    /// chain's validity (faulty PKIs may refuse it at one of them).
    fn modes(&self) -> &[(&'static str, Verifier)] {
        self.modes.get_or_init(|| {
            let modes = vec![
                (
                    "no cache",
                    self.verifier().with_cache(None).with_leaf_cache(None),
                ),
                ("chain cache", self.verifier().with_leaf_cache(None)),
                ("chain and leaf caches", self.verifier()),
            ];
            for (name, v) in &modes[1..] {
                let mut warmed = false;
                for t in [NOW, NOW - 300] {
                    warmed |= v.verify(&self.good, at(t)).is_ok();
                }
                if warmed {
                    assert_eq!(v.cache().map(ChainCache::len), Some(1), "{name}");
                    let leaves = v.leaf_cache().map_or(0, LeafCache::len);
                    assert_eq!(leaves, usize::from(v.leaf_cache().is_some()), "{name}");
                }
            }
            modes
        })
    }
    /// Verifies under every cache mode, asserts that they agree, and returns
    /// the uncached verdict.
    fn verify(&self, bytes: &[u8], at: At) -> Result<Attested, Error> {
        let mut results = self
            .modes()
            .iter()
            .map(|(name, v)| (name, v.verify(bytes, at)));
        let (_, reference) = results.next().unwrap();
        let verdict = |r: &Result<Attested, Error>| {
            r.as_ref()
                .map(|a| {
                    (
                        a.document.clone(),
                        a.certificates.clone(),
                        a.verified_at,
                        a.root_sha256,
                    )
                })
                .map_err(Clone::clone)
        };
        for (name, result) in results {
            assert_eq!(verdict(&result), verdict(&reference), "{name} disagrees");
        }
        reference
    }
    fn signed(&self) -> Vec<u8> {
        self.leaf.sign(&self.doc).unwrap()
    }
    fn signed_doc(&self, doc: &Document) -> Vec<u8> {
        self.leaf.sign(doc).unwrap()
    }
    /// The payload as a CBOR map, to break in ways `Document` cannot express.
    fn payload_map(&self) -> Vec<(Value, Value)> {
        match ciborium::de::from_reader(self.doc.encode().as_slice()).unwrap() {
            Value::Map(m) => m,
            _ => unreachable!(),
        }
    }
    fn signed_map(&self, map: Vec<(Value, Value)>) -> Vec<u8> {
        let mut payload = Vec::new();
        ciborium::ser::into_writer(&Value::Map(map), &mut payload).unwrap();
        self.leaf
            .sign_payload(&es384_protected_header(), &payload)
            .unwrap()
    }
    /// The document with `field` replaced (or removed, for `None`).
    fn with_field(&self, field: &str, value: Option<Value>) -> Vec<u8> {
        let mut map = self.payload_map();
        let pos = map
            .iter()
            .position(|(k, _)| k.as_text() == Some(field))
            .unwrap();
        match value {
            Some(v) => map[pos].1 = v,
            None => {
                map.remove(pos);
            }
        }
        self.signed_map(map)
    }
    fn refuse(&self, bytes: &[u8], expected: Error) {
        assert_eq!(self.verify(bytes, at(NOW)).unwrap_err(), expected);
    }
}

fn flip(bytes: &[u8], index: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[index] ^= 0x01;
    out
}

fn reencode(bytes: &[u8], edit: impl FnOnce(&mut CoseSign1)) -> Vec<u8> {
    let mut cose = CoseSign1::decode(bytes).unwrap();
    edit(&mut cose);
    cose.encode()
}

// ---- the good case, so every refusal below is for its one fault ----

#[test]
fn a_simulated_document_verifies_with_its_test_root_trusted() {
    let f = fixture();
    let attested = f.verify(&f.signed(), at(NOW)).unwrap();
    assert_eq!(attested.document, f.doc);
    assert_eq!(attested.certificates.len(), 5);
    assert!(attested.certificates[4]
        .subject
        .contains("enc0123456789abcdef"));
}

#[test]
fn a_tagged_cose_sign1_is_accepted() {
    let f = fixture();
    let tagged = reencode(&f.signed(), |c| c.tagged = true);
    assert_eq!(tagged[0], 0xd2, "tag 18");
    assert!(f.verify(&tagged, at(NOW)).is_ok());
}

#[test]
fn null_optional_fields_mean_absent() {
    let mut f = fixture();
    f.doc.public_key = None;
    f.doc.user_data = None;
    f.doc.nonce = None;
    let bytes = f.signed();
    let attested = f.verify(&bytes, at(NOW)).unwrap();
    assert_eq!(
        (attested.document.public_key, attested.document.nonce),
        (None, None)
    );
}

#[test]
fn an_unknown_signed_field_is_reported_not_fatal() {
    let f = fixture();
    let mut map = f.payload_map();
    map.push((Value::Text("future_field".into()), Value::Integer(7.into())));
    let attested = f.verify(&f.signed_map(map), at(NOW)).unwrap();
    assert_eq!(
        attested.document.unknown_fields,
        vec!["future_field".to_string()]
    );
}

// ---- roots ----

#[test]
fn the_aws_root_refuses_a_simulated_document() {
    let f = fixture();
    let err = Verifier::aws()
        .unwrap()
        .verify(&f.signed(), at(NOW))
        .unwrap_err();
    assert_eq!(err.reason(), "untrusted_root");
}

#[test]
fn another_test_root_refuses() {
    let f = fixture();
    let other = TestPki::generate(NOW).unwrap();
    let v = Verifier::new(vec![TrustedRoot::from_der(other.root_der()).unwrap()]);
    assert_eq!(
        v.verify(&f.signed(), at(NOW)).unwrap_err().reason(),
        "untrusted_root"
    );
}

#[test]
fn a_cabundle_without_the_root_is_refused() {
    let mut f = fixture();
    f.doc.cabundle.remove(0);
    let err = f.verify(&f.signed_doc(&f.doc), at(NOW)).unwrap_err();
    assert_eq!(err.reason(), "untrusted_root");
}

#[test]
fn an_empty_cabundle_is_refused() {
    let mut f = fixture();
    f.doc.cabundle.clear();
    f.refuse(&f.signed_doc(&f.doc), Error::EmptyCabundle);
}

#[test]
fn a_cabundle_out_of_order_is_refused() {
    // Without pathLenConstraints, so that only the order is wrong.
    let mut levels = TestPki::levels_around(NOW);
    levels.iter_mut().for_each(|l| l.path_len = None);
    let mut f = fixture_with(TestPki::generate_with(&levels).unwrap());
    f.doc.cabundle.swap(1, 2);
    let err = f.verify(&f.signed_doc(&f.doc), at(NOW)).unwrap_err();
    assert_eq!(err.reason(), "chain_invalid", "{err}");
}

// ---- time ----

#[test]
fn an_expired_leaf_is_refused() {
    let f = fixture();
    let late = NOW - 600 + LEAF_LIFETIME.as_secs() as i64 + 1;
    let err = f.verify(&f.signed(), at(late)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::CertificateExpired {
                role: CertRole::Leaf,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_not_yet_valid_leaf_is_refused() {
    let f = fixture();
    let err = f.verify(&f.signed(), at(NOW - 601)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::CertificateNotYetValid {
                role: CertRole::Leaf,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn an_expired_intermediate_is_refused_even_while_the_leaf_is_valid() {
    let mut levels = TestPki::levels_around(NOW);
    levels[2].not_after = NOW - 10; // zonal CA
    let f = fixture_with(TestPki::generate_with(&levels).unwrap());
    let err = f.verify(&f.signed(), at(NOW)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::CertificateExpired {
                role: CertRole::Bundle(2),
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_not_yet_valid_root_is_refused() {
    let mut levels = TestPki::levels_around(NOW);
    levels[0].not_before = NOW + 10;
    let f = fixture_with(TestPki::generate_with(&levels).unwrap());
    let err = f.verify(&f.signed(), at(NOW)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::CertificateNotYetValid {
                role: CertRole::Bundle(0),
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn document_time_is_the_documents_own_timestamp() {
    let mut f = fixture();
    f.doc.timestamp_ms = ((NOW - 700) as u64) * 1000; // before the leaf
    let err = f
        .verify(&f.signed_doc(&f.doc), At::DocumentTimestamp)
        .unwrap_err();
    assert!(matches!(err, Error::CertificateNotYetValid { .. }), "{err}");
}

// ---- chain constraints ----

#[test]
fn a_ca_without_key_cert_sign_is_refused() {
    let mut levels = TestPki::levels_around(NOW);
    levels[1].key_cert_sign = false;
    let f = fixture_with(TestPki::generate_with(&levels).unwrap());
    let err = f.verify(&f.signed(), at(NOW)).unwrap_err();
    assert_eq!(
        err,
        Error::ChainConstraint {
            role: CertRole::Bundle(1),
            reason: "keyUsage lacks keyCertSign"
        }
    );
}

#[test]
fn a_path_length_violation_is_refused() {
    let mut levels = TestPki::levels_around(NOW);
    levels[1].path_len = Some(0); // regional may not have zonal + instance under it
    let f = fixture_with(TestPki::generate_with(&levels).unwrap());
    let err = f.verify(&f.signed(), at(NOW)).unwrap_err();
    assert_eq!(
        err,
        Error::ChainConstraint {
            role: CertRole::Bundle(1),
            reason: "pathLenConstraint exceeded"
        }
    );
}

// ---- flipped bits ----

#[test]
fn a_flipped_bit_in_the_payload_breaks_the_signature() {
    let f = fixture();
    let good = f.signed();
    let cose = CoseSign1::decode(&good).unwrap();
    // The last payload byte is inside the nonce value: still well-formed.
    let bad = reencode(&good, |c| {
        let last = c.payload.len() - 1;
        c.payload[last] ^= 0x01;
    });
    assert_eq!(
        cose.payload.len(),
        CoseSign1::decode(&bad).unwrap().payload.len()
    );
    f.refuse(&bad, Error::BadSignature);
}

#[test]
fn no_single_bit_flip_anywhere_verifies() {
    let f = fixture();
    let good = f.signed();
    for i in (0..good.len()).step_by(7) {
        let bad = flip(&good, i);
        assert!(
            f.verify(&bad, at(NOW)).is_err(),
            "flip at byte {i} verified"
        );
    }
}

#[test]
fn a_flipped_bit_in_the_signature_is_refused() {
    let f = fixture();
    let bad = reencode(&f.signed(), |c| c.signature[10] ^= 0x80);
    f.refuse(&bad, Error::BadSignature);
}

#[test]
fn a_flipped_bit_in_the_protected_header_changes_the_algorithm() {
    let f = fixture();
    // {1: -35} is a1 01 38 22; -35 is 0x38 0x22, flipping bit 0 gives -36.
    let bad = reencode(&f.signed(), |c| c.protected[3] ^= 0x01);
    f.refuse(&bad, Error::UnsupportedAlgorithm("-36".into()));
}

#[test]
fn a_flipped_bit_in_each_certificate_is_refused() {
    let f = fixture();
    for i in 0..f.doc.cabundle.len() {
        let mut doc = f.doc.clone();
        let last = doc.cabundle[i].len() - 1;
        doc.cabundle[i][last] ^= 0x01; // inside the certificate's signature
        let err = f.verify(&f.signed_doc(&doc), at(NOW)).unwrap_err();
        let expected = if i == 0 {
            "untrusted_root"
        } else {
            "chain_invalid"
        };
        assert_eq!(err.reason(), expected, "cabundle[{i}]: {err}");
    }
    let mut doc = f.doc.clone();
    let last = doc.certificate.len() - 1;
    doc.certificate[last] ^= 0x01;
    let err = f.verify(&f.signed_doc(&doc), at(NOW)).unwrap_err();
    assert_eq!(err.reason(), "chain_invalid", "leaf: {err}");
}

// ---- algorithms ----

fn with_protected(f: &Fixture, protected: Value) -> Vec<u8> {
    let mut bytes = Vec::new();
    ciborium::ser::into_writer(&protected, &mut bytes).unwrap();
    f.leaf.sign_payload(&bytes, &f.doc.encode()).unwrap()
}

#[test]
fn es256_is_refused() {
    let f = fixture();
    let bad = with_protected(&f, Value::Map(vec![(1.into(), (-7).into())]));
    f.refuse(&bad, Error::UnsupportedAlgorithm("-7".into()));
}

#[test]
fn other_algorithms_are_refused() {
    let f = fixture();
    for alg in [-36i64, -37, -8, 0, 1, -257] {
        let bad = with_protected(&f, Value::Map(vec![(1.into(), alg.into())]));
        f.refuse(&bad, Error::UnsupportedAlgorithm(alg.to_string()));
    }
    let named = with_protected(
        &f,
        Value::Map(vec![(1.into(), Value::Text("ES384".into()))]),
    );
    f.refuse(&named, Error::UnsupportedAlgorithm("\"ES384\"".into()));
}

#[test]
fn a_missing_or_empty_protected_header_is_refused() {
    let f = fixture();
    f.refuse(
        &with_protected(&f, Value::Map(vec![])),
        Error::MalformedProtectedHeader("`alg` (label 1) is missing"),
    );
    let empty = f.leaf.sign_payload(&[], &f.doc.encode()).unwrap();
    f.refuse(
        &empty,
        Error::MalformedProtectedHeader("empty; `alg` is required"),
    );
}

#[test]
fn a_short_signature_is_refused() {
    let f = fixture();
    let bad = reencode(&f.signed(), |c| {
        c.signature.pop();
    });
    f.refuse(&bad, Error::MalformedSignature(95));
}

// ---- framing ----

#[test]
fn truncated_input_is_refused() {
    let f = fixture();
    let good = f.signed();
    for len in [1, 2, 10, good.len() / 2, good.len() - 1] {
        let err = f.verify(&good[..len], at(NOW)).unwrap_err();
        assert_eq!(err.reason(), "malformed_cbor", "length {len}: {err}");
    }
    assert_eq!(f.verify(&[], at(NOW)).unwrap_err(), Error::Empty);
}

#[test]
fn trailing_bytes_are_refused() {
    let f = fixture();
    let mut bad = f.signed();
    bad.extend_from_slice(&[0x00, 0x00]);
    f.refuse(
        &bad,
        Error::TrailingBytes {
            context: "document",
            count: 2,
        },
    );
}

#[test]
fn trailing_bytes_inside_the_payload_are_refused() {
    let f = fixture();
    let mut payload = f.doc.encode();
    payload.push(0x00);
    let bad = f
        .leaf
        .sign_payload(&es384_protected_header(), &payload)
        .unwrap();
    f.refuse(
        &bad,
        Error::TrailingBytes {
            context: "payload",
            count: 1,
        },
    );
}

#[test]
fn an_oversize_document_is_refused_before_parsing() {
    let f = fixture();
    let mut bad = f.signed();
    bad.resize(16 * 1024 + 1, 0);
    f.refuse(
        &bad,
        Error::DocumentTooLarge {
            len: 16 * 1024 + 1,
            max: 16 * 1024,
        },
    );
}

#[test]
fn a_wrong_cose_tag_is_refused() {
    let f = fixture();
    let mut bad = vec![0xd1]; // tag 17 (COSE_Mac0)
    bad.extend_from_slice(&f.signed());
    f.refuse(
        &bad,
        Error::MalformedCose("unexpected CBOR tag (COSE_Sign1 is tag 18)"),
    );
}

#[test]
fn a_non_array_document_is_refused() {
    let f = fixture();
    f.refuse(&[0xa0], Error::MalformedCose("expected a 4-element array"));
    f.refuse(
        &[0x83, 0x40, 0xa0, 0x40],
        Error::MalformedCose("expected a 4-element array"),
    );
}

// ---- payload fields ----

#[test]
fn oversize_optional_fields_are_refused() {
    let f = fixture();
    for field in ["public_key", "user_data", "nonce"] {
        let bad = f.with_field(field, Some(Value::Bytes(vec![1; 1025])));
        f.refuse(
            &bad,
            Error::FieldSize {
                field: match field {
                    "public_key" => "public_key",
                    "user_data" => "user_data",
                    _ => "nonce",
                },
                len: 1025,
                min: 0,
                max: 1024,
            },
        );
    }
}

#[test]
fn empty_optional_fields_are_present_and_empty() {
    // Real NSM documents carry zero-length public_key, user_data and nonce
    // (§2.2: `user_data = bytes .size (0..1024)`); they verify, and decode
    // as present-and-empty, never as absent.
    for field in ["public_key", "user_data", "nonce"] {
        let f = fixture();
        let bytes = f.with_field(field, Some(Value::Bytes(vec![])));
        let doc = f
            .verify(&bytes, at(NOW))
            .unwrap_or_else(|e| panic!("{field}: {e}"))
            .document;
        let got = match field {
            "public_key" => &doc.public_key,
            "user_data" => &doc.user_data,
            _ => &doc.nonce,
        };
        assert_eq!(got, &Some(vec![]), "{field}");
        // inspect (the audit view) agrees, with every check passing.
        let inspection = f.verifier().inspect(&bytes, at(NOW));
        assert_eq!(inspection.first_error(), None, "{field}");
        assert_eq!(inspection.document.unwrap(), doc, "{field}");
    }
    // All three empty at once, through `Document` and the simulator's signer.
    let mut f = fixture();
    f.doc.public_key = Some(vec![]);
    f.doc.user_data = Some(vec![]);
    f.doc.nonce = Some(vec![]);
    let doc = f.verify(&f.signed(), at(NOW)).unwrap().document;
    assert_eq!(
        (doc.public_key, doc.user_data, doc.nonce),
        (Some(vec![]), Some(vec![]), Some(vec![]))
    );
}

#[test]
fn an_oversize_certificate_is_refused() {
    let f = fixture();
    let bad = f.with_field("certificate", Some(Value::Bytes(vec![0x30; 1025])));
    f.refuse(
        &bad,
        Error::FieldSize {
            field: "certificate",
            len: 1025,
            min: 1,
            max: 1024,
        },
    );
}

const REQUIRED: [&str; 6] = [
    "module_id",
    "digest",
    "timestamp",
    "pcrs",
    "certificate",
    "cabundle",
];

#[test]
fn each_missing_required_field_is_named() {
    let f = fixture();
    for field in REQUIRED {
        let err = f.verify(&f.with_field(field, None), at(NOW)).unwrap_err();
        assert_eq!(
            err,
            Error::MissingField(REQUIRED.iter().find(|r| **r == field).unwrap())
        );
    }
}

#[test]
fn each_null_required_field_is_named() {
    let f = fixture();
    for field in REQUIRED {
        let err = f
            .verify(&f.with_field(field, Some(Value::Null)), at(NOW))
            .unwrap_err();
        assert_eq!(
            err,
            Error::NullField(REQUIRED.iter().find(|r| **r == field).unwrap())
        );
    }
}

#[test]
fn wrong_types_are_refused() {
    let f = fixture();
    let cases: [(&str, Value, &str); 8] = [
        ("module_id", Value::Bytes(b"i-0".to_vec()), "a text string"),
        ("digest", Value::Integer(384.into()), "a text string"),
        (
            "timestamp",
            Value::Text("1790000000000".into()),
            "an unsigned integer",
        ),
        (
            "pcrs",
            Value::Array(vec![]),
            "a map of index to byte string",
        ),
        ("certificate", Value::Text("MIIB".into()), "a byte string"),
        ("cabundle", Value::Map(vec![]), "an array of byte strings"),
        (
            "user_data",
            Value::Text("hello".into()),
            "a byte string or null",
        ),
        ("nonce", Value::Integer(1.into()), "a byte string or null"),
    ];
    for (field, value, expected) in cases {
        let err = f
            .verify(&f.with_field(field, Some(value)), at(NOW))
            .unwrap_err();
        assert!(
            matches!(err, Error::WrongType { field: got, expected: e } if got == field && e == expected),
            "{field}: {err}"
        );
    }
}

#[test]
fn invalid_field_values_are_refused() {
    let f = fixture();
    let cases = [
        ("module_id", Value::Text(String::new()), "must be non-empty"),
        ("digest", Value::Text("SHA256".into()), "must be \"SHA384\""),
        (
            "timestamp",
            Value::Integer(0.into()),
            "must be greater than 0",
        ),
        (
            "timestamp",
            Value::Integer((-5).into()),
            "must be an unsigned 64-bit integer",
        ),
    ];
    for (field, value, reason) in cases {
        let err = f
            .verify(&f.with_field(field, Some(value)), at(NOW))
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidField { field: got, reason: r } if got == field && r == reason),
            "{field}: {err}"
        );
    }
}

fn pcr_map(entries: Vec<(Value, Value)>) -> Option<Value> {
    Some(Value::Map(entries))
}

#[test]
fn pcr_index_32_is_refused() {
    let f = fixture();
    let bad = f.with_field(
        "pcrs",
        pcr_map(vec![(32.into(), Value::Bytes(vec![0; 48]))]),
    );
    f.refuse(&bad, Error::PcrIndexOutOfRange("32".into()));
    let negative = f.with_field(
        "pcrs",
        pcr_map(vec![((-1).into(), Value::Bytes(vec![0; 48]))]),
    );
    f.refuse(&negative, Error::PcrIndexOutOfRange("-1".into()));
}

#[test]
fn pcr_length_47_is_refused() {
    let f = fixture();
    let bad = f.with_field("pcrs", pcr_map(vec![(0.into(), Value::Bytes(vec![0; 47]))]));
    f.refuse(&bad, Error::PcrLength { index: 0, len: 47 });
}

#[test]
fn pcr_counts_outside_1_to_32_are_refused() {
    let f = fixture();
    let invalid = Error::InvalidField {
        field: "pcrs",
        reason: "must hold 1 to 32 entries",
    };
    f.refuse(&f.with_field("pcrs", pcr_map(vec![])), invalid);
    // 32 entries of 32, 48 and 64 bytes are all fine.
    let all: Vec<_> = (0..32u8)
        .map(|i| {
            (
                Value::from(i),
                Value::Bytes(vec![i; [32, 48, 64][usize::from(i) % 3]]),
            )
        })
        .collect();
    let doc = f
        .verify(&f.with_field("pcrs", pcr_map(all)), at(NOW))
        .unwrap()
        .document;
    assert_eq!(doc.pcrs.len(), 32);
    assert_eq!(doc.pcrs[&31].len(), 48);
}

#[test]
fn duplicate_keys_are_refused() {
    let f = fixture();
    let mut map = f.payload_map();
    map.push((Value::Text("nonce".into()), Value::Bytes(vec![1; 32])));
    f.refuse(
        &f.signed_map(map),
        Error::DuplicateKey("nonce".into(), "payload"),
    );
    let dup_pcr = f.with_field(
        "pcrs",
        pcr_map(vec![
            (0.into(), Value::Bytes(vec![0; 48])),
            (0.into(), Value::Bytes(vec![1; 48])),
        ]),
    );
    f.refuse(&dup_pcr, Error::DuplicateKey("0".into(), "pcrs"));
}

#[test]
fn a_non_map_payload_is_refused() {
    let f = fixture();
    let bad = f
        .leaf
        .sign_payload(&es384_protected_header(), &[0x80])
        .unwrap();
    f.refuse(
        &bad,
        Error::WrongType {
            field: "payload",
            expected: "a map",
        },
    );
}

// ---- the caches ----

#[test]
fn the_cache_serves_repeat_chains_and_never_changes_a_verdict() {
    let f = fixture();
    let cached = f.verifier().with_leaf_cache(None);
    let good = f.signed();
    assert!(!cached.verify(&good, at(NOW)).unwrap().chain_from_cache);
    assert!(cached.verify(&good, at(NOW)).unwrap().chain_from_cache);
    assert_eq!(cached.cache().unwrap().len(), 1);

    // Another leaf under the same CAs also hits, and its faults still show.
    let other_leaf = f.pki.issue_leaf("i-other", NOW - 10, NOW + 10).unwrap();
    let mut doc = f.doc.clone();
    doc.certificate = other_leaf.der.clone();
    let ok = cached
        .verify(&other_leaf.sign(&doc).unwrap(), at(NOW))
        .unwrap();
    assert!(ok.chain_from_cache);
    // Signed by a different key than the certificate's: refused from cache too.
    assert_eq!(
        cached
            .verify(&f.leaf.sign(&doc).unwrap(), at(NOW))
            .unwrap_err(),
        Error::BadSignature
    );
    // A leaf from a foreign CA presented with our bundle: refused from cache too.
    let foreign = TestPki::generate(NOW)
        .unwrap()
        .issue_leaf("i-foreign", NOW - 10, NOW + 10)
        .unwrap();
    doc.certificate = foreign.der.clone();
    let err = cached
        .verify(&foreign.sign(&doc).unwrap(), at(NOW))
        .unwrap_err();
    let fresh = f.verify(&foreign.sign(&doc).unwrap(), at(NOW)).unwrap_err();
    assert_eq!(err.reason(), "chain_invalid");
    assert_eq!(err, fresh);
    // Outside the cached window the entry is not used.
    assert_eq!(
        cached
            .verify(&good, at(NOW + 40 * 86_400))
            .unwrap_err()
            .reason(),
        "chain_expired"
    );
}

#[test]
fn a_repeat_leaf_costs_only_the_document_signature() {
    let f = fixture();
    let v = f.verifier();
    let first = v.verify(&f.signed(), at(NOW)).unwrap();
    assert!(!first.chain_from_cache && !first.leaf_from_cache);
    assert_eq!(v.leaf_cache().unwrap().len(), 1);

    // A new document (new nonce) from the same enclave: served by the leaf cache.
    let mut doc = f.doc.clone();
    doc.nonce = Some(vec![0xcd; 32]);
    let again = v.verify(&f.signed_doc(&doc), at(NOW)).unwrap();
    assert!(again.chain_from_cache && again.leaf_from_cache);
    assert_eq!(again.document, doc);
    // Same report as the uncached verification.
    assert_eq!(again.certificates, first.certificates);
    assert_eq!(again.root_sha256, first.root_sha256);
    assert_eq!(v.leaf_cache().unwrap().len(), 1);
}

/// The parent (or anyone) knows a cached leaf's DER and bundle — they are in
/// every document the enclave sends. None of that lets it pass.
#[test]
fn a_cached_leaf_lends_nothing_to_an_attacker() {
    let f = fixture();
    let v = f.verifier();
    v.verify(&f.signed(), at(NOW)).unwrap();
    let uncached = f.verifier().with_cache(None).with_leaf_cache(None);
    let same = |bytes: &[u8], t: i64| {
        let warm = v.verify(bytes, at(t));
        assert_eq!(
            warm.as_ref().map(|a| &a.document),
            uncached.verify(bytes, at(t)).as_ref().map(|a| &a.document)
        );
        warm.unwrap_err()
    };

    // The cached leaf and bundle, over a document signed by the attacker's key.
    let attacker = TestPki::generate(NOW)
        .unwrap()
        .issue_leaf("i-attacker", NOW - 10, NOW + 10)
        .unwrap();
    let mut doc = f.doc.clone();
    doc.pcrs.insert(0, vec![0xee; 48]);
    assert_eq!(
        same(&attacker.sign(&doc).unwrap(), NOW),
        Error::BadSignature
    );

    // The cached leaf under a different bundle (the attacker's instance CA
    // in place of ours): the leaf entry is bound to its bundle, so it misses.
    let mut doc = f.doc.clone();
    let theirs = TestPki::generate(NOW).unwrap().cabundle();
    doc.cabundle[3] = theirs[3].clone();
    let err = same(&f.signed_doc(&doc), NOW);
    assert_eq!(err.reason(), "chain_invalid", "{err}");

    // The cached leaf after its own lifetime: the same error as uncached.
    let late = NOW - 600 + LEAF_LIFETIME.as_secs() as i64 + 1;
    assert!(matches!(
        same(&f.signed(), late),
        Error::CertificateExpired {
            role: CertRole::Leaf,
            ..
        }
    ));
    // ... and before it.
    assert!(matches!(
        same(&f.signed(), NOW - 601),
        Error::CertificateNotYetValid {
            role: CertRole::Leaf,
            ..
        }
    ));
    // A time too large for the certificates' clock: refused, not cached.
    let far = At::Time(UnixTime::since_unix_epoch(Duration::from_secs(u64::MAX)));
    assert_eq!(
        v.verify(&f.signed(), far).unwrap_err(),
        uncached.verify(&f.signed(), far).unwrap_err()
    );
}

#[test]
fn the_leaf_cache_alone_is_enough_and_never_changes_a_verdict() {
    let f = fixture();
    let v = f.verifier().with_cache(None);
    assert!(!v.verify(&f.signed(), at(NOW)).unwrap().leaf_from_cache);
    assert!(v.verify(&f.signed(), at(NOW)).unwrap().leaf_from_cache);
    let bad = reencode(&f.signed(), |c| c.signature[5] ^= 0x40);
    assert_eq!(v.verify(&bad, at(NOW)).unwrap_err(), Error::BadSignature);
}

#[test]
fn a_full_cache_evicts_and_stays_bounded() {
    let cache = ChainCache::new(2);
    // Three PKIs (each reloaded from its PEM bundle) share one 2-entry cache.
    let pkis: Vec<_> = (0..3).map(|_| TestPki::generate(NOW).unwrap()).collect();
    let roots = pkis
        .iter()
        .map(|p| TrustedRoot::from_der(p.root_der()).unwrap())
        .collect();
    let verifier = Verifier::new(roots)
        .with_cache(Some(cache))
        .with_leaf_cache(Some(LeafCache::new(2)));
    for pki in &pkis {
        let f = fixture_with(TestPki::from_pem_bundle(&pki.to_pem_bundle()).unwrap());
        verifier.verify(&f.signed(), at(NOW)).unwrap();
    }
    assert_eq!(verifier.cache().unwrap().len(), 2);
    assert_eq!(verifier.leaf_cache().unwrap().len(), 2);
}

#[test]
fn a_full_leaf_cache_evicts_the_leaf_that_expires_first() {
    let f = fixture();
    let v = f.verifier().with_leaf_cache(Some(LeafCache::new(2)));
    // Three leaves under one bundle; the second ends first.
    let leaves: Vec<Leaf> = [NOW + 300, NOW + 100, NOW + 200]
        .iter()
        .map(|end| f.pki.issue_leaf("i-leaf", NOW - 10, *end).unwrap())
        .collect();
    let signed: Vec<Vec<u8>> = leaves
        .iter()
        .map(|l| {
            let mut doc = f.doc.clone();
            doc.certificate = l.der.clone();
            l.sign(&doc).unwrap()
        })
        .collect();
    for s in &signed {
        assert!(!v.verify(s, at(NOW)).unwrap().leaf_from_cache);
    }
    assert_eq!(v.leaf_cache().unwrap().len(), 2);
    assert!(v.verify(&signed[0], at(NOW)).unwrap().leaf_from_cache);
    assert!(v.verify(&signed[2], at(NOW)).unwrap().leaf_from_cache);
    assert!(!v.verify(&signed[1], at(NOW)).unwrap().leaf_from_cache);
}

#[test]
fn the_inspection_reports_every_check() {
    let f = fixture();
    let bad = reencode(&f.signed(), |c| c.signature[0] ^= 1);
    let reports: Vec<_> = f
        .modes()
        .iter()
        .map(|(_, v)| v.inspect(&bad, at(NOW)))
        .collect();
    assert!(reports.iter().all(|r| *r == reports[0]), "modes disagree");
    let report = &reports[0];
    let names: Vec<_> = report.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "decode",
            "trusted_root",
            "certificate_validity",
            "certificate_chain",
            "cose_signature"
        ]
    );
    assert_eq!(
        report.errors().collect::<Vec<_>>(),
        vec![&Error::BadSignature]
    );
    assert_eq!(report.document.as_ref().unwrap().module_id, f.doc.module_id);
}

#[test]
fn inspections_agree_across_cache_modes_for_time_faults() {
    let f = fixture();
    let late = NOW - 600 + LEAF_LIFETIME.as_secs() as i64 + 1;
    for t in [NOW, late, NOW - 601, NOW + 40 * 86_400] {
        let reports: Vec<_> = f
            .modes()
            .iter()
            .map(|(_, v)| v.inspect(&f.signed(), at(t)))
            .collect();
        assert!(reports.iter().all(|r| *r == reports[0]), "at {t}");
    }
}
