//! The lifecycle worker: the metadata leader carries out buckets' lifecycle
//! rules with ordinary Raft commands, so every rule S3 clients set (and
//! Tessera's seconds-based extension) is enforced by the same checks as a
//! client's request — a locked version survives, a key overwritten since it
//! was judged is left alone.
//!
//! ```text
//!  every `interval` (a pass starts at the previous pass's start + interval:
//!  the next run time is known in advance and shown in the status):
//!    for each bucket with enabled rules, one page (1,000 versions) a step:
//!      current version due        ──► DeleteObject If-Match its ETag (a marker when versioned)
//!      lone delete marker         ──► DeleteObject of the marker by id
//!      noncurrent version due     ──► DeleteObject by id (the newest N kept)
//!    then its uploads:
//!      upload due                 ──► AbortUpload
//! ```
//!
//! Ages follow S3: a rule in days is due at the midnight (UTC) after
//! `time + days`; seconds (the extension) are exact. A noncurrent version's
//! age counts from when the next newer version was written. The worker
//! reads the leader's own state (no read index: every command it proposes
//! is conditional or names a version, so a stale read changes nothing) and
//! proposes a page's commands as one batched entry.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openraft::Raft;
use prost::Message;
use tessera_common::worker::{StepResult, Worker};
use tessera_rpc::proto::meta::command::Op;
use tessera_rpc::proto::meta::command_result::Outcome;
use tessera_rpc::proto::meta::condition::Kind;
use tessera_rpc::proto::meta::{
    AbortUpload, Command, CommandBatch, CommandResult, Condition, DeleteObject, LifecycleRule, ObjectRecord, failure,
};

use crate::MetaState;
use crate::metrics::MetaMetrics;
use crate::raft::{RaftRequest, TypeConfig};
use tessera_common::metrics::label;

const DAY_MS: u64 = 86_400_000;
/// Versions (or uploads) looked at per step.
const PAGE: usize = 1000;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// S3's rounding: `from + days`, then up to the next midnight UTC.
fn after_days(from: u64, days: u32) -> u64 {
    (from + u64::from(days) * DAY_MS).div_ceil(DAY_MS) * DAY_MS
}

/// Whether `rule` applies to a version of `key` (`rec`: a summary with
/// size and tags). Delete markers have no size or tags: only the prefix
/// counts for them.
pub fn applies(rule: &LifecycleRule, key: &str, rec: &ObjectRecord) -> bool {
    if !rule.enabled || !key.starts_with(&rule.prefix) {
        return false;
    }
    if rec.delete_marker {
        return rule.tags.is_empty() && rule.size_greater_than == 0 && rule.size_less_than == 0;
    }
    (rule.size_greater_than == 0 || rec.size > rule.size_greater_than)
        && (rule.size_less_than == 0 || rec.size < rule.size_less_than)
        && rule.tags.iter().all(|t| rec.tags.iter().any(|h| h.name == t.name && h.value == t.value))
}

/// When a current version written at `written` is due under `rule`.
pub fn current_due(rule: &LifecycleRule, written: u64) -> Option<u64> {
    let mut due: Option<u64> = None;
    let mut take = |t: u64| due = Some(due.map_or(t, |d| d.min(t)));
    if rule.expiration_days > 0 {
        take(after_days(written, rule.expiration_days));
    }
    if rule.expiration_date_ms > 0 {
        take(rule.expiration_date_ms);
    }
    if rule.expiration_seconds > 0 {
        take(written + rule.expiration_seconds * 1000);
    }
    due
}

/// When a version that became noncurrent at `since` is due under `rule`.
pub fn noncurrent_due(rule: &LifecycleRule, since: u64) -> Option<u64> {
    match (rule.noncurrent_days, rule.noncurrent_seconds) {
        (0, 0) => None,
        (d, 0) => Some(after_days(since, d)),
        (0, s) => Some(since + s * 1000),
        (d, s) => Some(after_days(since, d).min(since + s * 1000)),
    }
}

