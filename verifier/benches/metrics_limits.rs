//! Hand-written vs library-made: the metrics of one release and the
//! per-address rate limit, each timed with the code `main` had (inlined
//! below, unchanged: `hand::Metrics`, `hand::RateLimiter`) and with what
//! the service uses now (`prometheus-client`, `governor`), printed as
//! nanoseconds per operation and as a ratio (library / hand-written), on
//! one thread and on two contending threads.
//!
//! `cargo bench -p hermetic-verifier --bench metrics_limits`
//! (`cargo test --benches` runs it with few iterations, as a smoke test).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hermetic_verifier::service::{Metrics, RateLimiter};

/// The hand-written metrics of `main` before prometheus-client.
#[allow(dead_code)]
mod hand {
    use std::collections::BTreeMap;
    use std::fmt::Write;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// Upper bounds (seconds) of the latency histograms.
    const BUCKETS: [f64; 12] = [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ];

    /// A latency histogram over [`BUCKETS`].
    #[derive(Debug, Default)]
    struct Histogram {
        counts: [AtomicU64; BUCKETS.len()],
        count: AtomicU64,
        sum_us: AtomicU64,
    }

    impl Histogram {
        fn observe(&self, took: Duration) {
            let secs = took.as_secs_f64();
            for (i, bound) in BUCKETS.iter().enumerate() {
                if secs <= *bound {
                    self.counts[i].fetch_add(1, Ordering::Relaxed);
                }
            }
            self.count.fetch_add(1, Ordering::Relaxed);
            self.sum_us
                .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        }

