//! The audit log: every release, refusal, secret creation and owner-approved
//! change (applied or refused), appended to
//! `DIR/audit.jsonl` as a hash chain.
//!
//! Each line is `{"record": {...}, "hash": HEX}` where `hash` is SHA-256 of
//! the record's JSON and the record carries the previous line's hash in
//! `prev` (64 zeros for the first). A changed record breaks its own hash; a
//! removed one leaves a gap in `seq` and a `prev` that no longer matches.
//! `DIR/audit.head` holds the last sequence number and hash, so cutting
//! records off the end is caught too. Records name secrets and versions,
//! never values.
//!
//! What decides releases is evidence too: every start of `serve` appends a
//! `start` record (the trusted roots' fingerprints, whether any is not the
//! pinned AWS root, the policy digest, the software version), and every
//! release record names the root its document's chain ended in and the
//! SHA-256 of the document. [`verify`] flags starts and releases under a
//! root other than the pinned AWS root. A serialized line is at most
//! [`MAX_RECORD_LEN`] bytes: a larger one is refused whole, never cut.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use aws_lc_rs::digest::{digest, SHA256};
use hermetic_attestation::{rfc3339_ms, Document, AWS_NITRO_ROOT_G1_SHA256};
use serde::{Deserialize, Serialize};

/// File name of the log inside the data directory.
pub const LOG_FILE: &str = "audit.jsonl";
/// File name of the head (last seq and hash) inside the data directory.
pub const HEAD_FILE: &str = "audit.head";
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Most bytes of one log line (record, hash and newline). The largest
/// record a valid release can produce (64 names of 128 characters, 32 PCRs
/// of 64 bytes, a 128-character module id) is about 15 KiB; a test builds
/// it. A line over the cap is refused whole: the caller's action fails
/// (a release is then not granted), the log stays as it was.
pub const MAX_RECORD_LEN: usize = 16 * 1024;
/// Characters of a document's `module_id` kept in a record (real ones are
/// about 40; `document_sha256` names the whole document).
pub const MAX_MODULE_ID_LOGGED: usize = 128;
/// `action` of the record `serve` appends at every start.
pub const ACTION_START: &str = "start";
/// `action` of a periodic count of release refusals not recorded one by one.
pub const ACTION_REFUSAL_SUMMARY: &str = "refusal_summary";

/// Who acted: an attested enclave or an admin token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Who {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module_id: Option<String>,
    /// PCR index → lower-case hex.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pcrs: BTreeMap<u8, String>,
    /// SHA-256 of the document's public key, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_sha256: Option<String>,
    /// The challenge nonce the document answers, hex (public: it lets an
    /// auditor check that no nonce was ever granted twice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// First 16 hex digits of SHA-256 of the admin token, and its label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<String>,
    /// Client IP address as the verifier saw it (a proxy's, for enclaves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// SHA-256 (hex) of the trusted root the document's chain ended in
    /// (`cabundle[0]`); the pinned AWS root is
    /// 641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_sha256: Option<String>,
    /// SHA-256 (hex) of the attestation document as received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_sha256: Option<String>,
}

impl Who {
    /// The enclave identity fields of a verified document.
    pub fn enclave(doc: &Document) -> Who {
        Who {
            module_id: Some(doc.module_id.chars().take(MAX_MODULE_ID_LOGGED).collect()),
            pcrs: doc
                .pcrs
                .iter()
                .filter(|(_, v)| v.iter().any(|b| *b != 0))
                .map(|(i, v)| (*i, hex::encode(v)))
                .collect(),
            public_key_sha256: doc
                .public_key
                .as_deref()
                .map(|k| hex::encode(digest(&SHA256, k))),
            nonce: doc.nonce.as_deref().map(hex::encode),
            ..Who::default()
        }
    }

    /// [`Who::enclave`] plus the evidence of how it was attested: the root
    /// its chain ended in and the SHA-256 of the document bytes.
    pub fn attested(doc: &Document, root_sha256: &[u8; 32], document: &[u8]) -> Who {
        Who {
            root_sha256: Some(hex::encode(root_sha256)),
            document_sha256: Some(hex::encode(digest(&SHA256, document))),
            ..Who::enclave(doc)
        }
    }
}

