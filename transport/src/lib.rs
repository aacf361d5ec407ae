//! One stream transport for every hop of hermetic: `vsock://CID:PORT` (the
//! enclave ↔ parent link on real Nitro hosts), `unix:///path` and
//! `tcp://HOST:PORT`. The parent, the enclave and the tests use the same
//! [`Endpoint`], [`Listener`] and [`Stream`], so code tested over Unix
//! sockets or loopback TCP is the code that runs over vsock.

pub mod proxy;

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio_vsock::{VsockAddr, VsockListener, VsockStream};

/// Where to listen or connect.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// AF_VSOCK context id and port. CID 3+ are enclaves/guests, 2 the host
    /// (parent instance) as seen from an enclave (vsock(7)).
    Vsock {
        cid: u32,
        port: u32,
    },
    Unix(PathBuf),
    /// `host:port`; the host may be a name, an IPv4 address or `[IPv6]`.
    Tcp(String),
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{0:?} is not an endpoint; use vsock://CID:PORT, unix:///path or tcp://HOST:PORT")]
    BadEndpoint(String),
    #[error("{0} is already in use")]
    AddressInUse(Endpoint),
    #[error("no vsock device: AF_VSOCK is unavailable here (on a Nitro host, load the vsock driver; for local runs use unix:// or tcp://)")]
    NoVsock,
    #[error("{endpoint}: {source}")]
    Io {
        endpoint: Endpoint,
        #[source]
        source: io::Error,
    },
}

impl TransportError {
    fn from_io(endpoint: &Endpoint, source: io::Error) -> Self {
        let is_vsock = matches!(endpoint, Endpoint::Vsock { .. });
        match source.raw_os_error() {
            // EAFNOSUPPORT / ENODEV: no vsock transport in this kernel.
            Some(97) | Some(19) if is_vsock => TransportError::NoVsock,
            _ if source.kind() == io::ErrorKind::AddrInUse => {
                TransportError::AddressInUse(endpoint.clone())
            }
            _ => TransportError::Io {
                endpoint: endpoint.clone(),
                source,
            },
        }
    }
}

