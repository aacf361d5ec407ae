//! RFC 6962 Merkle trees (RFC 6962 §2.1, RFC 9162 §2.1): leaf and node
//! hashes, tree hashes, inclusion and consistency proofs, over hashes kept
//! in Go's stored-hash layout (`golang.org/x/mod/sumdb/tlog`, tlog.go).
//!
//! A log stores, for each record `n` it appends, the hashes
//! [`stored_hashes`] returns, at [`stored_hash_index`]`(0, n)` onwards:
//! the record's leaf hash and the hash of every complete subtree that
//! record closes (section 3.3 of Crosby and Wallach, "Efficient Data
//! Structures for Tamper-Evident Logging"). Every tree hash and proof is
//! then assembled from at most a few dozen stored hashes, read through the
//! caller's [`HashReader`] in one call. Proofs are checked with the
//! iterative algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2, which need no
//! store.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::digest;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// Bytes in a hash (SHA-256).
pub const HASH_SIZE: usize = 32;

/// The largest tree this module handles: 2^62 leaves keeps every stored
/// hash index below 2^64. Larger sizes are refused, never wrapped.
pub const MAX_TREE_SIZE: u64 = 1 << 62;

/// A SHA-256 hash of a leaf, a node or a tree. Displayed and parsed as
/// standard base64, as in checkpoints and Go's `tlog.Hash`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; HASH_SIZE]);

impl Hash {
    pub fn as_bytes(&self) -> &[u8; HASH_SIZE] {
        &self.0
    }
}

impl AsRef<[u8]> for Hash {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&STANDARD.encode(self.0))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({self})")
    }
}

/// A string that is not the canonical base64 of 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not the standard base64 of a 32-byte hash")]
pub struct HashParseError;

impl FromStr for Hash {
    type Err = HashParseError;

    fn from_str(s: &str) -> Result<Hash, HashParseError> {
        // 32 bytes are 44 characters; checking first bounds the decode.
        if s.len() != 44 {
            return Err(HashParseError);
        }
        let raw = STANDARD.decode(s).map_err(|_| HashParseError)?;
        raw.try_into().map(Hash).map_err(|_| HashParseError)
    }
}

fn sha256(parts: &[&[u8]]) -> Hash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; HASH_SIZE];
    out.copy_from_slice(ctx.finish().as_ref());
    Hash(out)
}

/// The leaf hash of a record: SHA-256(0x00 || data) (RFC 6962 §2.1).
pub fn record_hash(data: &[u8]) -> Hash {
    sha256(&[&[0x00], data])
}

/// The hash of an interior node: SHA-256(0x01 || left || right)
/// (RFC 6962 §2.1).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256(&[&[0x01], &left.0, &right.0])
}

/// The hash of the empty tree, SHA-256 of nothing (RFC 6962 §2.1,
/// MTH({})). Go's `tlog.TreeHash(0, …)` answers all zeros instead.
pub fn empty_tree_hash() -> Hash {
    sha256(&[])
}

/// Where the hash of the subtree at `level` (0 = leaves) and position `n`
/// within that level is stored (Go's `tlog.StoredHashIndex`). A subtree's
/// hash is written when its last leaf is appended, right after that leaf
/// and the smaller subtrees it completes, so storage only ever grows at
/// the end. Meaningful for `level < 63` and `n << level`
/// below [`MAX_TREE_SIZE`]; other inputs give a meaningless index, never a
/// panic.
pub fn stored_hash_index(level: u32, n: u64) -> u64 {
    // The level-0 record whose append completes this subtree.
    let last = n
        .wrapping_shl(level)
        .wrapping_add(1u64.wrapping_shl(level).wrapping_sub(1));
    // Level-0 record m is stored at m + m/2 + m/4 + ... (each record adds
    // its leaf and one hash per subtree it completes).
    let mut i = 0u64;
    let mut m = last;
    while m > 0 {
        i = i.wrapping_add(m);
        m >>= 1;
    }
    i.wrapping_add(u64::from(level))
}

