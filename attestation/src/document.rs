//! The attestation document carried as the COSE_Sign1 payload.
//!
//! Field rules follow aws-nitro-enclaves-nsm-api docs/attestation_process.md:
//! the CDDL of §2.2 and the syntactic checks of §3.2.2. Real NSM documents
//! encode absent optional fields as CBOR `null`, so `null` means "absent" for
//! `public_key`, `user_data` and `nonce` (and is refused for required fields).
//! A zero-length byte string is something else: present and empty
//! (`Some(vec![])`). The NSM signs such fields — real documents carry an
//! empty `public_key`, `user_data` or `nonce` — and §2.2 allows it
//! (`? public_key: user_data`, `user_data = bytes .size (0..1024)`), so they
//! are accepted even though §3.2.2.2 writes `public_key` as 1..1024.

use std::collections::BTreeMap;

use ciborium::value::Value;

use crate::cbor::{check_unique_keys, decode_one, encode, key_name, Item};
use crate::Error;

/// `cert = bytes .size (1..1024)` (§2.2).
pub const MAX_CERT_LEN: usize = 1024;
/// `user_data = bytes .size (0..1024)` (§2.2), the type of `public_key`,
/// `user_data` and `nonce` alike: each may be 0 to 1024 bytes.
pub const MAX_USER_DATA_LEN: usize = 1024;
/// `index = 0..31` (§2.2).
pub const MAX_PCR_INDEX: u8 = 31;
/// Bytes in each PCR for the `SHA384` digest the NSM reports.
pub const PCR_LEN_SHA384: usize = 48;

/// A decoded (not yet trusted) attestation document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub module_id: String,
    /// Always `"SHA384"` once decoded.
    pub digest: String,
    /// Milliseconds since the Unix epoch, as signed by the NSM.
    pub timestamp_ms: u64,
    pub pcrs: BTreeMap<u8, Vec<u8>>,
    /// DER of the leaf certificate that signs the document.
    pub certificate: Vec<u8>,
    /// DER certificates, root first.
    pub cabundle: Vec<Vec<u8>>,
    /// `None`: absent (or CBOR `null`); `Some(vec![])`: present and empty.
    pub public_key: Option<Vec<u8>>,
    /// As `public_key`.
    pub user_data: Option<Vec<u8>>,
    /// As `public_key`.
    pub nonce: Option<Vec<u8>>,
    /// Signed fields this version does not know (AWS may add fields); they
    /// are reported, not fatal.
    pub unknown_fields: Vec<String>,
}

const FIELD_ORDER: [&str; 9] = [
    "module_id",
    "digest",
    "timestamp",
    "pcrs",
    "certificate",
    "cabundle",
    "public_key",
    "user_data",
    "nonce",
];

impl Document {
    /// Decodes and checks the payload bytes.
    pub fn decode(payload: &[u8]) -> Result<Self, Error> {
        let Item::Map(map) = decode_one(payload, "payload")? else {
            return Err(Error::WrongType {
                field: "payload",
                expected: "a map",
            });
        };
        check_unique_keys(&map, "payload")?;
        let mut fields: [Option<Item>; FIELD_ORDER.len()] = Default::default();
        let mut unknown_fields = Vec::new();
        for (k, v) in map {
            match &k {
                Item::Text(name) => match FIELD_ORDER.iter().position(|f| *f == name) {
                    Some(i) => fields[i] = Some(v),
                    None => unknown_fields.push(name.to_string()),
                },
                other => unknown_fields.push(key_name(other)),
            }
        }
        let mut take = |name: &'static str| {
            FIELD_ORDER
                .iter()
                .position(|f| *f == name)
                .and_then(|i| fields[i].take())
        };

        let module_id = text(required(take("module_id"), "module_id")?, "module_id")?;
        if module_id.is_empty() {
            return Err(Error::InvalidField {
                field: "module_id",
                reason: "must be non-empty",
            });
        }
        let digest = text(required(take("digest"), "digest")?, "digest")?;
        if digest != "SHA384" {
            return Err(Error::InvalidField {
                field: "digest",
                reason: "must be \"SHA384\"",
            });
        }
        let timestamp_ms = match required(take("timestamp"), "timestamp")? {
            Item::Unsigned(n) => n,
            Item::Negative(_) => {
                return Err(Error::InvalidField {
                    field: "timestamp",
                    reason: "must be an unsigned 64-bit integer",
                })
            }
            _ => {
                return Err(Error::WrongType {
                    field: "timestamp",
                    expected: "an unsigned integer",
                })
            }
        };
        if timestamp_ms == 0 {
            return Err(Error::InvalidField {
                field: "timestamp",
                reason: "must be greater than 0",
            });
        }
        let pcrs = decode_pcrs(required(take("pcrs"), "pcrs")?)?;
        let certificate = cert(required(take("certificate"), "certificate")?, "certificate")?;
        let cabundle = match required(take("cabundle"), "cabundle")? {
            Item::Array(items) => items
                .into_iter()
                .map(|v| cert(v, "cabundle"))
                .collect::<Result<Vec<_>, _>>()?,
            _ => {
                return Err(Error::WrongType {
                    field: "cabundle",
                    expected: "an array of byte strings",
                })
            }
        };
        if cabundle.is_empty() {
            return Err(Error::EmptyCabundle);
        }
        let public_key = optional_bytes(take("public_key"), "public_key")?;
        let user_data = optional_bytes(take("user_data"), "user_data")?;
        let nonce = optional_bytes(take("nonce"), "nonce")?;

