//! One id per HTTP request, so an operator can join what the verifier says
//! about it: the log line (`request_id=`), the refusal body's `request_id`,
//! the `x-request-id` response header and the audit record's `request_id`.
//!
//! The id is always made here: 128 random bits (aws-lc-rs), 32 lowercase
//! hex characters. A client's own `X-Request-Id` is not accepted: the
//! audit log is evidence, and an id chosen by the (anonymous) client could
//! make one request's records look like another's.

use std::cell::RefCell;
use std::fmt;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

/// The response header carrying the id.
pub const HEADER: &str = "x-request-id";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// A fresh random id. `None` only if the system's random source failed,
    /// in which case the request is served without one.
    pub fn generate() -> Option<Self> {
        use aws_lc_rs::rand::SecureRandom;
        let mut bytes = [0u8; 16];
        aws_lc_rs::rand::SystemRandom::new().fill(&mut bytes).ok()?;
        Some(RequestId(hex::encode(bytes)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

tokio::task_local! {
    /// The id of the request whose future is running.
    static TASK: RequestId;
}

thread_local! {
    /// The id of the request a blocking task (store, log) works for.
    static THREAD: RefCell<Option<RequestId>> = const { RefCell::new(None) };
}

/// The id of the request being served here, if any: in the request's
/// future, or in a blocking task started with [`spawn_blocking`].
pub fn current() -> Option<RequestId> {
    TASK.try_with(Clone::clone)
        .ok()
        .or_else(|| THREAD.with(|t| t.borrow().clone()))
}

/// Runs `f` on tokio's blocking pool, carrying the current request's id.
pub async fn spawn_blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    let id = current();
    tokio::task::spawn_blocking(move || {
        let previous = THREAD.with(|t| t.replace(id));
        let out = f();
        THREAD.with(|t| *t.borrow_mut() = previous);
        out
    })
    .await
}

/// Runs `fut` as its own task on the runtime, carrying the current
/// request's id and tracing span: it runs to its end even if the request's
/// future is dropped (its client went away).
pub async fn spawn<T: Send + 'static>(
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    use tracing::Instrument;
    let fut = fut.instrument(tracing::Span::current());
    match current() {
        Some(id) => tokio::spawn(TASK.scope(id, fut)).await,
        None => tokio::spawn(fut).await,
    }
}

/// The outermost layer of every router: makes the id, runs the request
/// inside a tracing span and the task-local scope holding it, and names it
/// in the response header.
pub async fn layer(req: Request, next: Next) -> Response {
    let Some(id) = RequestId::generate() else {
        return next.run(req).await;
    };
    let header = HeaderValue::from_str(id.as_str()).ok();
    let span = tracing::info_span!("request", request_id = %id);
    let mut response = {
        use tracing::Instrument;
        TASK.scope(id, next.run(req)).instrument(span).await
    };
    if let Some(value) = header {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_128_bit_hex_and_differ() {
        let a = RequestId::generate().unwrap();
        let b = RequestId::generate().unwrap();
        assert_eq!(a.as_str().len(), 32);
        assert!(a
            .as_str()
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn blocking_tasks_see_the_request_id() {
        let id = RequestId::generate().unwrap();
        let seen = TASK
            .scope(id.clone(), async { spawn_blocking(current).await.unwrap() })
            .await;
        assert_eq!(seen, Some(id));
        assert_eq!(spawn_blocking(current).await.unwrap(), None);
    }
}
