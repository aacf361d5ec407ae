//! Creating secrets and applying owner-approved changes: the glue between the
//! pure K-of-N check (`hermetic-approval`), the store and the audit log.
//!
//! A submitted change is checked inside the store's write transaction (so two
//! submissions never both pass against one version), its `change_applied`
//! record is appended and synced before the transaction commits, and every
//! refusal is answered with its reason and logged as `change_refused`.

use aws_lc_rs::digest::{digest, SHA256};
use axum::http::StatusCode;
use hermetic_approval::{
    approver_labels, check, key_label, statement_of, Action, Content, OwnerSet,
    Reason as ApprovalReason, Refusal, Statement, StatementFile,
};
use hermetic_envelope::{open_value, IntakeContext, SealedValue};
use serde::{Deserialize, Serialize};

use super::refusal::{ApiRefusal, Reason};
use super::state::AppState;
use crate::log::{ChangeRecord, Entry, SecretRef, Who};
use crate::store::{Applied, StoreChange, StoreError};

/// Body of `POST /admin/v1/secrets/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSecret {
    /// Signed-note verifier keys of the owners.
    pub owners: Vec<String>,
    /// How many distinct owners must sign each change.
    pub threshold: u32,
}

/// Answer to a create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Created {
    pub name: String,
    pub version: u64,
    pub owners: Vec<String>,
    pub threshold: u32,
}

/// Answer to an applied change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChangeApplied {
    pub name: String,
    pub action: String,
    /// The secret's change version now.
    pub version: u64,
    /// For a value change: the new value version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_version: Option<u64>,
    /// For a delete: the value versions removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted_versions: Vec<u64>,
    /// `name+hhhhhhhh` of each approving owner.
    pub approvers: Vec<String>,
    /// SHA-256 of the submitted note, as logged.
    pub statement_sha256: String,
}

/// `GET /admin/v1/deployment`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeploymentInfo {
    /// Every change statement must name it.
    pub deployment: String,
    /// The X25519 key that values are sealed to (`change propose value`),
    /// standard base64.
    pub intake_public_key: String,
}

/// Why a change was not applied.
#[derive(Debug)]
enum NotApplied {
    Refused(Refusal),
    /// The sealed value does not open with this deployment's intake key for
    /// this secret (sealed for another verifier or another secret).
    SealedValue,
    Store(StoreError),
    /// The change record could not be written, so nothing was committed.
    Log(ApiRefusal),
}

impl From<StoreError> for NotApplied {
    fn from(e: StoreError) -> Self {
        NotApplied::Store(e)
    }
}

impl From<Refusal> for NotApplied {
    fn from(r: Refusal) -> Self {
        NotApplied::Refused(r)
    }
}

/// Why a creation did not commit: the store, or its record.
enum CreateFailed {
    Store(StoreError),
    Log(ApiRefusal),
}

impl From<StoreError> for CreateFailed {
    fn from(e: StoreError) -> Self {
        CreateFailed::Store(e)
    }
}

fn approval_refusal(refusal: &Refusal) -> ApiRefusal {
    let reason = refusal.reason();
    let status = match reason {
        ApprovalReason::MalformedStatement
        | ApprovalReason::InvalidPolicy
        | ApprovalReason::InvalidOwnerSet
        | ApprovalReason::InvalidContent => StatusCode::BAD_REQUEST,
        _ => StatusCode::FORBIDDEN,
    };
    ApiRefusal::new(status, Reason::from(reason), refusal.to_string())
}

