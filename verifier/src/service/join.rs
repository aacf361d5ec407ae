//! Key forwarding between replicas (`serve --join URL`), at the service's
//! edge: `hermetic-custody`'s [`Joiner`] and [`Responder`] (pure) with the
//! NSM, the clock, HTTP and the audit log around them.
//!
//! ```text
//! joining replica (serve --join URL)         running replica (unsealed)
//! POST URL/v1/custody/join/offer {nonce}  ->  document(nonce, user_data = H(genesis))
//!   check it: trusted root, not debug,    <-  {challenge, genesis, attestation_document}
//!   our own PCR0/1/2/8, fresh, our nonce
//! POST URL/v1/custody/join/key            ->  check it the same way, the challenge
//!   {challenge, attestation_document}         single use; log key_forwarded
//!   (nonce = challenge, public_key = K_j,
//!    user_data = H(peer's document))
//! open the key, check the genesis         <-  HPKE(K_j, master key, bound to both
//!   commitment; log key_forwarded             documents' SHA-256)
//! ```
//! Each side pins the other to its own measurements: there is nothing to
//! configure, and a replica of another image (or a debug-mode one, whose
//! PCR0-2 read zero) can neither receive the key nor hand out a key of its
//! own. What an anonymous client can get from these routes is public: the
//! genesis record, a signed document and a challenge; the key only ever
//! travels sealed to the key inside a checked document.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use hermetic_attestation::{TrustedRoot, UnixTime};
use hermetic_custody::{
    record_digest, AttestationPolicy, CustodianPublicKey, ForwardedKey, GenesisRecord, JoinHello,
    JoinOffer, JoinRequest, Joiner, MasterKey, Responder, IMAGE_PCRS,
};
use hermetic_nsm::Nsm;
use hermetic_policy::Pcrs;
use serde::de::DeserializeOwned;

use super::custody::{Obtained, SimulatedCustody, GENESIS_FILE};
use super::refusal::{body_refusal, ApiRefusal, Reason};
use super::state::Shared;
use super::{setup, ServeError};
use crate::client::{parse_answer, ClientError, HttpClient};
use crate::clock::Clock;
use crate::log::{CustodyRecord, Entry, ACTION_KEY_FORWARDED};
use crate::store::write_private;

/// The joiner's first request: its nonce; the answer is the peer's offer.
pub const JOIN_OFFER_ROUTE: &str = "/v1/custody/join/offer";
/// The joiner's document; the answer is the master key sealed to it.
pub const JOIN_KEY_ROUTE: &str = "/v1/custody/join/key";
/// How old a peer's document may be when checked (both sides make theirs
/// for this exchange, a round trip earlier).
pub const MAX_DOCUMENT_AGE: Duration = Duration::from_secs(120);
/// Challenges a running replica keeps outstanding at once.
pub const MAX_OUTSTANDING_JOINS: usize = 64;
/// Challenges one client address ([`address_key`](super::address_key))
/// may hold at once: a quarter of [`MAX_OUTSTANDING_JOINS`], so that one
/// anonymous address cannot hold them all for the challenge TTL. Both caps
/// are checked before the NSM is asked for a document (and after the
/// per-address rate limit, which runs first on every public route).
pub const MAX_OUTSTANDING_JOINS_PER_ADDRESS: usize = MAX_OUTSTANDING_JOINS / 4;

/// Why a join was refused, by either side: a stable reason code each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinRefusal {
    /// The peer's image PCRs (0, 1, 2, 8) are not ours.
    MeasurementsMismatch,
    /// The peer runs in debug mode.
    DebugMode,
    /// The peer's document is too old, from the future, or its challenge
    /// expired.
    Stale,
    /// The document does not carry the nonce just issued, or answers a
    /// challenge that is unknown or used up (a replayed request).
    Replayed,
    /// The peer's document chains to a root this replica does not trust.
    UntrustedRoot,
    /// The peer's document does not verify (signature, chain, encoding).
    AttestationInvalid,
    /// A document does not bind the other's (user data), or carries no
    /// usable key.
    BindingMismatch,
    /// The peer serves another genesis record than ours.
    GenesisMismatch,
    /// The forwarded key did not open or does not match the genesis
    /// commitment.
    KeyRejected,
    /// Too many joins outstanding.
    Capacity,
    /// The request is not a join message.
    Malformed,
}

