//! The `hermetic-verifier` command: parses arguments, calls the library,
//! prints. Exit codes: 0 valid / success, 1 invalid or refused (reason
//! printed), 2 usage or I/O.

mod commands;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use hermetic_attestation::{parse_rfc3339, At, TrustedRoot, UnixTime, Verifier};
use hermetic_verifier::audit::{self, decode_input, Expectations, MAX_INPUT_LEN};

#[derive(Parser)]
#[command(
    name = "hermetic-verifier",
    version,
    about = "Attestation-gated secret release for AWS Nitro Enclaves"
)]
struct Cli {
    /// How diagnostics are written to stderr: `text` (key=value lines) or
    /// `json` (one object per line). Which are written: RUST_LOG (default
    /// info), e.g. RUST_LOG=warn or RUST_LOG=hermetic_verifier=debug.
    #[arg(long, global = true, value_enum, default_value_t = hermetic_logging::LogFormat::Text)]
    log_format: hermetic_logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Verify one attestation document offline and print every check.
    ///
    /// The document may be raw CBOR, base64 or hex (detected). It is valid
    /// when its COSE_Sign1 ES384 signature verifies with the leaf
    /// certificate, the chain leads to a trusted root (the pinned AWS Nitro
    /// root unless --root is given) with every certificate valid at --at,
    /// it is not a debug-mode enclave (unless --allow-debug), and it meets
    /// every --expect-pcr, --nonce and --max-age given.
    ///
    /// Exit status: 0 valid, 1 invalid (the reason is printed), 2 usage or I/O error.
    Audit(AuditArgs),
    /// Run the secret-release service.
    ///
    /// Starts with no other setup: the data directory is created if needed
    /// and holds the store (hermetic.redb, every row sealed), the
    /// audit log (audit.jsonl, audit.head), the public genesis record
    /// (genesis.json) and the first admin token (admin.token, mode 0600;
    /// the store keeps only a keyed MAC of it). The master key is never stored: it is
    /// made at genesis (--custodian ... --custodian-threshold K) and, after
    /// a restart, the verifier stays sealed (503 `sealed`) until K
    /// custodians ran `custodian unseal`. Without --custodian a test-roots
    /// build uses one development custodian (key under DIR): NOT hermetic.
    ///
    /// Public API: POST /v1/challenge, POST /v1/release, GET /healthz,
    /// GET /metrics. Admin API (bearer token, --admin-listen):
    /// GET /admin/v1/deployment, GET /admin/v1/secrets[/NAME],
    /// POST /admin/v1/secrets/NAME (create with owners), POST
    /// /admin/v1/changes (owner-signed statements), GET
    /// /admin/v1/policies[/NAME]. Stops on SIGINT or SIGTERM.
    ///
    /// Audit log: every start appends a `start` record (the trusted roots'
    /// SHA-256, whether any is not the pinned AWS root, the policy digest,
    /// the version); every release, and every refusal of a verified document
    /// that used up a fresh challenge, is recorded with the root its chain
    /// ended in and the document's SHA-256. Other refused releases are only
    /// counted (metrics, periodic `refusal_summary` records). Secret
    /// creations and owner-approved changes, applied or refused, are
    /// recorded too.
    ///
    /// The production build (cargo --no-default-features) trusts only the
    /// pinned AWS root and refuses --trust-root.
    Serve(Box<commands::ServeArgs>),
    /// Custodians of the master key: make a key pair; unseal a restarted
    /// verifier after checking its attestation.
    #[command(subcommand)]
    Custodian(commands::custodian::CustodianCommand),
    /// Audit log tools.
    #[command(subcommand)]
    Log(commands::LogCommand),
    /// Owner keys (Ed25519, C2SP signed-note format).
    #[command(subcommand)]
    Owner(commands::admin::OwnerCommand),
    /// Create and list secrets through a running service's admin API
    /// (values are write-only: put by their owners, never read back).
    #[command(subcommand)]
    Secret(commands::admin::SecretCommand),
    /// Read release policies; put one as a single owner (--sign).
    #[command(subcommand)]
    Policy(commands::admin::PolicyCommand),
    /// Owner-approved changes: propose a statement, have K owners sign it
    /// (offline), submit it.
    #[command(subcommand)]
    Change(commands::admin::ChangeCommand),
    /// A C2SP tlog-witness: cosigns each log checkpoint consistent with the
    /// last one it cosigned (POST /add-checkpoint), or `witness keygen`.
    ///
    /// For every log whose key it is given (--log-key; the key's name is the
    /// log's origin) it keeps the last checkpoint it cosigned in --state-dir,
    /// written durably before it answers; it refuses an unknown log (404), a
    /// checkpoint not signed by the log (403), an inconsistent one (422), and
    /// answers 409 with its size when the request's old size is not its own.
    /// Stops on SIGINT or SIGTERM.
    Witness(commands::witness::WitnessArgs),
    /// Write a throw-away CA (ca.pem) and a server certificate for the
    /// public API (server.pem, server.key) into DIR, for demos and test
    /// deployments. The enclave pins ca.pem (--verifier-ca). Never
    /// overwrites existing files.
    DevTls {
        /// Directory to write into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// DNS name or IP address the certificate is for. Repeatable.
        #[arg(long = "name", value_name = "NAME", default_values_t = ["localhost".to_string(), "127.0.0.1".to_string()])]
        names: Vec<String>,
    },
}

