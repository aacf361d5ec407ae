//! TLS to PostgreSQL with a pinned CA, and the store reached through the
//! parent (issue 13): `serve --store-ca` and `--store-via`. Real verifier
//! binaries against a private PostgreSQL cluster with `ssl = on` and a
//! server certificate from a test CA (rcgen); the parent is the real proxy
//! (`hermetic_parent::Proxy`, what the `hermetic-parent` binary runs) with
//! `--allow-postgres` and `--capture`. Without `HERMETIC_TEST_POSTGRES`
//! these tests skip with a message, except under `CI=true`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::pg::{test_postgres, PrivateCluster};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A test CA: its certificate (PEM, what `--store-ca` pins) and a server
/// certificate it issues for `names`, with the server's key (PEM).
struct TestCa {
    ca_pem: String,
    server_cert_pem: String,
    server_key_pem: String,
}

impl TestCa {
    fn new(label: &str, names: &[&str]) -> TestCa {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name
            .push(DnType::CommonName, format!("{label} PostgreSQL CA"));
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, &ca_key);
        let key = KeyPair::generate().unwrap();
        let mut server =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        server
            .distinguished_name
            .push(DnType::CommonName, "test PostgreSQL server");
        server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = server.signed_by(&key, &issuer).unwrap();
        TestCa {
            ca_pem: ca_cert.pem(),
            server_cert_pem: cert.pem(),
            server_key_pem: key.serialize_pem(),
        }
    }

    fn write_ca(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, &self.ca_pem).unwrap();
        path
    }
}

/// A private cluster with TLS on, its certificate from `ca` naming 127.0.0.1
/// (the URL's host).
fn tls_cluster(dir: &Path, ca: &TestCa) -> PrivateCluster {
    let cluster = PrivateCluster::start_in(dir);
    cluster.enable_tls(&ca.server_cert_pem, &ca.server_key_pem);
    cluster
}

/// Runs `serve` (on a new data directory in `dir`) expecting it to stop
/// before listening; returns its exit code and stderr.
fn serve_fails(dir: &Path, args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let data = tempfile::tempdir_in(dir).unwrap();
    let data = data.path().join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_hermetic-verifier"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(&data)
        .args(common::production_genesis_args(&data))
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("event=listening"), "{stderr}");
    (out.status.code(), stderr)
}

fn os(args: &[&str]) -> Vec<std::ffi::OsString> {
    args.iter().map(Into::into).collect()
}

/// A server that does not offer TLS is refused: `--store-ca` never falls
/// back to plaintext.
#[test]
fn a_server_without_tls_is_refused() {
    let Some(base) = test_postgres() else { return };
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("pinned", &["127.0.0.1"]);
    let ca_file = ca.write_ca(dir.path(), "ca.pem");
    let args = os(&["--store", &base, "--store-ca", ca_file.to_str().unwrap()]);
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let (code, stderr) = serve_fails(dir.path(), &args);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("does not offer TLS"), "{stderr}");

    // sslmode=disable contradicts --store-ca; --store-via without it is a
    // usage error.
    let disabled = format!("{base}?sslmode=disable");
    let args = os(&[
        "--store",
        &disabled,
        "--store-ca",
        ca_file.to_str().unwrap(),
    ]);
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let (code, stderr) = serve_fails(dir.path(), &args);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("sslmode=disable"), "{stderr}");
    let args = os(&["--store", &base, "--store-via", "unix:///nonexistent.sock"]);
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let (code, stderr) = serve_fails(dir.path(), &args);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--store-via needs --store-ca"), "{stderr}");
}

/// A verifier pinned to another CA than the server's, or given a server
/// certificate for another name than the URL's host, stops at start (exit
/// 2) naming the certificate.
#[test]
fn another_ca_or_another_name_is_refused_at_start() {
    if test_postgres().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("server's", &["127.0.0.1"]);
    let cluster = tls_cluster(dir.path(), &ca);
    let other = TestCa::new("other", &["127.0.0.1"]).write_ca(dir.path(), "other-ca.pem");
    let args = os(&[
        "--store",
        &cluster.url,
        "--store-ca",
        other.to_str().unwrap(),
    ]);
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let (code, stderr) = serve_fails(dir.path(), &args);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("invalid peer certificate"), "{stderr}");
    assert!(stderr.contains("other-ca.pem"), "{stderr}");

    // The right CA but a certificate for another name: refused too.
    let misnamed = TestCa::new("misnamed", &["db.example"]);
    cluster.enable_tls(&misnamed.server_cert_pem, &misnamed.server_key_pem);
    let ca_file = misnamed.write_ca(dir.path(), "misnamed-ca.pem");
    let args = os(&[
        "--store",
        &cluster.url,
        "--store-ca",
        ca_file.to_str().unwrap(),
    ]);
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let (code, stderr) = serve_fails(dir.path(), &args);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("not valid for name"), "{stderr}");
}

/// Released and refused by real verifiers (simulated enclaves).
#[cfg(feature = "test-roots")]
mod serving {
    use super::*;
    use common::{create_owned, good_pcrs, policy_toml, release_at, spawn, Enclave};
    use hermetic_approval::Signer;
    use hermetic_transport::Endpoint;
    use hermetic_verifier::client::{AdminClient, HttpClient};

    const VALUE: &[u8] = b"tls-only value 5e1d";

