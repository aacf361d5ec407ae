//! The signature section: PCR8 and the COSE_Sign1 over PCR0.
//!
//! Format facts (aws/aws-nitro-enclaves-image-format):
//! - `src/defs/mod.rs`: the section holds `EifSignature = Vec<PcrSignature>`
//!   serialized with serde_cbor; `PcrSignature { signing_certificate: Vec<u8>,
//!   signature: Vec<u8> }` where `signing_certificate` is the *PEM* text and
//!   `signature` a serialized COSE_Sign1. Both are `Vec<u8>` without
//!   serde_bytes, so serde_cbor writes them as CBOR arrays of small integers.
//! - `src/utils/mod.rs` (`generate_pcr_signature`, `generate_eif_signature`):
//!   one entry, for PCR0; the COSE payload is serde_cbor of
//!   `PcrInfo { register_index: 0, register_value: <48 PCR0 bytes> }`, signed
//!   with `CoseSign1::new::<Openssl>(payload, empty unprotected map, key)` and
//!   serialized untagged (`as_bytes(false)`).
//! - `src/utils/eif_reader.rs` (`get_certificate_info`): the check is that the
//!   COSE signature verifies with the certificate's public key and that the
//!   signed payload equals the serialized `PcrInfo` of the measured PCR0,
//!   byte for byte. Only entry `[0]` is used.
//! - PCR8 hashes the DER of that certificate (`EifReader::from_eif`).
//!
//! COSE_Sign1 (RFC 9052 §4.2/§4.4): `[protected: bstr, unprotected: map,
//! payload: bstr, signature: bstr]`, optionally tag 18; the signed bytes are
//! the CBOR of `["Signature1", protected, h'' (external aad), payload]`. ES384
//! (alg -35) signatures are the fixed 96-byte `r || s`.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as rsig, EcdsaKeyPair, KeyPair, UnparsedPublicKey};
use ciborium::value::{Integer, Value};
use serde::Serialize;
use x509_parser::prelude::*;

use crate::error::{EifError, Result};
use crate::measure::{pcr_of_bytes, Pcr};

/// COSE algorithm identifier of ECDSA w/ SHA-384 (RFC 9053 §2.1).
pub const COSE_ALG_ES384: i64 = -35;
/// COSE header label `alg`.
const COSE_HDR_ALG: i64 = 1;
/// Tag of COSE_Sign1 (RFC 9052 §2).
const COSE_SIGN1_TAG: u64 = 18;

/// A decoded COSE_Sign1.
#[derive(Clone, Debug)]
pub struct CoseSign1 {
    pub protected: Vec<u8>,
    pub payload: Vec<u8>,
    pub signature: Vec<u8>,
    pub alg: i64,
}

/// The decoded signature section.
#[derive(Clone, Debug)]
pub struct SignatureSection {
    /// Number of `PcrSignature` entries (nitro-cli uses entry 0).
    pub entries: usize,
    pub certificate_pem: Vec<u8>,
    pub certificate_der: Vec<u8>,
    pub certificate: CertificateInfo,
    pub cose: CoseSign1,
    /// SHA-384 extend of the certificate DER.
    pub pcr8: Pcr,
}

/// Human-facing facts about the signing certificate.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct CertificateInfo {
    #[serde(rename = "Subject")]
    pub subject: String,
    #[serde(rename = "Issuer")]
    pub issuer: String,
    #[serde(rename = "SerialNumber")]
    pub serial: String,
    #[serde(rename = "NotBefore")]
    pub not_before: String,
    #[serde(rename = "NotAfter")]
    pub not_after: String,
    #[serde(rename = "SignatureAlgorithm")]
    pub signature_algorithm: String,
}

fn malformed(msg: impl Into<String>) -> EifError {
    EifError::MalformedSignature(msg.into())
}

