//! The read pipeline: the stripes of a byte range, from k shards.
//!
//! Data shards are read first, so a healthy object needs no decoding. A
//! shard that is missing, corrupt, unreachable or slower than the hedge
//! timeout is dropped and the next parity shard is read from the current
//! stripe on; every block is verified against its keyed hash before it is
//! used. With fewer than k good shards the read fails — it never returns
//! wrong bytes. Missing and corrupt shards are reported to metadata for
//! repair.

use std::ops::Range;
use std::time::Duration;

use bytes::Bytes;
use tessera_ec::{EcError, FramedBlock, HASH_LEN, PieceId, StripeCoder, StripeLayout};
use tessera_rpc::proto::data::{GetShardRequest, ShardRef};
use tessera_rpc::proto::meta::{Command, DamageReport, ReportDamage, ShardSet, command};
use tokio::sync::mpsc;
use tonic::Code;
use tracing::Instrument as _;

use crate::Codecs;
use crate::cluster::{Cluster, ShardFrames};

/// Why a range could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Fewer than k good shards: the bytes cannot be rebuilt now.
    #[error("stripe {stripe}: only {good} good shards of the {needed} needed ({reasons})")]
    NotEnoughShards {
        /// The stripe that failed.
        stripe: u64,
        /// Good shards found.
        good: usize,
        /// k.
        needed: usize,
        /// What the other shards said.
        reasons: String,
    },
    /// The record does not fit the coder (a bug or a damaged record).
    #[error("{0}")]
    Internal(String),
    /// The receiver went away (the client disconnected).
    #[error("the reader went away")]
    Closed,
}

/// What happened to a shard position during one read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Slot {
    Untried,
    Active,
    Failed(String),
}

