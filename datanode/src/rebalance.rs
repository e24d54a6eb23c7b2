//! The rebalancer: a named worker per disk that moves shards to where the
//! current cluster map wants them — after a disk or datanode is added,
//! marked out (a drain), removed or reweighted, after a disk stayed `down`
//! past `disk_out_after`, and after writes that went around `down` disks.
//!
//! ```text
//!  idle until the map epoch differs from the one the last clean pass saw
//!  own phase:  the next 100 entries of this disk's index (ListDiskShards)
//!      each entry: CRUSH's disks for its PG vs the disks it names (plan_moves)
//!      a move away from this disk ─► copy the local shard (verified frames; a
//!          missing or unreadable one is rebuilt from the other positions)
//!          to the new disk (PutShard, fsynced) ─► MoveShard through Raft (the
//!          record and the index switch in one command) ─► only then the local
//!          file is deleted
//!  dead phase: the index of every disk that is down and out (its datanode
//!      cannot push): moves *to this disk* are rebuilt from the other
//!      positions and written here, then MoveShard
//!  pass done with no failed move: the epoch is settled; else retried after
//!      `rebalance_interval`
//!  pacing: after each step, sleep so that moved bytes / time ≤ rate
//! ```
//!
//! Each move has exactly one mover: the plan is a function of the entry and
//! the map, and a move is made by the datanode of its source disk, or of its
//! target disk when the source is dead. A MoveShard refused because the
//! record changed meanwhile (overwritten, deleted, moved by someone else)
//! deletes the new copy; a copy left behind by a crash is unreferenced and
//! the collector's orphan sweep removes it after the grace period. A disk
//! that comes back after its shards were moved away holds only unreferenced
//! copies: collected the same way.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tessera_common::worker::{StepResult, Worker};
use tessera_common::{DataId, DiskId, PgId};
use tessera_pipeline::Codecs;
use tessera_pipeline::cluster::{Cluster, View};
use tessera_placement::{Move, plan_moves, usable};
use tessera_rpc::proto::data::{PutShardRequest, ShardFrame, ShardGeometry, ShardRef};
use tessera_rpc::proto::meta::command::Op;
use tessera_rpc::proto::meta::command_result::Outcome;
use tessera_rpc::proto::meta::{Command, DiskShard, MoveShard};
use tokio::sync::mpsc;

use crate::heal::{hex_of, locate, rebuild_frames, unhex};
use crate::metrics::{DatanodeMetrics, disk_labels};
use crate::pass::{PassProgress, REBALANCE_STATE};
use crate::rate::Rate;
use crate::{FsDisk, ShardError, ShardKey};

/// Index entries looked at per step.
const ENTRIES_PER_STEP: u32 = 100;
/// Stripes read from a local shard per batch when copying it.
const COPY_STRIPES: u64 = 16;

/// Where a pass stands.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// Walking this disk's index after a data id (empty: at the start).
    Own(Vec<u8>),
    /// Walking the index of dead disk `dead[at]` after a data id.
    Dead { dead: Vec<u32>, at: usize, after: Vec<u8> },
}

/// Moves one disk's misplaced shards (and rebuilds dead disks' shards that
/// the map now places on it).
pub struct RebalanceWorker {
    disk: FsDisk,
    cluster: Cluster,
    codecs: Codecs,
    hedge: Duration,
    /// Bytes per second at most (live-changeable).
    rate: Rate,
    phase: Phase,
    /// The epoch of the map the current pass started with.
    pass_epoch: u64,
    /// Moves of the current pass that failed.
    pass_failed: u64,
    /// Moves of the current pass left for later: their target takes no
    /// shards now (full, down or out), and why, by target disk.
    pass_waiting: u64,
    waiting: std::collections::BTreeMap<u32, &'static str>,
    /// The epoch the last pass without failures saw: nothing to do until the map changes.
    settled: Option<u64>,
    passes: u64,
    /// Shards moved since start, and their bytes.
    pub moved: u64,
    moved_bytes: u64,
    failed: u64,
    last_failure: Option<String>,
    metrics: DatanodeMetrics,
}

impl RebalanceWorker {
    /// A rebalancer for `disk`, moving at most `rate_bytes_per_sec`.
    pub fn new(disk: FsDisk, cluster: Cluster, rate_bytes_per_sec: u64) -> Self {
        let progress = PassProgress::load(&disk, REBALANCE_STATE);
        RebalanceWorker {
            disk,
            cluster,
            codecs: Codecs::default(),
            hedge: Duration::from_secs(2),
            rate: Rate::new(rate_bytes_per_sec),
            phase: Phase::Own(unhex(&progress.cursor)),
            pass_epoch: 0,
            pass_failed: 0,
            pass_waiting: 0,
            waiting: std::collections::BTreeMap::new(),
            settled: None,
            passes: progress.passes,
            moved: 0,
            moved_bytes: 0,
            failed: 0,
            last_failure: None,
            metrics: DatanodeMetrics::default(),
        }
    }

