//! Reading a shard: every block verified before it is handed on, read
//! through the page cache or around it.
//!
//! ```text
//!  FsDisk::open_reader ─► header and file length checked
//!  read_batches(stripes, intent) ─► choose_source(intent, bytes, cachestat, read lately?)
//!    page cache: hint read-ahead (12–16 MiB ahead) ─► pread a batch (~1 MiB) ─► verify ─► emit ─► next
//!    disk:       [tessera-shard-read ×4] O_DIRECT pread batches n+1 … n+4 ──┐ handed over one by one
//!                [caller]                verify batch n ─► emit ◄────────────┘
//! ```
//!
//! Where from: a client's get of a few MiB or less, or of a range the page
//! cache mostly holds, reads through the cache (hot shards are served from
//! memory and stay there), and so does a get of a shard lately read around
//! the cache ([`crate::recent`]: a shard read again is cached for the reads
//! after). Any other larger get reads around it ([`crate::direct`]): the
//! disk writes into the reader's buffer, with no page cache to fill and no
//! copy out of it, while up to four threads keep the next reads in flight;
//! the bytes are not cached, as after a put. The scrubber always reads
//! around the cache where it can: it must check the disk's bytes, not a
//! cached copy, and leaves the cache to clients. Where the filesystem
//! cannot read around the cache, every read goes through it.

use std::fs::File;
use std::ops::Range;

use bytes::Bytes;
use tessera_ec::{BlockAddress, HASH_LEN, verify_frame};

use crate::direct::{BufferPool, DirectIo, pread_full, set_direct};
use crate::pagecache::cached_bytes;
use crate::shard::{ShardHeader, ShardKey, frame_len};
use crate::{FsDisk, ShardError};

/// Bytes of frames read per batch (at least one frame): large enough for
/// few system calls, small enough that the bytes are still in the CPU's
/// cache when they are sent.
const BATCH_BYTES: u64 = 1 << 20;
/// A client's get of fewer frame bytes than this reads through the page
/// cache: reading around it pays off over a stream of reads, not one.
const DIRECT_MIN_BYTES: u64 = 4 << 20;
/// Threads reading a shard around the page cache at once, so that this
/// many reads are in flight. Buffered reads keep several MiB in flight
/// through read-ahead; on this project's virtual disk a 64 MiB shard took
/// 42–47 ms with two threads, 32–37 ms with four, no less with six or
/// eight, and more with 2–4 MiB reads instead (`benches/datanode.rs`).
const READ_THREADS: usize = 4;
/// Reads around the page cache in flight on one disk, shared by the gets
/// reading it at once (each gets at least one): several gets at once keep
/// the disk busy between them, and memory stays at a few batches per get
/// (the peak RSS of `tessera-load`'s GET 64 MiB ×4, whose first reads of
/// each object go around the cache, was 200–222 MiB with 8, 184–200 MiB
/// with 4; 135–156 MiB reading through the cache only).
const DISK_READS_IN_FLIGHT: usize = 4;
/// How far ahead of a sequential reader the kernel is asked to read.
const PREFETCH_WINDOW: u64 = 16 << 20;
/// The most asked of the kernel in one read-ahead hint: it reads at most
/// its read-ahead size (`read_ahead_kb`, often 128 KiB–8 MiB) per hint and
/// silently drops the rest (a 16 MiB hint read 8 MiB here).
const PREFETCH_STEP: u64 = 4 << 20;

/// Why a shard is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadIntent {
    /// A client's get.
    Serve,
    /// The scrubber: the disk's own bytes, around the page cache.
    Scrub,
}

/// Where a batch's bytes were read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Through the page cache (what it held, and what read-ahead brought).
    PageCache,
    /// From the disk around the page cache (`O_DIRECT`).
    Disk,
}

impl Source {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Source::PageCache => "page_cache",
            Source::Disk => "disk",
        }
    }
}

/// Where one verified frame (`[hash][block]`) lies in its shard file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSpan {
    /// Byte offset of the frame's hash in the file.
    pub offset: u64,
    /// Hash and block, in bytes.
    pub len: usize,
}

