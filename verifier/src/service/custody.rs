//! Custody of the master key, at the service's edge: genesis, the sealed
//! state and its unseal routes, the development custodian. The protocol is
//! `hermetic-custody` (pure); this module owns the files, the NSM, the clock
//! and the sockets, following the wiring in that crate's documentation.
//!
//! The master key exists only in memory: made at genesis, combined from K
//! re-sealed shares, or (development) combined from the one development
//! custodian's share through the same re-seal/unseal path.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use hermetic_attestation::{TrustedRoot, UnixTime};
use hermetic_custody::{
    genesis, record_digest, reseal, AttestationPolicy, CustodianKey, CustodianPublicKey,
    GenesisParams, GenesisRecord, MasterKey, PinnedMeasurements, ResealedShare, UnsealPolicy,
    UnsealProgress, Unsealer,
};
use hermetic_envelope::EnclaveKey;
use hermetic_nsm::Nsm;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::rate_limit::RateLimiter;
use super::refusal::{ApiRefusal, Reason};
use super::{setup, ServeConfig, ServeError};
use crate::clock::Clock;
use crate::log::CustodyRecord;
use crate::store::write_private;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The public genesis record, in the data directory.
pub const GENESIS_FILE: &str = "genesis.json";
/// The development custodian's private key (mode 0600), written only by a
/// `test-roots` build started with no custodians: NOT hermetic.
pub const DEV_CUSTODIAN_FILE: &str = "dev-custodian.key";

/// How the key was obtained, for the log and the start record.
pub(super) struct Obtained {
    pub key: MasterKey,
    pub record: GenesisRecord,
    pub event: &'static str,
    pub custody: CustodyRecord,
    pub not_hermetic: bool,
}

fn record_of(record: &GenesisRecord, custodians: Vec<String>) -> CustodyRecord {
    CustodyRecord {
        genesis_sha256: hex::encode(record_digest(record)),
        threshold: record.threshold(),
        custodians,
        ..Default::default()
    }
}

