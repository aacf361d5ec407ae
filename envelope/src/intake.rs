//! Value intake: a secret value sealed by its owner to the verifier's intake key, so that the
//! value travels (in a change statement file, through the admin API, past the verifier host's
//! operators) only as HPKE ciphertext that the verifier opens when it applies an approved change.
//!
//! Same suite and base mode as the release envelope, with its own context: a sealed release can
//! never be taken for a sealed intake value or the other way round, and a value sealed for one
//! deployment or one secret name does not open for another.

use aws_lc_rs::rand::SecureRandom;
use zeroize::Zeroizing;

use crate::context::bounded_len;
use crate::suite;
use crate::{EnclaveKey, EnvelopeError, RecipientPublicKey, MAX_NAME_LEN};

/// Fixed label at the start of every encoded [`IntakeContext`].
pub const INTAKE_LABEL: &[u8] = b"hermetic/v1 value-intake";

/// Longest accepted deployment id, in bytes.
pub const MAX_DEPLOYMENT_LEN: usize = 1024;

/// Length of `enc` for this suite (`Nenc` of DHKEM(X25519, HKDF-SHA256), RFC 9180 section 7.1).
pub const ENC_LEN: usize = 32;

/// Bytes the AEAD adds to a value (the ChaCha20Poly1305 tag, RFC 8439 section 2.8).
pub const TAG_LEN: usize = 16;

// hpke panics when `info` reaches 2^16 bytes (see context.rs); the caps keep it far below.
const MAX_ENCODED_LEN: usize = 4 + INTAKE_LABEL.len() + 4 + MAX_DEPLOYMENT_LEN + 4 + MAX_NAME_LEN;
const _: () = assert!(MAX_ENCODED_LEN + 5 < 1 << 16);

/// Where a sealed value may be opened: one deployment, one secret name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntakeContext {
    /// The verifier deployment's id.
    pub deployment: String,
    /// The secret the value is for.
    pub name: String,
}

impl IntakeContext {
    /// Builds a context.
    pub fn new(deployment: impl Into<String>, name: impl Into<String>) -> Self {
        IntakeContext {
            deployment: deployment.into(),
            name: name.into(),
        }
    }

    /// The bytes used as both the HPKE `info` and the AEAD `aad` (lengths u32 big-endian):
    ///
    /// ```text
    /// u32(24) || "hermetic/v1 value-intake" || u32(len(deployment)) || deployment
    ///         || u32(len(name)) || name
    /// ```
    pub fn encode(&self) -> Result<Vec<u8>, EnvelopeError> {
        let deployment = self.deployment.as_bytes();
        let name = self.name.as_bytes();
        let label_len = bounded_len("label", INTAKE_LABEL.len(), INTAKE_LABEL.len())?;
        let deployment_len = bounded_len("deployment", deployment.len(), MAX_DEPLOYMENT_LEN)?;
        let name_len = bounded_len("name", name.len(), MAX_NAME_LEN)?;
        let mut out = Vec::with_capacity(12 + INTAKE_LABEL.len() + deployment.len() + name.len());
        out.extend_from_slice(&label_len.to_be_bytes());
        out.extend_from_slice(INTAKE_LABEL);
        out.extend_from_slice(&deployment_len.to_be_bytes());
        out.extend_from_slice(deployment);
        out.extend_from_slice(&name_len.to_be_bytes());
        out.extend_from_slice(name);
        Ok(out)
    }
}

/// A value sealed to an intake key. Nothing here is secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedValue {
    /// HPKE encapsulated key, [`ENC_LEN`] bytes.
    pub enc: Vec<u8>,
    /// ChaCha20Poly1305 ciphertext followed by its tag.
    pub ciphertext: Vec<u8>,
}

impl SealedValue {
    /// `enc || ciphertext`: the bytes a change statement's `content-sha256` covers.
    pub fn to_bytes(&self) -> Vec<u8> {
        [self.enc.as_slice(), self.ciphertext.as_slice()].concat()
    }

