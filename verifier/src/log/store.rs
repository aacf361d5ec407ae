//! Where the log is kept: leaves, the Go stored hashes of the tree
//! (`sumdb/tlog`'s layout, see [`hermetic_tlog::merkle::stored_hash_index`])
//! and the latest signed checkpoint, behind [`LogStore`].
//!
//! The file backend keeps, in the data directory:
//! - `audit.jsonl`: one leaf per line, the record JSON exactly as hashed;
//! - `audit.hashes`: every stored hash, 32 bytes each, in stored-hash order;
//! - `audit.checkpoint`: the latest signed checkpoint note.
//!
//! Crash safety: appends write leaves and hashes, then [`LogStore::sync`]
//! makes the leaves durable (the hashes are recomputed from them on open); a checkpoint is signed and stored only after that, so
//! no checkpoint ever names a leaf that is not durable (the checkpoint file
//! itself may lag after a crash; the log re-signs on open). Opening cuts a torn
//! last line (a crash mid-append, never acknowledged) and rebuilds the
//! hashes file from the leaves when its length does not match them.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use hermetic_tlog::merkle::{
    stored_hash_count, stored_hashes, Hash, HashReader, TreeError, HASH_SIZE,
};

use super::{io, LogError};

/// File name of the leaves inside the data directory.
pub const LOG_FILE: &str = "audit.jsonl";
/// File name of the stored hashes inside the data directory.
pub const HASHES_FILE: &str = "audit.hashes";
/// File name of the latest signed checkpoint inside the data directory.
pub const CHECKPOINT_FILE: &str = "audit.checkpoint";

/// The storage a log needs. Appends come from one writer at a time (the
/// caller serializes them); reads may run concurrently with an append and
/// see only what was appended before they started. A backend that commits
/// domain changes (issue 13's PostgreSQL) can commit a leaf in the same
/// transaction as the change it records.
pub trait LogStore: Send + Sync + std::fmt::Debug {
    /// Leaves appended so far (durable or not).
    fn size(&self) -> u64;
    /// Appends one leaf and the stored hashes it adds (from
    /// `stored_hash_index(0, size)` on). Not durable until [`LogStore::sync`].
    /// On error nothing of it remains.
    fn append(&self, leaf: &[u8], hashes: &[Hash]) -> Result<(), LogError>;
    /// Makes every appended leaf and hash durable.
    fn sync(&self) -> Result<(), LogError>;
    /// Leaves `start..end`.
    fn read_leaves(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, LogError>;
    /// Stored hashes by index.
    fn read_stored_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, LogError>;
    /// The latest stored signed checkpoint note.
    fn checkpoint(&self) -> Result<Option<String>, LogError>;
    /// Replaces the stored checkpoint (after the leaves it covers are
    /// durable; it need not be durable itself: see `SharedLog::new`).
    fn store_checkpoint(&self, note: &str) -> Result<(), LogError>;
}

/// A [`LogStore`] as a [`HashReader`] for the tree functions.
pub struct Hashes<'a>(pub &'a dyn LogStore);

impl std::fmt::Debug for Hashes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hashes")
    }
}

impl HashReader for Hashes<'_> {
    type Error = LogError;

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, LogError> {
        self.0.read_stored_hashes(indexes)
    }
}

/// A tree function's error as a log error.
pub fn tree_error(e: TreeError<LogError>) -> LogError {
    match e {
        TreeError::Read(e) => e,
        other => LogError::Corrupt(other.to_string()),
    }
}

/// The file backend (see the module documentation).
#[derive(Debug)]
pub struct FileLogStore {
    dir: PathBuf,
    leaves_path: PathBuf,
    hashes_path: PathBuf,
    leaves: File,
    hashes: File,
    /// Byte offset of each leaf's line, and the end of the last one.
    offsets: RwLock<Vec<u64>>,
    /// Stored hashes written.
    hash_count: RwLock<u64>,
    /// Serializes appends (the caller should already).
    append_lock: Mutex<()>,
}

