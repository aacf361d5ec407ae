//! `serve --witness URL=PUBKEY... --witness-threshold K`: the log's
//! checkpoints go to witnesses (c2sp.org/tlog-witness) through
//! [`hermetic_witness::Batcher`], one pool round per batch of releases; with
//! K > 0 a grant is answered only once its record is in a checkpoint K
//! witnesses cosigned. At start, [`check_start`] refuses a log older than
//! what a witness has cosigned (a restored data directory).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hermetic_witness::{
    Batcher, CheckpointSource, CosignedCheckpoint, PoolWitness, ProofSource, StartRefusal,
    WitnessPool,
};

use crate::log::SharedLog;

/// Default bound on one pool round (and on the start-time check).
pub const DEFAULT_WITNESS_TIMEOUT: Duration = Duration::from_secs(5);

/// The witnesses `serve` submits to.
#[derive(Debug, Clone)]
pub struct WitnessConfig {
    pub witnesses: Vec<PoolWitness>,
    /// Cosignatures a grant waits for (0: submit, do not wait).
    pub threshold: usize,
    pub timeout: Duration,
}

/// The log as the batcher sees it.
struct LogSource(Arc<SharedLog>);

impl CheckpointSource for LogSource {
    fn checkpoint(&self) -> Result<(String, u64), String> {
        let cp = self.0.checkpoint();
        Ok((cp.note.clone(), cp.size))
    }

    fn proofs(&self) -> Arc<dyn ProofSource> {
        let log = Arc::clone(&self.0);
        Arc::new(move |old: u64, new: u64| log.prove_tree(old, new).ok())
    }
}

/// The running side: the batcher and the runtime its rounds run on (the
/// release path waits for cosignatures on tokio's blocking pool).
pub struct Witnessing {
    batcher: Batcher,
    log: Arc<SharedLog>,
    runtime: tokio::runtime::Handle,
    /// The size of the latest checkpoint K witnesses cosigned in this run
    /// and when (the start, before the first), for the lag metrics.
    cosigned: Mutex<(u64, Instant)>,
}

impl Witnessing {
    pub fn new(
        pool: WitnessPool,
        log: Arc<SharedLog>,
        runtime: tokio::runtime::Handle,
    ) -> Arc<Witnessing> {
        Arc::new(Witnessing {
            batcher: Batcher::new(pool, Arc::new(LogSource(Arc::clone(&log)))),
            log,
            runtime,
            cosigned: Mutex::new((0, Instant::now())),
        })
    }

    /// The size of the latest checkpoint K witnesses cosigned, and the
    /// seconds since (`hermetic_witness_lag_entries`,
    /// `hermetic_witness_cosigned_age_seconds`).
    pub fn cosigned(&self) -> (u64, f64) {
        let (size, at) = *self.cosigned.lock().unwrap_or_else(|p| p.into_inner());
        (size, at.elapsed().as_secs_f64())
    }

    pub fn threshold(&self) -> usize {
        self.batcher.pool().threshold()
    }

    /// Blocks (from blocking code, never from a runtime thread) until the
    /// record at `seq` is in a checkpoint with K cosignatures, stores that
    /// checkpoint as the latest when it still is, and returns it with its
    /// size. With K = 0 it only starts the submission in the background.
    pub fn cosigned_through(
        self: &Arc<Self>,
        seq: u64,
    ) -> Option<Result<(Arc<CosignedCheckpoint>, u64), hermetic_witness::BatchError>> {
        if self.threshold() == 0 {
            let this = Arc::clone(self);
            self.runtime.spawn(async move {
                if let Ok(c) = this.batcher.cosigned_through(seq + 1).await {
                    this.keep(&c);
                }
            });
            return None;
        }
        Some(
            self.runtime
                .block_on(self.batcher.cosigned_through(seq + 1))
                .map(|c| {
                    let size = self.keep(&c);
                    (c, size)
                }),
        )
    }

    /// Stores a cosigned checkpoint as the log's latest when no larger one
    /// was signed since; returns its size.
    fn keep(&self, cosigned: &CosignedCheckpoint) -> u64 {
        let key = self.log.verifier_key();
        let size = hermetic_tlog::checkpoint::open(cosigned.note.as_bytes(), key.name(), &key)
            .map(|cp| cp.size)
            .unwrap_or(0);
        if let Err(e) = self.log.store_cosigned(size, &cosigned.note) {
            tracing::error!(event = "cosigned_checkpoint_not_stored", error = %e);
        }
        let mut latest = self.cosigned.lock().unwrap_or_else(|p| p.into_inner());
        if size >= latest.0 {
            *latest = (size, Instant::now());
        }
        size
    }
}

/// The start-time check: refuses a local log older than (or forked from)
/// a checkpoint any witness cosigned. Witnesses that do not answer are
/// reported, not fatal (with K > 0 no grant passes without K of them).
pub async fn check_start(pool: &WitnessPool, log: &SharedLog) -> Result<(), StartRefusal> {
    let note = log.checkpoint().note.clone();
    let check = pool.check_start(&note).await?;
    for (name, size) in &check.sizes {
        tracing::info!(event = "witness_state", witness = %name, size = %size, local = %log.checkpoint().size);
    }
    for failure in &check.not_answered {
        tracing::warn!(event = "witness_not_answering", witness = %failure.name, url = %failure.url, error = %failure.error);
    }
    Ok(())
}
