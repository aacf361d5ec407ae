//! The real NSM: `/dev/nsm` through the aws-nitro-enclaves-nsm-api driver.
//!
//! The driver is hard-wired to `/dev/nsm` (`driver/mod.rs`: `DEV_FILE`) and
//! answers a failed open with a bare `-1`, so we look for the device first to
//! say why it is missing.

use std::fs::OpenOptions;
use std::path::Path;

use aws_nitro_enclaves_nsm_api::api::{Digest, ErrorCode, Request, Response};
use aws_nitro_enclaves_nsm_api::driver::{nsm_exit, nsm_init, nsm_process_request};
use serde_bytes::ByteBuf;

use super::{AttestationRequest, Nsm, NsmDescription, NsmError, PcrDigest, PcrState};

/// The device the nsm-api driver opens.
pub const NSM_DEVICE: &str = "/dev/nsm";

/// An open `/dev/nsm`.
#[derive(Debug)]
pub struct RealNsm {
    fd: i32,
}

impl RealNsm {
    /// Opens `/dev/nsm`. Outside an enclave this is
    /// [`NsmError::NotInEnclave`], never a panic.
    pub fn open() -> Result<Self, NsmError> {
        if !Path::new(NSM_DEVICE).exists() {
            return Err(NsmError::NotInEnclave);
        }
        // Open it ourselves first only to learn why it fails, if it does:
        // nsm_init() reports every failure as -1.
        if let Err(source) = OpenOptions::new().read(true).write(true).open(NSM_DEVICE) {
            return Err(NsmError::DeviceOpen {
                path: NSM_DEVICE.into(),
                source,
            });
        }
        let fd = nsm_init();
        if fd < 0 {
            return Err(NsmError::DeviceOpen {
                path: NSM_DEVICE.into(),
                source: std::io::Error::other("nsm_init failed"),
            });
        }
        Ok(RealNsm { fd })
    }

    fn call(&self, request: Request) -> Response {
        nsm_process_request(self.fd, request)
    }
}

impl Drop for RealNsm {
    fn drop(&mut self) {
        nsm_exit(self.fd);
    }
}

/// What an `ErrorCode` means for a request (`index` for the PCR requests).
fn map_error(code: ErrorCode, request: &'static str, index: Option<u16>) -> NsmError {
    match code {
        ErrorCode::InvalidArgument => NsmError::InvalidArgument { request },
        ErrorCode::InvalidIndex => NsmError::InvalidIndex {
            index: index.unwrap_or(u16::MAX),
        },
        ErrorCode::InvalidResponse => NsmError::InvalidResponse { request },
        ErrorCode::ReadOnlyIndex => NsmError::PcrLocked {
            index: index.unwrap_or(u16::MAX),
        },
        ErrorCode::InvalidOperation => NsmError::InvalidOperation { request },
        ErrorCode::BufferTooSmall => NsmError::BufferTooSmall { request },
        ErrorCode::InputTooLarge => NsmError::InputTooLarge { request },
        ErrorCode::InternalError => NsmError::Internal { request },
        // `Success` inside `Response::Error` is not a valid answer.
        ErrorCode::Success => NsmError::UnexpectedResponse { request },
    }
}

fn unexpected(response: Response, request: &'static str, index: Option<u16>) -> NsmError {
    match response {
        Response::Error(code) => map_error(code, request, index),
        _ => NsmError::UnexpectedResponse { request },
    }
}

impl Nsm for RealNsm {
    fn attestation(&self, request: &AttestationRequest) -> Result<Vec<u8>, NsmError> {
        let buf = |v: &Option<Vec<u8>>| v.as_ref().map(|b| ByteBuf::from(b.as_slice()));
        match self.call(Request::Attestation {
            user_data: buf(&request.user_data),
            nonce: buf(&request.nonce),
            public_key: buf(&request.public_key),
        }) {
            Response::Attestation { document } => Ok(document),
            other => Err(unexpected(other, "Attestation", None)),
        }
    }

