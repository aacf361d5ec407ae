//! Test helpers shared by the workspace's tests, so that each lives once:
//! where the shared vectors are (and what their absence means under
//! `CI=true`), building and running Go's reference programs, and (feature
//! `log`) an in-memory Merkle log that signs checkpoints and proves them.
//! A dev-dependency only: no shipped crate depends on it.

pub mod go;
#[cfg(feature = "log")]
pub mod log;
pub mod vectors;

/// Whether this run is CI's (`CI=true`), where a missing prerequisite is a
/// failure, never a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}
