//! # hermetic-approval
//!
//! Owner-approved changes to a secret. Every change (its value, its policy, its owner set,
//! deleting it) is a [`Statement`] naming the deployment, the secret, the action, a version
//! above the current one and the SHA-256 of the exact new content; it takes effect only with
//! valid Ed25519 signatures of K distinct owners out of the secret's [`OwnerSet`].
//!
//! The statement is the text of a C2SP signed note (`hermetic_tlog::note`, Go's
//! `golang.org/x/mod/sumdb/note` format): several owners sign one note, each adding a
//! signature line, offline. [`check`] takes the submitted note, the content, and the
//! secret's current state and returns an [`Approved`] change or a [`Refusal`] whose
//! [`Reason`] is a stable snake_case code.
//!
//! Pure: no I/O, no clock, no randomness; the verifier does the storing and logging.

mod check;
mod content;
mod file;
mod owners;
mod reason;
mod statement;

pub use check::{approver_labels, check, statement_of, Approved, Refusal, Sha256Hex};
pub use content::{Content, ContentError, MAX_POLICY_LEN};
pub use file::{SealedValueB64, StatementFile, MAX_FILE_LEN};
pub use hermetic_tlog::note::{Signer, VerifierKey};
pub use owners::{
    check_owner_name, key_label, OwnerSet, OwnerSetError, MAX_OWNERS, MAX_OWNER_NAME_LEN,
};
pub use reason::Reason;
pub use statement::{
    check_deployment_id, content_sha256, Action, MalformedStatement, Statement, HEADER,
    MAX_STATEMENT_LEN,
};
