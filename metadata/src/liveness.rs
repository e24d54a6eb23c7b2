//! Datanode liveness: the leader records heartbeats in memory and a named
//! worker turns silence into cluster-map changes through Raft.
//!
//! ```text
//!  Heartbeat(node, disks) ──► LivenessTable (per disk: last healthy report)
//!  LivenessWorker (leader only, every check interval):
//!     silent > down_after  and up      ──► SetDiskState(down, in)
//!     silent > out_after   and in      ──► SetDiskState(down, out)   placement moves its PGs
//!     reporting again      and down    ──► SetDiskState(up, in)
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
use tessera_rpc::proto::meta::{Command, DiskUsage, HeartbeatRequest, SetDiskState, command::Op};

use crate::MetaState;
use crate::raft::{RaftRequest, TypeConfig};

/// Last healthy report of each disk, kept by the leader.
#[derive(Clone, Debug, Default)]
pub struct LivenessTable {
    last_ok: Arc<Mutex<HashMap<u32, Instant>>>,
    usage: Arc<Mutex<HashMap<u32, DiskUsage>>>,
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
    }

    /// The last report of every disk, by disk id.
    pub fn usage(&self) -> Vec<DiskUsage> {
        let mut v: Vec<DiskUsage> = self.usage.lock().unwrap_or_else(|p| p.into_inner()).values().copied().collect();
        v.sort_by_key(|d| d.disk);
        v
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
        LivenessWorker { raft, state, table, node_id, down_after, out_after, leader_since: None, changes: 0 }
    }

    async fn propose(&mut self, disk: u32, up: bool, is_in: bool) -> Result<(), String> {
        let cmd = Command { now_ms: 0, op: Some(Op::SetDiskState(SetDiskState { disk, up, is_in })) };
        self.raft.client_write(RaftRequest(cmd.encode_to_vec())).await.map_err(|e| e.to_string())?;
        self.changes += 1;
        tracing::info!(disk, up, is_in, "disk state changed by liveness");
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
            return Ok(StepResult::Idle);
        }
        let since = *self.leader_since.get_or_insert_with(Instant::now);
        let st = self.state.clone();
        let map = tokio::task::spawn_blocking(move || st.cluster_map())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let Some(map) = map else { return Ok(StepResult::Idle) };
        let now = Instant::now();
        let disks: Vec<(u32, bool, bool)> =
            map.disks().map(|(_, _, _, d)| (d.id.get(), d.state.up, d.state.is_in)).collect();
        for (disk, up, is_in) in disks {
            let heard = self.table.last_ok(disk).map_or(since, |t| t.max(since));
            let silent = now.saturating_duration_since(heard);
            if silent > self.out_after && is_in {
                self.propose(disk, false, false).await?;
            } else if silent > self.down_after && up {
                self.propose(disk, false, is_in).await?;
            } else if silent <= self.down_after
                && (!up || !is_in)
                && self.table.last_ok(disk).is_some_and(|t| t >= since)
            {
                self.propose(disk, true, true).await?;
            }
        }
        Ok(StepResult::Idle)
    }

    fn progress(&self) -> Option<String> {
        Some(format!("{} disk state changes proposed", self.changes))
    }
}
