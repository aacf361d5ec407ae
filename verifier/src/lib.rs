//! hermetic-verifier: releases secrets to AWS Nitro Enclaves only after
//! checking their attestation, and audits attestation documents offline.
//!
//! The attestation core lives in `hermetic-attestation`; this crate adds:
//!
//! - [`policy`]: the checks a verified document must also pass, and the
//!   policy file that names which measurements may receive which secret;
//! - [`release`]: the release decision, a pure function (document bytes,
//!   policies, nonce book, time in; grant or typed refusal out);
//! - [`challenge`]: single-use challenge nonces;
//! - [`store`]: the embedded store (redb): every row sealed under keys
//!   derived from the master key and bound to its table, key and version
//!   (values, policies, owner sets and change versions, token entries, the
//!   deployment id and intake key);
//! - [`intake`]: the intake key, derived from the master key;
//! - [`log`]: the hash-chained audit log and its verifier;
//! - [`service`]: `serve`, the HTTP edges around the above, and applying
//!   owner-approved changes (checked by `hermetic-approval`);
//! - [`client`]: the admin API client used by the CLI, and the owner's side
//!   of a change (propose, sign);
//! - [`clock`]: the injected source of "now";
//! - [`audit`]: the offline audit report.

pub mod audit;
pub mod challenge;
pub mod client;
pub mod clock;
pub mod devtls;
pub mod intake;
pub mod log;
pub mod policy;
pub mod release;
pub mod service;
pub mod store;
