//! The embedded store: one redb file in the data directory.
//!
//! Secret values are encrypted at rest under the master key (see
//! `sealing.rs`); policies and admin token hashes are stored in the clear
//! (neither is secret: tokens are kept only as SHA-256). Every write is a
//! redb transaction committed with immediate durability before it returns,
//! so the API acknowledges only what survives a crash.
//!
//! A secret's versions only grow: deleting a secret keeps a tombstone with
//! its last value version and its last change version, so a secret
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
//! created) and the X25519 intake key that owners seal values to (its seed
//! AES-GCM-sealed under the master key, like values).

mod master_key;
mod sealing;

use std::path::Path;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use hermetic_approval::{check_deployment_id, key_label, OwnerSet};
use hermetic_envelope::{EnclaveKey, Zeroizing};
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};

pub(crate) use master_key::write_private;
pub use master_key::{KeySource, MasterKey, MASTER_KEY_ENV, MASTER_KEY_FILE, MASTER_KEY_LEN};

use crate::policy::{PolicyFile, SecretPolicy};
use sealing::Sealer;

/// File name of the store inside the data directory.
pub const STORE_FILE: &str = "hermetic.redb";

/// name → (last value version ever issued, live). A live secret was created
/// and not deleted; it may have no value yet.
const SECRETS: TableDefinition<&str, (u64, bool)> = TableDefinition::new("secrets");
/// name → (change version, canonical owner-set text; empty once deleted).
const OWNERS: TableDefinition<&str, (u64, &str)> = TableDefinition::new("secret_owners");
/// (name, version) → nonce || AES-256-GCM ciphertext || tag.
const VALUES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("secret_values");
/// name → policy TOML (one `[secrets.NAME]`).
const POLICIES: TableDefinition<&str, &str> = TableDefinition::new("policies");
/// SHA-256(token) → label.
const TOKENS: TableDefinition<&[u8], &str> = TableDefinition::new("admin_tokens");
/// Store-wide facts, e.g. the master key check value.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const KEY_CHECK: &str = "master_key_check";
const KEY_CHECK_PLAINTEXT: &[u8] = b"hermetic master key check";
const DEPLOYMENT: &str = "deployment";
/// The intake key's 32-byte seed, sealed like a value under (this name,
/// version 0); secret values start at version 1, so no value ever shares it.
const INTAKE_KEY: &str = "intake_key_seed";
const INTAKE_SEED_LEN: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Db(String),
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
}

impl StoreError {
    pub fn reason(&self) -> &'static str {
        match self {
            StoreError::NotFound(_) => "unknown_secret",
            StoreError::Exists(_) => "secret_exists",
            StoreError::NoOwners(_) => "no_owners",
            _ => "store_error",
        }
    }
}

fn db<E: Into<redb::Error>>(e: E) -> StoreError {
    StoreError::Db(e.into().to_string())
}

/// A decrypted secret value, wiped on drop.
pub type SecretValue = Zeroizing<Vec<u8>>;

/// What may be listed about a secret: never its value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

pub struct Store {
    db: Database,
    sealer: Sealer,
    rng: SystemRandom,
    deployment: String,
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
    pub fn open(
        data_dir: &Path,
        key: &MasterKey,
        deployment: Option<&str>,
    ) -> Result<Store, StoreError> {
        if let Some(id) = deployment {
            check_deployment_id(id).map_err(|reason| StoreError::BadDeployment {
                id: id.to_owned(),
                reason,
            })?;
        }
        let db = Database::create(data_dir.join(STORE_FILE)).map_err(db)?;
        let mut store = Store {
            db,
            sealer: Sealer::new(key)?,
            rng: SystemRandom::new(),
            deployment: String::new(),
        };
        store.deployment = store.init(deployment)?;
        Ok(store)
    }

    /// This deployment's id (part of every change statement).
    pub fn deployment(&self) -> &str {
        &self.deployment
    }

