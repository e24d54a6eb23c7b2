//! Reads that go around the page cache (`O_DIRECT`), into aligned buffers
//! that are used again and again.
//!
//! A cold read through the page cache costs the kernel a fresh page per
//! 4 KiB (on this project's VM about three times the copy into it) plus the
//! copy out to the reader. Read with `O_DIRECT`, the disk writes straight
//! into the reader's buffer: no page to take, no copy. The price: the
//! buffer's address and the file range must be aligned as the filesystem
//! says (`statx` `STATX_DIOALIGN`, Linux 6.1+), there is no read-ahead (the
//! caller reads ahead itself), and the bytes are not cached for the next
//! reader. Where the filesystem does not say, reads stay buffered.
//!
//! Buffers come from one process-wide [`BufferPool`] and go back to it
//! when the last [`Bytes`] made from them is dropped, so steady reading
//! does not fault in fresh zeroed pages for every batch either.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;

/// What a filesystem asks of direct reads: a buffer address and a file
/// offset (and length) that are multiples of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DirectIo {
    /// Alignment of the buffer's address.
    pub mem_align: usize,
    /// Alignment of the file offset and length.
    pub offset_align: u64,
}

/// Largest alignment taken at its word; a larger one is not believed.
const MAX_ALIGN: u32 = 64 << 10;

impl DirectIo {
    /// What `file`'s filesystem asks of direct reads, or `None` where it
    /// cannot do them or does not say (before Linux 6.1, or another OS).
    pub(crate) fn probe(file: &File) -> Option<DirectIo> {
        #[cfg(target_os = "linux")]
        {
            use rustix::fs::{AtFlags, StatxFlags, statx};
            let st = statx(file, "", AtFlags::EMPTY_PATH, StatxFlags::DIOALIGN).ok()?;
            let usable = |a: u32| a.is_power_of_two() && a <= MAX_ALIGN;
            if st.stx_mask & StatxFlags::DIOALIGN.bits() == 0
                || !usable(st.stx_dio_mem_align)
                || !usable(st.stx_dio_offset_align)
            {
                return None;
            }
            Some(DirectIo {
                mem_align: st.stx_dio_mem_align as usize,
                offset_align: u64::from(st.stx_dio_offset_align),
            })
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = file;
            None
        }
    }

    /// The smallest aligned file range holding `range`.
    pub(crate) fn widen(&self, range: Range<u64>) -> Range<u64> {
        let a = self.offset_align;
        let start = range.start - range.start % a;
        let end = range.end.div_ceil(a) * a;
        start..end
    }
}

/// Switches `file`'s reads to go around the page cache (`on`) or through
/// it again. Shared by every handle duplicated from the same open.
pub(crate) fn set_direct(file: &File, on: bool) -> io::Result<()> {
    use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
    let flags = fcntl_getfl(file)?;
    let want = if on { flags | OFlags::DIRECT } else { flags - OFlags::DIRECT };
    if want != flags {
        fcntl_setfl(file, want)?;
    }
    Ok(())
}

/// Buffers kept for reuse, in all.
const POOLED: usize = 128;
/// Bytes of the buffers kept for reuse, in all.
const POOLED_BYTES: usize = 48 << 20;
/// Buffers larger than this are not kept (a rare geometry: blocks > 1 MiB).
const POOLED_MAX_BYTES: usize = 4 << 20;
/// Buffer sizes are rounded up to this, so that batches of one geometry
/// share buffers.
const SIZE_STEP: usize = 64 << 10;

/// Read buffers, kept once used: a buffer taken again costs no page faults,
/// and the memory of every read in the process is reused from one place.
/// (Freed to the allocator instead, each buffer would go back to the heap of
/// the blocking-pool thread that read into it; mimalloc keeps such memory
/// with the thread until that thread allocates again, and a burst of reads
/// leaves dozens of idle threads holding it: 1 MiB GETs at 16 streams
/// peaked at ~400 MiB RSS that way.) Bounded: at most [`POOLED`] buffers
/// and [`POOLED_BYTES`] are kept; more in use at once are allocated and
/// freed.
#[derive(Debug, Default)]
pub(crate) struct BufferPool {
    free: Mutex<Kept>,
}

/// The buffers a pool keeps, and their bytes together.
#[derive(Debug, Default)]
struct Kept {
    bufs: Vec<Vec<u8>>,
    bytes: usize,
}

