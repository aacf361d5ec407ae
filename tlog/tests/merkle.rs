//! The `merkle` module through its public API: the RFC 6962 reference
//! vectors of certificate-transparency (testonly/constants.go), a literal
//! transcription of RFC 6962 §2.1 definitions as an independent oracle,
//! every proof for small trees with each kind of corruption, the stored
//! hash layout, and hostile inputs.

use hermetic_tlog::merkle::{
    check_record, check_tree, empty_tree_hash, node_hash, prove_record, prove_tree, record_hash,
    split_stored_hash_index, stored_hash_count, stored_hash_index, stored_hashes, tree_hash, Hash,
    HashParseError, HashReader, MissingHash, ProofError, TreeError, MAX_TREE_SIZE,
};

fn hd(s: &str) -> Hash {
    Hash(hex::decode(s).unwrap().try_into().unwrap())
}

// certificate-transparency testonly/constants.go: leaf inputs, the roots of
// their first n leaves, and some proofs.
fn ct_leaves() -> Vec<Vec<u8>> {
    [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|s| hex::decode(s).unwrap())
    .collect()
}

const CT_ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// Appends every leaf as a log would, returning the stored hashes.
fn build(leaves: &[Vec<u8>]) -> Vec<Hash> {
    let mut stored: Vec<Hash> = Vec::new();
    for (n, data) in leaves.iter().enumerate() {
        assert_eq!(stored.len() as u64, stored_hash_index(0, n as u64));
        let new = stored_hashes(n as u64, data, &stored).unwrap();
        stored.extend(new);
        assert_eq!(stored.len() as u64, stored_hash_count(n as u64 + 1));
    }
    stored
}

fn leaves(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("leaf {i}").into_bytes()).collect()
}

// RFC 6962 §2.1, written as the RFC states it, on leaf hashes.
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

fn mth(d: &[Hash]) -> Hash {
    match d.len() {
        0 => empty_tree_hash(),
        1 => d[0],
        n => {
            let k = split(n);
            node_hash(&mth(&d[..k]), &mth(&d[k..]))
        }
    }
}

fn path(m: usize, d: &[Hash]) -> Vec<Hash> {
    if d.len() == 1 {
        return vec![];
    }
    let k = split(d.len());
    if m < k {
        let mut p = path(m, &d[..k]);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = path(m - k, &d[k..]);
        p.push(mth(&d[..k]));
        p
    }
}

fn subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
    let n = d.len();
    if m == n {
        return if b { vec![] } else { vec![mth(d)] };
    }
    let k = split(n);
    if m <= k {
        let mut p = subproof(m, &d[..k], b);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = subproof(m - k, &d[k..], false);
        p.push(mth(&d[..k]));
        p
    }
}

#[test]
fn ct_reference_roots() {
    let leaves = ct_leaves();
    let stored = build(&leaves);
    for (size, root) in CT_ROOTS.iter().enumerate() {
        assert_eq!(
            tree_hash(size as u64, &stored).unwrap(),
            hd(root),
            "size {size}"
        );
    }
    assert_eq!(record_hash(b""), hd(CT_ROOTS[1]));
    assert_eq!(empty_tree_hash(), hd(CT_ROOTS[0]));
}

