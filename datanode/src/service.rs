//! The datanode gRPC service over the node's disks, and the one place that
//! maps [`ShardError`] to gRPC statuses.
//!
//! ```text
//!  PutShard stream ──frames──► bounded channel (4) ──► blocking writer: verify, write, fsync, rename
//!  GetShard ──► blocking reader: read and verify ~1 MiB of stripes at a time ──► bounded channel (4) ──► stream
//!              (through the page cache or around it: see `reader`)
//! ```
//! Both transports, gRPC here and the shard wire (`wire_server`), share
//! these paths: [`DataService::put`] and [`DataService::get`] (the wire's
//! get takes where each frame read through the page cache lies instead of
//! its bytes, and sends it from the file: [`DataService::get_for_sendfile`]).
//! The bounded channels give backpressure both ways; a shard never sits in
//! memory whole. Reader and writer tasks live only as long as their request.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use tessera_common::DataId;
use tessera_ec::HASH_LEN;
use tessera_rpc::local::{LocalFrames, LocalShards};
use tessera_rpc::proto::data::data_server::{Data, DataServer};
use tessera_rpc::proto::data::*;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::metrics::{DatanodeMetrics, label, result_labels};
use crate::{Batch, Finished, FrameSpan, FsDisk, ReadIntent, ShardError, ShardHeader, ShardKey, ShardReader, Source};

/// Largest gRPC message: one frame of a 16 MiB block, with room to spare.
pub const MAX_MESSAGE_BYTES: usize = 20 << 20;
/// Largest HTTP/2 frame the datanode accepts: a 256 KiB block travels in
/// one frame, not sixteen.
pub const MAX_FRAME_BYTES: u32 = 1 << 20;

/// Maps a shard error to the gRPC status the protocol documents.
pub fn status_of(e: ShardError) -> Status {
    match e {
        ShardError::Missing(k) => Status::not_found(format!("shard {k} not found")),
        ShardError::Corrupt { key, stripe, reason } => {
            Status::data_loss(format!("shard {key} corrupt at stripe {stripe:?}: {reason}"))
        }
        ShardError::NoSpace(d) => Status::resource_exhausted(format!("disk {d} is full")),
        ShardError::DiskFailed(d) => Status::unavailable(format!("disk {d} has failed")),
        ShardError::BadRequest(m) => Status::invalid_argument(m),
        e @ ShardError::Io { .. } => {
            tracing::error!(error = %e, "shard i/o failure");
            Status::internal("shard i/o failure")
        }
    }
}

/// Serves the `tessera.data.v1.Data` API for a set of disks.
#[derive(Clone)]
pub struct DataService {
    disks: Arc<HashMap<u32, FsDisk>>,
    metrics: DatanodeMetrics,
}

impl DataService {
    /// The service over `disks`, counting into `metrics`; serve it with
    /// [`crate::serve_data`] (gRPC and the shard wire) or
    /// [`DataService::into_server`] (gRPC only).
    pub fn new(disks: Vec<FsDisk>, metrics: DatanodeMetrics) -> Self {
        let disks = disks.into_iter().map(|d| (d.id().get(), d)).collect();
        DataService { disks: Arc::new(disks), metrics }
    }

    /// The service over `disks`, wrapped for a tonic server with message
    /// limits sized for shard frames.
    pub fn server(disks: Vec<FsDisk>) -> DataServer<Self> {
        Self::server_with_metrics(disks, DatanodeMetrics::default())
    }

    /// [`DataService::server`], counting into `metrics`.
    pub fn server_with_metrics(disks: Vec<FsDisk>, metrics: DatanodeMetrics) -> DataServer<Self> {
        Self::new(disks, metrics).into_server()
    }

