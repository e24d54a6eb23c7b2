//! Tessera's metadata service: the single source of truth for buckets,
//! objects, multipart uploads (and, with later work, the cluster map,
//! datanode liveness and access keys), kept in an openraft state machine on
//! RocksDB (DESIGN.md §3, §6).
//!
//! May depend on `tessera-common`, `tessera-rpc` and `tessera-placement`;
//! never on the datanode or gateway crates.
//!
//! ```text
//!  Command (rpc::proto::meta) ──Raft log──► MetaState::apply ──► RocksDB `sm` family
//!                                                                   │
//!  reads (get, list, uploads, pg index) ◄───────────────────────────┘
//! ```
//!
//! A node ([`run`]) serves three gRPC services on one port: Raft between
//! metadata nodes, the metadata API ([`MetaService`], used through
//! `tessera_rpc::MetaClient`) and health. Reads are linearizable (read
//! index); writes are Raft commands applied by [`MetaState`].

mod batcher;
mod db;
mod error;
mod keys;
pub mod lifecycle;
mod liveness;
mod metrics;
mod node;
pub mod notify;
mod read_index;
mod read_pool;
// openraft fixes the storage error type (StorageError, ~224 bytes) in its traits.
#[allow(clippy::result_large_err)]
pub mod raft;
mod record;
mod service;
pub mod state;
pub mod version;

pub use db::{CF_LOG, CF_RAFT, CF_SM, open_db};
pub use error::MetaError;
pub use metrics::MetaMetrics;
pub use node::{MetaConfig, run, serve, start};
pub use service::MetaService;
pub use state::MetaState;
