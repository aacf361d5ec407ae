//! The enclave's TLS client: rustls with the ring provider, trusting only
//! the pinned verifier CA (no system roots: the enclave image decides whom
//! it talks to).

use std::sync::Arc;

use hermetic_transport::Stream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::FetchError;

#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("the pinned CA file holds no certificate")]
    NoCertificate,
    #[error("the pinned CA file is not valid PEM: {0}")]
    Pem(String),
    #[error("the pinned CA is not a usable trust anchor: {0}")]
    Anchor(String),
    #[error("TLS setup: {0}")]
    Rustls(String),
}

/// A client configuration trusting exactly the CA certificates in `ca_pem`.
pub fn pinned_client_config(ca_pem: &[u8]) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| TlsConfigError::Pem(e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| TlsConfigError::Anchor(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(TlsConfigError::NoCertificate);
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsConfigError::Rustls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

pub(super) async fn handshake(
    config: Arc<ClientConfig>,
    server_name: &str,
    stream: Stream,
) -> Result<TlsStream<Stream>, FetchError> {
    let name = ServerName::try_from(server_name.to_string()).map_err(|_| {
        FetchError::Handshake(format!("{server_name:?} is not a valid server name"))
    })?;
    TlsConnector::from(config)
        .connect(name, stream)
        .await
        .map_err(
            |e| match hermetic_identity::AttestedServerVerifier::refusal(&e) {
                Some(refusal) => FetchError::VerifierIdentity(refusal),
                None => FetchError::Handshake(e.to_string()),
            },
        )
}
