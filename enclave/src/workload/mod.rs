//! Hands opened secrets to the workload and supervises it.
//!
//! The agent starts `COMMAND ARGS` with each secret named in a
//! [`DeliverySpec`] either in an environment variable or, with a secrets
//! directory, as a file `DIR/NAME` (mode 0400) on a memory-backed file
//! system. It forwards SIGTERM, SIGINT and SIGHUP to the workload and
//! reports its exit ([`WorkloadExit`]).
//!
//! Secret values never appear in errors, `Debug` output, logs or argv: only
//! secret *names* do.

mod error;
mod secrets_dir;
mod spec;
mod supervise;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;

use hermetic_envelope::Zeroizing;

pub use error::WorkloadError;
pub use secrets_dir::check_memory_backed;
pub use spec::{default_env_name, DeliverySpec, SecretMapping};
pub use supervise::{run, WorkloadExit, FORWARDED_SIGNALS};

/// Opened secrets by name. `Debug` lists the names only.
#[derive(Default)]
pub struct Secrets(BTreeMap<String, Zeroizing<Vec<u8>>>);

impl Secrets {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, name: impl Into<String>, value: Zeroizing<Vec<u8>>) {
        self.0.insert(name.into(), value);
    }

    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.0.get(name).map(|v| v.as_slice())
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

impl From<BTreeMap<String, Zeroizing<Vec<u8>>>> for Secrets {
    fn from(map: BTreeMap<String, Zeroizing<Vec<u8>>>) -> Self {
        Secrets(map)
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("names", &self.0.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The workload's program and arguments (never secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadCommand {
    pub program: OsString,
    pub args: Vec<OsString>,
}

impl WorkloadCommand {
    /// `argv[0]` is the program.
    pub fn from_argv<I, S>(argv: I) -> Result<Self, WorkloadError>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut argv = argv.into_iter().map(Into::into);
        let program = argv.next().ok_or(WorkloadError::EmptyCommand)?;
        Ok(WorkloadCommand {
            program,
            args: argv.collect(),
        })
    }
}
