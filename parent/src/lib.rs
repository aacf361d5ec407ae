//! hermetic-parent: the proxy on the parent instance, the least trusted
//! party. It accepts an enclave's connections (vsock on Nitro hosts; Unix or
//! loopback TCP in tests and the demo), connects each only to an
//! allow-listed destination the enclave names, and relays TLS records —
//! checking their framing, never their contents. It logs byte counts only.
//!
//! Inbound mode ([`Config::forward_to`]) runs the other way, for a verifier
//! that is itself an enclave on this host: clients connect over TCP and
//! every connection is relayed to the one fixed destination (the verifier
//! enclave's vsock port), with the same record checks, limits and logs.
//! There is no destination line: inbound clients speak plain TLS.
//!
//! A destination allowed with [`Config::allow_postgres`] is a PostgreSQL
//! server: before its TLS records the parent relays PostgreSQL's SSLRequest
//! and the server's `S`, and nothing else in plaintext ([`postgres`]).

pub mod postgres;
pub mod record;
mod relay;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hermetic_transport::proxy::{read_request, write_answer};
use hermetic_transport::{connect, Endpoint, Listener, Stream, TransportError};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

pub use relay::{Capture, CloseReason, Counts};

/// The proxy's limits and allow-list.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Endpoint,
    /// Destinations an enclave may ask for; anything else is refused.
    pub allow: Vec<Endpoint>,
    /// PostgreSQL destinations an enclave may ask for: the same as `allow`,
    /// but the connection begins with PostgreSQL's SSLRequest and the
    /// server's `S` (exactly those bytes) before its TLS records.
    pub allow_postgres: Vec<Endpoint>,
    /// Inbound mode: relay every accepted connection to this endpoint (no
    /// destination line; `allow` is then empty).
    pub forward_to: Option<Endpoint>,
    /// Connections relayed at once; more are refused (`DENIED busy`).
    pub max_connections: usize,
    /// New connections per second (token bucket, burst = 2× the rate).
    pub connections_per_second: u32,
    /// A connection with no bytes either way for this long is closed.
    pub idle_timeout: Duration,
    /// How long the enclave has to send its destination line, and how
    /// long connecting to the destination may take.
    pub handshake_timeout: Duration,
    /// Largest TLS record payload relayed.
    pub max_record: usize,
    /// Most bytes relayed in one direction of one connection.
    pub max_connection_bytes: u64,
    /// Write every relayed record (direction byte + record) to this file,
    /// so an operator can see exactly what passes through the parent.
    pub capture: Option<PathBuf>,
    /// On shutdown, how long in-flight connections may finish.
    pub shutdown_grace: Duration,
}

impl Config {
    pub fn new(listen: Endpoint, allow: Vec<Endpoint>) -> Self {
        Config {
            listen,
            allow,
            allow_postgres: Vec::new(),
            forward_to: None,
            max_connections: 64,
            connections_per_second: 50,
            idle_timeout: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(10),
            max_record: record::MAX_RECORD_PAYLOAD,
            max_connection_bytes: 16 * 1024 * 1024,
            capture: None,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ParentError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("capture file {path}: {source}")]
    Capture {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the allow-list is empty: the parent would relay nothing")]
    EmptyAllowList,
    #[error("inbound mode (--forward-to) relays to one destination: give no --allow or --allow-postgres")]
    ForwardWithAllowList,
    #[error("{0} is given with both --allow and --allow-postgres: choose what it is")]
    AllowedTwice(Endpoint),
}

/// A bound proxy, ready to run.
pub struct Proxy {
    config: Arc<Config>,
    listener: Listener,
    capture: Option<Arc<Capture>>,
}

/// New-connection rate limit (token bucket).
struct Bucket {
    tokens: f64,
    last: Instant,
    rate: f64,
    burst: f64,
}

impl Bucket {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Proxy {
    pub async fn bind(config: Config) -> Result<Self, ParentError> {
        let no_allow = config.allow.is_empty() && config.allow_postgres.is_empty();
        match (&config.forward_to, no_allow) {
            (None, true) => return Err(ParentError::EmptyAllowList),
            (Some(_), false) => return Err(ParentError::ForwardWithAllowList),
            _ => {}
        }
        if let Some(both) = config
            .allow_postgres
            .iter()
            .find(|d| config.allow.contains(d))
        {
            return Err(ParentError::AllowedTwice(both.clone()));
        }
        let capture = match &config.capture {
            Some(path) => Some(Arc::new(Capture::create(path).map_err(|source| {
                ParentError::Capture {
                    path: path.clone(),
                    source,
                }
            })?)),
            None => None,
        };
        let listener = Listener::bind(&config.listen).await?;
        Ok(Proxy {
            config: Arc::new(config),
            listener,
            capture,
        })
    }

    pub fn local_endpoint(&self) -> Endpoint {
        self.listener.local_endpoint()
    }

    /// Accepts and relays until `shutdown` completes, then lets in-flight
    /// connections finish for up to the grace period.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let cfg = self.config;
        let slots = Arc::new(Semaphore::new(cfg.max_connections));
        let rate = f64::from(cfg.connections_per_second.max(1));
        let bucket = Mutex::new(Bucket {
            tokens: rate * 2.0,
            last: Instant::now(),
            rate,
            burst: rate * 2.0,
        });
        let mut tasks = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                _ = &mut shutdown => break,
                a = self.listener.accept() => a,
            };
            let (mut stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            };
            while tasks.try_join_next().is_some() {}
            let allowed_rate = bucket.lock().map(|mut b| b.take()).unwrap_or(false);
            let permit = slots.clone().try_acquire_owned().ok();
            let refusal = match (allowed_rate, &permit) {
                (false, _) => Some("rate limited"),
                (_, None) => Some("busy"),
                _ => None,
            };
            if let Some(reason) = refusal {
                tracing::warn!(%peer, reason, "connection refused");
                tasks.spawn(async move {
                    let _ = write_answer(&mut stream, Some(reason)).await;
                });
                continue;
            }
            let cfg = cfg.clone();
            let capture = self.capture.clone();
            tasks.spawn(async move {
                let _permit = permit;
                handle(stream, peer, &cfg, capture).await;
            });
        }
        tracing::info!(in_flight = tasks.len(), "shutting down: no new connections");
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(cfg.shutdown_grace, drain)
            .await
            .is_err()
        {
            tracing::warn!("grace period over: closing the remaining connections");
        }
    }
}

