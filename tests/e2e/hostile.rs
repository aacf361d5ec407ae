//! A malicious parent, and a verifier that is down, slow or failing: the
//! enclave refuses, retries with backoff, and in the end fails with a clear
//! message without starting its workload; nothing is released twice.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hermetic_e2e::{enclave_command, make_image, make_tls, policy_for, run, Deployment, Image};
use hermetic_transport::proxy::{read_request, write_answer};
use hermetic_transport::{connect, Endpoint, Listener, Stream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &[u8] = b"s3cr3t-for-hostile-tests";
const LIMIT: Duration = Duration::from_secs(90);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Granted releases in the audit log; asserts no nonce was granted twice.
fn granted_releases(dir: &Path) -> usize {
    let log = std::fs::read_to_string(dir.join("verifier-data/audit.jsonl")).unwrap_or_default();
    let granted: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"action\":\"release\"") && l.contains("\"verdict\":\"granted\""))
        .collect();
    let mut nonces = std::collections::BTreeSet::new();
    for line in &granted {
        let nonce = line
            .split("\"nonce\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("a granted release without its nonce: {line}"));
        assert!(
            nonces.insert(nonce.to_string()),
            "nonce {nonce} was granted twice"
        );
    }
    granted.len()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

struct Setup {
    dir: tempfile::TempDir,
    image: Image,
    dep: Deployment,
    marker: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let image = make_image(dir.path(), "app", b"release 1");
    let dep = Deployment::start(dir.path(), &policy_for(&image, "db-password"));
    dep.put_secret("db-password", SECRET);
    let marker = dir.path().join("workload-ran");
    Setup {
        dir,
        image,
        dep,
        marker,
    }
}

impl Setup {
    /// The enclave through `via` (or directly to `verifier`), few retries.
    fn enclave(&self, via: Option<&str>, verifier: &str, extra: &[&str]) -> std::process::Output {
        let mut a = match via {
            Some(v) => args(&["--via", v]),
            None => vec![],
        };
        a.extend(args(&["--verifier", verifier, "--verifier-ca"]));
        a.push(self.dep.tls.ca.display().to_string());
        a.extend(args(&["--log-key", &self.dep.log_key]));
        a.extend(args(&[
            "--secret",
            "db-password",
            "--retries",
            "2",
            "--retry-delay",
            "20ms",
        ]));
        a.extend(args(extra));
        let touch = format!("touch '{}'", self.marker.display());
        run(
            enclave_command(&self.dep.pki_dir, &self.image, &a, &["sh", "-c", &touch]),
            LIMIT,
        )
    }

    fn assert_refused(&self, out: &std::process::Output, expect: &str) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("gave up after 3 attempts"), "{stderr}");
        assert!(stderr.contains(expect), "expected {expect:?} in: {stderr}");
        assert!(
            !self.marker.exists(),
            "no workload may start without its secrets"
        );
        assert!(!String::from_utf8_lossy(&out.stdout).contains("s3cr3t"));
        assert!(!stderr.contains("s3cr3t"));
    }
}

// ---- a parent that tampers with the TLS records it relays ----

#[derive(Clone, Copy, Debug)]
enum Tamper {
    /// Flip a bit in each verifier → enclave record after the handshake.
    FlipResponse,
    /// Cut the verifier's first answer in the middle of a record.
    TruncateResponse,
    /// Send each enclave → verifier application record twice.
    ReplayRequest,
    /// Swap the enclave's first two encrypted records.
    ReorderRequest,
}

async fn read_record(s: &mut tokio::io::ReadHalf<Stream>) -> Option<Vec<u8>> {
    let mut header = [0u8; 5];
    s.read_exact(&mut header).await.ok()?;
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    let mut record = header.to_vec();
    record.resize(5 + len, 0);
    s.read_exact(&mut record[5..]).await.ok()?;
    Some(record)
}

