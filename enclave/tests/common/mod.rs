//! Helpers shared by the enclave's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
#[cfg(feature = "simulator")]
use std::{path::Path, sync::Arc};

#[cfg(feature = "simulator")]
use hermetic_enclave::nsm::{SimulatedNsm, SimulatorOptions};
#[cfg(feature = "simulator")]
use hermetic_enclave::FixedClock;

/// 2026-01-15T12:00:00Z: tests run on this clock, never the real one.
pub const T0_MS: u64 = 1_768_478_400_000;

/// The shared vectors, or `None` (with a message) where they are absent.
/// With `CI=true` their absence fails the test instead.
pub fn vectors() -> Option<PathBuf> {
    hermetic_testkit::vectors::find(env!("CARGO_MANIFEST_DIR"), "attestation/valid")
}

/// A simulated NSM with its PKI in `dir`, on a clock the test controls.
#[cfg(feature = "simulator")]
pub fn simulator(dir: &Path, options: SimulatorOptions) -> (SimulatedNsm, Arc<FixedClock>) {
    let clock = Arc::new(FixedClock::new(T0_MS));
    let (nsm, _) = SimulatedNsm::open(dir, options, clock.clone()).expect("simulator boots");
    (nsm, clock)
}

/// PCRs as `hermetic-eif describe --format json` prints them (a signed image).
pub const EIF_PCR0: &str = "389993a52ed931f3f602db7ea2ac4570b7b866de97cf4265113d09d1866dc053b556412e617b55b36c6663a8fca4a702";
pub const EIF_PCR1: &str = "52c54c1ca2c2a4d46e2a0ac8c3f22d8897db2e8eadfc74789a295b1e783f6aab6b74345f7170e1379578cd08ae6121b5";
pub const EIF_PCR2: &str = "786c40a9643791cb5395c93a4b83ef80b89b29bdf67df421e938fbae5f3bcbf1ca7962c63ec7bfd22412512745c215bd";
pub const EIF_PCR8: &str = "245ad72f80350553d02f6a6f9f4eb4e9e104977bdb7746672f2653c7043733bb39dab1aca50e0c1de7f5cb45ded032c1";

pub fn eif_describe_json() -> String {
    format!(
        r#"{{
  "EifVersion": 4,
  "IsSigned": true,
  "Measurements": {{
    "HashAlgorithm": "Sha384 {{ ... }}",
    "PCR0": "{EIF_PCR0}",
    "PCR1": "{EIF_PCR1}",
    "PCR2": "{EIF_PCR2}",
    "PCR8": "{EIF_PCR8}"
  }}
}}"#
    )
}
