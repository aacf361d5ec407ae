//! Trust and identity as evidence, bounded logging: the real binary over
//! HTTP on loopback, then `hermetic-verifier log verify`.
//!
//! - every start is recorded with the roots it trusts and the policy digest,
//!   every release with the root its document's chain ended in, and `log
//!   verify` flags anything under a root other than the pinned AWS root;
//! - the production build (no `test-roots` feature) refuses `--trust-root`;
//! - refusals before attestation are counted, not logged one by one.
#![cfg_attr(not(feature = "test-roots"), allow(dead_code, unused_imports))]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{
    create_owned, good_pcrs, log_records, owner_change, policy_change, policy_toml, sha256_hex,
    spawn, terminate, Enclave, SECRET_NAME, SECRET_VALUE,
};
use hermetic_approval::Signer;
use hermetic_attestation::{TrustedRoot, AWS_NITRO_ROOT_G1_SHA256};
use hermetic_envelope::wire::{ChallengeResponse, ReleaseRequest};
use hermetic_verifier::client::{AdminClient, HttpClient};
use hyper::Method;
use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hermetic-verifier"))
}

/// `log verify --data-dir DATA [extra]`: exit code and stdout.
fn log_verify(data: &Path, extra: &[&str]) -> (i32, String) {
    let key = bin()
        .args(["log", "key", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    assert!(key.status.success(), "{key:?}");
    let out = bin()
        .args(["log", "verify", "--data-dir"])
        .arg(data)
        .arg("--log-key")
        .arg(String::from_utf8_lossy(&key.stdout).trim())
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn admin(data: &Path, addr: SocketAddr) -> AdminClient {
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    AdminClient::new(&format!("http://{addr}"), token.trim())
}

async fn challenge(http: &HttpClient, public: SocketAddr) -> (u16, Vec<u8>) {
    let (status, body) = http
        .send(
            Method::POST,
            &format!("http://{public}/v1/challenge"),
            &[],
            vec![],
        )
        .await
        .unwrap();
    (status.as_u16(), body)
}

fn nonce_of(body: &[u8]) -> Vec<u8> {
    let c: ChallengeResponse = serde_json::from_slice(body).unwrap();
    c.nonce_bytes().unwrap()
}

async fn post_release(http: &HttpClient, public: SocketAddr, body: Vec<u8>) -> (u16, Vec<u8>) {
    let (status, body) = http
        .send(
            Method::POST,
            &format!("http://{public}/v1/release"),
            &[("content-type", "application/json")],
            body,
        )
        .await
        .unwrap();
    (status.as_u16(), body)
}

fn release_body(document: &[u8], names: &[&str]) -> Vec<u8> {
    let request = ReleaseRequest::new(document, names.iter().map(|n| n.to_string()).collect());
    serde_json::to_vec(&request).unwrap()
}

fn starts(records: &[Value]) -> Vec<&Value> {
    records
        .iter()
        .filter(|r| r["entry"]["action"] == "start")
        .collect()
}

// It restarts the verifier: in the production build a restarted verifier
// stays sealed until its custodians unseal it (tests/custody.rs), so this
// runs in the test-roots build, without --trust-root (an AWS-only start).
#[cfg(feature = "test-roots")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aws_only_start_is_recorded_with_its_roots_and_policy_digest() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let policy = dir.path().join("policy.toml");
    // Two policies, written out of name order.
    let text = format!(
        "{}\n{}",
        policy_toml(SECRET_NAME, &good_pcrs(), "max_age_secs = 30"),
        policy_toml("api-key", &good_pcrs(), "")
    );
    std::fs::write(&policy, text).unwrap();
    // The owner puts both policies; the next start records them.
    let mut server = spawn(&data, &[]);
    let admin = admin(&data, server.admin);
    let owner = Signer::generate("owner").unwrap();
    let key = owner.verifier_key().to_string();
    for name in ["api-key", SECRET_NAME] {
        admin
            .create_secret(name, std::slice::from_ref(&key), 1)
            .await
            .unwrap();
    }
    let policies = std::fs::read_to_string(&policy).unwrap();
    for name in [SECRET_NAME, "api-key"] {
        owner_change(&admin, policy_change(name, policies.clone()), &[&owner])
            .await
            .unwrap();
    }
    terminate(&mut server);
    let mut server = spawn(&data, &[]);
    // The digest an auditor computes from what `policy list`/`policy get`
    // show, names in byte order.
    let admin = self::admin(&data, server.admin);
    let mut names = admin.list_policies().await.unwrap();
    names.sort();
    assert_eq!(names, vec!["api-key".to_owned(), SECRET_NAME.to_owned()]);
    let mut expected = Vec::new();
    for name in &names {
        expected.extend_from_slice(admin.get_policy(name).await.unwrap().as_bytes());
    }
    terminate(&mut server);

    let records = log_records(&data);
    let starts = starts(&records);
    assert_eq!(starts.len(), 2);
    assert_eq!(starts[0]["entry"]["start"]["policies"], 0);
    let start = &starts[1]["entry"]["start"];
    assert_eq!(
        start["trusted_roots"],
        serde_json::json!([hex::encode(AWS_NITRO_ROOT_G1_SHA256)])
    );
    assert_eq!(start["non_aws_root"], false);
    assert_eq!(start["policy_digest"], sha256_hex(&expected));
    assert_eq!(start["policies"], 2);
    assert_eq!(start["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(start["test_roots_build"], cfg!(feature = "test-roots"));

    let (code, out) = log_verify(&data, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("WARNING"), "{out}");
    let (code, out) = log_verify(&data, &["--require-aws-root", "--format", "json"]);
    assert_eq!(code, 0, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["intact"], true);
    assert_eq!(report["non_aws_root_starts"], serde_json::json!([]));
    assert_eq!(report["non_aws_root_releases"], serde_json::json!([]));
}

/// Issue 2: a restart with an extra `--trust-root` let a self-made NSM
/// obtain a secret, and nothing in the log showed it.
#[cfg(feature = "test-roots")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_trusting_a_test_root_and_its_releases_are_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let enclave = Enclave::new();
    let root_pem = enclave.write_root(dir.path());
    let root = TrustedRoot::from_pem(&std::fs::read(&root_pem).unwrap()).unwrap();
    let root_hex = hex::encode(root.sha256());

    let mut server = spawn(&data, &["--trust-root".as_ref(), root_pem.as_os_str()]);
    let admin = admin(&data, server.admin);
    let owner = Signer::generate("owner").unwrap();
    create_owned(
        &admin,
        &owner,
        SECRET_NAME,
        Some(policy_toml(SECRET_NAME, &good_pcrs(), "")),
        SECRET_VALUE,
    )
    .await;
    let http = HttpClient::default();
    let (_, body) = challenge(&http, server.public).await;
    let granted_doc = enclave.document(&nonce_of(&body));
    let (status, body) = post_release(
        &http,
        server.public,
        release_body(&granted_doc, &[SECRET_NAME]),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // A refusal after attestation (the nonce is used up) is recorded too.
    let (_, body) = challenge(&http, server.public).await;
    let refused_doc = enclave.document(&nonce_of(&body));
    let (status, _) = post_release(
        &http,
        server.public,
        release_body(&refused_doc, &["no-such-secret"]),
    )
    .await;
    assert_eq!(status, 403);
    terminate(&mut server);

    let records = log_records(&data);
    let start = &starts(&records)[0]["entry"]["start"];
    assert_eq!(start["trusted_roots"], serde_json::json!([root_hex]));
    assert_eq!(start["non_aws_root"], true);
    let release = |verdict: &str| {
        records
            .iter()
            .find(|r| r["entry"]["action"] == "release" && r["entry"]["verdict"] == verdict)
            .unwrap_or_else(|| panic!("no {verdict} release in {records:#?}"))
            .clone()
    };
    let granted = release("granted");
    assert_eq!(granted["entry"]["who"]["root_sha256"], root_hex);
    assert_eq!(
        granted["entry"]["who"]["document_sha256"],
        sha256_hex(&granted_doc)
    );
    let refused = release("refused");
    assert_eq!(refused["entry"]["reason"], "unknown_secret");
    assert_eq!(refused["entry"]["who"]["root_sha256"], root_hex);
    assert_eq!(
        refused["entry"]["who"]["document_sha256"],
        sha256_hex(&refused_doc)
    );
    let granted_seq = granted["seq"].as_u64().unwrap();
    // An auditor links the record to the document: `audit` reports the same hash.
    let doc_file = dir.path().join("granted.cbor");
    std::fs::write(&doc_file, &granted_doc).unwrap();
    let out = bin()
        .arg("audit")
        .arg(&doc_file)
        .arg("--root")
        .arg(&root_pem)
        .args(["--format", "json"])
        .output()
        .unwrap();
    let audit: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        audit["document_sha256"],
        granted["entry"]["who"]["document_sha256"]
    );

    // The chain is intact, and both the start and the release are flagged.
    let (code, out) = log_verify(&data, &[]);
    assert_eq!(code, 0, "flags are warnings: {out}");
    assert!(out.contains("audit log intact"), "{out}");
    assert!(
        out.contains(
            "WARNING: 1 start(s) trusted a root other than the pinned AWS Nitro root: records 0"
        ),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "WARNING: 1 release(s) granted under a root other than the pinned AWS Nitro root: records {granted_seq}"
        )),
        "{out}"
    );
    let (code, out) = log_verify(&data, &["--format", "json"]);
    assert_eq!(code, 0, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["non_aws_root_starts"], serde_json::json!([0]));
    assert_eq!(
        report["non_aws_root_releases"],
        serde_json::json!([granted_seq])
    );
    let (code, _) = log_verify(&data, &["--require-aws-root"]);
    assert_eq!(code, 1, "a production audit can insist on the AWS root");

    // A later start with only the AWS root is recorded and not flagged; the
    // earlier evidence stays.
    let mut server = spawn(&data, &[]);
    terminate(&mut server);
    let records = log_records(&data);
    let starts = starts(&records);
    assert_eq!(starts.len(), 2);
    assert_eq!(starts[1]["entry"]["start"]["non_aws_root"], false);
    let (_, out) = log_verify(&data, &["--format", "json"]);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["non_aws_root_starts"], serde_json::json!([0]));
}