    /// Counts into `metrics` (`tessera_datanode_rebalance_*`).
    pub fn with_metrics(mut self, metrics: DatanodeMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Paces by `rate`, shared with whoever changes it (the heartbeat).
    pub fn with_rate(mut self, rate: Rate) -> Self {
        self.rate = rate;
        self
    }

    fn me(&self) -> u32 {
        self.disk.id().get()
    }

    /// The moves the map wants for `entry`, each with why it must wait
    /// (its target disk is full, down or out) or `None` when it can be made.
    fn plan(view: &View, entry: &DiskShard) -> Vec<(Move, Option<&'static str>)> {
        let Some(map) = view.map.as_ref() else { return Vec::new() };
        let Ok(target) = view.place(PgId(entry.pg), entry.disks.len()) else { return Vec::new() };
        let current: Vec<DiskId> = entry.disks.iter().map(|&d| DiskId(d)).collect();
        let why = |d: DiskId| match map.disk(d) {
            _ if usable(map, d) => None,
            Some(d) if d.full && d.state.up && d.state.is_in => Some("full"),
            Some(d) if !d.state.up => Some("down"),
            _ => Some("out"),
        };
        plan_moves(&current, &target, |_| true).into_iter().map(|m| (m, why(m.to))).collect()
    }

    /// Makes one move: the new copy at `mv.to` (copied from this disk when
    /// `copy_local`, else rebuilt from the other positions), the record
    /// switched, the old copy deleted when it is this disk's. Returns the
    /// bytes moved; `Ok(0)` when the record changed meanwhile.
    async fn make(&self, data_id: &[u8], entry: &DiskShard, mv: Move, copy_local: bool) -> Result<u64, String> {
        let id: [u8; 16] = data_id.try_into().map_err(|_| "a data id is 16 bytes")?;
        let key = ShardKey { data_id: DataId::from_bytes(id), part: entry.part, shard: mv.position as u16 };
        let copied = if copy_local { self.copy(&key, mv.to).await } else { Err("not a local shard".into()) };
        let bytes = match copied {
            Ok(n) => n,
            Err(why) => {
                if copy_local {
                    tracing::info!(shard = %key, reason = %why, "local copy unusable; rebuilding the shard instead");
                }
                let Some((set, piece_len)) = locate(self.cluster.meta(), data_id, entry).await? else {
                    return Ok(0); // no record references the body any more
                };
                if set.disks.get(mv.position) != Some(&mv.from.get()) {
                    return Ok(0); // moved or rewritten meanwhile
                }
                let (tx, rx) = mpsc::channel(4);
                let first = first_message(&key, mv.to, geometry_of(&set, piece_len)?);
                let put = self.cluster.put_shard(first, rx);
                let made = rebuild_frames(
                    &self.cluster,
                    &self.codecs,
                    self.hedge,
                    &set,
                    entry.part,
                    piece_len,
                    mv.position as u32,
                    tx,
                );
                let (put, made) = tokio::join!(put, made);
                let n = made?;
                put.map_err(|e| format!("store on disk {}: {}", mv.to, e.message()))?;
                n
            }
        };
        let cmd = Command {
            now_ms: 0,
            op: Some(Op::MoveShard(MoveShard {
                bucket: entry.bucket.clone(),
                key: entry.key.clone(),
                upload_id: entry.upload_id.clone(),
                version_id: entry.version_id.clone(),
                data_id: data_id.to_vec(),
                position: mv.position as u32,
                from: mv.from.get(),
                to: mv.to.get(),
            })),
        };
        let r = self.cluster.meta().write(cmd).await.map_err(|e| format!("switch the record: {e}"))?;
        if let Some(Outcome::Failure(f)) = r.outcome {
            // The record changed meanwhile: the new copy is nobody's.
            tracing::info!(shard = %key, reason = %f.message, "record changed during a move; new copy dropped");
            self.drop_copy(&key, mv.to).await;
            return Ok(0);
        }
        if mv.from == self.disk.id() {
            // After the switch only: a reader holding the old record falls back to parity.
            if let Err(e) = self.disk.delete(&key) {
                tracing::warn!(shard = %key, error = %e, "moved shard's old copy not deleted; the collector will");
            }
        }
        Ok(bytes)
    }

    /// Streams this disk's verified copy of `key` to `to`.
    async fn copy(&self, key: &ShardKey, to: DiskId) -> Result<u64, String> {
        let disk = self.disk.clone();
        let k = *key;
        let reader = tokio::task::spawn_blocking(move || disk.open_reader(&k)).await.map_err(|e| e.to_string())?;
        let mut reader = reader.map_err(|e| e.to_string())?;
        let header = *reader.header();
        let stripes = header.stripes().map_err(|e| e.to_string())?;
        let geometry = ShardGeometry {
            codec: u32::from(header.codec),
            k: u32::from(header.k),
            m: u32::from(header.m),
            block_len: header.block_len,
            piece_len: header.piece_len,
        };
        let (tx, rx) = mpsc::channel::<ShardFrame>(COPY_STRIPES as usize);
        let put = self.cluster.put_shard(first_message(key, to, geometry), rx);
        let read = async move {
            let mut bytes = 0u64;
            let mut at = 0;
            while at < stripes {
                let end = (at + COPY_STRIPES).min(stripes);
                let (r, frames) = tokio::task::spawn_blocking(move || {
                    let f = reader.read_frames(at..end);
                    (reader, f)
                })
                .await
                .map_err(|e| e.to_string())?;
                reader = r;
                for f in frames.map_err(|e: ShardError| e.to_string())? {
                    let frame = ShardFrame { hash: f.slice(..32), block: f.slice(32..) };
                    bytes += frame.block.len() as u64;
                    tx.send(frame).await.map_err(|_| "the target stopped taking frames".to_owned())?;
                }
                at = end;
            }
            Ok::<u64, String>(bytes)
        };
        let (put, read) = tokio::join!(put, read);
        let bytes = read?;
        put.map_err(|e| format!("store on disk {to}: {}", e.message()))?;
        Ok(bytes)
    }

    /// Deletes a copy this worker stored on `to` that no record took.
    async fn drop_copy(&self, key: &ShardKey, to: DiskId) {
        let r = ShardRef {
            disk: to.get(),
            data_id: Bytes::copy_from_slice(key.data_id.as_bytes()),
            part: key.part,
            shard: u32::from(key.shard),
        };
        let deleted = match self.cluster.data_client(to.get()).await {
            Ok(mut c) => c.delete_shard(r).await.map(|_| ()).map_err(|e| e.message().to_owned()),
            Err(e) => Err(e),
        };
        if let Err(e) = deleted {
            tracing::warn!(shard = %key, disk = to.get(), error = %e, "unused copy not deleted; the collector will");
        }
    }

    fn count(&mut self, bytes: u64) {
        let labels = disk_labels(self.disk.id());
        self.moved += 1;
        self.moved_bytes += bytes;
        self.metrics.rebalance_shards.get_or_create(&labels).inc();
        self.metrics.rebalance_bytes.get_or_create(&labels).inc_by(bytes);
    }

    fn fail(&mut self, what: String) {
        self.failed += 1;
        self.pass_failed += 1;
        self.metrics.rebalance_failures.get_or_create(&disk_labels(self.disk.id())).inc();
        tracing::warn!(disk = self.me(), reason = %what, "could not move a shard");
        self.last_failure = Some(what);
    }

    /// Makes the moves of one page of entries that belong to this worker:
    /// those away from `source` when it is this disk, else those from the
    /// dead disk `source` to this one. Returns the bytes moved.
    async fn page(&mut self, view: &View, source: u32, entries: &[(Vec<u8>, DiskShard)]) -> u64 {
        let own = source == self.me();
        let mut bytes = 0;
        for (data_id, entry) in entries {
            for (mv, wait) in Self::plan(view, entry) {
                let mine =
                    if own { mv.from.get() == source } else { mv.from.get() == source && mv.to == self.disk.id() };
                if !mine {
                    continue;
                }
                if let Some(why) = wait {
                    // Made by a later pass: the target's change (space
                    // freed, back up) is a new map epoch.
                    self.waiting.insert(mv.to.get(), why);
                    self.pass_waiting += 1;
                    continue;
                }
                let local = own && {
                    let id: Option<[u8; 16]> = data_id.as_slice().try_into().ok();
                    id.is_some_and(|id| {
                        let key =
                            ShardKey { data_id: DataId::from_bytes(id), part: entry.part, shard: mv.position as u16 };
                        self.disk.stat(&key).is_ok()
                    })
                };
                match self.make(data_id, entry, mv, local).await {
                    Ok(0) => {}
                    Ok(n) => {
                        bytes += n;
                        self.count(n);
                    }
                    Err(e) => {
                        self.fail(format!("{} position {} {}→{}: {e}", hex_of(data_id), mv.position, mv.from, mv.to))
                    }
                }
            }
        }
        bytes
    }
}

fn first_message(key: &ShardKey, to: DiskId, geometry: ShardGeometry) -> PutShardRequest {
    PutShardRequest {
        shard: Some(ShardRef {
            disk: to.get(),
            data_id: Bytes::copy_from_slice(key.data_id.as_bytes()),
            part: key.part,
            shard: u32::from(key.shard),
        }),
        geometry: Some(geometry),
        frame: None,
    }
}

fn geometry_of(set: &tessera_rpc::proto::meta::ShardSet, piece_len: u64) -> Result<ShardGeometry, String> {
    let ec = set.ec.ok_or("the shard set has no EC profile")?;
    Ok(ShardGeometry { codec: ec.codec, k: ec.k, m: ec.m, block_len: ec.block_len, piece_len })
}

/// Disks that are down and out: their datanodes cannot move their shards.
fn dead_disks(view: &View, me: u32) -> Vec<u32> {
    view.map.as_ref().map_or_else(Vec::new, |m| {
        m.disks()
            .filter(|(_, _, _, d)| !d.state.up && !d.state.is_in && d.id.get() != me)
            .map(|(_, _, _, d)| d.id.get())
            .collect()
    })
}

impl Worker for RebalanceWorker {
    fn name(&self) -> String {
        format!("rebalance:{}", self.disk.id())
    }