#[derive(clap::Args)]
struct AuditArgs {
    /// The document file, or - for standard input.
    input: String,
    /// When the certificates must be valid: `now`, `doc` (the document's own
    /// timestamp, for archived documents whose 3-hour leaf has expired) or an
    /// RFC 3339 instant such as 2024-09-17T01:00:00Z.
    #[arg(long, default_value = "now", value_name = "now|doc|RFC3339")]
    at: String,
    /// Trust this root certificate (PEM) instead of the pinned AWS Nitro
    /// root, e.g. a simulated NSM's test root. Repeatable.
    #[arg(long = "root", value_name = "PEM")]
    roots: Vec<PathBuf>,
    /// Require PCR N to equal HEX. Repeatable.
    #[arg(long = "expect-pcr", value_name = "N=HEX", value_parser = parse_pcr)]
    expect_pcr: Vec<(u8, Vec<u8>)>,
    /// Require the document's nonce to equal HEX.
    #[arg(long, value_name = "HEX", value_parser = parse_hex_arg)]
    nonce: Option<HexBytes>,
    /// Require the document to be at most this old at --at (e.g. 5m, 1h);
    /// needs --at now or an RFC 3339 instant.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    max_age: Option<Duration>,
    /// Accept a debug-mode enclave (PCR0, PCR1 and PCR2 all zero).
    #[arg(long)]
    allow_debug: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// A hex argument (a newtype, so clap does not read `Vec<u8>` as many values).
#[derive(Clone)]
struct HexBytes(Vec<u8>);

fn parse_hex_arg(s: &str) -> Result<HexBytes, String> {
    parse_hex(s).map(HexBytes)
}

fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    hex::decode(s.trim()).map_err(|e| format!("not hex: {e}"))
}

fn parse_pcr(s: &str) -> Result<(u8, Vec<u8>), String> {
    let (index, value) = s.split_once('=').ok_or("expected N=HEX")?;
    let index: u8 = index
        .trim()
        .trim_start_matches("PCR")
        .trim_start_matches("pcr")
        .parse()
        .map_err(|_| format!("bad PCR index {index:?}"))?;
    if index > hermetic_attestation::MAX_PCR_INDEX {
        return Err(format!("PCR index {index} is out of range 0..=31"));
    }
    let value = parse_hex(value)?;
    if ![32, 48, 64].contains(&value.len()) {
        return Err(format!(
            "PCR value is {} bytes; PCRs are 32, 48 or 64 bytes",
            value.len()
        ));
    }
    Ok((index, value))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

/// Every command but `serve` prints to stdout for a reader that may stop
/// early (`| head`, `grep -m1`). Rust starts with SIGPIPE ignored, so such a
/// reader made `print!` panic; these commands end quietly instead, as any
/// Unix filter does. `serve` keeps SIGPIPE ignored: a client closing its
/// socket must be an error on that connection, not the end of the service.
fn end_quietly_on_closed_stdout() {
    #[cfg(unix)]
    // SAFETY: called once from `main` before any thread is started;
    // SIG_DFL is a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Parses the command line; for `serve --config-file FILE`, parses it again
/// with the file's settings added for every flag not given on the command
/// line (commands/config.rs). `--print-config` prints the result and exits.
fn parse_cli() -> Result<Cli, ExitCode> {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut command = Cli::command();
    command.build();
    let matches = command.clone().get_matches_from(&argv);
    let Some(("serve", given)) = matches.subcommand() else {
        return Ok(Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit()));
    };
    let serve = command
        .find_subcommand("serve")
        .expect("serve is a subcommand")
        .clone();
    let file = given.get_one::<PathBuf>("config_file").cloned();
    let matches = match &file {
        None => matches,
        Some(path) => {
            let settings = match commands::config::load(path, &serve) {
                Ok(s) => s,
                Err(e) => return Err(usage_error(e)),
            };
            let mut merged = argv.clone();
            merged.extend(settings.args_not_given(&serve, given));
            match command.clone().try_get_matches_from(&merged) {
                Ok(m) => m,
                Err(e) => match settings.locate(&e) {
                    Some(located) => return Err(usage_error(located)),
                    None => e.exit(),
                },
            }
        }
    };
    let Some(("serve", effective)) = matches.subcommand() else {
        unreachable!("the merged command line is still `serve`")
    };
    if effective.get_flag("print_config") {
        print!(
            "{}",
            commands::config::effective(&serve, effective, file.as_deref())
        );
        return Err(ExitCode::SUCCESS);
    }
    Ok(Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit()))
}