/// The verified frames of consecutive stripes.
#[derive(Debug)]
pub struct Batch {
    /// The first stripe's index.
    pub first_stripe: u64,
    /// Each frame, hash then block, as stored.
    pub frames: Vec<Bytes>,
    /// Where each frame lies in the file: a caller can send a frame read
    /// through the page cache from the file itself (`sendfile(2)`,
    /// [`ShardReader::file`]), from the pages just read.
    pub spans: Vec<FrameSpan>,
    /// Where the bytes came from.
    pub source: Source,
}

/// How a [`ShardReader::read_batches`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadEnd {
    /// Every stripe asked for was handed on (the caller did not stop).
    pub complete: bool,
    /// Where the last batch was read from.
    pub source: Source,
}

/// A shard open for reading; see [`FsDisk::open_reader`].
#[derive(Debug)]
pub struct ShardReader {
    disk: FsDisk,
    key: ShardKey,
    file: File,
    header: ShardHeader,
    /// Where the next read through the page cache starts...
    pos: u64,
    /// ...the kernel was asked to read ahead up to here...
    prefetched: u64,
    /// ...and may be asked up to here (the end of the caller's range).
    until: u64,
}

/// Where a get's bytes should come from: see the module doc. `cached` is
/// how many of the range's `bytes` the page cache holds, if the kernel can
/// tell; `read_lately` whether the shard was lately read around the cache
/// (asked only of a large get the cache does not hold); `direct` whether
/// the filesystem can read around the cache.
fn choose_source(
    intent: ReadIntent,
    bytes: u64,
    cached: Option<u64>,
    read_lately: impl FnOnce() -> bool,
    direct: bool,
) -> Source {
    if !direct {
        return Source::PageCache;
    }
    match intent {
        ReadIntent::Scrub => Source::Disk,
        ReadIntent::Serve if bytes < DIRECT_MIN_BYTES => Source::PageCache,
        // Mostly cached: served from memory. Unknown: like after a put, not.
        ReadIntent::Serve if cached.is_some_and(|c| c.saturating_mul(2) >= bytes) => Source::PageCache,
        // Read a second time: through the cache, which keeps it for the next.
        ReadIntent::Serve if read_lately() => Source::PageCache,
        ReadIntent::Serve => Source::Disk,
    }
}

/// Threads for a read around the page cache of `batches` batches while
/// `gets` gets (this one included) read the disk so.
fn read_threads(gets: usize, batches: usize) -> usize {
    (DISK_READS_IN_FLIGHT / gets.max(1)).clamp(1, READ_THREADS).min(batches)
}

/// The read-ahead hints for a reader at `pos` that has asked up to
/// `prefetched` and will read up to `until`, and how far that asks: the
/// window is topped up a step at a time, so the disk always has 12–16 MiB
/// asked of it ahead of the reader, in hints of at most [`PREFETCH_STEP`].
fn prefetch_hints(pos: u64, prefetched: u64, until: u64) -> (Vec<Range<u64>>, u64) {
    let to = pos.saturating_add(PREFETCH_WINDOW).min(until);
    if prefetched >= to || (to < until && prefetched + PREFETCH_STEP > to) {
        return (Vec::new(), prefetched);
    }
    let mut hints = Vec::new();
    let mut from = prefetched.max(pos);
    while from < to {
        let end = (from + PREFETCH_STEP).min(to);
        hints.push(from..end);
        from = end;
    }
    (hints, to)
}

/// Checks each frame of `stripes` in `bytes` (which start at file offset
/// `at`, the first frame's) against its keyed hash; the verified batch.
fn verified(
    key: &ShardKey,
    header: &ShardHeader,
    stripes: Range<u64>,
    at: u64,
    bytes: Bytes,
    source: Source,
) -> Result<Batch, ShardError> {
    let n = (stripes.end - stripes.start) as usize;
    let mut batch =
        Batch { first_stripe: stripes.start, frames: Vec::with_capacity(n), spans: Vec::with_capacity(n), source };
    let mut offset = at;
    for s in stripes {
        let len = frame_len(header, s)?;
        let from = (offset - at) as usize;
        let Some(frame) = bytes.get(from..from + len) else {
            return Err(ShardError::Corrupt {
                key: *key,
                stripe: Some(s),
                reason: "file ends inside the block".into(),
            });
        };
        let addr = BlockAddress { data_id: *key.data_id.as_bytes(), part: key.part, shard: key.shard, stripe: s };
        if verify_frame(&addr, frame, len - HASH_LEN).is_err() {
            return Err(ShardError::Corrupt { key: *key, stripe: Some(s), reason: "block hash mismatch".into() });
        }
        batch.frames.push(bytes.slice(from..from + len));
        batch.spans.push(FrameSpan { offset, len });
        offset += len as u64;
    }
    Ok(batch)
}

