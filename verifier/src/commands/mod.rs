//! The `serve` and `log` subcommands: arguments, and the calls into the
//! library. (`audit` lives in main.rs; the admin and owner commands in
//! admin.rs; `witness` in witness.rs.)

pub mod admin;
pub mod config;
pub mod custodian;
pub mod witness;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use hermetic_tlog::cosignature::CosignerKey;
use hermetic_tlog::note::VerifierKey;
use hermetic_tlog::proof::TlogProof;
use hermetic_verifier::clock::SystemClock;
use hermetic_verifier::log::audit::{self, Intact, VerifyOptions};
use hermetic_verifier::service::{self, ServeConfig};

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

fn fail(code: u8, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("hermetic-verifier: {msg}");
    ExitCode::from(code)
}

#[derive(Args)]
pub struct ServeArgs {
    /// Read settings from this TOML file: every flag has a key of its name
    /// (`rate-limit = 20`; repeatable flags take arrays, `trust-root =
    /// ["root.pem"]`). Flags given here override the file; unknown keys
    /// are refused with their line.
    #[arg(long, value_name = "FILE")]
    pub(crate) config_file: Option<PathBuf>,
    /// Print the effective settings (flags, the --config-file, defaults) as
    /// a configuration file and exit without starting; URL credentials are
    /// redacted.
    #[arg(long)]
    pub(crate) print_config: bool,
    /// Address of the public (enclave-facing) API.
    #[arg(long, default_value = "127.0.0.1:8443", value_name = "ADDR:PORT")]
    listen: SocketAddr,
    /// Address of the admin API (plain HTTP; keep it on loopback).
    #[arg(long, default_value = "127.0.0.1:8444", value_name = "ADDR:PORT")]
    admin_listen: SocketAddr,
    /// Directory for the store, audit log, genesis record and first admin
    /// token; created (mode 0700) if missing. Required (here or in the
    /// --config-file).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Keep the store in PostgreSQL instead of the embedded file (many
    /// replicas share one database): `postgres://USER@HOST:PORT/DB`, libpq
    /// URI options allowed. No password here (argv and the environment are
    /// readable by others): see --store-password-file.
    #[arg(long, env = "HERMETIC_STORE", value_name = "URL")]
    store: Option<String>,
    /// File holding the PostgreSQL password (its first line).
    #[arg(long, value_name = "FILE", requires = "store")]
    store_password_file: Option<PathBuf>,
    /// Connect to PostgreSQL over TLS, trusting only the CA certificate(s)
    /// in this PEM file (no system roots): TLS is required (no plaintext
    /// fallback) and the server's certificate must name the URL's host.
    #[arg(long, value_name = "FILE", requires = "store")]
    store_ca: Option<PathBuf>,
    /// Reach PostgreSQL through the parent instance at this endpoint
    /// (vsock://3:PORT from a verifier enclave; unix:///path in tests): each
    /// connection asks the parent for the URL's host:port, which the parent
    /// allows with --allow-postgres. Needs --store-ca.
    #[arg(long, value_name = "ENDPOINT", requires = "store")]
    store_via: Option<hermetic_transport::Endpoint>,
    /// No longer accepted: loading a policy file at start let an operator
    /// change who receives a secret without its owners. Policies change only
    /// by owner-approved statements (`change propose policy`, or `policy put
    /// --sign KEY`).
    #[arg(long = "config", value_name = "FILE", hide = true)]
    policy_file: Option<PathBuf>,
    /// The deployment id of a new store (default: generated,
    /// hermetic-<32 hex>). Every change statement names it, so an approval
    /// cannot be replayed on another verifier. Set once: a different value
    /// for an existing store stops the start.
    #[arg(long, value_name = "ID")]
    deployment: Option<String>,
    /// Trust this root certificate (PEM) INSTEAD of the pinned AWS Nitro
    /// root: only for simulated enclaves (tests, demos). Repeatable. Every
    /// start record and release record in the audit log names the root, and
    /// `log verify` flags those that are not the AWS root. Only in builds
    /// with the `test-roots` cargo feature (the default; the production
    /// build, --no-default-features, refuses it with exit status 2).
    #[cfg_attr(not(feature = "test-roots"), arg(hide = true))]
    #[arg(long = "trust-root", value_name = "PEM")]
    trust_roots: Vec<PathBuf>,
    /// Genesis (a fresh data directory): a custodian's public key
    /// (hermetic-custodian-pub-..., from `custodian keygen`) or a file
    /// holding one; repeat for each custodian. The verifier makes the master
    /// key in memory and seals one Shamir share to each; DIR/genesis.json
    /// (also printed) holds the sealed shares. Without --custodian, a
    /// `test-roots` build uses one development custodian whose key is
    /// written under DIR: NOT hermetic.
    #[arg(long = "custodian", value_name = "PUBKEY")]
    custodians: Vec<String>,
    /// Genesis: how many custodians must unseal a restarted verifier (at
    /// least 2, at most the number of --custodian).
    #[arg(long, value_name = "K", requires = "custodians")]
    custodian_threshold: Option<u8>,
    /// Serve the public API over HTTPS with this certificate chain (PEM);
    /// needs --tls-key. Plain HTTP otherwise.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM, PKCS#8, SEC1 or PKCS#1) for --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// How long a challenge nonce stays acceptable.
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = parse_duration)]
    challenge_ttl: Duration,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = 64 * 1024, value_name = "BYTES")]
    body_limit: usize,
    /// Longest a request may take before it is answered with `timeout`.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_duration)]
    request_timeout: Duration,
    /// Requests per second allowed per client IP address (token bucket
    /// refill rate); 0 disables the limit.
    #[arg(long, default_value_t = 50.0, value_name = "N")]
    rate_limit: f64,
    /// Burst size of the per-address token bucket.
    #[arg(long, default_value_t = 100.0, value_name = "N")]
    rate_burst: f64,
    /// Most connections served at once per listener.
    #[arg(long, default_value_t = service::DEFAULT_MAX_CONNECTIONS, value_name = "N")]
    max_connections: usize,
    /// Most connections open at once from one client address (IPv6: one
    /// /64), so that one address holding idle connections cannot starve the
    /// others; a connection over it is closed at once. Every enclave behind
    /// one parent instance shares the parent's address.
    #[arg(long, default_value_t = service::DEFAULT_MAX_CONNECTIONS_PER_ADDRESS, value_name = "N")]
    max_connections_per_address: usize,
    /// Most challenge nonces remembered at once (issued or used, until they
    /// expire); beyond it challenges are refused with 503 challenge_capacity.
    #[arg(long, default_value_t = hermetic_verifier::challenge::DEFAULT_CAPACITY, value_name = "N")]
    max_nonces: usize,
    /// Most unused, unexpired challenge nonces one client address may hold;
    /// beyond it challenges are refused with 429 too_many_outstanding_nonces.
    #[arg(long, default_value_t = hermetic_verifier::challenge::DEFAULT_PER_ADDRESS, value_name = "N")]
    max_nonces_per_address: usize,
    /// How often release refusals that are not recorded one by one (those
    /// before the document verified and its nonce was used) are summed up
    /// in one `refusal_summary` audit record, when there were any; the
    /// remainder is recorded on shutdown.
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = parse_duration)]
    refusal_summary_interval: Duration,
    /// Also serve the public API on this endpoint: vsock://ANY:PORT inside
    /// a Nitro Enclave (e.g. vsock://4294967295:8443; the host's
    /// `hermetic-parent --forward-to vsock://CID:8443` brings TCP clients
    /// in), or unix:///path. Its clients all arrive through the parent: they
    /// share one rate-limit bucket and the --max-connections bound.
    #[arg(long, value_name = "ENDPOINT")]
    public_endpoint: Option<hermetic_transport::Endpoint>,
    /// Serve the public API over TLS with an attested identity: the TLS key
    /// is made in memory at start, and the NSM's attestation document,
    /// binding it and the intake key, travels in every handshake (and at
    /// GET /v1/attestation); clients pin the verifier image's measurements
    /// (--verifier-measurements). `real` is /dev/nsm inside a Nitro
    /// Enclave; `simulated` signs with a local test PKI (builds with the
    /// `test-roots` feature only) and is NOT hermetic. Without --nsm and
    /// --tls-cert the public API is plain HTTP (local development).
    #[arg(long, value_enum, value_name = "BACKEND")]
    nsm: Option<NsmKind>,
    /// Simulated NSM: directory of its test PKI (default DATA_DIR/sim-pki;
    /// clients trust DIR/root.pem).
    #[arg(long, value_name = "DIR")]
    pki_dir: Option<PathBuf>,
    /// Simulated NSM: take PCR0/1/2/8 from this `hermetic-eif describe`
    /// JSON (the verifier image's).
    #[arg(long, value_name = "FILE")]
    pcrs_from: Option<PathBuf>,
    /// Simulated NSM: boot in debug mode (PCR0-2 zero; clients refuse it).
    #[arg(long)]
    debug_mode: bool,
    /// With --nsm: a name the certificate carries (repeatable; default
    /// localhost). Clients that pin measurements only do not check it.
    #[arg(long = "tls-name", value_name = "NAME", requires = "nsm")]
    tls_names: Vec<String>,
    /// With --nsm: issue the certificate of the in-memory key from this CA
    /// (PEM) instead of self-signing it, for clients that pin a CA
    /// (--verifier-ca) besides the measurements.
    #[arg(long, value_name = "PEM", requires_all = ["nsm", "tls_issuer_key"])]
    tls_issuer_cert: Option<PathBuf>,
    /// The CA's private key (PEM) for --tls-issuer-cert.
    #[arg(long, value_name = "PEM", requires = "tls_issuer_cert")]
    tls_issuer_key: Option<PathBuf>,
    /// A witness (c2sp.org/tlog-witness) each new checkpoint is submitted
    /// to: its http:// URL and its cosigner key (`witness keygen` prints
    /// it), repeatable. At start, serving is refused (exit 1, `rollback`)
    /// when any witness has cosigned a larger checkpoint than the local log.
    #[arg(long = "witness", value_name = "URL=PUBKEY")]
    witnesses: Vec<hermetic_witness::PoolWitness>,
    /// Cosignatures a grant waits for: with K > 0 the secrets are sent only
    /// once the release record is in a checkpoint cosigned by K of the
    /// --witness keys (one round per batch), else 503 witness_unavailable.
    /// 0 (default): checkpoints are submitted in the background, grants do
    /// not wait.
    #[arg(long, default_value_t = 0, value_name = "K")]
    witness_threshold: usize,
    /// How long one witness round (and the start-time check) may take.
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = parse_duration)]
    witness_timeout: Duration,
    /// Get the master key from a running, unsealed replica at this URL
    /// (its public API, http://HOST:PORT) instead of from custodians: each
    /// side checks the other's attestation document (its own PCR0/1/2/8,
    /// not debug mode, fresh, the nonce it chose) and the key travels
    /// sealed to this replica's attested key. A fresh data directory takes
    /// the peer's genesis record. Refused (exit 1, join_* reason) when
    /// either side refuses the other.
    /// With --custodian (an image that carries its custodian set), the
    /// peer's genesis record must name exactly that set and threshold.
    #[arg(long, value_name = "URL")]
    join: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum NsmKind {
    Real,
    Simulated,
}

