//! C2SP Ed25519 cosignatures, `cosignature/v1`
//! (<https://c2sp.org/tlog-cosignature>): a witness's timestamped
//! statement that a checkpoint is the largest consistent tree it has seen
//! for that log.
//!
//! A cosignature is a note signature line on the checkpoint whose key id
//! uses signature type 0x04 and whose bytes are the timestamp (u64,
//! big-endian) followed by an Ed25519 signature over
//!
//! ```text
//! cosignature/v1
//! time <timestamp>
//! <the checkpoint's note text>
//! ```
//!
//! Time is always the caller's input: nothing here reads a clock.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::signature::{UnparsedPublicKey, ED25519};
use zeroize::Zeroizing;

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::note::{self, Ed25519Key, NoteError};

/// Signature type byte of Ed25519 cosignature/v1 (c2sp.org/signed-note,
/// "Signature types").
pub const ALG_COSIGNATURE_V1: u8 = 0x04;

/// The largest timestamp a cosignature may carry: 2^63 - 1
/// (c2sp.org/tlog-cosignature, "Format").
pub const MAX_TIMESTAMP: u64 = i64::MAX as u64;

/// Bytes of a cosignature/v1 signature: timestamp and Ed25519 signature.
const COSIGNATURE_LEN: usize = 8 + 64;

/// Why a cosignature could not be made or was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CosignatureError {
    #[error(transparent)]
    Note(#[from] NoteError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("invalid cosignature for witness {name}+{key_id:08x}")]
    BadCosignature { name: String, key_id: u32 },
    #[error("timestamp {timestamp} exceeds 2^63-1")]
    TimestampOutOfRange { timestamp: u64 },
}

/// The message a cosigner signs for `checkpoint_text` at `timestamp`
/// (c2sp.org/tlog-cosignature, "Ed25519 signed message").
pub fn signed_message(checkpoint_text: &str, timestamp: u64) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{checkpoint_text}")
}

/// Splits a cosignature/v1 signature (the bytes after the key id) into its
/// timestamp and Ed25519 signature.
pub fn split_signature(sig: &[u8]) -> Option<(u64, &[u8])> {
    if sig.len() != COSIGNATURE_LEN {
        return None;
    }
    let (ts, ed) = sig.split_at(8);
    Some((u64::from_be_bytes(ts.try_into().ok()?), ed))
}

/// A witness's public key: name, key id (type 0x04) and Ed25519 key;
/// parsed from and displayed as `NAME+HHHHHHHH+BASE64(0x04 || key)`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct CosignerKey {
    name: String,
    key_id: u32,
    public_key: [u8; 32],
}

impl CosignerKey {
    pub fn new_ed25519(name: &str, public_key: &[u8; 32]) -> Result<CosignerKey, NoteError> {
        if !note::is_valid_name(name) {
            return Err(NoteError::InvalidName);
        }
        Ok(CosignerKey {
            name: name.to_owned(),
            key_id: note::key_id(name, &note::encoded(ALG_COSIGNATURE_V1, public_key)),
            public_key: *public_key,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    pub fn public_key(&self) -> &[u8; 32] {
        &self.public_key
    }

    /// Whether `sig` (timestamp || Ed25519 signature) is this witness's
    /// cosignature of `checkpoint_text`; returns its timestamp.
    pub fn verify(&self, checkpoint_text: &str, sig: &[u8]) -> Option<u64> {
        let (timestamp, ed) = split_signature(sig)?;
        if timestamp > MAX_TIMESTAMP {
            return None;
        }
        let msg = signed_message(checkpoint_text, timestamp);
        UnparsedPublicKey::new(&ED25519, &self.public_key)
            .verify(msg.as_bytes(), ed)
            .ok()
            .map(|()| timestamp)
    }
}

impl FromStr for CosignerKey {
    type Err = NoteError;

    fn from_str(s: &str) -> Result<CosignerKey, NoteError> {
        let (name, key_id, public_key) = note::parse_public_key(s, ALG_COSIGNATURE_V1)?;
        Ok(CosignerKey {
            name,
            key_id,
            public_key,
        })
    }
}

impl fmt::Display for CosignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        note::format_public_key(
            f,
            &self.name,
            self.key_id,
            ALG_COSIGNATURE_V1,
            &self.public_key,
        )
    }
}

/// A witness's signing key. `Debug` shows name and key id only; the seed
/// is wiped on drop. Its private key string is
/// `PRIVATE+KEY+NAME+HHHHHHHH+BASE64(0x04 || seed)`, the note private key
/// shape with the cosignature type byte.
pub struct Cosigner {
    key: Ed25519Key,
}

impl Cosigner {
    pub fn generate(name: &str) -> Result<Cosigner, NoteError> {
        Ed25519Key::generate(name, ALG_COSIGNATURE_V1).map(|key| Cosigner { key })
    }

