//! The owner's side of a change: building the statement file (`change
//! propose`) and adding one owner's signature to it (`change sign`, offline).
//! Submitting is [`AdminClient::submit_change`](super::AdminClient::submit_change).

use aws_lc_rs::rand::SecureRandom;
use hermetic_approval::{
    statement_of, Action, Content, OwnerSet, Refusal, SealedValueB64, Signer, Statement,
    StatementFile,
};
use hermetic_envelope::{seal_value, EnvelopeError, IntakeContext, RecipientPublicKey, Zeroizing};
use hermetic_policy::PolicyFile;
use hermetic_tlog::note::{self, NoteError};

/// What a statement will change.
pub enum Proposal {
    /// `toml` is a policy file holding `[secrets.NAME]` (other stanzas are ignored).
    Policy {
        name: String,
        toml: String,
    },
    /// The value is sealed to the intake key here and never written anywhere.
    Value {
        name: String,
        value: Zeroizing<Vec<u8>>,
    },
    Owners {
        name: String,
        owners: OwnerSet,
    },
    Delete {
        name: String,
    },
}

impl Proposal {
    pub fn name(&self) -> &str {
        match self {
            Proposal::Policy { name, .. }
            | Proposal::Value { name, .. }
            | Proposal::Owners { name, .. }
            | Proposal::Delete { name } => name,
        }
    }

    pub fn action(&self) -> Action {
        match self {
            Proposal::Policy { .. } => Action::Policy,
            Proposal::Value { .. } => Action::Value,
            Proposal::Owners { .. } => Action::Owners,
            Proposal::Delete { .. } => Action::Delete,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    #[error("{0}")]
    Policy(#[from] hermetic_policy::Error),
    #[error("the policy file has no [secrets.{0}]")]
    NoStanza(String),
    #[error("sealing the value: {0}")]
    Seal(#[from] EnvelopeError),
    #[error("a value change needs the deployment's intake key")]
    NoIntakeKey,
    #[error("an empty value cannot be stored")]
    EmptyValue,
    #[error("{0}")]
    Client(#[from] super::ClientError),
    #[error("wrong_deployment: the service at this URL is deployment {service}, not {given}")]
    WrongDeployment { service: String, given: String },
    #[error("verifier_intake_key_mismatch: the service's intake key is not the one its attestation document binds")]
    IntakeKeyNotAttested,
    #[error("the service's intake key is not a base64 X25519 public key")]
    BadIntakeKey,
}

/// The policy content for `name`: its stanza of a policy file, validated
/// (fail closed) and written in the one canonical form.
pub fn policy_content(file_text: &str, name: &str) -> Result<String, ProposeError> {
    let mut file = PolicyFile::parse(file_text)?;
    let policy = file
        .secrets
        .remove(name)
        .ok_or_else(|| ProposeError::NoStanza(name.to_owned()))?;
    Ok(policy.to_toml(name))
}

/// Builds an unsigned statement file for `deployment` at `version`. A value
/// is sealed to `intake` (the deployment's intake key) for this deployment
/// and secret; the file holds only the sealed form.
pub fn propose(
    proposal: &Proposal,
    deployment: &str,
    version: u64,
    intake: Option<&RecipientPublicKey>,
    rng: &dyn SecureRandom,
) -> Result<StatementFile, ProposeError> {
    let name = proposal.name();
    let (content, sealed_value, bytes) = match proposal {
        Proposal::Policy { toml, .. } => {
            let text = policy_content(toml, name)?;
            let bytes = text.clone().into_bytes();
            (Some(text), None, bytes)
        }
        Proposal::Owners { owners, .. } => {
            let text = owners.to_text();
            let bytes = text.clone().into_bytes();
            (Some(text), None, bytes)
        }
        Proposal::Value { value, .. } => {
            if value.is_empty() {
                return Err(ProposeError::EmptyValue);
            }
            let intake = intake.ok_or(ProposeError::NoIntakeKey)?;
            let sealed = seal_value(intake, &IntakeContext::new(deployment, name), value, rng)?;
            let b64 = SealedValueB64::new(&sealed.enc, &sealed.ciphertext);
            (None, Some(b64), sealed.to_bytes())
        }
        Proposal::Delete { .. } => (None, None, Vec::new()),
    };
    let statement = Statement::new(deployment, name, proposal.action(), version, &bytes);
    Ok(StatementFile {
        statement: statement.to_text(),
        content,
        sealed_value,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The file is not a well-formed statement whose content matches it;
    /// an owner should not sign it.
    #[error("{}: {refusal}", refusal.reason())]
    Refused {
        #[from]
        refusal: Refusal,
    },
    #[error("signing: {0}")]
    Note(#[from] NoteError),
}

/// Checks that the file is a statement whose content is what it names and
/// is valid for its action, then adds `signer`'s signature (a key that
/// already signed is not added twice). No network.
pub fn sign(
    file: &StatementFile,
    signer: &Signer,
) -> Result<(StatementFile, Statement), SignError> {
    let statement = statement_of(file.statement.as_bytes())?;
    let content = file.content_bytes(statement.action)?;
    let actual = hermetic_approval::content_sha256(&content);
    if actual != statement.content_sha256 {
        return Err(Refusal::ContentMismatch {
            expected: hermetic_approval::Sha256Hex(statement.content_sha256),
            actual: hermetic_approval::Sha256Hex(actual),
        }
        .into());
    }
    Content::decode(statement.action, &statement.secret, &content).map_err(Refusal::from)?;
    let signed = if file.statement == statement.to_text() {
        note::sign(&file.statement, &[signer])?
    } else {
        note::add_signatures(file.statement.as_bytes(), &[signer])?
    };
    Ok((
        StatementFile {
            statement: signed,
            ..file.clone()
        },
        statement,
    ))
}

/// What an owner is about to sign, for people (the content is shown for a
/// policy or owner set; a value is sealed and shown only by its hash).
pub fn describe(file: &StatementFile, statement: &Statement) -> String {
    let mut out = statement.to_text();
    match statement.action {
        Action::Policy | Action::Owners => {
            out.push_str("--- content ---\n");
            out.push_str(file.content.as_deref().unwrap_or(""));
        }
        Action::Value => {
            out.push_str("--- content: a value sealed to the deployment's intake key ---\n")
        }
        Action::Delete => {
            out.push_str("--- deletes every value version, the policy and the owners ---\n")
        }
    }
    out
}

/// Creates `path` (never overwriting) with mode 0600 holding the signer's
/// private key string, and syncs it.
pub fn write_private_key(path: &std::path::Path, signer: &Signer) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    let key = signer.private_key_string();
    file.write_all(key.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// Replaces `path` with `bytes` atomically: a temporary file beside it,
/// synced, then renamed over it (a reader sees the old or the new file,
/// never a partial one).
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("not a file path"))?
        .to_string_lossy()
        .into_owned();
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
