//! A bytes-per-second limit a worker reads at every step, so an operator
//! can change it while the worker runs (`SetWorkerRates`, delivered with
//! the heartbeat reply), and a pause: a paused worker takes no step until
//! it is resumed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A shared, live-changeable rate.
#[derive(Clone, Debug)]
pub struct Rate(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    bytes_per_sec: AtomicU64,
    paused: AtomicBool,
}

impl Rate {
    /// A rate of `bytes_per_sec` (at least 1).
    pub fn new(bytes_per_sec: u64) -> Self {
        Rate(Arc::new(Inner { bytes_per_sec: AtomicU64::new(bytes_per_sec.max(1)), paused: AtomicBool::new(false) }))
    }

    /// The current rate, bytes per second.
    pub fn get(&self) -> u64 {
        self.0.bytes_per_sec.load(Ordering::Relaxed)
    }

    /// Changes the rate for every holder (at least 1 byte per second).
    pub fn set(&self, bytes_per_sec: u64) {
        self.0.bytes_per_sec.store(bytes_per_sec.max(1), Ordering::Relaxed);
    }

    /// Whether the operator paused the workers holding this rate.
    pub fn paused(&self) -> bool {
        self.0.paused.load(Ordering::Relaxed)
    }

    /// Pauses or resumes them; true when that changed anything.
    pub fn set_paused(&self, paused: bool) -> bool {
        self.0.paused.swap(paused, Ordering::Relaxed) != paused
    }
}
