//! Why a document was refused.
//!
//! Every variant maps to a stable, machine-readable reason code
//! ([`Error::reason`]) and a human sentence (`Display`). Neither ever carries
//! secret material: documents are public, signed objects.

use std::fmt;

/// Which certificate of the chain an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertRole {
    /// `cabundle[i]`; index 0 is the root.
    Bundle(usize),
    /// The document's `certificate` field (the leaf that signs the document).
    Leaf,
}

impl fmt::Display for CertRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertRole::Bundle(0) => f.write_str("root certificate (cabundle[0])"),
            CertRole::Bundle(i) => write!(f, "cabundle[{i}]"),
            CertRole::Leaf => f.write_str("leaf certificate"),
        }
    }
}

/// A refusal from the attestation core.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("document is {len} bytes; the limit is {max}")]
    DocumentTooLarge { len: usize, max: usize },
    #[error("document is empty")]
    Empty,
    #[error("{context} is not valid CBOR: {detail}")]
    MalformedCbor {
        context: &'static str,
        detail: String,
    },
    #[error("{count} trailing byte(s) after the {context}")]
    TrailingBytes { context: &'static str, count: usize },
    #[error("not a COSE_Sign1 structure: {0}")]
    MalformedCose(&'static str),
    #[error("protected header: {0}")]
    MalformedProtectedHeader(&'static str),
    #[error("COSE algorithm {0} is not accepted; Nitro documents are signed with ES384 (-35)")]
    UnsupportedAlgorithm(String),
    #[error("signature is {0} bytes; ES384 signatures are 96 bytes (r || s)")]
    MalformedSignature(usize),
    #[error("duplicate key {0:?} in {1}")]
    DuplicateKey(String, &'static str),
    #[error("required field `{0}` is missing")]
    MissingField(&'static str),
    #[error("required field `{0}` is null")]
    NullField(&'static str),
    #[error("field `{field}` has the wrong type; expected {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("field `{field}` is invalid: {reason}")]
    InvalidField {
        field: &'static str,
        reason: &'static str,
    },
    #[error("field `{field}` is {len} bytes; allowed {min}..={max}")]
    FieldSize {
        field: &'static str,
        len: usize,
        min: usize,
        max: usize,
    },
    #[error("PCR index {0} is out of range 0..=31")]
    PcrIndexOutOfRange(String),
    #[error("PCR{index} is {len} bytes; PCRs are 32, 48 or 64 bytes")]
    PcrLength { index: u8, len: usize },
    #[error("cabundle is empty")]
    EmptyCabundle,
    #[error("cabundle[0] is not a trusted root (SHA-256 {fingerprint}); the AWS Nitro root is missing or another PKI signed this document")]
    UntrustedRoot { fingerprint: String },
    #[error("{role} is not a valid X.509 certificate: {detail}")]
    MalformedCertificate { role: CertRole, detail: String },
    #[error("{role} expired at {not_after} (checked at {at})")]
    CertificateExpired {
        role: CertRole,
        not_after: String,
        at: String,
    },
    #[error("{role} is not valid before {not_before} (checked at {at})")]
    CertificateNotYetValid {
        role: CertRole,
        not_before: String,
        at: String,
    },
    #[error("{role} violates a chain constraint: {reason}")]
    ChainConstraint {
        role: CertRole,
        reason: &'static str,
    },
    #[error("certificate chain does not validate: {0}")]
    ChainInvalid(String),
    #[error("leaf certificate key is not a P-384 ECDSA key")]
    UnsupportedLeafKey,
    #[error("COSE signature does not verify with the leaf certificate's key")]
    BadSignature,
    #[error("verification time is out of range")]
    InvalidTime,
}

impl Error {
    /// A stable snake_case code for logs, JSON output and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::DocumentTooLarge { .. } => "document_too_large",
            Error::Empty => "empty_document",
            Error::MalformedCbor { .. } => "malformed_cbor",
            Error::TrailingBytes { .. } => "trailing_bytes",
            Error::MalformedCose(_) => "malformed_cose",
            Error::MalformedProtectedHeader(_) => "malformed_protected_header",
            Error::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            Error::MalformedSignature(_) => "malformed_signature",
            Error::DuplicateKey(..) => "duplicate_key",
            Error::MissingField(_) => "missing_field",
            Error::NullField(_) => "null_field",
            Error::WrongType { .. } => "wrong_type",
            Error::InvalidField { .. } => "invalid_field",
            Error::FieldSize { .. } => "field_size",
            Error::PcrIndexOutOfRange(_) => "pcr_index_out_of_range",
            Error::PcrLength { .. } => "pcr_length",
            Error::EmptyCabundle => "empty_cabundle",
            Error::UntrustedRoot { .. } => "untrusted_root",
            Error::MalformedCertificate { .. } => "malformed_certificate",
            Error::CertificateExpired { .. } => "chain_expired",
            Error::CertificateNotYetValid { .. } => "chain_not_yet_valid",
            Error::ChainConstraint { .. } => "chain_constraint",
            Error::ChainInvalid(_) => "chain_invalid",
            Error::UnsupportedLeafKey => "unsupported_leaf_key",
            Error::BadSignature => "bad_signature",
            Error::InvalidTime => "invalid_time",
        }
    }
}
