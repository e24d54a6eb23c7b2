//! Tessera's RPC layer: the `.proto` definitions (in `proto/`), the tonic
//! code generated from them at build time (by protox, no `protoc` binary;
//! output only in `OUT_DIR`), and the typed clients and small services every
//! role shares.
//!
//! Depends only on `tessera-common`. Services never import each other; they
//! talk through what this crate defines.
//!
//! Today it holds the health service that every role serves. The metadata,
//! datanode and gateway protocols arrive with their issues.

mod health;

/// Generated protobuf and tonic code, one module per proto package.
pub mod proto {
    /// `tessera.health.v1`: liveness and readiness of a node.
    #[allow(missing_docs, clippy::all)]
    pub mod health {
        tonic::include_proto!("tessera.health.v1");
    }
}

pub use health::HealthService;
