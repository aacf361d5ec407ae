//! The admin routes, on their own listener. Every `/admin/v1` route needs
//! `Authorization: Bearer TOKEN`; the store keeps only SHA-256(TOKEN).
//!
//! The admin token can create a secret with its owner set, list, read
//! policies and submit owner-signed change statements; it cannot change a
//! value, a policy or an owner set by itself (the old write routes answer 403
//! `owner_approval_required`). No route ever returns a value.

use aws_lc_rs::digest::{digest, SHA256};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::api::{self, Limits};
use super::changes::{store_refusal, CreateSecret};
use super::refusal::{body_refusal, ApiRefusal, PathParam, Reason};
use super::state::Shared;
use crate::log::{Entry, SecretRef, Who};
use crate::policy::check_secret_name;
use crate::store::{SecretInfo, StoreError};

/// Every admin route (method, path template). A test walks all of them.
pub const ADMIN_ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/admin/v1/deployment"),
    ("GET", "/admin/v1/secrets"),
    ("GET", "/admin/v1/secrets/{name}"),
    ("POST", "/admin/v1/secrets/{name}"),
    ("POST", "/admin/v1/changes"),
    ("GET", "/admin/v1/policies"),
    ("GET", "/admin/v1/policies/{name}"),
    ("GET", super::openapi::OPENAPI_ROUTE),
];

/// The routes through which the admin token alone used to change a secret.
/// Each now answers 403 `owner_approval_required` (after authentication),
/// and the attempt is logged.
pub const RETIRED_ADMIN_ROUTES: &[(&str, &str)] = &[
    ("PUT", "/admin/v1/secrets/{name}"),
    ("POST", "/admin/v1/secrets/{name}/rotate"),
    ("DELETE", "/admin/v1/secrets/{name}"),
    ("PUT", "/admin/v1/policies/{name}"),
    ("DELETE", "/admin/v1/policies/{name}"),
];

/// The authenticated caller, for the audit log.
#[derive(Debug, Clone)]
struct Admin(String);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SecretList {
    pub secrets: Vec<SecretInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PolicyList {
    pub policies: Vec<String>,
}

/// The admin routes and their description, from the handlers' attributes.
fn routes(state: &Shared) -> OpenApiRouter<Shared> {
    let admin = OpenApiRouter::new()
        .routes(routes!(deployment))
        .routes(routes!(list_secrets))
        .routes(routes!(secret_info, create_secret, retired_secret_write))
        .routes(routes!(retired_rotate))
        .routes(routes!(submit_change))
        .routes(routes!(list_policies))
        .routes(routes!(get_policy, retired_policy_write))
        .route_layer(from_fn_with_state(state.clone(), authenticate));
    OpenApiRouter::new()
        .routes(routes!(api::healthz))
        .merge(admin)
}

pub fn router(state: Shared, limits: Limits) -> Router {
    let (router, doc) = routes(&state).split_for_parts();
    let document = super::openapi::to_json(&super::openapi::finish(
        doc,
        super::openapi::Listener::Admin,
    ));
    router
        .route(
            super::openapi::OPENAPI_ROUTE,
            get(move || api::serve_openapi(document)),
        )
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .with_state(state.clone())
        .layer(DefaultBodyLimit::max(limits.body_bytes))
        .layer(from_fn_with_state(state, api::rate_limit))
        .layer(from_fn(move |req, next| {
            api::timeout(limits.request_timeout, req, next)
        }))
        .layer(from_fn(api::log_refusals))
        .layer(from_fn(super::request_id::layer))
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
        Reason::Unauthorized,
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
        Err(e) if e.is_row_refusal() => {
            tracing::error!(event = "store_row_refused", table = "admin_tokens", reason = %e.reason());
            state.metrics.refusal(e.reason(), None);
            ApiRefusal::new(
                StatusCode::UNAUTHORIZED,
                Reason::of(e.reason()),
                e.to_string(),
            )
            .into_response()
        }
        Err(e @ crate::store::StoreError::Unavailable(_)) => {
            tracing::error!(event = "store_unavailable", error = %e);
            super::state::store_unavailable().into_response()
        }
        Err(e) => ApiRefusal::internal(Reason::StoreError, e.to_string()).into_response(),
    }
}

fn check_name(name: &str) -> Result<(), ApiRefusal> {
    check_secret_name(name).map_err(|m| ApiRefusal::bad_request(Reason::InvalidName, m))
}

/// Runs a blocking store call off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiRefusal> + Send + 'static,
) -> Result<T, ApiRefusal> {
    super::request_id::spawn_blocking(f)
        .await
        .unwrap_or_else(|_| {
            Err(ApiRefusal::internal(
                Reason::InternalError,
                "the task failed",
            ))
        })
}

fn respond<T: Serialize>(status: StatusCode, result: Result<T, ApiRefusal>) -> Response {
    match result {
        Ok(body) => (status, Json(body)).into_response(),
        Err(r) => r.into_response(),
    }
}

