//! Expected measurements: describe JSON (ours or nitro-cli's) and verifier
//! policy TOML; comparing an image against them; emitting a policy stanza.
//!
//! Policy format (shared with the verifier):
//! ```toml
//! [secrets.db-password]
//! max_age_secs = 300          # optional
//! nonce_required = true       # optional, default true
//! allow_debug = false         # optional, default false
//! [[secrets.db-password.measurements]]   # one or more allowed sets
//! pcr0 = "hex"   # any of pcr0, pcr1, pcr2, pcr3, pcr4, pcr8; lower-case hex, 96 chars
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;

use crate::error::{EifError, Result};
use crate::measure::{Measurements, PCR_LEN};

/// PCR indices an image determines.
pub const IMAGE_PCRS: [u8; 4] = [0, 1, 2, 8];

/// One allowed measurement set of a secret.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MeasurementSet {
    pub pcr0: Option<String>,
    pub pcr1: Option<String>,
    pub pcr2: Option<String>,
    pub pcr3: Option<String>,
    pub pcr4: Option<String>,
    pub pcr8: Option<String>,
}

impl MeasurementSet {
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
}

fn default_true() -> bool {
    true
}

/// A secret's release policy.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SecretPolicy {
    pub max_age_secs: Option<u64>,
    #[serde(default = "default_true")]
    pub nonce_required: bool,
    #[serde(default)]
    pub allow_debug: bool,
    pub measurements: Vec<MeasurementSet>,
}

/// A verifier policy file.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub secrets: BTreeMap<String, SecretPolicy>,
}

fn is_pcr_hex(s: &str) -> bool {
    s.len() == 2 * PCR_LEN
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Policy {
    /// Parses and validates a policy (hex form, at least one set per secret).
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let p: Policy = toml::from_str(text).map_err(|e| e.to_string())?;
        if p.secrets.is_empty() {
            return Err("policy defines no [secrets.NAME]".into());
        }
        for (name, s) in &p.secrets {
            if s.measurements.is_empty() {
                return Err(format!("secrets.{name}: no [[measurements]] set"));
            }
            for (i, set) in s.measurements.iter().enumerate() {
                let mut any = false;
                for (idx, v) in set.entries() {
                    if let Some(v) = v {
                        any = true;
                        if !is_pcr_hex(v) {
                            return Err(format!(
                                "secrets.{name}.measurements[{i}].pcr{idx}: expected 96 lower-case hex characters"
                            ));
                        }
                    }
                }
                if !any {
                    return Err(format!("secrets.{name}.measurements[{i}]: names no PCR"));
                }
            }
        }
        Ok(p)
    }
}

/// What `check --expect FILE` compares against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expectation {
    /// PCR index -> lower-case hex, from describe JSON.
    Pcrs(BTreeMap<u8, String>),
    Policy(Policy),
}

fn bad(path: &Path, message: impl Into<String>) -> EifError {
    EifError::BadExpectation {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn pcrs_from_json(path: &Path, v: &serde_json::Value) -> Result<BTreeMap<u8, String>> {
    let obj = v
        .get("Measurements")
        .or_else(|| v.get("measurements"))
        .unwrap_or(v);
    let obj = obj
        .as_object()
        .ok_or_else(|| bad(path, "Measurements is not a JSON object"))?;
    let mut out = BTreeMap::new();
    for (k, val) in obj {
        let Some(idx) = k.strip_prefix("PCR").and_then(|n| n.parse::<u8>().ok()) else {
            continue;
        };
        let s = val
            .as_str()
            .ok_or_else(|| bad(path, format!("{k} is not a string")))?
            .to_ascii_lowercase();
        if !is_pcr_hex(&s) {
            return Err(bad(path, format!("{k}: expected 96 hex characters")));
        }
        out.insert(idx, s);
    }
    if out.is_empty() {
        return Err(bad(path, "no PCR0/PCR1/PCR2/PCR8 values found in the JSON"));
    }
    Ok(out)
}

/// Loads an expectation file: JSON (a describe output with a top-level
/// `Measurements` / `measurements` object, or that object alone) or a policy TOML.
pub fn load_expectation(path: &Path) -> Result<Expectation> {
    let text = std::fs::read_to_string(path).map_err(|e| EifError::io(path, e))?;
    if text.trim_start().starts_with('{') {
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(path, format!("invalid JSON: {e}")))?;
        return Ok(Expectation::Pcrs(pcrs_from_json(path, &v)?));
    }
    Policy::parse(&text)
        .map(Expectation::Policy)
        .map_err(|m| bad(path, format!("invalid policy TOML: {m}")))
}

/// One differing PCR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcrDiff {
    pub index: u8,
    pub expected: String,
    /// `None` when the image has no such PCR (PCR8 of an unsigned image).
    pub actual: Option<String>,
}

/// The comparison against one candidate set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CandidateResult {
    pub label: String,
    pub compared: Vec<u8>,
    pub diffs: Vec<PcrDiff>,
}

