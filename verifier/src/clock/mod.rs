//! The service's only source of "now". Injected so that the release
//! decision, nonce expiry and tests never read the system clock themselves.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall-clock time since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Duration;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        // A clock before 1970 reads as the epoch: every document then looks
        // "from the future" and is refused, which fails closed.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug, Default)]
pub struct ManualClock {
    ms: AtomicU64,
}

impl ManualClock {
    pub fn new(now: Duration) -> Self {
        ManualClock {
            ms: AtomicU64::new(now.as_millis() as u64),
        }
    }

    pub fn set(&self, now: Duration) {
        self.ms.store(now.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn advance(&self, by: Duration) {
        self.ms.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_millis(self.ms.load(Ordering::SeqCst))
    }
}

/// Lets tests keep a handle on a [`ManualClock`] they hand to the service.
impl<C: Clock> Clock for std::sync::Arc<C> {
    fn now(&self) -> Duration {
        (**self).now()
    }
}
