//! Raft for the metadata service (openraft 0.9, storage v2): the type
//! configuration and the two storages openraft drives, both in the node's
//! one RocksDB.
//!
//! ```text
//!  openraft ──append/vote/truncate/purge──► LogStore   (CF log, CF raft; fsynced before ack)
//!           ──apply/snapshot/install──────► StateMachineStore (CF sm via MetaState, CF raft)
//! ```

mod log_store;
mod network;
mod snapshot;
mod state_machine;

use serde::{Deserialize, Serialize};

pub use log_store::LogStore;
pub use network::{NetworkFactory, PeerClient, RaftService};
pub use state_machine::StateMachineStore;

/// A Raft entry's application payload: a prost-encoded
/// `tessera.meta.v1.Command`. Protobuf, so persisted log entries stay
/// readable as commands gain fields.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RaftRequest(pub Vec<u8>);

/// What applying an entry returned: a prost-encoded `CommandResult`
/// (empty for blank and membership entries).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RaftResponse(pub Vec<u8>);

openraft::declare_raft_types!(
    /// Tessera's metadata Raft: u64 node ids, nodes addressed by their gRPC URL.
    pub TypeConfig:
        D = RaftRequest,
        R = RaftResponse,
        NodeId = u64,
        Node = openraft::BasicNode,
        SnapshotData = tokio::fs::File,
);

/// An openraft storage error from any error, for the read or write `verb`.
pub(crate) fn io_err<E: std::error::Error + 'static>(
    subject: openraft::ErrorSubject<u64>,
    verb: openraft::ErrorVerb,
    e: &E,
) -> openraft::StorageError<u64> {
    openraft::StorageIOError::new(subject, verb, openraft::AnyError::new(e)).into()
}

/// Compact binary encoding for Raft's own values (entries, votes, log ids).
pub(crate) fn to_bytes<T: Serialize>(v: &T) -> Vec<u8> {
    postcard::to_stdvec(v).unwrap_or_else(|e| unreachable!("postcard encoding to a Vec cannot fail: {e}"))
}

pub(crate) fn from_bytes<'a, T: Deserialize<'a>>(b: &'a [u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(b)
}
