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
    #[error("inbound mode (--forward-to) relays to one destination: give no --allow")]
    ForwardWithAllowList,
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
        match (&config.forward_to, config.allow.is_empty()) {
            (None, true) => return Err(ParentError::EmptyAllowList),
            (Some(_), false) => return Err(ParentError::ForwardWithAllowList),
            _ => {}
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
    if !cfg.allow.contains(&dest) {
        tracing::warn!(%peer, %dest, "connection refused: destination not allowed");
        let _ = write_answer(&mut enclave, Some("destination not allowed")).await;
        return;
    }
    let upstream = match tokio::time::timeout(cfg.handshake_timeout, connect(&dest)).await {
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