    /// This service wrapped for a tonic server.
    pub fn into_server(self) -> DataServer<Self> {
        DataServer::new(self).max_decoding_message_size(MAX_MESSAGE_BYTES).max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    fn locate(&self, r: Option<&ShardRef>) -> Result<(FsDisk, ShardKey), Status> {
        let r = r.ok_or_else(|| Status::invalid_argument("no shard named"))?;
        let disk = self
            .disks
            .get(&r.disk)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("no disk {} on this node", r.disk)))?;
        let id: [u8; 16] =
            r.data_id.as_ref().try_into().map_err(|_| Status::invalid_argument("a data id is 16 bytes"))?;
        let shard = u16::try_from(r.shard).map_err(|_| Status::invalid_argument("shard index out of range"))?;
        Ok((disk, ShardKey { data_id: DataId::from_bytes(id), part: r.part, shard }))
    }
}

/// A tonic server builder tuned for bulk shard transfer: large HTTP/2
/// windows so a stream is not throttled by flow control, and no Nagle delay.
pub fn server_builder() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .trace_fn(tessera_rpc::trace::server_span)
        .initial_stream_window_size(Some(8 << 20))
        .initial_connection_window_size(Some(32 << 20))
        // Whole blocks per HTTP/2 frame instead of 16 KiB pieces: fewer
        // frames to parse and wake-ups per shard (64 MiB PUTs ~15% faster here).
        .max_frame_size(Some(MAX_FRAME_BYTES))
        .http2_keepalive_interval(Some(Duration::from_secs(20)))
}

