//! The simulated NSM's test PKI on disk, so its root stays the same across
//! runs and a verifier can be told once to trust it.
//!
//! - `DIR/pki.pem`: every CA certificate with its private key (mode 0600).
//! - `DIR/root.pem`: the root certificate alone, for the verifier.
//!
//! Both are written atomically (temporary file + rename).

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hermetic_attestation::simulator::{TestPki, LEAF_LIFETIME};

use super::NsmError;
use crate::atomic_write::write_atomically;

/// Where a [`TestPki`] came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PkiOrigin {
    /// `pki.pem` was read and still covers the present.
    Loaded,
    /// There was no `pki.pem`; a new PKI (and root) was written.
    Generated,
    /// `pki.pem` no longer covered now + one leaf lifetime (its CAs live
    /// days, like AWS's intermediates), so a new PKI with a new root
    /// replaced it: verifiers must be given the new `root.pem`.
    Regenerated { expired_at: i64 },
}

/// A directory holding the simulated NSM's PKI.
#[derive(Debug, Clone)]
pub struct PkiStore {
    dir: PathBuf,
}

impl PkiStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        PkiStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn pki_path(&self) -> PathBuf {
        self.dir.join("pki.pem")
    }

    /// What a verifier must be told to trust.
    pub fn root_path(&self) -> PathBuf {
        self.dir.join("root.pem")
    }

    /// Loads the PKI, or generates and stores one valid around `now`.
    pub fn load_or_generate(&self, now: i64) -> Result<(TestPki, PkiOrigin), NsmError> {
        let pki_path = self.pki_path();
        let (pki, origin) = match std::fs::read_to_string(&pki_path) {
            Ok(pem) => {
                let pki = TestPki::from_pem_bundle(&pem).map_err(|e| NsmError::SimulatorPki {
                    path: pki_path.clone(),
                    detail: format!("{e}; delete the directory to start a new PKI"),
                })?;
                let needed_until = now.saturating_add(lifetime_secs(LEAF_LIFETIME));
                match coverage(&pki).map_err(|detail| NsmError::SimulatorPki {
                    path: pki_path.clone(),
                    detail,
                })? {
                    (from, until) if from <= now && until >= needed_until => {
                        (pki, PkiOrigin::Loaded)
                    }
                    (_, until) => (
                        self.generate(now)?,
                        PkiOrigin::Regenerated { expired_at: until },
                    ),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                (self.generate(now)?, PkiOrigin::Generated)
            }
            Err(source) => {
                return Err(NsmError::SimulatorIo {
                    path: pki_path,
                    detail: "cannot read the test PKI".into(),
                    source,
                })
            }
        };
        self.ensure_root(&pki)?;
        Ok((pki, origin))
    }

    fn generate(&self, now: i64) -> Result<TestPki, NsmError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|source| NsmError::SimulatorIo {
                path: self.dir.clone(),
                detail: "cannot create the PKI directory".into(),
                source,
            })?;
        let pki = TestPki::generate(now).map_err(|e| NsmError::SimulatorPki {
            path: self.pki_path(),
            detail: e.to_string(),
        })?;
        let path = self.pki_path();
        write_atomically(&path, pki.to_pem_bundle().as_bytes(), 0o600).map_err(|source| {
            NsmError::SimulatorIo {
                path,
                detail: "cannot write the test PKI".into(),
                source,
            }
        })?;
        Ok(pki)
    }

    /// Rewrites `root.pem` if it is missing or names another root.
    fn ensure_root(&self, pki: &TestPki) -> Result<(), NsmError> {
        let path = self.root_path();
        let want = pki.root_pem();
        if std::fs::read_to_string(&path).ok().as_deref() == Some(want.as_str()) {
            return Ok(());
        }
        write_atomically(&path, want.as_bytes(), 0o644).map_err(|source| NsmError::SimulatorIo {
            path,
            detail: "cannot write the root certificate".into(),
            source,
        })
    }
}

fn lifetime_secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// The interval every CA of the PKI is valid in, as Unix seconds.
fn coverage(pki: &TestPki) -> Result<(i64, i64), String> {
    let mut from = i64::MIN;
    let mut until = i64::MAX;
    for der in pki.cabundle() {
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| format!("a CA certificate does not parse: {e}"))?;
        let validity = cert.validity();
        from = from.max(validity.not_before.timestamp());
        until = until.min(validity.not_after.timestamp());
    }
    Ok((from, until))
}
