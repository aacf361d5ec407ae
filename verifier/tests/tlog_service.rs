//! The log as served: `/checkpoint`, `/tile/...`, `/v1/log/key` over
//! HTTP (read-only, no authentication, caching headers), `log verify --url`
//! against them, and the receipt each release answer carries.
#![cfg_attr(not(feature = "test-roots"), allow(dead_code, unused_imports))]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{config, good_pcrs, policy_toml, Enclave, Service, SECRET_NAME, SECRET_VALUE};
use hermetic_envelope::wire::ReleaseResponse;
use hermetic_tlog::checkpoint;
use hermetic_tlog::merkle::{check_record, record_hash, Hash, HASH_SIZE};
use hermetic_tlog::note::VerifierKey;
use hermetic_tlog::tile::{parse_entry_bundle, tile_root};
use hermetic_verifier::clock::SystemClock;
use hermetic_verifier::log::{Entry, LOG_FILE};
use hyper::Method;

async fn get(svc: &Service, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    // HttpClient::send returns status and body; headers via a raw request.
    let url = svc.public_url(path);
    let uri: hyper::Uri = url.parse().unwrap();
    let stream = tokio::net::TcpStream::connect(svc.running.public_addr)
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get(uri)
        .header("host", "localhost")
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    use http_body_util::BodyExt;
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

fn filler(i: u64) -> Entry {
    Entry {
        action: "filler".into(),
        verdict: "done".into(),
        reason: Some(format!("record {i}")),
        ..Entry::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_served_as_tiles_that_match_the_signed_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(config(dir.path(), None), Arc::new(SystemClock)).await;
    // 300 records: one full level-0 tile and a partial one.
    let state = svc.running.state.clone();
    tokio::task::spawn_blocking(move || {
        for i in 2..300 {
            state.log.append(filler(i), Duration::from_secs(1)).unwrap();
        }
    })
    .await
    .unwrap();
    let (status, _, key) = get(&svc, "/v1/log/key").await;
    assert_eq!(status, 200);
    let key: VerifierKey = String::from_utf8(key).unwrap().trim().parse().unwrap();
    assert_eq!(key, svc.running.state.log.verifier_key());
    let (status, headers, note) = get(&svc, "/checkpoint").await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "cache-control"), "no-cache");
    let cp = checkpoint::open(&note, key.name(), &key).unwrap();
    assert_eq!(cp.size, 300);
    assert!(cp.origin.starts_with("hermetic.log/hermetic-"));

    // Full tiles are immutable; partial ones are not cached.
    let (status, headers, full) = get(&svc, "/tile/0/000").await;
    assert_eq!(status, 200);
    assert_eq!(full.len(), 256 * HASH_SIZE);
    assert!(header(&headers, "cache-control").contains("immutable"));
    let (status, headers, partial) = get(&svc, "/tile/0/001.p/44").await;
    assert_eq!(status, 200);
    assert_eq!(partial.len(), 44 * HASH_SIZE);
    assert_eq!(header(&headers, "cache-control"), "no-cache");
    let (status, _, level1) = get(&svc, "/tile/1/000.p/1").await;
    assert_eq!(status, 200);
    assert_eq!(&level1[..], tile_root(&full).unwrap().as_bytes());

    // Entry bundles hold the records whose hashes the tiles hold.
    let (status, _, bundle) = get(&svc, "/tile/entries/001.p/44").await;
    assert_eq!(status, 200);
    let entries = parse_entry_bundle(&bundle).unwrap();
    assert_eq!(entries.len(), 44);
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(
            record_hash(e).as_bytes(),
            &partial[i * HASH_SIZE..(i + 1) * HASH_SIZE]
        );
    }
    let last: serde_json::Value = serde_json::from_slice(entries[43]).unwrap();
    assert_eq!(last["seq"], 299);

    // Nothing past the checkpoint, no non-canonical path, no writes.
    for path in [
        "/tile/0/001.p/45",
        "/tile/0/002",
        "/tile/entries/001",
        "/tile/0/1",
        "/tile/0/x000/001",
        "/tile/64/000",
        "/tile/0/000.p/256",
    ] {
        assert_eq!(get(&svc, path).await.0, 404, "{path}");
    }
    for (method, path) in [
        (Method::POST, "/checkpoint"),
        (Method::PUT, "/tile/0/000"),
        (Method::DELETE, "/tile/entries/000"),
    ] {
        let (status, _) = svc
            .http
            .send(method.clone(), &svc.public_url(path), &[], b"x".to_vec())
            .await
            .unwrap();
        assert_eq!(status, 405, "{method} {path}");
    }

    // An auditor reads it over HTTP and finds it intact.
    let url = format!("http://{}", svc.running.public_addr);
    let bin = env!("CARGO_BIN_EXE_hermetic-verifier");
    let keep = dir.path().join("kept");
    let key_s = key.to_string();
    let out = tokio::task::spawn_blocking({
        let (url, key_s, keep) = (url.clone(), key_s.clone(), keep.clone());
        move || {
            std::process::Command::new(bin)
                .args(["log", "verify", "--url", &url, "--log-key", &key_s])
                .arg("--save-checkpoint")
                .arg(&keep)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("intact: 300 records"), "{stdout}");
    assert_eq!(std::fs::read(&keep).unwrap(), note);

    // The auditor's kept checkpoint against the served log, later.
    let state = svc.running.state.clone();
    tokio::task::spawn_blocking(move || state.log.append(filler(300), Duration::from_secs(1)))
        .await
        .unwrap()
        .unwrap();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin)
            .args(["log", "verify", "--url", &url, "--log-key", &key_s])
            .arg("--since")
            .arg(&keep)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("consistent with the earlier checkpoint of 300 records"),
        "{stdout}"
    );
    svc.running.stop().await;
}

