//! The service over HTTP on 127.0.0.1: releases to a simulated enclave,
//! every refusal by reason, admin authentication, write-only secrets,
//! restart, limits. Tests that serve a simulated enclave trust its test
//! root, so they need the `test-roots` feature; the rest run in both builds.
#![cfg_attr(not(feature = "test-roots"), allow(dead_code, unused_imports))]

mod common;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use common::{
    config, debug_pcrs, good_pcrs, now, now_ms, policy_toml, reason, Enclave, Service, SECRET_NAME,
    SECRET_VALUE,
};
use hermetic_envelope::wire::ReleaseResponse;
use hermetic_envelope::{open, ReleaseContext, SealedSecret};
use hermetic_verifier::clock::{ManualClock, SystemClock};
use hermetic_verifier::service::{ADMIN_ROUTES, PUBLIC_ROUTES};
use hyper::Method;

#[cfg(feature = "test-roots")]
async fn seeded(
    enclave: &Enclave,
    dir: &std::path::Path,
    clock: Arc<dyn hermetic_verifier::clock::Clock>,
) -> Service {
    let root = enclave.write_root(dir);
    let svc = Service::start(config(dir, Some(root)), clock).await;
    let written = svc
        .admin
        .put_secret(SECRET_NAME, SECRET_VALUE)
        .await
        .unwrap();
    assert_eq!(written.version, 1);
    svc.admin
        .put_policy(
            SECRET_NAME,
            &policy_toml(SECRET_NAME, &good_pcrs(), "max_age_secs = 120"),
        )
        .await
        .unwrap();
    svc
}

#[cfg(feature = "test-roots")]
fn open_released(enclave: &Enclave, body: &[u8], nonce: &[u8]) -> Vec<(String, u64, Vec<u8>)> {
    let response: ReleaseResponse = serde_json::from_slice(body).unwrap();
    response
        .secrets
        .iter()
        .map(|w| {
            let sealed = SealedSecret::try_from(w).unwrap();
            let context = ReleaseContext::new(w.name.clone(), w.version, nonce.to_vec());
            let plain = open(&enclave.key, &sealed, &context).unwrap();
            (w.name.clone(), w.version, plain.to_vec())
        })
        .collect()
}

#[cfg(feature = "test-roots")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_to_a_simulated_enclave_that_matches_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let enclave = Enclave::new();
    let svc = seeded(&enclave, dir.path(), Arc::new(SystemClock)).await;

    let nonce = svc.challenge().await;
    assert_eq!(nonce.len(), 32);
    let (status, body) = svc.release(&enclave.document(&nonce), &[SECRET_NAME]).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let opened = open_released(&enclave, &body, &nonce);
    assert_eq!(
        opened,
        vec![(SECRET_NAME.to_owned(), 1, SECRET_VALUE.to_vec())]
    );
    assert!(!String::from_utf8_lossy(&body).contains(std::str::from_utf8(SECRET_VALUE).unwrap()));

    // Rotation: the next release carries version 2 and the new value.
    let w = svc
        .admin
        .rotate_secret(SECRET_NAME, b"rotated value")
        .await
        .unwrap();
    assert_eq!(w.version, 2);
    let nonce = svc.challenge().await;
    let (status, body) = svc.release(&enclave.document(&nonce), &[SECRET_NAME]).await;
    assert_eq!(status, 200);
    assert_eq!(
        open_released(&enclave, &body, &nonce),
        vec![(SECRET_NAME.to_owned(), 2, b"rotated value".to_vec())]
    );

    // Metrics count releases and refusals by reason.
    let (status, body) = svc.release(&enclave.document(&nonce), &[SECRET_NAME]).await;
    assert_eq!((status, reason(&body).as_str()), (403, "nonce_replayed"));
    let (_, metrics) = svc
        .http
        .send(Method::GET, &svc.public_url("/metrics"), &[], vec![])
        .await
        .unwrap();
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(metrics.contains("hermetic_releases_total 2"), "{metrics}");
    assert!(metrics.contains("hermetic_refusals_total{reason=\"nonce_replayed\"} 1"));
    assert!(metrics.contains("hermetic_release_duration_seconds_count 3"));

    // The audit log holds the start, the edits and both releases, intact.
    // The replay consumed no nonce: it is only counted, and the count is
    // recorded in a `refusal_summary` on stop.
    let data = dir.path().join("data");
    let intact = hermetic_verifier::log::verify(&data).unwrap().unwrap();
    assert_eq!(intact.records, 6); // start, put, policy, release, rotate, release
    let log = std::fs::read_to_string(data.join("audit.jsonl")).unwrap();
    assert!(log.contains("\"verdict\":\"granted\""));
    assert!(!log.contains("nonce_replayed"));
    assert!(!log.contains("correct horse"), "values never reach the log");
    svc.running.stop().await;
    let intact = hermetic_verifier::log::verify(&data).unwrap().unwrap();
    assert_eq!(intact.records, 7);
    let last: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(data.join("audit.jsonl"))
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(last["record"]["entry"]["action"], "refusal_summary");
    assert_eq!(
        last["record"]["entry"]["refusals"]["counts"],
        serde_json::json!({"nonce_replayed": 1})
    );
}

