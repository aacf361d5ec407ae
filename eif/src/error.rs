//! Typed errors. Every way an EIF can be truncated, corrupt or hostile maps to
//! one variant; nothing in this crate panics on file content.

use std::path::PathBuf;

use crate::format::SectionType;

/// Errors raised while reading, measuring, building or checking an EIF.
#[derive(Debug, thiserror::Error)]
pub enum EifError {
    /// An I/O operation on `path` failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The file is shorter than the fixed 548-byte EIF header.
    #[error("truncated: file is {len} bytes, the EIF header alone is {needed} bytes")]
    TruncatedHeader { len: u64, needed: u64 },

    /// The first four bytes are not `.eif`.
    #[error("bad magic {found:02x?}: not an EIF (expected \".eif\")")]
    BadMagic { found: [u8; 4] },

    /// The header's version is not one this reader understands.
    #[error("unsupported EIF version {version} (supported: {min}..={max})")]
    UnsupportedVersion { version: u16, min: u16, max: u16 },

    /// `num_sections` exceeds the 32 slots of the section table.
    #[error("header claims {count} sections, the table holds at most {max}")]
    TooManySections { count: u16, max: usize },

    /// A section (its 12-byte header plus data) reaches past the end of the file.
    #[error(
        "section {index}: offset {offset} + 12-byte header + size {size} exceeds file length {file_len}"
    )]
    SectionOutOfBounds {
        index: usize,
        offset: u64,
        size: u64,
        file_len: u64,
    },

    /// A section starts before the previous section (or the EIF header) ends.
    #[error(
        "section {index} at offset {offset} overlaps the previous region ending at {prev_end}"
    )]
    SectionOverlap {
        index: usize,
        offset: u64,
        prev_end: u64,
    },

    /// Bytes between the header/sections that no section accounts for
    /// (nitro-cli walks sections back to back, so a gap changes its reading).
    #[error("{len} unaccounted bytes at offset {offset} (sections must be contiguous)")]
    Gap { offset: u64, len: u64 },

    /// Bytes after the last section.
    #[error("{len} trailing bytes after the last section at offset {offset}")]
    TrailingData { offset: u64, len: u64 },

    /// The section header at a table offset has an unknown type.
    #[error("section {index}: invalid section type {raw}")]
    InvalidSectionType { index: usize, raw: u16 },

    /// The section header's size differs from the header table's size.
    #[error("section {index}: table says {table_size} bytes, section header says {header_size}")]
    SectionSizeMismatch {
        index: usize,
        table_size: u64,
        header_size: u64,
    },

    /// A section kept in memory (cmdline, metadata, signature) is implausibly large.
    #[error("section {index} ({kind:?}) is {size} bytes, more than the {max}-byte limit")]
    SectionTooLarge {
        index: usize,
        kind: SectionType,
        size: u64,
        max: u64,
    },

    /// A section type that must appear exactly once is missing.
    #[error("missing {0:?} section")]
    MissingSection(SectionType),

    /// A section type that may appear at most once appears again.
    #[error("duplicate {kind:?} section (section {index})")]
    DuplicateSection { kind: SectionType, index: usize },

    /// The CRC-32 in the header does not match the image.
    #[error("CRC mismatch: header says {expected:#010x}, image computes to {computed:#010x}")]
    CrcMismatch { expected: u32, computed: u32 },

    /// The signature section cannot be decoded (CBOR, COSE_Sign1 or certificate).
    #[error("malformed signature section: {0}")]
    MalformedSignature(String),

    /// The signature section decodes, but the COSE_Sign1 signature does not
    /// verify with the certificate's key, or its payload is not PCR0.
    #[error("PCR0 signature does not verify: {0}")]
    SignatureInvalid(String),

    /// The metadata section is not valid JSON.
    #[error("malformed metadata section: {0}")]
    MalformedMetadata(String),

    /// A PEM / certificate / key given by the user could not be used.
    #[error("{0}")]
    BadKeyOrCertificate(String),

    /// Invalid builder input (e.g. a NUL in the command line).
    #[error("invalid build input: {0}")]
    BuildInput(String),

    /// `--secret NAME` names no secret of the policy.
    #[error("no secret {name:?} in the policy (it has: {available})")]
    UnknownSecret { name: String, available: String },

    /// An expectation file (describe JSON or policy TOML) is unusable.
    #[error("{path}: {message}")]
    BadExpectation { path: PathBuf, message: String },

    /// `policy --secret NAME`: a stanza the verifier would refuse.
    #[error("cannot write a policy: {0}")]
    PolicyStanza(hermetic_policy::Error),
}

impl EifError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EifError::Io {
            path: path.into(),
            source,
        }
    }

    /// The process exit code the CLI uses for this error: 2 for every
    /// usage / I/O / format error (1 is reserved for "PCR mismatch").
    pub fn exit_code(&self) -> i32 {
        2
    }
}

pub type Result<T, E = EifError> = std::result::Result<T, E>;
