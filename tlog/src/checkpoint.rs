//! C2SP transparency log checkpoints (<https://c2sp.org/tlog-checkpoint>):
//! the note text a log signs for each tree head.
//!
//! ```text
//! example.com/behind-the-sofa
//! 20852163
//! CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=
//! ```
//!
//! Origin line, tree size in decimal, base64 RFC 6962 root hash, then
//! optional non-empty extension lines. Go's `tlog.FormatTree` writes the
//! same shape with the origin `go.sum database tree`.

use std::fmt::Write as _;

use crate::merkle::Hash;
use crate::note::{self, NoteError, Signer, VerifierKey};

/// A checkpoint's body.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Checkpoint {
    /// The log's identity; non-empty (c2sp.org/tlog-checkpoint, "Note text").
    pub origin: String,
    /// Leaves in the tree.
    pub size: u64,
    /// The RFC 6962 root hash of the tree of `size` leaves.
    pub root_hash: Hash,
    /// Opaque, non-empty lines after the root hash (not recommended by the
    /// spec: monitors cannot audit them).
    pub extensions: Vec<String>,
}

/// Why a checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint text does not end in a newline")]
    NoFinalNewline,
    #[error("checkpoint has fewer than three lines (origin, size, root hash)")]
    TooFewLines,
    #[error("checkpoint line {line} is empty")]
    EmptyLine { line: usize },
    #[error("checkpoint line {line} holds a newline or a control character")]
    ControlCharacter { line: usize },
    #[error("tree size is not a decimal number without leading zeros")]
    BadSize,
    #[error("root hash is not the standard base64 of 32 bytes")]
    BadRootHash,
    #[error("checkpoint origin {found:?} is not the expected {expected:?}")]
    WrongOrigin { expected: String, found: String },
    #[error(transparent)]
    Note(#[from] NoteError),
}

fn check_line(line: &str, number: usize) -> Result<(), CheckpointError> {
    if line.is_empty() {
        return Err(CheckpointError::EmptyLine { line: number });
    }
    if line.bytes().any(|b| b < 0x20) {
        return Err(CheckpointError::ControlCharacter { line: number });
    }
    Ok(())
}

impl Checkpoint {
    /// Parses a checkpoint's note text (as [`note::open`] returns it),
    /// strictly: every line non-empty, the size canonical decimal, the hash
    /// canonical base64.
    pub fn parse(text: &str) -> Result<Checkpoint, CheckpointError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::NoFinalNewline)?;
        let lines: Vec<&str> = body.split('\n').collect();
        if lines.len() < 3 {
            return Err(CheckpointError::TooFewLines);
        }
        for (i, line) in lines.iter().enumerate() {
            check_line(line, i + 1)?;
        }
        let size = parse_size(lines[1])?;
        let root_hash = lines[2]
            .parse::<Hash>()
            .map_err(|_| CheckpointError::BadRootHash)?;
        Ok(Checkpoint {
            origin: lines[0].to_owned(),
            size,
            root_hash,
            extensions: lines[3..].iter().map(|l| (*l).to_owned()).collect(),
        })
    }

    /// The note text, refusing fields that would not parse back (an empty
    /// origin or extension line, a newline or control character in one).
    pub fn to_text(&self) -> Result<String, CheckpointError> {
        check_line(&self.origin, 1)?;
        for (i, ext) in self.extensions.iter().enumerate() {
            check_line(ext, 4 + i)?;
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = write!(out, "{}\n{}\n{}\n", self.origin, self.size, self.root_hash);
        for ext in &self.extensions {
            out.push_str(ext);
            out.push('\n');
        }
        Ok(out)
    }

    /// The checkpoint as a note signed by the log's key (whose name should
    /// be the origin, c2sp.org/tlog-checkpoint, "Signatures").
    pub fn sign(&self, log: &Signer) -> Result<String, CheckpointError> {
        Ok(note::sign(&self.to_text()?, &[log])?)
    }
}

/// ASCII digits, no sign, no leading zero unless the size is 0.
fn parse_size(s: &str) -> Result<u64, CheckpointError> {
    if !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0')) {
        return Err(CheckpointError::BadSize);
    }
    s.parse().map_err(|_| CheckpointError::BadSize)
}

/// Opens a signed checkpoint from the log with this origin: the log's key
/// must have signed it (other signatures, such as cosignatures, are left to
/// [`crate::cosignature`]) and the origin line must be `origin`.
pub fn open(note: &[u8], origin: &str, log: &VerifierKey) -> Result<Checkpoint, CheckpointError> {
    let opened = note::open(note, std::slice::from_ref(log))?;
    let checkpoint = Checkpoint::parse(&opened.text)?;
    if checkpoint.origin != origin {
        return Err(CheckpointError::WrongOrigin {
            expected: origin.to_owned(),
            found: checkpoint.origin,
        });
    }
    Ok(checkpoint)
}
