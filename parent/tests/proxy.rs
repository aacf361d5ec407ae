//! The proxy through its public API, over Unix sockets and loopback TCP
//! (the same transport code that carries vsock on a Nitro host).

use std::path::Path;
use std::time::Duration;

use hermetic_parent::{Config, Proxy};
use hermetic_transport::proxy::{connect_via, ProxyError};
use hermetic_transport::{Endpoint, Listener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

const WAIT: Duration = Duration::from_secs(5);

fn unix(dir: &Path, name: &str) -> Endpoint {
    format!("unix://{}", dir.join(name).display())
        .parse()
        .unwrap()
}

fn record(content_type: u8, payload: &[u8]) -> Vec<u8> {
    let mut r = vec![content_type, 3, 3];
    r.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    r.extend_from_slice(payload);
    r
}

/// An upstream that echoes everything back and reports what it received.
async fn echo_upstream(
    endpoint: &Endpoint,
) -> (Endpoint, tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) {
    let listener = Listener::bind(endpoint).await.unwrap();
    let bound = listener.local_endpoint();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut all = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            all.extend_from_slice(&buf[..n]);
                            if s.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = tx.send(all);
            });
        }
    });
    (bound, rx)
}

struct Running {
    endpoint: Endpoint,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

async fn start(config: Config) -> Running {
    let proxy = Proxy::bind(config).await.unwrap();
    let endpoint = proxy.local_endpoint();
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(proxy.run(async {
        let _ = stopped.await;
    }));
    Running {
        endpoint,
        stop: Some(stop),
        done,
    }
}

impl Running {
    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(WAIT, self.done)
            .await
            .unwrap()
            .unwrap();
    }
}

#[tokio::test]
async fn tls_records_are_relayed_both_ways_and_captured() {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, mut received) = echo_upstream(&unix(dir.path(), "up.sock")).await;
    let mut cfg = Config::new(unix(dir.path(), "parent.sock"), vec![upstream.clone()]);
    let capture = dir.path().join("capture.bin");
    cfg.capture = Some(capture.clone());
    let proxy = start(cfg).await;

    let mut s = connect_via(&proxy.endpoint, &upstream, WAIT).await.unwrap();
    let sent = [record(22, b"client hello"), record(23, &[0xaa; 3000])].concat();
    s.write_all(&sent).await.unwrap();
    let mut back = vec![0u8; sent.len()];
    tokio::time::timeout(WAIT, s.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, sent);
    s.shutdown().await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(rest.is_empty());
    assert_eq!(
        tokio::time::timeout(WAIT, received.recv())
            .await
            .unwrap()
            .unwrap(),
        sent
    );
    proxy.shutdown().await;

    let cap = std::fs::read(&capture).unwrap();
    // Each record appears once in each direction, after its direction byte.
    let expected_len = 2 * (sent.len() + 2);
    assert_eq!(cap.len(), expected_len);
    assert_eq!(cap[0], b'>');
    assert!(cap.windows(12).any(|w| w == b"client hello"));
}

