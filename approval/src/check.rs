//! The K-of-N check: a signed statement, its content and the secret's current state in;
//! an approved, validated change or a typed refusal out. Pure: no I/O, no clock.

use std::fmt;

use hermetic_tlog::note::{self, NoteError, VerifierKey};

use crate::content::{Content, ContentError};
use crate::owners::{key_label, OwnerSet, OwnerSetError};
use crate::reason::Reason;
use crate::statement::{content_sha256, MalformedStatement, Statement, MAX_STATEMENT_LEN};

/// A change that K distinct owners approved, with its content validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approved {
    pub statement: Statement,
    /// The distinct owners whose signatures verified, in owner-set order.
    pub approvers: Vec<VerifierKey>,
    pub content: Content,
}

/// Lower-case hex of a SHA-256, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sha256Hex(pub [u8; 32]);

impl fmt::Display for Sha256Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// Why a statement was refused. [`Refusal::reason`] gives the stable code.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("not a signed note: {0}")]
    MalformedNote(#[source] NoteError),
    #[error("the note's text is not UTF-8")]
    NotUtf8,
    #[error("{0}")]
    MalformedStatement(#[from] MalformedStatement),
    #[error("the statement file: {0}")]
    MalformedFile(&'static str),
    #[error("the statement is for deployment {statement:?}; this is {expected:?}")]
    WrongDeployment { statement: String, expected: String },
    #[error("the statement is for secret {statement:?}, not {expected:?}")]
    WrongSecret { statement: String, expected: String },
    #[error("signature by {signer}, which is not an owner of the secret")]
    UnknownOwner { signer: String },
    #[error("the signature of owner {owner} does not verify")]
    BadSignature { owner: String },
    #[error("{approvals} distinct owner approval(s); the threshold is {threshold}")]
    NotEnoughApprovals { approvals: usize, threshold: u32 },
    #[error("version {version} is not above the secret's current version {current}")]
    StaleVersion { version: u64, current: u64 },
    #[error("the content's SHA-256 is {actual}; the statement names {expected}")]
    ContentMismatch {
        expected: Sha256Hex,
        actual: Sha256Hex,
    },
    #[error("{0}")]
    Content(#[from] ContentError),
    #[error("invalid owner set: {0}")]
    OwnerSet(#[from] OwnerSetError),
}

impl Refusal {
    pub fn reason(&self) -> Reason {
        match self {
            Refusal::MalformedNote(_)
            | Refusal::NotUtf8
            | Refusal::MalformedStatement(_)
            | Refusal::MalformedFile(_) => Reason::MalformedStatement,
            Refusal::WrongDeployment { .. } => Reason::WrongDeployment,
            Refusal::WrongSecret { .. } => Reason::WrongSecret,
            Refusal::UnknownOwner { .. } => Reason::UnknownOwner,
            Refusal::BadSignature { .. } => Reason::BadSignature,
            Refusal::NotEnoughApprovals { .. } => Reason::NotEnoughApprovals,
            Refusal::StaleVersion { .. } => Reason::StaleVersion,
            Refusal::ContentMismatch { .. } => Reason::ContentMismatch,
            Refusal::Content(ContentError::Policy(_))
            | Refusal::Content(ContentError::PolicyNotUtf8)
            | Refusal::Content(ContentError::PolicyStanza { .. })
            | Refusal::Content(ContentError::PolicyTooLarge(_))
            | Refusal::Content(ContentError::PolicyNotCanonical) => Reason::InvalidPolicy,
            Refusal::Content(ContentError::Owners(_))
            | Refusal::Content(ContentError::OwnersNotUtf8)
            | Refusal::OwnerSet(_) => Reason::InvalidOwnerSet,
            Refusal::Content(_) => Reason::InvalidContent,
        }
    }
}

/// A statement as submitted: either the bare statement text (proposed, no signature yet) or a
/// signed note whose text is the statement.
fn split(note_bytes: &[u8]) -> Result<(Statement, bool), Refusal> {
    let text = std::str::from_utf8(note_bytes).map_err(|_| Refusal::NotUtf8)?;
    // A statement never holds a blank line; a signed note always does (C2SP signed-note:
    // the text, a blank line, the signature lines).
    if text.len() <= MAX_STATEMENT_LEN && !text.contains("\n\n") {
        return Ok((Statement::parse(text)?, false));
    }
    let parsed = note::parse(note_bytes).map_err(Refusal::MalformedNote)?;
    Ok((Statement::parse(&parsed.text)?, true))
}

/// The statement inside a submitted note (signed or not), without checking any signature:
/// what a verifier needs to find the secret whose owners must have signed.
pub fn statement_of(note_bytes: &[u8]) -> Result<Statement, Refusal> {
    split(note_bytes).map(|(statement, _)| statement)
}

/// Checks a submitted statement for `secret` of `deployment`, whose owner set is `owners` and
/// current version `current_version`. In order: the note and statement syntax, the
/// deployment, the secret, every signature (a signer outside the owner set is refused; an
/// owner's signature that fails is refused; one key signing twice counts once), the
/// threshold, the version, the content's hash, the content itself.
pub fn check(
    note_bytes: &[u8],
    content: &[u8],
    deployment: &str,
    secret: &str,
    owners: &OwnerSet,
    current_version: u64,
) -> Result<Approved, Refusal> {
    let (statement, signed) = split(note_bytes)?;
    if statement.deployment != deployment {
        return Err(Refusal::WrongDeployment {
            statement: statement.deployment,
            expected: deployment.to_owned(),
        });
    }
    if statement.secret != secret {
        return Err(Refusal::WrongSecret {
            statement: statement.secret,
            expected: secret.to_owned(),
        });
    }
    let mut approvers: Vec<VerifierKey> = Vec::new();
    if signed {
        let opened = note::open(note_bytes, owners.owners()).map_err(|e| match e {
            NoteError::BadSignature { name, key_id } => Refusal::BadSignature {
                owner: format!("{name}+{key_id:08x}"),
            },
            // Signed, but by no owner: name the first signer.
            NoteError::NoKnownSignature => match note::parse(note_bytes) {
                Ok(parsed) if !parsed.signatures.is_empty() => Refusal::UnknownOwner {
                    signer: format!(
                        "{}+{:08x}",
                        parsed.signatures[0].name, parsed.signatures[0].key_id
                    ),
                },
                _ => Refusal::MalformedNote(NoteError::NoKnownSignature),
            },
            other => Refusal::MalformedNote(other),
        })?;
        if let Some(sig) = opened.unverified.first() {
            return Err(Refusal::UnknownOwner {
                signer: format!("{}+{:08x}", sig.name, sig.key_id),
            });
        }
        // Owner sets hold distinct public keys; this keeps one key counting once even if the
        // note library returned it twice.
        for key in owners.owners() {
            if opened.verified.contains(key) && !approvers.contains(key) {
                approvers.push(key.clone());
            }
        }
    }
    if approvers.len() < owners.threshold() as usize {
        return Err(Refusal::NotEnoughApprovals {
            approvals: approvers.len(),
            threshold: owners.threshold(),
        });
    }
    if statement.version <= current_version {
        return Err(Refusal::StaleVersion {
            version: statement.version,
            current: current_version,
        });
    }
    let actual = content_sha256(content);
    if actual != statement.content_sha256 {
        return Err(Refusal::ContentMismatch {
            expected: Sha256Hex(statement.content_sha256),
            actual: Sha256Hex(actual),
        });
    }
    let content = Content::decode(statement.action, &statement.secret, content)?;
    Ok(Approved {
        statement,
        approvers,
        content,
    })
}

/// The labels (`name+hhhhhhhh`) of approvers, for the log.
pub fn approver_labels(approvers: &[VerifierKey]) -> Vec<String> {
    approvers.iter().map(key_label).collect()
}
