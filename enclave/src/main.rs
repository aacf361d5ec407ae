//! `hermetic-enclave`: parses arguments, calls the library, prints.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use base64::Engine;
use clap::{Args, Parser, Subcommand, ValueEnum};
use hermetic_enclave::commands::{
    self, AttestOptions, Backend, CommandError, NsmSelection, OpenedNsm,
};
use hermetic_enclave::nsm::Nsm;
#[cfg(feature = "simulator")]
use hermetic_enclave::nsm::PkiOrigin;
use hermetic_enclave::SystemClock;

/// The hermetic enclave agent: talks to the Nitro Secure Module (real or
/// simulated) and hands secrets to the workload.
///
/// Exit codes: 0 success; 1 the NSM refused the request or is unavailable
/// (e.g. no /dev/nsm); 2 usage error or unreadable/unwritable file.
#[derive(Parser)]
#[command(name = "hermetic-enclave", version)]
struct Cli {
    /// How diagnostics are written to stderr: `text` (key=value lines) or
    /// `json` (one object per line); RUST_LOG filters them (default info).
    #[arg(long, global = true, value_enum, default_value_t = hermetic_logging::LogFormat::Text)]
    log_format: hermetic_logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Request an attestation document. Writes raw CBOR to --out
    /// (atomically), or prints it as standard base64 to stdout.
    Attest(AttestArgs),
    /// Fetch secrets from the verifier and start the workload with them.
    ///
    /// Challenge, attest (this boot's ephemeral public key and the nonce),
    /// release, open each secret (HPKE, bound to its name and the nonce),
    /// then run COMMAND with the secrets in environment variables or, with
    /// --secrets-dir, files on a memory-backed directory. The TLS session
    /// to the verifier ends here, with --verifier-ca pinned; --via names
    /// the parent proxy it passes through. Transient failures are retried
    /// with exponential backoff; no workload starts without every secret.
    /// Exit status: the workload's; 1 if no secret could be fetched; 2 for
    /// usage errors.
    Run(Box<RunArgs>),
    /// Print the NSM's description (version, module ID, PCR count, locked
    /// PCRs, digest) as JSON.
    DescribeNsm(NsmArgs),
    /// Read, extend or lock a PCR. With --nsm simulated every run boots a
    /// fresh simulated enclave, so changes do not outlive the process.
    Pcr {
        #[command(subcommand)]
        command: PcrCommand,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum NsmKind {
    /// /dev/nsm inside a Nitro Enclave.
    Real,
    /// An in-process simulator signing with a local test PKI (never trusted
    /// by a verifier that trusts only AWS).
    #[cfg_attr(
        not(feature = "simulator"),
        doc = "Not in this build (cargo feature `simulator`)."
    )]
    Simulated,
}

#[derive(Args)]
struct NsmArgs {
    /// Which NSM to use.
    #[arg(long, value_enum, default_value = "real")]
    nsm: NsmKind,
    /// Simulated only: directory of the test PKI (pki.pem with keys, mode
    /// 0600; root.pem for the verifier). Generated on first use. Default:
    /// $XDG_STATE_HOME/hermetic/sim-pki, or ./.hermetic-sim-pki if
    /// XDG_STATE_HOME is unset.
    #[arg(long, value_name = "DIR")]
    pki_dir: Option<PathBuf>,
    /// Simulated only: take PCR0/1/2/8 from describe-eif JSON
    /// (`hermetic-eif describe IMAGE --format json` or `nitro-cli
    /// describe-eif`).
    #[arg(long, value_name = "EIF_JSON")]
    pcrs_from: Option<PathBuf>,
    /// Simulated only: boot in debug mode (PCR0, PCR1, PCR2 read as zeros).
    #[arg(long)]
    debug_mode: bool,
}