pub(super) fn store_refusal(e: &StoreError) -> ApiRefusal {
    match e {
        StoreError::NotFound(name) => ApiRefusal::new(
            StatusCode::NOT_FOUND,
            Reason::UnknownSecret,
            format!("no secret named {name:?}"),
        ),
        StoreError::Exists(name) => ApiRefusal::new(
            StatusCode::CONFLICT,
            Reason::SecretExists,
            format!("a secret named {name:?} exists; its owners change it"),
        ),
        StoreError::NoOwners(_) => ApiRefusal::forbidden(Reason::NoOwners, e.to_string()),
        StoreError::Unavailable(_) => {
            tracing::error!(event = "store_unavailable", error = %e);
            super::state::store_unavailable()
        }
        // A row altered or put back by whoever writes the data directory:
        // refused with its reason, never used.
        e if e.is_row_refusal() => {
            tracing::error!(event = "store_row_refused", reason = %e.reason(), error = %e);
            ApiRefusal::forbidden(Reason::of(e.reason()), e.to_string())
        }
        other => {
            tracing::error!(event = "store_failed", error = %other);
            ApiRefusal::internal(
                Reason::StoreError,
                "the store could not complete the request",
            )
        }
    }
}

impl NotApplied {
    fn refusal(&self) -> ApiRefusal {
        match self {
            NotApplied::Refused(r) => approval_refusal(r),
            NotApplied::SealedValue => ApiRefusal::forbidden(
                Reason::SealedValueUnreadable,
                "the sealed value does not open with this deployment's intake key for this secret",
            ),
            NotApplied::Store(e) => store_refusal(e),
            NotApplied::Log(r) => r.clone(),
        }
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(digest(&SHA256, bytes))
}

impl AppState {
    /// `GET /admin/v1/deployment`.
    pub fn deployment_info(&self) -> DeploymentInfo {
        use base64::Engine as _;
        DeploymentInfo {
            deployment: self.store.deployment().to_owned(),
            intake_public_key: base64::engine::general_purpose::STANDARD
                .encode(self.intake.public_key_bytes()),
        }
    }

    /// Creates `name` with its owner set. The admin token can do this and
    /// nothing more: every later change needs the owners.
    pub fn create_secret(
        &self,
        name: &str,
        request: &CreateSecret,
        admin: &str,
    ) -> Result<Created, ApiRefusal> {
        let owners = OwnerSet::from_strings(&request.owners, request.threshold)
            .map_err(|e| approval_refusal(&Refusal::OwnerSet(e)))?;
        let owner_keys: Vec<String> = owners.owners().iter().map(ToString::to_string).collect();
        // The log size to sign once the creation and its record committed.
        let end = std::sync::Mutex::new(None);
        let version = self
            .store
            .create_secret_logged(name, &owners, |version, tx| {
                let entry = Entry {
                    action: "secret_create".into(),
                    verdict: "done".into(),
                    reason: None,
                    secrets: vec![SecretRef {
                        name: name.to_owned(),
                        version: None,
                    }],
                    who: admin_who(admin),
                    change: Some(ChangeRecord {
                        version: Some(version),
                        owners: owner_keys.clone(),
                        threshold: Some(owners.threshold()),
                        ..ChangeRecord::default()
                    }),
                    ..Entry::default()
                };
                self.audit_in(entry, tx, &end).map_err(CreateFailed::Log)
            })
            .map_err(|e| match e {
                CreateFailed::Store(e) => store_refusal(&e),
                CreateFailed::Log(refusal) => refusal,
            })?;
        self.sign_committed(&end);
        tracing::info!(event = "secret_create", name = %name, owners = %owners
                .owners()
                .iter()
                .map(key_label)
                .collect::<Vec<_>>()
                .join(","), threshold = %owners.threshold());
        Ok(Created {
            name: name.to_owned(),
            version,
            owners: owner_keys,
            threshold: owners.threshold(),
        })
    }

    /// `POST /admin/v1/changes`: checks the statement file in `body` against
    /// the secret's owners and applies it, or refuses with a reason. Both
    /// outcomes are logged.
    pub fn submit_change(&self, body: &[u8], admin: &str) -> Result<ChangeApplied, ApiRefusal> {
        let file = StatementFile::from_json(body);
        // What is logged as the statement's hash: the note when the file
        // parses, else the whole body (bounded either way).
        let statement_sha256 = match &file {
            Ok(f) => sha256_hex(f.statement.as_bytes()),
            Err(_) => sha256_hex(body),
        };
        let mut parsed: Option<Statement> = None;
        let result = file.map_err(NotApplied::from).and_then(|file| {
            let statement = statement_of(file.statement.as_bytes())?;
            parsed = Some(statement.clone());
            self.apply(&file, &statement, &statement_sha256, admin)
        });
        match result {
            Ok(applied) => Ok(applied),
            Err(not_applied) => {
                let refusal = not_applied.refusal();
                if !matches!(not_applied, NotApplied::Log(_)) {
                    self.log_refused(&refusal, parsed.as_ref(), &statement_sha256, admin);
                }
                Err(refusal)
            }
        }
    }

