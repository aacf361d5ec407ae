//! Load generator: releases per second and latency percentiles of
//! `POST /v1/release` on loopback, against an in-process service with a
//! trusted test root; then where the time of one warm release goes.
//!
//! Documents are signed before the clock starts (signing is the enclave's
//! cost, not the verifier's); each timed phase is only HTTP release requests
//! from CONCURRENCY keep-alive clients, run for 1, 16 and 64 clients in turn.
//! Every response is checked to be a grant. All documents come from one
//! enclave (one leaf certificate), so after the first release every
//! attestation check is warm: one P-384 verification.
//!
//! The stage table then times, on one thread and in-process, each piece of
//! a warm release: the bare P-384 verification, the whole attestation check,
//! the store reads (three transactions as before, one snapshot as now), HPKE
//! sealing, the JSON/base64 work, one audit-log append (alone, so it pays a
//! whole `fdatasync`), and the whole release without HTTP.
//!
//! Then the service is restarted on the same data with two in-process
//! witnesses on loopback (`--witness` x2, `--witness-threshold 2`: each
//! grant waits for its record to be in a checkpoint both cosigned, each
//! witness syncing its state first) and the load runs again, with the
//! ratios to the first run.
//!
//! `cargo bench -p hermetic-verifier --bench release_load`
//! (env HERMETIC_BENCH_RELEASES per phase, default 3000;
//! HERMETIC_BENCH_CONCURRENCY, a comma-separated list, default 1,16,64).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ParsedPublicKey, ECDSA_P384_SHA384_FIXED};
use hermetic_approval::Signer;
use hermetic_attestation::simulator::{Leaf, TestPki};
use hermetic_attestation::{decode, At, Document, UnixTime};
use hermetic_envelope::wire::{ChallengeResponse, ReleaseRequest, ReleaseResponse, WrappedSecret};
use hermetic_envelope::{seal, EnclaveKey, RecipientPublicKey, ReleaseContext, Zeroizing};
use hermetic_verifier::client::change::{self, Proposal};
use hermetic_verifier::client::{AdminClient, HttpClient};
use hermetic_verifier::clock::SystemClock;
use hermetic_verifier::log::{Entry, SecretRef, Who};
use hermetic_verifier::service::{self, AppState, ServeConfig};
use hyper::Method;
use x509_parser::prelude::{FromDer, X509Certificate};

const SECRET: &str = "db-password";

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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

fn main() {
    // `cargo test --benches` runs bench targets without --bench: a tiny
    // load there, so that CI stays quick but still runs every line.
    let quick = !std::env::args().any(|a| a == "--bench");
    let releases = env_usize("HERMETIC_BENCH_RELEASES", if quick { 50 } else { 3000 });
    let clients: Vec<usize> = std::env::var("HERMETIC_BENCH_CONCURRENCY")
        .unwrap_or_else(|_| if quick { "16".into() } else { "1,16,64".into() })
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .map(|c: usize| c.max(1))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(releases, &clients, if quick { 20 } else { 400 }));
}

/// The enclave side: one leaf, one key, the PCRs the policy allows.
struct Enclave {
    pki: TestPki,
    leaf: Leaf,
    key: EnclaveKey,
    pcrs: BTreeMap<u8, Vec<u8>>,
}

impl Enclave {
    fn new() -> Enclave {
        let secs = now().as_secs() as i64;
        let pki = TestPki::generate(secs).unwrap();
        let leaf = pki
            .issue_leaf("i-bench-enc0", secs - 600, secs + 3600)
            .unwrap();
        Enclave {
            pki,
            leaf,
            key: EnclaveKey::from_ikm(&[7; 32]).unwrap(),
            pcrs: (0u8..16).map(|i| (i, vec![i + 1; 48])).collect(),
        }
    }

