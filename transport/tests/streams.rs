//! Every non-vsock transport carries bytes both ways through the same API,
//! and binding an address that is taken is a clear, typed error.
//! (vsock is never opened here: this machine has no vsock loopback.)

use hermetic_transport::{connect, Endpoint, Listener, TransportError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn echo_round_trip(endpoint: Endpoint) {
    let listener = Listener::bind(&endpoint).await.unwrap();
    let target = listener.local_endpoint();
    let server = tokio::spawn(async move {
        let (mut s, _peer) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 5];
        s.read_exact(&mut buf).await.unwrap();
        buf.reverse();
        s.write_all(&buf).await.unwrap();
        s.shutdown().await.unwrap();
    });
    let mut c = connect(&target).await.unwrap();
    c.write_all(b"hello").await.unwrap();
    let mut back = Vec::new();
    c.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"olleh");
    server.await.unwrap();
}

#[tokio::test]
async fn unix_sockets_carry_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    echo_round_trip(format!("unix://{}", path.display()).parse().unwrap()).await;
    assert!(
        !path.exists(),
        "the socket file is removed with the listener"
    );
}

#[tokio::test]
async fn loopback_tcp_carries_bytes() {
    echo_round_trip("tcp://127.0.0.1:0".parse().unwrap()).await;
}

#[tokio::test]
async fn a_taken_address_is_reported_as_in_use() {
    let first = Listener::bind(&"tcp://127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let taken = first.local_endpoint();
    match Listener::bind(&taken).await {
        Err(TransportError::AddressInUse(e)) => assert_eq!(e, taken),
        other => panic!("expected AddressInUse, got {other:?}"),
    }
    let dir = tempfile::tempdir().unwrap();
    let sock: Endpoint = format!("unix://{}", dir.path().join("s.sock").display())
        .parse()
        .unwrap();
    let _held = Listener::bind(&sock).await.unwrap();
    assert!(matches!(
        Listener::bind(&sock).await,
        Err(TransportError::AddressInUse(_))
    ));
}

#[tokio::test]
async fn connecting_to_nothing_is_an_io_error_naming_the_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let missing: Endpoint = format!("unix://{}", dir.path().join("none.sock").display())
        .parse()
        .unwrap();
    let err = connect(&missing).await.unwrap_err();
    assert!(err.to_string().contains("none.sock"), "{err}");
}
