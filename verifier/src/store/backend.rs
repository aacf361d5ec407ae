//! The store's backends: one interface, several engines (the shape of CoCo
//! Trustee's `kbs` key-value storage: one trait, a local and a database
//! backend).
//!
//! A backend keeps **sealed rows** only: every value it is handed was
//! sealed by `rows.rs` under a key derived from the master key and bound to
//! its table, its row key and its version, so no backend (nor whoever can
//! edit its files or its database) sees or changes a value, a policy, an
//! owner set or a token label without the read refusing it. The checks
//! (heads, versions, roll-back floors) live once, in [`super::Store`], over
//! this interface.
//!
//! Engines: [`RedbBackend`] (the embedded default, one redb file in the data
//! directory) and `postgres::PgBackend` (shared by many verifier replicas).

use redb::{Database, ReadableTable, ReadableTableMetadata, WriteTransaction};

use super::{db, StoreError, HEADS, META, POLICIES, TOKENS, VALUES};

/// One row, named by its table and key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row<'a> {
    /// A secret's head (by name).
    Head(&'a str),
    /// A secret's value (name, value version).
    Value(&'a str, u64),
    /// A secret's policy (by name).
    Policy(&'a str),
    /// An admin token entry (by its HMAC).
    Token(&'a [u8]),
    /// A store-wide fact (by name).
    Meta(&'a str),
}

/// A table whose keys can be listed or counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Heads,
    Policies,
    Tokens,
}

/// The reads of one transaction (a consistent snapshot).
pub trait ReadRows {
    /// The sealed row, if there is one.
    fn get(&self, row: Row<'_>) -> Result<Option<Vec<u8>>, StoreError>;
    /// The value versions of `name` at or above `from`, ascending.
    fn value_versions(&self, name: &str, from: u64) -> Result<Vec<u64>, StoreError>;
    /// The keys of a table of named rows (heads or policies), in byte order.
    fn names(&self, table: Table) -> Result<Vec<String>, StoreError>;
    /// How many rows a table holds.
    fn count(&self, table: Table) -> Result<u64, StoreError>;
}

/// The reads and writes of one write transaction.
pub trait WriteRows: ReadRows {
    fn put(&mut self, row: Row<'_>, sealed: &[u8]) -> Result<(), StoreError>;
    fn remove(&mut self, row: Row<'_>) -> Result<(), StoreError>;
    /// As `&dyn ReadRows` (trait upcasting by hand, for the shared checks).
    fn reads(&self) -> &dyn ReadRows;
    /// Appends audit-log leaves in this same transaction, when the engine
    /// keeps the log too (PostgreSQL): `build(n)` gets the first index (the
    /// log's size under its lock) and returns the leaves; returns the log's
    /// new size. They commit with the rows or not at all. `Ok(None)`: this
    /// engine keeps no log (redb: the log is the data directory's files).
    fn append_log(
        &mut self,
        build: &mut crate::log::store::BuildLeaves<'_>,
    ) -> Result<Option<u64>, crate::log::LogError> {
        let _ = build;
        Ok(None)
    }
}

/// What the write closure decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Commit,
    Abort,
}

/// A store engine. `write` transactions are serialized (across every
/// process sharing the engine) and durable when `write` returns `Commit`.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Runs `f` on one read snapshot.
    fn read(
        &self,
        f: &mut (dyn FnMut(&dyn ReadRows) -> Result<(), StoreError> + Send),
    ) -> Result<(), StoreError>;
    /// Runs `f` in one write transaction; commits it when `f` says so.
    fn write(
        &self,
        f: &mut (dyn FnMut(&mut dyn WriteRows) -> Result<Outcome, StoreError> + Send),
    ) -> Result<Outcome, StoreError>;
    /// The redb database, for the embedded backend's own tests and migration.
    fn redb(&self) -> Option<&Database> {
        None
    }
    /// Whether calls may wait on a network (a database server), so that an
    /// async caller must run them on the blocking pool.
    fn remote(&self) -> bool {
        false
    }
}

/// The embedded backend: `DIR/hermetic.redb`, each write a redb transaction
/// committed with immediate durability.
#[derive(Debug)]
pub struct RedbBackend {
    pub(crate) db: Database,
}

impl Backend for RedbBackend {
    fn read(
        &self,
        f: &mut (dyn FnMut(&dyn ReadRows) -> Result<(), StoreError> + Send),
    ) -> Result<(), StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        f(&RedbRead(tx))
    }

    fn write(
        &self,
        f: &mut (dyn FnMut(&mut dyn WriteRows) -> Result<Outcome, StoreError> + Send),
    ) -> Result<Outcome, StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        let outcome = f(&mut RedbWrite(&tx))?;
        match outcome {
            Outcome::Commit => tx.commit().map_err(db)?,
            Outcome::Abort => tx.abort().map_err(db)?,
        }
        Ok(outcome)
    }

    fn redb(&self) -> Option<&Database> {
        Some(&self.db)
    }
}

/// A redb read transaction as [`ReadRows`].
pub(crate) struct RedbRead(pub(crate) redb::ReadTransaction);
/// A redb write transaction as [`WriteRows`].
pub(crate) struct RedbWrite<'t>(pub(crate) &'t WriteTransaction);

fn bytes(v: Option<redb::AccessGuard<'_, &'static [u8]>>) -> Option<Vec<u8>> {
    v.map(|v| v.value().to_vec())
}

macro_rules! redb_reads {
    ($t:ty) => {
        impl ReadRows for $t {
            fn get(&self, row: Row<'_>) -> Result<Option<Vec<u8>>, StoreError> {
                let tx = &self.0;
                Ok(match row {
                    Row::Head(k) => bytes(tx.open_table(HEADS).map_err(db)?.get(k).map_err(db)?),
                    Row::Value(k, v) => {
                        bytes(tx.open_table(VALUES).map_err(db)?.get((k, v)).map_err(db)?)
                    }
                    Row::Policy(k) => {
                        bytes(tx.open_table(POLICIES).map_err(db)?.get(k).map_err(db)?)
                    }
                    Row::Token(k) => bytes(tx.open_table(TOKENS).map_err(db)?.get(k).map_err(db)?),
                    Row::Meta(k) => bytes(tx.open_table(META).map_err(db)?.get(k).map_err(db)?),
                })
            }

            fn value_versions(&self, name: &str, from: u64) -> Result<Vec<u64>, StoreError> {
                let table = self.0.open_table(VALUES).map_err(db)?;
                let mut out = Vec::new();
                for row in table.range((name, from)..=(name, u64::MAX)).map_err(db)? {
                    out.push(row.map_err(db)?.0.value().1);
                }
                Ok(out)
            }

            fn names(&self, table: Table) -> Result<Vec<String>, StoreError> {
                let t = match table {
                    Table::Heads => self.0.open_table(HEADS).map_err(db)?,
                    Table::Policies => self.0.open_table(POLICIES).map_err(db)?,
                    Table::Tokens => return Err(StoreError::Db("token rows have no names".into())),
                };
                let mut out = Vec::new();
                for row in t.iter().map_err(db)? {
                    out.push(row.map_err(db)?.0.value().to_owned());
                }
                Ok(out)
            }

            fn count(&self, table: Table) -> Result<u64, StoreError> {
                match table {
                    Table::Heads => self.0.open_table(HEADS).map_err(db)?.len().map_err(db),
                    Table::Policies => self.0.open_table(POLICIES).map_err(db)?.len().map_err(db),
                    Table::Tokens => self.0.open_table(TOKENS).map_err(db)?.len().map_err(db),
                }
            }
        }
    };
}

redb_reads!(RedbRead);
redb_reads!(RedbWrite<'_>);

impl WriteRows for RedbWrite<'_> {
    fn put(&mut self, row: Row<'_>, sealed: &[u8]) -> Result<(), StoreError> {
        let tx = self.0;
        match row {
            Row::Head(k) => tx
                .open_table(HEADS)
                .map_err(db)?
                .insert(k, sealed)
                .map(drop),
            Row::Value(k, v) => tx
                .open_table(VALUES)
                .map_err(db)?
                .insert((k, v), sealed)
                .map(drop),
            Row::Policy(k) => tx
                .open_table(POLICIES)
                .map_err(db)?
                .insert(k, sealed)
                .map(drop),
            Row::Token(k) => tx
                .open_table(TOKENS)
                .map_err(db)?
                .insert(k, sealed)
                .map(drop),
            Row::Meta(k) => tx.open_table(META).map_err(db)?.insert(k, sealed).map(drop),
        }
        .map_err(db)
    }

    fn remove(&mut self, row: Row<'_>) -> Result<(), StoreError> {
        let tx = self.0;
        match row {
            Row::Head(k) => tx.open_table(HEADS).map_err(db)?.remove(k).map(drop),
            Row::Value(k, v) => tx.open_table(VALUES).map_err(db)?.remove((k, v)).map(drop),
            Row::Policy(k) => tx.open_table(POLICIES).map_err(db)?.remove(k).map(drop),
            Row::Token(k) => tx.open_table(TOKENS).map_err(db)?.remove(k).map(drop),
            Row::Meta(k) => tx.open_table(META).map_err(db)?.remove(k).map(drop),
        }
        .map_err(db)
    }

    fn reads(&self) -> &dyn ReadRows {
        self
    }
}

/// The backend of a store still being opened (its engine is busy with the
/// opening transaction): every call is refused.
#[derive(Debug)]
pub(crate) struct Opening;

impl Backend for Opening {
    fn read(
        &self,
        _: &mut (dyn FnMut(&dyn ReadRows) -> Result<(), StoreError> + Send),
    ) -> Result<(), StoreError> {
        Err(StoreError::Db("the store is still being opened".into()))
    }

    fn write(
        &self,
        _: &mut (dyn FnMut(&mut dyn WriteRows) -> Result<Outcome, StoreError> + Send),
    ) -> Result<Outcome, StoreError> {
        Err(StoreError::Db("the store is still being opened".into()))
    }
}
