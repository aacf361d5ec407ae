//! Whom the enclave accepts as its verifier: a CA-issued certificate
//! (`--verifier-ca`), an attested verifier enclave of pinned measurements
//! (`--verifier-measurements`, checked by `hermetic-identity` during the
//! handshake, before any request byte), or both at once.

use std::sync::Arc;

use hermetic_attestation::{TrustedRoot, Verifier};
use hermetic_identity::{AttestedServerVerifier, Pins};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use super::{pinned_client_config, FetchConfig, TlsConfigError};

/// The verifier enclave's pinned measurements and the roots its documents
/// must chain to (empty: the pinned AWS Nitro root).
#[derive(Debug, Clone)]
pub struct VerifierPins {
    pub pins: Pins,
    pub roots: Vec<TrustedRoot>,
}

fn ca_store(ca_pem: &[u8]) -> Result<RootCertStore, TlsConfigError> {
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
    Ok(roots)
}

/// The TLS client configuration `cfg` asks for.
pub fn client_config(cfg: &FetchConfig) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let Some(identity) = &cfg.verifier_identity else {
        return match &cfg.ca_pem {
            Some(ca) => pinned_client_config(ca),
            None => Err(TlsConfigError::Rustls(
                "neither a verifier CA nor verifier measurements are pinned".into(),
            )),
        };
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let attestation = if identity.roots.is_empty() {
        Verifier::aws().map_err(|e| TlsConfigError::Anchor(e.to_string()))?
    } else {
        Verifier::new(identity.roots.clone())
    };
    let mut verifier =
        AttestedServerVerifier::new(identity.pins.clone(), attestation, provider.clone());
    if let Some(ca) = &cfg.ca_pem {
        let webpki =
            WebPkiServerVerifier::builder_with_provider(Arc::new(ca_store(ca)?), provider.clone())
                .build()
                .map_err(|e| TlsConfigError::Anchor(e.to_string()))?;
        verifier = verifier.with_ca(webpki);
    }
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsConfigError::Rustls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}
