//! The work behind the `hermetic-enclave` commands: pick and open an NSM
//! backend, request a document, write it out.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::atomic_write::write_atomically;
use crate::nsm::{
    AttestationRequest, Measurements, MeasurementsError, Nsm, NsmError, PkiOrigin, RealNsm,
    SimulatedNsm, SimulatorOptions,
};
use crate::Clock;

/// Which NSM to talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `/dev/nsm` (inside a Nitro Enclave).
    Real,
    /// The in-process simulator with a local test PKI.
    Simulated,
}

/// How to open the NSM.
#[derive(Debug, Clone)]
pub struct NsmSelection {
    pub backend: Backend,
    /// Simulated only; [`default_pki_dir`] when `None`.
    pub pki_dir: Option<PathBuf>,
    /// Simulated only: `describe-eif` JSON to take PCR0/1/2/8 from.
    pub pcrs_from: Option<PathBuf>,
    /// Simulated only: boot in debug mode (PCR0–2 zero).
    pub debug_mode: bool,
}

/// Why a command failed; [`CommandError::exit_code`] is the process's.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Nsm(#[from] NsmError),
    #[error(transparent)]
    Measurements(#[from] MeasurementsError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Key(#[from] crate::keys::KeyError),
    #[error(transparent)]
    Fetch(#[from] crate::fetch::FetchError),
    #[error(transparent)]
    Workload(#[from] crate::workload::WorkloadError),
}

impl CommandError {
    /// 1: the NSM refused or is unavailable (including "not inside a Nitro
    /// Enclave"); 2: bad usage, unreadable input (including a damaged
    /// simulator PKI), unwritable output.
    pub fn exit_code(&self) -> i32 {
        match self {
            // The simulator's PKI files are local files: an I/O problem.
            CommandError::Nsm(NsmError::SimulatorIo { .. } | NsmError::SimulatorPki { .. }) => 2,
            CommandError::Nsm(_) => 1,
            CommandError::Measurements(_) | CommandError::Io { .. } | CommandError::Usage(_) => 2,
            // No secret, no workload: the verifier refused or was unreachable.
            CommandError::Key(_) | CommandError::Fetch(_) => 1,
            CommandError::Workload(_) => 2,
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            CommandError::Nsm(e) => e.reason(),
            CommandError::Measurements(e) => e.reason(),
            CommandError::Io { .. } => "io_error",
            CommandError::Usage(_) => "usage",
            CommandError::Key(e) => e.reason(),
            CommandError::Fetch(e) => e.reason(),
            CommandError::Workload(e) => e.reason(),
        }
    }
}

/// `$XDG_STATE_HOME/hermetic/sim-pki`, or `./.hermetic-sim-pki` when
/// `XDG_STATE_HOME` is unset or empty.
pub fn default_pki_dir() -> PathBuf {
    pki_dir_from(std::env::var_os("XDG_STATE_HOME"))
}

fn pki_dir_from(xdg_state_home: Option<std::ffi::OsString>) -> PathBuf {
    match xdg_state_home {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("hermetic").join("sim-pki"),
        _ => PathBuf::from(".hermetic-sim-pki"),
    }
}

/// An opened NSM, and for the simulator where its PKI came from.
pub struct OpenedNsm {
    pub nsm: Box<dyn Nsm>,
    /// `Some` for the simulator.
    pub pki: Option<(PathBuf, PkiOrigin)>,
}

/// Opens the selected backend. The real one refuses simulator-only options.
pub fn open_nsm(
    selection: &NsmSelection,
    clock: Arc<dyn Clock>,
) -> Result<OpenedNsm, CommandError> {
    match selection.backend {
        Backend::Real => {
            let simulator_only = [
                (selection.pki_dir.is_some(), "--pki-dir"),
                (selection.pcrs_from.is_some(), "--pcrs-from"),
                (selection.debug_mode, "--debug-mode"),
            ];
            if let Some((_, flag)) = simulator_only.iter().find(|(set, _)| *set) {
                return Err(CommandError::Usage(format!(
                    "{flag} applies only to --nsm simulated (a real enclave's PCRs and debug mode come from nitro-cli run-enclave)"
                )));
            }
            Ok(OpenedNsm {
                nsm: Box::new(RealNsm::open()?),
                pki: None,
            })
        }
        Backend::Simulated => {
            let measurements = selection
                .pcrs_from
                .as_deref()
                .map(Measurements::from_file)
                .transpose()?;
            let dir = selection.pki_dir.clone().unwrap_or_else(default_pki_dir);
            let options = SimulatorOptions {
                measurements,
                debug_mode: selection.debug_mode,
            };
            let (nsm, origin) = SimulatedNsm::open(&dir, options, clock)?;
            Ok(OpenedNsm {
                nsm: Box::new(nsm),
                pki: Some((dir.join("root.pem"), origin)),
            })
        }
    }
}

/// The `attest` command's inputs besides the backend.
#[derive(Debug, Clone, Default)]
pub struct AttestOptions {
    pub nonce: Option<Vec<u8>>,
    pub user_data: Option<Vec<u8>>,
    /// A file whose bytes go into `public_key` as they are.
    pub public_key_file: Option<PathBuf>,
}

/// Requests one attestation document.
pub fn attest(nsm: &dyn Nsm, options: &AttestOptions) -> Result<Vec<u8>, CommandError> {
    let public_key = options
        .public_key_file
        .as_deref()
        .map(|p| {
            std::fs::read(p).map_err(|source| CommandError::Io {
                what: "cannot read public key",
                path: p.to_path_buf(),
                source,
            })
        })
        .transpose()?;
    let request = AttestationRequest {
        user_data: options.user_data.clone(),
        nonce: options.nonce.clone(),
        public_key,
    };
    Ok(nsm.attestation(&request)?)
}

/// Writes a document to `path` atomically (mode 0644: documents are public).
pub fn write_document(path: &Path, document: &[u8]) -> Result<(), CommandError> {
    write_atomically(path, document, 0o644).map_err(|source| CommandError::Io {
        what: "cannot write",
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pki_dir_follows_xdg_state_home() {
        assert_eq!(
            pki_dir_from(Some("/state".into())),
            PathBuf::from("/state/hermetic/sim-pki")
        );
        assert_eq!(
            pki_dir_from(Some("".into())),
            PathBuf::from(".hermetic-sim-pki")
        );
        assert_eq!(pki_dir_from(None), PathBuf::from(".hermetic-sim-pki"));
    }
}

/// The `run` command's inputs besides the backend.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub fetch: crate::fetch::FetchConfig,
    pub spec: crate::workload::DeliverySpec,
    pub command: crate::workload::WorkloadCommand,
}

/// Makes this boot's key, fetches the secrets the spec names (challenge,
/// attest, release, open) and, only when every one of them opened, starts
/// the workload with them. Returns the workload's exit.
pub fn run_workload(
    nsm: &dyn Nsm,
    options: &RunOptions,
) -> Result<crate::workload::WorkloadExit, CommandError> {
    let key = crate::keys::boot_key(nsm)?;
    let names: Vec<String> = options
        .spec
        .secrets
        .iter()
        .map(|m| m.name.clone())
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| CommandError::Io {
            what: "cannot start the async runtime",
            path: PathBuf::new(),
            source,
        })?;
    let secrets = runtime.block_on(crate::fetch::fetch_secrets(
        nsm,
        &key,
        &names,
        &options.fetch,
    ))?;
    drop(runtime);
    Ok(crate::workload::run(
        &options.spec,
        &secrets,
        &options.command,
    )?)
}
