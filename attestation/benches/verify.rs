//! Documents verified per second: cold (no chain cache: every certificate
//! signature checked) against chain-cached (only the leaf and the COSE
//! signature), in one run, reported as a ratio.
//!
//! `cargo bench -p hermetic-attestation --bench verify`
//!
//! Uses a real AWS document from ../shared/vectors when present (verified at
//! its own timestamp), and always a simulated AWS-shaped one.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hermetic_attestation::simulator::{TestPki, LEAF_LIFETIME};
use hermetic_attestation::{At, Document, TrustedRoot, UnixTime, Verifier};

const SAMPLES: usize = 7;
const SAMPLE_TIME: Duration = Duration::from_millis(700);

/// Median documents per second over several timed samples.
fn rate(verifier: &Verifier, doc: &[u8], at: At) -> f64 {
    verifier
        .verify(doc, at)
        .expect("the bench document verifies");
    let mut rates = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < SAMPLE_TIME {
            black_box(verifier.verify(black_box(doc), at).is_ok());
            n += 1;
        }
        rates.push(n as f64 / start.elapsed().as_secs_f64());
    }
    rates.sort_by(|a, b| a.total_cmp(b));
    rates[SAMPLES / 2]
}

fn report(label: &str, roots: Vec<TrustedRoot>, doc: &[u8], at: At) {
    let cold = rate(&Verifier::new(roots.clone()).with_cache(None), doc, at);
    let cached = rate(&Verifier::new(roots), doc, at);
    println!(
        "{label:<28} cold {cold:>8.0} docs/s   chain-cached {cached:>8.0} docs/s   ratio {:.2}x",
        cached / cold
    );
}

fn main() {
    // `cargo test --benches` runs bench targets with --bench absent; keep that fast.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let now = 1_790_000_000i64;
    let pki = TestPki::generate(now).expect("test PKI");
    let leaf = pki
        .issue_leaf(
            "i-0123456789abcdef0-enc0123456789abcdef",
            now - 60,
            now - 60 + LEAF_LIFETIME.as_secs() as i64,
        )
        .expect("leaf");
    let doc = Document {
        module_id: "i-0123456789abcdef0-enc0123456789abcdef".into(),
        digest: "SHA384".into(),
        timestamp_ms: now as u64 * 1000,
        pcrs: (0u8..16).map(|i| (i, vec![i; 48])).collect(),
        certificate: leaf.der.clone(),
        cabundle: pki.cabundle(),
        public_key: Some(vec![7; 32]),
        user_data: None,
        nonce: Some(vec![9; 32]),
        unknown_fields: vec![],
    };
    let signed = leaf.sign(&doc).expect("sign");
    let at = At::Time(UnixTime::since_unix_epoch(Duration::from_secs(now as u64)));
    report(
        "simulated (4-cert bundle)",
        vec![TrustedRoot::from_der(pki.root_der()).expect("root")],
        &signed,
        at,
    );

    let real = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/vectors/attestation/valid/EternisAI__remote-attestation-verifier__lib.rs__1ddb8b27.cbor");
    match std::fs::read(&real) {
        Ok(bytes) => report(
            "real AWS document",
            vec![TrustedRoot::aws_nitro().expect("AWS root")],
            &bytes,
            At::DocumentTimestamp,
        ),
        Err(_) => println!("real AWS document: skipped (../shared/vectors not found)"),
    }
}
