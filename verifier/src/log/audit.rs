//! The offline check of a whole log (`hermetic-verifier log verify`):
//! recompute the Merkle tree from the leaves, check the latest checkpoint's
//! signature by the pinned log key (and witness cosignatures), check that
//! the leaves hash to its root, and prove consistency with checkpoints an
//! auditor kept (`--since`). Pure over [`LogData`]: reading a data
//! directory ([`read_dir`]) or a served log ([`super::http`]) is apart.

use std::path::Path;

use hermetic_tlog::checkpoint::{self, Checkpoint};
use hermetic_tlog::cosignature::{self, CosignerKey};
use hermetic_tlog::merkle::{
    record_hash, stored_hash_index, stored_hashes_for_record_hash, tree_hash, Hash,
};
use hermetic_tlog::note::VerifierKey;

use super::store::{CHECKPOINT_FILE, HASHES_FILE, LOG_FILE};
use super::{aws_root_hex, io, LogError, Record, ACTION_START};

/// A log as read from somewhere: its latest signed checkpoint and leaves.
#[derive(Debug, Clone, Default)]
pub struct LogData {
    pub checkpoint: Option<String>,
    pub leaves: Vec<Vec<u8>>,
    /// The stored level-0 hashes, when the source has them (a data
    /// directory): they name the first edited record when the later records
    /// were left alone.
    pub stored_leaf_hashes: Option<Vec<Hash>>,
}

/// Who to trust and what the auditor already saw.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub log_key: VerifierKey,
    pub witnesses: Vec<CosignerKey>,
    pub witness_threshold: usize,
    /// Checkpoint notes the auditor kept from earlier.
    pub since: Vec<String>,
}

impl VerifyOptions {
    pub fn new(log_key: VerifierKey) -> Self {
        VerifyOptions {
            log_key,
            witnesses: Vec::new(),
            witness_threshold: 0,
            since: Vec::new(),
        }
    }
}

/// Where the log first breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Break {
    /// No signed checkpoint (deleted, or never served).
    NoCheckpoint,
    /// The checkpoint is not signed by the pinned key or is malformed.
    BadSignature { what: String },
    /// Fewer valid witness cosignatures than required.
    TooFewCosignatures { have: usize, need: usize },
    /// A leaf is not a record.
    Unreadable { seq: u64, what: String },
    /// The leaf at `position` says it is record `found`; `later`: record
    /// `position` comes further on (reordered) rather than not at all.
    Misplaced {
        position: u64,
        found: u64,
        later: bool,
    },
    /// Record `seq` does not hash to the stored tree.
    Edited { seq: u64 },
    /// The leaves do not hash to the signed root.
    RootMismatch { size: u64 },
    /// Fewer leaves than the checkpoint covers.
    Truncated { records: u64, size: u64 },
    /// An auditor's checkpoint is larger than the log's.
    RolledBack { since: u64, size: u64 },
    /// An auditor's checkpoint is not a prefix of this log.
    Forked { since: u64, size: u64 },
    /// An auditor's checkpoint is not the log's.
    BadSince { what: String },
}

impl Break {
    /// The stable machine-readable kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Break::NoCheckpoint => "no_checkpoint",
            Break::BadSignature { .. } => "bad_signature",
            Break::TooFewCosignatures { .. } => "too_few_cosignatures",
            Break::Unreadable { .. } => "unreadable",
            Break::Misplaced { later: false, .. } => "deleted",
            Break::Misplaced { .. } => "reordered",
            Break::Edited { .. } | Break::RootMismatch { .. } => "edited",
            Break::Truncated { .. } => "truncated",
            Break::RolledBack { .. } => "rolled_back",
            Break::Forked { .. } => "forked",
            Break::BadSince { .. } => "bad_since_checkpoint",
        }
    }

    /// The record at fault, if one is known.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Break::Unreadable { seq, .. } | Break::Edited { seq } => Some(*seq),
            Break::Misplaced { position, .. } => Some(*position),
            Break::Truncated { records, .. } => Some(*records),
            _ => None,
        }
    }
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Break::NoCheckpoint => write!(f, "no signed checkpoint ({CHECKPOINT_FILE} or /checkpoint is missing: the log was emptied or replaced)"),
            Break::BadSignature { what } => write!(f, "the checkpoint does not verify with the log key: {what}"),
            Break::TooFewCosignatures { have, need } => write!(f, "the checkpoint has {have} valid witness cosignature(s), {need} required"),
            Break::Unreadable { seq, what } => write!(f, "record {seq}: not a log record ({what})"),
            Break::Misplaced { position, found, later: false } => write!(f, "record {position} is missing: position {position} holds record {found} (records were deleted)"),
            Break::Misplaced { position, found, later: true } => write!(f, "position {position} holds record {found}, record {position} comes later (records were reordered)"),
            Break::Edited { seq } => write!(f, "record {seq} was edited (its hash is not the stored tree's)"),
            Break::RootMismatch { size } => write!(f, "the first {size} records do not hash to the signed checkpoint's root (a record was edited, inserted or removed)"),
            Break::Truncated { records, size } => write!(f, "the log ends early: {records} records, the signed checkpoint covers {size} (truncated)"),
            Break::RolledBack { since, size } => write!(f, "rolled back: an auditor saw {since} records, the log now has {size}"),
            Break::Forked { since, size } => write!(f, "forked: the auditor's checkpoint of {since} records is not a prefix of the log's {size} (two different histories were signed)"),
            Break::BadSince { what } => write!(f, "the --since checkpoint is not this log's: {what}"),
        }
    }
}

