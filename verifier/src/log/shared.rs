//! [`SharedLog`]: appends from many threads with group commit, and the one
//! place checkpoints are signed (`LogCore::publish`).

use std::path::Path;
use std::sync::{mpsc, Arc, Condvar, Mutex, RwLock};
use std::time::Duration;

use hermetic_attestation::rfc3339_ms;
use hermetic_tlog::checkpoint::Checkpoint;
use hermetic_tlog::merkle::{prove_record, tree_hash, Hash};
use hermetic_tlog::note::{Signer, VerifierKey};

use super::store::{tree_error, FileLogStore, Hashes, LogStore};
use super::{Entry, LogError, MAX_RECORD_LEN};

/// A checkpoint the log signed, and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub size: u64,
    pub root: Hash,
    /// The signed note (checkpoint text, blank line, signature lines).
    pub note: String,
}

/// What [`LogCore::append`] returns: the record's leaf index, and a
/// checkpoint covering it (signed after the record became durable).
#[derive(Debug, Clone)]
pub struct Appended {
    pub seq: u64,
    /// The leaf: the record's JSON, exactly as hashed.
    pub leaf: Vec<u8>,
    pub checkpoint: Arc<SignedCheckpoint>,
}

/// The audit log shared by many threads (and, over a shared store, by
/// many processes): a handle on the [`LogCore`] it shares with its writer
/// thread, whose methods it derefs to.
///
/// Each caller queues its entry, then waits until a batch holding it has
/// committed: a thread blocked in [`LogCore::append`] or a task awaiting
/// [`LogCore::append_async`], each woken alone with its own outcome. One thread, the log's writer (`log-writer`), takes every
/// entry queued so far as a batch, hands it to the store, which picks the
/// first index under its own write lock (the store is the sequencer, so
/// replicas sharing a database keep one total order), writes the leaves and
/// their stored hashes and makes them durable in one step; the writer then
/// signs one checkpoint for the committed size (`LogCore::publish`), and
/// everyone in the batch returns together with it. `append` returns only
/// once its own record is durable and under a signed checkpoint, so a grant
/// is never answered before its record is logged; concurrent appenders
/// share one write and one signature instead of queueing behind one each.
///
/// The writer is its own thread, not one of the callers: no request thread
/// carries the commit for the others (measured: the mean log-append time
/// under 16 concurrent releases fell a little; see the README's release
/// bench).
///
/// A failed write of the file store poisons the log: the kernel may have
/// dropped the unsynced pages and a later sync could report success without
/// them, so from then on every append fails until the service is restarted
/// (reopening cuts a torn tail and continues the tree). A failed database
/// transaction left nothing behind: its batch fails, later ones retry.
#[derive(Debug)]
pub struct SharedLog {
    core: Arc<LogCore>,
    writer: Option<std::thread::JoinHandle<()>>,
}

/// The log itself: its store, its signer, the queue of entries waiting for
/// the writer, the latest checkpoint. Reached through [`SharedLog`].
#[derive(Debug)]
pub struct LogCore {
    store: Box<dyn LogStore>,
    signer: Signer,
    sync: Mutex<SyncState>,
    /// Signalled when an entry is queued or the log is closing (the writer
    /// wakes).
    work: Condvar,
    latest: RwLock<Arc<SignedCheckpoint>>,
}

impl std::ops::Deref for SharedLog {
    type Target = LogCore;
    fn deref(&self) -> &LogCore {
        &self.core
    }
}

