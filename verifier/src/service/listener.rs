//! Accepting connections: plain TCP or TLS (rustls, aws-lc-rs provider),
//! one HTTP/1.1 connection per task, bounded in number in all and per client
//! address, with handshake and header-read timeouts. The peer address is
//! handed to the router as `ConnectInfo` for the per-address rate limit.
//!
//! The per-address bound is what keeps one address from starving the rest:
//! without it, a client holding every connection slot open and idle makes
//! every other client wait. A connection over its address's bound is closed
//! at once, before any TLS or HTTP work, and counted
//! (`hermetic_refusals_total{reason="too_many_connections"}`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::metrics::OpenGauge;

/// How long a TLS handshake or a request head may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound on connections open at once per listener.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default bound on connections open at once per client address. An
/// enclave uses one connection at a time, and all enclaves behind one
/// parent instance share the parent's address.
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 32;

/// The key limits are counted under: an IPv4 address, or the /64 prefix of
/// an IPv6 address (one host is usually given a whole /64, so counting single
/// IPv6 addresses would let it take as many slots as it likes). IPv4-mapped
/// IPv6 addresses count as their IPv4 address.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::V6(octets.into())
            }
        },
    }
}

/// Connection bounds of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once, all addresses together.
    pub total: usize,
    /// Connections open at once from one address ([`address_key`]).
    pub per_address: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            total: DEFAULT_MAX_CONNECTIONS,
            per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
        }
    }
}

/// Open connections per address key.
#[derive(Debug, Default)]
struct OpenPerAddress {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One counted connection; dropping it uncounts it.
struct Held {
    counts: Arc<OpenPerAddress>,
    key: IpAddr,
}

impl OpenPerAddress {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        // Each update is one insert or remove: a poisoned map is consistent.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn try_hold(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<Held> {
        let key = address_key(ip);
        let mut open = self.lock();
        let n = open.entry(key).or_default();
        if *n >= max {
            if *n == 0 {
                open.remove(&key);
            }
            return None;
        }
        *n += 1;
        Some(Held {
            counts: self.clone(),
            key,
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut open = self.counts.lock();
        if let Some(n) = open.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Builds a TLS acceptor from PEM files (certificate chain, private key).
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("--tls-cert {}: no certificate", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("TLS certificate/key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A TLS acceptor presenting the attested identity's current certificate
/// and document (re-attested in place, see `hermetic_identity::server`).
pub fn attested_acceptor(
    identity: Arc<hermetic_identity::server::AttestedTls>,
) -> Result<TlsAcceptor, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(identity);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// How long connections still open when a listener stops get to finish
/// (the one that carried a sealed verifier's last share gets its answer);
/// then they are closed.
pub const DRAIN: Duration = Duration::from_secs(2);

/// Serves `router` on `listener` until `stop` completes or the task is
/// aborted; aborting it also ends every connection it accepted. On `stop`
/// the listener is closed at once (its address is free to bind again) and
/// the connections still open get [`DRAIN`] to finish before they are
/// closed, so no client (an idle keep-alive, a request head sent a byte at
/// a time) can hold the listener's owner up. `refused` is called with
/// `too_many_connections` for each connection closed over its address's
/// bound.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    limits: ConnectionLimits,
    refused: impl Fn(&'static str) + Send + 'static,
    open: OpenGauge,
    stop: impl std::future::Future<Output = ()> + Send,
) {
    let permits = Arc::new(Semaphore::new(limits.total.max(1)));
    let per_address = Arc::new(OpenPerAddress::default());
    let mut connections = JoinSet::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            () = &mut stop => break,
            accepted = async {
                let permit = permits.clone().acquire_owned().await.ok()?;
                Some((permit, listener.accept().await))
            } => accepted,
        };
        let Some((permit, accepted)) = accepted else {
            break;
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(event = "accept_failed", error = %e);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(held) = per_address.try_hold(peer.ip(), limits.per_address.max(1)) else {
            // Dropping the stream closes it; the permit goes back with it.
            drop(stream);
            drop(permit);
            refused("too_many_connections");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let tls = tls.clone();
        let open = OpenConnection::new(&open);
        connections.spawn(async move {
            let _permit = permit;
            let _held = held;
            let _open = open;
            match tls {
                Some(acceptor) => {
                    // A failed or slow handshake just drops the connection.
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    if let Ok(Ok(stream)) = handshake.await {
                        serve_connection(TokioIo::new(stream), peer, router).await
                    }
                }
                None => serve_connection(TokioIo::new(stream), peer, router).await,
            }
        });
    }
    drop(listener);
    let drain = async { while connections.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(DRAIN, drain).await;
    connections.abort_all();
}

/// Serves `router` on a vsock or Unix listener (a verifier enclave's
/// public API, reached through the host's inbound `hermetic-parent`). The
/// peer is always the parent, so there is no client address: connections
/// are bounded in all only, and the router sees `0.0.0.0:0` (one rate-limit
/// bucket; the parent applies its own per-connection limits).
pub async fn serve_transport(
    listener: hermetic_transport::Listener,
    router: Router,
    tls: Option<TlsAcceptor>,
    total: usize,
    open: OpenGauge,
) {
    let permits = Arc::new(Semaphore::new(total.max(1)));
    let peer = SocketAddr::from(([0, 0, 0, 0], 0));
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(event = "accept_failed", error = %e);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let router = router.clone();
        let tls = tls.clone();
        let open = OpenConnection::new(&open);
        connections.spawn(async move {
            let _permit = permit;
            let _open = open;
            match tls {
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    if let Ok(Ok(stream)) = handshake.await {
                        serve_connection(TokioIo::new(stream), peer, router).await
                    }
                }
                None => serve_connection(TokioIo::new(stream), peer, router).await,
            }
        });
    }
}

/// Counts one open connection (`hermetic_open_connections`) until dropped.
struct OpenConnection(OpenGauge);

impl OpenConnection {
    fn new(count: &OpenGauge) -> Self {
        count.inc();
        OpenConnection(count.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

pub(super) async fn serve_connection<I>(io: I, peer: SocketAddr, router: Router)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(req)
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT)
        .keep_alive(true)
        .serve_connection(io, service)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_counted_by_host_and_ipv6_by_prefix() {
        let key = |s: &str| address_key(s.parse().unwrap());
        assert_eq!(key("127.0.0.2"), key("127.0.0.2"));
        assert_ne!(key("127.0.0.1"), key("127.0.0.2"));
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:10.0.0.1"), key("10.0.0.1"));
    }

    #[test]
    fn each_address_holds_at_most_its_bound() {
        let counts = Arc::new(OpenPerAddress::default());
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.1".parse().unwrap();
        let first = counts.try_hold(a, 2).unwrap();
        let _second = counts.try_hold(a, 2).unwrap();
        assert!(counts.try_hold(a, 2).is_none());
        let _other = counts.try_hold(b, 2).unwrap();
        drop(first);
        assert!(counts.try_hold(a, 2).is_some());
        assert_eq!(counts.lock().len(), 2);
    }
}