        fn render(&self, out: &mut String, name: &str, help: &str) {
            let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} histogram");
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{name}_bucket{{le=\"{bound}\"}} {}",
                    load(&self.counts[i])
                );
            }
            let count = load(&self.count);
            let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
            let _ = writeln!(out, "{name}_sum {}", load(&self.sum_us) as f64 / 1e6);
            let _ = writeln!(out, "{name}_count {count}");
        }
    }

    /// The listeners whose open connections are counted.
    #[derive(Debug, Clone, Copy)]
    pub(crate) enum Listener {
        Public,
        Admin,
        /// `--public-endpoint` (vsock or Unix, through the parent).
        Endpoint,
    }

    impl Listener {
        const ALL: [Listener; 3] = [Listener::Public, Listener::Admin, Listener::Endpoint];

        fn label(self) -> &'static str {
            match self {
                Listener::Public => "public",
                Listener::Admin => "admin",
                Listener::Endpoint => "endpoint",
            }
        }
    }

    #[derive(Debug, Default)]
    pub(crate) struct Metrics {
        releases: AtomicU64,
        secrets_released: AtomicU64,
        challenges: AtomicU64,
        refusals: Mutex<BTreeMap<&'static str, u64>>,
        release_latency: Histogram,
        log_append_latency: Histogram,
        store_read_latency: Histogram,
        open_connections: [Arc<AtomicUsize>; 3],
    }

    impl Metrics {
        pub(crate) fn challenge(&self) {
            self.challenges.fetch_add(1, Ordering::Relaxed);
        }

        pub(crate) fn release(&self, secrets: usize, took: Duration) {
            self.releases.fetch_add(1, Ordering::Relaxed);
            self.secrets_released
                .fetch_add(secrets as u64, Ordering::Relaxed);
            self.release_latency.observe(took);
        }

        pub(crate) fn refusal(&self, reason: &'static str, took: Option<Duration>) {
            *self
                .refusals
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(reason)
                .or_default() += 1;
            if let Some(took) = took {
                self.release_latency.observe(took);
            }
        }

        /// One durable append to the audit log (its group commit and signed
        /// checkpoint included).
        pub(crate) fn log_append(&self, took: Duration) {
            self.log_append_latency.observe(took);
        }

        /// One read of a secret's latest value from the store.
        pub(crate) fn store_read(&self, took: Duration) {
            self.store_read_latency.observe(took);
        }

        /// The count of `listener`'s open connections, kept by the listener.
        pub(crate) fn open_connections(&self, listener: Listener) -> Arc<AtomicUsize> {
            self.open_connections[listener as usize].clone()
        }

        /// The text format (version 0.0.4).
        pub(crate) fn render(&self, outstanding_nonces: usize) -> String {
            let mut out = String::new();
            let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "# HELP hermetic_releases_total Granted release requests."
            );
            let _ = writeln!(out, "# TYPE hermetic_releases_total counter");
            let _ = writeln!(out, "hermetic_releases_total {}", load(&self.releases));
            let _ = writeln!(
                out,
                "# HELP hermetic_secrets_released_total Secrets sealed to enclaves."
            );
            let _ = writeln!(out, "# TYPE hermetic_secrets_released_total counter");
            let _ = writeln!(
                out,
                "hermetic_secrets_released_total {}",
                load(&self.secrets_released)
            );
            let _ = writeln!(out, "# HELP hermetic_challenges_total Nonces issued.");
            let _ = writeln!(out, "# TYPE hermetic_challenges_total counter");
            let _ = writeln!(out, "hermetic_challenges_total {}", load(&self.challenges));
            let _ = writeln!(
                out,
                "# HELP hermetic_refusals_total Refused requests by reason."
            );
            let _ = writeln!(out, "# TYPE hermetic_refusals_total counter");
            for (reason, n) in self
                .refusals
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
            {
                let _ = writeln!(out, "hermetic_refusals_total{{reason=\"{reason}\"}} {n}");
            }
            self.release_latency.render(
                &mut out,
                "hermetic_release_duration_seconds",
                "Time to decide a release request.",
            );
            self.log_append_latency.render(
                &mut out,
                "hermetic_log_append_duration_seconds",
                "Time to append an audit record durably (group commit and signed checkpoint).",
            );
            self.store_read_latency.render(
                &mut out,
                "hermetic_store_read_duration_seconds",
                "Time to read a secret's sealed value from the store.",
            );
            let _ = writeln!(
                out,
                "# HELP hermetic_open_connections Connections open now, by listener."
            );
            let _ = writeln!(out, "# TYPE hermetic_open_connections gauge");
            for listener in Listener::ALL {
                let _ = writeln!(
                    out,
                    "hermetic_open_connections{{listener=\"{}\"}} {}",
                    listener.label(),
                    self.open_connections[listener as usize].load(Ordering::Relaxed)
                );
            }
            let _ = writeln!(
                out,
                "# HELP hermetic_outstanding_nonces Nonces remembered now."
            );
            let _ = writeln!(out, "# TYPE hermetic_outstanding_nonces gauge");
            let _ = writeln!(out, "hermetic_outstanding_nonces {outstanding_nonces}");
            out
        }
    }
}

/// The hand-written token bucket of `main` before governor.
#[allow(dead_code)]
mod hand_limit {
    use std::collections::HashMap;
    use std::net::IpAddr;
    use std::sync::Mutex;
    use std::time::Instant;

    /// Buckets kept before full (idle) ones are forgotten.
    const PRUNE_AT: usize = 10_000;

    #[derive(Debug)]
    pub(crate) struct RateLimiter {
        per_sec: f64,
        burst: f64,
        buckets: Mutex<HashMap<IpAddr, Bucket>>,
    }

    #[derive(Debug, Clone, Copy)]
    struct Bucket {
        tokens: f64,
        last: Instant,
    }

    impl RateLimiter {
        /// `per_sec` tokens are added each second up to `burst`; each request
        /// takes one. `per_sec == 0` disables limiting.
        pub(crate) fn new(per_sec: f64, burst: f64) -> Self {
            RateLimiter {
                per_sec,
                burst: burst.max(1.0),
                buckets: Mutex::new(HashMap::new()),
            }
        }

        /// Whether `ip` may make a request at `now` (taking a token if so).
        pub(crate) fn allow(&self, ip: IpAddr, now: Instant) -> bool {
            if self.per_sec <= 0.0 {
                return true;
            }
            let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
            if buckets.len() >= PRUNE_AT {
                let (rate, burst) = (self.per_sec, self.burst);
                buckets.retain(|_, b| {
                    b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * rate < burst
                });
            }
            let bucket = buckets.entry(ip).or_insert(Bucket {
                tokens: self.burst,
                last: now,
            });
            let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
            bucket.tokens = (bucket.tokens + elapsed * self.per_sec).min(self.burst);
            bucket.last = now;
            if bucket.tokens >= 1.0 {
                bucket.tokens -= 1.0;
                true
            } else {
                false
            }
        }
    }
}

