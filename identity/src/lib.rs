//! The verifier's attested identity.
//!
//! A verifier that runs as a Nitro Enclave generates its TLS key in memory
//! and asks its NSM for an attestation document that binds that key and its
//! intake key (the X25519 key owners seal secret values to). Its clients —
//! the enclave agent, the owners' and admins' CLI — pin the verifier
//! image's measurements and check, during the TLS handshake and before any
//! request byte is sent, that the server they reached is that image:
//!
//! - [`binding`]: what the document's `user_data` and `public_key` hold.
//! - [`pins`]: the pinned measurement sets (`hermetic-eif describe` JSON or
//!   a policy file's measurement sets).
//! - [`check`]: the pure check (document, presented key, pins, roots and
//!   time in; [`VerifierIdentity`] or a typed [`IdentityError`] out).
//! - [`client`]: that check as a rustls `ServerCertVerifier`.
//! - `server` (cargo feature `server`): the in-memory key, its certificate
//!   and the rustls resolver that swaps in re-attested certificates.
//!
//! # How the document travels
//! In the TLS handshake's certificate status (the OCSP stapling slot: RFC
//! 6066 §8 for TLS 1.2, RFC 8446 §4.4.2.1 for TLS 1.3), in place of an
//! OCSP response. rustls clients always request it (rustls
//! `client/hs.rs`, `CertificateStatusRequest::build_ocsp`) and hand the
//! bytes to the `ServerCertVerifier` with the certificate, so the check
//! happens before the handshake completes, for a self-signed certificate
//! and for a CA-issued one alike. Tools read the same document from
//! `GET /v1/attestation`.

pub mod binding;
pub mod check;
pub mod client;
pub mod pins;
#[cfg(feature = "server")]
pub mod server;

pub use binding::{expected_user_data, BINDING_LABEL, INTAKE_KEY_LEN, USER_DATA_LEN};
pub use check::{
    check_identity, IdentityError, VerifierIdentity, MAX_DOCUMENT_AGE, MAX_FUTURE_SKEW,
};
pub use client::AttestedServerVerifier;
pub use pins::{Pins, PinsError};
