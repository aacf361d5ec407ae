//! Recovery: custodians re-seal their shares to a verifier enclave they attested, and the
//! enclave combines K of them.

use std::collections::{BTreeMap, VecDeque};

use aws_lc_rs::rand::SecureRandom;
use hermetic_attestation::UnixTime;
use hermetic_envelope::{open_bound, seal_bound, EnclaveKey, SealedValue};
use serde::{Deserialize, Serialize};

use crate::binding::{self, sha256};
use crate::check::{check, AttestationPolicy, Expected, PinnedMeasurements};
use crate::genesis::GenesisRecord;
use crate::key::CustodianKey;
use crate::shamir::{self, Share};
use crate::wire::{b64, hex_array, AttestationRequest};
use crate::{Error, MasterKey};

/// Shortest custodian nonce accepted by [`Unsealer::attestation_request`].
pub const MIN_NONCE_LEN: usize = 16;
/// Longest custodian nonce (the NSM takes at most 512 bytes of nonce).
pub const MAX_NONCE_LEN: usize = 64;
/// How many issued documents an [`Unsealer`] remembers (one per custodian request).
pub const MAX_ISSUED_DOCUMENTS: usize = 64;

/// What a custodian requires of the verifier enclave before re-sealing its share.
#[derive(Debug)]
pub struct UnsealPolicy {
    /// The verifier image's measurements, pinned by the custodian.
    pub measurements: PinnedMeasurements,
    /// Trusted roots and the oldest document accepted.
    pub attestation: AttestationPolicy,
}

/// A custodian's share re-sealed to a verifier enclave's attested key.
///
/// JSON: `{"genesis_id": HEX, "index": N, "document_sha256": HEX, "enc": B64,
/// "ciphertext": B64}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResealedShare {
    /// The genesis the share belongs to.
    #[serde(with = "hex_array")]
    pub genesis_id: [u8; 16],
    /// Share index.
    pub index: u8,
    /// SHA-256 of the verifier's document the custodian checked.
    #[serde(with = "hex_array")]
    pub document_sha256: [u8; 32],
    /// HPKE `enc`.
    #[serde(with = "b64")]
    pub enc: Vec<u8>,
    /// HPKE ciphertext and tag.
    #[serde(with = "b64")]
    pub ciphertext: Vec<u8>,
}

/// The record's digest, which a sealed verifier puts in its document's `user_data` so that a
/// custodian knows the enclave asks for this very genesis.
pub fn record_digest(record: &GenesisRecord) -> [u8; 32] {
    let compact = serde_json::to_vec(record).unwrap_or_default();
    sha256(&compact)
}

/// The custodian's side: checks the verifier enclave's attestation document, then opens its
/// own share and re-seals it to the document's public key, bound to the document's hash.
///
/// Refuses, before the share is touched: a document that fails the attestation core (chain,
/// signature, untrusted root, expired certificates at `now`), a debug-mode enclave, PCRs other
/// than `policy.measurements`, a document older than the policy allows or from the future, a
/// nonce other than `nonce` (the custodian's fresh challenge), `user_data` other than
/// [`record_digest`] of `record`, and a `public_key` that is absent or not an X25519 HPKE key.
pub fn reseal(
    custodian: &CustodianKey,
    record: &GenesisRecord,
    verifier_document: &[u8],
    nonce: &[u8],
    policy: &UnsealPolicy,
    now: UnixTime,
    rng: &dyn SecureRandom,
) -> Result<ResealedShare, Error> {
    let checked = check(
        &policy.attestation,
        verifier_document,
        now,
        Expected::Pinned(&policy.measurements),
        nonce,
    )?;
    if checked.document.user_data.as_deref() != Some(record_digest(record).as_slice()) {
        return Err(Error::BindingMismatch);
    }
    let recipient = checked.recipient()?;
    let share = record.open_share(custodian)?;
    let ctx = binding::reseal(
        record.deployment(),
        record.genesis_id(),
        record.threshold(),
        share.index,
        custodian.public_key().as_bytes(),
        &checked.sha256,
    );
    let sealed = seal_bound(&recipient, &ctx, share.value.as_slice(), rng).map_err(Error::Seal)?;
    Ok(ResealedShare {
        genesis_id: *record.genesis_id(),
        index: share.index,
        document_sha256: checked.sha256,
        enc: sealed.enc,
        ciphertext: sealed.ciphertext,
    })
}

/// Where an [`Unsealer`] stands.
#[derive(Debug)]
pub enum UnsealProgress {
    /// Still sealed: `have` distinct shares of the `need` required.
    Sealed {
        /// Distinct shares held.
        have: usize,
        /// K.
        need: usize,
    },
    /// K shares combined to the key the genesis committed to.
    Unsealed(MasterKey),
}

