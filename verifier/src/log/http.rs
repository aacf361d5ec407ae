//! Reading a log served as C2SP tlog-tiles (c2sp.org/tlog-tiles):
//! `/checkpoint`, then every entry bundle `/tile/entries/<N>[.p/<W>]` the
//! checkpoint's size needs; [`super::audit::verify_data`] then checks it as
//! it checks a data directory.

use hermetic_tlog::note;
use hermetic_tlog::tile::{parse_entry_bundle, Tile, TILE_WIDTH};
use hyper::Method;

use super::audit::LogData;
use crate::client::HttpClient;

/// Why a served log could not be read (exit 2: nothing was judged).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error("{url}: {message}")]
    Malformed { url: String, message: String },
}

async fn get(client: &HttpClient, url: &str) -> Result<Option<Vec<u8>>, FetchError> {
    let (status, body) = client
        .send(Method::GET, url, &[], Vec::new())
        .await
        .map_err(|e| FetchError::Http {
            url: url.to_owned(),
            message: e.to_string(),
        })?;
    match status.as_u16() {
        200 => Ok(Some(body)),
        404 => Ok(None),
        s => Err(FetchError::Http {
            url: url.to_owned(),
            message: format!("HTTP {s}"),
        }),
    }
}

/// The log at `base` (`http://host:port`, the verifier's public listener).
/// A missing `/checkpoint` is a log without one (a break, not an error).
pub async fn read_url(client: &HttpClient, base: &str) -> Result<LogData, FetchError> {
    let base = base.trim_end_matches('/');
    let url = format!("{base}/checkpoint");
    let Some(body) = get(client, &url).await? else {
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
    let mut n = 0u64;
    while n * TILE_WIDTH < cp.size {
        let width = (cp.size - n * TILE_WIDTH).min(TILE_WIDTH) as u16;
        let tile = Tile::entries(n, width).map_err(|e| malformed(e.to_string()))?;
        let url = format!("{base}/{tile}");
        let bundle = get(client, &url)
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
        n += 1;
    }
    Ok(LogData {
        checkpoint: Some(text),
        leaves,
        stored_leaf_hashes: None,
    })
}
