//! Challenge nonces: issued fresh, accepted once, forgotten after expiry.
//!
//! Kept in memory on purpose: after a restart every outstanding nonce is
//! unknown and refused, which fails closed. The book is bounded so that a
//! flood of challenges cannot exhaust memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_lc_rs::rand::SecureRandom;

/// Bytes in a nonce (from the system CSPRNG).
pub const NONCE_LEN: usize = 32;
/// Default time a nonce stays acceptable.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);
/// Default bound on nonces remembered at once (issued or used, unexpired).
pub const DEFAULT_CAPACITY: usize = 100_000;

/// Why a nonce was not accepted. `reason()` codes are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NonceError {
    #[error("the nonce was not issued by this verifier (or it was issued before a restart)")]
    Unknown,
    #[error("the nonce has expired; ask for a new challenge")]
    Expired,
    #[error("the nonce was already used; every challenge is single-use")]
    Replayed,
}

impl NonceError {
    pub fn reason(&self) -> &'static str {
        match self {
            NonceError::Unknown => "nonce_unknown",
            NonceError::Expired => "nonce_expired",
            NonceError::Replayed => "nonce_replayed",
        }
    }
}

/// Why no nonce could be issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    #[error("too many outstanding challenges; try again shortly")]
    Full,
    #[error("the random number generator failed")]
    Rng,
}

impl IssueError {
    pub fn reason(&self) -> &'static str {
        match self {
            IssueError::Full => "challenge_capacity",
            IssueError::Rng => "rng_failed",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    expires_ms: u64,
    used: bool,
}

/// The set of outstanding and recently used nonces.
#[derive(Debug)]
pub struct NonceBook {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<[u8; NONCE_LEN], Entry>>,
}

impl Default for NonceBook {
    fn default() -> Self {
        NonceBook::new(DEFAULT_TTL, DEFAULT_CAPACITY)
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl NonceBook {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        NonceBook {
            ttl,
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; NONCE_LEN], Entry>> {
        // A panic while holding the lock leaves a consistent map (every
        // update is a single insert), so a poisoned lock is still usable.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Issues a fresh nonce valid until the returned instant (since epoch).
    pub fn issue(
        &self,
        rng: &dyn SecureRandom,
        now: Duration,
    ) -> Result<([u8; NONCE_LEN], Duration), IssueError> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce).map_err(|_| IssueError::Rng)?;
        let expires = now + self.ttl;
        let now_ms = ms(now);
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            entries.retain(|_, e| e.expires_ms > now_ms);
            if entries.len() >= self.capacity {
                return Err(IssueError::Full);
            }
        }
        entries.insert(
            nonce,
            Entry {
                expires_ms: ms(expires),
                used: false,
            },
        );
        Ok((nonce, expires))
    }

    /// Accepts `nonce` once: checks and marks it used under one lock, so two
    /// concurrent releases with the same nonce cannot both pass.
    pub fn consume(&self, nonce: &[u8], now: Duration) -> Result<(), NonceError> {
        let key: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| NonceError::Unknown)?;
        let mut entries = self.lock();
        let entry = entries.get_mut(&key).ok_or(NonceError::Unknown)?;
        if entry.used {
            return Err(NonceError::Replayed);
        }
        if ms(now) >= entry.expires_ms {
            return Err(NonceError::Expired);
        }
        entry.used = true;
        Ok(())
    }

    /// Number of remembered nonces (for metrics).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;

    const T0: Duration = Duration::from_secs(1_800_000_000);

    #[test]
    fn single_use_and_expiry() {
        let book = NonceBook::new(Duration::from_secs(60), 10);
        let rng = SystemRandom::new();
        let (a, exp) = book.issue(&rng, T0).unwrap();
        assert_eq!(exp, T0 + Duration::from_secs(60));
        let (b, _) = book.issue(&rng, T0).unwrap();
        assert_ne!(a, b);
        assert_eq!(book.consume(&a, T0), Ok(()));
        assert_eq!(book.consume(&a, T0), Err(NonceError::Replayed));
        assert_eq!(
            book.consume(&b, T0 + Duration::from_secs(60)),
            Err(NonceError::Expired)
        );
        assert_eq!(book.consume(&[7; 32], T0), Err(NonceError::Unknown));
        assert_eq!(book.consume(&[7; 3], T0), Err(NonceError::Unknown));
    }

    #[test]
    fn bounded_and_pruned() {
        let book = NonceBook::new(Duration::from_secs(60), 2);
        let rng = SystemRandom::new();
        book.issue(&rng, T0).unwrap();
        book.issue(&rng, T0).unwrap();
        assert_eq!(book.issue(&rng, T0), Err(IssueError::Full));
        // Once the first two expire, room is made again.
        assert!(book.issue(&rng, T0 + Duration::from_secs(61)).is_ok());
        assert_eq!(book.len(), 1);
    }
}