/// Reads the `len` bytes of `file` at `offset` (through the page cache)
/// into a pooled buffer (see [`BufferPool`]), fewer only where the file
/// ends: one `pread` for the whole range (`read_to_end` starts at 8 KiB and
/// doubles: eight system calls for 1 MiB).
fn read_at(file: &File, len: usize, offset: u64) -> std::io::Result<Bytes> {
    let mut buf = BufferPool::shared().take(len, 1);
    let got = pread_full(file, buf.as_mut_slice(), offset)?;
    buf.truncate(got);
    Ok(buf.into_bytes())
}

/// Reads file bytes `range` around the page cache into a pooled buffer;
/// the bytes from `range.start`, fewer where the file ends.
fn read_direct(file: &File, dio: DirectIo, range: Range<u64>) -> std::io::Result<Bytes> {
    let wide = dio.widen(range.clone());
    let mut buf = BufferPool::shared().take((wide.end - wide.start) as usize, dio.mem_align);
    let got = pread_full(file, buf.as_mut_slice(), wide.start)?;
    buf.truncate(got);
    let skip = ((range.start - wide.start) as usize).min(got);
    Ok(buf.into_bytes().slice(skip..))
}

/// One batch of a read: its stripes and their bytes in the file.
#[derive(Clone, Debug)]
struct Planned {
    stripes: Range<u64>,
    bytes: Range<u64>,
}

/// How a read around the page cache ended.
enum DirectEnd {
    Done {
        complete: bool,
    },
    /// The filesystem refused: read on through the cache from `from`.
    Refused {
        from: u64,
    },
}

