//! The release service's metrics, kept and exposed by `prometheus-client`
//! (the Prometheus project's Rust client): one [`Registry`] per service,
//! rendered in the OpenMetrics text format on `GET /metrics`.
//!
//! The series names are those the hand-formatted exposition had (the
//! OpenMetrics encoder adds a counter's `_total` suffix to the family name
//! it is registered under, so `hermetic_releases` is scraped as
//! `hermetic_releases_total`, as before).

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::render`]'s text (OpenMetrics 1.0.0).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) of the latency histograms.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// One label: its name and value, both fixed strings.
type Label = [(&'static str, &'static str); 1];

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

    fn label(self) -> Label {
        [(
            "listener",
            match self {
                Listener::Public => "public",
                Listener::Admin => "admin",
                Listener::Endpoint => "endpoint",
            },
        )]
    }
}

/// A gauge of open connections (`hermetic_open_connections`).
pub type OpenGauge = Gauge<i64, std::sync::atomic::AtomicI64>;

/// What the service reads at scrape time rather than counting as it goes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    /// Nonces remembered now.
    pub outstanding_nonces: usize,
    /// Entries in the audit log.
    pub log_size: u64,
    /// With witnesses: the size of the latest checkpoint K witnesses
    /// cosigned, and seconds since it was cosigned.
    pub witnessed: Option<(u64, f64)>,
}

pub struct Metrics {
    registry: Registry,
    releases: Counter,
    secrets_released: Counter,
    challenges: Counter,
    refusals: Family<Label, Counter>,
    release_latency: Histogram,
    log_append_latency: Histogram,
    store_read_latency: Histogram,
    open_connections: Family<Label, OpenGauge>,
    outstanding_nonces: Gauge,
    log_size: Gauge,
    witness_lag: Gauge,
    witness_age: Gauge<f64, AtomicU64>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(false)
    }
}

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

impl Metrics {
    /// The service's metrics; `witnessed` adds the witness lag gauges.
    pub fn new(witnessed: bool) -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            releases: Counter::default(),
            secrets_released: Counter::default(),
            challenges: Counter::default(),
            refusals: Family::default(),
            release_latency: histogram(),
            log_append_latency: histogram(),
            store_read_latency: histogram(),
            open_connections: Family::default(),
            outstanding_nonces: Gauge::default(),
            log_size: Gauge::default(),
            witness_lag: Gauge::default(),
            witness_age: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "hermetic_releases",
            "Granted release requests",
            m.releases.clone(),
        );
        registry.register(
            "hermetic_secrets_released",
            "Secrets sealed to enclaves",
            m.secrets_released.clone(),
        );
        registry.register("hermetic_challenges", "Nonces issued", m.challenges.clone());
        registry.register(
            "hermetic_refusals",
            "Refused requests by reason",
            m.refusals.clone(),
        );
        registry.register(
            "hermetic_release_duration_seconds",
            "Time to decide a release request",
            m.release_latency.clone(),
        );
        registry.register(
            "hermetic_log_append_duration_seconds",
            "Time to append an audit record durably (group commit and signed checkpoint)",
            m.log_append_latency.clone(),
        );
        registry.register(
            "hermetic_store_read_duration_seconds",
            "Time to read what a release needs of a secret (its policy and sealed value, one snapshot)",
            m.store_read_latency.clone(),
        );
        for listener in Listener::ALL {
            let _ = m.open_connections.get_or_create(&listener.label());
        }
        registry.register(
            "hermetic_open_connections",
            "Connections open now, by listener",
            m.open_connections.clone(),
        );
        registry.register(
            "hermetic_outstanding_nonces",
            "Nonces remembered now",
            m.outstanding_nonces.clone(),
        );
        registry.register(
            "hermetic_sealed",
            "1 while the verifier waits for its custodians to unseal it, 0 once it holds its master key",
            Gauge::<i64>::default(),
        );
        registry.register(
            "hermetic_log_size",
            "Entries in the audit log",
            m.log_size.clone(),
        );
        if witnessed {
            registry.register(
                "hermetic_witness_lag_entries",
                "Audit log entries not yet in a checkpoint the witness threshold cosigned",
                m.witness_lag.clone(),
            );
            registry.register(
                "hermetic_witness_cosigned_age_seconds",
                "Seconds since the latest checkpoint the witness threshold cosigned (since start when none)",
                m.witness_age.clone(),
            );
        }
        Metrics { registry, ..m }
    }

    pub fn challenge(&self) {
        self.challenges.inc();
    }

    pub fn release(&self, secrets: usize, took: Duration) {
        self.releases.inc();
        self.secrets_released.inc_by(secrets as u64);
        self.release_latency.observe(took.as_secs_f64());
    }

    pub fn refusal(&self, reason: &'static str, took: Option<Duration>) {
        self.refusals.get_or_create(&[("reason", reason)]).inc();
        if let Some(took) = took {
            self.release_latency.observe(took.as_secs_f64());
        }
    }

    /// One durable append to the audit log (its group commit and signed
    /// checkpoint included).
    pub fn log_append(&self, took: Duration) {
        self.log_append_latency.observe(took.as_secs_f64());
    }

    /// One read of a secret's latest value from the store.
    pub fn store_read(&self, took: Duration) {
        self.store_read_latency.observe(took.as_secs_f64());
    }

    /// The gauge of `listener`'s open connections, kept by the listener.
    pub fn open_connections(&self, listener: Listener) -> OpenGauge {
        self.open_connections
            .get_or_create(&listener.label())
            .clone()
    }

    /// The OpenMetrics text, with the values read at scrape time.
    pub fn render(&self, now: Snapshot) -> String {
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.outstanding_nonces
            .set(clamp(now.outstanding_nonces as u64));
        self.log_size.set(clamp(now.log_size));
        if let Some((cosigned, age)) = now.witnessed {
            self.witness_lag
                .set(clamp(now.log_size.saturating_sub(cosigned)));
            self.witness_age.set(age);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// The exposition of a sealed verifier (`GET /metrics` before its
/// custodians unsealed it): `hermetic_sealed 1` and the shares it holds
/// and needs.
pub fn render_sealed(have: usize, need: usize) -> String {
    let mut registry = Registry::default();
    let sealed = Gauge::<i64>::default();
    sealed.set(1);
    registry.register(
        "hermetic_sealed",
        "1 while the verifier waits for its custodians to unseal it, 0 once it holds its master key",
        sealed,
    );
    let shares = Family::<Label, Gauge>::default();
    shares.get_or_create(&[("state", "have")]).set(have as i64);
    shares.get_or_create(&[("state", "need")]).set(need as i64);
    registry.register(
        "hermetic_unseal_shares",
        "Custodian shares accepted (have) and needed (need) to unseal",
        shares,
    );
    let mut out = String::new();
    let _ = encode(&mut out, &registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_series_names_of_the_hand_written_exposition() {
        let m = Metrics::new(true);
        m.challenge();
        m.release(2, Duration::from_millis(3));
        m.refusal("nonce_replayed", Some(Duration::from_millis(1)));
        m.refusal("nonce_replayed", None);
        m.log_append(Duration::from_micros(700));
        m.store_read(Duration::from_micros(100));
        m.open_connections(Listener::Public).inc();
        let text = m.render(Snapshot {
            outstanding_nonces: 5,
            log_size: 10,
            witnessed: Some((7, 1.5)),
        });
        for line in [
            "hermetic_releases_total 1",
            "hermetic_secrets_released_total 2",
            "hermetic_challenges_total 1",
            "hermetic_refusals_total{reason=\"nonce_replayed\"} 2",
            "hermetic_release_duration_seconds_count 2",
            "hermetic_release_duration_seconds_bucket{le=\"0.0025\"} 1",
            "hermetic_release_duration_seconds_bucket{le=\"+Inf\"} 2",
            "hermetic_log_append_duration_seconds_count 1",
            "hermetic_store_read_duration_seconds_count 1",
            "hermetic_open_connections{listener=\"public\"} 1",
            "hermetic_open_connections{listener=\"endpoint\"} 0",
            "hermetic_outstanding_nonces 5",
            "hermetic_sealed 0",
            "hermetic_log_size 10",
            "hermetic_witness_lag_entries 3",
            "hermetic_witness_cosigned_age_seconds 1.5",
            "# TYPE hermetic_release_duration_seconds histogram",
            "# EOF",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing in:\n{text}"
            );
        }
        let unwitnessed = Metrics::new(false).render(Snapshot::default());
        assert!(!unwitnessed.contains("hermetic_witness_"), "{unwitnessed}");
    }

    #[test]
    fn a_sealed_verifier_says_so() {
        let text = render_sealed(1, 3);
        assert!(text.lines().any(|l| l == "hermetic_sealed 1"), "{text}");
        assert!(text.contains("hermetic_unseal_shares{state=\"have\"} 1"));
        assert!(text.contains("hermetic_unseal_shares{state=\"need\"} 3"));
    }
}
