//! Reading a log served as C2SP tlog-tiles (c2sp.org/tlog-tiles):
//! `/checkpoint`, then every entry bundle `/tile/entries/<N>[.p/<W>]` the
//! checkpoint's size needs; [`super::audit::verify_data`] then checks it as
//! it checks a data directory. `http://` or `https://` (rustls, trusting
//! only the CA certificates given, or only a verifier enclave of pinned
//! measurements: [`LogSource::with_tls`]).

use std::sync::Arc;
use std::time::Duration;

use hermetic_tlog::merkle::Hash;
use hermetic_tlog::note;
use hermetic_tlog::tile::{parse_entry_bundle, Tile, TILE_WIDTH};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};

use super::audit::LogData;

/// Largest answer read (a checkpoint, a tile or an entry bundle of 256
/// records of at most 16 KiB each).
const MAX_ANSWER: usize = 256 * (2 + 16 * 1024) + 1024;
const TIMEOUT: Duration = Duration::from_secs(30);

/// Where and how to reach a served log.
#[derive(Clone)]
pub struct LogSource {
    scheme_https: bool,
    /// `host:port`.
    authority: String,
    host: String,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for LogSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSource")
            .field("https", &self.scheme_https)
            .field("authority", &self.authority)
            .finish()
    }
}

impl LogSource {
    /// `url` is `http://HOST:PORT` or `https://HOST:PORT` (a path is not
    /// allowed); `ca_pem` is required for https and is the only trust.
    pub fn new(url: &str, ca_pem: Option<&[u8]>) -> Result<LogSource, FetchError> {
        let mut source = LogSource::parse(url)?;
        if source.scheme_https {
            source.tls = Some(ca_config(url, ca_pem)?);
        }
        Ok(source)
    }

    /// `url` is `https://HOST:PORT`, reached with this TLS configuration
    /// (e.g. `client::identity::attested_client_config`: only a verifier
    /// enclave of pinned measurements completes the handshake).
    pub fn with_tls(url: &str, config: Arc<rustls::ClientConfig>) -> Result<LogSource, FetchError> {
        let mut source = LogSource::parse(url)?;
        if !source.scheme_https {
            return Err(FetchError::Http {
                url: url.to_owned(),
                message: "pinned measurements need an https:// URL".to_owned(),
            });
        }
        source.tls = Some(config);
        Ok(source)
    }

    fn parse(url: &str) -> Result<LogSource, FetchError> {
        let bad = |message: &str| FetchError::Http {
            url: url.to_owned(),
            message: message.to_owned(),
        };
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(bad("the URL must start with http:// or https://"));
        };
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return Err(bad("give the verifier's base URL, without a path"));
        }
        let host = match authority.rsplit_once(':') {
            Some((h, port)) if port.parse::<u16>().is_ok() => h,
            _ => authority,
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let authority = if authority.contains(':') && !authority.ends_with(']') {
            authority.to_owned()
        } else {
            format!("{authority}:{}", if https { 443 } else { 80 })
        };
        Ok(LogSource {
            scheme_https: https,
            authority,
            host,
            tls: None,
        })
    }

    fn url(&self, path: &str) -> String {
        let scheme = if self.scheme_https { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.authority)
    }
}

