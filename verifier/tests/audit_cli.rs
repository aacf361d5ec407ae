//! `hermetic-verifier audit`, run as a user runs it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::Engine;
use hermetic_attestation::simulator::{TestPki, LEAF_LIFETIME};
use hermetic_attestation::Document;
use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hermetic-verifier"))
}

fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut pipe = child.stdin.take().unwrap();
        if let Some(input) = stdin {
            pipe.write_all(input).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn vectors() -> Option<PathBuf> {
    hermetic_testkit::vectors::find(env!("CARGO_MANIFEST_DIR"), "attestation/INDEX.json")
        .map(|d| d.join("attestation"))
}

fn index(dir: &Path) -> Vec<Value> {
    serde_json::from_slice::<Value>(&std::fs::read(dir.join("INDEX.json")).unwrap())
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn every_real_document_audits_valid_at_doc_time_with_the_indexed_values() {
    let Some(dir) = vectors() else { return };
    for e in index(&dir).iter().filter(|e| e["category"] == "valid") {
        let path = dir.join(e["file"].as_str().unwrap());
        let path = path.to_str().unwrap();
        let pcr_zero = |i: &str| e["pcrs"][i].as_str().unwrap().bytes().all(|b| b == b'0');
        let debug = pcr_zero("0") && pcr_zero("1") && pcr_zero("2");
        let mut args = vec!["audit", path, "--at", "doc", "--format", "json"];
        if debug {
            // Without --allow-debug a debug-mode document is invalid.
            let out = run(&args, None);
            assert_eq!(out.status.code(), Some(1), "{path}");
            assert_eq!(json(&out)["errors"][0]["reason"], "debug_enclave");
            args.push("--allow-debug");
        }
        let out = run(&args, None);
        let report = json(&out);
        assert_eq!(out.status.code(), Some(0), "{path}: {report}");
        assert_eq!(report["valid"], true);
        assert_eq!(report["errors"], Value::Array(vec![]));
        assert_eq!(report["module_id"], e["module_id"]);
        assert_eq!(report["timestamp_ms"], e["timestamp_ms"]);
        assert_eq!(report["debug_mode"], debug);
        for key in ["public_key", "user_data", "nonce"] {
            assert_eq!(report[key], e[key], "{path} {key}");
        }
        assert_eq!(report["pcrs"], e["pcrs"], "{path}");
        assert_eq!(report["certificates"].as_array().unwrap().len(), 5);
        let ts =
            hermetic_attestation::parse_rfc3339(report["timestamp"].as_str().unwrap()).unwrap();
        assert_eq!(ts.as_secs(), e["timestamp_ms"].as_u64().unwrap() / 1000);

        // Today the leaf has long expired.
        let out = run(&["audit", path, "--format", "json", "--allow-debug"], None);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(json(&out)["errors"][0]["reason"], "chain_expired");
    }
}

#[test]
fn the_bad_signature_and_foreign_documents_are_invalid_with_their_reasons() {
    let Some(dir) = vectors() else { return };
    for (category, reason) in [
        ("bad-signature", "bad_signature"),
        ("foreign-pki", "malformed_cose"),
    ] {
        for e in index(&dir).iter().filter(|e| e["category"] == category) {
            let path = dir.join(e["file"].as_str().unwrap());
            let out = run(
                &[
                    "audit",
                    path.to_str().unwrap(),
                    "--at",
                    "doc",
                    "--format",
                    "json",
                ],
                None,
            );
            assert_eq!(out.status.code(), Some(1));
            assert_eq!(json(&out)["errors"][0]["reason"], reason, "{category}");
            // The text report names the reason too.
            let out = run(&["audit", path.to_str().unwrap(), "--at", "doc"], None);
            let text = String::from_utf8(out.stdout).unwrap();
            assert!(text.starts_with("attestation document: INVALID"), "{text}");
            assert!(text.contains(reason), "{text}");
        }
    }
}

#[test]
fn base64_and_hex_on_standard_input_are_detected() {
    let Some(dir) = vectors() else { return };
    let e = index(&dir)
        .into_iter()
        .find(|e| e["category"] == "valid")
        .unwrap();
    let raw = std::fs::read(dir.join(e["file"].as_str().unwrap())).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
    let hex = hex::encode(&raw);
    for input in [b64.as_bytes(), hex.as_bytes(), &raw] {
        let out = run(
            &[
                "audit",
                "-",
                "--at",
                "doc",
                "--allow-debug",
                "--format",
                "json",
            ],
            Some(input),
        );
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(json(&out)["module_id"], e["module_id"]);
    }
}

/// A simulated document signed now, and the test root's PEM file.
struct Simulated {
    _dir: tempfile::TempDir,
    doc: PathBuf,
    root: PathBuf,
    pcr0: String,
}

fn simulated() -> Simulated {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let pki = TestPki::generate(now).unwrap();
    let leaf = pki
        .issue_leaf(
            "i-0123456789abcdef0-enc0123456789abcdef",
            now - 60,
            now - 60 + LEAF_LIFETIME.as_secs() as i64,
        )
        .unwrap();
    let doc = Document {
        module_id: "i-0123456789abcdef0-enc0123456789abcdef".into(),
        digest: "SHA384".into(),
        timestamp_ms: (now as u64 - 30) * 1000,
        pcrs: (0u8..16).map(|i| (i, vec![i + 1; 48])).collect(),
        certificate: leaf.der.clone(),
        cabundle: pki.cabundle(),
        public_key: None,
        user_data: None,
        nonce: Some(vec![0x42; 32]),
        unknown_fields: vec![],
    };
    let dir = tempfile::tempdir().unwrap();
    let doc_path = dir.path().join("doc.cbor");
    std::fs::write(&doc_path, leaf.sign(&doc).unwrap()).unwrap();
    let root = dir.path().join("root.pem");
    std::fs::write(&root, pki.root_pem()).unwrap();
    Simulated {
        pcr0: hex::encode(&doc.pcrs[&0]),
        _dir: dir,
        doc: doc_path,
        root,
    }
}

#[test]
fn a_simulated_document_is_valid_only_with_its_root_trusted() {
    let s = simulated();
    let doc = s.doc.to_str().unwrap();
    let out = run(&["audit", doc, "--format", "json"], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["errors"][0]["reason"], "untrusted_root");

    let root = s.root.to_str().unwrap();
    let out = run(&["audit", doc, "--root", root, "--format", "json"], None);
    assert_eq!(out.status.code(), Some(0), "{}", json(&out));
}

#[test]
fn expectations_are_checked() {
    let s = simulated();
    let (doc, root) = (s.doc.to_str().unwrap(), s.root.to_str().unwrap());
    let base = ["audit", doc, "--root", root, "--format", "json"];
    let with = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        run(&args, None)
    };
    let good_pcr = format!("0={}", s.pcr0);
    let bad_pcr = format!("1={}", "00".repeat(48));
    let nonce = "42".repeat(32);

    let out = with(&[
        "--expect-pcr",
        &good_pcr,
        "--nonce",
        &nonce,
        "--max-age",
        "5m",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", json(&out));

    let out = with(&["--expect-pcr", &good_pcr, "--expect-pcr", &bad_pcr]);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    assert_eq!(report["errors"][0]["reason"], "pcr_mismatch");
    assert_eq!(report["errors"][0]["check"], "pcr1");

    let out = with(&["--nonce", "43"]);
    assert_eq!(json(&out)["errors"][0]["reason"], "nonce_mismatch");

    let out = with(&["--max-age", "1s"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["errors"][0]["reason"], "document_too_old");
}

#[test]
fn usage_and_io_errors_exit_2() {
    let s = simulated();
    let doc = s.doc.to_str().unwrap();
    let cases: [&[&str]; 7] = [
        &["audit", "/nonexistent/doc.cbor"],
        &["audit", doc, "--at", "yesterday"],
        &["audit", doc, "--expect-pcr", "32=00"],
        &["audit", doc, "--expect-pcr", "0=abc"],
        &["audit", doc, "--at", "doc", "--max-age", "5m"],
        &["audit", doc, "--root", "/nonexistent/root.pem"],
        &["audit", doc, "--root", doc],
    ];
    for args in cases {
        let out = run(args, None);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stderr.is_empty());
    }
    let out = run(&["audit", "-"], Some(b"  \n"));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn garbage_is_invalid_not_a_crash() {
    for input in [
        &b"\x84\x00"[..],
        b"hello world",
        &[0xff; 100],
        &[0x84; 5000],
    ] {
        let out = run(&["audit", "-", "--format", "json"], Some(input));
        assert_eq!(out.status.code(), Some(1), "{input:?}");
        assert_eq!(json(&out)["valid"], false);
    }
}

/// A reader that stops early (`| grep -m1`, `| head`) must not make the
/// command panic: it ends quietly (success or SIGPIPE), with nothing on stderr
/// about a panic.
#[test]
fn a_reader_that_closes_stdout_early_gets_no_panic() {
    let s = simulated();
    let mut child = bin()
        .args([
            "audit",
            s.doc.to_str().unwrap(),
            "--root",
            s.root.to_str().unwrap(),
            "--format",
            "json",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the read end before the command writes anything.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert_ne!(out.status.code(), Some(101), "stderr: {stderr}");
}
