//! Every hermetic-tlog parser on arbitrary bytes: none may panic, and what
//! parses must survive a round trip.
#![no_main]

use std::sync::OnceLock;

use hermetic_tlog::checkpoint::Checkpoint;
use hermetic_tlog::cosignature::{self, CosignerKey};
use hermetic_tlog::merkle::{self, Hash};
use hermetic_tlog::note::{self, Signer, VerifierKey};
use hermetic_tlog::tile::{self, Tile};
use hermetic_tlog::witness::{self, AddCheckpoint, KnownLogs};
use libfuzzer_sys::fuzz_target;

// Go's sumdb/note example key (note.go, package doc), so that seeds signed
// by it reach the verification paths.
const PETER_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";

fn signer() -> &'static Signer {
    static S: OnceLock<Signer> = OnceLock::new();
    S.get_or_init(|| Signer::from_private_key(PETER_SKEY).unwrap())
}

fn cosigner() -> &'static cosignature::Cosigner {
    static C: OnceLock<cosignature::Cosigner> = OnceLock::new();
    C.get_or_init(|| cosignature::Cosigner::generate("w.fuzz").unwrap())
}

fuzz_target!(|data: &[u8]| {
    let known = [signer().verifier_key()];
    if let Ok(parsed) = note::parse(data) {
        let mut seen = std::collections::HashSet::new();
        if parsed.signatures.iter().all(|s| seen.insert(s.clone())) {
            // Canonical base64 makes parsing injective.
            assert_eq!(note::add_signatures(data, &[]).unwrap().as_bytes(), data);
        }
        if let Ok(opened) = note::open(data, &known) {
            assert_eq!(opened.text, parsed.text);
        }
        if let Ok(cp) = Checkpoint::parse(&parsed.text) {
            assert_eq!(cp.to_text().unwrap(), parsed.text);
        }
        let _ = cosignature::verify(data, &[]);
        if let Ok(re) = note::add_signatures(data, &[signer()]) {
            assert!(note::open(re.as_bytes(), &known).is_ok());
        }
    } else {
        assert!(note::open(data, &known).is_err());
    }
    let _ = tile::parse_entry_bundle(data);
    if let Ok(req) = AddCheckpoint::parse(data) {
        assert_eq!(req.to_body().as_bytes(), data);
        // The witness's decision on it (as a witness that holds nothing)
        // never panics.
        let logs = KnownLogs::new(known.iter().cloned());
        let _ = witness::decide(&logs, None, &req, 1, cosigner());
    }
    if let Some(size) = witness::parse_size_body(data) {
        assert_eq!(witness::format_size_body(size).as_bytes(), data);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(cp) = Checkpoint::parse(s) {
            assert_eq!(cp.to_text().unwrap(), s);
        }
        if let Ok(t) = s.parse::<Tile>() {
            assert_eq!(t.path(), s);
        }
        if let Ok(k) = s.parse::<VerifierKey>() {
            assert_eq!(k.to_string().parse::<VerifierKey>().unwrap(), k);
        }
        if let Ok(k) = s.parse::<CosignerKey>() {
            assert_eq!(k.to_string().parse::<CosignerKey>().unwrap(), k);
        }
        let _ = Signer::from_private_key(s);
        if let Ok(h) = s.parse::<Hash>() {
            assert_eq!(h.to_string(), s);
        }
    }
    // Proof checkers on arbitrary numbers and hashes.
    if data.len() >= 16 {
        let a = u64::from_le_bytes(data[..8].try_into().unwrap());
        let b = u64::from_le_bytes(data[8..16].try_into().unwrap());
        let hashes: Vec<Hash> = data[16..]
            .chunks_exact(32)
            .map(|c| Hash(c.try_into().unwrap()))
            .collect();
        let (root, leaf) = (Hash::default(), merkle::record_hash(data));
        let _ = merkle::check_record(&hashes, a, &root, b, &leaf);
        let _ = merkle::check_tree(&hashes, a, &root, b, &leaf);
        let _ = merkle::split_stored_hash_index(a);
        let _ = merkle::stored_hash_index((b % 256) as u32, a);
        let _ = tile::new_tiles(b.min(a), a.max(b).min(1 << 20));
    }
});
