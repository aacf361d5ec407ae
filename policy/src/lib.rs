//! The verifier policy file: which enclave measurements may receive which
//! secret. `hermetic-eif` (`check --expect`, `policy`) and
//! `hermetic-verifier` (`serve --config`, the admin API, the release
//! decision) both read it through this crate only, so that one can never
//! accept a file the other refuses.
//!
//! ```toml
//! [secrets.db-password]
//! max_age_secs = 300          # optional, default 300
//! nonce_required = true       # optional, default true
//! allow_debug = false         # optional, default false
//! [[secrets.db-password.measurements]]   # one or more allowed sets
//! pcr0 = "…96 lower-case hex…"           # any of pcr0, pcr1, pcr2, pcr3, pcr4, pcr8
//! ```
//!
//! Parsing fails closed: a secret with no measurement set, or a set that
//! names no PCR, would match every enclave, and a set that names neither
//! PCR0, nor PCR8, nor both PCR1 and PCR2 would match every image built with
//! the same tooling or started on the same parent ([`pins_image`]); each is
//! refused at load time rather than later. No I/O and no clock: text in,
//! model or [`Error`] out.

mod error;
mod file;
mod name;
mod pcrs;

use std::collections::BTreeMap;
use std::time::Duration;

pub use error::Error;
pub use file::stanza;
pub use name::check_secret_name;
pub use pcrs::{mismatches, pcr_from_hex, pins_image, PcrDiff, Pcrs, PCR_LEN};

/// The verifier's document age limit when a secret names no `max_age_secs`.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);

/// The PCRs a measurement set may name (0 image, 1 kernel, 2 application,
/// 3 parent IAM role, 4 parent instance, 8 signing certificate).
pub const POLICY_PCRS: [u8; 6] = [0, 1, 2, 3, 4, 8];

/// A validated policy file: at least one secret, each valid.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyFile {
    pub secrets: BTreeMap<String, SecretPolicy>,
}

/// One secret's validated release policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretPolicy {
    /// As written; `None` means [`DEFAULT_MAX_AGE`] (see [`Self::max_age`]).
    /// Kept apart so that writing a policy back does not invent a value.
    pub max_age_secs: Option<u64>,
    pub nonce_required: bool,
    pub allow_debug: bool,
    /// Allowed sets, each pinning the image ([`pins_image`]); a measurement
    /// must match every PCR of at least one.
    pub measurements: Vec<Pcrs>,
}

impl SecretPolicy {
    /// Exactly one allowed set, every other field at its default.
    pub fn allowing(set: Pcrs) -> Self {
        SecretPolicy {
            max_age_secs: None,
            nonce_required: true,
            allow_debug: false,
            measurements: vec![set],
        }
    }

    /// How old a document may be.
    pub fn max_age(&self) -> Duration {
        self.max_age_secs
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_MAX_AGE)
    }
}
