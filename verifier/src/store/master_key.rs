//! The master key that encrypts secrets at rest.
//!
//! Taken, in order, from `--master-key-file`, from `HERMETIC_MASTER_KEY`
//! (64 hex characters), or from `DIR/master.key`, which is generated (mode
//! 0600) on first start. The key is never printed or logged.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use aws_lc_rs::rand::SecureRandom;
use hermetic_envelope::Zeroizing;

use super::StoreError;

/// Bytes in the AES-256-GCM master key.
pub const MASTER_KEY_LEN: usize = 32;
/// The environment variable read when no key file is given.
pub const MASTER_KEY_ENV: &str = "HERMETIC_MASTER_KEY";
/// File name of the generated key inside the data directory.
pub const MASTER_KEY_FILE: &str = "master.key";

/// A 32-byte key. `Debug` is redacted; the bytes are wiped on drop.
pub struct MasterKey(Zeroizing<[u8; MASTER_KEY_LEN]>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// Where the key came from (logged, never the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    File(PathBuf),
    Env,
    /// `DIR/master.key` existed.
    DataDir(PathBuf),
    /// `DIR/master.key` was just generated: whoever reads the data directory
    /// can now decrypt the store, so the operator is warned.
    Generated(PathBuf),
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; MASTER_KEY_LEN]) -> Self {
        MasterKey(Zeroizing::new(bytes))
    }

    /// Parses 64 hex characters (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, StoreError> {
        let text = Zeroizing::new(text.trim().to_owned());
        let mut key = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        hex::decode_to_slice(text.as_bytes(), &mut key[..]).map_err(|_| {
            StoreError::MasterKey(format!(
                "a master key is {} hex characters",
                2 * MASTER_KEY_LEN
            ))
        })?;
        Ok(MasterKey(key))
    }

    pub(crate) fn bytes(&self) -> &[u8; MASTER_KEY_LEN] {
        &self.0
    }

    /// Finds the key as described in the module documentation.
    pub fn load(
        data_dir: &Path,
        file: Option<&Path>,
        env: Option<&str>,
        rng: &dyn SecureRandom,
    ) -> Result<(MasterKey, KeySource), StoreError> {
        if let Some(path) = file {
            let text = Zeroizing::new(read_text(path)?);
            return Ok((MasterKey::from_hex(&text)?, KeySource::File(path.into())));
        }
        if let Some(text) = env {
            return Ok((MasterKey::from_hex(text)?, KeySource::Env));
        }
        let path = data_dir.join(MASTER_KEY_FILE);
        if path.exists() {
            let text = Zeroizing::new(read_text(&path)?);
            return Ok((MasterKey::from_hex(&text)?, KeySource::DataDir(path)));
        }
        let mut key = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        rng.fill(&mut key[..])
            .map_err(|_| StoreError::MasterKey("the random number generator failed".into()))?;
        let text = Zeroizing::new(hex::encode(&key[..]));
        write_private(&path, text.as_bytes())?;
        Ok((MasterKey(key), KeySource::Generated(path)))
    }
}

fn read_text(path: &Path) -> Result<String, StoreError> {
    std::fs::read_to_string(path)
        .map_err(|e| StoreError::MasterKey(format!("{}: {e}", path.display())))
}

/// Creates `path` with mode 0600 (failing if it exists) and syncs it.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let io = |e: std::io::Error| StoreError::Io(format!("{}: {e}", path.display()));
    let mut file = options.open(path).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.write_all(b"\n").map_err(io)?;
    file.sync_all().map_err(io)
}