#[cfg(feature = "test-roots")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_every_policy_failure_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let enclave = Enclave::new();
    let clock = Arc::new(ManualClock::new(now()));
    let svc = seeded(&enclave, dir.path(), clock.clone()).await;
    let key = Some(enclave.key.public_key_bytes().to_vec());

    let expect = |(status, body): (u16, Vec<u8>), want: &str| {
        assert_eq!(
            (status, reason(&body)),
            (403, want.to_owned()),
            "{}",
            String::from_utf8_lossy(&body)
        );
    };

    let mut wrong = good_pcrs();
    wrong.insert(0, vec![0xee; 48]);
    let n = svc.challenge().await;
    let doc = enclave.document_with(wrong, Some(&n), now_ms(), key.clone());
    expect(svc.release(&doc, &[SECRET_NAME]).await, "pcr_mismatch");

    let n = svc.challenge().await;
    let doc = enclave.document_with(debug_pcrs(), Some(&n), now_ms(), key.clone());
    expect(svc.release(&doc, &[SECRET_NAME]).await, "debug_enclave");

    let n = svc.challenge().await;
    let doc = enclave.document_with(good_pcrs(), Some(&n), now_ms() - 200_000, key.clone());
    expect(svc.release(&doc, &[SECRET_NAME]).await, "document_too_old");

    expect(
        svc.release(&enclave.document(&[7; 32]), &[SECRET_NAME])
            .await,
        "nonce_unknown",
    );

    let n = svc.challenge().await;
    expect(
        svc.release(&enclave.document(&n), &["no-such-secret"])
            .await,
        "unknown_secret",
    );

    // A secret with no policy is refused (fail closed).
    svc.admin.put_secret("orphan", b"x").await.unwrap();
    let n = svc.challenge().await;
    expect(
        svc.release(&enclave.document(&n), &["orphan"]).await,
        "no_policy",
    );

    // Replay: the first use succeeds, the second is refused.
    let n = svc.challenge().await;
    let doc = enclave.document(&n);
    assert_eq!(svc.release(&doc, &[SECRET_NAME]).await.0, 200);
    expect(svc.release(&doc, &[SECRET_NAME]).await, "nonce_replayed");

    // Expiry, with the injected clock: the nonce outlives its 60 s TTL.
    let n = svc.challenge().await;
    clock.advance(Duration::from_secs(61));
    let doc = enclave.document_with(good_pcrs(), Some(&n), clock_ms(&clock), key.clone());
    expect(svc.release(&doc, &[SECRET_NAME]).await, "nonce_expired");

    // Malformed requests are 400s with their own reasons.
    let (status, body) = svc
        .http
        .send(
            Method::POST,
            &svc.public_url("/v1/release"),
            &[],
            b"{not json".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(
        (status.as_u16(), reason(&body).as_str()),
        (400, "bad_request")
    );
    let (status, body) = svc
        .http
        .send(
            Method::POST,
            &svc.public_url("/v1/release"),
            &[],
            br#"{"attestation_document":"***","secrets":["a"]}"#.to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(
        (status.as_u16(), reason(&body).as_str()),
        (400, "envelope_bad_base64")
    );
    svc.running.stop().await;
}