/// Accepts a byte string either as CBOR bytes or as an array of 0..=255
/// integers (what serde_cbor writes for `Vec<u8>`).
fn value_to_bytes(v: &Value, what: &str) -> Result<Vec<u8>> {
    match v {
        Value::Bytes(b) => Ok(b.clone()),
        Value::Array(items) => items
            .iter()
            .map(|it| match it {
                Value::Integer(i) => u8::try_from(i128::from(*i))
                    .map_err(|_| malformed(format!("{what}: array element out of byte range"))),
                _ => Err(malformed(format!(
                    "{what}: array element is not an integer"
                ))),
            })
            .collect(),
        _ => Err(malformed(format!(
            "{what}: expected a byte string or byte array"
        ))),
    }
}

fn bytes_to_int_array(b: &[u8]) -> Value {
    Value::Array(
        b.iter()
            .map(|x| Value::Integer(Integer::from(*x)))
            .collect(),
    )
}

fn to_cbor(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Serializing a Value into a Vec cannot fail.
    let _ = ciborium::ser::into_writer(v, &mut out);
    out
}

fn from_cbor(bytes: &[u8], what: &str) -> Result<Value> {
    let mut cursor = bytes;
    let v: Value = ciborium::de::from_reader(&mut cursor)
        .map_err(|e| malformed(format!("{what}: invalid CBOR: {e}")))?;
    if !cursor.is_empty() {
        return Err(malformed(format!(
            "{what}: {} trailing bytes after CBOR",
            cursor.len()
        )));
    }
    Ok(v)
}

fn map_get<'a>(entries: &'a [(Value, Value)], key: &str) -> Option<&'a Value> {
    entries
        .iter()
        .find(|(k, _)| matches!(k, Value::Text(t) if t == key))
        .map(|(_, v)| v)
}

/// Parses the first PEM block labelled CERTIFICATE (or the first block) and
/// returns its DER.
pub fn pem_to_der(pem: &[u8], label_wanted: &[&str]) -> Result<(String, Vec<u8>)> {
    let mut first = None;
    for item in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let item = item.map_err(|e| EifError::BadKeyOrCertificate(format!("invalid PEM: {e}")))?;
        if label_wanted.iter().any(|l| *l == item.label) {
            return Ok((item.label, item.contents));
        }
        if first.is_none() {
            first = Some(item.label);
        }
    }
    Err(EifError::BadKeyOrCertificate(match first {
        Some(l) => format!("PEM block {l:?} found, expected one of {label_wanted:?}"),
        None => "no PEM block found".to_string(),
    }))
}

/// DER of a PEM certificate.
pub fn certificate_der_from_pem(pem: &[u8]) -> Result<Vec<u8>> {
    let (_, der) = pem_to_der(pem, &["CERTIFICATE"])?;
    // Make sure it really is one certificate and nothing follows it.
    match X509Certificate::from_der(&der) {
        Ok((&[], _)) => Ok(der),
        Ok(_) => Err(EifError::BadKeyOrCertificate(
            "trailing bytes after the certificate DER".into(),
        )),
        Err(e) => Err(EifError::BadKeyOrCertificate(format!(
            "invalid certificate: {e}"
        ))),
    }
}

/// PCR8 of a PEM certificate, as `nitro-cli pcr --signing-certificate`
/// (aws-nitro-enclaves-cli `get_file_pcr`: PEM -> DER, then the PCR recipe).
pub fn pcr8_of_pem(pem: &[u8]) -> Result<Pcr> {
    Ok(pcr_of_bytes(&certificate_der_from_pem(pem)?))
}

fn cert_info(der: &[u8]) -> Result<(CertificateInfo, Vec<u8>)> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| EifError::BadKeyOrCertificate(format!("invalid certificate: {e}")))?;
    let v = cert.validity();
    let fmt = |t: &ASN1Time| t.to_rfc2822().unwrap_or_else(|_| t.timestamp().to_string());
    let alg_oid = cert.signature_algorithm.algorithm.to_id_string();
    let alg = match alg_oid.as_str() {
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384".to_string(),
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256".to_string(),
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512".to_string(),
        _ => alg_oid,
    };
    let info = CertificateInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial: cert.raw_serial_as_string(),
        not_before: fmt(&v.not_before),
        not_after: fmt(&v.not_after),
        signature_algorithm: alg,
    };
    let spk = cert.public_key().subject_public_key.data.to_vec();
    Ok((info, spk))
}

