//! The datanode's Prometheus metrics (`tessera_datanode_*`).

pub(crate) use tessera_common::metrics::label;
use tessera_common::metrics::{Counter, CounterFamily, GaugeFamily, HistogramFamily, Labels, latency_family};
use tessera_common::{DiskId, MetricsRegistry};

/// Counters and gauges of one datanode. Cloning shares them.
#[derive(Clone, Debug)]
pub struct DatanodeMetrics {
    /// Shard puts by result (`ok`, `error`).
    pub shard_puts: CounterFamily,
    /// Block bytes received in shard puts.
    pub shard_put_bytes: Counter,
    /// Time from a put's first message to its acknowledgement.
    pub shard_put_seconds: HistogramFamily,
    /// Shard gets by result (`ok`, `missing`, `corrupt`, `error`).
    pub shard_gets: CounterFamily,
    /// Block bytes sent by shard gets.
    pub shard_get_bytes: Counter,
    /// Completed shard gets by where their blocks were read from
    /// (`page_cache`, or `disk` around it).
    pub shard_get_sources: CounterFamily,
    /// Used bytes per disk (as of the last heartbeat).
    pub disk_used_bytes: GaugeFamily,
    /// Capacity per disk.
    pub disk_capacity_bytes: GaugeFamily,
    /// 1 when a disk has failed (writes or fsyncs failed) and takes no writes.
    pub disk_failed: GaugeFamily,
    /// 1 while a disk is full (free space below its reserve) and takes no new shards.
    pub disk_full: GaugeFamily,
    /// Heartbeats to metadata by result.
    pub heartbeats: CounterFamily,
    /// Shards the scrubber verified, per disk.
    pub scrub_shards: CounterFamily,
    /// Bytes the scrubber read, per disk.
    pub scrub_bytes: CounterFamily,
    /// Damaged shards the scrubber found and reported, per disk.
    pub scrub_damaged: CounterFamily,
    /// Completed scrub passes, per disk.
    pub scrub_passes: CounterFamily,
    /// Shard files the garbage collector removed, per disk.
    pub gc_deleted_shards: CounterFamily,
    /// Bytes of the shard files it removed, per disk.
    pub gc_deleted_bytes: CounterFamily,
    /// Unreferenced shard files waiting out the grace period, per disk.
    pub gc_pending_shards: GaugeFamily,
    /// Completed collector passes, per disk.
    pub gc_passes: CounterFamily,
    /// Missing shards the heal worker rebuilt, per disk.
    pub heal_shards: CounterFamily,
    /// Block bytes of the shards it rebuilt, per disk.
    pub heal_bytes: CounterFamily,
    /// Missing shards it could not rebuild (yet), per disk.
    pub heal_failures: CounterFamily,
    /// Completed heal passes over the disk's index, per disk.
    pub heal_passes: CounterFamily,
    /// Shards the rebalancer moved to where the map wants them, per disk whose worker made the move.
    pub rebalance_shards: CounterFamily,
    /// Block bytes the rebalancer copied or rebuilt.
    pub rebalance_bytes: CounterFamily,
    /// Moves the rebalancer could not make (yet).
    pub rebalance_failures: CounterFamily,
}

impl Default for DatanodeMetrics {
    fn default() -> Self {
        DatanodeMetrics {
            shard_puts: CounterFamily::default(),
            shard_put_bytes: Counter::default(),
            shard_put_seconds: latency_family(),
            shard_gets: CounterFamily::default(),
            shard_get_bytes: Counter::default(),
            shard_get_sources: CounterFamily::default(),
            disk_used_bytes: GaugeFamily::default(),
            disk_capacity_bytes: GaugeFamily::default(),
            disk_failed: GaugeFamily::default(),
            disk_full: GaugeFamily::default(),
            heartbeats: CounterFamily::default(),
            scrub_shards: CounterFamily::default(),
            scrub_bytes: CounterFamily::default(),
            scrub_damaged: CounterFamily::default(),
            scrub_passes: CounterFamily::default(),
            gc_deleted_shards: CounterFamily::default(),
            gc_deleted_bytes: CounterFamily::default(),
            gc_pending_shards: GaugeFamily::default(),
            gc_passes: CounterFamily::default(),
            heal_shards: CounterFamily::default(),
            heal_bytes: CounterFamily::default(),
            heal_failures: CounterFamily::default(),
            heal_passes: CounterFamily::default(),
            rebalance_shards: CounterFamily::default(),
            rebalance_bytes: CounterFamily::default(),
            rebalance_failures: CounterFamily::default(),
        }
    }
}