#[cfg(feature = "test-roots")]
fn clock_ms(clock: &ManualClock) -> u64 {
    use hermetic_verifier::clock::Clock;
    clock.now().as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_only_service_refuses_a_simulated_document() {
    let dir = tempfile::tempdir().unwrap();
    let enclave = Enclave::new();
    let svc = Service::start(config(dir.path(), None), Arc::new(SystemClock)).await;
    svc.admin
        .put_secret(SECRET_NAME, SECRET_VALUE)
        .await
        .unwrap();
    svc.admin
        .put_policy(SECRET_NAME, &policy_toml(SECRET_NAME, &good_pcrs(), ""))
        .await
        .unwrap();
    let n = svc.challenge().await;
    let (status, body) = svc.release(&enclave.document(&n), &[SECRET_NAME]).await;
    assert_eq!((status, reason(&body).as_str()), (403, "untrusted_root"));
    svc.running.stop().await;
}

fn concrete(path: &str) -> String {
    path.replace("{name}", SECRET_NAME)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_need_a_valid_token() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(config(dir.path(), None), Arc::new(SystemClock)).await;
    let mut checked = 0;
    for (method, path) in ADMIN_ROUTES {
        if *path == "/healthz" {
            continue;
        }
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let url = svc.admin_url(&concrete(path));
        for headers in [
            vec![],
            vec![("authorization", "Bearer wrong-token")],
            vec![("authorization", "Basic abc")],
        ] {
            let (status, body) = svc
                .http
                .send(method.clone(), &url, &headers, b"value".to_vec())
                .await
                .unwrap();
            assert_eq!(
                (status.as_u16(), reason(&body).as_str()),
                (401, "unauthorized"),
                "{method} {path}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 3 * (ADMIN_ROUTES.len() - 1));
    // Nothing was written.
    assert!(svc.admin.list_secrets().await.unwrap().is_empty());
    // The right token works, and the file holding it is private.
    assert!(svc.admin.put_secret("x", b"v").await.is_ok());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for file in ["admin.token", "master.key"] {
            let mode = std::fs::metadata(dir.path().join("data").join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
    }
    svc.running.stop().await;
}

#[cfg(feature = "test-roots")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_returns_a_secret_value() {
    let dir = tempfile::tempdir().unwrap();
    let enclave = Enclave::new();
    let svc = seeded(&enclave, dir.path(), Arc::new(SystemClock)).await;
    let other_value = b"second-value-9d8e7f".to_vec();
    let forbidden: Vec<Vec<u8>> = [SECRET_VALUE.to_vec(), other_value.clone()]
        .iter()
        .flat_map(|v| {
            [
                v.clone(),
                hex::encode(v).into_bytes(),
                base64::engine::general_purpose::STANDARD
                    .encode(v)
                    .into_bytes(),
            ]
        })
        .collect();
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    let auth = format!("Bearer {}", svc.token);

    let mut walked = Vec::new();
    // DELETE routes last, so the secret exists while everything else is read.
    let mut routes: Vec<_> = ADMIN_ROUTES.iter().map(|r| (true, *r)).collect();
    routes.extend(PUBLIC_ROUTES.iter().map(|r| (false, *r)));
    routes.sort_by_key(|(_, (m, _))| *m == "DELETE");
    for (is_admin, (method, path)) in routes {
        let url = if is_admin {
            svc.admin_url(&concrete(path))
        } else {
            svc.public_url(path)
        };
        let body = match (method, path) {
            ("PUT", p) if p.contains("policies") => {
                policy_toml(SECRET_NAME, &good_pcrs(), "").into_bytes()
            }
            ("PUT", _) | ("POST", "/admin/v1/secrets/{name}/rotate") => other_value.clone(),
            ("POST", "/v1/release") => {
                let n = svc.challenge().await;
                let req = hermetic_envelope::wire::ReleaseRequest::new(
                    &enclave.document(&n),
                    vec![SECRET_NAME.into()],
                );
                serde_json::to_vec(&req).unwrap()
            }
            _ => Vec::new(),
        };
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let (status, response) = svc
            .http
            .send(m, &url, &[("authorization", &auth)], body)
            .await
            .unwrap();
        assert!(
            status.is_success(),
            "{method} {path}: {status} {}",
            String::from_utf8_lossy(&response)
        );
        for needle in &forbidden {
            assert!(
                !contains(&response, needle),
                "{method} {path} returned secret material"
            );
        }
        walked.push((method, path));
    }
    assert_eq!(walked.len(), ADMIN_ROUTES.len() + PUBLIC_ROUTES.len());
    // Anything else is a 404/405 refusal, not a value.
    for (method, path) in [
        ("GET", "/admin/v1/secrets/db-password/value"),
        ("GET", "/admin/v1/secrets/db-password/1"),
        ("GET", "/v1/secrets/db-password"),
        ("PATCH", "/admin/v1/secrets/db-password"),
    ] {
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let (status, response) = svc
            .http
            .send(m, &svc.admin_url(path), &[("authorization", &auth)], vec![])
            .await
            .unwrap();
        assert!(
            matches!(status.as_u16(), 404 | 405),
            "{method} {path}: {status}"
        );
        assert!(!reason(&response).is_empty());
    }
    svc.running.stop().await;
}

#[cfg(feature = "test-roots")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let enclave = Enclave::new();
    let svc = seeded(&enclave, dir.path(), Arc::new(SystemClock)).await;
    svc.admin
        .rotate_secret(SECRET_NAME, b"v2 value")
        .await
        .unwrap();
    let token = svc.token.clone();
    svc.running.stop().await;

    let root = dir.path().join("test-root.pem");
    let svc = Service::start(config(dir.path(), Some(root)), Arc::new(SystemClock)).await;
    assert_eq!(svc.token, token, "no new token once one exists");
    let list = svc.admin.list_secrets().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].latest_version, list[0].versions.clone()),
        (2, vec![1, 2])
    );
    assert!(list[0].has_policy);
    let n = svc.challenge().await;
    let (status, body) = svc.release(&enclave.document(&n), &[SECRET_NAME]).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(open_released(&enclave, &body, &n)[0].2, b"v2 value");
    svc.running.stop().await;
    // start, put, policy, rotate; start, release. Both starts trusted the
    // test root, and the release ended in it: each is flagged.
    let intact = hermetic_verifier::log::verify(&dir.path().join("data"))
        .unwrap()
        .unwrap();
    assert_eq!(intact.records, 6);
    assert_eq!(intact.non_aws_root_starts, vec![1, 5]);
    assert_eq!(intact.non_aws_root_releases, vec![6]);
    assert!(intact.unknown_root_releases.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_answer_with_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), None);
    cfg.rate_limit_per_sec = 0.5;
    cfg.rate_limit_burst = 3.0;
    cfg.body_limit = 4096;
    let svc = Service::start(cfg, Arc::new(SystemClock)).await;

    let big = vec![b'a'; 8192];
    let (status, body) = svc
        .http
        .send(Method::POST, &svc.public_url("/v1/release"), &[], big)
        .await
        .unwrap();
    assert_eq!(
        (status.as_u16(), reason(&body).as_str()),
        (413, "request_too_large")
    );

    let (status, body) = svc
        .http
        .send(Method::GET, &svc.public_url("/v1/nothing"), &[], vec![])
        .await
        .unwrap();
    assert_eq!(
        (status.as_u16(), reason(&body).as_str()),
        (404, "not_found")
    );

    let (status, _) = svc
        .http
        .send(Method::POST, &svc.public_url("/v1/challenge"), &[], vec![])
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (status, body) = svc
        .http
        .send(Method::POST, &svc.public_url("/v1/challenge"), &[], vec![])
        .await
        .unwrap();
    assert_eq!(
        (status.as_u16(), reason(&body).as_str()),
        (429, "rate_limited")
    );
    svc.running.stop().await;
}

