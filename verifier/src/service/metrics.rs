//! Prometheus text exposition of the release service's counters.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the release latency histogram.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Debug, Default)]
pub struct Metrics {
    releases: AtomicU64,
    secrets_released: AtomicU64,
    challenges: AtomicU64,
    refusals: Mutex<BTreeMap<&'static str, u64>>,
    latency_counts: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
}

impl Metrics {
    pub fn challenge(&self) {
        self.challenges.fetch_add(1, Ordering::Relaxed);
    }

    pub fn release(&self, secrets: usize, took: Duration) {
        self.releases.fetch_add(1, Ordering::Relaxed);
        self.secrets_released
            .fetch_add(secrets as u64, Ordering::Relaxed);
        self.observe(took);
    }

    pub fn refusal(&self, reason: &'static str, took: Option<Duration>) {
        *self
            .refusals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(reason)
            .or_default() += 1;
        if let Some(took) = took {
            self.observe(took);
        }
    }

    fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.latency_counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
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
        let _ = writeln!(
            out,
            "# HELP hermetic_release_duration_seconds Time to decide a release request."
        );
        let _ = writeln!(out, "# TYPE hermetic_release_duration_seconds histogram");
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "hermetic_release_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                load(&self.latency_counts[i])
            );
        }
        let count = load(&self.latency_count);
        let _ = writeln!(
            out,
            "hermetic_release_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "hermetic_release_duration_seconds_sum {}",
            load(&self.latency_sum_us) as f64 / 1e6
        );
        let _ = writeln!(out, "hermetic_release_duration_seconds_count {count}");
        let _ = writeln!(
            out,
            "# HELP hermetic_outstanding_nonces Nonces remembered now."
        );
        let _ = writeln!(out, "# TYPE hermetic_outstanding_nonces gauge");
        let _ = writeln!(out, "hermetic_outstanding_nonces {outstanding_nonces}");
        out
    }
}
