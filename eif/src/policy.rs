//! Expected measurements: describe JSON (ours or nitro-cli's) and verifier
//! policy files; comparing an image against them; emitting a policy stanza.
//! The policy format itself (parsing, validation, writing, PCR matching) is
//! `hermetic-policy`'s, shared with the verifier, so `check` accepts exactly
//! the files the verifier accepts.

use std::fmt;
use std::path::Path;

use hermetic_policy::{mismatches, pcr_from_hex, stanza, Pcrs};

pub use hermetic_policy::{PcrDiff, PolicyFile as Policy};

use crate::error::{EifError, Result};
use crate::measure::Measurements;

/// PCR indices an image determines.
pub const IMAGE_PCRS: [u8; 4] = [0, 1, 2, 8];

fn image_pcrs(m: &Measurements) -> Pcrs {
    m.iter().map(|(index, v)| (index, v.to_vec())).collect()
}

/// The part of `set` an image determines, and the indices left out (pcr3
/// and pcr4 describe the parent instance, not the image).
fn image_part(set: &Pcrs) -> (Pcrs, Vec<u8>) {
    let mut image = Pcrs::new();
    let mut left_out = Vec::new();
    for (index, value) in set {
        if IMAGE_PCRS.contains(index) {
            image.insert(*index, value.clone());
        } else {
            left_out.push(*index);
        }
    }
    (image, left_out)
}

/// What `check --expect FILE` compares against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expectation {
    /// PCR index -> value, from describe JSON.
    Pcrs(Pcrs),
    Policy(Policy),
}

fn bad(path: &Path, message: impl Into<String>) -> EifError {
    EifError::BadExpectation {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn pcrs_from_json(path: &Path, v: &serde_json::Value) -> Result<Pcrs> {
    let obj = v
        .get("Measurements")
        .or_else(|| v.get("measurements"))
        .unwrap_or(v);
    let obj = obj
        .as_object()
        .ok_or_else(|| bad(path, "Measurements is not a JSON object"))?;
    let mut out = Pcrs::new();
    for (k, val) in obj {
        let Some(idx) = k.strip_prefix("PCR").and_then(|n| n.parse::<u8>().ok()) else {
            continue;
        };
        let s = val
            .as_str()
            .ok_or_else(|| bad(path, format!("{k} is not a string")))?;
        // nitro-cli's JSON may be upper case; the policy format may not.
        let value = pcr_from_hex(&s.to_ascii_lowercase())
            .ok_or_else(|| bad(path, format!("{k}: expected 96 hex characters")))?;
        out.insert(idx, value);
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
        .map_err(|e| bad(path, format!("invalid policy TOML: {e}")))
}

/// The comparison against one candidate set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CandidateResult {
    pub label: String,
    pub compared: Vec<u8>,
    /// `actual: None` when the image has no such PCR (PCR8 of an unsigned image).
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

fn compare(label: String, expected: &Pcrs, image: &Pcrs) -> CandidateResult {
    CandidateResult {
        label,
        compared: expected.keys().copied().collect(),
        diffs: mismatches(expected, image),
    }
}

/// Compares an image's measurements with an expectation. `secret` restricts
/// a policy to one secret (an error if it does not exist, or for JSON).
pub fn check(m: &Measurements, exp: &Expectation, secret: Option<&str>) -> Result<CheckReport> {
    let image = image_pcrs(m);
    let mut notes = Vec::new();
    let mut candidates = Vec::new();
    match exp {
        Expectation::Pcrs(map) => {
            if secret.is_some() {
                notes.push("--secret ignored: the expectation is a describe JSON".into());
            }
            let (expected, left_out) = image_part(map);
            for idx in left_out {
                notes.push(format!("PCR{idx} is not derived from the image: ignored"));
            }
            if m.pcr8.is_some() && !map.contains_key(&8) {
                notes.push("image is signed (has PCR8) but the expectation names no PCR8".into());
            }
            candidates.push(compare("expected measurements".into(), &expected, &image));
        }
        Expectation::Policy(p) => {
            let selected: Vec<_> = match secret {
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
                    let (expected, left_out) = image_part(set);
                    ignored |= !left_out.is_empty();
                    // Never empty: hermetic-policy refuses a set that
                    // names no image-derived PCR (`pins_image`).
                    let label = format!("secrets.{name}.measurements[{i}]");
                    candidates.push(compare(label, &expected, &image));
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
                writeln!(f, "    - expected {}", hex::encode(&d.expected))?;
                match &d.actual {
                    Some(a) => writeln!(f, "    + actual   {}", hex::encode(a))?,
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

/// A verifier policy stanza allowing exactly this image's measurements.
/// Refuses a secret name the verifier would refuse.
pub fn policy_stanza(m: &Measurements, secret: &str) -> Result<String> {
    stanza(secret, image_pcrs(m)).map_err(EifError::PolicyStanza)
}
