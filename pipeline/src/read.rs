//! The read pipeline: the stripes of a byte range, from k shards.
//!
//! Data shards are read first, so a healthy object needs no decoding. A
//! shard that is missing, corrupt or unreachable is dropped and the next
//! parity shard is read from the current stripe on; one slower than the
//! hedge timeout gets a parity shard beside it, and the first k frames of
//! each stripe win. Every block is verified against its keyed hash before
//! it is used. With fewer than k good shards the read fails — it never returns
//! wrong bytes. Missing and corrupt shards are reported to metadata for
//! repair.

use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use tessera_ec::{EcError, FramedBlock, HASH_LEN, PieceId, StripeCoder, StripeLayout};
use tessera_rpc::proto::data::{GetShardRequest, ShardFrame, ShardRef};
use tessera_rpc::proto::meta::{Command, DamageReport, ReportDamage, ShardSet, command};
use tokio::sync::mpsc;
use tokio::time::Instant;
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
    /// Being opened or read.
    Live,
    /// Dropped for being slower than the others; opened again only when
    /// nothing else is left.
    Slow,
    Failed(String),
}

/// What a shard's pending future produced.
enum Event {
    Opened(Result<ShardFrames, tonic::Status>),
    Frame(ShardFrames, Result<Option<ShardFrame>, tonic::Status>),
}

type Pending<'a> = Pin<Box<dyn Future<Output = Event> + Send + 'a>>;

fn next_frame<'a>(mut st: ShardFrames) -> Pending<'a> {
    Box::pin(async move {
        let r = st.message().await;
        Event::Frame(st, r)
    })
}

