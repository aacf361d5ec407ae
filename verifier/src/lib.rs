//! hermetic-verifier: releases secrets to AWS Nitro Enclaves only after
//! checking their attestation, and audits attestation documents offline.
//!
//! The attestation core lives in `hermetic-attestation`; this crate adds the
//! policy a document must meet and the audit report (and the service).

pub mod audit;
pub mod challenge;
pub mod client;
pub mod clock;
pub mod log;
pub mod policy;
pub mod release;
pub mod service;
pub mod store;