/// Trusting only the CA certificates in `ca_pem` (required).
fn ca_config(url: &str, ca_pem: Option<&[u8]>) -> Result<Arc<rustls::ClientConfig>, FetchError> {
    let bad = |message: &str| FetchError::Http {
        url: url.to_owned(),
        message: message.to_owned(),
    };
    let pem = ca_pem.ok_or_else(|| {
        bad("https needs --ca PEM (the CA the verifier's certificate chains to) or --verifier-measurements")
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|_| bad("--ca is not PEM certificates"))?;
        roots
            .add(cert)
            .map_err(|_| bad("--ca holds an unusable certificate"))?;
    }
    if roots.is_empty() {
        return Err(bad("--ca holds no certificate"));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|_| bad("TLS configuration"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    source: &LogSource,
    path: &str,
) -> Result<(u16, Vec<u8>), String> {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, &source.authority)
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = Limited::new(resp.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes()
        .to_vec();
    Ok((status, body))
}

/// How one fetch failed: the verifier refused as not the pinned one, or
/// anything else.
enum Failed {
    Refused(String),
    Other(String),
}

async fn fetch(source: &LogSource, path: &str) -> Result<(u16, Vec<u8>), Failed> {
    let tcp = tokio::net::TcpStream::connect(&source.authority)
        .await
        .map_err(|e| Failed::Other(e.to_string()))?;
    match &source.tls {
        None => exchange(tcp, source, path).await.map_err(Failed::Other),
        Some(config) => {
            let name = ServerName::try_from(source.host.clone())
                .map_err(|e| Failed::Other(e.to_string()))?;
            let tls = tokio_rustls::TlsConnector::from(config.clone())
                .connect(name, tcp)
                .await
                .map_err(
                    |e| match hermetic_identity::AttestedServerVerifier::refusal(&e) {
                        Some(refusal) => {
                            Failed::Refused(format!("{}: {refusal}", refusal.reason()))
                        }
                        None => Failed::Other(format!("TLS: {e}")),
                    },
                )?;
            exchange(tls, source, path).await.map_err(Failed::Other)
        }
    }
}

/// Why a served log could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error("{url}: {message}")]
    Malformed { url: String, message: String },
    /// The verifier is not the pinned one (its attestation was refused).
    #[error("{url}: refused: {reason}")]
    Refused { url: String, reason: String },
}

impl FetchError {
    /// 1 when the verifier was refused as not the pinned one, 2 otherwise
    /// (nothing was judged).
    pub fn exit_code(&self) -> u8 {
        match self {
            FetchError::Refused { .. } => 1,
            FetchError::Http { .. } | FetchError::Malformed { .. } => 2,
        }
    }
}

async fn get(source: &LogSource, path: &str) -> Result<Option<Vec<u8>>, FetchError> {
    let url = source.url(path);
    let (status, body) = tokio::time::timeout(TIMEOUT, fetch(source, path))
        .await
        .map_err(|_| FetchError::Http {
            url: url.clone(),
            message: format!("no answer within {TIMEOUT:?}"),
        })?
        .map_err(|failed| match failed {
            Failed::Refused(reason) => FetchError::Refused {
                url: url.clone(),
                reason,
            },
            Failed::Other(message) => FetchError::Http {
                url: url.clone(),
                message,
            },
        })?;
    match status {
        200 => Ok(Some(body)),
        404 => Ok(None),
        s => Err(FetchError::Http {
            url: url.to_owned(),
            message: format!("HTTP {s}"),
        }),
    }
}

/// The log's verifier key as the verifier at `source` serves it
/// (`GET /v1/log/key`); with pinned measurements, as the pinned verifier
/// enclave itself serves it.
pub async fn read_log_key(source: &LogSource) -> Result<note::VerifierKey, FetchError> {
    let url = source.url("/v1/log/key");
    let malformed = |message: String| FetchError::Malformed {
        url: url.clone(),
        message,
    };
    let body = get(source, "/v1/log/key")
        .await?
        .ok_or_else(|| malformed("not served".into()))?;
    let text = String::from_utf8(body).map_err(|_| malformed("not UTF-8".into()))?;
    text.trim()
        .parse::<note::VerifierKey>()
        .map_err(|e| malformed(e.to_string()))
}

/// The log at `source` (the verifier's public listener). A missing
/// `/checkpoint` is a log without one (a break, not an error).
pub async fn read_url(source: &LogSource) -> Result<LogData, FetchError> {
    let url = source.url("/checkpoint");
    let Some(body) = get(source, "/checkpoint").await? else {
        return Ok(LogData::default());
    };
    let malformed = |message: String| FetchError::Malformed {
        url: url.clone(),
        message,
    };
    let text = String::from_utf8(body).map_err(|_| malformed("not UTF-8".into()))?;
    // Only the size is read here; the signature is checked by verify_data.
    let parsed = note::parse(text.as_bytes()).map_err(|e| malformed(e.to_string()))?;
    let cp = hermetic_tlog::checkpoint::Checkpoint::parse(&parsed.text)
        .map_err(|e| malformed(e.to_string()))?;
    let mut leaves = Vec::new();
    let mut stored: Vec<Hash> = Vec::new();
    let mut stored_ok = true;
    let mut n = 0u64;
    while n * TILE_WIDTH < cp.size {
        let width = (cp.size - n * TILE_WIDTH).min(TILE_WIDTH) as u16;
        let tile = Tile::entries(n, width).map_err(|e| malformed(e.to_string()))?;
        let path = format!("/{tile}");
        let url = source.url(&path);
        let bundle = get(source, &path)
            .await?
            .ok_or_else(|| FetchError::Malformed {
                url: url.clone(),
                message: "missing entry bundle".into(),
            })?;
        let entries = parse_entry_bundle(&bundle).map_err(|e| FetchError::Malformed {
            url: url.clone(),
            message: e.to_string(),
        })?;
        if entries.len() != usize::from(width) {
            return Err(FetchError::Malformed {
                url,
                message: format!("{} entries, {width} expected", entries.len()),
            });
        }
        leaves.extend(entries.into_iter().map(<[u8]>::to_vec));
        // The served leaf hashes (level-0 tile) beside the leaves, so that
        // a leaf changed where it is stored is named (`Break::Edited`), not
        // only found by the root. A log serving no hash tile is still
        // checked by its root.
        let hashes = Tile::hashes(0, n, width).map_err(|e| malformed(e.to_string()))?;
        if let Some(data) = get(source, &format!("/{hashes}")).await? {
            if data.len() == usize::from(width) * 32 {
                stored.extend(
                    data.chunks_exact(32)
                        .map(|c| Hash(c.try_into().unwrap_or([0; 32]))),
                );
            } else {
                stored_ok = false;
            }
        } else {
            stored_ok = false;
        }
        n += 1;
    }
    Ok(LogData {
        checkpoint: Some(text),
        leaves,
        stored_leaf_hashes: stored_ok.then_some(stored),
    })
}
