//! [`SharedLog`]: appends from many threads with group commit, and the one
//! place checkpoints are signed ([`SharedLog::publish`]).

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Duration;

use hermetic_attestation::rfc3339_ms;
use hermetic_tlog::checkpoint::Checkpoint;
use hermetic_tlog::merkle::{prove_record, tree_hash, Hash};
use hermetic_tlog::note::{Signer, VerifierKey};

use super::store::{hashes_for, tree_error, FileLogStore, Hashes, LogStore};
use super::{Entry, LogError, Record, MAX_RECORD_LEN};

/// A checkpoint the log signed, and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub size: u64,
    pub root: Hash,
    /// The signed note (checkpoint text, blank line, signature lines).
    pub note: String,
}

/// What [`SharedLog::append`] returns: the record's leaf index, and a
/// checkpoint covering it (signed after the record became durable).
#[derive(Debug, Clone)]
pub struct Appended {
    pub seq: u64,
    /// The leaf: the record's JSON, exactly as hashed.
    pub leaf: Vec<u8>,
    pub checkpoint: Arc<SignedCheckpoint>,
}

/// The audit log shared by many threads.
///
/// Each caller builds its leaf and appends it (leaf and stored hashes)
/// under a short lock, then waits until a sync that started after its
/// append has completed: one caller at a time leads a sync covering every
/// leaf appended so far, then signs one checkpoint for that size
/// ([`SharedLog::publish`]), and everyone whose leaf it covered returns
/// together with that checkpoint. `append` returns only once its own record
/// is durable and under a signed checkpoint, so a grant is never answered
/// before its record is logged; concurrent appenders share syncs and
/// signatures instead of queueing behind one each.
///
/// A failed sync poisons the log: the kernel may have dropped the unsynced
/// pages and a later sync could report success without them, so from then
/// on every append fails until the service is restarted (reopening cuts a
/// torn tail and continues the tree).
#[derive(Debug)]
pub struct SharedLog {
    store: Box<dyn LogStore>,
    signer: Signer,
    /// Serializes appends: the leaf index is the store's size.
    writer: Mutex<()>,
    sync: Mutex<SyncState>,
    synced: Condvar,
    latest: RwLock<Arc<SignedCheckpoint>>,
}