fn attested_config(args: &ServeArgs, data_dir: &Path) -> Option<service::AttestedConfig> {
    let backend = match args.nsm? {
        NsmKind::Real => hermetic_nsm::Backend::Real,
        NsmKind::Simulated => hermetic_nsm::Backend::Simulated,
    };
    let pki_dir = match (backend, &args.pki_dir) {
        (hermetic_nsm::Backend::Simulated, None) => Some(data_dir.join("sim-pki")),
        (_, dir) => dir.clone(),
    };
    Some(service::AttestedConfig {
        nsm: hermetic_nsm::NsmSelection {
            backend,
            pki_dir,
            pcrs_from: args.pcrs_from.clone(),
            debug_mode: args.debug_mode,
        },
        names: if args.tls_names.is_empty() {
            vec!["localhost".into()]
        } else {
            args.tls_names.clone()
        },
        issuer: args
            .tls_issuer_cert
            .clone()
            .zip(args.tls_issuer_key.clone()),
    })
}

pub fn serve(args: ServeArgs) -> ExitCode {
    if !args.trust_roots.is_empty() && !service::TEST_ROOTS_ENABLED {
        return fail(2, service::NO_TEST_ROOTS);
    }
    if let Some(path) = &args.policy_file {
        return fail(
            2,
            format!(
                "--config {}: policies are no longer loaded at start; they change only by statements signed by each secret's owners (`hermetic-verifier change propose policy NAME --file {}`, or `policy put --file {} --sign KEY`)",
                path.display(),
                path.display(),
                path.display()
            ),
        );
    }
    if args.store_via.is_some() && args.store_ca.is_none() {
        return fail(
            2,
            "--store-via needs --store-ca: the parent relays TLS only, and the database must be authenticated by a pinned CA end to end",
        );
    }
    let Some(data_dir) = args.data_dir.clone() else {
        return fail(
            2,
            "--data-dir (or `data-dir` in the --config-file) is required",
        );
    };
    let attested = attested_config(&args, &data_dir);
    // Without --nsm, --pki-dir/--pcrs-from/--debug-mode shape the simulated
    // NSM custody attests with (test-roots builds; the API stays plain HTTP).
    let custody_nsm =
        (attested.is_none() && service::TEST_ROOTS_ENABLED).then(|| hermetic_nsm::NsmSelection {
            backend: hermetic_nsm::Backend::Simulated,
            pki_dir: Some(
                args.pki_dir
                    .clone()
                    .unwrap_or_else(|| data_dir.join("sim-pki")),
            ),
            pcrs_from: args.pcrs_from.clone(),
            debug_mode: args.debug_mode,
        });
    if attested.is_some() && (args.tls_cert.is_some() || args.tls_key.is_some()) {
        return fail(
            2,
            "--nsm makes its own TLS key: give --tls-issuer-cert/--tls-issuer-key to have it issued by a CA, not --tls-cert/--tls-key",
        );
    }
    if let Some(a) = &attested {
        if let Err(e) = a.nsm.check() {
            return fail(
                2,
                match e {
                    hermetic_nsm::OpenError::NoSimulator { .. } => "--nsm simulated (and --pki-dir, --pcrs-from, --debug-mode) needs a build with the `test-roots` feature; this is the production build: use --nsm real inside a Nitro Enclave".to_string(),
                    e => e.to_string(),
                },
            );
        }
    }
    if args.witness_threshold > args.witnesses.len() {
        return fail(
            2,
            format!(
                "--witness-threshold {} exceeds the {} --witness given",
                args.witness_threshold,
                args.witnesses.len()
            ),
        );
    }
    let witnesses = (!args.witnesses.is_empty()).then(|| service::witnesses::WitnessConfig {
        witnesses: args.witnesses.clone(),
        threshold: args.witness_threshold,
        timeout: args.witness_timeout,
    });
    if let Some(url) = &args.join {
        if !url.starts_with("http://") {
            return fail(
                2,
                format!("--join {url}: give http://HOST:PORT (the exchange is end-to-end sealed to each side's attested key)"),
            );
        }
    }
    let config = ServeConfig {
        join: args.join,
        witnesses,
        attested,
        public_endpoint: args.public_endpoint.clone(),
        listen: args.listen,
        admin_listen: args.admin_listen,
        data_dir,
        store: args.store,
        store_password_file: args.store_password_file,
        store_ca: args.store_ca,
        store_via: args.store_via,
        deployment: args.deployment,
        trust_roots: args.trust_roots,
        custodians: args.custodians,
        custodian_threshold: args.custodian_threshold,
        custody_nsm,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        challenge_ttl: args.challenge_ttl,
        body_limit: args.body_limit,
        request_timeout: args.request_timeout,
        rate_limit_per_sec: args.rate_limit,
        rate_limit_burst: args.rate_burst,
        max_connections: args.max_connections,
        max_connections_per_address: args.max_connections_per_address,
        max_nonces: args.max_nonces,
        max_nonces_per_address: args.max_nonces_per_address,
        refusal_summary_interval: args.refusal_summary_interval,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => return fail(2, format!("cannot start the runtime: {e}")),
    };
    runtime.block_on(async move {
        // Handlers go in before the service announces itself, so a SIGTERM
        // right after `event=listening` still stops it cleanly (and writes
        // the last refusal summary) instead of killing it.
        let stop = stop_signal();
        let mut stop = stop;
        // A sealed verifier waits in `start` until K custodians unsealed it;
        // a signal meanwhile stops it.
        let running = tokio::select! {
            r = service::start(config, Arc::new(SystemClock)) => match r {
                Ok(r) => r,
                Err(e @ (service::ServeError::Rollback(_) | service::ServeError::JoinRefused { .. })) => {
                    return fail(1, e)
                }
                Err(e) => return fail(2, e),
            },
            _ = &mut stop => {
                tracing::info!(event = "stopping", state = "sealed");
                return ExitCode::SUCCESS;
            }
        };
        stop.await;
        tracing::info!(event = "stopping");
        running.stop().await;
        ExitCode::SUCCESS
    })
}

