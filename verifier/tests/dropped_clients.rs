//! Clients that go away while their release is in flight (an anonymous
//! client, or a parent cutting connections): once started, a release runs
//! to its end — its record is logged and it is counted — so the audit log
//! and the metrics agree whatever the clients do.
#![cfg(feature = "test-roots")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{config, good_pcrs, log_records, policy_toml, Enclave, Service, SECRET_NAME};
use hermetic_verifier::clock::SystemClock;
use tokio::io::AsyncWriteExt;

const CLIENTS: usize = 24;

/// Grants in the audit log, and grants counted in `/metrics`.
async fn grants(svc: &Service, data: &std::path::Path) -> (usize, u64) {
    let logged = log_records(data)
        .iter()
        .filter(|r| r["entry"]["action"] == "release" && r["entry"]["verdict"] == "granted")
        .count();
    let (_, metrics) = svc
        .http
        .send(hyper::Method::GET, &svc.public_url("/metrics"), &[], vec![])
        .await
        .unwrap();
    let counted = String::from_utf8(metrics)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("hermetic_releases_total "))
        .map_or(0, |n| n.trim().parse().unwrap());
    (logged, counted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_whose_clients_leave_are_logged_and_counted_alike() {
    let dir = tempfile::tempdir().unwrap();
    let enclave = Enclave::new();
    let root = enclave.write_root(dir.path());
    let cfg = config(dir.path(), Some(root));
    let data = cfg.data_dir.clone();
    let svc = Service::start(cfg, Arc::new(SystemClock)).await;
    svc.seed(
        SECRET_NAME,
        Some(policy_toml(SECRET_NAME, &good_pcrs(), "")),
        common::SECRET_VALUE,
    )
    .await;

    // Each client sends a valid release and closes its connection at once,
    // while the release is being decided or waits for the log.
    let mut bodies = Vec::new();
    for _ in 0..CLIENTS {
        let document = enclave.document(&svc.challenge().await);
        let request =
            hermetic_envelope::wire::ReleaseRequest::new(&document, vec![SECRET_NAME.into()]);
        bodies.push(serde_json::to_vec(&request).unwrap());
    }
    let addr = svc.running.public_addr;
    let clients: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            tokio::spawn(async move {
                let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                let head = format!(
                    "POST /v1/release HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                s.write_all(head.as_bytes()).await.unwrap();
                s.write_all(&body).await.unwrap();
                drop(s);
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }

    // Whatever the server had started by then finishes: the log and the
    // metrics come to agree, and stay so.
    let mut last = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = grants(&svc, &data).await;
        if now.0 as u64 == now.1 && last == Some(now) {
            break;
        }
        last = Some(now);
    }
    let (logged, counted) = grants(&svc, &data).await;
    assert_eq!(logged as u64, counted, "grants logged vs counted");
    assert!(logged <= CLIENTS);

    // The service still serves: a client that waits gets its grant.
    let document = enclave.document(&svc.challenge().await);
    let (status, body) = svc.release(&document, &[SECRET_NAME]).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(grants(&svc, &data).await, (logged + 1, counted + 1));
}
