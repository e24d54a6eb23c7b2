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
//! Built so far: the state machine ([`MetaState`]) with its key layout,
//! S3 listing semantics and multipart rules. The Raft node and the gRPC
//! service are the next steps of the metadata issue.

mod db;
mod error;
mod keys;
// openraft fixes the storage error type (StorageError, ~224 bytes) in its traits.
#[allow(clippy::result_large_err)]
pub mod raft;
mod record;
pub mod state;

pub use db::{CF_LOG, CF_RAFT, CF_SM, open_db};
pub use error::MetaError;
pub use state::MetaState;
