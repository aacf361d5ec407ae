//! Offline audit of one attestation document: every check of the core plus
//! the auditor's expectations, with the decoded document, as a report that
//! renders as text or JSON.

mod input;
mod report;

use std::time::Duration;

use hermetic_attestation::{At, Outcome, Verifier};

pub use input::{decode_input, Encoding, InputError, MAX_INPUT_LEN};
pub use report::{AuditReport, ReportCert, ReportCheck, ReportError};

use crate::policy::{self, Measurements};

/// What the auditor expects of the document beyond a valid signature.
#[derive(Debug, Clone, Default)]
pub struct Expectations {
    pub pcrs: Measurements,
    pub nonce: Option<Vec<u8>>,
    /// Checked against the verification instant, so only with an explicit
    /// time (`At::Time`).
    pub max_age: Option<Duration>,
    pub allow_debug: bool,
}

/// Audits raw document bytes (already decoded from base64/hex).
pub fn audit(verifier: &Verifier, document: &[u8], at: At, expect: &Expectations) -> AuditReport {
    let inspection = verifier.inspect(document, at);
    let mut report = AuditReport::from_inspection(document, &inspection, verifier.roots());
    let decoded = inspection
        .checks
        .iter()
        .any(|c| c.name == hermetic_attestation::CheckName::Decode && c.outcome == Outcome::Pass);
    let doc = inspection.document.as_ref().filter(|_| decoded);

    let mut policy_check = |name: String, result: Option<Result<(), policy::PolicyError>>| {
        report.push_policy(name, result);
    };
    policy_check(
        "debug_mode".into(),
        doc.map(|d| policy::check_debug(d, expect.allow_debug)),
    );
    for (index, value) in &expect.pcrs {
        let one: Measurements = [(*index, value.clone())].into();
        policy_check(
            format!("pcr{index}"),
            doc.map(|d| policy::check_pcrs(d, &one)),
        );
    }
    if let Some(nonce) = &expect.nonce {
        policy_check("nonce".into(), doc.map(|d| policy::check_nonce(d, nonce)));
    }
    if let Some(max_age) = expect.max_age {
        let now_ms = match at {
            At::Time(t) => Some(t.as_secs().saturating_mul(1000)),
            At::DocumentTimestamp => None,
        };
        let result = match (doc, now_ms) {
            (Some(d), Some(now)) => Some(policy::check_age(d, now, max_age)),
            _ => None,
        };
        policy_check("max_age".into(), result);
    }
    report.finish();
    report
}