#[derive(Debug)]
struct SyncState {
    /// Every leaf below this index is durable and signed.
    size: u64,
    /// A caller is syncing and signing now.
    syncing: bool,
    /// The error of a failed sync, once one has failed.
    failed: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every update under these locks leaves consistent state behind.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SharedLog {
    /// Opens the file log in `data_dir` (see [`SharedLog::new`]).
    pub fn open(data_dir: &Path, signer: Signer) -> Result<SharedLog, LogError> {
        SharedLog::new(Box::new(FileLogStore::open(data_dir)?), signer)
    }

    /// A log over `store`, signing with `signer` (whose name is the origin).
    /// Refuses a store whose stored checkpoint is not the log's own over its
    /// leaves (covers more leaves than there are, or another root): the
    /// data was rolled back or rewritten, and signing on would fork the log.
    /// Signs a checkpoint of the current size before returning.
    pub fn new(store: Box<dyn LogStore>, signer: Signer) -> Result<SharedLog, LogError> {
        let size = store.size();
        if let Some(note) = store.checkpoint()? {
            let key = signer.verifier_key();
            let cp = hermetic_tlog::checkpoint::open(note.as_bytes(), key.name(), &key).map_err(
                |e| LogError::Corrupt(format!("the stored checkpoint does not verify ({e})")),
            )?;
            if cp.size > size {
                return Err(LogError::Corrupt(format!(
                    "the stored checkpoint covers {} records but the log holds {size} (records were removed or an older log restored)",
                    cp.size
                )));
            }
            let root = tree_hash(cp.size, &Hashes(store.as_ref())).map_err(tree_error)?;
            if root != cp.root_hash {
                return Err(LogError::Corrupt(format!(
                    "the log's first {} records do not match the stored checkpoint (records were changed)",
                    cp.size
                )));
            }
        }
        let log = SharedLog {
            store,
            signer,
            writer: Mutex::new(()),
            sync: Mutex::new(SyncState {
                size,
                syncing: false,
                failed: None,
            }),
            synced: Condvar::new(),
            latest: RwLock::new(Arc::new(SignedCheckpoint {
                size: 0,
                root: hermetic_tlog::merkle::empty_tree_hash(),
                note: String::new(),
            })),
        };
        log.store.sync()?;
        log.publish(size)?;
        Ok(log)
    }

    /// The log's verifier key (auditors pin it).
    pub fn verifier_key(&self) -> VerifierKey {
        self.signer.verifier_key()
    }

    /// The origin line of its checkpoints.
    pub fn origin(&self) -> &str {
        self.signer.name()
    }

    /// Signs and stores the checkpoint of the first `size` leaves (already
    /// durable) and makes it the latest. The one place checkpoints are made:
    /// witness cosigning belongs here, between signing and publishing.
    fn publish(&self, size: u64) -> Result<Arc<SignedCheckpoint>, LogError> {
        let root = tree_hash(size, &Hashes(self.store.as_ref())).map_err(tree_error)?;
        let note = Checkpoint {
            origin: self.signer.name().to_owned(),
            size,
            root_hash: root,
            extensions: Vec::new(),
        }
        .sign(&self.signer)
        .map_err(|e| LogError::Sign(e.to_string()))?;
        self.store.store_checkpoint(&note)?;
        let signed = Arc::new(SignedCheckpoint { size, root, note });
        let mut latest = self.latest.write().unwrap_or_else(|p| p.into_inner());
        if latest.size <= size {
            *latest = signed.clone();
        }
        Ok(signed)
    }

    /// The latest signed checkpoint (covering only durable leaves).
    pub fn checkpoint(&self) -> Arc<SignedCheckpoint> {
        self.latest
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Appends `entry` at `now`; returns once it is durable and signed.
    pub fn append(&self, entry: Entry, now: Duration) -> Result<Appended, LogError> {
        if let Some(e) = &lock(&self.sync).failed {
            return Err(poisoned(e));
        }
        let (seq, leaf) = {
            let _writer = lock(&self.writer);
            let seq = self.store.size();
            let record = Record {
                seq,
                time: rfc3339_ms(u64::try_from(now.as_millis()).unwrap_or(u64::MAX)),
                entry,
            };
            let json = serde_json::to_vec(&record)
                .map_err(|e| LogError::Corrupt(format!("a record did not serialize: {e}")))?;
            if json.len() + 1 > MAX_RECORD_LEN {
                return Err(LogError::RecordTooLarge {
                    len: json.len() + 1,
                    max: MAX_RECORD_LEN,
                });
            }
            let hashes = hashes_for(self.store.as_ref(), seq, &json)?;
            self.store.append(&json, &hashes)?;
            (seq, json)
        };
        let mut state = lock(&self.sync);
        loop {
            if let Some(e) = &state.failed {
                return Err(poisoned(e));
            }
            if state.size > seq {
                // A sync and signature that started after our append covered it.
                let checkpoint = self.checkpoint();
                return Ok(Appended {
                    seq,
                    leaf,
                    checkpoint,
                });
            }
            if state.syncing {
                state = self.synced.wait(state).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            // Lead: sync every leaf appended so far (ours included), sign.
            state.syncing = true;
            drop(state);
            let target = {
                let _writer = lock(&self.writer);
                self.store.size()
            };
            let result = self.store.sync().and_then(|()| self.publish(target));
            state = lock(&self.sync);
            state.syncing = false;
            match result {
                Ok(_) => state.size = state.size.max(target),
                Err(e) => {
                    eprintln!(
                        "hermetic-verifier: level=error event=audit_log_sync_failed error={e}"
                    );
                    state.failed = Some(e.to_string());
                }
            }
            self.synced.notify_all();
        }
    }

    /// The inclusion proof of leaf `seq` in the tree of `size` leaves.
    pub fn prove(&self, seq: u64, size: u64) -> Result<Vec<Hash>, LogError> {
        prove_record(size, seq, &Hashes(self.store.as_ref())).map_err(tree_error)
    }

    /// Leaves `start..end` (only those under the latest checkpoint are
    /// served: see the tile routes).
    pub fn leaves(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, LogError> {
        self.store.read_leaves(start, end)
    }

    /// The store, for reading tiles.
    pub fn store(&self) -> &dyn LogStore {
        self.store.as_ref()
    }

    /// Leaves appended so far (durable or not).
    pub fn size(&self) -> u64 {
        self.store.size()
    }
}

fn poisoned(e: &str) -> LogError {
    LogError::Io {
        path: "audit log".into(),
        error: std::io::Error::other(format!(
            "an earlier sync of the audit log failed ({e}); restart the service"
        )),
    }
}
