//! The engine: one thread, sixteen lanes, any number of streams.
//!
//! A stream queues its body's 64-byte-aligned chunks (`Bytes`, not copied)
//! and goes on with its request; the engine thread gives each stream with
//! queued data a lane, compresses all busy lanes together, and when a
//! stream's queue runs dry hands its state back and frees the lane. MD5 is
//! serial within one body, but sixteen bodies fill sixteen lanes.
//!
//! ```text
//!  request tasks                      engine thread
//!  Md5Stream::update(chunk) ──queue──► ready streams ──► lanes 0..15 ──► compress16
//!  Md5Stream::finish() ◄──Notify────── state handed back when the queue is empty
//! ```
//!
//! Memory: a stream waits in `update` while more than `QUEUE_LIMIT` bytes
//! of it are queued, so a slow engine slows the body, never grows memory.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use bytes::{Buf as _, Bytes};
use tokio::sync::Notify;

use crate::kernel::{self, BLOCK_LEN, INITIAL_STATE, Kernel, LaneStates};

/// Bytes a stream may have queued before `update` waits.
pub const QUEUE_LIMIT: usize = 4 << 20;

/// Longest run of blocks between looks at the ready queue: 64 blocks of
/// sixteen lanes is about 10 µs of work, so a new stream waits no longer.
const RUN_BLOCKS: usize = 64;

/// The engine stopped while a stream needed it (its thread panicked: a bug).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the MD5 engine stopped")]
pub struct EngineStopped;

/// Counters of the engine's work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Sixteen-lane block rounds run.
    pub rounds: u64,
    /// Blocks hashed (busy lanes summed over rounds); `lane_blocks / rounds`
    /// is the mean number of busy lanes.
    pub lane_blocks: u64,
}

/// A running MD5 engine. Cloning shares it; the thread stops when the last
/// clone and the last stream are gone.
#[derive(Clone)]
pub struct Md5Engine {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for Md5Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Md5Engine").field("kernel", &self.handle.shared.kernel).finish()
    }
}

struct Handle {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    ready: Mutex<Ready>,
    wake: Condvar,
    kernel: Kernel,
    /// The thread ended by a panic.
    dead: AtomicBool,
    rounds: AtomicU64,
    lane_blocks: AtomicU64,
}

#[derive(Default)]
struct Ready {
    streams: VecDeque<Arc<StreamShared>>,
    /// The engine thread waits on `wake`.
    sleeping: bool,
    closing: bool,
}

struct StreamShared {
    inner: Mutex<StreamInner>,
    /// Signalled whenever the engine finishes one of the stream's chunks.
    progress: Notify,
}

struct StreamInner {
    queue: VecDeque<Bytes>,
    /// Queued bytes, including the chunk in a lane.
    queued: usize,
    /// The state after every chunk handed back so far.
    state: [u32; 4],
    /// In the ready queue or in a lane.
    in_service: bool,
    /// The stream was dropped unfinished: skip its chunks.
    abandoned: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Md5Engine {
    /// Starts an engine with the fastest kernel this CPU runs.
    pub fn start() -> std::io::Result<Md5Engine> {
        Md5Engine::with_kernel(Kernel::detect())
    }

    /// Starts an engine with `kernel` (tests use the portable one).
    pub fn with_kernel(kernel: Kernel) -> std::io::Result<Md5Engine> {
        let shared = Arc::new(Shared {
            ready: Mutex::new(Ready::default()),
            wake: Condvar::new(),
            kernel,
            dead: AtomicBool::new(false),
            rounds: AtomicU64::new(0),
            lane_blocks: AtomicU64::new(0),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new().name("tessera-md5".into()).spawn(move || run(&s))?;
        Ok(Md5Engine { handle: Arc::new(Handle { shared, thread: Some(thread) }) })
    }

    /// The kernel in use.
    pub fn kernel(&self) -> Kernel {
        self.handle.shared.kernel
    }

    /// The work done so far.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            rounds: self.handle.shared.rounds.load(Ordering::Relaxed),
            lane_blocks: self.handle.shared.lane_blocks.load(Ordering::Relaxed),
        }
    }

    /// A new message to hash.
    pub fn stream(&self) -> Md5Stream {
        Md5Stream {
            shared: Arc::new(StreamShared {
                inner: Mutex::new(StreamInner {
                    queue: VecDeque::new(),
                    queued: 0,
                    state: INITIAL_STATE,
                    in_service: false,
                    abandoned: false,
                }),
                progress: Notify::new(),
            }),
            engine: self.handle.clone(),
            tail: [0; BLOCK_LEN],
            tail_len: 0,
            len: 0,
            finished: false,
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        lock(&self.shared.ready).closing = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            // A panic in the thread was already reported by the panic hook.
            let _ = t.join(); // its result is only the panic payload
        }
    }
}

/// One message being hashed by the engine.
pub struct Md5Stream {
    shared: Arc<StreamShared>,
    engine: Arc<Handle>,
    /// Bytes not yet making up a whole block.
    tail: [u8; BLOCK_LEN],
    tail_len: usize,
    len: u64,
    finished: bool,
}

impl Md5Stream {
    /// Bytes given so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Bytes given but not hashed yet (whole blocks only).
    pub fn queued(&self) -> usize {
        lock(&self.shared.inner).queued
    }

