//! The embedded store: one redb file in the data directory.
//!
//! Secret values are encrypted at rest under the master key (see
//! `sealing.rs`); policies and admin token hashes are stored in the clear
//! (neither is secret: tokens are kept only as SHA-256). Every write is a
//! redb transaction committed with immediate durability before it returns,
//! so the API acknowledges only what survives a crash.
//!
//! A secret's versions only grow: deleting a secret keeps a tombstone with
//! its last version, so a secret re-created under the same name never reuses
//! a (name, version) pair that an enclave may already have seen.

mod master_key;
mod sealing;

use std::path::Path;

use aws_lc_rs::rand::SystemRandom;
use hermetic_envelope::Zeroizing;
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};

pub(crate) use master_key::write_private;
pub use master_key::{KeySource, MasterKey, MASTER_KEY_ENV, MASTER_KEY_FILE, MASTER_KEY_LEN};

use crate::policy::{PolicyFile, SecretPolicy};
use sealing::Sealer;

/// File name of the store inside the data directory.
pub const STORE_FILE: &str = "hermetic.redb";

/// name → (last version ever issued, live).
const SECRETS: TableDefinition<&str, (u64, bool)> = TableDefinition::new("secrets");
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
    #[error("stored policy for {0:?} is unreadable")]
    BadPolicy(String),
}

impl StoreError {
    pub fn reason(&self) -> &'static str {
        match self {
            StoreError::NotFound(_) => "unknown_secret",
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
    pub latest_version: u64,
    pub versions: Vec<u64>,
    pub has_policy: bool,
}

pub struct Store {
    db: Database,
    sealer: Sealer,
    rng: SystemRandom,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) `DIR/hermetic.redb`; refuses a master key that
    /// does not open the store's check value.
    pub fn open(data_dir: &Path, key: &MasterKey) -> Result<Store, StoreError> {
        let db = Database::create(data_dir.join(STORE_FILE)).map_err(db)?;
        let store = Store {
            db,
            sealer: Sealer::new(key)?,
            rng: SystemRandom::new(),
        };
        store.init()?;
        Ok(store)
    }

    fn init(&self) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        {
            tx.open_table(SECRETS).map_err(db)?;
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
        }
        tx.commit().map_err(db)
    }

    /// Stores `value` as a new version of `name` (version 1, or one past the
    /// last version ever issued) and returns that version once committed.
    pub fn put_secret(&self, name: &str, value: &[u8]) -> Result<u64, StoreError> {
        self.write_version(name, value, false)
    }

    /// Like [`Store::put_secret`], but only for a secret that exists.
    pub fn rotate_secret(&self, name: &str, value: &[u8]) -> Result<u64, StoreError> {
        self.write_version(name, value, true)
    }

    fn write_version(&self, name: &str, value: &[u8], must_exist: bool) -> Result<u64, StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        let version;
        {
            let mut secrets = tx.open_table(SECRETS).map_err(db)?;
            let (last, live) = secrets
                .get(name)
                .map_err(db)?
                .map(|v| v.value())
                .unwrap_or((0, false));
            if must_exist && !live {
                return Err(StoreError::NotFound(name.to_owned()));
            }
            version = last + 1;
            let sealed = self.sealer.seal(name, version, value, &self.rng)?;
            let mut values = tx.open_table(VALUES).map_err(db)?;
            values
                .insert((name, version), sealed.as_slice())
                .map_err(db)?;
            secrets.insert(name, (version, true)).map_err(db)?;
        }
        tx.commit().map_err(db)?;
        Ok(version)
    }

    /// Deletes every version of `name` (keeping its version counter) and
    /// returns the versions that were removed.
    pub fn delete_secret(&self, name: &str) -> Result<Vec<u64>, StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        let removed;
        {
            let mut secrets = tx.open_table(SECRETS).map_err(db)?;
            let Some((last, true)) = secrets.get(name).map_err(db)?.map(|v| v.value()) else {
                return Err(StoreError::NotFound(name.to_owned()));
            };
            let mut values = tx.open_table(VALUES).map_err(db)?;
            let versions: Vec<u64> = values
                .range((name, 0)..=(name, u64::MAX))
                .map_err(db)?
                .filter_map(|r| r.ok().map(|(k, _)| k.value().1))
                .collect();
            for v in &versions {
                values.remove((name, *v)).map_err(db)?;
            }
            secrets.insert(name, (last, false)).map_err(db)?;
            removed = versions;
        }
        tx.commit().map_err(db)?;
        Ok(removed)
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
        Ok(Some(SecretInfo {
            name: name.to_owned(),
            latest_version: last,
            versions,
            has_policy,
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
        let sealed = values
            .get((name, version))
            .map_err(db)?
            .ok_or_else(|| StoreError::Db(format!("{name} v{version}: value missing")))?;
        let plain = self.sealer.open(name, version, sealed.value())?;
        Ok(Some((version, plain)))
    }

    /// Replaces the policy of `name` (the secret need not exist yet).
    pub fn put_policy(&self, name: &str, policy: &SecretPolicy) -> Result<(), StoreError> {
        let text = policy.to_toml(name);
        let tx = self.db.begin_write().map_err(db)?;
        tx.open_table(POLICIES)
            .map_err(db)?
            .insert(name, text.as_str())
            .map_err(db)?;
        tx.commit().map_err(db)
    }

    /// Removes the policy of `name`; returns whether there was one.
    pub fn delete_policy(&self, name: &str) -> Result<bool, StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        let existed = tx
            .open_table(POLICIES)
            .map_err(db)?
            .remove(name)
            .map_err(db)?
            .is_some();
        tx.commit().map_err(db)?;
        Ok(existed)
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

    /// Every stored policy, by name (byte order).
    pub fn policies(&self) -> Result<Vec<(String, SecretPolicy)>, StoreError> {
        let mut out = Vec::new();
        for name in self.policy_names()? {
            if let Some(policy) = self.policy(&name)? {
                out.push((name, policy));
            }
        }
        Ok(out)
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

    #[test]
    fn versions_grow_and_survive_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &key(1)).unwrap();
        assert_eq!(store.put_secret("a", b"one").unwrap(), 1);
        assert_eq!(store.rotate_secret("a", b"two").unwrap(), 2);
        assert_eq!(
            store.rotate_secret("b", b"x"),
            Err(StoreError::NotFound("b".into()))
        );
        let (v, value) = store.latest_secret("a").unwrap().unwrap();
        assert_eq!((v, value.as_slice()), (2, &b"two"[..]));
        assert_eq!(store.delete_secret("a").unwrap(), vec![1, 2]);
        assert_eq!(store.latest_secret("a").unwrap(), None);
        assert!(store.list_secrets().unwrap().is_empty());
        // Re-created: the version counter does not restart.
        assert_eq!(store.put_secret("a", b"three").unwrap(), 3);
    }

    #[test]
    fn values_are_encrypted_and_bound_to_the_master_key() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), &key(1)).unwrap();
            store
                .put_secret("a", b"plaintext-marker-0123456789")
                .unwrap();
        }
        let raw = std::fs::read(dir.path().join(STORE_FILE)).unwrap();
        assert!(!raw
            .windows(b"plaintext-marker".len())
            .any(|w| w == b"plaintext-marker"));
        assert!(matches!(
            Store::open(dir.path(), &key(2)),
            Err(StoreError::MasterKey(_))
        ));
        let store = Store::open(dir.path(), &key(1)).unwrap();
        assert_eq!(store.latest_secret("a").unwrap().unwrap().0, 1);
    }
}
