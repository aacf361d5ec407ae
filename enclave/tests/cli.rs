//! The `hermetic-enclave` binary, run as a user would. Tests of `--nsm
//! simulated` need the cargo feature `simulator` (default); the others run
//! in both builds, and those of a build without it only there.

#[cfg(feature = "simulator")]
mod common;

use std::path::Path;
use std::process::{Command, Output};

#[cfg(feature = "simulator")]
use base64::Engine;
#[cfg(feature = "simulator")]
use hermetic_attestation::{At, TrustedRoot, Verifier};
use hermetic_enclave::nsm::{NsmError, RealNsm, NSM_DEVICE};

#[cfg(feature = "simulator")]
const NOT_IN_ENCLAVE: &str =
    "no /dev/nsm: not inside a Nitro Enclave; use --nsm simulated for local runs";
#[cfg(not(feature = "simulator"))]
const NOT_IN_ENCLAVE: &str = "no /dev/nsm: not inside a Nitro Enclave";

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hermetic-enclave"))
        .args(args)
        .env_remove("XDG_STATE_HOME")
        .output()
        .expect("binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[cfg(feature = "simulator")]
fn verifier_for(pki_dir: &Path) -> Verifier {
    let pem = std::fs::read(pki_dir.join("root.pem")).unwrap();
    Verifier::new(vec![TrustedRoot::from_pem(&pem).unwrap()])
}

fn no_nsm_device() -> bool {
    if Path::new(NSM_DEVICE).exists() {
        eprintln!("skipping: {NSM_DEVICE} exists (inside an enclave?)");
        return false;
    }
    true
}

/// A well-formed log verifier key (the usage checks come before it is used).
const LOG_KEY: &str = "hermetic.log/hermetic-652ca930885dd2eca3cb5f22c89c67ed+ab588e81+AbJTN2aYOnIKbO5G9/7pNvEcVMbWTwJcRRYJ0aOsdu31";
#[test]
fn the_real_backend_off_hardware_fails_cleanly_in_the_library() {
    if !no_nsm_device() {
        return;
    }
    let err = RealNsm::open().unwrap_err();
    assert!(matches!(err, NsmError::NotInEnclave), "{err:?}");
    assert_eq!(err.to_string(), NOT_IN_ENCLAVE);
    assert_eq!(err.reason(), "nsm_unavailable");
}

#[test]
fn the_real_backend_off_hardware_fails_cleanly_in_the_cli() {
    if !no_nsm_device() {
        return;
    }
    for args in [
        &["attest", "--nsm", "real"][..],
        &["attest"][..],
        &["describe-nsm"][..],
        &["pcr", "describe", "0", "--nsm", "real"][..],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(
            err,
            format!("hermetic-enclave: {NOT_IN_ENCLAVE} [nsm_unavailable]\n"),
            "{args:?}"
        );
        assert!(!err.contains("panicked"));
        assert!(out.stdout.is_empty());
    }
}

#[cfg(feature = "simulator")]
#[test]
fn attest_writes_a_document_that_verifies_with_the_written_root_and_reuses_it() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    let pki_s = pki.to_str().unwrap();
    let out1 = tmp.path().join("doc1.cbor");
    let o = run(&[
        "attest",
        "--nsm",
        "simulated",
        "--pki-dir",
        pki_s,
        "--nonce",
        "00ff10",
        "--user-data",
        "6869",
        "--out",
        out1.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    assert!(
        stderr(&o).contains("level=info event=simulated_pki_generated root="),
        "{}",
        stderr(&o)
    );
    let root1 = std::fs::read(pki.join("root.pem")).unwrap();
    let doc = verifier_for(&pki)
        .verify(&std::fs::read(&out1).unwrap(), At::DocumentTimestamp)
        .unwrap()
        .document;
    assert_eq!(doc.nonce, Some(vec![0x00, 0xff, 0x10]));
    assert_eq!(doc.user_data, Some(b"hi".to_vec()));
    assert_eq!(doc.public_key, None);

    // Second run: same root, base64 to stdout, a public key from a file.
    let key_file = tmp.path().join("pk.bin");
    std::fs::write(&key_file, [5u8; 32]).unwrap();
    let o = run(&[
        "attest",
        "--nsm",
        "simulated",
        "--pki-dir",
        pki_s,
        "--public-key",
        key_file.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("generated"), "{}", stderr(&o));
    assert_eq!(std::fs::read(pki.join("root.pem")).unwrap(), root1);
    let text = String::from_utf8(o.stdout).unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim_end())
        .unwrap();
    let doc = verifier_for(&pki)
        .verify(&bytes, At::DocumentTimestamp)
        .unwrap()
        .document;
    assert_eq!(doc.public_key, Some(vec![5u8; 32]));
    assert_eq!(doc.nonce, None);
}

#[cfg(feature = "simulator")]
#[test]
fn attest_takes_pcrs_from_eif_json_and_debug_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    let json = tmp.path().join("describe.json");
    std::fs::write(&json, common::eif_describe_json()).unwrap();
    let out = tmp.path().join("doc.cbor");
    let base = [
        "attest",
        "--nsm",
        "simulated",
        "--pki-dir",
        pki.to_str().unwrap(),
        "--pcrs-from",
        json.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let o = run(&base);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let doc = verifier_for(&pki)
        .verify(&std::fs::read(&out).unwrap(), At::DocumentTimestamp)
        .unwrap()
        .document;
    assert_eq!(hex::encode(&doc.pcrs[&0]), common::EIF_PCR0);
    assert_eq!(hex::encode(&doc.pcrs[&2]), common::EIF_PCR2);
    assert_eq!(hex::encode(&doc.pcrs[&8]), common::EIF_PCR8);

    let mut debug = base.to_vec();
    debug.push("--debug-mode");
    let o = run(&debug);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let doc = verifier_for(&pki)
        .verify(&std::fs::read(&out).unwrap(), At::DocumentTimestamp)
        .unwrap()
        .document;
    assert!(doc.is_debug_mode());
    assert_eq!(hex::encode(&doc.pcrs[&8]), common::EIF_PCR8);
}

#[test]
fn usage_errors_of_the_real_backend_exit_2() {
    let cases: [(&[&str], &str); 6] = [
        (&["attest", "--nonce", "zz"], "not hex"),
        (&["attest", "--nsm", "real", "--debug-mode"], "[usage]"),
        (
            &["describe-nsm", "--nsm", "real", "--pki-dir", "/nonexistent"],
            "--pki-dir applies only to --nsm simulated",
        ),
        (
            &[
                "run",
                "--nsm",
                "real",
                "--pcrs-from",
                "/nonexistent.json",
                "--verifier",
                "tcp://127.0.0.1:9",
                "--verifier-ca",
                "/nonexistent-ca.pem",
                "--log-key",
                LOG_KEY,
                "--secret",
                "s",
                "--",
                "true",
            ],
            "--pcrs-from applies only to --nsm simulated",
        ),
        (
            // Neither a CA nor measurements: the enclave would trust anyone.
            &[
                "run",
                "--nsm",
                "real",
                "--verifier",
                "tcp://127.0.0.1:9",
                "--secret",
                "s",
                "--",
                "true",
            ],
            "--verifier-ca",
        ),
        (
            &[
                "run",
                "--nsm",
                "real",
                "--verifier",
                "tcp://127.0.0.1:9",
                "--verifier-measurements",
                "/nonexistent-verifier.json",
                "--secret",
                "s",
                "--",
                "true",
            ],
            "--verifier-measurements",
        ),
    ];
    for (args, needle) in cases {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"));
        assert!(o.stdout.is_empty());
    }
}

#[cfg(feature = "simulator")]
#[test]
fn usage_and_io_errors_exit_2_and_nsm_refusals_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    let pki_s = pki.to_str().unwrap();
    let mut cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec![
                "attest",
                "--nsm",
                "simulated",
                "--pki-dir",
                pki_s,
                "--pcrs-from",
                "/nonexistent.json",
            ],
            2,
            "[measurements_io]",
        ),
        (
            vec![
                "attest",
                "--nsm",
                "simulated",
                "--pki-dir",
                pki_s,
                "--public-key",
                "/nonexistent",
            ],
            2,
            "[io_error]",
        ),
        (
            vec![
                "attest",
                "--nsm",
                "simulated",
                "--pki-dir",
                pki_s,
                "--out",
                "/nonexistent-dir/doc",
            ],
            2,
            "[io_error]",
        ),
        (
            vec![
                "attest",
                "--nsm",
                "simulated",
                "--pki-dir",
                "/proc/hermetic-pki",
            ],
            2,
            "[nsm_sim_io]",
        ),
        (
            vec![
                "pcr",
                "extend",
                "0",
                "--data",
                "00",
                "--nsm",
                "simulated",
                "--pki-dir",
                pki_s,
            ],
            1,
            "[nsm_pcr_locked]",
        ),
        (
            vec![
                "pcr",
                "lock",
                "--range",
                "33",
                "--nsm",
                "simulated",
                "--pki-dir",
                pki_s,
            ],
            1,
            "[nsm_invalid_index]",
        ),
    ];
    let damaged = tmp.path().join("damaged");
    std::fs::create_dir(&damaged).unwrap();
    std::fs::write(damaged.join("pki.pem"), "garbage").unwrap();
    let damaged_s = damaged.to_str().unwrap();
    cases.push((
        vec!["attest", "--nsm", "simulated", "--pki-dir", damaged_s],
        2,
        "[nsm_sim_pki_invalid]",
    ));
    let long_nonce = "00".repeat(513);
    cases.push((
        vec![
            "attest",
            "--nsm",
            "simulated",
            "--pki-dir",
            pki_s,
            "--nonce",
            &long_nonce,
        ],
        1,
        "[nsm_input_too_large]",
    ));
    for (args, code, needle) in cases {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"));
    }
}