    /// No bytes given yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `data` to the message. Returns at once unless more than
    /// [`QUEUE_LIMIT`] bytes are waiting to be hashed.
    pub async fn update(&mut self, mut data: Bytes) -> Result<(), EngineStopped> {
        self.len += data.len() as u64;
        if self.tail_len > 0 {
            let take = (BLOCK_LEN - self.tail_len).min(data.len());
            self.tail[self.tail_len..self.tail_len + take].copy_from_slice(&data[..take]);
            self.tail_len += take;
            data.advance(take);
            if self.tail_len == BLOCK_LEN {
                self.tail_len = 0;
                self.push(Bytes::copy_from_slice(&self.tail))?;
            }
        }
        let whole = data.len() / BLOCK_LEN * BLOCK_LEN;
        if whole > 0 {
            self.push(data.split_to(whole))?;
        }
        self.tail[..data.len()].copy_from_slice(&data);
        self.tail_len += data.len();
        self.wait_until(|s| s.queued <= QUEUE_LIMIT).await
    }

    /// The MD5 of everything given.
    pub async fn finish(mut self) -> Result<[u8; 16], EngineStopped> {
        let (last, n) = kernel::final_blocks(&self.tail[..self.tail_len], self.len);
        self.push(Bytes::copy_from_slice(&last[..n * BLOCK_LEN]))?;
        self.wait_until(|s| !s.in_service).await?;
        self.finished = true;
        let state = lock(&self.shared.inner).state;
        Ok(kernel::digest(&state))
    }

    fn push(&self, chunk: Bytes) -> Result<(), EngineStopped> {
        let shared = &self.engine.shared;
        if shared.dead.load(Ordering::Acquire) {
            return Err(EngineStopped);
        }
        let mut s = lock(&self.shared.inner);
        s.queued += chunk.len();
        s.queue.push_back(chunk);
        if !s.in_service {
            s.in_service = true;
            let mut ready = lock(&shared.ready);
            ready.streams.push_back(self.shared.clone());
            if ready.sleeping {
                ready.sleeping = false;
                shared.wake.notify_one();
            }
        }
        Ok(())
    }

    async fn wait_until(&self, done: impl Fn(&StreamInner) -> bool) -> Result<(), EngineStopped> {
        loop {
            // `Notify` keeps one permit, so a signal between the check and
            // the wait is not lost.
            let progress = self.shared.progress.notified();
            if done(&lock(&self.shared.inner)) {
                return Ok(());
            }
            if self.engine.shared.dead.load(Ordering::Acquire) {
                return Err(EngineStopped);
            }
            progress.await;
        }
    }
}

impl Drop for Md5Stream {
    fn drop(&mut self) {
        if !self.finished {
            let mut s = lock(&self.shared.inner);
            s.abandoned = true;
            s.queued -= s.queue.iter().map(Bytes::len).sum::<usize>();
            s.queue.clear();
        }
    }
}

/// A stream in a lane.
struct Lane {
    stream: Arc<StreamShared>,
    chunk: Bytes,
    pos: usize,
}

/// The engine thread's lanes; on a panic, wakes every stream it holds so
/// none waits forever.
struct Lanes<'a> {
    shared: &'a Shared,
    lanes: [Option<Lane>; 16],
    states: LaneStates,
}

impl Drop for Lanes<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.shared.dead.store(true, Ordering::Release);
            for lane in self.lanes.iter().flatten() {
                lane.stream.progress.notify_one();
            }
            for s in &lock(&self.shared.ready).streams {
                s.progress.notify_one();
            }
        }
    }
}