    pub fn from_private_key(s: &str) -> Result<Cosigner, NoteError> {
        Ed25519Key::from_private_key(s, ALG_COSIGNATURE_V1).map(|key| Cosigner { key })
    }

    pub fn private_key_string(&self) -> Zeroizing<String> {
        self.key.private_key_string()
    }

    pub fn cosigner_key(&self) -> CosignerKey {
        CosignerKey {
            name: self.key.name().to_owned(),
            key_id: self.key.key_id(),
            public_key: *self.key.public_key(),
        }
    }

    pub fn name(&self) -> &str {
        self.key.name()
    }

    pub fn key_id(&self) -> u32 {
        self.key.key_id()
    }
}

impl fmt::Debug for Cosigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.key.debug(f, "Cosigner")
    }
}

/// Adds `cosigner`'s cosignature at `timestamp` to a signed checkpoint,
/// keeping the other signature lines and replacing an earlier one of this
/// cosigner. The note's text must parse as a checkpoint; its signatures
/// are not verified here (a witness checks the log's signature and the
/// consistency proof before it cosigns).
pub fn cosign(
    note: &[u8],
    cosigner: &Cosigner,
    timestamp: u64,
) -> Result<String, CosignatureError> {
    if timestamp > MAX_TIMESTAMP {
        return Err(CosignatureError::TimestampOutOfRange { timestamp });
    }
    let parsed = note::parse(note)?;
    Checkpoint::parse(&parsed.text)?;
    let msg = signed_message(&parsed.text, timestamp);
    let sig_for = |k: &Ed25519Key| {
        let mut sig = Vec::with_capacity(COSIGNATURE_LEN);
        sig.extend_from_slice(&timestamp.to_be_bytes());
        sig.extend_from_slice(&k.sign(msg.as_bytes()));
        sig
    };
    Ok(note::sign_lines(
        &parsed.text,
        parsed.signatures,
        &[&cosigner.key],
        &sig_for,
    )?)
}

/// One verified cosignature.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Cosignature {
    pub key: CosignerKey,
    pub timestamp: u64,
}

/// Verifies the cosignatures on a checkpoint note from the witnesses the
/// caller trusts, as [`note::open`] treats signatures: a line whose name and
/// key id match a known witness must verify, or the note is refused
/// ([`CosignatureError::BadCosignature`]); other lines are ignored; a
/// witness that cosigned twice counts once (its first line). The quorum is
/// the caller's decision: the result may be empty. The log's own signature
/// is checked by [`crate::checkpoint::open`].
pub fn verify(
    note: &[u8],
    witnesses: &[CosignerKey],
) -> Result<Vec<Cosignature>, CosignatureError> {
    let parsed = note::parse(note)?;
    Checkpoint::parse(&parsed.text)?;
    let mut verified: Vec<Cosignature> = Vec::new();
    for sig in &parsed.signatures {
        let mut matching = witnesses
            .iter()
            .filter(|w| w.key_id == sig.key_id && w.name == sig.name);
        let Some(witness) = matching.next() else {
            continue;
        };
        if matching.any(|other| other != witness) {
            return Err(NoteError::AmbiguousKey {
                name: sig.name.clone(),
                key_id: sig.key_id,
            }
            .into());
        }
        let Some(timestamp) = witness.verify(&parsed.text, &sig.sig) else {
            return Err(CosignatureError::BadCosignature {
                name: sig.name.clone(),
                key_id: sig.key_id,
            });
        };
        if !verified.iter().any(|c| &c.key == witness) {
            verified.push(Cosignature {
                key: witness.clone(),
                timestamp,
            });
        }
    }
    Ok(verified)
}
