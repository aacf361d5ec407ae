//! The log in PostgreSQL (issue 13): one tree shared by every verifier
//! replica of a `--store postgres://` deployment.
//!
//! Tables (schema version 3 of `store::postgres`):
//! - `hermetic_log_leaves (idx, leaf)`: one row per record, the record's
//!   JSON exactly as hashed; `idx` is its leaf index and its `seq`;
//! - `hermetic_log_hashes (idx, hash)`: Go's stored hashes
//!   (`sumdb/tlog`'s layout, [`hermetic_tlog::merkle::stored_hash_index`]);
//! - `hermetic_log_checkpoint (id = 1, size, note)`: the latest signed
//!   checkpoint, only ever replaced by one of at least as many records.
//!
//! **The sequencer is the database.** A batch is one transaction under one
//! transaction-level advisory lock (PostgreSQL manual §9.27.10): it reads
//! the size, serializes the batch's records with `seq` = their indexes
//! (chosen under the lock), computes their stored hashes from hashes read
//! in the same transaction (another replica may have appended since this
//! one last looked: nothing is cached) and inserts both; `COMMIT` makes
//! them durable (synchronous commit) before any of the batch is answered.
//! The checkpoint is signed afterwards for the committed size and stored
//! with compare-and-set (`WHERE size <= new size`), so a slower replica
//! never replaces a larger checkpoint with its own.
//!
//! Opening reads every leaf and recomputes the stored hashes, as the file
//! backend does: a leaf row deleted (a gap) or changed by hand, or a hash
//! row that does not follow from the leaves, refuses the start with the
//! index that broke.

use hermetic_tlog::merkle::{stored_hashes_for_record_hash, Hash, HashReader, HASH_SIZE};
use postgres::Transaction;

use super::store::{BuildLeaves, LogStore};
use super::LogError;
use crate::store::postgres::{pg_error, PgBackend};
use crate::store::StoreError;

/// The advisory lock key of log appends ("hermetic" in ASCII, then 3).
const LOG_LOCK: i64 = 0x6865_726d_6574_6903;

/// Leaves read per query when the whole log is checked at open.
const OPEN_BATCH: i64 = 4096;

/// The log's tables in PostgreSQL (see the module documentation).
#[derive(Debug)]
pub struct PgLogStore {
    db: PgBackend,
}

fn log_error(e: StoreError) -> LogError {
    match e {
        StoreError::Unavailable(m) => LogError::Unavailable(m),
        other => LogError::Io {
            path: "PostgreSQL".into(),
            error: std::io::Error::other(other.to_string()),
        },
    }
}

fn pg(e: postgres::Error) -> LogError {
    log_error(pg_error(e))
}

fn index(i: u64) -> Result<i64, LogError> {
    i64::try_from(i).map_err(|_| LogError::Corrupt(format!("index {i} is out of range")))
}

fn hash_of(idx: i64, bytes: &[u8]) -> Result<Hash, LogError> {
    <[u8; HASH_SIZE]>::try_from(bytes)
        .map(Hash)
        .map_err(|_| LogError::Corrupt(format!("stored hash {idx} is not {HASH_SIZE} bytes")))
}

