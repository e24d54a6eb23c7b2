//! The heal worker: a named worker per disk that rebuilds the shards the
//! disk should hold but does not — a wiped or replaced disk, files lost to a
//! crash or an operator, shards reported damaged by the scrubber or a read,
//! positions a write gave up on — from the other shards of their stripes.
//!
//! ```text
//!  step: the next 100 entries of this disk's index after the cursor (ListDiskShards)
//!        each position whose shard file is here ─► nothing to do, unless reported
//!            damaged or counted missing by its record: verified; whole ─► kept
//!        missing or damaged ─► the record that owns it (object, or upload part) still places it here?
//!            ─► read the whole piece through the pipeline (k shards from peers,
//!               verified, decoded around missing or corrupt ones)
//!            ─► re-encode each stripe, keep this position's block, write the
//!               shard file (temp, fsync, rename) ─► counted
//!            ─► RestoreShards (the record counted it missing), ClearDamage (it was reported)
//!        cursor (last data id) ─► <disk>/heal.state; end of the index: pass done, Idle
//!  pacing: after each step, sleep so that rebuilt bytes / time ≤ rate
//! ```
//!
//! A piece that cannot be read now (fewer than k good shards) is skipped,
//! counted, and its reason kept in the status; the next pass tries again.
//! A full disk (free space below its reserve, or a write that ran out of
//! space) stops the step before anything is rebuilt: the worker backs off
//! with the reason as its last error and resumes from the same cursor once
//! the collector or an operator has freed space.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tessera_common::DataId;
use tessera_common::worker::{StepResult, Worker};
use tessera_ec::{PieceId, StripeCoder, StripeLayout};
use tessera_pipeline::Codecs;
use tessera_pipeline::cluster::Cluster;
use tessera_pipeline::read::read_sharded;
use tessera_rpc::proto::data::ShardFrame;
use tessera_rpc::proto::meta::command::Op;
use tessera_rpc::proto::meta::{ClearDamage, Command, DiskShard, ListPartsRequest, RestoreShards, ShardSet, body};
use tokio::sync::mpsc;

use crate::metrics::{DatanodeMetrics, disk_labels};
use crate::pass::{HEAL_STATE, PassProgress};
use crate::rate::Rate;
use crate::scrub::verify_shard;
use crate::{FsDisk, ShardError, ShardHeader, ShardKey};

/// Index entries looked at per step.
const ENTRIES_PER_STEP: u32 = 100;

/// Rebuilds one disk's missing shards.
pub struct HealWorker {
    disk: FsDisk,
    cluster: Cluster,
    codecs: Codecs,
    /// How long a slow shard read waits before parity is read instead.
    hedge: Duration,
    /// Bytes per second at most (live-changeable).
    rate: Rate,
    progress: PassProgress,
    /// Shards rebuilt since start.
    pub rebuilt: u64,
    rebuilt_bytes: u64,
    /// Positions the records counted missing that are whole again.
    restored: u64,
    /// Shards that could not be rebuilt (yet), and the last reason.
    failed: u64,
    last_failure: Option<String>,
    metrics: DatanodeMetrics,
}

impl HealWorker {
    /// A heal worker for `disk` reading peers through `cluster`, rebuilding
    /// at most `rate_bytes_per_sec`, resuming from the saved progress.
    pub fn new(disk: FsDisk, cluster: Cluster, rate_bytes_per_sec: u64) -> Self {
        let progress = PassProgress::load(&disk, HEAL_STATE);
        HealWorker {
            disk,
            cluster,
            codecs: Codecs::default(),
            hedge: Duration::from_secs(2),
            rate: Rate::new(rate_bytes_per_sec),
            progress,
            rebuilt: 0,
            rebuilt_bytes: 0,
            restored: 0,
            failed: 0,
            last_failure: None,
            metrics: DatanodeMetrics::default(),
        }
    }

