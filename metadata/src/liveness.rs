//! Datanode liveness: the leader records heartbeats in memory and a named
//! worker turns silence into cluster-map changes through Raft.
//!
//! ```text
//!  Heartbeat(node, disks) ──► LivenessTable (per disk: last healthy report)
//!  LivenessWorker (leader only, every check interval):
//!     silent > down_after  and up      ──► SetDiskState(down, in)
//!     silent > out_after   and in      ──► SetDiskState(down, out)   placement moves its PGs
//!     reporting again      and down    ──► SetDiskState(up, in)   (stays out if an operator marked it out)
//!     up, reported full    and not full ──► SetDiskFull(true)     writes go around it, heal and rebalance wait
//!     up, reported roomy   and full     ──► SetDiskFull(false)
//! ```
//!
//! Heartbeats are not Raft writes (they would flood the log); only state
//! changes are. A new leader starts every disk's clock at its own start, so
//! a leader change never marks a disk down by itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::Raft;
use prost::Message;
use tessera_common::worker::{StepResult, Worker};
use tessera_rpc::proto::meta::{
    Command, DiskUsage, DropRetired, HeartbeatRequest, SetDiskFull, SetDiskState, WorkerReport, command::Op,
};

use crate::MetaState;
use crate::metrics::MetaMetrics;
use crate::raft::{RaftRequest, TypeConfig};
use crate::version::Levels;
use tessera_common::metrics::label;

/// Last healthy report of each disk, kept by the leader.
#[derive(Clone, Debug, Default)]
pub struct LivenessTable {
    last_ok: Arc<Mutex<HashMap<u32, Instant>>>,
    usage: Arc<Mutex<HashMap<u32, DiskUsage>>>,
    /// Each node's workers as its last heartbeat reported them.
    workers: Arc<Mutex<HashMap<u64, Vec<WorkerReport>>>>,
    /// This metadata node's own workers (lifecycle), by name.
    local: Arc<Mutex<HashMap<String, WorkerReport>>>,
}

impl LivenessTable {
    /// Records a heartbeat: healthy disks are fresh; unhealthy ones are not.
    pub fn record(&self, hb: &HeartbeatRequest) {
        let now = Instant::now();
        let mut t = self.last_ok.lock().unwrap_or_else(|p| p.into_inner());
        for d in hb.disks.iter().filter(|d| d.healthy) {
            t.insert(d.disk, now);
        }
        drop(t);
        let mut u = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        for d in &hb.disks {
            u.insert(d.disk, *d);
        }
        drop(u);
        let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let reports =
            hb.workers.iter().map(|w| WorkerReport { node_id: hb.node_id, reported_ms: ms, ..w.clone() }).collect();
        self.workers.lock().unwrap_or_else(|p| p.into_inner()).insert(hb.node_id, reports);
    }

    /// Every node's workers as last reported, by node then name.
    /// Records the status of one of this metadata node's own workers.
    pub fn record_local(&self, node_id: u64, report: WorkerReport) {
        let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let r = WorkerReport { node_id, reported_ms: ms, ..report };
        self.local.lock().unwrap_or_else(|p| p.into_inner()).insert(r.name.clone(), r);
    }

    pub fn workers(&self) -> Vec<WorkerReport> {
        let w = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<WorkerReport> = w.values().flatten().cloned().collect();
        v.extend(self.local.lock().unwrap_or_else(|p| p.into_inner()).values().cloned());
        v.sort_by(|a, b| (a.node_id, &a.name).cmp(&(b.node_id, &b.name)));
        v
    }

    /// The last report of every disk, by disk id.
    pub fn usage(&self) -> Vec<DiskUsage> {
        let mut v: Vec<DiskUsage> = self.usage.lock().unwrap_or_else(|p| p.into_inner()).values().copied().collect();
        v.sort_by_key(|d| d.disk);
        v
    }

    /// Whether the last report of `disk` says it is full.
    fn reported_full(&self, disk: u32) -> Option<bool> {
        self.usage.lock().unwrap_or_else(|p| p.into_inner()).get(&disk).map(|u| u.full)
    }

    fn last_ok(&self, disk: u32) -> Option<Instant> {
        self.last_ok.lock().unwrap_or_else(|p| p.into_inner()).get(&disk).copied()
    }
}

/// The worker that proposes disk state changes from the liveness table.
pub struct LivenessWorker {
    pub(crate) raft: Raft<TypeConfig>,
    pub(crate) state: MetaState,
    pub(crate) table: LivenessTable,
    pub(crate) node_id: u64,
    pub(crate) down_after: Duration,
    pub(crate) out_after: Duration,
    /// When this node last became leader (None while it is not).
    leader_since: Option<Instant>,
    changes: u64,
    metrics: MetaMetrics,
    /// Command levels (crate::version): `DropRetired` waits for level 2.
    levels: Arc<Levels>,
}

/// The state a disk counts under in `tessera_metadata_disks`.
pub fn disk_state_label(d: &tessera_placement::Disk) -> &'static str {
    match (d.state.up, d.state.is_in, d.marked_out) {
        (_, _, true) => "drained",
        (true, true, _) if d.full => "full",
        (true, true, _) => "in",
        (false, true, _) => "down",
        (_, false, _) => "out",
    }
}

