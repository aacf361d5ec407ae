//! # hermetic-custody
//!
//! Custody of the verifier's master key, as pure protocol pieces: bytes, keys, attestation
//! documents and the time go in; typed messages and verdicts come out. No clock, no I/O, no
//! global state (in the manner of rustls' sans-I/O core); the service and the CLI own sockets,
//! files, the NSM and the clock.
//!
//! Three ceremonies, after Turnkey's QuorumOS (genesis; boot-standard, where K share holders
//! post shares re-encrypted to the attested ephemeral key; boot-key-forward):
//!
//! 1. **Genesis** ([`genesis`]): on its first start the verifier enclave makes the 32-byte
//!    master key, splits it K-of-N with Shamir over GF(256) (vsss-rs), seals share `i` to
//!    custodian `i`'s HPKE key (hermetic-envelope's suite, bound to deployment, genesis id, K,
//!    index and the custodian key) and publishes a [`GenesisRecord`] with an HMAC commitment
//!    to the key. The key itself stays in enclave memory.
//! 2. **Unseal** ([`reseal`], [`Unsealer`]): a verifier enclave that starts without the key
//!    stays sealed. Each custodian checks its attestation document (pinned PCRs, trusted
//!    root, not debug, fresh, the custodian's nonce, the record's digest as user data, an HPKE
//!    public key) and only then opens its share and re-seals it to that document's key,
//!    bound to the document's hash. K distinct shares combine; the commitment catches a wrong
//!    key.
//! 3. **Forwarding** ([`Joiner`], [`Responder`]): a new replica gets the key from a running
//!    one after both checked each other's document (same image PCRs 0/1/2/8, not debug,
//!    fresh, each the other's nonce; single-use challenges).
//!
//! No API here returns a share in the clear; the master key leaves only as [`MasterKey`] (to
//! the enclave that made, combined or received it) or HPKE-sealed to an attested key.
//!
//! ```
//! use aws_lc_rs::rand::SystemRandom;
//! use hermetic_custody::{genesis, CustodianKey, GenesisParams, GenesisRecord};
//!
//! let rng = SystemRandom::new();
//! // Each custodian, on its own machine: a key pair; the public key is handed over.
//! let keys: Vec<CustodianKey> = (0..3).map(|_| CustodianKey::generate(&rng)).collect::<Result<_, _>>()?;
//! // The verifier enclave, on its first start: 2-of-3.
//! let (master_key, record) = genesis(
//!     &GenesisParams {
//!         deployment: "hermetic-example".into(),
//!         custodians: keys.iter().map(|k| k.public_key().clone()).collect(),
//!         threshold: 2,
//!         allow_single_custodian: false,
//!     },
//!     &rng,
//! )?;
//! // The record is public and round-trips through JSON; the key stays in memory.
//! let json = record.to_json();
//! assert_eq!(GenesisRecord::from_json(json.as_bytes())?, record);
//! assert!(!json.contains(&hex::encode(master_key.expose_secret())));
//! # Ok::<(), hermetic_custody::Error>(())
//! ```
//!
//! ## Wiring (the service and CLI side: `hermetic-verifier`'s `service/custody.rs` and
//! `service/join.rs`, as described here)
//!
//! Every refusal is `{"reason": Error::reason(), "message": Error's Display}` with status 400
//! (malformed), 403 (attestation or binding refused), 409 (`already_unsealed`), 429
//! (`challenge_capacity`), or 503 `{"reason": "sealed"}` for release and change routes while
//! sealed. Bytes: fixed-size values lower-case hex, documents and ciphertext standard base64.
//!
//! **Genesis** — `serve --custodian PUBKEY… --custodian-threshold K` on a store without a key:
//! parse each `PUBKEY` with [`CustodianPublicKey::parse`], call [`genesis`]; store
//! [`GenesisRecord::to_json`] as `DIR/genesis.json` and print it; keep the [`MasterKey`] in
//! memory only. `GET /v1/custody/genesis` → the record (public). K = 1 ([`Error::SingleCustodianThreshold`]
//! otherwise) should need an explicit development flag, available only in `test-roots`
//! builds, as `--trust-root` is.
//!
//! **Unseal** — the service, on a start with a `genesis.json` and no key, makes
//! `Unsealer::new(record, EnclaveKey::generate(rng))`. `GET /healthz` →
//! `{"state": "sealed", "have": H, "need": K}` (then `{"state": "unsealed"}`).
//! `hermetic-verifier custodian unseal --verifier URL --key KEY --verifier-measurements FILE
//! [--trust-root PEM]`:
//! ```text
//! CLI: nonce = 32 random bytes
//! POST /v1/custody/unseal/attest  {"nonce": HEX}
//!   service: req = unsealer.attestation_request(nonce)?; doc = nsm.attest(req);
//!            unsealer.attested(&doc)?
//!   → 200 {"genesis": {…GenesisRecord…}, "attestation_document": B64, "have": H, "need": K}
//! CLI: share = reseal(&CustodianKey::parse(KEY file)?, &genesis, &doc, &nonce,
//!                     &UnsealPolicy { measurements: PinnedMeasurements::parse(FILE)?,
//!                                     attestation: AttestationPolicy::new(roots, 300 s) },
//!                     now, rng)?
//!      (the CLI also checks that the genesis is the one it expects, if given)
//! POST /v1/custody/unseal/share  {…ResealedShare…}
//!   service: unsealer.submit(&share)? → Sealed{have, need} | Unsealed(key)
//!   → 200 {"state": "sealed", "have": H, "need": K} | {"state": "unsealed"}
//! ```
//! **Forwarding** — `serve … --join URL` on a replica:
//! ```text
//! joiner: (j, hello) = Joiner::start(own PCRs from its NSM, policy, rng)?
//! POST URL/v1/custody/join/offer  {"nonce": HEX}                     (JoinHello)
//!   responder: doc = nsm.attest(responder.attestation_request(&hello));
//!              offer = responder.offer(doc, now, rng)?
//!   → 200 {"challenge": HEX, "genesis": {…}, "attestation_document": B64}   (JoinOffer)
//! joiner: req = j.check_offer(&offer, now)?; doc = nsm.attest(req); r = j.request(doc)?
//! POST URL/v1/custody/join/key  {"challenge": HEX, "attestation_document": B64}  (JoinRequest)
//!   responder: fwd = responder.forward(&r, &master_key, now, rng)?
//!   → 200 {"genesis_id", "responder_document_sha256", "joiner_document_sha256", "enc",
//!          "ciphertext"}                                             (ForwardedKey)
//! joiner: (key, record) = j.finish(&fwd)?; store record as genesis.json
//! ```
//! The service maps these errors to `join_*` reasons (`JoinRefusal` in
//! `verifier/src/service/join.rs`), logs `key_forwarded` on both sides before the key is
//! answered or used, and a joiner in debug mode does not ask at all.
//! `custodian keygen --out KEY`: [`CustodianKey::generate`], write
//! [`CustodianKey::to_file_text`] with mode 0600 (create-new), print the public key.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod binding;
mod check;
mod error;
mod forward;
mod genesis;
mod key;
mod rng;
mod shamir;
mod unseal;
mod wire;

pub use check::{AttestationPolicy, PinnedMeasurements, CLOCK_SKEW, IMAGE_PCRS};
pub use error::Error;
pub use forward::{ForwardedKey, JoinHello, JoinOffer, JoinRequest, Joiner, Responder};
pub use genesis::{
    genesis, GenesisParams, GenesisRecord, SealedShare, GENESIS_FORMAT, MAX_CUSTODIANS,
    MAX_DEPLOYMENT_LEN,
};
pub use key::{
    fingerprint, CustodianKey, CustodianPublicKey, MasterKey, MASTER_KEY_LEN, PRIVATE_KEY_PREFIX,
    PUBLIC_KEY_PREFIX,
};
pub use unseal::{
    record_digest, reseal, ResealedShare, UnsealPolicy, UnsealProgress, Unsealer,
    MAX_ISSUED_DOCUMENTS, MAX_NONCE_LEN, MIN_NONCE_LEN,
};
pub use wire::{AttestationRequest, MAX_B64_BYTES};