/// Registers SIGINT and SIGTERM handlers now; the future ends at the first.
fn stop_signal() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            return Box::pin(async move {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            });
        }
    }
    Box::pin(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// Where a log command reads the log: a data directory, or a verifier's
/// public URL (trusting a CA, or pinning the verifier enclave's image).
#[derive(clap::Args, Clone, Default)]
pub struct LogSourceArgs {
    /// The service's data directory.
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "url",
        conflicts_with = "url"
    )]
    data_dir: Option<PathBuf>,
    /// The verifier's public URL (http://HOST:PORT or https://HOST:PORT):
    /// the log is read as C2SP tlog-tiles (/checkpoint, /tile/entries/...).
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// For an https --url: the CA certificate(s) (PEM) the verifier's
    /// certificate must chain to; nothing else is trusted.
    #[arg(long, value_name = "PEM", requires = "url")]
    ca: Option<PathBuf>,
    /// For an https --url: pin the verifier enclave's measurements
    /// (`hermetic-eif describe` JSON of its image): the TLS handshake
    /// completes only with a verifier enclave of that image, not in debug
    /// mode, whose fresh attestation document binds the key it presents
    /// (refused: exit 1 with the reason). Instead of, or besides, --ca.
    #[arg(long, value_name = "FILE", requires = "url")]
    verifier_measurements: Option<PathBuf>,
    /// Trust this root (PEM) for the verifier's documents INSTEAD of the
    /// pinned AWS root: a simulated verifier. Repeatable. Only in builds
    /// with the `test-roots` feature.
    #[cfg_attr(not(feature = "test-roots"), arg(hide = true))]
    #[arg(long, value_name = "PEM", requires = "verifier_measurements")]
    verifier_root: Vec<PathBuf>,
}