fn ref_of(disk: u32, k: &ShardKey) -> ShardRef {
    ShardRef {
        disk,
        data_id: bytes::Bytes::copy_from_slice(k.data_id.as_bytes()),
        part: k.part,
        shard: u32::from(k.shard),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, ShardError> + Send + 'static) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("disk task failed: {e}")))?
        .map_err(status_of)
}

/// Where a put's frames come from: a transport's request stream.
pub(crate) trait FrameSource: Send {
    /// The next frame; `None` at the end of the stream.
    fn next_frame(&mut self) -> impl Future<Output = Result<Option<ShardFrame>, Status>> + Send;

    /// Whether each frame's hash was computed in this process from the very
    /// bytes of its block, with nothing between that could damage either:
    /// then hashing the block again proves nothing, and is skipped.
    fn hashed_in_process(&self) -> bool {
        false
    }
}

impl FrameSource for Streaming<PutShardRequest> {
    async fn next_frame(&mut self) -> Result<Option<ShardFrame>, Status> {
        loop {
            match self.message().await? {
                Some(PutShardRequest { frame: Some(f), .. }) => return Ok(Some(f)),
                Some(_) => continue, // a message without a frame carries nothing
                None => return Ok(None),
            }
        }
    }
}

impl DataService {
    /// Stores one shard: `first` names it and its geometry (and may carry
    /// the first frame); `next` yields the following frames. Counts the put
    /// in the metrics.
    pub(crate) async fn put(&self, first: PutShardRequest, next: &mut impl FrameSource) -> Result<(), Status> {
        let started = std::time::Instant::now();
        let out = self.put_inner(first, next).await;
        let m = &self.metrics;
        m.shard_puts.get_or_create(&result_labels(if out.is_ok() { "ok" } else { "error" })).inc();
        if out.is_ok() {
            m.shard_put_seconds.get_or_create(&Vec::new()).observe(started.elapsed().as_secs_f64());
        }
        out
    }

    async fn put_inner(&self, first: PutShardRequest, next: &mut impl FrameSource) -> Result<(), Status> {
        let (disk, key) = self.locate(first.shard.as_ref())?;
        let header = header_of(key, first.geometry)?;
        let (tx, mut rx) = mpsc::channel::<ShardFrame>(4);
        let put_bytes = self.metrics.shard_put_bytes.clone();
        let verify = !next.hashed_in_process();
        // The writer's outcome comes back as soon as the shard is durable;
        // its thread then drops the shard's cached pages, after the ack.
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let mut write = move || -> Result<Finished, ShardError> {
            let mut w = disk.create(header)?;
            while let Some(f) = rx.blocking_recv() {
                let hash: [u8; HASH_LEN] = f
                    .hash
                    .as_ref()
                    .try_into()
                    .map_err(|_| ShardError::BadRequest("a frame hash is 32 bytes".into()))?;
                if verify {
                    w.write_frame(&hash, &f.block)?;
                } else {
                    w.write_hashed_frame(&hash, &f.block)?;
                }
                put_bytes.inc_by(f.block.len() as u64);
            }
            w.finish_durable() // fails, storing nothing, unless every stripe arrived
        };
        tokio::task::spawn_blocking(move || match write() {
            Ok(finished) => {
                let _ = done_tx.send(Ok(()));
                finished.drop_pages();
            }
            Err(e) => {
                let _ = done_tx.send(Err(e));
            }
        });
        let mut pending = first.frame;
        let mut broken = None;
        loop {
            if let Some(f) = pending.take()
                && tx.send(f).await.is_err()
            {
                break; // the writer stopped: its result says why
            }
            match next.next_frame().await {
                Ok(Some(f)) => pending = Some(f),
                Ok(None) => break,
                Err(status) => {
                    broken = Some(status);
                    break;
                }
            }
        }
        drop(tx);
        let written = done_rx.await.map_err(|_| Status::internal("disk task failed"))?;
        if let Some(status) = broken {
            return Err(status); // the client's stream broke: whatever the writer did is not acknowledged
        }
        written.map_err(status_of)
    }

    /// Starts reading stripes of a shard: each item is one frame (hash then
    /// block, as stored), verified; an error ends the stream. Also returns
    /// how many frames a complete answer has. Counts the get in the metrics.
    pub(crate) async fn get(&self, r: GetShardRequest) -> Result<(mpsc::Receiver<Result<Bytes, Status>>, u64), Status> {
        let got = async {
            let (reader, stripes) = self.open_get(r).await?;
            let count = stripes.end - stripes.start;
            Ok((self.spawn_reader(reader, stripes, |b| b.frames, Bytes::len), count))
        }
        .await;
        self.count_refused_get(got)
    }

    /// [`DataService::get`] for a transport that can send a frame from the
    /// file itself: a frame read through the page cache comes as where it
    /// lies in the file (its pages were just read), one read around the
    /// cache as its bytes. Every block is verified before it is handed on
    /// either way. The caller sends spans from the returned file handle.
    pub(crate) async fn get_for_sendfile(
        &self,
        r: GetShardRequest,
    ) -> Result<(std::fs::File, mpsc::Receiver<Result<OutFrame, Status>>, u64), Status> {
        let got = async {
            let (reader, stripes) = self.open_get(r).await?;
            let file = reader.file().map_err(status_of)?;
            let count = stripes.end - stripes.start;
            let rx = self.spawn_reader(reader, stripes, OutFrame::of_batch, OutFrame::len);
            Ok((file, rx, count))
        }
        .await;
        self.count_refused_get(got)
    }

    /// Counts a get refused before its reader started (the reader counts
    /// the rest); passes the outcome on.
    fn count_refused_get<T>(&self, got: Result<T, Status>) -> Result<T, Status> {
        if let Err(e) = &got {
            self.metrics.shard_gets.get_or_create(&result_labels(get_result(e))).inc();
        }
        got
    }

    /// Opens the shard of a get and checks its stripe range.
    async fn open_get(&self, r: GetShardRequest) -> Result<(ShardReader, Range<u64>), Status> {
        let (disk, key) = self.locate(r.shard.as_ref())?;
        let reader = blocking(move || disk.open_reader(&key)).await?;
        let total = reader.header().stripes().map_err(status_of)?;
        let end = r.first_stripe.checked_add(r.stripe_count).filter(|&e| e <= total);
        let Some(end) = end else {
            return Err(Status::invalid_argument(format!(
                "stripes {}+{} outside 0..{total}",
                r.first_stripe, r.stripe_count
            )));
        };
        Ok((reader, r.first_stripe..end))
    }

    /// Reads `stripes` a batch at a time on a blocking thread (see
    /// [`ShardReader::read_batches`]), handing the items `items` makes of
    /// each batch to the returned channel; an error ends it. `frame_len`
    /// is an item's hash and block in bytes.
    fn spawn_reader<T: Send + 'static>(
        &self,
        mut reader: ShardReader,
        stripes: Range<u64>,
        items: fn(Batch) -> Vec<T>,
        frame_len: fn(&T) -> usize,
    ) -> mpsc::Receiver<Result<T, Status>> {
        let (tx, rx) = mpsc::channel(4);
        let metrics = self.metrics.clone();
        // Request-scoped: ends when the range is sent or the client goes away.
        tokio::task::spawn_blocking(move || {
            let read = reader.read_batches(stripes, ReadIntent::Serve, |batch| {
                for item in items(batch) {
                    metrics.shard_get_bytes.inc_by((frame_len(&item) - HASH_LEN) as u64);
                    if tx.blocking_send(Ok(item)).is_err() {
                        return false;
                    }
                }
                true
            });
            match read {
                Ok(end) if end.complete => {
                    metrics.shard_gets.get_or_create(&result_labels("ok")).inc();
                    metrics.shard_get_sources.get_or_create(&label("source", end.source.label())).inc();
                }
                Ok(_) => {} // the client went away
                Err(e) => {
                    let status = status_of(e);
                    metrics.shard_gets.get_or_create(&result_labels(get_result(&status))).inc();
                    if tx.blocking_send(Err(status)).is_err() {
                        tracing::debug!("reader gone before the error was sent");
                    }
                }
            }
        });
        rx
    }
}

