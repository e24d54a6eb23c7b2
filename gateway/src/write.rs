//! The write pipeline: a request body becomes k + m shards on their disks.
//!
//! The body is read stripe by stripe; each stripe is encoded as soon as it
//! is full and its blocks go to one bounded channel per shard, each feeding
//! a `PutShard` stream to the shard's datanode. Memory per request is a few
//! stripes whatever the body size. A write succeeds when at least the write
//! quorum of shards is durably stored; positions that failed are returned
//! for the record (and repair). On failure every stream is dropped before
//! its last stripe, so the datanodes store nothing.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use s3s::crypto::Checksum as _;
use tessera_common::DataId;
use tessera_ec::{PieceId, StripeCoder, StripeLayout};
use tessera_rpc::proto::data::{PutShardRequest, ShardFrame, ShardGeometry, ShardRef};
use tessera_rpc::proto::meta::{EcProfile, ShardSet};
use tokio::sync::mpsc;
use tracing::Instrument as _;

use crate::Codecs;
use crate::cluster::Cluster;
use crate::sse::{self, BodyCipher};

/// Why a body could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The client's body failed (connection dropped, bad chunk signature).
    #[error("reading the request body failed: {0}")]
    Body(String),
    /// The body ended before the declared length.
    #[error("the body ended after {got} of {expected} bytes")]
    Incomplete {
        /// Declared length.
        expected: u64,
        /// Bytes received.
        got: u64,
    },
    /// The body is longer than declared.
    #[error("the body is longer than the declared {expected} bytes")]
    TooLong {
        /// Declared length.
        expected: u64,
    },
    /// Fewer shards than the write quorum were stored.
    #[error("only {stored} of {needed} shards could be stored: {reasons}")]
    Quorum {
        /// Shards stored.
        stored: usize,
        /// The write quorum.
        needed: usize,
        /// What the failed positions said.
        reasons: String,
    },
    /// The client sent no body byte for this long while the gateway waited.
    #[error("no body data arrived for {0:?}")]
    Idle(Duration),
    /// Placement or coding failed (a cluster too small, a bad profile).
    #[error("{0}")]
    Internal(String),
}

/// Bodies at least this long are hashed by the MD5 engine; shorter ones on
/// the request's task, where a hop to the engine thread would cost more
/// than it saves.
pub const ENGINE_MIN_LEN: u64 = 64 * 1024;

/// Hashes every body byte for the ETag and the checksums the client sent.
pub struct BodyDigest {
    md5: BodyMd5,
    /// The S3 checksums being computed.
    pub checksums: s3s::checksum::ChecksumHasher,
    len: u64,
}

enum BodyMd5 {
    /// One body at a time, on the request's task.
    Inline(s3s::crypto::Md5),
    /// In a lane of the gateway's MD5 engine, beside other bodies.
    Engine(tessera_md5::Md5Stream),
}

impl BodyDigest {
    /// MD5 plus the given checksums, for a body of `len` bytes: in `engine`
    /// when there is one and the body is long enough.
    pub fn new(checksums: s3s::checksum::ChecksumHasher, engine: Option<&tessera_md5::Md5Engine>, len: u64) -> Self {
        let md5 = match engine {
            Some(e) if len >= ENGINE_MIN_LEN => BodyMd5::Engine(e.stream()),
            _ => BodyMd5::Inline(s3s::crypto::Md5::new()),
        };
        BodyDigest { md5, checksums, len: 0 }
    }

    async fn update(&mut self, b: &Bytes) -> Result<(), WriteError> {
        match &mut self.md5 {
            BodyMd5::Inline(h) => h.update(b),
            BodyMd5::Engine(s) => s.update(b.clone()).await.map_err(internal)?,
        }
        self.checksums.update(b);
        self.len += b.len() as u64;
        Ok(())
    }

    /// The MD5 and the checksums.
    pub async fn finish(self) -> Result<([u8; 16], s3s::dto::Checksum), WriteError> {
        let md5 = match self.md5 {
            BodyMd5::Inline(h) => h.finalize(),
            BodyMd5::Engine(s) => s.finish().await.map_err(internal)?,
        };
        Ok((md5, self.checksums.finalize()))
    }
}