pub(super) fn read_genesis(path: &Path) -> Result<Option<GenesisRecord>, ServeError> {
    match std::fs::read(path) {
        Ok(bytes) => GenesisRecord::from_json(&bytes)
            .map(Some)
            .map_err(|e| setup(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(setup(format!("{}: {e}", path.display()))),
    }
}

/// Takes the database's genesis record into an empty data directory
/// (`genesis.json`, public); refuses a data directory whose record is not
/// the database's (it belongs to another deployment).
pub(super) fn adopt_genesis(
    data_dir: &Path,
    db: &crate::store::postgres::PgBackend,
) -> Result<(), ServeError> {
    let Some(text) = db.genesis()? else {
        return Ok(());
    };
    let record = GenesisRecord::from_json(text.as_bytes())
        .map_err(|e| setup(format!("the database's genesis record: {e}")))?;
    let path = data_dir.join(GENESIS_FILE);
    match read_genesis(&path)? {
        None => {
            write_private(&path, record.to_json().as_bytes())?;
            tracing::info!(event = "genesis_from_database", genesis_sha256 = %hex::encode(record_digest(&record)), deployment = %record.deployment());
            Ok(())
        }
        Some(local) if record_digest(&local) == record_digest(&record) => Ok(()),
        Some(local) => Err(setup(format!(
            "{} is the genesis of deployment {}, but the database holds the genesis of {}: this data directory belongs to another deployment",
            path.display(),
            local.deployment(),
            record.deployment()
        ))),
    }
}

/// Stores this replica's genesis record in the database when it is the
/// first; refuses to go on when another replica's genesis got there first
/// (two geneses raced: only one deployment may own the database).
pub(super) fn share_genesis(
    db: &crate::store::postgres::PgBackend,
    record: &GenesisRecord,
) -> Result<(), ServeError> {
    let stored = db.store_genesis(record.deployment(), &record.to_json())?;
    let stored = GenesisRecord::from_json(stored.as_bytes())
        .map_err(|e| setup(format!("the database's genesis record: {e}")))?;
    if record_digest(&stored) != record_digest(record) {
        return Err(setup(format!(
            "the database holds the genesis of deployment {}, not this replica's ({}): another genesis got there first",
            stored.deployment(),
            record.deployment()
        )));
    }
    Ok(())
}

/// A new deployment id, as the store would make one.
fn new_deployment(rng: &dyn SecureRandom) -> Result<String, ServeError> {
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes)
        .map_err(|_| setup("the random number generator failed"))?;
    Ok(format!("hermetic-{}", hex::encode(bytes)))
}

/// Genesis: a new key split among `custodians`; the record is stored (and
/// printed by the caller); the key stays in memory.
fn run_genesis(
    config: &ServeConfig,
    custodians: Vec<CustodianPublicKey>,
    threshold: u8,
    allow_single_custodian: bool,
    rng: &dyn SecureRandom,
) -> Result<(MasterKey, GenesisRecord), ServeError> {
    let deployment = match &config.deployment {
        Some(d) => d.clone(),
        None => new_deployment(rng)?,
    };
    let (key, record) = genesis(
        &GenesisParams {
            deployment,
            custodians,
            threshold,
            allow_single_custodian,
        },
        rng,
    )
    .map_err(|e| setup(format!("genesis: {e}")))?;
    let path = config.data_dir.join(GENESIS_FILE);
    write_private(&path, record.to_json().as_bytes())?;
    Ok((key, record))
}

/// `--custodian` values: a public key, or a file holding one.
pub(super) fn parse_custodians(given: &[String]) -> Result<Vec<CustodianPublicKey>, ServeError> {
    given
        .iter()
        .map(|c| {
            let text = match std::fs::read_to_string(c) {
                Ok(text) => text,
                Err(_) => c.clone(),
            };
            CustodianPublicKey::parse(text.trim())
                .map_err(|e| setup(format!("--custodian {c}: {e}")))
        })
        .collect()
}

/// What `serve` does about the key, decided from the flags and the files.
pub(super) enum Plan {
    /// A key is in hand (genesis, or the development custodian).
    Ready(Obtained),
    /// A genesis record and no key: wait for K custodians.
    Sealed(GenesisRecord),
}

pub(super) fn plan(
    config: &ServeConfig,
    nsm: Option<&SimulatedCustody>,
    clock: &dyn Clock,
    rng: &SystemRandom,
) -> Result<Plan, ServeError> {
    let path = config.data_dir.join(GENESIS_FILE);
    let existing = read_genesis(&path)?;
    let dev_key_path = config.data_dir.join(DEV_CUSTODIAN_FILE);
    match (existing, config.custodians.is_empty()) {
        (Some(_), false) => Err(setup(format!(
            "{} exists: genesis happened already; --custodian is only for a fresh data directory",
            path.display()
        ))),
        (None, false) => {
            let threshold = config
                .custodian_threshold
                .ok_or_else(|| setup("--custodian needs --custodian-threshold K"))?;
            let keys = parse_custodians(&config.custodians)?;
            if threshold < 2 {
                return Err(setup(
                    "--custodian-threshold must be at least 2: one custodian alone could unseal (development only, with no --custodian at all)",
                ));
            }
            let (key, record) = run_genesis(config, keys, threshold, false, rng)?;
            let custody = record_of(
                &record,
                record
                    .shares()
                    .iter()
                    .map(|s| s.custodian.fingerprint())
                    .collect(),
            );
            Ok(Plan::Ready(Obtained {
                key,
                record,
                event: crate::log::ACTION_GENESIS,
                custody,
                not_hermetic: false,
            }))
        }
        (existing, true) => {
            let dev = if dev_key_path.exists() || existing.is_none() {
                Some(dev_custodian(&dev_key_path, existing.is_none(), rng)?)
            } else {
                None
            };
            match (existing, dev) {
                (Some(record), None) => Ok(Plan::Sealed(record)),
                (existing, Some(dev)) => {
                    let sim = nsm.ok_or_else(|| {
                        setup("the development custodian needs the simulated NSM (a `test-roots` build); a production build starts with --custodian PUBKEY... --custodian-threshold K")
                    })?;
                    let (key, record, event) = match existing {
                        // A restart: the development custodian checks the
                        // attestation and re-seals its share, exactly as
                        // `custodian unseal` does (and refuses a debug-mode
                        // or unpinned verifier the same way).
                        Some(record) => (
                            unseal_with(&dev, &record, sim, clock, rng)?,
                            record,
                            crate::log::ACTION_UNSEALED,
                        ),
                        // Genesis with K = 1: the key is in hand, as at
                        // any genesis.
                        None => {
                            let (key, record) =
                                run_genesis(config, vec![dev.public_key().clone()], 1, true, rng)?;
                            (key, record, crate::log::ACTION_GENESIS)
                        }
                    };
                    let custody = record_of(&record, vec![dev.public_key().fingerprint()]);
                    Ok(Plan::Ready(Obtained {
                        key,
                        record,
                        event,
                        custody,
                        not_hermetic: true,
                    }))
                }
                (None, None) => unreachable_plan(),
            }
        }
    }
}

fn unreachable_plan() -> Result<Plan, ServeError> {
    Err(setup("no genesis record and no custodian"))
}

/// Reads, or creates (only when `create`), the development custodian key.
fn dev_custodian(
    path: &Path,
    create: bool,
    rng: &dyn SecureRandom,
) -> Result<CustodianKey, ServeError> {
    if !super::TEST_ROOTS_ENABLED {
        return Err(setup(
            "this production build has no development custodian: start with --custodian PUBKEY... --custodian-threshold K (K at least 2)",
        ));
    }
    if path.exists() {
        let text = hermetic_envelope::Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| setup(format!("{}: {e}", path.display())))?,
        );
        return CustodianKey::parse(&text).map_err(|e| setup(format!("{}: {e}", path.display())));
    }
    if !create {
        return Err(setup("no development custodian key"));
    }
    let key = CustodianKey::generate(rng).map_err(|e| setup(e.to_string()))?;
    write_private(path, key.to_file_text().as_bytes())?;
    Ok(key)
}

