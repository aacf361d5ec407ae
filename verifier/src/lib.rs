//! hermetic-verifier