fn run(shared: &Shared) {
    let mut l = Lanes { shared, lanes: Default::default(), states: [[0; 16]; 4] };
    loop {
        if !l.fill() {
            return;
        }
        let n = l.lanes.iter().flatten().map(|x| (x.chunk.len() - x.pos) / BLOCK_LEN).min().unwrap_or(0);
        let n = n.min(RUN_BLOCKS);
        let busy = l.lanes.iter().flatten().count() as u64;
        if n > 0 {
            let slices: [&[u8]; 16] = std::array::from_fn(|i| {
                l.lanes[i].as_ref().map_or(&[][..], |x| &x.chunk[x.pos..x.pos + n * BLOCK_LEN])
            });
            shared.kernel.compress16(&mut l.states, &slices, n);
            shared.rounds.fetch_add(n as u64, Ordering::Relaxed);
            shared.lane_blocks.fetch_add(n as u64 * busy, Ordering::Relaxed);
        }
        for i in 0..16 {
            let Some(lane) = &mut l.lanes[i] else { continue };
            lane.pos += n * BLOCK_LEN;
            if lane.pos == lane.chunk.len() {
                l.next_chunk(i);
            }
        }
    }
}

impl Lanes<'_> {
    /// Gives free lanes to ready streams, waiting for one while every lane
    /// is idle. False when the engine is closing and has nothing left.
    fn fill(&mut self) -> bool {
        let mut taken = Vec::new();
        {
            let mut ready = lock(&self.shared.ready);
            while ready.streams.is_empty() && self.lanes.iter().all(Option::is_none) {
                if ready.closing {
                    return false;
                }
                ready.sleeping = true;
                ready = self.shared.wake.wait(ready).unwrap_or_else(PoisonError::into_inner);
            }
            ready.sleeping = false;
            let free = self.lanes.iter().filter(|x| x.is_none()).count();
            while taken.len() < free {
                let Some(s) = ready.streams.pop_front() else { break };
                taken.push(s);
            }
        }
        for stream in taken {
            let Some(i) = self.lanes.iter().position(Option::is_none) else { break };
            let state = lock(&stream.inner).state;
            for (w, v) in state.into_iter().enumerate() {
                self.states[w][i] = v;
            }
            self.lanes[i] = Some(Lane { stream, chunk: Bytes::new(), pos: 0 });
            self.next_chunk(i);
        }
        true
    }

    /// Lane `i` finished its chunk: takes the stream's next one, or hands the
    /// state back and frees the lane.
    fn next_chunk(&mut self, i: usize) {
        let Some(lane) = &mut self.lanes[i] else { return };
        let stream = lane.stream.clone();
        let mut s = lock(&stream.inner);
        s.queued -= lane.chunk.len();
        let next = if s.abandoned { None } else { s.queue.pop_front() };
        match next {
            Some(chunk) => {
                lane.chunk = chunk;
                lane.pos = 0;
            }
            None => {
                s.state = [self.states[0][i], self.states[1][i], self.states[2][i], self.states[3][i]];
                s.in_service = false;
                self.lanes[i] = None;
            }
        }
        drop(s);
        stream.progress.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::Digest as _;
    use rand::{Rng as _, RngCore as _, SeedableRng as _};

    fn kernels() -> Vec<Kernel> {
        let mut k = vec![Kernel::Portable];
        if Kernel::detect() == Kernel::Avx512 {
            k.push(Kernel::Avx512);
        }
        k
    }

    /// Feeds `data` in random pieces, returns the digest.
    async fn hash_in_pieces(engine: &Md5Engine, data: Bytes, seed: u64) -> [u8; 16] {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut s = engine.stream();
        let mut at = 0;
        while at < data.len() {
            let max = if rng.random_bool(0.5) { 200 } else { 300_000 };
            let n = rng.random_range(1..=max).min(data.len() - at);
            s.update(data.slice(at..at + n)).await.expect("engine running");
            at += n;
            if rng.random_bool(0.1) {
                tokio::task::yield_now().await;
            }
        }
        assert_eq!(s.len(), data.len() as u64);
        s.finish().await.expect("engine running")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_streams_at_once_match_md5() {
        for kernel in kernels() {
            let seed = rand::rng().next_u64();
            eprintln!("{kernel:?}: seed {seed}");
            let engine = Md5Engine::with_kernel(kernel).expect("thread");
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            // More streams than lanes, sizes from empty to a few MiB.
            let mut tasks = Vec::new();
            for i in 0..40u64 {
                let len = match i % 4 {
                    0 => rng.random_range(0..200),
                    1 => rng.random_range(0..70_000),
                    _ => rng.random_range(0..3_000_000),
                };
                let mut data = vec![0u8; len];
                rng.fill_bytes(&mut data);
                let engine = engine.clone();
                let piece_seed = seed ^ i;
                tasks.push(tokio::spawn(async move {
                    let want: [u8; 16] = md5::Md5::digest(&data).into();
                    let got = hash_in_pieces(&engine, Bytes::from(data), piece_seed).await;
                    assert_eq!(got, want, "seed {seed}, stream {i}, {len} bytes");
                }));
            }
            for t in tasks {
                t.await.expect("stream task");
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_streams_share_the_lanes() {
        let engine = Md5Engine::start().expect("thread");
        let data = Bytes::from(vec![7u8; 4 << 20]);
        let want: [u8; 16] = md5::Md5::digest(&data).into();
        let mut streams: Vec<Md5Stream> = (0..16).map(|_| engine.stream()).collect();
        // Every stream queues its whole body (the queue limit) before the
        // first one waits.
        for s in &mut streams {
            s.update(data.clone()).await.expect("engine running");
        }
        for s in streams {
            assert_eq!(s.finish().await, Ok(want));
        }
        let st = engine.stats();
        let mean = st.lane_blocks as f64 / st.rounds as f64;
        assert_eq!(st.lane_blocks, 16 * ((4 << 20) / 64 + 1), "every block hashed once");
        // Hashed one at a time the mean would be 1; it stays below 16 only
        // because the first streams start before the last are queued (how
        // far depends on scheduling: 11.5–15 seen under a parallel test run).
        assert!(mean > 4.0, "mean busy lanes {mean:.1}: the streams did not share rounds");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fast_writer_waits_for_the_engine() {
        // The portable kernel hashes a few hundred MB/s; the writer queues
        // 64 MiB far faster than that, so only waiting keeps it bounded.
        let engine = Md5Engine::with_kernel(Kernel::Portable).expect("thread");
        let chunk = Bytes::from(vec![1u8; 1 << 20]);
        let mut s = engine.stream();
        let mut most = 0;
        let mut want = md5::Md5::new();
        for _ in 0..64 {
            s.update(chunk.clone()).await.expect("engine running");
            want.update(&chunk);
            most = most.max(s.queued());
        }
        assert!(most <= QUEUE_LIMIT, "{most} bytes queued");
        assert!(most > QUEUE_LIMIT / 2, "{most} bytes queued: the writer never got ahead (test too weak)");
        assert_eq!(s.finish().await, Ok(<[u8; 16]>::from(want.finalize())));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_stream_is_skipped_and_others_go_on() {
        let engine = Md5Engine::with_kernel(Kernel::Portable).expect("thread");
        let chunk = Bytes::from(vec![3u8; 1 << 20]);
        let dropped = engine.stream();
        for _ in 0..4 {
            dropped.push(chunk.clone()).expect("engine running");
        }
        drop(dropped);
        let mut s = engine.stream();
        s.update(Bytes::from_static(b"abc")).await.expect("engine running");
        let got = s.finish().await.expect("engine running");
        assert_eq!(got, crate::md5(b"abc"));
        // At most the chunk in its lane was hashed, not the whole queue.
        let st = engine.stats();
        assert!(st.lane_blocks < 2 * (1 << 20) / 64, "{st:?}");
    }

    #[tokio::test]
    async fn a_stream_outlives_its_engine_handle() {
        let engine = Md5Engine::start().expect("thread");
        let mut s = engine.stream();
        drop(engine);
        s.update(Bytes::from_static(b"message digest")).await.expect("engine running");
        assert_eq!(s.finish().await, Ok(crate::md5(b"message digest")));
    }

    #[tokio::test]
    async fn a_dead_engine_is_an_error_not_a_hang() {
        let engine = Md5Engine::with_kernel(Kernel::Failing).expect("thread");
        let mut s = engine.stream();
        s.update(Bytes::from(vec![0u8; 1000])).await.ok();
        let r = tokio::time::timeout(std::time::Duration::from_secs(10), s.finish()).await;
        assert_eq!(r.expect("finish returned"), Err(EngineStopped));
        let mut t = engine.stream();
        assert_eq!(t.update(Bytes::from(vec![0u8; 64])).await, Err(EngineStopped));
    }
}
