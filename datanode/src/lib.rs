//! Tessera's datanode: durable shard files on local disks, the datanode gRPC
//! service, and the workers that keep its disks whole (scrub, heal,
//! rebalance, garbage collection) (DESIGN.md §5, §7).
//!
//! May depend on `tessera-common`, `tessera-rpc`, `tessera-ec` and
//! `tessera-placement`; never on the metadata or gateway crates. It never
//! decodes and never sees bucket or key names.
//!
//! Built so far: the shard file format ([`ShardHeader`]) and the disk store
//! ([`FsDisk`]): crash-safe writes (temp, fsync, rename, directory fsync),
//! verified reads that tell missing from corrupt, through the page cache
//! or around it ([`ShardReader`]), listing, usage; and the
//! gRPC service over them ([`DataService`]); and the node ([`run`]) that
//! registers its disks with the metadata cluster and heartbeats; and the
//! scrubber ([`ScrubWorker`]) that re-verifies every block on a throttled
//! cycle and reports damaged shards.
//!
//! Unsafe code: the workspace forbids it; this crate only denies it, for two
//! system calls that Rust's standard library and rustix do not offer:
//! `sync_file_range(2)` in `writeback` (starting a shard's writeback early)
//! and `cachestat(2)` in `pagecache` (how much of a shard the page cache
//! holds, which decides whether a get reads around it).

mod direct;
mod disk;
mod error;
mod gc;
mod heal;
mod metrics;
mod node;
mod pagecache;
mod pass;
mod rate;
mod reader;
mod rebalance;
mod recent;
mod scrub;
mod service;
mod shard;
mod wire_server;
mod writeback;

pub use disk::{DiskUsage, Finished, FsDisk, ShardPage, ShardStat, ShardWriter};
pub use error::ShardError;
pub use gc::{GcState, GcWorker, ReferenceCheck};
pub use heal::HealWorker;
pub use metrics::DatanodeMetrics;
pub use node::{DatanodeConfig, run, serve, start};
pub use pass::{HEAL_STATE, PassProgress, REBALANCE_STATE, SCRUB_STATE};
pub use rate::Rate;
pub use reader::{Batch, FrameSpan, ReadEnd, ReadIntent, ShardReader, Source};
pub use rebalance::RebalanceWorker;
pub use scrub::{DamageSink, ScrubWorker};
pub use service::{DataService, MAX_FRAME_BYTES, MAX_MESSAGE_BYTES, server_builder, status_of};
pub use shard::{FORMAT_VERSION, HEADER_LEN, MAGIC, ShardHeader, ShardKey};
pub use wire_server::serve_data;
