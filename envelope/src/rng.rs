//! The `rand_core` 0.10 `CryptoRng` that RustCrypto-style crates ask for (hpke here,
//! vsss-rs in hermetic-custody), over a fallible source such as `aws_lc_rs::rand`: the
//! workspace's one source of randomness, adapted once.

use core::convert::Infallible;

use hpke::rand_core::{TryCryptoRng, TryRng};
use zeroize::Zeroize;

/// Adapts a fallible `fill` to the infallible `CryptoRng` those crates want. A failure is
/// remembered (and the buffer zeroed); the caller must check [`FallibleRng::failed`] and
/// throw away anything computed from this RNG when it is set.
pub struct FallibleRng<F: FnMut(&mut [u8]) -> Result<(), ()>> {
    fill: F,
    failed: bool,
}

impl<F: FnMut(&mut [u8]) -> Result<(), ()>> FallibleRng<F> {
    /// An RNG drawing from `fill` until it first fails.
    pub fn new(fill: F) -> Self {
        FallibleRng {
            fill,
            failed: false,
        }
    }

    /// Whether any draw failed: then everything computed from it is unusable.
    pub fn failed(&self) -> bool {
        self.failed
    }
}

impl<F: FnMut(&mut [u8]) -> Result<(), ()>> TryRng for FallibleRng<F> {
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
        if self.failed || (self.fill)(dst).is_err() {
            dst.zeroize();
            self.failed = true;
        }
        Ok(())
    }
}

impl<F: FnMut(&mut [u8]) -> Result<(), ()>> TryCryptoRng for FallibleRng<F> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_draw_is_zeroed_and_remembered() {
        let mut calls = 0;
        let mut rng = FallibleRng::new(|b: &mut [u8]| {
            calls += 1;
            if calls == 1 {
                b.fill(7);
                Ok(())
            } else {
                b.fill(9);
                Err(())
            }
        });
        assert_eq!(rng.try_next_u32().unwrap(), 0x0707_0707);
        assert!(!rng.failed());
        assert_eq!(rng.try_next_u64().unwrap(), 0);
        assert!(rng.failed());
        // Once failed, always failed, even if the source would succeed.
        assert_eq!(rng.try_next_u32().unwrap(), 0);
    }
}