/// Reads `range` (relative to the piece, non-empty, inside `piece_len`) of
/// the sharded piece `set` and sends its bytes, in order, into `out`.
#[allow(clippy::too_many_arguments)]
pub async fn read_sharded(
    cluster: &Cluster,
    codecs: &Codecs,
    set: &ShardSet,
    part: u32,
    piece_len: u64,
    range: Range<u64>,
    hedge: Duration,
    out: &mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Result<(), ReadError> {
    let ec = set.ec.ok_or_else(|| ReadError::Internal("shard set without an EC profile".into()))?;
    let (k, m) = (ec.k as usize, ec.m as usize);
    let n = k + m;
    if set.disks.len() != n {
        return Err(ReadError::Internal(format!("record names {} disks for {n} shards", set.disks.len())));
    }
    let layout = StripeLayout::from_block_len(k, m, ec.block_len as usize).map_err(internal)?;
    let coder = StripeCoder::new(codecs.get(ec.codec, k, m).map_err(internal)?, layout).map_err(internal)?;
    let data_id: [u8; 16] =
        set.data_id.as_slice().try_into().map_err(|_| ReadError::Internal("a data id is 16 bytes".into()))?;
    let piece = PieceId { data_id, part };
    let stripes = layout.stripes_for_range(piece_len, range.clone());
    let per = layout.stripe_data_len() as u64;

    let mut slots: Vec<Slot> = (0..n)
        .map(
            |i| if set.missing.contains(&(i as u32)) { Slot::Failed("recorded missing".into()) } else { Slot::Untried },
        )
        .collect();
    let mut streams: Vec<Option<ShardFrames>> = (0..n).map(|_| None).collect();
    // Shards read by the datanode of this process, which verified each
    // frame against its hash as it read it: not hashed a second time.
    let mut verified = vec![false; n];
    let mut damaged: Vec<(usize, String)> = Vec::new();

    let result = async {
        for s in stripes.clone() {
            let mut frames: Vec<Option<FramedBlock>> = vec![None; n];
            loop {
                // Keep k shards active: open the next untried ones from this stripe on.
                let active = slots.iter().filter(|x| **x == Slot::Active).count();
                let mut want = k.saturating_sub(active);
                for i in 0..n {
                    if want == 0 {
                        break;
                    }
                    if slots[i] != Slot::Untried {
                        continue;
                    }
                    match tokio::time::timeout(hedge, open(cluster, set, part, i, s, stripes.end - s)).await {
                        Ok(Ok(st)) => {
                            verified[i] = matches!(st, ShardFrames::Local(_));
                            streams[i] = Some(st);
                            slots[i] = Slot::Active;
                            want -= 1;
                        }
                        Ok(Err(status)) => fail(&mut slots, &mut damaged, i, &status),
                        Err(_) => slots[i] = Slot::Failed(format!("no answer within the {hedge:?} hedge timeout")),
                    }
                }
                // One frame from every active shard that has none for this stripe yet.
                for i in 0..n {
                    if slots[i] != Slot::Active || frames[i].is_some() {
                        continue;
                    }
                    let Some(st) = streams[i].as_mut() else { continue };
                    match tokio::time::timeout(hedge, st.message()).await {
                        Ok(Ok(Some(f))) => {
                            // A hash of the wrong length cannot verify: a zero hash
                            // makes the decoder report the block corrupt.
                            let hash = <[u8; HASH_LEN]>::try_from(f.hash.as_ref()).unwrap_or([0; HASH_LEN]);
                            frames[i] = Some(FramedBlock { hash, data: f.block });
                        }
                        Ok(Ok(None)) => {
                            streams[i] = None;
                            slots[i] = Slot::Failed("stream ended early".into());
                        }
                        Ok(Err(status)) => {
                            streams[i] = None;
                            fail(&mut slots, &mut damaged, i, &status);
                        }
                        Err(_) => {
                            streams[i] = None;
                            slots[i] = Slot::Failed(format!("slower than the {hedge:?} hedge timeout"));
                        }
                    }
                }
                let have = frames.iter().filter(|f| f.is_some()).count();
                if have < k {
                    if slots.contains(&Slot::Untried) {
                        continue; // open replacements and fetch again
                    }
                    return Err(not_enough(s, have, k, &slots));
                }
                let stripe_len = layout.stripe_len(piece_len, s);
                let t = std::time::Instant::now();
                let decoded = coder.decode_stripe_blocks_trusting(piece, s, stripe_len, &frames, &verified);
                cluster.metrics().ec_decode_seconds.observe(t.elapsed().as_secs_f64());
                match decoded {
                    Ok(decoded) => {
                        if decoded.decoded {
                            cluster.metrics().degraded_stripes.inc();
                        }
                        for &c in &decoded.corrupt {
                            mark_corrupt(&mut slots, &mut streams, &mut damaged, c, s);
                        }
                        let start = s * per;
                        let lo = range.start.max(start) - start;
                        let hi = range.end.min(start + stripe_len as u64) - start;
                        for chunk in decoded.slice(lo as usize..hi as usize) {
                            out.send(Ok(chunk)).await.map_err(|_| ReadError::Closed)?;
                        }
                        break;
                    }
                    Err(EcError::NotEnoughShards { corrupt, .. }) => {
                        for c in corrupt {
                            mark_corrupt(&mut slots, &mut streams, &mut damaged, c, s);
                            frames[c] = None;
                        }
                        if !slots.contains(&Slot::Untried) {
                            let have = frames.iter().filter(|f| f.is_some()).count();
                            return Err(not_enough(s, have, k, &slots));
                        }
                    }
                    Err(e) => return Err(internal(e)),
                }
            }
        }
        // Every stripe is out: read each stream's end (the datanode's
        // final status), which follows its last frame at once. A shard-wire
        // connection read to its end goes back to the pool; one dropped
        // before it is closed, and reopening costs a TCP connect — with
        // mutual TLS a handshake — per shard per GET.
        // One bound for all of them: a stalled datanode delays the end of
        // the response by at most that (its connection is then dropped).
        let ends = async {
            for st in streams.iter_mut().flatten() {
                let _end = st.message().await;
            }
        };
        let _waited = tokio::time::timeout(STREAM_END_WAIT, ends).await;
        Ok(())
    }
    .await;

    if !damaged.is_empty() {
        report(cluster, set, part, damaged);
    }
    result
}

/// How long a finished read waits for a stream's final status.
const STREAM_END_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

async fn open(
    cluster: &Cluster,
    set: &ShardSet,
    part: u32,
    i: usize,
    first: u64,
    count: u64,
) -> Result<ShardFrames, tonic::Status> {
    let disk = set.disks[i];
    let req = GetShardRequest {
        shard: Some(ShardRef { disk, data_id: Bytes::copy_from_slice(&set.data_id), part, shard: i as u32 }),
        first_stripe: first,
        stripe_count: count,
    };
    cluster.get_shard(req).await
}

fn fail(slots: &mut [Slot], damaged: &mut Vec<(usize, String)>, i: usize, status: &tonic::Status) {
    let why = format!("{:?}: {}", status.code(), status.message());
    match status.code() {
        Code::NotFound => damaged.push((i, format!("missing: {}", status.message()))),
        Code::DataLoss => damaged.push((i, format!("corrupt: {}", status.message()))),
        _ => {}
    }
    slots[i] = Slot::Failed(why);
}

fn mark_corrupt(
    slots: &mut [Slot],
    streams: &mut [Option<ShardFrames>],
    damaged: &mut Vec<(usize, String)>,
    i: usize,
    stripe: u64,
) {
    streams[i] = None;
    slots[i] = Slot::Failed(format!("block of stripe {stripe} failed verification at the gateway"));
    damaged.push((i, format!("corrupt: stripe {stripe} failed verification at the gateway")));
}

fn not_enough(stripe: u64, good: usize, needed: usize, slots: &[Slot]) -> ReadError {
    let reasons = slots
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            Slot::Failed(w) => Some(format!("shard {i}: {w}")),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("; ");
    ReadError::NotEnoughShards { stripe, good, needed, reasons }
}

/// Tells metadata about damaged shards, in the background: a failed report
/// must not fail the read (the scrubber finds the damage again).
fn report(cluster: &Cluster, set: &ShardSet, part: u32, damaged: Vec<(usize, String)>) {
    let meta = cluster.meta().clone();
    let (disks, data_id) = (set.disks.clone(), set.data_id.clone());
    tokio::spawn(
        async move {
            for (i, reason) in damaged {
                let cmd = Command {
                    now_ms: 0,
                    op: Some(command::Op::ReportDamage(ReportDamage {
                        report: Some(DamageReport {
                            disk: disks[i],
                            data_id: data_id.clone(),
                            part,
                            shard: i as u32,
                            reason,
                            reported_ms: 0,
                        }),
                    })),
                };
                if let Err(e) = meta.write(cmd).await {
                    tracing::warn!("could not report a damaged shard: {e}");
                }
            }
        }
        .instrument(tracing::Span::current()),
    );
}

fn internal(e: impl std::fmt::Display) -> ReadError {
    ReadError::Internal(e.to_string())
}