    /// The intake key owners seal values to (decrypted from the store).
    pub fn intake_key(&self) -> Result<EnclaveKey, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let meta = tx.open_table(META).map_err(db)?;
        let sealed = meta
            .get(INTAKE_KEY)
            .map_err(db)?
            .ok_or_else(|| StoreError::Db("the intake key is missing".into()))?;
        let seed = self.sealer.open(INTAKE_KEY, 0, sealed.value())?;
        EnclaveKey::from_ikm(&seed)
            .map_err(|_| StoreError::Crypto("the intake key seed is unusable"))
    }

    fn init(&self, deployment: Option<&str>) -> Result<String, StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        let id;
        {
            tx.open_table(SECRETS).map_err(db)?;
            tx.open_table(OWNERS).map_err(db)?;
            tx.open_table(VALUES).map_err(db)?;
            tx.open_table(POLICIES).map_err(db)?;
            tx.open_table(TOKENS).map_err(db)?;
            let mut meta = tx.open_table(META).map_err(db)?;
            let check = meta.get(KEY_CHECK).map_err(db)?.map(|v| v.value().to_vec());
            match check {
                Some(sealed) => {
                    let plain = self.sealer.open(KEY_CHECK, 0, &sealed).map_err(|_| {
                        StoreError::MasterKey(
                            "this master key does not open the existing store".into(),
                        )
                    })?;
                    if plain.as_slice() != KEY_CHECK_PLAINTEXT {
                        return Err(StoreError::MasterKey("key check value is wrong".into()));
                    }
                }
                None => {
                    let sealed = self
                        .sealer
                        .seal(KEY_CHECK, 0, KEY_CHECK_PLAINTEXT, &self.rng)?;
                    meta.insert(KEY_CHECK, sealed.as_slice()).map_err(db)?;
                }
            }
            let stored = meta
                .get(DEPLOYMENT)
                .map_err(db)?
                .map(|v| String::from_utf8_lossy(v.value()).into_owned());
            id = match (stored, deployment) {
                (Some(stored), Some(given)) if stored != given => {
                    return Err(StoreError::DeploymentMismatch {
                        stored,
                        given: given.to_owned(),
                    })
                }
                (Some(stored), _) => stored,
                (None, given) => {
                    let id = match given {
                        Some(given) => given.to_owned(),
                        None => {
                            let mut bytes = [0u8; 16];
                            self.rng.fill(&mut bytes).map_err(|_| {
                                StoreError::Crypto("the random number generator failed")
                            })?;
                            format!("hermetic-{}", hex::encode(bytes))
                        }
                    };
                    meta.insert(DEPLOYMENT, id.as_bytes()).map_err(db)?;
                    id
                }
            };
            if meta.get(INTAKE_KEY).map_err(db)?.is_none() {
                let mut seed = Zeroizing::new([0u8; INTAKE_SEED_LEN]);
                self.rng
                    .fill(&mut seed[..])
                    .map_err(|_| StoreError::Crypto("the random number generator failed"))?;
                let sealed = self.sealer.seal(INTAKE_KEY, 0, &seed[..], &self.rng)?;
                meta.insert(INTAKE_KEY, sealed.as_slice()).map_err(db)?;
            }
        }
        tx.commit().map_err(db)?;
        Ok(id)
    }

    /// Creates `name` with its owner set (change version 0, or the version
    /// a deleted secret of that name reached). Refuses a live secret.
    pub fn create_secret(&self, name: &str, owners: &OwnerSet) -> Result<u64, StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        let version;
        {
            let mut secrets = tx.open_table(SECRETS).map_err(db)?;
            let (last, live) = secrets
                .get(name)
                .map_err(db)?
                .map(|v| v.value())
                .unwrap_or((0, false));
            if live {
                return Err(StoreError::Exists(name.to_owned()));
            }
            let mut table = tx.open_table(OWNERS).map_err(db)?;
            version = table
                .get(name)
                .map_err(db)?
                .map(|v| v.value().0)
                .unwrap_or(0);
            let text = owners.to_text();
            table.insert(name, (version, text.as_str())).map_err(db)?;
            secrets.insert(name, (last, true)).map_err(db)?;
        }
        tx.commit().map_err(db)?;
        Ok(version)
    }

    /// The owner set and change version of a live secret.
    pub fn secret_state(&self, name: &str) -> Result<Option<SecretState>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let secrets = tx.open_table(SECRETS).map_err(db)?;
        if !matches!(
            secrets.get(name).map_err(db)?.map(|v| v.value()),
            Some((_, true))
        ) {
            return Ok(None);
        }
        let owners = tx.open_table(OWNERS).map_err(db)?;
        let (version, text) = owners
            .get(name)
            .map_err(db)?
            .map(|v| (v.value().0, v.value().1.to_owned()))
            .unwrap_or_default();
        let owners = parse_owners(name, &text)?;
        Ok(Some(SecretState { owners, version }))
    }

    /// Applies one change to the live secret `name`, in one write
    /// transaction: `decide` sees the state read inside it and returns the
    /// new change version, the change and whatever it wants to keep (or
    /// refuses); `record` sees that and what will be committed, and runs
    /// before the commit (the audit record), so a change is never committed
    /// unless `record` succeeded.
    pub fn apply_change<T, E: From<StoreError>>(
        &self,
        name: &str,
        decide: impl FnOnce(&SecretState) -> Result<(u64, StoreChange, T), E>,
        record: impl FnOnce(&T, &Applied) -> Result<(), E>,
    ) -> Result<(Applied, T), E> {
        let tx = self.db.begin_write().map_err(db)?;
        let applied = {
            let mut secrets = tx.open_table(SECRETS).map_err(db)?;
            let Some((last, true)) = secrets.get(name).map_err(db)?.map(|v| v.value()) else {
                return Err(StoreError::NotFound(name.to_owned()).into());
            };
            let mut owners_table = tx.open_table(OWNERS).map_err(db)?;
            let (current, text) = owners_table
                .get(name)
                .map_err(db)?
                .map(|v| (v.value().0, v.value().1.to_owned()))
                .unwrap_or_default();
            let owners = parse_owners(name, &text)?;
            let (version, change, kept) = decide(&SecretState {
                owners: owners.clone(),
                version: current,
            })?;
            if version <= current {
                // The decision must have checked this; never let a version go back.
                return Err(StoreError::Db(format!(
                    "{name}: change version {version} is not above {current}"
                ))
                .into());
            }
            let mut applied = Applied {
                version,
                value_version: None,
                deleted_versions: Vec::new(),
            };
            match change {
                StoreChange::Policy(policy) => {
                    let text = policy.to_toml(name);
                    tx.open_table(POLICIES)
                        .map_err(db)?
                        .insert(name, text.as_str())
                        .map_err(db)?;
                    owners_table
                        .insert(name, (version, owners.to_text().as_str()))
                        .map_err(db)?;
                }
                StoreChange::Value(value) => {
                    let value_version = last + 1;
                    let sealed = self.sealer.seal(name, value_version, &value, &self.rng)?;
                    tx.open_table(VALUES)
                        .map_err(db)?
                        .insert((name, value_version), sealed.as_slice())
                        .map_err(db)?;
                    secrets.insert(name, (value_version, true)).map_err(db)?;
                    owners_table
                        .insert(name, (version, owners.to_text().as_str()))
                        .map_err(db)?;
                    applied.value_version = Some(value_version);
                }
                StoreChange::Owners(new) => {
                    owners_table
                        .insert(name, (version, new.to_text().as_str()))
                        .map_err(db)?;
                }
                StoreChange::Delete => {
                    applied.deleted_versions = remove_values(&tx, name)?;
                    tx.open_table(POLICIES)
                        .map_err(db)?
                        .remove(name)
                        .map_err(db)?;
                    secrets.insert(name, (last, false)).map_err(db)?;
                    owners_table.insert(name, (version, "")).map_err(db)?;
                }
            }
            (applied, kept)
        };
        record(&applied.1, &applied.0)?;
        tx.commit().map_err(db)?;
        Ok(applied)
    }

    /// Metadata of a live secret.
    pub fn secret_info(&self, name: &str) -> Result<Option<SecretInfo>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let secrets = tx.open_table(SECRETS).map_err(db)?;
        let Some((last, true)) = secrets.get(name).map_err(db)?.map(|v| v.value()) else {
            return Ok(None);
        };
        let values = tx.open_table(VALUES).map_err(db)?;
        let versions = values
            .range((name, 0)..=(name, u64::MAX))
            .map_err(db)?
            .filter_map(|r| r.ok().map(|(k, _)| k.value().1))
            .collect();
        let has_policy = tx
            .open_table(POLICIES)
            .map_err(db)?
            .get(name)
            .map_err(db)?
            .is_some();
        let (version, text) = tx
            .open_table(OWNERS)
            .map_err(db)?
            .get(name)
            .map_err(db)?
            .map(|v| (v.value().0, v.value().1.to_owned()))
            .unwrap_or_default();
        let (owners, threshold) = match parse_owners(name, &text) {
            Ok(set) => (
                set.owners().iter().map(ToString::to_string).collect(),
                set.threshold(),
            ),
            Err(StoreError::NoOwners(_)) => (Vec::new(), 0),
            Err(e) => return Err(e),
        };
        Ok(Some(SecretInfo {
            name: name.to_owned(),
            latest_version: last,
            versions,
            has_policy,
            owners,
            threshold,
            version,
        }))
    }

    /// Every live secret's metadata, by name.
    pub fn list_secrets(&self) -> Result<Vec<SecretInfo>, StoreError> {
        let names: Vec<String> = {
            let tx = self.db.begin_read().map_err(db)?;
            let secrets = tx.open_table(SECRETS).map_err(db)?;
            let iter = secrets.iter().map_err(db)?;
            iter.filter_map(|r| r.ok())
                .filter(|(_, v)| v.value().1)
                .map(|(k, _)| k.value().to_owned())
                .collect()
        };
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            if let Some(info) = self.secret_info(&name)? {
                out.push(info);
            }
        }
        Ok(out)
    }

    /// Whether a live secret named `name` exists.
    pub fn secret_exists(&self, name: &str) -> Result<bool, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let secrets = tx.open_table(SECRETS).map_err(db)?;
        Ok(matches!(
            secrets.get(name).map_err(db)?.map(|v| v.value()),
            Some((_, true))
        ))
    }

    /// The latest version of a live secret and its decrypted value. Only the
    /// release path calls this, and only to seal the value to an enclave.
    pub fn latest_secret(&self, name: &str) -> Result<Option<(u64, SecretValue)>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let secrets = tx.open_table(SECRETS).map_err(db)?;
        let Some((version, true)) = secrets.get(name).map_err(db)?.map(|v| v.value()) else {
            return Ok(None);
        };
        let values = tx.open_table(VALUES).map_err(db)?;
        // A secret created (or re-created) without a value yet has none at
        // its last value version.
        let Some(sealed) = values.get((name, version)).map_err(db)? else {
            return Ok(None);
        };
        let plain = self.sealer.open(name, version, sealed.value())?;
        Ok(Some((version, plain)))
    }

    pub fn policy(&self, name: &str) -> Result<Option<SecretPolicy>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let table = tx.open_table(POLICIES).map_err(db)?;
        let Some(text) = table.get(name).map_err(db)? else {
            return Ok(None);
        };
        let mut file =
            PolicyFile::parse(text.value()).map_err(|_| StoreError::BadPolicy(name.to_owned()))?;
        file.secrets
            .remove(name)
            .map(Some)
            .ok_or_else(|| StoreError::BadPolicy(name.to_owned()))
    }

    pub fn policy_names(&self) -> Result<Vec<String>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let table = tx.open_table(POLICIES).map_err(db)?;
        let iter = table.iter().map_err(db)?;
        Ok(iter
            .filter_map(|r| r.ok().map(|(k, _)| k.value().to_owned()))
            .collect())
    }

    /// Every stored policy this version can use, by name (byte order), and
    /// the names of those it refuses to read (written before a rule was
    /// added, such as "every set pins the image"): those are never used —
    /// a release for them is refused `no_policy` — until the secret's owners
    /// replace them.
    pub fn policies(&self) -> Result<StoredPolicies, StoreError> {
        let mut usable = Vec::new();
        let mut unusable = Vec::new();
        for name in self.policy_names()? {
            match self.policy(&name) {
                Ok(Some(policy)) => usable.push((name, policy)),
                Ok(None) => {}
                Err(StoreError::BadPolicy(_)) => unusable.push(name),
                Err(e) => return Err(e),
            }
        }
        Ok(StoredPolicies { usable, unusable })
    }

    pub fn add_token_hash(&self, hash: &[u8; 32], label: &str) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        tx.open_table(TOKENS)
            .map_err(db)?
            .insert(hash.as_slice(), label)
            .map_err(db)?;
        tx.commit().map_err(db)
    }

    /// The label of the token whose SHA-256 is `hash`, if it is one of ours.
    pub fn token_label(&self, hash: &[u8; 32]) -> Result<Option<String>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let table = tx.open_table(TOKENS).map_err(db)?;
        Ok(table
            .get(hash.as_slice())
            .map_err(db)?
            .map(|v| v.value().to_owned()))
    }

    pub fn token_count(&self) -> Result<u64, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        tx.open_table(TOKENS).map_err(db)?.len().map_err(db)
    }
}

