//! A log in memory for witness tests: records appended as `"{tag} {index}"`,
//! stored hashes in Go's layout (hermetic-tlog's `merkle`), checkpoints
//! signed by a note key, consistency proofs on demand.

use std::sync::Arc;

use hermetic_tlog::checkpoint::Checkpoint;
use hermetic_tlog::merkle::{self, Hash};
use hermetic_tlog::note::Signer;
use hermetic_tlog::witness::AddCheckpoint;
use hermetic_witness::ProofSource;

#[derive(Clone)]
pub struct TestLog {
    signer: Arc<Signer>,
    hashes: Vec<Hash>,
    pub size: u64,
}

impl TestLog {
    /// A log signed by `signer` (its origin is the key's name), with
    /// `records` records.
    pub fn new(signer: Arc<Signer>, records: u64, tag: &str) -> TestLog {
        let mut log = TestLog {
            signer,
            hashes: Vec::new(),
            size: 0,
        };
        log.append(records, tag);
        log
    }

    pub fn append(&mut self, records: u64, tag: &str) {
        for _ in 0..records {
            let data = format!("{tag} {}", self.size);
            let new = merkle::stored_hashes(self.size, data.as_bytes(), &self.hashes).unwrap();
            self.hashes.extend(new);
            self.size += 1;
        }
    }

    /// The signed checkpoint of the current size.
    pub fn checkpoint(&self) -> String {
        Checkpoint {
            origin: self.signer.name().to_owned(),
            size: self.size,
            root_hash: merkle::tree_hash(self.size, &self.hashes).unwrap(),
            extensions: vec![],
        }
        .sign(&self.signer)
        .unwrap()
    }

    /// Consistency proofs from this log's hashes (as it is now).
    pub fn proofs(&self) -> Arc<dyn ProofSource> {
        let hashes = self.hashes.clone();
        Arc::new(move |old: u64, new: u64| merkle::prove_tree(new, old, &hashes).ok())
    }

    /// An `add-checkpoint` request from size `old` to the current size.
    pub fn request(&self, old: u64) -> AddCheckpoint {
        let proof = if old == 0 || old == self.size {
            vec![]
        } else {
            merkle::prove_tree(self.size, old, &self.hashes).unwrap()
        };
        AddCheckpoint::new(old, proof, &self.checkpoint()).unwrap()
    }
}