/// Labels naming one disk.
pub fn disk_labels(disk: DiskId) -> Labels {
    label("disk", disk.get().to_string())
}

/// Labels naming one result.
pub fn result_labels(result: &'static str) -> Labels {
    label("result", result)
}

impl DatanodeMetrics {
    /// New metrics, registered in `registry`.
    pub fn register(registry: &MetricsRegistry) -> Self {
        let m = DatanodeMetrics::default();
        let r = registry;
        r.register("tessera_datanode_shard_puts", "Shard puts by result", m.shard_puts.clone());
        r.register("tessera_datanode_shard_put_bytes", "Block bytes received by shard puts", m.shard_put_bytes.clone());
        r.register(
            "tessera_datanode_shard_put_seconds",
            "Shard put time, first message to acknowledgement (after fsync)",
            m.shard_put_seconds.clone(),
        );
        r.register("tessera_datanode_shard_gets", "Shard gets by result", m.shard_gets.clone());
        r.register("tessera_datanode_shard_get_bytes", "Block bytes sent by shard gets", m.shard_get_bytes.clone());
        r.register(
            "tessera_datanode_shard_get_sources",
            "Completed shard gets by where their blocks were read from (page_cache, or disk around it)",
            m.shard_get_sources.clone(),
        );
        r.register("tessera_datanode_disk_used_bytes", "Used bytes per disk", m.disk_used_bytes.clone());
        r.register("tessera_datanode_disk_capacity_bytes", "Capacity per disk", m.disk_capacity_bytes.clone());
        r.register(
            "tessera_datanode_disk_failed",
            "1 when a disk has failed and takes no writes",
            m.disk_failed.clone(),
        );
        r.register(
            "tessera_datanode_disk_full",
            "1 while a disk's free space is below its reserve and it takes no new shards",
            m.disk_full.clone(),
        );
        r.register("tessera_datanode_heartbeats", "Heartbeats to metadata by result", m.heartbeats.clone());
        r.register("tessera_datanode_scrub_shards", "Shards verified by the scrubber", m.scrub_shards.clone());
        r.register("tessera_datanode_scrub_bytes", "Bytes read by the scrubber", m.scrub_bytes.clone());
        r.register(
            "tessera_datanode_scrub_damaged_shards",
            "Damaged shards found and reported by the scrubber",
            m.scrub_damaged.clone(),
        );
        r.register("tessera_datanode_scrub_passes", "Completed scrub passes", m.scrub_passes.clone());
        r.register(
            "tessera_datanode_gc_deleted_shards",
            "Shard files no record references, removed by the garbage collector",
            m.gc_deleted_shards.clone(),
        );
        r.register("tessera_datanode_gc_deleted_bytes", "Bytes of the shard files removed", m.gc_deleted_bytes.clone());
        r.register(
            "tessera_datanode_gc_pending_shards",
            "Unreferenced shard files waiting out the grace period",
            m.gc_pending_shards.clone(),
        );
        r.register("tessera_datanode_gc_passes", "Completed garbage collector passes", m.gc_passes.clone());
        r.register("tessera_datanode_heal_shards", "Missing shards rebuilt by the heal worker", m.heal_shards.clone());
        r.register("tessera_datanode_heal_bytes", "Block bytes of the shards rebuilt", m.heal_bytes.clone());
        r.register(
            "tessera_datanode_heal_failures",
            "Missing shards the heal worker could not rebuild (yet)",
            m.heal_failures.clone(),
        );
        r.register("tessera_datanode_heal_passes", "Completed heal passes over a disk's index", m.heal_passes.clone());
        r.register(
            "tessera_datanode_rebalance_shards",
            "Shards the rebalancer moved to the disk the cluster map wants",
            m.rebalance_shards.clone(),
        );
        r.register(
            "tessera_datanode_rebalance_bytes",
            "Block bytes the rebalancer copied or rebuilt",
            m.rebalance_bytes.clone(),
        );
        r.register(
            "tessera_datanode_rebalance_failures",
            "Moves the rebalancer could not make (yet)",
            m.rebalance_failures.clone(),
        );
        m
    }
}
