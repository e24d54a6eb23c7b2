//! Background work as named workers: one loop each, a shutdown signal, a
//! status an operator can read, a throttle, and error back-off.
//!
//! ```text
//!  Worker::step() ──► Busy ──(throttle)──► step again
//!                 ──► Idle ──(idle_interval, or wake())──► step again
//!                 ──► Done ──► finished
//!                 ──► Err  ──(back-off, doubled up to max)──► step again
//!  shutdown flips ──► the loop ends after the current step
//! ```
//!
//! The runner owns its tasks; callers keep the [`WorkerHandle`] and join it,
//! so no task is ever detached.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

/// What one step of a worker found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepResult {
    /// More work is waiting: step again (after the throttle delay).
    Busy,
    /// Nothing to do now: step again after the idle interval or a wake-up.
    Idle,
    /// The worker has finished for good.
    Done,
}

/// A named background worker.
pub trait Worker: Send + 'static {
    /// Stable name shown to operators, e.g. `scrub:d3`.
    fn name(&self) -> String;
    /// Does one bounded unit of work.
    fn step(&mut self) -> impl Future<Output = Result<StepResult, String>> + Send;
    /// A one-line description of progress, e.g. `12034/50000 shards`.
    fn progress(&self) -> Option<String> {
        None
    }
}

/// The state a worker is in, as an operator sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerState {
    /// Doing a step.
    Busy,
    /// Waiting for work.
    Idle,
    /// Sleeping between steps because of its throttle.
    Throttled,
    /// Backing off after an error.
    BackingOff,
    /// Finished or shut down.
    Stopped,
}

/// A snapshot of one worker's status.
#[derive(Clone, Debug)]
pub struct WorkerStatus {
    /// The worker's name.
    pub name: String,
    /// What it is doing.
    pub state: WorkerState,
    /// Its own progress line, if it gives one.
    pub progress: Option<String>,
    /// Steps completed (successful or not).
    pub steps: u64,
    /// Steps that failed.
    pub errors: u64,
    /// The last error and when it happened.
    pub last_error: Option<(String, SystemTime)>,
    /// The current delay after each busy step.
    pub throttle: Duration,
}

/// How a worker is paced.
#[derive(Clone, Copy, Debug)]
pub struct WorkerConfig {
    /// Delay after each busy step (0 = full speed).
    pub throttle: Duration,
    /// How long an idle worker waits before looking again.
    pub idle_interval: Duration,
    /// First back-off after an error; doubled per consecutive error.
    pub min_backoff: Duration,
    /// Largest back-off.
    pub max_backoff: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            throttle: Duration::ZERO,
            idle_interval: Duration::from_secs(10),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(60),
        }
    }
}

struct Shared {
    status: Mutex<WorkerStatus>,
    wake: Notify,
    throttle: watch::Sender<Duration>,
}

impl Shared {
    fn update(&self, f: impl FnOnce(&mut WorkerStatus)) {
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s);
    }
}

/// The caller's side of a running worker.
pub struct WorkerHandle {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

/// A view of a running worker's status that outlives its handle's owner
/// (a heartbeat reports it).
#[derive(Clone)]
pub struct WorkerWatch(Arc<Shared>);

impl WorkerWatch {
    /// The current status.
    pub fn status(&self) -> WorkerStatus {
        self.0.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Makes the idle worker look for work now.
    pub fn wake(&self) {
        self.0.wake.notify_one();
    }
}

impl WorkerState {
    /// The lower-case name operators see.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Busy => "busy",
            WorkerState::Idle => "idle",
            WorkerState::Throttled => "throttled",
            WorkerState::BackingOff => "backing-off",
            WorkerState::Stopped => "stopped",
        }
    }
}