/// The simulated NSM custody uses without `--nsm` (a `test-roots` build),
/// with the root custodians trust.
pub(super) struct SimulatedCustody {
    pub nsm: Arc<dyn Nsm>,
    pub root_pem: Option<PathBuf>,
}

/// The development custodian's ceremony, in-process: it pins the measurements
/// the NSM reports, trusts the simulated root, and re-seals its share to the
/// attested key exactly as `custodian unseal` does.
fn unseal_with(
    custodian: &CustodianKey,
    record: &GenesisRecord,
    sim: &SimulatedCustody,
    clock: &dyn Clock,
    rng: &SystemRandom,
) -> Result<MasterKey, ServeError> {
    let enclave_key = EnclaveKey::generate(rng).map_err(|e| setup(e.to_string()))?;
    let mut unsealer = Unsealer::new(record.clone(), enclave_key);
    let mut nonce = [0u8; 32];
    rng.fill(&mut nonce)
        .map_err(|_| setup("the random number generator failed"))?;
    let document = attest(&unsealer, &nonce, sim.nsm.as_ref())?;
    unsealer
        .attested(&document)
        .map_err(|e| setup(e.to_string()))?;
    let mut pcrs = hermetic_policy::Pcrs::new();
    for index in hermetic_custody::IMAGE_PCRS {
        let state = sim
            .nsm
            .describe_pcr(u16::from(index))
            .map_err(|e| setup(format!("NSM: {e}")))?;
        let value = state.data;
        pcrs.insert(index, value);
    }
    let root_path = sim
        .root_pem
        .as_ref()
        .ok_or_else(|| setup("the simulated NSM has no root"))?;
    let root_pem =
        std::fs::read(root_path).map_err(|e| setup(format!("{}: {e}", root_path.display())))?;
    let root = TrustedRoot::from_pem(&root_pem).map_err(|e| setup(e.to_string()))?;
    let policy = UnsealPolicy {
        measurements: PinnedMeasurements::new(pcrs).map_err(|e| setup(e.to_string()))?,
        attestation: AttestationPolicy::new(vec![root], std::time::Duration::from_secs(300)),
    };
    let now = UnixTime::since_unix_epoch(clock.now());
    let share = reseal(custodian, record, &document, &nonce, &policy, now, rng)
        .map_err(|e| setup(format!("development unseal: {e}")))?;
    match unsealer.submit(&share) {
        Ok(UnsealProgress::Unsealed(key)) => Ok(key),
        Ok(UnsealProgress::Sealed { .. }) => Err(setup("one share did not unseal")),
        Err(e) => Err(setup(format!("development unseal: {e}"))),
    }
}

