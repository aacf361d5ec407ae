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

/// The records of one batch as leaves: called by the store with the index
/// its first leaf gets (chosen by the store, under its write lock), it
/// returns the leaves in order.
pub type BuildLeaves<'a> = dyn FnMut(u64) -> Result<Vec<Vec<u8>>, LogError> + Send + 'a;

/// The storage a log needs. Reads may run concurrently with an append and
/// see only what was committed before they started.
///
/// The store is the log's sequencer: [`LogStore::append_batch`] picks the
/// batch's first index itself, so a store shared by several writers
/// (PostgreSQL, issue 13) keeps one total order across them.
pub trait LogStore: Send + Sync + std::fmt::Debug {
    /// Leaves committed so far.
    fn size(&self) -> Result<u64, LogError>;
    /// Appends one batch durably: takes the store's write lock, reads its
    /// size `n`, calls `build(n)` for the leaves, writes them and the stored
    /// hashes they add, makes them durable, and returns the new size
    /// (`n + leaves`). On error the caller must treat every leaf of the
    /// batch as not logged (some may be, never acknowledged).
    fn append_batch(&self, build: &mut BuildLeaves<'_>) -> Result<u64, LogError>;
    /// Leaves `start..end`.
    fn read_leaves(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, LogError>;
    /// Stored hashes by index.
    fn read_stored_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, LogError>;
    /// The latest stored signed checkpoint note.
    fn checkpoint(&self) -> Result<Option<String>, LogError>;
    /// Stores `note`, the checkpoint of `size` leaves (already durable),
    /// unless a checkpoint of more leaves is stored already (a store shared
    /// by several writers never goes back); it need not be durable itself:
    /// see `SharedLog::new`. Returns whether it was stored.
    fn store_checkpoint(&self, size: u64, note: &str) -> Result<bool, LogError>;
    /// Whether other processes append to this store too: then the log's
    /// size and checkpoint are read from the store, never assumed, and a
    /// failed append does not poison the log (nothing of a failed
    /// transaction remains).
    fn shared(&self) -> bool {
        false
    }
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
    /// Serializes batches (a batch's first index is the size it read).
    batch_lock: Mutex<()>,
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
                batch_lock: Mutex::new(()),
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
            batch_lock: Mutex::new(()),
        })
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

impl FileLogStore {
    /// Leaves appended so far (durable or not).
    pub fn len(&self) -> u64 {
        read(&self.offsets).len() as u64 - 1
    }

    /// Whether no leaf was appended yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends one leaf and the stored hashes it adds (from
    /// `stored_hash_index(0, size)` on). Not durable until
    /// [`FileLogStore::sync`]. On error nothing of it remains.
    pub fn append(&self, leaf: &[u8], new_hashes: &[Hash]) -> Result<(), LogError> {
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
    pub fn sync(&self) -> Result<(), LogError> {
        self.leaves.sync_data().map_err(io(&self.leaves_path))
    }
}

impl LogStore for FileLogStore {
    fn size(&self) -> Result<u64, LogError> {
        Ok(self.len())
    }

    /// Under `append_lock`: each leaf appended with its hashes, then one
    /// sync. A failed write leaves the earlier leaves of the batch appended
    /// (they are in the log, never acknowledged).
    fn append_batch(&self, build: &mut BuildLeaves<'_>) -> Result<u64, LogError> {
        let _one = self.batch_lock.lock().unwrap_or_else(|p| p.into_inner());
        let start = self.len();
        let leaves = build(start)?;
        for (i, leaf) in leaves.iter().enumerate() {
            let hashes = hashes_for(self, start + i as u64, leaf)?;
            self.append(leaf, &hashes)?;
        }
        self.sync()?;
        Ok(start + leaves.len() as u64)
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

    /// One writer only: the caller never stores an older checkpoint over a
    /// newer one (it stores under its own lock), so this just replaces it.
    fn store_checkpoint(&self, _size: u64, note: &str) -> Result<bool, LogError> {
        let path = self.dir.join(CHECKPOINT_FILE);
        let tmp = self.dir.join(format!("{CHECKPOINT_FILE}.tmp"));
        // Not synced: the leaves it covers are already durable, and a crash
        // that loses it (or, on some filesystems, leaves it empty) only
        // leaves an older checkpoint behind, which the log re-signs on
        // open. Keeps the group commit at one sync per batch.
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(note.as_bytes()).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        Ok(true)
    }
}

/// The stored hashes record `n` with `leaf` adds, read from `store`.
pub fn hashes_for(store: &dyn LogStore, n: u64, leaf: &[u8]) -> Result<Vec<Hash>, LogError> {
    stored_hashes(n, leaf, &Hashes(store)).map_err(tree_error)
}
