//! `hermetic-verifier serve`: the secret-release service.
//!
//! [`start`] opens (or creates) everything in the data directory — the
//! store, the master key, the audit log, the first admin token — binds the
//! public and admin listeners and returns their addresses. The HTTP layer is
//! thin: the release decision is [`crate::release::decide`].

mod admin;
mod api;
mod changes;
mod custody;
mod join;
mod listener;
mod metrics;
mod openapi;
mod rate_limit;
mod reason;
mod refusal;
pub mod request_id;
#[cfg(test)]
mod retry_reasons;
mod rollback;
mod state;
mod tiles;
pub mod witnesses;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use hermetic_attestation::{TrustedRoot, Verifier};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use admin::{token_hash, PolicyList, SecretList, ADMIN_ROUTES, RETIRED_ADMIN_ROUTES};
pub use api::{Limits, PUBLIC_ROUTES};
pub use changes::{ChangeApplied, CreateSecret, Created, DeploymentInfo};
pub use custody::{DEV_CUSTODIAN_FILE, GENESIS_FILE, SEALED_ROUTES};
pub use join::{JoinRefusal, JOIN_KEY_ROUTE, JOIN_OFFER_ROUTE};
pub use listener::{
    address_key, ConnectionLimits, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
};
pub use metrics::{Metrics, Snapshot};
pub use rate_limit::RateLimiter;
pub use reason::Reason;
pub use refusal::ApiRefusal;
pub use state::{AppState, Unlogged};

use crate::challenge::{NonceBook, DEFAULT_CAPACITY, DEFAULT_PER_ADDRESS};
use crate::clock::Clock;
use crate::log::{log_signer, Entry, SharedLog, Start, ACTION_START};
use crate::policy::policy_digest;
use crate::store::{write_private, MasterKey, Store};
use state::Shared;

/// File name of the first admin token inside the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// Default period of `refusal_summary` records.
pub const DEFAULT_REFUSAL_SUMMARY_INTERVAL: Duration = Duration::from_secs(60);

/// Everything `serve` needs; `main.rs` fills it from the command line.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `--store postgres://...`: the store in PostgreSQL (shared by
    /// replicas) instead of the embedded file in `data_dir`.
    pub store: Option<String>,
    /// The PostgreSQL password's file (never in the URL).
    pub store_password_file: Option<PathBuf>,
    /// `--store-ca`: TLS to PostgreSQL, trusting only these CA certificates.
    pub store_ca: Option<PathBuf>,
    /// `--store-via`: PostgreSQL reached through the parent at this endpoint.
    pub store_via: Option<hermetic_transport::Endpoint>,
    /// The deployment id of a new store (generated when `None`); an
    /// existing store keeps its own, and a different value is a start error.
    pub deployment: Option<String>,
    /// PEM roots to trust instead of the pinned AWS Nitro root (tests, demos);
    /// refused unless the `test-roots` feature is on.
    pub trust_roots: Vec<PathBuf>,
    /// Genesis: the custodians' public keys (`hermetic-custodian-pub-…`, or
    /// a file holding one); empty for an existing genesis or development.
    pub custodians: Vec<String>,
    /// Genesis: shares needed to unseal (at least 2).
    pub custodian_threshold: Option<u8>,
    /// The NSM custody attests with when `attested` is `None` (a `test-roots`
    /// build: simulated; the public API stays plain HTTP).
    pub custody_nsm: Option<hermetic_nsm::NsmSelection>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub challenge_ttl: Duration,
    pub body_limit: usize,
    pub request_timeout: Duration,
    pub rate_limit_per_sec: f64,
    pub rate_limit_burst: f64,
    /// Connections open at once per listener.
    pub max_connections: usize,
    /// Connections open at once per client address (IPv6: per /64).
    pub max_connections_per_address: usize,
    /// Challenge nonces remembered at once (issued or used, unexpired).
    pub max_nonces: usize,
    /// Unused, unexpired challenge nonces one client address may hold.
    pub max_nonces_per_address: usize,
    /// How often release refusals not recorded one by one are summed up in
    /// a `refusal_summary` record (only when there were any; also on stop).
    pub refusal_summary_interval: Duration,
    /// Also serve the public API on this vsock or Unix endpoint (a verifier
    /// enclave: `vsock://ANY:PORT`, reached through the inbound parent).
    pub public_endpoint: Option<hermetic_transport::Endpoint>,
    /// Serve the public API over TLS with an attested identity (`--nsm`):
    /// the key is made in memory, the NSM's document binds it.
    pub attested: Option<AttestedConfig>,
    /// `--witness URL=PUBKEY... --witness-threshold K`: where checkpoints
    /// go, and how many cosignatures a grant waits for.
    pub witnesses: Option<witnesses::WitnessConfig>,
    /// `--join URL`: get the master key from the running replica at URL
    /// (same measurements, both attested) instead of genesis or custodians.
    pub join: Option<String>,
}