#[derive(Args)]
struct AttestArgs {
    #[command(flatten)]
    nsm: NsmArgs,
    /// Nonce to include, as hex (at most 512 bytes).
    #[arg(long, value_name = "HEX", value_parser = parse_hex)]
    nonce: Option<Hex>,
    /// User data to include, as hex (at most 512 bytes).
    #[arg(long, value_name = "HEX", value_parser = parse_hex)]
    user_data: Option<Hex>,
    /// File whose bytes go into public_key as they are (1 to 1024 bytes).
    #[arg(long, value_name = "FILE")]
    public_key: Option<PathBuf>,
    /// Write the raw CBOR document here instead of base64 to stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    nsm: NsmArgs,
    /// The verifier, as the parent allows it: tcp://HOST:PORT (or
    /// unix:///path, vsock://CID:PORT).
    #[arg(long, value_name = "ENDPOINT")]
    verifier: hermetic_transport::Endpoint,
    /// The parent proxy to connect through (vsock://3:8000 on a Nitro
    /// host); without it the verifier is dialled directly.
    #[arg(long, value_name = "ENDPOINT")]
    via: Option<hermetic_transport::Endpoint>,
    /// PEM of the CA the verifier's TLS certificate must chain to (the only
    /// CA trusted). With --verifier-measurements too, both must hold.
    #[arg(
        long,
        value_name = "PEM",
        required_unless_present = "verifier_measurements"
    )]
    verifier_ca: Option<PathBuf>,
    /// The verifier enclave's measurements to pin: `hermetic-eif describe`
    /// JSON of its image, or a policy file's measurement sets. The
    /// handshake then completes only with a verifier enclave of those
    /// measurements, not in debug mode, whose attestation document (at most
    /// 2 hours old) binds the TLS key it presents.
    #[arg(long, value_name = "FILE")]
    verifier_measurements: Option<PathBuf>,
    /// Trust this root (PEM) for the verifier's attestation document
    /// INSTEAD of the pinned AWS Nitro root: a simulated verifier (tests,
    /// the demo). Repeatable. Only in builds with the `simulator` feature.
    #[cfg_attr(not(feature = "simulator"), arg(hide = true))]
    #[arg(long, value_name = "PEM", requires = "verifier_measurements")]
    verifier_root: Vec<PathBuf>,
    /// The name the verifier's certificate must carry.
    #[arg(long, default_value = "localhost", value_name = "NAME")]
    verifier_name: String,
    /// The verifier's log key (`hermetic-verifier log key`): each release
    /// answer must prove, under a checkpoint this key signed, that this
    /// very release is in the verifier's transparency log; otherwise the
    /// workload is not started (exit 1).
    #[arg(long, value_name = "VKEY", value_parser = parse_log_key)]
    log_key: hermetic_tlog::note::VerifierKey,
    /// A witness's cosigner key (repeatable): with --witness-threshold K,
    /// the receipt's checkpoint must carry K valid cosignatures by these
    /// keys (the verifier runs `serve --witness ... --witness-threshold`),
    /// else the workload is not started (exit 1, receipt_not_cosigned).
    #[arg(long = "witness-key", value_name = "VKEY", value_parser = parse_witness_key)]
    witness_keys: Vec<hermetic_tlog::cosignature::CosignerKey>,
    /// How many of the --witness-key witnesses must have cosigned.
    #[arg(long, default_value_t = 0, value_name = "K")]
    witness_threshold: usize,
    /// A secret to fetch: NAME, or NAME=ENV to choose the environment
    /// variable (default: NAME upper-cased, other characters as _).
    /// Repeatable.
    #[arg(long = "secret", value_name = "NAME[=ENV]", required = true)]
    secrets: Vec<String>,
    /// Deliver secrets as files DIR/NAME (mode 0400) on this memory-backed
    /// directory (tmpfs/ramfs, e.g. /dev/shm/app) instead of environment
    /// variables.
    #[arg(long, value_name = "DIR")]
    secrets_dir: Option<PathBuf>,
    /// Retries after the first attempt for transient failures.
    #[arg(long, default_value_t = 5)]
    retries: u32,
    /// Delay before the first retry; doubles each time.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    retry_delay: std::time::Duration,
    /// Time limit of each attempt.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: std::time::Duration,
    /// The workload and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<std::ffi::OsString>,
}

