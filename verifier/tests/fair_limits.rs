//! Issue 5: one client address must not starve the others, neither by
//! holding idle connections nor by holding challenge nonces. Two loopback
//! source addresses: A = 127.0.0.2 (the hog; Linux routes all of 127/8 to
//! lo) and B = 127.0.0.1, which must still get a release promptly.
//!
//! The bound below is a generous one for a loaded machine; before the
//! per-address limits, B waited for A's idle connections to time out (10 s)
//! or was refused `challenge_capacity`.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use common::{
    create_owned, good_pcrs, policy_toml, reason, spawn, terminate, Enclave, SECRET_NAME,
    SECRET_VALUE,
};
use hermetic_approval::Signer;
use hermetic_envelope::wire::{ChallengeResponse, ReleaseRequest};
use hermetic_verifier::client::{AdminClient, HttpClient};
use hyper::Method;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

const A: &str = "127.0.0.2";
const B: &str = "127.0.0.1";
/// Generous: a release takes milliseconds.
const PROMPTLY: Duration = Duration::from_secs(5);

async fn seed(data: &Path, admin_addr: SocketAddr) {
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let admin = AdminClient::new(&format!("http://{admin_addr}"), token.trim());
    let owner = Signer::generate("owner").unwrap();
    create_owned(
        &admin,
        &owner,
        SECRET_NAME,
        Some(policy_toml(SECRET_NAME, &good_pcrs(), "")),
        SECRET_VALUE,
    )
    .await;
}

fn client(from: &str) -> HttpClient {
    HttpClient::bound_to(Duration::from_secs(30), from.parse().unwrap())
}

async fn challenge(http: &HttpClient, public: SocketAddr) -> (u16, Vec<u8>) {
    let (status, body) = http
        .send(
            Method::POST,
            &format!("http://{public}/v1/challenge"),
            &[],
            vec![],
        )
        .await
        .unwrap();
    (status.as_u16(), body)
}

/// Challenge, attest, release from `http`; the HTTP status of the release.
async fn release(http: &HttpClient, public: SocketAddr, enclave: &Enclave) -> u16 {
    let (status, body) = challenge(http, public).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let c: ChallengeResponse = serde_json::from_slice(&body).unwrap();
    let doc = enclave.document(&c.nonce_bytes().unwrap());
    let request = ReleaseRequest::new(&doc, vec![SECRET_NAME.into()]);
    let (status, body) = http
        .send(
            Method::POST,
            &format!("http://{public}/v1/release"),
            &[("content-type", "application/json")],
            serde_json::to_vec(&request).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    status.as_u16()
}

async fn metric(http: &HttpClient, public: SocketAddr, line_start: &str) -> u64 {
    let (_, body) = http
        .send(
            Method::GET,
            &format!("http://{public}/metrics"),
            &[],
            vec![],
        )
        .await
        .unwrap();
    String::from_utf8(body)
        .unwrap()
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0, |n| n.parse().unwrap())
}

async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))
        .unwrap();
    socket.connect(to).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_holding_its_maximum_of_idle_connections_does_not_delay_a_release_from_another()
{
    const TOTAL: usize = 8;
    const PER_ADDRESS: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let enclave = Enclave::new();
    let root = enclave.write_root(dir.path());
    let total = TOTAL.to_string();
    let per_address = PER_ADDRESS.to_string();
    let mut server = spawn(
        &data,
        &[
            "--trust-root".as_ref(),
            root.as_os_str(),
            "--max-connections".as_ref(),
            total.as_ref(),
            "--max-connections-per-address".as_ref(),
            per_address.as_ref(),
        ],
    );
    seed(&data, server.admin).await;

    // A opens as many idle connections as the whole listener allows, and
    // sends nothing on any of them.
    let mut idle = Vec::new();
    for _ in 0..TOTAL {
        idle.push(connect_from(A, server.public).await);
    }

    // B is served promptly.
    let b = client(B);
    let status = tokio::time::timeout(PROMPTLY, release(&b, server.public, &enclave))
        .await
        .expect("a release from another address was held up by A's idle connections");
    assert_eq!(status, 200);

    // A kept its maximum; the rest were closed at once (EOF, no answer).
    let refused = metric(
        &b,
        server.public,
        "hermetic_refusals_total{reason=\"too_many_connections\"}",
    )
    .await;
    assert_eq!(refused, (TOTAL - PER_ADDRESS) as u64);
    let mut closed = 0;
    for stream in idle.iter_mut().skip(PER_ADDRESS) {
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(PROMPTLY, stream.read(&mut buf))
            .await
            .expect("an over-limit connection is closed at once")
            .unwrap_or(0);
        assert_eq!(n, 0);
        closed += 1;
    }
    assert_eq!(closed, TOTAL - PER_ADDRESS);

    // Once A lets go (and the server has seen the connections end), A is
    // served again: the count follows connections, it is not a ban.
    drop(idle);
    let deadline = tokio::time::Instant::now() + PROMPTLY;
    loop {
        let a = client(A);
        let answer = a
            .send(
                Method::POST,
                &format!("http://{}/v1/challenge", server.public),
                &[],
                vec![],
            )
            .await;
        if matches!(answer, Ok((status, _)) if status == 200) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "A is never served again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    terminate(&mut server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_holding_its_maximum_of_nonces_does_not_keep_another_from_a_release() {
    const TOTAL: usize = 8;
    const PER_ADDRESS: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let enclave = Enclave::new();
    let root = enclave.write_root(dir.path());
    let total = TOTAL.to_string();
    let per_address = PER_ADDRESS.to_string();
    let mut server = spawn(
        &data,
        &[
            "--trust-root".as_ref(),
            root.as_os_str(),
            "--max-nonces".as_ref(),
            total.as_ref(),
            "--max-nonces-per-address".as_ref(),
            per_address.as_ref(),
        ],
    );
    seed(&data, server.admin).await;

    // A asks for challenges as fast as it can and never uses them.
    let a = client(A);
    let mut granted = 0;
    for _ in 0..TOTAL {
        let (status, body) = challenge(&a, server.public).await;
        match status {
            200 => granted += 1,
            _ => {
                assert_eq!(
                    (status, reason(&body).as_str()),
                    (429, "too_many_outstanding_nonces")
                );
            }
        }
    }
    assert_eq!(granted, PER_ADDRESS, "A holds exactly its maximum");

    // B still gets a challenge and its release, promptly.
    let b = client(B);
    let status = tokio::time::timeout(PROMPTLY, release(&b, server.public, &enclave))
        .await
        .expect("a release from another address was held up");
    assert_eq!(status, 200);
    terminate(&mut server);
}