fn attest(unsealer: &Unsealer, nonce: &[u8], nsm: &dyn Nsm) -> Result<Vec<u8>, ServeError> {
    let request = unsealer
        .attestation_request(nonce)
        .map_err(|e| setup(e.to_string()))?;
    nsm.attestation(&hermetic_nsm::AttestationRequest {
        user_data: Some(request.user_data),
        nonce: Some(request.nonce),
        public_key: request.public_key.map(|k| k.to_vec()),
    })
    .map_err(|e| setup(format!("NSM: {e}")))
}

// ---------------------------------------------------------------- sealed

/// Where the combined key goes when the K-th share arrives.
type UnsealedTx = oneshot::Sender<(MasterKey, Vec<String>)>;

struct SealedState {
    unsealer: Mutex<Unsealer>,
    nsm: Arc<dyn Nsm>,
    limiter: RateLimiter,
    done: Mutex<Option<UnsealedTx>>,
    /// Fingerprints of the custodians whose shares were accepted.
    accepted: Mutex<Vec<String>>,
}

fn refusal(status: StatusCode, reason: Reason, message: impl std::fmt::Display) -> Response {
    ApiRefusal::new(status, reason, message.to_string()).into_response()
}

fn custody_refusal(e: &hermetic_custody::Error) -> Response {
    use hermetic_custody::Error as E;
    let status = match e {
        E::AlreadyUnsealed => StatusCode::CONFLICT,
        E::ChallengeCapacity => StatusCode::TOO_MANY_REQUESTS,
        E::BadMessage(_) | E::BadGenesisRecord(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::FORBIDDEN,
    };
    refusal(status, Reason::from(e), e)
}

fn sealed_refusal() -> Response {
    refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        Reason::Sealed,
        "this verifier is sealed: it has no master key until K custodians unseal it (hermetic-verifier custodian unseal)",
    )
}

fn limited(state: &SealedState, addr: SocketAddr) -> Option<Response> {
    (!state.limiter.allow(addr.ip())).then(|| {
        refusal(
            StatusCode::TOO_MANY_REQUESTS,
            Reason::RateLimited,
            "too many requests from this address",
        )
    })
}

/// The sealed verifier's public routes (method, path): until K custodians
/// unsealed it, the only ones that answer besides 503 `sealed`.
pub const SEALED_ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/v1/custody/genesis"),
    ("POST", "/v1/custody/unseal/attest"),
    ("POST", "/v1/custody/unseal/share"),
    ("GET", super::openapi::OPENAPI_ROUTE),
];

/// The sealed public routes and their description.
fn sealed_routes() -> OpenApiRouter<Arc<SealedState>> {
    OpenApiRouter::new()
        .routes(routes!(sealed_health))
        .routes(routes!(sealed_metrics))
        .routes(routes!(sealed_genesis))
        .routes(routes!(unseal_attest))
        .routes(routes!(unseal_share))
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "custody",
    responses((status = 200, description = "`{\"state\": \"sealed\", \"have\": H, \"need\": K}`: shares accepted so far and needed", body = super::openapi::JsonObject))
)]
async fn sealed_health(State(state): State<Arc<SealedState>>) -> Response {
    let (have, need) = state
        .unsealer
        .lock()
        .map(|u| u.progress())
        .unwrap_or((0, 0));
    Json(serde_json::json!({"state": "sealed", "have": have, "need": need})).into_response()
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "meta",
    responses((status = 200, description = "OpenMetrics text: `hermetic_sealed 1` and `hermetic_unseal_shares{state=\"have\"|\"need\"}`", content_type = "application/openmetrics-text", body = String))
)]
/// `GET /metrics` while sealed: `hermetic_sealed 1` and the shares.
async fn sealed_metrics(State(state): State<Arc<SealedState>>) -> Response {
    let (have, need) = state
        .unsealer
        .lock()
        .map(|u| u.progress())
        .unwrap_or((0, 0));
    (
        [(
            axum::http::header::CONTENT_TYPE,
            super::metrics::CONTENT_TYPE,
        )],
        super::metrics::render_sealed(have, need),
    )
        .into_response()
}

