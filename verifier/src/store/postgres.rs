//! The PostgreSQL backend: the store's sealed rows in one table shared by
//! every verifier replica (issue 13).
//!
//! The database sees ciphertext only: each row arrives sealed by `rows.rs`
//! under a key derived from the master key, which never reaches the
//! database (replicas get it from the custodians or by forwarding). A row
//! edited by hand fails to open (`row_tampered`), exactly as a row of the
//! embedded file does.
//!
//! - Write transactions take one transaction-level advisory lock
//!   (`pg_advisory_xact_lock`, PostgreSQL manual §9.27.10 "Advisory Lock
//!   Functions"), so the owners' K-of-N check and the change it admits are
//!   serialized across replicas just as redb serializes them in one process.
//!   A write returns only after `COMMIT` (synchronous commit: durable).
//! - Read transactions are `REPEATABLE READ READ ONLY`: one snapshot
//!   (manual §13.2.2), so a head and the rows it names are read together.
//! - The schema is created and migrated at start under another advisory
//!   lock, versioned in `hermetic_schema_migrations`; a database whose
//!   schema is newer than this binary knows is refused.
//! - A lost connection or a database that is down is
//!   [`StoreError::Unavailable`] (`store_unavailable`, transient): the
//!   broken connection is dropped from the pool and the next call connects
//!   again, so the verifier recovers when the database does, without a
//!   restart.
//!
//! The driver is `postgres` (the synchronous face of `tokio-postgres`): the
//! store's callers are synchronous. It runs its own small runtime per
//! connection, which may not be entered from an async task: a call made on
//! a runtime thread runs on a scoped helper thread.

use std::cell::RefCell;
use std::str::FromStr;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use hermetic_envelope::Zeroizing;
use postgres::error::SqlState;
use postgres::{Client, Config, IsolationLevel, Transaction};

use super::backend::{Backend, Outcome, ReadRows, Row, Table, WriteRows};
use super::pg_connect::PgConnector;
use super::StoreError;
use crate::challenge::{Consumed, SharedNonces, NONCE_LEN};

/// The schema versions this binary knows, in order; each is applied once,
/// in its own transaction with the version row that records it.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "sealed rows",
        "CREATE TABLE hermetic_rows (
            tbl smallint NOT NULL,
            key bytea NOT NULL,
            val bytea NOT NULL,
            PRIMARY KEY (tbl, key)
        );",
    ),
    (
        2,
        "shared challenge nonces",
        // A nonce is random and public (it goes to the enclave in clear):
        // it needs no sealing.
        "CREATE TABLE hermetic_nonces (
            nonce bytea PRIMARY KEY,
            expires_ms bigint NOT NULL,
            used boolean NOT NULL DEFAULT false
        );
        CREATE INDEX hermetic_nonces_expiry ON hermetic_nonces (expires_ms);",
    ),
    (
        3,
        "the shared audit log",
        // One tree for every replica: `log::postgres` (leaves are public
        // records; the checkpoint is signed).
        "CREATE TABLE hermetic_log_leaves (
            idx bigint PRIMARY KEY CHECK (idx >= 0),
            leaf bytea NOT NULL
        );
        CREATE TABLE hermetic_log_hashes (
            idx bigint PRIMARY KEY CHECK (idx >= 0),
            hash bytea NOT NULL
        );
        CREATE TABLE hermetic_log_checkpoint (
            id smallint PRIMARY KEY CHECK (id = 1),
            size bigint NOT NULL,
            note text NOT NULL
        );",
    ),
    (
        4,
        "the genesis record",
        // Public (shares sealed to custodians): replicas starting with an
        // empty data directory find it here and start sealed against it.
        "CREATE TABLE hermetic_genesis (
            id smallint PRIMARY KEY CHECK (id = 1),
            deployment text NOT NULL,
            record text NOT NULL
        );",
    ),
];

