//! The `hermetic-parent` command: parses arguments, runs the proxy until
//! SIGTERM or SIGINT. Exit codes: 0 after a clean shutdown, 1 when the
//! proxy cannot start (address in use, no vsock device, bad capture path),
//! 2 for usage errors.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use hermetic_parent::{Config, Proxy};
use hermetic_transport::Endpoint;
use tokio::signal::unix::{signal, SignalKind};

/// Relay an enclave's TLS records to allow-listed verifiers.
///
/// The enclave connects to --listen and names a destination; the parent
/// connects it only if that destination is given with --allow, then relays
/// TLS records both ways (plaintext is refused), logging byte counts only.
/// A PostgreSQL server given with --allow-postgres may also receive the
/// SSLRequest that precedes its TLS handshake, and answer it with 'S'.
///
/// Inbound mode (--forward-to): for a verifier running as an enclave on
/// this host, clients connect to --listen (tcp://0.0.0.0:8443) and each
/// connection is relayed to the verifier enclave (vsock://CID:PORT), with
/// the same record checks, limits and logs.
#[derive(Parser)]
#[command(name = "hermetic-parent", version)]
struct Cli {
    /// Where enclaves connect: vsock://CID:PORT (on a Nitro host, e.g.
    /// vsock://4294967295:8000 for any CID), unix:///path or tcp://HOST:PORT.
    #[arg(long, value_name = "ENDPOINT")]
    listen: Endpoint,
    /// A destination enclaves may reach, e.g. tcp://verifier.internal:8443.
    /// Repeatable; anything not listed is refused and logged.
    #[arg(
        long = "allow",
        value_name = "ENDPOINT",
        required_unless_present_any = ["forward_to", "allow_postgres"],
        conflicts_with = "forward_to"
    )]
    allow: Vec<Endpoint>,
    /// A PostgreSQL server enclaves may reach, e.g. tcp://db.internal:5432.
    /// Repeatable. Its connections may begin with PostgreSQL's 8-byte
    /// SSLRequest and the server's one-byte 'S' answer, exactly those
    /// (any other plaintext, or an 'N', closes the connection); then TLS
    /// records only, as for --allow.
    #[arg(
        long = "allow-postgres",
        value_name = "ENDPOINT",
        conflicts_with = "forward_to"
    )]
    allow_postgres: Vec<Endpoint>,
    /// Inbound mode: relay every connection accepted on --listen to this
    /// endpoint (the verifier enclave, e.g. vsock://16:8443).
    #[arg(long, value_name = "ENDPOINT")]
    forward_to: Option<Endpoint>,
    /// Connections relayed at once.
    #[arg(long, default_value_t = 64)]
    max_connections: usize,
    /// New connections accepted per second (burst: twice this).
    #[arg(long, default_value_t = 50)]
    connections_per_second: u32,
    /// Close a connection with no traffic either way for this long.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    idle_timeout: Duration,
    /// Largest TLS record payload relayed, in bytes (at most 18432).
    #[arg(long, default_value_t = hermetic_parent::record::MAX_RECORD_PAYLOAD)]
    max_record: usize,
    /// Most bytes relayed in one direction of one connection.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    max_connection_bytes: u64,
    /// Record every relayed TLS record to this file (for audits of what the
    /// parent sees).
    #[arg(long, value_name = "FILE")]
    capture: Option<PathBuf>,
    /// After SIGTERM, how long in-flight connections may finish.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    shutdown_grace: Duration,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hermetic-parent: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    let mut config = Config::new(cli.listen, cli.allow);
    config.allow_postgres = cli.allow_postgres;
    config.forward_to = cli.forward_to;
    config.max_connections = cli.max_connections;
    config.connections_per_second = cli.connections_per_second;
    config.idle_timeout = cli.idle_timeout;
    config.max_record = cli.max_record;
    config.max_connection_bytes = cli.max_connection_bytes;
    config.capture = cli.capture;
    config.shutdown_grace = cli.shutdown_grace;
    let allow: Vec<String> = config.allow.iter().map(ToString::to_string).collect();
    let allow_postgres: Vec<String> = config
        .allow_postgres
        .iter()
        .map(ToString::to_string)
        .collect();
    let forward = config.forward_to.clone();
    let proxy = match Proxy::bind(config).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("hermetic-parent: {e}");
            return ExitCode::from(1);
        }
    };
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        _ => {
            eprintln!("hermetic-parent: cannot install signal handlers");
            return ExitCode::from(1);
        }
    };
    match &forward {
        Some(dest) => {
            tracing::info!(listen = %proxy.local_endpoint(), forward_to = %dest, "listening")
        }
        None => tracing::info!(
            listen = %proxy.local_endpoint(),
            allow = ?allow,
            allow_postgres = ?allow_postgres,
            "listening"
        ),
    }
    proxy
        .run(async {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM"),
                _ = int.recv() => tracing::info!("SIGINT"),
            }
        })
        .await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}
