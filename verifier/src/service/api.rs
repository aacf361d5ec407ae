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
use axum::routing::{get, post};
use axum::{Extension, Json, Router};

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
];

/// Limits shared by both listeners.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub body_bytes: usize,
    pub request_timeout: Duration,
}

pub fn router(state: Shared, limits: Limits) -> Router {
    Router::new()
        .route("/v1/challenge", post(challenge))
        .route("/v1/release", post(release))
        .route("/v1/attestation", get(attestation))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/checkpoint", get(super::tiles::checkpoint))
        .route("/tile/{*path}", get(super::tiles::tile))
        .route("/v1/log/key", get(super::tiles::log_key))
        .route(super::join::JOIN_OFFER_ROUTE, post(super::join::offer))
        .route(super::join::JOIN_KEY_ROUTE, post(super::join::key))
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
    if state.limiter.allow(client_ip(&req), Instant::now()) {
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

pub async fn healthz() -> &'static str {
    "ok\n"
}

async fn metrics(State(state): State<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(state.nonces.len()),
    )
        .into_response()
}

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
    let result = super::request_id::spawn_blocking(move || state.release(&body, client)).await;
    match result {
        Ok(Ok(response)) => Json(response).into_response(),
        Ok(Err(refusal)) => refusal.into_response(),
        Err(_) => {
            ApiRefusal::internal(Reason::InternalError, "the release task failed").into_response()
        }
    }
}
