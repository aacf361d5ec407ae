//! Sealing to a key under a caller-named context: the same suite and base mode as the release
//! envelope and value intake, for protocols built on top of this crate (the custody crate's
//! shares and key forwarding) that bind their own fields.
//!
//! A [`BoundContext`] is a label plus a list of fields. Labels must start with
//! [`BOUND_LABEL_PREFIX`], which neither [`CONTEXT_LABEL`](crate::CONTEXT_LABEL) nor
//! [`INTAKE_LABEL`](crate::INTAKE_LABEL) does, so a bound value can never be taken for a
//! released secret or an intake value, nor one bound context for another with a different
//! label.

use aws_lc_rs::rand::SecureRandom;
use zeroize::Zeroizing;

use crate::context::bounded_len;
use crate::suite;
use crate::{EnclaveKey, EnvelopeError, RecipientPublicKey, SealedValue};

/// Every [`BoundContext`] label starts with this.
pub const BOUND_LABEL_PREFIX: &str = "hermetic/v1 bound ";

/// Most fields in one context.
pub const MAX_BOUND_FIELDS: usize = 16;

/// Longest encoded context, in bytes; hpke panics at 2^16 (see context.rs), this keeps far below.
pub const MAX_BOUND_LEN: usize = 8 * 1024;

const _: () = assert!(MAX_BOUND_LEN + 5 < 1 << 16);

/// A label and the fields a sealed value is bound to. Sealer and opener must build equal
/// contexts, or opening fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundContext {
    label: &'static str,
    fields: Vec<Vec<u8>>,
}

impl BoundContext {
    /// A context named `label` (which must start with [`BOUND_LABEL_PREFIX`]; checked when
    /// encoding) with no fields yet.
    pub fn new(label: &'static str) -> Self {
        BoundContext {
            label,
            fields: Vec::new(),
        }
    }

    /// Appends a field.
    pub fn field(mut self, bytes: impl AsRef<[u8]>) -> Self {
        self.fields.push(bytes.as_ref().to_vec());
        self
    }

    /// The bytes used as both the HPKE `info` and the AEAD `aad` (lengths u32 big-endian):
    ///
    /// ```text
    /// u32(len(label)) || label || u32(count) || for each field: u32(len(field)) || field
    /// ```
    ///
    /// Refuses a label without the prefix ([`EnvelopeError::ContextTooLarge`] with field
    /// `"label"` and `max` 0), more than [`MAX_BOUND_FIELDS`] fields, or an encoding over
    /// [`MAX_BOUND_LEN`].
    pub fn encode(&self) -> Result<Vec<u8>, EnvelopeError> {
        if !self.label.starts_with(BOUND_LABEL_PREFIX) {
            return Err(EnvelopeError::ContextTooLarge {
                field: "label",
                actual: self.label.len(),
                max: 0,
            });
        }
        let count = bounded_len("fields", self.fields.len(), MAX_BOUND_FIELDS)?;
        let mut out = Vec::new();
        let label_len = bounded_len("label", self.label.len(), MAX_BOUND_LEN)?;
        out.extend_from_slice(&label_len.to_be_bytes());
        out.extend_from_slice(self.label.as_bytes());
        out.extend_from_slice(&count.to_be_bytes());
        for field in &self.fields {
            let len = bounded_len("field", field.len(), MAX_BOUND_LEN)?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(field);
        }
        bounded_len("context", out.len(), MAX_BOUND_LEN)?;
        Ok(out)
    }
}

/// Seals `plaintext` to `recipient` bound to `ctx`.
pub fn seal_bound(
    recipient: &RecipientPublicKey,
    ctx: &BoundContext,
    plaintext: &[u8],
    rng: &dyn SecureRandom,
) -> Result<SealedValue, EnvelopeError> {
    let info = ctx.encode()?;
    let mut fill = |buf: &mut [u8]| rng.fill(buf).map_err(|_| ());
    let (enc, ciphertext) = suite::seal_base(&recipient.0, &info, &info, plaintext, &mut fill)?;
    Ok(SealedValue { enc, ciphertext })
}

/// Opens a value sealed for exactly `expected`; any other key or context, or any altered
/// byte, gives [`EnvelopeError::OpenFailed`].
pub fn open_bound(
    key: &EnclaveKey,
    sealed: &SealedValue,
    expected: &BoundContext,
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let info = expected.encode()?;
    suite::open_base(key.secret(), &sealed.enc, &info, &info, &sealed.ciphertext)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;

    const LABEL: &str = "hermetic/v1 bound test";

    #[test]
    fn encoding_is_pinned_and_unambiguous() {
        let mut expected = vec![0, 0, 0, 22];
        expected.extend_from_slice(LABEL.as_bytes());
        expected.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 1, b'a', 0, 0, 0, 0]);
        let ctx = BoundContext::new(LABEL).field("a").field("");
        assert_eq!(ctx.encode().unwrap(), expected);
        assert_ne!(
            BoundContext::new(LABEL).field("ab").field("c").encode(),
            BoundContext::new(LABEL).field("a").field("bc").encode()
        );
    }

    #[test]
    fn bad_labels_and_sizes_are_refused() {
        assert!(BoundContext::new("hermetic/v1 secret-release")
            .encode()
            .is_err());
        assert!(BoundContext::new("hermetic/v1 value-intake")
            .encode()
            .is_err());
        let many = (0..=MAX_BOUND_FIELDS).fold(BoundContext::new(LABEL), |c, _| c.field("x"));
        assert!(many.encode().is_err());
        assert!(BoundContext::new(LABEL)
            .field(vec![0; MAX_BOUND_LEN])
            .encode()
            .is_err());
    }

    #[test]
    fn opens_only_for_its_key_and_context() {
        let rng = SystemRandom::new();
        let key = EnclaveKey::from_ikm(&[3; 32]).unwrap();
        let ctx = BoundContext::new(LABEL).field("d").field([1, 2]);
        let sealed = seal_bound(&key.recipient(), &ctx, b"share", &rng).unwrap();
        assert_eq!(
            open_bound(&key, &sealed, &ctx).unwrap().as_slice(),
            b"share"
        );
        let other = EnclaveKey::from_ikm(&[4; 32]).unwrap();
        assert_eq!(
            open_bound(&other, &sealed, &ctx),
            Err(EnvelopeError::OpenFailed)
        );
        let wrong = BoundContext::new(LABEL).field("d").field([1, 3]);
        assert_eq!(
            open_bound(&key, &sealed, &wrong),
            Err(EnvelopeError::OpenFailed)
        );
        let relabelled = BoundContext::new("hermetic/v1 bound other")
            .field("d")
            .field([1, 2]);
        assert_eq!(
            open_bound(&key, &sealed, &relabelled),
            Err(EnvelopeError::OpenFailed)
        );
        // An intake value with the same key does not open as bound, nor the other way round.
        let intake = crate::seal_value(
            &key.recipient(),
            &crate::IntakeContext::new("d", "n"),
            b"v",
            &rng,
        )
        .unwrap();
        assert!(open_bound(&key, &intake, &ctx).is_err());
        assert!(crate::open_value(&key, &sealed, &crate::IntakeContext::new("d", "n")).is_err());
    }
}