fn main() -> ExitCode {
    let cli = match parse_cli() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    hermetic_logging::init("hermetic-verifier", cli.log_format);
    if !matches!(cli.command, Command::Serve(_) | Command::Witness(_)) {
        end_quietly_on_closed_stdout();
    }
    match cli.command {
        Command::Audit(args) => run_audit(args),
        Command::Serve(args) => commands::serve(*args),
        Command::Log(cmd) => commands::log(cmd),
        Command::Custodian(cmd) => commands::custodian::custodian(cmd),
        Command::Owner(cmd) => commands::admin::owner(cmd),
        Command::Secret(cmd) => commands::admin::secret(cmd),
        Command::Policy(cmd) => commands::admin::policy(cmd),
        Command::Change(cmd) => commands::admin::change(cmd),
        Command::Witness(args) => commands::witness::witness(args),
        Command::DevTls { out, names } => match hermetic_verifier::devtls::generate(&out, &names) {
            Ok(tls) => {
                println!("CA (pin it in the enclave): {}", tls.ca.display());
                println!("server certificate:         {}", tls.cert.display());
                println!("server key (mode 0600):     {}", tls.key.display());
                ExitCode::SUCCESS
            }
            Err(e) => usage_error(e),
        },
    }
}

fn usage_error(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("hermetic-verifier: {msg}");
    ExitCode::from(2)
}

fn run_audit(args: AuditArgs) -> ExitCode {
    let at = match args.at.as_str() {
        "now" => match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => At::Time(UnixTime::since_unix_epoch(d)),
            Err(_) => return usage_error("the system clock is before 1970"),
        },
        "doc" => At::DocumentTimestamp,
        other => match parse_rfc3339(other) {
            Some(t) => At::Time(t),
            None => {
                return usage_error(format!(
                    "--at: {other:?} is not now, doc or an RFC 3339 instant"
                ))
            }
        },
    };
    if args.max_age.is_some() && at == At::DocumentTimestamp {
        return usage_error("--max-age needs --at now or an RFC 3339 instant (a document is never old at its own time)");
    }
    let roots = if args.roots.is_empty() {
        match TrustedRoot::aws_nitro() {
            Ok(r) => vec![r],
            Err(e) => return usage_error(e),
        }
    } else {
        let mut roots = Vec::new();
        for path in &args.roots {
            let pem = match std::fs::read(path) {
                Ok(p) => p,
                Err(e) => return usage_error(format!("--root {}: {e}", path.display())),
            };
            match TrustedRoot::from_pem(&pem) {
                Ok(r) => roots.push(r),
                Err(e) => return usage_error(format!("--root {}: {e}", path.display())),
            }
        }
        roots
    };

    let raw = match read_input(&args.input) {
        Ok(raw) => raw,
        Err(msg) => return usage_error(msg),
    };
    let (document, _encoding) = match decode_input(&raw) {
        Ok(d) => d,
        Err(e) => return usage_error(format!("{}: {e}", args.input)),
    };
    let expect = Expectations {
        pcrs: args.expect_pcr.into_iter().collect(),
        nonce: args.nonce.map(|n| n.0),
        max_age: args.max_age,
        allow_debug: args.allow_debug,
    };
    let verifier = Verifier::new(roots);
    let report = audit::audit(&verifier, &document, at, &expect);
    match args.format {
        Format::Json => println!("{}", report.to_json()),
        Format::Text => print!("{}", report.to_text()),
    }
    if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Reads at most MAX_INPUT_LEN bytes (plus one, to tell that it is larger).
fn read_input(path: &str) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    let limit = MAX_INPUT_LEN as u64 + 1;
    let result = if path == "-" {
        std::io::stdin().lock().take(limit).read_to_end(&mut buf)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(limit).read_to_end(&mut buf))
    };
    result.map_err(|e| format!("{path}: {e}"))?;
    Ok(buf)
}
