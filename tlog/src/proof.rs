//! C2SP transparency log proofs (<https://c2sp.org/tlog-proof>): an
//! offline-verifiable proof that an entry is in a log.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64 opaque data>          (optional)
//! index <zero-based leaf index>
//! <base64 hash>                        (zero or more: the RFC 6962
//! ...                                    inclusion proof, leaf's sibling first)
//!
//! <the checkpoint note, verbatim>
//! ```
//!
//! hermetic puts the leaf itself in `extra` (the spec names "data necessary
//! to reconstruct the record hash" as one use), so a proof file alone says
//! what was logged. The extra data is not authenticated by itself: it is
//! trusted only once its record hash verifies against the signed root.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::checkpoint::{self, Checkpoint, CheckpointError};
use crate::merkle::{check_record, record_hash, Hash, ProofError};
use crate::note::VerifierKey;

/// The first line of every proof.
pub const HEADER: &str = "c2sp.org/tlog-proof@v1";

/// A parsed proof; nothing in it checked yet.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TlogProof {
    pub extra: Option<Vec<u8>>,
    pub index: u64,
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, verbatim.
    pub checkpoint: String,
}

/// Why a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlogProofError {
    #[error("not a tlog-proof: {0}")]
    Malformed(&'static str),
    #[error("the proof carries no extra data (hermetic proofs carry the record)")]
    NoRecord,
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    #[error("inclusion proof: {0}")]
    Inclusion(#[from] ProofError),
}

impl TlogProof {
    /// The proof's text.
    pub fn to_text(&self) -> String {
        let mut out = format!("{HEADER}\n");
        if let Some(extra) = &self.extra {
            out.push_str(&format!("extra {}\n", STANDARD.encode(extra)));
        }
        out.push_str(&format!("index {}\n", self.index));
        for h in &self.proof {
            out.push_str(&format!("{h}\n"));
        }
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }

    /// Parses a proof's text strictly (canonical index, canonical base64).
    pub fn parse(text: &str) -> Result<TlogProof, TlogProofError> {
        let (head, checkpoint) = text.split_once("\n\n").ok_or(TlogProofError::Malformed(
            "no blank line before the checkpoint",
        ))?;
        let mut lines = head.split('\n');
        if lines.next() != Some(HEADER) {
            return Err(TlogProofError::Malformed(
                "the first line is not c2sp.org/tlog-proof@v1",
            ));
        }
        let mut line = lines.next();
        let mut extra = None;
        if let Some(rest) = line.and_then(|l| l.strip_prefix("extra ")) {
            let bytes = STANDARD
                .decode(rest)
                .map_err(|_| TlogProofError::Malformed("extra is not base64"))?;
            if STANDARD.encode(&bytes) != rest {
                return Err(TlogProofError::Malformed("extra is not canonical base64"));
            }
            extra = Some(bytes);
            line = lines.next();
        }
        let index = line
            .and_then(|l| l.strip_prefix("index "))
            .filter(|d| {
                !d.is_empty()
                    && d.bytes().all(|b| b.is_ascii_digit())
                    && (d.len() == 1 || !d.starts_with('0'))
            })
            .and_then(|d| d.parse::<u64>().ok())
            .ok_or(TlogProofError::Malformed("no canonical `index N` line"))?;
        let proof = lines
            .map(|l| l.parse::<Hash>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| TlogProofError::Malformed("a proof line is not a base64 hash"))?;
        Ok(TlogProof {
            extra,
            index,
            proof,
            checkpoint: checkpoint.to_owned(),
        })
    }

    /// Checks the proof against the log's key (its name is the origin):
    /// the checkpoint's signature, then that the record in `extra` is the
    /// leaf at `index` of the signed tree. Returns the checkpoint and the
    /// record.
    pub fn verify(&self, log: &VerifierKey) -> Result<(Checkpoint, &[u8]), TlogProofError> {
        let cp = checkpoint::open(self.checkpoint.as_bytes(), log.name(), log)?;
        let record = self.extra.as_deref().ok_or(TlogProofError::NoRecord)?;
        check_record(
            &self.proof,
            cp.size,
            &cp.root_hash,
            self.index,
            &record_hash(record),
        )?;
        Ok((cp, record))
    }
}