/// An intact log, and what in it deserves an auditor's attention. These
/// flags are warnings: the log itself is intact.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Intact {
    pub records: u64,
    /// The size the latest signed checkpoint covers.
    pub checkpoint_size: u64,
    /// Its root hash (base64, as in the checkpoint).
    pub root: String,
    /// Valid witness cosignatures on it.
    pub cosignatures: usize,
    /// `--since` checkpoints proven to be prefixes.
    pub consistent_with: Vec<u64>,
    /// Sequence numbers of `start` records that trusted a root other than
    /// the pinned AWS Nitro root.
    pub non_aws_root_starts: Vec<u64>,
    /// Sequence numbers of granted releases whose chain ended in a root
    /// other than the pinned AWS Nitro root.
    pub non_aws_root_releases: Vec<u64>,
    /// Sequence numbers of granted releases that name no root (written by
    /// a version that did not record it): not provably under the AWS root.
    pub unknown_root_releases: Vec<u64>,
}

impl Intact {
    /// Whether every start trusted only, and every release ended in, the
    /// pinned AWS root.
    pub fn aws_root_only(&self) -> bool {
        self.non_aws_root_starts.is_empty()
            && self.non_aws_root_releases.is_empty()
            && self.unknown_root_releases.is_empty()
    }

    /// Notes what `record` says about roots.
    fn note(&mut self, record: &Record) {
        let aws = aws_root_hex();
        let entry = &record.entry;
        if entry.action == ACTION_START {
            // The fingerprints decide, not only the record's own flag.
            let non_aws = entry.start.as_ref().is_none_or(|s| {
                s.non_aws_root
                    || s.trusted_roots.is_empty()
                    || s.trusted_roots.iter().any(|r| *r != aws)
            });
            if non_aws {
                self.non_aws_root_starts.push(record.seq);
            }
        }
        if entry.action == "release" && entry.verdict == "granted" {
            match &entry.who.root_sha256 {
                Some(root) if *root == aws => {}
                Some(_) => self.non_aws_root_releases.push(record.seq),
                None => self.unknown_root_releases.push(record.seq),
            }
        }
    }
}

/// Reads the log in a data directory.
pub fn read_dir(data_dir: &Path) -> Result<LogData, LogError> {
    // The checkpoint first: a running service makes leaves durable before
    // it stores the checkpoint over them, so the leaves read after it are
    // all there.
    let cp_path = data_dir.join(CHECKPOINT_FILE);
    let checkpoint = match std::fs::read_to_string(&cp_path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(&cp_path)(e)),
    };
    let path = data_dir.join(LOG_FILE);
    let text = std::fs::read(&path).map_err(io(&path))?;
    let mut leaves: Vec<Vec<u8>> = text.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    // The piece after the last newline: empty, or a torn tail (a crash
    // mid-append, never acknowledged nor signed).
    leaves.pop();
    let hashes_path = data_dir.join(HASHES_FILE);
    let stored_leaf_hashes = match std::fs::read(&hashes_path) {
        Ok(bytes) => {
            let all: Vec<Hash> = bytes
                .chunks_exact(32)
                .map(|c| Hash(c.try_into().unwrap_or([0; 32])))
                .collect();
            Some(
                (0..leaves.len() as u64)
                    .map_while(|i| all.get(stored_hash_index(0, i) as usize).copied())
                    .collect(),
            )
        }
        Err(_) => None,
    };
    Ok(LogData {
        checkpoint,
        leaves,
        stored_leaf_hashes,
    })
}

