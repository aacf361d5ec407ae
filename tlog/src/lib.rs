//! hermetic-tlog: the pure pieces of a transparency log and of signed
//! statements, shaped after Go's `golang.org/x/mod/sumdb/note` and
//! `sumdb/tlog`.
//!
//! - [`note`]: C2SP signed notes with Ed25519 keys (c2sp.org/signed-note).
//! - [`merkle`]: RFC 6962 hashes, tree hashes, inclusion and consistency
//!   proofs over Go's stored-hash layout, RFC 9162 proof verification.
//!
//! Nothing here does I/O or reads a clock: bytes, keys and times go in,
//! verdicts come out.
#![forbid(unsafe_code)]

pub mod merkle;
pub mod note;
