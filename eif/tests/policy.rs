//! Expectations and `check` through the library interface.

mod common;

use hermetic_eif::policy::{check, policy_stanza, Expectation, Policy};
use hermetic_eif::{load_expectation, EifBuilder, EifError, Input, Measurements};

fn measurements(seed: u64, signed: bool) -> Measurements {
    let mut b = EifBuilder::new(Input::Bytes(common::bytes(seed, 1000)), b"c".to_vec())
        .ramdisk(Input::Bytes(common::bytes(seed + 1, 500)))
        .ramdisk(Input::Bytes(common::bytes(seed + 2, 300)));
    if signed {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["p".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        b = b.signer(
            hermetic_eif::Signer::from_pem(key.serialize_pem().as_bytes(), cert.pem().as_bytes())
                .unwrap(),
        );
    }
    b.measure().unwrap()
}

#[test]
fn stanza_roundtrips_and_matches_only_its_image() {
    let m = measurements(1, true);
    let other = measurements(50, true);
    let text = policy_stanza(&m, "db-password").unwrap();
    let p = Policy::parse(&text).unwrap();
    let sp = &p.secrets["db-password"];
    assert!(sp.nonce_required);
    assert!(!sp.allow_debug);
    assert_eq!(sp.max_age_secs, None);
    assert_eq!(sp.measurements.len(), 1);
    assert_eq!(sp.measurements[0][&8], m.pcr8.unwrap());
    let exp = Expectation::Policy(p);
    assert!(check(&m, &exp, None).unwrap().matched());
    let rep = check(&other, &exp, None).unwrap();
    assert!(!rep.matched());
    assert_eq!(rep.candidates[0].diffs.len(), 4, "{rep}");
    // Names needing quotes survive; names the verifier refuses are refused.
    let q = policy_stanza(&m, "db-password.v2").unwrap();
    assert!(Policy::parse(&q)
        .unwrap()
        .secrets
        .contains_key("db-password.v2"));
    assert!(matches!(
        policy_stanza(&m, "my secret.v2"),
        Err(EifError::PolicyStanza(_))
    ));
}

#[test]
fn any_set_may_match_and_secret_restricts() {
    let m = measurements(3, false);
    let hex0 = hex::encode(m.pcr0);
    let wrong = "0".repeat(96);
    let text = format!(
        "[secrets.a]\n[[secrets.a.measurements]]\npcr0 = \"{wrong}\"\n[[secrets.a.measurements]]\npcr0 = \"{hex0}\"\npcr3 = \"{wrong}\"\n\
         [secrets.b]\nallow_debug = true\nnonce_required = false\n[[secrets.b.measurements]]\npcr0 = \"{wrong}\"\n"
    );
    let p = Policy::parse(&text).unwrap();
    assert!(p.secrets["b"].allow_debug && !p.secrets["b"].nonce_required);
    let exp = Expectation::Policy(p);
    let rep = check(&m, &exp, None).unwrap();
    assert!(rep.matched());
    assert!(rep.notes.iter().any(|n| n.contains("pcr3/pcr4")), "{rep}");
    assert!(check(&m, &exp, Some("a")).unwrap().matched());
    assert!(!check(&m, &exp, Some("b")).unwrap().matched());
    assert!(matches!(
        check(&m, &exp, Some("c")),
        Err(EifError::UnknownSecret { .. })
    ));
}

#[test]
fn pcr8_expected_but_image_unsigned() {
    let unsigned = measurements(5, false);
    let signed = measurements(5, true);
    // Signing does not change PCR0/1/2 (the signature section is not measured).
    assert_eq!(
        (unsigned.pcr0, unsigned.pcr1, unsigned.pcr2),
        (signed.pcr0, signed.pcr1, signed.pcr2)
    );
    let exp = Expectation::Policy(Policy::parse(&policy_stanza(&signed, "s").unwrap()).unwrap());
    let rep = check(&unsigned, &exp, None).unwrap();
    assert!(!rep.matched());
    assert_eq!(rep.candidates[0].diffs.len(), 1);
    assert_eq!(rep.candidates[0].diffs[0].index, 8);
    assert_eq!(rep.candidates[0].diffs[0].actual, None);
}

#[test]
fn json_expectations() {
    let d = tempfile::tempdir().unwrap();
    let m = measurements(9, true);
    let j = m.to_json();
    let p = d.path().join("e.json");
    // nitro-cli describe-eif shape.
    std::fs::write(&p, serde_json::json!({ "Measurements": j }).to_string()).unwrap();
    let exp = load_expectation(&p).unwrap();
    assert!(check(&m, &exp, None).unwrap().matched());
    // Bare measurements object; PCR8 only.
    std::fs::write(&p, serde_json::json!({ "PCR8": j.pcr8 }).to_string()).unwrap();
    let exp = load_expectation(&p).unwrap();
    assert_eq!(
        exp,
        Expectation::Pcrs([(8u8, m.pcr8.unwrap().to_vec())].into_iter().collect())
    );
    assert!(check(&m, &exp, None).unwrap().matched());
    assert!(!check(&measurements(10, true), &exp, None)
        .unwrap()
        .matched());
    // Malformed.
    for bad in [
        "{",
        "{\"Measurements\": 3}",
        "{\"Measurements\": {\"PCR0\": 1}}",
        "{\"x\": 1}",
    ] {
        std::fs::write(&p, bad).unwrap();
        assert!(
            matches!(load_expectation(&p), Err(EifError::BadExpectation { .. })),
            "{bad}"
        );
    }
    assert!(matches!(
        load_expectation(&d.path().join("missing")),
        Err(EifError::Io { .. })
    ));
}
