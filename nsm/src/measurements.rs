//! PCRs of a real image, read from `describe-eif` output, so a simulated
//! enclave can report the measurements of an actual EIF.
//!
//! Accepted input: the JSON that `nitro-cli describe-eif`, `nitro-cli
//! build-enclave` and `hermetic-eif describe --format json` print, i.e. an
//! object with `"Measurements": {"HashAlgorithm": "Sha384 { ... }", "PCR0":
//! hex, "PCR1": hex, "PCR2": hex, "PCR8"?: hex}` (other top-level keys are
//! ignored; a lower-case `measurements` key is accepted too).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

/// Image measurements: PCR index (0, 1, 2 or 8) → 48-byte SHA-384 value,
/// with PCR0 always present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measurements {
    pcrs: BTreeMap<u16, [u8; 48]>,
}

#[derive(Debug, thiserror::Error)]
pub enum MeasurementsError {
    #[error("cannot read measurements file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("measurements are not JSON: {0}")]
    Json(String),
    #[error("no \"Measurements\" object (expected describe-eif / build-enclave output)")]
    MissingMeasurements,
    #[error("HashAlgorithm is {0:?}; only SHA-384 measurements fit the NSM's PCRs")]
    UnsupportedHash(String),
    #[error("{key} is not 96 hex digits (a SHA-384 value)")]
    BadPcr { key: String },
    #[error("{key} is not a PCR an image measures (PCR0, PCR1, PCR2, PCR8)")]
    UnexpectedPcr { key: String },
    #[error("no PCR0 in the measurements")]
    MissingPcr0,
}

impl MeasurementsError {
    pub fn reason(&self) -> &'static str {
        match self {
            MeasurementsError::Io { .. } => "measurements_io",
            MeasurementsError::Json(_) => "measurements_not_json",
            MeasurementsError::MissingMeasurements => "measurements_missing",
            MeasurementsError::UnsupportedHash(_) => "measurements_unsupported_hash",
            MeasurementsError::BadPcr { .. } => "measurements_bad_pcr",
            MeasurementsError::UnexpectedPcr { .. } => "measurements_unexpected_pcr",
            MeasurementsError::MissingPcr0 => "measurements_missing_pcr0",
        }
    }
}

/// The PCRs an EIF determines (DESIGN.md: 0 image, 1 kernel+bootstrap,
/// 2 application, 8 signing certificate).
const IMAGE_PCRS: [u16; 4] = [0, 1, 2, 8];

impl Measurements {
    pub fn pcrs(&self) -> &BTreeMap<u16, [u8; 48]> {
        &self.pcrs
    }

    pub fn from_file(path: &Path) -> Result<Self, MeasurementsError> {
        let text = std::fs::read_to_string(path).map_err(|source| MeasurementsError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&text)
    }

    pub fn from_json(text: &str) -> Result<Self, MeasurementsError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| MeasurementsError::Json(e.to_string()))?;
        let section = value
            .get("Measurements")
            .or_else(|| value.get("measurements"))
            .and_then(Value::as_object)
            .ok_or(MeasurementsError::MissingMeasurements)?;
        let mut pcrs = BTreeMap::new();
        for (key, v) in section {
            if key == "HashAlgorithm" {
                let name = v.as_str().unwrap_or_default();
                if !name.to_ascii_lowercase().contains("sha384") {
                    return Err(MeasurementsError::UnsupportedHash(name.to_string()));
                }
                continue;
            }
            let index = key
                .strip_prefix("PCR")
                .and_then(|n| n.parse::<u16>().ok())
                .filter(|i| IMAGE_PCRS.contains(i))
                .ok_or_else(|| MeasurementsError::UnexpectedPcr { key: key.clone() })?;
            let bytes: [u8; 48] = v
                .as_str()
                .and_then(|h| hex::decode(h).ok())
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| MeasurementsError::BadPcr { key: key.clone() })?;
            pcrs.insert(index, bytes);
        }
        if !pcrs.contains_key(&0) {
            return Err(MeasurementsError::MissingPcr0);
        }
        Ok(Measurements { pcrs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PCR: &str = "389993a52ed931f3f602db7ea2ac4570b7b866de97cf4265113d09d1866dc053b556412e617b55b36c6663a8fca4a702";

    #[test]
    fn reads_nitro_cli_shape() {
        let json = format!(
            r#"{{"EifVersion":4,"Measurements":{{"HashAlgorithm":"Sha384 {{ ... }}","PCR0":"{PCR}","PCR8":"{PCR}"}},"IsSigned":true}}"#
        );
        let m = Measurements::from_json(&json).unwrap();
        assert_eq!(m.pcrs().keys().copied().collect::<Vec<_>>(), [0, 8]);
        assert_eq!(hex::encode(m.pcrs()[&0]), PCR);
    }

    #[test]
    fn refuses_what_is_not_image_measurements() {
        let cases = [
            ("[]", "measurements_missing"),
            ("{", "measurements_not_json"),
            (r#"{"Measurements":{"PCR1":"00"}}"#, "measurements_bad_pcr"),
            (
                r#"{"Measurements":{"PCR4":"00"}}"#,
                "measurements_unexpected_pcr",
            ),
            (
                r#"{"Measurements":{"HashAlgorithm":"Sha256"}}"#,
                "measurements_unsupported_hash",
            ),
            (r#"{"Measurements":{}}"#, "measurements_missing_pcr0"),
        ];
        for (json, reason) in cases {
            assert_eq!(
                Measurements::from_json(json).unwrap_err().reason(),
                reason,
                "{json}"
            );
        }
    }
}