/// What decides releases, recorded at every start of `serve`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Start {
    /// The software version (`hermetic-verifier --version`).
    pub version: String,
    /// Whether this build can trust roots other than the AWS root (the
    /// `test-roots` cargo feature).
    pub test_roots_build: bool,
    /// SHA-256 (hex) of every trusted root certificate's DER.
    pub trusted_roots: Vec<String>,
    /// Whether any trusted root is not the pinned AWS Nitro root.
    pub non_aws_root: bool,
    /// SHA-256 (hex) over every stored policy in canonical form (see
    /// `crate::policy::policy_digest`).
    pub policy_digest: String,
    /// How many policies that digest covers.
    pub policies: u64,
    /// Stored policies this version refuses to use (written before a rule
    /// was added): not in the digest, never used for a release, replaced
    /// only by their owners.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unusable_policies: Vec<String>,
}

/// Release refusals counted, not recorded one by one, since `since`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefusalSummary {
    /// RFC 3339 time the count started (the previous summary, or the start).
    pub since: String,
    /// Reason → number of refused requests.
    pub counts: BTreeMap<String, u64>,
}

/// A secret a record is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

/// What a `secret_create`, `change_applied` or `change_refused` record says
/// about an owner-approved change. Public keys, key ids, hashes and policies
/// only: never a value, sealed or not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeRecord {
    /// `policy`, `value`, `owners` or `delete` (absent for `secret_create`
    /// and for a statement too malformed to name one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The change version: the statement's (0 for `secret_create`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// SHA-256 of the submitted note (statement text and signature lines),
    /// hex: an auditor holding the statement file can match it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_sha256: Option<String>,
    /// The statement's content-sha256, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_sha256: Option<String>,
    /// The approving owners' key ids, `name+hhhhhhhh`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// The owner set's verifier keys, after `secret_create` or an `owners`
    /// change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u32>,
    /// For a `policy` change: the full TOML the owners signed (PCR values
    /// included), so the log alone says what was allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

/// What the caller logs. (`..Entry::default()` fills the optional parts.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// `release`, `start`, `refusal_summary`, `secret_create`,
    /// `change_applied` or `change_refused`.
    pub action: String,
    /// `granted`, `refused` or `done`.
    pub verdict: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub secrets: Vec<SecretRef>,
    #[serde(default)]
    pub who: Who,
    /// Only in `start` records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<Start>,
    /// Only in `refusal_summary` records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusals: Option<RefusalSummary>,
    /// Owner-approved change details (`secret_create`, `change_*` records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<ChangeRecord>,
}

/// An entry as chained into the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub seq: u64,
    pub time: String,
    pub prev: String,
    pub entry: Entry,
}

#[derive(Serialize, Deserialize)]
struct Line {
    record: serde_json::Value,
    hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Head {
    seq: u64,
    hash: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("audit log {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("audit log: the last record is unreadable ({0}); run `hermetic-verifier log verify`")]
    Corrupt(String),
    #[error("audit log: a record of {len} bytes is over the {max}-byte cap; nothing was written")]
    RecordTooLarge { len: usize, max: usize },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LogError + '_ {
    move |error| LogError::Io {
        path: path.to_owned(),
        error,
    }
}

fn hash_of(record_json: &[u8]) -> String {
    hex::encode(digest(&SHA256, record_json))
}

/// The appending side. Callers serialize appends (one writer at a time).
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    head_path: PathBuf,
    file: File,
    /// Bytes of complete lines in the file.
    len: u64,
    seq: u64,
    hash: String,
}

impl AuditLog {
    /// Opens `DIR/audit.jsonl`, continuing its chain. A torn last line (a
    /// crash mid-append, never acknowledged) is cut off.
    pub fn open(data_dir: &Path) -> Result<AuditLog, LogError> {
        let path = data_dir.join(LOG_FILE);
        let head_path = data_dir.join(HEAD_FILE);
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        let mut seq = 0;
        let mut hash = GENESIS.to_owned();
        let mut good_len = 0u64;
        {
            let mut reader = BufReader::new(&mut file);
            reader.seek(SeekFrom::Start(0)).map_err(io(&path))?;
            let mut line = String::new();
            let mut offset = 0u64;
            loop {
                line.clear();
                let n = reader.read_line(&mut line).map_err(io(&path))?;
                if n == 0 {
                    break;
                }
                offset += n as u64;
                if !line.ends_with('\n') {
                    break; // torn tail
                }
                let parsed: Line = serde_json::from_str(&line)
                    .map_err(|e| LogError::Corrupt(format!("line ending at byte {offset}: {e}")))?;
                seq = parsed
                    .record
                    .get("seq")
                    .and_then(|v| v.as_u64())
                    .ok_or_else(|| LogError::Corrupt("a record has no seq".into()))?;
                hash = parsed.hash;
                good_len = offset;
            }
        }
        if file.metadata().map_err(io(&path))?.len() != good_len {
            file.set_len(good_len).map_err(io(&path))?;
            file.sync_all().map_err(io(&path))?;
        }
        Ok(AuditLog {
            path,
            head_path,
            file,
            len: good_len,
            seq,
            hash,
        })
    }

