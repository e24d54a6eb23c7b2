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

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use log_store::LogStore;
pub use network::{NetworkFactory, PeerClient, RaftService};
pub use state_machine::StateMachineStore;

/// A Raft entry's application payload: a prost-encoded
/// `tessera.meta.v1.Command`. Protobuf, so persisted log entries stay
/// readable as commands gain fields.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RaftRequest(pub Vec<u8>);

/// What applying an entry returned: a prost-encoded `CommandResult`
/// (empty for blank and membership entries).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RaftResponse(pub Vec<u8>);

// Both are byte strings to serde. A derived `Vec<u8>` is a sequence, which
// postcard writes and reads one element call at a time: that per-byte
// visiting of 4 KiB inline bodies was ~3% of each voter's CPU in small
// PUTs (`perf`, 3-voter cluster). Postcard encodes a byte string and a
// sequence of u8 alike (a varint length, then the bytes), so entries
// already in a log read back unchanged (tested below).
/// Serializes and deserializes `$t(Vec<u8>)` as a byte string.
macro_rules! byte_string_serde {
    ($t:ident) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_byte_buf(ByteString).map($t)
            }
        }
    };
}

byte_string_serde!(RaftRequest);
byte_string_serde!(RaftResponse);

/// Reads a byte string, or a sequence of bytes from a format that has no
/// byte strings.
struct ByteString;

impl<'de> serde::de::Visitor<'de> for ByteString {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
        while let Some(b) = seq.next_element()? {
            out.push(b);
        }
        Ok(out)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// The encoding the derived impls wrote (a sequence of u8), to check
    /// that entries persisted before still decode.
    #[derive(Serialize)]
    struct Derived(Vec<u8>);

    #[test]
    fn payloads_encode_as_before_and_read_back() {
        let body: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
        let old = to_bytes(&Derived(body.clone()));
        assert_eq!(to_bytes(&RaftRequest(body.clone())), old);
        assert_eq!(to_bytes(&RaftResponse(body.clone())), old);
        assert_eq!(from_bytes::<RaftRequest>(&old).unwrap(), RaftRequest(body.clone()));
        assert_eq!(from_bytes::<RaftResponse>(&old).unwrap(), RaftResponse(body.clone()));
        let empty = to_bytes(&RaftRequest(Vec::new()));
        assert_eq!(from_bytes::<RaftRequest>(&empty).unwrap(), RaftRequest::default());
        // A whole entry, as the log stores it.
        let entry: openraft::Entry<TypeConfig> = openraft::Entry {
            log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(3, 1), 42),
            payload: openraft::EntryPayload::Normal(RaftRequest(body)),
        };
        let back: openraft::Entry<TypeConfig> = from_bytes(&to_bytes(&entry)).unwrap();
        assert_eq!(back.log_id, entry.log_id);
        assert!(
            matches!((&back.payload, &entry.payload), (openraft::EntryPayload::Normal(a), openraft::EntryPayload::Normal(b)) if a == b)
        );
        // JSON (a format without byte strings) round-trips too.
        let json = serde_json::to_string(&RaftRequest(vec![1, 2, 255])).unwrap();
        assert_eq!(serde_json::from_str::<RaftRequest>(&json).unwrap(), RaftRequest(vec![1, 2, 255]));
    }
}
