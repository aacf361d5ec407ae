//! The embedded store: one redb file in the data directory.
//!
//! Every row of every table is authenticated encryption under a key derived
//! from the master key and bound to its table, its row key and its version
//! (`rows.rs`): whoever can write the data directory cannot change a policy,
//! an owner set, a value or a token entry, move one row under another key,
//! or put back an older row of a secret, without the read refusing it
//! (`row_tampered`, `row_rolled_back`). Every write is a redb transaction
//! committed with immediate durability before it returns, so the API
//! acknowledges only what survives a crash.
//!
//! Each secret has one **head** row (its owners, its change version, its
//! last value version, and the change version its policy was written at);
//! the head is rewritten by every change and names the version each of the
//! secret's other rows must carry. A policy or value row from before the
//! last change, put back alone, then disagrees with the head and is refused.
//! Putting back a head together with every row it names (a consistent older
//! copy of the secret, or of the whole file) opens cleanly: only something
//! the host cannot roll back alone — the witnessed log — can tell that
//! apart (README, "What is at rest").
//!
//! A secret's versions only grow: deleting a secret keeps a tombstone head
//! with its last value version and its last change version, so a secret
//! re-created under the same name never reuses a (name, version) pair that an
//! enclave may already have seen, and no statement approved for the old
//! secret can be replayed on the new one.
//!
//! Secrets change only through [`Store::apply_change`]: the caller's
//! decision (the owners' K-of-N check, made on the state read inside the
//! same write transaction) and its audit record run before the commit, so
//! two submissions can never both pass against the same version.
//!
//! The store also keeps the deployment id (generated once, when the store is
//! created) and the X25519 intake key that owners seal values to.
//!
//! Stores written by the previous version (clear policies and token hashes,
//! values sealed directly under the master key) are migrated when opened
//! with their master key, in one transaction (`legacy.rs`).

pub mod backend;
mod legacy;
mod master_key;
mod parsed;
pub mod pg_connect;
pub mod postgres;
mod rows;

use std::collections::BTreeMap;
use std::path::Path;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use backend::{Backend, Outcome, ReadRows, RedbBackend, RedbWrite, Row, Table, WriteRows};
use hermetic_approval::{check_deployment_id, key_label, OwnerSet};
use hermetic_envelope::{EnclaveKey, Zeroizing};
use redb::{Database, TableDefinition};

pub(crate) use master_key::write_private;
pub use master_key::{MasterKey, MASTER_KEY_LEN};

use crate::policy::{PolicyFile, SecretPolicy};
use rows::{RowFault, RowKey, TokenMac};

/// File name of the store inside the data directory.
pub const STORE_FILE: &str = "hermetic.redb";

/// name → sealed [`Head`] (row version: the change version).
const HEADS: TableDefinition<&str, &[u8]> = TableDefinition::new("v2/secrets");
/// (name, value version) → sealed value (row version: the value version).
const VALUES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("v2/secret_values");
/// name → sealed policy TOML, one `[secrets.NAME]` (row version: the change
/// version it was written at, which the head names).
const POLICIES: TableDefinition<&str, &[u8]> = TableDefinition::new("v2/policies");
/// HMAC(SHA-256(token)) → sealed label (row version 0).
const TOKENS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("v2/admin_tokens");
/// Store-wide facts, sealed under the meta key (row version 0).
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("v2/meta");

/// Table names as bound into each row's associated data.
const T_HEADS: &str = "secrets";
const T_VALUES: &str = "secret_values";
const T_POLICIES: &str = "policies";
const T_TOKENS: &str = "admin_tokens";
const T_META: &str = "meta";

const KEY_CHECK: &str = "master_key_check";
const KEY_CHECK_PLAINTEXT: &[u8] = b"hermetic master key check";
const DEPLOYMENT: &str = "deployment";
const INTAKE_KEY: &str = "intake_key_seed";
const INTAKE_SEED_LEN: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Db(String),
    /// The database cannot be reached now (down, restarting, connection
    /// lost): transient, retried by the client; nothing was committed.
    #[error("the store's database is unavailable: {0}")]
    Unavailable(String),
    #[error("I/O: {0}")]
    Io(String),
    #[error("master key: {0}")]
    MasterKey(String),
    #[error("store crypto: {0}")]
    Crypto(&'static str),
    #[error("no secret named {0:?}")]
    NotFound(String),
    #[error("a secret named {0:?} exists")]
    Exists(String),
    #[error("stored policy for {0:?} is unreadable")]
    BadPolicy(String),
    #[error("stored owner set for {0:?} is unreadable")]
    BadOwners(String),
    #[error(
        "{0:?} has no owner set (it was stored before owner sets existed): it cannot be changed"
    )]
    NoOwners(String),
    #[error("this store belongs to deployment {stored:?}, not {given:?} (a deployment id is set once, when the store is created)")]
    DeploymentMismatch { stored: String, given: String },
    #[error("invalid deployment id {id:?}: {reason}")]
    BadDeployment { id: String, reason: &'static str },
    /// A row does not open as the row of its table and key (edited, moved
    /// from another key, or missing where its secret's head names it).
    #[error("the {table} row of {key:?} was altered, moved or removed outside the verifier; it is not used")]
    RowTampered { table: &'static str, key: String },
    /// A row opens but is not the one its secret's head names: an older row
    /// put back (or a head put back under newer rows).
    #[error("the {table} row of {key:?} is not the current one (version {found}, expected {expected}): it was rolled back outside the verifier and is not used")]
    RowRolledBack {
        table: &'static str,
        key: String,
        found: u64,
        expected: u64,
    },
}

impl StoreError {
    pub fn reason(&self) -> &'static str {
        match self {
            StoreError::NotFound(_) => "unknown_secret",
            StoreError::Exists(_) => "secret_exists",
            StoreError::NoOwners(_) => "no_owners",
            StoreError::RowTampered { .. } => "row_tampered",
            StoreError::RowRolledBack { .. } => "row_rolled_back",
            StoreError::Unavailable(_) => "store_unavailable",
            _ => "store_error",
        }
    }

    /// Whether this is a refused row (tampered or rolled back).
    pub fn is_row_refusal(&self) -> bool {
        matches!(
            self,
            StoreError::RowTampered { .. } | StoreError::RowRolledBack { .. }
        )
    }
}

fn db<E: Into<redb::Error>>(e: E) -> StoreError {
    StoreError::Db(e.into().to_string())
}

fn tampered(table: &'static str, key: impl Into<String>) -> StoreError {
    StoreError::RowTampered {
        table,
        key: key.into(),
    }
}

fn fault<'a>(table: &'static str, key: &'a str) -> impl FnOnce(RowFault) -> StoreError + 'a {
    move |RowFault::Tampered| tampered(table, key)
}

/// A decrypted secret value, wiped on drop.
pub type SecretValue = Zeroizing<Vec<u8>>;

/// One live secret as a release reads it ([`Store::release_view`]): its
/// policy and its latest value, sealed at rest until
/// [`Store::open_release_value`]. Not `Debug`: it holds a value (sealed).
pub struct ReleaseView {
    /// Its policy, if it has one.
    pub policy: Option<SecretPolicy>,
    /// The latest value's version and its row as read (`None` when the row
    /// is missing: refused as tampered when opened).
    value: Option<(u64, Option<Vec<u8>>)>,
}

