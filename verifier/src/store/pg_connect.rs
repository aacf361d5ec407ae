//! How the PostgreSQL store reaches its database: plain TCP (development),
//! TLS with a pinned CA (`serve --store-ca`), and through the parent
//! instance (`serve --store-via`, a verifier enclave's only way out).
//!
//! **TLS** is rustls with the aws-lc-rs provider (the workspace's one
//! provider), trusting the CA certificates of `--store-ca` and nothing else:
//! no system roots, and `sslmode=require` (a server answering `N` to the
//! SSLRequest is refused: no plaintext fallback). The server's certificate
//! must name the URL's host (what libpq's `sslmode=verify-full` checks,
//! PostgreSQL manual §34.19.1 "Client Verification of Server
//! Certificates"). The driver's TLS hook is `tokio_postgres::tls`
//! (`MakeTlsConnect`/`TlsConnect`), implemented here over `tokio-rustls` in
//! a few lines, with no new dependency: rust-postgres' own `postgres-rustls`
//! (0.5) depends on openssl, ring and x509-certificate, and the original
//! `tokio-postgres-rustls` is unmaintained by its maintained fork's account
//! (khorsolutions/tokio-postgres-rustls-improved, README).
//!
//! **Through the parent**: the sync `postgres` driver connects its own
//! sockets and has no `connect_raw`, so each new connection gets a
//! loopback forwarder of its own: a listener on `127.0.0.1:0` that accepts
//! exactly one connection, opens the parent's stream with the destination
//! line for the URL's `host:port` (`hermetic_transport::proxy`), and copies
//! bytes both ways. The driver connects to that listener (`hostaddr`) while
//! the URL's host stays the TLS server name, so TLS runs end to end from
//! this process to PostgreSQL and the forwarder and the parent see only the
//! SSLRequest, its `S` and TLS records (the parent checks exactly that:
//! `hermetic-parent --allow-postgres`). The alternative, driving
//! `tokio_postgres` over the transport stream, would replace the sync
//! client the whole store is written against; the forwarder keeps the
//! driver unchanged and its one listener lives only until its one
//! connection arrives (or the connect timeout passes).

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hermetic_transport::proxy::connect_via;
use hermetic_transport::Endpoint;
use postgres::config::{Host, SslMode, SslNegotiation};
use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use postgres::{Client, Config, NoTls, Socket};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::StoreError;

/// How connections are made (see the module documentation).
pub struct PgConnector {
    tls: Option<PinnedTls>,
    via: Option<Via>,
}

impl std::fmt::Debug for PgConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConnector")
            .field("ca", &self.tls.as_ref().map(|t| &t.ca))
            .field("via", &self.via.as_ref().map(|v| &v.parent))
            .finish()
    }
}

/// TLS trusting only the pinned CA.
struct PinnedTls {
    config: Arc<rustls::ClientConfig>,
    ca: PathBuf,
}

