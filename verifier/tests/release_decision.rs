//! The release decision, called directly: no server, no real clock for the
//! nonce book, every refusal reason by name.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use common::{debug_pcrs, good_pcrs, now, now_ms, Enclave};
use hermetic_attestation::{TrustedRoot, Verifier};
use hermetic_verifier::challenge::NonceBook;
use hermetic_verifier::policy::PolicyFile;
use hermetic_verifier::release::{decide, Lookup, ReleaseError, MAX_SECRETS_PER_REQUEST};

struct Fixture {
    enclave: Enclave,
    verifier: Verifier,
    nonces: NonceBook,
    policies: BTreeMap<String, Lookup>,
}

fn fixture() -> Fixture {
    let enclave = Enclave::new();
    let root = TrustedRoot::from_pem(enclave.pki.root_pem().as_bytes()).unwrap();
    let text = common::policy_toml("db-password", &good_pcrs(), "max_age_secs = 120");
    let mut file = PolicyFile::parse(&text).unwrap();
    let mut policies = BTreeMap::new();
    policies.insert(
        "db-password".to_owned(),
        Lookup::Policy(file.secrets.remove("db-password").unwrap()),
    );
    policies.insert("orphan".to_owned(), Lookup::NoPolicy);
    Fixture {
        enclave,
        verifier: Verifier::new(vec![root]),
        nonces: NonceBook::new(Duration::from_secs(60), 1000),
        policies,
    }
}

impl Fixture {
    fn nonce(&self) -> Vec<u8> {
        self.nonces
            .issue(&SystemRandom::new(), now())
            .unwrap()
            .0
            .to_vec()
    }

    fn decide(
        &self,
        doc: &[u8],
        names: &[&str],
    ) -> Result<hermetic_verifier::release::Grant, String> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let lookup = |n: &str| self.policies.get(n).cloned().unwrap_or(Lookup::Unknown);
        decide(&self.verifier, doc, &names, &lookup, &self.nonces, now())
            .map_err(|r| r.error.reason().to_owned())
    }
}

#[test]
fn grants_a_matching_enclave_and_binds_the_nonce() {
    let f = fixture();
    let nonce = f.nonce();
    let grant = f
        .decide(&f.enclave.document(&nonce), &["db-password"])
        .unwrap();
    assert_eq!(grant.nonce, nonce);
    assert_eq!(grant.secrets, vec!["db-password".to_owned()]);
    assert_eq!(grant.recipient.to_bytes(), f.enclave.key.public_key_bytes());
}

#[test]
fn refuses_each_failure_with_its_reason() {
    let f = fixture();
    let key = Some(f.enclave.key.public_key_bytes().to_vec());

    // Wrong PCR.
    let mut pcrs = good_pcrs();
    pcrs.insert(2, vec![0xee; 48]);
    let n = f.nonce();
    let doc = f
        .enclave
        .document_with(pcrs, Some(&n), now_ms(), key.clone());
    assert_eq!(
        f.decide(&doc, &["db-password"]).unwrap_err(),
        "pcr_mismatch"
    );

    // Debug mode (PCR0-2 zero) is refused before measurements are compared.
    let n = f.nonce();
    let doc = f
        .enclave
        .document_with(debug_pcrs(), Some(&n), now_ms(), key.clone());
    assert_eq!(
        f.decide(&doc, &["db-password"]).unwrap_err(),
        "debug_enclave"
    );

    // Stale: older than max_age_secs = 120.
    let n = f.nonce();
    let doc = f
        .enclave
        .document_with(good_pcrs(), Some(&n), now_ms() - 121_000, key.clone());
    assert_eq!(
        f.decide(&doc, &["db-password"]).unwrap_err(),
        "document_too_old"
    );

    // From the future (beyond the allowed skew).
    let n = f.nonce();
    let doc = f
        .enclave
        .document_with(good_pcrs(), Some(&n), now_ms() + 300_000, key.clone());
    assert_eq!(
        f.decide(&doc, &["db-password"]).unwrap_err(),
        "document_from_future"
    );

    // Nonces: unknown, missing, replayed.
    let doc = f.enclave.document(&[9; 32]);
    assert_eq!(
        f.decide(&doc, &["db-password"]).unwrap_err(),
        "nonce_unknown"
    );
    let doc = f
        .enclave
        .document_with(good_pcrs(), None, now_ms(), key.clone());
    assert_eq!(
        f.decide(&doc, &["db-password"]).unwrap_err(),
        "nonce_missing"
    );
    let n = f.nonce();
    let doc = f.enclave.document(&n);
    assert!(f.decide(&doc, &["db-password"]).is_ok());
    assert_eq!(
        f.decide(&doc, &["db-password"]).unwrap_err(),
        "nonce_replayed"
    );

    // Names.
    let doc = f.enclave.document(&f.nonce());
    assert_eq!(f.decide(&doc, &["nope"]).unwrap_err(), "unknown_secret");
    let doc = f.enclave.document(&f.nonce());
    assert_eq!(f.decide(&doc, &["orphan"]).unwrap_err(), "no_policy");
    let doc = f.enclave.document(&f.nonce());
    assert_eq!(f.decide(&doc, &[]).unwrap_err(), "no_secrets_requested");
    assert_eq!(
        f.decide(&doc, &["db-password", "db-password"]).unwrap_err(),
        "duplicate_secret"
    );
    let many: Vec<String> = (0..=MAX_SECRETS_PER_REQUEST)
        .map(|i| format!("s{i}"))
        .collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(f.decide(&doc, &many).unwrap_err(), "too_many_secrets");

    // All or nothing: one unknown name refuses the lot.
    let doc = f.enclave.document(&f.nonce());
    assert_eq!(
        f.decide(&doc, &["db-password", "nope"]).unwrap_err(),
        "unknown_secret"
    );

    // Public key: missing, or not a 32-byte X25519 key.
    let n = f.nonce();
    let doc = f
        .enclave
        .document_with(good_pcrs(), Some(&n), now_ms(), None);
    assert_eq!(
        f.decide(&doc, &["db-password"]).unwrap_err(),
        "public_key_missing"
    );
    let n = f.nonce();
    let doc = f
        .enclave
        .document_with(good_pcrs(), Some(&n), now_ms(), Some(vec![4; 65]));
    assert_eq!(
        f.decide(&doc, &["db-password"]).unwrap_err(),
        "envelope_bad_public_key"
    );
}