    fn apply(
        &self,
        file: &StatementFile,
        statement: &Statement,
        statement_sha256: &str,
        admin: &str,
    ) -> Result<ChangeApplied, NotApplied> {
        let deployment = self.store.deployment();
        if statement.deployment != deployment {
            // Before looking the secret up: a statement for another verifier
            // says so, whatever secrets exist here.
            return Err(Refusal::WrongDeployment {
                statement: statement.deployment.clone(),
                expected: deployment.to_owned(),
            }
            .into());
        }
        let content = file.content_bytes(statement.action)?;
        let name = statement.secret.as_str();
        // The log size to sign once the change and its record committed.
        let end = std::sync::Mutex::new(None);
        let (applied, ok) = self.store.apply_change(
            name,
            |state| {
                let ok = check(
                    file.statement.as_bytes(),
                    &content,
                    deployment,
                    name,
                    &state.owners,
                    state.version,
                )?;
                let change = match &ok.content {
                    Content::Policy { policy, .. } => StoreChange::Policy(policy.clone()),
                    Content::Value { sealed } => {
                        let sealed =
                            SealedValue::from_bytes(sealed).map_err(|_| NotApplied::SealedValue)?;
                        let value = open_value(
                            &self.intake,
                            &sealed,
                            &IntakeContext::new(deployment, name),
                        )
                        .map_err(|_| NotApplied::SealedValue)?;
                        StoreChange::Value(value)
                    }
                    Content::Owners(set) => StoreChange::Owners(set.clone()),
                    Content::Delete => StoreChange::Delete,
                };
                Ok((ok.statement.version, change, ok))
            },
            |ok, applied, tx| {
                self.audit_in(
                    applied_entry(ok, applied, statement_sha256, admin),
                    tx,
                    &end,
                )
                .map_err(NotApplied::Log)
            },
        )?;
        self.sign_committed(&end);
        let approvers = approver_labels(&ok.approvers);
        tracing::info!(event = "change_applied", name = %name, action = %ok.statement.action, version = %applied.version, approvers = %approvers.join(","));
        Ok(ChangeApplied {
            name: name.to_owned(),
            action: ok.statement.action.to_string(),
            version: applied.version,
            value_version: applied.value_version,
            deleted_versions: applied.deleted_versions,
            approvers,
            statement_sha256: statement_sha256.to_owned(),
        })
    }