/// Decodes a COSE_Sign1 (tagged or untagged).
pub fn decode_cose_sign1(bytes: &[u8]) -> Result<CoseSign1> {
    let mut v = from_cbor(bytes, "COSE_Sign1")?;
    if let Value::Tag(tag, inner) = v {
        if tag != COSE_SIGN1_TAG {
            return Err(malformed(format!("COSE_Sign1: unexpected tag {tag}")));
        }
        v = *inner;
    }
    let Value::Array(items) = v else {
        return Err(malformed("COSE_Sign1: not an array"));
    };
    let [protected, unprotected, payload, signature] = <[Value; 4]>::try_from(items)
        .map_err(|items| malformed(format!("COSE_Sign1: {} elements, expected 4", items.len())))?;
    let Value::Bytes(protected) = protected else {
        return Err(malformed(
            "COSE_Sign1: protected header is not a byte string",
        ));
    };
    if !matches!(unprotected, Value::Map(_)) {
        return Err(malformed("COSE_Sign1: unprotected header is not a map"));
    }
    let Value::Bytes(payload) = payload else {
        return Err(malformed(
            "COSE_Sign1: payload is not a byte string (detached?)",
        ));
    };
    let Value::Bytes(signature) = signature else {
        return Err(malformed("COSE_Sign1: signature is not a byte string"));
    };
    let alg = if protected.is_empty() {
        None
    } else {
        match from_cbor(&protected, "COSE protected header")? {
            Value::Map(m) => m.iter().find_map(|(k, v)| match (k, v) {
                (Value::Integer(k), Value::Integer(a))
                    if i128::from(*k) == COSE_HDR_ALG as i128 =>
                {
                    i64::try_from(i128::from(*a)).ok()
                }
                _ => None,
            }),
            _ => return Err(malformed("COSE protected header is not a map")),
        }
    };
    let alg = alg.ok_or_else(|| malformed("COSE protected header has no alg"))?;
    Ok(CoseSign1 {
        protected,
        payload,
        signature,
        alg,
    })
}

/// The bytes a COSE_Sign1 signature covers (RFC 9052 §4.4).
pub fn sig_structure(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    to_cbor(&Value::Array(vec![
        Value::Text("Signature1".into()),
        Value::Bytes(protected.to_vec()),
        Value::Bytes(Vec::new()),
        Value::Bytes(payload.to_vec()),
    ]))
}

/// serde_cbor of `PcrInfo { register_index, register_value }`: a 2-entry map
/// with text keys in declaration order, the value as an integer array.
pub fn pcr_info_payload(register_index: i32, value: &[u8]) -> Vec<u8> {
    to_cbor(&Value::Map(vec![
        (
            Value::Text("register_index".into()),
            Value::Integer(Integer::from(register_index)),
        ),
        (
            Value::Text("register_value".into()),
            bytes_to_int_array(value),
        ),
    ]))
}

