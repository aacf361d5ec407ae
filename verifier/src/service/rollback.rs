//! What the log says each secret's change version is, so a store whose
//! rows were put back together (a consistent older copy of a secret, or of
//! the whole file) is refused: the store alone cannot tell such a copy from
//! the current one (`store/mod.rs`), the log can, because every applied
//! change is appended (and synced) before the store commits it.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

use crate::log::{Entry, LOG_FILE};

/// [`change_versions`] over `DIR/audit.jsonl`, read line by line (each
/// line a record, or a record wrapped with its chain hash as `record`).
/// Run at start, after the log was opened (and its tail checked).
pub(crate) fn logged_change_versions(data_dir: &Path) -> Result<BTreeMap<String, u64>, String> {
    let path = data_dir.join(LOG_FILE);
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut out = BTreeMap::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("{}: {e}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| format!("{} line {}: {e}", path.display(), n + 1))?;
        let record = value.get("record").unwrap_or(&value);
        let Some(entry) = record.get("entry") else {
            return Err(format!("{} line {}: no entry", path.display(), n + 1));
        };
        let entry: Entry = serde_json::from_value(entry.clone())
            .map_err(|e| format!("{} line {}: {e}", path.display(), n + 1))?;
        merge(&mut out, change_versions([&entry]));
    }
    Ok(out)
}

fn merge(into: &mut BTreeMap<String, u64>, from: BTreeMap<String, u64>) {
    for (name, version) in from {
        let floor = into.entry(name).or_default();
        *floor = (*floor).max(version);
    }
}

/// The greatest change version each secret reached according to the log's
/// `secret_create` and `change_applied` records (the store's heads must not
/// be below it). Other records, and refused changes, say nothing about it.
pub(crate) fn change_versions<'a>(
    entries: impl IntoIterator<Item = &'a Entry>,
) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for entry in entries {
        if !matches!(entry.action.as_str(), "secret_create" | "change_applied")
            || entry.verdict != "done"
        {
            continue;
        }
        let (Some(secret), Some(version)) = (
            entry.secrets.first(),
            entry.change.as_ref().and_then(|c| c.version),
        ) else {
            continue;
        };
        let floor = out.entry(secret.name.clone()).or_default();
        *floor = (*floor).max(version);
    }
    out
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

    #[test]
    fn the_greatest_applied_change_version_per_secret() {
        let entries = [
            entry("secret_create", "done", "a", 0),
            entry("change_applied", "done", "a", 2),
            entry("change_applied", "done", "a", 1),
            // A refused change, a release naming a value version, and a
            // change for another secret do not raise a's.
            entry("change_refused", "refused", "a", 7),
            entry("release", "granted", "a", 9),
            entry("change_applied", "done", "b", 5),
            entry("secret_create", "done", "c", 4),
        ];
        assert_eq!(
            change_versions(&entries),
            [("a".into(), 2), ("b".into(), 5), ("c".into(), 4)].into()
        );
        assert!(change_versions(&[]).is_empty());
    }
}