    /// Counts into `metrics` (`tessera_datanode_heal_*`).
    pub fn with_metrics(mut self, metrics: DatanodeMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Paces by `rate`, shared with whoever changes it (the heartbeat).
    pub fn with_rate(mut self, rate: Rate) -> Self {
        self.rate = rate;
        self
    }

    /// Rebuilds shard `position` of the piece `set` on this disk: the
    /// frames [`rebuild_frames`] makes, written to a new shard file.
    /// Returns the bytes written.
    async fn rebuild(&self, set: &ShardSet, part: u32, piece_len: u64, position: u32) -> Result<u64, String> {
        let header = shard_header(set, part, piece_len, position)?;
        let disk = self.disk.clone();
        let mut writer = tokio::task::spawn_blocking(move || disk.create(header))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let (tx, mut rx) = mpsc::channel::<ShardFrame>(4);
        let write = async move {
            while let Some(f) = rx.recv().await {
                writer = tokio::task::spawn_blocking(move || {
                    let hash: [u8; 32] =
                        f.hash.as_ref().try_into().map_err(|_| "a frame hash is 32 bytes".to_owned())?;
                    writer.write_frame(&hash, &f.block).map_err(|e| e.to_string())?;
                    Ok::<_, String>(writer)
                })
                .await
                .map_err(|e| e.to_string())??;
            }
            Ok::<_, String>(writer)
        };
        let (made, written) = tokio::join!(
            rebuild_frames(&self.cluster, &self.codecs, self.hedge, set, part, piece_len, position, tx),
            write
        );
        let bytes = made?;
        let w = written?;
        tokio::task::spawn_blocking(move || w.finish()).await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
        Ok(bytes)
    }
}

/// The shard set and piece length of the body `data_id` as its owner's
/// record has it now; `None` when the record no longer references it.
pub(crate) async fn locate(
    meta: &tessera_rpc::MetaClient,
    data_id: &[u8],
    entry: &DiskShard,
) -> Result<Option<(ShardSet, u64)>, String> {
    let matching = |b: &Option<tessera_rpc::proto::meta::Body>| match b.as_ref().and_then(|b| b.kind.as_ref()) {
        Some(body::Kind::Shards(s)) if s.data_id == data_id => Some(s.clone()),
        _ => None,
    };
    if entry.upload_id.is_empty() {
        // The version that owns the body (empty: the null version), current or not.
        let version = if entry.version_id.is_empty() { "null" } else { entry.version_id.as_str() };
        let r = meta.get_object_version(&entry.bucket, &entry.key, version).await.map_err(|e| e.to_string())?;
        let Some(rec) = r.object else { return Ok(None) };
        if let Some(s) = matching(&rec.body) {
            let len = s.piece_len(rec.size);
            return Ok(Some((s, len)));
        }
        Ok(rec.parts.iter().find_map(|p| matching(&p.body).map(|s| (s.clone(), s.piece_len(p.size)))))
    } else {
        let req = ListPartsRequest {
            bucket: entry.bucket.clone(),
            key: entry.key.clone(),
            upload_id: entry.upload_id.clone(),
            after_part: entry.part.saturating_sub(1),
            max_parts: 1,
        };
        let r = meta.list_parts(req).await.map_err(|e| e.to_string())?;
        Ok(r.parts
            .iter()
            .filter(|p| p.number == entry.part)
            .find_map(|p| matching(&p.body).map(|s| (s.clone(), s.piece_len(p.size)))))
    }
}

/// The header of shard `position` of the piece `set` (of `piece_len` bytes).
pub(crate) fn shard_header(set: &ShardSet, part: u32, piece_len: u64, position: u32) -> Result<ShardHeader, String> {
    let ec = set.ec.ok_or("the shard set has no EC profile")?;
    let id: [u8; 16] = set.data_id.as_slice().try_into().map_err(|_| "a data id is 16 bytes")?;
    Ok(ShardHeader {
        key: ShardKey { data_id: DataId::from_bytes(id), part, shard: position as u16 },
        codec: u16::try_from(ec.codec).map_err(|_| "codec id out of range")?,
        k: u8::try_from(ec.k).map_err(|_| "k out of range")?,
        m: u8::try_from(ec.m).map_err(|_| "m out of range")?,
        block_len: ec.block_len,
        piece_len,
    })
}

/// Re-creates shard `position` of the piece `set` without reading it: the
/// piece is read through the pipeline from the other positions (k good
/// shards, verified; a source returning bad bytes is caught by its hashes
/// and another used), each stripe re-encoded, and this position's frame
/// sent to `out`, in stripe order. Returns the block bytes made. Memory is
/// a few stripes whatever the piece's size.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn rebuild_frames(
    cluster: &Cluster,
    codecs: &Codecs,
    hedge: Duration,
    set: &ShardSet,
    part: u32,
    piece_len: u64,
    position: u32,
    out: mpsc::Sender<ShardFrame>,
) -> Result<u64, String> {
    let ec = set.ec.ok_or("the shard set has no EC profile")?;
    let (k, m) = (ec.k as usize, ec.m as usize);
    let layout = StripeLayout::from_block_len(k, m, ec.block_len as usize).map_err(|e| e.to_string())?;
    let coder =
        StripeCoder::new(codecs.get(ec.codec, k, m).map_err(|e| e.to_string())?, layout).map_err(|e| e.to_string())?;
    let id: [u8; 16] = set.data_id.as_slice().try_into().map_err(|_| "a data id is 16 bytes")?;
    // Never read this position: it is the one being made.
    let mut source = set.clone();
    if !source.missing.contains(&position) {
        source.missing.push(position);
    }
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let read = async {
        let r = read_sharded(cluster, codecs, &source, part, piece_len, 0..piece_len, hedge, &tx).await;
        drop(tx);
        r
    };
    let encode = async {
        let piece = PieceId { data_id: id, part };
        let stripes = layout.stripe_count(piece_len);
        let mut buf = BytesMut::new();
        let mut written = 0u64;
        for stripe in 0..stripes {
            let want = layout.stripe_len(piece_len, stripe);
            while buf.len() < want {
                match rx.recv().await {
                    Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                    Some(Err(e)) => return Err(e.to_string()),
                    None => return Err(format!("the piece ended at stripe {stripe} of {stripes}")),
                }
            }
            let data = buf.split_to(want).freeze();
            let enc = coder.encode_stripe(piece, stripe, data).map_err(|e| e.to_string())?;
            let block = enc.blocks.into_iter().nth(position as usize).ok_or("no such shard position")?;
            written += block.data.len() as u64;
            let frame = ShardFrame { hash: Bytes::copy_from_slice(&block.hash), block: block.data };
            out.send(frame).await.map_err(|_| "the shard writer stopped".to_owned())?;
        }
        Ok::<u64, String>(written)
    };
    let (read, written) = tokio::join!(read, encode);
    read.map_err(|e| e.to_string())?;
    written
}

