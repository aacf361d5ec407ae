//! Choosing and opening a backend from the command line's `--nsm real|simulated`,
//! `--pki-dir`, `--pcrs-from` and `--debug-mode`: the same options, checked
//! the same way, for `hermetic-enclave` and `hermetic-verifier serve`.

use std::path::PathBuf;
use std::sync::Arc;

use crate::{Clock, Nsm, NsmError, RealNsm};
#[cfg(feature = "simulator")]
use crate::{Measurements, MeasurementsError, PkiOrigin, SimulatedNsm, SimulatorOptions};

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

/// Why a selection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// `--nsm simulated` (or one of its options) in a build without the
    /// `simulator` feature. The binary words the sentence (it names itself).
    #[error("this build has no simulator (cargo feature `simulator`)")]
    NoSimulator { flag: Option<&'static str> },
    /// A simulator-only option given with `--nsm real`.
    #[error("{flag} applies only to --nsm simulated (a real enclave's PCRs and debug mode come from nitro-cli run-enclave)")]
    SimulatorOnly { flag: &'static str },
    #[error(transparent)]
    Nsm(#[from] NsmError),
    #[cfg(feature = "simulator")]
    #[error(transparent)]
    Measurements(#[from] MeasurementsError),
}

impl NsmSelection {
    /// Refuses, before anything is read or opened, what cannot be opened:
    /// simulator-only options with the real backend and, in a build without
    /// the `simulator` feature, the simulator itself.
    pub fn check(&self) -> Result<(), OpenError> {
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
                Err(OpenError::NoSimulator { flag: None })
            }
            (Backend::Real, Some(flag)) if !cfg!(feature = "simulator") => {
                Err(OpenError::NoSimulator { flag: Some(flag) })
            }
            (Backend::Real, Some(flag)) => Err(OpenError::SimulatorOnly { flag }),
            _ => Ok(()),
        }
    }
}

/// `$XDG_STATE_HOME/hermetic/sim-pki`, or `./.hermetic-sim-pki` when
/// `XDG_STATE_HOME` is unset or empty.
#[cfg(feature = "simulator")]
pub fn default_pki_dir() -> PathBuf {
    pki_dir_from(std::env::var_os("XDG_STATE_HOME"))
}

/// [`default_pki_dir`] for a given `XDG_STATE_HOME`.
#[cfg(feature = "simulator")]
pub fn pki_dir_from(xdg_state_home: Option<std::ffi::OsString>) -> PathBuf {
    match xdg_state_home {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("hermetic").join("sim-pki"),
        _ => PathBuf::from(".hermetic-sim-pki"),
    }
}

/// An opened NSM, and for the simulator where its PKI came from.
pub struct OpenedNsm {
    pub nsm: Box<dyn Nsm>,
    /// `Some((root.pem path, origin))` for the simulator.
    #[cfg(feature = "simulator")]
    pub pki: Option<(PathBuf, PkiOrigin)>,
}

/// Opens the selected backend, after [`NsmSelection::check`]. Only the
/// simulator reads `clock`.
pub fn open_nsm(selection: &NsmSelection, clock: Arc<dyn Clock>) -> Result<OpenedNsm, OpenError> {
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
            Err(OpenError::NoSimulator { flag: None })
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
            if cfg!(feature = "simulator") {
                assert!(matches!(err, OpenError::SimulatorOnly { .. }), "{err:?}");
                assert!(err.to_string().contains("applies only to --nsm simulated"));
            } else {
                assert!(
                    matches!(err, OpenError::NoSimulator { flag: Some(_) }),
                    "{err:?}"
                );
            }
        }
        assert!(selection(Backend::Real).check().is_ok());
    }

    #[cfg(not(feature = "simulator"))]
    #[test]
    fn without_the_simulator_feature_the_simulator_is_refused_before_any_io() {
        let simulated = NsmSelection {
            pki_dir: Some("/nonexistent/pki".into()),
            ..selection(Backend::Simulated)
        };
        assert!(matches!(
            simulated.check(),
            Err(OpenError::NoSimulator { flag: None })
        ));
        let err = open_nsm(&simulated, Arc::new(crate::SystemClock))
            .err()
            .expect("no simulator in this build");
        assert!(matches!(err, OpenError::NoSimulator { flag: None }));
        assert!(!std::path::Path::new("/nonexistent/pki").exists());
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