/// The request body as the pipelines consume it.
pub type BodyStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// A body stream that fails with [`std::io::ErrorKind::TimedOut`] when the
/// client sends nothing for `idle` while the gateway waits for it. The clock
/// runs only while a read is pending: time the gateway spends on stored
/// data (a slow datanode, back-pressure) does not count against the client.
pub struct IdleTimeout {
    inner: BodyStream,
    idle: Duration,
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
    waiting: bool,
}

impl IdleTimeout {
    /// Wraps `inner`.
    pub fn new(inner: BodyStream, idle: Duration) -> Self {
        IdleTimeout { inner, idle, sleep: Box::pin(tokio::time::sleep(idle)), waiting: false }
    }
}

impl Stream for IdleTimeout {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = &mut *self;
        if let Poll::Ready(item) = this.inner.as_mut().poll_next(cx) {
            this.waiting = false;
            return Poll::Ready(item);
        }
        // The timer is armed when the body stalls, not for every chunk.
        if !this.waiting {
            this.waiting = true;
            this.sleep.as_mut().reset(tokio::time::Instant::now() + this.idle);
        }
        match this.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.waiting = false;
                Poll::Ready(Some(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, IdleBody(this.idle)))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The error an [`IdleTimeout`] yields.
#[derive(Debug, thiserror::Error)]
#[error("no body data arrived for {0:?}")]
struct IdleBody(Duration);

fn body_error(e: &std::io::Error) -> WriteError {
    match e.get_ref().and_then(|i| i.downcast_ref::<IdleBody>()) {
        Some(IdleBody(d)) => WriteError::Idle(*d),
        None => WriteError::Body(e.to_string()),
    }
}

/// Reads up to `want` bytes (fewer only at the end of the body), hashing them.
async fn fill(
    body: &mut BodyStream,
    buf: &mut BytesMut,
    want: usize,
    digest: &mut BodyDigest,
) -> Result<(), WriteError> {
    while buf.len() < want {
        match body.next().await {
            Some(Ok(chunk)) => {
                digest.update(&chunk).await?;
                buf.extend_from_slice(&chunk);
            }
            Some(Err(e)) => return Err(body_error(&e)),
            None => break,
        }
    }
    Ok(())
}

/// Reads the whole body (at most `len` bytes, for inline objects), sealed
/// when `seal` is given.
pub async fn read_small(
    body: &mut BodyStream,
    len: u64,
    digest: &mut BodyDigest,
    seal: Option<&BodyCipher>,
) -> Result<Bytes, WriteError> {
    let mut buf = BytesMut::with_capacity(len as usize);
    fill(body, &mut buf, len as usize + 1, digest).await?;
    check_len(buf.len() as u64, len)?;
    let Some(c) = seal else { return Ok(buf.freeze()) };
    let mut out = BytesMut::with_capacity(sse::stored_len(len) as usize);
    for (i, p) in buf.chunks(sse::PACKAGE as usize).enumerate() {
        let start = out.len();
        out.extend_from_slice(p);
        c.seal(i as u64, &mut out, start);
    }
    Ok(out.freeze())
}

/// The body as the stripes want it: plain, or sealed package by package
/// (the digest always sees the plaintext).
struct Source<'a> {
    body: &'a mut BodyStream,
    digest: &'a mut BodyDigest,
    plain_len: u64,
    seal: Option<&'a BodyCipher>,
    /// Plaintext read ahead of the next package.
    plain: BytesMut,
    next: u64,
}

