//! The verifier measurements a client pins.

use std::path::{Path, PathBuf};

use hermetic_eif::Expectation;
use hermetic_policy::{pins_image, Pcrs};

/// Allowed measurement sets of the verifier image: a document must match
/// every PCR of at least one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pins {
    sets: Vec<Pcrs>,
}

#[derive(Debug, thiserror::Error)]
pub enum PinsError {
    /// Unreadable or not a describe JSON / policy file (the message is
    /// `hermetic-eif`'s, which names the file).
    #[error("--verifier-measurements: {0}")]
    Load(String),
    #[error("--verifier-measurements {path}: a measurement set that pins no image (name PCR0, PCR8, or PCR1 and PCR2)")]
    PinsNoImage { path: PathBuf },
}

impl Pins {
    /// Sets given directly; each must pin the image.
    pub fn new(sets: Vec<Pcrs>) -> Option<Self> {
        (!sets.is_empty() && sets.iter().all(pins_image)).then_some(Pins { sets })
    }

    /// Reads `hermetic-eif describe` JSON (or nitro-cli's `describe-eif`
    /// JSON) or a policy file, through `hermetic-eif`'s parser (the same one
    /// `hermetic-eif check --expect` uses). A policy file's sets, of every
    /// secret it names, are all allowed.
    pub fn from_file(path: &Path) -> Result<Self, PinsError> {
        let expectation =
            hermetic_eif::load_expectation(path).map_err(|e| PinsError::Load(e.to_string()))?;
        let sets = match expectation {
            Expectation::Pcrs(set) => vec![set],
            Expectation::Policy(policy) => policy
                .secrets
                .into_values()
                .flat_map(|s| s.measurements)
                .collect(),
        };
        Pins::new(sets).ok_or_else(|| PinsError::PinsNoImage {
            path: path.to_path_buf(),
        })
    }

    pub fn sets(&self) -> &[Pcrs] {
        &self.sets
    }
}
