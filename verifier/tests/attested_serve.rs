//! `serve --nsm`: the verifier as an attested service, through the library
//! (`service::start` with an `AttestedConfig`, the CLI's client check) and
//! the binary's refusals.

mod common;

use std::process::Command;
use std::sync::Arc;

use hermetic_verifier::clock::SystemClock;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hermetic-verifier"))
}

#[cfg(feature = "test-roots")]
const PCR1: &str = "52c54c1ca2c2a4d46e2a0ac8c3f22d8897db2e8eadfc74789a295b1e783f6aab6b74345f7170e1379578cd08ae6121b5";
#[cfg(feature = "test-roots")]
const PCR2: &str = "786c40a9643791cb5395c93a4b83ef80b89b29bdf67df421e938fbae5f3bcbf1ca7962c63ec7bfd22412512745c215bd";

#[cfg(feature = "test-roots")]
fn describe(pcr0_byte: &str) -> String {
    let pcr0 = pcr0_byte.repeat(48);
    format!(
        r#"{{"Measurements": {{"HashAlgorithm": "Sha384 {{ ... }}", "PCR0": "{pcr0}", "PCR1": "{PCR1}", "PCR2": "{PCR2}"}}}}"#
    )
}

#[cfg(feature = "test-roots")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attested_verifier_proves_its_measurements_and_intake_key() {
    use hermetic_verifier::client::identity::{attest_verifier, AttestError};
    use hermetic_verifier::service::AttestedConfig;
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let pinned = dir.path().join("verifier.json");
    let other = dir.path().join("other.json");
    std::fs::write(&pinned, describe("ab")).unwrap();
    std::fs::write(&other, describe("cd")).unwrap();
    let pki_dir = dir.path().join("sim-pki");
    let mut config = common::config(dir.path(), None);
    config.attested = Some(AttestedConfig {
        nsm: hermetic_nsm::NsmSelection {
            backend: hermetic_nsm::Backend::Simulated,
            pki_dir: Some(pki_dir.clone()),
            pcrs_from: Some(pinned.clone()),
            debug_mode: false,
        },
        names: vec!["localhost".into()],
        issuer: None,
    });
    let service = common::Service::start(config, Arc::new(SystemClock)).await;
    let root = hermetic_attestation::TrustedRoot::from_pem(
        &std::fs::read(pki_dir.join("root.pem")).unwrap(),
    )
    .unwrap();
    let addr = service.running.public_addr.to_string();

    let identity = attest_verifier(
        &addr,
        &hermetic_identity::Pins::from_file(&pinned).unwrap(),
        vec![root.clone()],
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let deployment = service.admin.deployment().await.unwrap();
    use base64::Engine as _;
    assert_eq!(
        base64::engine::general_purpose::STANDARD.encode(identity.intake_key),
        deployment.intake_public_key
    );

    let err = attest_verifier(
        &addr,
        &hermetic_identity::Pins::from_file(&other).unwrap(),
        vec![root],
        Duration::from_secs(10),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, AttestError::Identity(_)), "{err}");
    assert_eq!(err.exit_code(), 1);
    assert!(
        err.to_string()
            .starts_with("verifier_measurements_mismatch: "),
        "{err}"
    );
    service.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifier_without_an_nsm_has_no_attestation_to_serve() {
    let dir = tempfile::tempdir().unwrap();
    let service =
        common::Service::start(common::config(dir.path(), None), Arc::new(SystemClock)).await;
    let (status, body) = service
        .http
        .send(
            hyper::Method::GET,
            &service.public_url("/v1/attestation"),
            &[],
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(status.as_u16(), 404);
    assert_eq!(common::reason(&body), "not_attested");
    service.running.stop().await;
}

#[test]
fn serve_refuses_what_it_cannot_attest_with() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Every refusal comes before the data directory is created.
    let serve = |extra: &[&str]| {
        bin()
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(&data)
            .args(extra)
            .output()
            .unwrap()
    };
    // The real NSM off hardware.
    let out = serve(&["--nsm", "real"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no /dev/nsm"), "{stderr}");
    assert!(!data.exists(), "refused before anything was created");
    // A simulator-only option with the real NSM.
    let out = serve(&["--nsm", "real", "--debug-mode"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    // An attested key and a key file at once.
    let out = serve(&[
        "--nsm",
        "simulated",
        "--tls-cert",
        "/nonexistent/c.pem",
        "--tls-key",
        "/nonexistent/k.pem",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--nsm makes its own TLS key"), "{stderr}");
    assert!(!data.exists(), "refused before anything was created");
    // The production build has no simulator.
    if !cfg!(feature = "test-roots") {
        let out = serve(&["--nsm", "simulated"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("needs a build with the `test-roots` feature"),
            "{stderr}"
        );
    }
}