/// The tables the current schema must have.
const TABLES: &[&str] = &[
    "hermetic_rows",
    "hermetic_nonces",
    "hermetic_log_leaves",
    "hermetic_log_hashes",
    "hermetic_log_checkpoint",
    "hermetic_genesis",
];

/// Advisory lock keys (arbitrary, fixed: "hermetic" in ASCII, then 1, 2).
const WRITE_LOCK: i64 = 0x6865_726d_6574_6901;
const MIGRATE_LOCK: i64 = 0x6865_726d_6574_6902;

/// Connections kept idle in the pool.
const POOL_IDLE: usize = 16;
/// Connections open at once, at most.
const POOL_MAX: usize = 32;
/// How long a new connection may take (when the URL does not say).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

fn table_id(row: &Row<'_>) -> i16 {
    match row {
        Row::Head(_) => 1,
        Row::Value(..) => 2,
        Row::Policy(_) => 3,
        Row::Token(_) => 4,
        Row::Meta(_) => 5,
    }
}

fn list_id(table: Table) -> i16 {
    match table {
        Table::Heads => 1,
        Table::Policies => 3,
        Table::Tokens => 4,
    }
}

fn row_key(row: &Row<'_>) -> Vec<u8> {
    match row {
        Row::Head(k) | Row::Policy(k) | Row::Meta(k) => k.as_bytes().to_vec(),
        Row::Value(name, version) => super::value_key(name, *version),
        Row::Token(k) => k.to_vec(),
    }
}

/// A database error as a store error: a connection that is gone, or a
/// server that is shutting down or starting, is `Unavailable` (transient);
/// a missing table says so.
pub(crate) fn pg_error(e: postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        if code == &SqlState::UNDEFINED_TABLE {
            return StoreError::Db(format!(
                "the database lacks a table of the verifier's schema ({}): it was dropped or renamed outside the verifier",
                db.message()
            ));
        }
        if code.code().starts_with("08")
            || code == &SqlState::ADMIN_SHUTDOWN
            || code == &SqlState::CRASH_SHUTDOWN
            || code == &SqlState::CANNOT_CONNECT_NOW
            || code == &SqlState::TOO_MANY_CONNECTIONS
        {
            return StoreError::Unavailable(db.message().to_owned());
        }
        return StoreError::Db(format!("database: {}", db.message()));
    }
    // No server answer: the connection failed, closed or timed out.
    StoreError::Unavailable(e.to_string())
}

/// A few open connections, reused; a broken one is dropped, not returned.
struct Pool {
    config: Config,
    connector: PgConnector,
    idle: Mutex<(Vec<Client>, usize)>,
    freed: Condvar,
}

impl Pool {
    fn get(&self) -> Result<Client, StoreError> {
        let mut guard = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(client) = guard.0.pop() {
                return Ok(client);
            }
            if guard.1 < POOL_MAX {
                guard.1 += 1;
                drop(guard);
                let made = self.connector.connect(&self.config);
                if made.is_err() {
                    let mut guard = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                    guard.1 -= 1;
                    self.freed.notify_one();
                }
                return made;
            }
            guard = self
                .freed
                .wait_timeout(guard, CONNECT_TIMEOUT)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn put(&self, client: Client, broken: bool) {
        let mut guard = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if broken || client.is_closed() || guard.0.len() >= POOL_IDLE {
            guard.1 -= 1;
            drop(client);
        } else {
            guard.0.push(client);
        }
        self.freed.notify_one();
    }
}

impl Drop for Pool {
    /// A `postgres::Client` closes its connection on drop by blocking on its
    /// own runtime, which may not happen on an async runtime thread.
    fn drop(&mut self) {
        let idle = std::mem::take(&mut self.idle.get_mut().unwrap_or_else(|p| p.into_inner()).0);
        off_runtime(move || drop(idle));
    }
}

/// Runs `f` where the driver may block on its own runtime.
///
/// - On no runtime: here.
/// - On a worker of a multi-thread runtime (`serve`, the release hot path):
///   here too, inside `tokio::task::block_in_place`, which hands this
///   worker's other tasks to another thread and leaves the runtime context
///   for the call (tokio `runtime/scheduler/multi_thread/worker.rs`,
///   `block_in_place` → `context::exit_runtime`); the thread it hands them
///   to comes from the runtime's blocking pool, which keeps idle threads,
///   so no thread is spawned per call once warm.
/// - On a current-thread runtime (where blocking in place is not allowed):
///   on a scoped helper thread, as a last resort (no hot path runs there).
///
/// A panic inside `f` is returned as `None` (the pool's slot is released
/// by [`Lease`]'s drop, never leaked).
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> Option<T> {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Err(_) => catch_unwind(AssertUnwindSafe(f)).ok(),
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
            tokio::task::block_in_place(|| catch_unwind(AssertUnwindSafe(f)).ok())
        }
        Ok(_) => std::thread::scope(|s| s.spawn(f).join().ok()),
    }
}

