//! C2SP tlog-proof files and tiles on hostile bytes: a proof parses only
//! in its canonical text, a verifier never accepts a proof whose record is
//! not the leaf the signed root commits to, and hashes read out of hostile
//! tile bytes give roots and proofs that agree with each other.
#![no_main]

use std::sync::OnceLock;

use hermetic_tlog::checkpoint::Checkpoint;
use hermetic_tlog::merkle::{self, Hash, HASH_SIZE};
use hermetic_tlog::note::{self, Signer, VerifierKey};
use hermetic_tlog::proof::TlogProof;
use hermetic_tlog::tile::{self, Tile, TILE_WIDTH};
use libfuzzer_sys::fuzz_target;

// Go's sumdb/note example key (note.go, package doc); the seeds' proofs
// are signed by it with origin "PeterNeumann".
const PETER_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";

fn signer() -> &'static Signer {
    static S: OnceLock<Signer> = OnceLock::new();
    S.get_or_init(|| Signer::from_private_key(PETER_SKEY).unwrap())
}

fn key() -> &'static VerifierKey {
    static K: OnceLock<VerifierKey> = OnceLock::new();
    K.get_or_init(|| signer().verifier_key())
}

/// Builds a log of `leaves` in Go's stored-hash layout.
fn stored(leaves: &[&[u8]]) -> Vec<Hash> {
    let mut hashes = Vec::new();
    for (i, leaf) in leaves.iter().enumerate() {
        let new = merkle::stored_hashes(i as u64, leaf, &hashes).unwrap();
        hashes.extend(new);
    }
    hashes
}

fuzz_target!(|data: &[u8]| {
    // 1. The proof file parser, and verification against a fixed key.
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(p) = TlogProof::parse(text) {
            assert_eq!(p.to_text(), text, "parse accepted a non-canonical proof");
            assert_eq!(TlogProof::parse(&p.to_text()).unwrap(), p);
            if let Ok((cp, record)) = p.verify(key()) {
                // Accepted: the checkpoint is signed by the key, and the
                // record really is leaf `index` under its root.
                let opened = note::open(p.checkpoint.as_bytes(), std::slice::from_ref(key()))
                    .expect("verify accepted an unsigned checkpoint");
                assert_eq!(Checkpoint::parse(&opened.text).unwrap(), cp);
                assert!(p.index < cp.size);
                merkle::check_record(
                    &p.proof,
                    cp.size,
                    &cp.root_hash,
                    p.index,
                    &merkle::record_hash(record),
                )
                .unwrap();
                // Any other record at the same place is refused.
                let mut other = record.to_vec();
                other.push(0);
                let forged = TlogProof {
                    extra: Some(other),
                    ..p.clone()
                };
                assert!(forged.verify(key()).is_err(), "a changed record verified");
            }
        }
    }

    // 2. Hostile tile bytes as stored hashes: whatever they hold, reading a
    //    tile back gives the same bytes, and a full tile's root is the
    //    Merkle root of its 256 hashes.
    let hashes: Vec<Hash> = data
        .chunks_exact(HASH_SIZE)
        .map(|c| Hash(c.try_into().unwrap()))
        .collect();
    if data.len() as u64 == TILE_WIDTH * HASH_SIZE as u64 {
        let root = tile::tile_root(data).unwrap();
        // Pair up level by level by hand (RFC 6962 MTH of a full subtree).
        let mut level = hashes.clone();
        while level.len() > 1 {
            level = level
                .chunks_exact(2)
                .map(|p| merkle::node_hash(&p[0], &p[1]))
                .collect();
        }
        assert_eq!(level[0], root);
    } else {
        assert!(tile::tile_root(data).is_none());
    }
    if let Some((&first, rest)) = data.split_first() {
        let width = u16::from(first).max(1);
        if let Ok(t) = Tile::hashes(0, 0, width) {
            match tile::read_tile_data(&t, &hashes) {
                Ok(bytes) => {
                    assert_eq!(bytes.len(), usize::from(width) * HASH_SIZE);
                    for i in 0..usize::from(width) {
                        let idx = merkle::stored_hash_index(0, i as u64) as usize;
                        assert_eq!(&bytes[i * HASH_SIZE..][..HASH_SIZE], hashes[idx].as_ref());
                    }
                }
                Err(_) => {
                    let need = merkle::stored_hash_index(0, u64::from(width) - 1) as usize;
                    assert!(need >= hashes.len(), "a readable tile was refused");
                }
            }
        }
        // Tree hashes and proofs over hostile stored hashes never panic.
        // (Nothing more holds: stored interior nodes need not be the
        // hashes of their children here, so a root and a proof may
        // disagree; consistent storage is checked in part 3.)
        let size = u64::from(first % 32) + 1;
        if merkle::stored_hash_count(size) as usize <= hashes.len() {
            let root = merkle::tree_hash(size, &hashes).unwrap();
            let n = u64::from(rest.first().copied().unwrap_or(0)) % size;
            if let Ok(proof) = merkle::prove_record(size, n, &hashes) {
                let leaf = hashes[merkle::stored_hash_index(0, n) as usize];
                let _ = merkle::check_record(&proof, size, &root, n, &leaf);
            }
            if let Ok(proof) = merkle::prove_tree(size, n + 1, &hashes) {
                let _ = merkle::check_tree(&proof, size, &root, n + 1, &root);
            }
        }
    }

    // 3. A real log built from the input's entry bundle: every leaf's
    //    proof file, signed here, verifies; tampering with the index fails.
    if let Ok(entries) = tile::parse_entry_bundle(data) {
        if !entries.is_empty() && entries.len() <= 64 {
            let hashes = stored(&entries);
            let size = entries.len() as u64;
            let root = merkle::tree_hash(size, &hashes).unwrap();
            let cp = Checkpoint {
                origin: "PeterNeumann".into(),
                size,
                root_hash: root,
                extensions: Vec::new(),
            };
            let signed = cp.sign(signer()).unwrap();
            let i = (data.len() as u64) % size;
            let p = TlogProof {
                extra: Some(entries[i as usize].to_vec()),
                index: i,
                proof: merkle::prove_record(size, i, &hashes).unwrap(),
                checkpoint: signed,
            };
            // The log's consistency proof from every smaller size checks.
            let old = i + 1;
            let old_root = merkle::tree_hash(old, &hashes).unwrap();
            let consistency = merkle::prove_tree(size, old, &hashes).unwrap();
            merkle::check_tree(&consistency, size, &root, old, &old_root).unwrap();
            let reparsed = TlogProof::parse(&p.to_text()).unwrap();
            assert_eq!(reparsed, p);
            let (_, record) = reparsed.verify(key()).unwrap();
            assert_eq!(record, entries[i as usize]);
            if size > 1 && entries[i as usize] != entries[((i + 1) % size) as usize] {
                let moved = TlogProof {
                    index: (i + 1) % size,
                    ..p
                };
                assert!(
                    moved.verify(key()).is_err(),
                    "a proof moved to another index verified"
                );
            }
        }
    }
});