/// The production build cannot trust a test root at all.
#[cfg(not(feature = "test-roots"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_production_build_refuses_trust_root() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let root = Enclave::new().write_root(dir.path());
    let out = bin()
        .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen"])
        .args(["127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .arg("--trust-root")
        .arg(&root)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--trust-root is not available in this build"),
        "{stderr}"
    );
    assert!(!data.exists(), "refused before anything was created");
    let help = bin().args(["serve", "--help"]).output().unwrap();
    // Not offered as an option (the text still says the build refuses it).
    assert!(!String::from_utf8_lossy(&help.stdout).contains("--trust-root <PEM>"));

    // The library refuses it too.
    let mut config = common::config(dir.path(), Some(root));
    config.data_dir = data.clone();
    let err = hermetic_verifier::service::start(
        config,
        std::sync::Arc::new(hermetic_verifier::clock::SystemClock),
    )
    .await
    .err()
    .expect("a production build trusts only the AWS root");
    assert!(matches!(
        err,
        hermetic_verifier::service::ServeError::TestRootsDisabled
    ));
    assert!(!data.exists());
}

/// Issue 4: every refusal before attestation used to be appended (and
/// synced) with every name it carried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_garbage_requests_grow_the_log_by_one_summary() {
    const REQUESTS: usize = 10_000;
    const CLIENTS: usize = 8;
    const MARKER: &str = "garbage-marker-5d1c";
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let enclave = Enclave::new();
    let root = enclave.write_root(dir.path());
    let mut args: Vec<&std::ffi::OsStr> =
        vec!["--refusal-summary-interval".as_ref(), "1h".as_ref()];
    if cfg!(feature = "test-roots") {
        args.extend(["--trust-root".as_ref(), root.as_os_str()]);
    }
    let mut server = spawn(&data, &args);
    let before = std::fs::metadata(data.join("audit.jsonl")).unwrap().len();
    let records_before = log_records(&data).len();

    // Garbage of every kind an anonymous client can send, each with names.
    let signed = enclave.document(&[0x11; 32]);
    let mut bad_signature = signed.clone();
    let last = bad_signature.len() - 1;
    bad_signature[last] ^= 1;
    let long_names: Vec<String> = (0..65).map(|i| format!("{MARKER}-{i:0>100}")).collect();
    let long_names: Vec<&str> = long_names.iter().map(String::as_str).collect();
    let attested = if cfg!(feature = "test-roots") {
        ("nonce_unknown", "bad_signature")
    } else {
        ("untrusted_root", "untrusted_root")
    };
    let kinds: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"{not json".to_vec(), 400, "bad_request"),
        (
            format!(r#"{{"attestation_document":"***","secrets":["{MARKER}"]}}"#).into_bytes(),
            400,
            "envelope_bad_base64",
        ),
        (
            release_body(b"garbage", &[MARKER, "db-password"]),
            403,
            "malformed_cbor",
        ),
        (release_body(&signed, &[MARKER]), 403, attested.0),
        (release_body(&bad_signature, &[MARKER]), 403, attested.1),
        (
            release_body(&signed, &[&format!("../{MARKER}/etc/passwd")]),
            400,
            "invalid_name",
        ),
        (release_body(&signed, &long_names), 400, "too_many_secrets"),
    ];
    let kinds = std::sync::Arc::new(kinds);
    let public = server.public;
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let kinds = kinds.clone();
            tokio::spawn(async move {
                let http = HttpClient::default();
                for i in (c..REQUESTS).step_by(CLIENTS) {
                    let (body, want_status, want_reason) = &kinds[i % kinds.len()];
                    let (status, answer) = post_release(&http, public, body.clone()).await;
                    assert_eq!(
                        (status, common::reason(&answer)),
                        (*want_status, want_reason.to_string())
                    );
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    // Every one is counted by reason in the metrics.
    let (_, metrics) = HttpClient::default()
        .send(
            Method::GET,
            &format!("http://{public}/metrics"),
            &[],
            vec![],
        )
        .await
        .unwrap();
    let metrics = String::from_utf8(metrics).unwrap();
    let counted: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("hermetic_refusals_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(counted, REQUESTS as u64, "{metrics}");
    // Nothing was appended while they came in.
    assert_eq!(
        std::fs::metadata(data.join("audit.jsonl")).unwrap().len(),
        before
    );
    terminate(&mut server);

    // On shutdown, one summary record: the bound the README states.
    let after = std::fs::metadata(data.join("audit.jsonl")).unwrap().len();
    let grown = after - before;
    assert!(grown <= 1024, "the log grew by {grown} bytes");
    let records = log_records(&data);
    assert_eq!(records.len(), records_before + 1);
    let summary = &records.last().unwrap()["entry"];
    assert_eq!(summary["action"], "refusal_summary");
    let counts = summary["refusals"]["counts"].as_object().unwrap();
    let total: u64 = counts.values().map(|n| n.as_u64().unwrap()).sum();
    assert_eq!(total, REQUESTS as u64, "{counts:?}");
    assert!(counts.contains_key("invalid_name"), "{counts:?}");
    let text = std::fs::read_to_string(data.join("audit.jsonl")).unwrap();
    assert!(!text.contains(MARKER), "no name a client sent is logged");
    assert_eq!(log_verify(&data, &[]).0, 0);
    eprintln!("10,000 garbage requests grew the audit log by {grown} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusal_summaries_are_periodic_and_never_empty() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = spawn(
        &data,
        &["--refusal-summary-interval".as_ref(), "200ms".as_ref()],
    );
    let http = HttpClient::default();
    let summaries = |data: &Path| {
        log_records(data)
            .into_iter()
            .filter(|r| r["entry"]["action"] == "refusal_summary")
            .collect::<Vec<_>>()
    };
    let wait_for = |n: usize| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while summaries(&data).len() < n {
            assert!(std::time::Instant::now() < deadline, "no summary appeared");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    for _ in 0..3 {
        let (status, _) = post_release(&http, server.public, b"{".to_vec()).await;
        assert_eq!(status, 400);
    }
    wait_for(1);
    for _ in 0..2 {
        let (status, _) = post_release(&http, server.public, b"[]".to_vec()).await;
        assert_eq!(status, 400);
    }
    wait_for(2);
    terminate(&mut server);
    let summaries = summaries(&data);
    let mut total = 0;
    for s in &summaries {
        let counts = s["entry"]["refusals"]["counts"].as_object().unwrap();
        assert!(!counts.is_empty(), "an empty summary: {s}");
        total += counts["bad_request"].as_u64().unwrap();
    }
    assert_eq!(total, 5);
    assert_eq!(log_verify(&data, &[]).0, 0);
}