/// Decodes a signature section (does not verify it; see [`verify_pcr0`]).
pub fn parse_signature_section(bytes: &[u8]) -> Result<SignatureSection> {
    let Value::Array(entries) = from_cbor(bytes, "signature section")? else {
        return Err(malformed("signature section is not a CBOR array"));
    };
    let first = entries
        .first()
        .ok_or_else(|| malformed("signature section holds no PcrSignature"))?;
    let Value::Map(fields) = first else {
        return Err(malformed("PcrSignature is not a map"));
    };
    let cert_v = map_get(fields, "signing_certificate")
        .ok_or_else(|| malformed("PcrSignature has no signing_certificate"))?;
    let sig_v =
        map_get(fields, "signature").ok_or_else(|| malformed("PcrSignature has no signature"))?;
    let certificate_pem = value_to_bytes(cert_v, "signing_certificate")?;
    let cose_bytes = value_to_bytes(sig_v, "signature")?;
    let certificate_der = certificate_der_from_pem(&certificate_pem)
        .map_err(|e| malformed(format!("signing_certificate: {e}")))?;
    let (certificate, _) =
        cert_info(&certificate_der).map_err(|e| malformed(format!("signing_certificate: {e}")))?;
    let cose = decode_cose_sign1(&cose_bytes)?;
    let pcr8 = pcr_of_bytes(&certificate_der);
    Ok(SignatureSection {
        entries: entries.len(),
        certificate_pem,
        certificate_der,
        certificate,
        cose,
        pcr8,
    })
}

/// Checks that the COSE_Sign1 verifies with the certificate's P-384 key and
/// that its payload is exactly the serialized `PcrInfo` of `pcr0`.
pub fn verify_pcr0(sig: &SignatureSection, pcr0: &Pcr) -> Result<()> {
    let bad = |m: String| EifError::SignatureInvalid(m);
    if sig.cose.alg != COSE_ALG_ES384 {
        return Err(bad(format!(
            "COSE alg {} is not ES384 ({COSE_ALG_ES384})",
            sig.cose.alg
        )));
    }
    let (_, spk) = cert_info(&sig.certificate_der)
        .map_err(|e| bad(format!("certificate key unusable: {e}")))?;
    let tbs = sig_structure(&sig.cose.protected, &sig.cose.payload);
    UnparsedPublicKey::new(&rsig::ECDSA_P384_SHA384_FIXED, &spk)
        .verify(&tbs, &sig.cose.signature)
        .map_err(|_| {
            bad("ECDSA P-384 signature does not verify with the certificate's key".into())
        })?;
    let expected = pcr_info_payload(0, pcr0);
    if sig.cose.payload != expected {
        let claimed = describe_payload(&sig.cose.payload);
        return Err(bad(format!(
            "signed payload is not PCR0 {}: it holds {claimed}",
            hex::encode(pcr0)
        )));
    }
    Ok(())
}

fn describe_payload(p: &[u8]) -> String {
    let Ok(Value::Map(m)) = from_cbor(p, "payload") else {
        return format!("{} undecodable bytes", p.len());
    };
    let idx = match map_get(&m, "register_index") {
        Some(Value::Integer(i)) => i128::from(*i).to_string(),
        _ => "?".into(),
    };
    let val = map_get(&m, "register_value")
        .and_then(|v| value_to_bytes(v, "register_value").ok())
        .map(hex::encode)
        .unwrap_or_else(|| "?".into());
    format!("PCR{idx} = {val}")
}

/// A P-384 signing key paired with its certificate.
pub struct Signer {
    key: EcdsaKeyPair,
    certificate_pem: Vec<u8>,
    certificate_der: Vec<u8>,
}

fn der_len(n: usize, out: &mut Vec<u8>) {
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    der_len(content.len(), &mut out);
    out.extend_from_slice(content);
    out
}

/// Wraps a SEC1 `ECPrivateKey` (PEM "EC PRIVATE KEY") for P-384 into PKCS#8
/// (RFC 5208 / RFC 5915 §1), the only form ring loads.
fn sec1_p384_to_pkcs8(sec1: &[u8]) -> Vec<u8> {
    const ID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    const SECP384R1: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
    let mut alg = ID_EC_PUBLIC_KEY.to_vec();
    alg.extend_from_slice(SECP384R1);
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend(der_tlv(0x30, &alg));
    body.extend(der_tlv(0x04, sec1));
    der_tlv(0x30, &body)
}