impl CandidateResult {
    pub fn matches(&self) -> bool {
        !self.compared.is_empty() && self.diffs.is_empty()
    }
}

/// Outcome of `check`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckReport {
    pub candidates: Vec<CandidateResult>,
    pub notes: Vec<String>,
}

impl CheckReport {
    pub fn matched(&self) -> bool {
        self.candidates.iter().any(CandidateResult::matches)
    }
}

fn compare(label: String, expected: &[(u8, &String)], m: &Measurements) -> CandidateResult {
    let mut compared = Vec::new();
    let mut diffs = Vec::new();
    for &(idx, exp) in expected {
        compared.push(idx);
        let actual = m.get(idx).map(hex::encode);
        if actual.as_deref() != Some(exp.as_str()) {
            diffs.push(PcrDiff {
                index: idx,
                expected: exp.clone(),
                actual,
            });
        }
    }
    CandidateResult {
        label,
        compared,
        diffs,
    }
}

/// Compares an image's measurements with an expectation. `secret` restricts
/// a policy to one secret (an error if it does not exist, or for JSON).
pub fn check(m: &Measurements, exp: &Expectation, secret: Option<&str>) -> Result<CheckReport> {
    let mut notes = Vec::new();
    let mut candidates = Vec::new();
    match exp {
        Expectation::Pcrs(map) => {
            if secret.is_some() {
                notes.push("--secret ignored: the expectation is a describe JSON".into());
            }
            let mut expected = Vec::new();
            for (idx, v) in map {
                if IMAGE_PCRS.contains(idx) {
                    expected.push((*idx, v));
                } else {
                    notes.push(format!("PCR{idx} is not derived from the image: ignored"));
                }
            }
            if m.pcr8.is_some() && !map.contains_key(&8) {
                notes.push("image is signed (has PCR8) but the expectation names no PCR8".into());
            }
            candidates.push(compare("expected measurements".into(), &expected, m));
        }
        Expectation::Policy(p) => {
            let selected: Vec<(&String, &SecretPolicy)> = match secret {
                Some(name) => {
                    let (k, v) =
                        p.secrets
                            .get_key_value(name)
                            .ok_or_else(|| EifError::UnknownSecret {
                                name: name.to_string(),
                                available: p.secrets.keys().cloned().collect::<Vec<_>>().join(", "),
                            })?;
                    vec![(k, v)]
                }
                None => p.secrets.iter().collect(),
            };
            let mut ignored = false;
            for (name, sp) in selected {
                for (i, set) in sp.measurements.iter().enumerate() {
                    let mut expected = Vec::new();
                    for (idx, v) in set.entries() {
                        let Some(v) = v else { continue };
                        if IMAGE_PCRS.contains(&idx) {
                            expected.push((idx, v));
                        } else {
                            ignored = true;
                        }
                    }
                    let label = format!("secrets.{name}.measurements[{i}]");
                    if expected.is_empty() {
                        notes.push(format!(
                            "{label} names no image-derived PCR (0, 1, 2, 8): it cannot vouch for an image"
                        ));
                    }
                    candidates.push(compare(label, &expected, m));
                }
            }
            if ignored {
                notes.push("pcr3/pcr4 describe the parent instance, not the image: ignored".into());
            }
        }
    }
    Ok(CheckReport { candidates, notes })
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        if let Some(c) = self.candidates.iter().find(|c| c.matches()) {
            let names: Vec<String> = c.compared.iter().map(|i| format!("PCR{i}")).collect();
            return writeln!(f, "OK: {} match ({})", c.label, names.join(", "));
        }
        writeln!(f, "MISMATCH: no expected measurement set matches the image")?;
        for c in &self.candidates {
            if c.compared.is_empty() {
                continue;
            }
            writeln!(f, "{}:", c.label)?;
            for d in &c.diffs {
                writeln!(f, "  PCR{}:", d.index)?;
                writeln!(f, "    - expected {}", d.expected)?;
                match &d.actual {
                    Some(a) => writeln!(f, "    + actual   {a}")?,
                    None => writeln!(f, "    + actual   (absent: image is not signed)")?,
                }
            }
            for i in &c.compared {
                if !c.diffs.iter().any(|d| d.index == *i) {
                    writeln!(f, "  PCR{i}: matches")?;
                }
            }
        }
        Ok(())
    }
}

fn toml_key(name: &str) -> String {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        name.to_string()
    } else {
        // A TOML basic string is a JSON string for our purposes.
        serde_json::to_string(name).unwrap_or_else(|_| "\"secret\"".into())
    }
}

/// A verifier policy stanza allowing exactly this image's measurements.
pub fn policy_stanza(m: &Measurements, secret: &str) -> String {
    let key = toml_key(secret);
    let mut s = format!(
        "[secrets.{key}]\nnonce_required = true\nallow_debug = false\n\n[[secrets.{key}.measurements]]\n"
    );
    for (idx, v) in m.iter() {
        s.push_str(&format!("pcr{idx} = \"{}\"\n", hex::encode(v)));
    }
    s
}