#[tokio::test]
async fn a_destination_not_allowed_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, _rx) = echo_upstream(&unix(dir.path(), "up.sock")).await;
    let (elsewhere, mut elsewhere_rx) = echo_upstream(&unix(dir.path(), "other.sock")).await;
    let proxy = start(Config::new(unix(dir.path(), "p.sock"), vec![upstream])).await;
    match connect_via(&proxy.endpoint, &elsewhere, WAIT).await {
        Err(ProxyError::Denied(reason)) => assert_eq!(reason, "destination not allowed"),
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
    assert!(
        elsewhere_rx.try_recv().is_err(),
        "nothing reached the other destination"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn plaintext_is_not_relayed() {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, mut received) = echo_upstream(&unix(dir.path(), "up.sock")).await;
    let proxy = start(Config::new(
        unix(dir.path(), "p.sock"),
        vec![upstream.clone()],
    ))
    .await;
    let mut s = connect_via(&proxy.endpoint, &upstream, WAIT).await.unwrap();
    s.write_all(b"POST /v1/release HTTP/1.1\r\nHost: verifier\r\n\r\n{\"secret\":\"x\"}")
        .await
        .unwrap();
    let mut back = Vec::new();
    // Closed without an answer (a reset, if our unread bytes were pending).
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut back))
        .await
        .unwrap();
    assert!(
        back.is_empty(),
        "the connection is closed without an answer"
    );
    let got = tokio::time::timeout(WAIT, received.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(got.is_empty(), "the upstream saw no byte of the plaintext");
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_oversize_record_closes_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, mut received) = echo_upstream(&unix(dir.path(), "up.sock")).await;
    let mut cfg = Config::new(unix(dir.path(), "p.sock"), vec![upstream.clone()]);
    cfg.max_record = 1024;
    let proxy = start(cfg).await;
    let mut s = connect_via(&proxy.endpoint, &upstream, WAIT).await.unwrap();
    s.write_all(&record(23, &[1; 100])).await.unwrap();
    let mut echo = vec![0u8; 105];
    tokio::time::timeout(WAIT, s.read_exact(&mut echo))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(echo, record(23, &[1; 100]));
    s.write_all(&record(23, &[2; 2000])).await.unwrap();
    let mut back = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut back))
        .await
        .unwrap();
    assert!(
        back.is_empty(),
        "the oversize record is not relayed and the link closes"
    );
    let got = tokio::time::timeout(WAIT, received.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, record(23, &[1; 100]));
    proxy.shutdown().await;
}

#[tokio::test]
async fn the_byte_limit_closes_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, mut received) = echo_upstream(&unix(dir.path(), "up.sock")).await;
    let mut cfg = Config::new(unix(dir.path(), "p.sock"), vec![upstream.clone()]);
    cfg.max_connection_bytes = 250;
    let proxy = start(cfg).await;
    let mut s = connect_via(&proxy.endpoint, &upstream, WAIT).await.unwrap();
    for _ in 0..3 {
        let _ = s.write_all(&record(23, &[7; 95])).await;
    }
    let got = tokio::time::timeout(WAIT, received.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got.len(),
        200,
        "two 100-byte records fit in 250 bytes, the third does not"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_idle_connection_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, _rx) = echo_upstream(&unix(dir.path(), "up.sock")).await;
    let mut cfg = Config::new(unix(dir.path(), "p.sock"), vec![upstream.clone()]);
    cfg.idle_timeout = Duration::from_millis(200);
    let proxy = start(cfg).await;
    let mut s = connect_via(&proxy.endpoint, &upstream, WAIT).await.unwrap();
    let mut back = Vec::new();
    // Nothing is sent: the parent closes the link on its own.
    tokio::time::timeout(WAIT, s.read_to_end(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert!(back.is_empty());
    proxy.shutdown().await;
}

#[tokio::test]
async fn connections_beyond_the_limit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, _rx) = echo_upstream(&unix(dir.path(), "up.sock")).await;
    let mut cfg = Config::new(unix(dir.path(), "p.sock"), vec![upstream.clone()]);
    cfg.max_connections = 2;
    let proxy = start(cfg).await;
    let a = connect_via(&proxy.endpoint, &upstream, WAIT).await.unwrap();
    let b = connect_via(&proxy.endpoint, &upstream, WAIT).await.unwrap();
    match connect_via(&proxy.endpoint, &upstream, WAIT).await {
        Err(ProxyError::Denied(reason)) => assert_eq!(reason, "busy"),
        other => panic!("expected busy, got {:?}", other.map(|_| ())),
    }
    drop((a, b));
    proxy.shutdown().await;
}

