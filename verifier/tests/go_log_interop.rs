//! The served log against Go's reference implementations
//! (golang.org/x/mod/sumdb/note and sumdb/tlog): a running verifier's
//! `/checkpoint` opens with Go's `note.Open` under the key `/v1/log/key`
//! gives; its tiles, read through Go's `tlog.TileHashReader` (which checks
//! every tile against the signed tree), hash to the checkpoint's root; every
//! entry of the entry bundles is proven with `tlog.ProveRecord` /
//! `tlog.CheckRecord`; and a `log prove` tlog-proof checks with
//! `tlog.CheckRecord`.
//!
//! The Go program is hermetic-tlog's (`tlog/tests/go/main.go`), built
//! offline from Debian's golang-golang-x-mod-dev; without it the test says
//! `skipping: go reference not found` and passes, except under `CI=true`.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use common::{config, Service};
use hermetic_testkit::go::GoRef;
use hermetic_tlog::tile::{tiles_for_size, Tile, TILE_WIDTH};
use hermetic_verifier::clock::SystemClock;
use hermetic_verifier::log::Entry;
use hyper::Method;
use serde_json::{json, Value};

fn go_ref() -> Option<&'static GoRef> {
    GoRef::get(env!("CARGO_TARGET_TMPDIR"), "tlogref-log")
}

fn go(bin: &GoRef, request: Value) -> Value {
    bin.run_one(request)
}

async fn get(svc: &Service, path: &str) -> Vec<u8> {
    let (status, body) = svc
        .http
        .send(Method::GET, &svc.public_url(path), &[], vec![])
        .await
        .unwrap();
    assert_eq!(status, 200, "{path}");
    body
}

/// Every hash tile and entry bundle of the tree of `size`, by C2SP path.
async fn all_tiles(svc: &Service, size: u64) -> serde_json::Map<String, Value> {
    let mut tiles = serde_json::Map::new();
    let mut paths: Vec<String> = tiles_for_size(size).iter().map(Tile::path).collect();
    let mut n = 0;
    while n * TILE_WIDTH < size {
        let w = (size - n * TILE_WIDTH).min(TILE_WIDTH) as u16;
        paths.push(Tile::entries(n, w).unwrap().path());
        n += 1;
    }
    for p in paths {
        let data = get(svc, &format!("/{p}")).await;
        tiles.insert(
            p,
            base64::engine::general_purpose::STANDARD
                .encode(data)
                .into(),
        );
    }
    tiles
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_checks_the_served_checkpoint_tiles_and_proofs() {
    let Some(bin) = go_ref() else { return };
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(config(dir.path(), None), Arc::new(SystemClock)).await;
    let state = svc.running.state.clone();
    // 600 records: two full level-0 tiles, a partial one, a level-1 tile
    // (the start and genesis records, then fillers).
    tokio::task::spawn_blocking(move || {
        for i in 2..600u64 {
            state
                .log
                .append(
                    Entry {
                        action: "filler".into(),
                        verdict: "done".into(),
                        reason: Some(format!("record {i}")),
                        ..Entry::default()
                    },
                    Duration::from_secs(1),
                )
                .unwrap();
        }
    })
    .await
    .unwrap();
    let key = String::from_utf8(get(&svc, "/v1/log/key").await).unwrap();
    let key = key.trim().to_owned();
    let note = String::from_utf8(get(&svc, "/checkpoint").await).unwrap();
    let tiles = all_tiles(&svc, 600).await;

    // A tlog-proof of record 300 from the CLI, under the stored checkpoint.
    let data = dir.path().join("data");
    let proof_file = dir.path().join("r300.tlog-proof");
    let out = Command::new(env!("CARGO_BIN_EXE_hermetic-verifier"))
        .args(["log", "prove", "300", "--data-dir"])
        .arg(&data)
        .arg("--out")
        .arg(&proof_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let proof = std::fs::read_to_string(&proof_file).unwrap();

    let answer = go(
        bin,
        json!({"op": "verify_log", "vkeys": [key], "note": note, "tiles": tiles, "proof": proof}),
    );
    assert!(answer.get("error").is_none(), "go refused: {answer}");
    assert_eq!(answer["size"], 600);
    assert!(answer["note"].as_str().unwrap().contains("\"seq\":300"));

    // Go refuses what it should: another key, a tampered tile, a proof
    // for another record.
    let other = go(
        bin,
        json!({"op": "genkey", "name": key.split('+').next().unwrap()}),
    );
    let answer = go(
        bin,
        json!({"op": "verify_log", "vkeys": [other["vkey"]], "note": note, "tiles": tiles}),
    );
    assert!(
        answer["error"].as_str().unwrap().contains("checkpoint"),
        "{answer}"
    );
    let mut bad = tiles.clone();
    let mut t0 = base64::engine::general_purpose::STANDARD
        .decode(bad["tile/0/000"].as_str().unwrap())
        .unwrap();
    t0[5] ^= 1;
    bad.insert(
        "tile/0/000".into(),
        base64::engine::general_purpose::STANDARD.encode(t0).into(),
    );
    let answer = go(
        bin,
        json!({"op": "verify_log", "vkeys": [key], "note": note, "tiles": bad}),
    );
    assert!(answer.get("error").is_some(), "{answer}");
    let answer = go(
        bin,
        json!({"op": "verify_log", "vkeys": [key], "note": note, "tiles": tiles,
               "proof": proof.replace("\nindex 300\n", "\nindex 301\n")}),
    );
    assert!(
        answer["error"].as_str().unwrap().contains("proof"),
        "{answer}"
    );
    svc.running.stop().await;
}
