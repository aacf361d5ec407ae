//! Starting the workload and forwarding signals to it.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, ExitStatus};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::secrets_dir;
use super::{DeliverySpec, Secrets, WorkloadCommand, WorkloadError};

/// Signals the agent passes on to the workload.
pub const FORWARDED_SIGNALS: [i32; 3] = [SIGTERM, SIGINT, SIGHUP];

/// How the workload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkloadExit {
    pub status: ExitStatus,
}

impl WorkloadExit {
    /// The exit code to pass on: the workload's own, or 128 + the signal
    /// that killed it (the shell convention).
    pub fn code(&self) -> i32 {
        match (self.status.code(), self.status.signal()) {
            (Some(code), _) => code,
            (None, Some(signal)) => 128 + signal,
            // Neither exited nor signalled (stopped): report failure.
            (None, None) => 1,
        }
    }
}

/// Starts `command` with the secrets of `spec` taken from `secrets`, forwards
/// SIGTERM/SIGINT/SIGHUP to it, and waits for it to end.
///
/// Every secret the spec names must be in `secrets`; nothing else is
/// delivered. With `spec.secrets_dir` the secrets are files `DIR/NAME`
/// (mode 0400, on tmpfs/ramfs only), removed again when the workload has
/// ended; otherwise they are environment variables.
///
/// Signal handlers stay installed after this returns (signal-hook does not
/// restore the default actions): the caller is expected to exit with
/// [`WorkloadExit::code`].
pub fn run(
    spec: &DeliverySpec,
    secrets: &Secrets,
    command: &WorkloadCommand,
) -> Result<WorkloadExit, WorkloadError> {
    // Resolve everything before touching the file system or spawning.
    let mut values = Vec::with_capacity(spec.secrets.len());
    for mapping in &spec.secrets {
        let value = secrets
            .get(&mapping.name)
            .ok_or_else(|| WorkloadError::MissingSecret {
                name: mapping.name.clone(),
            })?;
        if spec.secrets_dir.is_none() && value.contains(&0) {
            return Err(WorkloadError::NulInSecret {
                name: mapping.name.clone(),
            });
        }
        values.push((mapping, value));
    }

    let mut cmd = Command::new(&command.program);
    cmd.args(&command.args);
    let mut written: Vec<PathBuf> = Vec::new();
    match &spec.secrets_dir {
        Some(dir) => {
            secrets_dir::prepare(dir)?;
            for (mapping, value) in &values {
                match secrets_dir::write_secret(dir, &mapping.name, value) {
                    Ok(path) => written.push(path),
                    Err(e) => {
                        remove_all(&written);
                        return Err(e);
                    }
                }
            }
        }
        None => {
            for (mapping, value) in &values {
                cmd.env(&mapping.env, OsStr::from_bytes(value));
            }
        }
    }

    let result = spawn_and_wait(&mut cmd, command);
    remove_all(&written);
    result
}

fn remove_all(paths: &[PathBuf]) {
    for path in paths {
        // Best effort: the workload may have removed its files already.
        let _ = std::fs::remove_file(path);
    }
}

fn spawn_and_wait(
    cmd: &mut Command,
    command: &WorkloadCommand,
) -> Result<WorkloadExit, WorkloadError> {
    // Installed before the spawn, so a signal arriving in between is queued
    // and forwarded rather than killing the agent and orphaning the child.
    let mut signals = Signals::new(FORWARDED_SIGNALS).map_err(WorkloadError::Signals)?;
    let handle = signals.handle();
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(source) => {
            handle.close();
            return Err(WorkloadError::Spawn {
                program: command.program.to_string_lossy().into_owned(),
                source,
            });
        }
    };
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    let forwarder = std::thread::spawn(move || {
        for signal in signals.forever() {
            if let Ok(signal) = Signal::try_from(signal) {
                // The child may have just exited; nothing to do then.
                let _ = kill(pid, signal);
            }
        }
    });
    let status = child.wait();
    handle.close();
    let _ = forwarder.join();
    status
        .map(|status| WorkloadExit { status })
        .map_err(WorkloadError::Wait)
}
