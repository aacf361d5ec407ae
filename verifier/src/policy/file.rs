//! The policy file: which measurements may receive which secret.
//!
//! The TOML format is shared with `hermetic-eif policy` / `check`:
//!
//! ```toml
//! [secrets.db-password]
//! max_age_secs = 300          # optional (default: 300)
//! nonce_required = true       # optional, default true
//! allow_debug = false         # optional, default false
//! [[secrets.db-password.measurements]]   # one or more allowed sets
//! pcr0 = "hex"                # any of pcr0, pcr1, pcr2, pcr3, pcr4, pcr8
//! ```
//!
//! Loading fails closed: a secret with no measurement set, or a set that
//! names no PCR, is refused here rather than matching every enclave later.

use std::collections::BTreeMap;
use std::time::Duration;

use hermetic_attestation::{Document, PCR_LEN_SHA384};
use serde::{Deserialize, Serialize};

use super::{check_debug, check_pcrs, Measurements, PolicyError};

/// Used when a secret's policy has no `max_age_secs`.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);

/// The PCRs a measurement set may name (DESIGN.md: 0 image, 1 kernel,
/// 2 application, 3 parent IAM role, 4 parent instance, 8 signing cert).
pub const POLICY_PCRS: [u8; 6] = [0, 1, 2, 3, 4, 8];

/// Why a policy file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyFileError {
    #[error("not a policy file: {0}")]
    Syntax(String),
    #[error("the policy defines no [secrets.NAME]")]
    Empty,
    #[error("secrets.{name}: no [[measurements]] set (a policy that names no image would match any enclave)")]
    NoMeasurementSet { name: String },
    #[error("secrets.{name}.measurements[{set}]: names no PCR")]
    EmptyMeasurementSet { name: String, set: usize },
    #[error("secrets.{name}.measurements[{set}].pcr{index}: expected {} lower-case hex characters", 2 * PCR_LEN_SHA384)]
    BadPcrHex { name: String, set: usize, index: u8 },
    #[error("secrets.{name}: {reason}")]
    BadName { name: String, reason: &'static str },
}

impl PolicyFileError {
    /// Stable code for API refusals.
    pub fn reason(&self) -> &'static str {
        "invalid_policy"
    }
}

/// A validated policy file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyFile {
    pub secrets: BTreeMap<String, SecretPolicy>,
}

/// One secret's validated release policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretPolicy {
    pub max_age: Duration,
    pub nonce_required: bool,
    pub allow_debug: bool,
    /// Allowed sets; a document must match every PCR of at least one.
    pub measurements: Vec<Measurements>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    secrets: BTreeMap<String, RawSecret>,
}

