//! Shared leaf types of Tessera: identifier newtypes, the background worker
//! trait and its runner, and the operator-facing error codes.
//!
//! Depends on no other Tessera crate; every other crate may depend on it.

mod codes;
mod ids;
pub mod worker;

pub use codes::ErrorCode;
pub use ids::{DataId, DiskId, IdParseError, NodeId, PgId};
