//! Secret files on a memory-backed directory: they must never reach a disk,
//! so the directory's file system is checked with statfs(2) first.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::sys::statfs::{statfs, TMPFS_MAGIC};

use super::WorkloadError;
use hermetic_nsm::atomic_write::write_atomically;

/// `RAMFS_MAGIC` from linux/magic.h (nix names only `TMPFS_MAGIC`).
const RAMFS_MAGIC: u64 = 0x8584_58f6;

/// Refuses `dir` unless it is on tmpfs or ramfs.
pub fn check_memory_backed(dir: &Path) -> Result<(), WorkloadError> {
    let stat = statfs(dir).map_err(|errno| WorkloadError::SecretsDir {
        dir: dir.to_path_buf(),
        source: errno.into(),
    })?;
    let fs_type = stat.filesystem_type();
    // f_type is a signed word on some targets; magic numbers are positive.
    let raw = fs_type.0 as u64;
    if fs_type == TMPFS_MAGIC || raw == RAMFS_MAGIC {
        Ok(())
    } else {
        Err(WorkloadError::NotMemoryBacked {
            dir: dir.to_path_buf(),
            fs_type: raw,
        })
    }
}

/// Creates `dir` (0700) if needed and checks it is memory-backed.
pub(super) fn prepare(dir: &Path) -> Result<(), WorkloadError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| WorkloadError::SecretsDir {
            dir: dir.to_path_buf(),
            source,
        })?;
    check_memory_backed(dir)
}

/// Writes `DIR/NAME` with mode 0400, atomically (a reader sees the whole
/// secret or none of it).
pub(super) fn write_secret(dir: &Path, name: &str, value: &[u8]) -> Result<PathBuf, WorkloadError> {
    let path = dir.join(name);
    write_atomically(&path, value, 0o400).map_err(|source| WorkloadError::WriteSecret {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}