#[derive(Subcommand)]
enum PcrCommand {
    /// Print a PCR's lock state and value as JSON.
    Describe {
        /// PCR index (0..31).
        index: u16,
        #[command(flatten)]
        nsm: NsmArgs,
    },
    /// Extend a PCR with data: new = SHA-384(old || data). Prints the new value.
    Extend {
        /// PCR index (0..31; 0..15 are locked from boot).
        index: u16,
        /// The data, as hex.
        #[arg(long, value_name = "HEX", value_parser = parse_hex)]
        data: Hex,
        #[command(flatten)]
        nsm: NsmArgs,
    },
    /// Lock one PCR, or with --range N the PCRs 0..N.
    Lock {
        /// PCR index (16..31; 0..15 are locked from boot).
        #[arg(required_unless_present = "range")]
        index: Option<u16>,
        /// Lock PCRs 0..N instead (N at most 32).
        #[arg(long, value_name = "N", conflicts_with = "index")]
        range: Option<u16>,
        #[command(flatten)]
        nsm: NsmArgs,
    },
}

/// Bytes given as hex on the command line.
#[derive(Clone)]
struct Hex(Vec<u8>);

fn parse_hex(s: &str) -> Result<Hex, String> {
    hex::decode(s).map(Hex).map_err(|e| format!("not hex: {e}"))
}

/// The NSM options, refused here already if this build cannot open them
/// (so `run` says so before reading any file).
fn selection(args: NsmArgs) -> Result<NsmSelection, CommandError> {
    let selection = NsmSelection {
        backend: match args.nsm {
            NsmKind::Real => Backend::Real,
            NsmKind::Simulated => Backend::Simulated,
        },
        pki_dir: args.pki_dir,
        pcrs_from: args.pcrs_from,
        debug_mode: args.debug_mode,
    };
    selection.check()?;
    Ok(selection)
}

fn open(args: NsmArgs) -> Result<OpenedNsm, CommandError> {
    open_selected(&selection(args)?)
}

fn open_selected(selection: &NsmSelection) -> Result<OpenedNsm, CommandError> {
    let opened = commands::open_nsm(selection, Arc::new(SystemClock))?;
    #[cfg(feature = "simulator")]
    report_pki(&opened);
    Ok(opened)
}

/// Tells the user when the simulator made a new test PKI to trust.
#[cfg(feature = "simulator")]
fn report_pki(opened: &OpenedNsm) {
    if let Some((root, origin)) = &opened.pki {
        match origin {
            PkiOrigin::Loaded => {}
            PkiOrigin::Generated => tracing::info!(
                event = "simulated_pki_generated",
                root = %root.display(),
                note = "simulated NSM: verifiers must trust this test root"
            ),
            PkiOrigin::Regenerated { .. } => tracing::warn!(
                event = "simulated_pki_regenerated",
                root = %root.display(),
                note = "simulated NSM: the test PKI had expired; verifiers must trust the new root"
            ),
        }
    }
}

fn print_json(value: serde_json::Value) -> Result<(), CommandError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{value:#}").map_err(|source| CommandError::Io {
        what: "cannot write",
        path: "stdout".into(),
        source,
    })
}

fn pcr_json(nsm: &dyn Nsm, index: u16) -> Result<serde_json::Value, CommandError> {
    let pcr = nsm.describe_pcr(index)?;
    Ok(serde_json::json!({"index": index, "locked": pcr.locked, "data": hex::encode(pcr.data)}))
}

fn parse_witness_key(s: &str) -> Result<hermetic_tlog::cosignature::CosignerKey, String> {
    s.parse()
        .map_err(|e| format!("not a witness cosigner key (NAME+HHHHHHHH+BASE64): {e}"))
}

fn parse_log_key(s: &str) -> Result<hermetic_tlog::note::VerifierKey, String> {
    s.parse()
        .map_err(|e| format!("not a log verifier key (NAME+HHHHHHHH+BASE64): {e}"))
}

