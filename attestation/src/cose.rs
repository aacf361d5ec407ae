//! COSE_Sign1 (RFC 9052 §4.2) as used by the Nitro Secure Module.
//!
//! The NSM emits an *untagged* `[protected, unprotected, payload, signature]`
//! array with protected header `{1: -35}` (ES384); RFC 9052 also allows the
//! tagged form (tag 18), which we accept. nsm-api's
//! docs/attestation_process.md §3.1 shows the layout.

use aws_lc_rs::signature::{ParsedPublicKey, ECDSA_P384_SHA384_FIXED};
use ciborium::value::Value;

use crate::cbor::{check_unique_keys, decode_one, encode, Item};
use crate::Error;

/// CBOR tag for COSE_Sign1 (RFC 9052 §2, Table 1).
const COSE_SIGN1_TAG: u64 = 18;
/// COSE header label `alg` (RFC 9052 §3.1).
const HEADER_ALG: i128 = 1;
/// ES384: ECDSA with SHA-384 (RFC 9053 §2.1, Table 1).
pub const ALG_ES384: i128 = -35;
/// ES384 signatures are r || s, each 48 bytes (RFC 9053 §2.1).
pub const ES384_SIGNATURE_LEN: usize = 96;

/// A decoded COSE_Sign1 whose algorithm has been checked to be ES384.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoseSign1 {
    /// The protected header exactly as it was serialized (it is signed).
    pub protected: Vec<u8>,
    pub payload: Vec<u8>,
    pub signature: Vec<u8>,
    pub tagged: bool,
}

impl CoseSign1 {
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let (tagged, item) = match decode_one(bytes, "document")? {
            Item::Tag(COSE_SIGN1_TAG, inner) => (true, *inner),
            Item::Tag(_, _) => {
                return Err(Error::MalformedCose(
                    "unexpected CBOR tag (COSE_Sign1 is tag 18)",
                ))
            }
            other => (false, other),
        };
        let Item::Array(items) = item else {
            return Err(Error::MalformedCose("expected a 4-element array"));
        };
        let [protected, unprotected, payload, signature]: [Item; 4] = items
            .try_into()
            .map_err(|_| Error::MalformedCose("expected a 4-element array"))?;

        let Item::Bytes(protected) = protected else {
            return Err(Error::MalformedCose(
                "protected header is not a byte string",
            ));
        };
        let Item::Map(unprotected) = unprotected else {
            return Err(Error::MalformedCose("unprotected header is not a map"));
        };
        check_unique_keys(&unprotected, "unprotected header")?;
        let payload = match payload {
            Item::Bytes(p) => p,
            Item::Null => return Err(Error::MalformedCose("detached payload is not supported")),
            _ => return Err(Error::MalformedCose("payload is not a byte string")),
        };
        let Item::Bytes(signature) = signature else {
            return Err(Error::MalformedCose("signature is not a byte string"));
        };

        check_algorithm(&protected)?;
        if signature.len() != ES384_SIGNATURE_LEN {
            return Err(Error::MalformedSignature(signature.len()));
        }
        Ok(CoseSign1 {
            protected: protected.into_owned(),
            payload: payload.into_owned(),
            signature: signature.into_owned(),
            tagged,
        })
    }

    /// Sig_structure for COSE_Sign1 (RFC 9052 §4.4):
    /// `["Signature1", body_protected, external_aad = h'', payload]`.
    pub fn to_be_signed(&self) -> Vec<u8> {
        sig_structure(&self.protected, &self.payload)
    }

    /// Checks the ES384 signature with a P-384 public key given as an
    /// uncompressed SEC1 point.
    pub fn verify(&self, p384_point: &[u8]) -> Result<(), Error> {
        self.verify_parsed(&parse_p384(p384_point)?)
    }

    /// Checks the ES384 signature with an already parsed P-384 key.
    pub(crate) fn verify_parsed(&self, key: &ParsedPublicKey) -> Result<(), Error> {
        key.verify_sig(&self.to_be_signed(), &self.signature)
            .map_err(|_| Error::BadSignature)
    }

    /// Serializes as the NSM does: untagged unless `tagged` is set.
    pub fn encode(&self) -> Vec<u8> {
        let array = Value::Array(vec![
            Value::Bytes(self.protected.clone()),
            Value::Map(vec![]),
            Value::Bytes(self.payload.clone()),
            Value::Bytes(self.signature.clone()),
        ]);
        if self.tagged {
            encode(&Value::Tag(COSE_SIGN1_TAG, Box::new(array)))
        } else {
            encode(&array)
        }
    }
}

