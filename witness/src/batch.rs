//! Group cosigning: many callers each wait for their record to be in a
//! checkpoint cosigned by K witnesses, and pay one pool round per batch,
//! not one per record.
//!
//! One round runs at a time. A caller whose record is not yet covered
//! waits for the round in flight; when it ends, the next round signs a
//! checkpoint of the log as it is then, covering every record appended
//! while the previous round ran. A round that fails answers every caller
//! whose record it tried to cover with its error (a caller is never told
//! that its record is cosigned when it is not, and callers do not each pay
//! another timeout). The log stays behind [`CheckpointSource`], so this
//! holds no store and does no I/O of its own beyond the pool.

use std::sync::{Arc, Mutex};

use crate::client::ProofSource;
use crate::pool::{CosignedCheckpoint, QuorumError, WitnessPool};

/// The log's side: a signed checkpoint of the log as it is now, and the
/// consistency proofs between its sizes.
pub trait CheckpointSource: Send + Sync {
    /// The log's latest checkpoint, signed: the note and its tree size.
    fn checkpoint(&self) -> Result<(String, u64), String>;
    fn proofs(&self) -> Arc<dyn ProofSource>;
}

/// Why a caller's record is not cosigned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("the log cannot sign a checkpoint: {0}")]
    Checkpoint(String),
    #[error("the log's checkpoint has {log} records, not the {wanted} asked for")]
    NotInLog { wanted: u64, log: u64 },
    #[error("witnessing failed: {0}")]
    Quorum(QuorumError),
}

/// What the last round did.
#[derive(Default)]
struct Rounds {
    /// Rounds finished so far.
    done: u64,
    /// The largest cosigned checkpoint and its size.
    cosigned: Option<(u64, Arc<CosignedCheckpoint>)>,
    /// The last round's failure and the size it tried to cover.
    failed: Option<(u64, BatchError)>,
}

/// A pool and a log, cosigning in batches.
pub struct Batcher {
    pool: WitnessPool,
    source: Arc<dyn CheckpointSource>,
    round: tokio::sync::Mutex<()>,
    rounds: Mutex<Rounds>,
}

impl Batcher {
    pub fn new(pool: WitnessPool, source: Arc<dyn CheckpointSource>) -> Batcher {
        Batcher {
            pool,
            source,
            round: tokio::sync::Mutex::new(()),
            rounds: Mutex::new(Rounds::default()),
        }
    }

    pub fn pool(&self) -> &WitnessPool {
        &self.pool
    }

    /// The largest checkpoint cosigned so far.
    pub fn latest(&self) -> Option<Arc<CosignedCheckpoint>> {
        lock(&self.rounds)
            .cosigned
            .as_ref()
            .map(|(_, c)| Arc::clone(c))
    }

    /// Returns a checkpoint of at least `size` records cosigned by K
    /// witnesses (the record at index `size - 1` is in it), running or
    /// joining a round as needed; or the error of the round that tried.
    pub async fn cosigned_through(&self, size: u64) -> Result<Arc<CosignedCheckpoint>, BatchError> {
        let arrived = {
            let rounds = lock(&self.rounds);
            if let Some(c) = covering(&rounds, size) {
                return Ok(c);
            }
            rounds.done
        };
        let _turn = self.round.lock().await;
        {
            let rounds = lock(&self.rounds);
            if let Some(c) = covering(&rounds, size) {
                return Ok(c);
            }
            // A round that ended while this caller waited and tried to
            // cover its record failed: that is this caller's answer.
            if rounds.done > arrived {
                if let Some((tried, e)) = &rounds.failed {
                    if *tried >= size {
                        return Err(e.clone());
                    }
                }
            }
        }
        let result = self.run_round(size).await;
        let mut rounds = lock(&self.rounds);
        rounds.done += 1;
        match result {
            Ok((n, cosigned)) => {
                let cosigned = Arc::new(cosigned);
                if rounds.cosigned.as_ref().is_none_or(|(m, _)| n >= *m) {
                    rounds.cosigned = Some((n, Arc::clone(&cosigned)));
                }
                rounds.failed = None;
                Ok(cosigned)
            }
            // Asking beyond the log is this caller's mistake alone.
            Err((_, e @ BatchError::NotInLog { .. })) => Err(e),
            Err((tried, e)) => {
                rounds.failed = Some((tried, e.clone()));
                Err(e)
            }
        }
    }

    async fn run_round(&self, size: u64) -> Result<(u64, CosignedCheckpoint), (u64, BatchError)> {
        let (note, n) = self
            .source
            .checkpoint()
            .map_err(|e| (0, BatchError::Checkpoint(e)))?;
        if n < size {
            return Err((
                n,
                BatchError::NotInLog {
                    wanted: size,
                    log: n,
                },
            ));
        }
        match self.pool.cosign(&note, self.source.proofs()).await {
            Ok(c) => Ok((n, c)),
            Err(e) => Err((n, BatchError::Quorum(e))),
        }
    }
}

fn covering(rounds: &Rounds, size: u64) -> Option<Arc<CosignedCheckpoint>> {
    match &rounds.cosigned {
        Some((n, c)) if *n >= size => Some(Arc::clone(c)),
        _ => None,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
