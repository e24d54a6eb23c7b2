//! Prometheus metrics: one registry per process (or per node in tests),
//! shared by the roles running in it and rendered as Prometheus text at
//! `/tessera/metrics`.
//!
//! Names follow `tessera_<crate>_<thing>_<unit>`; counters are registered
//! without the `_total` suffix, which the text encoder appends.

use std::fmt;
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::MetricType;
pub use prometheus_client::metrics::counter::Counter;
pub use prometheus_client::metrics::family::Family;
pub use prometheus_client::metrics::gauge::Gauge;
pub use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};

/// Label pairs of a metric family, e.g. `[("op", "GetObject")]`.
pub type Labels = Vec<(&'static str, String)>;

/// One label, e.g. `label("result", "ok")`.
pub fn label(key: &'static str, value: impl Into<String>) -> Labels {
    vec![(key, value.into())]
}

/// A counter family keyed by labels.
pub type CounterFamily = Family<Labels, Counter>;
/// A gauge family keyed by labels.
pub type GaugeFamily = Family<Labels, Gauge>;
/// A histogram family keyed by labels, built with [`latency_histogram`].
pub type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// Buckets for request and operation latency, in seconds: 0.5 ms to ~65 s.
pub fn latency_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.0005, 2.0, 18))
}

/// A histogram family of latencies in seconds.
pub fn latency_family() -> HistogramFamily {
    Family::new_with_constructor(latency_histogram)
}

/// The registry a node's metrics go into. Cloning shares it.
#[derive(Clone, Default)]
pub struct MetricsRegistry(Arc<Mutex<Inner>>);

#[derive(Default)]
struct Inner {
    registry: Registry,
    /// (name, type) of every registered metric, in order.
    catalog: Vec<(String, &'static str)>,
}

impl fmt::Debug for MetricsRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MetricsRegistry")
    }
}

impl MetricsRegistry {
    /// A new, empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a metric under `name` (without `_total` for counters).
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        let mut r = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let kind = match metric.metric_type() {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::Info => "info",
            _ => "unknown",
        };
        r.catalog.push((name.to_owned(), kind));
        r.registry.register(name, help, metric);
    }

    /// Every registered metric's name (without `_total`) and type, whether
    /// or not it has samples yet (the exposition leaves out families
    /// without any): what the metrics catalog in the docs is checked
    /// against.
    pub fn catalog(&self) -> Vec<(String, &'static str)> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).catalog.clone()
    }

    /// The Prometheus text exposition of every registered metric.
    pub fn render(&self) -> String {
        let r = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &r.registry);
        out
    }
}

/// The content type of [`MetricsRegistry::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_histograms_with_labels() {
        let reg = MetricsRegistry::new();
        let reqs = CounterFamily::default();
        let used = Gauge::<i64>::default();
        let lat = latency_family();
        reg.register("tessera_test_requests", "Requests", reqs.clone());
        reg.register("tessera_test_used_bytes", "Used", used.clone());
        reg.register("tessera_test_latency_seconds", "Latency", lat.clone());
        reqs.get_or_create(&vec![("op", "GetObject".into()), ("status", "200".into())]).inc_by(3);
        used.set(42);
        lat.get_or_create(&vec![("op", "PutObject".into())]).observe(0.003);
        let text = reg.render();
        assert!(text.contains("tessera_test_requests_total{op=\"GetObject\",status=\"200\"} 3"), "{text}");
        assert!(text.contains("tessera_test_used_bytes 42"), "{text}");
        assert!(text.contains("tessera_test_latency_seconds_count{op=\"PutObject\"} 1"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        let kinds: Vec<&str> = reg.catalog().iter().map(|(_, k)| *k).collect();
        assert_eq!(kinds, ["counter", "gauge", "histogram"]);
        assert_eq!(reg.catalog()[0].0, "tessera_test_requests");
    }
}