impl Source<'_> {
    /// Appends stored bytes to `buf` until it holds `want` (fewer only at the end).
    async fn fill(&mut self, buf: &mut BytesMut, want: usize) -> Result<(), WriteError> {
        let Some(c) = self.seal else { return fill(self.body, buf, want, self.digest).await };
        while buf.len() < want {
            let n = sse::package_plain_len(self.plain_len, self.next) as usize;
            if n == 0 {
                break;
            }
            fill(self.body, &mut self.plain, n, self.digest).await?;
            if self.plain.len() < n {
                return Err(WriteError::Incomplete { expected: self.plain_len, got: self.digest.len });
            }
            let start = buf.len();
            buf.extend_from_slice(&self.plain.split_to(n));
            c.seal(self.next, buf, start);
            self.next += 1;
        }
        Ok(())
    }

    /// Checks that the body ends at its declared length.
    async fn finish(&mut self) -> Result<(), WriteError> {
        let mut rest = BytesMut::new();
        fill(self.body, &mut rest, 1, self.digest).await?;
        check_len(self.digest.len, self.plain_len)
    }
}

fn check_len(got: u64, expected: u64) -> Result<(), WriteError> {
    match got.cmp(&expected) {
        std::cmp::Ordering::Less => Err(WriteError::Incomplete { expected, got }),
        std::cmp::Ordering::Greater => Err(WriteError::TooLong { expected }),
        std::cmp::Ordering::Equal => Ok(()),
    }
}

/// How a sharded body is written.
#[derive(Debug, Clone)]
pub struct WritePlan {
    /// Codec, k, m and block length.
    pub ec: EcProfile,
    /// The placement group.
    pub pg: u32,
    /// Disk of each shard position.
    pub disks: Vec<u32>,
    /// Part number in the block addresses (0 for a simple object).
    pub part: u32,
    /// Shards that must be stored for success (k ≤ quorum ≤ k + m).
    pub quorum: usize,
    /// How long one shard may stall before it is given up.
    pub shard_timeout: Duration,
}

struct ShardSink {
    tx: Option<mpsc::Sender<ShardFrame>>,
    task: tokio::task::JoinHandle<Result<(), tonic::Status>>,
    failure: Option<String>,
}