impl BufferPool {
    /// The process's pool.
    pub(crate) fn shared() -> &'static Arc<BufferPool> {
        static POOL: OnceLock<Arc<BufferPool>> = OnceLock::new();
        POOL.get_or_init(Default::default)
    }

    /// A buffer with `len` bytes starting at an address aligned to `align`
    /// (a power of two).
    pub(crate) fn take(self: &Arc<Self>, len: usize, align: usize) -> PooledBuf {
        let need = len + align;
        let reused = {
            let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
            // Not much larger than asked: a small read's frames could
            // otherwise hold a large buffer for as long as they live.
            let fits = |v: &Vec<u8>| v.len() >= need && v.len() <= need.max(SIZE_STEP) * 2;
            let found = free.bufs.iter().position(fits).map(|i| free.bufs.remove(i));
            if let Some(v) = &found {
                free.bytes -= v.len();
            }
            found
        };
        let vec = reused.unwrap_or_else(|| vec![0u8; need.div_ceil(SIZE_STEP) * SIZE_STEP]);
        // Bytes from the buffer's start to the next multiple of `align`.
        let start = (vec.as_ptr() as usize).wrapping_neg() & (align - 1);
        PooledBuf { vec, start, len, pool: Arc::clone(self) }
    }

    fn give(&self, vec: Vec<u8>) {
        if vec.len() > POOLED_MAX_BYTES + SIZE_STEP {
            return;
        }
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        // The buffer just used is kept; the longest unused make room for
        // it. So the pool follows the reads of the moment: a burst of large
        // reads (64 MiB GETs) must not leave it full of buffers no later
        // read fits, while every smaller buffer is freed and allocated
        // afresh (zeroed pages, and RSS in the blocking threads' heaps:
        // 1 MiB GETs after 64 MiB ones ran at 600-1,200 ops/s instead of
        // ~1,450, with 507-1,065 MiB peak RSS; issue 24).
        while !free.bufs.is_empty() && (free.bufs.len() >= POOLED || free.bytes + vec.len() > POOLED_BYTES) {
            let old = free.bufs.remove(0);
            free.bytes -= old.len();
        }
        free.bytes += vec.len();
        free.bufs.push(vec);
    }

    /// Buffers waiting to be reused.
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.free.lock().map(|f| f.bufs.len()).unwrap_or(0)
    }
}

/// An aligned window into a pooled buffer; back to the pool when dropped.
#[derive(Debug)]
pub(crate) struct PooledBuf {
    vec: Vec<u8>,
    start: usize,
    len: usize,
    pool: Arc<BufferPool>,
}

impl PooledBuf {
    /// The window, writable.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.vec[self.start..self.start + self.len]
    }

    /// Shrinks the window to its first `len` bytes.
    pub(crate) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// The window as shareable bytes; the buffer goes back to the pool
    /// when the last slice of them is dropped.
    pub(crate) fn into_bytes(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for PooledBuf {
    fn as_ref(&self) -> &[u8] {
        &self.vec[self.start..self.start + self.len]
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.vec));
    }
}

