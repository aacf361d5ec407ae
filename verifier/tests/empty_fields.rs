//! Present-but-empty `public_key`, `user_data` and `nonce`: the NSM signs
//! them, so they verify; they are reported as present and empty (JSON `""`,
//! text `(present, empty)`), never as absent; the audit log names them the
//! same way; and a release still needs a usable key (`public_key_missing`).
//! The release test serves a simulated enclave (its test root trusted), so
//! it needs the `test-roots` feature; the audit tests run in both builds.
#![cfg_attr(not(feature = "test-roots"), allow(dead_code, unused_imports))]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use common::{
    config, good_pcrs, now_ms, policy_toml, reason, Enclave, Service, SECRET_NAME, SECRET_VALUE,
};
use hermetic_verifier::clock::SystemClock;
use serde_json::Value;

/// SHA-256 of zero bytes.
const SHA256_EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn audit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hermetic-verifier"))
        .arg("audit")
        .args(args)
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The text report's line for `field`, without its label.
fn text_field(out: &Output, field: &str) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(field))
        .unwrap_or_else(|| panic!("no {field} line in:\n{text}"))
        .trim()
        .to_owned()
}

#[test]
fn a_simulated_document_with_an_empty_public_key_audits_valid_as_present_and_empty() {
    let dir = tempfile::tempdir().unwrap();
    let enclave = Enclave::new();
    let root = enclave.write_root(dir.path());
    let doc = dir.path().join("doc.cbor");
    std::fs::write(
        &doc,
        enclave.document_with(good_pcrs(), Some(&[]), now_ms(), Some(vec![])),
    )
    .unwrap();
    let (doc, root) = (doc.to_str().unwrap(), root.to_str().unwrap());

    let out = audit(&[doc, "--root", root, "--format", "json"]);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(report["valid"], true);
    assert_eq!(report["public_key"], "");
    assert_eq!(report["nonce"], "");
    assert_eq!(report["user_data"], Value::Null);

    let out = audit(&[doc, "--root", root]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text_field(&out, "public_key"), "(present, empty)");
    assert_eq!(text_field(&out, "nonce"), "(present, empty)");
    assert_eq!(text_field(&out, "user_data"), "(absent)");
}

fn vectors() -> Option<PathBuf> {
    hermetic_testkit::vectors::find(env!("CARGO_MANIFEST_DIR"), "attestation/INDEX.json")
        .map(|d| d.join("attestation"))
}

#[test]
fn real_documents_with_empty_fields_audit_them_as_present_and_empty() {
    let Some(dir) = vectors() else { return };
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("INDEX.json")).unwrap()).unwrap();
    let mut seen = 0;
    for e in index.as_array().unwrap() {
        let empty: Vec<&str> = ["public_key", "user_data", "nonce"]
            .into_iter()
            .filter(|k| e[*k] == "")
            .collect();
        if e["category"] != "valid" || empty.is_empty() {
            continue;
        }
        let path = Path::new(&dir).join(e["file"].as_str().unwrap());
        let path = path.to_str().unwrap();
        let args = [path, "--at", "doc", "--allow-debug"];
        let out = audit(&[&args[..], &["--format", "json"]].concat());
        let report = json(&out);
        assert_eq!(out.status.code(), Some(0), "{path}: {report}");
        let out = audit(&args);
        for key in empty {
            assert_eq!(report[key], "", "{path} {key}");
            assert_eq!(text_field(&out, key), "(present, empty)", "{path} {key}");
            seen += 1;
        }
    }
    assert!(seen >= 2, "the shared vectors hold empty fields");
}

/// The audit log's last release record.
fn last_release(data: &Path) -> Value {
    let log = std::fs::read_to_string(data.join("audit.jsonl")).unwrap();
    let line = log
        .lines()
        .rfind(|l| l.contains("\"action\":\"release\""))
        .expect("a release record");
    serde_json::from_str::<Value>(line).unwrap()["entry"].clone()
}

#[cfg(feature = "test-roots")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_to_an_empty_public_key_is_refused_as_missing_and_logged_as_present() {
    let dir = tempfile::tempdir().unwrap();
    let enclave = Enclave::new();
    let root = enclave.write_root(dir.path());
    let svc = Service::start(config(dir.path(), Some(root)), Arc::new(SystemClock)).await;
    svc.seed(
        SECRET_NAME,
        Some(policy_toml(SECRET_NAME, &good_pcrs(), "")),
        SECRET_VALUE,
    )
    .await;
    let data = dir.path().join("data");

    // Present and empty: refused like an absent key, after every other check.
    let n = svc.challenge().await;
    let doc = enclave.document_with(good_pcrs(), Some(&n), now_ms(), Some(vec![]));
    let (status, body) = svc.release(&doc, &[SECRET_NAME]).await;
    assert_eq!(status, 403);
    assert_eq!(reason(&body), "public_key_missing");
    let record = last_release(&data);
    assert_eq!(record["reason"], "public_key_missing");
    assert_eq!(record["who"]["public_key_sha256"], SHA256_EMPTY);
    assert_eq!(record["who"]["nonce"], hex::encode(&n));

    // Absent: the same refusal, and no key hash in the log.
    let n = svc.challenge().await;
    let doc = enclave.document_with(good_pcrs(), Some(&n), now_ms(), None);
    let (status, body) = svc.release(&doc, &[SECRET_NAME]).await;
    assert_eq!(status, 403);
    assert_eq!(reason(&body), "public_key_missing");
    assert_eq!(last_release(&data)["who"].get("public_key_sha256"), None);

    // An empty nonce answers no challenge: where one is required it is
    // missing; where none is, the release goes ahead, bound to the empty
    // nonce, and the log names it as present and empty.
    let key = Some(enclave.key.public_key_bytes().to_vec());
    let doc = enclave.document_with(good_pcrs(), Some(&[]), now_ms(), key);
    let (status, body) = svc.release(&doc, &[SECRET_NAME]).await;
    assert_eq!(status, 403);
    assert_eq!(reason(&body), "nonce_missing");
    svc.seed(
        "open",
        Some(policy_toml("open", &good_pcrs(), "nonce_required = false")),
        SECRET_VALUE,
    )
    .await;
    let (status, body) = svc.release(&doc, &["open"]).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let record = last_release(&data);
    assert_eq!(record["verdict"], "granted");
    assert_eq!(record["who"]["nonce"], "");

    svc.running.stop().await;
}
