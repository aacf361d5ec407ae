//! A test PKI and document signer shaped like AWS's, for the simulated NSM,
//! the local demo and tests. Its root is never the AWS root: a verifier
//! accepts its documents only when told to trust [`TestPki::root_pem`].
//!
//! The shape copies what real documents carry (see ../shared/vectors): a
//! P-384 chain root → regional → zonal → instance, each CA with a critical
//! basicConstraints and keyCertSign, and a short-lived leaf (about three
//! hours) with digitalSignature that signs an untagged COSE_Sign1 whose
//! protected header is `{1: -35}`.

use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P384_SHA384_FIXED_SIGNING};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber, PKCS_ECDSA_P384_SHA384,
};

use crate::cose::{es384_protected_header, sig_structure, CoseSign1};
use crate::Document;

/// How long a simulated leaf certificate lives (real ones: about 3 hours).
pub const LEAF_LIFETIME: Duration = Duration::from_secs(3 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("signing failed")]
    Signing,
    #[error("test PKI bundle is malformed: {0}")]
    Bundle(String),
}

/// One CA level of the test PKI.
#[derive(Debug, Clone)]
pub struct Level {
    pub common_name: String,
    pub not_before: i64,
    pub not_after: i64,
    /// pathLenConstraint; `None` leaves it unconstrained.
    pub path_len: Option<u8>,
    pub key_cert_sign: bool,
}

struct Ca {
    key: KeyPair,
    der: Vec<u8>,
}

impl Ca {
    fn issuer(&self) -> Result<Issuer<'_, &KeyPair>, SimError> {
        Ok(Issuer::from_ca_cert_der(
            &self.der.as_slice().into(),
            &self.key,
        )?)
    }
}

/// A certificate authority chain root → … → instance CA, with its keys.
pub struct TestPki {
    cas: Vec<Ca>,
}

/// A leaf certificate and the PKCS#8 of its key.
pub struct Leaf {
    pub der: Vec<u8>,
    pkcs8: Vec<u8>,
}

fn datetime(secs: i64) -> Result<time::OffsetDateTime, SimError> {
    time::OffsetDateTime::from_unix_timestamp(secs).map_err(|e| SimError::Bundle(e.to_string()))
}

fn distinguished_name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "US");
    dn.push(DnType::OrganizationName, "Hermetic Simulated NSM");
    dn.push(DnType::OrganizationalUnitName, "TEST ONLY - not AWS");
    dn.push(DnType::CommonName, cn);
    dn
}

fn serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::SecureRandom::fill(&SystemRandom::new(), &mut bytes).ok();
    bytes[0] &= 0x7f; // positive INTEGER
    SerialNumber::from_slice(&bytes)
}

impl TestPki {
    /// The AWS-like default: a 30-year root, then regional, zonal and
    /// instance CAs that all cover `now` with room to spare.
    pub fn levels_around(now: i64) -> Vec<Level> {
        const DAY: i64 = 86_400;
        let level = |cn: &str, back: i64, fwd: i64, path_len: Option<u8>| Level {
            common_name: cn.into(),
            not_before: now - back,
            not_after: now + fwd,
            path_len,
            key_cert_sign: true,
        };
        vec![
            level("simulated.nitro-enclaves", 365 * DAY, 30 * 365 * DAY, None),
            level(
                "regional.simulated.nitro-enclaves",
                30 * DAY,
                30 * DAY,
                Some(2),
            ),
            level("zonal.simulated.nitro-enclaves", 7 * DAY, 7 * DAY, Some(1)),
            level(
                "instance.simulated.nitro-enclaves",
                2 * DAY,
                2 * DAY,
                Some(0),
            ),
        ]
    }

    /// A fresh AWS-shaped PKI valid around `now` (seconds since the epoch).
    pub fn generate(now: i64) -> Result<Self, SimError> {
        Self::generate_with(&Self::levels_around(now))
    }