#[utoipa::path(
    get,
    path = "/admin/v1/deployment",
    tag = "admin",

    responses(
        (status = 200, description = "The deployment id change statements must name, and the intake key values are sealed to", body = super::changes::DeploymentInfo),
    )
)]
async fn deployment(State(state): State<Shared>) -> Response {
    respond(StatusCode::OK, Ok(state.deployment_info()))
}

#[utoipa::path(
    get,
    path = "/admin/v1/secrets",
    tag = "admin",

    responses(
        (status = 200, description = "Every secret's metadata (never a value)", body = SecretList),
        (status = 403, description = "`row_tampered` or `row_rolled_back`: a stored row was altered outside the verifier", body = super::openapi::RefusalBody),
    )
)]
async fn list_secrets(State(state): State<Shared>) -> Response {
    let result = blocking(move || {
        let secrets = state.store.list_secrets().map_err(|e| store_refusal(&e))?;
        Ok(SecretList { secrets })
    })
    .await;
    respond(StatusCode::OK, result)
}

#[utoipa::path(
    get,
    path = "/admin/v1/secrets/{name}",
    tag = "admin",
    params(("name" = String, Path, description = "The secret's name: 1 to 128 characters of `[A-Za-z0-9._-]`")),
    responses(
        (status = 200, description = "The secret's metadata (never its value)", body = SecretInfo),
        (status = 400, description = "`invalid_name`, or `bad_request` (the name does not decode)", body = super::openapi::RefusalBody),
        (status = 403, description = "`row_tampered` or `row_rolled_back`", body = super::openapi::RefusalBody),
        (status = 404, description = "`unknown_secret`", body = super::openapi::RefusalBody),
    )
)]
async fn secret_info(State(state): State<Shared>, PathParam(name): PathParam) -> Response {
    let result = blocking(move || {
        check_name(&name)?;
        state
            .store
            .secret_info(&name)
            .map_err(|e| store_refusal(&e))?
            .ok_or_else(|| store_refusal(&StoreError::NotFound(name)))
    })
    .await;
    respond(StatusCode::OK, result)
}

#[utoipa::path(
    post,
    path = "/admin/v1/secrets/{name}",
    tag = "admin",
    params(("name" = String, Path, description = "The secret's name: 1 to 128 characters of `[A-Za-z0-9._-]`")),
    request_body(content = CreateSecret, description = "The new secret's owners and threshold"),
    responses(
        (status = 201, description = "Created, with its owner set and no value or policy yet", body = super::changes::Created),
        (status = 400, description = "`invalid_name`, `bad_request` (not a create body, or the name does not decode) or `invalid_owner_set`", body = super::openapi::RefusalBody),
        (status = 403, description = "`row_tampered` or `row_rolled_back`", body = super::openapi::RefusalBody),
        (status = 409, description = "`secret_exists`: its owners change it", body = super::openapi::RefusalBody),
    )
)]
async fn create_secret(
    State(state): State<Shared>,
    Extension(admin): Extension<Admin>,
    PathParam(name): PathParam,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rejection) => return body_refusal(rejection).into_response(),
    };
    let result = blocking(move || {
        check_name(&name)?;
        let request: CreateSecret = serde_json::from_slice(&body).map_err(|e| {
            ApiRefusal::bad_request(
                Reason::BadRequest,
                format!("expected {{\"owners\": [VERIFIER_KEY...], \"threshold\": K}}: {e}"),
            )
        })?;
        state.create_secret(&name, &request, &admin.0)
    })
    .await;
    respond(StatusCode::CREATED, result)
}

#[utoipa::path(
    post,
    path = "/admin/v1/changes",
    tag = "admin",
    request_body(content = super::openapi::JsonObject, description = "A statement file (`hermetic-verifier change sign` writes it): `{\"statement\": NOTE, ...content}` with the owner-signed `hermetic-change/v1` statement and the content it names"),
    responses(
        (status = 200, description = "The change is applied and logged", body = super::changes::ChangeApplied),
        (status = 400, description = "`malformed_statement`, `invalid_policy`, `invalid_owner_set` or `invalid_content`", body = super::openapi::RefusalBody),
        (status = 403, description = "`wrong_deployment`, `wrong_secret`, `unknown_owner`, `bad_signature`, `not_enough_approvals`, `stale_version`, `content_mismatch`, `no_owners`, `sealed_value_unreadable`, `row_tampered` or `row_rolled_back`", body = super::openapi::RefusalBody),
        (status = 404, description = "`unknown_secret`", body = super::openapi::RefusalBody),
        (status = 409, description = "`secret_exists`", body = super::openapi::RefusalBody),
    )
)]
async fn submit_change(
    State(state): State<Shared>,
    Extension(admin): Extension<Admin>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rejection) => return body_refusal(rejection).into_response(),
    };
    let result = blocking(move || state.submit_change(&body, &admin.0)).await;
    respond(StatusCode::OK, result)
}

const RETIRED: &str = "`owner_approval_required`: values, policies and owners change only by owner-signed statements (`POST /admin/v1/changes`); the attempt is logged";