/// The inverse of [`stored_hash_index`]: `(level, n)` of the hash stored
/// at `index` (Go's `tlog.SplitStoredHashIndex`).
pub fn split_stored_hash_index(index: u64) -> (u32, u64) {
    // stored_hash_index(0, n) <= 2n, so the record that wrote `index` is
    // in [index/2, index/2 + log2(index)].
    let mut n = index / 2;
    let mut index_n = stored_hash_index(0, n);
    // Bounded, so that indexes past the domain cannot loop forever.
    for _ in 0..=64 {
        // Record n+1 starts after record n's leaf and the trailing_ones(n)
        // subtree hashes record n completed.
        let next = index_n
            .saturating_add(1)
            .saturating_add(u64::from((n + 1).trailing_zeros()));
        if next > index {
            break;
        }
        n += 1;
        index_n = next;
    }
    // index_n <= index holds throughout; past MAX_TREE_SIZE's indexes the
    // answer is meaningless but never a panic.
    let level = (index - index_n) as u32;
    (level, n.checked_shr(level).unwrap_or(0))
}

/// How many hashes a tree of `n` records stores (Go's
/// `tlog.StoredHashCount`).
pub fn stored_hash_count(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    // Up to the last leaf, then the subtrees that leaf completes.
    stored_hash_index(0, n - 1)
        .wrapping_add(1)
        .wrapping_add(u64::from((n - 1).trailing_ones()))
}

/// Reads stored hashes by index (see [`stored_hash_index`]); the store's
/// side of the tree functions, as Go's `tlog.HashReader`. It must answer
/// one hash per index, in order, or an error.
pub trait HashReader {
    type Error: std::error::Error + 'static;

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, Self::Error>;
}

/// An index past the end of an in-memory hash list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stored hash index {index} is not below {len}")]
pub struct MissingHash {
    pub index: u64,
    pub len: u64,
}

/// All stored hashes in memory, in stored-hash order.
impl HashReader for [Hash] {
    type Error = MissingHash;

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MissingHash> {
        indexes
            .iter()
            .map(|&index| {
                usize::try_from(index)
                    .ok()
                    .and_then(|i| self.get(i))
                    .copied()
                    .ok_or(MissingHash {
                        index,
                        len: self.len() as u64,
                    })
            })
            .collect()
    }
}

impl HashReader for Vec<Hash> {
    type Error = MissingHash;

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MissingHash> {
        self.as_slice().read_hashes(indexes)
    }
}

/// Why a tree hash or proof could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TreeError<E: std::error::Error + 'static> {
    #[error("record {index} is not in a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("no consistency proof from size {old} to size {new} (needs 1 <= old <= new)")]
    BadSizes { old: u64, new: u64 },
    #[error("tree size {size} exceeds the limit of {}", MAX_TREE_SIZE)]
    TooLarge { size: u64 },
    #[error("reading stored hashes")]
    Read(#[source] E),
    #[error("the hash reader answered {got} hashes for {wanted} indexes")]
    WrongCount { wanted: usize, got: usize },
}

fn read<R: HashReader + ?Sized>(r: &R, indexes: &[u64]) -> Result<Vec<Hash>, TreeError<R::Error>> {
    if indexes.is_empty() {
        return Ok(Vec::new());
    }
    let hashes = r.read_hashes(indexes).map_err(TreeError::Read)?;
    if hashes.len() != indexes.len() {
        return Err(TreeError::WrongCount {
            wanted: indexes.len(),
            got: hashes.len(),
        });
    }
    Ok(hashes)
}

fn check_size<E: std::error::Error + 'static>(size: u64) -> Result<(), TreeError<E>> {
    if size > MAX_TREE_SIZE {
        return Err(TreeError::TooLarge { size });
    }
    Ok(())
}

/// The hashes to store when appending record `n` with `data`, to be
/// written from `stored_hash_index(0, n)` on (Go's `tlog.StoredHashes`).
/// Reads the roots of the complete subtrees record `n` closes.
pub fn stored_hashes<R: HashReader + ?Sized>(
    n: u64,
    data: &[u8],
    r: &R,
) -> Result<Vec<Hash>, TreeError<R::Error>> {
    stored_hashes_for_record_hash(n, record_hash(data), r)
}