/// Checks the log in `data_dir`: `Ok` when intact, the first break otherwise.
pub fn verify(data_dir: &Path, opts: &VerifyOptions) -> Result<Result<Intact, Break>, LogError> {
    Ok(verify_data(&read_dir(data_dir)?, opts))
}

/// Checks `data` (see the module documentation).
pub fn verify_data(data: &LogData, opts: &VerifyOptions) -> Result<Intact, Break> {
    let origin = opts.log_key.name();
    let note = data.checkpoint.as_deref().ok_or(Break::NoCheckpoint)?;
    let cp = checkpoint::open(note.as_bytes(), origin, &opts.log_key).map_err(|e| {
        Break::BadSignature {
            what: e.to_string(),
        }
    })?;
    let mut intact = Intact {
        checkpoint_size: cp.size,
        root: cp.root_hash.to_string(),
        ..Intact::default()
    };
    if !opts.witnesses.is_empty() || opts.witness_threshold > 0 {
        let cosigned = cosignature::verify(note.as_bytes(), &opts.witnesses).map_err(|e| {
            Break::BadSignature {
                what: e.to_string(),
            }
        })?;
        if cosigned.len() < opts.witness_threshold {
            return Err(Break::TooFewCosignatures {
                have: cosigned.len(),
                need: opts.witness_threshold,
            });
        }
        intact.cosignatures = cosigned.len();
    }
    // Recompute the tree (Go's stored hashes, in memory).
    let mut hashes: Vec<Hash> = Vec::new();
    for (i, leaf) in data.leaves.iter().enumerate() {
        let seq = i as u64;
        let record: Record = serde_json::from_slice(leaf).map_err(|e| Break::Unreadable {
            seq,
            what: e.to_string(),
        })?;
        if record.seq != seq {
            let later = data.leaves[i + 1..]
                .iter()
                .any(|l| serde_json::from_slice::<Record>(l).is_ok_and(|r| r.seq == seq));
            return Err(Break::Misplaced {
                position: seq,
                found: record.seq,
                later,
            });
        }
        let leaf_hash = record_hash(leaf);
        if let Some(stored) = data.stored_leaf_hashes.as_ref().and_then(|h| h.get(i)) {
            if *stored != leaf_hash && seq < cp.size {
                return Err(Break::Edited { seq });
            }
        }
        let new = stored_hashes_for_record_hash(seq, leaf_hash, &hashes).map_err(|e| {
            Break::Unreadable {
                seq,
                what: e.to_string(),
            }
        })?;
        hashes.extend(new);
        intact.note(&record);
    }
    let records = data.leaves.len() as u64;
    intact.records = records;
    if records < cp.size {
        return Err(Break::Truncated {
            records,
            size: cp.size,
        });
    }
    let root_at = |size: u64| tree_hash(size, &hashes).ok();
    if root_at(cp.size) != Some(cp.root_hash) {
        return Err(Break::RootMismatch { size: cp.size });
    }
    for since in &opts.since {
        let old = checkpoint::open(since.as_bytes(), origin, &opts.log_key).map_err(|e| {
            Break::BadSince {
                what: e.to_string(),
            }
        })?;
        check_since(&old, &cp, root_at)?;
        intact.consistent_with.push(old.size);
    }
    Ok(intact)
}

/// Whether `old` (an auditor's) is a prefix of the log whose latest is
/// `now`, given the log's root at any size up to `now.size`. With every
/// leaf at hand the root at `old.size` is recomputed, which proves what an
/// RFC 6962 consistency proof would.
fn check_since(
    old: &Checkpoint,
    now: &Checkpoint,
    root_at: impl Fn(u64) -> Option<Hash>,
) -> Result<(), Break> {
    if old.size > now.size {
        return Err(Break::RolledBack {
            since: old.size,
            size: now.size,
        });
    }
    if root_at(old.size) != Some(old.root_hash) {
        return Err(Break::Forked {
            since: old.size,
            size: now.size,
        });
    }
    Ok(())
}
