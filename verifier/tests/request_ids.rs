//! Request ids: one per request, made by the verifier, in the
//! `x-request-id` header, the refusal body's `request_id` and the audit
//! record, so an operator can join them; a client cannot choose it.
#![cfg(feature = "test-roots")]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::{config, good_pcrs, log_records, now_ms, policy_toml, Enclave, Service, SECRET_NAME};
use hermetic_verifier::clock::SystemClock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Answer {
    status: u16,
    request_id: Option<String>,
    body: serde_json::Value,
}

/// One HTTP/1.1 request on its own connection, with extra header lines.
async fn send(addr: SocketAddr, method: &str, path: &str, headers: &str, body: &[u8]) -> Answer {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    let request_id = head.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("x-request-id: ")
            .map(str::to_owned)
    });
    Answer {
        status,
        request_id,
        body: serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    }
}

fn well_formed(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

async fn release(svc: &Service, document: &[u8], headers: &str) -> Answer {
    let request = hermetic_envelope::wire::ReleaseRequest::new(document, vec![SECRET_NAME.into()]);
    send(
        svc.running.public_addr,
        "POST",
        "/v1/release",
        headers,
        &serde_json::to_vec(&request).unwrap(),
    )
    .await
}

#[tokio::test]
async fn one_id_joins_header_refusal_body_and_audit_record() {
    let dir = tempfile::tempdir().unwrap();
    let enclave = Enclave::new();
    let root = enclave.write_root(dir.path());
    let svc = Service::start(config(dir.path(), Some(root)), Arc::new(SystemClock)).await;
    svc.seed(
        SECRET_NAME,
        Some(policy_toml(SECRET_NAME, &good_pcrs(), "")),
        common::SECRET_VALUE,
    )
    .await;
    let key = Some(enclave.key.public_key_bytes().to_vec());

    // A refusal recorded one by one (the document verified, a fresh nonce
    // used up): the header, the body and the record name one id. The
    // client's own X-Request-Id is ignored.
    let mut wrong = good_pcrs();
    wrong.insert(0, vec![0xee; 48]);
    let nonce = svc.challenge().await;
    let doc = enclave.document_with(wrong, Some(&nonce), now_ms(), key.clone());
    let forged = "0123456789abcdef0123456789abcdef";
    let refused = release(&svc, &doc, &format!("X-Request-Id: {forged}\r\n")).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.body["reason"], "pcr_mismatch");
    let id = refused.request_id.clone().expect("x-request-id header");
    assert!(well_formed(&id), "{id}");
    assert_ne!(id, forged);
    assert_eq!(refused.body["request_id"], id.as_str());

    // A grant: its id is in its release record.
    let nonce = svc.challenge().await;
    let doc = enclave.document_with(good_pcrs(), Some(&nonce), now_ms(), key);
    let granted = release(&svc, &doc, "").await;
    assert_eq!(granted.status, 200, "{}", granted.body);
    let granted_id = granted.request_id.clone().unwrap();
    assert!(well_formed(&granted_id));
    assert_ne!(granted_id, id, "ids differ per request");

    // A refusal that is only counted still carries an id.
    let garbage = send(svc.running.public_addr, "POST", "/v1/release", "", b"{").await;
    assert_eq!(garbage.status, 400);
    assert_eq!(
        garbage.body["request_id"],
        garbage.request_id.clone().unwrap().as_str()
    );

    // Admin routes carry ids too (401 without a token).
    let admin = send(svc.running.admin_addr, "GET", "/admin/v1/secrets", "", b"").await;
    assert_eq!(admin.status, 401);
    assert_eq!(
        admin.body["request_id"],
        admin.request_id.clone().unwrap().as_str()
    );

    svc.running.stop().await;
    let records = log_records(&dir.path().join("data"));
    let of = |id: &str| {
        records
            .iter()
            .filter(|r| r["entry"]["request_id"] == id)
            .cloned()
            .collect::<Vec<_>>()
    };
    let refused_records = of(&id);
    assert_eq!(refused_records.len(), 1, "{records:?}");
    assert_eq!(refused_records[0]["entry"]["reason"], "pcr_mismatch");
    let granted_records = of(&granted_id);
    assert_eq!(granted_records.len(), 1);
    assert_eq!(granted_records[0]["entry"]["verdict"], "granted");
    // The secret's creation and its owner-approved value came through the
    // admin API: their records carry that request's id.
    for r in records.iter().filter(|r| {
        ["secret_create", "change_applied"].contains(&r["entry"]["action"].as_str().unwrap())
    }) {
        assert!(
            well_formed(r["entry"]["request_id"].as_str().unwrap()),
            "{r}"
        );
    }
    // The start record has none; the forged id is nowhere.
    assert!(records[0]["entry"].get("request_id").is_none());
    let log = std::fs::read_to_string(dir.path().join("data/audit.jsonl")).unwrap();
    assert!(!log.contains(forged));
}

/// `--log-format json`: every stderr line is one JSON object; a refusal's
/// event carries the request id its answer names; the bearer token the
/// client sent is not logged.
#[test]
fn json_log_lines_carry_the_request_id() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hermetic-verifier"))
        .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
        .args(["--admin-listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let admin: SocketAddr = loop {
        let line = lines.next().expect("serve stopped").unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).expect(&line);
        seen.push(v.clone());
        if v["event"] == "listening" {
            break v["admin"]
                .as_str()
                .unwrap()
                .trim_start_matches("http://")
                .parse()
                .unwrap();
        }
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let forged_token = "Bearer not-the-token-4f1c";
    let answer = rt.block_on(send(
        admin,
        "GET",
        "/admin/v1/secrets",
        &format!("Authorization: {forged_token}\r\n"),
        b"",
    ));
    assert_eq!(answer.status, 401);
    let id = answer.request_id.unwrap();
    let _ = child.kill();
    let _ = child.wait();
    for line in lines.map_while(Result::ok) {
        assert!(!line.contains("not-the-token"), "{line}");
        seen.push(serde_json::from_str(&line).expect(&line));
    }
    let refused: Vec<_> = seen.iter().filter(|v| v["event"] == "refused").collect();
    assert_eq!(refused.len(), 1, "{seen:?}");
    assert_eq!(refused[0]["request_id"], id.as_str());
    assert_eq!(refused[0]["reason"], "unauthorized");
    assert_eq!(refused[0]["level"], "info");
}
