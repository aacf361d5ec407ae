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
    /// The set names PCRs, but none that identify the image: PCR1 alone is
    /// the same for every image built with the same tooling, PCR2 alone
    /// for every image with the same application ramdisks, and PCR3/PCR4
    /// name the parent's IAM role and instance, so any image launched
    /// there would match.
    #[error(
        "secrets.{name}.measurements[{set}]: names only {}, which does not pin the enclave image \
         (pcr1 is shared by every image built with the same tooling, pcr2 by every image with the \
         same application, pcr3/pcr4 name the parent's role and instance: any image there would \
         receive the secret); name pcr0, pcr8, or both pcr1 and pcr2",
        named_list(named)
    )]
    UnpinnedMeasurementSet {
        name: String,
        set: usize,
        /// The PCR indices the set does name, ascending.
        named: Vec<u8>,
    },
    #[error("secrets.{name}.measurements[{set}].pcr{index}: expected {} lower-case hex characters", 2 * PCR_LEN)]
    BadPcrHex { name: String, set: usize, index: u8 },
    #[error("secrets.{name}: {reason}")]
    BadName { name: String, reason: &'static str },
}

fn named_list(named: &[u8]) -> String {
    let names: Vec<String> = named.iter().map(|i| format!("pcr{i}")).collect();
    names.join(", ")
}

impl Error {
    /// Stable code for API refusals; the variant says what was wrong.
    pub fn reason(&self) -> &'static str {
        "invalid_policy"
    }
}
