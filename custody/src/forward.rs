//! Forwarding: a running verifier hands the master key to a joining replica after each has
//! checked the other's attestation (same image PCRs, not debug, fresh, the nonce it chose).
//!
//! ```text
//! joiner                                                   responder (unsealed)
//! Joiner::start -> JoinHello{nonce_j}  ------------------>  Responder::attestation_request(hello)
//!                                                           NSM: doc_r(nonce=nonce_j, user_data=H(record))
//! Joiner::check_offer(offer) <-- JoinOffer{challenge, genesis, doc_r}  <--  Responder::offer(doc_r)
//!   NSM: doc_j(nonce=challenge, public_key=K_j, user_data=SHA-256(doc_r))
//! Joiner::request(doc_j) -> JoinRequest{challenge, doc_j} ->  Responder::forward(req, master)
//! Joiner::finish(fwd) -> MasterKey  <-- ForwardedKey{HPKE(K_j, master, bound to both hashes)}
//! ```
//! Each challenge is single use and expires; a replayed `doc_j` names a used (unknown)
//! challenge, or carries a nonce that is not the new challenge.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_lc_rs::rand::SecureRandom;
use hermetic_attestation::UnixTime;
use hermetic_envelope::{open_bound, seal_bound, EnclaveKey, SealedValue};
use hermetic_policy::Pcrs;
use serde::{Deserialize, Serialize};

use crate::binding::{self, sha256};
use crate::check::{check, AttestationPolicy, Expected};
use crate::genesis::GenesisRecord;
use crate::rng::random;
use crate::unseal::record_digest;
use crate::wire::{b64, hex_array, AttestationRequest};
use crate::{Error, MasterKey};

/// The joiner's first message: its fresh nonce. JSON `{"nonce": HEX}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinHello {
    /// 32 random bytes, to appear in the responder's document.
    #[serde(with = "hex_array")]
    pub nonce: [u8; 32],
}

/// The responder's answer: its challenge, the genesis record and its document.
/// JSON `{"challenge": HEX, "genesis": {…}, "attestation_document": B64}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinOffer {
    /// 32 random bytes the joiner's document must carry as its nonce.
    #[serde(with = "hex_array")]
    pub challenge: [u8; 32],
    /// The genesis record in use (its digest is the document's `user_data`).
    pub genesis: GenesisRecord,
    /// The responder's attestation document.
    #[serde(with = "b64")]
    pub attestation_document: Vec<u8>,
}

/// The joiner's request. JSON `{"challenge": HEX, "attestation_document": B64}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// The challenge answered.
    #[serde(with = "hex_array")]
    pub challenge: [u8; 32],
    /// The joiner's document: nonce = challenge, public_key = its HPKE key, user_data =
    /// SHA-256 of the responder's document.
    #[serde(with = "b64")]
    pub attestation_document: Vec<u8>,
}

/// The master key sealed to the joiner. JSON `{"genesis_id": HEX,
/// "responder_document_sha256": HEX, "joiner_document_sha256": HEX, "enc": B64,
/// "ciphertext": B64}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardedKey {
    /// The genesis whose key this is.
    #[serde(with = "hex_array")]
    pub genesis_id: [u8; 16],
    /// SHA-256 of the responder's document.
    #[serde(with = "hex_array")]
    pub responder_document_sha256: [u8; 32],
    /// SHA-256 of the joiner's document.
    #[serde(with = "hex_array")]
    pub joiner_document_sha256: [u8; 32],
    /// HPKE `enc`.
    #[serde(with = "b64")]
    pub enc: Vec<u8>,
    /// HPKE ciphertext and tag.
    #[serde(with = "b64")]
    pub ciphertext: Vec<u8>,
}

struct Pending {
    responder_document_sha256: [u8; 32],
    expires_at_secs: u64,
}

/// The running (unsealed) verifier's side.
pub struct Responder {
    record: GenesisRecord,
    own_pcrs: Pcrs,
    policy: AttestationPolicy,
    ttl: Duration,
    capacity: usize,
    digest: [u8; 32],
    pending: BTreeMap<[u8; 32], Pending>,
}

