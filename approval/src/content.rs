//! The content a statement names, decoded and validated for its action (fail closed).

use hermetic_policy::{PolicyFile, SecretPolicy};

use crate::owners::{OwnerSet, OwnerSetError};
use crate::statement::Action;

/// Bytes of the HPKE `enc` and the AEAD tag around a sealed value (X25519 DHKEM,
/// ChaCha20Poly1305; RFC 9180 section 7.1 and RFC 8439 section 2.8): a sealed value is longer.
const SEALED_OVERHEAD: usize = 32 + 16;

/// Longest policy content. The verifier logs the whole policy in the
/// change's record, and a log record is at most 16 KiB; 8 KiB holds a dozen
/// measurement sets naming all six PCRs, or fifty naming one.
pub const MAX_POLICY_LEN: usize = 8 * 1024;

/// Validated content of an approved change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// The new policy, and its TOML exactly as the owners signed it (for the log).
    Policy {
        policy: SecretPolicy,
        toml: String,
    },
    /// `enc || ciphertext` of the value sealed to the verifier's intake key; only the
    /// verifier opens it.
    Value {
        sealed: Vec<u8>,
    },
    Owners(OwnerSet),
    Delete,
}

/// Why content does not fit its action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    #[error("the policy is not UTF-8")]
    PolicyNotUtf8,
    #[error("invalid policy: {0}")]
    Policy(#[source] hermetic_policy::Error),
    #[error("the policy must hold exactly one stanza, [secrets.{secret}]")]
    PolicyStanza { secret: String },
    #[error("the policy is {0} bytes; at most {MAX_POLICY_LEN} are accepted")]
    PolicyTooLarge(usize),
    #[error("the policy is not in its canonical form (as `change propose policy` writes it: no comments, fields in order)")]
    PolicyNotCanonical,
    #[error("the owner set is not UTF-8")]
    OwnersNotUtf8,
    #[error("invalid owner set: {0}")]
    Owners(#[source] OwnerSetError),
    #[error("a sealed value is more than {SEALED_OVERHEAD} bytes (enc, tag and a value of one byte or more), not {0}")]
    SealedTooShort(usize),
    #[error("a delete carries no content")]
    DeleteWithContent,
}

impl Content {
    /// Decodes `content` for `action` on `secret`.
    pub fn decode(action: Action, secret: &str, content: &[u8]) -> Result<Content, ContentError> {
        match action {
            Action::Policy => {
                if content.len() > MAX_POLICY_LEN {
                    return Err(ContentError::PolicyTooLarge(content.len()));
                }
                let toml = std::str::from_utf8(content).map_err(|_| ContentError::PolicyNotUtf8)?;
                let mut file = PolicyFile::parse(toml).map_err(ContentError::Policy)?;
                let policy = match (file.secrets.len(), file.secrets.remove(secret)) {
                    (1, Some(policy)) => policy,
                    _ => {
                        return Err(ContentError::PolicyStanza {
                            secret: secret.to_owned(),
                        })
                    }
                };
                // One text per policy: what the owners signed is what is
                // stored, logged and printed by `policy get`.
                if policy.to_toml(secret) != toml {
                    return Err(ContentError::PolicyNotCanonical);
                }
                Ok(Content::Policy {
                    policy,
                    toml: toml.to_owned(),
                })
            }
            Action::Value => {
                if content.len() <= SEALED_OVERHEAD {
                    return Err(ContentError::SealedTooShort(content.len()));
                }
                Ok(Content::Value {
                    sealed: content.to_vec(),
                })
            }
            Action::Owners => {
                let text = std::str::from_utf8(content).map_err(|_| ContentError::OwnersNotUtf8)?;
                OwnerSet::parse(text)
                    .map(Content::Owners)
                    .map_err(ContentError::Owners)
            }
            Action::Delete if content.is_empty() => Ok(Content::Delete),
            Action::Delete => Err(ContentError::DeleteWithContent),
        }
    }
}
