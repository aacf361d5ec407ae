//! A sealed verifier through its public interfaces: `/metrics` says it is
//! sealed (and the shares it has and needs), then unsealed; its
//! `--public-endpoint` holds at most `--max-connections` connections and
//! closes one over at once while a good client is still served; its TCP
//! listener bounds connections per address, and connections held open
//! (idle, or a request head never finished) do not keep it from closing
//! when it is unsealed; once unsealed, one anonymous address cannot hold
//! every join challenge.

mod common;

use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::custody::{custodians, describe, get, unseal, wait_unsealed, with_custodians};
use common::{spawn, terminate, Enclave};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, UnixStream};

fn os(args: &[OsString]) -> Vec<&std::ffi::OsStr> {
    args.iter().map(|a| a.as_os_str()).collect()
}

/// The value of `series` in an exposition.
fn value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{series} missing in:\n{metrics}"))
}

/// One HTTP/1.1 request on `stream`, closing; the raw answer (empty when
/// the server closed the connection without one).
async fn exchange<S: AsyncReadExt + AsyncWriteExt + Unpin>(mut stream: S, request: &str) -> String {
    if stream.write_all(request.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut raw = Vec::new();
    let read = stream.read_to_end(&mut raw);
    match tokio::time::timeout(Duration::from_secs(20), read).await {
        Ok(_) => String::from_utf8_lossy(&raw).into_owned(),
        Err(_) => panic!("no answer and no close"),
    }
}

/// A TCP connection to `to` from source address `from`.
async fn connect_from(from: &str, to: SocketAddr) -> tokio::net::TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))
        .unwrap();
    socket.connect(to).await.unwrap()
}

/// POST /v1/custody/join/offer from source address `from`: the status.
async fn offer_from(from: &str, to: SocketAddr) -> u16 {
    let stream = connect_from(from, to).await;
    let body = format!("{{\"nonce\": \"{}\"}}", "ab".repeat(32));
    let raw = exchange(
        stream,
        &format!(
            "POST /v1/custody/join/offer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    let status: u16 = raw[9..12].parse().unwrap();
    if status == 429 {
        assert!(raw.contains("challenge_capacity"), "{raw}");
    }
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_gauge_endpoint_cap_and_join_share() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("a");
    let enclave = Enclave::new();
    let root = enclave.write_root(dir.path());
    let pinned = dir.path().join("verifier.json");
    std::fs::write(&pinned, describe("aa")).unwrap();
    let (keys, pubs) = custodians(dir.path(), 2);
    let args: Vec<OsString> = vec![
        "--trust-root".into(),
        root.into(),
        "--pcrs-from".into(),
        pinned.clone().into(),
    ];
    let genesis = with_custodians(&args, &pubs, 2);
    let mut a = spawn(&data, &os(&genesis));
    terminate(&mut a);

    // Sealed, with a Unix endpoint standing for the vsock port, at most
    // three connections at once.
    let socket = dir.path().join("a.sock");
    let mut sealed = args.clone();
    sealed.extend([
        "--public-endpoint".into(),
        format!("unix://{}", socket.display()).into(),
        "--max-connections".into(),
        "3".into(),
        "--max-connections-per-address".into(),
        "2".into(),
    ]);
    let mut a = spawn(&data, &os(&sealed));
    let (s, metrics) = get(format!("http://{}/metrics", a.public)).await;
    assert_eq!(s, 200, "{metrics}");
    assert_eq!(value(&metrics, "hermetic_sealed"), 1.0);
    assert_eq!(
        value(&metrics, "hermetic_unseal_shares{state=\"have\"}"),
        0.0
    );
    assert_eq!(
        value(&metrics, "hermetic_unseal_shares{state=\"need\"}"),
        2.0
    );

    // The attacker holds every slot of the endpoint with idle connections;
    // each further one is closed at once, unanswered.
    let health = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    // (The listener accepts in arrival order: the three idle ones first.)
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(UnixStream::connect(&socket).await.unwrap());
    }
    for _ in 0..5 {
        let over = UnixStream::connect(&socket).await.unwrap();
        assert_eq!(exchange(over, health).await, "", "over the cap: closed");
    }
    // One slot freed: a good client is served.
    idle.pop();
    let mut served = false;
    for _ in 0..100 {
        let good = UnixStream::connect(&socket).await.unwrap();
        if exchange(good, health)
            .await
            .contains("\"state\":\"sealed\"")
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "a good client was not served");
    drop(idle);

    // The TCP listener has the running service's bounds: one address holds
    // at most two connections (three in all); more from it are closed at
    // once, unanswered, while another address is served.
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(connect_from("127.0.0.4", a.public).await);
    }
    for _ in 0..3 {
        let over = connect_from("127.0.0.4", a.public).await;
        assert_eq!(exchange(over, health).await, "", "over the bound: closed");
    }
    let other = connect_from("127.0.0.5", a.public).await;
    assert!(exchange(other, health)
        .await
        .contains("\"state\":\"sealed\""));
    // A request head that never ends, kept open through the unsealing: it
    // must not keep the sealed listeners from closing (they give open
    // connections two seconds, then close them).
    let mut slow = connect_from("127.0.0.6", a.public).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    held.push(slow);

    // Two custodians unseal it: the gauge reads 0.
    let sim_root = data.join("sim-pki").join("root.pem");
    let mut last_share = std::time::Instant::now();
    for key in &keys {
        last_share = std::time::Instant::now();
        let (code, stderr) = unseal(&a, key, &pinned, &sim_root);
        assert_eq!(code, 0, "{stderr}");
    }
    wait_unsealed(&a).await;
    assert!(
        last_share.elapsed() < Duration::from_secs(8),
        "the held connections kept the sealed listeners open for {:?}",
        last_share.elapsed()
    );
    // They were closed by the server.
    for mut c in held {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut rest));
        assert!(read.await.is_ok(), "a held connection is still open");
    }
    let (_, metrics) = get(format!("http://{}/metrics", a.public)).await;
    assert_eq!(value(&metrics, "hermetic_sealed"), 0.0);

    // The attacker asks for join offers from one address until refused:
    // it gets its share, not all of them; another address still gets one.
    let mut granted = 0;
    while offer_from("127.0.0.2", a.public).await == 200 {
        granted += 1;
        assert!(granted <= 64, "no cap");
    }
    assert_eq!(granted, 16, "one address holds a quarter of the challenges");
    assert_eq!(offer_from("127.0.0.3", a.public).await, 200);
    let (_, metrics) = get(format!("http://{}/metrics", a.public)).await;
    assert!(
        value(
            &metrics,
            "hermetic_refusals_total{reason=\"challenge_capacity\"}"
        ) >= 1.0
    );
    terminate(&mut a);
}
