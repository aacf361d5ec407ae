//! A token bucket per client address, kept by `governor` (its keyed GCRA
//! limiter, which is a token bucket: `per_sec` tokens a second up to
//! `burst`, one per request).
//!
//! Addresses are keyed as the connection limits key them
//! ([`address_key`](super::listener::address_key): an IPv4 address, an
//! IPv6 /64), so one IPv6 host cannot mint itself fresh buckets. The key set
//! is bounded: once it holds [`PRUNE_AT`] keys, the keys whose bucket is full
//! again (no different from a fresh one) are forgotten
//! (`governor::RateLimiter::retain_recent`), again each time the set
//! doubles, and at [`MAX_KEYS`] once every [`PRUNE_AT`] requests, so pruning
//! costs O(1) per request amortised; while [`MAX_KEYS`] keys are active,
//! addresses are checked against one shared overflow bucket until a later
//! prune makes room. An attacker with
//! many addresses can thus cost at most [`MAX_KEYS`] entries of memory
//! (a few MiB) and, past it, slows only itself and other newcomers to the
//! overflow bucket's rate.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::Quota;

use super::listener::address_key;

/// Keys held before the first prune.
pub const PRUNE_AT: usize = 10_000;
/// Keys held at most; past it, new addresses share [`OVERFLOW`]'s bucket.
pub const MAX_KEYS: usize = 100_000;
/// The shared bucket of addresses that find the key set full. No client
/// has this address (`::`), so it is nobody's own bucket.
const OVERFLOW: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

type Keyed<C> = governor::RateLimiter<
    IpAddr,
    DashMapStateStore<IpAddr>,
    C,
    NoOpMiddleware<<C as Clock>::Instant>,
>;

pub struct RateLimiter<C: Clock = DefaultClock> {
    /// `None`: limiting disabled (`per_sec == 0`).
    keyed: Option<Keyed<C>>,
    /// The key count at which the next prune runs.
    next_prune: AtomicUsize,
    /// Requests since the last prune while the set is at [`MAX_KEYS`].
    since_prune: AtomicUsize,
}

impl<C: Clock> std::fmt::Debug for RateLimiter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("enabled", &self.keyed.is_some())
            .field("keys", &self.keys())
            .finish()
    }
}

/// `per_sec` tokens a second up to `burst` (at least 1), or `None` when
/// `per_sec` is not positive (limiting disabled).
fn quota(per_sec: f64, burst: f64) -> Option<Quota> {
    if !(per_sec > 0.0 && per_sec.is_finite()) {
        return None;
    }
    // One token every 1/per_sec seconds; a rate above a token a nanosecond
    // is as good as unlimited.
    let period = Duration::try_from_secs_f64(1.0 / per_sec)
        .unwrap_or(Duration::MAX)
        .max(Duration::from_nanos(1));
    let burst =
        NonZeroU32::new(burst.clamp(1.0, f64::from(u32::MAX)) as u32).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period).map(|q| q.allow_burst(burst))
}

impl RateLimiter<DefaultClock> {
    /// `per_sec` tokens are added each second up to `burst`; each request
    /// takes one. `per_sec == 0` disables limiting.
    pub fn new(per_sec: f64, burst: f64) -> Self {
        RateLimiter::with_clock(per_sec, burst, DefaultClock::default())
    }
}

impl<C: Clock> RateLimiter<C> {
    /// As [`RateLimiter::new`], reading the time from `clock`.
    pub fn with_clock(per_sec: f64, burst: f64, clock: C) -> Self {
        RateLimiter {
            keyed: quota(per_sec, burst)
                .map(|q| governor::RateLimiter::dashmap_with_clock(q, clock)),
            next_prune: AtomicUsize::new(PRUNE_AT),
            since_prune: AtomicUsize::new(0),
        }
    }

    /// Addresses remembered now.
    pub fn keys(&self) -> usize {
        self.keyed.as_ref().map_or(0, |k| k.len())
    }

    /// Whether `ip` may make a request now (taking a token if so).
    pub fn allow(&self, ip: IpAddr) -> bool {
        let Some(keyed) = &self.keyed else {
            return true;
        };
        let mut key = address_key(ip);
        // One count a request (DashMap's len visits every shard).
        let mut held = keyed.len();
        let due = if held >= MAX_KEYS {
            // At the cap, prune once every PRUNE_AT requests: amortised
            // MAX_KEYS / PRUNE_AT steps a request, not MAX_KEYS.
            self.since_prune.fetch_add(1, Ordering::Relaxed) + 1 >= PRUNE_AT
        } else {
            held >= self.next_prune.load(Ordering::Relaxed)
        };
        if due {
            keyed.retain_recent();
            keyed.shrink_to_fit();
            held = keyed.len();
            self.next_prune.store(
                held.saturating_mul(2).clamp(PRUNE_AT, MAX_KEYS),
                Ordering::Relaxed,
            );
            self.since_prune.store(0, Ordering::Relaxed);
        }
        if held >= MAX_KEYS {
            key = OVERFLOW;
        }
        keyed.check_key(&key).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    #[test]
    fn burst_then_refill_per_ip() {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::with_clock(2.0, 3.0, clock.clone());
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        assert!((0..3).all(|_| limiter.allow(a)));
        assert!(!limiter.allow(a));
        assert!(limiter.allow(b), "buckets are per address");
        clock.advance(Duration::from_millis(400));
        assert!(!limiter.allow(a));
        clock.advance(Duration::from_millis(200));
        assert!(limiter.allow(a));
        assert!(RateLimiter::new(0.0, 0.0).allow(a));
    }

    #[test]
    fn one_ipv6_host_has_one_bucket() {
        let limiter = RateLimiter::with_clock(1.0, 2.0, FakeRelativeClock::default());
        let one = |i: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, i, 0, 0, 1));
        assert!(limiter.allow(one(1)));
        assert!(limiter.allow(one(2)));
        assert!(!limiter.allow(one(3)), "same /64, same bucket");
        assert_eq!(limiter.keys(), 1);
    }

    #[test]
    fn many_addresses_cannot_grow_the_key_set_without_bound() {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::with_clock(1.0, 5.0, clock.clone());
        let addr = |i: u32| IpAddr::V4(i.into());
        // An attacker keeps MAX_KEYS + more addresses active (each has
        // spent a token, so none is prunable).
        for i in 0..(MAX_KEYS as u32 + 5_000) {
            limiter.allow(addr(0x0a00_0000 + i));
        }
        assert!(limiter.keys() <= MAX_KEYS + 1, "{}", limiter.keys());
        // Once their buckets refill, the next prune (at most PRUNE_AT
        // requests later) forgets them.
        clock.advance(Duration::from_secs(10));
        let other: IpAddr = "198.51.100.1".parse().unwrap();
        for _ in 0..PRUNE_AT {
            limiter.allow(other);
        }
        let good: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(limiter.allow(good));
        assert!(limiter.keys() < PRUNE_AT, "{}", limiter.keys());
        assert!((0..4).all(|_| limiter.allow(good)));
        assert!(
            !limiter.allow(good),
            "the good client has its own bucket again"
        );
    }
}
