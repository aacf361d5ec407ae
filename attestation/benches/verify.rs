//! Documents verified per second against the one primitive they cannot
//! avoid: a P-384 ECDSA verification. In one run, on one thread:
//!
//! - primitive: a bare aws-lc-rs `ECDSA_P384_SHA384_FIXED` verification of
//!   a real document's COSE signature (its Sig_structure built beforehand);
//! - cold: no cache, so five P-384 verifications per document (four
//!   certificates and the document); target at least 0.9 × primitive / 5;
//! - chain-warm: CA bundles cached, every leaf new (leaf cache off), so two
//!   (the leaf certificate and the document); target 0.9 × primitive / 2;
//! - warm: the same enclaves' documents again, so one (the document);
//!   target 0.9 × primitive.
//!
//! Over every real document in ../shared/vectors/attestation/valid, each
//! verified at its own timestamp. The modes are measured in interleaved
//! rounds (so that load from other processes falls on all of them alike)
//! and each rate is the median of its rounds.
//!
//! `cargo bench -p hermetic-attestation --bench verify`

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{ParsedPublicKey, UnparsedPublicKey, ECDSA_P384_SHA384_FIXED};
use hermetic_attestation::{decode, At, LeafCache, Verifier};
use x509_parser::prelude::{FromDer, X509Certificate};

const ROUNDS: usize = 15;
const SLICE: Duration = Duration::from_millis(200);
/// A mode passes when it reaches this share of its target.
const PASS: f64 = 0.9;

/// One document's COSE signature, ready for the bare primitive.
struct Signed {
    key: ParsedPublicKey,
    point: Vec<u8>,
    message: Vec<u8>,
    signature: Vec<u8>,
}

fn signed(bytes: &[u8]) -> Signed {
    let (cose, doc) = decode(bytes).expect("a valid document decodes");
    let (_, leaf) = X509Certificate::from_der(&doc.certificate).expect("leaf parses");
    let point = leaf.public_key().subject_public_key.data.to_vec();
    Signed {
        key: ParsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, &point).expect("P-384 key"),
        point,
        message: cose.to_be_signed(),
        signature: cose.signature,
    }
}

