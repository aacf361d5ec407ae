//! Every non-2xx answer: an HTTP status and a [`Refusal`] body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use hermetic_envelope::wire::Refusal;

pub use super::reason::Reason;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRefusal {
    pub status: StatusCode,
    pub reason: Reason,
    pub message: String,
}

impl ApiRefusal {
    pub fn new(status: StatusCode, reason: Reason, message: impl Into<String>) -> Self {
        ApiRefusal {
            status,
            reason,
            message: message.into(),
        }
    }

    pub fn bad_request(reason: Reason, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, reason, message)
    }

    pub fn forbidden(reason: Reason, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, reason, message)
    }

    pub fn internal(reason: Reason, message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, reason, message)
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, Reason::NotFound, "no such endpoint")
    }
}

/// Attached to every refusal response so the logging middleware can name
/// the reason without parsing the body.
#[derive(Debug, Clone, Copy)]
pub struct RefusalReason(pub Reason);

impl IntoResponse for ApiRefusal {
    fn into_response(self) -> Response {
        let mut body = Refusal::new(self.reason.as_str(), self.message);
        body.request_id = super::request_id::current().map(|id| id.to_string());
        let mut response = (self.status, Json(body)).into_response();
        response.extensions_mut().insert(RefusalReason(self.reason));
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// Maps a body-reading failure (too large, or the client went away).
pub fn body_refusal(rejection: axum::extract::rejection::BytesRejection) -> ApiRefusal {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiRefusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Reason::RequestTooLarge,
            "the request body is over the size limit",
        )
    } else {
        ApiRefusal::bad_request(Reason::BadRequest, "the request body could not be read")
    }
}

/// A route's one path parameter, refused as a [`Refusal`] (400
/// `bad_request`) when it does not decode (invalid percent-encoding or
/// UTF-8), where axum's own `Path` would answer in plain text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathParam(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PathParam {
    type Rejection = ApiRefusal;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(p)| PathParam(p))
            .map_err(|e| {
                ApiRefusal::bad_request(
                    Reason::BadRequest,
                    format!("the path does not decode: {}", e.body_text()),
                )
            })
    }
}