/// What may be listed about a secret: never its value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SecretInfo {
    pub name: String,
    /// The last value version ever issued under this name (0: none yet).
    pub latest_version: u64,
    /// The value versions held.
    pub versions: Vec<u64>,
    pub has_policy: bool,
    /// The owners' signed-note verifier keys.
    #[serde(default)]
    pub owners: Vec<String>,
    /// How many distinct owners must sign a change.
    #[serde(default)]
    pub threshold: u32,
    /// The change version: 0 at creation, then the version of the last applied
    /// change; a statement must name a greater one.
    #[serde(default)]
    pub version: u64,
}

/// Every stored policy, split by whether this version can use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPolicies {
    /// Name (byte order) and policy.
    pub usable: Vec<(String, SecretPolicy)>,
    /// Names of policies written before a rule this version enforces.
    pub unusable: Vec<String>,
    /// Policy rows refused as tampered or rolled back (never used; the
    /// secret's releases are refused with the row's reason).
    pub refused: Vec<(String, StoreError)>,
}

/// What an owner-approved change is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretState {
    pub owners: OwnerSet,
    /// The change version.
    pub version: u64,
}

/// A change to apply, already approved by the caller.
pub enum StoreChange {
    /// Replace the release policy.
    Policy(SecretPolicy),
    /// Store a new value version (encrypted under the master key here).
    Value(SecretValue),
    /// Replace the owner set.
    Owners(OwnerSet),
    /// Delete every value version, the policy and the owners (versions are kept).
    Delete,
}

/// What [`Store::apply_change`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The secret's change version now.
    pub version: u64,
    /// For a value change: the new value version.
    pub value_version: Option<u64>,
    /// For a delete: the value versions removed.
    pub deleted_versions: Vec<u64>,
}

/// What opening a store of the previous version converted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Migrated {
    pub secrets: u64,
    pub values: u64,
    pub policies: u64,
    pub tokens: u64,
}

/// A secret's head row: everything about it but its value and policy, and
/// the versions those rows must carry.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Head {
    /// The last value version ever issued under this name.
    last: u64,
    /// Created and not deleted.
    live: bool,
    /// The change version (also the row's authenticated version).
    version: u64,
    /// Whether the value at `last` is held (a secret created, or re-created,
    /// without a value yet has none).
    value: bool,
    /// The change version the policy row was written at, if there is one.
    policy: Option<u64>,
    /// Canonical owner-set text; empty once deleted (or, for a secret
    /// migrated from before owner sets, never set).
    owners: String,
}

/// The row key of a value row, as bound into its associated data.
fn value_key(name: &str, version: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 9);
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out.extend_from_slice(&version.to_be_bytes());
    out
}

