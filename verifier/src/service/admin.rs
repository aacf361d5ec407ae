//! The admin routes, on their own listener. Every `/admin/v1` route needs
//! `Authorization: Bearer TOKEN`; the store keeps only SHA-256(TOKEN).
//!
//! The store is write-only to people: secrets can be put, rotated, deleted
//! and listed (names and versions), and no route ever returns a value.

use aws_lc_rs::digest::{digest, SHA256};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};

use super::api::{self, Limits};
use super::refusal::{body_refusal, ApiRefusal};
use super::state::Shared;
use crate::log::{Entry, SecretRef, Who};
use crate::policy::{check_secret_name, PolicyFile};
use crate::store::{SecretInfo, StoreError};

/// Every admin route (method, path template). A test walks all of them.
pub const ADMIN_ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/admin/v1/secrets"),
    ("GET", "/admin/v1/secrets/{name}"),
    ("PUT", "/admin/v1/secrets/{name}"),
    ("POST", "/admin/v1/secrets/{name}/rotate"),
    ("DELETE", "/admin/v1/secrets/{name}"),
    ("GET", "/admin/v1/policies"),
    ("GET", "/admin/v1/policies/{name}"),
    ("PUT", "/admin/v1/policies/{name}"),
    ("DELETE", "/admin/v1/policies/{name}"),
];

/// The authenticated caller, for the audit log.
#[derive(Debug, Clone)]
struct Admin(String);

/// Answer to put and rotate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    pub name: String,
    pub version: u64,
}

/// Answer to delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    pub name: String,
    pub deleted_versions: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretList {
    pub secrets: Vec<SecretInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyList {
    pub policies: Vec<String>,
}

pub fn router(state: Shared, limits: Limits) -> Router {
    let admin = Router::new()
        .route("/admin/v1/secrets", get(list_secrets))
        .route(
            "/admin/v1/secrets/{name}",
            get(secret_info).put(put_secret).delete(delete_secret),
        )
        .route("/admin/v1/secrets/{name}/rotate", post(rotate_secret))
        .route("/admin/v1/policies", get(list_policies))
        .route(
            "/admin/v1/policies/{name}",
            get(get_policy).put(put_policy).delete(delete_policy),
        )
        .route_layer(from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/healthz", get(api::healthz))
        .merge(admin)
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .with_state(state.clone())
        .layer(DefaultBodyLimit::max(limits.body_bytes))
        .layer(from_fn_with_state(state, api::rate_limit))
        .layer(from_fn(move |req, next| {
            api::timeout(limits.request_timeout, req, next)
        }))
        .layer(from_fn(api::log_refusals))
}

/// SHA-256 of a bearer token; what the store keeps.
pub fn token_hash(token: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    out
}

fn unauthorized() -> Response {
    ApiRefusal::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "a valid admin bearer token is required",
    )
    .into_response()
}

async fn authenticate(State(state): State<Shared>, mut req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        state.metrics.refusal("unauthorized", None);
        return unauthorized();
    };
    // Looked up by hash: timing reveals nothing about the stored tokens.
    let hash = token_hash(token);
    match state.store.token_label(&hash) {
        Ok(Some(label)) => {
            let who = format!("{}:{label}", &hex::encode(hash)[..16]);
            req.extensions_mut().insert(Admin(who));
            next.run(req).await
        }
        Ok(None) => {
            state.metrics.refusal("unauthorized", None);
            unauthorized()
        }
        Err(e) => ApiRefusal::internal("store_error", e.to_string()).into_response(),
    }
}

fn check_name(name: &str) -> Result<(), ApiRefusal> {
    check_secret_name(name).map_err(|m| ApiRefusal::bad_request("invalid_name", m))
}

fn store_refusal(e: StoreError) -> ApiRefusal {
    match e {
        StoreError::NotFound(name) => ApiRefusal::new(
            StatusCode::NOT_FOUND,
            "unknown_secret",
            format!("no secret named {name:?}"),
        ),
        other => {
            eprintln!("hermetic-verifier: level=error event=store_failed error={other}");
            ApiRefusal::internal("store_error", "the store could not complete the request")
        }
    }
}

/// Runs a blocking store call off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiRefusal> + Send + 'static,
) -> Result<T, ApiRefusal> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|_| Err(ApiRefusal::internal("internal_error", "the task failed")))
}

fn admin_entry(admin: &Admin, action: &str, name: &str, version: Option<u64>) -> Entry {
    Entry {
        action: action.into(),
        verdict: "done".into(),
        reason: None,
        secrets: vec![SecretRef {
            name: name.into(),
            version,
        }],
        who: Who {
            admin: Some(admin.0.clone()),
            ..Who::default()
        },
        ..Entry::default()
    }
}

fn respond<T: Serialize>(status: StatusCode, result: Result<T, ApiRefusal>) -> Response {
    match result {
        Ok(body) => (status, Json(body)).into_response(),
        Err(r) => r.into_response(),
    }
}

