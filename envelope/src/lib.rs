//! # hermetic-envelope
//!
//! The one implementation, shared by the verifier (which seals) and the enclave (which opens),
//! of:
//!
//! 1. the **envelope**: a secret sealed with HPKE (RFC 9180, base mode, suite
//!    DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / ChaCha20Poly1305) to the ephemeral key that an
//!    enclave put into its attestation document, bound to a [`ReleaseContext`] (secret name,
//!    version and the challenge nonce) — see [`seal`] and [`open`];
//! 2. the JSON **wire types** of the release API — see [`wire`];
//! 3. **value intake**: a secret value sealed by its owner to the verifier's intake key, bound
//!    to a deployment and a secret name ([`IntakeContext`]) — see [`seal_value`] and
//!    [`open_value`];
//! 4. **bound values**: the same sealing under a caller-named [`BoundContext`], for protocols
//!    built on this crate (custody shares, key forwarding) — see [`seal_bound`] and
//!    [`open_bound`].
//!
//! ```
//! use hermetic_envelope::{open, seal, EnclaveKey, RecipientPublicKey, ReleaseContext};
//! use aws_lc_rs::rand::SystemRandom;
//!
//! let rng = SystemRandom::new();
//! // Enclave: make a key; its public half goes into the attestation document.
//! let key = EnclaveKey::generate(&rng)?;
//! let public_key = key.public_key_bytes();
//!
//! // Verifier: after checking the attestation document, seal to its public key.
//! let ctx = ReleaseContext::new("db-password", 3, vec![0x5a; 32]);
//! let recipient = RecipientPublicKey::from_bytes(&public_key)?;
//! let sealed = seal(&recipient, &ctx, b"hunter2", &rng)?;
//!
//! // Enclave: open, stating what it asked for.
//! let plaintext = open(&key, &sealed, &ctx)?;
//! assert_eq!(plaintext.as_slice(), b"hunter2");
//! # Ok::<(), hermetic_envelope::EnvelopeError>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod bound;
mod context;
mod envelope;
mod error;
mod intake;
mod kem;
mod key;
pub mod rng;
mod suite;
pub mod wire;

#[cfg(test)]
mod kat_tests;

pub use bound::{
    open_bound, seal_bound, BoundContext, BOUND_LABEL_PREFIX, MAX_BOUND_FIELDS, MAX_BOUND_LEN,
};
pub use context::{ReleaseContext, CONTEXT_LABEL, MAX_NAME_LEN, MAX_NONCE_LEN};
pub use envelope::{open, seal, SealedSecret};
pub use error::EnvelopeError;
pub use intake::{
    open_value, seal_value, IntakeContext, SealedValue, ENC_LEN, INTAKE_LABEL, MAX_DEPLOYMENT_LEN,
    TAG_LEN,
};
pub use key::{EnclaveKey, RecipientPublicKey, MIN_IKM_LEN, PUBLIC_KEY_LEN};
pub use zeroize::Zeroizing;
