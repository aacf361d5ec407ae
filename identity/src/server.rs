//! The serving side of the identity: a TLS key made in memory at start
//! (never written anywhere), its certificate, the document that binds it,
//! and a rustls certificate resolver that always hands out the current
//! certificate with the current document.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use hermetic_nsm::{AttestationRequest, Nsm, NsmError};
use rcgen::{CertificateParams, Issuer, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::binding::{expected_user_data, INTAKE_KEY_LEN};

/// How often the verifier asks for a new document. An NSM leaf certificate
/// lives three hours (nsm-api docs/attestation_process.md §3.2), clients
/// accept documents up to [`crate::MAX_DOCUMENT_AGE`] (two hours) old: one
/// refresh may fail and clients still connect.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum ServerIdentityError {
    #[error("the verifier's TLS key or certificate: {0}")]
    Certificate(String),
    #[error("the verifier's NSM refused its attestation: {0}")]
    Nsm(#[from] NsmError),
}

/// A CA that issues the verifier's certificate (for clients that pin a CA
/// besides the measurements); without one the certificate is self-signed.
pub struct CertIssuer {
    pub cert_pem: String,
    pub key_pem: String,
}

struct Current {
    certified: Arc<CertifiedKey>,
    document: Arc<Vec<u8>>,
}

/// The verifier's attested TLS identity.
pub struct AttestedTls {
    intake_key: [u8; INTAKE_KEY_LEN],
    spki: Vec<u8>,
    cert_chain: Vec<CertificateDer<'static>>,
    signing_key: Arc<dyn rustls::sign::SigningKey>,
    current: RwLock<Current>,
}

impl std::fmt::Debug for AttestedTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttestedTls")
            .field("intake_key", &hex::encode(self.intake_key))
            .finish_non_exhaustive()
    }
}

fn cert_err(e: impl std::fmt::Display) -> ServerIdentityError {
    ServerIdentityError::Certificate(e.to_string())
}

impl AttestedTls {
    /// Makes a P-256 key, a certificate for `names` (self-signed, or issued
    /// by `issuer`), and the first document binding it and `intake_key`.
    pub fn new(
        nsm: &dyn Nsm,
        intake_key: [u8; INTAKE_KEY_LEN],
        names: &[String],
        issuer: Option<&CertIssuer>,
        provider: &CryptoProvider,
    ) -> Result<Self, ServerIdentityError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(cert_err)?;
        let mut params = CertificateParams::new(names.to_vec()).map_err(cert_err)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "hermetic attested verifier");
        let mut chain = Vec::new();
        let cert = match issuer {
            None => params.self_signed(&key).map_err(cert_err)?,
            Some(ca) => {
                let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(cert_err)?;
                let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key).map_err(cert_err)?;
                let cert = params.signed_by(&key, &issuer).map_err(cert_err)?;
                let ca_der =
                    rustls_pki_types::pem::PemObject::from_pem_slice(ca.cert_pem.as_bytes())
                        .map_err(|e: rustls_pki_types::pem::Error| cert_err(e))?;
                chain.push(ca_der);
                cert
            }
        };
        let spki = crate::check::spki_of(cert.der()).map_err(cert_err)?;
        chain.insert(0, cert.der().clone());
        let pkcs8 = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signing_key = provider
            .key_provider
            .load_private_key(pkcs8)
            .map_err(cert_err)?;
        let document = attest(nsm, &spki, &intake_key)?;
        let current = Current {
            certified: Arc::new(certified(&chain, &signing_key, &document)),
            document: Arc::new(document),
        };
        Ok(AttestedTls {
            intake_key,
            spki,
            cert_chain: chain,
            signing_key,
            current: RwLock::new(current),
        })
    }

    /// Asks the NSM for a new document for the same key and swaps it in;
    /// connections from now on get it. On failure the old one stays.
    pub fn refresh(&self, nsm: &dyn Nsm) -> Result<(), ServerIdentityError> {
        let document = attest(nsm, &self.spki, &self.intake_key)?;
        let next = Current {
            certified: Arc::new(certified(&self.cert_chain, &self.signing_key, &document)),
            document: Arc::new(document),
        };
        match self.current.write() {
            Ok(mut slot) => *slot = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
        Ok(())
    }

    /// The current document (public).
    pub fn document(&self) -> Arc<Vec<u8>> {
        match self.current.read() {
            Ok(c) => c.document.clone(),
            Err(poisoned) => poisoned.into_inner().document.clone(),
        }
    }

    /// The certificate the verifier presents (DER).
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.cert_chain[0]
    }

    pub fn intake_key(&self) -> [u8; INTAKE_KEY_LEN] {
        self.intake_key
    }
}

/// The certificate chain and key, with the document in the certificate
/// status slot (see the crate documentation).
fn certified(
    chain: &[CertificateDer<'static>],
    key: &Arc<dyn rustls::sign::SigningKey>,
    document: &[u8],
) -> CertifiedKey {
    let mut certified = CertifiedKey::new(chain.to_vec(), key.clone());
    certified.ocsp = Some(document.to_vec());
    certified
}

fn attest(
    nsm: &dyn Nsm,
    spki: &[u8],
    intake_key: &[u8; INTAKE_KEY_LEN],
) -> Result<Vec<u8>, ServerIdentityError> {
    Ok(nsm.attestation(&AttestationRequest {
        user_data: Some(expected_user_data(spki, intake_key)),
        nonce: None,
        public_key: Some(intake_key.to_vec()),
    })?)
}

impl ResolvesServerCert for AttestedTls {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        match self.current.read() {
            Ok(c) => Some(c.certified.clone()),
            Err(poisoned) => Some(poisoned.into_inner().certified.clone()),
        }
    }
}
