//! hermetic-tlog: the pure pieces of a transparency log and of signed
//! statements, shaped after Go's `golang.org/x/mod/sumdb/note` and
//! `sumdb/tlog`.
//!
//! - [`note`]: C2SP signed notes with Ed25519 keys (c2sp.org/signed-note).
//! - [`merkle`]: RFC 6962 hashes, tree hashes, inclusion and consistency
//!   proofs over Go's stored-hash layout, RFC 9162 proof verification.
//! - [`checkpoint`]: C2SP tlog-checkpoint note bodies (c2sp.org/tlog-checkpoint).
//! - [`cosignature`]: C2SP Ed25519 `cosignature/v1` witness cosignatures
//!   (c2sp.org/tlog-cosignature).
//! - [`proof`]: C2SP tlog-proof files (c2sp.org/tlog-proof).
//! - [`tile`]: C2SP tlog-tiles paths, tile contents, entry bundles
//!   (c2sp.org/tlog-tiles).
//! - [`witness`]: C2SP tlog-witness `add-checkpoint` bodies and answers, the
//!   witness's decision, the rollback check (c2sp.org/tlog-witness).
//!
//! Nothing here does I/O or reads a clock: bytes, keys and times go in,
//! verdicts come out.
#![forbid(unsafe_code)]

pub mod checkpoint;
pub mod cosignature;
pub mod merkle;
pub mod note;
pub mod proof;
pub mod tile;
pub mod witness;