impl HealWorker {
    /// Tells the record that owns the body that `position` is whole again.
    async fn restore(&self, data_id: &[u8], entry: &DiskShard, position: u32) -> Result<(), String> {
        let restore = RestoreShards {
            bucket: entry.bucket.clone(),
            key: entry.key.clone(),
            upload_id: entry.upload_id.clone(),
            version_id: entry.version_id.clone(),
            data_id: data_id.to_vec(),
            positions: vec![position],
        };
        let cmd = Command { now_ms: 0, op: Some(Op::RestoreShards(restore)) };
        self.cluster.meta().write(cmd).await.map(|_| ()).map_err(|e| format!("restore position {position}: {e}"))
    }

    /// After a position was rebuilt or found whole: the record may count it
    /// again (`RestoreShards`) and its damage report is dealt with.
    async fn settle(
        &mut self,
        data_id: &[u8],
        entry: &DiskShard,
        position: u32,
        recorded_missing: bool,
        reported: bool,
    ) -> Result<(), String> {
        if recorded_missing {
            self.restore(data_id, entry, position).await?;
            self.restored += 1;
        }
        if reported {
            self.clear_damage(data_id, entry.part, position).await?;
        }
        Ok(())
    }

    async fn clear_damage(&self, data_id: &[u8], part: u32, shard: u32) -> Result<(), String> {
        let clear = ClearDamage { disk: self.disk.id().get(), data_id: data_id.to_vec(), part, shard };
        let cmd = Command { now_ms: 0, op: Some(Op::ClearDamage(clear)) };
        self.cluster.meta().write(cmd).await.map(|_| ()).map_err(|e| format!("clear a damage report: {e}"))
    }

    /// The shards of this disk reported damaged. Reports about bodies no
    /// record places here any more are cleared (the collector removes
    /// their files).
    async fn damage_reports(&self) -> Result<HashSet<ShardKey>, String> {
        let disk = self.disk.id().get();
        let meta = self.cluster.meta();
        let reports = meta.list_disk_damage(disk, 10_000).await.map_err(|e| e.to_string())?.reports;
        if reports.is_empty() {
            return Ok(HashSet::new());
        }
        let ids: Vec<Vec<u8>> = reports.iter().map(|r| r.data_id.clone()).collect();
        let referenced = meta.check_shards(disk, ids).await.map_err(|e| e.to_string())?;
        let mut out = HashSet::new();
        for (r, live) in reports.iter().zip(referenced) {
            let Ok(id) = <[u8; 16]>::try_from(r.data_id.as_slice()) else { continue };
            if live {
                out.insert(ShardKey { data_id: DataId::from_bytes(id), part: r.part, shard: r.shard as u16 });
            } else {
                self.clear_damage(&r.data_id, r.part, r.shard).await?;
            }
        }
        Ok(out)
    }