/// A pooled connection on loan: given back by [`Lease::finish`], or, when
/// dropped without (the call panicked), closed and its slot released.
struct Lease<'p> {
    pool: &'p Pool,
    client: Option<Client>,
}

impl Lease<'_> {
    fn client(&mut self) -> Result<&mut Client, StoreError> {
        self.client
            .as_mut()
            .ok_or_else(|| StoreError::Db("the connection was already given back".into()))
    }

    fn finish(mut self, broken: bool) {
        if let Some(client) = self.client.take() {
            self.pool.put(client, broken);
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            self.pool.put(client, true);
        }
    }
}

/// The PostgreSQL engine (see the module documentation). Clones share one
/// pool (the store's rows and the shared nonces).
#[derive(Clone)]
pub struct PgBackend {
    pool: std::sync::Arc<Pool>,
}

impl std::fmt::Debug for PgBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may hold a password.
        f.debug_struct("PgBackend").finish_non_exhaustive()
    }
}

impl PgBackend {
    /// Connects to `url` (`postgres://user:pass@host:port/db?...`, the
    /// libpq URI form), creates or migrates the schema, and checks that its
    /// tables are there. Refuses a schema newer than this binary knows.
    /// Plain TCP or Unix socket: see [`PgBackend::connect_with`] for TLS
    /// and the parent.
    pub fn connect(url: &str, password: Option<&[u8]>) -> Result<PgBackend, StoreError> {
        Self::connect_with(url, password, PgConnector::plain())
    }

    /// [`PgBackend::connect`], each connection made by `connector` (TLS
    /// with a pinned CA, through the parent: `pg_connect.rs`).
    pub fn connect_with(
        url: &str,
        password: Option<&[u8]>,
        mut connector: PgConnector,
    ) -> Result<PgBackend, StoreError> {
        let mut config = Config::from_str(url)
            .map_err(|e| StoreError::Db(format!("invalid PostgreSQL URL: {e}")))?;
        if config.get_password().is_some() {
            return Err(StoreError::Db(
                "the PostgreSQL URL holds a password: give it in --store-password-file instead \
                 (a command line and the environment are readable by other processes)"
                    .into(),
            ));
        }
        if let Some(password) = password {
            config.password(password);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.application_name("hermetic-verifier");
        connector.configure(&mut config)?;
        let backend = PgBackend {
            pool: std::sync::Arc::new(Pool {
                config,
                connector,
                idle: Mutex::new((Vec::new(), 0)),
                freed: Condvar::new(),
            }),
        };
        backend.run(migrate)?;
        Ok(backend)
    }

    /// Runs `f` on a pooled connection, off any async runtime thread.
    pub(crate) fn run<T: Send>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        let call = || {
            let mut lease = Lease {
                pool: &self.pool,
                client: Some(self.pool.get()?),
            };
            let result = f(lease.client()?);
            // A connection that failed may not know it yet: never reuse it.
            let broken = matches!(result, Err(StoreError::Unavailable(_)));
            lease.finish(broken);
            result
        };
        off_runtime(call).unwrap_or_else(|| Err(StoreError::Db("a database call panicked".into())))
    }
}