impl Responder {
    /// A responder for `record`, running with `own_pcrs` (from its own NSM), accepting peer
    /// documents under `policy`; each challenge lives `ttl`, at most `capacity` outstanding.
    pub fn new(
        record: GenesisRecord,
        own_pcrs: Pcrs,
        policy: AttestationPolicy,
        ttl: Duration,
        capacity: usize,
    ) -> Self {
        let digest = record_digest(&record);
        Responder {
            record,
            own_pcrs,
            policy,
            ttl,
            capacity,
            digest,
            pending: BTreeMap::new(),
        }
    }

    /// What to ask the NSM for, for this joiner: its nonce and the record's digest.
    pub fn attestation_request(&self, hello: &JoinHello) -> AttestationRequest {
        AttestationRequest {
            nonce: hello.nonce.to_vec(),
            public_key: None,
            user_data: self.digest.to_vec(),
        }
    }

    /// Outstanding challenges.
    pub fn outstanding(&self) -> usize {
        self.pending.len()
    }

    /// Whether [`offer`](Self::offer) at `now` would find room, after
    /// forgetting expired challenges: checked before the NSM is asked for a
    /// document, so a caller over the cap costs no attestation.
    pub fn has_room(&mut self, now: UnixTime) -> bool {
        self.purge(now);
        self.pending.len() < self.capacity
    }

    fn purge(&mut self, now: UnixTime) {
        let now = now.as_secs();
        self.pending.retain(|_, p| p.expires_at_secs >= now);
    }

    /// Issues a challenge bound to the responder's own document (made for
    /// [`attestation_request`](Self::attestation_request)).
    pub fn offer(
        &mut self,
        responder_document: Vec<u8>,
        now: UnixTime,
        rng: &dyn SecureRandom,
    ) -> Result<JoinOffer, Error> {
        self.purge(now);
        if self.pending.len() >= self.capacity {
            return Err(Error::ChallengeCapacity);
        }
        let challenge = random::<32>(rng)?;
        self.pending.insert(
            challenge,
            Pending {
                responder_document_sha256: sha256(&responder_document),
                expires_at_secs: now.as_secs().saturating_add(self.ttl.as_secs()),
            },
        );
        Ok(JoinOffer {
            challenge,
            genesis: self.record.clone(),
            attestation_document: responder_document,
        })
    }

    /// Checks the joiner's document and seals `key` to it. The challenge is used up by this
    /// call whatever its outcome.
    pub fn forward(
        &mut self,
        request: &JoinRequest,
        key: &MasterKey,
        now: UnixTime,
        rng: &dyn SecureRandom,
    ) -> Result<ForwardedKey, Error> {
        let pending = self
            .pending
            .remove(&request.challenge)
            .ok_or(Error::ChallengeUnknown)?;
        // Never forward a key the record does not commit to (a wiring mistake would otherwise
        // surface only at the joiner).
        if !self.record.key_matches(key) {
            return Err(Error::CommitmentMismatch);
        }
        if pending.expires_at_secs < now.as_secs() {
            return Err(Error::ChallengeExpired);
        }
        let checked = check(
            &self.policy,
            &request.attestation_document,
            now,
            Expected::SameAs(&self.own_pcrs),
            &request.challenge,
        )?;
        if checked.document.user_data.as_deref()
            != Some(pending.responder_document_sha256.as_slice())
        {
            return Err(Error::BindingMismatch);
        }
        let recipient = checked.recipient()?;
        let ctx = binding::forward(
            self.record.deployment(),
            self.record.genesis_id(),
            &pending.responder_document_sha256,
            &checked.sha256,
        );
        let sealed = seal_bound(&recipient, &ctx, key.expose_secret(), rng).map_err(Error::Seal)?;
        Ok(ForwardedKey {
            genesis_id: *self.record.genesis_id(),
            responder_document_sha256: pending.responder_document_sha256,
            joiner_document_sha256: checked.sha256,
            enc: sealed.enc,
            ciphertext: sealed.ciphertext,
        })
    }
}

impl core::fmt::Debug for Responder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Responder")
            .field("outstanding", &self.pending.len())
            .finish_non_exhaustive()
    }
}

