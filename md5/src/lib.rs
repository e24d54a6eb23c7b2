//! Tessera's MD5 engine: the ETag of many bodies at once.
//!
//! S3's ETag is the MD5 of the body, and MD5 cannot be split within one
//! body: each 64-byte block needs the state the previous one left. What can
//! be shared is the machine: AVX-512 holds sixteen 32-bit lanes, so sixteen
//! bodies being uploaded at the same time are hashed by the same
//! instructions. The [`Md5Engine`] is one thread that does this for every
//! stream given to it; a stream queues its chunks without copying them and
//! waits only at the end, for its digest.
//!
//! Leaf crate: depends on no other Tessera crate; tokio only for `Notify`.
//!
//! ```text
//!  kernel.rs   MD5's compression: one lane (portable), sixteen (dispatch)
//!  avx512.rs   sixteen lanes in AVX-512F (the crate's only unsafe code)
//!  engine.rs   the thread, its lanes, and the streams that feed it
//! ```

#[cfg(target_arch = "x86_64")]
mod avx512;
mod engine;
mod kernel;

pub use engine::{EngineStats, EngineStopped, Md5Engine, Md5Stream, QUEUE_LIMIT};
pub use kernel::{Kernel, md5};
