//! The garbage collector: a named worker per disk that removes shard files
//! no record references any more — shards of overwritten, deleted and
//! aborted objects, of re-uploaded parts, of writes that stored their
//! shards but never committed (a bad checksum, a lost race, a crash), and
//! stale copies on a disk the data has moved away from.
//!
//! It is a mark-and-sweep against the metadata service's per-disk shard
//! index, which every commit keeps in the same Raft batch as the records:
//!
//! ```text
//!  step: list the next 1,000 shard files after the cursor
//!        ─► CheckShards(disk, their data ids)   (a linearizable read)
//!        referenced            ─► forgotten from the pending list
//!        unreferenced, new     ─► pending, first seen now
//!        unreferenced, pending for ≥ grace, file untouched for ≥ grace ─► removed
//!        state (pass, cursor, pending) ─► <disk>/gc.state
//!  end of the disk: pending entries not seen this pass are dropped (their
//!        files are gone); the pass is complete; Idle until the next pass
//! ```
//!
//! The grace period counts from when the collector first saw a file
//! unreferenced, not from when it was written: a GET that read the old
//! record just before an overwrite can still read the old shards for that
//! long. A write in flight has its shard files before its record commits;
//! it commits within seconds, long before the grace period ends, and then
//! the file is referenced again. Nothing is removed on any doubt: a failed
//! metadata call fails the step (and the runner backs off).

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tessera_common::DataId;
use tessera_common::worker::{StepResult, Worker};
use tessera_rpc::MetaClient;

use crate::metrics::{DatanodeMetrics, disk_labels};
use crate::rate::Rate;
use crate::{FsDisk, ShardError, ShardKey};

/// Shard files looked at per step.
const SHARDS_PER_STEP: usize = 1000;

/// Where the collector asks whether shards are still referenced.
pub trait ReferenceCheck: Send + Sync + 'static {
    /// For each data id, whether some record places shards of it on `disk`.
    fn referenced(&self, disk: u32, data_ids: Vec<DataId>) -> impl Future<Output = Result<Vec<bool>, String>> + Send;
}

impl ReferenceCheck for MetaClient {
    async fn referenced(&self, disk: u32, data_ids: Vec<DataId>) -> Result<Vec<bool>, String> {
        let n = data_ids.len();
        let ids = data_ids.iter().map(|d| d.as_bytes().to_vec()).collect();
        let r = self.check_shards(disk, ids).await.map_err(|e| e.to_string())?;
        if r.len() != n {
            return Err(format!("CheckShards answered {} of {n} data ids", r.len()));
        }
        Ok(r)
    }
}

/// What the collector keeps in `<disk>/gc.state` across restarts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcState {
    /// Completed passes over the whole disk.
    pub passes: u64,
    /// Listing cursor within the current pass (empty: at the start).
    pub cursor: String,
    /// Unreferenced shard files, with when each was first seen so (ms since
    /// the Unix epoch) and the pass that last saw it.
    pub pending: HashMap<ShardKey, (u64, u64)>,
}

impl GcState {
    fn path(disk: &FsDisk) -> PathBuf {
        disk.root().join("gc.state")
    }

    /// Loads the saved state; a missing or unreadable file starts over,
    /// which only restarts the grace period of pending files.
    pub fn load(disk: &FsDisk) -> Self {
        let text = std::fs::read_to_string(Self::path(disk)).unwrap_or_default();
        let mut lines = text.lines();
        let passes = lines.next().and_then(|l| l.parse().ok()).unwrap_or(0);
        let cursor = lines.next().unwrap_or_default().to_owned();
        let pending = lines
            .filter_map(|l| {
                let mut it = l.split(' ');
                let key = ShardKey::parse_file_name(it.next()?)?;
                let since = it.next()?.parse().ok()?;
                let seen = it.next()?.parse().ok()?;
                Some((key, (since, seen)))
            })
            .collect();
        GcState { passes, cursor, pending }
    }