#[utoipa::path(
    method(put, delete),
    path = "/admin/v1/secrets/{name}",
    tag = "admin (retired)",
    params(("name" = String, Path, description = "The secret's name: 1 to 128 characters of `[A-Za-z0-9._-]`")),
    responses(
        (status = 400, description = "`bad_request`: the name does not decode", body = super::openapi::RefusalBody),
        (status = 403, description = RETIRED, body = super::openapi::RefusalBody),
    )
)]
async fn retired_secret_write(
    state: State<Shared>,
    admin: Extension<Admin>,
    name: PathParam,
) -> Response {
    owner_approval_required(state, admin, name).await
}

#[utoipa::path(
    post,
    path = "/admin/v1/secrets/{name}/rotate",
    tag = "admin (retired)",
    params(("name" = String, Path, description = "The secret's name: 1 to 128 characters of `[A-Za-z0-9._-]`")),
    responses(
        (status = 400, description = "`bad_request`: the name does not decode", body = super::openapi::RefusalBody),
        (status = 403, description = RETIRED, body = super::openapi::RefusalBody),
    )
)]
async fn retired_rotate(
    state: State<Shared>,
    admin: Extension<Admin>,
    name: PathParam,
) -> Response {
    owner_approval_required(state, admin, name).await
}

#[utoipa::path(
    method(put, delete),
    path = "/admin/v1/policies/{name}",
    tag = "admin (retired)",
    params(("name" = String, Path, description = "The secret's name: 1 to 128 characters of `[A-Za-z0-9._-]`")),
    responses(
        (status = 400, description = "`bad_request`: the name does not decode", body = super::openapi::RefusalBody),
        (status = 403, description = RETIRED, body = super::openapi::RefusalBody),
    )
)]
async fn retired_policy_write(
    state: State<Shared>,
    admin: Extension<Admin>,
    name: PathParam,
) -> Response {
    owner_approval_required(state, admin, name).await
}

/// The old write routes: the admin token alone no longer changes who
/// receives a secret. The attempt is logged (name only if it is valid).
async fn owner_approval_required(
    State(state): State<Shared>,
    Extension(admin): Extension<Admin>,
    PathParam(name): PathParam,
) -> Response {
    let refusal = ApiRefusal::forbidden(
        Reason::OwnerApprovalRequired,
        "values, policies and owners change only by statements signed by the secret's owners: \
         see `hermetic-verifier change propose|sign|submit`",
    );
    let logged = refusal.clone();
    let _ = blocking(move || {
        let _ = state.audit(Entry {
            action: "change_refused".into(),
            verdict: "refused".into(),
            reason: Some(logged.reason.as_str().into()),
            secrets: check_secret_name(&name)
                .ok()
                .map(|()| SecretRef {
                    name: name.clone(),
                    version: None,
                })
                .into_iter()
                .collect(),
            who: Who {
                admin: Some(admin.0),
                ..Who::default()
            },
            ..Entry::default()
        });
        Ok(())
    })
    .await;
    refusal.into_response()
}

#[utoipa::path(
    get,
    path = "/admin/v1/policies",
    tag = "admin",

    responses(
        (status = 200, description = "The names of the secrets that have a policy", body = PolicyList),
    )
)]
async fn list_policies(State(state): State<Shared>) -> Response {
    let result = blocking(move || {
        let policies = state.store.policy_names().map_err(|e| store_refusal(&e))?;
        Ok(PolicyList { policies })
    })
    .await;
    respond(StatusCode::OK, result)
}

fn no_policy(name: &str) -> ApiRefusal {
    ApiRefusal::new(
        StatusCode::NOT_FOUND,
        Reason::NoPolicy,
        format!("no policy for {name:?}"),
    )
}

#[utoipa::path(
    get,
    path = "/admin/v1/policies/{name}",
    tag = "admin",
    params(("name" = String, Path, description = "The secret's name: 1 to 128 characters of `[A-Za-z0-9._-]`")),
    responses(
        (status = 200, description = "The secret's release policy (TOML)", content_type = "text/plain", body = String),
        (status = 400, description = "`invalid_name`, or `bad_request` (the name does not decode)", body = super::openapi::RefusalBody),
        (status = 403, description = "`row_tampered` or `row_rolled_back`", body = super::openapi::RefusalBody),
        (status = 404, description = "`no_policy` or `unknown_secret`", body = super::openapi::RefusalBody),
    )
)]
async fn get_policy(State(state): State<Shared>, PathParam(name): PathParam) -> Response {
    let result = blocking(move || {
        check_name(&name)?;
        let policy = state
            .store
            .policy(&name)
            .map_err(|e| store_refusal(&e))?
            .ok_or_else(|| no_policy(&name))?;
        Ok(policy.to_toml(&name))
    })
    .await;
    match result {
        Ok(text) => ([(header::CONTENT_TYPE, "application/toml")], text).into_response(),
        Err(r) => r.into_response(),
    }
}