impl FileLogStore {
    /// Opens (creating) the log files in `dir`, cutting a torn tail and
    /// rewriting the hashes file where it does not match the leaves.
    pub fn open(dir: &Path) -> Result<FileLogStore, LogError> {
        FileLogStore::open_with(dir, true)
    }

    /// Opens existing log files for reading only (a served log may be
    /// growing meanwhile): complete lines only, nothing repaired.
    pub fn open_read_only(dir: &Path) -> Result<FileLogStore, LogError> {
        FileLogStore::open_with(dir, false)
    }

    fn open_with(dir: &Path, writable: bool) -> Result<FileLogStore, LogError> {
        let leaves_path = dir.join(LOG_FILE);
        let hashes_path = dir.join(HASHES_FILE);
        let leaves = OpenOptions::new()
            .create(writable)
            .read(true)
            .append(writable)
            .open(&leaves_path)
            .map_err(io(&leaves_path))?;
        let hashes = OpenOptions::new()
            .create(writable)
            .read(true)
            .write(writable)
            .truncate(false)
            .open(&hashes_path)
            .map_err(io(&hashes_path))?;
        let mut offsets = vec![0u64];
        let mut leaf_hashes = Vec::new();
        {
            let mut reader = BufReader::new(&leaves);
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = reader
                    .read_until(b'\n', &mut line)
                    .map_err(io(&leaves_path))?;
                if n == 0 || line.last() != Some(&b'\n') {
                    break; // the end, or a torn tail
                }
                leaf_hashes.push(hermetic_tlog::merkle::record_hash(&line[..n - 1]));
                let end = offsets.last().copied().unwrap_or(0) + n as u64;
                offsets.push(end);
            }
        }
        let size = leaf_hashes.len() as u64;
        let want = stored_hash_count(size);
        if !writable {
            let have = hashes.metadata().map_err(io(&hashes_path))?.len() / HASH_SIZE as u64;
            return Ok(FileLogStore {
                dir: dir.to_owned(),
                leaves_path,
                hashes_path,
                leaves,
                hashes,
                offsets: RwLock::new(offsets),
                hash_count: RwLock::new(have.min(want)),
                append_lock: Mutex::new(()),
            });
        }
        let good_len = offsets.last().copied().unwrap_or(0);
        if leaves.metadata().map_err(io(&leaves_path))?.len() != good_len {
            leaves.set_len(good_len).map_err(io(&leaves_path))?;
            leaves.sync_all().map_err(io(&leaves_path))?;
        }
        // The hashes are derived data, never synced on the append path: on
        // open they are recomputed from the leaves (two SHA-256 per leaf)
        // and the file rewritten where it differs, so a crash that left it
        // short, long or holding stale blocks costs nothing but this pass.
        let mut all: Vec<Hash> = Vec::with_capacity(want as usize);
        for (n, leaf) in leaf_hashes.iter().enumerate() {
            let new = hermetic_tlog::merkle::stored_hashes_for_record_hash(n as u64, *leaf, &all)
                .map_err(|e| LogError::Corrupt(e.to_string()))?;
            all.extend(new);
        }
        let bytes: Vec<u8> = all.iter().flat_map(|h| h.0).collect();
        let mut on_disk = Vec::new();
        (&hashes)
            .read_to_end(&mut on_disk)
            .map_err(io(&hashes_path))?;
        if on_disk != bytes {
            hashes.set_len(0).map_err(io(&hashes_path))?;
            hashes.write_all_at(&bytes, 0).map_err(io(&hashes_path))?;
            hashes.sync_all().map_err(io(&hashes_path))?;
        }
        Ok(FileLogStore {
            dir: dir.to_owned(),
            leaves_path,
            hashes_path,
            leaves,
            hashes,
            offsets: RwLock::new(offsets),
            hash_count: RwLock::new(want),
            append_lock: Mutex::new(()),
        })
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

impl LogStore for FileLogStore {
    fn size(&self) -> u64 {
        read(&self.offsets).len() as u64 - 1
    }

