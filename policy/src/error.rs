use crate::PCR_LEN;

/// Why a policy file was refused. The messages name the offending place
/// (`secrets.NAME.measurements[i].pcrN`) so that an operator can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not TOML, or not this format (unknown field, wrong type).
    #[error("not a policy file: {}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
    Syntax {
        line: Option<usize>,
        message: String,
    },
    #[error("the policy defines no [secrets.NAME]")]
    Empty,
    #[error("secrets.{name}: no [[measurements]] set (a policy that names no image would match any enclave)")]
    NoMeasurementSet { name: String },
    #[error("secrets.{name}.measurements[{set}]: names no PCR")]
    EmptyMeasurementSet { name: String, set: usize },
    #[error("secrets.{name}.measurements[{set}].pcr{index}: expected {} lower-case hex characters", 2 * PCR_LEN)]
    BadPcrHex { name: String, set: usize, index: u8 },
    #[error("secrets.{name}: {reason}")]
    BadName { name: String, reason: &'static str },
}

impl Error {
    /// Stable code for API refusals; the variant says what was wrong.
    pub fn reason(&self) -> &'static str {
        "invalid_policy"
    }
}