#[tokio::test]
async fn the_connection_rate_is_limited() {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, _rx) = echo_upstream(&unix(dir.path(), "up.sock")).await;
    let mut cfg = Config::new(unix(dir.path(), "p.sock"), vec![upstream.clone()]);
    cfg.connections_per_second = 1; // burst of 2
    let proxy = start(cfg).await;
    let mut refused = 0;
    for _ in 0..4 {
        if let Err(ProxyError::Denied(reason)) = connect_via(&proxy.endpoint, &upstream, WAIT).await
        {
            assert_eq!(reason, "rate limited");
            refused += 1;
        }
    }
    assert!(refused >= 1, "a burst beyond the bucket is refused");
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_destination_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = unix(dir.path(), "nobody-listens.sock");
    let proxy = start(Config::new(
        "tcp://127.0.0.1:0".parse().unwrap(),
        vec![nowhere.clone()],
    ))
    .await;
    match connect_via(&proxy.endpoint, &nowhere, WAIT).await {
        Err(ProxyError::Denied(reason)) => assert_eq!(reason, "destination unreachable"),
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_empty_allow_list_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        Proxy::bind(Config::new(unix(dir.path(), "p.sock"), vec![])).await,
        Err(hermetic_parent::ParentError::EmptyAllowList)
    ));
}

#[tokio::test]
async fn inbound_mode_relays_tls_records_to_its_one_destination_and_refuses_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, mut received) = echo_upstream(&unix(dir.path(), "verifier.sock")).await;
    let mut cfg = Config::new("tcp://127.0.0.1:0".parse().unwrap(), Vec::new());
    cfg.forward_to = Some(upstream.clone());
    let proxy = start(cfg).await;

    // A plain TLS client: no destination line.
    let mut s = hermetic_transport::connect(&proxy.endpoint).await.unwrap();
    let sent = [record(22, b"client hello"), record(23, &[0x55; 100])].concat();
    s.write_all(&sent).await.unwrap();
    let mut back = vec![0u8; sent.len()];
    tokio::time::timeout(WAIT, s.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, sent);
    drop(s);
    assert_eq!(
        tokio::time::timeout(WAIT, received.recv())
            .await
            .unwrap()
            .unwrap(),
        sent
    );

    // Not TLS (an HTTP request in the clear): closed, nothing forwarded.
    let mut s = hermetic_transport::connect(&proxy.endpoint).await.unwrap();
    s.write_all(b"GET /v1/attestation HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut rest)).await;
    assert!(rest.is_empty());
    let forwarded = tokio::time::timeout(WAIT, received.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(forwarded.is_empty(), "plaintext reached the verifier");
    proxy.shutdown().await;

    // Inbound mode has one destination: an allow-list besides it is refused.
    let mut cfg = Config::new(unix(dir.path(), "p2.sock"), vec![upstream.clone()]);
    cfg.forward_to = Some(upstream);
    assert!(matches!(
        Proxy::bind(cfg).await.err(),
        Some(hermetic_parent::ParentError::ForwardWithAllowList)
    ));
}

/// A PostgreSQL stand-in: reads the 8-byte SSLRequest, answers `answer`,
/// then echoes records back; reports every byte it received.
async fn postgres_upstream(
    endpoint: &Endpoint,
    answer: u8,
) -> (Endpoint, tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) {
    let listener = Listener::bind(endpoint).await.unwrap();
    let bound = listener.local_endpoint();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut all = vec![0u8; 8];
                if s.read_exact(&mut all).await.is_err() {
                    let _ = tx.send(Vec::new());
                    return;
                }
                if s.write_all(&[answer]).await.is_err() {
                    let _ = tx.send(all);
                    return;
                }
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            all.extend_from_slice(&buf[..n]);
                            if s.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = tx.send(all);
            });
        }
    });
    (bound, rx)
}

const SSL_REQUEST: [u8; 8] = hermetic_parent::postgres::SSL_REQUEST;

async fn read_all(s: &mut hermetic_transport::Stream) -> Vec<u8> {
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut rest))
        .await
        .unwrap();
    rest
}