fn run(cli: Cli) -> Result<(), CommandError> {
    match cli.command {
        Command::Run(args) => {
            let args = *args;
            let selection = selection(args.nsm)?;
            let read = |path: &PathBuf| {
                std::fs::read(path).map_err(|source| CommandError::Io {
                    what: "cannot read",
                    path: path.clone(),
                    source,
                })
            };
            let ca_pem = args.verifier_ca.as_ref().map(read).transpose()?;
            if !args.verifier_root.is_empty() && !cfg!(feature = "simulator") {
                return Err(CommandError::Usage(format!(
                    "--verifier-root is for simulated verifiers, and {}",
                    commands::NO_SIMULATOR
                )));
            }
            let verifier_identity = match &args.verifier_measurements {
                None => None,
                Some(path) => {
                    let pins = hermetic_identity::Pins::from_file(path)
                        .map_err(|e| CommandError::Usage(e.to_string()))?;
                    let roots = args
                        .verifier_root
                        .iter()
                        .map(|p| {
                            hermetic_attestation::TrustedRoot::from_pem(&read(p)?).map_err(|e| {
                                CommandError::Usage(format!("--verifier-root {}: {e}", p.display()))
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    Some(hermetic_enclave::fetch::VerifierPins { pins, roots })
                }
            };
            if args.witness_threshold > args.witness_keys.len() {
                return Err(CommandError::Usage(format!(
                    "--witness-threshold {} exceeds the {} --witness-key given",
                    args.witness_threshold,
                    args.witness_keys.len()
                )));
            }
            let options = commands::RunOptions {
                fetch: hermetic_enclave::fetch::FetchConfig {
                    via: args.via,
                    verifier: args.verifier,
                    server_name: args.verifier_name,
                    ca_pem,
                    verifier_identity,
                    retries: args.retries,
                    backoff: args.retry_delay,
                    attempt_timeout: args.timeout,
                    log_key: args.log_key,
                    witnesses: hermetic_enclave::fetch::receipt::Witnesses {
                        keys: args.witness_keys,
                        threshold: args.witness_threshold,
                    },
                },
                spec: hermetic_enclave::workload::DeliverySpec::parse(
                    &args.secrets,
                    args.secrets_dir,
                )?,
                command: hermetic_enclave::workload::WorkloadCommand::from_argv(args.command)?,
            };
            let opened = open_selected(&selection)?;
            let exit = commands::run_workload(opened.nsm.as_ref(), &options)?;
            std::process::exit(exit.code());
        }
        Command::Attest(args) => {
            let opened = open(args.nsm)?;
            let options = AttestOptions {
                nonce: args.nonce.map(|h| h.0),
                user_data: args.user_data.map(|h| h.0),
                public_key_file: args.public_key,
            };
            let document = commands::attest(opened.nsm.as_ref(), &options)?;
            match args.out {
                Some(path) => commands::write_document(&path, &document),
                None => {
                    let b64 = base64::engine::general_purpose::STANDARD.encode(&document);
                    writeln!(std::io::stdout().lock(), "{b64}").map_err(|source| CommandError::Io {
                        what: "cannot write",
                        path: "stdout".into(),
                        source,
                    })
                }
            }
        }
        Command::DescribeNsm(args) => {
            let opened = open(args)?;
            let d = opened.nsm.describe_nsm()?;
            print_json(serde_json::json!({
                "version": format!("{}.{}.{}", d.version.0, d.version.1, d.version.2),
                "module_id": d.module_id,
                "max_pcrs": d.max_pcrs,
                "locked_pcrs": d.locked_pcrs,
                "digest": d.digest.as_str(),
            }))
        }
        Command::Pcr { command } => match command {
            PcrCommand::Describe { index, nsm } => {
                let opened = open(nsm)?;
                print_json(pcr_json(opened.nsm.as_ref(), index)?)
            }
            PcrCommand::Extend { index, data, nsm } => {
                let opened = open(nsm)?;
                opened.nsm.extend_pcr(index, &data.0)?;
                print_json(pcr_json(opened.nsm.as_ref(), index)?)
            }
            PcrCommand::Lock { index, range, nsm } => {
                let opened = open(nsm)?;
                match (index, range) {
                    (_, Some(range)) => opened.nsm.lock_pcrs(range)?,
                    (Some(index), None) => opened.nsm.lock_pcr(index)?,
                    (None, None) => {
                        return Err(CommandError::Usage("give an INDEX or --range N".into()))
                    }
                }
                let d = opened.nsm.describe_nsm()?;
                print_json(serde_json::json!({"locked_pcrs": d.locked_pcrs}))
            }
        },
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    hermetic_logging::init("hermetic-enclave", cli.log_format);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hermetic-enclave: {e} [{}]", e.reason());
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
        }
    }
}