impl PgBackend {
    /// The deployment's genesis record (public JSON), once one was stored.
    pub fn genesis(&self) -> Result<Option<String>, StoreError> {
        self.run(|c| {
            c.query_opt("SELECT record FROM hermetic_genesis WHERE id = 1", &[])
                .map(|r| r.map(|r| r.get(0)))
                .map_err(pg_error)
        })
    }

    /// Stores the genesis record of `deployment` unless one is there:
    /// returns the record the database holds afterwards (this one, or the
    /// one another replica stored first).
    pub fn store_genesis(&self, deployment: &str, record: &str) -> Result<String, StoreError> {
        self.run(|c| {
            c.execute(
                "INSERT INTO hermetic_genesis (id, deployment, record) VALUES (1, $1, $2)
                 ON CONFLICT (id) DO NOTHING",
                &[&deployment, &record],
            )
            .map_err(pg_error)?;
            c.query_one("SELECT record FROM hermetic_genesis WHERE id = 1", &[])
                .map(|r| r.get(0))
                .map_err(pg_error)
        })
    }
}

/// The first line of a password file (a trailing newline is not part of it).
pub fn read_password(path: &std::path::Path) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    let text = Zeroizing::new(
        std::fs::read(path).map_err(|e| StoreError::Io(format!("{}: {e}", path.display())))?,
    );
    let line = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Ok(Zeroizing::new(line.to_vec()))
}

/// Creates or migrates the schema (see [`MIGRATIONS`]).
fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    let mut tx = client.transaction().map_err(pg_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
        .map_err(pg_error)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS hermetic_schema_migrations (
            version integer PRIMARY KEY,
            name text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .map_err(pg_error)?;
    let current: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM hermetic_schema_migrations",
            &[],
        )
        .map_err(pg_error)?
        .get(0);
    if current > known {
        return Err(StoreError::Db(format!(
            "the database's schema is version {current}, newer than this verifier knows (up to {known}): \
             a newer verifier migrated it; run that version (refusing to use a schema it does not know)"
        )));
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        tx.batch_execute(sql).map_err(pg_error)?;
        tx.execute(
            "INSERT INTO hermetic_schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .map_err(pg_error)?;
    }
    for table in TABLES {
        let found: Option<String> = tx
            .query_one("SELECT to_regclass($1)::text", &[table])
            .map_err(pg_error)?
            .get(0);
        if found.is_none() {
            return Err(StoreError::Db(format!(
                "the database has schema version {} but no table {table}: it was dropped outside the verifier",
                current.max(known)
            )));
        }
    }
    tx.commit().map_err(pg_error)
}

/// One transaction's reads and writes.
struct PgTx<'c>(RefCell<Transaction<'c>>);

