//! JSON encodings of byte fields: fixed-size values as lower-case hex, variable ones (documents,
//! ciphertext) as standard base64, each bounded before decoding.

use serde::{Deserialize, Deserializer, Serializer};

/// Longest base64 byte field accepted (an attestation document is at most 16 KiB,
/// `hermetic_attestation::MAX_DOCUMENT_LEN`).
pub const MAX_B64_BYTES: usize = hermetic_attestation::MAX_DOCUMENT_LEN;

pub(crate) mod hex_array {
    use super::*;

    pub(crate) fn serialize<S: Serializer, const N: usize>(
        v: &[u8; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        crate::genesis::hex_array::<N>(&s)
            .ok_or_else(|| serde::de::Error::custom("expected lower-case hex of the right length"))
    }
}

pub(crate) mod b64 {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    pub(crate) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if s.len() > 4 * MAX_B64_BYTES.div_ceil(3) {
            return Err(serde::de::Error::custom("base64 field too large"));
        }
        STANDARD
            .decode(s.as_bytes())
            .map_err(|_| serde::de::Error::custom("expected standard base64"))
    }
}

/// What the service asks its NSM to attest to: the document it obtains goes back into this
/// crate (`Unsealer::attested`, `Responder::offer`, `Joiner::request`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationRequest {
    /// The document's `nonce`.
    pub nonce: Vec<u8>,
    /// The document's `public_key` (an HPKE X25519 key), if any.
    pub public_key: Option<[u8; 32]>,
    /// The document's `user_data`.
    pub user_data: Vec<u8>,
}