#[cfg(feature = "test-roots")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_answer_proves_its_own_record_is_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let enclave = Enclave::new();
    let root = enclave.write_root(dir.path());
    let svc = Service::start(config(dir.path(), Some(root)), Arc::new(SystemClock)).await;
    svc.seed(
        SECRET_NAME,
        Some(policy_toml(SECRET_NAME, &good_pcrs(), "")),
        SECRET_VALUE,
    )
    .await;
    let key = svc.running.state.log.verifier_key();
    let nonce = svc.challenge().await;
    let document = enclave.document(&nonce);
    let (status, body) = svc.release(&document, &[SECRET_NAME]).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let answer: ReleaseResponse = serde_json::from_slice(&body).unwrap();
    let receipt = answer.receipt.expect("a receipt");
    let cp = checkpoint::open(receipt.checkpoint.as_bytes(), key.name(), &key).unwrap();
    let proof: Vec<Hash> = receipt.proof.iter().map(|h| h.parse().unwrap()).collect();
    check_record(
        &proof,
        cp.size,
        &cp.root_hash,
        receipt.index,
        &record_hash(receipt.leaf.as_bytes()),
    )
    .unwrap();
    // The leaf is the release's own record, byte for byte as logged.
    let record: serde_json::Value = serde_json::from_str(&receipt.leaf).unwrap();
    assert_eq!(record["seq"], receipt.index);
    assert_eq!(record["entry"]["action"], "release");
    assert_eq!(record["entry"]["verdict"], "granted");
    assert_eq!(record["entry"]["who"]["nonce"], hex::encode(&nonce));
    assert_eq!(
        record["entry"]["who"]["document_sha256"],
        common::sha256_hex(&document)
    );
    let logged = std::fs::read_to_string(dir.path().join("data").join(LOG_FILE)).unwrap();
    assert_eq!(
        logged.lines().nth(receipt.index as usize).unwrap(),
        receipt.leaf
    );
    // No secret in the receipt.
    assert!(!body.windows(SECRET_VALUE.len()).any(|w| w == SECRET_VALUE));
    svc.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_verify_reads_an_https_log_trusting_only_the_given_ca() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    let other = dir.path().join("other");
    hermetic_verifier::devtls::generate(&tls, &["localhost".into()]).unwrap();
    hermetic_verifier::devtls::generate(&other, &["localhost".into()]).unwrap();
    let mut c = config(dir.path(), None);
    c.tls_cert = Some(tls.join("server.pem"));
    c.tls_key = Some(tls.join("server.key"));
    let svc = Service::start(c, Arc::new(SystemClock)).await;
    let key = svc.running.state.log.verifier_key().to_string();
    let url = format!("https://localhost:{}", svc.running.public_addr.port());
    let run = move |extra: Vec<String>| {
        let (url, key) = (url.clone(), key.clone());
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_hermetic-verifier"))
                .args(["log", "verify", "--url", &url, "--log-key", &key])
                .args(extra)
                .output()
                .unwrap();
            (
                out.status.code().unwrap(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            )
        })
    };
    let ca = |d: &std::path::Path| d.join("ca.pem").to_str().unwrap().to_owned();
    let (code, out) = run(vec!["--ca".into(), ca(&tls)]).await.unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("intact: 2 records"), "{out}");
    // Another CA, or none: nothing is judged (exit 2).
    let (code, out) = run(vec!["--ca".into(), ca(&other)]).await.unwrap();
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("TLS"), "{out}");
    let (code, out) = run(vec![]).await.unwrap();
    assert_eq!(code, 2, "{out}");
    svc.running.stop().await;
}