/// What one granted release records: its challenge, one store read, one
/// log append, the grant with its latency.
fn release_hand(m: &hand::Metrics, i: u64) {
    let took = Duration::from_micros(200 + i % 700);
    m.challenge();
    m.store_read(Duration::from_micros(20));
    m.log_append(Duration::from_micros(150));
    m.release(1, took);
}

fn release_lib(m: &Metrics, i: u64) {
    let took = Duration::from_micros(200 + i % 700);
    m.challenge();
    m.store_read(Duration::from_micros(20));
    m.log_append(Duration::from_micros(150));
    m.release(1, took);
}

/// Nanoseconds per call of `f` over `n` calls on each of `threads` threads
/// (wall time of the slowest thread / n).
fn time<F: Fn(u64) + Send + Sync + 'static>(threads: usize, n: u64, f: F) -> f64 {
    let f = Arc::new(f);
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let f = f.clone();
            std::thread::spawn(move || {
                for i in 0..n {
                    f(i + (t as u64) * n);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn addr(i: u64) -> IpAddr {
    // 16 client addresses, as behind a few parent instances.
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, (i % 16) as u8))
}

fn row(what: &str, threads: usize, hand: f64, lib: f64) {
    println!(
        "{what:<34} {threads} thread(s)  hand-written {hand:>8.1} ns  library {lib:>8.1} ns  ratio {:.2}",
        lib / hand
    );
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let n: u64 = if quick { 2_000 } else { 2_000_000 };
    for threads in [1, 2] {
        let hand_m = Arc::new(hand::Metrics::default());
        let lib_m = Arc::new(Metrics::default());
        // Warm both (first refusal label, first histogram bucket).
        release_hand(&hand_m, 0);
        release_lib(&lib_m, 0);
        let (h, l) = (hand_m.clone(), lib_m.clone());
        let hand_ns = time(threads, n, move |i| release_hand(black_box(&h), i));
        let lib_ns = time(threads, n, move |i| release_lib(black_box(&l), i));
        row("metrics of one release", threads, hand_ns, lib_ns);
        let (h, l) = (hand_m.clone(), lib_m.clone());
        let hand_ns = time(threads, n, move |_| {
            h.refusal(black_box("nonce_replayed"), None)
        });
        let lib_ns = time(threads, n, move |_| {
            l.refusal(black_box("nonce_replayed"), None)
        });
        row("one refusal counted", threads, hand_ns, lib_ns);
        // The rate limit of one request (a rate no client reaches: the
        // path every granted request takes).
        let hand_l = Arc::new(hand_limit::RateLimiter::new(1e9, 1e9));
        let lib_l = Arc::new(RateLimiter::new(1e9, 1e9));
        let (h, l) = (hand_l.clone(), lib_l.clone());
        let hand_ns = time(threads, n, move |i| {
            assert!(h.allow(black_box(addr(i)), Instant::now()))
        });
        let lib_ns = time(threads, n, move |i| assert!(l.allow(black_box(addr(i)))));
        row("rate limit of one request", threads, hand_ns, lib_ns);
    }
    // One scrape, for scale (not on the release path).
    let lib_m = Metrics::default();
    let hand_m = hand::Metrics::default();
    for i in 0..100 {
        release_lib(&lib_m, i);
        release_hand(&hand_m, i);
    }
    let reps = if quick { 10 } else { 10_000 };
    let start = Instant::now();
    for _ in 0..reps {
        black_box(hand_m.render(3));
    }
    let hand_ns = start.elapsed().as_nanos() as f64 / reps as f64;
    let start = Instant::now();
    for _ in 0..reps {
        black_box(lib_m.render(Default::default()));
    }
    let lib_ns = start.elapsed().as_nanos() as f64 / reps as f64;
    row("one /metrics render", 1, hand_ns, lib_ns);
}