        Ok(Document {
            module_id,
            digest,
            timestamp_ms,
            pcrs,
            certificate,
            cabundle,
            public_key,
            user_data,
            nonce,
            unknown_fields,
        })
    }

    /// Serializes in the NSM's layout: a definite-length map with the keys
    /// in the order the NSM writes them and `null` for absent optional fields.
    pub fn encode(&self) -> Vec<u8> {
        let opt = |v: &Option<Vec<u8>>| v.clone().map(Value::Bytes).unwrap_or(Value::Null);
        let values = [
            Value::Text(self.module_id.clone()),
            Value::Text(self.digest.clone()),
            Value::Integer(self.timestamp_ms.into()),
            Value::Map(
                self.pcrs
                    .iter()
                    .map(|(i, v)| (Value::Integer((*i).into()), Value::Bytes(v.clone())))
                    .collect(),
            ),
            Value::Bytes(self.certificate.clone()),
            Value::Array(self.cabundle.iter().cloned().map(Value::Bytes).collect()),
            opt(&self.public_key),
            opt(&self.user_data),
            opt(&self.nonce),
        ];
        let map = FIELD_ORDER
            .iter()
            .zip(values)
            .map(|(k, v)| (Value::Text((*k).into()), v))
            .collect();
        encode(&Value::Map(map))
    }

    /// Debug-mode enclaves report PCR0, PCR1 and PCR2 as all zeros
    /// (AWS Nitro Enclaves User Guide, "Where to get an enclave's measurements").
    pub fn is_debug_mode(&self) -> bool {
        [0u8, 1, 2]
            .iter()
            .all(|i| self.pcrs.get(i).is_some_and(|v| v.iter().all(|b| *b == 0)))
    }
}

fn required<'a>(v: Option<Item<'a>>, field: &'static str) -> Result<Item<'a>, Error> {
    match v {
        None => Err(Error::MissingField(field)),
        Some(Item::Null) => Err(Error::NullField(field)),
        Some(v) => Ok(v),
    }
}

fn text(v: Item<'_>, field: &'static str) -> Result<String, Error> {
    match v {
        Item::Text(t) => Ok(t.into_owned()),
        _ => Err(Error::WrongType {
            field,
            expected: "a text string",
        }),
    }
}

fn cert(v: Item<'_>, field: &'static str) -> Result<Vec<u8>, Error> {
    match v {
        Item::Bytes(b) => {
            check_size(field, b.len(), 1, MAX_CERT_LEN)?;
            Ok(b.into_owned())
        }
        _ => Err(Error::WrongType {
            field,
            expected: "a byte string",
        }),
    }
}

/// Absent or `null`: `None`. A byte string, empty or not: `Some`.
fn optional_bytes(v: Option<Item<'_>>, field: &'static str) -> Result<Option<Vec<u8>>, Error> {
    match v {
        None | Some(Item::Null) => Ok(None),
        Some(Item::Bytes(b)) => {
            check_size(field, b.len(), 0, MAX_USER_DATA_LEN)?;
            Ok(Some(b.into_owned()))
        }
        Some(_) => Err(Error::WrongType {
            field,
            expected: "a byte string or null",
        }),
    }
}

fn check_size(field: &'static str, len: usize, min: usize, max: usize) -> Result<(), Error> {
    if len < min || len > max {
        return Err(Error::FieldSize {
            field,
            len,
            min,
            max,
        });
    }
    Ok(())
}

fn decode_pcrs(v: Item<'_>) -> Result<BTreeMap<u8, Vec<u8>>, Error> {
    let Item::Map(entries) = v else {
        return Err(Error::WrongType {
            field: "pcrs",
            expected: "a map of index to byte string",
        });
    };
    check_unique_keys(&entries, "pcrs")?;
    if entries.is_empty() || entries.len() > usize::from(MAX_PCR_INDEX) + 1 {
        return Err(Error::InvalidField {
            field: "pcrs",
            reason: "must hold 1 to 32 entries",
        });
    }
    let mut pcrs = BTreeMap::new();
    for (k, v) in entries {
        let Some(i) = k.as_i128() else {
            return Err(Error::WrongType {
                field: "pcrs",
                expected: "integer PCR indexes",
            });
        };
        let index = u8::try_from(i)
            .ok()
            .filter(|i| *i <= MAX_PCR_INDEX)
            .ok_or_else(|| Error::PcrIndexOutOfRange(i.to_string()))?;
        let Item::Bytes(value) = v else {
            return Err(Error::WrongType {
                field: "pcrs",
                expected: "byte-string PCR values",
            });
        };
        if ![32, 48, 64].contains(&value.len()) {
            return Err(Error::PcrLength {
                index,
                len: value.len(),
            });
        }
        pcrs.insert(index, value.into_owned());
    }
    Ok(pcrs)
}