impl ReadRows for PgTx<'_> {
    fn get(&self, row: Row<'_>) -> Result<Option<Vec<u8>>, StoreError> {
        let found = self
            .0
            .borrow_mut()
            .query_opt(
                "SELECT val FROM hermetic_rows WHERE tbl = $1 AND key = $2",
                &[&table_id(&row), &row_key(&row)],
            )
            .map_err(pg_error)?;
        Ok(found.map(|r| r.get(0)))
    }

    fn value_versions(&self, name: &str, from: u64) -> Result<Vec<u64>, StoreError> {
        let rows = self
            .0
            .borrow_mut()
            .query(
                "SELECT key FROM hermetic_rows WHERE tbl = 2 AND key >= $1 AND key <= $2 ORDER BY key",
                &[
                    &super::value_key(name, from),
                    &super::value_key(name, u64::MAX),
                ],
            )
            .map_err(pg_error)?;
        let prefix = name.len() + 1;
        rows.iter()
            .map(|r| {
                let key: &[u8] = r.get(0);
                key.get(prefix..)
                    .and_then(|v| <[u8; 8]>::try_from(v).ok())
                    .map(u64::from_be_bytes)
                    .ok_or_else(|| super::tampered(super::T_VALUES, name))
            })
            .collect()
    }

    fn names(&self, table: Table) -> Result<Vec<String>, StoreError> {
        let rows = self
            .0
            .borrow_mut()
            .query(
                "SELECT key FROM hermetic_rows WHERE tbl = $1 ORDER BY key",
                &[&list_id(table)],
            )
            .map_err(pg_error)?;
        rows.iter()
            .map(|r| {
                let key: Vec<u8> = r.get(0);
                String::from_utf8(key).map_err(|e| {
                    super::tampered("rows", String::from_utf8_lossy(e.as_bytes()).into_owned())
                })
            })
            .collect()
    }

    fn count(&self, table: Table) -> Result<u64, StoreError> {
        let n: i64 = self
            .0
            .borrow_mut()
            .query_one(
                "SELECT count(*) FROM hermetic_rows WHERE tbl = $1",
                &[&list_id(table)],
            )
            .map_err(pg_error)?
            .get(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

impl WriteRows for PgTx<'_> {
    fn put(&mut self, row: Row<'_>, sealed: &[u8]) -> Result<(), StoreError> {
        self.0
            .get_mut()
            .execute(
                "INSERT INTO hermetic_rows (tbl, key, val) VALUES ($1, $2, $3)
                 ON CONFLICT (tbl, key) DO UPDATE SET val = EXCLUDED.val",
                &[&table_id(&row), &row_key(&row), &sealed],
            )
            .map_err(pg_error)
            .map(drop)
    }

    fn remove(&mut self, row: Row<'_>) -> Result<(), StoreError> {
        self.0
            .get_mut()
            .execute(
                "DELETE FROM hermetic_rows WHERE tbl = $1 AND key = $2",
                &[&table_id(&row), &row_key(&row)],
            )
            .map_err(pg_error)
            .map(drop)
    }

    fn reads(&self) -> &dyn ReadRows {
        self
    }

    /// The log's leaves in this transaction, under the log's lock (taken
    /// after the write lock, as every writer that holds both does).
    fn append_log(
        &mut self,
        build: &mut crate::log::store::BuildLeaves<'_>,
    ) -> Result<Option<u64>, crate::log::LogError> {
        crate::log::postgres::append_locked(self.0.get_mut(), build).map(Some)
    }
}

impl Backend for PgBackend {
    fn read(
        &self,
        f: &mut (dyn FnMut(&dyn ReadRows) -> Result<(), StoreError> + Send),
    ) -> Result<(), StoreError> {
        self.run(|client| {
            let tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .map_err(pg_error)?;
            let tx = PgTx(RefCell::new(tx));
            f(&tx)?;
            tx.0.into_inner().commit().map_err(pg_error)
        })
    }

    fn write(
        &self,
        f: &mut (dyn FnMut(&mut dyn WriteRows) -> Result<Outcome, StoreError> + Send),
    ) -> Result<Outcome, StoreError> {
        self.run(|client| {
            let mut tx = client.transaction().map_err(pg_error)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
                .map_err(pg_error)?;
            let mut tx = PgTx(RefCell::new(tx));
            let outcome = f(&mut tx)?;
            let tx = tx.0.into_inner();
            match outcome {
                Outcome::Commit => tx.commit().map_err(pg_error)?,
                Outcome::Abort => tx.rollback().map_err(pg_error)?,
            }
            Ok(outcome)
        })
    }

    fn remote(&self) -> bool {
        true
    }
}

fn ms_i64(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

impl PgBackend {
    /// Runs `f` in a transaction whose commit does not wait for its WAL to
    /// reach the disk (`SET LOCAL synchronous_commit = off`: PostgreSQL
    /// manual §19.5.2 and "Asynchronous Commit", §30.4; `SET LOCAL` lasts
    /// until the transaction ends, so the pooled connection's next
    /// transaction commits synchronously again). Its effects are visible to
    /// every replica at once; only a database crash within a moment of the
    /// commit can lose them.
    ///
    /// For the nonce rows only, where that loss is harmless:
    /// - an issued nonce lost before it is used: its release is refused as
    ///   `nonce_unknown`, and the enclave asks again;
    /// - a consumed nonce: a release with it is answered only after its
    ///   record's log transaction commits, synchronously, and a synchronous
    ///   commit flushes the whole WAL up to its own commit record, this
    ///   earlier commit included. A grant's nonce is thus as durable as its
    ///   record; the consumption of a nonce whose release failed before any
    ///   record can be lost, and then the same enclave's document can be
    ///   answered once more: sealed to its own key, as the first time.
    ///
    /// So a release waits for one WAL flush fewer (the log transaction's
    /// and the checkpoint's remain).
    fn run_unflushed<T: Send>(
        &self,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        self.run(|client| {
            let mut tx = client.transaction().map_err(pg_error)?;
            tx.batch_execute("SET LOCAL synchronous_commit = off")
                .map_err(pg_error)?;
            let out = f(&mut tx)?;
            tx.commit().map_err(pg_error)?;
            Ok(out)
        })
    }
}

impl SharedNonces for PgBackend {
    fn insert(&self, nonce: &[u8; NONCE_LEN], expires_ms: u64) -> Result<(), String> {
        self.run_unflushed(|tx| {
            tx.execute(
                "INSERT INTO hermetic_nonces (nonce, expires_ms) VALUES ($1, $2)",
                &[&nonce.as_slice(), &ms_i64(expires_ms)],
            )
            .map_err(pg_error)
        })
        .map(drop)
        .map_err(|e| e.to_string())
    }

    fn used(&self, nonces: &[[u8; NONCE_LEN]]) -> Result<Vec<[u8; NONCE_LEN]>, String> {
        let keys: Vec<&[u8]> = nonces.iter().map(|n| n.as_slice()).collect();
        let rows = self
            .run(|c| {
                c.query(
                    "SELECT nonce FROM hermetic_nonces WHERE nonce = ANY($1) AND used",
                    &[&keys],
                )
                .map_err(pg_error)
            })
            .map_err(|e| e.to_string())?;
        Ok(rows
            .iter()
            .filter_map(|r| r.get::<_, &[u8]>(0).try_into().ok())
            .collect())
    }

    fn consume(&self, nonce: &[u8; NONCE_LEN]) -> Result<Consumed, String> {
        // One statement: the UPDATE takes the row only while it is unused
        // (a concurrent consume waits for the row lock, then finds it used:
        // manual §13.2.1), and the outer SELECT reads the row as it was
        // before, to tell "used" from "never issued".
        let row = self
            .run_unflushed(|tx| {
                tx.query_one(
                    "WITH taken AS (
                        UPDATE hermetic_nonces SET used = true
                        WHERE nonce = $1 AND NOT used RETURNING expires_ms
                     )
                     SELECT (SELECT expires_ms FROM taken),
                            (SELECT used FROM hermetic_nonces WHERE nonce = $1)",
                    &[&nonce.as_slice()],
                )
                .map_err(pg_error)
            })
            .map_err(|e| e.to_string())?;
        let taken: Option<i64> = row.get(0);
        let before: Option<bool> = row.get(1);
        Ok(match (taken, before) {
            (Some(expires_ms), _) => Consumed::Taken {
                expires_ms: u64::try_from(expires_ms).unwrap_or(0),
            },
            // Unused in our snapshot but not taken: another replica's
            // consume committed first.
            (None, Some(_)) => Consumed::Used,
            (None, None) => Consumed::Unknown,
        })
    }

    fn prune(&self, now_ms: u64) -> Result<(), String> {
        self.run(|c| {
            c.execute(
                "DELETE FROM hermetic_nonces WHERE expires_ms < $1",
                &[&ms_i64(now_ms)],
            )
            .map_err(pg_error)
        })
        .map(drop)
        .map_err(|e| e.to_string())
    }
}