/// The parent to connect through, the destination to ask it for (set from
/// the URL), and the small runtime the forwarders run on.
struct Via {
    parent: Endpoint,
    dest: Option<Endpoint>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Via {
    /// Dropping a runtime blocks, which is not allowed on an async runtime
    /// thread; its forwarders are only byte copies, safe to abandon.
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl PgConnector {
    /// Plain TCP or Unix socket, as the URL says (development and tests;
    /// `sslmode=require` in the URL is then refused: there is no CA).
    pub fn plain() -> Self {
        PgConnector {
            tls: None,
            via: None,
        }
    }

    /// TLS trusting only the CA certificates in `ca` (PEM) when given; through
    /// the parent at `via` when given (which needs `ca`: the parent relays
    /// TLS only, and the database must be authenticated end to end).
    pub fn new(ca: Option<&Path>, via: Option<Endpoint>) -> Result<Self, StoreError> {
        let tls = ca.map(pinned_tls).transpose()?;
        if via.is_some() && tls.is_none() {
            return Err(StoreError::Io(
                "--store-via needs --store-ca: through the parent the database connection must be TLS to a pinned CA".into(),
            ));
        }
        let via = match via {
            Some(parent) => {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("hermetic-pg-via")
                    .enable_all()
                    .build()
                    .map_err(|e| StoreError::Io(format!("--store-via: a runtime: {e}")))?;
                Some(Via {
                    parent,
                    dest: None,
                    runtime: Some(runtime),
                })
            }
            None => None,
        };
        Ok(PgConnector { tls, via })
    }

    /// Checks the URL's settings against this connector and adjusts them:
    /// with a pinned CA, TLS is required (`sslmode=disable` is refused);
    /// without one, `sslmode=require` is refused (nothing to verify with);
    /// through the parent, the URL names one TCP host, which becomes the
    /// destination asked of the parent.
    pub(crate) fn configure(&mut self, config: &mut Config) -> Result<(), StoreError> {
        let mode = config.get_ssl_mode();
        match (&self.tls, mode) {
            (Some(_), SslMode::Disable) => {
                return Err(StoreError::Db(
                    "the PostgreSQL URL says sslmode=disable but --store-ca requires TLS".into(),
                ))
            }
            (Some(_), _) => {
                config.ssl_mode(SslMode::Require);
            }
            (None, SslMode::Require) => {
                return Err(StoreError::Db(
                    "the PostgreSQL URL says sslmode=require: give the CA that issued the server's certificate with --store-ca".into(),
                ))
            }
            (None, _) => {
                // `prefer` with no TLS connector is plaintext; say so.
                config.ssl_mode(SslMode::Disable);
            }
        }
        if let Some(via) = &mut self.via {
            let host = match config.get_hosts() {
                [Host::Tcp(host)] => host.clone(),
                _ => {
                    return Err(StoreError::Db(
                        "--store-via needs a PostgreSQL URL with one TCP host (postgres://USER@HOST:PORT/DB)".into(),
                    ))
                }
            };
            if config.get_ssl_negotiation() == SslNegotiation::Direct {
                return Err(StoreError::Db(
                    "--store-via: the parent admits PostgreSQL's SSLRequest before TLS, not sslnegotiation=direct".into(),
                ));
            }
            if !config.get_hostaddrs().is_empty() {
                return Err(StoreError::Db(
                    "--store-via: the URL may not set hostaddr (the parent resolves the host)"
                        .into(),
                ));
            }
            let port = match config.get_ports() {
                [] => 5432,
                [port] => *port,
                _ => {
                    return Err(StoreError::Db(
                        "--store-via needs a PostgreSQL URL with one port".into(),
                    ))
                }
            };
            let dest = if host.contains(':') {
                format!("tcp://[{host}]:{port}")
            } else {
                format!("tcp://{host}:{port}")
            };
            via.dest = Some(
                dest.parse()
                    .map_err(|e| StoreError::Db(format!("--store-via: {e}")))?,
            );
        }
        Ok(())
    }

    /// Opens one connection with `config` (already [`configure`]d).
    ///
    /// [`configure`]: PgConnector::configure
    pub(crate) fn connect(&self, config: &Config) -> Result<Client, StoreError> {
        let made = match (&self.tls, &self.via) {
            (None, _) => config.connect(NoTls),
            (Some(tls), None) => config.connect(RustlsConnect(tls.config.clone())),
            (Some(tls), Some(via)) => via
                .forward_one(config)?
                .connect(RustlsConnect(tls.config.clone())),
        };
        made.map_err(|e| self.describe(e))
    }

    /// A failed connection as a store error, naming a refused certificate
    /// or a server without TLS for what it is.
    fn describe(&self, e: postgres::Error) -> StoreError {
        if e.as_db_error().is_some() {
            return super::postgres::pg_error(e);
        }
        if let Some(tls) = &self.tls {
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                if let Some(rustls_error) = s
                    .downcast_ref::<io::Error>()
                    .and_then(|io| io.get_ref())
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                {
                    return StoreError::Unavailable(format!(
                        "TLS to PostgreSQL failed: {rustls_error} (the server's certificate must be issued by the CA in --store-ca {} and name the URL's host)",
                        tls.ca.display()
                    ));
                }
                if s.to_string().contains("server does not support TLS") {
                    return StoreError::Unavailable(
                        "the PostgreSQL server does not offer TLS (it answered the SSLRequest with 'N'): --store-ca requires TLS, there is no plaintext fallback".into(),
                    );
                }
                source = s.source();
            }
        }
        super::postgres::pg_error(e)
    }
}

fn pinned_tls(path: &Path) -> Result<PinnedTls, StoreError> {
    let bad = |what: String| StoreError::Io(format!("--store-ca {}: {what}", path.display()));
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| bad(format!("not PEM certificates: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| bad(format!("not a CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(bad("holds no certificate".into()));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(PinnedTls {
        config: Arc::new(config),
        ca: path.to_owned(),
    })
}

impl Via {
    /// Starts a one-connection forwarder to the parent and returns `config`
    /// pointed at it (`hostaddr` 127.0.0.1 and its port; the host, and so
    /// the TLS server name, unchanged).
    fn forward_one(&self, config: &Config) -> Result<Config, StoreError> {
        let (Some(runtime), Some(dest)) = (&self.runtime, &self.dest) else {
            return Err(StoreError::Db(
                "--store-via was not configured with the URL".into(),
            ));
        };
        let unavailable = |e: io::Error| {
            StoreError::Unavailable(format!("--store-via: a loopback forwarder: {e}"))
        };
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(unavailable)?;
        let port = listener.local_addr().map_err(unavailable)?.port();
        let within = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(Duration::from_secs(3));
        let (parent, dest) = (self.parent.clone(), dest.clone());
        runtime.spawn(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                return;
            };
            // One connection, the driver's; the listener closes after it.
            let Ok(Ok((mut local, _))) = tokio::time::timeout(within, listener.accept()).await
            else {
                return;
            };
            drop(listener);
            match connect_via(&parent, &dest, within).await {
                Ok(mut remote) => {
                    let _ = tokio::io::copy_bidirectional(&mut local, &mut remote).await;
                }
                Err(e) => tracing::warn!(event = "store_via_refused", %parent, %dest, error = %e),
            }
        });
        Ok(local_config(config, port))
    }
}

/// A copy of `config` that connects to 127.0.0.1:`port` and keeps its host
/// as the TLS server name (tokio-postgres: `hostaddr` is where to connect,
/// `host` what to verify). `postgres::Config` cannot replace a port, so the
/// copy is built field by field.
fn local_config(config: &Config, port: u16) -> Config {
    let mut local = Config::new();
    for host in config.get_hosts() {
        if let Host::Tcp(h) = host {
            local.host(h);
        }
    }
    local
        .hostaddr(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .port(port)
        .ssl_mode(config.get_ssl_mode())
        .ssl_negotiation(config.get_ssl_negotiation())
        .keepalives(config.get_keepalives())
        .keepalives_idle(config.get_keepalives_idle())
        .target_session_attrs(config.get_target_session_attrs())
        .channel_binding(config.get_channel_binding());
    if let Some(v) = config.get_user() {
        local.user(v);
    }
    if let Some(v) = config.get_password() {
        local.password(v);
    }
    if let Some(v) = config.get_dbname() {
        local.dbname(v);
    }
    if let Some(v) = config.get_options() {
        local.options(v);
    }
    if let Some(v) = config.get_application_name() {
        local.application_name(v);
    }
    if let Some(v) = config.get_connect_timeout() {
        local.connect_timeout(*v);
    }
    if let Some(v) = config.get_tcp_user_timeout() {
        local.tcp_user_timeout(*v);
    }
    if let Some(v) = config.get_keepalives_interval() {
        local.keepalives_interval(v);
    }
    if let Some(v) = config.get_keepalives_retries() {
        local.keepalives_retries(v);
    }
    local
}

/// `MakeTlsConnect` over tokio-rustls with the pinned roots.
#[derive(Clone)]
struct RustlsConnect(Arc<rustls::ClientConfig>);

impl MakeTlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type TlsConnect = RustlsTlsConnect;
    type Error = rustls_pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsTlsConnect, Self::Error> {
        Ok(RustlsTlsConnect {
            config: self.0.clone(),
            name: ServerName::try_from(domain.to_owned())?,
        })
    }
}

struct RustlsTlsConnect {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

impl TlsConnect<Socket> for RustlsTlsConnect {
    type Stream = RustlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream>> + Send>>;

