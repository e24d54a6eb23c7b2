//! A bytes-per-second limit a worker reads at every step, so an operator
//! can change it while the worker runs (`SetWorkerRates`, delivered with
//! the heartbeat reply).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A shared, live-changeable rate.
#[derive(Clone, Debug)]
pub struct Rate(Arc<AtomicU64>);

impl Rate {
    /// A rate of `bytes_per_sec` (at least 1).
    pub fn new(bytes_per_sec: u64) -> Self {
        Rate(Arc::new(AtomicU64::new(bytes_per_sec.max(1))))
    }

    /// The current rate, bytes per second.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Changes the rate for every holder (at least 1 byte per second).
    pub fn set(&self, bytes_per_sec: u64) {
        self.0.store(bytes_per_sec.max(1), Ordering::Relaxed);
    }
}
