//! The log, read-only on the public listener (no authentication): the
//! latest signed checkpoint, hash tiles and entry bundles as C2SP
//! tlog-tiles (c2sp.org/tlog-tiles), and the log's verifier key.
//!
//! Only what the latest checkpoint covers is served (every leaf in it is
//! durable). Full tiles never change and are cached for a year (`immutable`);
//! partial tiles and the checkpoint change as the log grows and are not
//! cached (c2sp.org/tlog-tiles, "Partial Tiles", leaves caching to logs).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use hermetic_tlog::tile::{
    encode_entry_bundle, read_tile_data, Tile, TileKind, TILE_HEIGHT, TILE_WIDTH,
};

use super::refusal::{ApiRefusal, PathParam, Reason};
use super::state::Shared;
use crate::log::store::Hashes;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const NO_CACHE: &str = "no-cache";

#[utoipa::path(
    get,
    path = "/checkpoint",
    tag = "log",
    responses((status = 200, description = "The log's latest signed checkpoint (c2sp.org/tlog-checkpoint), not cached", content_type = "text/plain", body = String))
)]
pub async fn checkpoint(State(state): State<Shared>) -> Response {
    let note = state.log.checkpoint().note.clone();
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, NO_CACHE),
        ],
        note,
    )
        .into_response()
}

#[utoipa::path(
    get,
    path = "/v1/log/key",
    tag = "log",
    responses((status = 200, description = "The log's signed-note verifier key (what auditors and enclaves pin)", content_type = "text/plain", body = String))
)]
pub async fn log_key(State(state): State<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{}\n", state.log.verifier_key()),
    )
        .into_response()
}

fn not_found() -> Response {
    ApiRefusal::new(
        StatusCode::NOT_FOUND,
        Reason::NotFound,
        "no such tile in the log's latest checkpoint",
    )
    .into_response()
}

#[utoipa::path(
    get,
    path = "/tile/{path}",
    tag = "log",
    params(("path" = String, Path, description = "The rest of a C2SP tlog-tiles path, several segments: `L/N[.p/W]` for hashes, `entries/N[.p/W]` for entry bundles")),
    responses(
        (status = 200, description = "A hash tile or entry bundle the latest checkpoint covers (full tiles are immutable)", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "`bad_request`: the path does not decode", body = super::openapi::RefusalBody),
        (status = 404, description = "`not_found`: no such tile in the latest checkpoint", body = super::openapi::RefusalBody),
    )
)]
pub async fn tile(State(state): State<Shared>, PathParam(rest): PathParam) -> Response {
    let Ok(tile) = format!("tile/{rest}").parse::<Tile>() else {
        return not_found();
    };
    let size = state.log.checkpoint().size;
    // The leaves (level 0) or subtree hashes (level L) the tile reaches to.
    let level = match tile.kind {
        TileKind::Hashes { level } => u32::from(level),
        TileKind::Entries => 0,
    };
    let end = tile
        .n
        .checked_mul(TILE_WIDTH)
        .and_then(|s| s.checked_add(u64::from(tile.width)));
    let available = size.checked_shr(TILE_HEIGHT * level).unwrap_or(0);
    match end {
        Some(end) if end <= available => {}
        _ => return not_found(),
    }
    let cache = if tile.is_full() { IMMUTABLE } else { NO_CACHE };
    let result = tokio::task::spawn_blocking(move || match tile.kind {
        TileKind::Hashes { .. } => {
            read_tile_data(&tile, &Hashes(state.log.store())).map_err(|e| e.to_string())
        }
        TileKind::Entries => {
            let start = tile.n * TILE_WIDTH;
            let leaves = state
                .log
                .leaves(start, start + u64::from(tile.width))
                .map_err(|e| e.to_string())?;
            let refs: Vec<&[u8]> = leaves.iter().map(Vec::as_slice).collect();
            encode_entry_bundle(&refs).map_err(|e| e.to_string())
        }
    })
    .await;
    match result {
        Ok(Ok(bytes)) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (header::CACHE_CONTROL, cache),
            ],
            bytes,
        )
            .into_response(),
        Ok(Err(e)) => {
            tracing::error!(event = "tile_read_failed", error = %e);
            ApiRefusal::internal(Reason::AuditLogUnavailable, "the log could not be read")
                .into_response()
        }
        Err(_) => {
            ApiRefusal::internal(Reason::InternalError, "the tile task failed").into_response()
        }
    }
}
