//! JSON over HTTP/1.1 on the TLS stream (hyper's client connection).

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{refusal, FetchError};

/// An error with its causes ("connection error: peer sent bad record MAC"):
/// hyper's own message alone hides what TLS noticed.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Largest answer read from the verifier.
const MAX_ANSWER: usize = 1024 * 1024;

pub(super) struct Connection {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl Connection {
    pub async fn new<S>(stream: S, host: &str) -> Result<Self, FetchError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| FetchError::Http(chain(&e)))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Connection {
            sender,
            host: host.to_string(),
        })
    }

    pub async fn post_json<T: Serialize, R: DeserializeOwned>(
        &mut self,
        path: &str,
        body: &T,
    ) -> Result<R, FetchError> {
        let body = serde_json::to_vec(body).map_err(|e| FetchError::Http(chain(&e)))?;
        let request = hyper::Request::post(path)
            .header(hyper::header::HOST, &self.host)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| FetchError::Http(chain(&e)))?;
        self.sender
            .ready()
            .await
            .map_err(|e| FetchError::Http(chain(&e)))?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| FetchError::Http(chain(&e)))?;
        let status = response.status().as_u16();
        let bytes = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| FetchError::Http(chain(e.as_ref())))?
            .to_bytes();
        if !(200..300).contains(&status) {
            return Err(refusal(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| FetchError::BadAnswer(e.to_string()))
    }
}
