//! Early writeback of a shard being written.
//!
//! A shard put ends with an fsync. Left alone, the kernel starts writing a
//! new file's dirty pages only when its dirty limits or timers say so, so a
//! put would receive the whole shard and only then wait for all of it to
//! reach the disk: network time plus disk time. Asking the kernel to start
//! writing each few MiB as soon as they are in the page cache overlaps the
//! two, and the closing fsync waits only for the tail (RocksDB's
//! `bytes_per_sync` does the same).
//!
//! Starting writeback is only a hint: it makes nothing durable and the
//! closing fsync is still what acknowledges a shard. A failure it reports is
//! still a failed write, so callers treat it like one.

use std::fs::File;

/// Bytes written between two writeback requests.
pub(crate) const STEP: u64 = 4 << 20;

/// Asks the kernel to start writing `len` bytes of `file` from `offset` to
/// the disk, without waiting for them.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)] // the datanode crate's one unsafe block; see lib.rs
pub(crate) fn start(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Ok(()); // beyond any real file: nothing to hint
    };
    // SAFETY: sync_file_range reads no memory of ours; `file` is open for
    // the whole call, so the descriptor is valid.
    let r = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE) };
    if r == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        // A file system that does not take the hint: the fsync does the work.
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP | libc::ESPIPE) => Ok(()),
        _ => Err(e),
    }
}

/// Elsewhere the closing fsync does all the work.
#[cfg(not(target_os = "linux"))]
pub(crate) fn start(_file: &File, _offset: u64, _len: u64) -> std::io::Result<()> {
    Ok(())
}