/// The joining replica's side.
pub struct Joiner {
    nonce: [u8; 32],
    key: EnclaveKey,
    own_pcrs: Pcrs,
    policy: AttestationPolicy,
    offer: Option<AcceptedOffer>,
    own_document_sha256: Option<[u8; 32]>,
}

struct AcceptedOffer {
    challenge: [u8; 32],
    record: GenesisRecord,
    responder_document_sha256: [u8; 32],
}

impl Joiner {
    /// Starts a join: a fresh nonce and HPKE key. `own_pcrs` are this replica's own
    /// measurements (from its NSM); the responder must show the same image PCRs.
    pub fn start(
        own_pcrs: Pcrs,
        policy: AttestationPolicy,
        rng: &dyn SecureRandom,
    ) -> Result<(Joiner, JoinHello), Error> {
        let nonce = random::<32>(rng)?;
        let key = EnclaveKey::generate(rng).map_err(|_| Error::RandomFailed)?;
        Ok((
            Joiner {
                nonce,
                key,
                own_pcrs,
                policy,
                offer: None,
                own_document_sha256: None,
            },
            JoinHello { nonce },
        ))
    }

    /// Checks the responder's document (attestation core, not debug, same image PCRs, fresh,
    /// our nonce, `user_data` = digest of the offered record) and says what our own document
    /// must carry.
    pub fn check_offer(
        &mut self,
        offer: &JoinOffer,
        now: UnixTime,
    ) -> Result<AttestationRequest, Error> {
        let checked = check(
            &self.policy,
            &offer.attestation_document,
            now,
            Expected::SameAs(&self.own_pcrs),
            &self.nonce,
        )?;
        if checked.document.user_data.as_deref() != Some(record_digest(&offer.genesis).as_slice()) {
            return Err(Error::BindingMismatch);
        }
        self.offer = Some(AcceptedOffer {
            challenge: offer.challenge,
            record: offer.genesis.clone(),
            responder_document_sha256: checked.sha256,
        });
        Ok(AttestationRequest {
            nonce: offer.challenge.to_vec(),
            public_key: Some(self.key.public_key_bytes()),
            user_data: checked.sha256.to_vec(),
        })
    }

    /// Wraps our own document (made for [`check_offer`](Self::check_offer)'s request).
    pub fn request(&mut self, own_document: Vec<u8>) -> Result<JoinRequest, Error> {
        let offer = self
            .offer
            .as_ref()
            .ok_or(Error::BadMessage("no offer accepted yet"))?;
        self.own_document_sha256 = Some(sha256(&own_document));
        Ok(JoinRequest {
            challenge: offer.challenge,
            attestation_document: own_document,
        })
    }

    /// Opens the forwarded key and checks it against the genesis commitment.
    pub fn finish(self, forwarded: &ForwardedKey) -> Result<(MasterKey, GenesisRecord), Error> {
        let (Some(offer), Some(own)) = (self.offer, self.own_document_sha256) else {
            return Err(Error::BadMessage("no request sent yet"));
        };
        if &forwarded.genesis_id != offer.record.genesis_id() {
            return Err(Error::WrongGenesis);
        }
        if forwarded.responder_document_sha256 != offer.responder_document_sha256
            || forwarded.joiner_document_sha256 != own
        {
            return Err(Error::BindingMismatch);
        }
        let ctx = binding::forward(
            offer.record.deployment(),
            offer.record.genesis_id(),
            &offer.responder_document_sha256,
            &own,
        );
        let sealed = SealedValue {
            enc: forwarded.enc.clone(),
            ciphertext: forwarded.ciphertext.clone(),
        };
        let bytes = open_bound(&self.key, &sealed, &ctx).map_err(|_| Error::ForwardOpenFailed)?;
        let key = MasterKey::from_slice(&bytes).ok_or(Error::ForwardOpenFailed)?;
        if !offer.record.key_matches(&key) {
            return Err(Error::CommitmentMismatch);
        }
        Ok((key, offer.record))
    }
}

impl core::fmt::Debug for Joiner {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Joiner")
            .field("offer_accepted", &self.offer.is_some())
            .finish_non_exhaustive()
    }
}
