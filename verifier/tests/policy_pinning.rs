//! A measurement set must pin the enclave image (PCR0, PCR8, or PCR1 and
//! PCR2): the real binary refuses a `--config` file whose set does not, and
//! the admin API refuses such a policy, saying why, without replacing the
//! policy in force. The last test serves a simulated enclave (its test root
//! trusted), so it needs the `test-roots` feature; the others run in both
//! builds.
#![cfg_attr(not(feature = "test-roots"), allow(dead_code, unused_imports))]

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{config, good_pcrs, policy_toml, spawn, Enclave, Service, SECRET_NAME};
use hermetic_verifier::client::HttpClient;
use hermetic_verifier::clock::SystemClock;
use hermetic_verifier::policy::SecretPolicy;
use hermetic_verifier::store::{MasterKey, Store};

/// A policy whose only set names exactly `indices` (values from `pcrs`).
fn policy_naming(indices: &[u8], pcrs: &BTreeMap<u8, Vec<u8>>) -> String {
    let mut s = format!("[secrets.{SECRET_NAME}]\n[[secrets.{SECRET_NAME}.measurements]]\n");
    for i in indices {
        s.push_str(&format!("pcr{i} = \"{}\"\n", hex::encode(&pcrs[i])));
    }
    s
}

#[test]
fn serve_refuses_a_config_whose_set_names_only_pcr1() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, policy_naming(&[1], &good_pcrs())).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hermetic-verifier"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&policy)
        .env_remove("HERMETIC_MASTER_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A refused start exits by itself; one that started would wait for a signal.
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the verifier started with a policy that pins no image");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "secrets.{SECRET_NAME}.measurements[0]: names only pcr1, which does not pin the enclave image"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("event=listening"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_refuses_a_set_that_does_not_pin_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let good = dir.path().join("policy.toml");
    std::fs::write(&good, policy_toml(SECRET_NAME, &good_pcrs(), "")).unwrap();
    let server = spawn(&data, &["--config".as_ref(), good.as_os_str()]);
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let authorization = format!("Bearer {}", token.trim());
    let url = format!("http://{}/admin/v1/policies/{SECRET_NAME}", server.admin);
    let http = HttpClient::default();

    // The parent's role and instance alone, PCR1 alone, PCR2 alone, and
    // PCR1 with the parent's PCRs: none names the image.
    for (indices, named) in [
        (&[3u8, 4][..], "pcr3, pcr4"),
        (&[1], "pcr1"),
        (&[2], "pcr2"),
        (&[1, 3, 4], "pcr1, pcr3, pcr4"),
    ] {
        let (status, body) = http
            .send(
                hyper::Method::PUT,
                &url,
                &[("authorization", &authorization)],
                policy_naming(indices, &good_pcrs()).into_bytes(),
            )
            .await
            .unwrap();
        assert_eq!(
            status,
            400,
            "{indices:?}: {}",
            String::from_utf8_lossy(&body)
        );
        let refusal: hermetic_envelope::wire::Refusal = serde_json::from_slice(&body).unwrap();
        assert_eq!(refusal.reason, "invalid_policy");
        assert!(
            refusal.message.contains(&format!(
                "measurements[0]: names only {named}, which does not pin the enclave image"
            )),
            "{}",
            refusal.message
        );
    }

    // The policy in force is untouched.
    let (status, body) = http
        .send(
            hyper::Method::GET,
            &url,
            &[("authorization", &authorization)],
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("pcr0 = "), "{text}");

    // Each image-pinning form is accepted.
    for indices in [&[0u8][..], &[8], &[1, 2], &[8, 3, 4]] {
        let (status, body) = http
            .send(
                hyper::Method::PUT,
                &url,
                &[("authorization", &authorization)],
                policy_naming(indices, &good_pcrs()).into_bytes(),
            )
            .await
            .unwrap();
        assert_eq!(
            status,
            200,
            "{indices:?}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    drop(server);
}

/// A store written before the rule may hold a set naming only PCR1. Such a
/// policy is never used: the service refuses to start over it (its start
/// record sums up the policies in force) until a `--config` that pins the
/// image replaces it.
#[cfg(feature = "test-roots")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_policy_from_before_the_rule_is_refused_until_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let enclave = Enclave::new();
    let root = enclave.write_root(dir.path());
    let key_hex = "ab".repeat(32);
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    {
        let store = Store::open(&data, &MasterKey::from_hex(&key_hex).unwrap()).unwrap();
        let old = SecretPolicy::allowing([(1u8, good_pcrs()[&1].clone())].into());
        store.put_policy(SECRET_NAME, &old).unwrap();
    }
    let start = |policy_file: Option<std::path::PathBuf>| {
        let mut cfg = config(dir.path(), Some(root.clone()));
        cfg.master_key_env = Some(key_hex.clone());
        cfg.policy_file = policy_file;
        cfg
    };

    let err = hermetic_verifier::service::start(start(None), Arc::new(SystemClock))
        .await
        .err()
        .expect("a stored policy that pins no image must not be used");
    assert!(err.to_string().contains(SECRET_NAME), "{err}");

    let good = dir.path().join("policy.toml");
    std::fs::write(&good, policy_toml(SECRET_NAME, &good_pcrs(), "")).unwrap();
    let svc = Service::start(start(Some(good)), Arc::new(SystemClock)).await;
    svc.admin
        .put_secret(SECRET_NAME, common::SECRET_VALUE)
        .await
        .unwrap();
    let n = svc.challenge().await;
    let (status, body) = svc.release(&enclave.document(&n), &[SECRET_NAME]).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    svc.running.stop().await;
}