    fn append(&self, leaf: &[u8], new_hashes: &[Hash]) -> Result<(), LogError> {
        let _one = self.append_lock.lock().unwrap_or_else(|p| p.into_inner());
        if leaf.contains(&b'\n') {
            return Err(LogError::Corrupt("a leaf holds a newline".into()));
        }
        let len = *read(&self.offsets).last().unwrap_or(&0);
        let count = *read(&self.hash_count);
        let mut line = Vec::with_capacity(leaf.len() + 1);
        line.extend_from_slice(leaf);
        line.push(b'\n');
        let bytes: Vec<u8> = new_hashes.iter().flat_map(|h| h.0).collect();
        // Hashes first: readers look leaves up by the offsets, published last.
        if let Err(e) = self.hashes.write_all_at(&bytes, count * HASH_SIZE as u64) {
            let _ = self.hashes.set_len(count * HASH_SIZE as u64);
            return Err(io(&self.hashes_path)(e));
        }
        if let Err(e) = (&self.leaves).write_all(&line) {
            let _ = self.leaves.set_len(len);
            let _ = self.hashes.set_len(count * HASH_SIZE as u64);
            return Err(io(&self.leaves_path)(e));
        }
        *write(&self.hash_count) = count + new_hashes.len() as u64;
        write(&self.offsets).push(len + line.len() as u64);
        Ok(())
    }

    /// One `fdatasync`, of the leaves: the hashes are recomputed from them
    /// on open (see [`FileLogStore::open`]).
    fn sync(&self) -> Result<(), LogError> {
        self.leaves.sync_data().map_err(io(&self.leaves_path))
    }

    fn read_leaves(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, LogError> {
        let spans: Vec<(u64, u64)> = {
            let offsets = read(&self.offsets);
            let size = offsets.len() as u64 - 1;
            if start > end || end > size {
                return Err(LogError::Corrupt(format!(
                    "leaves {start}..{end} are not in a log of {size}"
                )));
            }
            (start..end)
                .map(|i| (offsets[i as usize], offsets[i as usize + 1]))
                .collect()
        };
        let Some((first, _)) = spans.first().copied() else {
            return Ok(Vec::new());
        };
        let last = spans.last().map(|s| s.1).unwrap_or(first);
        let mut buf = vec![0u8; (last - first) as usize];
        self.leaves
            .read_exact_at(&mut buf, first)
            .map_err(io(&self.leaves_path))?;
        Ok(spans
            .iter()
            .map(|(a, b)| buf[(a - first) as usize..(b - first - 1) as usize].to_vec())
            .collect())
    }

    fn read_stored_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, LogError> {
        let count = *read(&self.hash_count);
        let mut out = Vec::with_capacity(indexes.len());
        for &i in indexes {
            if i >= count {
                return Err(LogError::Corrupt(format!(
                    "stored hash {i} is not below {count}"
                )));
            }
            let mut h = [0u8; HASH_SIZE];
            self.hashes
                .read_exact_at(&mut h, i * HASH_SIZE as u64)
                .map_err(io(&self.hashes_path))?;
            out.push(Hash(h));
        }
        Ok(out)
    }

    fn checkpoint(&self) -> Result<Option<String>, LogError> {
        let path = self.dir.join(CHECKPOINT_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    fn store_checkpoint(&self, note: &str) -> Result<(), LogError> {
        let path = self.dir.join(CHECKPOINT_FILE);
        let tmp = self.dir.join(format!("{CHECKPOINT_FILE}.tmp"));
        // Not synced: the leaves it covers are already durable, and a crash
        // that loses it (or, on some filesystems, leaves it empty) only
        // leaves an older checkpoint behind, which the log re-signs on
        // open. Keeps the group commit at one sync per batch.
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(note.as_bytes()).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))
    }
}

/// The stored hashes record `n` with `leaf` adds, read from `store`.
pub fn hashes_for(store: &dyn LogStore, n: u64, leaf: &[u8]) -> Result<Vec<Hash>, LogError> {
    stored_hashes(n, leaf, &Hashes(store)).map_err(tree_error)
}