    fn connect(self, socket: Socket) -> Self::Future {
        Box::pin(async move {
            tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, socket)
                .await
                .map(|s| RustlsStream(Box::new(s)))
        })
    }
}

struct RustlsStream(Box<tokio_rustls::client::TlsStream<Socket>>);

impl TlsStream for RustlsStream {
    /// No `tls-server-end-point` binding (SCRAM-SHA-256-PLUS): the server is
    /// already authenticated by the pinned CA, and the binding's hash
    /// depends on the certificate's signature algorithm (RFC 5929 §4.1).
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn ca_file(dir: &Path) -> PathBuf {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        let path = dir.join("ca.pem");
        std::fs::write(&path, cert.pem()).unwrap();
        path
    }

    fn configured(connector: &mut PgConnector, url: &str) -> Result<Config, StoreError> {
        let mut config = Config::from_str(url).unwrap();
        connector.configure(&mut config).map(|()| config)
    }

    #[test]
    fn a_pinned_ca_requires_tls_and_none_refuses_require() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca_file(dir.path());
        let mut tls = PgConnector::new(Some(&ca), None).unwrap();
        let config = configured(&mut tls, "postgres://u@db:5432/h?sslmode=prefer").unwrap();
        assert_eq!(config.get_ssl_mode(), SslMode::Require);
        let e = configured(&mut tls, "postgres://u@db/h?sslmode=disable").unwrap_err();
        assert!(e.to_string().contains("sslmode=disable"), "{e}");

