//! How full a disk is: its usage, and the reserve below which it takes no
//! new shards (see [`FsDisk::check_full`]).

use std::sync::atomic::Ordering;

use super::{DiskUsage, FsDisk};
use crate::ShardError;

impl FsDisk {
    /// Whether the disk counts as full: new shards are refused (reads,
    /// deletes and everything else go on).
    pub fn is_full(&self) -> bool {
        self.inner.full.load(Ordering::Acquire)
    }

    /// Sets the reserve: the disk counts as full while fewer bytes are
    /// free. `None`: 1% of its capacity.
    pub fn set_min_free(&self, bytes: Option<u64>) {
        self.inner.min_free.store(bytes.unwrap_or(u64::MAX), Ordering::Release);
    }

    /// The reserve of a disk of `capacity` bytes.
    fn reserve(&self, capacity: u64) -> u64 {
        match self.inner.min_free.load(Ordering::Acquire) {
            u64::MAX => capacity / 100,
            n => n,
        }
    }

    /// Measures the disk ([`FsDisk::usage`]) and decides whether it is
    /// full: it becomes full when less than the reserve is free (or a write
    /// ran out of space), and takes shards again once twice the reserve is
    /// free, so a disk at the edge does not flap.
    pub fn check_full(&self) -> Result<DiskUsage, ShardError> {
        let u = self.usage()?;
        let free = u.capacity_bytes.saturating_sub(u.used_bytes);
        let reserve = self.reserve(u.capacity_bytes);
        let was = self.is_full();
        let now = if was { free < reserve.saturating_mul(2).max(1) } else { free < reserve };
        if now != was {
            self.inner.full.store(now, Ordering::Release);
            if now {
                tracing::warn!(disk = %self.inner.id, free, reserve, "disk full: it takes no new shards until space is freed");
            } else {
                tracing::info!(disk = %self.inner.id, free, reserve, "disk takes shards again");
            }
        }
        Ok(u)
    }

    /// Used and total bytes of the disk's filesystem.
    pub fn usage(&self) -> Result<DiskUsage, ShardError> {
        let st = rustix::fs::statvfs(&self.inner.root).map_err(|e| ShardError::io("statvfs", e.into()))?;
        let capacity_bytes = st.f_blocks * st.f_frsize;
        let free = st.f_bavail * st.f_frsize;
        Ok(DiskUsage { used_bytes: capacity_bytes.saturating_sub(free), capacity_bytes })
    }
}
