//! hermetic-eif: read, validate, measure and build AWS Nitro Enclave Image
//! Files (EIF), computing PCR0/1/2/8 exactly as `nitro-cli describe-eif`.
//!
//! - [`format`](mod@format): on-disk header and section header structures.
//! - [`reader`]: validation of a file and its single-pass measurement.
//! - [`measure`]: the PCR recipe and the two-thread hashing pipeline.
//! - [`signature`]: the signature section, PCR8 and the COSE_Sign1 over PCR0.
//! - [`builder`]: writing EIFs in the reference layout.
//! - [`policy`]: expectations (describe JSON, verifier policy TOML) and `check`.
//! - [`report`]: `describe` output.

pub mod builder;
pub mod error;
pub mod format;
pub mod measure;
pub mod policy;
pub mod reader;
pub mod report;
pub mod signature;

pub use builder::{BuildOutput, EifBuilder, Input};
pub use error::{EifError, Result};
pub use format::{Arch, EifHeader, SectionHeader, SectionType};
pub use measure::{pcr_of_bytes, Measurements, Pcr};
pub use policy::{check, load_expectation, policy_stanza, CheckReport, Expectation, Policy};
pub use reader::{read_eif, read_eif_from, EifImage, ReadOptions, SectionInfo};
pub use signature::{pcr8_of_pem, Signer};
