//! The release's log receipt, checked before any workload starts: the
//! verifier's answer must prove that this very release is in its
//! transparency log (a release that is not in the log is refused).
//!
//! Pure: the receipt, the pinned log key and what this enclave asked for
//! and received go in; a verdict comes out. Checks, in order: the
//! checkpoint is signed by the pinned key and names its origin
//! (c2sp.org/tlog-checkpoint), the leaf is included at its index under the
//! checkpoint's root (RFC 6962 §2.1.1), and the leaf is this enclave's own
//! grant: a granted `release` whose nonce is the one this enclave attested,
//! whose document hash is that of the document it sent, and whose secrets
//! are exactly the names it asked for at the versions it received.

use std::collections::BTreeMap;

use aws_lc_rs::digest::{digest, SHA256};
use hermetic_envelope::wire::Receipt;
use hermetic_tlog::checkpoint;
use hermetic_tlog::cosignature::{self, CosignerKey};
use hermetic_tlog::merkle::{check_record, record_hash, Hash};
use hermetic_tlog::note::VerifierKey;
use serde::Deserialize;

/// Why a receipt was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("the answer carries no log receipt (is the verifier older than its log?)")]
    Missing,
    #[error("the receipt's checkpoint does not verify with the pinned log key: {0}")]
    Checkpoint(String),
    #[error("the receipt's inclusion proof is malformed or does not lead to the signed root: {0}")]
    Inclusion(String),
    #[error("the logged record is not this enclave's release: {0}")]
    NotOurs(&'static str),
    #[error("the receipt's checkpoint has {have} valid cosignature(s) by the pinned witnesses, {need} required")]
    TooFewCosignatures { have: usize, need: usize },
}

impl ReceiptError {
    pub fn reason(&self) -> &'static str {
        match self {
            ReceiptError::Missing => "receipt_missing",
            ReceiptError::Checkpoint(_) => "receipt_bad_checkpoint",
            ReceiptError::Inclusion(_) => "receipt_not_included",
            ReceiptError::NotOurs(_) => "receipt_wrong_record",
            ReceiptError::TooFewCosignatures { .. } => "receipt_not_cosigned",
        }
    }
}

/// The fields of a log record the enclave checks (the verifier's
/// `log::Record`; other fields are ignored).
#[derive(Deserialize)]
struct Leaf {
    seq: u64,
    entry: LeafEntry,
}

#[derive(Deserialize)]
struct LeafEntry {
    action: String,
    verdict: String,
    #[serde(default)]
    secrets: Vec<LeafSecret>,
    #[serde(default)]
    who: LeafWho,
}

#[derive(Deserialize)]
struct LeafSecret {
    name: String,
    version: Option<u64>,
}

#[derive(Deserialize, Default)]
struct LeafWho {
    nonce: Option<String>,
    document_sha256: Option<String>,
}

/// What this enclave asked for and received.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    pub nonce: &'a [u8],
    pub document: &'a [u8],
    /// Name → version received.
    pub secrets: BTreeMap<String, u64>,
}

/// Witnesses whose cosignatures the receipt's checkpoint must carry
/// (c2sp.org/tlog-cosignature): at least `threshold` of `keys`.
#[derive(Debug, Clone, Default)]
pub struct Witnesses {
    pub keys: Vec<CosignerKey>,
    pub threshold: usize,
}