        let mut plain = PgConnector::plain();
        let config = configured(&mut plain, "postgres://u@db/h").unwrap();
        assert_eq!(config.get_ssl_mode(), SslMode::Disable);
        let e = configured(&mut plain, "postgres://u@db/h?sslmode=require").unwrap_err();
        assert!(e.to_string().contains("--store-ca"), "{e}");
    }

    #[test]
    fn the_parent_is_asked_for_the_urls_one_tcp_host() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca_file(dir.path());
        let parent: Endpoint = "unix:///run/parent.sock".parse().unwrap();
        let mut via = PgConnector::new(Some(&ca), Some(parent.clone())).unwrap();
        configured(&mut via, "postgres://u@db.internal:6432/h").unwrap();
        let dest = via.via.as_ref().and_then(|v| v.dest.clone());
        assert_eq!(dest, Some("tcp://db.internal:6432".parse().unwrap()));
        configured(&mut via, "postgres://u@[2001:db8::1]/h").unwrap();
        let dest = via.via.as_ref().and_then(|v| v.dest.clone());
        assert_eq!(dest, Some("tcp://[2001:db8::1]:5432".parse().unwrap()));
        for url in [
            "postgres://u@%2Frun%2Fpostgresql/h",
            "postgres://u@a:1,b:2/h",
            "postgres://u@db/h?hostaddr=10.0.0.1",
            "postgres://u@db/h?sslnegotiation=direct",
        ] {
            assert!(configured(&mut via, url).is_err(), "{url}");
        }
        // Without a pinned CA the parent route is refused outright.
        let e = PgConnector::new(None, Some(parent)).unwrap_err();
        assert!(e.to_string().contains("--store-ca"), "{e}");
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = PgConnector::new(Some(&empty), None).unwrap_err();
        assert!(e.to_string().contains("holds no certificate"), "{e}");
        let missing = dir.path().join("missing.pem");
        let e = PgConnector::new(Some(&missing), None).unwrap_err();
        assert!(e.to_string().contains("missing.pem"), "{e}");
    }

    #[test]
    fn the_forwarders_config_connects_to_loopback_and_keeps_the_name() {
        let mut config =
            Config::from_str("postgres://u@db.internal:6432/h?connect_timeout=7").unwrap();
        config.password("pw").application_name("hermetic-verifier");
        let local = local_config(&config, 40000);
        assert_eq!(local.get_hosts(), &[Host::Tcp("db.internal".into())]);
        assert_eq!(local.get_hostaddrs(), &[IpAddr::V4(Ipv4Addr::LOCALHOST)]);
        assert_eq!(local.get_ports(), &[40000]);
        assert_eq!(local.get_user(), Some("u"));
        assert_eq!(local.get_password(), Some(&b"pw"[..]));
        assert_eq!(local.get_dbname(), Some("h"));
        assert_eq!(local.get_application_name(), Some("hermetic-verifier"));
        assert_eq!(local.get_connect_timeout(), Some(&Duration::from_secs(7)));
    }
}