/// The committed size: one more than the largest index (a deleted row in
/// the middle is a gap the reads report, not a smaller log).
fn size_in(tx: &mut Transaction<'_>) -> Result<u64, LogError> {
    let n: i64 = tx
        .query_one(
            "SELECT coalesce(max(idx) + 1, 0) FROM hermetic_log_leaves",
            &[],
        )
        .map_err(pg)?
        .get(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Stored hashes `indexes`, read in `tx`.
fn hashes_in(tx: &mut Transaction<'_>, indexes: &[u64]) -> Result<Vec<Hash>, LogError> {
    let wanted = indexes
        .iter()
        .map(|&i| index(i))
        .collect::<Result<Vec<i64>, _>>()?;
    let rows = tx
        .query(
            "SELECT idx, hash FROM hermetic_log_hashes WHERE idx = ANY($1)",
            &[&wanted],
        )
        .map_err(pg)?;
    let mut found = std::collections::HashMap::with_capacity(rows.len());
    for row in rows {
        let idx: i64 = row.get(0);
        found.insert(idx, hash_of(idx, row.get(1))?);
    }
    wanted
        .iter()
        .map(|i| {
            found.get(i).copied().ok_or_else(|| {
                LogError::Corrupt(format!(
                    "stored hash {i} is missing from the database (a row was deleted)"
                ))
            })
        })
        .collect()
}

/// The stored hashes of one transaction: those below `base` from the
/// database, those this batch adds from memory.
struct BatchHashes<'a, 't> {
    tx: std::cell::RefCell<&'a mut Transaction<'t>>,
    base: u64,
    new: &'a [Hash],
}

impl HashReader for BatchHashes<'_, '_> {
    type Error = LogError;

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, LogError> {
        let old: Vec<u64> = indexes.iter().copied().filter(|&i| i < self.base).collect();
        let mut from_db = hashes_in(&mut self.tx.borrow_mut(), &old)?.into_iter();
        indexes
            .iter()
            .map(|&i| {
                if i < self.base {
                    from_db
                        .next()
                        .ok_or_else(|| LogError::Corrupt("a stored hash read came short".into()))
                } else {
                    self.new
                        .get((i - self.base) as usize)
                        .copied()
                        .ok_or_else(|| {
                            LogError::Corrupt(format!("stored hash {i} is not written yet"))
                        })
                }
            })
            .collect()
    }
}

impl PgLogStore {
    /// The log in `db`'s tables, checked whole (see the module
    /// documentation): refuses a gap, a changed leaf or a wrong hash row.
    pub fn open(db: PgBackend) -> Result<PgLogStore, LogError> {
        db.run(|client| {
            let mut tx = client
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .map_err(pg_error)?;
            check_whole(&mut tx).map_err(|e| match e {
                LogError::Unavailable(m) => StoreError::Unavailable(m),
                other => StoreError::Db(other.to_string()),
            })?;
            tx.commit().map_err(pg_error)
        })
        .map_err(|e| match e {
            StoreError::Db(m) => LogError::Corrupt(m),
            other => log_error(other),
        })?;
        Ok(PgLogStore { db })
    }

    /// Runs `f` in one read-only snapshot.
    fn read<T: Send>(
        &self,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<T, LogError> + Send,
    ) -> Result<T, LogError> {
        let mut out = None;
        self.db
            .run(|client| {
                let mut tx = client
                    .build_transaction()
                    .isolation_level(postgres::IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()
                    .map_err(pg_error)?;
                out = Some(f(&mut tx));
                tx.commit().map_err(pg_error)
            })
            .map_err(log_error)?;
        out.unwrap_or_else(|| Err(LogError::Corrupt("a log read did not run".into())))
    }
}

/// Every leaf in order, its hashes recomputed and compared with the rows
/// as they come, so the first leaf that does not match is the one named.
fn check_whole(tx: &mut Transaction<'_>) -> Result<(), LogError> {
    let size = size_in(tx)?;
    let rows = tx
        .query(
            "SELECT idx, hash FROM hermetic_log_hashes ORDER BY idx",
            &[],
        )
        .map_err(pg)?;
    let want = hermetic_tlog::merkle::stored_hash_count(size);
    if rows.len() as u64 != want {
        return Err(LogError::Corrupt(format!(
            "the database holds {} stored hashes where {size} leaves make {want} (rows were added or deleted)",
            rows.len()
        )));
    }
    let mut stored = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let idx: i64 = row.get(0);
        if idx != i as i64 {
            return Err(LogError::Corrupt(format!(
                "stored hash {i} is missing from the database (a row was deleted)"
            )));
        }
        stored.push(hash_of(idx, row.get(1))?);
    }
    let mut all: Vec<Hash> = Vec::with_capacity(stored.len());
    let mut next: i64 = 0;
    while (next as u64) < size {
        let rows = tx
            .query(
                "SELECT idx, leaf FROM hermetic_log_leaves WHERE idx >= $1 ORDER BY idx LIMIT $2",
                &[&next, &OPEN_BATCH],
            )
            .map_err(pg)?;
        for row in rows {
            let idx: i64 = row.get(0);
            if idx != next {
                return Err(LogError::Corrupt(format!(
                    "leaf {next} is missing from the database (a row was deleted; the log has a gap)"
                )));
            }
            let leaf: &[u8] = row.get(1);
            let from = all.len();
            let new = stored_hashes_for_record_hash(
                next as u64,
                hermetic_tlog::merkle::record_hash(leaf),
                &all,
            )
            .map_err(|e| LogError::Corrupt(e.to_string()))?;
            all.extend(new);
            if all[from..] != stored[from..all.len()] {
                return Err(LogError::Corrupt(format!(
                    "leaf {next} does not match the tree's stored hashes (the leaf or a hash row was changed in the database)"
                )));
            }
            next += 1;
        }
    }
    Ok(())
}

impl LogStore for PgLogStore {
    fn size(&self) -> Result<u64, LogError> {
        self.read(size_in)
    }

    fn append_batch(&self, build: &mut BuildLeaves<'_>) -> Result<u64, LogError> {
        let mut out: Option<Result<u64, LogError>> = None;
        self.db
            .run(|client| {
                let mut tx = client.transaction().map_err(pg_error)?;
                let result = append_locked(&mut tx, build);
                match result {
                    Ok(end) => {
                        tx.commit().map_err(pg_error)?;
                        out = Some(Ok(end));
                    }
                    Err(e) => {
                        // Dropping the transaction rolls it back.
                        let unavailable = matches!(e, LogError::Unavailable(_));
                        out = Some(Err(e));
                        if unavailable {
                            return Err(StoreError::Unavailable("during a log append".into()));
                        }
                    }
                }
                Ok(())
            })
            .map_err(log_error)?;
        out.unwrap_or_else(|| Err(LogError::Corrupt("a log append did not run".into())))
    }

    fn read_leaves(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, LogError> {
        if start > end {
            return Err(LogError::Corrupt(format!(
                "leaves {start}..{end} are not a range"
            )));
        }
        let (a, b) = (index(start)?, index(end)?);
        self.read(move |tx| {
            let rows = tx
                .query(
                    "SELECT idx, leaf FROM hermetic_log_leaves WHERE idx >= $1 AND idx < $2 ORDER BY idx",
                    &[&a, &b],
                )
                .map_err(pg)?;
            let mut out = Vec::with_capacity(rows.len());
            for (want, row) in (a..b).zip(rows.iter()) {
                let idx: i64 = row.get(0);
                if idx != want {
                    return Err(LogError::Corrupt(format!(
                        "leaf {want} is missing from the database (a row was deleted; the log has a gap)"
                    )));
                }
                out.push(row.get::<_, Vec<u8>>(1));
            }
            if (out.len() as u64) < end - start {
                return Err(LogError::Corrupt(format!(
                    "leaves {start}..{end} are not in the database (it holds {} of them)",
                    out.len()
                )));
            }
            Ok(out)
        })
    }

    fn read_stored_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, LogError> {
        let indexes = indexes.to_vec();
        self.read(move |tx| hashes_in(tx, &indexes))
    }

    fn checkpoint(&self) -> Result<Option<String>, LogError> {
        self.read(|tx| {
            Ok(tx
                .query_opt("SELECT note FROM hermetic_log_checkpoint WHERE id = 1", &[])
                .map_err(pg)?
                .map(|r| r.get(0)))
        })
    }

    fn store_checkpoint(&self, size: u64, note: &str) -> Result<bool, LogError> {
        let size = index(size)?;
        let note = note.to_owned();
        self.db
            .run(move |client| {
                client
                    .execute(
                        "INSERT INTO hermetic_log_checkpoint (id, size, note) VALUES (1, $1, $2)
                         ON CONFLICT (id) DO UPDATE SET size = EXCLUDED.size, note = EXCLUDED.note
                         WHERE hermetic_log_checkpoint.size <= EXCLUDED.size",
                        &[&size, &note],
                    )
                    .map_err(pg_error)
            })
            .map(|n| n == 1)
            .map_err(log_error)
    }

    fn shared(&self) -> bool {
        true
    }
}

/// Takes the log's lock in `tx` and appends the leaves `build` returns:
/// one group-commit batch, or (from `store::postgres`) a change's record in
/// the change's own transaction. Returns the new size.
pub(crate) fn append_locked(
    tx: &mut Transaction<'_>,
    build: &mut BuildLeaves<'_>,
) -> Result<u64, LogError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOG_LOCK])
        .map_err(pg)?;
    append_in(tx, build)
}

