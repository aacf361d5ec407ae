//! Stores written by the previous version, and their migration.
//!
//! That version kept values (and the key check and intake seed) as
//! AES-256-GCM directly under the master key with (name, version) as
//! associated data, and everything else in the clear: `secrets` name →
//! (last value version, live), `secret_owners` name → (change version,
//! owner-set text), `policies` name → TOML, `admin_tokens` SHA-256(token) →
//! label, `meta` (deployment id in the clear). Opening such a store with its
//! master key converts every row to the sealed `v2/` tables in the opening
//! transaction and deletes the old tables, so the store is never half
//! converted; the service logs what was converted. The clear rows were
//! writable by the host until then: the conversion seals what it finds, so
//! an operator who distrusts the host's past should have the owners re-put
//! their policies (README, "What is at rest").

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
#[cfg(test)]
use aws_lc_rs::rand::SecureRandom;
use hermetic_envelope::Zeroizing;
use redb::{ReadableTable, TableDefinition, TableHandle, WriteTransaction};

use super::backend::RedbWrite;
use super::master_key::MasterKey;
use super::{
    db, value_key, Head, Migrated, Store, StoreError, HEADS, INTAKE_KEY, KEY_CHECK,
    KEY_CHECK_PLAINTEXT, POLICIES, T_POLICIES, T_VALUES, VALUES,
};

const SECRETS: TableDefinition<&str, (u64, bool)> = TableDefinition::new("secrets");
const OWNERS: TableDefinition<&str, (u64, &str)> = TableDefinition::new("secret_owners");
const OLD_VALUES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("secret_values");
const OLD_POLICIES: TableDefinition<&str, &str> = TableDefinition::new("policies");
const TOKENS: TableDefinition<&[u8], &str> = TableDefinition::new("admin_tokens");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const DEPLOYMENT: &str = "deployment";

/// What an old store holds outside its data tables.
pub(crate) struct Legacy {
    tables: Vec<String>,
    sealer: Sealer,
    pub(crate) deployment: Option<String>,
    pub(crate) intake_seed: Option<Zeroizing<Vec<u8>>>,
}

impl Legacy {
    /// `None` for a store with no table of the previous version. Refuses a
    /// master key that does not open the old store's key check.
    pub(crate) fn find(tx: &WriteTransaction, key: &MasterKey) -> Result<Option<Self>, StoreError> {
        let old = [
            SECRETS.name(),
            OWNERS.name(),
            OLD_VALUES.name(),
            OLD_POLICIES.name(),
            TOKENS.name(),
            META.name(),
        ];
        let tables: Vec<String> = tx
            .list_tables()
            .map_err(db)?
            .map(|t| t.name().to_owned())
            .filter(|n| old.contains(&n.as_str()))
            .collect();
        if tables.is_empty() {
            return Ok(None);
        }
        let mut legacy = Legacy {
            tables,
            sealer: Sealer::new(key)?,
            deployment: None,
            intake_seed: None,
        };
        if legacy.has(META.name()) {
            let meta = tx.open_table(META).map_err(db)?;
            if let Some(check) = meta.get(KEY_CHECK).map_err(db)? {
                let plain = legacy
                    .sealer
                    .open(KEY_CHECK, 0, check.value())
                    .map_err(|_| {
                        StoreError::MasterKey(
                            "this master key does not open the existing store".into(),
                        )
                    })?;
                if plain.as_slice() != KEY_CHECK_PLAINTEXT {
                    return Err(StoreError::MasterKey("key check value is wrong".into()));
                }
            }
            legacy.deployment = meta
                .get(DEPLOYMENT)
                .map_err(db)?
                .map(|v| String::from_utf8_lossy(v.value()).into_owned());
            if let Some(sealed) = meta.get(INTAKE_KEY).map_err(db)? {
                legacy.intake_seed = Some(legacy.sealer.open(INTAKE_KEY, 0, sealed.value())?);
            };
        }
        Ok(Some(legacy))
    }

    fn has(&self, table: &str) -> bool {
        self.tables.iter().any(|t| t == table)
    }

