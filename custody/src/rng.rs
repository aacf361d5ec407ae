//! Randomness: `aws_lc_rs::rand` is the workspace's one source; this adapts it to the
//! `rand_core` 0.10 `CryptoRng` that vsss-rs asks for.

use aws_lc_rs::rand::SecureRandom;
use hermetic_envelope::rng::FallibleRng;

use crate::Error;

/// vsss-rs's generator: `aws_lc_rs::rand` through hermetic-envelope's adapter (a failed draw
/// is zeroed and remembered; [`check`] then refuses whatever was computed).
pub(crate) fn aws_rng(
    rng: &dyn SecureRandom,
) -> FallibleRng<impl FnMut(&mut [u8]) -> Result<(), ()> + '_> {
    FallibleRng::new(move |b: &mut [u8]| rng.fill(b).map_err(|_| ()))
}

/// `Err(RandomFailed)` if any draw of `rng` failed.
pub(crate) fn check<F: FnMut(&mut [u8]) -> Result<(), ()>>(
    rng: &FallibleRng<F>,
) -> Result<(), Error> {
    if rng.failed() {
        Err(Error::RandomFailed)
    } else {
        Ok(())
    }
}

/// `N` random bytes from `rng`.
pub(crate) fn random<const N: usize>(rng: &dyn SecureRandom) -> Result<[u8; N], Error> {
    let mut out = [0u8; N];
    rng.fill(&mut out).map_err(|_| Error::RandomFailed)?;
    Ok(out)
}
