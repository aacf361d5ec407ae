//! hermetic-witness: the I/O around the pure C2SP tlog-witness pieces of
//! [`hermetic_tlog::witness`] (<https://c2sp.org/tlog-witness>).
//!
//! - [`server`]: a witness, `POST /add-checkpoint`, one lock per log, state
//!   persisted before the cosignature is returned.
//! - [`state`]: the state directory (one cosigned checkpoint per log,
//!   replaced atomically, locked against a second witness process).
//! - [`client`]: a log submitting a checkpoint to one witness.
//! - [`pool`]: K of N witnesses, and the start-time rollback check.
//! - [`batch`]: callers waiting for their record to be cosigned share one
//!   pool round per batch.
#![forbid(unsafe_code)]

pub mod batch;
pub mod client;
pub mod pool;
pub mod server;
pub mod state;

pub use batch::{BatchError, Batcher, CheckpointSource};
pub use client::{ProofSource, SubmitError, Submitted, WitnessClient};
pub use pool::{
    CosignedCheckpoint, PoolConfigError, PoolWitness, QuorumError, StartCheck, StartRefusal,
    WitnessFailure, WitnessPool,
};
pub use server::{serve, system_clock, Clock, Witness};
pub use state::{StateDir, StateError};
