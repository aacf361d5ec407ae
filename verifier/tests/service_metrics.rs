//! The metrics added beside the release counters: log append and store
//! read latency, open connections by listener.
#![cfg(feature = "test-roots")]

mod common;

use std::sync::Arc;

use common::{config, good_pcrs, now_ms, policy_toml, Enclave, Service, SECRET_NAME};
use hermetic_verifier::clock::SystemClock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{series} missing in:\n{metrics}"))
}

#[tokio::test]
async fn latency_and_connection_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let enclave = Enclave::new();
    let root = enclave.write_root(dir.path());
    let svc = Service::start(config(dir.path(), Some(root)), Arc::new(SystemClock)).await;
    svc.seed(
        SECRET_NAME,
        Some(policy_toml(SECRET_NAME, &good_pcrs(), "")),
        common::SECRET_VALUE,
    )
    .await;
    let nonce = svc.challenge().await;
    let key = Some(enclave.key.public_key_bytes().to_vec());
    let doc = enclave.document_with(good_pcrs(), Some(&nonce), now_ms(), key);
    let (status, _) = svc.release(&doc, &[SECRET_NAME]).await;
    assert_eq!(status, 200);

    // Two connections of ours are open on the public listener: an idle one
    // and the one asking for the metrics.
    let idle = tokio::net::TcpStream::connect(svc.running.public_addr)
        .await
        .unwrap();
    let mut s = tokio::net::TcpStream::connect(svc.running.public_addr)
        .await
        .unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    drop(idle);
    let metrics = raw.split_once("\r\n\r\n").unwrap().1;

    assert!(value(metrics, "hermetic_open_connections{listener=\"public\"}") >= 2.0);
    assert_eq!(
        value(metrics, "hermetic_open_connections{listener=\"endpoint\"}"),
        0.0
    );
    // The grant read one value and appended its record; seeding appended
    // the creation and the owner's change.
    assert!(value(metrics, "hermetic_store_read_duration_seconds_count") >= 1.0);
    assert!(value(metrics, "hermetic_log_append_duration_seconds_count") >= 3.0);
    assert!(
        value(
            metrics,
            "hermetic_log_append_duration_seconds_bucket{le=\"+Inf\"}"
        ) >= 3.0
    );
    // The existing names stay.
    assert_eq!(value(metrics, "hermetic_releases_total"), 1.0);
    assert_eq!(
        value(metrics, "hermetic_release_duration_seconds_count"),
        1.0
    );
}