#[utoipa::path(
    get,
    path = "/v1/custody/genesis",
    tag = "custody",
    responses((status = 200, description = "The genesis record (public: the custodians keep it)", body = super::openapi::JsonObject))
)]
async fn sealed_genesis(State(state): State<Arc<SealedState>>) -> Response {
    match state.unsealer.lock() {
        Ok(u) => Json(u.record().clone()).into_response(),
        Err(_) => refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            Reason::InternalError,
            "poisoned",
        ),
    }
}

/// What every sealed POST route checks first: the caller's rate limit,
/// then its body (one over the limit is a refusal like any other, not
/// axum's plain text).
fn admitted(
    state: &SealedState,
    addr: SocketAddr,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<axum::body::Bytes, Box<Response>> {
    if let Some(r) = limited(state, addr) {
        return Err(Box::new(r));
    }
    body.map_err(|rejection| Box::new(super::refusal::body_refusal(rejection).into_response()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NonceBody {
    nonce: String,
}

#[utoipa::path(
    post,
    path = "/v1/custody/unseal/attest",
    tag = "custody",
    request_body(content = super::openapi::JoinHello, description = "The custodian's nonce, lower-case hex"),
    responses(
        (status = 200, description = "`{\"genesis\", \"attestation_document\", \"have\", \"need\"}`: this enclave's document for the nonce, bound to the genesis record and carrying the key to re-seal a share to", body = super::openapi::JsonObject),
        (status = 400, description = "`bad_request`: not `{\"nonce\": HEX}`, or a custody reason", body = super::openapi::RefusalBody),
        (status = 403, description = "A custody reason", body = super::openapi::RefusalBody),
        (status = 409, description = "`already_unsealed`", body = super::openapi::RefusalBody),
        (status = 429, description = "`rate_limited` or `challenge_capacity`", body = super::openapi::RefusalBody),
        (status = 503, description = "`nsm_unavailable`", body = super::openapi::RefusalBody),
    )
)]
async fn unseal_attest(
    State(state): State<Arc<SealedState>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match admitted(&state, addr, body) {
        Ok(body) => body,
        Err(refused) => return *refused,
    };
    let Ok(NonceBody { nonce }) = serde_json::from_slice::<NonceBody>(&body) else {
        return refusal(
            StatusCode::BAD_REQUEST,
            Reason::BadRequest,
            "expected {\"nonce\": HEX}",
        );
    };
    let Ok(nonce) = hex::decode(nonce) else {
        return refusal(
            StatusCode::BAD_REQUEST,
            Reason::BadRequest,
            "nonce is not hex",
        );
    };
    let state2 = state.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut unsealer = state2.unsealer.lock().map_err(|_| None)?;
        let request = unsealer
            .attestation_request(&nonce)
            .map_err(|e| Some(Box::new(custody_refusal(&e))))?;
        let document = state2
            .nsm
            .attestation(&hermetic_nsm::AttestationRequest {
                user_data: Some(request.user_data),
                nonce: Some(request.nonce),
                public_key: request.public_key.map(|k| k.to_vec()),
            })
            .map_err(|e| {
                tracing::error!(event = "nsm_failed", error = %e);
                None
            })?;
        unsealer
            .attested(&document)
            .map_err(|e| Some(Box::new(custody_refusal(&e))))?;
        let (have, need) = unsealer.progress();
        Ok::<_, Option<Box<Response>>>(serde_json::json!({
            "genesis": unsealer.record(),
            "attestation_document": base64::engine::general_purpose::STANDARD.encode(&document),
            "have": have,
            "need": need,
        }))
    })
    .await;
    match outcome {
        Ok(Ok(body)) => Json(body).into_response(),
        Ok(Err(Some(r))) => *r,
        _ => refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            Reason::NsmUnavailable,
            "no attestation document",
        ),
    }
}

