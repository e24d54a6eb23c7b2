//! The scrubber: a named worker per disk that re-reads every block of every
//! shard on a slow, throttled cycle and reports damaged shards.
//!
//! ```text
//!  step: list the next 16 shards after the cursor ─► verify each, ~1 MiB at a time, from the disk itself
//!        damaged ─► DamageSink (metadata: ReportDamage) ─► cursor saved to <disk>/scrub.state
//!        end of the disk ─► pass complete, cursor reset, Idle until the next pass
//!  pacing: after each step, sleep so that bytes read / time ≤ rate
//! ```
//! The cursor survives restarts, so a long pass resumes where it stopped.

use std::future::Future;
use std::time::{Duration, Instant};

use tessera_common::worker::{StepResult, Worker};
use tessera_rpc::MetaClient;
use tessera_rpc::proto::meta::command::Op;
use tessera_rpc::proto::meta::{Command, DamageReport, ReportDamage};

use crate::metrics::{DatanodeMetrics, disk_labels};
use crate::pass::{PassProgress, SCRUB_STATE};
use crate::rate::Rate;
use crate::{FsDisk, ReadIntent, ShardError, ShardKey};

/// Shards verified per step.
const SHARDS_PER_STEP: usize = 16;

/// Where damage reports go.
pub trait DamageSink: Send + Sync + 'static {
    /// Records that `key` on `disk` is damaged.
    fn report(&self, disk: u32, key: ShardKey, reason: String) -> impl Future<Output = Result<(), String>> + Send;
}

impl DamageSink for MetaClient {
    async fn report(&self, disk: u32, key: ShardKey, reason: String) -> Result<(), String> {
        let report = DamageReport {
            disk,
            data_id: key.data_id.as_bytes().to_vec(),
            part: key.part,
            shard: u32::from(key.shard),
            reason,
            reported_ms: 0,
        };
        let cmd = Command { now_ms: 0, op: Some(Op::ReportDamage(ReportDamage { report: Some(report) })) };
        self.write(cmd).await.map(|_| ()).map_err(|e| e.to_string())
    }
}

/// Scrubs one disk.
pub struct ScrubWorker<S: DamageSink> {
    disk: FsDisk,
    sink: S,
    /// Bytes per second at most (live-changeable).
    rate: Rate,
    progress: PassProgress,
    /// Shards checked and damaged found since start (all passes).
    pub checked: u64,
    damaged: u64,
    bytes: u64,
    metrics: DatanodeMetrics,
}

impl<S: DamageSink> ScrubWorker<S> {
    /// A scrubber for `disk` reading at most `rate_bytes_per_sec`, resuming
    /// from the saved progress.
    pub fn new(disk: FsDisk, sink: S, rate_bytes_per_sec: u64) -> Self {
        let progress = PassProgress::load(&disk, SCRUB_STATE);
        ScrubWorker {
            disk,
            sink,
            rate: Rate::new(rate_bytes_per_sec),
            progress,
            checked: 0,
            damaged: 0,
            bytes: 0,
            metrics: DatanodeMetrics::default(),
        }
    }

    /// Counts into `metrics` (`tessera_datanode_scrub_*`).
    pub fn with_metrics(mut self, metrics: DatanodeMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Paces by `rate`, shared with whoever changes it (the heartbeat).
    pub fn with_rate(mut self, rate: Rate) -> Self {
        self.rate = rate;
        self
    }
}

/// Verifies one shard, from the disk itself where it can (not a cached
/// copy: see [`ReadIntent::Scrub`]); `Some(reason)` if it is damaged.
/// A shard the disk cannot read (an I/O error such as `EIO` from a bad
/// sector) is damaged too: it is reported and the pass moves on, rather
/// than failing the step and reading the same bad spot again forever.
pub(crate) fn verify_shard(disk: &FsDisk, key: &ShardKey) -> Result<(u64, Option<String>), ShardError> {
    let mut reader = match disk.open_reader(key) {
        Ok(r) => r,
        Err(ShardError::Missing(_)) => return Ok((0, None)), // deleted since it was listed
        Err(ShardError::Corrupt { reason, .. }) => return Ok((0, Some(reason))),
        Err(e @ ShardError::Io { .. }) => return Ok((0, Some(format!("unreadable: {e}")))),
        Err(e) => return Err(e),
    };
    let stripes = reader.header().stripes()?;
    let mut bytes = 0;
    let read = reader.read_batches(0..stripes, ReadIntent::Scrub, |b| {
        bytes += b.frames.iter().map(|f| f.len() as u64).sum::<u64>();
        true
    });
    match read {
        Ok(_) => Ok((bytes, None)),
        Err(ShardError::Corrupt { stripe, reason, .. }) => Ok((bytes, Some(format!("stripe {stripe:?}: {reason}")))),
        Err(e @ ShardError::Io { .. }) => Ok((bytes, Some(format!("unreadable: {e}")))),
        Err(e) => Err(e),
    }
}

impl<S: DamageSink> Worker for ScrubWorker<S> {
    fn name(&self) -> String {
        format!("scrub:{}", self.disk.id())
    }

    async fn step(&mut self) -> Result<StepResult, String> {
        if self.rate.paused() {
            return Ok(StepResult::Idle); // resumed by a wake-up
        }
        let started = Instant::now();
        let disk = self.disk.clone();
        let cursor = self.progress.cursor.clone();
        let result = tokio::task::spawn_blocking(move || -> Result<_, ShardError> {
            let page = disk.list((!cursor.is_empty()).then_some(cursor.as_str()), SHARDS_PER_STEP)?;
            let mut found = Vec::new();
            let mut bytes = 0;
            for key in &page.keys {
                let (b, damage) = verify_shard(&disk, key)?;
                bytes += b;
                if let Some(reason) = damage {
                    found.push((*key, reason));
                }
            }
            Ok((page, found, bytes))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        let (page, found, bytes) = result;
        let labels = disk_labels(self.disk.id());
        for (key, reason) in found {
            tracing::warn!(disk = %self.disk.id(), shard = %key, %reason, "scrub found a damaged shard");
            self.sink.report(self.disk.id().get(), key, reason).await?;
            self.damaged += 1;
            self.metrics.scrub_damaged.get_or_create(&labels).inc();
        }
        self.checked += page.keys.len() as u64;
        self.bytes += bytes;
        self.metrics.scrub_shards.get_or_create(&labels).inc_by(page.keys.len() as u64);
        self.metrics.scrub_bytes.get_or_create(&labels).inc_by(bytes);
        let finished_pass = page.next.is_none();
        if finished_pass {
            self.progress.passes += 1;
            self.metrics.scrub_passes.get_or_create(&labels).inc();
            self.progress.cursor.clear();
        } else if let Some(next) = page.next {
            self.progress.cursor = next;
        }
        self.progress.save(&self.disk, SCRUB_STATE).map_err(|e| format!("save scrub progress: {e}"))?;
        // Pace to the configured rate.
        let budget = Duration::from_secs_f64(bytes as f64 / self.rate.get() as f64);
        if let Some(rest) = budget.checked_sub(started.elapsed()) {
            tokio::time::sleep(rest).await;
        }
        Ok(if finished_pass { StepResult::Idle } else { StepResult::Busy })
    }

    fn progress(&self) -> Option<String> {
        if self.rate.paused() {
            return Some("paused by the operator".to_owned());
        }
        Some(format!(
            "pass {}, {} shards ({} MB) checked, {} damaged",
            self.progress.passes + 1,
            self.checked,
            self.bytes / 1_000_000,
            self.damaged
        ))
    }
}