#[cfg(feature = "simulator")]
#[test]
fn describe_nsm_and_pcr_subcommands_print_json() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    let pki_s = pki.to_str().unwrap();
    let o = run(&["describe-nsm", "--nsm", "simulated", "--pki-dir", pki_s]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["max_pcrs"], 32);
    assert_eq!(v["digest"], "SHA384");
    assert_eq!(v["locked_pcrs"].as_array().unwrap().len(), 16);

    let o = run(&[
        "pcr",
        "extend",
        "16",
        "--data",
        "616263",
        "--nsm",
        "simulated",
        "--pki-dir",
        pki_s,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA384);
    ctx.update(&[0u8; 48]);
    ctx.update(b"abc");
    assert_eq!(v["data"], hex::encode(ctx.finish()));
    assert_eq!(v["locked"], false);

    let o = run(&[
        "pcr",
        "lock",
        "20",
        "--nsm",
        "simulated",
        "--pki-dir",
        pki_s,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["locked_pcrs"].as_array().unwrap().len(), 17);

    let o = run(&[
        "pcr",
        "describe",
        "0",
        "--nsm",
        "simulated",
        "--pki-dir",
        pki_s,
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["locked"], true);
    assert_eq!(v["data"].as_str().unwrap().len(), 96);
}

#[test]
fn help_documents_the_default_pki_dir_and_exit_codes() {
    let o = run(&["attest", "--help"]);
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("XDG_STATE_HOME/hermetic/sim-pki"), "{text}");
    assert!(text.contains("./.hermetic-sim-pki"), "{text}");
    let o = run(&["--help"]);
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("Exit codes"), "{text}");
}