impl ShardReader {
    pub(crate) fn new(disk: FsDisk, key: ShardKey, file: File, header: ShardHeader) -> Self {
        // A hint only: a larger read-ahead window for this file.
        let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::Sequential);
        ShardReader { disk, key, file, header, pos: 0, prefetched: 0, until: 0 }
    }

    /// The shard's header.
    pub fn header(&self) -> &ShardHeader {
        &self.header
    }

    /// A second handle on the shard's file (its own descriptor: reads
    /// through it at an offset do not move this reader).
    pub fn file(&self) -> Result<File, ShardError> {
        self.file.try_clone().map_err(|e| ShardError::io(format!("dup shard {}", self.key), e))
    }

    /// Reads and verifies the frames (`[hash][block]`) of `stripes`, all at
    /// once; a bad block is [`ShardError::Corrupt`] naming its stripe.
    pub fn read_frames(&mut self, stripes: Range<u64>) -> Result<Vec<Bytes>, ShardError> {
        let mut frames = Vec::new();
        self.read_batches(stripes, ReadIntent::Serve, |b| {
            frames.extend(b.frames);
            true
        })?;
        Ok(frames)
    }

    /// Reads `stripes` a batch (~1 MiB) at a time, verifies every block,
    /// and hands each batch to `emit`, in order, until it returns false.
    /// Memory stays at a few batches whatever the range. A bad block is
    /// [`ShardError::Corrupt`] naming its stripe — never bad bytes; the
    /// batches before it were handed on.
    pub fn read_batches(
        &mut self,
        stripes: Range<u64>,
        intent: ReadIntent,
        mut emit: impl FnMut(Batch) -> bool,
    ) -> Result<ReadEnd, ShardError> {
        let total = self.header.stripes()?;
        if stripes.start > stripes.end || stripes.end > total {
            return Err(ShardError::BadRequest(format!("stripes {stripes:?} outside 0..{total}")));
        }
        let range = self.header.frame_offset(stripes.start)?..self.header.frame_offset(stripes.end)?;
        let bytes = range.end - range.start;
        let dio = self.disk.direct_io(&self.file);
        // Asked only where the answer can change the choice.
        let asks = dio.is_some() && intent == ReadIntent::Serve && bytes >= DIRECT_MIN_BYTES;
        let cached = if asks { cached_bytes(&self.file, range) } else { None };
        let mut from = stripes.start;
        let read_lately = || self.disk.read_around_cache_lately(&self.key);
        if let (Some(dio), Source::Disk) = (dio, choose_source(intent, bytes, cached, read_lately, dio.is_some())) {
            match self.read_around_cache(from..stripes.end, dio, &mut emit)? {
                DirectEnd::Done { complete } => return Ok(ReadEnd { complete, source: Source::Disk }),
                DirectEnd::Refused { from: f } => from = f,
            }
        }
        let complete = self.read_through_cache(from..stripes.end, &mut emit)?;
        Ok(ReadEnd { complete, source: Source::PageCache })
    }

    /// The batches of `stripes`.
    fn batches(&self, stripes: Range<u64>) -> Result<Vec<Planned>, ShardError> {
        let per = (BATCH_BYTES / u64::from(self.header.block_len.max(1))).max(1);
        let mut out = Vec::with_capacity((stripes.end - stripes.start).div_ceil(per) as usize);
        let mut s = stripes.start;
        while s < stripes.end {
            let upto = (s + per).min(stripes.end);
            out.push(Planned {
                stripes: s..upto,
                bytes: self.header.frame_offset(s)?..self.header.frame_offset(upto)?,
            });
            s = upto;
        }
        Ok(out)
    }

    fn read_through_cache(
        &mut self,
        stripes: Range<u64>,
        emit: &mut impl FnMut(Batch) -> bool,
    ) -> Result<bool, ShardError> {
        self.until = self.header.frame_offset(stripes.end)?;
        for Planned { stripes: batch, bytes: range } in self.batches(stripes)? {
            self.pos = range.start;
            self.prefetch();
            let buf = read_at(&self.file, (range.end - range.start) as usize, range.start)
                .map_err(|e| ShardError::io(format!("read shard {}", self.key), e))?;
            self.pos += buf.len() as u64;
            if !emit(verified(&self.key, &self.header, batch, range.start, buf, Source::PageCache)?) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Asks the kernel to read ahead of [`ShardReader::read_through_cache`],
    /// so the disk works while the blocks already read are verified and
    /// sent. A hint only.
    fn prefetch(&mut self) {
        let (hints, upto) = prefetch_hints(self.pos, self.prefetched, self.until);
        for r in hints {
            if let Some(len) = std::num::NonZeroU64::new(r.end - r.start) {
                let _ = rustix::fs::fadvise(&self.file, r.start, Some(len), rustix::fs::Advice::WillNeed);
            }
        }
        self.prefetched = upto;
    }

    /// Reads `stripes` around the page cache: up to [`READ_THREADS`]
    /// threads (fewer while other gets read the disk: see
    /// [`DISK_READS_IN_FLIGHT`]) read the batches in turn, each handing its
    /// batch over when this thread has verified and handed on the one
    /// before (so at most one batch a thread, plus this one's, is in memory).
    fn read_around_cache(
        &mut self,
        stripes: Range<u64>,
        dio: DirectIo,
        emit: &mut impl FnMut(Batch) -> bool,
    ) -> Result<DirectEnd, ShardError> {
        let batches = self.batches(stripes.clone())?;
        if let Err(e) = set_direct(&self.file, true) {
            self.disk.refuse_direct_io(&e);
            return Ok(DirectEnd::Refused { from: stripes.start });
        }
        let (key, header, file, disk) = (self.key, self.header, &self.file, &self.disk);
        // One batch's read: verified and handed on; `Some` if it ends the read.
        let mut take = |batch: Range<u64>, at: u64, read: std::io::Result<Bytes>| match read {
            Ok(bytes) => {
                let more = emit(verified(&key, &header, batch, at, bytes, Source::Disk)?);
                Ok((!more).then_some(DirectEnd::Done { complete: false }))
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                disk.refuse_direct_io(&e);
                Ok(Some(DirectEnd::Refused { from: batch.start }))
            }
            Err(e) => Err(ShardError::io(format!("read shard {key}"), e)),
        };
        let end = if let [Planned { stripes: batch, bytes: range }] = batches.as_slice() {
            // One batch: nothing to overlap it with.
            let read = read_direct(file, dio, range.clone());
            take(batch.clone(), range.start, read).map(|end| end.unwrap_or(DirectEnd::Done { complete: true }))
        } else {
            let sharing = disk.begin_direct_read();
            std::thread::scope(|scope| {
                // Thread t reads batches t, t + threads, ...
                let threads = read_threads(sharing.gets(), batches.len());
                let mut handed = Vec::with_capacity(threads);
                for t in 0..threads {
                    let (tx, rx) = std::sync::mpsc::sync_channel(0);
                    let mine: Vec<_> = batches.iter().skip(t).step_by(threads).cloned().collect();
                    let name = "tessera-shard-read".to_owned();
                    let reads = std::thread::Builder::new().name(name).spawn_scoped(scope, move || {
                        for Planned { stripes: batch, bytes: range } in mine {
                            let read = read_direct(file, dio, range.clone());
                            let failed = read.is_err();
                            if tx.send((batch, range.start, read)).is_err() || failed {
                                return; // the caller stopped, or this read failed
                            }
                        }
                    });
                    if let Err(e) = reads {
                        tracing::warn!(error = %e, "could not start a shard read thread; reading through the page cache");
                        return Ok(DirectEnd::Refused { from: stripes.start });
                    }
                    handed.push(rx);
                }
                // Returning early drops the receivers, which stops each
                // thread at its next send.
                for i in 0..batches.len() {
                    let Ok((batch, at, read)) = handed[i % threads].recv() else {
                        let stopped = std::io::Error::other("a read thread stopped");
                        return Err(ShardError::io(format!("read shard {key}"), stopped));
                    };
                    if let Some(end) = take(batch, at, read)? {
                        return Ok(end);
                    }
                }
                Ok(DirectEnd::Done { complete: true })
            })
        };
        // Buffered again for whatever reads this file next (a sendfile of
        // a duplicated handle shares the mode).
        if let Err(e) = set_direct(&self.file, false) {
            return Err(ShardError::io(format!("set shard {key} back to buffered reads"), e));
        }
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// A sequential reader, 1 MiB a step, over a 100 MiB range: every byte
    /// is hinted exactly once, before the reader gets to it, in hints the
    /// kernel does not cut short, and the disk always has at least 12 MiB
    /// (or the rest of the range) asked of it ahead of the reader.
    #[test]
    fn prefetch_hints_keep_the_window_full_without_holes() {
        let (start, until) = (4096, 100 * MIB + 4096);
        let (mut pos, mut prefetched, mut covered) = (start, 0, start);
        while pos < until {
            let (hints, upto) = prefetch_hints(pos, prefetched, until);
            for h in &hints {
                assert_eq!(h.start, covered, "a hole or an overlap before {h:?}");
                assert!(h.end - h.start <= PREFETCH_STEP && h.end > h.start, "{h:?}");
                covered = h.end;
            }
            assert!(upto >= prefetched && upto == covered.max(prefetched));
            prefetched = upto;
            assert!(prefetched >= (pos + PREFETCH_WINDOW - PREFETCH_STEP).min(until), "at {pos}: only {prefetched}");
            assert!(prefetched <= pos + PREFETCH_WINDOW);
            pos = (pos + MIB).min(until);
        }
        assert_eq!(covered, until);
        // A reader that jumps (a range get) is hinted from where it is.
        let (hints, upto) = prefetch_hints(50 * MIB, 20 * MIB, until);
        assert_eq!(hints.first().map(|h| h.start), Some(50 * MIB));
        assert_eq!(upto, 50 * MIB + PREFETCH_WINDOW);
    }

    /// A filesystem that refuses a read around the page cache it said it
    /// could do (here: told alignments it does not keep): the read goes on
    /// through the cache, whole and verified, and so does every later one.
    #[test]
    fn a_refused_read_around_the_cache_goes_on_through_it() {
        use tessera_common::{DataId, DiskId};
        let dir = tempfile::tempdir().expect("temp dir");
        let st = rustix::fs::statfs(dir.path()).expect("statfs");
        if st.f_type as i64 == 0x0102_1994 {
            eprintln!("the temp directory is a tmpfs, which takes unaligned direct reads; nothing to test");
            return;
        }
        let disk = FsDisk::open(DiskId(1), dir.path())
            .expect("open")
            .with_direct_io(Some(DirectIo { mem_align: 1, offset_align: 1 }));
        let key = ShardKey { data_id: DataId::new(), part: 0, shard: 0 };
        let block = 256 << 10;
        let header = ShardHeader { key, codec: 1, k: 1, m: 0, block_len: block as u32, piece_len: 6 * MIB };
        let mut w = disk.create(header).expect("create");
        let mut frames = Vec::new();
        for s in 0..24u64 {
            let data = vec![s as u8; block];
            let addr = BlockAddress { data_id: *key.data_id.as_bytes(), part: 0, shard: 0, stripe: s };
            let hash = tessera_ec::block_hash(&addr, &data);
            w.write_frame(&hash, &data).expect("write");
            frames.push([&hash[..], &data].concat());
        }
        w.finish().expect("finish");
        for _ in 0..2 {
            let mut r = disk.open_reader(&key).expect("open reader");
            let mut got = Vec::new();
            let end = r
                .read_batches(0..24, ReadIntent::Serve, |b| {
                    got.extend(b.frames.iter().map(|f| f.to_vec()));
                    true
                })
                .expect("read");
            assert_eq!(end, ReadEnd { complete: true, source: Source::PageCache });
            assert_eq!(got, frames);
            assert!(disk.direct_io(&r.file).is_none(), "the disk reads through the cache from now on");
        }
    }

    #[test]
    fn gets_reading_one_disk_at_once_share_its_reads_in_flight() {
        assert_eq!(read_threads(1, 64), READ_THREADS);
        assert_eq!(read_threads(1, 2), 2, "no more threads than batches");
        assert_eq!(read_threads(2, 64), 2);
        assert_eq!(read_threads(3, 64), 1);
        assert_eq!(read_threads(4, 64), 1);
        assert_eq!(read_threads(100, 64), 1, "every get reads");
        for gets in 1..20 {
            assert!(read_threads(gets, 64) * gets <= DISK_READS_IN_FLIGHT.max(gets));
        }
    }

    #[test]
    fn small_cached_or_reread_gets_read_through_the_cache_large_cold_ones_around_it() {
        use ReadIntent::*;
        use Source::*;
        let big = 64 * MIB;
        let (once, again) = (|| false, || true);
        // Small: through the cache, whatever it holds.
        assert_eq!(choose_source(Serve, DIRECT_MIN_BYTES - 1, Some(0), once, true), PageCache);
        assert_eq!(choose_source(Serve, 256 << 10, None, once, true), PageCache);
        // Large: around the cache unless it holds at least half the range.
        assert_eq!(choose_source(Serve, big, Some(0), once, true), Disk);
        assert_eq!(choose_source(Serve, big, Some(big / 2 - 4096), once, true), Disk);
        assert_eq!(choose_source(Serve, big, Some(big / 2), once, true), PageCache);
        assert_eq!(choose_source(Serve, big, Some(big), once, true), PageCache);
        // A kernel that cannot tell: taken as cold, as after a put.
        assert_eq!(choose_source(Serve, big, None, once, true), Disk);
        // Read again lately: through the cache, to be cached.
        assert_eq!(choose_source(Serve, big, Some(0), again, true), PageCache);
        assert_eq!(choose_source(Serve, big, None, again, true), PageCache);
        // Asked only of a large get the cache does not hold (asking
        // remembers the shard).
        let asked = std::cell::Cell::new(0);
        let ask = || {
            asked.set(asked.get() + 1);
            false
        };
        choose_source(Serve, 4096, Some(0), ask, true);
        choose_source(Serve, big, Some(big), ask, true);
        choose_source(Scrub, big, Some(0), ask, true);
        choose_source(Serve, big, Some(0), ask, false);
        assert_eq!(asked.get(), 0);
        choose_source(Serve, big, Some(0), ask, true);
        assert_eq!(asked.get(), 1);
        // The scrubber reads the disk itself, small, cached or read again.
        assert_eq!(choose_source(Scrub, 4096, Some(4096), again, true), Disk);
        assert_eq!(choose_source(Scrub, big, Some(big), again, true), Disk);
        // A filesystem that cannot read around the cache: always through it.
        for intent in [Serve, Scrub] {
            for bytes in [4096, big] {
                assert_eq!(choose_source(intent, bytes, Some(0), once, false), PageCache);
                assert_eq!(choose_source(intent, bytes, None, once, false), PageCache);
            }
        }
    }
}
