//! Simulated documents have the layout of real NSM documents
//! (../shared/vectors/attestation/valid), compared field by field.

mod common;

use ciborium::value::Value;
use common::simulator;
use hermetic_attestation::decode;
use hermetic_enclave::keys;
use hermetic_enclave::nsm::{AttestationRequest, Nsm, SimulatorOptions};

/// Everything about a document's encoding that the NSM fixes and that does
/// not depend on its contents.
#[derive(Debug, PartialEq, Eq)]
struct Shape {
    /// 0x84: an untagged array of 4 (tag 18 would be 0xd2).
    first_byte: u8,
    protected: Vec<u8>,
    unprotected_empty: bool,
    signature_len: usize,
    /// 0xa9: a definite-length map of 9 entries.
    payload_header: u8,
    /// Re-encoding the decoded payload gives back the same bytes:
    /// definite lengths and shortest-form heads throughout.
    payload_canonical: bool,
    keys: Vec<String>,
    /// CBOR type of each field, in key order; optional fields are
    /// normalised to "bytes|null" so documents with and without them compare.
    types: Vec<&'static str>,
    digest: String,
    pcr_indexes: Vec<u64>,
    pcr_lens: Vec<usize>,
    cabundle_len: usize,
    module_id_like_aws: bool,
    /// Leaf lifetime in minutes (real: 3 h + 3 s).
    leaf_lifetime_min: i64,
    /// Seconds between the leaf's notBefore and the document's timestamp
    /// when the leaf was fresh; bounded, not equal, so only its sign is kept.
    leaf_starts_before_document: bool,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Text(_) => "text",
        Value::Integer(_) => "uint",
        Value::Bytes(_) => "bytes",
        Value::Array(_) => "array",
        Value::Map(_) => "map",
        Value::Null => "null",
        _ => "other",
    }
}

fn module_id_like_aws(id: &str) -> bool {
    let hex =
        |s: &str, n: usize| s.len() == n && s.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'));
    id.strip_prefix("i-")
        .and_then(|rest| rest.split_once("-enc"))
        .is_some_and(|(instance, enclave)| hex(instance, 17) && hex(enclave, 16))
}

fn shape(bytes: &[u8]) -> Shape {
    let (cose, doc) = decode(bytes).expect("decodes");
    let Value::Array(outer) = ciborium::from_reader::<Value, _>(bytes).unwrap() else {
        panic!("not an array")
    };
    let payload: Value = ciborium::from_reader(cose.payload.as_slice()).unwrap();
    let mut reencoded = Vec::new();
    ciborium::into_writer(&payload, &mut reencoded).unwrap();
    let Value::Map(entries) = &payload else {
        panic!("payload not a map")
    };
    let keys: Vec<String> = entries
        .iter()
        .map(|(k, _)| k.as_text().unwrap().to_string())
        .collect();
    let types = entries
        .iter()
        .map(|(k, v)| match (k.as_text().unwrap(), type_name(v)) {
            ("public_key" | "user_data" | "nonce", "bytes" | "null") => "bytes|null",
            (_, t) => t,
        })
        .collect();
    let pcrs = entries
        .iter()
        .find(|(k, _)| k.as_text() == Some("pcrs"))
        .and_then(|(_, v)| v.as_map())
        .unwrap();
    let (_, leaf) = x509_parser::parse_x509_certificate(&doc.certificate).unwrap();
    let validity = leaf.validity();
    let not_before = validity.not_before.timestamp();
    Shape {
        first_byte: bytes[0],
        protected: cose.protected.clone(),
        unprotected_empty: outer[1].as_map().is_some_and(|m| m.is_empty()),
        signature_len: cose.signature.len(),
        payload_header: cose.payload[0],
        payload_canonical: reencoded == cose.payload,
        keys,
        types,
        digest: doc.digest.clone(),
        pcr_indexes: pcrs
            .iter()
            .map(|(k, _)| u64::try_from(k.as_integer().unwrap()).unwrap())
            .collect(),
        pcr_lens: pcrs
            .iter()
            .map(|(_, v)| v.as_bytes().unwrap().len())
            .collect(),
        cabundle_len: doc.cabundle.len(),
        module_id_like_aws: module_id_like_aws(&doc.module_id),
        leaf_lifetime_min: (validity.not_after.timestamp() - not_before) / 60,
        leaf_starts_before_document: not_before * 1000 <= doc.timestamp_ms as i64,
    }
}

#[test]
fn simulated_documents_have_the_shape_of_real_ones() {
    let Some(vectors) = common::vectors() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (nsm, _) = simulator(dir.path(), SimulatorOptions::default());
    let key = keys::boot_key(&nsm).unwrap();
    let bare = nsm.attestation(&AttestationRequest::default()).unwrap();
    let full = nsm
        .attestation(&keys::attestation_request(
            &key,
            Some(vec![1; 32]),
            Some(vec![2; 64]),
        ))
        .unwrap();
    let sim_bare = shape(&bare);
    let sim_full = shape(&full);
    assert_eq!(sim_bare, sim_full);

    let mut compared = 0;
    let mut real_nulls = 0;
    for entry in std::fs::read_dir(vectors.join("attestation/valid")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("cbor") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(shape(&bytes), sim_bare, "{}", path.display());
        let (_, doc) = decode(&bytes).unwrap();
        real_nulls += [&doc.public_key, &doc.user_data, &doc.nonce]
            .iter()
            .filter(|f| f.is_none())
            .count();
        compared += 1;
    }
    assert!(compared >= 10, "only {compared} real documents compared");
    // Real documents write absent optional fields as null, and so do we.
    assert!(real_nulls > 0);
    let (cose, _) = decode(&bare).unwrap();
    let Value::Map(entries) = ciborium::from_reader::<Value, _>(cose.payload.as_slice()).unwrap()
    else {
        panic!()
    };
    let nulls: Vec<&str> = entries
        .iter()
        .filter(|(_, v)| v.is_null())
        .map(|(k, _)| k.as_text().unwrap())
        .collect();
    assert_eq!(nulls, ["public_key", "user_data", "nonce"]);
}

#[test]
fn the_shape_spells_out_the_known_constants() {
    // Guards the comparison above against both sides drifting together.
    let dir = tempfile::tempdir().unwrap();
    let (nsm, _) = simulator(dir.path(), SimulatorOptions::default());
    let s = shape(&nsm.attestation(&AttestationRequest::default()).unwrap());
    assert_eq!(s.first_byte, 0x84);
    assert_eq!(s.protected, [0xa1, 0x01, 0x38, 0x22]);
    assert!(s.unprotected_empty);
    assert_eq!(s.signature_len, 96);
    assert_eq!(s.payload_header, 0xa9);
    assert!(s.payload_canonical);
    assert_eq!(
        s.keys,
        [
            "module_id",
            "digest",
            "timestamp",
            "pcrs",
            "certificate",
            "cabundle",
            "public_key",
            "user_data",
            "nonce"
        ]
    );
    assert_eq!(s.pcr_indexes, (0..16).collect::<Vec<u64>>());
    assert_eq!(s.pcr_lens, vec![48; 16]);
    assert_eq!(s.cabundle_len, 4);
    assert_eq!(s.leaf_lifetime_min, 180);
    assert!(s.module_id_like_aws);
    assert!(s.leaf_starts_before_document);
}
