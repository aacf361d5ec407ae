//! Randomness: `aws_lc_rs::rand` is the workspace's one source; this adapts it to the
//! `rand_core` 0.10 `CryptoRng` that vsss-rs asks for.

use core::convert::Infallible;

use aws_lc_rs::rand::SecureRandom;
use rand_core::{TryCryptoRng, TryRng};
use zeroize::Zeroize;

use crate::Error;

/// `rand_core` wants an infallible generator; a failure of the underlying source is remembered
/// (and the output zeroed) and the caller must discard whatever was computed, as
/// hermetic-envelope's suite does for hpke.
pub(crate) struct AwsRng<'a> {
    rng: &'a dyn SecureRandom,
    failed: bool,
}

impl<'a> AwsRng<'a> {
    pub(crate) fn new(rng: &'a dyn SecureRandom) -> Self {
        AwsRng { rng, failed: false }
    }

    /// `Err(RandomFailed)` if any draw failed.
    pub(crate) fn check(&self) -> Result<(), Error> {
        if self.failed {
            Err(Error::RandomFailed)
        } else {
            Ok(())
        }
    }
}

impl TryRng for AwsRng<'_> {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut buf = [0u8; 4];
        self.try_fill_bytes(&mut buf)?;
        Ok(u32::from_le_bytes(buf))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut buf = [0u8; 8];
        self.try_fill_bytes(&mut buf)?;
        Ok(u64::from_le_bytes(buf))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        if self.failed || self.rng.fill(dst).is_err() {
            dst.zeroize();
            self.failed = true;
        }
        Ok(())
    }
}

impl TryCryptoRng for AwsRng<'_> {}

/// `N` random bytes from `rng`.
pub(crate) fn random<const N: usize>(rng: &dyn SecureRandom) -> Result<[u8; N], Error> {
    let mut out = [0u8; N];
    rng.fill(&mut out).map_err(|_| Error::RandomFailed)?;
    Ok(out)
}