impl LogSourceArgs {
    /// How the log at `url` is reached: pinned measurements, else `--ca`,
    /// else plain `http://`.
    fn source(&self, url: &str) -> Result<hermetic_verifier::log::http::LogSource, String> {
        use hermetic_verifier::client::identity;
        use hermetic_verifier::log::http::LogSource;
        let ca = self.ca.as_deref();
        if ca.is_some() && self.verifier_measurements.is_some() {
            return Err("give --ca or --verifier-measurements, not both".into());
        }
        if let Some(file) = &self.verifier_measurements {
            let (pins, roots) = identity::load_pins(file, &self.verifier_root, "--verifier-root")?;
            let (config, _) =
                identity::attested_client_config(&pins, roots).map_err(|e| e.to_string())?;
            return LogSource::with_tls(url, config).map_err(|e| e.to_string());
        }
        let ca_pem = ca
            .map(std::fs::read)
            .transpose()
            .map_err(|e| format!("--ca: {e}"))?;
        LogSource::new(url, ca_pem.as_deref()).map_err(|e| e.to_string())
    }
}

#[derive(Subcommand)]
pub enum LogCommand {
    /// Check the transparency log: recompute the Merkle tree from every
    /// record, check the latest checkpoint's signature by the pinned log key
    /// (and witness cosignatures), check the records hash to its root, and
    /// with --since prove the log extends checkpoints kept earlier. Flags
    /// every start that trusted a root other than the pinned AWS Nitro root
    /// and every release granted under such a root (or naming no root);
    /// flags are warnings. Exit status 0 intact (1 with --require-aws-root
    /// when anything is flagged), 1 broken (the first break is named:
    /// edited, deleted, reordered, truncated, forked, rolled_back,
    /// bad_signature, no_checkpoint), 2 unreadable.
    Verify {
        #[command(flatten)]
        from: LogSourceArgs,
        /// The log's verifier key (`hermetic-verifier log key`), pinned out
        /// of band.
        #[arg(long, value_name = "VKEY")]
        log_key: String,
        /// A witness's cosigner key (repeatable).
        #[arg(long = "witness-key", value_name = "VKEY")]
        witness_keys: Vec<String>,
        /// How many of the --witness-key witnesses must have cosigned.
        #[arg(long, value_name = "K", default_value_t = 0)]
        witness_threshold: usize,
        /// A checkpoint note kept from an earlier look at this log
        /// (repeatable): the log must extend it (else rolled back or forked).
        #[arg(long, value_name = "CHECKPOINT_FILE")]
        since: Vec<PathBuf>,
        /// Output format. JSON: {"intact", "records", "checkpoint_size",
        /// "root", "cosignatures", "consistent_with", "non_aws_root_starts",
        /// "non_aws_root_releases", "unknown_root_releases"} (sequence
        /// numbers), or {"intact": false, "break": {"kind", "seq", "what"}}.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        format: LogFormat,
        /// Exit 1 when any start or release is flagged (for production logs,
        /// which must show only the AWS root).
        #[arg(long)]
        require_aws_root: bool,
        /// Also write the verified checkpoint to FILE (to pass as --since
        /// next time).
        #[arg(long, value_name = "FILE")]
        save_checkpoint: Option<PathBuf>,
    },
    /// Print the log's verifier key (derived from the master key in the
    /// serving verifier's memory); auditors and enclaves pin it. From
    /// --data-dir: its public half DIR/log-key.pub, checked against the
    /// stored checkpoint's signature. From --url: as the verifier serves it
    /// (GET /v1/log/key); with --verifier-measurements, only from a
    /// verifier enclave of that image (exit 1 otherwise, with the reason).
    Key {
        #[command(flatten)]
        from: LogSourceArgs,
    },
    /// Write a C2SP tlog-proof (c2sp.org/tlog-proof) that record SEQ is in
    /// the log under its latest signed checkpoint; the record rides in the
    /// proof's extra data. Checked offline by `log verify-proof`.
    Prove {
        /// The record's sequence number (leaf index, from 0).
        seq: u64,
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Check a tlog-proof file with no access to the log: the checkpoint's
    /// signature by the log key and the record's inclusion. Prints the
    /// record. Exit 0 proven, 1 refused, 2 unreadable.
    VerifyProof {
        file: PathBuf,
        #[arg(long, value_name = "VKEY")]
        log_key: String,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// At most this many sequence numbers per flag line of the text output.
const LISTED: usize = 20;

fn seq_list(seqs: &[u64]) -> String {
    let mut out: Vec<String> = seqs.iter().take(LISTED).map(u64::to_string).collect();
    if seqs.len() > LISTED {
        out.push(format!(
            "… ({} more; --format json lists all)",
            seqs.len() - LISTED
        ));
    }
    out.join(", ")
}

pub fn log(cmd: LogCommand) -> ExitCode {
    match cmd {
        LogCommand::Verify {
            from,
            log_key,
            witness_keys,
            witness_threshold,
            since,
            format,
            require_aws_root,
            save_checkpoint,
        } => {
            let Ok(log_key) = log_key.parse::<VerifierKey>() else {
                return fail(2, "--log-key is not a verifier key (NAME+HHHHHHHH+BASE64)");
            };
            let mut opts = VerifyOptions::new(log_key);
            for w in &witness_keys {
                match w.parse::<CosignerKey>() {
                    Ok(k) => opts.witnesses.push(k),
                    Err(e) => return fail(2, format!("--witness-key {w}: {e}")),
                }
            }
            if witness_threshold > opts.witnesses.len() {
                return fail(
                    2,
                    "--witness-threshold is larger than the number of --witness-key",
                );
            }
            opts.witness_threshold = witness_threshold;
            for path in &since {
                match std::fs::read_to_string(path) {
                    Ok(t) => opts.since.push(t),
                    Err(e) => return fail(2, format!("--since {}: {e}", path.display())),
                }
            }
            let data = match (&from.data_dir, &from.url) {
                (Some(dir), _) => match audit::read_dir(dir) {
                    Ok(d) => d,
                    Err(e) => return fail(2, e),
                },
                (None, Some(url)) => {
                    let runtime = match tokio::runtime::Runtime::new() {
                        Ok(r) => r,
                        Err(e) => return fail(2, format!("cannot start the runtime: {e}")),
                    };
                    let source = match from.source(url) {
                        Ok(s) => s,
                        Err(e) => return fail(2, e),
                    };
                    match runtime.block_on(hermetic_verifier::log::http::read_url(&source)) {
                        Ok(d) => d,
                        Err(e) => return fail(e.exit_code(), e),
                    }
                }
                (None, None) => return fail(2, "give --data-dir or --url"),
            };
            match audit::verify_data(&data, &opts) {
                Ok(intact) => {
                    if let (Some(path), Some(note)) = (&save_checkpoint, &data.checkpoint) {
                        if let Err(e) =
                            hermetic_verifier::client::change::write_atomic(path, note.as_bytes())
                        {
                            return fail(2, format!("--save-checkpoint {}: {e}", path.display()));
                        }
                    }
                    print_intact(&intact, format);
                    if require_aws_root && !intact.aws_root_only() {
                        ExitCode::from(1)
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Err(brk) => {
                    match format {
                        LogFormat::Json => println!(
                            "{}",
                            serde_json::json!({
                                "intact": false,
                                "break": {"kind": brk.kind(), "seq": brk.seq(), "what": brk.to_string()},
                            })
                        ),
                        LogFormat::Text => println!("audit log BROKEN ({}): {brk}", brk.kind()),
                    }
                    ExitCode::from(1)
                }
            }
        }
        LogCommand::Key { from } => {
            let key = match (&from.data_dir, &from.url) {
                (Some(dir), _) => log_key(dir).map_err(|e| (2, e)),
                (None, Some(url)) => remote_log_key(url, &from),
                (None, None) => Err((2, "give --data-dir or --url".to_owned())),
            };
            match key {
                Ok(key) => {
                    println!("{key}");
                    ExitCode::SUCCESS
                }
                Err((code, e)) => fail(code, e),
            }
        }
        LogCommand::Prove { seq, data_dir, out } => match prove(&data_dir, seq) {
            Ok(Ok(text)) => {
                match hermetic_verifier::client::change::write_atomic(&out, text.as_bytes()) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => fail(2, format!("--out {}: {e}", out.display())),
                }
            }
            Ok(Err(refused)) => fail(1, refused),
            Err(e) => fail(2, e),
        },
        LogCommand::VerifyProof { file, log_key } => {
            let Ok(log_key) = log_key.parse::<VerifierKey>() else {
                return fail(2, "--log-key is not a verifier key (NAME+HHHHHHHH+BASE64)");
            };
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) => return fail(2, format!("{}: {e}", file.display())),
            };
            let proof = match TlogProof::parse(&text) {
                Ok(p) => p,
                Err(e) => return fail(1, format!("{}: {e}", file.display())),
            };
            match proof.verify(&log_key) {
                Ok((cp, record)) => {
                    println!(
                        "record {} is in {} at size {} (root {})",
                        proof.index, cp.origin, cp.size, cp.root_hash
                    );
                    println!("{}", String::from_utf8_lossy(record));
                    ExitCode::SUCCESS
                }
                Err(e) => fail(1, format!("proof refused: {e}")),
            }
        }
    }
}

fn print_intact(intact: &Intact, format: LogFormat) {
    match format {
        LogFormat::Json => println!(
            "{}",
            serde_json::json!({
                "intact": true,
                "records": intact.records,
                "checkpoint_size": intact.checkpoint_size,
                "root": intact.root,
                "cosignatures": intact.cosignatures,
                "consistent_with": intact.consistent_with,
                "non_aws_root_starts": intact.non_aws_root_starts,
                "non_aws_root_releases": intact.non_aws_root_releases,
                "unknown_root_releases": intact.unknown_root_releases,
            })
        ),
        LogFormat::Text => {
            println!(
                "audit log intact: {} records, signed checkpoint of {} (root {}), {} witness cosignature(s)",
                intact.records, intact.checkpoint_size, intact.root, intact.cosignatures
            );
            if intact.records > intact.checkpoint_size {
                println!(
                    "note: {} record(s) after the checkpoint are not yet covered by a signature (written just before a crash or stop)",
                    intact.records - intact.checkpoint_size
                );
            }
            for size in &intact.consistent_with {
                println!("consistent with the earlier checkpoint of {size} records");
            }
            let flags = [
                (&intact.non_aws_root_starts, "start(s) trusted a root other than the pinned AWS Nitro root"),
                (&intact.non_aws_root_releases, "release(s) granted under a root other than the pinned AWS Nitro root"),
                (&intact.unknown_root_releases, "release(s) granted without naming their root (written before roots were recorded)"),
            ];
            for (seqs, what) in flags {
                if !seqs.is_empty() {
                    println!("WARNING: {} {what}: records {}", seqs.len(), seq_list(seqs));
                }
            }
        }
    }
}

/// The log key the verifier at `url` serves (exit code and message on
/// failure).
fn remote_log_key(url: &str, from: &LogSourceArgs) -> Result<VerifierKey, (u8, String)> {
    let source = from.source(url).map_err(|e| (2, e))?;
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| (2, format!("cannot start the runtime: {e}")))?;
    runtime
        .block_on(hermetic_verifier::log::http::read_log_key(&source))
        .map_err(|e| (e.exit_code(), e.to_string()))
}

/// The log key of the data directory: the public key `serve` wrote (the
/// master key, and so the private half, is only in the verifier's memory),
/// which must verify the stored checkpoint's signature when there is one.
fn log_key(data_dir: &Path) -> Result<VerifierKey, String> {
    let path = data_dir.join(hermetic_verifier::log::LOG_KEY_PUB_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "{}: {e} (written by `serve` at start; point --data-dir at a served data directory)",
            path.display()
        )
    })?;
    let vkey = text
        .trim()
        .parse::<VerifierKey>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let cp_path = data_dir.join(hermetic_verifier::log::CHECKPOINT_FILE);
    match std::fs::read_to_string(&cp_path) {
        Ok(note) => {
            hermetic_tlog::checkpoint::open(note.as_bytes(), vkey.name(), &vkey).map_err(|e| {
                format!(
                    "{} is not signed by the log key in {} ({e})",
                    cp_path.display(),
                    path.display()
                )
            })?;
            Ok(vkey)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vkey),
        Err(e) => Err(format!("{}: {e}", cp_path.display())),
    }
}