impl Drop for SharedLog {
    /// Commits what is queued, then stops the writer.
    fn drop(&mut self) {
        lock(&self.core.sync).closing = true;
        self.core.work.notify_all();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// A committed record: its index, its leaf, the checkpoint covering it.
type Committed = (u64, Vec<u8>, Arc<SignedCheckpoint>);

/// Why a batch failed, for each of its callers.
#[derive(Debug, Clone)]
struct BatchError {
    /// The database was unavailable (transient).
    unavailable: bool,
    text: String,
}

/// What the writer hands back for one queued entry.
type Outcome = Result<Committed, BatchError>;

/// Where a queued entry's outcome goes: a thread blocked in
/// [`LogCore::append`] or a task awaiting [`LogCore::append_async`]. Each
/// caller is woken alone, with its own outcome (no broadcast that wakes the
/// callers of later batches for nothing). Dropped unsent (a poisoned log),
/// the caller reads the poison.
#[derive(Debug)]
enum Reply {
    Thread(mpsc::SyncSender<Outcome>),
    Task(tokio::sync::oneshot::Sender<Outcome>),
}

impl Reply {
    fn send(self, outcome: Outcome) {
        // A caller that stopped waiting (a dropped request) needs nothing.
        match self {
            Reply::Thread(tx) => drop(tx.send(outcome)),
            Reply::Task(tx) => drop(tx.send(outcome)),
        }
    }
}

/// A queued entry: its record, where its outcome goes.
#[derive(Debug)]
struct Pending {
    record: UnnumberedRecord,
    reply: Reply,
}

#[derive(Debug)]
struct SyncState {
    /// Entries waiting for the next batch.
    queue: Vec<Pending>,
    /// The log is being dropped: the writer commits what is queued and
    /// stops.
    closing: bool,
    /// The error of a failed write of a file store, once one has failed.
    failed: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every update under these locks leaves consistent state behind.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A [`Record`](super::Record) serialized from borrowed parts (the same
/// JSON).
#[derive(serde::Serialize)]
struct RecordRef<'a> {
    seq: u64,
    time: &'a str,
    entry: &'a Entry,
}

/// How a record's JSON begins: `seq` is [`Record`](super::Record)'s first
/// field.
const SEQ_KEY: &[u8] = b"{\"seq\":";

/// A record's JSON, numbered `u64::MAX` (the largest it could get, so the
/// cap holds for any) and checked against the cap: serialized by the
/// caller before it is queued, so that the log's writer only puts the real
/// number in front ([`UnnumberedRecord::numbered`]).
#[derive(Debug)]
struct UnnumberedRecord(Vec<u8>);

impl UnnumberedRecord {
    /// The bytes before the rest of the record: `{"seq":18446744073709551615`.
    const HEAD_LEN: usize = SEQ_KEY.len() + 20;

    fn new(time: &str, entry: &Entry) -> Result<UnnumberedRecord, LogError> {
        let json = serde_json::to_vec(&RecordRef {
            seq: u64::MAX,
            time,
            entry,
        })
        .map_err(|e| LogError::Corrupt(format!("a record did not serialize: {e}")))?;
        if json.len() + 1 > MAX_RECORD_LEN {
            return Err(LogError::RecordTooLarge {
                len: json.len() + 1,
                max: MAX_RECORD_LEN,
            });
        }
        let head = format!("{{\"seq\":{}", u64::MAX);
        if !json.starts_with(head.as_bytes()) {
            return Err(LogError::Corrupt(
                "a record's JSON does not begin with its seq".into(),
            ));
        }
        Ok(UnnumberedRecord(json))
    }

    /// The record's leaf as record `seq`.
    fn numbered(&self, seq: u64) -> Vec<u8> {
        let rest = &self.0[Self::HEAD_LEN..];
        let seq = seq.to_string();
        let mut leaf = Vec::with_capacity(SEQ_KEY.len() + seq.len() + rest.len());
        leaf.extend_from_slice(SEQ_KEY);
        leaf.extend_from_slice(seq.as_bytes());
        leaf.extend_from_slice(rest);
        leaf
    }
}

/// A record's JSON with `seq`, checked against the cap.
fn leaf_json(seq: u64, time: &str, entry: &Entry) -> Result<Vec<u8>, LogError> {
    Ok(UnnumberedRecord::new(time, entry)?.numbered(seq))
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
        let size = store.size()?;
        let log = LogCore {
            store,
            signer,
            sync: Mutex::new(SyncState {
                queue: Vec::new(),
                closing: false,
                failed: None,
            }),
            work: Condvar::new(),
            latest: RwLock::new(Arc::new(SignedCheckpoint {
                size: 0,
                root: hermetic_tlog::merkle::empty_tree_hash(),
                note: String::new(),
            })),
        };
        // An empty file is a checkpoint lost in a crash (it is written
        // without a sync), no evidence of tampering: deleting it would do
        // the same. Anything else must be this log's own.
        if let Some(note) = log.store.checkpoint()?.filter(|n| !n.is_empty()) {
            log.check_stored(&note, size)?;
        }
        log.publish(size)?;
        let core = Arc::new(log);
        let writer = {
            let core = core.clone();
            std::thread::Builder::new()
                .name("log-writer".into())
                .spawn(move || core.write_batches())
                .map_err(|error| LogError::Io {
                    path: "log-writer thread".into(),
                    error,
                })?
        };
        Ok(SharedLog {
            core,
            writer: Some(writer),
        })
    }
}

impl LogCore {
    /// Checks a stored checkpoint note against the tree of `size` leaves:
    /// this log's signature, no more leaves than there are, the same root.
    fn check_stored(&self, note: &str, size: u64) -> Result<SignedCheckpoint, LogError> {
        let key = self.signer.verifier_key();
        let cp =
            hermetic_tlog::checkpoint::open(note.as_bytes(), key.name(), &key).map_err(|e| {
                LogError::Corrupt(format!("the stored checkpoint does not verify ({e})"))
            })?;
        if cp.size > size {
            return Err(LogError::Corrupt(format!(
                "the stored checkpoint covers {} records but the log holds {size} (records were removed or an older log restored)",
                cp.size
            )));
        }
        let root = tree_hash(cp.size, &Hashes(self.store.as_ref())).map_err(tree_error)?;
        if root != cp.root_hash {
            return Err(LogError::Corrupt(format!(
                "the log's first {} records do not match the stored checkpoint (records were changed)",
                cp.size
            )));
        }
        Ok(SignedCheckpoint {
            size: cp.size,
            root,
            note: note.to_owned(),
        })
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
        // with [`SharedLog::store_cosigned`] writing beside this. A shared
        // store keeps a larger checkpoint another writer stored meanwhile.
        let mut latest = self.latest.write().unwrap_or_else(|p| p.into_inner());
        self.store.store_checkpoint(size, &signed.note)?;
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
        if !self.store.store_checkpoint(size, note)? {
            return Ok(false);
        }
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

    /// The latest signed checkpoint (covering only durable leaves). Over a
    /// shared store, the stored one when another writer signed a larger
    /// one (checked: this log's signature, the root of the stored tree).
    pub fn checkpoint(&self) -> Arc<SignedCheckpoint> {
        let latest = self
            .latest
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if !self.store.shared() {
            return latest;
        }
        match self.refresh(&latest) {
            Ok(Some(newer)) => newer,
            Ok(None) => latest,
            Err(e) => {
                tracing::error!(event = "audit_log_checkpoint_refused", error = %e);
                latest
            }
        }
    }

    /// Reads the shared store's checkpoint; a larger one than `latest`
    /// that checks out becomes the latest. A smaller one means the stored
    /// checkpoint was rolled back behind what this replica saw signed.
    fn refresh(
        &self,
        latest: &Arc<SignedCheckpoint>,
    ) -> Result<Option<Arc<SignedCheckpoint>>, LogError> {
        let Some(note) = self.store.checkpoint()? else {
            return Ok(None);
        };
        if note == latest.note {
            return Ok(None);
        }
        let size = self.store.size()?;
        let stored = self.check_stored(&note, size)?;
        if stored.size < latest.size {
            return Err(LogError::Corrupt(format!(
                "the stored checkpoint covers {} records, fewer than the {} this replica saw signed (the checkpoint row was rolled back)",
                stored.size, latest.size
            )));
        }
        if stored.size == latest.size {
            return Ok(None);
        }
        let stored = Arc::new(stored);
        let mut w = self.latest.write().unwrap_or_else(|p| p.into_inner());
        if w.size < stored.size {
            *w = stored.clone();
        }
        Ok(Some(w.clone()))
    }

    /// Whether the log is kept in a store shared with other replicas (a
    /// database server: appends and proofs may wait on the network).
    pub fn is_shared(&self) -> bool {
        self.store.shared()
    }

    /// Appends `entry` at `now`; returns once it is durable and signed.
    /// Blocks the calling thread meanwhile (see [`LogCore::append_async`]).
    pub fn append(&self, entry: Entry, now: Duration) -> Result<Appended, LogError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.enqueue(entry, now, Reply::Thread(tx))?;
        self.outcome(rx.recv().ok())
    }

    /// [`LogCore::append`] for async callers: the task waits for the batch
    /// without holding a thread, so a request waiting for the log leaves
    /// its core to the others (and to the writer's sync).
    pub async fn append_async(&self, entry: Entry, now: Duration) -> Result<Appended, LogError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.enqueue(entry, now, Reply::Task(tx))?;
        self.outcome(rx.await.ok())
    }

    /// Queues `entry` for the writer, unless it is over the cap or the log
    /// is poisoned.
    fn enqueue(&self, entry: Entry, now: Duration, reply: Reply) -> Result<(), LogError> {
        let time = rfc3339_ms(u64::try_from(now.as_millis()).unwrap_or(u64::MAX));
        // Refused whole before it is queued (over the cap).
        let record = UnnumberedRecord::new(&time, &entry)?;
        let mut state = lock(&self.sync);
        if let Some(e) = &state.failed {
            return Err(poisoned(e));
        }
        state.queue.push(Pending { record, reply });
        self.work.notify_one();
        Ok(())
    }

    /// A caller's result from what the writer sent it (`None`: its reply
    /// was dropped unsent, which only a poisoned log does).
    fn outcome(&self, sent: Option<Outcome>) -> Result<Appended, LogError> {
        match sent {
            Some(Ok((seq, leaf, checkpoint))) => Ok(Appended {
                seq,
                leaf,
                checkpoint,
            }),
            Some(Err(e)) => Err(batch_failed(&e, self.store.shared())),
            None => Err(poisoned(
                lock(&self.sync)
                    .failed
                    .as_deref()
                    .unwrap_or("the log's writer stopped"),
            )),
        }
    }

    /// The writer thread: commits every queued entry as one batch, signs,
    /// hands each caller its outcome; again, until the log is dropped and
    /// nothing is queued.
    fn write_batches(&self) {
        let mut state = lock(&self.sync);
        loop {
            if state.queue.is_empty() {
                if state.closing {
                    return;
                }
                state = self.work.wait(state).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            let batch = std::mem::take(&mut state.queue);
            if state.failed.is_some() {
                // Poisoned: nothing more is written; dropping the batch
                // drops its replies, and each caller reads `failed`.
                drop(batch);
                continue;
            }
            drop(state);
            let result = self.commit(&batch);
            match result {
                Ok(results) => {
                    for (p, r) in batch.into_iter().zip(results) {
                        p.reply.send(Ok(r));
                    }
                }
                Err(e) => {
                    tracing::error!(event = "audit_log_sync_failed", error = %e);
                    let text = e.to_string();
                    let unavailable = matches!(e, LogError::Unavailable(_));
                    if !self.store.shared() {
                        // Set before any caller hears of it, so that every
                        // later append sees the poison.
                        lock(&self.sync).failed = Some(text.clone());
                    }
                    for p in batch {
                        p.reply.send(Err(BatchError {
                            unavailable,
                            text: text.clone(),
                        }));
                    }
                }
            }
            state = lock(&self.sync);
        }
    }

    /// Appends `entry`'s leaf inside `tx`, a store transaction of an engine
    /// that keeps this log too (PostgreSQL): the record commits with the
    /// change or not at all. Returns its index and the log's size after it
    /// (sign that with [`LogCore::sign_committed`] once `tx` committed),
    /// or `None` when the log is not the store's (the file log beside
    /// redb): then the caller appends with [`LogCore::append`].
    pub fn append_in(
        &self,
        entry: &Entry,
        now: Duration,
        tx: &mut dyn crate::store::backend::WriteRows,
    ) -> Result<Option<(u64, u64)>, LogError> {
        if !self.store.shared() {
            return Ok(None);
        }
        if let Some(e) = &lock(&self.sync).failed {
            return Err(poisoned(e));
        }
        let time = rfc3339_ms(u64::try_from(now.as_millis()).unwrap_or(u64::MAX));
        let seen = self.latest.read().unwrap_or_else(|p| p.into_inner()).size;
        let mut seq = None;
        let end = tx.append_log(&mut |start| {
            if start < seen {
                return Err(LogError::Corrupt(format!(
                    "the log store holds {start} records, fewer than the {seen} this log signed (records were removed or an older copy restored)"
                )));
            }
            seq = Some(start);
            Ok(vec![leaf_json(start, &time, entry)?])
        })?;
        Ok(match (seq, end) {
            (Some(seq), Some(end)) => Some((seq, end)),
            _ => None,
        })
    }

    /// Signs and stores the checkpoint of `size` leaves, committed by a
    /// store transaction ([`LogCore::append_in`]).
    pub fn sign_committed(&self, size: u64) -> Result<Arc<SignedCheckpoint>, LogError> {
        self.publish(size)
    }

    /// Writes one batch and signs the checkpoint of the committed size.
    fn commit(&self, batch: &[Pending]) -> Result<Vec<Committed>, LogError> {
        let mut first = 0;
        let mut leaves = Vec::new();
        let seen = self.latest.read().unwrap_or_else(|p| p.into_inner()).size;
        let end = self.store.append_batch(&mut |start| {
            if start < seen {
                // The store holds fewer leaves than this log signed: its
                // rows were deleted or an older copy restored.
                return Err(LogError::Corrupt(format!(
                    "the log store holds {start} records, fewer than the {seen} this log signed (records were removed or an older copy restored)"
                )));
            }
            first = start;
            leaves = batch
                .iter()
                .enumerate()
                .map(|(i, p)| p.record.numbered(start + i as u64))
                .collect();
            Ok(leaves.clone())
        })?;
        let checkpoint = self.publish(end)?;
        Ok(leaves
            .into_iter()
            .enumerate()
            .map(|(i, leaf)| (first + i as u64, leaf, checkpoint.clone()))
            .collect())
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

    /// Leaves committed so far.
    pub fn size(&self) -> Result<u64, LogError> {
        self.store.size()
    }
}

fn batch_failed(e: &BatchError, shared: bool) -> LogError {
    if e.unavailable {
        return LogError::Unavailable(e.text.clone());
    }
    if shared {
        return LogError::Corrupt(e.text.clone());
    }
    poisoned(&e.text)
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
    use crate::log::store::hashes_for;
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

    /// The checkpoint `a` was answered with verifies, covers its record and
    /// proves it.
    fn assert_proven(log: &SharedLog, key: &VerifierKey, a: &Appended) {
        let cp = checkpoint::open(a.checkpoint.note.as_bytes(), key.name(), key).unwrap();
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
                            assert_proven(&log, &key, &a);
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
    fn a_numbered_record_is_the_record_serialized_with_its_seq() {
        let mut e = entry("release");
        e.reason = Some("quote \" backslash \\ newline \n and ünïcode".into());
        let time = "2026-12-02T13:00:00.123Z";
        let unnumbered = UnnumberedRecord::new(time, &e).unwrap();
        for seq in [0, 7, 10, 99, 12_345_678, u64::MAX - 1, u64::MAX] {
            let record = crate::log::Record {
                seq,
                time: time.into(),
                entry: e.clone(),
            };
            let leaf = unnumbered.numbered(seq);
            assert_eq!(leaf, serde_json::to_vec(&record).unwrap(), "seq {seq}");
            assert_eq!(
                serde_json::from_slice::<crate::log::Record>(&leaf).unwrap(),
                record
            );
        }
    }

    #[test]
    fn tasks_and_threads_share_batches_and_one_order() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(SharedLog::open(dir.path(), signer()).unwrap());
        let key = log.verifier_key();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        // 64 tasks on two workers wait for the log at once (no thread is
        // held while they wait), beside 4 threads appending as before.
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let log = log.clone();
                rt.spawn(async move {
                    let mut seqs = Vec::new();
                    for _ in 0..5 {
                        seqs.push(log.append_async(entry("task"), NOW).await.unwrap());
                    }
                    seqs
                })
            })
            .collect();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let log = log.clone();
                std::thread::spawn(move || {
                    (0..20)
                        .map(|_| log.append(entry("thread"), NOW).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut appended: Vec<Appended> = rt.block_on(async {
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.unwrap());
            }
            all
        });
        appended.extend(threads.into_iter().flat_map(|t| t.join().unwrap()));
        for a in &appended {
            assert_proven(&log, &key, a);
        }
        let mut seqs: Vec<u64> = appended.iter().map(|a| a.seq).collect();
        seqs.sort();
        assert_eq!(seqs, (0..400).collect::<Vec<_>>());
        drop(log);
        let intact = verify(dir.path(), &opts()).unwrap().unwrap();
        assert_eq!((intact.records, intact.checkpoint_size), (400, 400));
    }

    #[test]
    fn a_record_queued_by_a_dropped_task_is_still_logged() {
        // A client that goes away while its release waits for the log: the
        // task is dropped after queueing, and the record is logged anyway
        // (a grant the enclave never received, as `log verify` shows).
        let dir = tempfile::tempdir().unwrap();
        let log = SharedLog::open(dir.path(), signer()).unwrap();
        let mut waiting = Box::pin(log.append_async(entry("gone"), NOW));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        // One poll queues the record (it is then pending on the sync).
        let _ = std::future::Future::poll(waiting.as_mut(), &mut cx);
        drop(waiting);
        // The next append is answered after the dropped one's record.
        assert_eq!(log.append(entry("next"), NOW).unwrap().seq, 1);
        let leaves = log.store.read_leaves(0, 2).unwrap();
        assert!(String::from_utf8_lossy(&leaves[0]).contains("\"gone\""));
    }

    #[test]
    fn a_failed_sync_answers_waiting_tasks_and_refuses_later_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (store, fail, stored) = Flaky::open(dir.path());
        let log = Arc::new(SharedLog::new(Box::new(store), signer()).unwrap());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            assert_eq!(log.append_async(entry("ok"), NOW).await.unwrap().seq, 0);
            let signed = stored.load(Ordering::SeqCst);
            fail.store(true, Ordering::SeqCst);
            // Every task waiting on the failed batch (or queued behind it)
            // gets an error, none an index.
            let waiting: Vec<_> = (0..8)
                .map(|_| {
                    let log = log.clone();
                    tokio::spawn(async move { log.append_async(entry("lost"), NOW).await })
                })
                .collect();
            for w in waiting {
                assert!(w.await.unwrap().is_err());
            }
            assert_eq!(stored.load(Ordering::SeqCst), signed);
            assert_eq!(log.checkpoint().size, 1);
            fail.store(false, Ordering::SeqCst);
            let err = log.append_async(entry("after"), NOW).await.unwrap_err();
            assert!(err.to_string().contains("restart"), "{err}");
        });
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

