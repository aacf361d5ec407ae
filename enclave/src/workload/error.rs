//! Why the workload could not be started or supervised. Variants carry
//! secret names and paths, never secret values.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkloadError {
    #[error("secret spec {item:?}: {reason}")]
    BadSpec { item: String, reason: &'static str },
    #[error("secret {name:?} is named twice in the spec")]
    DuplicateName { name: String },
    #[error("environment variable {env} is the target of two secrets")]
    DuplicateEnv { env: String },
    #[error("secret {name:?} maps to an environment variable, but --secrets-dir delivers every secret as a file DIR/NAME")]
    EnvWithSecretsDir { name: String },
    #[error("secret {name:?} was not released to this enclave")]
    MissingSecret { name: String },
    #[error("secret {name:?} contains a NUL byte and cannot be an environment variable; use --secrets-dir")]
    NulInSecret { name: String },
    #[error("{dir} is not memory-backed (file system type {fs_type:#x}); secrets are written only to tmpfs or ramfs, e.g. /dev/shm")]
    NotMemoryBacked { dir: PathBuf, fs_type: u64 },
    #[error("secrets directory {dir}: {source}")]
    SecretsDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write secret file {path}: {source}")]
    WriteSecret {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no workload command given")]
    EmptyCommand,
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot install signal forwarding: {0}")]
    Signals(#[source] std::io::Error),
    #[error("waiting for the workload failed: {0}")]
    Wait(#[source] std::io::Error),
}

impl WorkloadError {
    pub fn reason(&self) -> &'static str {
        match self {
            WorkloadError::BadSpec { .. } => "workload_bad_spec",
            WorkloadError::DuplicateName { .. } => "workload_duplicate_name",
            WorkloadError::DuplicateEnv { .. } => "workload_duplicate_env",
            WorkloadError::EnvWithSecretsDir { .. } => "workload_env_with_secrets_dir",
            WorkloadError::MissingSecret { .. } => "workload_missing_secret",
            WorkloadError::NulInSecret { .. } => "workload_nul_in_secret",
            WorkloadError::NotMemoryBacked { .. } => "workload_dir_not_memory_backed",
            WorkloadError::SecretsDir { .. } => "workload_secrets_dir",
            WorkloadError::WriteSecret { .. } => "workload_write_secret",
            WorkloadError::EmptyCommand => "workload_empty_command",
            WorkloadError::Spawn { .. } => "workload_spawn_failed",
            WorkloadError::Signals(_) => "workload_signals",
            WorkloadError::Wait(_) => "workload_wait_failed",
        }
    }
}