/// [`stored_hashes`] for a leaf hash already computed.
pub fn stored_hashes_for_record_hash<R: HashReader + ?Sized>(
    n: u64,
    leaf: Hash,
    r: &R,
) -> Result<Vec<Hash>, TreeError<R::Error>> {
    check_size(n.saturating_add(1))?;
    // Each trailing one bit of n closes a subtree whose left sibling is
    // already stored; read those siblings, lowest index first.
    let closed = (n + 1).trailing_zeros();
    let indexes: Vec<u64> = (0..closed)
        .rev()
        .map(|level| stored_hash_index(level, (n >> level) - 1))
        .collect();
    let siblings = read(r, &indexes)?;
    let mut out = Vec::with_capacity(1 + siblings.len());
    let mut h = leaf;
    out.push(h);
    for sibling in siblings.iter().rev() {
        h = node_hash(sibling, &h);
        out.push(h);
    }
    Ok(out)
}

/// The largest power of two strictly below `n` (n >= 2): RFC 6962 §2.1's
/// split point k.
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// The leaves [lo, hi) cut, left to right, into complete subtrees of
/// decreasing size: each stored as one hash.
fn complete_subtrees(mut lo: u64, hi: u64) -> impl Iterator<Item = (u32, u64)> {
    std::iter::from_fn(move || {
        if lo >= hi {
            return None;
        }
        // The largest power of two not above hi - lo; `lo` is a multiple of
        // it because earlier pieces were larger powers of two.
        let level = 63 - (hi - lo).leading_zeros();
        let piece = (level, lo >> level);
        lo += 1 << level;
        Some(piece)
    })
}

/// The hashes of the subtrees [lo, hi) in `ranges`, read in one call.
fn range_hashes<R: HashReader + ?Sized>(
    ranges: &[(u64, u64)],
    r: &R,
) -> Result<Vec<Hash>, TreeError<R::Error>> {
    let mut indexes = Vec::new();
    let mut counts = Vec::with_capacity(ranges.len());
    for &(lo, hi) in ranges {
        let before = indexes.len();
        indexes.extend(complete_subtrees(lo, hi).map(|(l, n)| stored_hash_index(l, n)));
        counts.push(indexes.len() - before);
    }
    let hashes = read(r, &indexes)?;
    let mut out = Vec::with_capacity(ranges.len());
    let mut rest = &hashes[..];
    for count in counts {
        let (mine, tail) = rest.split_at(count);
        rest = tail;
        // MTH folds from the right: the last (smallest) subtree is the
        // deepest right child.
        let mut h = mine[count - 1];
        for left in mine[..count - 1].iter().rev() {
            h = node_hash(left, &h);
        }
        out.push(h);
    }
    Ok(out)
}

/// The root hash of the tree of the first `size` records (RFC 6962 §2.1
/// MTH); [`empty_tree_hash`] for size 0.
pub fn tree_hash<R: HashReader + ?Sized>(size: u64, r: &R) -> Result<Hash, TreeError<R::Error>> {
    check_size(size)?;
    if size == 0 {
        return Ok(empty_tree_hash());
    }
    Ok(range_hashes(&[(0, size)], r)?[0])
}

/// The subtrees whose hashes make the inclusion proof of leaf `index` in
/// a tree of `size` leaves, leaf level first (RFC 6962 §2.1.1 PATH).
fn inclusion_ranges(index: u64, size: u64) -> Vec<(u64, u64)> {
    let (mut lo, mut hi) = (0, size);
    let mut ranges = Vec::new();
    while hi - lo > 1 {
        let k = split(hi - lo);
        if index < lo + k {
            ranges.push((lo + k, hi));
            hi = lo + k;
        } else {
            ranges.push((lo, lo + k));
            lo += k;
        }
    }
    ranges.reverse();
    ranges
}

