//! The public (enclave-facing) routes. Handlers only move bytes between
//! HTTP and [`AppState`](super::state::AppState).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};

use hermetic_envelope::wire::ReleaseResponse;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::openapi::RefusalBody;
use super::refusal::{body_refusal, ApiRefusal, Reason, RefusalReason};
use super::state::Shared;

/// The public routes (method, path), for documentation and tests.
pub const PUBLIC_ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/challenge"),
    ("POST", "/v1/release"),
    ("GET", "/v1/attestation"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/checkpoint"),
    ("GET", "/tile/{*path}"),
    ("GET", "/v1/log/key"),
    ("POST", super::join::JOIN_OFFER_ROUTE),
    ("POST", super::join::JOIN_KEY_ROUTE),
    ("GET", super::openapi::OPENAPI_ROUTE),
];

/// Limits shared by both listeners.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub body_bytes: usize,
    pub request_timeout: Duration,
}

/// The public routes and their description, from the handlers' attributes.
fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(challenge))
        .routes(routes!(release))
        .routes(routes!(attestation))
        .routes(routes!(healthz))
        .routes(routes!(metrics))
        .routes(routes!(super::tiles::checkpoint))
        .routes(routes!(super::tiles::log_key))
        .routes(routes!(super::join::offer))
        .routes(routes!(super::join::key))
        // The tile path's one parameter spans several segments, which an
        // OpenAPI path cannot say: described as `/tile/{path}` apart.
        .route("/tile/{*path}", get(super::tiles::tile))
}

/// The public API's OpenAPI document, as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(super::tiles::tile))]
    struct Tiles;
    let mut doc = routes().into_openapi();
    doc.merge(<Tiles as utoipa::OpenApi>::openapi());
    super::openapi::finish(doc, super::openapi::Listener::Public)
}

pub fn router(state: Shared, limits: Limits) -> Router {
    let (router, _) = routes().split_for_parts();
    let document = super::openapi::to_json(&openapi());
    router
        .route(
            super::openapi::OPENAPI_ROUTE,
            get(move || serve_openapi(document)),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone())
        .layer(DefaultBodyLimit::max(limits.body_bytes))
        .layer(from_fn_with_state(state, rate_limit))
        .layer(from_fn(move |req, next| {
            timeout(limits.request_timeout, req, next)
        }))
        .layer(from_fn(log_refusals))
        .layer(from_fn(super::request_id::layer))
}

/// `GET /openapi.json`: the listener's OpenAPI document.
pub async fn serve_openapi(document: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document).into_response()
}

#[utoipa::path(
    get,
    path = "/v1/attestation",
    tag = "identity",
    responses(
        (status = 200, description = "The verifier's attestation document: raw CBOR COSE_Sign1, the bytes its TLS handshake carries", content_type = "application/cbor", body = Vec<u8>),
        (status = 404, description = "`not_attested`: this verifier runs without an NSM", body = RefusalBody),
    )
)]
/// The verifier's current attestation document (raw CBOR COSE_Sign1, the
/// same bytes its TLS handshake carries): public, for tools and auditors.
async fn attestation(State(state): State<Shared>) -> Response {
    match &state.identity {
        Some(identity) => (
            [(header::CONTENT_TYPE, "application/cbor")],
            identity.document().as_ref().clone(),
        )
            .into_response(),
        None => ApiRefusal::new(
            StatusCode::NOT_FOUND,
            Reason::NotAttested,
            "this verifier runs without an NSM (serve --nsm): it has no attested identity",
        )
        .into_response(),
    }
}

/// Logs every refusal (except rate limiting, which is only counted: logging
/// each would let a flood fill the log) with its reason, never a body.
pub async fn log_refusals(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let client = client_ip(&req);
    let response = next.run(req).await;
    if let Some(RefusalReason(reason)) = response.extensions().get::<RefusalReason>() {
        if *reason != Reason::RateLimited {
            // The request's span adds its `request_id`.
            tracing::info!(event = "refused", reason = %reason, status = response.status().as_u16(), method = %method, path = %path, client = %client);
        }
    }
    response
}

/// The client's address, as the listener recorded it.
pub fn client_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

pub async fn rate_limit(State(state): State<Shared>, req: Request, next: Next) -> Response {
    if state.limiter.allow(client_ip(&req)) {
        return next.run(req).await;
    }
    state.metrics.refusal(Reason::RateLimited.as_str(), None);
    ApiRefusal::new(
        StatusCode::TOO_MANY_REQUESTS,
        Reason::RateLimited,
        "too many requests from this address; slow down",
    )
    .into_response()
}

pub async fn timeout(limit: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiRefusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Reason::Timeout,
            "the request took too long",
        )
        .into_response(),
    }
}