/// The tlog-proof of record `seq` under the data directory's stored
/// checkpoint; `Ok(Err)` when the record is not covered by it.
fn prove(data_dir: &Path, seq: u64) -> Result<Result<String, String>, String> {
    use hermetic_tlog::merkle::prove_record;
    use hermetic_verifier::log::store::{Hashes, LogStore};
    // The checkpoint before the leaves: a running service stores it only
    // once the leaves it covers are durable.
    let cp_path = data_dir.join(hermetic_verifier::log::CHECKPOINT_FILE);
    let note = match std::fs::read_to_string(&cp_path) {
        Ok(n) if !n.is_empty() => n,
        Ok(_) => return Ok(Err("the log has no signed checkpoint".into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Err("the log has no signed checkpoint".into()))
        }
        Err(e) => return Err(format!("{}: {e}", cp_path.display())),
    };
    let store = hermetic_verifier::log::FileLogStore::open_read_only(data_dir)
        .map_err(|e| e.to_string())?;
    let parsed = hermetic_tlog::note::parse(note.as_bytes()).map_err(|e| e.to_string())?;
    let cp =
        hermetic_tlog::checkpoint::Checkpoint::parse(&parsed.text).map_err(|e| e.to_string())?;
    if seq >= cp.size {
        return Ok(Err(format!(
            "record {seq} is not covered by the latest checkpoint ({} records)",
            cp.size
        )));
    }
    let proof = prove_record(cp.size, seq, &Hashes(&store)).map_err(|e| e.to_string())?;
    let leaf = store
        .read_leaves(seq, seq + 1)
        .map_err(|e| e.to_string())?
        .pop()
        .unwrap_or_default();
    Ok(Ok(TlogProof {
        extra: Some(leaf),
        index: seq,
        proof,
        checkpoint: note,
    }
    .to_text()))
}