#[utoipa::path(
    post,
    path = "/v1/custody/unseal/share",
    tag = "custody",
    request_body(content = super::openapi::JsonObject, description = "A custodian's share re-sealed to this enclave's attested key (`hermetic-verifier custodian unseal` sends it)"),
    responses(
        (status = 200, description = "`{\"state\": \"sealed\", \"have\", \"need\"}`, or `{\"state\": \"unsealed\"}` with the K-th share", body = super::openapi::JsonObject),
        (status = 400, description = "`bad_request`: not a re-sealed share, or a custody reason", body = super::openapi::RefusalBody),
        (status = 403, description = "A custody reason (`not_a_custodian`, `unknown_document`, `resealed_share_open_failed`, `share_check_failed`, `commitment_mismatch`, ...)", body = super::openapi::RefusalBody),
        (status = 409, description = "`already_unsealed`", body = super::openapi::RefusalBody),
        (status = 429, description = "`rate_limited`", body = super::openapi::RefusalBody),
    )
)]
async fn unseal_share(
    State(state): State<Arc<SealedState>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match admitted(&state, addr, body) {
        Ok(body) => body,
        Err(refused) => return *refused,
    };
    let Ok(share) = serde_json::from_slice::<ResealedShare>(&body) else {
        return refusal(
            StatusCode::BAD_REQUEST,
            Reason::BadRequest,
            "expected a re-sealed share",
        );
    };
    let state2 = state.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut unsealer = state2.unsealer.lock().map_err(|_| None)?;
        let fingerprint = unsealer
            .record()
            .shares()
            .iter()
            .find(|s| s.index == share.index)
            .map(|s| s.custodian.fingerprint());
        let progress = unsealer
            .submit(&share)
            .map_err(|e| Some(Box::new(custody_refusal(&e))))?;
        let mut accepted = state2.accepted.lock().map_err(|_| None)?;
        if let Some(f) = fingerprint {
            if !accepted.contains(&f) {
                accepted.push(f);
            }
        }
        Ok::<_, Option<Box<Response>>>(match progress {
            UnsealProgress::Sealed { have, need } => {
                tracing::info!(event = "share_accepted", have = %have, need = %need);
                serde_json::json!({"state": "sealed", "have": have, "need": need})
            }
            UnsealProgress::Unsealed(key) => {
                if let Some(tx) = state2.done.lock().ok().and_then(|mut d| d.take()) {
                    let _ = tx.send((key, accepted.clone()));
                }
                serde_json::json!({"state": "unsealed"})
            }
        })
    })
    .await;
    match outcome {
        Ok(Ok(body)) => Json(body).into_response(),
        Ok(Err(Some(r))) => *r,
        _ => refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            Reason::InternalError,
            "unseal failed",
        ),
    }
}

async fn sealed_fallback() -> Response {
    sealed_refusal()
}

/// Accepts on the `--public-endpoint` listener until `stop`; then closes
/// it and gives open connections two seconds, so the one that delivered
/// the K-th share still gets its answer. All its
/// clients come through the parent: one address (`0.0.0.0:0`), one
/// rate-limit bucket. At most `max_connections` are open at once (the
/// TCP listener's `--max-connections`); one over it is closed at once,
/// before any HTTP work, so idle connections cannot pile up without bound.
async fn serve_endpoint_until(
    listener: hermetic_transport::Listener,
    router: Router,
    max_connections: usize,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let peer = SocketAddr::from(([0, 0, 0, 0], 0));
    let permits = Arc::new(tokio::sync::Semaphore::new(max_connections.max(1)));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let stream = tokio::select! {
            _ = async { stop.wait_for(|s| *s).await.is_ok() } => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(event = "accept_failed", error = %e);
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(
                event = "refused",
                reason = "too_many_connections",
                listener = "endpoint",
                state = "sealed"
            );
            drop(stream);
            continue;
        };
        let router = router.clone();
        connections.spawn(async move {
            let _permit = permit;
            super::listener::serve_connection(hyper_util::rt::TokioIo::new(stream), peer, router)
                .await
        });
    }
    drop(listener);
    // Answers in flight finish; a kept-alive connection that would go on
    // talking to the sealed routes is closed after a grace period.
    let drain = async { while connections.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(super::listener::DRAIN, drain).await;
    connections.abort_all();
}

/// The outcome of the sealed state.
pub(super) struct Unsealed {
    pub key: MasterKey,
    pub record: GenesisRecord,
    pub custodians: Vec<String>,
    pub public_addr: SocketAddr,
    pub admin_addr: SocketAddr,
}

