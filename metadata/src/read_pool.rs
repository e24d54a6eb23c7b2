//! The threads that run a node's state reads.
//!
//! A read walks RocksDB, which blocks, so it runs off the runtime's
//! threads. It used to go to tokio's blocking pool, which grows to as many
//! threads as there are blocking tasks at once (a burst of shard reads
//! leaves ~90 in `tessera server`) and hands each read to whichever is
//! idle. A read's answer is allocated on that thread and freed on a runtime
//! thread once sent, and mimalloc gives such memory back to the allocating
//! thread's heap only when that thread allocates again: spread over ~80
//! mostly idle threads, LIST pages after a GET burst held ~700 MiB and cost
//! a third more CPU each (fresh pages to fault in). Here a fixed set of
//! threads takes every read in turn, so each reuses what its last answers
//! freed. More threads than cores, since a read of a state larger than
//! memory waits on the disk. A read never waits on anything but RocksDB,
//! so a fixed number of threads cannot deadlock; a read that panics is an
//! error for its caller only.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, mpsc};

use tonic::Status;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads taking reads from one queue.
pub(crate) struct ReadPool {
    jobs: mpsc::Sender<Job>,
}

impl ReadPool {
    /// `threads` threads (at least one); they end when the pool is dropped.
    pub(crate) fn new(threads: usize) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new().name(format!("meta-read-{i}")).spawn(move || {
                loop {
                    // One thread waits on the queue, the others on the lock.
                    // (Nothing panics while the lock is held: jobs run after.)
                    let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    match job {
                        Ok(job) => job(),
                        Err(_) => return, // the pool is gone
                    }
                }
            });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a metadata read thread");
            }
        }
        ReadPool { jobs: tx }
    }

    /// Threads for a node's reads: twice the machine's cores, 4 to 32.
    pub(crate) fn sized_for_machine() -> Self {
        Self::new((std::thread::available_parallelism().map_or(4, |n| n.get()) * 2).clamp(4, 32))
    }

    /// Runs `f` on one of the pool's threads; its answer.
    pub(crate) async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, Status> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(std::panic::catch_unwind(AssertUnwindSafe(f)));
        });
        self.jobs.send(job).map_err(|_| Status::internal("the read threads have stopped"))?;
        match rx.await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(Status::internal("read task failed: it panicked")),
            Err(_) => Err(Status::internal("read task failed: its thread stopped")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_run_on_the_pool_threads_and_a_panic_is_an_error() {
        let pool = ReadPool::new(2);
        let names: Vec<String> = futures_join(&pool).await;
        assert!(names.iter().all(|n| n.starts_with("meta-read-")), "{names:?}");
        let e = pool.run(|| -> u32 { panic!("boom") }).await.unwrap_err();
        assert!(e.message().contains("panicked"), "{e:?}");
        // The pool still answers after a panic.
        assert_eq!(pool.run(|| 7).await.unwrap(), 7);
    }

    async fn futures_join(pool: &ReadPool) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..8 {
            out.push(pool.run(|| std::thread::current().name().unwrap_or_default().to_owned()).await.unwrap());
        }
        out
    }
}
