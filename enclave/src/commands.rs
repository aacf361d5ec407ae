//! The work behind the `hermetic-enclave` commands: pick and open an NSM
//! backend, request a document, write it out.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::atomic_write::write_atomically;
use crate::nsm::{AttestationRequest, Nsm, NsmError, RealNsm};
#[cfg(feature = "simulator")]
use crate::nsm::{Measurements, MeasurementsError, PkiOrigin, SimulatedNsm, SimulatorOptions};
use crate::Clock;

/// The usage error of `--nsm simulated` in a build without the cargo
/// feature `simulator` (an enclave image's build).
pub const NO_SIMULATOR: &str = "this hermetic-enclave was built without the simulator (cargo feature `simulator`); use --nsm real inside a Nitro Enclave";

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
    /// Simulated only; `default_pki_dir()` when `None`.
    pub pki_dir: Option<PathBuf>,
    /// Simulated only: `describe-eif` JSON to take PCR0/1/2/8 from.
    pub pcrs_from: Option<PathBuf>,
    /// Simulated only: boot in debug mode (PCR0–2 zero).
    pub debug_mode: bool,
}

impl NsmSelection {
    /// Refuses, before anything is read or opened, what cannot be opened:
    /// simulator-only options with the real backend and, in a build without
    /// the `simulator` feature, the simulator itself.
    pub fn check(&self) -> Result<(), CommandError> {
        let simulator_only = [
            (self.pki_dir.is_some(), "--pki-dir"),
            (self.pcrs_from.is_some(), "--pcrs-from"),
            (self.debug_mode, "--debug-mode"),
        ];
        let flag = simulator_only
            .iter()
            .find(|(set, _)| *set)
            .map(|(_, flag)| *flag);
        match (self.backend, flag) {
            (Backend::Simulated, _) if !cfg!(feature = "simulator") => {
                Err(CommandError::Usage(NO_SIMULATOR.into()))
            }
            (Backend::Real, Some(flag)) if !cfg!(feature = "simulator") => Err(
                CommandError::Usage(format!("{flag} applies only to --nsm simulated, and {NO_SIMULATOR}")),
            ),
            (Backend::Real, Some(flag)) => Err(CommandError::Usage(format!(
                "{flag} applies only to --nsm simulated (a real enclave's PCRs and debug mode come from nitro-cli run-enclave)"
            ))),
            _ => Ok(()),
        }
    }
}

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

/// `$XDG_STATE_HOME/hermetic/sim-pki`, or `./.hermetic-sim-pki` when
/// `XDG_STATE_HOME` is unset or empty.
#[cfg(feature = "simulator")]
pub fn default_pki_dir() -> PathBuf {
    pki_dir_from(std::env::var_os("XDG_STATE_HOME"))
}

#[cfg(feature = "simulator")]
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
    #[cfg(feature = "simulator")]
    pub pki: Option<(PathBuf, PkiOrigin)>,
}

/// Opens the selected backend, after [`NsmSelection::check`]. Only the
/// simulator reads `clock`.
pub fn open_nsm(
    selection: &NsmSelection,
    clock: Arc<dyn Clock>,
) -> Result<OpenedNsm, CommandError> {
    selection.check()?;
    match selection.backend {
        Backend::Real => Ok(OpenedNsm {
            nsm: Box::new(RealNsm::open()?),
            #[cfg(feature = "simulator")]
            pki: None,
        }),
        #[cfg(not(feature = "simulator"))]
        Backend::Simulated => {
            drop(clock);
            Err(CommandError::Usage(NO_SIMULATOR.into()))
        }
        #[cfg(feature = "simulator")]
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
        let cases = [
            NsmSelection {
                pki_dir: Some("/tmp/pki".into()),
                ..selection(Backend::Real)
            },
            NsmSelection {
                pcrs_from: Some("/tmp/eif.json".into()),
                ..selection(Backend::Real)
            },
            NsmSelection {
                debug_mode: true,
                ..selection(Backend::Real)
            },
        ];
        for case in cases {
            let err = case.check().unwrap_err();
            assert!(matches!(err, CommandError::Usage(_)), "{err:?}");
            assert_eq!(err.exit_code(), 2);
            assert!(err.to_string().contains("applies only to --nsm simulated"));
        }
        assert!(selection(Backend::Real).check().is_ok());
    }

    #[cfg(not(feature = "simulator"))]
    #[test]
    fn without_the_simulator_feature_the_simulator_is_a_usage_error() {
        let simulated = NsmSelection {
            pki_dir: Some("/nonexistent/pki".into()),
            ..selection(Backend::Simulated)
        };
        let err = simulated.check().unwrap_err();
        assert_eq!(err.to_string(), NO_SIMULATOR);
        assert_eq!((err.exit_code(), err.reason()), (2, "usage"));
        let err = open_nsm(&simulated, Arc::new(crate::SystemClock))
            .err()
            .expect("no simulator in this build");
        assert_eq!(err.to_string(), NO_SIMULATOR);
        assert!(!Path::new("/nonexistent/pki").exists());
        let flagged = NsmSelection {
            debug_mode: true,
            ..selection(Backend::Real)
        };
        assert!(flagged
            .check()
            .unwrap_err()
            .to_string()
            .contains(NO_SIMULATOR));
    }

    #[cfg(feature = "simulator")]
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