#[test]
fn ct_reference_proofs() {
    let stored = build(&ct_leaves());
    let inclusion = [
        (
            0u64,
            8u64,
            vec![
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            vec![
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ];
    let leaves = ct_leaves();
    for (index, size, want) in inclusion {
        let want: Vec<Hash> = want.iter().map(|s| hd(s)).collect();
        assert_eq!(prove_record(size, index, &stored).unwrap(), want);
        let leaf = record_hash(&leaves[index as usize]);
        check_record(&want, size, &hd(CT_ROOTS[size as usize]), index, &leaf).unwrap();
    }
    let consistency = [
        (1u64, 1u64, vec![]),
        (
            1,
            8,
            vec![
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            vec![
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            vec![
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    for (old, new, want) in consistency {
        let want: Vec<Hash> = want.iter().map(|s| hd(s)).collect();
        assert_eq!(prove_tree(new, old, &stored).unwrap(), want, "{old}->{new}");
        check_tree(
            &want,
            new,
            &hd(CT_ROOTS[new as usize]),
            old,
            &hd(CT_ROOTS[old as usize]),
        )
        .unwrap();
    }
}

/// Ways of spoiling a proof: a flipped bit in each hash, each hash
/// dropped, adjacent hashes swapped, one hash too many.
fn spoiled(proof: &[Hash]) -> Vec<Vec<Hash>> {
    let mut out = Vec::new();
    for i in 0..proof.len() {
        let mut p = proof.to_vec();
        p[i].0[i % 32] ^= 1 << (i % 8);
        out.push(p);
        let mut p = proof.to_vec();
        p.remove(i);
        out.push(p);
    }
    for i in 1..proof.len() {
        if proof[i - 1] != proof[i] {
            let mut p = proof.to_vec();
            p.swap(i - 1, i);
            out.push(p);
        }
    }
    let mut p = proof.to_vec();
    p.push(proof.first().copied().unwrap_or_default());
    out.push(p);
    out
}

#[test]
fn every_inclusion_proof_up_to_40_matches_rfc_6962_and_resists_tampering() {
    let data = leaves(40);
    let stored = build(&data);
    let hashes: Vec<Hash> = data.iter().map(|d| record_hash(d)).collect();
    for size in 1..=40usize {
        let root = mth(&hashes[..size]);
        assert_eq!(tree_hash(size as u64, &stored).unwrap(), root);
        for index in 0..size {
            let proof = prove_record(size as u64, index as u64, &stored).unwrap();
            assert_eq!(proof, path(index, &hashes[..size]), "{index} in {size}");
            let (s, i) = (size as u64, index as u64);
            check_record(&proof, s, &root, i, &hashes[index]).unwrap();
            // Another leaf, another index, another size, another root.
            let other = (index + 1) % size;
            if other != index {
                assert!(check_record(&proof, s, &root, i, &hashes[other]).is_err());
                assert!(check_record(&proof, s, &root, other as u64, &hashes[index]).is_err());
            }
            if size > 1 {
                let smaller = mth(&hashes[..size - 1]);
                assert!(check_record(&proof, s, &smaller, i, &hashes[index]).is_err());
            }
            // (A proof may also fit another size under the same root: leaf
            // 0 of 3 and leaf 0 of 4 take two hashes each. The root is
            // bound to its size by the signed checkpoint, not by the proof.)
            for p in spoiled(&proof) {
                assert!(check_record(&p, s, &root, i, &hashes[index]).is_err());
            }
        }
        assert_eq!(
            check_record(&[], size as u64, &root, size as u64, &hashes[0]),
            Err(ProofError::IndexOutOfRange {
                index: size as u64,
                size: size as u64
            })
        );
    }
}

#[test]
fn every_consistency_proof_up_to_40_matches_rfc_6962_and_resists_tampering() {
    let data = leaves(40);
    let stored = build(&data);
    let hashes: Vec<Hash> = data.iter().map(|d| record_hash(d)).collect();
    let roots: Vec<Hash> = (0..=40).map(|n| mth(&hashes[..n])).collect();
    for new in 1..=40usize {
        for old in 1..=new {
            let proof = prove_tree(new as u64, old as u64, &stored).unwrap();
            assert_eq!(proof, subproof(old, &hashes[..new], true), "{old}->{new}");
            let (n, o) = (new as u64, old as u64);
            check_tree(&proof, n, &roots[new], o, &roots[old]).unwrap();
            if old < new {
                // A log that rewrote history: the old root differs.
                let mut forked = hashes[..old].to_vec();
                forked[old - 1] = record_hash(b"rewritten");
                assert!(check_tree(&proof, n, &roots[new], o, &mth(&forked)).is_err());
                assert!(check_tree(&proof, n, &roots[new - 1], o, &roots[old]).is_err());
                assert!(check_tree(&proof, n, &roots[new], o, &roots[old - 1]).is_err());
                for p in spoiled(&proof) {
                    assert!(
                        check_tree(&p, n, &roots[new], o, &roots[old]).is_err(),
                        "{old}->{new} {p:?}"
                    );
                }
            } else {
                assert_eq!(
                    check_tree(&[roots[old]], n, &roots[new], o, &roots[old]),
                    Err(ProofError::WrongLength)
                );
                assert_eq!(
                    check_tree(&[], n, &roots[new], o, &roots[0]),
                    Err(ProofError::RootMismatch)
                );
            }
        }
    }
}

#[test]
fn stored_hash_layout() {
    // Go's tlog_test.go TestSplitStoredHashIndex: split inverts index for
    // every (level, n) in a tree.
    for level in 0..10u32 {
        for n in 0..300u64 {
            let x = stored_hash_index(level, n);
            assert_eq!(split_stored_hash_index(x), (level, n));
        }
    }
    // The first indexes, written out: record 0 at 0, record 1 at 1 and its
    // pair at 2, record 2 at 3, record 3 at 4, then (1,1) at 5, (2,0) at 6.
    let layout: Vec<(u32, u64)> = (0..12).map(split_stored_hash_index).collect();
    assert_eq!(
        layout,
        vec![
            (0, 0),
            (0, 1),
            (1, 0),
            (0, 2),
            (0, 3),
            (1, 1),
            (2, 0),
            (0, 4),
            (0, 5),
            (1, 2),
            (0, 6),
            (0, 7)
        ]
    );
    assert_eq!(stored_hash_count(0), 0);
    assert_eq!(stored_hash_count(1), 1);
    assert_eq!(stored_hash_count(2), 3);
    assert_eq!(stored_hash_count(4), 7);
    assert_eq!(stored_hash_count(8), 15);
    // The largest tree's last record is indexable without overflow.
    let last = stored_hash_index(0, MAX_TREE_SIZE - 1);
    assert_eq!(split_stored_hash_index(last), (0, MAX_TREE_SIZE - 1));
    assert!(stored_hash_count(MAX_TREE_SIZE) > last);
}

#[test]
fn bad_ranges_are_typed_errors() {
    let stored = build(&leaves(5));
    assert!(matches!(
        prove_record(5, 5, &stored),
        Err(TreeError::IndexOutOfRange { index: 5, size: 5 })
    ));
    assert!(matches!(
        prove_record(0, 0, &stored),
        Err(TreeError::IndexOutOfRange { .. })
    ));
    assert!(matches!(
        prove_tree(5, 0, &stored),
        Err(TreeError::BadSizes { old: 0, new: 5 })
    ));
    assert!(matches!(
        prove_tree(4, 5, &stored),
        Err(TreeError::BadSizes { old: 5, new: 4 })
    ));
    assert!(matches!(
        tree_hash(MAX_TREE_SIZE + 1, &stored),
        Err(TreeError::TooLarge { .. })
    ));
    assert!(matches!(
        prove_record(u64::MAX, 3, &stored),
        Err(TreeError::TooLarge { .. })
    ));
    assert!(matches!(
        stored_hashes(MAX_TREE_SIZE, b"x", &stored),
        Err(TreeError::TooLarge { .. })
    ));
    // A tree larger than what is stored: the reader says which index.
    match tree_hash(6, &stored) {
        Err(TreeError::Read(MissingHash { index, len })) => {
            assert_eq!(len, 8);
            assert!(index >= len);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        check_tree(&[], 5, &Hash::default(), 6, &Hash::default()),
        Err(ProofError::BadSizes { old: 6, new: 5 })
    );
    assert_eq!(
        check_tree(&[], 5, &Hash::default(), 0, &Hash::default()),
        Err(ProofError::BadSizes { old: 0, new: 5 })
    );
}

/// A store that answers with one hash too few: the library notices.
struct ShortReader(Vec<Hash>);

impl HashReader for ShortReader {
    type Error = MissingHash;
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MissingHash> {
        let mut out = self.0.read_hashes(indexes)?;
        out.pop();
        Ok(out)
    }
}

#[test]
fn a_lying_reader_is_caught() {
    let stored = build(&leaves(7));
    let short = ShortReader(stored.clone());
    assert!(matches!(
        tree_hash(7, &short),
        Err(TreeError::WrongCount { wanted: 3, got: 2 })
    ));
    assert!(matches!(
        prove_record(7, 2, &short),
        Err(TreeError::WrongCount { .. })
    ));
    assert!(matches!(
        stored_hashes(7, b"x", &short),
        Err(TreeError::WrongCount { .. })
    ));
    // A store that altered a hash yields proofs that do not verify.
    let mut altered = stored.clone();
    altered[stored_hash_index(0, 3) as usize] = record_hash(b"not leaf 3");
    let root = tree_hash(7, &stored).unwrap();
    let proof = prove_record(7, 2, &altered).unwrap();
    assert_eq!(
        check_record(&proof, 7, &root, 2, &record_hash(b"leaf 2")),
        Err(ProofError::RootMismatch)
    );
}

#[test]
fn hostile_numbers_never_panic() {
    let h = Hash::default();
    let hs = [h; 70];
    for size in [0, 1, 2, u64::MAX, u64::MAX - 1, 1 << 63, MAX_TREE_SIZE + 1] {
        for index in [0, 1, size.wrapping_sub(1), size, u64::MAX] {
            for len in [0, 1, 63, 64, 70] {
                let _ = check_record(&hs[..len], size, &h, index, &h);
                let _ = check_tree(&hs[..len], size, &h, index, &h);
            }
        }
    }
    for index in [u64::MAX, u64::MAX - 1, 1 << 63] {
        let _ = split_stored_hash_index(index);
    }
    for level in [63, 64, 200, u32::MAX] {
        let _ = stored_hash_index(level, u64::MAX);
    }
    let _ = stored_hash_count(u64::MAX);
}

#[test]
fn hash_text_form() {
    let h = record_hash(b"");
    let s = h.to_string();
    assert_eq!(s, "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=");
    assert_eq!(s.parse::<Hash>(), Ok(h));
    assert_eq!(format!("{h:?}"), format!("Hash({s})"));
    for bad in [
        "",
        "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0",
        "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB1=", // non-canonical
        "bjQLnP-zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=", // URL alphabet
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=\n",
    ] {
        assert_eq!(bad.parse::<Hash>(), Err(HashParseError), "{bad:?}");
    }
}