    /// Saves atomically (temp file, rename).
    fn save(&self, disk: &FsDisk) -> std::io::Result<()> {
        let mut text = format!("{}\n{}\n", self.passes, self.cursor);
        for (key, (since, seen)) in &self.pending {
            text.push_str(&format!("{key} {since} {seen}\n"));
        }
        let path = Self::path(disk);
        let tmp = path.with_extension("state.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(tmp, path)
    }
}

/// Collects one disk's garbage.
pub struct GcWorker<C: ReferenceCheck> {
    disk: FsDisk,
    check: C,
    /// How long a file stays unreferenced (and untouched) before removal.
    grace: Duration,
    state: GcState,
    /// Files and bytes removed since start.
    pub deleted: u64,
    deleted_bytes: u64,
    metrics: DatanodeMetrics,
    /// The operator's pause, and pace in shard files examined per second.
    pause: Rate,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl<C: ReferenceCheck> GcWorker<C> {
    /// A collector for `disk` that removes files unreferenced for `grace`,
    /// resuming from its saved state.
    pub fn new(disk: FsDisk, check: C, grace: Duration) -> Self {
        let state = GcState::load(&disk);
        GcWorker {
            disk,
            check,
            grace,
            state,
            deleted: 0,
            deleted_bytes: 0,
            metrics: DatanodeMetrics::default(),
            pause: Rate::new(u64::MAX),
        }
    }

    /// Takes no step while the operator has `pause` paused, and examines
    /// at most its rate of shard files a second.
    pub fn with_pause(mut self, pause: Rate) -> Self {
        self.pause = pause;
        self
    }

    /// Counts into `metrics` (`tessera_datanode_gc_*`).
    pub fn with_metrics(mut self, metrics: DatanodeMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The state as saved after the last step.
    pub fn state(&self) -> &GcState {
        &self.state
    }
}

impl<C: ReferenceCheck> Worker for GcWorker<C> {
    fn name(&self) -> String {
        format!("gc:{}", self.disk.id())
    }

    async fn step(&mut self) -> Result<StepResult, String> {
        if self.pause.paused() {
            return Ok(StepResult::Idle);
        }
        let started = std::time::Instant::now();
        // Paced, a step takes a second's worth at most: its pause stays
        // short, so a pause or a shutdown is not held behind it.
        let per_step = SHARDS_PER_STEP.min(usize::try_from(self.pause.get()).unwrap_or(usize::MAX)).max(1);
        let disk = self.disk.clone();
        let cursor = self.state.cursor.clone();
        let page =
            tokio::task::spawn_blocking(move || disk.list((!cursor.is_empty()).then_some(cursor.as_str()), per_step))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
        let mut ids: Vec<DataId> = page.keys.iter().map(|k| k.data_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let referenced: HashMap<DataId, bool> = if ids.is_empty() {
            HashMap::new()
        } else {
            let answer = self.check.referenced(self.disk.id().get(), ids.clone()).await?;
            ids.into_iter().zip(answer).collect()
        };
        let now = now_ms();
        let pass = self.state.passes;
        let grace_ms = self.grace.as_millis() as u64;
        let mut due = Vec::new();
        for key in &page.keys {
            if referenced.get(&key.data_id).copied().unwrap_or(true) {
                self.state.pending.remove(key);
                continue;
            }
            let entry = self.state.pending.entry(*key).or_insert((now, pass));
            entry.1 = pass;
            if now.saturating_sub(entry.0) >= grace_ms {
                due.push(*key);
            }
        }
        if !due.is_empty() {
            let disk = self.disk.clone();
            let grace = self.grace;
            let removed = tokio::task::spawn_blocking(move || remove_untouched(&disk, &due, grace))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            let labels = disk_labels(self.disk.id());
            for (key, bytes) in removed {
                self.state.pending.remove(&key);
                self.deleted += 1;
                self.deleted_bytes += bytes;
                self.metrics.gc_deleted_shards.get_or_create(&labels).inc();
                self.metrics.gc_deleted_bytes.get_or_create(&labels).inc_by(bytes);
                tracing::debug!(disk = %self.disk.id(), shard = %key, bytes, "removed an unreferenced shard");
            }
        }
        let finished_pass = page.next.is_none();
        if finished_pass {
            // Entries this pass did not see belong to files that are gone.
            self.state.pending.retain(|_, (_, seen)| *seen == pass);
            self.state.passes += 1;
            self.state.cursor.clear();
            self.metrics.gc_passes.get_or_create(&disk_labels(self.disk.id())).inc();
        } else if let Some(next) = page.next {
            self.state.cursor = next;
        }
        self.metrics.gc_pending_shards.get_or_create(&disk_labels(self.disk.id())).set(self.state.pending.len() as i64);
        self.state.save(&self.disk).map_err(|e| format!("save gc state: {e}"))?;
        let budget = Duration::from_secs_f64(page.keys.len() as f64 / self.pause.get() as f64);
        if let Some(rest) = budget.checked_sub(started.elapsed()) {
            tokio::time::sleep(rest).await;
        }
        Ok(if finished_pass { StepResult::Idle } else { StepResult::Busy })
    }

    fn progress(&self) -> Option<String> {
        if self.pause.paused() {
            return Some("paused by the operator".to_owned());
        }
        let pace = match self.pause.get() {
            u64::MAX => String::new(),
            r => format!(", at most {r} files/s"),
        };
        Some(format!(
            "pass {}, {} files pending, {} removed ({} MB){pace}",
            self.state.passes + 1,
            self.state.pending.len(),
            self.deleted,
            self.deleted_bytes / 1_000_000
        ))
    }
}

/// Removes the files of `keys` that nothing has written for `grace`;
/// returns those removed with their sizes. A file written since (the same
/// name stored again) is kept for a later pass to judge.
fn remove_untouched(disk: &FsDisk, keys: &[ShardKey], grace: Duration) -> Result<Vec<(ShardKey, u64)>, ShardError> {
    let mut out = Vec::new();
    for key in keys {
        let stat = match disk.stat(key) {
            Ok(s) => s,
            Err(ShardError::Missing(_)) => continue,
            Err(e) => return Err(e),
        };
        let age = SystemTime::now().duration_since(stat.modified).unwrap_or(Duration::ZERO);
        if age < grace {
            continue;
        }
        if disk.delete(key)? {
            out.push((*key, stat.len));
        }
    }
    Ok(out)
}