impl WorkerHandle {
    /// The current status.
    pub fn status(&self) -> WorkerStatus {
        self.shared.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A status view to hand to a reporter.
    pub fn watch(&self) -> WorkerWatch {
        WorkerWatch(self.shared.clone())
    }

    /// Makes an idle worker look for work now.
    pub fn wake(&self) {
        self.shared.wake.notify_one();
    }

    /// Changes the delay after each busy step.
    pub fn set_throttle(&self, throttle: Duration) {
        self.shared.throttle.send_replace(throttle);
        self.shared.update(|s| s.throttle = throttle);
    }

    /// Waits for the worker to stop (after shutdown or `Done`). A panic inside
    /// the worker is reported as an error, not propagated.
    pub async fn join(self) -> Result<(), String> {
        self.task.await.map_err(|e| format!("worker task failed: {e}"))
    }
}

/// Starts `worker` on the tokio runtime. It runs until it returns `Done` or
/// `shutdown` becomes `true`.
pub fn spawn_worker<W: Worker>(
    mut worker: W,
    config: WorkerConfig,
    mut shutdown: watch::Receiver<bool>,
) -> WorkerHandle {
    let (throttle_tx, mut throttle_rx) = watch::channel(config.throttle);
    let shared = Arc::new(Shared {
        status: Mutex::new(WorkerStatus {
            name: worker.name(),
            state: WorkerState::Idle,
            progress: None,
            steps: 0,
            errors: 0,
            last_error: None,
            throttle: config.throttle,
        }),
        wake: Notify::new(),
        throttle: throttle_tx,
    });
    let s = shared.clone();
    let task = tokio::spawn(async move {
        let mut backoff = config.min_backoff;
        loop {
            if *shutdown.borrow() {
                break;
            }
            s.update(|st| st.state = WorkerState::Busy);
            let result = worker.step().await;
            let progress = worker.progress();
            s.update(|st| {
                st.steps += 1;
                st.progress = progress;
            });
            let (state, delay) = match result {
                Ok(StepResult::Done) => break,
                Ok(StepResult::Busy) => {
                    backoff = config.min_backoff;
                    let t = *throttle_rx.borrow_and_update();
                    (WorkerState::Throttled, t)
                }
                Ok(StepResult::Idle) => {
                    backoff = config.min_backoff;
                    (WorkerState::Idle, config.idle_interval)
                }
                Err(e) => {
                    tracing::warn!(worker = %s.status.lock().unwrap_or_else(|p| p.into_inner()).name, error = %e, "worker step failed");
                    s.update(|st| {
                        st.errors += 1;
                        st.last_error = Some((e, SystemTime::now()));
                    });
                    let d = backoff;
                    backoff = (backoff * 2).min(config.max_backoff);
                    (WorkerState::BackingOff, d)
                }
            };
            if delay.is_zero() && state != WorkerState::Idle {
                continue;
            }
            s.update(|st| st.state = state);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = s.wake.notified(), if state == WorkerState::Idle => {}
                _ = throttle_rx.changed(), if state == WorkerState::Throttled => {}
                _ = shutdown.changed() => {}
            }
        }
        s.update(|st| st.state = WorkerState::Stopped);
    });
    WorkerHandle { shared, task }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts down `left` busy steps, failing at chosen steps, then idles.
    struct Countdown {
        left: u32,
        fail_at: Vec<u32>,
        done_when_empty: bool,
    }

    impl Worker for Countdown {
        fn name(&self) -> String {
            "countdown".into()
        }
        async fn step(&mut self) -> Result<StepResult, String> {
            if self.fail_at.contains(&self.left) {
                self.fail_at.retain(|&f| f != self.left);
                return Err(format!("failed at {}", self.left));
            }
            if self.left == 0 {
                return Ok(if self.done_when_empty { StepResult::Done } else { StepResult::Idle });
            }
            self.left -= 1;
            Ok(StepResult::Busy)
        }
        fn progress(&self) -> Option<String> {
            Some(format!("{} left", self.left))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn runs_to_done_and_counts_errors() {
        let (_tx, rx) = watch::channel(false);
        let w = Countdown { left: 5, fail_at: vec![3], done_when_empty: true };
        let h = spawn_worker(w, WorkerConfig { throttle: Duration::from_millis(10), ..Default::default() }, rx);
        tokio::time::sleep(Duration::from_secs(5)).await;
        let st = h.status();
        assert_eq!(st.state, WorkerState::Stopped);
        assert_eq!(st.errors, 1);
        assert_eq!(st.progress.as_deref(), Some("0 left"));
        assert_eq!(st.steps, 7, "5 busy + 1 error + 1 done");
        assert!(st.last_error.unwrap().0.contains("failed at 3"));
        h.join().await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn idle_worker_wakes_and_stops_on_shutdown() {
        let (tx, rx) = watch::channel(false);
        let w = Countdown { left: 1, fail_at: vec![], done_when_empty: false };
        let cfg = WorkerConfig { idle_interval: Duration::from_secs(3600), ..Default::default() };
        let h = spawn_worker(w, cfg, rx);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(h.status().state, WorkerState::Idle);
        let steps = h.status().steps;
        h.wake();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(h.status().steps, steps + 1, "wake() runs one more step at once");
        tx.send(true).unwrap();
        h.join().await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn throttle_paces_busy_steps_and_can_change() {
        let (_tx, rx) = watch::channel(false);
        let w = Countdown { left: 1000, fail_at: vec![], done_when_empty: true };
        let h = spawn_worker(w, WorkerConfig { throttle: Duration::from_secs(1), ..Default::default() }, rx);
        tokio::time::sleep(Duration::from_millis(10_500)).await;
        let st = h.status();
        assert!((10..=12).contains(&st.steps), "about one step a second, got {}", st.steps);
        assert_eq!(st.state, WorkerState::Throttled);
        h.set_throttle(Duration::ZERO);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(h.status().state, WorkerState::Stopped, "unthrottled, it finishes at once");
    }

    #[tokio::test(start_paused = true)]
    async fn errors_back_off_exponentially() {
        let (_tx, rx) = watch::channel(false);
        struct AlwaysFails;
        impl Worker for AlwaysFails {
            fn name(&self) -> String {
                "fails".into()
            }
            async fn step(&mut self) -> Result<StepResult, String> {
                Err("disk on fire".into())
            }
        }
        let cfg = WorkerConfig {
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(8),
            ..Default::default()
        };
        let h = spawn_worker(AlwaysFails, cfg, rx);
        // back-offs 1, 2, 4, 8, 8, ...: after 31.5 s: steps at 0,1,3,7,15,23,31 = 7
        tokio::time::sleep(Duration::from_millis(31_500)).await;
        let st = h.status();
        assert_eq!(st.errors, 7);
        assert_eq!(st.state, WorkerState::BackingOff);
    }
}
