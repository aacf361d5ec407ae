//! Load generator: releases per second and latency percentiles of
//! `POST /v1/release` on loopback, against an in-process service with a
//! trusted test root.
//!
//! Documents are signed before the clock starts (signing is the enclave's
//! cost, not the verifier's); the timed phase is only HTTP release requests
//! from CONCURRENCY keep-alive clients. Every response is checked to be a
//! grant. Bounded: RELEASES requests, and it stops by itself.
//!
//! `cargo bench -p hermetic-verifier --bench release_load`
//! (env HERMETIC_BENCH_RELEASES, HERMETIC_BENCH_CONCURRENCY to change the load).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hermetic_approval::Signer;
use hermetic_attestation::simulator::TestPki;
use hermetic_attestation::Document;
use hermetic_envelope::wire::{ChallengeResponse, ReleaseRequest};
use hermetic_envelope::{EnclaveKey, Zeroizing};
use hermetic_verifier::client::change::{self, Proposal};
use hermetic_verifier::client::{AdminClient, HttpClient};
use hermetic_verifier::clock::SystemClock;
use hermetic_verifier::service::{self, ServeConfig};
use hyper::Method;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing
    // useful either: run a tiny load there so CI stays quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let releases = env_usize("HERMETIC_BENCH_RELEASES", if quick { 50 } else { 3000 });
    let concurrency = env_usize("HERMETIC_BENCH_CONCURRENCY", 16).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(releases, concurrency));
}

async fn run(releases: usize, concurrency: usize) {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let pki = TestPki::generate(now.as_secs() as i64).unwrap();
    let leaf = pki
        .issue_leaf(
            "i-bench-enc0",
            now.as_secs() as i64 - 600,
            now.as_secs() as i64 + 3600,
        )
        .unwrap();
    let root = dir.path().join("root.pem");
    std::fs::write(&root, pki.root_pem()).unwrap();
    let key = EnclaveKey::from_ikm(&[7; 32]).unwrap();
    let pcrs: BTreeMap<u8, Vec<u8>> = (0u8..16).map(|i| (i, vec![i + 1; 48])).collect();

    let mut config = ServeConfig::new(dir.path().join("data"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.admin_listen = "127.0.0.1:0".parse().unwrap();
    config.trust_roots = vec![root];
    config.rate_limit_per_sec = 0.0;
    config.challenge_ttl = Duration::from_secs(600);
    let running = service::start(config, Arc::new(SystemClock)).await.unwrap();
    let token = std::fs::read_to_string(dir.path().join("data/admin.token")).unwrap();
    let admin = AdminClient::new(&format!("http://{}", running.admin_addr), token.trim());
    // One owner creates the secret and approves its policy and value.
    let owner = Signer::generate("bench-owner").unwrap();
    admin
        .create_secret("db-password", &[owner.verifier_key().to_string()], 1)
        .await
        .unwrap();
    let mut policy =
        "[secrets.db-password]\nmax_age_secs = 600\n[[secrets.db-password.measurements]]\n"
            .to_owned();
    for i in [0u8, 1, 2, 8] {
        policy.push_str(&format!("pcr{i} = \"{}\"\n", hex::encode(&pcrs[&i])));
    }
    for proposal in [
        Proposal::Policy {
            name: "db-password".into(),
            toml: policy,
        },
        Proposal::Value {
            name: "db-password".into(),
            value: Zeroizing::new(b"bench secret value".to_vec()),
        },
    ] {
        let file = admin.propose(&proposal, None, None).await.unwrap();
        let (signed, _) = change::sign(&file, &owner).unwrap();
        admin.submit_change(&signed).await.unwrap();
    }

    // Challenges and signed documents, prepared up front.
    let http = HttpClient::new(Duration::from_secs(30));
    let challenge_url = format!("http://{}/v1/challenge", running.public_addr);
    let release_url = format!("http://{}/v1/release", running.public_addr);
    let started = Instant::now();
    let mut bodies = Vec::with_capacity(releases);
    for _ in 0..releases {
        let (_, body) = http
            .send(Method::POST, &challenge_url, &[], vec![])
            .await
            .unwrap();
        let nonce = serde_json::from_slice::<ChallengeResponse>(&body)
            .unwrap()
            .nonce_bytes()
            .unwrap();
        let doc = Document {
            module_id: "i-bench-enc0".into(),
            digest: "SHA384".into(),
            timestamp_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64,
            pcrs: pcrs.clone(),
            certificate: leaf.der.clone(),
            cabundle: pki.cabundle(),
            public_key: Some(key.public_key_bytes().to_vec()),
            user_data: None,
            nonce: Some(nonce),
            unknown_fields: vec![],
        };
        let signed = leaf.sign(&doc).unwrap();
        let req = ReleaseRequest::new(&signed, vec!["db-password".into()]);
        bodies.push(serde_json::to_vec(&req).unwrap());
    }
    let challenge_phase = started.elapsed();

    // Timed phase: CONCURRENCY clients share the prepared bodies.
    let queue = Arc::new(std::sync::Mutex::new(bodies));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let queue = queue.clone();
        let url = release_url.clone();
        let http = HttpClient::new(Duration::from_secs(30));
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let Some(body) = queue.lock().unwrap().pop() else {
                    break;
                };
                let t = Instant::now();
                let (status, response) = http.send(Method::POST, &url, &[], body).await.unwrap();
                latencies.push(t.elapsed());
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&response));
            }
            latencies
        }));
    }
    let mut latencies = Vec::with_capacity(releases);
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let wall = started.elapsed();
    latencies.sort();
    println!(
        "release_load: {} releases, {} concurrent clients, loopback HTTP/1.1, audit log fsync per release",
        latencies.len(),
        concurrency
    );
    println!(
        "  prepare (challenge + sign, sequential): {:.1} s",
        challenge_phase.as_secs_f64()
    );
    println!(
        "  throughput: {:.0} releases/s",
        latencies.len() as f64 / wall.as_secs_f64()
    );
    println!(
        "  latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3
    );
    running.stop().await;
}
