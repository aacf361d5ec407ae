//! The service over HTTP on 127.0.0.1: releases to a simulated enclave,
//! every refusal by reason, admin authentication, write-only secrets,
//! restart, limits. Tests that serve a simulated enclave trust its test
//! root, so they need the `test-roots` feature; the rest run in both builds.
//! Secrets are created with one owner and changed by that owner's signed
//! statements (the K-of-N cases are in owners.rs).
#![cfg_attr(not(feature = "test-roots"), allow(dead_code, unused_imports))]

mod common;

use hermetic_verifier::log::VerifyOptions;
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
use hermetic_verifier::service::{ADMIN_ROUTES, PUBLIC_ROUTES, RETIRED_ADMIN_ROUTES};
use hyper::Method;

#[cfg(feature = "test-roots")]
async fn seeded(
    enclave: &Enclave,
    dir: &std::path::Path,
    clock: Arc<dyn hermetic_verifier::clock::Clock>,
) -> Service {
    let root = enclave.write_root(dir);
    let svc = Service::start(config(dir, Some(root)), clock).await;
    svc.seed(
        SECRET_NAME,
        Some(policy_toml(SECRET_NAME, &good_pcrs(), "max_age_secs = 120")),
        SECRET_VALUE,
    )
    .await;
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

    // A new value (approved by the owner): the next release carries
    // version 2 and the new value.
    let w = svc.put_value(SECRET_NAME, b"rotated value").await;
    assert_eq!(w.value_version, Some(2));
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

    // The audit log holds the start, the changes and both releases, intact.
    // The replay consumed no nonce: it is only counted, and the count is
    // recorded in a `refusal_summary` on stop.
    let data = dir.path().join("data");
    let opts = VerifyOptions::new(svc.running.state.log.verifier_key());
    let intact = hermetic_verifier::log::verify(&data, &opts)
        .unwrap()
        .unwrap();
    // start, genesis (development custodian), create, policy, value,
    // release, value, release
    assert_eq!(intact.records, 8);
    let log = std::fs::read_to_string(data.join("audit.jsonl")).unwrap();
    assert!(log.contains("\"verdict\":\"granted\""));
    assert!(!log.contains("nonce_replayed"));
    assert!(!log.contains("correct horse"), "values never reach the log");
    svc.running.stop().await;
    let intact = hermetic_verifier::log::verify(&data, &opts)
        .unwrap()
        .unwrap();
    assert_eq!(intact.records, 9);
    let last: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(data.join("audit.jsonl"))
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(last["entry"]["action"], "refusal_summary");
    assert_eq!(
        last["entry"]["refusals"]["counts"],
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
    svc.seed("orphan", None, b"x").await;
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
    svc.seed(
        SECRET_NAME,
        Some(policy_toml(SECRET_NAME, &good_pcrs(), "")),
        SECRET_VALUE,
    )
    .await;
    let n = svc.challenge().await;
    let (status, body) = svc.release(&enclave.document(&n), &[SECRET_NAME]).await;
    assert_eq!((status, reason(&body).as_str()), (403, "untrusted_root"));
    svc.running.stop().await;
}

fn concrete(path: &str) -> String {
    // The first entry bundle (partial: the log is young).
    path.replace("{name}", SECRET_NAME)
        .replace("{*path}", "entries/000.p/1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_need_a_valid_token() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(config(dir.path(), None), Arc::new(SystemClock)).await;
    let mut checked = 0;
    for (method, path) in ADMIN_ROUTES.iter().chain(RETIRED_ADMIN_ROUTES) {
        // The two routes open to anyone: health and the API description.
        if *path == "/healthz" || *path == "/openapi.json" {
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
    assert_eq!(
        checked,
        3 * (ADMIN_ROUTES.len() - 2 + RETIRED_ADMIN_ROUTES.len())
    );
    // Nothing was written.
    assert!(svc.admin.list_secrets().await.unwrap().is_empty());
    // The right token works, and the file holding it is private.
    let owner = svc.owner.verifier_key().to_string();
    assert!(svc.admin.create_secret("x", &[owner], 1).await.is_ok());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // The production build has no development custodian key.
        let files: &[&str] = if cfg!(feature = "test-roots") {
            &["admin.token", "dev-custodian.key", "genesis.json"]
        } else {
            &["admin.token", "genesis.json"]
        };
        for file in files {
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
    let mut routes: Vec<_> = ADMIN_ROUTES.iter().map(|r| (true, *r)).collect();
    routes.extend(PUBLIC_ROUTES.iter().map(|r| (false, *r)));
    for (is_admin, (method, path)) in routes {
        // POST /admin/v1/secrets/{name} creates: a new name.
        let concrete_path = if (method, path) == ("POST", "/admin/v1/secrets/{name}") {
            path.replace("{name}", "walk-new")
        } else {
            concrete(path)
        };
        let url = if is_admin {
            svc.admin_url(&concrete_path)
        } else {
            svc.public_url(&concrete_path)
        };
        let body = match (method, path) {
            ("POST", "/admin/v1/secrets/{name}") => serde_json::to_vec(&serde_json::json!({
                "owners": [svc.owner.verifier_key().to_string()],
                "threshold": 1,
            }))
            .unwrap(),
            // A real, signed value change carrying the second value (sealed).
            ("POST", "/admin/v1/changes") => {
                let file =
                    common::propose(&svc.admin, &common::value_change(SECRET_NAME, &other_value))
                        .await;
                common::sign_by(&file, &[&svc.owner]).to_json().into_bytes()
            }
            ("POST", "/v1/release") => {
                let n = svc.challenge().await;
                let req = hermetic_envelope::wire::ReleaseRequest::new(
                    &enclave.document(&n),
                    vec![SECRET_NAME.into()],
                );
                serde_json::to_vec(&req).unwrap()
            }
            ("POST", "/v1/custody/join/offer") => {
                serde_json::to_vec(&serde_json::json!({"nonce": hex::encode([9u8; 32])})).unwrap()
            }
            // No attested replica here: whatever is sent, no key comes back.
            ("POST", "/v1/custody/join/key") => serde_json::to_vec(&serde_json::json!({
                "challenge": hex::encode([9u8; 32]),
                "attestation_document": "AAAA",
            }))
            .unwrap(),
            _ => Vec::new(),
        };
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let (status, response) = svc
            .http
            .send(m, &url, &[("authorization", &auth)], body)
            .await
            .unwrap();
        if (method, path) == ("GET", "/v1/attestation") {
            // This service has no NSM; an attested one serves its public
            // document (tests/attested_serve.rs, the e2e identity tests).
            assert_eq!(status.as_u16(), 404);
            assert_eq!(common::reason(&response), "not_attested");
        } else if path.starts_with("/v1/custody/join/") && !cfg!(feature = "test-roots") {
            // The production build without --nsm cannot attest: no forwarding.
            assert_eq!(status.as_u16(), 503);
            assert_eq!(common::reason(&response), "join_unavailable");
        } else if path == "/v1/custody/join/key" {
            assert_eq!(status.as_u16(), 403);
            assert_eq!(common::reason(&response), "join_replayed");
        } else {
            assert!(
                status.is_success(),
                "{method} {path}: {status} {}",
                String::from_utf8_lossy(&response)
            );
        }
        for needle in &forbidden {
            assert!(
                !contains(&response, needle),
                "{method} {path} returned secret material"
            );
        }
        walked.push((method, path));
    }
    // The retired write routes refuse with a reason, and return nothing.
    for (method, path) in RETIRED_ADMIN_ROUTES {
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let (status, response) = svc
            .http
            .send(
                m,
                &svc.admin_url(&concrete(path)),
                &[("authorization", &auth)],
                other_value.clone(),
            )
            .await
            .unwrap();
        assert_eq!(
            (status.as_u16(), reason(&response).as_str()),
            (403, "owner_approval_required"),
            "{method} {path}"
        );
        for needle in &forbidden {
            assert!(!contains(&response, needle), "{method} {path}");
        }
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
    svc.put_value(SECRET_NAME, b"v2 value").await;
    let deployment = svc.admin.deployment().await.unwrap();
    let token = svc.token.clone();
    svc.running.stop().await;

    let root = dir.path().join("test-root.pem");
    let svc = Service::start(config(dir.path(), Some(root)), Arc::new(SystemClock)).await;
    assert_eq!(svc.token, token, "no new token once one exists");
    assert_eq!(
        svc.admin.deployment().await.unwrap(),
        deployment,
        "the deployment id and intake key survive"
    );
    let list = svc.admin.list_secrets().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].latest_version, list[0].versions.clone()),
        (2, vec![1, 2])
    );
    assert!(list[0].has_policy);
    assert_eq!(list[0].version, 3, "create 0, policy 1, value 2, value 3");
    let n = svc.challenge().await;
    let (status, body) = svc.release(&enclave.document(&n), &[SECRET_NAME]).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(open_released(&enclave, &body, &n)[0].2, b"v2 value");
    let opts = VerifyOptions::new(svc.running.state.log.verifier_key());
    svc.running.stop().await;
    // start, genesis, create, policy, value, value; start, unsealed,
    // release. Both starts trusted the test root, and the release ended in
    // it: each is flagged.
    let intact = hermetic_verifier::log::verify(&dir.path().join("data"), &opts)
        .unwrap()
        .unwrap();
    assert_eq!(intact.records, 9);
    assert_eq!(intact.non_aws_root_starts, vec![0, 6]);
    assert_eq!(intact.non_aws_root_releases, vec![8]);
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
