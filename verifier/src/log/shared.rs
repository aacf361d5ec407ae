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
        // An empty file is a checkpoint lost in a crash (it is written
        // without a sync), no evidence of tampering: deleting it would do
        // the same. Anything else must be this log's own.
        if let Some(note) = store.checkpoint()?.filter(|n| !n.is_empty()) {
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
        let signed = Arc::new(SignedCheckpoint { size, root, note });
        // The file is written under the lock, so it and `latest` agree
        // with [`SharedLog::store_cosigned`] writing beside this.
        let mut latest = self.latest.write().unwrap_or_else(|p| p.into_inner());
        self.store.store_checkpoint(&signed.note)?;
        if latest.size <= size {
            *latest = signed.clone();
        }
        Ok(signed)
    }

    /// Replaces the latest checkpoint by the same checkpoint with witness
    /// cosignature lines added (`note`, of `size` records), in memory and in
    /// the stored file, so that `/checkpoint`, later receipts and
    /// `log verify` see the cosignatures. Does nothing when a larger
    /// checkpoint was signed meanwhile (the next round cosigns that one) or
    /// when `note` is not this log's checkpoint of the latest size and root.
    pub fn store_cosigned(&self, size: u64, note: &str) -> Result<bool, LogError> {
        let key = self.signer.verifier_key();
        let Ok(cp) = hermetic_tlog::checkpoint::open(note.as_bytes(), key.name(), &key) else {
            return Ok(false);
        };
        let mut latest = self.latest.write().unwrap_or_else(|p| p.into_inner());
        if latest.size != size || cp.size != size || cp.root_hash != latest.root {
            return Ok(false);
        }
        self.store.store_checkpoint(note)?;
        *latest = Arc::new(SignedCheckpoint {
            size,
            root: cp.root_hash,
            note: note.to_owned(),
        });
        Ok(true)
    }

    /// The consistency proof from the tree of `old` leaves to that of `new`
    /// (both durable), as witnesses ask for it.
    pub fn prove_tree(&self, old: u64, new: u64) -> Result<Vec<Hash>, LogError> {
        hermetic_tlog::merkle::prove_tree(new, old, &Hashes(self.store.as_ref()))
            .map_err(tree_error)
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
                    tracing::error!(event = "audit_log_sync_failed", error = %e);
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use hermetic_attestation::Document;
    use hermetic_envelope::Zeroizing;
    use hermetic_tlog::checkpoint;

    use super::*;
    use crate::log::audit::{verify, VerifyOptions};
    use crate::log::{SecretRef, Who, LOG_FILE, MAX_MODULE_ID_LOGGED};

    fn signer() -> Signer {
        Signer::from_seed("hermetic.log/unit", Zeroizing::new([3; 32])).unwrap()
    }

    fn opts() -> VerifyOptions {
        VerifyOptions::new(signer().verifier_key())
    }

    fn entry(action: &str) -> Entry {
        Entry {
            action: action.into(),
            verdict: "done".into(),
            secrets: vec![SecretRef {
                name: "a".into(),
                version: Some(1),
            }],
            ..Entry::default()
        }
    }

    const NOW: Duration = Duration::from_secs(1_800_000_000);

    #[test]
    fn a_record_over_the_cap_is_refused_whole() {
        let dir = tempfile::tempdir().unwrap();
        let log = SharedLog::open(dir.path(), signer()).unwrap();
        log.append(entry("one"), NOW).unwrap();
        let before = std::fs::read(dir.path().join(LOG_FILE)).unwrap();
        let mut big = entry("big");
        big.reason = Some("x".repeat(MAX_RECORD_LEN));
        match log.append(big, NOW) {
            Err(LogError::RecordTooLarge { len, max }) => {
                assert!(len > max);
                assert_eq!(max, MAX_RECORD_LEN);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(std::fs::read(dir.path().join(LOG_FILE)).unwrap(), before);
        assert_eq!(log.append(entry("two"), NOW).unwrap().seq, 1);
        drop(log);
        assert_eq!(verify(dir.path(), &opts()).unwrap().unwrap().records, 2);
    }

    #[test]
    fn the_largest_valid_release_record_fits_under_the_cap() {
        // 64 names of 128 characters (the request's limits), 32 PCRs of 64
        // bytes, a module id longer than the logged maximum, a 32-byte nonce.
        let doc = Document {
            module_id: "m".repeat(4 * MAX_MODULE_ID_LOGGED),
            digest: "SHA384".into(),
            timestamp_ms: u64::MAX,
            pcrs: (0u8..32).map(|i| (i, vec![0xff; 64])).collect(),
            certificate: vec![1; 1024],
            cabundle: vec![vec![1; 1024]],
            public_key: Some(vec![2; 1024]),
            user_data: Some(vec![3; 1024]),
            nonce: Some(vec![4; 32]),
            unknown_fields: vec![],
        };
        let mut who = Who::attested(&doc, &[9; 32], b"document");
        who.client = Some("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".into());
        let release = Entry {
            action: "release".into(),
            verdict: "refused".into(),
            reason: Some("envelope_bad_public_key".into()),
            secrets: (0..crate::release::MAX_SECRETS_PER_REQUEST)
                .map(|i| SecretRef {
                    name: format!("{i:0>128}"),
                    version: Some(u64::MAX),
                })
                .collect(),
            who,
            ..Entry::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let log = SharedLog::open(dir.path(), signer()).unwrap();
        let appended = log
            .append(release, Duration::from_secs(253_402_300_799))
            .unwrap();
        assert!(
            appended.leaf.len() < MAX_RECORD_LEN,
            "{}",
            appended.leaf.len()
        );
        let text = std::fs::read_to_string(dir.path().join(LOG_FILE)).unwrap();
        assert!(!text.contains(&"m".repeat(MAX_MODULE_ID_LOGGED + 1)));
    }

    #[test]
    fn group_commit_keeps_one_order_and_every_answer_is_under_its_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(SharedLog::open(dir.path(), signer()).unwrap());
        let key = log.verifier_key();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let log = log.clone();
                let key = key.clone();
                std::thread::spawn(move || {
                    (0..50)
                        .map(|_| {
                            let a = log.append(entry("x"), NOW).unwrap();
                            // The checkpoint covers the record and proves it.
                            let cp =
                                checkpoint::open(a.checkpoint.note.as_bytes(), key.name(), &key)
                                    .unwrap();
                            assert!(cp.size > a.seq);
                            let proof = log.prove(a.seq, cp.size).unwrap();
                            hermetic_tlog::merkle::check_record(
                                &proof,
                                cp.size,
                                &cp.root_hash,
                                a.seq,
                                &hermetic_tlog::merkle::record_hash(&a.leaf),
                            )
                            .unwrap();
                            a.seq
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut seqs: Vec<u64> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        seqs.sort();
        assert_eq!(seqs, (0..400).collect::<Vec<_>>());
        assert_eq!(log.checkpoint().size, 400);
        drop(log);
        let intact = verify(dir.path(), &opts()).unwrap().unwrap();
        assert_eq!((intact.records, intact.checkpoint_size), (400, 400));
    }

    #[test]
    fn a_reopened_log_continues_its_tree() {
        let dir = tempfile::tempdir().unwrap();
        for round in 0..3u64 {
            let log = SharedLog::open(dir.path(), signer()).unwrap();
            assert_eq!(log.checkpoint().size, round * 2);
            log.append(entry("a"), NOW).unwrap();
            assert_eq!(log.append(entry("b"), NOW).unwrap().seq, round * 2 + 1);
        }
        assert_eq!(verify(dir.path(), &opts()).unwrap().unwrap().records, 6);
        // Another key cannot take the log over.
        let other = Signer::from_seed("hermetic.log/unit", Zeroizing::new([4; 32])).unwrap();
        assert!(SharedLog::open(dir.path(), other).is_err());
    }

    #[test]
    fn a_torn_tail_is_cut_and_the_hashes_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = SharedLog::open(dir.path(), signer()).unwrap();
            log.append(entry("one"), NOW).unwrap();
        }
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(LOG_FILE))
            .unwrap();
        f.write_all(b"{\"seq\":1,\"ti").unwrap();
        // A hash written for the torn record, too.
        let mut h = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(super::super::HASHES_FILE))
            .unwrap();
        h.write_all(&[0xab; 32]).unwrap();
        let log = SharedLog::open(dir.path(), signer()).unwrap();
        assert_eq!(log.append(entry("two"), NOW).unwrap().seq, 1);
        drop(log);
        assert_eq!(verify(dir.path(), &opts()).unwrap().unwrap().records, 2);
    }

    /// A store whose sync fails on demand (a stand-in for a failing disk).
    #[derive(Debug)]
    struct Flaky {
        inner: FileLogStore,
        fail: Arc<AtomicBool>,
        stored: Arc<AtomicUsize>,
    }

    impl LogStore for Flaky {
        fn size(&self) -> u64 {
            self.inner.size()
        }
        fn append(&self, leaf: &[u8], hashes: &[Hash]) -> Result<(), LogError> {
            self.inner.append(leaf, hashes)
        }
        fn sync(&self) -> Result<(), LogError> {
            if self.fail.load(Ordering::SeqCst) {
                return Err(LogError::Io {
                    path: "flaky".into(),
                    error: std::io::Error::other("EIO"),
                });
            }
            self.inner.sync()
        }
        fn read_leaves(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, LogError> {
            self.inner.read_leaves(start, end)
        }
        fn read_stored_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, LogError> {
            self.inner.read_stored_hashes(indexes)
        }
        fn checkpoint(&self) -> Result<Option<String>, LogError> {
            self.inner.checkpoint()
        }
        fn store_checkpoint(&self, note: &str) -> Result<(), LogError> {
            self.stored.fetch_add(1, Ordering::SeqCst);
            self.inner.store_checkpoint(note)
        }
    }

    #[test]
    fn a_failed_sync_signs_nothing_and_refuses_every_later_append() {
        let dir = tempfile::tempdir().unwrap();
        let fail = Arc::new(AtomicBool::new(false));
        let stored = Arc::new(AtomicUsize::new(0));
        let store = Flaky {
            inner: FileLogStore::open(dir.path()).unwrap(),
            fail: fail.clone(),
            stored: stored.clone(),
        };
        let log = SharedLog::new(Box::new(store), signer()).unwrap();
        assert_eq!(log.append(entry("ok"), NOW).unwrap().seq, 0);
        let signed = stored.load(Ordering::SeqCst);
        fail.store(true, Ordering::SeqCst);
        assert!(log.append(entry("lost"), NOW).is_err());
        // No checkpoint over the record that did not become durable.
        assert_eq!(stored.load(Ordering::SeqCst), signed);
        assert_eq!(log.checkpoint().size, 1);
        fail.store(false, Ordering::SeqCst);
        let err = log.append(entry("after"), NOW).unwrap_err();
        assert!(err.to_string().contains("restart"), "{err}");
        drop(log);
        // Reopened, the unacknowledged record is in the log (it may say
        // more than was answered, never less) and gets signed.
        let log = SharedLog::open(dir.path(), signer()).unwrap();
        assert_eq!(log.checkpoint().size, 2);
        assert_eq!(log.append(entry("reopened"), NOW).unwrap().seq, 2);
    }
}