pub async fn not_found() -> ApiRefusal {
    ApiRefusal::not_found()
}

pub async fn method_not_allowed() -> ApiRefusal {
    ApiRefusal::new(
        StatusCode::METHOD_NOT_ALLOWED,
        Reason::MethodNotAllowed,
        "this endpoint does not take that method",
    )
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "meta",
    responses((status = 200, description = "`ok`: the service runs", content_type = "text/plain", body = String))
)]
pub async fn healthz() -> &'static str {
    "ok\n"
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "meta",
    responses((status = 200, description = "OpenMetrics text (prometheus-client): the service's counters, gauges and histograms", content_type = "application/openmetrics-text", body = String))
)]
async fn metrics(State(state): State<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, super::metrics::CONTENT_TYPE)],
        state.metrics.render(state.metrics_snapshot()),
    )
        .into_response()
}

#[utoipa::path(
    post,
    path = "/v1/challenge",
    tag = "release",
    responses(
        (status = 200, description = "A fresh single-use nonce for the enclave's attestation document", body = hermetic_envelope::wire::ChallengeResponse),
        (status = 429, description = "`too_many_outstanding_nonces` (this address holds too many unused challenges) or `rate_limited`", body = RefusalBody),
        (status = 503, description = "`challenge_capacity`, `rng_failed`, `store_unavailable` or `timeout`; retry", body = RefusalBody),
    )
)]
async fn challenge(
    State(state): State<Shared>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Response {
    let client = connect
        .map(|c| c.0 .0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    match state.challenge(client) {
        Ok(c) => Json(c).into_response(),
        Err(r) => r.into_response(),
    }
}

#[utoipa::path(
    post,
    path = "/v1/release",
    tag = "release",
    request_body(content = hermetic_envelope::wire::ReleaseRequest, description = "The enclave's attestation document (for a challenge's nonce) and the secrets it asks for"),
    responses(
        (status = 200, description = "The secrets, each sealed to the document's public key, and the release's log receipt", body = hermetic_envelope::wire::ReleaseResponse),
        (status = 400, description = "`bad_request` (not a release request), `envelope_bad_base64`, `no_secrets_requested`, `too_many_secrets`, `invalid_name` or `duplicate_secret`", body = RefusalBody),
        (status = 403, description = "The document or the request is refused: an attestation reason (`untrusted_root`, `bad_signature`, ...), a nonce reason (`nonce_unknown`, `nonce_expired`, `nonce_replayed`, `nonce_missing`), a policy reason (`pcr_mismatch`, `debug_enclave`, `document_too_old`, ...) or a secret's (`unknown_secret`, `no_policy`, `row_tampered`, ...)", body = RefusalBody),
        (status = 503, description = "`store_unavailable`, `witness_unavailable` or `timeout`; retry with a fresh challenge", body = RefusalBody),
    )
)]
async fn release(
    State(state): State<Shared>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let client = connect
        .map(|c| c.0 .0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            let refusal = state.unlogged(body_refusal(rejection));
            state.metrics.refusal(refusal.reason.as_str(), None);
            return refusal.into_response();
        }
    };
    // Its own task: once started, a release runs to its end (record,
    // metrics) even if the client goes away meanwhile.
    let result = super::request_id::spawn(async move {
        let started = Instant::now();
        let result = release_async(&state, body, client).await;
        state.count_release(&result, started);
        result
    })
    .await
    .unwrap_or_else(|_| Err(task_failed()));
    match result {
        Ok(response) => Json(response).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

/// The release path with the log's wait as a future: the decision (the
/// signature check, the reads, the sealing) runs on this worker and no
/// thread is held while the batch holding the record syncs, so that a few
/// threads share the cores instead of one per request in flight. When a
/// step may block (a database server, witnesses to wait for:
/// [`AppState::release_blocks`]) the whole path runs on the blocking pool.
///
/// [`AppState::release_blocks`]: super::state::AppState::release_blocks
async fn release_async(
    state: &Shared,
    body: Bytes,
    client: IpAddr,
) -> Result<ReleaseResponse, ApiRefusal> {
    if state.release_blocks() {
        let state = state.clone();
        return super::request_id::spawn_blocking(move || state.release(&body, client))
            .await
            .unwrap_or_else(|_| Err(task_failed()));
    }
    // A panic here ends the release's own task: the handler answers it as
    // an internal error (`task_failed`).
    let decided = state.release_decide(&body, client)?;
    let appended = state.audit_async(decided.record).await;
    state.release_finish(decided.answer, appended)
}

fn task_failed() -> ApiRefusal {
    ApiRefusal::internal(Reason::InternalError, "the release task failed")
}