async fn tampering_parent(listener: Listener, verifier: Endpoint, mode: Tamper) {
    while let Ok((mut enclave, _)) = listener.accept().await {
        let verifier = verifier.clone();
        tokio::spawn(async move {
            if read_request(&mut enclave, Duration::from_secs(5))
                .await
                .is_err()
            {
                return;
            }
            let Ok(upstream) = connect(&verifier).await else {
                return;
            };
            if write_answer(&mut enclave, None).await.is_err() {
                return;
            }
            let (mut er, mut ew) = tokio::io::split(enclave);
            let (mut ur, mut uw) = tokio::io::split(upstream);
            // Encrypted (type 23) records the enclave has sent so far.
            let sent = Arc::new(AtomicUsize::new(0));
            let up_sent = sent.clone();
            let up = async move {
                let mut held: Option<Vec<u8>> = None;
                while let Some(record) = read_record(&mut er).await {
                    let encrypted = record[0] == 23;
                    let n = if encrypted {
                        up_sent.fetch_add(1, Ordering::SeqCst) + 1
                    } else {
                        0
                    };
                    match mode {
                        Tamper::ReplayRequest if encrypted && n >= 2 => {
                            uw.write_all(&record).await.ok()?;
                            uw.write_all(&record).await.ok()?;
                        }
                        Tamper::ReorderRequest if encrypted && n == 1 => held = Some(record),
                        Tamper::ReorderRequest if encrypted && n == 2 => {
                            uw.write_all(&record).await.ok()?;
                            uw.write_all(&held.take()?).await.ok()?;
                        }
                        _ => uw.write_all(&record).await.ok()?,
                    }
                }
                let _ = uw.shutdown().await;
                Some(())
            };
            let down = async move {
                while let Some(mut record) = read_record(&mut ur).await {
                    let after_handshake = record[0] == 23 && sent.load(Ordering::SeqCst) >= 2;
                    match mode {
                        Tamper::FlipResponse if after_handshake => {
                            let last = record.len() - 1;
                            record[last] ^= 0x01;
                        }
                        Tamper::TruncateResponse if after_handshake => {
                            let half = record.len() / 2;
                            ew.write_all(&record[..half]).await.ok()?;
                            let _ = ew.shutdown().await;
                            return Some(());
                        }
                        _ => {}
                    }
                    ew.write_all(&record).await.ok()?;
                }
                let _ = ew.shutdown().await;
                Some(())
            };
            let _ = tokio::join!(up, down);
        });
    }
}

fn with_tampering_parent(mode: Tamper) {
    let s = setup();
    let rt = runtime();
    let sock: Endpoint = format!("unix://{}", s.dir.path().join("evil.sock").display())
        .parse()
        .unwrap();
    let listener = rt.block_on(Listener::bind(&sock)).unwrap();
    let verifier: Endpoint = s.dep.verifier_endpoint.parse().unwrap();
    rt.spawn(tampering_parent(listener, verifier, mode));

    let out = s.enclave(
        Some(&sock.to_string()),
        &s.dep.verifier_endpoint,
        &["--timeout", "5s"],
    );
    // What TLS inside the enclave noticed.
    let noticed = match mode {
        Tamper::FlipResponse => "cannot decrypt peer's message",
        Tamper::TruncateResponse => "close_notify",
        Tamper::ReplayRequest | Tamper::ReorderRequest => "BadRecordMac",
    };
    s.assert_refused(&out, noticed);
    // Each attempt used a fresh challenge: at most one grant per attempt.
    assert!(granted_releases(s.dir.path()) <= 3, "{mode:?}");
}

#[test]
fn a_parent_flipping_bits_gets_the_enclave_to_refuse() {
    with_tampering_parent(Tamper::FlipResponse);
}

#[test]
fn a_parent_truncating_answers_gets_the_enclave_to_refuse() {
    with_tampering_parent(Tamper::TruncateResponse);
}

#[test]
fn a_parent_replaying_records_gets_the_enclave_to_refuse() {
    with_tampering_parent(Tamper::ReplayRequest);
}

#[test]
fn a_parent_reordering_records_gets_the_enclave_to_refuse() {
    with_tampering_parent(Tamper::ReorderRequest);
}