impl JoinRefusal {
    /// The reason code on the wire and in the logs.
    pub fn reason(self) -> &'static str {
        match self {
            JoinRefusal::MeasurementsMismatch => "join_measurements_mismatch",
            JoinRefusal::DebugMode => "join_debug_mode",
            JoinRefusal::Stale => "join_stale",
            JoinRefusal::Replayed => "join_replayed",
            JoinRefusal::UntrustedRoot => "join_untrusted_root",
            JoinRefusal::AttestationInvalid => "join_attestation_invalid",
            JoinRefusal::BindingMismatch => "join_binding_mismatch",
            JoinRefusal::GenesisMismatch => "join_genesis_mismatch",
            JoinRefusal::KeyRejected => "join_key_rejected",
            JoinRefusal::Capacity => "challenge_capacity",
            JoinRefusal::Malformed => "bad_request",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            JoinRefusal::Capacity => StatusCode::TOO_MANY_REQUESTS,
            JoinRefusal::Malformed => StatusCode::BAD_REQUEST,
            _ => StatusCode::FORBIDDEN,
        }
    }

    /// Classifies custody's error.
    pub fn of(error: &hermetic_custody::Error) -> JoinRefusal {
        use hermetic_custody::Error as E;
        match error {
            E::PcrMismatch { .. } | E::MeasurementsDoNotPinImage => {
                JoinRefusal::MeasurementsMismatch
            }
            E::DebugEnclave => JoinRefusal::DebugMode,
            E::DocumentTooOld { .. } | E::DocumentFromFuture | E::ChallengeExpired => {
                JoinRefusal::Stale
            }
            E::NonceMissing | E::NonceMismatch | E::ChallengeUnknown => JoinRefusal::Replayed,
            E::Attestation(hermetic_attestation::Error::UntrustedRoot { .. }) => {
                JoinRefusal::UntrustedRoot
            }
            E::Attestation(_) => JoinRefusal::AttestationInvalid,
            E::WrongGenesis => JoinRefusal::GenesisMismatch,
            E::ForwardOpenFailed | E::CommitmentMismatch => JoinRefusal::KeyRejected,
            E::ChallengeCapacity => JoinRefusal::Capacity,
            E::BadMessage(_) | E::BadGenesisRecord(_) => JoinRefusal::Malformed,
            _ => JoinRefusal::BindingMismatch,
        }
    }
}

fn refused(error: &hermetic_custody::Error) -> ApiRefusal {
    let r = JoinRefusal::of(error);
    ApiRefusal::new(r.status(), Reason::of(r.reason()), error.to_string())
}

fn join_error(error: &hermetic_custody::Error) -> ServeError {
    ServeError::JoinRefused {
        reason: JoinRefusal::of(error).reason().to_owned(),
        message: error.to_string(),
    }
}

/// The roots a replica trusts for its peers' documents: its own NSM's
/// (the simulated test root, with `--nsm simulated` or `--pcrs-from`), or
/// the pinned AWS Nitro root.
pub(super) fn peer_roots(custody: &SimulatedCustody) -> Result<Vec<TrustedRoot>, ServeError> {
    let root = match &custody.root_pem {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| setup(format!("{}: {e}", path.display())))?;
            TrustedRoot::from_pem(&pem).map_err(|e| setup(format!("{}: {e}", path.display())))?
        }
        None => TrustedRoot::aws_nitro().map_err(|e| setup(format!("pinned AWS root: {e}")))?,
    };
    Ok(vec![root])
}

/// This replica's image PCRs as its NSM reports them.
fn own_pcrs(nsm: &dyn Nsm) -> Result<Pcrs, ServeError> {
    let mut pcrs = Pcrs::new();
    for index in IMAGE_PCRS {
        let state = nsm
            .describe_pcr(u16::from(index))
            .map_err(|e| setup(format!("NSM: {e}")))?;
        pcrs.insert(index, state.data);
    }
    Ok(pcrs)
}