    async fn step(&mut self) -> Result<StepResult, String> {
        if self.rate.paused() {
            return Ok(StepResult::Idle); // resumed by a wake-up
        }
        let started = Instant::now();
        let view = self.cluster.view();
        if view.map.is_none() {
            return Ok(StepResult::Idle);
        }
        if self.phase == Phase::Own(Vec::new()) {
            if self.settled == Some(view.epoch) {
                return Ok(StepResult::Idle);
            }
            self.pass_epoch = view.epoch;
            self.pass_failed = 0;
            self.pass_waiting = 0;
            self.waiting.clear();
        }
        let meta = self.cluster.meta().clone();
        let (source, after) = match &self.phase {
            Phase::Own(after) => (self.me(), after.clone()),
            Phase::Dead { dead, at, after } => match dead.get(*at) {
                Some(d) => (*d, after.clone()),
                None => {
                    // The pass is over.
                    self.passes += 1;
                    self.settled = (self.pass_failed == 0).then_some(self.pass_epoch);
                    self.phase = Phase::Own(Vec::new());
                    return Ok(StepResult::Idle);
                }
            },
        };
        let page = meta.list_disk_shards(source, after, ENTRIES_PER_STEP).await.map_err(|e| e.to_string())?;
        let entries: Vec<(Vec<u8>, DiskShard)> =
            page.iter().filter_map(|e| Some((e.data_id.clone(), e.shard.clone()?))).collect();
        let bytes = self.page(&view, source, &entries).await;
        let last = page.last().map(|e| e.data_id.clone());
        let full = page.len() == ENTRIES_PER_STEP as usize;
        self.phase = match (std::mem::replace(&mut self.phase, Phase::Own(Vec::new())), full, last) {
            (Phase::Own(_), true, Some(last)) => Phase::Own(last),
            (Phase::Own(_), _, _) => Phase::Dead { dead: dead_disks(&view, self.me()), at: 0, after: Vec::new() },
            (Phase::Dead { dead, at, .. }, true, Some(last)) => Phase::Dead { dead, at, after: last },
            (Phase::Dead { dead, at, .. }, _, _) => Phase::Dead { dead, at: at + 1, after: Vec::new() },
        };
        // A restart resumes the walk of this disk's own index.
        let cursor = match &self.phase {
            Phase::Own(after) => hex_of(after),
            Phase::Dead { .. } => String::new(),
        };
        PassProgress { passes: self.passes, cursor }
            .save(&self.disk, REBALANCE_STATE)
            .map_err(|e| format!("save rebalance progress: {e}"))?;
        let budget = Duration::from_secs_f64(bytes as f64 / self.rate.get() as f64);
        if let Some(rest) = budget.checked_sub(started.elapsed()) {
            tokio::time::sleep(rest).await;
        }
        Ok(StepResult::Busy)
    }

    fn progress(&self) -> Option<String> {
        if self.rate.paused() {
            return Some("paused by the operator".to_owned());
        }
        let at = match &self.phase {
            Phase::Own(after) if after.is_empty() => "between passes".to_owned(),
            Phase::Own(after) => format!("own index after {}", hex_of(after)),
            Phase::Dead { dead, at, .. } => format!("dead disk {} of {}", at + 1, dead.len()),
        };
        let mut s = format!(
            "{} passes, map epoch {}, {at}; {} shards ({} MB) moved, {} not moved",
            self.passes,
            self.pass_epoch,
            self.moved,
            self.moved_bytes / 1_000_000,
            self.failed
        );
        if self.pass_waiting > 0 {
            let on: Vec<String> = self.waiting.iter().map(|(d, why)| format!("{} {why}", DiskId(*d))).collect();
            s.push_str(&format!("; {} moves wait for their target ({})", self.pass_waiting, on.join(", ")));
        }
        if let Some(f) = &self.last_failure {
            s.push_str(&format!(" (last: {f})"));
        }
        Some(s)
    }
}
