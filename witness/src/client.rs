//! A log's side of `add-checkpoint` (c2sp.org/tlog-witness): send a
//! checkpoint and a consistency proof to one witness, learn the witness's
//! size from a 409 and send again once with the right proof, and check the
//! answer against the witness's pinned key.
//!
//! Plain `http://` only: witnesses on loopback or behind a TLS-terminating
//! proxy. The cosignature is what is trusted, not the channel: a man in the
//! middle can withhold cosignatures but not forge one.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use hermetic_tlog::cosignature::{Cosignature, CosignerKey};
use hermetic_tlog::merkle::Hash;
use hermetic_tlog::witness::{
    self, AddCheckpoint, RequestError, ResponseError, ADD_CHECKPOINT_PATH,
};

/// The largest answer read from a witness.
pub const MAX_ANSWER: usize = 64 * 1024;

/// Builds the consistency proof from `old` to `new` records of the caller's
/// log (`old` < `new`, both >= 1), or `None` when the log cannot (`old`
/// beyond its size: the witness has seen more of the log than it has).
pub trait ProofSource: Send + Sync {
    fn prove(&self, old: u64, new: u64) -> Option<Vec<Hash>>;
}

impl<F> ProofSource for F
where
    F: Fn(u64, u64) -> Option<Vec<Hash>> + Send + Sync,
{
    fn prove(&self, old: u64, new: u64) -> Option<Vec<Hash>> {
        self(old, new)
    }
}

/// Why one witness gave no cosignature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("not an http:// URL: {url}")]
    BadUrl { url: String },
    #[error("the checkpoint cannot be submitted: {0}")]
    Request(RequestError),
    #[error("unreachable: {message}")]
    Transport { message: String },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("refused with status {status}: {message}")]
    Refused { status: u16, message: String },
    #[error(
        "holds size {witness_size} after a retry from the size it named (sent old size {old_size})"
    )]
    Conflict { old_size: u64, witness_size: u64 },
    #[error("holds another checkpoint of size {size}: the log forked, or the witness did")]
    Fork { size: u64 },
    #[error("has cosigned size {witness_size}, beyond this checkpoint's size {size}: the log was rolled back (or the checkpoint is stale)")]
    Ahead { witness_size: u64, size: u64 },
    #[error("the log cannot prove size {new} consistent with size {old}")]
    NoProof { old: u64, new: u64 },
    #[error("answered 409 without a size ({body:?})")]
    BadSizeAnswer { body: String },
    #[error("bad answer: {0}")]
    Response(ResponseError),
}

/// One witness's cosignature of a submitted checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// The submitted note with this witness's cosignature line added.
    pub note: String,
    pub cosignature: Cosignature,
    /// The signature line as the witness sent it (newline included).
    pub line: String,
    /// The size the witness now holds (the checkpoint's).
    pub size: u64,
}

/// What one `add-checkpoint` exchange answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exchange {
    /// 200, its body.
    Cosigned(Vec<u8>),
    /// 409, the witness's size.
    Conflict(u64),
}

/// How many times `submit` sends again from the size a 409 named: once is
/// enough for a log that is the witness's only submitter; a second covers a
/// submission of an earlier checkpoint still in flight (a pool's
/// straggler) advancing the witness in between.
pub const MAX_RETRIES: u32 = 2;

/// A keep-alive HTTP/1.1 client for witnesses.
#[derive(Clone, Debug)]
pub struct WitnessClient {
    http: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl WitnessClient {
    /// `timeout` bounds each exchange (connect, send, read).
    pub fn new(timeout: Duration) -> WitnessClient {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        WitnessClient {
            http: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
        }
    }

    /// One exchange: POSTs `req` to `prefix/add-checkpoint`.
    pub async fn add_checkpoint(
        &self,
        prefix: &str,
        req: &AddCheckpoint,
    ) -> Result<Exchange, SubmitError> {
        if !prefix.starts_with("http://") {
            return Err(SubmitError::BadUrl {
                url: prefix.to_owned(),
            });
        }
        let url = format!("{}{ADD_CHECKPOINT_PATH}", prefix.trim_end_matches('/'));
        let request = Request::builder()
            .method(Method::POST)
            .uri(&url)
            .body(Full::new(Bytes::from(req.to_body())))
            .map_err(|_| SubmitError::BadUrl {
                url: prefix.to_owned(),
            })?;
        let transport = |message: String| SubmitError::Transport { message };
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| transport(describe(&e)))?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| transport(format!("reading the answer: {e}")))?
                .to_bytes()
                .to_vec();
            Ok::<_, SubmitError>((status, body))
        };
        let (status, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| SubmitError::Timeout(self.timeout))??;
        match status {
            200 => Ok(Exchange::Cosigned(body)),
            409 => witness::parse_size_body(&body)
                .map(Exchange::Conflict)
                .ok_or_else(|| SubmitError::BadSizeAnswer {
                    body: String::from_utf8_lossy(&body).chars().take(100).collect(),
                }),
            _ => Err(SubmitError::Refused {
                status,
                message: String::from_utf8_lossy(&body)
                    .trim()
                    .chars()
                    .take(300)
                    .collect(),
            }),
        }
    }

    /// Submits the signed checkpoint `note` to the witness at `prefix`
    /// whose key is `key`, from `old_size` (the size the caller believes
    /// the witness holds; 0 if unknown), with proofs from `proofs`. On a 409
    /// it sends again from the size the witness named (at most
    /// [`MAX_RETRIES`] times). The cosignature
    /// is verified with `key`.
    pub async fn submit(
        &self,
        prefix: &str,
        key: &CosignerKey,
        note: &str,
        old_size: u64,
        proofs: &dyn ProofSource,
    ) -> Result<Submitted, SubmitError> {
        let size = AddCheckpoint::new(0, Vec::new(), note)
            .map_err(SubmitError::Request)?
            .checkpoint
            .size;
        let mut old = old_size.min(size);
        let mut retries = 0;
        loop {
            let proof = proof_for(proofs, old, size)?;
            let req = AddCheckpoint::new(old, proof, note).map_err(SubmitError::Request)?;
            match self.add_checkpoint(prefix, &req).await? {
                Exchange::Cosigned(body) => {
                    let accepted = witness::accept_response(note, &body, key)
                        .map_err(SubmitError::Response)?;
                    return Ok(Submitted {
                        note: accepted.note,
                        cosignature: accepted.cosignature,
                        line: accepted.line,
                        size,
                    });
                }
                Exchange::Conflict(witness_size) if witness_size == old => {
                    // A 409 at the size sent is the root mismatch.
                    return Err(SubmitError::Fork { size: witness_size });
                }
                Exchange::Conflict(witness_size) if witness_size > size => {
                    return Err(SubmitError::Ahead { witness_size, size });
                }
                Exchange::Conflict(witness_size) if retries < MAX_RETRIES => {
                    retries += 1;
                    old = witness_size;
                }
                Exchange::Conflict(witness_size) => {
                    return Err(SubmitError::Conflict {
                        old_size: old,
                        witness_size,
                    })
                }
            }
        }
    }
}

fn proof_for(proofs: &dyn ProofSource, old: u64, new: u64) -> Result<Vec<Hash>, SubmitError> {
    if old == 0 || old == new {
        return Ok(Vec::new());
    }
    proofs
        .prove(old, new)
        .ok_or(SubmitError::NoProof { old, new })
}

/// The error and its causes on one line ("connection refused", not just
/// "client error").
fn describe(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