async fn handle(enclave: Stream, peer: String, cfg: &Config, capture: Option<Arc<Capture>>) {
    match &cfg.forward_to {
        Some(dest) => forward(enclave, peer, dest, cfg, capture).await,
        None => handle_outbound(enclave, peer, cfg, capture).await,
    }
}

/// Inbound mode: a client's connection, relayed to the fixed destination.
async fn forward(
    client: Stream,
    peer: String,
    dest: &Endpoint,
    cfg: &Config,
    capture: Option<Arc<Capture>>,
) {
    let upstream = match tokio::time::timeout(cfg.handshake_timeout, connect(dest)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::warn!(%peer, %dest, error = %e, "destination unreachable");
            return;
        }
        Err(_) => {
            tracing::warn!(%peer, %dest, "destination connect timed out");
            return;
        }
    };
    let started = Instant::now();
    let (up, down, reason) = relay::relay(client, upstream, cfg, capture.as_deref()).await;
    tracing::info!(
        %peer,
        %dest,
        inbound = true,
        up_bytes = up.bytes,
        up_records = up.records,
        down_bytes = down.bytes,
        down_records = down.records,
        millis = started.elapsed().as_millis() as u64,
        closed = %reason,
        "connection closed"
    );
}

async fn handle_outbound(
    mut enclave: Stream,
    peer: String,
    cfg: &Config,
    capture: Option<Arc<Capture>>,
) {
    let dest = match read_request(&mut enclave, cfg.handshake_timeout).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "connection refused: bad destination line");
            let _ = write_answer(&mut enclave, Some("bad destination line")).await;
            return;
        }
    };
    let is_postgres = cfg.allow_postgres.contains(&dest);
    if !is_postgres && !cfg.allow.contains(&dest) {
        tracing::warn!(%peer, %dest, "connection refused: destination not allowed");
        let _ = write_answer(&mut enclave, Some("destination not allowed")).await;
        return;
    }
    let mut upstream = match tokio::time::timeout(cfg.handshake_timeout, connect(&dest)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::warn!(%peer, %dest, error = %e, "destination unreachable");
            let _ = write_answer(&mut enclave, Some("destination unreachable")).await;
            return;
        }
        Err(_) => {
            tracing::warn!(%peer, %dest, "destination connect timed out");
            let _ = write_answer(&mut enclave, Some("destination unreachable")).await;
            return;
        }
    };
    if write_answer(&mut enclave, None).await.is_err() {
        return;
    }
    if is_postgres {
        if let Err(reason) =
            postgres_preamble(&mut enclave, &mut upstream, cfg, capture.as_deref()).await
        {
            tracing::warn!(%peer, %dest, %reason, "connection closed: refused before TLS");
            return;
        }
    }
    let started = Instant::now();
    let (up, down, reason) = relay::relay(enclave, upstream, cfg, capture.as_deref()).await;
    tracing::info!(
        %peer,
        %dest,
        up_bytes = up.bytes,
        up_records = up.records,
        down_bytes = down.bytes,
        down_records = down.records,
        millis = started.elapsed().as_millis() as u64,
        closed = %reason,
        "connection closed"
    );
}

/// Why a PostgreSQL connection closed before its TLS records.
#[derive(Debug, thiserror::Error)]
enum PreambleClose {
    #[error("refused: {0}")]
    Refused(#[from] postgres::PreambleError),
    #[error("no SSLRequest or answer within {0:?}")]
    Timeout(Duration),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Relays PostgreSQL's SSLRequest (enclave → server) and the `S` answer
/// (server → enclave), each checked byte for byte, and captures both.
async fn postgres_preamble(
    enclave: &mut Stream,
    upstream: &mut Stream,
    cfg: &Config,
    capture: Option<&Capture>,
) -> Result<(), PreambleClose> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let within = cfg.handshake_timeout;
    let mut request = [0u8; 8];
    tokio::time::timeout(within, enclave.read_exact(&mut request))
        .await
        .map_err(|_| PreambleClose::Timeout(within))??;
    postgres::check_request(&request)?;
    upstream.write_all(&request).await?;
    upstream.flush().await?;
    if let Some(c) = capture {
        c.write(b'>', &request);
    }
    let answer = tokio::time::timeout(within, upstream.read_u8())
        .await
        .map_err(|_| PreambleClose::Timeout(within))??;
    postgres::check_answer(answer)?;
    enclave.write_all(&[answer]).await?;
    enclave.flush().await?;
    if let Some(c) = capture {
        c.write(b'<', &[answer]);
    }
    Ok(())
}