    /// Starts a verifier on `url` with `extra`, stores a secret, and asks for
    /// its release as a simulated enclave; returns what was released.
    async fn serve_and_release(dir: &Path, url: &str, extra: &[&str]) -> (u16, Option<Vec<u8>>) {
        let enclave = Enclave::new();
        let root = enclave.write_root(dir);
        let mut args = os(&["--trust-root", root.to_str().unwrap(), "--store", url]);
        args.extend(os(extra));
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let data = dir.join("replica");
        let server = spawn(&data, &args);
        let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
        let admin = AdminClient::new(&format!("http://{}", server.admin), token.trim());
        let owner = Signer::generate("owner").unwrap();
        let policy = policy_toml("api-key", &good_pcrs(), "");
        create_owned(&admin, &owner, "api-key", Some(policy), VALUE).await;
        release_at(&HttpClient::default(), &server, &enclave, "api-key").await
    }

    /// `--store-ca`: the verifier talks TLS to the server its CA issued.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tls_to_the_pinned_ca_serves_a_release() {
        if test_postgres().is_none() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("pinned", &["127.0.0.1"]);
        let cluster = tls_cluster(dir.path(), &ca);
        let pinned = ca.write_ca(dir.path(), "ca.pem");
        let (status, value) = serve_and_release(
            dir.path(),
            &cluster.url,
            &["--store-ca", pinned.to_str().unwrap()],
        )
        .await;
        assert_eq!((status, value.as_deref()), (200, Some(VALUE)));
    }

    /// What the parent relayed, as (direction, bytes) items: the
    /// SSLRequest, the `S`, or one TLS record (panics on anything else).
    fn parse_capture(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let ssl_request = hermetic_parent::postgres::SSL_REQUEST;
        let mut items = Vec::new();
        while let Some((&direction, rest)) = bytes.split_first() {
            assert!(direction == b'>' || direction == b'<');
            let len = if direction == b'>' && rest.starts_with(&ssl_request) {
                ssl_request.len()
            } else if direction == b'<' && rest.first() == Some(&b'S') {
                1
            } else {
                assert!(
                    (20..=23).contains(&rest[0]),
                    "not a TLS record: {rest:02x?}"
                );
                5 + usize::from(u16::from_be_bytes([rest[3], rest[4]]))
            };
            items.push((direction, rest[..len].to_vec()));
            bytes = &rest[len..];
        }
        items
    }

    /// Starts the parent's proxy allowing `db` as PostgreSQL, capturing.
    async fn parent(dir: &Path, db: Endpoint) -> (Endpoint, PathBuf) {
        let listen: Endpoint = format!("unix://{}", dir.join("parent.sock").display())
            .parse()
            .unwrap();
        let mut config = hermetic_parent::Config::new(listen, vec![]);
        config.allow_postgres = vec![db];
        let capture = dir.join("capture.bin");
        config.capture = Some(capture.clone());
        let proxy = hermetic_parent::Proxy::bind(config).await.unwrap();
        let endpoint = proxy.local_endpoint();
        tokio::spawn(proxy.run(std::future::pending()));
        (endpoint, capture)
    }

    /// `--store-via`: every database connection crosses the parent, which
    /// sees only the SSLRequest, the `S` and TLS records: no SQL, no row, no
    /// user name in plaintext. The attacker: the parent's operator makes the
    /// allowed destination a PostgreSQL whose certificate is from another CA
    /// than the one pinned; the verifier refuses it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn through_the_parent_only_tls_crosses_and_another_ca_is_refused() {
        if test_postgres().is_none() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("pinned", &["127.0.0.1"]);
        let cluster = tls_cluster(dir.path(), &ca);
        let pinned = ca.write_ca(dir.path(), "ca.pem");
        let db: Endpoint = format!("tcp://127.0.0.1:{}", cluster.port())
            .parse()
            .unwrap();
        let (via, capture) = parent(dir.path(), db).await;
        let (status, value) = serve_and_release(
            dir.path(),
            &cluster.url,
            &[
                "--store-ca",
                pinned.to_str().unwrap(),
                "--store-via",
                &via.to_string(),
            ],
        )
        .await;
        assert_eq!((status, value.as_deref()), (200, Some(VALUE)));

        let captured = std::fs::read(&capture).unwrap();
        let items = parse_capture(&captured);
        let requests = items
            .iter()
            .filter(|(d, b)| *d == b'>' && b.len() == 8)
            .count();
        assert!(requests >= 1, "no SSLRequest relayed");
        let records = items.iter().filter(|(_, b)| b.len() >= 5).count();
        assert!(records > 10, "only {records} TLS records relayed");
        for plain in [
            &b"hermetic_rows"[..],
            b"SELECT",
            b"INSERT",
            b"hermetic-verifier",
            b"user\0",
            VALUE,
        ] {
            assert!(
                !captured.windows(plain.len()).any(|w| w == plain),
                "{:?} crossed the parent in plaintext",
                String::from_utf8_lossy(plain)
            );
        }

        // The attacker's destination: the verifier pinned to its own CA, the
        // server behind the allowed destination holding another CA's
        // certificate (for the right name).
        let rogue = TestCa::new("rogue", &["127.0.0.1"]);
        cluster.enable_tls(&rogue.server_cert_pem, &rogue.server_key_pem);
        let args = os(&[
            "--store",
            &cluster.url,
            "--store-ca",
            pinned.to_str().unwrap(),
            "--store-via",
            &via.to_string(),
        ]);
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let (code, stderr) = serve_fails(dir.path(), &args);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains("invalid peer certificate"), "{stderr}");
    }
}