/// Streams `body` (exactly `len` bytes, `len` > 0) into shards per `plan`,
/// sealed by `seal` when given.
pub async fn write_sharded(
    cluster: &Cluster,
    codecs: &Codecs,
    plan: &WritePlan,
    len: u64,
    body: &mut BodyStream,
    digest: &mut BodyDigest,
    seal: Option<&BodyCipher>,
) -> Result<ShardSet, WriteError> {
    let plain_len = len;
    let len = if seal.is_some() { sse::stored_len(plain_len) } else { plain_len };
    let (k, m) = (plan.ec.k as usize, plan.ec.m as usize);
    let n = k + m;
    if plan.disks.len() != n {
        return Err(WriteError::Internal(format!("placement gave {} disks for {n} shards", plan.disks.len())));
    }
    let layout = StripeLayout::from_block_len(k, m, plan.ec.block_len as usize).map_err(internal)?;
    let codec = codecs.get(plan.ec.codec, k, m).map_err(internal)?;
    let coder = StripeCoder::new(codec, layout).map_err(internal)?;
    let data_id = DataId::new();
    let piece = PieceId { data_id: *data_id.as_bytes(), part: plan.part };
    let geometry = ShardGeometry {
        codec: plan.ec.codec,
        k: plan.ec.k,
        m: plan.ec.m,
        block_len: plan.ec.block_len,
        piece_len: len,
    };

    let mut sinks = Vec::with_capacity(n);
    for (i, &disk) in plan.disks.iter().enumerate() {
        let (tx, rx) = mpsc::channel::<ShardFrame>(4);
        let first = PutShardRequest {
            shard: Some(ShardRef {
                disk,
                data_id: Bytes::copy_from_slice(data_id.as_bytes()),
                part: plan.part,
                shard: i as u32,
            }),
            geometry: Some(geometry),
            frame: None,
        };
        let cluster = cluster.clone();
        let task = tokio::spawn(async move { cluster.put_shard(first, rx).await }.instrument(tracing::Span::current()));
        sinks.push(ShardSink { tx: Some(tx), task, failure: None });
    }

    let stripe_len = layout.stripe_data_len();
    let stripes = layout.stripe_count(len);
    let mut buf = BytesMut::with_capacity(stripe_len);
    let mut src = Source { body, digest, plain_len, seal, plain: BytesMut::new(), next: 0 };
    let result: Result<(), WriteError> = async {
        for s in 0..stripes {
            let want = layout.stripe_len(len, s);
            src.fill(&mut buf, want).await?;
            if buf.len() < want {
                return Err(WriteError::Incomplete { expected: plain_len, got: src.digest.len });
            }
            let rest = buf.split_off(want);
            let data = std::mem::replace(&mut buf, rest).freeze();
            let t = std::time::Instant::now();
            let encoded = coder.encode_stripe(piece, s, data).map_err(internal)?;
            cluster.metrics().ec_encode_seconds.observe(t.elapsed().as_secs_f64());
            for (sink, block) in sinks.iter_mut().zip(encoded.blocks) {
                let Some(tx) = &sink.tx else { continue };
                let msg = ShardFrame { hash: Bytes::copy_from_slice(&block.hash), block: block.data };
                match tokio::time::timeout(plan.shard_timeout, tx.send(msg)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => {
                        sink.tx = None; // the stream ended: its task says why
                    }
                    Err(_) => {
                        sink.tx = None;
                        sink.failure = Some("timed out".into());
                        sink.task.abort();
                    }
                }
            }
            let alive = sinks.iter().filter(|s| s.tx.is_some()).count();
            if alive < plan.quorum {
                return Err(WriteError::Quorum { stored: alive, needed: plan.quorum, reasons: String::new() });
            }
        }
        // Anything past the declared length is an error, and nothing is kept.
        src.finish().await
    }
    .await;

    if let Err(e) = result {
        // Ending the streams before their last stripe makes every datanode
        // discard what it received.
        for s in &mut sinks {
            s.tx = None;
        }
        if let WriteError::Quorum { stored, needed, .. } = e {
            let reasons = collect_reasons(sinks).await;
            return Err(WriteError::Quorum { stored, needed, reasons });
        }
        return Err(e);
    }

    // Every stripe was sent: closing the streams lets the datanodes fsync
    // and acknowledge.
    let mut missing = Vec::new();
    let mut reasons = Vec::new();
    for (i, mut s) in sinks.into_iter().enumerate() {
        s.tx = None;
        let outcome = match s.failure.take() {
            Some(f) => Err(f),
            None => match tokio::time::timeout(plan.shard_timeout, &mut s.task).await {
                Ok(Ok(Ok(()))) => Ok(()),
                Ok(Ok(Err(status))) => Err(format!("{:?}: {}", status.code(), status.message())),
                Ok(Err(join)) => Err(join.to_string()),
                Err(_) => {
                    s.task.abort();
                    Err("timed out".into())
                }
            },
        };
        if let Err(why) = outcome {
            missing.push(i as u32);
            cluster.metrics().shard_write_failures.inc();
            reasons.push(format!("shard {i} (disk {}): {why}", plan.disks[i]));
        }
    }
    let stored = n - missing.len();
    if stored < plan.quorum {
        return Err(WriteError::Quorum { stored, needed: plan.quorum, reasons: reasons.join("; ") });
    }
    if !reasons.is_empty() {
        tracing::warn!("write stored {stored}/{n} shards: {}", reasons.join("; "));
    }
    Ok(ShardSet {
        data_id: data_id.as_bytes().to_vec(),
        ec: Some(plan.ec),
        pg: plan.pg,
        disks: plan.disks.clone(),
        missing,
        stored_len: if seal.is_some() { len } else { 0 },
    })
}

async fn collect_reasons(sinks: Vec<ShardSink>) -> String {
    let mut out = Vec::new();
    for (i, s) in sinks.into_iter().enumerate() {
        if let Some(f) = s.failure {
            out.push(format!("shard {i}: {f}"));
        } else if let Ok(Ok(Err(status))) = tokio::time::timeout(Duration::from_millis(200), s.task).await {
            out.push(format!("shard {i}: {:?}: {}", status.code(), status.message()));
        }
    }
    out.join("; ")
}

fn internal(e: impl std::fmt::Display) -> WriteError {
    WriteError::Internal(e.to_string())
}
