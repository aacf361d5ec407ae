//! `serve --witness URL=PUBKEY... --witness-threshold K` with real
//! `hermetic-verifier witness` processes on 127.0.0.1: K = 2 of 3 with one
//! down releases go on with cosigned receipts, two down grants fail with
//! `witness_unavailable` and no secret, a restarted witness restores them,
//! `log verify` checks the cosignatures, and a restored older data
//! directory is refused at start. `/metrics` shows the witness lag grow
//! while too few witnesses answer and fall back once they do.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{good_pcrs, policy_toml, reason, spawn, terminate, Enclave};
use hermetic_approval::Signer;
use hermetic_envelope::wire::{ChallengeResponse, ReleaseRequest, ReleaseResponse};
use hermetic_envelope::{open, ReleaseContext, SealedSecret};
use hermetic_tlog::cosignature::{self, CosignerKey};
use hermetic_verifier::client::{AdminClient, HttpClient};
use hyper::Method;

const BIN: &str = env!("CARGO_BIN_EXE_hermetic-verifier");

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("HERMETIC_MASTER_KEY")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A loopback port free now (the witness restarts on the same one).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Witness {
    key_file: PathBuf,
    key: CosignerKey,
    state: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Witness {
    fn new(dir: &Path, n: usize) -> Witness {
        let key_file = dir.join(format!("w{n}.key"));
        let (code, out, err) = run(&[
            "witness",
            "keygen",
            "--name",
            &format!("witness{n}.test"),
            "--out",
            key_file.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
        Witness {
            key_file,
            key: out.trim().parse().unwrap(),
            state: dir.join(format!("w{n}-state")),
            port: free_port(),
            child: None,
        }
    }

    fn arg(&self) -> String {
        format!("http://127.0.0.1:{}={}", self.port, self.key)
    }

    fn start(&mut self, log_key: &str) {
        let mut child = Command::new(BIN)
            .args(["witness", "--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--key")
            .arg(&self.key_file)
            .args(["--log-key", log_key, "--state-dir"])
            .arg(&self.state)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("event=listening") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(20))
            .expect("the witness did not start");
        self.child = Some(child);
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One release of `name` to the simulated enclave: status, and the value
/// and receipt when granted.
/// The value of `series` in the service's `/metrics`.
async fn metric(public: std::net::SocketAddr, series: &str) -> f64 {
    let (_, body) = HttpClient::default()
        .send(
            Method::GET,
            &format!("http://{public}/metrics"),
            &[],
            vec![],
        )
        .await
        .unwrap();
    let text = String::from_utf8(body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{series} missing in:\n{text}"))
}

async fn release(
    public: std::net::SocketAddr,
    enclave: &Enclave,
    name: &str,
) -> (u16, Vec<u8>, Option<ReleaseResponse>) {
    let http = HttpClient::default();
    let (_, body) = http
        .send(
            Method::POST,
            &format!("http://{public}/v1/challenge"),
            &[],
            vec![],
        )
        .await
        .unwrap();
    let nonce = serde_json::from_slice::<ChallengeResponse>(&body)
        .unwrap()
        .nonce_bytes()
        .unwrap();
    let req = ReleaseRequest::new(&enclave.document(&nonce), vec![name.to_owned()]);
    let (status, body) = http
        .send(
            Method::POST,
            &format!("http://{public}/v1/release"),
            &[],
            serde_json::to_vec(&req).unwrap(),
        )
        .await
        .unwrap();
    if status != 200 {
        return (status.as_u16(), body, None);
    }
    let resp: ReleaseResponse = serde_json::from_slice(&body).unwrap();
    let sealed = SealedSecret::try_from(&resp.secrets[0]).unwrap();
    let plain = open(
        &enclave.key,
        &sealed,
        &ReleaseContext::new(name.to_owned(), 1, nonce),
    )
    .unwrap();
    (200, plain.to_vec(), Some(resp))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn verify_log(data: &Path, log_key: &str, keys: &[&CosignerKey], k: usize) -> (i32, String) {
    let mut args = vec![
        "log".to_owned(),
        "verify".into(),
        "--data-dir".into(),
        data.to_str().unwrap().into(),
        "--log-key".into(),
        log_key.into(),
        "--format".into(),
        "json".into(),
        "--witness-threshold".into(),
        k.to_string(),
    ];
    for key in keys {
        args.push("--witness-key".into());
        args.push(key.to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = run(&args);
    (code, format!("{out}{err}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_of_three_witnesses_gate_grants_and_a_rollback_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let enclave = Enclave::new();
    let root = enclave.write_root(dir.path());
    let root_args = ["--trust-root".as_ref(), root.as_os_str()];

    // A store with one secret, before any witness.
    let mut server = spawn(&data, &root_args);
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let admin = AdminClient::new(&format!("http://{}", server.admin), token.trim());
    let owner = Signer::generate("owner").unwrap();
    common::create_owned(
        &admin,
        &owner,
        "db",
        Some(policy_toml("db", &good_pcrs(), "")),
        b"s3cret",
    )
    .await;
    terminate(&mut server);
    // The older copy restored at the end.
    let snapshot = dir.path().join("snapshot");
    copy_dir(&data, &snapshot);

    let (code, log_key, err) = run(&["log", "key", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let log_key = log_key.trim().to_owned();
    let mut witnesses: Vec<Witness> = (1..=3).map(|n| Witness::new(dir.path(), n)).collect();
    for w in &mut witnesses {
        w.start(&log_key);
    }
    let keys: Vec<CosignerKey> = witnesses.iter().map(|w| w.key.clone()).collect();
    let mut extra: Vec<std::ffi::OsString> = root_args.iter().map(|a| a.into()).collect();
    for w in &witnesses {
        extra.push("--witness".into());
        extra.push(w.arg().into());
    }
    for a in ["--witness-threshold", "2", "--witness-timeout", "2s"] {
        extra.push(a.into());
    }
    let extra: Vec<&std::ffi::OsStr> = extra.iter().map(|a| a.as_os_str()).collect();

    // All up, then one down: releases go on, receipts carry >= 2 valid
    // cosignatures by the pinned witness keys.
    let mut server = spawn(&data, &extra);
    let (status, value, resp) = release(server.public, &enclave, "db").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&value));
    assert_eq!(value, b"s3cret");
    // The grant waited for a checkpoint holding its record: no lag.
    assert_eq!(
        metric(server.public, "hermetic_witness_lag_entries").await,
        0.0
    );
    witnesses[2].stop();
    for _ in 0..3 {
        let (status, value, resp2) = release(server.public, &enclave, "db").await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&value));
        let receipt = resp2.unwrap().receipt.unwrap();
        let cosigned = cosignature::verify(receipt.checkpoint.as_bytes(), &keys).unwrap();
        assert!(cosigned.len() >= 2, "{}", receipt.checkpoint);
    }
    let receipt = resp.unwrap().receipt.unwrap();
    assert!(
        cosignature::verify(receipt.checkpoint.as_bytes(), &keys)
            .unwrap()
            .len()
            >= 2
    );

    // Two down: the grant waits, then fails with the reason; no secret.
    witnesses[1].stop();
    let (status, body, resp) = release(server.public, &enclave, "db").await;
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    assert!(resp.is_none());
    assert_eq!(reason(&body), "witness_unavailable");
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("1 of the 2 witness cosignatures"), "{text}");
    // Its record is logged but in no checkpoint K witnesses cosigned.
    let lag = metric(server.public, "hermetic_witness_lag_entries").await;
    assert!(lag >= 1.0, "{lag}");
    let (status, _, _) = release(server.public, &enclave, "db").await;
    assert_eq!(status, 503);
    let grown = metric(server.public, "hermetic_witness_lag_entries").await;
    assert!(grown > lag, "{grown} after {lag}");
    assert!(metric(server.public, "hermetic_witness_cosigned_age_seconds").await >= 0.0);
    assert!(
        !text.contains("s3cret") && !text.contains("secrets"),
        "{text}"
    );

    // Witness 2 back: releases pass again.
    let log_key_arg = log_key.clone();
    witnesses[1].start(&log_key_arg);
    let (status, body, _) = release(server.public, &enclave, "db").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        metric(server.public, "hermetic_witness_lag_entries").await,
        0.0
    );
    terminate(&mut server);

    // The stored checkpoint is the cosigned one: 2 of the 3 keys.
    let all: Vec<&CosignerKey> = keys.iter().collect();
    let (code, out) = verify_log(&data, &log_key, &all, 2);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"cosignatures\":2"), "{out}");
    // Three are not there (witness 3 is down): refused.
    let (code, out) = verify_log(&data, &log_key, &all, 3);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("too_few_cosignatures"), "{out}");

    // The older copy restored: refused at start, with both sizes.
    let records = common::log_records(&data).len();
    let old = common::log_records(&snapshot).len();
    std::fs::remove_dir_all(&data).unwrap();
    copy_dir(&snapshot, &data);
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(&data)
        .args(&extra)
        .env_remove("HERMETIC_MASTER_KEY")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("rollback"), "{err}");
    assert!(
        err.contains(&format!(
            "rollback: the local log has {old} records but witness"
        )),
        "{err}"
    );
    assert!(!err.contains("rollback: rollback"), "{err}");
    assert!(!err.contains("event=listening"), "{err}");
    assert!(records > old);
}
