//! What a sealed secret is bound to: its name, its version and the challenge nonce.

use crate::EnvelopeError;

/// Fixed label at the start of every encoded [`ReleaseContext`]. Changing the envelope format
/// means changing this label.
pub const CONTEXT_LABEL: &[u8] = b"hermetic/v1 secret-release";

/// Longest accepted secret name, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 1024;

/// Longest accepted challenge nonce, in bytes.
pub const MAX_NONCE_LEN: usize = 1024;

// The hpke crate panics when `info.len() + psk_id.len() + 5 >= 2^16` (RFC 9180 section 7.2.1's
// length limits), and `name`/`nonce` come from the network. The caps above keep the encoding far
// below that; this checks it at compile time.
const MAX_ENCODED_LEN: usize = 4 + CONTEXT_LABEL.len() + 4 + MAX_NAME_LEN + 8 + 4 + MAX_NONCE_LEN;
const _: () = assert!(MAX_ENCODED_LEN + 5 < 1 << 16);

/// The release a sealed secret belongs to. The sealer and the opener must build the same value,
/// or opening fails.
///
/// `nonce` is the raw challenge nonce (the bytes that the verifier issued as lower-case hex in
/// [`ChallengeResponse::nonce`](crate::wire::ChallengeResponse) and that the enclave put into
/// its attestation document), not its hex text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseContext {
    /// Name of the secret.
    pub name: String,
    /// Version of the secret.
    pub version: u64,
    /// Raw challenge nonce.
    pub nonce: Vec<u8>,
}

impl ReleaseContext {
    /// Builds a context.
    pub fn new(name: impl Into<String>, version: u64, nonce: impl Into<Vec<u8>>) -> Self {
        ReleaseContext {
            name: name.into(),
            version,
            nonce: nonce.into(),
        }
    }

    /// The bytes used as both the HPKE `info` and the AEAD `aad`.
    ///
    /// Encoding (every length is an unsigned 32-bit big-endian byte count):
    ///
    /// ```text
    /// u32(len(label)) || label        label = "hermetic/v1 secret-release" (ASCII, 26 bytes)
    /// u32(len(name))  || name         UTF-8 bytes of the secret name, 0..=1024 bytes
    /// u64(version)                    big-endian
    /// u32(len(nonce)) || nonce        raw challenge nonce, 0..=1024 bytes
    /// ```
    ///
    /// Every variable-length field carries its length, so no two different contexts encode to
    /// the same bytes. The `info` binds the context into the HPKE key schedule (a different
    /// name, version or nonce gives a different key, so the AEAD tag fails); passing the same
    /// bytes as `aad` adds nothing to that binding but costs nothing and keeps one rule.
    ///
    /// Refuses with [`EnvelopeError::ContextTooLarge`] when the name or nonce is over its cap.
    pub fn encode(&self) -> Result<Vec<u8>, EnvelopeError> {
        let name = self.name.as_bytes();
        let name_len = bounded_len("name", name.len(), MAX_NAME_LEN)?;
        let nonce_len = bounded_len("nonce", self.nonce.len(), MAX_NONCE_LEN)?;
        let label_len = bounded_len("label", CONTEXT_LABEL.len(), CONTEXT_LABEL.len())?;

        let mut out =
            Vec::with_capacity(4 + CONTEXT_LABEL.len() + 4 + name.len() + 8 + 4 + self.nonce.len());
        out.extend_from_slice(&label_len.to_be_bytes());
        out.extend_from_slice(CONTEXT_LABEL);
        out.extend_from_slice(&name_len.to_be_bytes());
        out.extend_from_slice(name);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&nonce_len.to_be_bytes());
        out.extend_from_slice(&self.nonce);
        Ok(out)
    }
}

pub(crate) fn bounded_len(
    field: &'static str,
    actual: usize,
    max: usize,
) -> Result<u32, EnvelopeError> {
    let too_large = EnvelopeError::ContextTooLarge { field, actual, max };
    if actual > max {
        return Err(too_large);
    }
    u32::try_from(actual).map_err(|_| too_large)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_is_pinned() {
        let ctx = ReleaseContext::new("db", 0x0102, vec![0xaa, 0xbb]);
        let mut expected = Vec::new();
        expected.extend_from_slice(&[0, 0, 0, 26]);
        expected.extend_from_slice(b"hermetic/v1 secret-release");
        expected.extend_from_slice(&[0, 0, 0, 2]);
        expected.extend_from_slice(b"db");
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x01, 0x02]);
        expected.extend_from_slice(&[0, 0, 0, 2, 0xaa, 0xbb]);
        assert_eq!(ctx.encode().unwrap(), expected);
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        // Moving a byte from the name into the nonce region must change the encoding.
        let a = ReleaseContext::new("ab", 1, b"c".to_vec());
        let b = ReleaseContext::new("a", 1, b"bc".to_vec());
        assert_ne!(a.encode().unwrap(), b.encode().unwrap());
    }

    #[test]
    fn caps_are_enforced() {
        let ok = ReleaseContext::new("n".repeat(MAX_NAME_LEN), 1, vec![0; MAX_NONCE_LEN]);
        assert_eq!(ok.encode().unwrap().len(), MAX_ENCODED_LEN);

        let long_name = ReleaseContext::new("n".repeat(MAX_NAME_LEN + 1), 1, vec![]);
        assert_eq!(
            long_name.encode(),
            Err(EnvelopeError::ContextTooLarge {
                field: "name",
                actual: MAX_NAME_LEN + 1,
                max: MAX_NAME_LEN
            })
        );
        let long_nonce = ReleaseContext::new("n", 1, vec![0; MAX_NONCE_LEN + 1]);
        assert_eq!(
            long_nonce.encode().unwrap_err().reason(),
            "envelope_context_too_large"
        );
    }
}