/// The subtrees whose hashes make the consistency proof from `old` to
/// `new` leaves, bottom first (RFC 6962 §2.1.2 SUBPROOF; `lo == 0` plays
/// the flag b: the old tree itself is never sent).
fn consistency_ranges(old: u64, new: u64) -> Vec<(u64, u64)> {
    let (mut lo, mut hi) = (0, new);
    let mut ranges = Vec::new();
    while old != hi {
        let k = split(hi - lo);
        if old <= lo + k {
            ranges.push((lo + k, hi));
            hi = lo + k;
        } else {
            ranges.push((lo, lo + k));
            lo += k;
        }
    }
    if lo != 0 {
        ranges.push((lo, hi));
    }
    ranges.reverse();
    ranges
}

/// The inclusion proof of record `index` in the tree of `size` records
/// (RFC 6962 §2.1.1; Go's `tlog.ProveRecord`).
pub fn prove_record<R: HashReader + ?Sized>(
    size: u64,
    index: u64,
    r: &R,
) -> Result<Vec<Hash>, TreeError<R::Error>> {
    check_size(size)?;
    if index >= size {
        return Err(TreeError::IndexOutOfRange { index, size });
    }
    range_hashes(&inclusion_ranges(index, size), r)
}

/// The consistency proof that the tree of `new` records extends the tree
/// of `old` records, 1 <= old <= new (RFC 6962 §2.1.2; Go's
/// `tlog.ProveTree`). Equal sizes have the empty proof.
pub fn prove_tree<R: HashReader + ?Sized>(
    new: u64,
    old: u64,
    r: &R,
) -> Result<Vec<Hash>, TreeError<R::Error>> {
    check_size(new)?;
    if old == 0 || old > new {
        return Err(TreeError::BadSizes { old, new });
    }
    range_hashes(&consistency_ranges(old, new), r)
}

/// Why a proof was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("record {index} is not in a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("no consistency proof from size {old} to size {new} (needs 1 <= old <= new)")]
    BadSizes { old: u64, new: u64 },
    #[error("the proof has the wrong number of hashes")]
    WrongLength,
    #[error("the proof does not lead to the given root hash")]
    RootMismatch,
    #[error("the proof does not lead to the given old root hash")]
    OldRootMismatch,
}

/// Checks that `proof` shows the record with leaf hash `leaf` at `index`
/// in the tree of `size` records whose root is `root` (RFC 9162
/// §2.1.3.2; Go's `tlog.CheckRecord` has the same arguments).
pub fn check_record(
    proof: &[Hash],
    size: u64,
    root: &Hash,
    index: u64,
    leaf: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return Err(ProofError::WrongLength);
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(ProofError::WrongLength);
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Checks that `proof` shows the tree of `new` records with root
/// `new_root` extends the tree of `old` records with root `old_root`,
/// 1 <= old <= new (RFC 9162 §2.1.4.2; Go's `tlog.CheckTree` has the same
/// arguments). Equal sizes need the empty proof and equal roots.
pub fn check_tree(
    proof: &[Hash],
    new: u64,
    new_root: &Hash,
    old: u64,
    old_root: &Hash,
) -> Result<(), ProofError> {
    if old == 0 || old > new {
        return Err(ProofError::BadSizes { old, new });
    }
    if old == new {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        if old_root != new_root {
            return Err(ProofError::RootMismatch);
        }
        return Ok(());
    }
    let Some((&first, rest)) = proof.split_first() else {
        return Err(ProofError::WrongLength);
    };
    // An old tree that is a complete subtree is not sent: it starts the
    // path (step 2).
    let (seed, path) = if old.is_power_of_two() {
        (*old_root, proof)
    } else {
        (first, rest)
    };
    let (mut f_n, mut s_n) = (old - 1, new - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let (mut fr, mut sr) = (seed, seed);
    for c in path {
        if s_n == 0 {
            return Err(ProofError::WrongLength);
        }
        if f_n & 1 == 1 || f_n == s_n {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(ProofError::WrongLength);
    }
    if fr != *old_root {
        return Err(ProofError::OldRootMismatch);
    }
    if sr != *new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}
