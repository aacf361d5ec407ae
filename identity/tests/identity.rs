//! The attested identity end to end over loopback TLS: a server made with
//! `server::AttestedTls` (simulated NSM), a client with
//! `AttestedServerVerifier`, and the attacker's cases (other measurements,
//! debug mode, a proxy presenting the genuine document with its own key, a
//! stale document), all on a clock the test sets.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hermetic_attestation::simulator::TestPki;
use hermetic_attestation::{TrustedRoot, UnixTime, Verifier};
use hermetic_identity::server::{AttestedTls, CertIssuer};
use hermetic_identity::{check_identity, AttestedServerVerifier, IdentityError, Pins};
use hermetic_nsm::{FixedClock, Measurements, SimulatedNsm, SimulatorOptions};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::time_provider::TimeProvider;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// 2026-01-15T12:00:00Z.
const T0_MS: u64 = 1_768_478_400_000;
const PCR0: &str = "389993a52ed931f3f602db7ea2ac4570b7b866de97cf4265113d09d1866dc053b556412e617b55b36c6663a8fca4a702";
const OTHER_PCR0: &str = "111193a52ed931f3f602db7ea2ac4570b7b866de97cf4265113d09d1866dc053b556412e617b55b36c6663a8fca4a702";
const PCR1: &str = "52c54c1ca2c2a4d46e2a0ac8c3f22d8897db2e8eadfc74789a295b1e783f6aab6b74345f7170e1379578cd08ae6121b5";
const PCR2: &str = "786c40a9643791cb5395c93a4b83ef80b89b29bdf67df421e938fbae5f3bcbf1ca7962c63ec7bfd22412512745c215bd";
const INTAKE: [u8; 32] = [9u8; 32];

fn describe(pcr0: &str) -> String {
    format!(
        r#"{{"Measurements": {{"HashAlgorithm": "Sha384 {{ ... }}", "PCR0": "{pcr0}", "PCR1": "{PCR1}", "PCR2": "{PCR2}"}}}}"#
    )
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

struct Sim {
    pki: TestPki,
    nsm: SimulatedNsm,
}

fn copy(pki: &TestPki) -> TestPki {
    TestPki::from_pem_bundle(&pki.to_pem_bundle()).unwrap()
}

fn sim(pki: &TestPki, pcr0: &str, debug_mode: bool) -> Sim {
    let options = SimulatorOptions {
        measurements: Some(Measurements::from_json(&describe(pcr0)).unwrap()),
        debug_mode,
    };
    let nsm = SimulatedNsm::with_pki(copy(pki), options, Arc::new(FixedClock::new(T0_MS))).unwrap();
    Sim {
        pki: copy(pki),
        nsm,
    }
}

fn pins(dir: &Path) -> Pins {
    let file = dir.join("verifier.json");
    std::fs::write(&file, describe(PCR0)).unwrap();
    Pins::from_file(&file).unwrap()
}

fn roots(pki: &TestPki) -> Verifier {
    Verifier::new(vec![TrustedRoot::from_der(pki.root_der()).unwrap()])
}

#[derive(Debug)]
struct At(u64);
impl TimeProvider for At {
    fn current_time(&self) -> Option<UnixTime> {
        Some(UnixTime::since_unix_epoch(Duration::from_millis(self.0)))
    }
}

/// Serves one TLS connection with `config`, answering "ok" to one line.
async fn serve_once(config: ServerConfig) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        if let Ok(mut tls) = acceptor.accept(tcp).await {
            let mut buf = [0u8; 5];
            if tls.read_exact(&mut buf).await.is_ok() {
                let _ = tls.write_all(b"ok").await;
                let _ = tls.shutdown().await;
            }
        }
    });
    addr
}

fn server_config(resolver: Arc<dyn rustls::server::ResolvesServerCert>) -> ServerConfig {
    ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(resolver)
}

