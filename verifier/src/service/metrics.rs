//! Prometheus text exposition of the release service's counters.

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
pub enum Listener {
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
pub struct Metrics {
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
    pub fn challenge(&self) {
        self.challenges.fetch_add(1, Ordering::Relaxed);
    }

    pub fn release(&self, secrets: usize, took: Duration) {
        self.releases.fetch_add(1, Ordering::Relaxed);
        self.secrets_released
            .fetch_add(secrets as u64, Ordering::Relaxed);
        self.release_latency.observe(took);
    }

    pub fn refusal(&self, reason: &'static str, took: Option<Duration>) {
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
    pub fn log_append(&self, took: Duration) {
        self.log_append_latency.observe(took);
    }

    /// One read of a secret's latest value from the store.
    pub fn store_read(&self, took: Duration) {
        self.store_read_latency.observe(took);
    }

    /// The count of `listener`'s open connections, kept by the listener.
    pub fn open_connections(&self, listener: Listener) -> Arc<AtomicUsize> {
        self.open_connections[listener as usize].clone()
    }

    /// The text format (version 0.0.4).
    pub fn render(&self, outstanding_nonces: usize) -> String {
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
