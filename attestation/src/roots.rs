//! Trust anchors. The AWS Nitro Enclaves Root-G1 certificate is embedded
//! and pinned by the SHA-256 of its DER, as AWS publishes it
//! (docs.aws.amazon.com/enclaves/latest/user/verify-root.html; the same
//! certificate ships in nsm-api's docs and in ../shared/vectors).

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::chain::sha256;

/// AWS Nitro Enclaves Root-G1 (CN=aws.nitro-enclaves, O=Amazon, OU=AWS, C=US;
/// P-384; valid 2019-10-28 to 2049-10-28).
pub const AWS_NITRO_ROOT_G1_PEM: &str = include_str!("aws_nitro_enclaves_root_g1.pem");

/// SHA-256 of the DER of [`AWS_NITRO_ROOT_G1_PEM`].
pub const AWS_NITRO_ROOT_G1_SHA256: [u8; 32] = [
    0x64, 0x1a, 0x03, 0x21, 0xa3, 0xe2, 0x44, 0xef, 0xe4, 0x56, 0x46, 0x31, 0x95, 0xd6, 0x06, 0x31,
    0x7e, 0xd7, 0xcd, 0xcc, 0x3c, 0x17, 0x56, 0xe0, 0x98, 0x93, 0xf3, 0xc6, 0x8f, 0x79, 0xbb, 0x5b,
];

/// A root certificate a document's `cabundle[0]` may be.
#[derive(Clone, PartialEq, Eq)]
pub struct TrustedRoot {
    der: Vec<u8>,
    sha256: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RootError {
    #[error("no PEM certificate found in the root file")]
    NoCertificate,
    #[error("the root file holds more than one certificate; give exactly one")]
    SeveralCertificates,
    #[error("the root file is not valid PEM: {0}")]
    Pem(String),
    #[error("the root certificate does not parse: {0}")]
    Certificate(String),
    #[error("the embedded AWS root does not match its pinned fingerprint")]
    PinMismatch,
}

impl TrustedRoot {
    /// The pinned AWS Nitro Enclaves root. Fails only if the embedded PEM
    /// was altered, which the fingerprint pin catches.
    pub fn aws_nitro() -> Result<Self, RootError> {
        let root = Self::from_pem(AWS_NITRO_ROOT_G1_PEM.as_bytes())?;
        if root.sha256 != AWS_NITRO_ROOT_G1_SHA256 {
            return Err(RootError::PinMismatch);
        }
        Ok(root)
    }

    /// One PEM certificate, e.g. a simulated NSM's test root.
    pub fn from_pem(pem: &[u8]) -> Result<Self, RootError> {
        let mut certs = CertificateDer::pem_slice_iter(pem);
        let first = certs
            .next()
            .ok_or(RootError::NoCertificate)?
            .map_err(|e| RootError::Pem(e.to_string()))?;
        if certs.next().is_some() {
            return Err(RootError::SeveralCertificates);
        }
        Self::from_der(first.as_ref())
    }

    pub fn from_der(der: &[u8]) -> Result<Self, RootError> {
        webpki::anchor_from_trusted_cert(&CertificateDer::from(der))
            .map_err(|e| RootError::Certificate(format!("{e:?}")))?;
        Ok(TrustedRoot {
            der: der.to_vec(),
            sha256: sha256(der),
        })
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    pub fn is_aws_nitro(&self) -> bool {
        self.sha256 == AWS_NITRO_ROOT_G1_SHA256
    }
}

impl std::fmt::Debug for TrustedRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TrustedRoot(sha256={})", hex::encode(self.sha256))
    }
}