/// Connects with `verifier` at `now_ms`; the identity refusal, if any.
async fn connect(
    addr: std::net::SocketAddr,
    verifier: Arc<AttestedServerVerifier>,
    now_ms: u64,
) -> Result<(), Option<IdentityError>> {
    let config = ClientConfig::builder_with_details(provider(), Arc::new(At(now_ms)))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("verifier.test").unwrap();
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| AttestedServerVerifier::refusal(&e))?;
    tls.write_all(b"hello").await.unwrap();
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer).await.unwrap();
    assert_eq!(answer, b"ok");
    Ok(())
}

fn names() -> Vec<String> {
    vec!["verifier.test".into()]
}

#[tokio::test]
async fn a_pinned_verifier_is_accepted_and_its_intake_key_learned() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate((T0_MS / 1000) as i64).unwrap();
    let s = sim(&pki, PCR0, false);
    let tls = Arc::new(AttestedTls::new(&s.nsm, INTAKE, &names(), None, &provider()).unwrap());
    let addr = serve_once(server_config(tls.clone())).await;
    let verifier = Arc::new(AttestedServerVerifier::new(
        pins(dir.path()),
        roots(&s.pki),
        provider(),
    ));
    connect(addr, verifier.clone(), T0_MS + 1000).await.unwrap();
    let identity = verifier.accepted().expect("accepted");
    assert_eq!(identity.intake_key, INTAKE);
    assert_eq!(hex::encode(&identity.pcrs[&0]), PCR0);

    // A refresh swaps in a new document for the same key.
    let before = tls.document();
    tls.refresh(&s.nsm).unwrap();
    assert_ne!(before, tls.document());
}

#[tokio::test]
async fn other_measurements_are_refused_even_with_a_certificate_of_the_right_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate((T0_MS / 1000) as i64).unwrap();
    let s = sim(&pki, OTHER_PCR0, false);
    // A TLS CA the client also pins, issuing the verifier's certificate.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = CertIssuer {
        cert_pem: ca.pem(),
        key_pem: ca_key.serialize_pem(),
    };
    let mut store = RootCertStore::empty();
    store.add(ca.der().clone()).unwrap();
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider())
        .build()
        .unwrap();
    let new_client = || {
        Arc::new(
            AttestedServerVerifier::new(pins(dir.path()), roots(&s.pki), provider())
                .with_ca(webpki.clone()),
        )
    };

    let other = AttestedTls::new(&s.nsm, INTAKE, &names(), Some(&issuer), &provider()).unwrap();
    let addr = serve_once(server_config(Arc::new(other))).await;
    let err = connect(addr, new_client(), T0_MS + 1000)
        .await
        .unwrap_err()
        .unwrap();
    assert_eq!(err.reason(), "verifier_measurements_mismatch", "{err}");
    assert!(
        err.to_string().contains("PCR0 is 111193a52ed931f3"),
        "{err}"
    );

    // The same CA and the pinned measurements: accepted (both checks pass).
    let good = sim(&pki, PCR0, false);
    let tls = AttestedTls::new(&good.nsm, INTAKE, &names(), Some(&issuer), &provider()).unwrap();
    let addr = serve_once(server_config(Arc::new(tls))).await;
    connect(addr, new_client(), T0_MS + 1000).await.unwrap();

    // Pinned measurements but a self-signed certificate: the CA refuses.
    let tls = AttestedTls::new(&good.nsm, INTAKE, &names(), None, &provider()).unwrap();
    let addr = serve_once(server_config(Arc::new(tls))).await;
    assert!(matches!(
        connect(addr, new_client(), T0_MS + 1000).await,
        Err(None)
    ));
}

#[tokio::test]
async fn a_debug_mode_verifier_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate((T0_MS / 1000) as i64).unwrap();
    let s = sim(&pki, PCR0, true);
    let tls = AttestedTls::new(&s.nsm, INTAKE, &names(), None, &provider()).unwrap();
    let addr = serve_once(server_config(Arc::new(tls))).await;
    let verifier = AttestedServerVerifier::new(pins(dir.path()), roots(&s.pki), provider());
    let err = connect(addr, Arc::new(verifier), T0_MS + 1000)
        .await
        .unwrap_err()
        .unwrap();
    assert_eq!(err.reason(), "verifier_debug_mode", "{err}");
}