/// The sealed verifier enclave's side: holds an ephemeral HPKE key (its public half goes into
/// every document it shows custodians) and collects re-sealed shares until K combine.
pub struct Unsealer {
    record: GenesisRecord,
    key: EnclaveKey,
    digest: [u8; 32],
    issued: VecDeque<[u8; 32]>,
    shares: BTreeMap<u8, Share>,
    done: bool,
}

impl Unsealer {
    /// Starts unsealing `record` with `key`, a fresh key made for this boot.
    pub fn new(record: GenesisRecord, key: EnclaveKey) -> Self {
        let digest = record_digest(&record);
        Unsealer {
            record,
            key,
            digest,
            issued: VecDeque::new(),
            shares: BTreeMap::new(),
            done: false,
        }
    }

    /// The genesis record being unsealed.
    pub fn record(&self) -> &GenesisRecord {
        &self.record
    }

    /// `(have, need)`.
    pub fn progress(&self) -> (usize, usize) {
        (self.shares.len(), usize::from(self.record.threshold()))
    }

    /// What to ask the NSM for when a custodian sends its challenge `nonce`: that nonce, this
    /// unsealer's public key, and the record's digest as user data.
    pub fn attestation_request(&self, nonce: &[u8]) -> Result<AttestationRequest, Error> {
        if nonce.len() < MIN_NONCE_LEN || nonce.len() > MAX_NONCE_LEN {
            return Err(Error::BadMessage("nonce must be 16 to 64 bytes"));
        }
        Ok(AttestationRequest {
            nonce: nonce.to_vec(),
            public_key: Some(self.key.public_key_bytes()),
            user_data: self.digest.to_vec(),
        })
    }

    /// Notes a document the NSM produced for [`attestation_request`](Self::attestation_request)
    /// (only shares bound to a noted document are taken). Refuses a document that does not
    /// carry this unsealer's key and the record digest.
    pub fn attested(&mut self, document: &[u8]) -> Result<(), Error> {
        let (_, doc) = hermetic_attestation::decode(document).map_err(Error::Attestation)?;
        if doc.public_key.as_deref() != Some(self.key.public_key_bytes().as_slice())
            || doc.user_data.as_deref() != Some(self.digest.as_slice())
        {
            return Err(Error::BindingMismatch);
        }
        if self.issued.len() == MAX_ISSUED_DOCUMENTS {
            self.issued.pop_front();
        }
        self.issued.push_back(sha256(document));
        Ok(())
    }

    /// Takes one re-sealed share. It must open with this unsealer's key under its binding and
    /// match its check value in the record. A share already held (same index) counts once. At
    /// K distinct shares the key is combined and checked against the genesis commitment; on a
    /// mismatch (only possible with an inconsistent record) every collected share is
    /// discarded.
    pub fn submit(&mut self, share: &ResealedShare) -> Result<UnsealProgress, Error> {
        if self.done {
            return Err(Error::AlreadyUnsealed);
        }
        if &share.genesis_id != self.record.genesis_id() {
            return Err(Error::WrongGenesis);
        }
        let entry = self
            .record
            .share_at(share.index)
            .ok_or(Error::UnknownShareIndex { index: share.index })?;
        if !self.issued.contains(&share.document_sha256) {
            return Err(Error::UnknownDocument);
        }
        let ctx = binding::reseal(
            self.record.deployment(),
            self.record.genesis_id(),
            self.record.threshold(),
            share.index,
            entry.custodian.as_bytes(),
            &share.document_sha256,
        );
        let sealed = SealedValue {
            enc: share.enc.clone(),
            ciphertext: share.ciphertext.clone(),
        };
        let bytes =
            open_bound(&self.key, &sealed, &ctx).map_err(|_| Error::ResealedShareOpenFailed)?;
        let opened =
            Share::from_slice(share.index, &bytes).ok_or(Error::ResealedShareOpenFailed)?;
        if !binding::share_check_matches(
            opened.value.as_slice(),
            self.record.deployment(),
            self.record.genesis_id(),
            share.index,
            &entry.check,
        ) {
            return Err(Error::ShareCheckFailed { index: share.index });
        }
        self.shares.entry(share.index).or_insert(opened);
        let (have, need) = self.progress();
        if have < need {
            return Ok(UnsealProgress::Sealed { have, need });
        }
        let chosen: Vec<&Share> = self.shares.values().collect();
        let key = shamir::combine(&chosen);
        self.shares.clear();
        let key = key?;
        if !self.record.key_matches(&key) {
            return Err(Error::CommitmentMismatch);
        }
        self.done = true;
        Ok(UnsealProgress::Unsealed(key))
    }
}

impl core::fmt::Debug for Unsealer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (have, need) = self.progress();
        f.debug_struct("Unsealer")
            .field("have", &have)
            .field("need", &need)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