/// One verified frame of a get for a transport that sends from the file.
#[derive(Debug)]
pub(crate) enum OutFrame {
    /// Read through the page cache: where it lies in the file.
    InFile(FrameSpan),
    /// Read around the page cache: its bytes (hash, then block).
    Bytes(Bytes),
}

impl OutFrame {
    fn of_batch(b: Batch) -> Vec<OutFrame> {
        match b.source {
            Source::PageCache => b.spans.into_iter().map(OutFrame::InFile).collect(),
            Source::Disk => b.frames.into_iter().map(OutFrame::Bytes).collect(),
        }
    }

    fn len(&self) -> usize {
        match self {
            OutFrame::InFile(s) => s.len,
            OutFrame::Bytes(b) => b.len(),
        }
    }
}

/// The header of a shard about to be written, from the put's geometry.
fn header_of(key: ShardKey, g: Option<ShardGeometry>) -> Result<ShardHeader, Status> {
    let g = g.ok_or_else(|| Status::invalid_argument("the first message carries the shard geometry"))?;
    let narrow =
        |v: u32, what: &str| u8::try_from(v).map_err(|_| Status::invalid_argument(format!("{what} out of range")));
    Ok(ShardHeader {
        key,
        codec: u16::try_from(g.codec).map_err(|_| Status::invalid_argument("codec out of range"))?,
        k: narrow(g.k, "k")?,
        m: narrow(g.m, "m")?,
        block_len: g.block_len,
        piece_len: g.piece_len,
    })
}

/// How a failed get is counted.
fn get_result(s: &Status) -> &'static str {
    match s.code() {
        tonic::Code::NotFound => "missing",
        tonic::Code::DataLoss => "corrupt",
        _ => "error",
    }
}

#[tonic::async_trait]
impl Data for DataService {
    async fn put_shard(&self, req: Request<Streaming<PutShardRequest>>) -> Result<Response<PutShardReply>, Status> {
        let mut stream = req.into_inner();
        let first = match stream.message().await {
            Ok(Some(first)) => first,
            other => {
                self.metrics.shard_puts.get_or_create(&result_labels("error")).inc();
                return Err(other.err().unwrap_or_else(|| Status::invalid_argument("empty put stream")));
            }
        };
        self.put(first, &mut stream).await.map(|()| Response::new(PutShardReply {}))
    }

    type GetShardStream = Pin<Box<dyn Stream<Item = Result<ShardFrame, Status>> + Send>>;