    /// Splits `enc || ciphertext`; refuses anything too short to hold an `enc` and a tag.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        if bytes.len() < ENC_LEN + TAG_LEN {
            return Err(EnvelopeError::OpenFailed);
        }
        let (enc, ciphertext) = bytes.split_at(ENC_LEN);
        Ok(SealedValue {
            enc: enc.to_vec(),
            ciphertext: ciphertext.to_vec(),
        })
    }
}

/// Seals `value` to the intake key `recipient` for `ctx`.
pub fn seal_value(
    recipient: &RecipientPublicKey,
    ctx: &IntakeContext,
    value: &[u8],
    rng: &dyn SecureRandom,
) -> Result<SealedValue, EnvelopeError> {
    let info = ctx.encode()?;
    let mut fill = |buf: &mut [u8]| rng.fill(buf).map_err(|_| ());
    let (enc, ciphertext) = suite::seal_base(&recipient.0, &info, &info, value, &mut fill)?;
    Ok(SealedValue { enc, ciphertext })
}

/// Opens a value sealed for exactly `expected`; any other key, deployment or name, or any
/// altered byte, gives [`EnvelopeError::OpenFailed`].
pub fn open_value(
    key: &EnclaveKey,
    sealed: &SealedValue,
    expected: &IntakeContext,
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let info = expected.encode()?;
    suite::open_base(key.secret(), &sealed.enc, &info, &info, &sealed.ciphertext)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;

    #[test]
    fn encoding_is_pinned() {
        let mut expected = vec![0, 0, 0, 24];
        expected.extend_from_slice(b"hermetic/v1 value-intake");
        expected.extend_from_slice(&[0, 0, 0, 1, b'd', 0, 0, 0, 2, b'd', b'b']);
        assert_eq!(IntakeContext::new("d", "db").encode().unwrap(), expected);
        // Field boundaries are unambiguous.
        assert_ne!(
            IntakeContext::new("ab", "c").encode().unwrap(),
            IntakeContext::new("a", "bc").encode().unwrap()
        );
    }

    #[test]
    fn a_value_opens_only_for_its_key_deployment_and_name() {
        let rng = SystemRandom::new();
        let key = EnclaveKey::from_ikm(&[9; 32]).unwrap();
        let ctx = IntakeContext::new("hermetic-1", "db");
        let sealed = seal_value(&key.recipient(), &ctx, b"hunter2", &rng).unwrap();
        assert_eq!(sealed.enc.len(), ENC_LEN);
        assert_eq!(sealed.ciphertext.len(), 7 + TAG_LEN);
        let bytes = sealed.to_bytes();
        let again = SealedValue::from_bytes(&bytes).unwrap();
        assert_eq!(
            open_value(&key, &again, &ctx).unwrap().as_slice(),
            b"hunter2"
        );

        let other_key = EnclaveKey::from_ikm(&[8; 32]).unwrap();
        assert_eq!(
            open_value(&other_key, &sealed, &ctx),
            Err(EnvelopeError::OpenFailed)
        );
        for wrong in [
            IntakeContext::new("hermetic-2", "db"),
            IntakeContext::new("hermetic-1", "dc"),
        ] {
            assert_eq!(
                open_value(&key, &sealed, &wrong),
                Err(EnvelopeError::OpenFailed)
            );
        }
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        let flipped = SealedValue::from_bytes(&flipped).unwrap();
        assert_eq!(
            open_value(&key, &flipped, &ctx),
            Err(EnvelopeError::OpenFailed)
        );
        assert!(SealedValue::from_bytes(&bytes[..ENC_LEN + TAG_LEN - 1]).is_err());
    }

    #[test]
    fn a_release_envelope_is_not_an_intake_value() {
        // The same key and bytes under the release context do not open as intake.
        let rng = SystemRandom::new();
        let key = EnclaveKey::from_ikm(&[9; 32]).unwrap();
        let release = crate::seal(
            &key.recipient(),
            &crate::ReleaseContext::new("db", 1, vec![1; 32]),
            b"v",
            &rng,
        )
        .unwrap();
        let as_intake = SealedValue {
            enc: release.enc,
            ciphertext: release.ciphertext,
        };
        assert!(open_value(&key, &as_intake, &IntakeContext::new("x", "db")).is_err());
    }
}