/// Fills `buf` with the bytes of `file` from offset `at`, with as many
/// `pread`s as it takes; the bytes read, fewer only where the file ends.
/// `at`, `buf`'s address and length must suit the file's mode (for
/// `O_DIRECT`: aligned as [`DirectIo`] says; a direct read that ends
/// short at the end of the file is followed by one at the end, which
/// reads nothing whatever its alignment).
pub(crate) fn pread_full(file: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match rustix::io::pread(file, &mut buf[got..], at + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widen_covers_the_range_with_aligned_ends() {
        let d = DirectIo { mem_align: 512, offset_align: 4096 };
        assert_eq!(d.widen(64..4096 + 64), 0..8192);
        assert_eq!(d.widen(4096..8192), 4096..8192);
        assert_eq!(d.widen(8191..8193), 4096..12288);
        assert_eq!(d.widen(0..0), 0..0);
    }

    #[test]
    fn pooled_buffers_are_aligned_and_come_back() {
        for align in [512, 4096, 65536] {
            let pool = Arc::new(BufferPool::default());
            let mut b = pool.take(100_000, align);
            assert_eq!(b.as_mut_slice().as_ptr() as usize % align, 0);
            assert_eq!(b.as_mut_slice().len(), 100_000);
            b.as_mut_slice()[99_999] = 7;
            b.truncate(50);
            let bytes = b.into_bytes();
            assert_eq!(bytes.len(), 50);
            let slice = bytes.slice(10..20);
            drop(bytes);
            assert_eq!(pool.kept(), 0, "a slice still holds the buffer");
            drop(slice);
            assert_eq!(pool.kept(), 1);
            // Taken again: the same buffer, not a new one.
            let again = pool.take(100_000, align);
            assert_eq!(pool.kept(), 0);
            drop(again);
        }
        // A small read does not take a large buffer.
        let pool = Arc::new(BufferPool::default());
        drop(pool.take(1 << 20, 4096));
        drop(pool.take(100, 4096));
        assert_eq!(pool.kept(), 2, "the large buffer was not taken for 100 bytes");
        drop(pool.take(1 << 20, 4096));
        assert_eq!(pool.kept(), 2, "the large one was taken again");
        // Bounded: no more than POOLED kept, and no huge ones.
        let pool = Arc::new(BufferPool::default());
        let many: Vec<_> = (0..POOLED + 5).map(|_| pool.take(1000, 4096)).collect();
        drop(many);
        assert_eq!(pool.kept(), POOLED);
        let pool = Arc::new(BufferPool::default());
        drop(pool.take(POOLED_MAX_BYTES * 2, 4096));
        assert_eq!(pool.kept(), 0);
        // ... and no more than POOLED_BYTES in all.
        let pool = Arc::new(BufferPool::default());
        let many: Vec<_> = (0..64).map(|_| pool.take(1 << 20, 4096)).collect();
        drop(many);
        let free = pool.free.lock().unwrap();
        let kept: usize = free.bufs.iter().map(Vec::len).sum();
        assert_eq!(kept, free.bytes);
        assert!(kept <= POOLED_BYTES && kept > POOLED_BYTES - (2 << 20), "{kept} bytes kept");
    }

    #[test]
    fn a_pool_full_of_large_buffers_makes_room_for_the_reads_of_the_moment() {
        let pool = Arc::new(BufferPool::default());
        // Buffers of exactly 4 MiB: twelve fill the pool to the byte.
        let large: Vec<_> = (0..16).map(|_| pool.take((4 << 20) - 4096, 4096)).collect();
        drop(large);
        assert_eq!(pool.free.lock().unwrap().bytes, POOLED_BYTES);
        // A small buffer given back is kept (a large one goes instead) ...
        let mut small = pool.take(256 << 10, 4096);
        let first = small.as_mut_slice().as_ptr() as usize;
        drop(small);
        assert!(pool.free.lock().unwrap().bufs.iter().any(|b| b.len() < (1 << 20)), "the small buffer was not kept");
        // ... and the next small read takes it, not fresh memory.
        let mut again = pool.take(256 << 10, 4096);
        assert_eq!(again.as_mut_slice().as_ptr() as usize, first);
        drop(again);
        assert!(pool.free.lock().unwrap().bytes <= POOLED_BYTES);
    }

    #[test]
    fn direct_reads_of_an_aligned_range_match_buffered_ones() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        std::fs::write(&path, &data).expect("write");
        let f = File::open(&path).expect("open");
        let Some(dio) = DirectIo::probe(&f) else {
            eprintln!("the temp directory's filesystem does not say how to read around the cache; nothing to test");
            return;
        };
        set_direct(&f, true).expect("O_DIRECT");
        let pool = Arc::new(BufferPool::default());
        // A range ending past the end of the file: a short read, to the end.
        let want = 300_001..1_000_000u64;
        let wide = dio.widen(want.start..want.end + 10);
        let mut buf = pool.take((wide.end - wide.start) as usize, dio.mem_align);
        let got = pread_full(&f, buf.as_mut_slice(), wide.start).expect("direct read");
        assert_eq!(got as u64, 1_000_000 - wide.start);
        let skip = (want.start - wide.start) as usize;
        assert_eq!(&buf.as_mut_slice()[skip..got], &data[want.start as usize..]);
        // Switched back, an unaligned buffered read works again.
        set_direct(&f, false).expect("buffered");
        let mut small = [0u8; 3];
        assert_eq!(pread_full(&f, &mut small, 5).expect("read"), 3);
        assert_eq!(small, data[5..8]);
    }
}