pub struct Store {
    backend: Box<dyn Backend>,
    meta: RowKey,
    rows: RowKey,
    tokens: TokenMac,
    rng: SystemRandom,
    deployment: String,
    migrated: Option<Migrated>,
    /// Per secret, the change version something the host cannot roll back
    /// alone (the log) says it reached: a head below it is refused.
    floors: BTreeMap<String, u64>,
    /// Policies parsed on earlier reads, by their exact bytes.
    parsed: parsed::ParsedPolicies,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) `DIR/hermetic.redb`; refuses a master key that
    /// does not open the store's check value. `deployment` sets the
    /// deployment id of a new store (generated, `hermetic-<32 hex>`, when
    /// `None`); for an existing store it must be `None` or the stored id.
    /// A store of the previous version is migrated (see [`Store::migrated`]).
    pub fn open(
        data_dir: &Path,
        key: &MasterKey,
        deployment: Option<&str>,
    ) -> Result<Store, StoreError> {
        check_deployment(deployment)?;
        let database = Database::create(data_dir.join(STORE_FILE)).map_err(db)?;
        let meta = RowKey::meta(key)?;
        let rng = SystemRandom::new();
        let tx = database.begin_write().map_err(db)?;
        let legacy = legacy::Legacy::find(&tx, key)?;
        let id = init_meta(
            &mut RedbWrite(&tx),
            &meta,
            legacy.as_ref(),
            deployment,
            &rng,
        )?;
        let rows = RowKey::rows(key, &id)?;
        let tokens = TokenMac::new(key, &id)?;
        {
            tx.open_table(HEADS).map_err(db)?;
            tx.open_table(VALUES).map_err(db)?;
            tx.open_table(POLICIES).map_err(db)?;
            tx.open_table(TOKENS).map_err(db)?;
        }
        let mut store = Store {
            // The database is in use by the opening transaction until it
            // commits; the migration only seals rows through `store`.
            backend: Box::new(backend::Opening),
            meta,
            rows,
            tokens,
            rng,
            deployment: id,
            migrated: None,
            floors: BTreeMap::new(),
            parsed: parsed::ParsedPolicies::default(),
        };
        if let Some(legacy) = legacy {
            store.migrated = Some(legacy.migrate(&tx, &store)?);
        }
        tx.commit().map_err(db)?;
        store.backend = Box::new(RedbBackend { db: database });
        Ok(store)
    }

    /// Opens (or creates) a store on another engine (PostgreSQL), with the
    /// same rows, sealing and checks as the embedded one.
    pub fn open_backend(
        backend: Box<dyn Backend>,
        key: &MasterKey,
        deployment: Option<&str>,
    ) -> Result<Store, StoreError> {
        check_deployment(deployment)?;
        let meta = RowKey::meta(key)?;
        let rng = SystemRandom::new();
        let mut id = None;
        backend.write(&mut |tx| {
            id = Some(init_meta(tx, &meta, None, deployment, &rng)?);
            Ok(Outcome::Commit)
        })?;
        let id = id.ok_or_else(|| StoreError::Db("the store did not open".into()))?;
        Ok(Store {
            backend,
            rows: RowKey::rows(key, &id)?,
            tokens: TokenMac::new(key, &id)?,
            meta,
            rng,
            deployment: id,
            migrated: None,
            floors: BTreeMap::new(),
            parsed: parsed::ParsedPolicies::default(),
        })
    }

    /// Runs `f` on one read snapshot.
    fn read<T: Send>(
        &self,
        f: impl FnOnce(&dyn ReadRows) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        let mut f = Some(f);
        let mut out = None;
        self.backend.read(&mut |tx| {
            if let Some(f) = f.take() {
                out = Some(f(tx)?);
            }
            Ok(())
        })?;
        out.ok_or_else(|| StoreError::Db("a read transaction did not run".into()))
    }

    /// Runs `f` in one write transaction, committed when it returns `Ok`.
    fn write<T: Send>(
        &self,
        f: impl FnOnce(&mut dyn WriteRows) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        let mut f = Some(f);
        let mut out = None;
        self.backend.write(&mut |tx| {
            if let Some(f) = f.take() {
                out = Some(f(tx)?);
            }
            Ok(Outcome::Commit)
        })?;
        out.ok_or_else(|| StoreError::Db("a write transaction did not run".into()))
    }

    /// This deployment's id (part of every change statement).
    pub fn deployment(&self) -> &str {
        &self.deployment
    }

    /// What this open converted from a store of the previous version.
    pub fn migrated(&self) -> Option<&Migrated> {
        self.migrated.as_ref()
    }

    /// Sets, per secret, the change version it reached according to a
    /// record the host cannot roll back alone (the log's `change_applied`
    /// records): from now on a secret whose head is older, or missing, is
    /// refused `row_rolled_back`. Returns the secrets refused now (name,
    /// head version, expected), so the caller can report them at start.
    pub fn expect_versions(
        &mut self,
        floors: BTreeMap<String, u64>,
    ) -> Result<Vec<(String, u64, u64)>, StoreError> {
        self.floors = floors;
        self.read(|tx| {
            let mut behind = Vec::new();
            for (name, &expected) in &self.floors {
                match self.head(tx, name) {
                    Ok(_) => {}
                    Err(StoreError::RowRolledBack { found, .. }) => {
                        behind.push((name.clone(), found, expected))
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(behind)
        })
    }

    /// The change version of `name`'s head (a deleted secret's too).
    pub fn change_version(&self, name: &str) -> Result<Option<u64>, StoreError> {
        self.read(|tx| Ok(self.head(tx, name)?.map(|h| h.version)))
    }

    /// The intake key owners seal values to (decrypted from the store).
    pub fn intake_key(&self) -> Result<EnclaveKey, StoreError> {
        let sealed = self
            .read(|tx| tx.get(Row::Meta(INTAKE_KEY)))?
            .ok_or_else(|| tampered(T_META, INTAKE_KEY))?;
        let (_, seed) = self
            .meta
            .open(T_META, INTAKE_KEY.as_bytes(), &sealed)
            .map_err(fault(T_META, INTAKE_KEY))?;
        EnclaveKey::from_ikm(&seed)
            .map_err(|_| StoreError::Crypto("the intake key seed is unusable"))
    }

    fn seal_head(&self, name: &str, head: &Head) -> Result<Vec<u8>, StoreError> {
        let text = Zeroizing::new(
            serde_json::to_vec(head).map_err(|e| StoreError::Db(format!("head: {e}")))?,
        );
        self.rows
            .seal(T_HEADS, name.as_bytes(), head.version, &text, &self.rng)
    }

    fn put_head(&self, tx: &mut dyn WriteRows, name: &str, head: &Head) -> Result<(), StoreError> {
        let sealed = self.seal_head(name, head)?;
        tx.put(Row::Head(name), &sealed)
    }

    /// The head of `name`, opened and checked (its claimed version is the
    /// one it was sealed with).
    fn head(&self, tx: &dyn ReadRows, name: &str) -> Result<Option<Head>, StoreError> {
        let floor = self.floors.get(name).copied();
        let Some(sealed) = tx.get(Row::Head(name))? else {
            return match floor {
                // The log says this secret exists and the store has no trace.
                Some(expected) => Err(StoreError::RowRolledBack {
                    table: T_HEADS,
                    key: name.to_owned(),
                    found: 0,
                    expected,
                }),
                None => Ok(None),
            };
        };
        let (version, text) = self
            .rows
            .open(T_HEADS, name.as_bytes(), &sealed)
            .map_err(fault(T_HEADS, name))?;
        let head: Head = serde_json::from_slice(&text).map_err(|_| tampered(T_HEADS, name))?;
        if head.version != version {
            return Err(tampered(T_HEADS, name));
        }
        match floor {
            Some(expected) if head.version < expected => Err(StoreError::RowRolledBack {
                table: T_HEADS,
                key: name.to_owned(),
                found: head.version,
                expected,
            }),
            _ => Ok(Some(head)),
        }
    }

    /// The policy text of `name` if its head names one, checked against it.
    fn policy_text(
        &self,
        tx: &dyn ReadRows,
        name: &str,
        head: &Head,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let sealed = tx.get(Row::Policy(name))?;
        let (sealed, expected) = match (sealed, head.policy.filter(|_| head.live)) {
            (None, None) => return Ok(None),
            // The head names a policy that is not there.
            (None, Some(_)) => return Err(tampered(T_POLICIES, name)),
            // A policy the head does not name (e.g. one put back after a
            // delete): refused rather than taken as "no policy", so the
            // owners see it.
            (Some(sealed), None) => (sealed, None),
            (Some(sealed), Some(v)) => (sealed, Some(v)),
        };
        let (found, text) = self
            .rows
            .open(T_POLICIES, name.as_bytes(), &sealed)
            .map_err(fault(T_POLICIES, name))?;
        match expected {
            Some(expected) if expected == found => Ok(Some(text)),
            _ => Err(StoreError::RowRolledBack {
                table: T_POLICIES,
                key: name.to_owned(),
                found,
                expected: expected.unwrap_or(0),
            }),
        }
    }

    /// Refuses value rows the head does not account for: one above its
    /// last value version (the head was put back), or a value at `last`
    /// when the head says there is none (put back after a delete).
    fn check_values(&self, tx: &dyn ReadRows, name: &str, head: &Head) -> Result<(), StoreError> {
        let from = if head.value && head.live {
            head.last.saturating_add(1)
        } else {
            0
        };
        if let Some(&found) = tx.value_versions(name, from)?.first() {
            return Err(StoreError::RowRolledBack {
                table: T_VALUES,
                key: format!("{name}@{found}"),
                found,
                expected: head.last,
            });
        }
        Ok(())
    }

    /// Creates `name` with its owner set (change version 0, or the version
    /// a deleted secret of that name reached). Refuses a live secret.
    pub fn create_secret(&self, name: &str, owners: &OwnerSet) -> Result<u64, StoreError> {
        self.create_secret_logged(name, owners, |_, _| Ok::<(), StoreError>(()))
    }

    /// [`Store::create_secret`] with its audit record: `record` gets the new
    /// change version and the transaction, and runs before the commit (as
    /// in [`Store::apply_change`]), so with an engine that keeps the log the
    /// creation and its record commit together; its error aborts the
    /// creation.
    pub fn create_secret_logged<E: From<StoreError> + Send>(
        &self,
        name: &str,
        owners: &OwnerSet,
        record: impl FnOnce(u64, &mut dyn WriteRows) -> Result<(), E> + Send,
    ) -> Result<u64, E> {
        let mut record = Some(record);
        let mut refused: Option<E> = None;
        let mut done = None;
        let outcome = self.backend.write(&mut |tx| {
            let version = self.create_in(tx, name, owners)?;
            let Some(record) = record.take() else {
                return Ok(Outcome::Abort);
            };
            match record(version, tx) {
                Ok(()) => {
                    done = Some(version);
                    Ok(Outcome::Commit)
                }
                Err(e) => {
                    refused = Some(e);
                    Ok(Outcome::Abort)
                }
            }
        })?;
        match (outcome, done, refused) {
            (Outcome::Commit, Some(version), _) => Ok(version),
            (_, _, Some(e)) => Err(e),
            _ => Err(StoreError::Db("the create transaction did not run".into()).into()),
        }
    }

    fn create_in(
        &self,
        tx: &mut dyn WriteRows,
        name: &str,
        owners: &OwnerSet,
    ) -> Result<u64, StoreError> {
        {
            let old = self.head(tx.reads(), name)?.unwrap_or_default();
            if old.live {
                return Err(StoreError::Exists(name.to_owned()));
            }
            self.check_values(tx.reads(), name, &old)?;
            self.policy_text(tx.reads(), name, &old)?;
            let head = Head {
                last: old.last,
                live: true,
                version: old.version,
                value: false,
                policy: None,
                owners: owners.to_text(),
            };
            self.put_head(tx, name, &head)?;
            Ok(head.version)
        }
    }

    /// The owner set and change version of a live secret.
    pub fn secret_state(&self, name: &str) -> Result<Option<SecretState>, StoreError> {
        let Some(head) = self.read(|tx| self.head(tx, name))?.filter(|h| h.live) else {
            return Ok(None);
        };
        let owners = parse_owners(name, &head.owners)?;
        Ok(Some(SecretState {
            owners,
            version: head.version,
        }))
    }

    /// Applies one change to the live secret `name`, in one write
    /// transaction: `decide` sees the state read inside it and returns the
    /// new change version, the change and whatever it wants to keep (or
    /// refuses); `record` sees that and what will be committed, and runs
    /// before the commit (the audit record), so a change is never committed
    /// unless `record` succeeded; it gets the transaction, so that an engine
    /// that keeps the log too commits the record with the change
    /// ([`backend::WriteRows::append_log`]). A secret with a refused row is not
    /// changed (its owners' decision would rest on what was rolled back).
    pub fn apply_change<T: Send, E: From<StoreError> + Send>(
        &self,
        name: &str,
        decide: impl FnOnce(&SecretState) -> Result<(u64, StoreChange, T), E> + Send,
        record: impl FnOnce(&T, &Applied, &mut dyn WriteRows) -> Result<(), E> + Send,
    ) -> Result<(Applied, T), E> {
        let mut refused: Option<E> = None;
        let mut done = None;
        let mut call = Some((decide, record));
        let outcome = self.backend.write(&mut |tx| {
            let Some((decide, record)) = call.take() else {
                return Ok(Outcome::Abort);
            };
            match self.change_in(tx, name, decide, record) {
                Ok(Ok(applied)) => {
                    done = Some(applied);
                    Ok(Outcome::Commit)
                }
                Ok(Err(e)) => {
                    refused = Some(e);
                    Ok(Outcome::Abort)
                }
                Err(e) => Err(e),
            }
        })?;
        match (outcome, done, refused) {
            (Outcome::Commit, Some(applied), _) => Ok(applied),
            (_, _, Some(e)) => Err(e),
            _ => Err(StoreError::Db("the change transaction did not run".into()).into()),
        }
    }

    /// The body of [`Store::apply_change`]: the outer error aborts the
    /// transaction as a store failure, the inner one as the caller's refusal.
    #[allow(clippy::type_complexity)]
    fn change_in<T, E: From<StoreError>>(
        &self,
        tx: &mut dyn WriteRows,
        name: &str,
        decide: impl FnOnce(&SecretState) -> Result<(u64, StoreChange, T), E>,
        record: impl FnOnce(&T, &Applied, &mut dyn WriteRows) -> Result<(), E>,
    ) -> Result<Result<(Applied, T), E>, StoreError> {
        let Some(mut head) = self.head(tx.reads(), name)?.filter(|h| h.live) else {
            return Ok(Err(StoreError::NotFound(name.to_owned()).into()));
        };
        self.check_values(tx.reads(), name, &head)?;
        self.policy_text(tx.reads(), name, &head)?;
        let owners = parse_owners(name, &head.owners)?;
        let current = head.version;
        let (version, change, kept) = match decide(&SecretState {
            owners,
            version: current,
        }) {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        if version <= current {
            // The decision must have checked this; never let a version go back.
            return Err(StoreError::Db(format!(
                "{name}: change version {version} is not above {current}"
            )));
        }
        head.version = version;
        let mut applied = Applied {
            version,
            value_version: None,
            deleted_versions: Vec::new(),
        };
        match change {
            StoreChange::Policy(policy) => {
                let text = policy.to_toml(name);
                let sealed = self.rows.seal(
                    T_POLICIES,
                    name.as_bytes(),
                    version,
                    text.as_bytes(),
                    &self.rng,
                )?;
                tx.put(Row::Policy(name), &sealed)?;
                head.policy = Some(version);
            }
            StoreChange::Value(value) => {
                let value_version = head.last + 1;
                let sealed = self.rows.seal(
                    T_VALUES,
                    &value_key(name, value_version),
                    value_version,
                    &value,
                    &self.rng,
                )?;
                tx.put(Row::Value(name, value_version), &sealed)?;
                head.last = value_version;
                head.value = true;
                applied.value_version = Some(value_version);
            }
            StoreChange::Owners(new) => head.owners = new.to_text(),
            StoreChange::Delete => {
                applied.deleted_versions = remove_values(tx, name)?;
                tx.remove(Row::Policy(name))?;
                head.live = false;
                head.value = false;
                head.policy = None;
                head.owners = String::new();
            }
        }
        self.put_head(tx, name, &head)?;
        if let Err(e) = record(&kept, &applied, tx) {
            return Ok(Err(e));
        }
        Ok(Ok((applied, kept)))
    }

    /// Metadata of a live secret.
    pub fn secret_info(&self, name: &str) -> Result<Option<SecretInfo>, StoreError> {
        self.read(|tx| self.info_in(tx, name))
    }

    fn info_in(&self, tx: &dyn ReadRows, name: &str) -> Result<Option<SecretInfo>, StoreError> {
        let Some(head) = self.head(tx, name)?.filter(|h| h.live) else {
            return Ok(None);
        };
        self.check_values(tx, name, &head)?;
        let versions = tx.value_versions(name, 0)?;
        let has_policy = self.policy_text(tx, name, &head)?.is_some();
        let (owners, threshold) = match parse_owners(name, &head.owners) {
            Ok(set) => (
                set.owners().iter().map(ToString::to_string).collect(),
                set.threshold(),
            ),
            Err(StoreError::NoOwners(_)) => (Vec::new(), 0),
            Err(e) => return Err(e),
        };
        Ok(Some(SecretInfo {
            name: name.to_owned(),
            latest_version: head.last,
            versions,
            has_policy,
            owners,
            threshold,
            version: head.version,
        }))
    }

    /// Every live secret's metadata, by name.
    pub fn list_secrets(&self) -> Result<Vec<SecretInfo>, StoreError> {
        self.read(|tx| {
            let mut out = Vec::new();
            for name in tx.names(Table::Heads)? {
                if let Some(info) = self.info_in(tx, &name)? {
                    out.push(info);
                }
            }
            Ok(out)
        })
    }

    /// Whether a live secret named `name` exists.
    pub fn secret_exists(&self, name: &str) -> Result<bool, StoreError> {
        self.read(|tx| Ok(self.head(tx, name)?.is_some_and(|h| h.live)))
    }

    /// The latest version of a live secret and its decrypted value.
    pub fn latest_secret(&self, name: &str) -> Result<Option<(u64, SecretValue)>, StoreError> {
        match self.release_view(name)? {
            Some(view) => self.open_release_value(name, &view),
            None => Ok(None),
        }
    }

    /// Whether the store's engine is a database server (calls may wait on
    /// the network): see [`Backend::remote`].
    pub fn remote(&self) -> bool {
        self.backend.remote()
    }

    /// What a release needs of a live secret (`None`: no live secret of
    /// that name), read in one snapshot: its policy and its latest value,
    /// the value still sealed at rest. One read, not one per piece: the
    /// policy a release is decided on and the value it seals come from the
    /// same committed state, so a change committed between two reads (the
    /// image an owner just excluded, then a new value) can never pair an
    /// old policy with a newer value, however long the reads are held up
    /// (a database connection crosses the parent).
    pub fn release_view(&self, name: &str) -> Result<Option<ReleaseView>, StoreError> {
        self.read(|tx| {
            let Some(head) = self.head(tx, name)?.filter(|h| h.live) else {
                return Ok(None);
            };
            let policy = self.policy_of(tx, name, &head)?;
            self.check_values(tx, name, &head)?;
            let value = if head.value {
                Some((head.last, tx.get(Row::Value(name, head.last))?))
            } else {
                None
            };
            Ok(Some(ReleaseView { policy, value }))
        })
    }

    /// Opens the value of a [`ReleaseView`] of `name` (only once a release
    /// is granted, to seal it to the enclave): its version and the value,
    /// or `None` when the secret has no value yet.
    pub fn open_release_value(
        &self,
        name: &str,
        view: &ReleaseView,
    ) -> Result<Option<(u64, SecretValue)>, StoreError> {
        let Some((last, sealed)) = &view.value else {
            return Ok(None);
        };
        let last = *last;
        let key = format!("{name}@{last}");
        let sealed = sealed
            .as_deref()
            .ok_or_else(|| tampered(T_VALUES, key.as_str()))?;
        let (found, plain) = self
            .rows
            .open(T_VALUES, &value_key(name, last), sealed)
            .map_err(fault(T_VALUES, &key))?;
        if found != last {
            return Err(tampered(T_VALUES, key));
        }
        Ok(Some((last, plain)))
    }

    pub fn policy(&self, name: &str) -> Result<Option<SecretPolicy>, StoreError> {
        self.read(|tx| self.policy_in(tx, name))
    }

    fn policy_in(&self, tx: &dyn ReadRows, name: &str) -> Result<Option<SecretPolicy>, StoreError> {
        let head = self.head(tx, name)?.unwrap_or_default();
        self.policy_of(tx, name, &head)
    }

    fn policy_of(
        &self,
        tx: &dyn ReadRows,
        name: &str,
        head: &Head,
    ) -> Result<Option<SecretPolicy>, StoreError> {
        let Some(text) = self.policy_text(tx, name, head)? else {
            return Ok(None);
        };
        let text = std::str::from_utf8(&text).map_err(|_| tampered(T_POLICIES, name))?;
        self.parsed
            .get_or_parse(name, text, || {
                let mut file = PolicyFile::parse(text).map_err(|_| ())?;
                file.secrets.remove(name).ok_or(())
            })
            .map(Some)
            .map_err(|()| StoreError::BadPolicy(name.to_owned()))
    }

    pub fn policy_names(&self) -> Result<Vec<String>, StoreError> {
        self.read(|tx| tx.names(Table::Policies))
    }

    /// Every stored policy this version can use, by name (byte order), and
    /// the names of those it refuses to read (written before a rule was
    /// added, such as "every set pins the image"): those are never used —
    /// a release for them is refused `no_policy` — until the secret's owners
    /// replace them. Tampered or rolled-back policy rows are listed apart.
    pub fn policies(&self) -> Result<StoredPolicies, StoreError> {
        self.read(|tx| {
            let mut usable = Vec::new();
            let mut unusable = Vec::new();
            let mut refused = Vec::new();
            for name in tx.names(Table::Policies)? {
                match self.policy_in(tx, &name) {
                    Ok(Some(policy)) => usable.push((name, policy)),
                    Ok(None) => {}
                    Err(StoreError::BadPolicy(_)) => unusable.push(name),
                    Err(e) if e.is_row_refusal() => refused.push((name, e)),
                    Err(e) => return Err(e),
                }
            }
            Ok(StoredPolicies {
                usable,
                unusable,
                refused,
            })
        })
    }

    /// Stores a token (given as its SHA-256) under `label`.
    pub fn add_token_hash(&self, hash: &[u8; 32], label: &str) -> Result<(), StoreError> {
        self.write(|tx| self.put_token(tx, hash, label))
    }

    fn put_token(
        &self,
        tx: &mut dyn WriteRows,
        hash: &[u8; 32],
        label: &str,
    ) -> Result<(), StoreError> {
        let key = self.tokens.row_key(hash);
        let sealed = self
            .rows
            .seal(T_TOKENS, &key, 0, label.as_bytes(), &self.rng)?;
        tx.put(Row::Token(&key), &sealed)
    }

    /// The label of the token whose SHA-256 is `hash`, if it is one of ours.
    /// An entry that does not open as this token's row is refused.
    pub fn token_label(&self, hash: &[u8; 32]) -> Result<Option<String>, StoreError> {
        let key = self.tokens.row_key(hash);
        let Some(sealed) = self.read(|tx| tx.get(Row::Token(&key)))? else {
            return Ok(None);
        };
        let row = hex::encode(&key[..8]);
        let (_, label) = self
            .rows
            .open(T_TOKENS, &key, &sealed)
            .map_err(fault(T_TOKENS, &row))?;
        String::from_utf8(label.to_vec())
            .map(Some)
            .map_err(|_| tampered(T_TOKENS, row))
    }

    pub fn token_count(&self) -> Result<u64, StoreError> {
        self.read(|tx| tx.count(Table::Tokens))
    }

    /// The embedded backend's database (tests and the legacy migration).
    #[cfg(test)]
    fn redb(&self) -> &Database {
        self.backend.redb().expect("an embedded store")
    }
}

fn check_deployment(deployment: Option<&str>) -> Result<(), StoreError> {
    if let Some(id) = deployment {
        check_deployment_id(id).map_err(|reason| StoreError::BadDeployment {
            id: id.to_owned(),
            reason,
        })?;
    }
    Ok(())
}

/// Reads (or writes, for a new store) the meta rows: the key check, the
/// deployment id and the intake seed; a store of the previous version
/// hands over its own.
fn init_meta(
    tx: &mut dyn WriteRows,
    key: &RowKey,
    legacy: Option<&legacy::Legacy>,
    deployment: Option<&str>,
    rng: &dyn SecureRandom,
) -> Result<String, StoreError> {
    let get = |tx: &dyn ReadRows, row: &str| -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        match tx.get(Row::Meta(row))? {
            None => Ok(None),
            Some(sealed) => key
                .open(T_META, row.as_bytes(), &sealed)
                .map(|(_, plain)| Some(plain))
                .map_err(fault(T_META, row)),
        }
    };
    // A store that has its key check is not new: its deployment id and
    // intake seed must be there too (a removed one is not regenerated,
    // which would silently change every derived key or the intake key).
    let check = tx.get(Row::Meta(KEY_CHECK))?;
    let existing = check.is_some();
    match check {
        Some(sealed) => {
            let (_, plain) = key
                .open(T_META, KEY_CHECK.as_bytes(), &sealed)
                .map_err(|_| {
                    StoreError::MasterKey("this master key does not open the existing store".into())
                })?;
            if plain.as_slice() != KEY_CHECK_PLAINTEXT {
                return Err(StoreError::MasterKey("key check value is wrong".into()));
            }
        }
        None => {
            let sealed = key.seal(T_META, KEY_CHECK.as_bytes(), 0, KEY_CHECK_PLAINTEXT, rng)?;
            tx.put(Row::Meta(KEY_CHECK), &sealed)?;
        }
    }
    let stored = match get(tx.reads(), DEPLOYMENT)? {
        Some(id) => Some(String::from_utf8(id.to_vec()).map_err(|_| tampered(T_META, DEPLOYMENT))?),
        None if existing => return Err(tampered(T_META, DEPLOYMENT)),
        None => legacy.and_then(|l| l.deployment.clone()),
    };
    let id = match (stored, deployment) {
        (Some(stored), Some(given)) if stored != given => {
            return Err(StoreError::DeploymentMismatch {
                stored,
                given: given.to_owned(),
            })
        }
        (Some(stored), _) => stored,
        (None, Some(given)) => given.to_owned(),
        (None, None) => {
            let mut bytes = [0u8; 16];
            rng.fill(&mut bytes)
                .map_err(|_| StoreError::Crypto("the random number generator failed"))?;
            format!("hermetic-{}", hex::encode(bytes))
        }
    };
    if tx.get(Row::Meta(DEPLOYMENT))?.is_none() {
        let sealed = key.seal(T_META, DEPLOYMENT.as_bytes(), 0, id.as_bytes(), rng)?;
        tx.put(Row::Meta(DEPLOYMENT), &sealed)?;
    }
    if get(tx.reads(), INTAKE_KEY)?.is_none() {
        if existing {
            return Err(tampered(T_META, INTAKE_KEY));
        }
        let seed = match legacy.and_then(|l| l.intake_seed.clone()) {
            Some(seed) => seed,
            None => {
                let mut seed = Zeroizing::new(vec![0u8; INTAKE_SEED_LEN]);
                rng.fill(&mut seed[..])
                    .map_err(|_| StoreError::Crypto("the random number generator failed"))?;
                seed
            }
        };
        let sealed = key.seal(T_META, INTAKE_KEY.as_bytes(), 0, &seed, rng)?;
        tx.put(Row::Meta(INTAKE_KEY), &sealed)?;
    }
    Ok(id)
}

fn parse_owners(name: &str, text: &str) -> Result<OwnerSet, StoreError> {
    if text.is_empty() {
        return Err(StoreError::NoOwners(name.to_owned()));
    }
    OwnerSet::parse(text).map_err(|_| StoreError::BadOwners(name.to_owned()))
}

/// Removes every value version of `name`; returns the versions removed.
fn remove_values(tx: &mut dyn WriteRows, name: &str) -> Result<Vec<u64>, StoreError> {
    let versions = tx.value_versions(name, 0)?;
    for v in &versions {
        tx.remove(Row::Value(name, *v))?;
    }
    Ok(versions)
}

/// The owners of a secret as log labels (`name+hhhhhhhh`).
pub fn owner_labels(owners: &OwnerSet) -> Vec<String> {
    owners.owners().iter().map(key_label).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::ReadableTable;

    fn key(b: u8) -> MasterKey {
        MasterKey::from_bytes([b; 32])
    }

    #[test]
    fn master_key_debug_is_redacted() {
        assert_eq!(format!("{:?}", key(7)), "MasterKey(<redacted>)");
    }

    fn owners() -> OwnerSet {
        let signer = hermetic_tlog::note::Signer::generate("alice").unwrap();
        OwnerSet::new(vec![signer.verifier_key()], 1).unwrap()
    }

    fn change(
        store: &Store,
        name: &str,
        version: u64,
        c: StoreChange,
    ) -> Result<Applied, StoreError> {
        store
            .apply_change(name, |_| Ok((version, c, ())), |_, _, _| Ok(()))
            .map(|(applied, ())| applied)
    }

    fn value(store: &Store, name: &str, version: u64, v: &[u8]) -> Applied {
        change(
            store,
            name,
            version,
            StoreChange::Value(Zeroizing::new(v.to_vec())),
        )
        .unwrap()
    }

    #[test]
    fn versions_grow_and_survive_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &key(1), None).unwrap();
        let owners = owners();
        assert_eq!(store.create_secret("a", &owners).unwrap(), 0);
        assert_eq!(
            store.create_secret("a", &owners),
            Err(StoreError::Exists("a".into()))
        );
        // Created, no value yet.
        assert_eq!(store.latest_secret("a").unwrap(), None);
        assert_eq!(value(&store, "a", 1, b"one").value_version, Some(1));
        assert_eq!(value(&store, "a", 2, b"two").value_version, Some(2));
        let (v, got) = store.latest_secret("a").unwrap().unwrap();
        assert_eq!((v, got.as_slice()), (2, &b"two"[..]));
        let state = store.secret_state("a").unwrap().unwrap();
        assert_eq!((state.version, state.owners), (2, owners.clone()));
        // A decision that would not raise the version is never committed.
        assert!(change(&store, "a", 2, StoreChange::Delete).is_err());
        // Nor one whose record fails.
        assert!(store
            .apply_change(
                "a",
                |_| Ok((3, StoreChange::Delete, ())),
                |_, _, _| Err(StoreError::Io("log down".into()))
            )
            .is_err());
        assert_eq!(store.secret_state("a").unwrap().unwrap().version, 2);

        let deleted = change(&store, "a", 3, StoreChange::Delete).unwrap();
        assert_eq!(deleted.deleted_versions, vec![1, 2]);
        assert_eq!(store.latest_secret("a").unwrap(), None);
        assert_eq!(store.secret_state("a").unwrap(), None);
        assert!(store.list_secrets().unwrap().is_empty());
        // Re-created: neither the value versions nor the change versions restart.
        assert_eq!(store.create_secret("a", &owners).unwrap(), 3);
        assert_eq!(value(&store, "a", 4, b"three").value_version, Some(3));
        let info = store.secret_info("a").unwrap().unwrap();
        assert_eq!(
            (info.version, info.versions, info.threshold),
            (4, vec![3], 1)
        );
        assert_eq!(info.owners, vec![owners.owners()[0].to_string()]);
    }

    #[test]
    fn deployment_id_is_set_once() {
        let dir = tempfile::tempdir().unwrap();
        let id = {
            let store = Store::open(dir.path(), &key(1), None).unwrap();
            store.deployment().to_owned()
        };
        assert!(id.starts_with("hermetic-") && id.len() == 9 + 32, "{id}");
        let store = Store::open(dir.path(), &key(1), Some(&id)).unwrap();
        let public = store.intake_key().unwrap().public_key_bytes();
        drop(store);
        let store = Store::open(dir.path(), &key(1), None).unwrap();
        assert_eq!(store.deployment(), id);
        assert_eq!(store.intake_key().unwrap().public_key_bytes(), public);
        drop(store);
        assert!(matches!(
            Store::open(dir.path(), &key(1), Some("other")),
            Err(StoreError::DeploymentMismatch { .. })
        ));
        let fresh = tempfile::tempdir().unwrap();
        let store = Store::open(fresh.path(), &key(1), Some("prod-eu-1")).unwrap();
        assert_eq!(store.deployment(), "prod-eu-1");
        assert_ne!(store.intake_key().unwrap().public_key_bytes(), public);
        drop(store);
        assert!(matches!(
            Store::open(tempfile::tempdir().unwrap().path(), &key(1), Some("bad id")),
            Err(StoreError::BadDeployment { .. })
        ));
    }

    #[test]
    fn values_are_encrypted_and_bound_to_the_master_key() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), &key(1), None).unwrap();
            store.create_secret("a", &owners()).unwrap();
            value(&store, "a", 1, b"plaintext-marker-0123456789");
        }
        let raw = std::fs::read(dir.path().join(STORE_FILE)).unwrap();
        assert!(!raw
            .windows(b"plaintext-marker".len())
            .any(|w| w == b"plaintext-marker"));
        assert!(matches!(
            Store::open(dir.path(), &key(2), None),
            Err(StoreError::MasterKey(_))
        ));
        let store = Store::open(dir.path(), &key(1), None).unwrap();
        assert_eq!(store.latest_secret("a").unwrap().unwrap().0, 1);
    }

    fn policy_of(pcr0: u8) -> SecretPolicy {
        SecretPolicy::allowing([(0u8, vec![pcr0; 48])].into())
    }

    fn raw_get(dir: &Path, table: &str, key: &str) -> Vec<u8> {
        let db = Database::create(dir.join(STORE_FILE)).unwrap();
        let tx = db.begin_read().unwrap();
        let t = tx
            .open_table(TableDefinition::<&str, &[u8]>::new(table))
            .unwrap();
        let v = t.get(key).unwrap().unwrap().value().to_vec();
        v
    }

    fn raw_put(dir: &Path, table: &str, key: &str, bytes: &[u8]) {
        let db = Database::create(dir.join(STORE_FILE)).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(TableDefinition::<&str, &[u8]>::new(table))
            .unwrap()
            .insert(key, bytes)
            .unwrap();
        tx.commit().unwrap();
    }

    fn reason<T: std::fmt::Debug>(r: Result<T, StoreError>) -> &'static str {
        r.expect_err("refused").reason()
    }

    /// The host's root, with write access to the data directory, edits,
    /// swaps and puts back rows while the verifier is stopped.
    #[test]
    fn edited_swapped_and_rolled_back_rows_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (old_policy, old_head) = {
            let store = Store::open(dir.path(), &key(1), None).unwrap();
            for n in ["a", "b"] {
                store.create_secret(n, &owners()).unwrap();
                value(&store, n, 1, n.as_bytes());
                change(&store, n, 2, StoreChange::Policy(policy_of(1))).unwrap();
            }
            (
                raw_get_open(&store, "v2/policies", "a"),
                raw_get_open(&store, "v2/secrets", "a"),
            )
        };
        // A later approved change replaces the policy.
        {
            let store = Store::open(dir.path(), &key(1), None).unwrap();
            change(&store, "a", 3, StoreChange::Policy(policy_of(2))).unwrap();
            assert_eq!(store.policy("a").unwrap(), Some(policy_of(2)));
        }
        let current = raw_get(dir.path(), "v2/policies", "a");

        // The older policy row put back: refused as rolled back, everywhere.
        raw_put(dir.path(), "v2/policies", "a", &old_policy);
        let store = Store::open(dir.path(), &key(1), None).unwrap();
        assert!(matches!(
            store.policy("a"),
            Err(StoreError::RowRolledBack {
                table: "policies",
                found: 2,
                expected: 3,
                ..
            })
        ));
        assert_eq!(reason(store.secret_info("a")), "row_rolled_back");
        assert_eq!(
            reason(change(&store, "a", 4, StoreChange::Policy(policy_of(3)))),
            "row_rolled_back"
        );
        let listed = store.policies().unwrap();
        assert_eq!(listed.refused.len(), 1);
        assert_eq!(listed.usable.len(), 1, "b is untouched");
        drop(store);

        // One byte of the policy edited: tampered.
        let mut edited = current.clone();
        let last = edited.len() - 1;
        edited[last] ^= 1;
        raw_put(dir.path(), "v2/policies", "a", &edited);
        let store = Store::open(dir.path(), &key(1), None).unwrap();
        assert_eq!(reason(store.policy("a")), "row_tampered");
        drop(store);

        // b's policy under a's name: tampered (bound to its row key).
        let b_policy = raw_get(dir.path(), "v2/policies", "b");
        raw_put(dir.path(), "v2/policies", "a", &b_policy);
        let store = Store::open(dir.path(), &key(1), None).unwrap();
        assert_eq!(reason(store.policy("a")), "row_tampered");
        drop(store);
        raw_put(dir.path(), "v2/policies", "a", &current);

        // The head from before the last change put back: its policy row is
        // newer than it names.
        raw_put(dir.path(), "v2/secrets", "a", &old_head);
        let store = Store::open(dir.path(), &key(1), None).unwrap();
        assert_eq!(reason(store.policy("a")), "row_rolled_back");
        drop(store);
        let b_head = raw_get(dir.path(), "v2/secrets", "b");
        raw_put(dir.path(), "v2/secrets", "a", &b_head);
        let store = Store::open(dir.path(), &key(1), None).unwrap();
        assert_eq!(reason(store.secret_exists("a")), "row_tampered");
        // b still serves.
        assert_eq!(
            store.latest_secret("b").unwrap().unwrap().1.as_slice(),
            b"b"
        );
    }

    fn raw_get_open(store: &Store, table: &str, key: &str) -> Vec<u8> {
        let tx = store.redb().begin_read().unwrap();
        let t = tx
            .open_table(TableDefinition::<&str, &[u8]>::new(table))
            .unwrap();
        let v = t.get(key).unwrap().unwrap().value().to_vec();
        v
    }

    #[test]
    fn swapped_values_and_a_value_put_back_after_delete_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let values: TableDefinition<(&str, u64), &[u8]> = VALUES;
        let (a1, b1) = {
            let store = Store::open(dir.path(), &key(1), None).unwrap();
            for n in ["a", "b"] {
                store.create_secret(n, &owners()).unwrap();
                value(&store, n, 1, n.as_bytes());
            }
            let tx = store.redb().begin_read().unwrap();
            let t = tx.open_table(values).unwrap();
            let get = |n| t.get((n, 1)).unwrap().unwrap().value().to_vec();
            (get("a"), get("b"))
        };
        let db = Database::create(dir.path().join(STORE_FILE)).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut t = tx.open_table(values).unwrap();
            t.insert(("a", 1), b1.as_slice()).unwrap();
            t.insert(("b", 1), a1.as_slice()).unwrap();
        }
        tx.commit().unwrap();
        drop(db);
        let store = Store::open(dir.path(), &key(1), None).unwrap();
        assert_eq!(reason(store.latest_secret("a")), "row_tampered");
        assert_eq!(reason(store.latest_secret("b")), "row_tampered");
        // Swapped back, a is deleted; its value put back afterwards is refused.
        drop(store);
        let db = Database::create(dir.path().join(STORE_FILE)).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut t = tx.open_table(values).unwrap();
            t.insert(("a", 1), a1.as_slice()).unwrap();
            t.insert(("b", 1), b1.as_slice()).unwrap();
        }
        tx.commit().unwrap();
        drop(db);
        let store = Store::open(dir.path(), &key(1), None).unwrap();
        assert_eq!(
            store.latest_secret("a").unwrap().unwrap().1.as_slice(),
            b"a"
        );
        change(&store, "a", 2, StoreChange::Delete).unwrap();
        drop(store);
        let db = Database::create(dir.path().join(STORE_FILE)).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(values)
            .unwrap()
            .insert(("a", 1), a1.as_slice())
            .unwrap();
        tx.commit().unwrap();
        drop(db);
        let store = Store::open(dir.path(), &key(1), None).unwrap();
        assert_eq!(
            reason(store.create_secret("a", &owners())),
            "row_rolled_back"
        );
    }

    #[test]
    fn token_rows_are_keyed_by_hmac_and_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let (h1, h2) = ([1u8; 32], [2u8; 32]);
        {
            let store = Store::open(dir.path(), &key(1), None).unwrap();
            store.add_token_hash(&h1, "one").unwrap();
            store.add_token_hash(&h2, "two").unwrap();
            assert_eq!(store.token_label(&h1).unwrap().as_deref(), Some("one"));
            assert_eq!(store.token_label(&[3; 32]).unwrap(), None);
        }
        let db = Database::create(dir.path().join(STORE_FILE)).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut t = tx.open_table(TOKENS).unwrap();
            let rows: Vec<(Vec<u8>, Vec<u8>)> = t
                .iter()
                .unwrap()
                .map(|r| {
                    let (k, v) = r.unwrap();
                    (k.value().to_vec(), v.value().to_vec())
                })
                .collect();
            // The stored keys are not the tokens' SHA-256.
            assert!(rows.iter().all(|(k, _)| k != &h1 && k != &h2));
            // Each entry's sealed label put under the other's key.
            t.insert(rows[0].0.as_slice(), rows[1].1.as_slice())
                .unwrap();
            t.insert(rows[1].0.as_slice(), rows[0].1.as_slice())
                .unwrap();
        }
        tx.commit().unwrap();
        drop(db);
        let store = Store::open(dir.path(), &key(1), None).unwrap();
        assert_eq!(reason(store.token_label(&h1)), "row_tampered");
        assert_eq!(reason(store.token_label(&h2)), "row_tampered");
    }

    /// A store as the previous version wrote it opens, converted in one
    /// transaction: the same deployment, intake key, secrets, values,
    /// policies and tokens, and no clear table left.
    #[test]
    fn a_store_of_the_previous_version_is_migrated() {
        use redb::TableHandle;
        let dir = tempfile::tempdir().unwrap();
        let master = key(7);
        let old = legacy::Sealer::new(&master).unwrap();
        let rng = SystemRandom::new();
        let owners = owners();
        let policy = policy_of(5).to_toml("a");
        {
            let db = Database::create(dir.path().join(STORE_FILE)).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let mut meta = tx
                    .open_table(TableDefinition::<&str, &[u8]>::new("meta"))
                    .unwrap();
                let check = old.seal(KEY_CHECK, 0, KEY_CHECK_PLAINTEXT, &rng).unwrap();
                meta.insert(KEY_CHECK, check.as_slice()).unwrap();
                meta.insert("deployment", &b"prod-1"[..]).unwrap();
                let seed = old.seal(INTAKE_KEY, 0, &[4u8; 32], &rng).unwrap();
                meta.insert(INTAKE_KEY, seed.as_slice()).unwrap();
                tx.open_table(TableDefinition::<&str, (u64, bool)>::new("secrets"))
                    .unwrap()
                    .insert("a", (2, true))
                    .unwrap();
                tx.open_table(TableDefinition::<&str, (u64, &str)>::new("secret_owners"))
                    .unwrap()
                    .insert("a", (3, owners.to_text().as_str()))
                    .unwrap();
                let mut values = tx
                    .open_table(TableDefinition::<(&str, u64), &[u8]>::new("secret_values"))
                    .unwrap();
                for v in [1u64, 2] {
                    let sealed = old
                        .seal("a", v, format!("value{v}").as_bytes(), &rng)
                        .unwrap();
                    values.insert(("a", v), sealed.as_slice()).unwrap();
                }
                tx.open_table(TableDefinition::<&str, &str>::new("policies"))
                    .unwrap()
                    .insert("a", policy.as_str())
                    .unwrap();
                tx.open_table(TableDefinition::<&[u8], &str>::new("admin_tokens"))
                    .unwrap()
                    .insert(&[9u8; 32][..], "bootstrap")
                    .unwrap();
            }
            tx.commit().unwrap();
        }
        // The wrong master key converts nothing.
        assert!(matches!(
            Store::open(dir.path(), &key(8), None),
            Err(StoreError::MasterKey(_))
        ));
        let store = Store::open(dir.path(), &master, None).unwrap();
        assert_eq!(
            store.migrated(),
            Some(&Migrated {
                secrets: 1,
                values: 2,
                policies: 1,
                tokens: 1
            })
        );
        assert_eq!(store.deployment(), "prod-1");
        assert_eq!(
            store.intake_key().unwrap().public_key_bytes(),
            EnclaveKey::from_ikm(&[4u8; 32]).unwrap().public_key_bytes()
        );
        let (v, plain) = store.latest_secret("a").unwrap().unwrap();
        assert_eq!((v, plain.as_slice()), (2, &b"value2"[..]));
        assert_eq!(store.policy("a").unwrap(), Some(policy_of(5)));
        assert_eq!(store.secret_state("a").unwrap().unwrap().version, 3);
        assert_eq!(
            store.token_label(&[9u8; 32]).unwrap().as_deref(),
            Some("bootstrap")
        );
        let tx = store.redb().begin_read().unwrap();
        let names: Vec<String> = tx
            .list_tables()
            .unwrap()
            .map(|t| t.name().to_owned())
            .collect();
        assert!(names.iter().all(|n| n.starts_with("v2/")), "{names:?}");
        drop(tx);
        drop(store);
        // Opened again: nothing left to convert.
        let store = Store::open(dir.path(), &master, None).unwrap();
        assert_eq!(store.migrated(), None);
        assert_eq!(store.policy("a").unwrap(), Some(policy_of(5)));
    }

    /// A consistent older copy of a secret (its head and every row it
    /// names) opens cleanly from the store alone; the version the log says
    /// the secret reached refuses it.
    #[test]
    fn a_consistent_older_copy_of_a_secret_is_refused_against_the_log_versions() {
        let dir = tempfile::tempdir().unwrap();
        let (old_head, old_policy) = {
            let store = Store::open(dir.path(), &key(1), None).unwrap();
            store.create_secret("a", &owners()).unwrap();
            change(&store, "a", 1, StoreChange::Policy(policy_of(1))).unwrap();
            (
                raw_get_open(&store, "v2/secrets", "a"),
                raw_get_open(&store, "v2/policies", "a"),
            )
        };
        {
            let store = Store::open(dir.path(), &key(1), None).unwrap();
            change(&store, "a", 2, StoreChange::Policy(policy_of(2))).unwrap();
            change(&store, "a", 3, StoreChange::Owners(owners())).unwrap();
        }
        raw_put(dir.path(), "v2/secrets", "a", &old_head);
        raw_put(dir.path(), "v2/policies", "a", &old_policy);
        let mut store = Store::open(dir.path(), &key(1), None).unwrap();
        // The store alone cannot tell.
        assert_eq!(store.policy("a").unwrap(), Some(policy_of(1)));
        let behind = store
            .expect_versions([("a".to_owned(), 3), ("gone".to_owned(), 2)].into())
            .unwrap();
        assert_eq!(
            behind,
            vec![("a".to_owned(), 1, 3), ("gone".to_owned(), 0, 2)]
        );
        assert_eq!(reason(store.policy("a")), "row_rolled_back");
        assert_eq!(reason(store.secret_exists("gone")), "row_rolled_back");
        // At the expected version (or with no record), a secret is served.
        let behind = store.expect_versions([("a".to_owned(), 1)].into()).unwrap();
        assert!(behind.is_empty());
        assert_eq!(store.policy("a").unwrap(), Some(policy_of(1)));
    }

    #[test]
    fn a_removed_or_edited_meta_row_stops_the_open() {
        for row in [DEPLOYMENT, INTAKE_KEY] {
            let dir = tempfile::tempdir().unwrap();
            drop(Store::open(dir.path(), &key(1), None).unwrap());
            let db = Database::create(dir.path().join(STORE_FILE)).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(META).unwrap().remove(row).unwrap();
            tx.commit().unwrap();
            drop(db);
            let err = Store::open(dir.path(), &key(1), None).unwrap_err();
            assert_eq!(err.reason(), "row_tampered", "{row}: {err}");
        }
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path(), &key(1), Some("dep-a")).unwrap());
        let mut sealed = raw_get(dir.path(), "v2/meta", DEPLOYMENT);
        let at = sealed.len() - 1;
        sealed[at] ^= 1;
        raw_put(dir.path(), "v2/meta", DEPLOYMENT, &sealed);
        let err = Store::open(dir.path(), &key(1), None).unwrap_err();
        assert_eq!(err.reason(), "row_tampered", "{err}");
    }
}
