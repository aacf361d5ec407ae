//! The one line an enclave sends its parent before the relayed bytes: which
//! allow-listed destination to connect it to. Everything after the answer is
//! opaque (TLS records) to the parent.
//!
//! ```text
//! enclave → parent:  "HERMETIC-CONNECT tcp://verifier.internal:8443\n"
//! parent  → enclave: "OK\n"   or   "DENIED <reason>\n" (then closes)
//! ```

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::{connect, Endpoint, Stream, TransportError};

const REQUEST_PREFIX: &str = "HERMETIC-CONNECT ";
/// Longest request or answer line, newline included.
pub const MAX_LINE: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("the proxy line is longer than {MAX_LINE} bytes")]
    LineTooLong,
    #[error("the proxy line is malformed")]
    Malformed,
    #[error("no proxy line within {0:?}")]
    Timeout(Duration),
    #[error("the parent refused the connection: {0}")]
    Denied(String),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("proxy I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one `\n`-terminated line of at most [`MAX_LINE`] bytes, byte by
/// byte so that nothing after the line is consumed.
async fn read_line<R: AsyncRead + Unpin>(r: &mut R) -> Result<String, ProxyError> {
    let mut line = Vec::with_capacity(64);
    loop {
        let b = r.read_u8().await?;
        if b == b'\n' {
            break;
        }
        if line.len() + 1 >= MAX_LINE {
            return Err(ProxyError::LineTooLong);
        }
        line.push(b);
    }
    String::from_utf8(line).map_err(|_| ProxyError::Malformed)
}

/// Parent side: reads the destination the enclave asks for.
pub async fn read_request<R: AsyncRead + Unpin>(
    r: &mut R,
    within: Duration,
) -> Result<Endpoint, ProxyError> {
    let line = tokio::time::timeout(within, read_line(r))
        .await
        .map_err(|_| ProxyError::Timeout(within))??;
    let dest = line
        .strip_prefix(REQUEST_PREFIX)
        .ok_or(ProxyError::Malformed)?;
    dest.parse().map_err(|_| ProxyError::Malformed)
}

/// Parent side: the answer.
pub async fn write_answer<W: AsyncWrite + Unpin>(
    w: &mut W,
    denied: Option<&str>,
) -> std::io::Result<()> {
    let line = match denied {
        None => "OK\n".to_string(),
        Some(reason) => format!("DENIED {}\n", reason.replace('\n', " ")),
    };
    w.write_all(line.as_bytes()).await?;
    w.flush().await
}

/// Enclave side: connects to the parent at `via` and asks for `dest`.
/// On `OK` the returned stream carries bytes to and from `dest`.
pub async fn connect_via(
    via: &Endpoint,
    dest: &Endpoint,
    within: Duration,
) -> Result<Stream, ProxyError> {
    let mut stream = connect(via).await?;
    stream
        .write_all(format!("{REQUEST_PREFIX}{dest}\n").as_bytes())
        .await?;
    stream.flush().await?;
    let answer = tokio::time::timeout(within, read_line(&mut stream))
        .await
        .map_err(|_| ProxyError::Timeout(within))??;
    match answer.as_str() {
        "OK" => Ok(stream),
        other => Err(ProxyError::Denied(
            other.strip_prefix("DENIED ").unwrap_or(other).to_string(),
        )),
    }
}