/// A P-384 public key (uncompressed SEC1 point) for ES384. A point that is
/// not on the curve can verify nothing: it is refused as a bad signature, as
/// verifying with it would be.
pub(crate) fn parse_p384(point: &[u8]) -> Result<ParsedPublicKey, Error> {
    ParsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, point).map_err(|_| Error::BadSignature)
}

/// `["Signature1", protected, h'', payload]` in CBOR (RFC 8949 §3: a
/// definite-length array of a text string and three byte strings, each with
/// the shortest length encoding), written directly rather than through a
/// `Value` tree so that the signed payload is copied once.
pub(crate) fn sig_structure(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    const CONTEXT: &[u8] = b"Signature1";
    let mut out = Vec::with_capacity(CONTEXT.len() + protected.len() + payload.len() + 24);
    out.push(0x84); // array(4)
    head(&mut out, 3, CONTEXT.len());
    out.extend_from_slice(CONTEXT);
    head(&mut out, 2, protected.len());
    out.extend_from_slice(protected);
    head(&mut out, 2, 0); // external_aad: empty byte string
    head(&mut out, 2, payload.len());
    out.extend_from_slice(payload);
    out
}

/// A CBOR item head: major type and length in its shortest form (RFC 8949 §3).
fn head(out: &mut Vec<u8>, major: u8, len: usize) {
    let major = major << 5;
    let len = len as u64;
    if len < 24 {
        out.push(major | len as u8);
    } else if len <= u64::from(u8::MAX) {
        out.extend_from_slice(&[major | 24, len as u8]);
    } else if len <= u64::from(u16::MAX) {
        out.push(major | 25);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else if len <= u64::from(u32::MAX) {
        out.push(major | 26);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    } else {
        out.push(major | 27);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// The serialized protected header the NSM uses: `{1: -35}`.
pub fn es384_protected_header() -> Vec<u8> {
    encode(&Value::Map(vec![(
        Value::Integer(1.into()),
        Value::Integer((-35).into()),
    )]))
}

/// Only ES384 is accepted: any other value (including ES256 = -7 or a
/// text-named algorithm) is refused before any key is touched, so an
/// attacker cannot steer which verification routine runs.
fn check_algorithm(protected: &[u8]) -> Result<(), Error> {
    if protected.is_empty() {
        return Err(Error::MalformedProtectedHeader("empty; `alg` is required"));
    }
    let Item::Map(map) = decode_one(protected, "protected header")? else {
        return Err(Error::MalformedProtectedHeader("not a map"));
    };
    check_unique_keys(&map, "protected header")?;
    let alg = map
        .iter()
        .find(|(k, _)| k.as_i128() == Some(HEADER_ALG))
        .map(|(_, v)| v)
        .ok_or(Error::MalformedProtectedHeader(
            "`alg` (label 1) is missing",
        ))?;
    match (alg, alg.as_i128()) {
        (_, Some(ALG_ES384)) => Ok(()),
        (_, Some(other)) => Err(Error::UnsupportedAlgorithm(other.to_string())),
        (Item::Text(t), None) => Err(Error::UnsupportedAlgorithm(format!("{t:?}"))),
        _ => Err(Error::MalformedProtectedHeader(
            "`alg` is neither an integer nor text",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written Sig_structure is byte for byte what a general CBOR
    /// encoder writes, at every length-encoding boundary.
    #[test]
    fn sig_structure_matches_the_generic_encoder() {
        for protected_len in [0usize, 4, 23, 24] {
            for payload_len in [0usize, 23, 24, 255, 256, 4550, 65_535, 65_536] {
                let protected = vec![0xa1; protected_len];
                let payload: Vec<u8> = (0..payload_len).map(|i| i as u8).collect();
                let generic = encode(&Value::Array(vec![
                    Value::Text("Signature1".into()),
                    Value::Bytes(protected.clone()),
                    Value::Bytes(vec![]),
                    Value::Bytes(payload.clone()),
                ]));
                assert_eq!(
                    sig_structure(&protected, &payload),
                    generic,
                    "protected {protected_len}, payload {payload_len}"
                );
            }
        }
    }
}