    /// Appends `entry` at `now` and syncs it to disk before returning its
    /// sequence number.
    pub fn append(&mut self, entry: Entry, now: Duration) -> Result<u64, LogError> {
        let seq = self.write(entry, now)?;
        self.file.sync_data().map_err(io(&self.path))?;
        write_head(&self.head_path, seq, &self.hash)?;
        Ok(seq)
    }

    /// Writes one line without syncing. A failed write is cut back off, so a
    /// torn line never sits in the middle of the chain.
    fn write(&mut self, entry: Entry, now: Duration) -> Result<u64, LogError> {
        let record = Record {
            seq: self.seq + 1,
            time: rfc3339_ms(u64::try_from(now.as_millis()).unwrap_or(u64::MAX)),
            prev: self.hash.clone(),
            entry,
        };
        let json = serde_json::to_vec(&record).map_err(|e| LogError::Io {
            path: self.path.clone(),
            error: std::io::Error::other(e),
        })?;
        let hash = hash_of(&json);
        let mut line = Vec::with_capacity(json.len() + 90);
        line.extend_from_slice(b"{\"record\":");
        line.extend_from_slice(&json);
        line.extend_from_slice(b",\"hash\":\"");
        line.extend_from_slice(hash.as_bytes());
        line.extend_from_slice(b"\"}\n");
        if line.len() > MAX_RECORD_LEN {
            return Err(LogError::RecordTooLarge {
                len: line.len(),
                max: MAX_RECORD_LEN,
            });
        }
        if let Err(e) = self.file.write_all(&line) {
            let _ = self.file.set_len(self.len);
            return Err(io(&self.path)(e));
        }
        self.len += line.len() as u64;
        self.seq = record.seq;
        self.hash = hash;
        Ok(self.seq)
    }

