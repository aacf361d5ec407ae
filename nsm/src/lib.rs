//! Our interface to the Nitro Secure Module (NSM), shared by the enclave
//! agent (`hermetic-enclave`) and the verifier (`hermetic-verifier serve`).
//!
//! The requests are those of aws-nitro-enclaves-nsm-api (`src/api/mod.rs`,
//! `Request`/`Response`); [`Nsm`] is object-safe so the agent can hold a
//! `Box<dyn Nsm>` and not care which backend it has:
//!
//! - [`RealNsm`]: `/dev/nsm` through the nsm-api driver, inside an enclave.
//! - `SimulatedNsm`: in-process, for tests, the local demo and development.
//!   Only with the cargo feature `simulator` (on by default), together with
//!   its test PKI store and `Measurements`: an enclave image is built
//!   without it, so it carries no document signer.

pub mod atomic_write;
mod clock;
mod error;
#[cfg(feature = "simulator")]
mod measurements;
mod open;
#[cfg(feature = "simulator")]
mod pki_store;
mod real;
#[cfg(feature = "simulator")]
mod simulated;

use std::collections::BTreeSet;

pub use clock::{Clock, FixedClock, SystemClock};
pub use error::NsmError;
#[cfg(feature = "simulator")]
pub use measurements::{Measurements, MeasurementsError};
#[cfg(feature = "simulator")]
pub use open::{default_pki_dir, pki_dir_from};
pub use open::{open_nsm, Backend, NsmSelection, OpenError, OpenedNsm};
#[cfg(feature = "simulator")]
pub use pki_store::{PkiOrigin, PkiStore};
pub use real::{RealNsm, NSM_DEVICE};
#[cfg(feature = "simulator")]
pub use simulated::{
    SimulatedNsm, SimulatorOptions, LEAF_REFRESH_MARGIN, MAX_NONCE_LEN, MAX_PUBLIC_KEY_LEN,
    MAX_USER_DATA_LEN, NSM_REQUEST_MAX_SIZE, SIM_MAX_PCRS, SIM_RANDOM_LEN,
};

/// The optional fields of an `Attestation` request. `None` is absent (the
/// document then carries CBOR `null`); `Some(vec![])` is present and empty.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AttestationRequest {
    pub user_data: Option<Vec<u8>>,
    pub nonce: Option<Vec<u8>>,
    pub public_key: Option<Vec<u8>>,
}

impl std::fmt::Debug for AttestationRequest {
    // Sizes only: the fields are not secret, but they can be large.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = |v: &Option<Vec<u8>>| v.as_ref().map(Vec::len);
        f.debug_struct("AttestationRequest")
            .field("user_data_len", &len(&self.user_data))
            .field("nonce_len", &len(&self.nonce))
            .field("public_key_len", &len(&self.public_key))
            .finish()
    }
}

/// `DescribePCR` response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcrState {
    /// Whether the PCR is read-only.
    pub locked: bool,
    pub data: Vec<u8>,
}

/// The digest of the PCR bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcrDigest {
    Sha256,
    Sha384,
    Sha512,
}

impl PcrDigest {
    pub fn as_str(self) -> &'static str {
        match self {
            PcrDigest::Sha256 => "SHA256",
            PcrDigest::Sha384 => "SHA384",
            PcrDigest::Sha512 => "SHA512",
        }
    }

    /// Bytes in one PCR.
    pub fn pcr_len(self) -> usize {
        match self {
            PcrDigest::Sha256 => 32,
            PcrDigest::Sha384 => 48,
            PcrDigest::Sha512 => 64,
        }
    }
}

/// `DescribeNSM` response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsmDescription {
    /// (major, minor, patch).
    pub version: (u16, u16, u16),
    pub module_id: String,
    pub max_pcrs: u16,
    pub locked_pcrs: BTreeSet<u16>,
    pub digest: PcrDigest,
}

/// The NSM's requests. Every method is one request and one response.
pub trait Nsm: Send + Sync {
    /// `Attestation`: a signed COSE_Sign1 document (raw CBOR bytes).
    fn attestation(&self, request: &AttestationRequest) -> Result<Vec<u8>, NsmError>;

    /// `DescribePCR`.
    fn describe_pcr(&self, index: u16) -> Result<PcrState, NsmError>;

    /// `ExtendPCR`: returns the PCR's new value.
    fn extend_pcr(&self, index: u16, data: &[u8]) -> Result<Vec<u8>, NsmError>;

    /// `LockPCR`.
    fn lock_pcr(&self, index: u16) -> Result<(), NsmError>;

    /// `LockPCRs`: locks PCRs `0..range`.
    fn lock_pcrs(&self, range: u16) -> Result<(), NsmError>;

    /// `DescribeNSM`.
    fn describe_nsm(&self) -> Result<NsmDescription, NsmError>;

    /// `GetRandom`: some bytes of entropy (how many is the NSM's choice).
    fn get_random(&self) -> Result<Vec<u8>, NsmError>;
}