impl FromStr for Endpoint {
    type Err = TransportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || TransportError::BadEndpoint(s.to_string());
        if let Some(rest) = s.strip_prefix("vsock://") {
            let (cid, port) = rest.split_once(':').ok_or_else(bad)?;
            return Ok(Endpoint::Vsock {
                cid: cid.parse().map_err(|_| bad())?,
                port: port.parse().map_err(|_| bad())?,
            });
        }
        if let Some(path) = s.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(bad());
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if let Some(addr) = s.strip_prefix("tcp://") {
            let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
            if host.is_empty() || port.parse::<u16>().is_err() || addr.contains('/') {
                return Err(bad());
            }
            return Ok(Endpoint::Tcp(addr.to_string()));
        }
        Err(bad())
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Vsock { cid, port } => write!(f, "vsock://{cid}:{port}"),
            Endpoint::Unix(p) => write!(f, "unix://{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// A bound listener of any kind.
#[derive(Debug)]
pub enum Listener {
    Vsock(VsockListener, Endpoint),
    Unix(UnixListener, Endpoint),
    Tcp(TcpListener, Endpoint),
}

impl Listener {
    /// Binds `endpoint`. A Unix socket path that exists is refused (it may
    /// belong to a running process); remove stale sockets explicitly.
    pub async fn bind(endpoint: &Endpoint) -> Result<Self, TransportError> {
        let err = |e| TransportError::from_io(endpoint, e);
        Ok(match endpoint {
            Endpoint::Vsock { cid, port } => Listener::Vsock(
                VsockListener::bind(VsockAddr::new(*cid, *port)).map_err(err)?,
                endpoint.clone(),
            ),
            Endpoint::Unix(path) => {
                Listener::Unix(UnixListener::bind(path).map_err(err)?, endpoint.clone())
            }
            Endpoint::Tcp(addr) => Listener::Tcp(
                TcpListener::bind(addr).await.map_err(err)?,
                endpoint.clone(),
            ),
        })
    }

    /// The bound endpoint (with the real port when TCP port 0 was asked for).
    pub fn local_endpoint(&self) -> Endpoint {
        match self {
            Listener::Vsock(l, e) => match l.local_addr() {
                Ok(a) => Endpoint::Vsock {
                    cid: a.cid(),
                    port: a.port(),
                },
                Err(_) => e.clone(),
            },
            Listener::Unix(_, e) => e.clone(),
            Listener::Tcp(l, e) => match l.local_addr() {
                Ok(a) => Endpoint::Tcp(a.to_string()),
                Err(_) => e.clone(),
            },
        }
    }

    /// Accepts one connection; the string names the peer for logs.
    pub async fn accept(&self) -> io::Result<(Stream, String)> {
        Ok(match self {
            Listener::Vsock(l, _) => {
                let (s, a) = l.accept().await?;
                (
                    Stream::Vsock(s),
                    format!("vsock://{}:{}", a.cid(), a.port()),
                )
            }
            Listener::Unix(l, e) => {
                let (s, _) = l.accept().await?;
                (Stream::Unix(s), e.to_string())
            }
            Listener::Tcp(l, _) => {
                let (s, a) = l.accept().await?;
                (Stream::Tcp(s), format!("tcp://{a}"))
            }
        })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, Endpoint::Unix(path)) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A connected byte stream of any kind.
#[derive(Debug)]
pub enum Stream {
    Vsock(VsockStream),
    Unix(UnixStream),
    Tcp(TcpStream),
}

/// Connects to `endpoint`.
pub async fn connect(endpoint: &Endpoint) -> Result<Stream, TransportError> {
    let err = |e| TransportError::from_io(endpoint, e);
    Ok(match endpoint {
        Endpoint::Vsock { cid, port } => Stream::Vsock(
            VsockStream::connect(VsockAddr::new(*cid, *port))
                .await
                .map_err(err)?,
        ),
        Endpoint::Unix(path) => Stream::Unix(UnixStream::connect(path).await.map_err(err)?),
        Endpoint::Tcp(addr) => {
            let s = TcpStream::connect(addr).await.map_err(err)?;
            // Small request/response exchanges: do not wait to fill segments.
            let _ = s.set_nodelay(true);
            Stream::Tcp(s)
        }
    })
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Stream::Vsock($s) => $e,
            Stream::Unix($s) => $e,
            Stream::Tcp($s) => $e,
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => Pin::new(s).poll_write(cx, buf))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_every_kind() {
        for s in [
            "vsock://3:8000",
            "unix:///run/hermetic.sock",
            "tcp://127.0.0.1:8443",
            "tcp://[::1]:80",
            "tcp://verifier.example:443",
        ] {
            assert_eq!(s.parse::<Endpoint>().unwrap().to_string(), s);
        }
        assert_eq!(
            "vsock://16:5005".parse::<Endpoint>().unwrap(),
            Endpoint::Vsock {
                cid: 16,
                port: 5005
            }
        );
    }

    #[test]
    fn a_kernel_without_vsock_is_named_as_such() {
        let vsock = Endpoint::Vsock { cid: 3, port: 8000 };
        for errno in [97, 19] {
            // EAFNOSUPPORT, ENODEV
            let e = TransportError::from_io(&vsock, io::Error::from_raw_os_error(errno));
            assert!(matches!(e, TransportError::NoVsock), "{errno}: {e}");
        }
        let tcp = Endpoint::Tcp("127.0.0.1:1".into());
        let e = TransportError::from_io(&tcp, io::Error::from_raw_os_error(97));
        assert!(matches!(e, TransportError::Io { .. }));
        let e = TransportError::from_io(&tcp, io::Error::from(io::ErrorKind::AddrInUse));
        assert!(matches!(e, TransportError::AddressInUse(_)));
    }

    #[test]
    fn refuses_malformed_endpoints() {
        for s in [
            "",
            "3:8000",
            "vsock://3",
            "vsock://x:1",
            "unix://relative",
            "tcp://host",
            "tcp://:80",
            "tcp://h:99999",
            "http://h:80",
            "tcp://h:80/path",
        ] {
            assert!(
                matches!(s.parse::<Endpoint>(), Err(TransportError::BadEndpoint(_))),
                "{s}"
            );
        }
    }
}