/// Operations per second of `op` over `items`, cycling, for one slice.
fn slice<T>(items: &[T], op: &dyn Fn(&T) -> bool) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < SLICE {
        for item in items {
            assert!(black_box(op(black_box(item))));
        }
        n += items.len() as u64;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    // `cargo test --benches` runs bench targets without --bench; keep that fast.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/attestation/valid");
    let Ok(listing) = std::fs::read_dir(&dir) else {
        println!("skipping: ../shared/vectors not found at {}", dir.display());
        return;
    };
    let mut files: Vec<PathBuf> = listing
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cbor"))
        .collect();
    files.sort();
    let docs: Vec<Vec<u8>> = files
        .iter()
        .map(|p| std::fs::read(p).expect("readable vector"))
        .collect();
    assert!(!docs.is_empty(), "no documents in {}", dir.display());
    let sigs: Vec<Signed> = docs.iter().map(|d| signed(d)).collect();

    let cold = Verifier::aws()
        .expect("AWS root")
        .with_cache(None)
        .with_leaf_cache(None);
    let chain_warm = Verifier::aws().expect("AWS root").with_leaf_cache(None);
    let warm = Verifier::aws()
        .expect("AWS root")
        .with_leaf_cache(Some(LeafCache::default()));
    // Warm the caches, and check that each mode does what it says.
    for doc in &docs {
        for v in [&cold, &chain_warm, &warm] {
            v.verify(doc, At::DocumentTimestamp)
                .expect("every valid document verifies at its timestamp");
        }
        let c = cold.verify(doc, At::DocumentTimestamp).unwrap();
        let cw = chain_warm.verify(doc, At::DocumentTimestamp).unwrap();
        let w = warm.verify(doc, At::DocumentTimestamp).unwrap();
        assert!(!c.chain_from_cache && !c.leaf_from_cache);
        assert!(cw.chain_from_cache && !cw.leaf_from_cache);
        assert!(w.chain_from_cache && w.leaf_from_cache);
    }

    fn verify(v: &Verifier) -> impl Fn(&Vec<u8>) -> bool + '_ {
        move |doc| v.verify(doc, At::DocumentTimestamp).is_ok()
    }
    let (cold_op, chain_op, warm_op) = (verify(&cold), verify(&chain_warm), verify(&warm));
    let modes: [(&str, &dyn Fn() -> f64); 5] = [
        ("primitive", &|| {
            slice(&sigs, &|s: &Signed| {
                s.key.verify_sig(&s.message, &s.signature).is_ok()
            })
        }),
        ("primitive, key parsed per call", &|| {
            slice(&sigs, &|s: &Signed| {
                UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, &s.point)
                    .verify(&s.message, &s.signature)
                    .is_ok()
            })
        }),
        ("cold", &|| slice(&docs, &cold_op)),
        ("chain-warm", &|| slice(&docs, &chain_op)),
        ("warm", &|| slice(&docs, &warm_op)),
    ];
    // HERMETIC_BENCH_PROFILE=MODE runs only that mode, for a profiler
    // (`perf record -g target/release/deps/verify-* --bench`).
    if let Ok(only) = std::env::var("HERMETIC_BENCH_PROFILE") {
        let (label, run) = modes
            .iter()
            .find(|(label, _)| *label == only)
            .expect("HERMETIC_BENCH_PROFILE names a mode");
        let rates: Vec<f64> = (0..50).map(|_| run()).collect();
        println!("{label}: {:.0} /s (profiling run)", median(rates));
        return;
    }
    // Each round: primitive, cold, primitive, chain-warm, primitive, warm,
    // primitive. A mode's ratio in a round is against the mean of the two
    // primitive slices around it, so load from other processes that drifts
    // between rounds cancels out; the reported ratio is the median over rounds.
    let mut primitive_rates = Vec::new();
    let mut unparsed_rates = Vec::new();
    let mut mode_rates: [Vec<f64>; 3] = Default::default();
    let mut mode_ratios: [Vec<f64>; 3] = Default::default();
    for _ in 0..ROUNDS {
        let mut before = (modes[0].1)();
        primitive_rates.push(before);
        unparsed_rates.push((modes[1].1)());
        for (i, signatures) in [5.0, 2.0, 1.0].into_iter().enumerate() {
            let rate = (modes[2 + i].1)();
            let after = (modes[0].1)();
            primitive_rates.push(after);
            mode_rates[i].push(rate);
            mode_ratios[i].push(rate / ((before + after) / 2.0 / signatures));
            before = after;
        }
    }
    let primitive = median(primitive_rates);

    println!(
        "verify: {} real AWS documents, each at its own timestamp; one thread; {ROUNDS} rounds of interleaved {} ms slices; rates are medians, each ratio the median over rounds of the mode's rate against the primitive slices beside it",
        docs.len(),
        SLICE.as_millis()
    );
    println!(
        "  {:<32} {:>8.0} /s   (aws-lc-rs ECDSA_P384_SHA384_FIXED, parsed key: the limit)",
        "primitive: one P-384 verify", primitive
    );
    println!(
        "  {:<32} {:>8.0} /s",
        "primitive, key parsed per call",
        median(unparsed_rates)
    );
    let mut all_pass = true;
    for (i, (label, signatures)) in [("cold", 5.0), ("chain-warm", 2.0), ("warm", 1.0)]
        .into_iter()
        .enumerate()
    {
        let rate = median(mode_rates[i].clone());
        let ratio = median(mode_ratios[i].clone());
        let pass = ratio >= PASS;
        all_pass &= pass;
        println!(
            "  {label:<32} {rate:>8.0} docs/s   target primitive/{signatures:.0} = {:>6.0}   ratio {ratio:.2}   {}",
            primitive / signatures,
            if pass { "PASS" } else { "FAIL" }
        );
    }
    println!(
        "  verdict: {} (each mode at least {PASS} x its target)",
        if all_pass { "PASS" } else { "FAIL" }
    );
}