impl Signer {
    /// Loads a P-384 private key (PEM "EC PRIVATE KEY" or "PRIVATE KEY") and
    /// the matching certificate (PEM); fails if they do not belong together.
    pub fn from_pem(key_pem: &[u8], cert_pem: &[u8]) -> Result<Self> {
        let (label, der) = pem_to_der(key_pem, &["EC PRIVATE KEY", "PRIVATE KEY"])?;
        let pkcs8 = if label == "EC PRIVATE KEY" {
            sec1_p384_to_pkcs8(&der)
        } else {
            der
        };
        let key = EcdsaKeyPair::from_pkcs8(&rsig::ECDSA_P384_SHA384_FIXED_SIGNING, &pkcs8)
            .map_err(|e| EifError::BadKeyOrCertificate(format!("not a usable P-384 key: {e}")))?;
        let certificate_der = certificate_der_from_pem(cert_pem)?;
        let (_, spk) = cert_info(&certificate_der)?;
        if spk != key.public_key().as_ref() {
            return Err(EifError::BadKeyOrCertificate(
                "the private key does not match the certificate's public key".into(),
            ));
        }
        Ok(Signer {
            key,
            certificate_pem: cert_pem.to_vec(),
            certificate_der,
        })
    }

    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    /// PCR8 this signer gives an image.
    pub fn pcr8(&self) -> Pcr {
        pcr_of_bytes(&self.certificate_der)
    }

    /// A COSE_Sign1 (untagged, protected `{1: -35}`, empty unprotected map)
    /// over `payload`.
    pub fn cose_sign1(&self, payload: &[u8]) -> Result<Vec<u8>> {
        let protected = to_cbor(&Value::Map(vec![(
            Value::Integer(Integer::from(COSE_HDR_ALG)),
            Value::Integer(Integer::from(COSE_ALG_ES384)),
        )]));
        let tbs = sig_structure(&protected, payload);
        let sig = self
            .key
            .sign(&SystemRandom::new(), &tbs)
            .map_err(|_| EifError::BadKeyOrCertificate("ECDSA signing failed".into()))?;
        Ok(to_cbor(&Value::Array(vec![
            Value::Bytes(protected),
            Value::Map(Vec::new()),
            Value::Bytes(payload.to_vec()),
            Value::Bytes(sig.as_ref().to_vec()),
        ])))
    }

    /// The whole signature section for an image whose PCR0 is `pcr0`:
    /// `[ {signing_certificate: PEM, signature: COSE_Sign1(PcrInfo(0, pcr0))} ]`
    /// with byte strings as integer arrays, as serde_cbor writes them.
    pub fn signature_section(&self, pcr0: &Pcr) -> Result<Vec<u8>> {
        let cose = self.cose_sign1(&pcr_info_payload(0, pcr0))?;
        Ok(to_cbor(&Value::Array(vec![Value::Map(vec![
            (
                Value::Text("signing_certificate".into()),
                bytes_to_int_array(&self.certificate_pem),
            ),
            (Value::Text("signature".into()), bytes_to_int_array(&cose)),
        ])])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        // A P-384 key made by ring, wrapped in a throwaway self-signed cert.
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&rsig::ECDSA_P384_SHA384_FIXED_SIGNING, &rng).unwrap();
        let kp = rcgen::KeyPair::try_from(pkcs8.as_ref()).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["t".into()])
            .unwrap()
            .self_signed(&kp)
            .unwrap();
        Signer::from_pem(kp.serialize_pem().as_bytes(), cert.pem().as_bytes()).unwrap()
    }

    #[test]
    fn der_lengths() {
        let mut v = Vec::new();
        der_len(0x7f, &mut v);
        der_len(0x80, &mut v);
        der_len(0x1234, &mut v);
        assert_eq!(v, [0x7f, 0x81, 0x80, 0x82, 0x12, 0x34]);
    }