    async fn get_shard(&self, req: Request<GetShardRequest>) -> Result<Response<Self::GetShardStream>, Status> {
        let (rx, _) = self.get(req.into_inner()).await?;
        let frames = ReceiverStream::new(rx)
            .map(|r| r.map(|f| ShardFrame { hash: f.slice(..HASH_LEN), block: f.slice(HASH_LEN..) }));
        Ok(Response::new(Box::pin(frames)))
    }

    async fn delete_shard(&self, req: Request<ShardRef>) -> Result<Response<DeleteShardReply>, Status> {
        let (disk, key) = self.locate(Some(req.get_ref()))?;
        let existed = blocking(move || disk.delete(&key)).await?;
        Ok(Response::new(DeleteShardReply { existed }))
    }

    async fn stat_shard(&self, req: Request<ShardRef>) -> Result<Response<StatShardReply>, Status> {
        let (disk, key) = self.locate(Some(req.get_ref()))?;
        let st = blocking(move || disk.stat(&key)).await?;
        let modified_ms = st.modified.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        Ok(Response::new(StatShardReply { len: st.len, modified_ms }))
    }

    async fn list_shards(&self, req: Request<ListShardsRequest>) -> Result<Response<ListShardsReply>, Status> {
        let r = req.into_inner();
        let disk = self
            .disks
            .get(&r.disk)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("no disk {} on this node", r.disk)))?;
        let max = r.max.clamp(1, 10_000) as usize;
        let after = r.after;
        let page = blocking(move || disk.list((!after.is_empty()).then_some(after.as_str()), max)).await?;
        Ok(Response::new(ListShardsReply {
            shards: page.keys.iter().map(|k| ref_of(r.disk, k)).collect(),
            next: page.next.unwrap_or_default(),
        }))
    }

    async fn disk_usage(&self, _req: Request<DiskUsageRequest>) -> Result<Response<DiskUsageReply>, Status> {
        let disks: Vec<FsDisk> = self.disks.values().cloned().collect();
        let statuses = blocking(move || {
            let mut out = Vec::new();
            for d in disks {
                let u = d.usage()?;
                out.push(DiskStatus {
                    disk: d.id().get(),
                    used_bytes: u.used_bytes,
                    capacity_bytes: u.capacity_bytes,
                    healthy: !d.is_failed(),
                });
            }
            out.sort_by_key(|s| s.disk);
            Ok(out)
        })
        .await?;
        Ok(Response::new(DiskUsageReply { disks: statuses }))
    }
}

/// Frames handed over within the process.
impl FrameSource for mpsc::Receiver<ShardFrame> {
    async fn next_frame(&mut self) -> Result<Option<ShardFrame>, Status> {
        Ok(self.recv().await)
    }

    /// The gateway of this process hashed each block as it encoded it and
    /// hands over the same buffers: no wire, no copy in between.
    fn hashed_in_process(&self) -> bool {
        true
    }
}

/// The gateway of `tessera server` calls its datanode through this.
#[tonic::async_trait]
impl LocalShards for DataService {
    fn disks(&self) -> HashSet<u32> {
        self.disks.keys().copied().collect()
    }

    async fn put_shard(&self, first: PutShardRequest, mut frames: mpsc::Receiver<ShardFrame>) -> Result<(), Status> {
        let span = local_span("/tessera.data.v1.Data/PutShard");
        self.put(first, &mut frames).instrument(span).await
    }

    async fn get_shard(&self, req: GetShardRequest) -> Result<LocalFrames, Status> {
        let span = local_span("/tessera.data.v1.Data/GetShard");
        let (rx, count) = self.get(req).instrument(span).await?;
        Ok(LocalFrames::new(rx, count))
    }
}

/// The span of an in-process shard call: a child of the caller's span.
fn local_span(method: &'static str) -> tracing::Span {
    tracing::info_span!(target: "tessera_rpc::server", "shard", rpc.method = method, transport = "local")
}