fn attest(
    nsm: &dyn Nsm,
    request: hermetic_custody::AttestationRequest,
) -> Result<Vec<u8>, hermetic_nsm::NsmError> {
    nsm.attestation(&hermetic_nsm::AttestationRequest {
        user_data: Some(request.user_data),
        nonce: Some(request.nonce),
        public_key: request.public_key.map(|k| k.to_vec()),
    })
}

fn now(clock: &dyn Clock) -> UnixTime {
    UnixTime::since_unix_epoch(clock.now())
}

// ------------------------------------------------------------ responder

/// The running replica's side: the key it may forward, its NSM and the
/// challenges it issued.
pub struct Forwarding {
    book: Mutex<JoinBook>,
    challenge_ttl: Duration,
    key: MasterKey,
    nsm: Arc<dyn Nsm>,
    genesis_sha256: String,
    threshold: u8,
}

impl Forwarding {
    pub(super) fn new(
        record: GenesisRecord,
        key: MasterKey,
        custody: &SimulatedCustody,
        challenge_ttl: Duration,
    ) -> Result<Self, ServeError> {
        let policy = AttestationPolicy::new(peer_roots(custody)?, MAX_DOCUMENT_AGE);
        let (genesis_sha256, threshold) = (hex::encode(record_digest(&record)), record.threshold());
        let responder = Responder::new(
            record,
            own_pcrs(custody.nsm.as_ref())?,
            policy,
            challenge_ttl,
            MAX_OUTSTANDING_JOINS,
        );
        Ok(Forwarding {
            book: Mutex::new(JoinBook {
                responder,
                holders: Holders::default(),
            }),
            challenge_ttl,
            key,
            nsm: custody.nsm.clone(),
            genesis_sha256,
            threshold,
        })
    }
}

/// The responder and who holds its challenges, behind one lock.
struct JoinBook {
    responder: Responder,
    holders: Holders,
}

/// Which client address ([`address_key`](super::address_key)) holds each
/// outstanding challenge, and until when (seconds since the epoch).
#[derive(Debug, Default)]
struct Holders {
    by_challenge: HashMap<[u8; 32], (IpAddr, u64)>,
}

impl Holders {
    /// Whether `peer` may be given another challenge at `now`, after
    /// forgetting expired ones.
    fn has_room(&mut self, peer: IpAddr, now: u64) -> bool {
        self.by_challenge.retain(|_, (_, expires)| *expires >= now);
        self.by_challenge
            .values()
            .filter(|(p, _)| *p == peer)
            .count()
            < MAX_OUTSTANDING_JOINS_PER_ADDRESS
    }

    fn issued(&mut self, challenge: [u8; 32], peer: IpAddr, expires: u64) {
        self.by_challenge.insert(challenge, (peer, expires));
    }

    /// A challenge answered (or refused): it is used up either way.
    fn used(&mut self, challenge: &[u8; 32]) {
        self.by_challenge.remove(challenge);
    }
}

fn at_capacity() -> ApiRefusal {
    let r = JoinRefusal::Capacity;
    ApiRefusal::new(
        r.status(),
        Reason::of(r.reason()),
        "too many join challenges outstanding (for this address, or in all); retry later",
    )
}

/// A join refusal, counted in `hermetic_refusals_total{reason}`.
fn counted_refusal(state: &Shared, refusal: ApiRefusal) -> Response {
    state.metrics.refusal(refusal.reason.as_str(), None);
    refusal.into_response()
}

fn parse<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    expected: &str,
) -> Result<T, ApiRefusal> {
    let body = body.map_err(body_refusal)?;
    serde_json::from_slice(&body)
        .map_err(|_| ApiRefusal::bad_request(Reason::BadRequest, format!("expected {expected}")))
}

fn unavailable() -> ApiRefusal {
    ApiRefusal::new(
        StatusCode::SERVICE_UNAVAILABLE,
        Reason::JoinUnavailable,
        "this verifier has no NSM to attest with (serve --nsm): it cannot forward its key",
    )
}

fn internal(what: &str) -> ApiRefusal {
    ApiRefusal::internal(Reason::InternalError, format!("{what} failed"))
}

