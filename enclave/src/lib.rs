//! The enclave agent of hermetic.
//!
//! - [`nsm`]: our [`nsm::Nsm`] trait over the Nitro Secure Module, with the
//!   real `/dev/nsm` backend ([`nsm::RealNsm`]) and, with the cargo feature
//!   `simulator` (default), a simulated one (`nsm::SimulatedNsm`) that signs
//!   AWS-shaped documents with a local test PKI. Enclave images are built
//!   without that feature, so they hold no document signer.
//! - [`keys`]: the per-boot ephemeral key whose public half goes into the
//!   attestation document.
//! - [`workload`]: hands opened secrets to the workload process (environment
//!   or files on a memory-backed directory) and supervises it.
//! - [`commands`]: the work behind the CLI commands, so `main.rs` only parses and
//!   prints.
//!
//! Nothing here reads the clock directly: time comes from a [`Clock`].

pub mod commands;
pub mod fetch;
pub mod keys;
pub mod workload;

/// The NSM interface and its backends live in the `hermetic-nsm` crate,
/// shared with the verifier; re-exported under the old path.
pub use hermetic_nsm as nsm;
pub use hermetic_nsm::{Clock, FixedClock, SystemClock};