    /// A PKI with the given CA levels, root first.
    pub fn generate_with(levels: &[Level]) -> Result<Self, SimError> {
        let mut cas: Vec<Ca> = Vec::with_capacity(levels.len());
        for level in levels {
            let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384)?;
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params.distinguished_name = distinguished_name(&level.common_name);
            params.not_before = datetime(level.not_before)?;
            params.not_after = datetime(level.not_after)?;
            params.serial_number = Some(serial());
            params.is_ca = IsCa::Ca(match level.path_len {
                Some(n) => BasicConstraints::Constrained(n),
                None => BasicConstraints::Unconstrained,
            });
            params.key_usages = if level.key_cert_sign {
                vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign]
            } else {
                vec![KeyUsagePurpose::DigitalSignature]
            };
            let cert = match cas.last() {
                None => params.self_signed(&key)?,
                Some(parent) => params.signed_by(&key, &parent.issuer()?)?,
            };
            cas.push(Ca {
                key,
                der: cert.der().to_vec(),
            });
        }
        if cas.is_empty() {
            return Err(SimError::Bundle("a PKI needs at least a root".into()));
        }
        Ok(TestPki { cas })
    }

    /// The root certificate as PEM: what a verifier must be told to trust.
    pub fn root_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.cas[0].der)
    }

    pub fn root_der(&self) -> &[u8] {
        &self.cas[0].der
    }

    /// The document's `cabundle`: root first, instance CA last.
    pub fn cabundle(&self) -> Vec<Vec<u8>> {
        self.cas.iter().map(|c| c.der.clone()).collect()
    }

    /// Issues a leaf valid from `not_before` to `not_after`, signed by the
    /// last CA, named after `module_id` as AWS names its leaves.
    pub fn issue_leaf(
        &self,
        module_id: &str,
        not_before: i64,
        not_after: i64,
    ) -> Result<Leaf, SimError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384)?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = distinguished_name(&format!("{module_id}.simulated"));
        params.not_before = datetime(not_before)?;
        params.not_after = datetime(not_after)?;
        params.serial_number = Some(serial());
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let issuer = self.cas.last().ok_or(SimError::Signing)?;
        let cert = params.signed_by(&key, &issuer.issuer()?)?;
        Ok(Leaf {
            der: cert.der().to_vec(),
            pkcs8: key.serialize_der(),
        })
    }

    /// Serializes the PKI (certificates and keys, PEM) so a simulator can
    /// keep the same root across runs.
    pub fn to_pem_bundle(&self) -> String {
        self.cas
            .iter()
            .map(|c| {
                format!(
                    "{}{}",
                    pem_encode("CERTIFICATE", &c.der),
                    c.key.serialize_pem()
                )
            })
            .collect()
    }

    /// Reads what [`TestPki::to_pem_bundle`] wrote.
    pub fn from_pem_bundle(pem: &str) -> Result<Self, SimError> {
        use rustls_pki_types::pem::{PemObject, SectionKind};
        let mut sections = Vec::new();
        for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem.as_bytes()) {
            sections.push(item.map_err(|e| SimError::Bundle(e.to_string()))?);
        }
        if sections.is_empty() || !sections.len().is_multiple_of(2) {
            return Err(SimError::Bundle("expected certificate/key pairs".into()));
        }
        let mut cas = Vec::new();
        for pair in sections.chunks(2) {
            let [(SectionKind::Certificate, der), (SectionKind::PrivateKey, key)] = pair else {
                return Err(SimError::Bundle(
                    "expected a CERTIFICATE then a PRIVATE KEY".into(),
                ));
            };
            let key = KeyPair::try_from(key.as_slice())?;
            cas.push(Ca {
                key,
                der: der.clone(),
            });
        }
        Ok(TestPki { cas })
    }
}

impl Leaf {
    /// Signs `document` as the NSM does: untagged COSE_Sign1, `{1: -35}`.
    pub fn sign(&self, document: &Document) -> Result<Vec<u8>, SimError> {
        self.sign_payload(&es384_protected_header(), &document.encode())
    }

    /// Signs arbitrary payload bytes under an arbitrary protected header
    /// (tests use it to build well-signed but malformed documents).
    pub fn sign_payload(&self, protected: &[u8], payload: &[u8]) -> Result<Vec<u8>, SimError> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &self.pkcs8)
            .map_err(|_| SimError::Signing)?;
        let signature = key
            .sign(&rng, &sig_structure(protected, payload))
            .map_err(|_| SimError::Signing)?;
        Ok(CoseSign1 {
            protected: protected.to_vec(),
            payload: payload.to_vec(),
            signature: signature.as_ref().to_vec(),
            tagged: false,
        }
        .encode())
    }
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