/// The first of the shards' pending futures to finish, with its position
/// (the others stay pending). Never finishes when none is pending.
async fn next_event(pending: &mut [Option<Pending<'_>>]) -> (usize, Event) {
    std::future::poll_fn(|cx| {
        for (i, slot) in pending.iter_mut().enumerate() {
            if let Some(fut) = slot
                && let Poll::Ready(ev) = fut.as_mut().poll(cx)
            {
                *slot = None;
                return Poll::Ready((i, ev));
            }
        }
        Poll::Pending
    })
    .await
}

/// How many hedge timeouts a read waits, once every shard has been asked,
/// without a single frame arriving before it gives up.
const STALL_HEDGES: u32 = 10;

/// Reads `range` (relative to the piece, non-empty, inside `piece_len`) of
/// the sharded piece `set` and sends its bytes, in order, into `out`.
///
/// Hedging: k shards are read at a time, data shards first. Each time
/// `hedge` passes without the stripe being complete, one more shard is
/// opened beside the slow ones, which are not given up: the first k frames
/// of a stripe to arrive are used, whichever shards they come from (a
/// stall shared by every datanode — a busy disk, a loaded machine — delays
/// the read but does not fail it). After each stripe the reader goes back
/// to k shards, dropping those that were behind. A read fails only when
/// fewer than k shards can still answer, or when every shard has been
/// asked and none sent a frame for `STALL_HEDGES` hedge timeouts.
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
    let stall_limit = hedge * STALL_HEDGES;

    let mut slots: Vec<Slot> = (0..n)
        .map(
            |i| if set.missing.contains(&(i as u32)) { Slot::Failed("recorded missing".into()) } else { Slot::Untried },
        )
        .collect();
    // Per position: its pending open or frame read, or its stream parked
    // after it delivered the current stripe's frame.
    let mut pending: Vec<Option<Pending<'_>>> = (0..n).map(|_| None).collect();
    let mut parked: Vec<Option<ShardFrames>> = (0..n).map(|_| None).collect();
    // The stripe of the next frame each stream delivers.
    let mut next = vec![0u64; n];
    // Shards read by the datanode of this process, which verified each
    // frame against its hash as it read it: not hashed a second time.
    let mut verified = vec![false; n];
    let mut damaged: Vec<(usize, String)> = Vec::new();

    let result = async {
        for s in stripes.clone() {
            let mut frames: Vec<Option<FramedBlock>> = vec![None; n];
            for i in 0..n {
                if let Some(st) = parked[i].take() {
                    pending[i] = Some(next_frame(st));
                }
            }
            let mut deadline = Instant::now() + hedge;
            let mut last_event = Instant::now();
            // Until the stripe decodes: wait for k frames, then decode (a
            // corrupt block drops its shard and the stripe is waited for again).
            let decoded = loop {
                let have = frames.iter().filter(|f| f.is_some()).count();
                if have >= k {
                    let stripe_len = layout.stripe_len(piece_len, s);
                    let t = std::time::Instant::now();
                    let decoded = coder.decode_stripe_blocks_trusting(piece, s, stripe_len, &frames, &verified);
                    cluster.metrics().ec_decode_seconds.observe(t.elapsed().as_secs_f64());
                    match decoded {
                        Ok(decoded) => break decoded,
                        Err(EcError::NotEnoughShards { corrupt, .. }) => {
                            for c in corrupt {
                                mark_corrupt(&mut slots, &mut pending, &mut parked, &mut damaged, c, s);
                                frames[c] = None;
                            }
                            continue;
                        }
                        Err(e) => return Err(internal(e)),
                    }
                }
                let coming = (0..n).filter(|&i| slots[i] == Slot::Live && frames[i].is_none()).count();
                if have + coming < k {
                    // Too few shards can still deliver this stripe: open more.
                    for _ in have + coming..k {
                        let Some(i) = pick(&slots) else {
                            return Err(not_enough(s, have, k, &slots));
                        };
                        begin(cluster, set, part, i, s, stripes.end, &mut slots, &mut pending, &mut next);
                    }
                    deadline = Instant::now() + hedge;
                }
                tokio::select! {
                    (i, ev) = next_event(&mut pending) => {
                        last_event = Instant::now();
                        match ev {
                            Event::Opened(Ok(st)) => {
                                verified[i] = matches!(st, ShardFrames::Local(_));
                                pending[i] = Some(next_frame(st));
                            }
                            Event::Opened(Err(status)) => fail(&mut slots, &mut damaged, i, &status),
                            Event::Frame(st, Ok(Some(f))) => {
                                let stripe = next[i];
                                next[i] += 1;
                                if stripe == s {
                                    // A hash of the wrong length cannot verify: a zero hash
                                    // makes the decoder report the block corrupt.
                                    let hash = <[u8; HASH_LEN]>::try_from(f.hash.as_ref()).unwrap_or([0; HASH_LEN]);
                                    frames[i] = Some(FramedBlock { hash, data: f.block });
                                    parked[i] = Some(st);
                                } else {
                                    // Behind: this stripe was decoded without it.
                                    pending[i] = Some(next_frame(st));
                                }
                            }
                            Event::Frame(_, Ok(None)) => slots[i] = Slot::Failed("stream ended early".into()),
                            Event::Frame(_, Err(status)) => fail(&mut slots, &mut damaged, i, &status),
                        }
                    }
                    () = tokio::time::sleep_until(deadline) => {
                        // Hedge: one more shard beside the slow ones.
                        if let Some(i) = pick(&slots) {
                            begin(cluster, set, part, i, s, stripes.end, &mut slots, &mut pending, &mut next);
                            cluster.metrics().hedged_shard_reads.inc();
                        } else if last_event.elapsed() >= stall_limit {
                            for i in 0..n {
                                if slots[i] == Slot::Live && frames[i].is_none() {
                                    pending[i] = None;
                                    slots[i] = Slot::Failed(format!("no frame of stripe {s} within {stall_limit:?}"));
                                }
                            }
                            return Err(not_enough(s, have, k, &slots));
                        }
                        deadline = Instant::now() + hedge;
                    }
                }
            };
            if decoded.decoded {
                cluster.metrics().degraded_stripes.inc();
            }
            for &c in &decoded.corrupt {
                mark_corrupt(&mut slots, &mut pending, &mut parked, &mut damaged, c, s);
            }
            trim(k, &frames, &mut slots, &mut pending, &mut parked);
            let stripe_len = layout.stripe_len(piece_len, s);
            let start = s * per;
            let lo = range.start.max(start) - start;
            let hi = range.end.min(start + stripe_len as u64) - start;
            for chunk in decoded.slice(lo as usize..hi as usize) {
                out.send(Ok(chunk)).await.map_err(|_| ReadError::Closed)?;
            }
        }
        // Every stripe is out: read each stream's end (the datanode's
        // final status), which follows its last frame at once. A shard-wire
        // connection read to its end goes back to the pool; one dropped
        // before it is closed, and reopening costs a TCP connect — with
        // mutual TLS a handshake — per shard per GET.
        // One bound for all of them: a stalled datanode delays the end of
        // the response by at most that (its connection is then dropped).
        drop(std::mem::take(&mut pending));
        let ends = async {
            for st in parked.iter_mut().flatten() {
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

/// The next position to open: untried ones first, data before parity,
/// then those dropped as slow.
fn pick(slots: &[Slot]) -> Option<usize> {
    slots.iter().position(|s| *s == Slot::Untried).or_else(|| slots.iter().position(|s| *s == Slot::Slow))
}

/// Opens position `i` from stripe `first` to the end of the read.
#[allow(clippy::too_many_arguments)]
fn begin<'a>(
    cluster: &'a Cluster,
    set: &'a ShardSet,
    part: u32,
    i: usize,
    first: u64,
    end: u64,
    slots: &mut [Slot],
    pending: &mut [Option<Pending<'a>>],
    next: &mut [u64],
) {
    slots[i] = Slot::Live;
    next[i] = first;
    pending[i] = Some(Box::pin(async move { Event::Opened(open(cluster, set, part, i, first, end - first).await) }));
}

/// After a stripe: back to k live shards. Those that did not deliver the
/// stripe go first, then the last parity shards (data shards need no
/// decoding).
fn trim(
    k: usize,
    frames: &[Option<FramedBlock>],
    slots: &mut [Slot],
    pending: &mut [Option<Pending<'_>>],
    parked: &mut [Option<ShardFrames>],
) {
    let n = slots.len();
    let mut live = slots.iter().filter(|s| **s == Slot::Live).count();
    let behind = (0..n).rev().filter(|&i| frames[i].is_none());
    let parity = (k..n).rev().filter(|&i| frames[i].is_some());
    let victims: Vec<usize> = behind.chain(parity).filter(|&i| slots[i] == Slot::Live).collect();
    for i in victims {
        if live <= k {
            break;
        }
        pending[i] = None;
        parked[i] = None;
        slots[i] = Slot::Slow;
        live -= 1;
    }
}

fn mark_corrupt(
    slots: &mut [Slot],
    pending: &mut [Option<Pending<'_>>],
    parked: &mut [Option<ShardFrames>],
    damaged: &mut Vec<(usize, String)>,
    i: usize,
    stripe: u64,
) {
    pending[i] = None;
    parked[i] = None;
    slots[i] = Slot::Failed(format!("block of stripe {stripe} failed verification at the gateway"));
    damaged.push((i, format!("corrupt: stripe {stripe} failed verification at the gateway")));
}

fn not_enough(stripe: u64, good: usize, needed: usize, slots: &[Slot]) -> ReadError {
    let reasons = slots
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            Slot::Failed(w) => Some(format!("shard {i}: {w}")),
            Slot::Slow => Some(format!("shard {i}: dropped as slower than the others")),
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
