//! What the log says each secret's change version is, so a store whose
//! rows were put back together (a consistent older copy of a secret, or of
//! the whole file) is refused: the store alone cannot tell such a copy from
//! the current one (`store/mod.rs`), the log can.
//!
//! An applied change is appended (and synced) to the log *before* the store
//! commits it, so the last change a verifier logged before it was killed
//! may never have been committed. Store write transactions run one at a
//! time and every change-type record (`change_applied`, `change_refused`,
//! `secret_create`) is written inside or after one, so a change record
//! followed by another change-type record finished its transaction. Only
//! the last change record before a `start` record (or the log's end) is
//! unconfirmed: its secret is held to the version before it, and a store
//! behind it is reported (`change_unconfirmed`), not refused.

use std::collections::BTreeMap;

use crate::log::{Entry, SharedLog, ACTION_START};

/// What the log says about each secret's change version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LoggedVersions {
    /// Per secret, the greatest change version surely committed.
    pub floors: BTreeMap<String, u64>,
    /// Changes logged last before a restart (or the log's end), which a
    /// killed verifier may not have committed: (name, version).
    pub unconfirmed: Vec<(String, u64)>,
    pending: Option<(String, u64)>,
}

impl LoggedVersions {
    /// Folds in the next record, in log order.
    pub(crate) fn push(&mut self, entry: &Entry) {
        let subject = || {
            let name = entry.secrets.first()?.name.clone();
            let version = entry.change.as_ref()?.version?;
            Some((name, version))
        };
        match (entry.action.as_str(), entry.verdict.as_str()) {
            ("change_applied", "done") => {
                self.confirm();
                self.pending = subject();
            }
            ("secret_create", "done") => {
                self.confirm();
                // Logged after its commit: confirmed by itself.
                if let Some((name, version)) = subject() {
                    self.raise(name, version);
                }
            }
            ("change_refused", _) => self.confirm(),
            (ACTION_START, _) => self.unconfirm(),
            _ => {}
        }
    }

    /// After the last record.
    pub(crate) fn finish(mut self) -> Self {
        self.unconfirm();
        self
    }

    fn confirm(&mut self) {
        if let Some((name, version)) = self.pending.take() {
            self.raise(name, version);
        }
    }

    fn unconfirm(&mut self) {
        if let Some(pending) = self.pending.take() {
            self.unconfirmed.push(pending);
        }
    }

    fn raise(&mut self, name: String, version: u64) {
        let floor = self.floors.entry(name).or_default();
        *floor = (*floor).max(version);
    }
}

/// [`LoggedVersions`] over every leaf of the open log (the records its
/// signed checkpoint covers), read a bounded batch at a time.
pub(crate) fn logged_change_versions(log: &SharedLog) -> Result<LoggedVersions, String> {
    const BATCH: u64 = 4096;
    let mut out = LoggedVersions::default();
    let size = log.size().map_err(|e| e.to_string())?;
    let mut start = 0;
    while start < size {
        let end = size.min(start + BATCH);
        let leaves = log.leaves(start, end).map_err(|e| e.to_string())?;
        for (i, leaf) in leaves.iter().enumerate() {
            out.push_record(leaf)
                .map_err(|e| format!("log record {}: {e}", start + i as u64))?;
        }
        start = end;
    }
    Ok(out.finish())
}

impl LoggedVersions {
    /// Folds in one record as the log stores it (a record, or a record
    /// wrapped with its chain hash as `record`).
    pub(crate) fn push_record(&mut self, bytes: &[u8]) -> Result<(), String> {
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let record = value.get("record").unwrap_or(&value);
        let entry = record.get("entry").ok_or("a record without an entry")?;
        let entry: Entry = serde_json::from_value(entry.clone()).map_err(|e| e.to_string())?;
        self.push(&entry);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{ChangeRecord, SecretRef};

    fn entry(action: &str, verdict: &str, name: &str, version: u64) -> Entry {
        Entry {
            action: action.into(),
            verdict: verdict.into(),
            secrets: vec![SecretRef {
                name: name.into(),
                version: Some(99),
            }],
            change: Some(ChangeRecord {
                version: Some(version),
                ..ChangeRecord::default()
            }),
            ..Entry::default()
        }
    }

    fn fold(entries: &[Entry]) -> LoggedVersions {
        let mut out = LoggedVersions::default();
        for e in entries {
            out.push(e);
        }
        out.finish()
    }

    #[test]
    fn the_greatest_committed_change_version_per_secret() {
        let got = fold(&[
            entry(ACTION_START, "done", "", 0),
            entry("secret_create", "done", "a", 0),
            entry("change_applied", "done", "a", 2),
            entry("change_applied", "done", "a", 1),
            // A refused change and a release naming a value version do not
            // raise a's (the refusal confirms the change before it).
            entry("change_refused", "refused", "a", 7),
            entry("release", "granted", "a", 9),
            entry("change_applied", "done", "b", 5),
            entry("secret_create", "done", "c", 4),
            // Logged last before a restart: maybe never committed.
            entry("change_applied", "done", "a", 3),
            entry("release", "granted", "a", 9),
            entry(ACTION_START, "done", "", 0),
            entry("change_applied", "done", "c", 6),
        ]);
        assert_eq!(
            got.floors,
            [("a".into(), 2), ("b".into(), 5), ("c".into(), 4)].into()
        );
        assert_eq!(
            got.unconfirmed,
            vec![("a".to_owned(), 3), ("c".to_owned(), 6)]
        );
        assert_eq!(fold(&[]), LoggedVersions::default());
    }

    #[test]
    fn records_are_read_bare_or_wrapped_and_junk_is_an_error() {
        let entry = serde_json::to_value(entry("change_applied", "done", "a", 4)).unwrap();
        let bare = serde_json::json!({"seq": 1, "time": "t", "entry": entry});
        let wrapped = serde_json::json!({"record": bare.clone(), "hash": "h"});
        for record in [&bare, &wrapped] {
            let mut got = LoggedVersions::default();
            got.push_record(record.to_string().as_bytes()).unwrap();
            got.push(&Entry {
                action: "change_refused".into(),
                ..Entry::default()
            });
            assert_eq!(got.finish().floors, [("a".into(), 4)].into());
        }
        let mut got = LoggedVersions::default();
        assert!(got.push_record(b"{\"seq\": 1}").is_err());
        assert!(got.push_record(b"not json").is_err());
    }
}
