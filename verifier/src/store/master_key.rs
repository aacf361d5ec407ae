//! The master key that encrypts secrets at rest.
//!
//! It exists only in memory: made at genesis, combined from K custodians'
//! re-sealed shares, or forwarded by a replica (`hermetic-custody`, wired in
//! `service::custody`). It is never read from or written to a file, the
//! environment or argv, and never printed or logged.

use std::fmt;
use std::io::Write;
use std::path::Path;

use hermetic_envelope::Zeroizing;

use super::StoreError;

/// Bytes in the AES-256-GCM master key.
pub const MASTER_KEY_LEN: usize = 32;
/// A 32-byte key. `Debug` is redacted; the bytes are wiped on drop.
pub struct MasterKey(Zeroizing<[u8; MASTER_KEY_LEN]>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; MASTER_KEY_LEN]) -> Self {
        MasterKey(Zeroizing::new(bytes))
    }

    pub(crate) fn bytes(&self) -> &[u8; MASTER_KEY_LEN] {
        &self.0
    }
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