#[cfg(feature = "test-roots")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_replays_release_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let enclave = Enclave::new();
    let svc = Arc::new(seeded(&enclave, dir.path(), Arc::new(SystemClock)).await);
    let n = svc.challenge().await;
    let doc = Arc::new(enclave.document(&n));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let svc = svc.clone();
            let doc = doc.clone();
            tokio::spawn(async move { svc.release(&doc, &[SECRET_NAME]).await })
        })
        .collect();
    let mut granted = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        if status == 200 {
            granted += 1;
        } else {
            assert_eq!((status, reason(&body).as_str()), (403, "nonce_replayed"));
        }
    }
    assert_eq!(granted, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenge_is_fresh_and_expires_after_the_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), None);
    cfg.challenge_ttl = Duration::from_secs(30);
    let svc = Service::start(cfg, Arc::new(SystemClock)).await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..5 {
        let (status, body) = svc
            .http
            .send(Method::POST, &svc.public_url("/v1/challenge"), &[], vec![])
            .await
            .unwrap();
        assert_eq!(status, 200);
        let c: hermetic_envelope::wire::ChallengeResponse = serde_json::from_slice(&body).unwrap();
        assert_eq!(c.nonce.len(), 64);
        assert!(seen.insert(c.nonce.clone()), "nonces never repeat");
        let expires = hermetic_attestation::parse_rfc3339(&c.expires_at).unwrap();
        let ttl = expires.as_secs() as i64 - now().as_secs() as i64;
        assert!(
            (28..=31).contains(&ttl),
            "expires_at {} is {ttl} s away",
            c.expires_at
        );
    }
    svc.running.stop().await;
}

#[cfg(feature = "test-roots")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_file_given_at_start_is_enforced_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let enclave = Enclave::new();
    let root = enclave.write_root(dir.path());
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, policy_toml(SECRET_NAME, &good_pcrs(), "")).unwrap();
    let mut cfg = config(dir.path(), Some(root.clone()));
    cfg.policy_file = Some(policy.clone());
    let svc = Service::start(cfg, Arc::new(SystemClock)).await;
    svc.admin
        .put_secret(SECRET_NAME, SECRET_VALUE)
        .await
        .unwrap();
    let n = svc.challenge().await;
    let (status, body) = svc.release(&enclave.document(&n), &[SECRET_NAME]).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    svc.running.stop().await;

    // A policy that would match any enclave stops the service from starting.
    std::fs::write(
        &policy,
        format!("[secrets.{SECRET_NAME}]\nallow_debug = true\n"),
    )
    .unwrap();
    let mut cfg = config(dir.path(), Some(root));
    cfg.policy_file = Some(policy);
    let err = hermetic_verifier::service::start(cfg, Arc::new(SystemClock))
        .await
        .err()
        .expect("an invalid policy file must be refused");
    assert!(err.to_string().contains("no [[measurements]] set"), "{err}");
}