/// `POST /v1/custody/join/offer {"nonce": HEX}`: this replica's document for
/// the joiner's nonce, the genesis record and a single-use challenge. The
/// challenge caps (in all, per address) are checked before the NSM is asked
/// for a document: a caller over either costs no attestation.
#[utoipa::path(
    post,
    path = "/v1/custody/join/offer",
    tag = "custody",
    request_body(content = super::openapi::JoinHello, description = "The joining replica's nonce"),
    responses(
        (status = 200, description = "`{\"challenge\": HEX, \"genesis\": {...}, \"attestation_document\": BASE64}`: this replica's document for the nonce, the genesis record and a single-use challenge", body = super::openapi::JsonObject),
        (status = 400, description = "`bad_request`: not a join message", body = super::openapi::RefusalBody),
        (status = 403, description = "A `join_*` reason", body = super::openapi::RefusalBody),
        (status = 429, description = "`challenge_capacity` (64 outstanding in all, 16 per client address) or `rate_limited`", body = super::openapi::RefusalBody),
        (status = 503, description = "`join_unavailable` (no NSM), `nsm_unavailable`, `timeout`", body = super::openapi::RefusalBody),
    )
)]
pub(super) async fn offer(
    State(state): State<Shared>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let peer = super::address_key(
        connect
            .map(|c| c.0 .0.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
    );
    let Some(forwarding) = state.forwarding.clone() else {
        return unavailable().into_response();
    };
    let hello: JoinHello = match parse(body, "{\"nonce\": HEX}") {
        Ok(h) => h,
        Err(r) => return r.into_response(),
    };
    let counted = state.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut book = forwarding
            .book
            .lock()
            .map_err(|_| internal("the join state"))?;
        let now = now(state.clock.as_ref());
        if !book.responder.has_room(now) || !book.holders.has_room(peer, now.as_secs()) {
            return Err(at_capacity());
        }
        let document = attest(
            forwarding.nsm.as_ref(),
            book.responder.attestation_request(&hello),
        )
        .map_err(|e| {
            tracing::error!(event = "nsm_failed", error = %e);
            ApiRefusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                Reason::NsmUnavailable,
                "no attestation document",
            )
        })?;
        let offer = book
            .responder
            .offer(document, now, &state.rng)
            .map_err(|e| refused(&e))?;
        let expires = now
            .as_secs()
            .saturating_add(forwarding.challenge_ttl.as_secs());
        book.holders.issued(offer.challenge, peer, expires);
        Ok(offer)
    })
    .await;
    match outcome {
        Ok(Ok(offer)) => Json(offer).into_response(),
        Ok(Err(r)) => counted_refusal(&counted, r),
        Err(_) => internal("the join task").into_response(),
    }
}

/// `POST /v1/custody/join/key {"challenge": HEX, "attestation_document":
/// B64}`: the master key sealed to the joiner's checked document; logged
/// as `key_forwarded` before it is answered.
#[utoipa::path(
    post,
    path = "/v1/custody/join/key",
    tag = "custody",
    request_body(content = super::openapi::JoinKeyRequest, description = "The answered challenge and the joiner's attestation document"),
    responses(
        (status = 200, description = "`{\"genesis_id\", \"responder_document_sha256\", \"joiner_document_sha256\", \"enc\", \"ciphertext\"}`: the master key sealed to the joiner's attested key", body = super::openapi::JsonObject),
        (status = 400, description = "`bad_request`: not a join message", body = super::openapi::RefusalBody),
        (status = 403, description = "A `join_*` reason", body = super::openapi::RefusalBody),
        (status = 429, description = "`challenge_capacity` or `rate_limited`", body = super::openapi::RefusalBody),
        (status = 503, description = "`join_unavailable` (no NSM), `nsm_unavailable`, `timeout`", body = super::openapi::RefusalBody),
    )
)]
pub(super) async fn key(
    State(state): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(forwarding) = state.forwarding.clone() else {
        return unavailable().into_response();
    };
    let request: JoinRequest = match parse(
        body,
        "{\"challenge\": HEX, \"attestation_document\": BASE64}",
    ) {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let counted = state.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut book = forwarding
            .book
            .lock()
            .map_err(|_| internal("the join state"))?;
        let forwarded = book.responder.forward(
            &request,
            &forwarding.key,
            now(state.clock.as_ref()),
            &state.rng,
        );
        book.holders.used(&request.challenge);
        drop(book);
        let forwarded = forwarded.map_err(|e| refused(&e))?;
        let record = forwarded_record(&forwarding, &forwarded);
        // Evidence first: a key is never handed over unlogged.
        let appended = state.audit(Entry {
            action: ACTION_KEY_FORWARDED.into(),
            verdict: "done".into(),
            custody: Some(record),
            ..Entry::default()
        })?;
        tracing::info!(
            event = "key_forwarded",
            forwarded_to = %hex::encode(forwarded.joiner_document_sha256),
            record = %appended.seq
        );
        Ok::<ForwardedKey, ApiRefusal>(forwarded)
    })
    .await;
    match outcome {
        Ok(Ok(forwarded)) => Json(forwarded).into_response(),
        Ok(Err(r)) => counted_refusal(&counted, r),
        Err(_) => internal("the join task").into_response(),
    }
}