/// Serves the sealed state on both listeners until K custodians unsealed
/// it; returns the key and the custodians' fingerprints. The listeners are
/// closed before this returns, so the full service can bind the same
/// addresses.
pub(super) async fn serve_sealed(
    config: &ServeConfig,
    record: GenesisRecord,
    nsm: Arc<dyn Nsm>,
    rng: &SystemRandom,
) -> Result<Unsealed, ServeError> {
    let enclave_key = EnclaveKey::generate(rng).map_err(|e| setup(e.to_string()))?;
    let (tx, rx) = oneshot::channel();
    let (have, need) = (0, record.threshold());
    let state = Arc::new(SealedState {
        unsealer: Mutex::new(Unsealer::new(record.clone(), enclave_key)),
        nsm,
        limiter: RateLimiter::new(config.rate_limit_per_sec, config.rate_limit_burst),
        done: Mutex::new(Some(tx)),
        accepted: Mutex::new(Vec::new()),
    });
    let (public_router, doc) = sealed_routes().split_for_parts();
    let document = super::openapi::to_json(&super::openapi::finish(
        doc,
        super::openapi::Listener::Sealed,
    ));
    let public_router = public_router
        .route(
            super::openapi::OPENAPI_ROUTE,
            get(move || super::api::serve_openapi(document)),
        )
        .fallback(sealed_fallback)
        .with_state(state.clone())
        .layer(axum::extract::DefaultBodyLimit::max(config.body_limit))
        .layer(axum::middleware::from_fn(super::request_id::layer));
    let admin_router = Router::new()
        .route("/healthz", get(sealed_health))
        .fallback(sealed_fallback)
        .with_state(state.clone())
        .layer(axum::middleware::from_fn(super::request_id::layer));
    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|error| ServeError::Bind { addr, error })
    };
    let public = bind(config.listen).await?;
    let admin = bind(config.admin_listen).await?;
    let public_addr = public.local_addr().map_err(|e| setup(e.to_string()))?;
    let admin_addr = admin.local_addr().map_err(|e| setup(e.to_string()))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // The running service's accept loop, with its bounds (in all and per
    // client address) and timeouts: an anonymous client of the sealed
    // verifier can neither hold every connection nor, with a request head
    // it never finishes, keep the listeners from closing once unsealed.
    let limits = super::listener::ConnectionLimits {
        total: config.max_connections,
        per_address: config.max_connections_per_address,
    };
    let serve = |listener: TcpListener, router: Router, name: &'static str| {
        let mut stop = stop_rx.clone();
        tokio::spawn(super::listener::serve(
            listener,
            router,
            None,
            limits,
            move |reason| {
                tracing::warn!(event = "refused", reason, listener = name, state = "sealed");
            },
            super::metrics::OpenGauge::default(),
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        ))
    };
    // A verifier enclave is reached only through its vsock endpoint (its
    // TCP listener is not reachable from outside the enclave): custodians
    // and joining replicas must find the sealed routes there too.
    let endpoint = match &config.public_endpoint {
        Some(endpoint) => {
            let listener = hermetic_transport::Listener::bind(endpoint)
                .await
                .map_err(|e| setup(format!("--public-endpoint {endpoint}: {e}")))?;
            tracing::info!(
                event = "serving_endpoint",
                public = %listener.local_endpoint(),
                state = "sealed"
            );
            Some(tokio::spawn(serve_endpoint_until(
                listener,
                public_router.clone(),
                config.max_connections,
                stop_rx.clone(),
            )))
        }
        None => None,
    };
    let tasks = [
        serve(public, public_router, "public"),
        serve(admin, admin_router, "admin"),
    ];
    tracing::warn!(event = "sealed", genesis_sha256 = %hex::encode(record_digest(&record)), have = %have, need = %need, note = %format_args!("no master key: releases and changes answer 503 sealed until {need} custodians run `hermetic-verifier custodian unseal`"));
    tracing::info!(event = "listening", public = %format_args!("http://{public_addr}"), admin = %format_args!("http://{admin_addr}"), state = "sealed");
    let (key, custodians) = rx.await.map_err(|_| setup("the sealed service stopped"))?;
    let _ = stop_tx.send(true);
    for task in tasks {
        let _ = task.await;
    }
    // The accept loop has ended and dropped its listener, freeing the
    // endpoint (a Unix socket's path too) for the full service; the
    // connection that carried the last share finishes its answer.
    if let Some(task) = endpoint {
        let _ = task.await;
    }
    Ok(Unsealed {
        key,
        record,
        custodians,
        public_addr,
        admin_addr,
    })
}