    /// Converts every old row into the sealed tables and deletes the old
    /// tables, inside the caller's transaction.
    pub(crate) fn migrate(
        self,
        tx: &WriteTransaction,
        store: &Store,
    ) -> Result<Migrated, StoreError> {
        let mut done = Migrated::default();
        if self.has(OLD_VALUES.name()) {
            let old = tx.open_table(OLD_VALUES).map_err(db)?;
            let mut new = tx.open_table(VALUES).map_err(db)?;
            for row in old.iter().map_err(db)? {
                let (k, v) = row.map_err(db)?;
                let (name, version) = k.value();
                let plain = self.sealer.open(name, version, v.value())?;
                let sealed = store.rows.seal(
                    T_VALUES,
                    &value_key(name, version),
                    version,
                    &plain,
                    &store.rng,
                )?;
                new.insert((name, version), sealed.as_slice()).map_err(db)?;
                done.values += 1;
            }
        }
        if self.has(SECRETS.name()) {
            let secrets = tx.open_table(SECRETS).map_err(db)?;
            let owners = tx.open_table(OWNERS).map_err(db)?;
            let values = tx.open_table(VALUES).map_err(db)?;
            let heads = tx.open_table(HEADS).map_err(db)?;
            let mut put = Vec::new();
            for row in secrets.iter().map_err(db)? {
                let (k, v) = row.map_err(db)?;
                let name = k.value();
                if heads.get(name).map_err(db)?.is_some() {
                    continue;
                }
                let (last, live) = v.value();
                let (version, text) = owners
                    .get(name)
                    .map_err(db)?
                    .map(|v| (v.value().0, v.value().1.to_owned()))
                    .unwrap_or_default();
                let value = live && values.get((name, last)).map_err(db)?.is_some();
                put.push((
                    name.to_owned(),
                    Head {
                        last,
                        live,
                        version,
                        value,
                        policy: None,
                        owners: if live { text } else { String::new() },
                    },
                ));
            }
            drop(heads);
            for (name, head) in put {
                store.put_head(&mut RedbWrite(tx), &name, &head)?;
                done.secrets += 1;
            }
        }
        if self.has(OLD_POLICIES.name()) {
            let old = tx.open_table(OLD_POLICIES).map_err(db)?;
            let mut put = Vec::new();
            for row in old.iter().map_err(db)? {
                let (k, v) = row.map_err(db)?;
                put.push((k.value().to_owned(), v.value().to_owned()));
            }
            drop(old);
            for (name, text) in put {
                let head = store.head(&RedbWrite(tx), &name)?;
                // The old version removed a policy with its secret: one
                // without a live secret is not carried over.
                let Some(mut head) = head.filter(|h| h.live) else {
                    continue;
                };
                let sealed = store.rows.seal(
                    T_POLICIES,
                    name.as_bytes(),
                    head.version,
                    text.as_bytes(),
                    &store.rng,
                )?;
                tx.open_table(POLICIES)
                    .map_err(db)?
                    .insert(name.as_str(), sealed.as_slice())
                    .map_err(db)?;
                head.policy = Some(head.version);
                store.put_head(&mut RedbWrite(tx), &name, &head)?;
                done.policies += 1;
            }
        }
        if self.has(TOKENS.name()) {
            let old = tx.open_table(TOKENS).map_err(db)?;
            let mut put = Vec::new();
            for row in old.iter().map_err(db)? {
                let (k, v) = row.map_err(db)?;
                let hash: [u8; 32] = k
                    .value()
                    .try_into()
                    .map_err(|_| StoreError::Db("an old token entry is not 32 bytes".into()))?;
                put.push((hash, v.value().to_owned()));
            }
            drop(old);
            for (hash, label) in put {
                store.put_token(&mut RedbWrite(tx), &hash, &label)?;
                done.tokens += 1;
            }
        }
        for name in &self.tables {
            let gone = match name.as_str() {
                n if n == SECRETS.name() => tx.delete_table(SECRETS),
                n if n == OWNERS.name() => tx.delete_table(OWNERS),
                n if n == OLD_VALUES.name() => tx.delete_table(OLD_VALUES),
                n if n == OLD_POLICIES.name() => tx.delete_table(OLD_POLICIES),
                n if n == TOKENS.name() => tx.delete_table(TOKENS),
                _ => tx.delete_table(META),
            };
            gone.map_err(db)?;
        }
        Ok(done)
    }
}

const AAD_LABEL: &[u8] = b"hermetic/v1 store";

pub(crate) struct Sealer {
    key: LessSafeKey,
}

/// `label || u32(len(name)) || name || u64(version)`, lengths big-endian.
fn aad(name: &str, version: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(AAD_LABEL.len() + 12 + name.len());
    out.extend_from_slice(AAD_LABEL);
    out.extend_from_slice(&(name.len() as u32).to_be_bytes());
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&version.to_be_bytes());
    out
}

impl Sealer {
    pub(crate) fn new(key: &MasterKey) -> Result<Self, StoreError> {
        let unbound = UnboundKey::new(&AES_256_GCM, key.bytes())
            .map_err(|_| StoreError::MasterKey("unusable master key".into()))?;
        Ok(Sealer {
            key: LessSafeKey::new(unbound),
        })
    }

    /// `nonce || ciphertext || tag` (tests write old stores with it).
    #[cfg(test)]
    pub(crate) fn seal(
        &self,
        name: &str,
        version: u64,
        plaintext: &[u8],
        rng: &dyn SecureRandom,
    ) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce)
            .map_err(|_| StoreError::Crypto("the random number generator failed"))?;
        let mut buf = Vec::with_capacity(NONCE_LEN + plaintext.len() + 16);
        buf.extend_from_slice(&nonce);
        buf.extend_from_slice(plaintext);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(name, version)),
                &mut buf[NONCE_LEN..],
            )
            .map_err(|_| StoreError::Crypto("encryption failed"))?;
        buf.extend_from_slice(tag.as_ref());
        Ok(buf)
    }

    pub(crate) fn open(
        &self,
        name: &str,
        version: u64,
        stored: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        if stored.len() < NONCE_LEN + 16 {
            return Err(StoreError::Crypto("stored value is truncated"));
        }
        let (nonce, sealed) = stored.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| StoreError::Crypto("stored value is truncated"))?;
        let mut buf = Zeroizing::new(sealed.to_vec());
        let len = self
            .key
            .open_in_place(nonce, Aad::from(aad(name, version)), &mut buf[..])
            .map_err(|_| {
                StoreError::Crypto("stored value does not decrypt (wrong master key or tampering)")
            })?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;

    #[test]
    fn a_value_opens_only_under_its_own_name_and_version() {
        let sealer = Sealer::new(&MasterKey::from_bytes([3; 32])).unwrap();
        let rng = SystemRandom::new();
        let stored = sealer.seal("db", 2, b"value", &rng).unwrap();
        assert_eq!(sealer.open("db", 2, &stored).unwrap().as_slice(), b"value");
        assert!(sealer.open("db", 1, &stored).is_err());
        assert!(sealer.open("dc", 2, &stored).is_err());
        let mut flipped = stored.clone();
        flipped[14] ^= 1;
        assert!(sealer.open("db", 2, &flipped).is_err());
        assert!(sealer.open("db", 2, &stored[..20]).is_err());
        // Random nonces: the same value never seals to the same bytes.
        assert_ne!(stored, sealer.seal("db", 2, b"value", &rng).unwrap());
    }
}