fn forwarded_record(forwarding: &Forwarding, forwarded: &ForwardedKey) -> CustodyRecord {
    CustodyRecord {
        genesis_sha256: forwarding.genesis_sha256.clone(),
        threshold: forwarding.threshold,
        forwarded_to: Some(hex::encode(forwarded.joiner_document_sha256)),
        ..CustodyRecord::default()
    }
}

// --------------------------------------------------------------- joiner

async fn post<T: DeserializeOwned>(
    http: &HttpClient,
    url: &str,
    body: Vec<u8>,
) -> Result<T, ServeError> {
    let (status, answer) = http
        .send(
            hyper::Method::POST,
            url,
            &[("content-type", "application/json")],
            body,
        )
        .await
        .map_err(|e| setup(format!("--join: {e}")))?;
    parse_answer(status, &answer).map_err(|e| match e {
        // The peer refused (sealed, or its check of our document failed):
        // its reason is ours.
        ClientError::Refused { refusal, .. } => ServeError::JoinRefused {
            reason: refusal.reason,
            message: format!("the peer refused: {}", refusal.message),
        },
        e => setup(format!("--join: {e}")),
    })
}

/// `serve --join URL`: asks the replica at `url` for the key, after each
/// checked the other's attestation. A replica with a genesis record keeps
/// it (and the peer must serve the same one); a fresh one stores the
/// peer's, so the same custodians can unseal it later.
pub(super) async fn join(
    url: &str,
    local: Option<GenesisRecord>,
    expected_custodians: Option<(Vec<CustodianPublicKey>, u8)>,
    custody: &SimulatedCustody,
    data_dir: &Path,
    clock: &dyn Clock,
    rng: &SystemRandom,
) -> Result<Obtained, ServeError> {
    let base = url
        .strip_prefix("http://")
        .map(|rest| format!("http://{}", rest.trim_end_matches('/')))
        .ok_or_else(|| setup("--join: give http://HOST:PORT (the exchange is end-to-end sealed to each side's attested key)"))?;
    let own = own_pcrs(custody.nsm.as_ref())?;
    // A debug-mode enclave reads PCR0-2 as zero (DESIGN.md, PCRs): no peer
    // would forward to it, so it does not ask.
    if (0..3).all(|i| own.get(&i).is_none_or(|v| v.iter().all(|b| *b == 0))) {
        return Err(ServeError::JoinRefused {
            reason: JoinRefusal::DebugMode.reason().to_owned(),
            message:
                "this replica runs in debug mode (PCR0-2 zero): no replica forwards its key to it"
                    .into(),
        });
    }
    let policy = AttestationPolicy::new(peer_roots(custody)?, MAX_DOCUMENT_AGE);
    let (mut joiner, hello) = Joiner::start(own, policy, rng).map_err(|e| setup(e.to_string()))?;
    let http = HttpClient::new(Duration::from_secs(30));
    let hello = serde_json::to_vec(&hello).map_err(|e| setup(e.to_string()))?;
    let offer: JoinOffer = post(&http, &format!("{base}{JOIN_OFFER_ROUTE}"), hello).await?;
    if let Some(local) = &local {
        if &offer.genesis != local {
            return Err(ServeError::JoinRefused {
                reason: JoinRefusal::GenesisMismatch.reason().to_owned(),
                message: format!(
                    "the peer serves genesis {} and this data directory holds {}",
                    hex::encode(record_digest(&offer.genesis)),
                    hex::encode(record_digest(local))
                ),
            });
        }
    }
    if let Some((custodians, threshold)) = &expected_custodians {
        let mut want: Vec<String> = custodians.iter().map(|c| c.fingerprint()).collect();
        let mut have: Vec<String> = offer
            .genesis
            .shares()
            .iter()
            .map(|s| s.custodian.fingerprint())
            .collect();
        want.sort();
        have.sort();
        if want != have || *threshold != offer.genesis.threshold() {
            return Err(ServeError::JoinRefused {
                reason: JoinRefusal::GenesisMismatch.reason().to_owned(),
                message: format!(
                    "the peer's genesis names custodians {} (K = {}), not the --custodian set given ({}, K = {threshold})",
                    have.join(","),
                    offer.genesis.threshold(),
                    want.join(",")
                ),
            });
        }
    }
    let request = joiner
        .check_offer(&offer, now(clock))
        .map_err(|e| join_error(&e))?;
    let document = attest(custody.nsm.as_ref(), request).map_err(|e| setup(format!("NSM: {e}")))?;
    let request = joiner.request(document).map_err(|e| join_error(&e))?;
    let request = serde_json::to_vec(&request).map_err(|e| setup(e.to_string()))?;
    let forwarded: ForwardedKey = post(&http, &format!("{base}{JOIN_KEY_ROUTE}"), request).await?;
    let (key, record) = joiner.finish(&forwarded).map_err(|e| join_error(&e))?;
    if local.is_none() {
        write_private(&data_dir.join(GENESIS_FILE), record.to_json().as_bytes())?;
    }
    let received_from = hex::encode(forwarded.responder_document_sha256);
    tracing::info!(event = "key_received", peer = %base, received_from = %received_from);
    Ok(Obtained {
        key,
        custody: CustodyRecord {
            genesis_sha256: hex::encode(record_digest(&record)),
            threshold: record.threshold(),
            peer: Some(base),
            received_from: Some(received_from),
            ..CustodyRecord::default()
        },
        record,
        event: ACTION_KEY_FORWARDED,
        not_hermetic: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hermetic_custody::Error as E;

    #[test]
    fn one_address_holds_at_most_its_share_of_the_challenges() {
        let mut holders = Holders::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for i in 0..MAX_OUTSTANDING_JOINS_PER_ADDRESS {
            assert!(holders.has_room(a, 100));
            holders.issued([i as u8; 32], a, 160);
        }
        assert!(!holders.has_room(a, 100), "a holds its share");
        assert!(holders.has_room(b, 100), "b is not kept out by a");
        // An answered challenge frees its slot; expired ones too.
        holders.used(&[0; 32]);
        assert!(holders.has_room(a, 100));
        holders.issued([0; 32], a, 160);
        assert!(!holders.has_room(a, 160));
        assert!(holders.has_room(a, 161));
        assert!(holders.by_challenge.is_empty());
    }

    #[test]
    fn each_refusal_has_its_own_reason() {
        let cases = [
            (E::PcrMismatch { index: 0 }, "join_measurements_mismatch"),
            (E::DebugEnclave, "join_debug_mode"),
            (E::ChallengeExpired, "join_stale"),
            (E::DocumentFromFuture, "join_stale"),
            (E::ChallengeUnknown, "join_replayed"),
            (E::NonceMismatch, "join_replayed"),
            (
                E::Attestation(hermetic_attestation::Error::UntrustedRoot {
                    fingerprint: "00".into(),
                }),
                "join_untrusted_root",
            ),
            (
                E::Attestation(hermetic_attestation::Error::BadSignature),
                "join_attestation_invalid",
            ),
            (E::WrongGenesis, "join_genesis_mismatch"),
            (E::ForwardOpenFailed, "join_key_rejected"),
            (E::ChallengeCapacity, "challenge_capacity"),
        ];
        for (error, reason) in cases {
            assert_eq!(JoinRefusal::of(&error).reason(), reason, "{error}");
        }
        assert_eq!(
            JoinRefusal::of(&E::ChallengeCapacity).status(),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            JoinRefusal::of(&E::DebugEnclave).status(),
            StatusCode::FORBIDDEN
        );
    }
}
