//! hermetic-enclave (work in progress).
