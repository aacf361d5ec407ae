//! The audit report: a plain data structure, rendered as JSON (serde) or as
//! text for a person.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hermetic_attestation::{rfc3339, rfc3339_ms, CertInfo, Inspection, Outcome, TrustedRoot};
use serde::Serialize;

use crate::policy::PolicyError;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReportError {
    pub check: String,
    pub reason: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReportCheck {
    pub name: String,
    /// `pass`, `fail` or `not_run`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReportCert {
    pub role: String,
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AuditReport {
    pub valid: bool,
    pub errors: Vec<ReportError>,
    pub checks: Vec<ReportCheck>,
    pub verified_at: Option<String>,
    pub document_sha256: String,
    pub document_len: usize,
    pub module_id: Option<String>,
    pub digest: Option<String>,
    pub timestamp: Option<String>,
    pub timestamp_ms: Option<u64>,
    pub debug_mode: Option<bool>,
    /// PCR index → lower-case hex.
    pub pcrs: BTreeMap<u8, String>,
    /// Lower-case hex; `""` when present and empty, `None` (JSON `null`)
    /// when absent. Likewise `user_data` and `nonce`.
    pub public_key: Option<String>,
    pub user_data: Option<String>,
    pub nonce: Option<String>,
    pub unknown_fields: Vec<String>,
    pub certificates: Vec<ReportCert>,
    /// SHA-256 fingerprints of the roots the verifier trusted.
    pub trusted_roots: Vec<String>,
}

fn role_name(c: &CertInfo) -> String {
    match c.role {
        hermetic_attestation::CertRole::Bundle(0) => "root".into(),
        hermetic_attestation::CertRole::Bundle(i) => format!("cabundle[{i}]"),
        hermetic_attestation::CertRole::Leaf => "leaf".into(),
    }
}

impl AuditReport {
    pub(crate) fn from_inspection(
        bytes: &[u8],
        inspection: &Inspection,
        roots: &[TrustedRoot],
    ) -> Self {
        let doc = inspection.document.as_ref();
        let hex_opt = |v: Option<&Vec<u8>>| v.map(hex::encode);
        let checks = inspection
            .checks
            .iter()
            .map(|c| match &c.outcome {
                Outcome::Pass => check(c.name.as_str().into(), "pass", None),
                Outcome::NotRun => check(c.name.as_str().into(), "not_run", None),
                Outcome::Fail(e) => check(
                    c.name.as_str().into(),
                    "fail",
                    Some((e.reason(), e.to_string())),
                ),
            })
            .collect();
        AuditReport {
            valid: false,
            errors: Vec::new(),
            checks,
            verified_at: inspection.verified_at.map(|t| rfc3339(t.as_secs() as i64)),
            document_sha256: hex::encode(aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA256,
                bytes,
            )),
            document_len: bytes.len(),
            module_id: doc.map(|d| d.module_id.clone()),
            digest: doc.map(|d| d.digest.clone()),
            timestamp: doc.map(|d| rfc3339_ms(d.timestamp_ms)),
            timestamp_ms: doc.map(|d| d.timestamp_ms),
            debug_mode: doc.map(|d| d.is_debug_mode()),
            pcrs: doc
                .map(|d| d.pcrs.iter().map(|(i, v)| (*i, hex::encode(v))).collect())
                .unwrap_or_default(),
            public_key: doc.and_then(|d| hex_opt(d.public_key.as_ref())),
            user_data: doc.and_then(|d| hex_opt(d.user_data.as_ref())),
            nonce: doc.and_then(|d| hex_opt(d.nonce.as_ref())),
            unknown_fields: doc.map(|d| d.unknown_fields.clone()).unwrap_or_default(),
            certificates: inspection
                .certificates
                .iter()
                .map(|c| ReportCert {
                    role: role_name(c),
                    subject: c.subject.clone(),
                    issuer: c.issuer.clone(),
                    serial: c.serial.clone(),
                    not_before: rfc3339(c.not_before),
                    not_after: rfc3339(c.not_after),
                    sha256: c.sha256.clone(),
                })
                .collect(),
            trusted_roots: roots.iter().map(|r| hex::encode(r.sha256())).collect(),
        }
    }

    /// Adds a policy check; `None` means it could not run (no document, or
    /// no explicit time for an age check).
    pub(crate) fn push_policy(&mut self, name: String, result: Option<Result<(), PolicyError>>) {
        self.checks.push(match result {
            None => check(name, "not_run", None),
            Some(Ok(())) => check(name, "pass", None),
            Some(Err(e)) => check(name, "fail", Some((e.reason(), e.to_string()))),
        });
    }

    /// Derives `valid` and `errors` from the checks: valid only when every
    /// check ran and passed.
    pub(crate) fn finish(&mut self) {
        self.errors = self
            .checks
            .iter()
            .filter(|c| c.status == "fail")
            .map(|c| ReportError {
                check: c.name.clone(),
                reason: c.reason.clone().unwrap_or_default(),
                message: c.message.clone().unwrap_or_default(),
            })
            .collect();
        self.valid = self.checks.iter().all(|c| c.status == "pass");
        if !self.valid && self.errors.is_empty() {
            // A check that could not run (e.g. max_age with --at doc) is not a pass.
            self.errors.push(ReportError {
                check: "audit".into(),
                reason: "check_not_run".into(),
                message: "a requested check could not run".into(),
            });
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| format!("{{\"valid\":false,\"errors\":[\"{e}\"]}}"))
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let verdict = if self.valid { "VALID" } else { "INVALID" };
        let _ = writeln!(out, "attestation document: {verdict}");
        for e in &self.errors {
            let _ = writeln!(out, "  reason: {} ({}): {}", e.reason, e.check, e.message);
        }
        let _ = writeln!(
            out,
            "input: {} bytes, sha256 {}",
            self.document_len, self.document_sha256
        );
        if let Some(at) = &self.verified_at {
            let _ = writeln!(out, "checked at: {at}");
        }
        let _ = writeln!(out, "\nchecks:");
        for c in &self.checks {
            let mark = match c.status {
                "pass" => "pass",
                "fail" => "FAIL",
                _ => "skip",
            };
            match &c.message {
                Some(m) => {
                    let _ = writeln!(out, "  [{mark}] {}: {m}", c.name);
                }
                None => {
                    let _ = writeln!(out, "  [{mark}] {}", c.name);
                }
            }
        }
        if let Some(module_id) = &self.module_id {
            let _ = writeln!(out, "\ndocument:");
            let _ = writeln!(out, "  module_id:  {module_id}");
            let _ = writeln!(
                out,
                "  digest:     {}",
                self.digest.as_deref().unwrap_or("-")
            );
            let _ = writeln!(
                out,
                "  timestamp:  {} ({} ms)",
                self.timestamp.as_deref().unwrap_or("-"),
                self.timestamp_ms.unwrap_or(0)
            );
            if self.debug_mode == Some(true) {
                let _ = writeln!(out, "  debug mode: YES (PCR0, PCR1 and PCR2 are all zero)");
            } else {
                let _ = writeln!(out, "  debug mode: no");
            }
            for (i, v) in &self.pcrs {
                let _ = writeln!(out, "  PCR{i:<2}      {v}");
            }
            for (name, v) in [
                ("public_key", &self.public_key),
                ("user_data", &self.user_data),
                ("nonce", &self.nonce),
            ] {
                // Present-and-empty is not absent: the NSM signed a
                // zero-length byte string.
                let shown = match v.as_deref() {
                    None => "(absent)",
                    Some("") => "(present, empty)",
                    Some(hex) => hex,
                };
                let _ = writeln!(out, "  {name:<11} {shown}");
            }
            for f in &self.unknown_fields {
                let _ = writeln!(out, "  unknown signed field: {f}");
            }
        }
        if !self.certificates.is_empty() {
            let _ = writeln!(out, "\ncertificates (root first):");
            for c in &self.certificates {
                let _ = writeln!(
                    out,
                    "  {:<11} {}\n              valid {} .. {}, sha256 {}",
                    c.role, c.subject, c.not_before, c.not_after, c.sha256
                );
            }
        }
        out
    }
}

fn check(name: String, status: &'static str, failure: Option<(&str, String)>) -> ReportCheck {
    let (reason, message) = match failure {
        Some((r, m)) => (Some(r.to_string()), Some(m)),
        None => (None, None),
    };
    ReportCheck {
        name,
        status,
        reason,
        message,
    }
}
