//! How much of a file the page cache holds (`cachestat(2)`, Linux 6.5+).
//!
//! A get decides by it whether to read through the page cache (what is
//! there is served from memory) or around it (see [`crate::direct`]).

use std::fs::File;
use std::ops::Range;

/// Bytes of `range` of `file` in the page cache, or `None` where the kernel
/// cannot tell (before Linux 6.5, or another OS).
#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "riscv64")))]
#[allow(unsafe_code)] // one of the datanode crate's two unsafe calls; see lib.rs
pub(crate) fn cached_bytes(file: &File, range: Range<u64>) -> Option<u64> {
    use std::os::fd::AsRawFd;
    /// `cachestat` is 451 on every architecture whose table is the generic
    /// one, and on x86_64 (`libc` does not name it there yet).
    const SYS_CACHESTAT: libc::c_long = 451;
    #[repr(C)]
    struct CachestatRange {
        off: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Cachestat {
        nr_cache: u64,
        nr_dirty: u64,
        nr_writeback: u64,
        nr_evicted: u64,
        nr_recently_evicted: u64,
    }
    if range.is_empty() {
        return Some(0);
    }
    let span = CachestatRange { off: range.start, len: range.end - range.start };
    let mut stat = Cachestat::default();
    // SAFETY: the kernel reads `span` and writes `stat`, both live, properly
    // laid out (`repr(C)`, the kernel's `struct cachestat_range` and
    // `struct cachestat`) and unaliased for the whole call; `file` is open
    // throughout, so the descriptor is valid; flags must be 0.
    let r = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &span as *const CachestatRange,
            &mut stat as *mut Cachestat,
            0u32,
        )
    };
    (r == 0).then(|| stat.nr_cache.saturating_mul(rustix::param::page_size() as u64))
}

/// Elsewhere the kernel cannot tell.
#[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "riscv64"))))]
pub(crate) fn cached_bytes(_file: &File, _range: Range<u64>) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pages a read brought in are counted; dropped, they are not.
    #[test]
    fn counts_what_the_cache_holds() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("f");
        std::fs::write(&path, vec![5u8; 1 << 20]).expect("write");
        let f = File::open(&path).expect("open");
        f.sync_all().expect("fsync");
        let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed);
        let Some(cold) = cached_bytes(&f, 0..1 << 20) else {
            eprintln!("no cachestat on this kernel; nothing to test");
            return;
        };
        assert_eq!(cold, 0);
        let mut buf = vec![0u8; 256 << 10];
        rustix::io::pread(&f, &mut buf[..], 0).expect("read");
        let warm = cached_bytes(&f, 0..256 << 10).expect("cachestat");
        assert_eq!(warm, 256 << 10);
        // The count is of the range asked about (read-ahead may have
        // brought in more of the file).
        assert!(cached_bytes(&f, 0..1 << 20).expect("cachestat") >= 256 << 10);
        assert_eq!(cached_bytes(&f, 0..0), Some(0));
    }
}
