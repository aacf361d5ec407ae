//! The release flow through the real binaries: simulated enclave →
//! hermetic-parent (Unix socket) → hermetic-verifier (TLS on loopback).

use std::path::Path;
use std::time::Duration;

use hermetic_e2e::{make_image, make_tls, policy_for, run, sha256_hex, Deployment};

const SECRET: &[u8] = b"correct horse battery staple 7f3a";
const LIMIT: Duration = Duration::from_secs(60);

/// The workload prints the SHA-256 of its secret and leaves a marker file.
fn workload(marker: &Path) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        format!(
            "touch '{}'; printf %s \"$DB_PASSWORD\" | sha256sum",
            marker.display()
        ),
    ]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn the_secret_reaches_the_workload_and_the_parent_sees_only_tls() {
    let dir = tempfile::tempdir().unwrap();
    let image = make_image(dir.path(), "app", b"release 1");
    let dep = Deployment::start(dir.path(), &policy_for(&image, "db-password"));
    dep.put_secret("db-password", SECRET);

    let marker = dir.path().join("workload-ran");
    let w = workload(&marker);
    let w: Vec<&str> = w.iter().map(String::as_str).collect();
    let out = run(dep.enclave(&image, &["--secret", "db-password"], &w), LIMIT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "enclave failed: {stderr}\nverifier:\n{}",
        dep.verifier.log_text()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with(&sha256_hex(SECRET)),
        "workload printed {stdout:?}"
    );
    assert!(marker.exists());

    // What the parent relayed: TLS records, nothing readable.
    let capture = std::fs::read(&dep.capture).unwrap();
    assert!(capture.len() > 1000, "the capture holds the whole exchange");
    assert_eq!(
        &capture[..2],
        &[b'>', 22],
        "it starts with the enclave's TLS handshake"
    );
    // The master key is in the verifier's memory only; what could open it
    // here is the development custodian's private key.
    let custodian_key = std::fs::read(dir.path().join("verifier-data/dev-custodian.key")).unwrap();
    let token = std::fs::read(dep.token_file()).unwrap();
    for (what, needle) in [
        ("the secret", SECRET),
        ("the secret's name", b"db-password".as_slice()),
        ("an HTTP request line", b"POST /v1/"),
        ("an HTTP version", b"HTTP/1.1"),
        ("a JSON field", b"attestation_document"),
        ("the module id prefix", b"-enc"),
        ("the verifier's TLS key", &dep.tls.key_der),
        (
            "the development custodian's key",
            custodian_key.trim_ascii(),
        ),
        ("the admin token", token.trim_ascii()),
    ] {
        assert!(!contains(&capture, needle), "the capture contains {what}");
    }
    // The parent logged byte counts, not contents.
    let parent_log = dep.parent.log_text();
    assert!(parent_log.contains("up_bytes"), "{parent_log}");
    assert!(!parent_log.contains("db-password"));
    for log in [&parent_log, &dep.verifier.log_text(), &stderr.to_string()] {
        assert!(
            !contains(log.as_bytes(), SECRET),
            "a log contains the secret"
        );
    }
}

#[test]
fn an_enclave_with_other_pcrs_is_refused_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let image = make_image(dir.path(), "app", b"release 1");
    let dep = Deployment::start(dir.path(), &policy_for(&image, "db-password"));
    dep.put_secret("db-password", SECRET);

    let other = make_image(dir.path(), "tampered", b"release 1 + backdoor");
    let marker = dir.path().join("workload-ran");
    let w = workload(&marker);
    let w: Vec<&str> = w.iter().map(String::as_str).collect();
    let out = run(dep.enclave(&other, &["--secret", "db-password"], &w), LIMIT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("pcr_mismatch"), "{stderr}");
    assert!(!marker.exists(), "no workload without its secret");
    assert!(!contains(&out.stdout, SECRET) && !contains(&out.stderr, SECRET));
}

#[test]
fn an_enclave_refuses_a_verifier_certificate_not_from_its_pinned_ca() {
    let dir = tempfile::tempdir().unwrap();
    let image = make_image(dir.path(), "app", b"release 1");
    let dep = Deployment::start(dir.path(), &policy_for(&image, "db-password"));
    dep.put_secret("db-password", SECRET);

    // The enclave image pins another CA than the one that issued the
    // verifier's certificate (as if the parent redirected it elsewhere).
    let other_ca = make_tls(dir.path(), "other");
    let marker = dir.path().join("workload-ran");
    let w = workload(&marker);
    let w: Vec<&str> = w.iter().map(String::as_str).collect();
    let args: Vec<String> = [
        "--via",
        &dep.parent_endpoint,
        "--verifier",
        &dep.verifier_endpoint,
        "--verifier-ca",
        other_ca.ca.to_str().unwrap(),
        "--log-key",
        &dep.log_key,
        "--secret",
        "db-password",
        "--retries",
        "1",
        "--retry-delay",
        "10ms",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = run(
        hermetic_e2e::enclave_command(&dep.pki_dir, &image, &args, &w),
        LIMIT,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("TLS handshake"), "{stderr}");
    assert!(!marker.exists());
}

#[test]
fn the_audit_log_of_a_release_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let image = make_image(dir.path(), "app", b"release 1");
    let dep = Deployment::start(dir.path(), &policy_for(&image, "db-password"));
    dep.put_secret("db-password", SECRET);
    let out = run(
        dep.enclave(&image, &["--secret", "db-password"], &["true"]),
        LIMIT,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = std::process::Command::new(hermetic_e2e::bin("hermetic-verifier"))
        .args(["log", "key", "--data-dir"])
        .arg(dir.path().join("verifier-data"))
        .output()
        .unwrap();
    assert!(key.status.success(), "{key:?}");
    let mut verify = std::process::Command::new(hermetic_e2e::bin("hermetic-verifier"));
    verify
        .args(["log", "verify", "--data-dir"])
        .arg(dir.path().join("verifier-data"))
        .arg("--log-key")
        .arg(String::from_utf8_lossy(&key.stdout).trim());
    let out = run(verify, LIMIT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