/// A proxy (the parent, say) that terminates TLS with its own key and
/// staples the genuine verifier's current document.
#[derive(Debug)]
struct Proxy(Arc<rustls::sign::CertifiedKey>);
impl rustls::server::ResolvesServerCert for Proxy {
    fn resolve(
        &self,
        _: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

#[tokio::test]
async fn a_proxy_with_the_genuine_document_but_its_own_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate((T0_MS / 1000) as i64).unwrap();
    let s = sim(&pki, PCR0, false);
    let genuine = AttestedTls::new(&s.nsm, INTAKE, &names(), None, &provider()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(names())
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let signing = provider()
        .key_provider
        .load_private_key(rustls_pki_types::PrivateKeyDer::Pkcs8(
            key.serialize_der().into(),
        ))
        .unwrap();
    let mut certified = rustls::sign::CertifiedKey::new(vec![cert.der().clone()], signing);
    certified.ocsp = Some(genuine.document().to_vec());
    let addr = serve_once(server_config(Arc::new(Proxy(Arc::new(certified))))).await;
    let verifier = AttestedServerVerifier::new(pins(dir.path()), roots(&s.pki), provider());
    let err = connect(addr, Arc::new(verifier), T0_MS + 1000)
        .await
        .unwrap_err()
        .unwrap();
    assert_eq!(err.reason(), "verifier_key_not_bound", "{err}");

    // The genuine certificate replayed without its key cannot finish the
    // handshake: the signature check is rustls' own (CertificateVerify).
}

#[test]
fn stale_future_and_missing_documents_are_refused_at_the_time_passed_in() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate((T0_MS / 1000) as i64).unwrap();
    let s = sim(&pki, PCR0, false);
    let tls = AttestedTls::new(&s.nsm, INTAKE, &names(), None, &provider()).unwrap();
    let spki = x509_spki(tls.certificate());
    let doc = tls.document();
    let at = |ms: u64| UnixTime::since_unix_epoch(Duration::from_millis(ms));
    let check = |ms| {
        check_identity(
            &doc,
            &spki,
            &pins(dir.path()),
            &roots(&s.pki),
            at(ms),
            hermetic_identity::MAX_DOCUMENT_AGE,
        )
    };
    assert!(check(T0_MS + 2 * 3600 * 1000).is_ok());
    // Two hours and a second: the leaf (three hours) is still valid, the
    // document too old.
    let err = check(T0_MS + (2 * 3600 + 1) * 1000).unwrap_err();
    assert_eq!(err.reason(), "verifier_attestation_stale", "{err}");
    let err = check(T0_MS - 120 * 1000).unwrap_err();
    // Before the leaf's notBefore the chain already fails; either way refused.
    assert!(
        matches!(
            err,
            IdentityError::FromTheFuture { .. } | IdentityError::Attestation(_)
        ),
        "{err}"
    );
    let err = check_identity(
        &[],
        &spki,
        &pins(dir.path()),
        &roots(&s.pki),
        at(T0_MS),
        hermetic_identity::MAX_DOCUMENT_AGE,
    )
    .unwrap_err();
    assert_eq!(err.reason(), "verifier_not_attested");
    // A document from another root: invalid.
    let other = TestPki::generate((T0_MS / 1000) as i64).unwrap();
    let err = check_identity(
        &doc,
        &spki,
        &pins(dir.path()),
        &roots(&other),
        at(T0_MS),
        hermetic_identity::MAX_DOCUMENT_AGE,
    )
    .unwrap_err();
    assert_eq!(err.reason(), "verifier_attestation_invalid");
}

#[test]
fn pins_must_name_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pcr1-only.json");
    std::fs::write(
        &file,
        format!(r#"{{"Measurements": {{"PCR1": "{PCR1}"}}}}"#),
    )
    .unwrap();
    let err = Pins::from_file(&file).unwrap_err();
    assert!(err.to_string().contains("pins no image"), "{err}");
    assert!(Pins::from_file(&dir.path().join("absent.json")).is_err());
}

fn x509_spki(cert: &[u8]) -> Vec<u8> {
    let (_, c) = x509_parser::parse_x509_certificate(cert).unwrap();
    c.tbs_certificate.subject_pki.raw.to_vec()
}