fn default_true() -> bool {
    true
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_age_secs: Option<u64>,
    #[serde(default = "default_true")]
    nonce_required: bool,
    #[serde(default)]
    allow_debug: bool,
    #[serde(default)]
    measurements: Vec<RawSet>,
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSet {
    #[serde(skip_serializing_if = "Option::is_none")]
    pcr0: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pcr1: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pcr2: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pcr3: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pcr4: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pcr8: Option<String>,
}

impl RawSet {
    fn entries(&self) -> [(u8, Option<&String>); 6] {
        [
            (0, self.pcr0.as_ref()),
            (1, self.pcr1.as_ref()),
            (2, self.pcr2.as_ref()),
            (3, self.pcr3.as_ref()),
            (4, self.pcr4.as_ref()),
            (8, self.pcr8.as_ref()),
        ]
    }

    fn slot(&mut self, index: u8) -> Option<&mut Option<String>> {
        match index {
            0 => Some(&mut self.pcr0),
            1 => Some(&mut self.pcr1),
            2 => Some(&mut self.pcr2),
            3 => Some(&mut self.pcr3),
            4 => Some(&mut self.pcr4),
            8 => Some(&mut self.pcr8),
            _ => None,
        }
    }
}

fn parse_pcr_hex(s: &str) -> Option<Vec<u8>> {
    let lower = s
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !lower || s.len() != 2 * PCR_LEN_SHA384 {
        return None;
    }
    hex::decode(s).ok()
}

/// Secret names travel in URLs, logs and the HPKE context: keep them plain.
pub fn check_secret_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 128 {
        return Err("a secret name is 1 to 128 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("a secret name uses only A-Z, a-z, 0-9, '-', '_' and '.'");
    }
    Ok(())
}

impl PolicyFile {
    /// Parses and validates a whole policy file.
    pub fn parse(text: &str) -> Result<Self, PolicyFileError> {
        let raw: RawFile =
            toml::from_str(text).map_err(|e| PolicyFileError::Syntax(e.message().to_owned()))?;
        if raw.secrets.is_empty() {
            return Err(PolicyFileError::Empty);
        }
        let mut secrets = BTreeMap::new();
        for (name, secret) in raw.secrets {
            let policy = SecretPolicy::from_raw(&name, secret)?;
            secrets.insert(name, policy);
        }
        Ok(PolicyFile { secrets })
    }

    /// Writes the file back in the shared format.
    pub fn to_toml(&self) -> String {
        let raw = RawFile {
            secrets: self
                .secrets
                .iter()
                .map(|(n, p)| (n.clone(), p.to_raw()))
                .collect(),
        };
        toml::to_string(&raw).unwrap_or_default()
    }
}

impl SecretPolicy {
    fn from_raw(name: &str, raw: RawSecret) -> Result<Self, PolicyFileError> {
        check_secret_name(name).map_err(|reason| PolicyFileError::BadName {
            name: name.to_owned(),
            reason,
        })?;
        if raw.measurements.is_empty() {
            return Err(PolicyFileError::NoMeasurementSet {
                name: name.to_owned(),
            });
        }
        let mut measurements = Vec::with_capacity(raw.measurements.len());
        for (set, entries) in raw.measurements.iter().enumerate() {
            let mut m = Measurements::new();
            for (index, value) in entries.entries() {
                let Some(value) = value else { continue };
                let bytes = parse_pcr_hex(value).ok_or_else(|| PolicyFileError::BadPcrHex {
                    name: name.to_owned(),
                    set,
                    index,
                })?;
                m.insert(index, bytes);
            }
            if m.is_empty() {
                return Err(PolicyFileError::EmptyMeasurementSet {
                    name: name.to_owned(),
                    set,
                });
            }
            measurements.push(m);
        }
        Ok(SecretPolicy {
            max_age: raw
                .max_age_secs
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_MAX_AGE),
            nonce_required: raw.nonce_required,
            allow_debug: raw.allow_debug,
            measurements,
        })
    }

    fn to_raw(&self) -> RawSecret {
        RawSecret {
            max_age_secs: Some(self.max_age.as_secs()),
            nonce_required: self.nonce_required,
            allow_debug: self.allow_debug,
            measurements: self
                .measurements
                .iter()
                .map(|m| {
                    let mut set = RawSet::default();
                    for (index, value) in m {
                        if let Some(slot) = set.slot(*index) {
                            *slot = Some(hex::encode(value));
                        }
                    }
                    set
                })
                .collect(),
        }
    }

    /// This policy alone, as a policy file with one `[secrets.NAME]`.
    pub fn to_toml(&self, name: &str) -> String {
        PolicyFile {
            secrets: BTreeMap::from([(name.to_owned(), self.clone())]),
        }
        .to_toml()
    }

    /// The debug rule, then the measurement sets: the document must match
    /// every PCR of at least one set. With a single set the mismatch names
    /// the PCR; with several it says that none matched.
    pub fn check_document(&self, doc: &Document) -> Result<(), PolicyError> {
        check_debug(doc, self.allow_debug)?;
        let mut first_error = None;
        for set in &self.measurements {
            match check_pcrs(doc, set) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match (self.measurements.len(), first_error) {
            (1, Some(e)) => Err(e),
            _ => Err(PolicyError::NoMeasurementMatches),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcr(b: u8) -> String {
        hex::encode([b; PCR_LEN_SHA384])
    }

    #[test]
    fn parses_the_shared_format_with_defaults() {
        let text = format!(
            "[secrets.db-password]\n[[secrets.db-password.measurements]]\npcr0 = \"{}\"\npcr8 = \"{}\"\n[[secrets.db-password.measurements]]\npcr0 = \"{}\"\n",
            pcr(1),
            pcr(8),
            pcr(2)
        );
        let file = PolicyFile::parse(&text).unwrap();
        let p = &file.secrets["db-password"];
        assert_eq!(p.max_age, DEFAULT_MAX_AGE);
        assert!(p.nonce_required);
        assert!(!p.allow_debug);
        assert_eq!(p.measurements.len(), 2);
        assert_eq!(p.measurements[0][&8], vec![8; 48]);
        // Round trip through our writer.
        assert_eq!(PolicyFile::parse(&file.to_toml()).unwrap(), file);
    }

    #[test]
    fn fails_closed() {
        let none = "[secrets.a]\nallow_debug = true\n";
        assert!(matches!(
            PolicyFile::parse(none),
            Err(PolicyFileError::NoMeasurementSet { .. })
        ));
        let empty_set = "[secrets.a]\n[[secrets.a.measurements]]\n";
        assert!(matches!(
            PolicyFile::parse(empty_set),
            Err(PolicyFileError::EmptyMeasurementSet { set: 0, .. })
        ));
        let upper = format!(
            "[secrets.a]\n[[secrets.a.measurements]]\npcr0 = \"{}\"\n",
            pcr(0xab).to_uppercase()
        );
        assert!(matches!(
            PolicyFile::parse(&upper),
            Err(PolicyFileError::BadPcrHex { index: 0, .. })
        ));
        let pcr5 = format!(
            "[secrets.a]\n[[secrets.a.measurements]]\npcr5 = \"{}\"\n",
            pcr(1)
        );
        assert!(matches!(
            PolicyFile::parse(&pcr5),
            Err(PolicyFileError::Syntax(_))
        ));
        assert_eq!(PolicyFile::parse(""), Err(PolicyFileError::Empty));
        let bad_name = format!(
            "[secrets.\"a b\"]\n[[secrets.\"a b\".measurements]]\npcr0 = \"{}\"\n",
            pcr(1)
        );
        assert!(matches!(
            PolicyFile::parse(&bad_name),
            Err(PolicyFileError::BadName { .. })
        ));
    }
}