    impl Flaky {
        /// A file store in `dir`, with its switch to fail and its count of
        /// stored checkpoints.
        fn open(dir: &Path) -> (Flaky, Arc<AtomicBool>, Arc<AtomicUsize>) {
            let fail = Arc::new(AtomicBool::new(false));
            let stored = Arc::new(AtomicUsize::new(0));
            let store = Flaky {
                inner: FileLogStore::open(dir).unwrap(),
                fail: fail.clone(),
                stored: stored.clone(),
            };
            (store, fail, stored)
        }
    }

    impl LogStore for Flaky {
        fn size(&self) -> Result<u64, LogError> {
            self.inner.size()
        }
        /// When failing: the leaves are written, the sync fails.
        fn append_batch(
            &self,
            build: &mut crate::log::store::BuildLeaves<'_>,
        ) -> Result<u64, LogError> {
            if !self.fail.load(Ordering::SeqCst) {
                return self.inner.append_batch(build);
            }
            let start = self.inner.len();
            for (i, leaf) in build(start)?.iter().enumerate() {
                let hashes = hashes_for(&self.inner, start + i as u64, leaf)?;
                self.inner.append(leaf, &hashes)?;
            }
            Err(LogError::Io {
                path: "flaky".into(),
                error: std::io::Error::other("EIO"),
            })
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
        fn store_checkpoint(&self, size: u64, note: &str) -> Result<bool, LogError> {
            self.stored.fetch_add(1, Ordering::SeqCst);
            self.inner.store_checkpoint(size, note)
        }
    }

    #[test]
    fn a_failed_sync_signs_nothing_and_refuses_every_later_append() {
        let dir = tempfile::tempdir().unwrap();
        let (store, fail, stored) = Flaky::open(dir.path());
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
