//! A secret's owner set: Ed25519 verifier keys (C2SP signed-note verifier key strings) and a
//! threshold K, 1 ≤ K ≤ N ≤ [`MAX_OWNERS`].
//!
//! Its canonical text is what an `owners` change statement hashes and what the store keeps:
//! one verifier key string per line, sorted bytewise, then `threshold K`, each line ending in
//! `\n`. Parsing accepts only that exact form.

use hermetic_tlog::note::VerifierKey;

/// Most owners a secret may have.
pub const MAX_OWNERS: usize = 32;

/// Longest owner key name, in bytes. Names go into every change record and
/// into messages, so they are also plain: ASCII graphic characters other
/// than `"` and `\\` (the note format already forbids spaces and `+`).
pub const MAX_OWNER_NAME_LEN: usize = 64;

/// Whether `name` may name an owner key (what `owner keygen` checks first).
pub fn check_owner_name(name: &str) -> Result<(), OwnerSetError> {
    if name.is_empty() || !plain_name(name) {
        return Err(OwnerSetError::BadName);
    }
    Ok(())
}

fn plain_name(name: &str) -> bool {
    name.len() <= MAX_OWNER_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b'+'))
}

/// A validated owner set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerSet {
    /// Sorted by verifier key string; distinct public keys.
    owners: Vec<VerifierKey>,
    threshold: u32,
}

/// Why an owner set was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OwnerSetError {
    #[error("an owner set has 1 to {MAX_OWNERS} owners, not {0}")]
    Count(usize),
    #[error(
        "the threshold must be between 1 and the number of owners ({owners}), not {threshold}"
    )]
    Threshold { threshold: u64, owners: usize },
    #[error("{0} is listed twice (the same public key counts as one owner, whatever its name)")]
    Duplicate(String),
    #[error("an owner key's name is 1 to {MAX_OWNER_NAME_LEN} ASCII letters, digits or punctuation other than '\"', '\\' and '+'")]
    BadName,
    #[error("line {line}: not a signed-note verifier key")]
    BadKey { line: usize },
    #[error("line {line}: {what}")]
    NotCanonical { line: usize, what: &'static str },
}

/// How a key is named in logs and messages: `name+hhhhhhhh` (Go's note key id, hex).
pub fn key_label(key: &VerifierKey) -> String {
    format!("{}+{:08x}", key.name(), key.key_id())
}

impl OwnerSet {
    /// Validates and sorts. Two entries with the same Ed25519 public key are refused even under
    /// different names: one holder must never count as two approvals.
    pub fn new(mut owners: Vec<VerifierKey>, threshold: u32) -> Result<OwnerSet, OwnerSetError> {
        if owners.is_empty() || owners.len() > MAX_OWNERS {
            return Err(OwnerSetError::Count(owners.len()));
        }
        if threshold == 0 || threshold as usize > owners.len() {
            return Err(OwnerSetError::Threshold {
                threshold: threshold.into(),
                owners: owners.len(),
            });
        }
        if owners.iter().any(|k| !plain_name(k.name())) {
            return Err(OwnerSetError::BadName);
        }
        owners.sort_by_key(|k| k.to_string());
        for (i, a) in owners.iter().enumerate() {
            if owners[..i].iter().any(|b| b.public_key() == a.public_key()) {
                return Err(OwnerSetError::Duplicate(key_label(a)));
            }
        }
        Ok(OwnerSet { owners, threshold })
    }

    /// Parses verifier key strings, then as [`OwnerSet::new`].
    pub fn from_strings<S: AsRef<str>>(
        owners: &[S],
        threshold: u32,
    ) -> Result<OwnerSet, OwnerSetError> {
        let keys = owners
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.as_ref()
                    .trim()
                    .parse::<VerifierKey>()
                    .map_err(|_| OwnerSetError::BadKey { line: i + 1 })
            })
            .collect::<Result<Vec<_>, _>>()?;
        OwnerSet::new(keys, threshold)
    }

    pub fn owners(&self) -> &[VerifierKey] {
        &self.owners
    }

    pub fn threshold(&self) -> u32 {
        self.threshold
    }

    /// Whether `key` (same name, key id and public key) is an owner.
    pub fn contains(&self, key: &VerifierKey) -> bool {
        self.owners.contains(key)
    }

    /// The canonical text (see the module documentation).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for key in &self.owners {
            out.push_str(&key.to_string());
            out.push('\n');
        }
        out.push_str(&format!("threshold {}\n", self.threshold));
        out
    }

    /// Parses the canonical text and nothing else.
    pub fn parse(text: &str) -> Result<OwnerSet, OwnerSetError> {
        let not_canonical = |line, what| OwnerSetError::NotCanonical { line, what };
        let body = text
            .strip_suffix('\n')
            .ok_or(not_canonical(0, "the text must end with a newline"))?;
        let lines: Vec<&str> = body.split('\n').collect();
        if lines.len() > MAX_OWNERS + 1 {
            return Err(OwnerSetError::Count(lines.len() - 1));
        }
        let (last, keys) = lines.split_last().expect("split yields one item at least");
        let threshold = last
            .strip_prefix("threshold ")
            .filter(|n| {
                !n.is_empty() && !n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit())
            })
            .and_then(|n| n.parse::<u32>().ok())
            .ok_or(not_canonical(lines.len(), "the last line is `threshold K`"))?;
        let mut owners = Vec::with_capacity(keys.len());
        for (i, line) in keys.iter().enumerate() {
            let key: VerifierKey = line
                .parse()
                .map_err(|_| OwnerSetError::BadKey { line: i + 1 })?;
            if key.to_string() != *line {
                return Err(not_canonical(i + 1, "the key is not in its canonical form"));
            }
            if i > 0 && keys[i - 1] >= *line {
                return Err(not_canonical(i + 1, "keys must be sorted and distinct"));
            }
            owners.push(key);
        }
        let set = OwnerSet::new(owners, threshold)?;
        debug_assert_eq!(set.to_text(), text);
        Ok(set)
    }
}