/// An enclave image's build (`--no-default-features`): `--nsm simulated`
/// and its options still parse, and are refused as a usage error before
/// anything is read, written or opened.
#[cfg(not(feature = "simulator"))]
#[test]
fn without_the_simulator_feature_the_simulator_is_a_usage_error() {
    const NO_SIMULATOR: &str = "this hermetic-enclave was built without the simulator (cargo feature `simulator`); use --nsm real inside a Nitro Enclave";
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    let pki_s = pki.to_str().unwrap();
    let out = tmp.path().join("doc.cbor");
    let cases: [&[&str]; 7] = [
        &["attest", "--nsm", "simulated"],
        &[
            "attest",
            "--nsm",
            "simulated",
            "--pki-dir",
            pki_s,
            "--pcrs-from",
            "/nonexistent.json",
            "--debug-mode",
            "--out",
            out.to_str().unwrap(),
        ],
        &["describe-nsm", "--nsm", "simulated", "--pki-dir", pki_s],
        &["pcr", "describe", "0", "--nsm", "simulated"],
        &["pcr", "extend", "16", "--data", "00", "--nsm", "simulated"],
        &["pcr", "lock", "--range", "16", "--nsm", "simulated"],
        &[
            "run",
            "--nsm",
            "simulated",
            "--verifier",
            "tcp://127.0.0.1:9",
            "--verifier-ca",
            "/nonexistent-ca.pem",
            "--log-key",
            LOG_KEY,
            "--secret",
            "s",
            "--",
            "true",
        ],
    ];
    for args in cases {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert_eq!(
            stderr(&o),
            format!("hermetic-enclave: {NO_SIMULATOR} [usage]\n"),
            "{args:?}"
        );
        assert!(o.stdout.is_empty(), "{args:?}");
    }
    // The simulator-only options with the real backend say the same.
    for flag in [
        &["--pki-dir", pki_s][..],
        &["--pcrs-from", "/nonexistent.json"][..],
        &["--debug-mode"][..],
    ] {
        let mut args = vec!["attest", "--nsm", "real"];
        args.extend_from_slice(flag);
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert_eq!(
            stderr(&o),
            format!(
                "hermetic-enclave: {} applies only to --nsm simulated, and {NO_SIMULATOR} [usage]\n",
                flag[0]
            ),
            "{args:?}"
        );
    }
    assert!(!pki.exists(), "nothing is created");
    assert!(!out.exists(), "nothing is written");

    // `--help` says which build this is.
    let o = run(&["attest", "--help"]);
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("Not in this build"), "{text}");
}
