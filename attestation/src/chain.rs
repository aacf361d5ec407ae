//! The certificate chain: root pinning, per-certificate validity and
//! constraints (x509-parser), and path validation (rustls-webpki).
//!
//! nsm-api docs/attestation_process.md §3.2.3: the bundle is ordered
//! `[ROOT, INTERM_1, ..., INTERM_N]` and the path to validate is
//! `[TARGET, INTERM_N, ..., INTERM_1, ROOT]`; every certificate, the root
//! included, must be valid at the verification time; CA certificates carry
//! a critical basicConstraints with cA and keyCertSign; the target carries
//! digitalSignature and no pathLenConstraint; no CRLs are used.

use aws_lc_rs::digest::{digest, SHA256};
use rustls_pki_types::{CertificateDer, UnixTime};
use webpki::{EndEntityCert, KeyPurposeIdIter};
use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::{OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384};
use x509_parser::prelude::FromDer;

use crate::time::rfc3339;
use crate::{CertRole, Error};

/// The only signature algorithm in the Nitro PKI: ecdsa-with-SHA384 by P-384 keys.
static SUPPORTED_ALGS: &[&dyn rustls_pki_types::SignatureVerificationAlgorithm] =
    &[webpki::aws_lc_rs::ECDSA_P384_SHA384];

/// What the report shows of each certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub role: CertRole,
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    /// Seconds since the Unix epoch.
    pub not_before: i64,
    pub not_after: i64,
    /// Lower-case hex SHA-256 of the DER.
    pub sha256: String,
}

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

/// One parsed certificate of the chain.
pub(crate) struct Parsed<'a> {
    pub role: CertRole,
    pub der: &'a [u8],
    pub cert: X509Certificate<'a>,
}

impl<'a> Parsed<'a> {
    pub fn new(role: CertRole, der: &'a [u8]) -> Result<Self, Error> {
        let (rest, cert) =
            X509Certificate::from_der(der).map_err(|e| Error::MalformedCertificate {
                role,
                detail: e.to_string(),
            })?;
        if !rest.is_empty() {
            return Err(Error::MalformedCertificate {
                role,
                detail: format!("{} trailing byte(s) after the certificate", rest.len()),
            });
        }
        Ok(Parsed { role, der, cert })
    }

    pub fn info(&self) -> CertInfo {
        CertInfo {
            role: self.role,
            subject: self.cert.subject().to_string(),
            issuer: self.cert.issuer().to_string(),
            serial: self.cert.raw_serial_as_string(),
            not_before: self.cert.validity().not_before.timestamp(),
            not_after: self.cert.validity().not_after.timestamp(),
            sha256: hex::encode(sha256(self.der)),
        }
    }

    /// RFC 5280 §4.1.2.5: valid from notBefore to notAfter, both inclusive.
    pub fn check_validity(&self, at: UnixTime) -> Result<(), Error> {
        let t = i64::try_from(at.as_secs()).map_err(|_| Error::InvalidTime)?;
        let v = self.cert.validity();
        if t < v.not_before.timestamp() {
            return Err(Error::CertificateNotYetValid {
                role: self.role,
                not_before: rfc3339(v.not_before.timestamp()),
                at: rfc3339(t),
            });
        }
        if t > v.not_after.timestamp() {
            return Err(Error::CertificateExpired {
                role: self.role,
                not_after: rfc3339(v.not_after.timestamp()),
                at: rfc3339(t),
            });
        }
        Ok(())
    }

    /// §3.2.3.2/3 for a CA certificate with `below` CA certificates under it
    /// (the leaf not counted).
    pub fn check_ca(&self, below: usize) -> Result<(), Error> {
        let role = self.role;
        let bc = self
            .cert
            .basic_constraints()
            .map_err(|_| constraint(role, "duplicate basicConstraints extension"))?
            .ok_or(constraint(role, "CA certificate without basicConstraints"))?;
        if !bc.critical {
            return Err(constraint(role, "basicConstraints is not critical"));
        }
        if !bc.value.ca {
            return Err(constraint(role, "basicConstraints does not assert cA"));
        }
        if let Some(limit) = bc.value.path_len_constraint {
            if below > limit as usize {
                return Err(constraint(role, "pathLenConstraint exceeded"));
            }
        }
        let ku = self
            .cert
            .key_usage()
            .map_err(|_| constraint(role, "duplicate keyUsage extension"))?
            .ok_or(constraint(role, "CA certificate without keyUsage"))?;
        if !ku.value.key_cert_sign() {
            return Err(constraint(role, "keyUsage lacks keyCertSign"));
        }
        Ok(())
    }