    #[test]
    fn pcr_info_payload_shape() {
        let p = pcr_info_payload(0, &[1, 200]);
        // map(2) "register_index" 0 "register_value" [1, 200]
        let mut want = vec![0xa2, 0x6e];
        want.extend_from_slice(b"register_index");
        want.push(0x00);
        want.push(0x6e);
        want.extend_from_slice(b"register_value");
        want.extend_from_slice(&[0x82, 0x01, 0x18, 0xc8]);
        assert_eq!(p, want);
    }

    #[test]
    fn section_roundtrip_and_verification() {
        let s = signer();
        let pcr0 = [7u8; 48];
        let sec = s.signature_section(&pcr0).unwrap();
        let parsed = parse_signature_section(&sec).unwrap();
        assert_eq!(parsed.entries, 1);
        assert_eq!(parsed.pcr8, s.pcr8());
        assert_eq!(parsed.certificate_der, s.certificate_der());
        assert_eq!(parsed.cose.alg, COSE_ALG_ES384);
        verify_pcr0(&parsed, &pcr0).unwrap();
        let err = verify_pcr0(&parsed, &[8u8; 48]).unwrap_err();
        assert!(
            matches!(err, EifError::SignatureInvalid(ref m) if m.contains("PCR0 = 0707")),
            "{err}"
        );
    }

    #[test]
    fn cose_tag_and_alg_handling() {
        let s = signer();
        let cose = s.cose_sign1(b"payload").unwrap();
        let mut tagged = vec![0xd2]; // tag 18
        tagged.extend_from_slice(&cose);
        assert_eq!(decode_cose_sign1(&tagged).unwrap().payload, b"payload");
        let mut wrong_tag = vec![0xd1]; // tag 17 (COSE_Mac0)
        wrong_tag.extend_from_slice(&cose);
        assert!(matches!(
            decode_cose_sign1(&wrong_tag),
            Err(EifError::MalformedSignature(_))
        ));
        // ES256 in the protected header is refused even if everything else is right.
        let mut parsed = parse_signature_section(&s.signature_section(&[0; 48]).unwrap()).unwrap();
        parsed.cose.alg = -7;
        assert!(matches!(
            verify_pcr0(&parsed, &[0; 48]),
            Err(EifError::SignatureInvalid(_))
        ));
        // Not an array / wrong arity.
        assert!(matches!(
            decode_cose_sign1(&[0xa0]),
            Err(EifError::MalformedSignature(_))
        ));
        assert!(matches!(
            decode_cose_sign1(&[0x83, 0x40, 0xa0, 0x40]),
            Err(EifError::MalformedSignature(_))
        ));
        // Trailing bytes after the CBOR item.
        let mut trailing = cose.clone();
        trailing.push(0);
        assert!(matches!(
            decode_cose_sign1(&trailing),
            Err(EifError::MalformedSignature(_))
        ));
    }

    #[test]
    fn huge_declared_cbor_lengths_do_not_allocate() {
        // Array / map / byte string / text claiming 2^64-1 items in 9 bytes.
        for major in [0x9bu8, 0xbb, 0x5b, 0x7b] {
            let mut b = vec![major];
            b.extend_from_slice(&[0xff; 8]);
            assert!(matches!(
                parse_signature_section(&b),
                Err(EifError::MalformedSignature(_))
            ));
            assert!(matches!(
                decode_cose_sign1(&b),
                Err(EifError::MalformedSignature(_))
            ));
        }
        // Deep nesting.
        let deep = vec![0x81u8; 100_000];
        assert!(matches!(
            parse_signature_section(&deep),
            Err(EifError::MalformedSignature(_))
        ));
    }

    #[test]
    fn pem_errors() {
        assert!(matches!(
            pcr8_of_pem(b"nothing here"),
            Err(EifError::BadKeyOrCertificate(_))
        ));
        let key_only = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
        assert!(matches!(
            pcr8_of_pem(key_only.as_bytes()),
            Err(EifError::BadKeyOrCertificate(_))
        ));
    }
}
