//! Why a change statement was refused: one enum, stable snake_case codes.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The stable code of a [`Refusal`](crate::Refusal). Scripts and the audit log rely on these
/// strings; never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Not a signed note, or not a `hermetic-change/v1` statement in the exact form.
    MalformedStatement,
    /// The statement names another deployment (an approval cannot travel between verifiers).
    WrongDeployment,
    /// The statement names another secret than the one it was checked for.
    WrongSecret,
    /// A signature by a key that is not one of the secret's owners.
    UnknownOwner,
    /// An owner's signature that does not verify.
    BadSignature,
    /// Fewer distinct owners signed than the threshold asks for.
    NotEnoughApprovals,
    /// The statement's version is not above the secret's current version.
    StaleVersion,
    /// The content submitted beside the statement is not the content it names.
    ContentMismatch,
    /// The content of a `policy` change is not a valid policy for this secret alone.
    InvalidPolicy,
    /// The content of an `owners` change (or a new secret's owners) is not a valid owner set.
    InvalidOwnerSet,
    /// The content does not fit the action (a `delete` with content, a truncated sealed value).
    InvalidContent,
}

impl Reason {
    /// Every reason, for documentation and tests.
    pub const ALL: [Reason; 11] = [
        Reason::MalformedStatement,
        Reason::WrongDeployment,
        Reason::WrongSecret,
        Reason::UnknownOwner,
        Reason::BadSignature,
        Reason::NotEnoughApprovals,
        Reason::StaleVersion,
        Reason::ContentMismatch,
        Reason::InvalidPolicy,
        Reason::InvalidOwnerSet,
        Reason::InvalidContent,
    ];

    /// The code, e.g. `not_enough_approvals`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MalformedStatement => "malformed_statement",
            Reason::WrongDeployment => "wrong_deployment",
            Reason::WrongSecret => "wrong_secret",
            Reason::UnknownOwner => "unknown_owner",
            Reason::BadSignature => "bad_signature",
            Reason::NotEnoughApprovals => "not_enough_approvals",
            Reason::StaleVersion => "stale_version",
            Reason::ContentMismatch => "content_mismatch",
            Reason::InvalidPolicy => "invalid_policy",
            Reason::InvalidOwnerSet => "invalid_owner_set",
            Reason::InvalidContent => "invalid_content",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_serde_names() {
        for reason in Reason::ALL {
            let json = serde_json::to_string(&reason).unwrap();
            assert_eq!(json, format!("\"{}\"", reason.as_str()));
            assert_eq!(serde_json::from_str::<Reason>(&json).unwrap(), reason);
        }
    }
}