    /// §3.2.3.3 for the target certificate.
    pub fn check_leaf(&self) -> Result<(), Error> {
        let role = self.role;
        if let Some(bc) = self
            .cert
            .basic_constraints()
            .map_err(|_| constraint(role, "duplicate basicConstraints extension"))?
        {
            if bc.value.ca {
                return Err(constraint(role, "leaf certificate asserts cA"));
            }
            if bc.value.path_len_constraint.is_some() {
                return Err(constraint(role, "leaf certificate has a pathLenConstraint"));
            }
        }
        let ku = self
            .cert
            .key_usage()
            .map_err(|_| constraint(role, "duplicate keyUsage extension"))?
            .ok_or(constraint(role, "leaf certificate without keyUsage"))?;
        if !ku.value.digital_signature() {
            return Err(constraint(role, "keyUsage lacks digitalSignature"));
        }
        Ok(())
    }

    /// The leaf's P-384 public key as an uncompressed SEC1 point.
    pub fn p384_point(&self) -> Result<&[u8], Error> {
        let spki = self.cert.public_key();
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        if spki.algorithm.algorithm != OID_KEY_TYPE_EC_PUBLIC_KEY || curve != Some(OID_NIST_EC_P384)
        {
            return Err(Error::UnsupportedLeafKey);
        }
        Ok(spki.subject_public_key.data.as_ref())
    }
}

fn constraint(role: CertRole, reason: &'static str) -> Error {
    Error::ChainConstraint { role, reason }
}

/// Nitro leaf certificates carry no extendedKeyUsage, and the document
/// signature is no TLS use: any EKU (or none) is acceptable.
struct AnyEku;

impl webpki::ExtendedKeyUsageValidator for AnyEku {
    fn validate(&self, _iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        Ok(())
    }
}

/// Validates the path leaf → `intermediates[n-1]` → … → `intermediates[0]`
/// → `anchor` with `anchor` as the only trust anchor, and insists that
/// webpki used exactly those certificates in that order (so that the chain
/// cache, which later trusts the last certificate directly, can never
/// disagree with a full validation).
pub(crate) fn verify_path(
    anchor: (CertRole, &[u8]),
    intermediates: &[&[u8]],
    leaf: &[u8],
    at: UnixTime,
) -> Result<(), Error> {
    let (anchor_role, anchor_der) = anchor;
    let anchor_der = CertificateDer::from(anchor_der);
    let anchor =
        webpki::anchor_from_trusted_cert(&anchor_der).map_err(|e| Error::MalformedCertificate {
            role: anchor_role,
            detail: format!("{e:?}"),
        })?;
    let intermediates: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .map(|d| CertificateDer::from(*d))
        .collect();
    let leaf = CertificateDer::from(leaf);
    let ee = EndEntityCert::try_from(&leaf).map_err(|e| Error::MalformedCertificate {
        role: CertRole::Leaf,
        detail: format!("{e:?}"),
    })?;
    let expected_order = |path: &webpki::VerifiedPath<'_>| -> Result<(), webpki::Error> {
        let used: Vec<_> = path.intermediate_certificates().map(|c| c.der()).collect();
        let in_bundle_order = used.len() == intermediates.len()
            && used
                .iter()
                .zip(intermediates.iter().rev())
                .all(|(u, b)| u.as_ref() == b.as_ref());
        if in_bundle_order {
            Ok(())
        } else {
            Err(webpki::Error::UnknownIssuer)
        }
    };
    ee.verify_for_usage(
        SUPPORTED_ALGS,
        &[anchor],
        &intermediates,
        at,
        AnyEku,
        None,
        Some(&expected_order),
    )
    .map(|_| ())
    .map_err(|e| Error::ChainInvalid(webpki_reason(&e)))
}

fn webpki_reason(e: &webpki::Error) -> String {
    match e {
        webpki::Error::UnknownIssuer => {
            "the certificates do not chain, in cabundle order, from the leaf to cabundle[0]".into()
        }
        webpki::Error::InvalidSignatureForPublicKey => {
            "a certificate's signature does not verify with its issuer's key".into()
        }
        other => format!("{other:?}"),
    }
}
