//! A verifier restarted between an enclave's challenge and its release:
//! the restarted verifier no longer knows the nonce (its nonce book is in
//! memory) and answers `nonce_unknown`; the enclave starts over with a
//! fresh challenge and its workload gets the secret.
//!
//! For the enclave to reach the restarted verifier on the same TLS session,
//! the verifier sits behind a TLS-terminating front, as behind a load
//! balancer: the front forwards each HTTP request to whichever verifier
//! runs now, and restarts the verifier itself when the first release
//! request arrives, so the restart falls between challenge and release
//! every time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hermetic_e2e::front::{acceptor, connector, read_message};
use hermetic_e2e::{
    enclave_command, make_image, make_tls, policy_for, run, sha256_hex, Deployment,
};
use rustls::pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const SECRET: &[u8] = b"s3cr3t-across-a-verifier-restart";
const LIMIT: Duration = Duration::from_secs(90);
/// Longest wait for one message from either side.
const READ_LIMIT: Duration = Duration::from_secs(30);

/// `GET path` from the verifier at `endpoint` (`tcp://HOST:PORT`, TLS).
async fn get(connector: &TlsConnector, endpoint: &str, path: &str) -> String {
    let tcp = TcpStream::connect(endpoint.trim_start_matches("tcp://"))
        .await
        .unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let answer = tokio::time::timeout(READ_LIMIT, read_message(&mut tls, &mut buf))
        .await
        .unwrap()
        .expect("an answer");
    String::from_utf8(answer).unwrap()
}

struct Front {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    deployment: Arc<Mutex<Deployment>>,
    releases_seen: Arc<AtomicUsize>,
}

impl Front {
    /// Serves one enclave connection: each request goes to the verifier
    /// running at that moment, on a connection of its own.
    async fn serve(self: Arc<Self>, tcp: TcpStream) {
        let Ok(mut enclave) = self.acceptor.accept(tcp).await else {
            return;
        };
        let mut buf = Vec::new();
        while let Ok(Some(request)) =
            tokio::time::timeout(READ_LIMIT, read_message(&mut enclave, &mut buf)).await
        {
            if request.starts_with(b"POST /v1/release ")
                && self.releases_seen.fetch_add(1, Ordering::SeqCst) == 0
            {
                let deployment = self.deployment.clone();
                tokio::task::spawn_blocking(move || deployment.lock().unwrap().restart_verifier())
                    .await
                    .unwrap();
            }
            let backend = self.deployment.lock().unwrap().verifier_endpoint.clone();
            let addr = backend.trim_start_matches("tcp://").to_owned();
            let tcp = TcpStream::connect(&addr).await.unwrap();
            let name = ServerName::try_from("localhost").unwrap();
            let mut verifier = self.connector.connect(name, tcp).await.unwrap();
            verifier.write_all(&request).await.unwrap();
            let mut back = Vec::new();
            let answer = tokio::time::timeout(READ_LIMIT, read_message(&mut verifier, &mut back))
                .await
                .unwrap()
                .expect("the verifier answers");
            if enclave.write_all(&answer).await.is_err() {
                return;
            }
        }
    }
}

#[test]
fn a_verifier_restarted_between_challenge_and_release_is_retried_with_a_fresh_challenge() {
    let dir = tempfile::tempdir().unwrap();
    let image = make_image(dir.path(), "app", b"release 1");
    let dep = Deployment::start(dir.path(), &policy_for(&image, "db-password"));
    dep.put_secret("db-password", SECRET);
    let pki_dir = dep.pki_dir.clone();
    let log_key = dep.log_key.clone();
    let front_tls = make_tls(dir.path(), "front");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let front_endpoint = format!("tcp://{}", listener.local_addr().unwrap());
    let front = Arc::new(Front {
        acceptor: acceptor(&front_tls.cert, &front_tls.key),
        connector: connector(&dep.tls.ca),
        deployment: Arc::new(Mutex::new(dep)),
        releases_seen: Arc::new(AtomicUsize::new(0)),
    });
    let serving = front.clone();
    rt.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(serving.clone().serve(tcp));
        }
    });

    let args: Vec<String> = [
        "--verifier",
        &front_endpoint,
        "--verifier-ca",
        front_tls.ca.to_str().unwrap(),
        "--log-key",
        &log_key,
        "--secret",
        "db-password",
        "--retries",
        "2",
        "--retry-delay",
        "20ms",
    ]
    .map(String::from)
    .to_vec();
    let workload = ["sh", "-c", "printf %s \"$DB_PASSWORD\" | sha256sum"];
    let out = run(enclave_command(&pki_dir, &image, &args, &workload), LIMIT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let dep = front.deployment.lock().unwrap();
    assert!(
        out.status.success(),
        "enclave failed: {stderr}\nrestarted verifier:\n{}",
        dep.verifier.log_text()
    );
    // The workload got the secret.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with(&sha256_hex(SECRET)),
        "workload printed {stdout:?}"
    );
    // Two release requests (the first one restarted the verifier), one
    // retry, after the reason the verifier sent.
    assert_eq!(
        front.releases_seen.load(Ordering::SeqCst),
        2,
        "two release requests"
    );
    assert!(
        stderr.contains("event=attempt_failed attempt=1 reason=nonce_unknown"),
        "{stderr}"
    );
    assert!(!stderr.contains("attempt=2"), "{stderr}");

    // The restarted verifier refused with nonce_unknown once (its log and
    // its metrics say so), then granted once; the audit log, which carries
    // over the restart, holds that one grant.
    let restarted = dep.verifier.log_text();
    assert_eq!(
        restarted.matches("reason=nonce_unknown").count(),
        1,
        "{restarted}"
    );
    let metrics = rt.block_on(get(&front.connector, &dep.verifier_endpoint, "/metrics"));
    assert!(
        metrics.contains("hermetic_refusals_total{reason=\"nonce_unknown\"} 1\n"),
        "{metrics}"
    );
    let audit = std::fs::read_to_string(dir.path().join("verifier-data/audit.jsonl")).unwrap();
    let releases: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("\"action\":\"release\""))
        .collect();
    assert_eq!(releases.len(), 1, "{audit}");
    assert!(releases[0].contains("\"verdict\":\"granted\""), "{audit}");
    assert!(!stdout.contains("s3cr3t") && !stderr.contains("s3cr3t"));
}
