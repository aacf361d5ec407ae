//! Any byte string through the decoder and both verification paths: no
//! input may panic, and `verify` and `inspect` must agree on the verdict.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use hermetic_attestation::{decode, At, TrustedRoot, UnixTime, Verifier};
use libfuzzer_sys::fuzz_target;

fn verifier() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| Verifier::aws().expect("pinned AWS root"))
}

fuzz_target!(|data: &[u8]| {
    let _ = decode(data);
    let at = At::Time(UnixTime::since_unix_epoch(Duration::from_secs(1_726_534_891)));
    for at in [at, At::DocumentTimestamp] {
        let verdict = verifier().verify(data, at);
        let inspection = verifier().inspect(data, at);
        assert_eq!(verdict.as_ref().err(), inspection.first_error());
    }
    let _ = TrustedRoot::from_pem(data);
});
