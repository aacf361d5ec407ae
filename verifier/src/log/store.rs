//! Where the log is kept: leaves, the Go stored hashes of the tree
//! (`sumdb/tlog`'s layout, see [`hermetic_tlog::merkle::stored_hash_index`])
//! and the latest signed checkpoint, behind [`LogStore`].
//!
//! The file backend keeps, in the data directory:
//! - `audit.jsonl`: one leaf per line, the record JSON exactly as hashed;
//! - `audit.hashes`: every stored hash, 32 bytes each, in stored-hash order;
//! - `audit.checkpoint`: the latest signed checkpoint note.
//!
//! Crash safety: appends write leaves and hashes, then [`FileLogStore::sync`]
//! makes the leaves durable (the hashes are recomputed from them on open); a checkpoint is signed and stored only after that, so
//! no checkpoint ever names a leaf that is not durable (the checkpoint file
//! itself may lag after a crash; the log re-signs on open). Opening cuts a torn
//! last line (a crash mid-append, never acknowledged) and rebuilds the
//! hashes file from the leaves when its length does not match them.
//!
//! The checkpoint file is written off the append path, by one background
//! thread, at most once per [`CHECKPOINT_WRITE_INTERVAL`] (the latest
//! checkpoint wins; the last one is written when the store is dropped).
//! Replacing it is a create and a rename: directory metadata that the next
//! `fdatasync` of the leaves must commit to the filesystem journal with them.
//! Measured on this project's VM, a rename per batch doubled the median
//! sync; once per interval it is shared by every batch in it.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

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

/// Longest time the checkpoint file lags behind the latest stored checkpoint
/// while the log runs (see the module documentation).
pub const CHECKPOINT_WRITE_INTERVAL: Duration = Duration::from_millis(100);

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
    /// Writes the checkpoint file (absent when opened read-only).
    checkpoints: Option<CheckpointWriter>,
}