    pub fn last_seq(&self) -> u64 {
        self.seq
    }
}

/// Replaces the head file atomically (temporary file, sync, rename).
fn write_head(head_path: &Path, seq: u64, hash: &str) -> Result<(), LogError> {
    let tmp = head_path.with_extension("head.tmp");
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(&head_bytes(seq, hash)).map_err(io(&tmp))?;
    f.sync_data().map_err(io(&tmp))?;
    std::fs::rename(&tmp, head_path).map_err(io(head_path))
}

/// Bytes of every head: `{"seq":N,"hash":"…"}` (at most 102 bytes) padded
/// with spaces, which JSON readers skip, and a newline. A fixed width lets
/// the head be rewritten in place without ever changing its size.
const HEAD_WIDTH: usize = 128;

fn head_bytes(seq: u64, hash: &str) -> Vec<u8> {
    let head = Head {
        seq,
        hash: hash.to_owned(),
    };
    let mut text = serde_json::to_string(&head)
        .unwrap_or_default()
        .into_bytes();
    text.resize(text.len().max(HEAD_WIDTH - 1), b' ');
    text.push(b'\n');
    text
}

/// Replaces the head's contents. The first time (per writer) by
/// [`write_head`]'s atomic create-and-rename, so that a crash never leaves
/// an empty or a foreign-width head; after that by overwriting the same
/// [`HEAD_WIDTH`] bytes in place and syncing them, which needs no new inode,
/// no rename and no size change. The head fits in one disk sector, so a
/// crash leaves either the old or the new one.
fn rewrite_head(
    head_path: &Path,
    in_place: &mut Option<File>,
    seq: u64,
    hash: &str,
) -> Result<(), LogError> {
    use std::os::unix::fs::FileExt;
    let Some(file) = in_place else {
        write_head(head_path, seq, hash)?;
        *in_place = Some(
            OpenOptions::new()
                .write(true)
                .open(head_path)
                .map_err(io(head_path))?,
        );
        return Ok(());
    };
    file.write_all_at(&head_bytes(seq, hash), 0)
        .map_err(io(head_path))?;
    file.sync_data().map_err(io(head_path))
}

/// An [`AuditLog`] shared by many threads, with group commit.
///
/// Each caller writes its line under a short lock, then waits until an
/// `fdatasync` that started after its write has completed: one caller at a
/// time leads a sync covering every line written so far, and everyone whose
/// line it covered returns together. `append` returns only once its own
/// record is on disk, so a grant is never answered before its record is
/// durable; concurrent appenders share syncs instead of queueing behind one
/// each.
///
/// The head file (`audit.head`) follows in the background: after each sync a
/// helper thread replaces it with the last synced record's sequence number
/// and hash (coalescing, so it is never behind by more than the syncs done
/// while it wrote). It never names a record that is not yet durable, and a
/// crash can only leave it behind the log, which [`verify`] accepts, as it
/// always has for a crash between the log's sync and the head's. Keeping
/// the head's own sync off the answer's path halves the syncs a release
/// waits for. Dropping the log writes the final head.
///
/// A failed sync poisons the log: the kernel may have dropped the unsynced
/// pages and a later sync could report success without them, so from then
/// on every append fails until the service is restarted (reopening cuts a
/// torn tail and continues the chain).
#[derive(Debug)]
pub struct SharedLog {
    writer: Mutex<AuditLog>,
    sync: Mutex<SyncState>,
    synced: Condvar,
    /// A handle on the log file for syncing while the writer lock is free.
    file: File,
    path: PathBuf,
    head: HeadWriter,
}

#[derive(Debug)]
struct SyncState {
    /// Every record up to this one is durable.
    seq: u64,
    /// A caller is running `fdatasync` now.
    syncing: bool,
    /// The error of a failed sync, once one has failed.
    failed: Option<std::io::ErrorKind>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every update under these locks leaves consistent state behind.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SharedLog {
    pub fn new(log: AuditLog) -> Result<SharedLog, LogError> {
        let file = log.file.try_clone().map_err(io(&log.path))?;
        let head = HeadWriter::start(log.head_path.clone(), log.seq, &log.path)?;
        Ok(SharedLog {
            sync: Mutex::new(SyncState {
                seq: log.seq,
                syncing: false,
                failed: None,
            }),
            synced: Condvar::new(),
            file,
            path: log.path.clone(),
            writer: Mutex::new(log),
            head,
        })
    }

    /// Appends `entry` and returns its sequence number once it is synced.
    pub fn append(&self, entry: Entry, now: Duration) -> Result<u64, LogError> {
        if let Some(kind) = lock(&self.sync).failed {
            return Err(self.poisoned(kind));
        }
        let seq = lock(&self.writer).write(entry, now)?;
        let mut state = lock(&self.sync);
        loop {
            if let Some(kind) = state.failed {
                return Err(self.poisoned(kind));
            }
            if state.seq >= seq {
                return Ok(seq); // a sync that started after our write covered it
            }
            if state.syncing {
                state = self.synced.wait(state).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            // Lead a sync of every line written so far (ours included).
            state.syncing = true;
            drop(state);
            let (target, hash) = {
                let writer = lock(&self.writer);
                (writer.seq, writer.hash.clone())
            };
            let result = self.file.sync_data();
            state = lock(&self.sync);
            state.syncing = false;
            match result {
                Ok(()) => {
                    state.seq = state.seq.max(target);
                    self.head.publish(target, hash);
                }
                Err(e) => {
                    eprintln!(
                        "hermetic-verifier: level=error event=audit_log_sync_failed path={} error={e}",
                        self.path.display()
                    );
                    state.failed = Some(e.kind());
                }
            }
            self.synced.notify_all();
        }
    }

    fn poisoned(&self, kind: std::io::ErrorKind) -> LogError {
        LogError::Io {
            path: self.path.clone(),
            error: std::io::Error::new(
                kind,
                "an earlier sync of the audit log failed; restart the service",
            ),
        }
    }

    pub fn last_seq(&self) -> u64 {
        lock(&self.writer).seq
    }
}

/// The background writer of `audit.head`.
#[derive(Debug)]
struct HeadWriter {
    shared: Arc<(Mutex<HeadState>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct HeadState {
    /// The newest synced (seq, hash) not yet written to the head.
    pending: Option<(u64, String)>,
    stop: bool,
}

impl HeadWriter {
    fn start(head_path: PathBuf, mut written: u64, log_path: &Path) -> Result<Self, LogError> {
        let shared: Arc<(Mutex<HeadState>, Condvar)> = Arc::default();
        let theirs = shared.clone();
        let thread = std::thread::Builder::new()
            .name("audit-head".into())
            .spawn(move || {
                let (state, wake) = &*theirs;
                let mut in_place: Option<File> = None;
                loop {
                    let next = {
                        let mut s = lock(state);
                        while s.pending.is_none() && !s.stop {
                            s = wake.wait(s).unwrap_or_else(|p| p.into_inner());
                        }
                        match s.pending.take() {
                            Some(next) => next,
                            None => return, // stopping, nothing left to write
                        }
                    };
                    let (seq, hash) = next;
                    if seq <= written {
                        continue;
                    }
                    match rewrite_head(&head_path, &mut in_place, seq, &hash) {
                        Ok(()) => written = seq,
                        // The head only lags (as after a crash); the next
                        // sync tries again.
                        Err(e) => {
                            in_place = None;
                            eprintln!(
                                "hermetic-verifier: level=error event=audit_head_write_failed error={e}"
                            )
                        }
                    }
                }
            })
            .map_err(io(log_path))?;
        Ok(HeadWriter {
            shared,
            thread: Some(thread),
        })
    }

    /// Asks for the head to name `seq` (already durable in the log).
    fn publish(&self, seq: u64, hash: String) {
        let (state, wake) = &*self.shared;
        let mut s = lock(state);
        if s.pending.as_ref().is_none_or(|(p, _)| *p < seq) {
            s.pending = Some((seq, hash));
            wake.notify_one();
        }
    }
}

impl Drop for HeadWriter {
    fn drop(&mut self) {
        let (state, wake) = &*self.shared;
        lock(state).stop = true;
        wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join(); // writes what is pending first
        }
    }
}

/// Where the chain first breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// 1-based line number in `audit.jsonl` (0: the head file).
    pub line: usize,
    /// The sequence number of the record at fault.
    pub seq: u64,
    pub what: String,
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "record {} (line {}): {}", self.seq, self.line, self.what)
    }
}

/// An intact chain, and what in it deserves an auditor's attention. These
/// flags are warnings: the chain itself is intact.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Intact {
    pub records: u64,
    pub last_hash: String,
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
        let aws = hex::encode(AWS_NITRO_ROOT_G1_SHA256);
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

/// Checks the whole chain in `DIR`: `Ok` when intact, the first break otherwise.
pub fn verify(data_dir: &Path) -> Result<Result<Intact, Break>, LogError> {
    let path = data_dir.join(LOG_FILE);
    let file = File::open(&path).map_err(io(&path))?;
    let head_path = data_dir.join(HEAD_FILE);
    // The head is read first so the record it names can be compared while
    // scanning (it may lag the log by the records of a crash, never lead it).
    let head = match std::fs::read_to_string(&head_path) {
        Ok(text) => match serde_json::from_str::<Head>(&text) {
            Ok(h) => Some(h),
            Err(e) => {
                return Ok(Err(Break {
                    line: 0,
                    seq: 0,
                    what: format!("{HEAD_FILE} is unreadable: {e}"),
                }))
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(&head_path)(e)),
    };
    let mut prev = GENESIS.to_owned();
    let mut expected_seq = 1u64;
    let mut intact = Intact::default();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line_no = i + 1;
        let line = line.map_err(io(&path))?;
        let brk = |what: String| {
            Ok(Err(Break {
                line: line_no,
                seq: expected_seq,
                what,
            }))
        };
        let parsed: Line = match serde_json::from_str(&line) {
            Ok(l) => l,
            Err(e) => return brk(format!("not a log line: {e}")),
        };
        let record: Record = match serde_json::from_value(parsed.record) {
            Ok(r) => r,
            Err(e) => return brk(format!("not a log record: {e}")),
        };
        if record.seq != expected_seq {
            return brk(format!(
                "record {expected_seq} is missing: line {line_no} holds record {} (a record was deleted or reordered)",
                record.seq
            ));
        }
        if record.prev != prev {
            return brk("its prev hash does not match the record before it (a record before it was changed, deleted or inserted)".into());
        }
        let json = serde_json::to_vec(&record).unwrap_or_default();
        if hash_of(&json) != parsed.hash {
            return brk("its contents do not match its hash (the record was modified)".into());
        }
        if let Some(head) = &head {
            if head.seq == record.seq && head.hash != parsed.hash {
                return brk(format!(
                    "its hash does not match {HEAD_FILE} (the chain was rewritten from here or earlier)"
                ));
            }
        }
        intact.note(&record);
        prev = parsed.hash;
        expected_seq += 1;
    }
    let records = expected_seq - 1;
    match head {
        Some(head) if head.seq > records => Ok(Err(Break {
            line: records as usize + 1,
            seq: records + 1,
            what: format!(
                "records {}..={} are missing: the log ends early (the head says {})",
                records + 1,
                head.seq,
                head.seq
            ),
        })),
        None if records > 0 => Ok(Err(Break {
            line: 0,
            seq: records,
            what: format!("{HEAD_FILE} is missing"),
        })),
        _ => Ok(Ok(Intact {
            records,
            last_hash: prev,
            ..intact
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: &str) -> Entry {
        Entry {
            action: action.into(),
            verdict: "done".into(),
            reason: None,
            secrets: vec![SecretRef {
                name: "a".into(),
                version: Some(1),
            }],
            who: Who::default(),
            ..Entry::default()
        }
    }

    #[test]
    fn a_record_over_the_cap_is_refused_whole() {
        let dir = tempfile::tempdir().unwrap();
        let now = Duration::from_secs(1_800_000_000);
        let mut log = AuditLog::open(dir.path()).unwrap();
        log.append(entry("one"), now).unwrap();
        let before = std::fs::read(dir.path().join(LOG_FILE)).unwrap();
        let mut big = entry("big");
        big.reason = Some("x".repeat(MAX_RECORD_LEN));
        match log.append(big, now) {
            Err(LogError::RecordTooLarge { len, max }) => {
                assert!(len > max);
                assert_eq!(max, MAX_RECORD_LEN);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(std::fs::read(dir.path().join(LOG_FILE)).unwrap(), before);
        // The chain goes on from the last written record.
        assert_eq!(log.append(entry("two"), now).unwrap(), 2);
        assert_eq!(verify(dir.path()).unwrap().unwrap().records, 2);
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
        let mut log = AuditLog::open(dir.path()).unwrap();
        log.append(release, Duration::from_secs(253_402_300_799))
            .unwrap();
        let len = std::fs::metadata(dir.path().join(LOG_FILE)).unwrap().len();
        assert!(len as usize <= MAX_RECORD_LEN, "{len}");
        let text = std::fs::read_to_string(dir.path().join(LOG_FILE)).unwrap();
        assert!(!text.contains(&"m".repeat(MAX_MODULE_ID_LOGGED + 1)));
    }

    #[test]
    fn chain_round_trip_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let now = Duration::from_secs(1_800_000_000);
        {
            let mut log = AuditLog::open(dir.path()).unwrap();
            assert_eq!(log.append(entry("one"), now).unwrap(), 1);
            assert_eq!(log.append(entry("two"), now).unwrap(), 2);
        }
        let mut log = AuditLog::open(dir.path()).unwrap();
        assert_eq!(log.append(entry("three"), now).unwrap(), 3);
        let intact = verify(dir.path()).unwrap().unwrap();
        assert_eq!(intact.records, 3);
    }

    #[test]
    fn shared_log_group_commit_keeps_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let now = Duration::from_secs(1_800_000_000);
        let log = std::sync::Arc::new(SharedLog::new(AuditLog::open(dir.path()).unwrap()).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let log = log.clone();
                std::thread::spawn(move || {
                    (0..50)
                        .map(|_| log.append(entry("x"), now).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut seqs: Vec<u64> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        seqs.sort();
        assert_eq!(seqs, (1..=400).collect::<Vec<_>>());
        // While running, the head may only lag the log; never lead it.
        let intact = verify(dir.path()).unwrap().unwrap();
        assert_eq!(intact.records, 400);
        let head: Head =
            serde_json::from_slice(&std::fs::read(dir.path().join(HEAD_FILE)).unwrap()).unwrap();
        assert!(head.seq <= 400);
        // Dropping the log writes the final head: the last record and its hash.
        drop(log);
        let head: Head =
            serde_json::from_slice(&std::fs::read(dir.path().join(HEAD_FILE)).unwrap()).unwrap();
        assert_eq!(
            head,
            Head {
                seq: 400,
                hash: intact.last_hash
            }
        );
    }

    #[test]
    fn a_reopened_shared_log_continues_the_chain_and_its_head() {
        let dir = tempfile::tempdir().unwrap();
        let now = Duration::from_secs(1_800_000_000);
        for round in 1..=3u64 {
            let log = SharedLog::new(AuditLog::open(dir.path()).unwrap()).unwrap();
            assert_eq!(log.last_seq(), (round - 1) * 2);
            log.append(entry("a"), now).unwrap();
            assert_eq!(log.append(entry("b"), now).unwrap(), round * 2);
        }
        let intact = verify(dir.path()).unwrap().unwrap();
        assert_eq!(intact.records, 6);
        let head_bytes = std::fs::read(dir.path().join(HEAD_FILE)).unwrap();
        assert_eq!(
            head_bytes.len(),
            HEAD_WIDTH,
            "fixed width, rewritten in place"
        );
        let head: Head = serde_json::from_slice(&head_bytes).unwrap();
        assert_eq!(head.seq, 6);
        // Cutting the last record off is still caught by the head.
        let text = std::fs::read_to_string(dir.path().join(LOG_FILE)).unwrap();
        let cut: String = text.lines().take(5).map(|l| format!("{l}\n")).collect();
        std::fs::write(dir.path().join(LOG_FILE), cut).unwrap();
        let brk = verify(dir.path()).unwrap().unwrap_err();
        assert_eq!(brk.seq, 6, "{brk}");
    }

    #[test]
    fn a_failed_sync_refuses_that_append_and_every_later_one() {
        let dir = tempfile::tempdir().unwrap();
        let now = Duration::from_secs(1_800_000_000);
        let mut log = SharedLog::new(AuditLog::open(dir.path()).unwrap()).unwrap();
        assert_eq!(log.append(entry("ok"), now).unwrap(), 1);
        // fdatasync on a pipe fails (EINVAL): a stand-in for a failing disk.
        let (_reader, writer) = std::io::pipe().unwrap();
        let good = std::mem::replace(
            &mut log.file,
            File::from(std::os::fd::OwnedFd::from(writer)),
        );
        assert!(log.append(entry("lost"), now).is_err());
        // Even with a working file again, nothing more is acknowledged: the
        // kernel may have dropped the pages that failed to sync.
        log.file = good;
        let err = log.append(entry("after"), now).unwrap_err();
        assert!(err.to_string().contains("restart"), "{err}");
        drop(log);
        // The log is still a chain (the unacknowledged record is in it: the
        // log may say more than was answered, never less); reopening continues it.
        assert_eq!(verify(dir.path()).unwrap().unwrap().records, 2);
        let log = SharedLog::new(AuditLog::open(dir.path()).unwrap()).unwrap();
        assert_eq!(log.append(entry("reopened"), now).unwrap(), 3);
    }

    #[test]
    fn torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let now = Duration::from_secs(1_800_000_000);
        {
            let mut log = AuditLog::open(dir.path()).unwrap();
            log.append(entry("one"), now).unwrap();
        }
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(LOG_FILE))
            .unwrap();
        f.write_all(b"{\"record\":{\"seq\":2").unwrap();
        let mut log = AuditLog::open(dir.path()).unwrap();
        assert_eq!(log.append(entry("two"), now).unwrap(), 2);
        assert_eq!(verify(dir.path()).unwrap().unwrap().records, 2);
    }
}
