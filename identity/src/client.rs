//! The check of [`crate::check`] as a rustls `ServerCertVerifier`: a
//! client configured with it completes a handshake only with a verifier
//! enclave of the pinned measurements whose document binds the very key
//! that signs the handshake.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hermetic_attestation::Verifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{CertificateError, DigitallySignedStruct, Error, OtherError, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::check::{check_identity, spki_of, IdentityError, VerifierIdentity, MAX_DOCUMENT_AGE};
use crate::pins::Pins;

/// A `ServerCertVerifier` for attested verifiers.
///
/// With a CA verifier as well (`--verifier-ca` besides
/// `--verifier-measurements`), the certificate must also chain to that CA
/// for the server name: both checks must pass, the attestation first (so a
/// verifier of other measurements is refused for that reason even when its
/// certificate comes from the right CA).
#[derive(Debug)]
pub struct AttestedServerVerifier {
    pins: Pins,
    attestation: Verifier,
    max_age: Duration,
    ca: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    accepted: Mutex<Option<VerifierIdentity>>,
}

impl AttestedServerVerifier {
    /// `attestation` holds the trusted roots (the pinned AWS root in
    /// production).
    pub fn new(pins: Pins, attestation: Verifier, provider: Arc<CryptoProvider>) -> Self {
        AttestedServerVerifier {
            pins,
            attestation,
            max_age: MAX_DOCUMENT_AGE,
            ca: None,
            provider,
            accepted: Mutex::new(None),
        }
    }

    /// Also require a chain to a CA (see the type's documentation).
    pub fn with_ca(mut self, ca: Arc<WebPkiServerVerifier>) -> Self {
        self.ca = Some(ca);
        self
    }

    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// The identity of the last server accepted (its intake key, PCRs).
    pub fn accepted(&self) -> Option<VerifierIdentity> {
        self.accepted.lock().map(|g| g.clone()).unwrap_or(None)
    }

    /// The identity refusal inside an error a handshake failed with, if
    /// that is why it failed (an `io::Error` from tokio-rustls wraps the
    /// `rustls::Error` that wraps it).
    pub fn refusal(error: &(dyn std::error::Error + 'static)) -> Option<IdentityError> {
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(e) = current {
            if let Some(Error::InvalidCertificate(CertificateError::Other(other))) =
                e.downcast_ref::<Error>()
            {
                return other.0.downcast_ref::<IdentityError>().cloned();
            }
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if let Some(inner) = io.get_ref() {
                    current = Some(inner);
                    continue;
                }
            }
            current = e.source();
        }
        None
    }
}

fn refuse(e: IdentityError) -> Error {
    Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
}

impl ServerCertVerifier for AttestedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let spki = spki_of(end_entity).map_err(refuse)?;
        let identity = check_identity(
            ocsp_response,
            &spki,
            &self.pins,
            &self.attestation,
            now,
            self.max_age,
        )
        .map_err(refuse)?;
        if let Some(ca) = &self.ca {
            // The document is not an OCSP response: the CA check gets none.
            ca.verify_server_cert(end_entity, intermediates, server_name, &[], now)?;
        }
        if let Ok(mut slot) = self.accepted.lock() {
            *slot = Some(identity);
        }
        Ok(ServerCertVerified::assertion())
    }

    // The handshake signature must come from the key the document binds
    // (the end-entity certificate's, checked above).
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