#[test]
fn a_recorded_session_replayed_to_the_verifier_releases_nothing() {
    let s = setup();
    let rt = runtime();
    // An honest relay that keeps every byte the enclave sent.
    let sock: Endpoint = format!("unix://{}", s.dir.path().join("recording.sock").display())
        .parse()
        .unwrap();
    let listener = rt.block_on(Listener::bind(&sock)).unwrap();
    let verifier: Endpoint = s.dep.verifier_endpoint.parse().unwrap();
    let recorded = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let rec = recorded.clone();
    let v = verifier.clone();
    rt.spawn(async move {
        let Ok((mut enclave, _)) = listener.accept().await else {
            return;
        };
        read_request(&mut enclave, Duration::from_secs(5))
            .await
            .unwrap();
        let upstream = connect(&v).await.unwrap();
        write_answer(&mut enclave, None).await.unwrap();
        let (mut er, mut ew) = tokio::io::split(enclave);
        let (mut ur, mut uw) = tokio::io::split(upstream);
        let up = async {
            let mut buf = [0u8; 4096];
            while let Ok(n) = er.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                rec.lock().unwrap().extend_from_slice(&buf[..n]);
                if uw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = uw.shutdown().await;
        };
        let down = tokio::io::copy(&mut ur, &mut ew);
        let _ = tokio::join!(up, down);
    });
    let out = s.enclave(Some(&sock.to_string()), &s.dep.verifier_endpoint, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(granted_releases(s.dir.path()), 1);

    // The parent replays the enclave's whole side of the session.
    let bytes = recorded.lock().unwrap().clone();
    assert!(bytes.len() > 500);
    let answer = rt.block_on(async {
        let mut c = connect(&verifier).await.unwrap();
        c.write_all(&bytes).await.unwrap();
        let mut back = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut back)).await;
        back
    });
    assert!(!answer.windows(SECRET.len()).any(|w| w == SECRET));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        granted_releases(s.dir.path()),
        1,
        "the replay released nothing"
    );
}

// ---- a verifier that is down, slow or failing ----

#[test]
fn a_verifier_that_is_down_makes_the_enclave_give_up_cleanly() {
    let mut s = setup();
    s.dep.stop_verifier();
    let parent = s.dep.parent_endpoint.clone();
    let out = s.enclave(Some(&parent), &s.dep.verifier_endpoint, &[]);
    s.assert_refused(&out, "destination unreachable");
}

#[test]
fn a_verifier_that_never_answers_times_out() {
    let s = setup();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("tcp://{}", silent.local_addr().unwrap());
    let out = s.enclave(None, &endpoint, &["--timeout", "300ms"]);
    s.assert_refused(&out, "took longer than 300ms");
    drop(silent);
}

#[test]
fn a_verifier_returning_errors_is_retried_then_reported() {
    let s = setup();
    let rt = runtime();
    let tls = make_tls(s.dir.path(), "failing");
    let config = {
        use rustls::pki_types::pem::PemObject;
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(&tls.cert)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&tls.key).unwrap();
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap()
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let endpoint = format!("tcp://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    rt.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let h = h.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let mut buf = vec![0u8; 8192];
                let _ = tls.read(&mut buf).await;
                h.fetch_add(1, Ordering::SeqCst);
                let body = r#"{"reason":"store_unavailable","message":"the store is down"}"#;
                let answer = format!(
                    "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    let a = args(&[
        "--verifier",
        &endpoint,
        "--verifier-ca",
        tls.ca.to_str().unwrap(),
        "--log-key",
        &s.dep.log_key,
    ]);
    let mut a = a;
    a.extend(args(&[
        "--secret",
        "db-password",
        "--retries",
        "2",
        "--retry-delay",
        "20ms",
    ]));
    let touch = format!("touch '{}'", s.marker.display());
    let out = run(
        enclave_command(&s.dep.pki_dir, &s.image, &a, &["sh", "-c", &touch]),
        LIMIT,
    );
    s.assert_refused(&out, "store_unavailable");
    assert_eq!(hits.load(Ordering::SeqCst), 3, "one request per attempt");
}