async fn list_secrets(State(state): State<Shared>) -> Response {
    let result = blocking(move || {
        let secrets = state.store.list_secrets().map_err(store_refusal)?;
        Ok(SecretList { secrets })
    })
    .await;
    respond(StatusCode::OK, result)
}

async fn secret_info(State(state): State<Shared>, Path(name): Path<String>) -> Response {
    let result = blocking(move || {
        check_name(&name)?;
        state
            .store
            .secret_info(&name)
            .map_err(store_refusal)?
            .ok_or_else(|| store_refusal(StoreError::NotFound(name)))
    })
    .await;
    respond(StatusCode::OK, result)
}

async fn write_secret(
    state: Shared,
    admin: Admin,
    name: String,
    body: Result<Bytes, BytesRejection>,
    rotate: bool,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rejection) => return body_refusal(rejection).into_response(),
    };
    let result = blocking(move || {
        check_name(&name)?;
        if body.is_empty() {
            return Err(ApiRefusal::bad_request(
                "empty_value",
                "a secret value is at least one byte",
            ));
        }
        let version = if rotate {
            state.store.rotate_secret(&name, &body)
        } else {
            state.store.put_secret(&name, &body)
        }
        .map_err(store_refusal)?;
        let action = if rotate {
            "secret_rotate"
        } else {
            "secret_put"
        };
        state.audit(admin_entry(&admin, action, &name, Some(version)))?;
        eprintln!("hermetic-verifier: level=info event={action} name={name} version={version}");
        Ok(Written { name, version })
    })
    .await;
    respond(StatusCode::OK, result)
}

async fn put_secret(
    State(state): State<Shared>,
    Extension(admin): Extension<Admin>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    write_secret(state, admin, name, body, false).await
}

async fn rotate_secret(
    State(state): State<Shared>,
    Extension(admin): Extension<Admin>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    write_secret(state, admin, name, body, true).await
}

async fn delete_secret(
    State(state): State<Shared>,
    Extension(admin): Extension<Admin>,
    Path(name): Path<String>,
) -> Response {
    let result = blocking(move || {
        check_name(&name)?;
        let deleted_versions = state.store.delete_secret(&name).map_err(store_refusal)?;
        state.audit(admin_entry(&admin, "secret_delete", &name, None))?;
        eprintln!("hermetic-verifier: level=info event=secret_delete name={name}");
        Ok(Deleted {
            name,
            deleted_versions,
        })
    })
    .await;
    respond(StatusCode::OK, result)
}

async fn list_policies(State(state): State<Shared>) -> Response {
    let result = blocking(move || {
        let policies = state.store.policy_names().map_err(store_refusal)?;
        Ok(PolicyList { policies })
    })
    .await;
    respond(StatusCode::OK, result)
}

fn no_policy(name: &str) -> ApiRefusal {
    ApiRefusal::new(
        StatusCode::NOT_FOUND,
        "no_policy",
        format!("no policy for {name:?}"),
    )
}

async fn get_policy(State(state): State<Shared>, Path(name): Path<String>) -> Response {
    let result = blocking(move || {
        check_name(&name)?;
        let policy = state
            .store
            .policy(&name)
            .map_err(store_refusal)?
            .ok_or_else(|| no_policy(&name))?;
        Ok(policy.to_toml(&name))
    })
    .await;
    match result {
        Ok(text) => ([(header::CONTENT_TYPE, "application/toml")], text).into_response(),
        Err(r) => r.into_response(),
    }
}

async fn put_policy(
    State(state): State<Shared>,
    Extension(admin): Extension<Admin>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rejection) => return body_refusal(rejection).into_response(),
    };
    let result = blocking(move || {
        check_name(&name)?;
        let text = std::str::from_utf8(&body)
            .map_err(|_| ApiRefusal::bad_request("invalid_policy", "the policy is not UTF-8"))?;
        let mut file = PolicyFile::parse(text)
            .map_err(|e| ApiRefusal::bad_request(e.reason(), e.to_string()))?;
        let policy = file.secrets.remove(&name).ok_or_else(|| {
            ApiRefusal::bad_request(
                "invalid_policy",
                format!("the policy file has no [secrets.{name}]"),
            )
        })?;
        state
            .store
            .put_policy(&name, &policy)
            .map_err(store_refusal)?;
        state.audit(admin_entry(&admin, "policy_put", &name, None))?;
        eprintln!("hermetic-verifier: level=info event=policy_put name={name}");
        Ok(serde_json::json!({ "name": name }))
    })
    .await;
    respond(StatusCode::OK, result)
}

async fn delete_policy(
    State(state): State<Shared>,
    Extension(admin): Extension<Admin>,
    Path(name): Path<String>,
) -> Response {
    let result = blocking(move || {
        check_name(&name)?;
        if !state.store.delete_policy(&name).map_err(store_refusal)? {
            return Err(no_policy(&name));
        }
        state.audit(admin_entry(&admin, "policy_delete", &name, None))?;
        Ok(serde_json::json!({ "name": name }))
    })
    .await;
    respond(StatusCode::OK, result)
}