    fn document(&self, nonce: Vec<u8>) -> Vec<u8> {
        let doc = Document {
            module_id: "i-bench-enc0".into(),
            digest: "SHA384".into(),
            timestamp_ms: now().as_millis() as u64,
            pcrs: self.pcrs.clone(),
            certificate: self.leaf.der.clone(),
            cabundle: self.pki.cabundle(),
            public_key: Some(self.key.public_key_bytes().to_vec()),
            user_data: None,
            nonce: Some(nonce),
            unknown_fields: vec![],
        };
        self.leaf.sign(&doc).unwrap()
    }

    fn release_body(&self, nonce: Vec<u8>) -> Vec<u8> {
        let req = ReleaseRequest::new(&self.document(nonce), vec![SECRET.into()]);
        serde_json::to_vec(&req).unwrap()
    }
}

async fn run(releases: usize, clients: &[usize], stage_iterations: usize) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let enclave = Enclave::new();
    let root = dir.path().join("root.pem");
    std::fs::write(&root, enclave.pki.root_pem()).unwrap();

    let mut config = ServeConfig::new(dir.path().join("data"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.admin_listen = "127.0.0.1:0".parse().unwrap();
    config.trust_roots = vec![root];
    config.rate_limit_per_sec = 0.0;
    config.challenge_ttl = Duration::from_secs(600);
    // Every client here is 127.0.0.1, and a phase's challenges are all
    // fetched before its releases: lift the per-address limits (made for
    // many clients on the network) above what one phase holds.
    config.max_nonces_per_address = releases.max(1);
    config.max_connections_per_address = config.max_connections;
    let running = service::start(config.clone(), Arc::new(SystemClock))
        .await
        .unwrap();
    let token = std::fs::read_to_string(dir.path().join("data/admin.token")).unwrap();
    let admin = AdminClient::new(&format!("http://{}", running.admin_addr), token.trim());
    seed(&admin, &enclave).await;

    println!(
        "release_load: loopback HTTP/1.1, in-process service, one warm enclave, audit log synced before each answer (group commit)"
    );
    println!("  no witnesses:");
    let mut plain = Vec::new();
    for &concurrency in clients {
        plain.push(load(&running, &enclave, releases, concurrency).await);
    }
    let state = running.state.clone();
    let log_key = state.log.verifier_key();
    let enclave = Arc::new(enclave);
    let staged = enclave.clone();
    tokio::task::spawn_blocking(move || stages(&state, &staged, stage_iterations))
        .await
        .unwrap();
    running.stop().await;

    // The same service with two witnesses, K = 2.
    let mut witnesses = Vec::new();
    for i in 0..2 {
        witnesses.push(start_witness(&dir.path().join(format!("w{i}")), i, &log_key).await);
    }
    config.witnesses = Some(service::witnesses::WitnessConfig {
        witnesses,
        threshold: 2,
        timeout: Duration::from_secs(10),
    });
    let running = service::start(config, Arc::new(SystemClock)).await.unwrap();
    println!("  2 witnesses, K = 2 (ratio to no witnesses):");
    for (&concurrency, (rate0, p50_0)) in clients.iter().zip(plain) {
        let (rate, p50) = load(&running, &enclave, releases, concurrency).await;
        println!(
            "        x{:.2} releases/s, p50 +{:.2} ms",
            rate / rate0,
            p50 - p50_0
        );
    }
    running.stop().await;

    // The store in PostgreSQL (issue 13): one replica, then three replicas
    // on the same database (challenge at one, release at the next), beside
    // the embedded store's numbers above.
    match std::env::var("HERMETIC_TEST_POSTGRES") {
        Ok(base) => {
            for replicas in [1, 3] {
                postgres_run(
                    &dir.path().join(format!("pg{replicas}")),
                    &base,
                    &config_base(&dir, releases),
                    &enclave,
                    releases,
                    clients,
                    replicas,
                )
                .await;
            }
        }
        Err(_) => println!("  PostgreSQL: skipped (HERMETIC_TEST_POSTGRES not set)"),
    }
}

/// The first run's settings, for the PostgreSQL runs (no witnesses).
fn config_base(dir: &tempfile::TempDir, releases: usize) -> ServeConfig {
    let mut config = ServeConfig::new(dir.path().join("unused"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.admin_listen = "127.0.0.1:0".parse().unwrap();
    config.trust_roots = vec![dir.path().join("root.pem")];
    config.rate_limit_per_sec = 0.0;
    config.challenge_ttl = Duration::from_secs(600);
    config.max_nonces_per_address = releases.max(1);
    config.max_connections_per_address = config.max_connections;
    config
}

/// `replicas` in-process verifiers on one fresh PostgreSQL database.
async fn postgres_run(
    dir: &std::path::Path,
    base: &str,
    template: &ServeConfig,
    enclave: &Enclave,
    releases: usize,
    clients: &[usize],
    replicas: usize,
) {
    let name = format!("hermetic_bench_{}", std::process::id());
    let url = match base.rsplit_once('/') {
        Some((host, _)) => format!("{host}/{name}"),
        None => return,
    };
    let admin_sql = |sql: String| {
        let base = base.to_owned();
        std::thread::spawn(move || {
            let mut c = postgres::Client::connect(&base, postgres::NoTls).unwrap();
            c.batch_execute(&sql).unwrap();
        })
        .join()
        .unwrap()
    };
    admin_sql(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    admin_sql(format!("CREATE DATABASE {name}"));
    let mut running = Vec::new();
    for i in 0..replicas {
        let data = dir.join(format!("replica-{i}"));
        if i > 0 {
            std::fs::create_dir_all(&data).unwrap();
            for f in ["genesis.json", "dev-custodian.key", "admin.token"] {
                std::fs::copy(dir.join("replica-0").join(f), data.join(f)).unwrap();
            }
        }
        let mut config = template.clone();
        config.data_dir = data.clone();
        config.store = Some(url.clone());
        running.push(service::start(config, Arc::new(SystemClock)).await.unwrap());
        if i == 0 {
            let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
            let admin =
                AdminClient::new(&format!("http://{}", running[0].admin_addr), token.trim());
            seed(&admin, enclave).await;
        }
    }
    println!("  PostgreSQL store (loopback), {replicas} replica(s), challenge at one and release at the next:");
    let addrs: Vec<std::net::SocketAddr> = running.iter().map(|r| r.public_addr).collect();
    for &concurrency in clients {
        load_at(&addrs, enclave, releases, concurrency).await;
    }
    for r in running {
        r.stop().await;
    }
    admin_sql(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
}

/// One owner creates the secret and approves its policy and value.
async fn seed(admin: &AdminClient, enclave: &Enclave) {
    let owner = Signer::generate("bench-owner").unwrap();
    admin
        .create_secret(SECRET, &[owner.verifier_key().to_string()], 1)
        .await
        .unwrap();
    let mut policy =
        format!("[secrets.{SECRET}]\nmax_age_secs = 600\n[[secrets.{SECRET}.measurements]]\n");
    for i in [0u8, 1, 2, 8] {
        policy.push_str(&format!(
            "pcr{i} = \"{}\"\n",
            hex::encode(&enclave.pcrs[&i])
        ));
    }
    for proposal in [
        Proposal::Policy {
            name: SECRET.into(),
            toml: policy,
        },
        Proposal::Value {
            name: SECRET.into(),
            value: Zeroizing::new(b"bench secret value".to_vec()),
        },
    ] {
        let file = admin.propose(&proposal, None, None).await.unwrap();
        let (signed, _) = change::sign(&file, &owner).unwrap();
        admin.submit_change(&signed).await.unwrap();
    }
}

/// An in-process witness on loopback that knows the log `log`.
async fn start_witness(
    dir: &std::path::Path,
    i: usize,
    log: &hermetic_tlog::note::VerifierKey,
) -> hermetic_witness::PoolWitness {
    let cosigner = hermetic_tlog::cosignature::Cosigner::generate(&format!("w{i}.bench")).unwrap();
    let key = cosigner.cosigner_key();
    let witness = hermetic_witness::Witness::open(
        cosigner,
        hermetic_tlog::witness::KnownLogs::new([log.clone()]),
        hermetic_witness::StateDir::open(dir).unwrap(),
        hermetic_witness::system_clock(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(hermetic_witness::serve(
        listener,
        Arc::new(witness),
        std::future::pending(),
    ));
    hermetic_witness::PoolWitness { url, key }
}

/// The server's own release and log-append time sums and the release
/// count so far (from its /metrics): `[release sum, log sum, count]`.
async fn server_mean(http: &HttpClient, addr: std::net::SocketAddr) -> [f64; 3] {
    let (_, body) = http
        .send(Method::GET, &format!("http://{addr}/metrics"), &[], vec![])
        .await
        .unwrap();
    let text = String::from_utf8(body).unwrap();
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    [
        value("hermetic_release_duration_seconds_sum "),
        value("hermetic_log_append_duration_seconds_sum "),
        value("hermetic_release_duration_seconds_count "),
    ]
}

/// Returns releases per second and the p50 in milliseconds.
async fn load(
    running: &service::Running,
    enclave: &Enclave,
    releases: usize,
    concurrency: usize,
) -> (f64, f64) {
    load_at(&[running.public_addr], enclave, releases, concurrency).await
}

/// [`load`] over replicas: the challenge of request i comes from replica
/// i mod n, its release goes to replica i+1 mod n.
async fn load_at(
    addrs: &[std::net::SocketAddr],
    enclave: &Enclave,
    releases: usize,
    concurrency: usize,
) -> (f64, f64) {
    // Challenges and signed documents, prepared up front.
    let http = HttpClient::new(Duration::from_secs(30));
    let mut bodies = Vec::with_capacity(releases);
    for i in 0..releases {
        let challenge_url = format!("http://{}/v1/challenge", addrs[i % addrs.len()]);
        let (_, body) = http
            .send(Method::POST, &challenge_url, &[], vec![])
            .await
            .unwrap();
        let nonce = serde_json::from_slice::<ChallengeResponse>(&body)
            .unwrap()
            .nonce_bytes()
            .unwrap();
        let release_url = format!("http://{}/v1/release", addrs[(i + 1) % addrs.len()]);
        bodies.push((release_url, enclave.release_body(nonce)));
    }
    let mut before = [0.0; 3];
    for &addr in addrs {
        let m = server_mean(&http, addr).await;
        before.iter_mut().zip(m).for_each(|(b, v)| *b += v);
    }

    // Timed phase: CONCURRENCY clients share the prepared bodies.
    let queue = Arc::new(std::sync::Mutex::new(bodies));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let queue = queue.clone();
        let http = HttpClient::new(Duration::from_secs(30));
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let Some((url, body)) = queue.lock().unwrap().pop() else {
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
    let mut after = [0.0; 3];
    for &addr in addrs {
        let m = server_mean(&http, addr).await;
        after.iter_mut().zip(m).for_each(|(a, v)| *a += v);
    }
    let count = (after[2] - before[2]).max(1.0);
    println!(
        "  {concurrency:>3} clients: {:>5.0} releases/s   p50 {:>6.2} ms   p99 {:>6.2} ms   max {:>7.2} ms   (server's own mean {:.2} ms, log append {:.2} ms; {} releases)",
        latencies.len() as f64 / wall.as_secs_f64(),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap()),
        (after[0] - before[0]) / count * 1e3,
        (after[1] - before[1]) / count * 1e3,
        latencies.len()
    );
    (
        latencies.len() as f64 / wall.as_secs_f64(),
        ms(percentile(&latencies, 0.50)),
    )
}

/// Median microseconds of each op over `n` rounds, the ops taking turns
/// within a round so that load from other processes falls on all alike.
fn interleaved_medians_us(n: usize, ops: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    ops.iter_mut().for_each(|op| op()); // warm
    let mut times = vec![Vec::with_capacity(n); ops.len()];
    for _ in 0..n {
        for (i, op) in ops.iter_mut().enumerate() {
            let t = Instant::now();
            op();
            times[i].push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort_by(|a, b| a.total_cmp(b));
            t[n / 2]
        })
        .collect()
}

/// Where the time of one warm release goes, on one thread.
fn stages(state: &AppState, enclave: &Enclave, n: usize) {
    let rng = SystemRandom::new();
    let fresh_body = || {
        let (nonce, _) = state.nonces.issue(&rng, now()).unwrap();
        enclave.release_body(nonce.to_vec())
    };
    let body = fresh_body();
    let request: ReleaseRequest = serde_json::from_slice(&body).unwrap();
    let document = request.attestation_document_bytes().unwrap();
    let (cose, doc) = decode(&document).unwrap();
    let (_, leaf) = X509Certificate::from_der(&doc.certificate).unwrap();
    let key = ParsedPublicKey::new(
        &ECDSA_P384_SHA384_FIXED,
        leaf.public_key().subject_public_key.data.as_ref(),
    )
    .unwrap();
    let message = cose.to_be_signed();
    let at = At::Time(UnixTime::since_unix_epoch(now()));
    let recipient = RecipientPublicKey::from_bytes(&enclave.key.public_key_bytes()).unwrap();
    let (version, value) = state.store.latest_secret(SECRET).unwrap().unwrap();
    let context = ReleaseContext::new(SECRET, version, doc.nonce.clone().unwrap());
    let sealed = seal(&recipient, &context, &value, &rng).unwrap();

    // The enclave is seen (so its leaf is cached) and the release record's
    // identity is the one a grant logs.
    let root_sha256 = state.verifier.verify(&document, at).unwrap().root_sha256;

    let bodies: Vec<Vec<u8>> = (0..=n + 1).map(|_| fresh_body()).collect();
    let mut bodies = bodies.into_iter();
    let client = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let medians = interleaved_medians_us(
        n,
        &mut [
            &mut || assert!(key.verify_sig(black_box(&message), &cose.signature).is_ok()),
            &mut || {
                let attested = state.verifier.verify(black_box(&document), at).unwrap();
                assert!(attested.leaf_from_cache);
            },
            &mut || {
                // What a release read before: three read transactions.
                assert!(state.store.secret_exists(SECRET).unwrap());
                assert!(state.store.policy(SECRET).unwrap().is_some());
                black_box(state.store.latest_secret(SECRET).unwrap());
            },
            &mut || {
                // What it reads now: one snapshot, the value opened after.
                let view = state.store.release_view(SECRET).unwrap().unwrap();
                assert!(view.policy.is_some());
                black_box(state.store.open_release_value(SECRET, &view).unwrap());
            },
            &mut || {
                black_box(seal(&recipient, &context, &value, &rng).unwrap());
            },
            &mut || {
                let request: ReleaseRequest = serde_json::from_slice(black_box(&body)).unwrap();
                black_box(request.attestation_document_bytes().unwrap());
                let response = ReleaseResponse {
                    secrets: vec![WrappedSecret::from(&sealed)],
                    receipt: None,
                };
                black_box(serde_json::to_vec(&response).unwrap());
            },
            &mut || {
                let entry = Entry {
                    action: "release".into(),
                    verdict: "granted".into(),
                    secrets: vec![SecretRef {
                        name: SECRET.into(),
                        version: Some(version),
                    }],
                    who: Who {
                        client: Some("127.0.0.1".into()),
                        ..Who::attested(&doc, &root_sha256, &document)
                    },
                    ..Entry::default()
                };
                state.log.append(entry, now()).unwrap();
            },
            &mut || {
                let body = bodies.next().unwrap();
                assert!(state.release(&body, client).is_ok());
            },
        ],
    );
    let signature = medians[0];
    let labels = [
        "P-384 signature check (bare)",
        "attestation check, warm (incl. the signature)",
        "store reads, three transactions (before)",
        "store reads, one snapshot (the release path)",
        "HPKE sealing (one secret)",
        "JSON and base64 (request in, response out)",
        "audit record + fdatasync (alone, unshared)",
        "whole release in-process (the above but \"before\")",
    ];
    println!("  one warm release, by stage (one thread, stages taking turns, median of {n}):");
    for (label, us) in labels.into_iter().zip(medians) {
        println!(
            "    {label:<48} {us:>8.0} us   {:>5.2}x the signature",
            us / signature
        );
    }
}
