//! The audit log: every release, refusal after attestation, secret
//! creation, owner-approved change (applied or refused) and start of
//! `serve` is a leaf of an RFC 6962 Merkle tree, in one total order, and
//! the verifier signs a C2SP checkpoint (c2sp.org/tlog-checkpoint) of the
//! tree after every group commit.
//!
//! - [`store`]: where leaves, Go stored hashes and the latest signed
//!   checkpoint are kept ([`LogStore`]; the file backend is
//!   `DIR/audit.jsonl`, `DIR/audit.hashes`, `DIR/audit.checkpoint`).
//! - [`shared`]: [`SharedLog`], appends with group commit (one durable
//!   write and one checkpoint signature per batch of concurrent appends).
//! - [`key`]: the log's signing key, derived from the master key.
//! - [`audit`]: the offline check of a whole log (`log verify`).
//! - [`http`]: reading a log served as C2SP tlog-tiles (`log verify --url`).
//!
//! A leaf is a [`Record`]'s JSON; records name secrets and versions, never
//! values. What decides releases is evidence too: every start of `serve`
//! appends a `start` record (the trusted roots' fingerprints, whether any is
//! not the pinned AWS root, the policy digest, the software version), and
//! every release record names the root its document's chain ended in and
//! the SHA-256 of the document. A leaf is at most [`MAX_RECORD_LEN`] bytes:
//! a larger one is refused whole, never cut.

pub mod audit;
pub mod http;
pub mod key;
pub mod postgres;
pub mod shared;
pub mod store;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aws_lc_rs::digest::{digest, SHA256};
use hermetic_attestation::{Document, AWS_NITRO_ROOT_G1_SHA256};
use serde::{Deserialize, Serialize};

pub use audit::{verify, Break, Intact, VerifyOptions};
pub use key::{log_origin, log_signer};
pub use shared::{Appended, SharedLog, SignedCheckpoint};
pub use store::{FileLogStore, LogStore, CHECKPOINT_FILE, HASHES_FILE, LOG_FILE};

/// Most bytes of one leaf (the record's JSON and its newline). The largest
/// record a valid release can produce (64 names of 128 characters, 32 PCRs
/// of 64 bytes, a 128-character module id) is about 15 KiB; a test builds
/// it. A leaf over the cap is refused whole: the caller's action fails (a
/// release is then not granted), the log stays as it was. It also keeps
/// every leaf under the 65535 bytes an entry bundle's length prefix holds.
pub const MAX_RECORD_LEN: usize = 16 * 1024;
/// Characters of a document's `module_id` kept in a record (real ones are
/// about 40; `document_sha256` names the whole document).
pub const MAX_MODULE_ID_LOGGED: usize = 128;
/// `action` of the record `serve` appends at every start.
/// The log's public verifier key (C2SP note key), written by `serve` at each
/// start: public, for `log key`; the private half exists only in memory.
pub const LOG_KEY_PUB_FILE: &str = "log-key.pub";
pub const ACTION_START: &str = "start";
pub const ACTION_GENESIS: &str = "genesis";
pub const ACTION_UNSEALED: &str = "unsealed";
pub const ACTION_KEY_FORWARDED: &str = "key_forwarded";
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
    /// The master key came from the development custodian whose key lies
    /// in the data directory: whoever reads it can open the store.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not_hermetic: bool,
}

/// What a custody record names: never a share or the key, only the genesis
/// record's digest, the threshold and the custodians' fingerprints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustodyRecord {
    /// SHA-256 (hex) of the genesis record (`hermetic_custody::record_digest`).
    pub genesis_sha256: String,
    pub threshold: u8,
    /// Fingerprints of the custodians involved (all at genesis; those whose
    /// shares unsealed; none for a forwarded key).
    #[serde(default)]
    pub custodians: Vec<String>,
    /// `key_forwarded`: the peer's address as the operator gave it (on the
    /// joining replica; the running one does not know a joiner's address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// `key_forwarded` on the running replica: SHA-256 (hex) of the joining
    /// replica's attestation document the key was sealed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded_to: Option<String>,
    /// `key_forwarded` on the joining replica: SHA-256 (hex) of the running
    /// replica's attestation document the key came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_from: Option<String>,
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
    /// Custody of the master key: `genesis`, `unsealed`, `key_forwarded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custody: Option<CustodyRecord>,
    /// The id of the HTTP request that caused the record (the refusal
    /// body's and the `x-request-id` header's), when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// An entry as a leaf of the log: its JSON serialization (one line of
/// `audit.jsonl`) is exactly the leaf the Merkle tree hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// The leaf index, from 0: the record's place in the one total order.
    pub seq: u64,
    pub time: String,
    pub entry: Entry,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("audit log {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("audit log: {0}; run `hermetic-verifier log verify`")]
    Corrupt(String),
    #[error("audit log: a record of {len} bytes is over the {max}-byte cap; nothing was written")]
    RecordTooLarge { len: usize, max: usize },
    #[error("audit log: signing the checkpoint: {0}")]
    Sign(String),
    /// The shared log's database cannot be reached now (transient: nothing
    /// of the failed append was committed, or it was never acknowledged).
    #[error("audit log: the database is unavailable: {0}")]
    Unavailable(String),
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LogError + '_ {
    move |error| LogError::Io {
        path: path.to_owned(),
        error,
    }
}

/// The pinned AWS Nitro root's SHA-256, hex, as records name roots (see
/// [`Intact`]).
pub(crate) fn aws_root_hex() -> String {
    hex::encode(AWS_NITRO_ROOT_G1_SHA256)
}
