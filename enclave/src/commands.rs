//! The work behind the `hermetic-enclave` commands: pick and open an NSM
//! backend, request a document, write it out.

use std::path::{Path, PathBuf};

use hermetic_nsm::atomic_write::write_atomically;
#[cfg(feature = "simulator")]
pub use hermetic_nsm::default_pki_dir;
#[cfg(feature = "simulator")]
use hermetic_nsm::MeasurementsError;
pub use hermetic_nsm::{open_nsm, Backend, NsmSelection, OpenError, OpenedNsm};
use hermetic_nsm::{AttestationRequest, Nsm, NsmError};

/// The usage error of `--nsm simulated` in a build without the cargo
/// feature `simulator` (an enclave image's build).
pub const NO_SIMULATOR: &str = "this hermetic-enclave was built without the simulator (cargo feature `simulator`); use --nsm real inside a Nitro Enclave";

/// Why a command failed; [`CommandError::exit_code`] is the process's.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Nsm(#[from] NsmError),
    #[cfg(feature = "simulator")]
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
            #[cfg(feature = "simulator")]
            CommandError::Nsm(NsmError::SimulatorIo { .. } | NsmError::SimulatorPki { .. }) => 2,
            CommandError::Nsm(_) => 1,
            #[cfg(feature = "simulator")]
            CommandError::Measurements(_) => 2,
            CommandError::Io { .. } | CommandError::Usage(_) => 2,
            // No secret, no workload: the verifier refused or was unreachable.
            CommandError::Key(_) | CommandError::Fetch(_) => 1,
            CommandError::Workload(_) => 2,
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            CommandError::Nsm(e) => e.reason(),
            #[cfg(feature = "simulator")]
            CommandError::Measurements(e) => e.reason(),
            CommandError::Io { .. } => "io_error",
            CommandError::Usage(_) => "usage",
            CommandError::Key(e) => e.reason(),
            CommandError::Fetch(e) => e.reason(),
            CommandError::Workload(e) => e.reason(),
        }
    }
}

impl From<OpenError> for CommandError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::NoSimulator { flag: None } => CommandError::Usage(NO_SIMULATOR.into()),
            OpenError::NoSimulator { flag: Some(flag) } => CommandError::Usage(format!(
                "{flag} applies only to --nsm simulated, and {NO_SIMULATOR}"
            )),
            e @ OpenError::SimulatorOnly { .. } => CommandError::Usage(e.to_string()),
            OpenError::Nsm(e) => CommandError::Nsm(e),
            #[cfg(feature = "simulator")]
            OpenError::Measurements(e) => CommandError::Measurements(e),
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
    use std::sync::Arc;

    fn selection(backend: Backend) -> NsmSelection {
        NsmSelection {
            backend,
            pki_dir: None,
            pcrs_from: None,
            debug_mode: false,
        }
    }

    #[test]
    fn the_real_backend_refuses_simulator_only_options() {
        let case = NsmSelection {
            debug_mode: true,
            ..selection(Backend::Real)
        };
        let err = CommandError::from(case.check().unwrap_err());
        assert!(matches!(err, CommandError::Usage(_)), "{err:?}");
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("applies only to --nsm simulated"));
    }

    #[cfg(not(feature = "simulator"))]
    #[test]
    fn without_the_simulator_feature_the_simulator_is_a_usage_error() {
        let simulated = NsmSelection {
            pki_dir: Some("/nonexistent/pki".into()),
            ..selection(Backend::Simulated)
        };
        let err = CommandError::from(simulated.check().unwrap_err());
        assert_eq!(err.to_string(), NO_SIMULATOR);
        assert_eq!((err.exit_code(), err.reason()), (2, "usage"));
        let err = open_nsm(&simulated, Arc::new(hermetic_nsm::SystemClock))
            .err()
            .map(CommandError::from)
            .expect("no simulator in this build");
        assert_eq!(err.to_string(), NO_SIMULATOR);
        assert!(!Path::new("/nonexistent/pki").exists());
    }

    #[cfg(feature = "simulator")]
    #[test]
    fn the_default_pki_dir_is_the_crates() {
        let _ = Arc::new(hermetic_nsm::SystemClock);
        assert!(
            default_pki_dir().ends_with("sim-pki")
                || default_pki_dir().ends_with(".hermetic-sim-pki")
        );
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