#[test]
fn attestation_failures_come_first() {
    let f = fixture();
    // The AWS-only verifier does not know the test root.
    let aws = Verifier::aws().unwrap();
    let doc = f.enclave.document(&f.nonce());
    let names = vec!["db-password".to_owned()];
    let lookup = |_: &str| Lookup::Unknown;
    let refused = decide(&aws, &doc, &names, &lookup, &f.nonces, now()).unwrap_err();
    assert_eq!(refused.error.reason(), "untrusted_root");
    assert!(
        refused.attested.is_none(),
        "no identity from an unverified document"
    );

    // A flipped signature byte.
    let mut bad = f.enclave.document(&f.nonce());
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(
        f.decide(&bad, &["db-password"]).unwrap_err(),
        "bad_signature"
    );

    // An unknown secret is not revealed to an unverified caller.
    assert_eq!(
        f.decide(b"garbage", &["nope"]).unwrap_err(),
        "malformed_cbor"
    );
}

#[test]
fn nonce_is_consumed_even_when_a_later_check_fails() {
    let f = fixture();
    let n = f.nonce();
    let doc = f.enclave.document(&n);
    assert_eq!(f.decide(&doc, &["nope"]).unwrap_err(), "unknown_secret");
    // The same nonce cannot be retried with a better request.
    assert_eq!(
        f.decide(&doc, &["db-password"]).unwrap_err(),
        "nonce_replayed"
    );
}

#[test]
fn nonce_not_required_by_policy() {
    let mut f = fixture();
    let text = common::policy_toml("open", &good_pcrs(), "nonce_required = false");
    let mut file = PolicyFile::parse(&text).unwrap();
    f.policies.insert(
        "open".into(),
        Lookup::Policy(file.secrets.remove("open").unwrap()),
    );
    let key = Some(f.enclave.key.public_key_bytes().to_vec());
    let doc = f.enclave.document_with(good_pcrs(), None, now_ms(), key);
    let grant = f.decide(&doc, &["open"]).unwrap();
    assert!(grant.nonce.is_empty());
    // Asking for a nonce-requiring secret too brings the rule back.
    assert_eq!(
        f.decide(&doc, &["open", "db-password"]).unwrap_err(),
        "nonce_missing"
    );
}

#[test]
fn reason_codes_are_stable() {
    let e = ReleaseError::UnknownSecret { name: "x".into() };
    assert_eq!(e.reason(), "unknown_secret");
    assert!(!e.to_string().is_empty());
}

#[test]
fn a_grant_and_a_later_refusal_name_the_root_the_chain_ended_in() {
    let f = fixture();
    let root = TrustedRoot::from_pem(f.enclave.pki.root_pem().as_bytes()).unwrap();
    let grant = f
        .decide(&f.enclave.document(&f.nonce()), &["db-password"])
        .unwrap();
    assert_eq!(grant.root_sha256, root.sha256());
    assert!(!root.is_aws_nitro());

    let names = vec!["nope".to_owned()];
    let lookup = |n: &str| f.policies.get(n).cloned().unwrap_or(Lookup::Unknown);
    let doc = f.enclave.document(&f.nonce());
    let refused = decide(&f.verifier, &doc, &names, &lookup, &f.nonces, now()).unwrap_err();
    assert_eq!(refused.error.reason(), "unknown_secret");
    let attested = refused.attested.expect("refused after attestation");
    assert_eq!(attested.root_sha256, root.sha256());
    assert!(attested.nonce_consumed, "this request used up the nonce");

    // Replaying the same document verifies, but consumes nothing.
    let refused = decide(&f.verifier, &doc, &names, &lookup, &f.nonces, now()).unwrap_err();
    assert_eq!(refused.error.reason(), "nonce_replayed");
    assert!(!refused.attested.expect("attested").nonce_consumed);
}

#[test]
fn invalid_names_are_refused_before_the_document_is_looked_at() {
    let f = fixture();
    let long = "a".repeat(129);
    for bad in ["", "../etc/passwd", "with space", "é", long.as_str()] {
        assert_eq!(
            f.decide(b"not even a document", &["db-password", bad])
                .unwrap_err(),
            "invalid_name",
            "{bad:?}"
        );
    }
    // Too many names are refused before their names are checked.
    let many: Vec<String> = (0..=MAX_SECRETS_PER_REQUEST)
        .map(|i| format!(" {i}"))
        .collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(f.decide(b"x", &many).unwrap_err(), "too_many_secrets");
    assert_eq!(
        ReleaseError::InvalidSecretName {
            index: 0,
            reason: "x"
        }
        .reason(),
        "invalid_name"
    );
}