    fn log_refused(
        &self,
        refusal: &ApiRefusal,
        statement: Option<&Statement>,
        statement_sha256: &str,
        admin: &str,
    ) {
        // Names come only from a statement that parsed (a validated name);
        // everything else in the record has a fixed size.
        let entry = Entry {
            action: "change_refused".into(),
            verdict: "refused".into(),
            reason: Some(refusal.reason.as_str().into()),
            secrets: statement
                .map(|s| SecretRef {
                    name: s.secret.clone(),
                    version: None,
                })
                .into_iter()
                .collect(),
            who: admin_who(admin),
            change: Some(ChangeRecord {
                action: statement.map(|s| s.action.to_string()),
                version: statement.map(|s| s.version),
                statement_sha256: Some(statement_sha256.to_owned()),
                ..ChangeRecord::default()
            }),
            ..Entry::default()
        };
        // A refusal is answered even if it cannot be logged.
        let _ = self.audit(entry);
    }
}

fn admin_who(admin: &str) -> Who {
    Who {
        admin: Some(admin.to_owned()),
        ..Who::default()
    }
}

fn applied_entry(
    ok: &hermetic_approval::Approved,
    applied: &Applied,
    statement_sha256: &str,
    admin: &str,
) -> Entry {
    let statement = &ok.statement;
    let mut change = ChangeRecord {
        action: Some(statement.action.to_string()),
        version: Some(statement.version),
        statement_sha256: Some(statement_sha256.to_owned()),
        content_sha256: Some(hex::encode(statement.content_sha256)),
        approvers: approver_labels(&ok.approvers),
        ..ChangeRecord::default()
    };
    match &ok.content {
        Content::Policy { toml, .. } => change.policy = Some(toml.clone()),
        Content::Owners(set) => {
            change.owners = set.owners().iter().map(ToString::to_string).collect();
            change.threshold = Some(set.threshold());
        }
        Content::Value { .. } | Content::Delete => {}
    }
    let version = match statement.action {
        Action::Value => applied.value_version,
        _ => None,
    };
    Entry {
        action: "change_applied".into(),
        verdict: "done".into(),
        reason: None,
        secrets: vec![SecretRef {
            name: statement.secret.clone(),
            version,
        }],
        who: admin_who(admin),
        change: Some(change),
        ..Entry::default()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hermetic_approval::{Approved, Signer, MAX_OWNERS, MAX_OWNER_NAME_LEN, MAX_POLICY_LEN};
    use hermetic_policy::{PolicyFile, SecretPolicy};

    use super::*;
    use crate::log::{SharedLog, MAX_RECORD_LEN};

    /// The largest change records a valid statement can produce fit under
    /// the log's record cap: a refused record would refuse the change.
    #[test]
    fn the_largest_change_records_fit_the_log() {
        let name = "n".repeat(128);
        // The longest canonical policy under the cap: sets naming all six PCRs.
        let mut policy =
            SecretPolicy::allowing((0u8..=4).chain([8]).map(|i| (i, vec![0xee; 48])).collect());
        policy.max_age_secs = Some(u64::MAX >> 1);
        policy.allow_debug = true;
        while {
            let mut bigger = policy.clone();
            bigger.measurements.push(bigger.measurements[0].clone());
            bigger.to_toml(&name).len() <= MAX_POLICY_LEN
        } {
            let set = policy.measurements[0].clone();
            policy.measurements.push(set);
        }
        let toml = policy.to_toml(&name);
        assert!(toml.len() <= MAX_POLICY_LEN && toml.len() > MAX_POLICY_LEN - 700);
        assert!(PolicyFile::parse(&toml).is_ok());
        let signers: Vec<Signer> = (0..MAX_OWNERS)
            .map(|i| Signer::generate(&format!("{i:~>MAX_OWNER_NAME_LEN$}")).unwrap())
            .collect();
        let keys: Vec<_> = signers.iter().map(Signer::verifier_key).collect();
        assert!(keys.iter().all(|k| k.name().len() == MAX_OWNER_NAME_LEN));
        let owners = OwnerSet::new(keys.clone(), MAX_OWNERS as u32).unwrap();
        let statement =
            |action| Statement::new("d".repeat(128), name.clone(), action, u64::MAX, b"");
        let applied = Applied {
            version: u64::MAX,
            value_version: Some(u64::MAX),
            deleted_versions: vec![],
        };
        let admin = format!("{}:{}", "f".repeat(16), "bootstrap");
        let dir = tempfile::tempdir().unwrap();
        let log =
            SharedLog::open(dir.path(), Signer::generate("hermetic.log/test").unwrap()).unwrap();
        for (action, content) in [
            (Action::Policy, Content::Policy { policy, toml }),
            (Action::Owners, Content::Owners(owners)),
        ] {
            let ok = Approved {
                statement: statement(action),
                approvers: keys.clone(),
                content,
            };
            let entry = applied_entry(&ok, &applied, &"a".repeat(64), &admin);
            let len = serde_json::to_vec(&entry).unwrap().len();
            assert!(len + 300 < MAX_RECORD_LEN, "{action}: {len}");
            eprintln!("largest {action} change record: {len} bytes of JSON");
            log.append(entry, Duration::from_secs(253_402_300_799))
                .unwrap();
        }
    }
}
