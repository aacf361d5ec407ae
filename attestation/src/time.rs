//! Verification time: always supplied by the caller, never read here.

use rustls_pki_types::UnixTime;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The instant at which certificates must be valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// A caller-chosen instant (a service passes "now").
    Time(UnixTime),
    /// The document's own `timestamp`: what an auditor uses for archived
    /// documents whose three-hour leaf certificate has long expired.
    DocumentTimestamp,
}

/// Formats seconds since the epoch as RFC 3339 UTC.
pub fn rfc3339(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("@{secs}"))
}

/// Formats milliseconds since the epoch as RFC 3339 UTC with milliseconds.
pub fn rfc3339_ms(ms: u64) -> String {
    i128::from(ms)
        .checked_mul(1_000_000)
        .and_then(|ns| OffsetDateTime::from_unix_timestamp_nanos(ns).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("@{ms}ms"))
}

/// Parses an RFC 3339 instant into Unix time (instants before 1970 are refused).
pub fn parse_rfc3339(s: &str) -> Option<UnixTime> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    let secs = u64::try_from(t.unix_timestamp()).ok()?;
    Some(UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        secs,
    )))
}
