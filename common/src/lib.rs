//! Shared leaf types of Tessera: identifier newtypes, the background worker
//! trait and its runner, the operator-facing error codes, human sizes and
//! durations for configuration, and the Prometheus metrics registry.
//!
//! Depends on no other Tessera crate; every other crate may depend on it.

mod codes;
pub mod config;
mod ids;
pub mod metrics;
pub mod worker;

pub use codes::ErrorCode;
pub use config::{ByteSize, HumanDuration};
pub use ids::{DataId, DiskId, IdParseError, NodeId, PgId};
pub use metrics::MetricsRegistry;
