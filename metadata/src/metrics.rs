//! The metadata node's Prometheus metrics (`tessera_metadata_*`): Raft
//! progress as gauges, and counters of the service's writes and heartbeats.

use openraft::Raft;
use tessera_common::MetricsRegistry;
use tessera_common::metrics::{
    Counter, CounterFamily, Gauge, GaugeFamily, HistogramFamily, Labels, label, latency_family,
};
use tokio::sync::watch;

use crate::raft::TypeConfig;

/// Counters and gauges of one metadata node. Cloning shares them.
#[derive(Clone, Debug)]
pub struct MetaMetrics {
    /// Raft commands by result (`ok`, `refused`: a failure the state
    /// machine answered, `error`: not committed).
    pub writes: CounterFamily,
    /// Time to commit and apply a command.
    pub write_seconds: HistogramFamily,
    /// Raft entries proposed for commands: concurrent commands share one
    /// (group commit), so `writes / write_entries` is the mean batch.
    pub write_entries: Counter,
    /// Read-index rounds: concurrent linearizable reads share one, so
    /// linearizable reads / `read_rounds` is the mean sharing.
    pub read_rounds: Counter,
    /// Datanode heartbeats received, by result.
    pub heartbeats: CounterFamily,
    /// Current Raft term.
    pub term: Gauge,
    /// Index of the last log entry.
    pub last_log_index: Gauge,
    /// Index of the last entry applied to the state machine.
    pub applied_index: Gauge,
    /// Commit index: on the leader, the highest index a majority of voters
    /// has stored; on a follower, its applied index.
    pub commit_index: Gauge,
    /// Index of the last snapshot.
    pub snapshot_index: Gauge,
    /// 1 on the leader.
    pub is_leader: Gauge,
    /// 1 while the node knows a leader.
    pub has_leader: Gauge,
    /// Voting members.
    pub voters: Gauge,
    /// On the leader: disks of the cluster map by state — `in` (up and in),
    /// `down` (silent, still placed on), `out` (silent past
    /// `disk_out_after`, or unhealthy: its shards are rebuilt elsewhere),
    /// `drained` (marked out by an operator), `full` (up and in, but its
    /// free space is below its reserve: written around). 0 on followers.
    pub disks: GaugeFamily,
    /// On the leader: 1 while some disk is `down`, `out` or `full` (objects
    /// may have fewer than k + m shards, or shards off their CRUSH disks,
    /// until heal and rebalance finish).
    pub degraded: Gauge,
    /// On the leader: the lifecycle worker's actions by `action` (`expire`,
    /// `noncurrent`, `marker`, `abort`, `refused`: a locked version or a key
    /// changed since it was judged).
    pub lifecycle_actions: CounterFamily,
    /// On the leader: bucket notification posts by `result` (`delivered`,
    /// `failed`: to be retried, `dead`: given up).
    pub notify_events: CounterFamily,
}

impl Default for MetaMetrics {
    fn default() -> Self {
        MetaMetrics {
            writes: CounterFamily::default(),
            write_seconds: latency_family(),
            write_entries: Counter::default(),
            read_rounds: Counter::default(),
            heartbeats: CounterFamily::default(),
            term: Gauge::default(),
            last_log_index: Gauge::default(),
            applied_index: Gauge::default(),
            commit_index: Gauge::default(),
            snapshot_index: Gauge::default(),
            is_leader: Gauge::default(),
            has_leader: Gauge::default(),
            voters: Gauge::default(),
            disks: GaugeFamily::default(),
            degraded: Gauge::default(),
            lifecycle_actions: CounterFamily::default(),
            notify_events: CounterFamily::default(),
        }
    }
}

/// Labels naming one result.
pub fn result_labels(result: &'static str) -> Labels {
    label("result", result)
}

impl MetaMetrics {
    /// New metrics, registered in `registry`.
    pub fn register(registry: &MetricsRegistry) -> Self {
        let m = MetaMetrics::default();
        let r = registry;
        r.register("tessera_metadata_writes", "Raft commands by result", m.writes.clone());
        r.register("tessera_metadata_write_seconds", "Time to commit and apply a command", m.write_seconds.clone());
        r.register(
            "tessera_metadata_write_entries",
            "Raft entries proposed for commands (concurrent commands share one)",
            m.write_entries.clone(),
        );
        r.register(
            "tessera_metadata_read_rounds",
            "Read-index rounds (concurrent linearizable reads share one)",
            m.read_rounds.clone(),
        );
        r.register("tessera_metadata_heartbeats", "Datanode heartbeats received by result", m.heartbeats.clone());
        r.register("tessera_metadata_raft_term", "Current Raft term", m.term.clone());
        r.register("tessera_metadata_raft_last_log_index", "Index of the last log entry", m.last_log_index.clone());
        r.register(
            "tessera_metadata_raft_applied_index",
            "Last index applied to the state machine",
            m.applied_index.clone(),
        );
        r.register(
            "tessera_metadata_raft_commit_index",
            "Commit index (leader: majority-stored index)",
            m.commit_index.clone(),
        );
        r.register("tessera_metadata_raft_snapshot_index", "Index of the last snapshot", m.snapshot_index.clone());
        r.register("tessera_metadata_raft_is_leader", "1 on the leader", m.is_leader.clone());
        r.register("tessera_metadata_raft_has_leader", "1 while a leader is known", m.has_leader.clone());
        r.register("tessera_metadata_raft_voters", "Voting members", m.voters.clone());
        r.register("tessera_metadata_disks", "Disks of the cluster map by state (leader only)", m.disks.clone());
        r.register(
            "tessera_metadata_cluster_degraded",
            "1 while some disk is down or out (leader only)",
            m.degraded.clone(),
        );
        r.register(
            "tessera_metadata_lifecycle_actions",
            "Lifecycle worker actions by action (leader only)",
            m.lifecycle_actions.clone(),
        );
        r.register(
            "tessera_metadata_notify_events",
            "Bucket notification posts by result (leader only)",
            m.notify_events.clone(),
        );
        m
    }

    /// Follows `raft`'s metrics into the gauges until it shuts down.
    pub async fn follow(self, raft: Raft<TypeConfig>, node_id: u64) {
        let mut rx: watch::Receiver<_> = raft.metrics();
        loop {
            {
                let rm = rx.borrow_and_update();
                self.term.set(rm.current_term as i64);
                self.last_log_index.set(rm.last_log_index.unwrap_or(0) as i64);
                let applied = rm.last_applied.map_or(0, |l| l.index);
                self.applied_index.set(applied as i64);
                self.snapshot_index.set(rm.snapshot.map_or(0, |l| l.index) as i64);
                self.is_leader.set(i64::from(rm.current_leader == Some(node_id)));
                self.has_leader.set(i64::from(rm.current_leader.is_some()));
                let voters: Vec<u64> = rm.membership_config.membership().voter_ids().collect();
                self.voters.set(voters.len() as i64);
                let commit = match &rm.replication {
                    Some(repl) if rm.current_leader == Some(node_id) => {
                        let mut matched: Vec<u64> = voters
                            .iter()
                            .map(|v| {
                                if *v == node_id {
                                    rm.last_log_index.unwrap_or(0)
                                } else {
                                    repl.get(v).copied().flatten().map_or(0, |l| l.index)
                                }
                            })
                            .collect();
                        matched.sort_unstable_by(|a, b| b.cmp(a));
                        matched.get(matched.len() / 2).copied().unwrap_or(applied).max(applied)
                    }
                    _ => applied,
                };
                self.commit_index.set(commit as i64);
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}