/// The body of one batch, under the log lock in `tx`.
fn append_in(tx: &mut Transaction<'_>, build: &mut BuildLeaves<'_>) -> Result<u64, LogError> {
    let start = size_in(tx)?;
    let leaves = build(start)?;
    let base = hermetic_tlog::merkle::stored_hash_count(start);
    let mut new: Vec<Hash> = Vec::new();
    for (i, leaf) in leaves.iter().enumerate() {
        let n = start + i as u64;
        let reader = BatchHashes {
            tx: std::cell::RefCell::new(&mut *tx),
            base,
            new: &new,
        };
        let more =
            stored_hashes_for_record_hash(n, hermetic_tlog::merkle::record_hash(leaf), &reader)
                .map_err(super::store::tree_error)?;
        new.extend(more);
    }
    let leaf_idx = (0..leaves.len() as u64)
        .map(|i| index(start + i))
        .collect::<Result<Vec<i64>, _>>()?;
    let hash_idx = (0..new.len() as u64)
        .map(|i| index(base + i))
        .collect::<Result<Vec<i64>, _>>()?;
    let hash_bytes: Vec<Vec<u8>> = new.iter().map(|h| h.0.to_vec()).collect();
    tx.execute(
        "INSERT INTO hermetic_log_leaves (idx, leaf) SELECT * FROM unnest($1::bigint[], $2::bytea[])",
        &[&leaf_idx, &leaves],
    )
    .map_err(pg)?;
    tx.execute(
        "INSERT INTO hermetic_log_hashes (idx, hash) SELECT * FROM unnest($1::bigint[], $2::bytea[])",
        &[&hash_idx, &hash_bytes],
    )
    .map_err(pg)?;
    Ok(start + leaves.len() as u64)
}
