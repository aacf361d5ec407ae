//! Why an NSM request failed.

use std::path::PathBuf;

/// A refusal or failure of an NSM backend. [`NsmError::reason`] is a stable
/// machine-readable code; `Display` is the human sentence. Neither carries
/// request data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NsmError {
    /// The real backend was asked for outside an enclave. Only a build
    /// with the simulator can suggest it.
    #[cfg_attr(
        feature = "simulator",
        error("no /dev/nsm: not inside a Nitro Enclave; use --nsm simulated for local runs")
    )]
    #[cfg_attr(
        not(feature = "simulator"),
        error("no /dev/nsm: not inside a Nitro Enclave")
    )]
    NotInEnclave,
    #[error("{path} exists but could not be opened: {source}")]
    DeviceOpen {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    // The NSM's own error codes (nsm-api `ErrorCode`).
    #[error("the NSM refused an argument of the {request} request")]
    InvalidArgument { request: &'static str },
    #[error("PCR index {index} is out of range")]
    InvalidIndex { index: u16 },
    #[error("the NSM's response does not correspond to the {request} request")]
    InvalidResponse { request: &'static str },
    #[error("PCR{index} is locked (read-only)")]
    PcrLocked { index: u16 },
    #[error("the NSM cannot do {request}: missing capability")]
    InvalidOperation { request: &'static str },
    #[error("the NSM's response to {request} did not fit the output buffer")]
    BufferTooSmall { request: &'static str },
    #[error("the {request} request is too large for the NSM")]
    InputTooLarge { request: &'static str },
    #[error("the NSM failed internally on {request}")]
    Internal { request: &'static str },
    #[error("the NSM answered {request} with an unexpected response")]
    UnexpectedResponse { request: &'static str },

    // Only the simulated backend fails these ways.
    #[cfg(feature = "simulator")]
    #[error("simulated NSM: {detail} {path}: {source}")]
    SimulatorIo {
        path: PathBuf,
        detail: String,
        #[source]
        source: std::io::Error,
    },
    #[cfg(feature = "simulator")]
    #[error("simulated NSM: the test PKI in {path} is unusable: {detail}")]
    SimulatorPki { path: PathBuf, detail: String },
    #[cfg(feature = "simulator")]
    #[error("simulated NSM: signing failed: {0}")]
    SimulatorSigning(String),
}

impl NsmError {
    pub fn reason(&self) -> &'static str {
        match self {
            NsmError::NotInEnclave => "nsm_unavailable",
            NsmError::DeviceOpen { .. } => "nsm_open_failed",
            NsmError::InvalidArgument { .. } => "nsm_invalid_argument",
            NsmError::InvalidIndex { .. } => "nsm_invalid_index",
            NsmError::InvalidResponse { .. } => "nsm_invalid_response",
            NsmError::PcrLocked { .. } => "nsm_pcr_locked",
            NsmError::InvalidOperation { .. } => "nsm_invalid_operation",
            NsmError::BufferTooSmall { .. } => "nsm_buffer_too_small",
            NsmError::InputTooLarge { .. } => "nsm_input_too_large",
            NsmError::Internal { .. } => "nsm_internal_error",
            NsmError::UnexpectedResponse { .. } => "nsm_unexpected_response",
            #[cfg(feature = "simulator")]
            NsmError::SimulatorIo { .. } => "nsm_sim_io",
            #[cfg(feature = "simulator")]
            NsmError::SimulatorPki { .. } => "nsm_sim_pki_invalid",
            #[cfg(feature = "simulator")]
            NsmError::SimulatorSigning(_) => "nsm_sim_signing_failed",
        }
    }
}
