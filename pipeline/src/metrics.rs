//! What the pipeline counts. The role that runs it registers these under
//! its own names (the gateway: `tessera_gateway_ec_encode_seconds`, …).

use tessera_common::metrics::{Counter, Histogram, latency_histogram};

/// The pipeline's metrics.
#[derive(Debug, Clone)]
pub struct PipelineMetrics {
    /// Time to encode one stripe.
    pub ec_encode_seconds: Histogram,
    /// Time to check and (when a data shard is missing) decode one stripe.
    pub ec_decode_seconds: Histogram,
    /// Stripes that needed parity to be rebuilt (a data shard missing, corrupt or slow).
    pub degraded_stripes: Counter,
    /// Shards opened beside others slower than the hedge timeout.
    pub hedged_shard_reads: Counter,
    /// Shard writes given up (failed or stalled) while the object was still stored.
    pub shard_write_failures: Counter,
}

impl Default for PipelineMetrics {
    fn default() -> Self {
        PipelineMetrics {
            ec_encode_seconds: latency_histogram(),
            ec_decode_seconds: latency_histogram(),
            degraded_stripes: Counter::default(),
            hedged_shard_reads: Counter::default(),
            shard_write_failures: Counter::default(),
        }
    }
}
