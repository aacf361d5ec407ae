//! The witness's HTTP side: `POST /add-checkpoint` over
//! [`hermetic_tlog::witness::decide`].
//!
//! Each known log has one lock, held from reading its state to persisting
//! the new one, so two concurrent requests cannot both advance from the
//! same old state (the race c2sp.org/tlog-witness, "add-checkpoint",
//! describes); different logs do not wait for each other. The new state is
//! on disk before the cosignature leaves. A log-signed checkpoint that
//! contradicts the state is kept as evidence (see
//! [`StateDir::keep_evidence`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use hermetic_tlog::cosignature::{Cosigner, CosignerKey};
use hermetic_tlog::witness::{
    self, AddCheckpoint, KnownLogs, LogState, Verdict, ADD_CHECKPOINT_PATH, SIZE_CONTENT_TYPE,
};
use tokio::sync::Mutex;

use crate::state::{StateDir, StateError};

/// The largest request body accepted: 63 proof lines and a checkpoint with
/// a few dozen signatures fit many times over.
pub const MAX_BODY: usize = 64 * 1024;

/// Unix seconds for cosignature timestamps, from the caller (tests pass a
/// fixed clock; the binary the system clock).
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock in unix seconds (0 if it is before 1970, which
/// `cosign` accepts; a witness has no better answer).
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    })
}

/// A running witness's state: its key, the logs it knows, their states.
pub struct Witness {
    cosigner: Cosigner,
    logs: KnownLogs,
    states: BTreeMap<String, Mutex<Option<LogState>>>,
    dir: StateDir,
    clock: Clock,
}

/// One answer: status, content type, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Answer {
    fn text(status: u16, body: impl Into<String>) -> Answer {
        Answer {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into().into_bytes(),
        }
    }
}

impl Witness {
    /// Opens (and locks) the state directory and loads each known log's
    /// state. A state file that does not parse stops the start: starting
    /// from size 0 would let the log roll the witness back.
    pub fn open(
        cosigner: Cosigner,
        logs: KnownLogs,
        dir: StateDir,
        clock: Clock,
    ) -> Result<Witness, StateError> {
        let mut states = BTreeMap::new();
        for origin in logs.origins() {
            states.insert(origin.to_owned(), Mutex::new(dir.load(origin)?));
        }
        Ok(Witness {
            cosigner,
            logs,
            states,
            dir,
            clock,
        })
    }

    pub fn cosigner_key(&self) -> CosignerKey {
        self.cosigner.cosigner_key()
    }

    /// Handles one `add-checkpoint` body.
    pub async fn add_checkpoint(self: &Arc<Self>, body: &[u8]) -> Answer {
        let req = match AddCheckpoint::parse(body) {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(status = 400, reason = %e, "add-checkpoint refused");
                return Answer::text(400, format!("{e}\n"));
            }
        };
        let origin = req.origin().to_owned();
        let Some(lock) = self.states.get(&origin) else {
            let verdict = witness::decide(&self.logs, None, &req, (self.clock)(), &self.cosigner);
            return self.answer(&origin, verdict);
        };
        let mut held = lock.lock().await;
        let verdict = witness::decide(
            &self.logs,
            held.as_ref(),
            &req,
            (self.clock)(),
            &self.cosigner,
        );
        if misbehaviour(&verdict) {
            let this = Arc::clone(self);
            let body = body.to_vec();
            match tokio::task::spawn_blocking(move || this.dir.keep_evidence(&body)).await {
                Ok(Ok(Some(path))) => tracing::warn!(
                    origin = %origin,
                    evidence = %path.display(),
                    "the log signed a checkpoint inconsistent with the one cosigned"
                ),
                Ok(Ok(None)) => {}
                Ok(Err(e)) => tracing::error!(origin = %origin, error = %e, "cannot keep evidence"),
                Err(e) => tracing::error!(origin = %origin, error = %e, "evidence writer failed"),
            }
        }
        if let Verdict::Cosign(c) = &verdict {
            if held.as_ref() != Some(&c.state) {
                let this = Arc::clone(self);
                let (o, note) = (origin.clone(), c.note.clone());
                let stored = tokio::task::spawn_blocking(move || this.dir.store(&o, &note)).await;
                match stored {
                    Ok(Ok(())) => *held = Some(c.state),
                    Ok(Err(e)) => {
                        tracing::error!(origin = %origin, error = %e, "cannot persist the state");
                        return Answer::text(500, "the witness could not persist its state\n");
                    }
                    Err(e) => {
                        tracing::error!(origin = %origin, error = %e, "state writer failed");
                        return Answer::text(500, "the witness could not persist its state\n");
                    }
                }
            }
        }
        self.answer(&origin, verdict)
    }

    fn answer(&self, origin: &str, verdict: Verdict) -> Answer {
        let status = verdict.status();
        match verdict {
            Verdict::Cosign(c) => {
                tracing::info!(
                    origin,
                    size = c.state.size,
                    timestamp = c.timestamp,
                    "cosigned"
                );
                Answer {
                    status,
                    content_type: "text/plain; charset=utf-8",
                    body: c.signatures.into_bytes(),
                }
            }
            Verdict::Conflict(c) => {
                tracing::info!(origin, status, reason = %c, "add-checkpoint conflict");
                Answer {
                    status,
                    content_type: SIZE_CONTENT_TYPE,
                    body: witness::format_size_body(c.witness_size()).into_bytes(),
                }
            }
            Verdict::Refuse(r) => {
                tracing::info!(origin, status, reason = %r, "add-checkpoint refused");
                Answer::text(status, format!("{r}\n"))
            }
        }
    }

    /// The router: `POST /add-checkpoint`.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route(ADD_CHECKPOINT_PATH, post(handle))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(self)
    }
}

/// A checkpoint the log signed (checked before these verdicts) that
/// contradicts what the witness cosigned: a fork at its size, or a proof
/// that does not connect the two.
fn misbehaviour(verdict: &Verdict) -> bool {
    matches!(
        verdict,
        Verdict::Refuse(witness::Refusal::BadProof { old_size: 1.., .. })
            | Verdict::Conflict(witness::Conflict::RootMismatch { .. })
    )
}

async fn handle(State(witness): State<Arc<Witness>>, body: Bytes) -> Response {
    // A task of its own: a client hanging up must not cancel the request
    // between persisting the state and updating the state in memory.
    let answer = match tokio::spawn(async move { witness.add_checkpoint(&body).await }).await {
        Ok(a) => a,
        Err(_) => Answer::text(500, "the witness failed on this request\n"),
    };
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, answer.content_type)],
        answer.body,
    )
        .into_response()
}

/// Serves the witness on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    witness: Arc<Witness>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, witness.router())
        .with_graceful_shutdown(shutdown)
        .await
}
