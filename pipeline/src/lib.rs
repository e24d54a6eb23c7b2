//! Tessera's erasure-coded object pipeline, shared by the gateway (serving
//! S3) and the datanode (healing shards from their peers).
//!
//! Owns: the cluster view ([`cluster::Cluster`]: the map kept fresh by the
//! metadata watch, where each disk's datanode listens, the datanode clients
//! over gRPC or the shard wire), the verified, hedged stripe reader
//! ([`read::read_sharded`]), the codec cache ([`Codecs`]) and the
//! pipeline's metrics. May depend on `tessera-common`, `tessera-rpc`,
//! `tessera-ec` and `tessera-placement` (and `tessera-md5`); never on a
//! service crate.
//!
//! ```text
//!  ShardSet + byte range ─► read_sharded ─► k shards per stripe (data first)
//!        each block verified (keyed BLAKE3) ─► decode around missing,
//!        corrupt or slow ones (parity, hedged) ─► stripe bytes, in order
//!        damage ─► ReportDamage (metadata)
//! ```
//!
//! The stripe writer (gateway `write.rs`) still lives in the gateway: it
//! hashes request bodies with s3s's checksum types.

pub mod cluster;
mod codecs;
mod metrics;
pub mod read;

pub use codecs::Codecs;
pub use metrics::PipelineMetrics;
