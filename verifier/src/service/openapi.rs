//! The OpenAPI 3.1 description of the public and admin APIs, served at
//! `GET /openapi.json` on each listener.
//!
//! The operations come from the `#[utoipa::path]` attribute of each handler,
//! and the routers are built from the same attributes (`utoipa_axum::routes!`),
//! so a route cannot be served without being described. The `Refusal` schema's
//! `reason` is the [`Reason`] enum, every variant with its description. This
//! module adds what every operation shares: the refusals the layers around
//! the handlers send (rate limit, body limit, timeout, internal failures), the
//! admin bearer scheme, and `/openapi.json` itself.

use std::borrow::Cow;
use std::fmt::Write as _;

use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
use utoipa::openapi::response::{Response as DocResponse, ResponseBuilder};
use utoipa::openapi::schema::{Object, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, RefOr};
use utoipa::{PartialSchema, ToSchema};

use super::reason::Reason;

/// The path of the document on each listener.
pub const OPENAPI_ROUTE: &str = "/openapi.json";

/// Which listener a document describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Public,
    Admin,
    /// The public listener of a sealed verifier (custody routes only).
    Sealed,
}

/// The `Refusal` body of every non-2xx answer (`hermetic_envelope::wire::Refusal`),
/// with `reason` as the enum of every [`Reason`].
pub struct RefusalBody;

impl PartialSchema for RefusalBody {
    fn schema() -> RefOr<Schema> {
        let mut described = String::from("Stable snake_case code, for programs:\n");
        for r in Reason::ALL {
            let _ = match r.status() {
                Some(s) => writeln!(
                    described,
                    "- `{}` ({}): {}",
                    r.as_str(),
                    s.as_u16(),
                    r.description()
                ),
                None => writeln!(described, "- `{}`: {}", r.as_str(), r.description()),
            };
        }
        let reason = ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(described))
            .enum_values(Some(Reason::ALL.iter().map(|r| r.as_str())));
        let message = ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "Human-readable explanation, for people. Never contains secrets.",
            ));
        let request_id = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[0-9a-f]{32}$"))
            .description(Some(
                "The verifier's id of the request, also in its `x-request-id` header, its log line and its audit record.",
            ));
        ObjectBuilder::new()
            .description(Some("Body of every non-2xx answer."))
            .property("reason", reason)
            .required("reason")
            .property("message", message)
            .required("message")
            .property("request_id", request_id)
            .into()
    }
}

impl ToSchema for RefusalBody {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Refusal")
    }
}

/// A JSON object whose fields the description names (bodies whose types
/// live in other crates without a schema: statement files, custody messages).
pub struct JsonObject;

impl PartialSchema for JsonObject {
    fn schema() -> RefOr<Schema> {
        Object::with_type(Type::Object).into()
    }
}

impl ToSchema for JsonObject {}

/// `POST /v1/custody/join/offer` (`hermetic_custody::JoinHello`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct JoinHello {
    /// 32 random bytes, lower-case hex, to appear in the responder's document.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    nonce: String,
}

/// `POST /v1/custody/join/key` (`hermetic_custody::JoinRequest`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct JoinKeyRequest {
    /// The challenge answered, lower-case hex.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    challenge: String,
    /// The joiner's attestation document, standard base64.
    attestation_document: String,
}

fn refusal_response(description: &str) -> DocResponse {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(RefOr::<Schema>::Ref(
                utoipa::openapi::Ref::from_schema_name("Refusal"),
            ))),
        )
        .build()
}

/// The statuses the layers around every handler may answer with.
const COMMON: &[(&str, &str)] = &[
    ("429", "`rate_limited`: too many requests from this address"),
    (
        "500",
        "`internal_error`, `store_error` or `audit_log_unavailable`: the verifier failed inside; retry",
    ),
    (
        "503",
        "`timeout`, `store_unavailable` (or the route's own transient reasons); retry",
    ),
];

/// Completes the document built from the handlers' attributes.
pub fn finish(mut doc: OpenApi, listener: Listener) -> OpenApi {
    doc.info.title = match listener {
        Listener::Public => "hermetic-verifier public API".into(),
        Listener::Admin => "hermetic-verifier admin API".into(),
        Listener::Sealed => "hermetic-verifier sealed (custody) API".into(),
    };
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    doc.info.description = Some(match listener {
        Listener::Public => "The enclave-facing API: challenges, releases, the verifier's attestation, the transparency log's checkpoint and tiles, and replicas joining. Every non-2xx answer is a `Refusal`.".into(),
        Listener::Sealed => "A sealed verifier's public listener: until K custodians re-sealed their shares to its attested key, only these routes answer; every other one answers 503 `sealed`. Every non-2xx answer is a `Refusal`.".into(),
        Listener::Admin => "The admin API (its own listener): every `/admin/v1` route needs `Authorization: Bearer TOKEN`. The token creates secrets and submits owner-signed changes; it never reads a value. Every non-2xx answer is a `Refusal`.".into(),
    });
    doc.info.license = Some(utoipa::openapi::License::new("Apache-2.0"));
    let components = doc.components.get_or_insert_with(Default::default);
    components
        .schemas
        .insert("Refusal".into(), RefusalBody::schema());
    if listener == Listener::Admin {
        components.security_schemes.insert(
            "admin_token".into(),
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An admin token (the first one is written to DIR/admin.token).",
                    ))
                    .build(),
            ),
        );
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        let secured = listener == Listener::Admin && path.starts_with("/admin/");
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            let responses = &mut op.responses.responses;
            for (status, description) in COMMON {
                responses
                    .entry((*status).into())
                    .or_insert_with(|| refusal_response(description).into());
            }
            if op.request_body.is_some() {
                responses.entry("413".into()).or_insert_with(|| {
                    refusal_response("`request_too_large`: the body is over `--body-limit`").into()
                });
            }
            if secured {
                op.security = Some(vec![SecurityRequirement::new(
                    "admin_token",
                    Vec::<String>::new(),
                )]);
                responses.entry("401".into()).or_insert_with(|| {
                    refusal_response(
                        "`unauthorized` (no or unknown token), or `row_tampered`/`row_rolled_back` (the token's stored row was altered)",
                    )
                    .into()
                });
            }
        }
    }
    let spec = OperationBuilder::new()
        .summary(Some("This document"))
        .operation_id(Some("openapi"))
        .tag("meta")
        .response(
            "200",
            ResponseBuilder::new()
                .description("The OpenAPI 3.1 description of this listener's API")
                .content("application/json", Content::new(Some(JsonObject::schema())))
                .build(),
        )
        .response(
            "429",
            refusal_response("`rate_limited`: too many requests from this address"),
        )
        .response("503", refusal_response("`timeout`"))
        .build();
    doc.paths
        .paths
        .insert(OPENAPI_ROUTE.into(), PathItem::new(HttpMethod::Get, spec));
    doc
}

/// The document as served.
pub fn to_json(doc: &OpenApi) -> String {
    // Serializing a tree of maps, strings and numbers does not fail.
    doc.to_pretty_json().unwrap_or_else(|_| String::from("{}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_schema_lists_every_reason() {
        let schema = serde_json::to_value(RefusalBody::schema()).unwrap();
        let listed: Vec<&str> = schema["properties"]["reason"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let all: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(listed, all);
        let described = schema["properties"]["reason"]["description"]
            .as_str()
            .unwrap();
        for r in Reason::ALL {
            assert!(described.contains(&format!("`{}`", r.as_str())), "{r}");
        }
    }
}
