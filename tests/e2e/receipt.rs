//! A verifier operator who answers releases that the log does not show:
//! the verifier sits behind a TLS-terminating front holding its own
//! certificate (as the verifier host's root could), which rewrites the log
//! receipt of each release answer. The enclave opens its secrets, then
//! refuses the answer (exit 1, a `receipt_*` reason) before its workload
//! starts: without a receipt, with the receipt of another release, with a
//! tampered proof, or with a checkpoint the pinned log key did not sign.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hermetic_e2e::front::{acceptor, connector, find, read_message};
use hermetic_e2e::{make_image, policy_for, run, Deployment};
use rustls::pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const SECRET: &[u8] = b"s3cr3t-behind-a-lying-operator";
const LIMIT: Duration = Duration::from_secs(90);
const READ_LIMIT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug)]
enum Rewrite {
    Nothing,
    DropReceipt,
    /// The receipt of the first release this front saw.
    ReplayFirst,
    /// One hash of the inclusion proof changed.
    TamperProof,
    /// The checkpoint's origin line changed (its signature no longer holds).
    ForgeCheckpoint,
}

struct Front {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    backend: String,
    rewrite: Rewrite,
    first_receipt: std::sync::Mutex<Option<Vec<u8>>>,
}

/// Splits an HTTP answer into head and body.
fn split(answer: &[u8]) -> (&[u8], &[u8]) {
    let end = find(answer, b"\r\n\r\n").expect("an HTTP head") + 4;
    answer.split_at(end)
}

/// The answer with `body` and its content-length.
fn with_body(head: &[u8], body: &[u8]) -> Vec<u8> {
    let head = String::from_utf8_lossy(head);
    let mut out = String::new();
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        if line.to_ascii_lowercase().starts_with("content-length:") {
            out.push_str(&format!("content-length: {}\r\n", body.len()));
        } else {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

impl Front {
    fn rewrite(&self, body: &[u8]) -> Vec<u8> {
        let text = String::from_utf8(body.to_vec()).unwrap();
        let at = text.find(",\"receipt\":").expect("a receipt in the answer");
        let (secrets, receipt) = (&text[..at], &text[at..text.len() - 1]);
        let mut first = self.first_receipt.lock().unwrap();
        if first.is_none() {
            *first = Some(receipt.as_bytes().to_vec());
        }
        let receipt = match self.rewrite {
            Rewrite::Nothing => receipt.to_owned(),
            Rewrite::DropReceipt => String::new(),
            Rewrite::ReplayFirst => String::from_utf8(first.clone().unwrap()).unwrap(),
            Rewrite::TamperProof => {
                let p = receipt.find("\"proof\":[\"").unwrap() + 10;
                let mut r = receipt.to_owned();
                let c = if &r[p..p + 1] == "A" { "B" } else { "A" };
                r.replace_range(p..p + 1, c);
                r
            }
            Rewrite::ForgeCheckpoint => receipt.replacen("hermetic.log/", "hermetic.lag/", 1),
        };
        format!("{secrets}{receipt}}}").into_bytes()
    }

    async fn serve(self: Arc<Self>, tcp: TcpStream) {
        let Ok(mut enclave) = self.acceptor.accept(tcp).await else {
            return;
        };
        let mut buf = Vec::new();
        while let Ok(Some(request)) =
            tokio::time::timeout(READ_LIMIT, read_message(&mut enclave, &mut buf)).await
        {
            let tcp = TcpStream::connect(self.backend.trim_start_matches("tcp://"))
                .await
                .unwrap();
            let name = ServerName::try_from("localhost").unwrap();
            let mut verifier = self.connector.connect(name, tcp).await.unwrap();
            verifier.write_all(&request).await.unwrap();
            let mut back = Vec::new();
            let mut answer =
                tokio::time::timeout(READ_LIMIT, read_message(&mut verifier, &mut back))
                    .await
                    .unwrap()
                    .expect("the verifier answers");
            if request.starts_with(b"POST /v1/release ") && answer.starts_with(b"HTTP/1.1 200") {
                let (head, body) = split(&answer);
                answer = with_body(head, &self.rewrite(body));
            }
            if enclave.write_all(&answer).await.is_err() {
                return;
            }
        }
    }
}

fn enclave(
    dep: &Deployment,
    image: &hermetic_e2e::Image,
    front: &str,
    marker: &Path,
) -> std::process::Output {
    let args: Vec<String> = [
        "--verifier",
        front,
        "--verifier-ca",
        dep.tls.ca.to_str().unwrap(),
        "--log-key",
        &dep.log_key,
        "--secret",
        "db-password",
        "--retries",
        "0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let workload = format!("touch '{}'", marker.display());
    run(
        hermetic_e2e::enclave_command(&dep.pki_dir, image, &args, &["sh", "-c", &workload]),
        LIMIT,
    )
}

#[test]
fn an_answer_whose_receipt_does_not_prove_its_own_release_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let image = make_image(dir.path(), "app", b"release 1");
    let dep = Deployment::start(dir.path(), &policy_for(&image, "db-password"));
    dep.put_secret("db-password", SECRET);
    // The front presents a certificate of the verifier's own CA: it stands
    // for the verifier host's operator, who holds the verifier's TLS key.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for (i, (rewrite, reason)) in [
        (Rewrite::Nothing, None),
        (Rewrite::DropReceipt, Some("receipt_missing")),
        (Rewrite::ReplayFirst, Some("receipt_wrong_record")),
        (Rewrite::TamperProof, Some("receipt_not_included")),
        (Rewrite::ForgeCheckpoint, Some("receipt_bad_checkpoint")),
    ]
    .into_iter()
    .enumerate()
    {
        let front = Arc::new(Front {
            acceptor: acceptor(&dep.tls.cert, &dep.tls.key),
            connector: connector(&dep.tls.ca),
            backend: dep.verifier_endpoint.clone(),
            rewrite,
            first_receipt: std::sync::Mutex::new(None),
        });
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let endpoint = format!("tcp://{}", listener.local_addr().unwrap());
        let serving = front.clone();
        let task = rt.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(serving.clone().serve(tcp));
            }
        });
        if matches!(rewrite, Rewrite::ReplayFirst) {
            // First pass unchanged (the front keeps that receipt)...
            let marker = dir.path().join(format!("ran-{i}-first"));
            let out = enclave(&dep, &image, &endpoint, &marker);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let marker = dir.path().join(format!("ran-{i}"));
        let out = enclave(&dep, &image, &endpoint, &marker);
        let stderr = String::from_utf8_lossy(&out.stderr);
        match reason {
            None => {
                assert_eq!(out.status.code(), Some(0), "{stderr}");
                assert!(marker.exists());
            }
            Some(reason) => {
                assert_eq!(out.status.code(), Some(1), "{rewrite:?}: {stderr}");
                assert!(
                    stderr.contains(reason),
                    "{rewrite:?}: expected {reason} in {stderr}"
                );
                assert!(!marker.exists(), "{rewrite:?}: the workload must not start");
                assert!(!stderr.contains("s3cr3t"));
            }
        }
        task.abort();
    }
}
