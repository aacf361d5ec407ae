//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// `../shared/vectors/eif` relative to the workspace root. Returns `None`
/// (after printing why) when absent, unless `CI=true`, where absence fails.
pub fn vectors() -> Option<PathBuf> {
    hermetic_testkit::vectors::find(env!("CARGO_MANIFEST_DIR"), "eif").map(|d| d.join("eif"))
}

/// The describe.json the reference reader wrote for `name`.
pub fn reference(dir: &std::path::Path, name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join(format!("{name}.describe.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Independent implementation of the recipe for the tests: SHA-384(0^48 || SHA-384(concat)).
pub fn recipe(parts: &[&[u8]]) -> String {
    let mut inner = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA384);
    for p in parts {
        inner.update(p);
    }
    let mut outer = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA384);
    outer.update(&[0u8; 48]);
    outer.update(inner.finish().as_ref());
    hex::encode(outer.finish().as_ref())
}

/// Deterministic pseudo-random bytes (xorshift), no extra dependency.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