/// When an upload initiated at `initiated` is due under `rule`.
pub fn upload_due(rule: &LifecycleRule, initiated: u64) -> Option<u64> {
    match (rule.abort_incomplete_days, rule.abort_incomplete_seconds) {
        (0, 0) => None,
        (d, 0) => Some(after_days(initiated, d)),
        (0, s) => Some(initiated + s * 1000),
        (d, s) => Some(after_days(initiated, d).min(initiated + s * 1000)),
    }
}

/// Whether a rule is Tessera's extension (ages in seconds, set through the
/// admin API) rather than one of S3's.
pub fn is_extension(r: &LifecycleRule) -> bool {
    r.expiration_seconds > 0 || r.noncurrent_seconds > 0 || r.abort_incomplete_seconds > 0
}

/// Whether a delete marker left alone may go: `ExpiredObjectDeleteMarker`,
/// or an expiration in seconds (a TTL leaves no markers behind).
fn clears_markers(rule: &LifecycleRule) -> bool {
    rule.expired_object_delete_marker || rule.expiration_seconds > 0
}

#[derive(Debug)]
enum Phase {
    Versions { key_marker: Option<String>, version_marker: Option<String> },
    Uploads { key_marker: Option<String>, upload_marker: Option<String> },
}

/// Commands a step proposes, each with what it does (for the counts).
type Actions = Vec<(Command, &'static str)>;

/// Where a pass is.
#[derive(Debug)]
struct Pass {
    buckets: Vec<String>,
    at: usize,
    phase: Phase,
    /// The newer version seen last in this bucket: (key, written at, how
    /// many noncurrent versions of the key came before).
    newer: Option<(String, u64, u32)>,
    /// A current delete marker whose key may have no other version.
    lone_marker: Option<(String, String)>,
}

/// What the worker has done (its progress line and the tests' view).
#[derive(Clone, Debug, Default)]
pub struct LifecycleCounts {
    /// Passes over every bucket with rules.
    pub passes: u64,
    /// Versions (and markers) looked at.
    pub examined: u64,
    /// Current versions expired.
    pub expired: u64,
    /// Noncurrent versions deleted.
    pub noncurrent_removed: u64,
    /// Delete markers left alone and removed.
    pub markers_removed: u64,
    /// Incomplete uploads aborted.
    pub uploads_aborted: u64,
    /// Refused by the state machine: locked versions, keys changed since.
    pub refused: u64,
}

/// The metadata leader's lifecycle worker (`lifecycle`).
pub struct LifecycleWorker {
    raft: Raft<TypeConfig>,
    state: MetaState,
    node_id: u64,
    interval: Duration,
    pass: Option<Pass>,
    next_pass_ms: u64,
    counts: LifecycleCounts,
    metrics: MetaMetrics,
    /// The operator paused it (`SetWorkerRates.lifecycle_paused`).
    paused: bool,
    /// The operator's pace, versions examined per second (0: none).
    versions_per_sec: u64,
}

impl LifecycleWorker {
    /// A worker of node `node_id` that starts a pass every `interval`.
    pub fn new(raft: Raft<TypeConfig>, state: MetaState, node_id: u64, interval: Duration) -> Self {
        LifecycleWorker {
            raft,
            state,
            node_id,
            interval,
            pass: None,
            next_pass_ms: 0,
            counts: Default::default(),
            metrics: MetaMetrics::default(),
            paused: false,
            versions_per_sec: 0,
        }
    }

    /// Counts its actions in `metrics` (`tessera_metadata_lifecycle_actions`).
    pub fn with_metrics(mut self, metrics: MetaMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    async fn propose(&mut self, mut cmds: Actions) -> Result<(), String> {
        if cmds.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        for (c, _) in &mut cmds {
            c.now_ms = now;
        }
        let batch = Command {
            now_ms: now,
            op: Some(Op::Batch(CommandBatch { commands: cmds.iter().map(|(c, _)| c.clone()).collect() })),
        };
        let r = self.raft.client_write(RaftRequest(batch.encode_to_vec())).await.map_err(|e| e.to_string())?;
        let answer = CommandResult::decode(r.data.0.as_slice()).map_err(|e| e.to_string())?;
        let results: Vec<CommandResult> = match answer.outcome {
            Some(Outcome::Batch(b)) => b.results,
            other => return Err(format!("a lifecycle batch answered {other:?}")),
        };
        for ((_, what), res) in cmds.iter().zip(results) {
            let action = if matches!(res.outcome, Some(Outcome::Failure(_))) { "refused" } else { what };
            self.metrics.lifecycle_actions.get_or_create(&label("action", action)).inc();
            match res.outcome {
                Some(Outcome::Failure(f)) => {
                    self.counts.refused += 1;
                    if f.code() != failure::Code::PreconditionFailed && f.code() != failure::Code::ObjectLocked {
                        tracing::warn!(what, error = %f.message, "lifecycle action refused");
                    }
                }
                _ => match *what {
                    "expire" => self.counts.expired += 1,
                    "noncurrent" => self.counts.noncurrent_removed += 1,
                    "marker" => self.counts.markers_removed += 1,
                    _ => self.counts.uploads_aborted += 1,
                },
            }
        }
        Ok(())
    }

    /// One page of a bucket's versions: the commands it calls for, and
    /// whether the bucket's versions are done.
    /// Entries a step lists: a page, or a second's worth when paced.
    fn page_len(&self) -> usize {
        match self.versions_per_sec {
            0 => PAGE,
            r => (r as usize).clamp(1, PAGE),
        }
    }

    fn versions_step(&mut self, bucket: &str, rules: &[LifecycleRule], now: u64) -> Result<(Actions, bool), String> {
        let page_len = self.page_len();
        let pass = self.pass.as_mut().ok_or("no pass")?;
        let Phase::Versions { key_marker, version_marker } = &mut pass.phase else {
            return Err("not listing versions".into());
        };
        let page = self
            .state
            .list_versions(bucket, "", None, key_marker.as_deref(), version_marker.as_deref(), page_len)
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        let del = |key: &str, version: Option<String>, etag: Option<String>| Command {
            now_ms: 0,
            op: Some(Op::DeleteObject(DeleteObject {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                condition: etag.map(|e| Condition { kind: Some(Kind::IfMatch(e)) }),
                version_id: version,
                bypass_governance: false,
            })),
        };
        let shown = |r: &ObjectRecord| if r.version_id.is_empty() { "null".to_owned() } else { r.version_id.clone() };
        for (key, rec, latest) in &page.versions {
            self.counts.examined += 1;
            // A marker is alone when the next entry is another key.
            if let Some((k, id)) = pass.lone_marker.take()
                && (&k != key || *latest)
            {
                out.push((del(&k, Some(id), None), "marker"));
            }
            let matching: Vec<&LifecycleRule> = rules.iter().filter(|r| applies(r, key, rec)).collect();
            if *latest {
                pass.newer = Some((key.clone(), rec.last_modified_ms, 0));
                if rec.delete_marker {
                    if matching.iter().any(|r| clears_markers(r)) {
                        pass.lone_marker = Some((key.clone(), shown(rec)));
                    }
                } else if matching.iter().filter_map(|r| current_due(r, rec.last_modified_ms)).any(|d| d <= now) {
                    out.push((del(key, None, Some(rec.etag.clone())), "expire"));
                }
                continue;
            }
            let (since, rank) = match &mut pass.newer {
                Some((k, written, rank)) if k == key => {
                    let r = (*written, *rank);
                    *written = rec.last_modified_ms;
                    *rank += 1;
                    r
                }
                _ => continue, // the page began inside a key whose newer versions were on an earlier page
            };
            let due = matching
                .iter()
                .filter(|r| rank >= r.newer_noncurrent_versions)
                .filter_map(|r| noncurrent_due(r, since))
                .any(|d| d <= now);
            if due {
                out.push((del(key, Some(shown(rec)), None), "noncurrent"));
            }
        }
        let done = !page.is_truncated;
        if done {
            if let Some((k, id)) = pass.lone_marker.take() {
                out.push((del(&k, Some(id), None), "marker"));
            }
        } else {
            *key_marker = page.next_key_marker;
            *version_marker = page.next_version_id_marker;
        }
        Ok((out, done))
    }

    fn uploads_step(&mut self, bucket: &str, rules: &[LifecycleRule], now: u64) -> Result<(Actions, bool), String> {
        let page_len = self.page_len();
        let pass = self.pass.as_mut().ok_or("no pass")?;
        let Phase::Uploads { key_marker, upload_marker } = &mut pass.phase else {
            return Err("not listing uploads".into());
        };
        let page = self
            .state
            .list_uploads(bucket, "", None, key_marker.as_deref(), upload_marker.as_deref(), page_len)
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for up in &page.uploads {
            let due = rules
                .iter()
                .filter(|r| r.enabled && up.key.starts_with(&r.prefix) && r.tags.is_empty())
                .filter_map(|r| upload_due(r, up.initiated_ms))
                .any(|d| d <= now);
            if due {
                let abort =
                    AbortUpload { bucket: bucket.to_owned(), key: up.key.clone(), upload_id: up.upload_id.clone() };
                out.push((Command { now_ms: 0, op: Some(Op::AbortUpload(abort)) }, "abort"));
            }
        }
        let done = !page.is_truncated;
        if let Some((k, id)) = page.next {
            *key_marker = Some(k);
            *upload_marker = Some(id);
        }
        Ok((out, done))
    }
}

impl Worker for LifecycleWorker {
    fn name(&self) -> String {
        "lifecycle".into()
    }

    async fn step(&mut self) -> Result<StepResult, String> {
        if self.raft.metrics().borrow().current_leader != Some(self.node_id) {
            self.pass = None;
            return Ok(StepResult::Idle);
        }
        // Paused, a pass keeps its place and goes on when started again.
        let rates = self.state.worker_rates().map_err(|e| e.to_string())?;
        (self.paused, self.versions_per_sec) = (rates.lifecycle_paused, rates.lifecycle_versions_per_sec);
        if self.paused {
            return Ok(StepResult::Idle);
        }
        let now = now_ms();
        if self.pass.is_none() {
            if now < self.next_pass_ms {
                return Ok(StepResult::Idle);
            }
            // The next pass is due one interval after this one starts.
            self.next_pass_ms = now + self.interval.as_millis() as u64;
            let buckets = self.state.buckets().map_err(|e| e.to_string())?;
            let buckets: Vec<String> =
                buckets.into_iter().filter(|b| b.lifecycle.iter().any(|r| r.enabled)).map(|b| b.name).collect();
            self.pass = Some(Pass {
                buckets,
                at: 0,
                phase: Phase::Versions { key_marker: None, version_marker: None },
                newer: None,
                lone_marker: None,
            });
        }
        let (bucket, versions) = {
            let pass = self.pass.as_ref().ok_or("no pass")?;
            match pass.buckets.get(pass.at) {
                None => {
                    self.pass = None;
                    self.counts.passes += 1;
                    return Ok(StepResult::Idle);
                }
                Some(b) => (b.clone(), matches!(pass.phase, Phase::Versions { .. })),
            }
        };
        let rules = match self.state.bucket(&bucket).map_err(|e| e.to_string())? {
            Some(b) => b.lifecycle,
            None => Vec::new(), // deleted meanwhile
        };
        let (started, examined) = (std::time::Instant::now(), self.counts.examined);
        let (cmds, done) = if rules.is_empty() {
            (Vec::new(), true)
        } else if versions {
            self.versions_step(&bucket, &rules, now)?
        } else {
            self.uploads_step(&bucket, &rules, now)?
        };
        self.propose(cmds).await?;
        if self.versions_per_sec > 0 {
            let n = self.counts.examined - examined;
            let budget = Duration::from_secs_f64(n as f64 / self.versions_per_sec as f64);
            if let Some(rest) = budget.checked_sub(started.elapsed()) {
                tokio::time::sleep(rest).await;
            }
        }
        if done {
            let pass = self.pass.as_mut().ok_or("no pass")?;
            if versions && !rules.is_empty() {
                pass.phase = Phase::Uploads { key_marker: None, upload_marker: None };
            } else {
                pass.at += 1;
                pass.phase = Phase::Versions { key_marker: None, version_marker: None };
                pass.newer = None;
            }
        }
        Ok(StepResult::Busy)
    }

    fn progress(&self) -> Option<String> {
        if self.paused {
            return Some("paused by the operator".to_owned());
        }
        let c = &self.counts;
        let next = if self.pass.is_some() { "now".to_owned() } else { format!("at {} ms", self.next_pass_ms) };
        let pace = match self.versions_per_sec {
            0 => String::new(),
            r => format!("; at most {r} versions/s"),
        };
        Some(format!(
            "{} passes, next {next}; {} versions examined, {} expired, {} noncurrent removed, {} markers removed, \
             {} uploads aborted, {} refused (locked or changed){pace}",
            c.passes, c.examined, c.expired, c.noncurrent_removed, c.markers_removed, c.uploads_aborted, c.refused
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_rpc::proto::meta::Header;

    #[test]
    fn ages_in_days_end_at_the_next_midnight_and_seconds_are_exact() {
        // 2014-01-15 10:30 UTC + 3 days → 2014-01-19 00:00 UTC (S3's example).
        let written = 1_389_781_800_000;
        let rule = LifecycleRule { enabled: true, expiration_days: 3, ..Default::default() };
        assert_eq!(current_due(&rule, written), Some(1_390_089_600_000));
        assert_eq!(after_days(2 * DAY_MS, 1), 3 * DAY_MS, "midnight stays midnight");
        let ttl = LifecycleRule { enabled: true, expiration_seconds: 30, noncurrent_seconds: 5, ..Default::default() };
        assert_eq!(current_due(&ttl, written), Some(written + 30_000));
        assert_eq!(noncurrent_due(&ttl, written), Some(written + 5_000));
        let both = LifecycleRule { expiration_date_ms: written + 1, ..rule.clone() };
        assert_eq!(current_due(&both, written), Some(written + 1), "the earliest action counts");
        assert_eq!(upload_due(&rule, written), None);
    }

    #[test]
    fn filters_match_prefix_size_and_every_tag() {
        let tag = |k: &str, v: &str| Header { name: k.into(), value: v.into() };
        let rule = LifecycleRule {
            enabled: true,
            prefix: "live/".into(),
            tags: vec![tag("class", "scratch")],
            size_greater_than: 10,
            size_less_than: 100,
            ..Default::default()
        };
        let rec = |size: u64, tags: Vec<Header>| ObjectRecord { size, tags, ..Default::default() };
        let scratch = || vec![tag("class", "scratch"), tag("team", "video")];
        assert!(applies(&rule, "live/a", &rec(50, scratch())));
        assert!(!applies(&rule, "vod/a", &rec(50, scratch())));
        assert!(!applies(&rule, "live/a", &rec(10, scratch())), "greater than is strict");
        assert!(!applies(&rule, "live/a", &rec(100, scratch())), "less than is strict");
        assert!(!applies(&rule, "live/a", &rec(50, vec![tag("class", "keep")])));
        assert!(!applies(&LifecycleRule { enabled: false, ..rule.clone() }, "live/a", &rec(50, scratch())));
        let marker = ObjectRecord { delete_marker: true, ..Default::default() };
        assert!(!applies(&rule, "live/a", &marker), "a tag or size filter never matches a marker");
        let prefix_only = LifecycleRule { enabled: true, prefix: "live/".into(), ..Default::default() };
        assert!(applies(&prefix_only, "live/a", &marker));
    }
}