#[tokio::test]
async fn postgres_ssl_request_then_tls_records_are_relayed_and_captured() {
    let dir = tempfile::tempdir().unwrap();
    let (db, mut received) = postgres_upstream(&unix(dir.path(), "db.sock"), b'S').await;
    let mut cfg = Config::new(unix(dir.path(), "parent.sock"), vec![]);
    cfg.allow_postgres = vec![db.clone()];
    let capture = dir.path().join("capture.bin");
    cfg.capture = Some(capture.clone());
    let proxy = start(cfg).await;

    let mut s = connect_via(&proxy.endpoint, &db, WAIT).await.unwrap();
    s.write_all(&SSL_REQUEST).await.unwrap();
    let mut answer = [0u8; 1];
    tokio::time::timeout(WAIT, s.read_exact(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&answer, b"S");
    let hello = record(22, b"client hello");
    s.write_all(&hello).await.unwrap();
    let mut back = vec![0u8; hello.len()];
    tokio::time::timeout(WAIT, s.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, hello);
    // A second SSLRequest after 'S' is plaintext inside the TLS phase.
    s.write_all(&SSL_REQUEST).await.unwrap();
    assert!(read_all(&mut s).await.is_empty());
    let got = tokio::time::timeout(WAIT, received.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, [SSL_REQUEST.to_vec(), hello.clone()].concat());
    proxy.shutdown().await;
    let captured = std::fs::read(&capture).unwrap();
    let expected = [
        vec![b'>'],
        SSL_REQUEST.to_vec(),
        vec![b'<', b'S', b'>'],
        hello.clone(),
        vec![b'<'],
        hello,
    ]
    .concat();
    assert_eq!(captured, expected);
}

#[tokio::test]
async fn a_plaintext_startup_message_to_postgres_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (db, mut received) = postgres_upstream(&unix(dir.path(), "db.sock"), b'S').await;
    let mut cfg = Config::new(unix(dir.path(), "parent.sock"), vec![]);
    cfg.allow_postgres = vec![db.clone()];
    let proxy = start(cfg).await;

    let mut s = connect_via(&proxy.endpoint, &db, WAIT).await.unwrap();
    // StartupMessage, protocol 3.0: "user" "hermetic" in plaintext.
    let mut startup = vec![0, 0, 0, 0, 0, 3, 0, 0];
    startup.extend_from_slice(b"user\0hermetic\0\0");
    let len = startup.len() as u32;
    startup[..4].copy_from_slice(&len.to_be_bytes());
    s.write_all(&startup).await.unwrap();
    assert!(read_all(&mut s).await.is_empty());
    // Nothing of it reached the database: its connection closed empty.
    let got = tokio::time::timeout(WAIT, received.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(got.is_empty(), "the database received {got:?}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_postgres_server_answering_n_is_not_relayed() {
    let dir = tempfile::tempdir().unwrap();
    let (db, mut received) = postgres_upstream(&unix(dir.path(), "db.sock"), b'N').await;
    let mut cfg = Config::new(unix(dir.path(), "parent.sock"), vec![]);
    cfg.allow_postgres = vec![db.clone()];
    let proxy = start(cfg).await;

    let mut s = connect_via(&proxy.endpoint, &db, WAIT).await.unwrap();
    s.write_all(&SSL_REQUEST).await.unwrap();
    // The 'N' is not passed on: the enclave sees the connection close.
    assert!(read_all(&mut s).await.is_empty());
    let got = tokio::time::timeout(WAIT, received.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, SSL_REQUEST.to_vec());
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_ssl_request_to_a_plain_tls_destination_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, _received) = echo_upstream(&unix(dir.path(), "up.sock")).await;
    let mut cfg = Config::new(unix(dir.path(), "parent.sock"), vec![upstream.clone()]);
    cfg.allow_postgres = vec![unix(dir.path(), "other.sock")];
    let proxy = start(cfg).await;
    let mut s = connect_via(&proxy.endpoint, &upstream, WAIT).await.unwrap();
    s.write_all(&SSL_REQUEST).await.unwrap();
    assert!(read_all(&mut s).await.is_empty());
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_destination_allowed_both_ways_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = unix(dir.path(), "db.sock");
    let mut cfg = Config::new(unix(dir.path(), "parent.sock"), vec![db.clone()]);
    cfg.allow_postgres = vec![db];
    let err = Proxy::bind(cfg).await.err().unwrap().to_string();
    assert!(err.contains("both --allow and --allow-postgres"), "{err}");
}
