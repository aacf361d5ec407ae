//! `witness keygen` and `witness --listen`: a C2SP tlog-witness
//! (c2sp.org/tlog-witness) for the logs whose keys it is given; the work is
//! in hermetic-witness.
//!
//! Exit codes: 0 done (or stopped by a signal), 1 refused (a key that does
//! not parse), 2 usage or I/O.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use hermetic_envelope::Zeroizing;
use hermetic_tlog::cosignature::Cosigner;
use hermetic_tlog::note::VerifierKey;
use hermetic_tlog::witness::KnownLogs;
use hermetic_witness::{StateDir, Witness};

fn fail(code: u8, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("hermetic-verifier: {msg}");
    ExitCode::from(code)
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct WitnessArgs {
    #[command(subcommand)]
    command: Option<WitnessCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum WitnessCommand {
    /// Generate the witness's Ed25519 cosigning key. Writes the private key
    /// to KEY (mode 0600, never overwritten) and prints the public witness
    /// key (NAME+KEYID+BASE64, the C2SP cosignature/v1 form) on standard
    /// output: that string is what a log pins (`serve --witness URL=PUBKEY`).
    Keygen {
        /// File to create for the private key.
        #[arg(long, value_name = "KEY")]
        out: PathBuf,
        /// The witness's name, shown in its cosignature lines (e.g.
        /// witness.example.com/w1): no spaces, no '+'.
        #[arg(long, default_value = "hermetic-witness")]
        name: String,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Address to serve POST /add-checkpoint on (plain HTTP).
    #[arg(long, value_name = "ADDR:PORT", required = true)]
    listen: Option<SocketAddr>,
    /// The witness's private key file (from `witness keygen`; must not be
    /// readable by group or others).
    #[arg(long, value_name = "KEY", required = true)]
    key: Option<PathBuf>,
    /// A log's public key (NAME+KEYID+BASE64, the C2SP signed-note form its
    /// checkpoints are signed with); its name is the log's origin.
    /// Repeatable: one witness serves many logs.
    #[arg(long = "log-key", value_name = "PUBKEY", required = true)]
    log_keys: Vec<String>,
    /// Directory for the last cosigned checkpoint of each log (created,
    /// mode 0700). Default: witness-state/ beside KEY. Losing it lets a log
    /// roll this witness back: keep it with the key.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

pub fn witness(args: WitnessArgs) -> ExitCode {
    match args.command {
        Some(WitnessCommand::Keygen { out, name }) => keygen(&out, &name),
        None => run(args.run),
    }
}

fn keygen(out: &Path, name: &str) -> ExitCode {
    let cosigner = match Cosigner::generate(name) {
        Ok(c) => c,
        Err(e) => return fail(2, format!("--name {name:?}: {e}")),
    };
    if let Err(e) = write_private_key(out, &cosigner) {
        return fail(2, format!("--out {}: {e}", out.display()));
    }
    println!("{}", cosigner.cosigner_key());
    ExitCode::SUCCESS
}

/// Creates `path` (never overwriting) with mode 0600 holding the key.
fn write_private_key(path: &Path, cosigner: &Cosigner) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    let key = cosigner.private_key_string();
    let written = file
        .write_all(key.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all());
    if written.is_err() {
        // Never leave a partial key behind.
        let _ = std::fs::remove_file(path);
    }
    written
}

fn load_cosigner(path: &Path) -> Result<Cosigner, ExitCode> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path)
            .map_err(|e| fail(2, format!("--key {}: {e}", path.display())))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(fail(
                2,
                format!(
                    "--key {}: readable by group or others (mode {:o}); chmod 600 it",
                    path.display(),
                    meta.permissions().mode() & 0o777
                ),
            ));
        }
    }
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| fail(2, format!("--key {}: {e}", path.display())))?,
    );
    Cosigner::from_private_key(text.trim()).map_err(|e| {
        fail(
            1,
            format!("--key {}: not a witness private key ({e})", path.display()),
        )
    })
}

fn run(args: RunArgs) -> ExitCode {
    let (Some(listen), Some(key_path)) = (args.listen, args.key) else {
        return fail(2, "--listen and --key are required");
    };
    let mut keys = Vec::with_capacity(args.log_keys.len());
    for s in &args.log_keys {
        match s.parse::<VerifierKey>() {
            Ok(k) => keys.push(k),
            Err(e) => return fail(1, format!("--log-key {s:?}: {e}")),
        }
    }
    let cosigner = match load_cosigner(&key_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let state_dir = args.state_dir.unwrap_or_else(|| {
        key_path
            .parent()
            .unwrap_or(Path::new("."))
            .join("witness-state")
    });
    let dir = match StateDir::open(&state_dir) {
        Ok(d) => d,
        Err(e) => return fail(2, e),
    };
    let logs = KnownLogs::new(keys);
    let origins: Vec<String> = logs.origins().map(str::to_owned).collect();
    let public = cosigner.cosigner_key();
    let witness = match Witness::open(cosigner, logs, dir, hermetic_witness::system_clock()) {
        Ok(w) => Arc::new(w),
        Err(e) => return fail(2, e),
    };
    // The library reports each request through `tracing`; main.rs installed
    // the stderr sink (--log-format, RUST_LOG).
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => return fail(2, format!("cannot start the runtime: {e}")),
    };
    runtime.block_on(async move {
        let stop = super::stop_signal();
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => return fail(2, format!("--listen {listen}: {e}")),
        };
        let addr = listener.local_addr().map_or(listen, |a| a);
        tracing::info!(event = "listening", witness = %format_args!("http://{addr}"), key = %public, logs = %origins.join(","), state_dir = %state_dir.display());
        match hermetic_witness::serve(listener, witness, stop).await {
            Ok(()) => {
                tracing::info!(event = "stopped");
                ExitCode::SUCCESS
            }
            Err(e) => fail(2, format!("serving: {e}")),
        }
    })
}
