//! Tessera's RPC layer: the `.proto` definitions (in `proto/`), the tonic
//! code generated from them at build time (by protox, no `protoc` binary;
//! output only in `OUT_DIR`), and the typed clients and small services every
//! role shares.
//!
//! Depends only on `tessera-common`. Services never import each other; they
//! talk through what this crate defines.
//!
//! Today it holds the health service that every role serves, the metadata
//! records and Raft commands (`proto::meta`), and the S3 naming rules both
//! the gateway and the metadata service enforce (`names`).

pub mod cluster_ca;
pub mod cluster_tls;
pub mod enroll;
mod health;
mod incoming;
pub mod local;
mod local_meta;
mod meta_client;
pub mod names;
pub mod ops_http;
pub mod tls;
pub mod trace;
pub mod wire;

/// Generated protobuf and tonic code, one module per proto package.
pub mod proto {
    /// `tessera.health.v1`: liveness and readiness of a node.
    #[allow(missing_docs, clippy::all)]
    pub mod health {
        tonic::include_proto!("tessera.health.v1");
    }
    /// `tessera.meta.v1`: metadata records (as stored) and Raft commands.
    #[allow(missing_docs, clippy::all)]
    pub mod meta {
        tonic::include_proto!("tessera.meta.v1");

        impl ShardSet {
            /// The bytes the shards hold for a piece whose record says
            /// `size`: more than `size` when the body is encrypted.
            pub fn piece_len(&self, size: u64) -> u64 {
                if self.stored_len > 0 { self.stored_len } else { size }
            }
        }

        impl WorkerReport {
            /// A worker's status as heartbeats and WorkerStatus carry it
            /// (`node_id` and `reported_ms` are the metadata leader's to set).
            pub fn of(s: &tessera_common::worker::WorkerStatus) -> Self {
                let (last_error, last_error_ms) = s.last_error.as_ref().map_or((String::new(), 0), |(e, t)| {
                    (e.clone(), t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64))
                });
                WorkerReport {
                    name: s.name.clone(),
                    state: s.state.as_str().to_owned(),
                    progress: s.progress.clone().unwrap_or_default(),
                    steps: s.steps,
                    errors: s.errors,
                    last_error,
                    last_error_ms,
                    node_id: 0,
                    reported_ms: 0,
                }
            }
        }
    }
    /// `tessera.data.v1`: the datanode's shard service.
    #[allow(missing_docs, clippy::all)]
    pub mod data {
        tonic::include_proto!("tessera.data.v1");
    }
    /// `tessera.raft.v1`: Raft messages between metadata nodes.
    #[allow(missing_docs, clippy::all)]
    pub mod raft {
        tonic::include_proto!("tessera.raft.v1");
    }
}

pub use health::HealthService;
pub use incoming::NoDelayIncoming;
pub use local_meta::{InProcessService, LocalMeta};
pub use meta_client::{LEADER_HEADER, MetaClient, MetaClientConfig, MetaClientError, NOT_LEADER_HEADER};

/// The largest metadata API message either end accepts, set explicitly on
/// the server and the client (tonic's default is 4 MiB to decode, no limit
/// to encode). Replies are kept far below it by design: a listing page
/// carries keys and object summaries only (at most about 1.5 MiB for 1,000
/// keys of 1 KiB), an object record at most 10,000 part references (about
/// 2 MiB).
pub const META_MAX_MESSAGE_BYTES: usize = 16 << 20;

/// Most objects one `GetObjects` call reads.
pub const MAX_OBJECTS_PER_READ: usize = 64;

/// The size a `GetObjects` reply stops growing at (it always carries at
/// least one object; a record is at most about 2 MiB).
pub const OBJECTS_REPLY_BUDGET: usize = 4 << 20;