/// The latest checkpoint not yet in the file, and the thread writing it.
#[derive(Debug)]
struct CheckpointWriter {
    shared: Arc<(Mutex<Pending>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Pending {
    /// The latest checkpoint stored, written or not.
    latest: Option<String>,
    /// Whether `latest` still has to be written.
    dirty: bool,
    stop: bool,
}

impl CheckpointWriter {
    fn start(dir: PathBuf) -> Result<CheckpointWriter, LogError> {
        let shared = Arc::new((Mutex::new(Pending::default()), Condvar::new()));
        let theirs = shared.clone();
        let thread = std::thread::Builder::new()
            .name("log-checkpoint".into())
            .spawn(move || write_checkpoints(&dir, &theirs))
            .map_err(io(Path::new("(checkpoint writer thread)")))?;
        Ok(CheckpointWriter {
            shared,
            thread: Some(thread),
        })
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.shared.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for CheckpointWriter {
    /// Writes the last checkpoint before the store goes away.
    fn drop(&mut self) {
        self.pending().stop = true;
        self.shared.1.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer thread: waits for a checkpoint, writes it, rests for the
/// interval (or until told to stop), and again; on stop, writes what is
/// left and ends.
fn write_checkpoints(dir: &Path, shared: &(Mutex<Pending>, Condvar)) {
    let (lock, cv) = shared;
    let mut pending = lock.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        while !pending.dirty && !pending.stop {
            pending = cv.wait(pending).unwrap_or_else(|p| p.into_inner());
        }
        let stop = pending.stop;
        if let (true, Some(note)) = (pending.dirty, pending.latest.clone()) {
            pending.dirty = false;
            drop(pending);
            if let Err(e) = replace_checkpoint_file(dir, &note) {
                // Retried with the next checkpoint; until then the file
                // lags, which the log tolerates (it re-signs on open).
                tracing::warn!(event = "checkpoint_write_failed", error = %e);
            }
            pending = lock.lock().unwrap_or_else(|p| p.into_inner());
        }
        if stop {
            return;
        }
        let rest = std::time::Instant::now() + CHECKPOINT_WRITE_INTERVAL;
        while !pending.stop {
            let left = rest.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            pending = cv
                .wait_timeout(pending, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// Replaces the checkpoint file (a new file renamed over the old one, so a
/// reader sees one whole checkpoint or the other). Not synced: the leaves
/// it covers are already durable, and a crash that loses it (or, on some
/// filesystems, leaves it empty) only leaves an older checkpoint behind,
/// which the log re-signs on open.
fn replace_checkpoint_file(dir: &Path, note: &str) -> Result<(), LogError> {
    let path = dir.join(CHECKPOINT_FILE);
    let tmp = dir.join(format!("{CHECKPOINT_FILE}.tmp"));
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(note.as_bytes()).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))
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
                checkpoints: None,
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
            checkpoints: Some(CheckpointWriter::start(dir.to_owned())?),
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
        if let Some(latest) = self
            .checkpoints
            .as_ref()
            .and_then(|w| w.pending().latest.clone())
        {
            return Ok(Some(latest));
        }
        let path = self.dir.join(CHECKPOINT_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// One writer only: the caller never stores an older checkpoint over a
    /// newer one (it stores under its own lock), so this just replaces it.
    /// Hands it to the writer thread (see the module documentation); a
    /// store opened read-only writes it at once.
    fn store_checkpoint(&self, _size: u64, note: &str) -> Result<bool, LogError> {
        let Some(writer) = &self.checkpoints else {
            replace_checkpoint_file(&self.dir, note)?;
            return Ok(true);
        };
        let mut pending = writer.pending();
        pending.latest = Some(note.to_owned());
        pending.dirty = true;
        drop(pending);
        writer.shared.1.notify_one();
        Ok(true)
    }
}

/// The stored hashes record `n` with `leaf` adds, read from `store`.
pub fn hashes_for(store: &dyn LogStore, n: u64, leaf: &[u8]) -> Result<Vec<Hash>, LogError> {
    stored_hashes(n, leaf, &Hashes(store)).map_err(tree_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path) -> Option<String> {
        std::fs::read_to_string(dir.join(CHECKPOINT_FILE)).ok()
    }

    #[test]
    fn the_latest_checkpoint_is_read_at_once_and_in_the_file_when_the_store_closes() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileLogStore::open(dir.path()).unwrap();
        assert_eq!(store.checkpoint().unwrap(), None);
        for n in 0..50 {
            store
                .store_checkpoint(n, &format!("checkpoint {n}\n"))
                .unwrap();
            // Readers in the process see the latest at once, file or not.
            assert_eq!(
                store.checkpoint().unwrap().as_deref(),
                Some(&*format!("checkpoint {n}\n"))
            );
        }
        drop(store);
        assert_eq!(file(dir.path()).as_deref(), Some("checkpoint 49\n"));
        assert!(!dir.path().join(format!("{CHECKPOINT_FILE}.tmp")).exists());
        let reopened = FileLogStore::open(dir.path()).unwrap();
        assert_eq!(
            reopened.checkpoint().unwrap().as_deref(),
            Some("checkpoint 49\n")
        );
    }

    #[test]
    fn a_running_store_writes_the_file_without_closing() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileLogStore::open(dir.path()).unwrap();
        store.store_checkpoint(1, "one\n").unwrap();
        // The writer needs no further call and no close to write it.
        let mut waited = 0;
        while file(dir.path()).as_deref() != Some("one\n") {
            assert!(waited < 500, "the checkpoint file was not written");
            std::thread::sleep(CHECKPOINT_WRITE_INTERVAL / 10);
            waited += 1;
        }
        store.store_checkpoint(2, "two\n").unwrap();
        while file(dir.path()).as_deref() != Some("two\n") {
            assert!(waited < 500, "the second checkpoint was not written");
            std::thread::sleep(CHECKPOINT_WRITE_INTERVAL / 10);
            waited += 1;
        }
    }

    #[test]
    fn a_failed_write_is_retried_with_the_next_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileLogStore::open(dir.path()).unwrap();
        // A directory where the file goes: the rename fails.
        std::fs::create_dir(dir.path().join(CHECKPOINT_FILE)).unwrap();
        std::fs::write(dir.path().join(CHECKPOINT_FILE).join("x"), b"x").unwrap();
        store.store_checkpoint(1, "lost\n").unwrap();
        assert_eq!(store.checkpoint().unwrap().as_deref(), Some("lost\n"));
        std::thread::sleep(CHECKPOINT_WRITE_INTERVAL * 2);
        std::fs::remove_dir_all(dir.path().join(CHECKPOINT_FILE)).unwrap();
        store.store_checkpoint(2, "kept\n").unwrap();
        drop(store);
        assert_eq!(file(dir.path()).as_deref(), Some("kept\n"));
    }
}