/// `serve --nsm`: where the document comes from and what the certificate
/// names.
#[derive(Debug, Clone)]
pub struct AttestedConfig {
    pub nsm: hermetic_nsm::NsmSelection,
    /// DNS names (or IP addresses) of the certificate.
    pub names: Vec<String>,
    /// A CA (certificate PEM, key PEM) to issue the certificate from, for
    /// clients that pin a CA besides the measurements; self-signed without.
    pub issuer: Option<(PathBuf, PathBuf)>,
}

/// The verifier's clock, as the simulated NSM reads it.
struct NsmClock(Arc<dyn Clock>);

impl hermetic_nsm::Clock for NsmClock {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.0.now().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Opens the NSM, makes the in-memory TLS key and its first document.
/// Opens the NSM: before the store, so a verifier that cannot attest
/// creates nothing.
fn open_attested_nsm(
    config: &AttestedConfig,
    clock: Arc<dyn Clock>,
) -> Result<hermetic_nsm::OpenedNsm, ServeError> {
    hermetic_nsm::open_nsm(&config.nsm, Arc::new(NsmClock(clock)))
        .map_err(|e| setup(format!("--nsm: {e}")))
}

fn attested_identity(
    config: &AttestedConfig,
    opened: (Arc<dyn hermetic_nsm::Nsm>, Option<PathBuf>),
    intake: [u8; 32],
) -> Result<
    (
        Arc<dyn hermetic_nsm::Nsm>,
        Arc<hermetic_identity::server::AttestedTls>,
    ),
    ServeError,
> {
    #[cfg(feature = "test-roots")]
    if let Some(root) = &opened.1 {
        tracing::info!(event = "simulated_nsm", root = %root.display());
    }
    if config.nsm.backend == hermetic_nsm::Backend::Simulated {
        tracing::warn!(event = "not_hermetic", nsm = "simulated", note = "THIS VERIFIER IS NOT HERMETIC: its attestation documents are signed by a local test PKI, not AWS; clients must trust that test root; never in production");
    }
    let issuer = match &config.issuer {
        None => None,
        Some((cert, key)) => {
            let read = |p: &PathBuf| {
                std::fs::read_to_string(p).map_err(|e| setup(format!("{}: {e}", p.display())))
            };
            Some(hermetic_identity::server::CertIssuer {
                cert_pem: read(cert)?,
                key_pem: read(key)?,
            })
        }
    };
    let nsm = opened.0;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let identity = hermetic_identity::server::AttestedTls::new(
        nsm.as_ref(),
        intake,
        &config.names,
        issuer.as_ref(),
        &provider,
    )
    .map_err(|e| setup(e.to_string()))?;
    tracing::info!(event = "attested_identity", intake_key = %hex::encode(intake), refresh_secs = %hermetic_identity::server::REFRESH_INTERVAL.as_secs());
    Ok((nsm, Arc::new(identity)))
}

/// Custody's NSM when the public API has no attested identity: the
/// simulated one in `test-roots` builds (its PKI under DIR/sim-pki unless
/// given), none in the production build.
fn custody_nsm_without_tls(
    config: &ServeConfig,
    clock: Arc<dyn Clock>,
) -> Result<Option<custody::SimulatedCustody>, ServeError> {
    if !TEST_ROOTS_ENABLED {
        return Ok(None);
    }
    let selection = config
        .custody_nsm
        .clone()
        .unwrap_or(hermetic_nsm::NsmSelection {
            backend: hermetic_nsm::Backend::Simulated,
            pki_dir: Some(config.data_dir.join("sim-pki")),
            pcrs_from: None,
            debug_mode: false,
        });
    let opened = hermetic_nsm::open_nsm(&selection, Arc::new(NsmClock(clock)))
        .map_err(|e| setup(format!("custody NSM: {e}")))?;
    #[cfg(feature = "test-roots")]
    let root_pem = opened.pki.as_ref().map(|(root, _)| root.clone());
    #[cfg(not(feature = "test-roots"))]
    let root_pem = None;
    Ok(Some(custody::SimulatedCustody {
        nsm: Arc::from(opened.nsm),
        root_pem,
    }))
}

/// Asks for a new document every `REFRESH_INTERVAL`, well before the
/// current one's leaf certificate (three hours) expires.
async fn refresh_identity(
    nsm: Arc<dyn hermetic_nsm::Nsm>,
    identity: Arc<hermetic_identity::server::AttestedTls>,
) {
    let mut tick = tokio::time::interval(hermetic_identity::server::REFRESH_INTERVAL);
    tick.tick().await;
    loop {
        tick.tick().await;
        let (nsm, identity) = (nsm.clone(), identity.clone());
        let outcome = tokio::task::spawn_blocking(move || identity.refresh(nsm.as_ref())).await;
        match outcome {
            Ok(Ok(())) => tracing::info!(event = "attestation_refreshed"),
            Ok(Err(e)) => tracing::error!(event = "attestation_refresh_failed", error = %e),
            Err(e) => tracing::error!(event = "attestation_refresh_failed", error = %e),
        }
    }
}

impl ServeConfig {
    /// Defaults for everything but the data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 8444)),
            data_dir: data_dir.into(),
            store: None,
            store_password_file: None,
            store_ca: None,
            store_via: None,
            deployment: None,
            trust_roots: Vec::new(),
            custodians: Vec::new(),
            custodian_threshold: None,
            custody_nsm: None,
            tls_cert: None,
            tls_key: None,
            challenge_ttl: crate::challenge::DEFAULT_TTL,
            body_limit: 64 * 1024,
            request_timeout: Duration::from_secs(10),
            rate_limit_per_sec: 50.0,
            rate_limit_burst: 100.0,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            max_nonces: DEFAULT_CAPACITY,
            max_nonces_per_address: DEFAULT_PER_ADDRESS,
            refusal_summary_interval: DEFAULT_REFUSAL_SUMMARY_INTERVAL,
            attested: None,
            public_endpoint: None,
            witnesses: None,
            join: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Setup(String),
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Log(#[from] crate::log::LogError),
    #[error("{NO_TEST_ROOTS}")]
    TestRootsDisabled,
    /// A witness cosigned a larger (or another) checkpoint than the local
    /// log's: the data directory was restored or replaced (exit code 1).
    #[error("{0}")]
    Rollback(hermetic_witness::StartRefusal),
    /// `--join`: this replica or its peer refused the other (exit code 1).
    #[error("join refused ({reason}): {message}")]
    JoinRefused { reason: String, message: String },
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
}

/// A running service. Dropping it does not stop it; call [`Running::stop`].
pub struct Running {
    pub public_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub state: Arc<AppState>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops both listeners and every open connection, and waits (up to
    /// five seconds) for in-flight blocking work to let go of the store, so
    /// the data directory can be opened again at once.
    pub async fn stop(self) {
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            let _ = task.await;
        }
        for _ in 0..500 {
            if Arc::strong_count(&self.state) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The refusals counted since the last summary.
        if let Err(e) = self.state.flush_refusal_summary() {
            tracing::error!(event = "audit_log_failed", error = %e);
        }
    }

    /// Runs until both listeners end (they do not, unless aborted).
    pub async fn wait(self) {
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Replaces `path` with public `bytes` (write to a temporary file, sync,
/// rename).
fn write_public(path: &Path, bytes: &[u8]) -> Result<(), ServeError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let io = |e: std::io::Error| setup(format!("{}: {e}", path.display()));
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.write_all(b"\n").map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

fn setup(msg: impl Into<String>) -> ServeError {
    ServeError::Setup(msg.into())
}

/// Whether this build may trust roots other than the pinned AWS Nitro root
/// (cargo feature `test-roots`; off in the production build).
pub const TEST_ROOTS_ENABLED: bool = cfg!(feature = "test-roots");

/// The refusal of `--trust-root` by a production build.
pub const NO_TEST_ROOTS: &str = "--trust-root is not available in this build: a production build \
(without the `test-roots` cargo feature) trusts only the pinned AWS Nitro Enclaves root";

fn load_verifier(roots: &[PathBuf]) -> Result<Verifier, ServeError> {
    if roots.is_empty() {
        return Verifier::aws().map_err(|e| setup(format!("pinned AWS root: {e}")));
    }
    if !TEST_ROOTS_ENABLED {
        return Err(ServeError::TestRootsDisabled);
    }
    let mut trusted = Vec::new();
    for path in roots {
        let pem = std::fs::read(path)
            .map_err(|e| setup(format!("--trust-root {}: {e}", path.display())))?;
        trusted.push(
            TrustedRoot::from_pem(&pem)
                .map_err(|e| setup(format!("--trust-root {}: {e}", path.display())))?,
        );
    }
    Ok(Verifier::new(trusted))
}

/// Creates the first admin token when the store has none. The token goes to
/// `DIR/admin.token` (0600); only its hash is stored and only the path is logged.
fn bootstrap_admin_token(
    store: &Store,
    data_dir: &Path,
    rng: &dyn SecureRandom,
) -> Result<Option<PathBuf>, ServeError> {
    if store.token_count()? > 0 {
        return Ok(None);
    }
    let mut bytes = [0u8; 32];
    rng.fill(&mut bytes)
        .map_err(|_| setup("the random number generator failed"))?;
    let token = hex::encode(bytes);
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    if path.exists() {
        // A token file the store does not know: refuse rather than guess.
        return Err(setup(format!(
            "{} exists but the store has no admin token; move it away to generate a new one",
            path.display()
        )));
    }
    write_private(&path, token.as_bytes())?;
    store.add_token_hash(&token_hash(&token), "bootstrap")?;
    Ok(Some(path))
}

/// The `start` record: the trusted roots, whether any is not the pinned AWS
/// root, the digest of every stored policy, the version and build.
fn start_record(verifier: &Verifier, store: &Store) -> Result<Start, ServeError> {
    let stored = store.policies()?;
    let (policies, unusable_policies) = (stored.usable, stored.unusable);
    for (name, error) in &stored.refused {
        tracing::error!(event = "store_row_refused", name = %name, reason = %error.reason(), error = %error, note = "releases and changes of this secret are refused");
    }
    for name in &unusable_policies {
        tracing::warn!(event = "policy_unusable", name = %name, note = "stored before a policy rule this version enforces; releases of this secret are refused until its owners put a new policy");
    }
    let digest = policy_digest(policies.iter().map(|(n, p)| (n.as_str(), p)));
    Ok(Start {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        test_roots_build: TEST_ROOTS_ENABLED,
        trusted_roots: verifier
            .roots()
            .iter()
            .map(|r| hex::encode(r.sha256()))
            .collect(),
        non_aws_root: verifier.roots().iter().any(|r| !r.is_aws_nitro()),
        policy_digest: hex::encode(digest),
        policies: policies.len() as u64,
        unusable_policies,
        not_hermetic: false,
    })
}

/// Appends a `refusal_summary` record every `interval` when release
/// refusals were counted since the last one.
async fn summarize_refusals(state: Shared, interval: Duration) {
    let mut ticks = tokio::time::interval(interval.max(Duration::from_millis(10)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is immediate
    loop {
        ticks.tick().await;
        let state = state.clone();
        let flushed = tokio::task::spawn_blocking(move || state.flush_refusal_summary()).await;
        if let Ok(Err(e)) = flushed {
            tracing::error!(event = "audit_log_failed", error = %e);
        }
    }
}

/// Opens the data directory and binds both listeners.
pub async fn start(config: ServeConfig, clock: Arc<dyn Clock>) -> Result<Running, ServeError> {
    // Refused before anything is created or opened.
    if !config.trust_roots.is_empty() && !TEST_ROOTS_ENABLED {
        return Err(ServeError::TestRootsDisabled);
    }
    let opened_nsm = match &config.attested {
        Some(attested) => Some(open_attested_nsm(attested, clock.clone())?),
        None => None,
    };
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| setup(format!("--data-dir {}: {e}", config.data_dir.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o700));
    }
    let rng = SystemRandom::new();
    let verifier = load_verifier(&config.trust_roots)?;
    // The NSM custody attests with: the attested identity's, or (test-roots
    // builds without --nsm) a simulated one whose PKI lies under DIR.
    let (custody_nsm, opened_nsm): (Option<custody::SimulatedCustody>, _) = match opened_nsm {
        Some(opened) => {
            #[cfg(feature = "test-roots")]
            let root_pem = opened.pki.as_ref().map(|(root, _)| root.clone());
            #[cfg(not(feature = "test-roots"))]
            let root_pem = None;
            let nsm: Arc<dyn hermetic_nsm::Nsm> = Arc::from(opened.nsm);
            (
                Some(custody::SimulatedCustody {
                    nsm: nsm.clone(),
                    root_pem,
                }),
                Some(nsm),
            )
        }
        None => (custody_nsm_without_tls(&config, clock.clone())?, None),
    };
    let mut config = config;
    // With PostgreSQL the database holds the genesis record too: a replica
    // started with an empty data directory takes it from there (so it
    // starts sealed against it, or joins), never makes a second genesis.
    let shared_db = match &config.store {
        Some(url) => {
            let password = match &config.store_password_file {
                Some(path) => Some(crate::store::postgres::read_password(path)?),
                None => None,
            };
            let connector = crate::store::pg_connect::PgConnector::new(
                config.store_ca.as_deref(),
                config.store_via.clone(),
            )?;
            let backend = crate::store::postgres::PgBackend::connect_with(
                url,
                password.as_ref().map(|p| p.as_slice()),
                connector,
            )?;
            custody::adopt_genesis(&config.data_dir, &backend)?;
            Some(backend)
        }
        None => None,
    };
    let joined = match &config.join {
        Some(url) => {
            // An image with its custodian set measured in passes it on
            // every start: then the peer's genesis must name exactly it.
            let expected = if config.custodians.is_empty() {
                None
            } else {
                let threshold = config
                    .custodian_threshold
                    .ok_or_else(|| setup("--custodian needs --custodian-threshold K"))?;
                Some((custody::parse_custodians(&config.custodians)?, threshold))
            };
            let custody = custody_nsm
                .as_ref()
                .ok_or_else(|| setup("--join needs an NSM to attest to its peer (--nsm real)"))?;
            let local = custody::read_genesis(&config.data_dir.join(GENESIS_FILE))?;
            Some(
                join::join(
                    url,
                    local,
                    expected,
                    custody,
                    &config.data_dir,
                    clock.as_ref(),
                    &rng,
                )
                .await?,
            )
        }
        None => None,
    };
    let planned = match joined {
        Some(obtained) => custody::Plan::Ready(obtained),
        None => custody::plan(&config, custody_nsm.as_ref(), clock.as_ref(), &rng)?,
    };
    let obtained = match planned {
        custody::Plan::Ready(obtained) => obtained,
        custody::Plan::Sealed(record) => {
            let nsm = custody_nsm.as_ref().map(|c| c.nsm.clone()).ok_or_else(|| {
                setup("a sealed verifier needs an NSM to attest to its custodians (--nsm real)")
            })?;
            let unsealed = custody::serve_sealed(&config, record, nsm, &rng).await?;
            config.listen = unsealed.public_addr;
            config.admin_listen = unsealed.admin_addr;
            let custody = crate::log::CustodyRecord {
                genesis_sha256: hex::encode(hermetic_custody::record_digest(&unsealed.record)),
                threshold: unsealed.record.threshold(),
                custodians: unsealed.custodians,
                ..Default::default()
            };
            custody::Obtained {
                key: unsealed.key,
                record: unsealed.record,
                event: crate::log::ACTION_UNSEALED,
                custody,
                not_hermetic: false,
            }
        }
    };
    if let Some(db) = &shared_db {
        custody::share_genesis(db, &obtained.record)?;
    }
    if obtained.event == crate::log::ACTION_GENESIS {
        // The record is public: the custodians keep it.
        println!("{}", obtained.record.to_json());
    }
    if obtained.not_hermetic {
        tracing::warn!(event = "not_hermetic", custodian = "development", path = %config.data_dir.join(custody::DEV_CUSTODIAN_FILE).display(), note = "NOT HERMETIC: the only custodian's private key lies in the data directory, so whoever reads it can unseal the master key; for local development only. Production: serve --custodian PUBKEY... --custodian-threshold K");
    }
    if let Some(wanted) = &config.deployment {
        if wanted != obtained.record.deployment() {
            return Err(ServeError::Store(
                crate::store::StoreError::DeploymentMismatch {
                    stored: obtained.record.deployment().to_owned(),
                    given: wanted.clone(),
                },
            ));
        }
    }
    let key = MasterKey::from_bytes(*obtained.key.expose_secret());
    // The key stays in memory for replicas that join this one.
    let forwarding = match &custody_nsm {
        Some(custody) => Some(Arc::new(join::Forwarding::new(
            obtained.record.clone(),
            obtained.key,
            custody,
            config.challenge_ttl,
        )?)),
        None => None,
    };
    let mut shared_nonces: Option<Arc<dyn crate::challenge::SharedNonces>> = None;
    let mut store = match &shared_db {
        None => Store::open(&config.data_dir, &key, Some(obtained.record.deployment()))?,
        Some(backend) => {
            shared_nonces = Some(Arc::new(backend.clone()));
            Store::open_backend(
                Box::new(backend.clone()),
                &key,
                Some(obtained.record.deployment()),
            )?
        }
    };
    // The log key is derived from the master key, kept only in memory; its
    // public half is written for `log key` (auditors and enclaves pin it).
    let log_signer = log_signer(&key, store.deployment())?;
    write_public(
        &config.data_dir.join(crate::log::LOG_KEY_PUB_FILE),
        log_signer.verifier_key().to_string().as_bytes(),
    )?;
    // With PostgreSQL the log is the database's too: one tree, one order,
    // for every replica; the data directory keeps nothing of it.
    let log = Arc::new(match shared_db {
        Some(db) => SharedLog::new(
            Box::new(crate::log::postgres::PgLogStore::open(db)?),
            log_signer,
        )?,
        None => SharedLog::open(&config.data_dir, log_signer)?,
    });
    // Derived too (not the store's old random seed), so replicas sharing
    // the master key advertise the same intake key.
    let intake =
        crate::intake::intake_key(&key, store.deployment()).map_err(|e| setup(e.to_string()))?;
    drop(key);
    if let Some(m) = store.migrated() {
        tracing::warn!(event = "store_migrated", secrets = %m.secrets, values = %m.values, policies = %m.policies, tokens = %m.tokens, note = "a store of the previous version was sealed row by row; its clear rows were writable by the host until now");
    }
    // Before anything is appended or served: a witness that cosigned more
    // than this log holds proves the data directory is an older copy.
    let witnessing = match &config.witnesses {
        Some(w) => {
            let pool =
                hermetic_witness::WitnessPool::new(w.witnesses.clone(), w.threshold, w.timeout)
                    .map_err(|e| setup(format!("--witness: {e}")))?;
            witnesses::check_start(&pool, &log)
                .await
                .map_err(ServeError::Rollback)?;
            Some(witnesses::Witnessing::new(
                pool,
                Arc::clone(&log),
                tokio::runtime::Handle::current(),
            ))
        }
        None => None,
    };
    // A secret whose head is older than the log's last change of it was
    // rolled back (with every row it names): refused from now on.
    let logged = rollback::logged_change_versions(&log).map_err(setup)?;
    for (name, found, expected) in store.expect_versions(logged.floors)? {
        tracing::error!(event = "store_row_refused", name = %name, reason = "row_rolled_back", store_version = %found, log_version = %expected, note = "the store holds an older copy of this secret than the log records; its releases and changes are refused");
    }
    for (name, logged) in logged.unconfirmed {
        match store.change_version(&name) {
            Ok(Some(version)) if version >= logged => {}
            Ok(found) => {
                tracing::warn!(event = "change_unconfirmed", name = %name, store_version = %found.unwrap_or(0), log_version = %logged, note = "the last change logged before a restart is not in the store: the verifier stopped before committing it, or the host put the secret back; its owners should check and re-submit")
            }
            // Refused above, or refused on every read anyway.
            Err(_) => {}
        }
    }
    if let Some(path) = bootstrap_admin_token(&store, &config.data_dir, &rng)? {
        tracing::info!(event = "admin_token_created", path = %path.display());
    }
    let mut identity = None;
    let tls = match (&config.tls_cert, &config.tls_key, &config.attested) {
        (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
            return Err(setup(
                "--nsm makes its own TLS key: give --tls-issuer-cert/--tls-issuer-key to have it issued by a CA, not --tls-cert/--tls-key",
            ))
        }
        (None, None, Some(attested)) => {
            let opened = opened_nsm.ok_or_else(|| setup("the NSM was not opened"))?;
            let opened = (opened, custody_nsm.as_ref().and_then(|c| c.root_pem.clone()));
            let (nsm, tls_identity) =
                attested_identity(attested, opened, intake.public_key_bytes())?;
            identity = Some((nsm, tls_identity.clone()));
            Some(listener::attested_acceptor(tls_identity).map_err(setup)?)
        }
        (Some(cert), Some(key), None) => Some(listener::tls_acceptor(cert, key).map_err(setup)?),
        (None, None, None) => {
            tracing::warn!(event = "not_hermetic", note = "plain HTTP and no attested identity (no --nsm, no --tls-cert): for local development only; clients cannot tell this verifier from any other");
            None
        }
        _ => return Err(setup("--tls-cert and --tls-key go together")),
    };

    // What decides releases from now on, as evidence before any release.
    let mut start = start_record(&verifier, &store)?;
    start.not_hermetic = obtained.not_hermetic;
    let non_aws_root = start.non_aws_root;
    let trusted_roots = start.trusted_roots.join(",");
    let seq = log
        .append(
            Entry {
                action: ACTION_START.into(),
                verdict: "done".into(),
                start: Some(start),
                ..Entry::default()
            },
            clock.now(),
        )?
        .seq;
    let custody_seq = log.append(
        Entry {
            action: obtained.event.into(),
            verdict: "done".into(),
            custody: Some(obtained.custody.clone()),
            ..Entry::default()
        },
        clock.now(),
    )?;
    tracing::info!(event = %obtained.event, genesis_sha256 = %obtained.custody.genesis_sha256, threshold = %obtained.custody.threshold, custodians = %obtained.custody.custodians.join(","), record = %custody_seq.seq);
    if non_aws_root {
        tracing::warn!(event = "non_aws_root", trusted_roots = %trusted_roots, start_record = %seq, note = "documents chaining to a root other than the pinned AWS Nitro root are accepted; never in production");
    }
    tracing::info!(event = "deployment", id = %store.deployment(), log_key = %log.verifier_key());
    let state = Arc::new(AppState {
        store,
        intake,
        log,
        nonces: {
            let book = NonceBook::new(config.challenge_ttl, config.max_nonces)
                .with_per_address(config.max_nonces_per_address);
            match shared_nonces {
                Some(shared) => book.with_shared(shared),
                None => book,
            }
        },
        verifier,
        unlogged: state::Unlogged::new(clock.now()),
        clock,
        rng,
        metrics: Metrics::new(witnessing.is_some()),
        limiter: RateLimiter::new(config.rate_limit_per_sec, config.rate_limit_burst),
        identity: identity.as_ref().map(|(_, id)| id.clone()),
        witnesses: witnessing,
        forwarding,
    });
    let limits = Limits {
        body_bytes: config.body_limit,
        request_timeout: config.request_timeout,
    };
    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|error| ServeError::Bind { addr, error })
    };
    let public = bind(config.listen).await?;
    let admin = bind(config.admin_listen).await?;
    let public_addr = public.local_addr().map_err(|e| setup(e.to_string()))?;
    let admin_addr = admin.local_addr().map_err(|e| setup(e.to_string()))?;
    if !admin_addr.ip().is_loopback() {
        tracing::warn!(event = "admin_not_loopback", addr = %admin_addr, note = "the admin API is plain HTTP; bearer tokens cross the network in the clear");
    }
    let connection_limits = ConnectionLimits {
        total: config.max_connections,
        per_address: config.max_connections_per_address,
    };
    let counter = |state: &Shared| {
        let state = state.clone();
        move |reason| state.metrics.refusal(reason, None)
    };
    let mut tasks = vec![
        tokio::spawn(listener::serve(
            public,
            api::router(state.clone(), limits),
            tls.clone(),
            connection_limits,
            counter(&state),
            state.metrics.open_connections(metrics::Listener::Public),
            std::future::pending(),
        )),
        tokio::spawn(listener::serve(
            admin,
            admin::router(state.clone(), limits),
            None,
            connection_limits,
            counter(&state),
            state.metrics.open_connections(metrics::Listener::Admin),
            std::future::pending(),
        )),
        tokio::spawn(summarize_refusals(
            state.clone(),
            config.refusal_summary_interval,
        )),
    ];
    if let Some((nsm, id)) = identity {
        tasks.push(tokio::spawn(refresh_identity(nsm, id)));
    }
    if let Some(endpoint) = &config.public_endpoint {
        let listener = hermetic_transport::Listener::bind(endpoint)
            .await
            .map_err(|e| setup(format!("--public-endpoint {endpoint}: {e}")))?;
        tracing::info!(event = "serving_endpoint", public = %listener.local_endpoint());
        tasks.push(tokio::spawn(listener::serve_transport(
            listener,
            api::router(state.clone(), limits),
            tls.clone(),
            config.max_connections,
            state.metrics.open_connections(metrics::Listener::Endpoint),
        )));
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(event = "listening", public = %format_args!("{scheme}://{public_addr}"), admin = %format_args!("http://{admin_addr}"));
    Ok(Running {
        public_addr,
        admin_addr,
        state,
        tasks,
    })
}
