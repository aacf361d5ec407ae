//! The witness's state on disk: for each log, the last checkpoint it
//! cosigned, as the cosigned note itself (evidence a monitor can check), in
//! `STATE_DIR/<hex SHA-256 of the origin>.checkpoint`.
//!
//! A file is replaced atomically: written to a fresh temporary file beside
//! it, synced, renamed over it, and the directory synced, so a crash leaves
//! the old state or the new one, never a partial file
//! (c2sp.org/tlog-witness: "The witness MUST persist the new checkpoint
//! before responding"). `STATE_DIR/.lock` is held (an OS file lock) while a
//! witness runs, so two witness processes cannot advance one state.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use aws_lc_rs::digest;
use hermetic_tlog::checkpoint::Checkpoint;
use hermetic_tlog::note;
use hermetic_tlog::witness::LogState;

/// Why the state directory could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state directory {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state directory {path} is in use by another witness")]
    Locked { path: PathBuf },
    #[error("state file {path} is not a cosigned checkpoint of {origin:?}: {reason}")]
    Corrupt {
        path: PathBuf,
        origin: String,
        reason: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An open, locked state directory.
#[derive(Debug)]
pub struct StateDir {
    dir: PathBuf,
    // Held for the lifetime of the witness: the OS lock ends with the file.
    _lock: File,
}

impl StateDir {
    /// Creates the directory if needed (mode 0700) and takes its lock.
    pub fn open(dir: &Path) -> Result<StateDir, StateError> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(io(dir))?;
        let lock_path = dir.join(".lock");
        let mut options = OpenOptions::new();
        options.create(true).truncate(false).write(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let lock = options.open(&lock_path).map_err(io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StateError::Locked {
                    path: dir.to_path_buf(),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
        }
        Ok(StateDir {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The file holding `origin`'s state.
    pub fn file_for(&self, origin: &str) -> PathBuf {
        let name = hex::encode(digest::digest(&digest::SHA256, origin.as_bytes()));
        self.dir.join(format!("{name}.checkpoint"))
    }

    /// The state held for `origin`: `None` if it never cosigned one.
    pub fn load(&self, origin: &str) -> Result<Option<LogState>, StateError> {
        let path = self.file_for(origin);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        let corrupt = |reason: String| StateError::Corrupt {
            path: path.clone(),
            origin: origin.to_owned(),
            reason,
        };
        let parsed = note::parse(&bytes).map_err(|e| corrupt(e.to_string()))?;
        let checkpoint = Checkpoint::parse(&parsed.text).map_err(|e| corrupt(e.to_string()))?;
        if checkpoint.origin != origin {
            return Err(corrupt(format!("it names origin {:?}", checkpoint.origin)));
        }
        Ok(Some(LogState {
            size: checkpoint.size,
            root_hash: checkpoint.root_hash,
        }))
    }

    /// Replaces `origin`'s state with the cosigned checkpoint `note`,
    /// durably, before the caller answers.
    pub fn store(&self, origin: &str, note: &str) -> Result<(), StateError> {
        let path = self.file_for(origin);
        write_atomic(&self.dir, &path, note.as_bytes())
    }
}

/// At most this many evidence files are kept (a misbehaving log could
/// otherwise fill the disk with them).
pub const MAX_EVIDENCE: usize = 1000;

impl StateDir {
    /// Keeps a request whose checkpoint the log signed but that is
    /// inconsistent with the witness's state (c2sp.org/tlog-witness: the
    /// witness "MAY log the request even if the consistency proof doesn't
    /// verify ... as it might be proof of log misbehavior"), as
    /// `evidence/<hex SHA-256 of the body>.add-checkpoint`. Returns the
    /// path, or `None` when it was already kept or the cap is reached.
    pub fn keep_evidence(&self, body: &[u8]) -> Result<Option<PathBuf>, StateError> {
        let dir = self.dir.join("evidence");
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let name = hex::encode(digest::digest(&digest::SHA256, body));
        let path = dir.join(format!("{name}.add-checkpoint"));
        if path.exists() {
            return Ok(None);
        }
        let count = std::fs::read_dir(&dir).map_err(io(&dir))?.count();
        if count >= MAX_EVIDENCE {
            return Ok(None);
        }
        write_atomic(&dir, &path, body)?;
        Ok(Some(path))
    }
}

/// Temporary file, sync, rename, directory sync.
fn write_atomic(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let mut random = [0u8; 8];
    // A fresh name per write; a collision only fails this write.
    aws_lc_rs::rand::fill(&mut random)
        .map_err(|_| io(path)(std::io::Error::other("no randomness for a temporary name")))?;
    let tmp = dir.join(format!(".{}.tmp", hex::encode(random)));
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hermetic_tlog::merkle::empty_tree_hash;

    fn note_for(origin: &str, size: u64) -> String {
        let signer = note::Signer::generate(origin).unwrap();
        Checkpoint {
            origin: origin.into(),
            size,
            root_hash: empty_tree_hash(),
            extensions: vec![],
        }
        .sign(&signer)
        .unwrap()
    }

    #[test]
    fn stores_loads_and_replaces_without_leftovers() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(&tmp.path().join("state")).unwrap();
        assert_eq!(dir.load("example.com/log").unwrap(), None);
        dir.store("example.com/log", &note_for("example.com/log", 3))
            .unwrap();
        dir.store("example.com/log", &note_for("example.com/log", 5))
            .unwrap();
        assert_eq!(dir.load("example.com/log").unwrap().unwrap().size, 5);
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != ".lock")
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
    }

    #[test]
    fn a_second_witness_on_the_same_directory_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let _first = StateDir::open(tmp.path()).unwrap();
        assert!(matches!(
            StateDir::open(tmp.path()),
            Err(StateError::Locked { .. })
        ));
    }

    #[test]
    fn a_corrupt_or_misplaced_state_file_is_an_error_not_a_reset() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        std::fs::write(dir.file_for("a.example/log"), b"garbage").unwrap();
        assert!(matches!(
            dir.load("a.example/log"),
            Err(StateError::Corrupt { .. })
        ));
        std::fs::write(dir.file_for("b.example/log"), note_for("c.example/log", 1)).unwrap();
        let err = dir.load("b.example/log").unwrap_err().to_string();
        assert!(err.contains("c.example/log"), "{err}");
    }
}