    fn count_rebuilt(&mut self, key: &ShardKey, bytes: u64) {
        let labels = disk_labels(self.disk.id());
        self.rebuilt += 1;
        self.rebuilt_bytes += bytes;
        self.metrics.heal_shards.get_or_create(&labels).inc();
        self.metrics.heal_bytes.get_or_create(&labels).inc_by(bytes);
        tracing::info!(disk = self.disk.id().get(), shard = %key, bytes, "rebuilt a missing shard");
    }
}

/// Why a full disk's heal waits (its status's last error).
fn full(disk: &FsDisk) -> String {
    format!("disk {} is full: rebuilding waits until space is freed", disk.id())
}

pub(crate) fn hex_of(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()).collect()
}

impl Worker for HealWorker {
    fn name(&self) -> String {
        format!("heal:{}", self.disk.id())
    }

    async fn step(&mut self) -> Result<StepResult, String> {
        if self.rate.paused() {
            return Ok(StepResult::Idle); // resumed by a wake-up
        }
        let started = Instant::now();
        let disk_id = self.disk.id().get();
        if self.disk.is_full() {
            return Err(full(&self.disk));
        }
        let after = unhex(&self.progress.cursor);
        let entries =
            self.cluster.meta().list_disk_shards(disk_id, after, ENTRIES_PER_STEP).await.map_err(|e| e.to_string())?;
        let damaged = self.damage_reports().await?;
        let labels = disk_labels(self.disk.id());
        let mut bytes = 0;
        for e in &entries {
            let Some(entry) = &e.shard else { continue };
            let Ok(id) = <[u8; 16]>::try_from(e.data_id.as_slice()) else { continue };
            for &position in &entry.positions {
                let key = ShardKey { data_id: DataId::from_bytes(id), part: entry.part, shard: position as u16 };
                let present = match self.disk.stat(&key) {
                    Ok(_) => true,
                    Err(ShardError::Missing(_)) => false,
                    Err(err) => return Err(format!("stat {key}: {err}")),
                };
                let recorded_missing = entry.missing.contains(&position);
                let reported = damaged.contains(&key);
                if present && !recorded_missing && !reported {
                    continue;
                }
                if present {
                    // Reported damaged (by the scrubber or a read), or counted
                    // missing by the record although the file arrived: whole
                    // and verified, it stays as it is; damaged, it is rebuilt.
                    let disk = self.disk.clone();
                    let checked = tokio::task::spawn_blocking(move || verify_shard(&disk, &key))
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| format!("verify {key}: {e}"))?;
                    if checked.1.is_none() {
                        self.settle(&e.data_id, entry, position, recorded_missing, reported).await?;
                        continue;
                    }
                    self.disk.delete(&key).map_err(|e| format!("remove damaged {key}: {e}"))?;
                }
                let Some((set, piece_len)) = locate(self.cluster.meta(), &e.data_id, entry).await? else { continue };
                if set.disks.get(position as usize) != Some(&disk_id) {
                    continue; // the record now places this position elsewhere
                }
                if self.disk.is_full() {
                    // Nothing is written here until space is freed; the
                    // step is retried from the same cursor after a back-off.
                    return Err(full(&self.disk));
                }
                match self.rebuild(&set, entry.part, piece_len, position).await {
                    Ok(n) => {
                        self.count_rebuilt(&key, n);
                        bytes += n;
                        self.settle(&e.data_id, entry, position, set.missing.contains(&position), reported).await?;
                    }
                    Err(reason) => {
                        self.failed += 1;
                        self.metrics.heal_failures.get_or_create(&labels).inc();
                        tracing::warn!(disk = disk_id, shard = %key, %reason, "could not rebuild a shard");
                        self.last_failure = Some(format!("{key}: {reason}"));
                    }
                }
            }
        }
        let finished_pass = entries.len() < ENTRIES_PER_STEP as usize;
        if finished_pass {
            self.progress.passes += 1;
            self.progress.cursor.clear();
            self.metrics.heal_passes.get_or_create(&labels).inc();
        } else if let Some(last) = entries.last() {
            self.progress.cursor = hex_of(&last.data_id);
        }
        self.progress.save(&self.disk, HEAL_STATE).map_err(|e| format!("save heal progress: {e}"))?;
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
        let mut s = format!(
            "pass {}, {} shards ({} MB) rebuilt, {} restored, {} not rebuilt, at most {} KiB/s",
            self.progress.passes + 1,
            self.rebuilt,
            self.rebuilt_bytes / 1_000_000,
            self.restored,
            self.failed,
            self.rate.get() / 1024
        );
        if let Some(f) = &self.last_failure {
            s.push_str(&format!(" (last: {f})"));
        }
        Some(s)
    }
}