impl LivenessWorker {
    /// A worker for node `node_id`.
    pub fn new(
        raft: Raft<TypeConfig>,
        state: MetaState,
        table: LivenessTable,
        node_id: u64,
        down_after: Duration,
        out_after: Duration,
    ) -> Self {
        LivenessWorker {
            raft,
            state,
            table,
            node_id,
            down_after,
            out_after,
            leader_since: None,
            changes: 0,
            metrics: MetaMetrics::default(),
            levels: Arc::new(Levels::new(crate::version::LEVEL)),
        }
    }

    /// Reports the disks' states into `metrics` (`tessera_metadata_disks`,
    /// `tessera_metadata_cluster_degraded`).
    pub fn with_metrics(mut self, metrics: MetaMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Proposes only what every metadata node understands (`levels`).
    pub fn with_levels(mut self, levels: Arc<Levels>) -> Self {
        self.levels = levels;
        self
    }

    fn report(&self, map: Option<&tessera_placement::ClusterMap>) {
        for s in ["in", "down", "out", "drained", "full"] {
            let n = map.map_or(0, |m| m.disks().filter(|(_, _, _, d)| disk_state_label(d) == s).count());
            self.metrics.disks.get_or_create(&label("state", s)).set(n as i64);
        }
        let degraded =
            map.is_some_and(|m| m.disks().any(|(_, _, _, d)| matches!(disk_state_label(d), "down" | "out" | "full")));
        self.metrics.degraded.set(i64::from(degraded));
    }

    async fn propose(&mut self, disk: u32, up: bool, is_in: bool) -> Result<(), String> {
        let cmd = Command { now_ms: 0, op: Some(Op::SetDiskState(SetDiskState { disk, up, is_in })) };
        self.raft.client_write(RaftRequest(cmd.encode_to_vec())).await.map_err(|e| e.to_string())?;
        self.changes += 1;
        tracing::info!(disk, up, is_in, "disk state changed by liveness");
        Ok(())
    }
}

impl LivenessWorker {
    /// Drops what is left of the retired garbage queue, 10,000 entries a
    /// step (a table older versions kept: never read, only taking space in
    /// the state and its snapshots).
    async fn drop_retired(&mut self) -> Result<(), String> {
        let st = self.state.clone();
        let left = tokio::task::spawn_blocking(move || st.has_retired()).await.map_err(|e| e.to_string())?;
        let members: Vec<u64> =
            self.raft.metrics().borrow().membership_config.membership().nodes().map(|(id, _)| *id).collect();
        let cmd = Command { now_ms: 0, op: Some(Op::DropRetired(DropRetired { max: 10_000 })) };
        if crate::version::needed(&cmd).is_none_or(|n| n > self.levels.cluster(self.node_id, members)) {
            return Ok(()); // a node runs an older release: later
        }
        if left.map_err(|e| e.to_string())? {
            self.raft.client_write(RaftRequest(cmd.encode_to_vec())).await.map_err(|e| e.to_string())?;
            tracing::info!("dropped retired garbage-queue entries");
        }
        Ok(())
    }

    async fn propose_full(&mut self, disk: u32, full: bool) -> Result<(), String> {
        let cmd = Command { now_ms: 0, op: Some(Op::SetDiskFull(SetDiskFull { disk, full })) };
        self.raft.client_write(RaftRequest(cmd.encode_to_vec())).await.map_err(|e| e.to_string())?;
        self.changes += 1;
        if full {
            tracing::warn!(disk, "disk reported full: writes go around it, heal and rebalance store nothing on it");
        } else {
            tracing::info!(disk, "disk no longer full");
        }
        Ok(())
    }
}

impl Worker for LivenessWorker {
    fn name(&self) -> String {
        "meta-liveness".into()
    }

    async fn step(&mut self) -> Result<StepResult, String> {
        let leading = self.raft.metrics().borrow().current_leader == Some(self.node_id);
        if !leading {
            self.leader_since = None;
            self.report(None);
            return Ok(StepResult::Idle);
        }
        let since = *self.leader_since.get_or_insert_with(Instant::now);
        let st = self.state.clone();
        let map = tokio::task::spawn_blocking(move || st.cluster_map())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        self.report(map.as_ref());
        self.drop_retired().await?;
        let Some(map) = map else { return Ok(StepResult::Idle) };
        let now = Instant::now();
        let disks: Vec<(u32, bool, bool, bool, bool)> =
            map.disks().map(|(_, _, _, d)| (d.id.get(), d.state.up, d.state.is_in, d.marked_out, d.full)).collect();
        for (disk, up, is_in, marked_out, full) in disks {
            // Full or not, as the datanode last said of a disk it reports healthy.
            let fresh = self
                .table
                .last_ok(disk)
                .is_some_and(|t| t >= since && now.saturating_duration_since(t) <= self.down_after);
            if let Some(reported) = self.table.reported_full(disk).filter(|_| fresh)
                && reported != full
            {
                self.propose_full(disk, reported).await?;
            }
            let heard = self.table.last_ok(disk).map_or(since, |t| t.max(since));
            let silent = now.saturating_duration_since(heard);
            if silent > self.out_after && is_in {
                self.propose(disk, false, false).await?;
            } else if silent > self.down_after && up {
                self.propose(disk, false, is_in).await?;
            } else if silent <= self.down_after
                && (!up || is_in == marked_out)
                && self.table.last_ok(disk).is_some_and(|t| t >= since)
            {
                // Back: up, and in unless an operator marked it out (a drain).
                self.propose(disk, true, !marked_out).await?;
            }
        }
        Ok(StepResult::Idle)
    }

    fn progress(&self) -> Option<String> {
        Some(format!("{} disk state changes proposed", self.changes))
    }
}