    fn describe_pcr(&self, index: u16) -> Result<PcrState, NsmError> {
        match self.call(Request::DescribePCR { index }) {
            Response::DescribePCR { lock, data } => Ok(PcrState { locked: lock, data }),
            other => Err(unexpected(other, "DescribePCR", Some(index))),
        }
    }

    fn extend_pcr(&self, index: u16, data: &[u8]) -> Result<Vec<u8>, NsmError> {
        match self.call(Request::ExtendPCR {
            index,
            data: data.to_vec(),
        }) {
            Response::ExtendPCR { data } => Ok(data),
            other => Err(unexpected(other, "ExtendPCR", Some(index))),
        }
    }

    fn lock_pcr(&self, index: u16) -> Result<(), NsmError> {
        match self.call(Request::LockPCR { index }) {
            Response::LockPCR => Ok(()),
            other => Err(unexpected(other, "LockPCR", Some(index))),
        }
    }

    fn lock_pcrs(&self, range: u16) -> Result<(), NsmError> {
        match self.call(Request::LockPCRs { range }) {
            Response::LockPCRs => Ok(()),
            other => Err(unexpected(other, "LockPCRs", Some(range))),
        }
    }

    fn describe_nsm(&self) -> Result<NsmDescription, NsmError> {
        match self.call(Request::DescribeNSM) {
            Response::DescribeNSM {
                version_major,
                version_minor,
                version_patch,
                module_id,
                max_pcrs,
                locked_pcrs,
                digest,
            } => Ok(NsmDescription {
                version: (version_major, version_minor, version_patch),
                module_id,
                max_pcrs,
                locked_pcrs,
                digest: match digest {
                    Digest::SHA256 => PcrDigest::Sha256,
                    Digest::SHA384 => PcrDigest::Sha384,
                    Digest::SHA512 => PcrDigest::Sha512,
                },
            }),
            other => Err(unexpected(other, "DescribeNSM", None)),
        }
    }

    fn get_random(&self) -> Result<Vec<u8>, NsmError> {
        match self.call(Request::GetRandom) {
            Response::GetRandom { random } if !random.is_empty() => Ok(random),
            other => Err(unexpected(other, "GetRandom", None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_code_maps_to_a_distinct_reason() {
        let codes = [
            ErrorCode::Success,
            ErrorCode::InvalidArgument,
            ErrorCode::InvalidIndex,
            ErrorCode::InvalidResponse,
            ErrorCode::ReadOnlyIndex,
            ErrorCode::InvalidOperation,
            ErrorCode::BufferTooSmall,
            ErrorCode::InputTooLarge,
            ErrorCode::InternalError,
        ];
        let reasons: Vec<&str> = codes
            .into_iter()
            .map(|c| map_error(c, "ExtendPCR", Some(7)).reason())
            .collect();
        assert_eq!(
            reasons,
            [
                "nsm_unexpected_response",
                "nsm_invalid_argument",
                "nsm_invalid_index",
                "nsm_invalid_response",
                "nsm_pcr_locked",
                "nsm_invalid_operation",
                "nsm_buffer_too_small",
                "nsm_input_too_large",
                "nsm_internal_error",
            ]
        );
        assert_eq!(
            map_error(ErrorCode::ReadOnlyIndex, "ExtendPCR", Some(7)).to_string(),
            "PCR7 is locked (read-only)"
        );
    }

    #[test]
    fn a_response_of_the_wrong_kind_is_refused() {
        let e = unexpected(Response::LockPCRs, "DescribeNSM", None);
        assert_eq!(e.reason(), "nsm_unexpected_response");
        let e = unexpected(
            Response::Error(ErrorCode::InputTooLarge),
            "Attestation",
            None,
        );
        assert_eq!(e.reason(), "nsm_input_too_large");
    }
}