/// Checks `receipt` (see the module documentation).
pub fn check(
    receipt: Option<&Receipt>,
    log_key: &VerifierKey,
    witnesses: &Witnesses,
    expected: &Expected<'_>,
) -> Result<(), ReceiptError> {
    let receipt = receipt.ok_or(ReceiptError::Missing)?;
    let cp = checkpoint::open(receipt.checkpoint.as_bytes(), log_key.name(), log_key)
        .map_err(|e| ReceiptError::Checkpoint(e.to_string()))?;
    if witnesses.threshold > 0 {
        // A line by a pinned witness that does not verify refuses the note.
        let have = cosignature::verify(receipt.checkpoint.as_bytes(), &witnesses.keys)
            .map_err(|e| ReceiptError::Checkpoint(e.to_string()))?
            .len();
        if have < witnesses.threshold {
            return Err(ReceiptError::TooFewCosignatures {
                have,
                need: witnesses.threshold,
            });
        }
    }
    let proof = receipt
        .proof
        .iter()
        .map(|h| h.parse::<Hash>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ReceiptError::Inclusion("a proof hash is not base64 of 32 bytes".into()))?;
    let leaf = receipt.leaf.as_bytes();
    check_record(
        &proof,
        cp.size,
        &cp.root_hash,
        receipt.index,
        &record_hash(leaf),
    )
    .map_err(|e| ReceiptError::Inclusion(e.to_string()))?;
    let record: Leaf = serde_json::from_slice(leaf)
        .map_err(|_| ReceiptError::NotOurs("the leaf is not a log record"))?;
    if record.seq != receipt.index {
        return Err(ReceiptError::NotOurs(
            "its sequence number is not its leaf index",
        ));
    }
    let entry = record.entry;
    if entry.action != "release" || entry.verdict != "granted" {
        return Err(ReceiptError::NotOurs("it is not a granted release"));
    }
    if entry.who.nonce.as_deref() != Some(hex::encode(expected.nonce).as_str()) {
        return Err(ReceiptError::NotOurs("it names another nonce"));
    }
    let doc_sha256 = hex::encode(digest(&SHA256, expected.document));
    if entry.who.document_sha256.as_deref() != Some(doc_sha256.as_str()) {
        return Err(ReceiptError::NotOurs(
            "it names another attestation document",
        ));
    }
    let mut logged = BTreeMap::new();
    for s in entry.secrets {
        let Some(version) = s.version else {
            return Err(ReceiptError::NotOurs("a logged secret has no version"));
        };
        if logged.insert(s.name, version).is_some() {
            return Err(ReceiptError::NotOurs("it names a secret twice"));
        }
    }
    if logged != expected.secrets {
        return Err(ReceiptError::NotOurs(
            "its secrets or versions are not the ones received",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use hermetic_envelope::Zeroizing;
    use hermetic_tlog::checkpoint::Checkpoint;
    use hermetic_tlog::merkle::{prove_record, stored_hashes, tree_hash};
    use hermetic_tlog::note::Signer;

    use super::*;

    const NONCE: &[u8] = &[7; 32];
    const DOC: &[u8] = b"the attestation document";

    fn signer(seed: u8) -> Signer {
        Signer::from_seed("hermetic.log/test", Zeroizing::new([seed; 32])).unwrap()
    }

    fn release(seq: u64, nonce: &[u8], doc: &[u8], secrets: &[(&str, u64)]) -> String {
        serde_json::json!({
            "seq": seq,
            "time": "2026-12-01T00:00:00.000Z",
            "entry": {
                "action": "release",
                "verdict": "granted",
                "secrets": secrets.iter().map(|(n, v)| serde_json::json!({"name": n, "version": v})).collect::<Vec<_>>(),
                "who": {
                    "nonce": hex::encode(nonce),
                    "document_sha256": hex::encode(digest(&SHA256, doc)),
                },
            },
        })
        .to_string()
    }

    /// A log of five records, the release at index 3; the receipt of `index`.
    fn receipt_for(index: u64, by: &Signer) -> Receipt {
        let leaves: Vec<String> = (0..5)
            .map(|i| {
                if i == 3 {
                    release(3, NONCE, DOC, &[("db", 2)])
                } else {
                    release(i, &[i as u8; 32], b"another document", &[("db", 1)])
                }
            })
            .collect();
        let mut hashes = Vec::new();
        for (i, l) in leaves.iter().enumerate() {
            let new = stored_hashes(i as u64, l.as_bytes(), &hashes).unwrap();
            hashes.extend(new);
        }
        let note = Checkpoint {
            origin: "hermetic.log/test".into(),
            size: 5,
            root_hash: tree_hash(5, &hashes).unwrap(),
            extensions: vec![],
        }
        .sign(by)
        .unwrap();
        Receipt {
            checkpoint: note,
            index,
            leaf: leaves[index as usize].clone(),
            proof: prove_record(5, index, &hashes)
                .unwrap()
                .iter()
                .map(ToString::to_string)
                .collect(),
        }
    }

    fn none() -> Witnesses {
        Witnesses::default()
    }

    #[test]
    fn cosignatures_are_required_when_witnesses_are_pinned() {
        use hermetic_tlog::cosignature::{cosign, Cosigner};
        let key = signer(1).verifier_key();
        let (w1, w2) = (
            Cosigner::generate("w1.test").unwrap(),
            Cosigner::generate("w2.test").unwrap(),
        );
        let pinned = Witnesses {
            keys: vec![w1.cosigner_key(), w2.cosigner_key()],
            threshold: 2,
        };
        let mut r = receipt_for(3, &signer(1));
        // Uncosigned, then cosigned by one: refused.
        assert_eq!(
            check(Some(&r), &key, &pinned, &expected()),
            Err(ReceiptError::TooFewCosignatures { have: 0, need: 2 })
        );
        r.checkpoint = cosign(r.checkpoint.as_bytes(), &w1, 1_800_000_000).unwrap();
        let one = r.clone();
        assert_eq!(
            check(Some(&one), &key, &pinned, &expected()),
            Err(ReceiptError::TooFewCosignatures { have: 1, need: 2 })
        );
        // The same witness twice counts once.
        let twice = Receipt {
            checkpoint: cosign(one.checkpoint.as_bytes(), &w1, 1_800_000_001).unwrap(),
            ..one.clone()
        };
        assert!(check(Some(&twice), &key, &pinned, &expected()).is_err());
        r.checkpoint = cosign(r.checkpoint.as_bytes(), &w2, 1_800_000_000).unwrap();
        check(Some(&r), &key, &pinned, &expected()).unwrap();
        // A forged line under a pinned witness's name and id refuses it.
        let forged = Cosigner::generate("w2.test").unwrap();
        let other = Receipt {
            checkpoint: cosign(one.checkpoint.as_bytes(), &forged, 1_800_000_000).unwrap(),
            ..one
        };
        let pinned_forged = Witnesses {
            keys: vec![w1.cosigner_key(), forged.cosigner_key()],
            threshold: 2,
        };
        check(Some(&other), &key, &pinned_forged, &expected()).unwrap();
        assert!(check(Some(&other), &key, &pinned, &expected()).is_err());
        assert_eq!(
            ReceiptError::TooFewCosignatures { have: 0, need: 1 }.reason(),
            "receipt_not_cosigned"
        );
    }

    fn expected() -> Expected<'static> {
        Expected {
            nonce: NONCE,
            document: DOC,
            secrets: [("db".to_owned(), 2)].into_iter().collect(),
        }
    }

    #[test]
    fn the_enclaves_own_release_is_accepted() {
        let key = signer(1).verifier_key();
        check(
            Some(&receipt_for(3, &signer(1))),
            &key,
            &none(),
            &expected(),
        )
        .unwrap();
    }

    #[test]
    fn a_missing_receipt_is_refused() {
        let key = signer(1).verifier_key();
        assert_eq!(
            check(None, &key, &none(), &expected()),
            Err(ReceiptError::Missing)
        );
    }

    #[test]
    fn a_receipt_for_another_record_is_refused() {
        let key = signer(1).verifier_key();
        let other = receipt_for(2, &signer(1));
        assert_eq!(
            check(Some(&other), &key, &none(), &expected()),
            Err(ReceiptError::NotOurs("it names another nonce"))
        );
        // Our own record but another version than the one received.
        let mut want = expected();
        want.secrets.insert("db".into(), 3);
        assert!(matches!(
            check(Some(&receipt_for(3, &signer(1))), &key, &none(), &want),
            Err(ReceiptError::NotOurs(_))
        ));
        // Our nonce, but a document we did not send.
        let want = Expected {
            document: b"another",
            ..expected()
        };
        assert!(matches!(
            check(Some(&receipt_for(3, &signer(1))), &key, &none(), &want),
            Err(ReceiptError::NotOurs(_))
        ));
    }

    #[test]
    fn a_tampered_proof_or_leaf_is_refused() {
        let key = signer(1).verifier_key();
        let mut r = receipt_for(3, &signer(1));
        r.proof[0] = Hash([9; 32]).to_string();
        assert!(matches!(
            check(Some(&r), &key, &none(), &expected()),
            Err(ReceiptError::Inclusion(_))
        ));
        // The leaf swapped for one the log never held (our nonce, inserted).
        let mut r = receipt_for(2, &signer(1));
        r.leaf = release(2, NONCE, DOC, &[("db", 2)]);
        assert!(matches!(
            check(Some(&r), &key, &none(), &expected()),
            Err(ReceiptError::Inclusion(_))
        ));
        // Right leaf and proof under another index.
        let mut r = receipt_for(3, &signer(1));
        r.index = 2;
        assert!(matches!(
            check(Some(&r), &key, &none(), &expected()),
            Err(ReceiptError::Inclusion(_))
        ));
        let mut r = receipt_for(3, &signer(1));
        r.proof.push("not base64".into());
        assert!(matches!(
            check(Some(&r), &key, &none(), &expected()),
            Err(ReceiptError::Inclusion(_))
        ));
    }

    #[test]
    fn a_checkpoint_signed_by_another_key_is_refused() {
        let key = signer(1).verifier_key();
        let r = receipt_for(3, &signer(2));
        assert!(matches!(
            check(Some(&r), &key, &none(), &expected()),
            Err(ReceiptError::Checkpoint(_))
        ));
        assert_eq!(
            ReceiptError::Checkpoint(String::new()).reason(),
            "receipt_bad_checkpoint"
        );
    }
}