fn parse_owners(name: &str, text: &str) -> Result<OwnerSet, StoreError> {
    if text.is_empty() {
        return Err(StoreError::NoOwners(name.to_owned()));
    }
    OwnerSet::parse(text).map_err(|_| StoreError::BadOwners(name.to_owned()))
}

/// Removes every value version of `name`; returns the versions removed.
fn remove_values(tx: &WriteTransaction, name: &str) -> Result<Vec<u64>, StoreError> {
    let mut values = tx.open_table(VALUES).map_err(db)?;
    let versions: Vec<u64> = values
        .range((name, 0)..=(name, u64::MAX))
        .map_err(db)?
        .filter_map(|r| r.ok().map(|(k, _)| k.value().1))
        .collect();
    for v in &versions {
        values.remove((name, *v)).map_err(db)?;
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

    fn key(b: u8) -> MasterKey {
        MasterKey::from_bytes([b; 32])
    }

    #[test]
    fn master_key_sources_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let rng = SystemRandom::new();
        // Nothing given: generated once (0600), then reused.
        let (k1, src) = MasterKey::load(dir.path(), None, None, &rng).unwrap();
        assert!(matches!(src, KeySource::Generated(_)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(MASTER_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (k2, src) = MasterKey::load(dir.path(), None, None, &rng).unwrap();
        assert!(matches!(src, KeySource::DataDir(_)));
        assert_eq!(k1.bytes(), k2.bytes());
        // The environment wins over the data directory, a file over both.
        let env = "11".repeat(32);
        let (k, src) = MasterKey::load(dir.path(), None, Some(&env), &rng).unwrap();
        assert_eq!((k.bytes(), src), (&[0x11; 32], KeySource::Env));
        let file = dir.path().join("k");
        std::fs::write(&file, format!("{}\n", "22".repeat(32))).unwrap();
        let (k, _) = MasterKey::load(dir.path(), Some(&file), Some(&env), &rng).unwrap();
        assert_eq!(k.bytes(), &[0x22; 32]);
        // Malformed keys are refused, and Debug never shows the key.
        assert!(MasterKey::load(dir.path(), None, Some("abc"), &rng).is_err());
        assert_eq!(format!("{k:?}"), "MasterKey(<redacted>)");
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
            .apply_change(name, |_| Ok((version, c, ())), |_, _| Ok(()))
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
                |_, _| Err(StoreError::Io("log down".into()))
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
}
