//! openraft's state machine over [`MetaState`]: applies entries (each in
//! one RocksDB batch together with the applied log id), builds snapshots
//! from a consistent RocksDB snapshot, and installs received ones.
//!
//! Snapshot data: a format byte, then `[u32 len][key][u32 len][value]` for
//! every key of the `sm` family. The current snapshot is kept (fsynced) in
//! the `raft` family so it survives restarts and can be sent to followers.

use std::fmt::Debug;
use std::io::Cursor;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{BasicNode, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftSnapshotBuilder};
use openraft::{StorageError, StoredMembership};
use prost::Message;
use rocksdb::{DB, IteratorMode, ReadOptions, WriteBatch, WriteOptions};
use serde::{Deserialize, Serialize};
use tessera_rpc::proto::meta::{Command, CommandResult, command::Op, command_result::Outcome};

use super::{RaftResponse, TypeConfig, from_bytes, io_err, to_bytes};
use crate::db::{CF_RAFT, CF_SM};
use crate::{MetaError, MetaState};

/// Key of the applied state in the `sm` family (no table uses byte 0).
const KEY_APPLIED: &[u8] = b"\0applied";
/// Key of the current snapshot in the `raft` family.
const KEY_SNAPSHOT: &[u8] = b"snapshot";
const SNAPSHOT_FORMAT: u8 = 1;

type SErr = StorageError<u64>;
type Membership = StoredMembership<u64, BasicNode>;

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<u64, BasicNode>,
    data: Vec<u8>,
}

/// The state machine storage openraft drives.
#[derive(Clone)]
pub struct StateMachineStore {
    state: MetaState,
    snapshots_built: Arc<AtomicU64>,
}

impl Debug for StateMachineStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateMachineStore")
    }
}

fn sm_err(verb: ErrorVerb, e: &MetaError) -> SErr {
    io_err(ErrorSubject::StateMachine, verb, e)
}

impl StateMachineStore {
    /// The state machine storage over `state`'s database.
    pub fn new(state: MetaState) -> Self {
        StateMachineStore { state, snapshots_built: Arc::new(AtomicU64::new(0)) }
    }

    /// The state, for linearizable reads after a read-index check.
    pub fn state(&self) -> &MetaState {
        &self.state
    }

    fn db(&self) -> &Arc<DB> {
        self.state.db()
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily, SErr> {
        self.db()
            .cf_handle(name)
            .ok_or_else(|| sm_err(ErrorVerb::Read, &MetaError::Storage(format!("no column family {name}"))))
    }

    fn applied(&self) -> Result<(Option<LogId<u64>>, Membership), SErr> {
        match self
            .db()
            .get_cf(self.cf(CF_SM)?, KEY_APPLIED)
            .map_err(|e| io_err(ErrorSubject::StateMachine, ErrorVerb::Read, &e))?
        {
            Some(v) => from_bytes(&v).map_err(|e| io_err(ErrorSubject::StateMachine, ErrorVerb::Read, &e)),
            None => Ok((None, Membership::default())),
        }
    }

    fn save_snapshot(&self, snap: &StoredSnapshot) -> Result<(), SErr> {
        let mut w = WriteOptions::default();
        w.set_sync(true);
        self.db()
            .put_cf_opt(self.cf(CF_RAFT)?, KEY_SNAPSHOT, to_bytes(snap), &w)
            .map_err(|e| io_err(ErrorSubject::Snapshot(Some(snap.meta.signature())), ErrorVerb::Write, &e))
    }
}

fn put_u32_prefixed(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// A borrowed (key, value) pair of snapshot data.
type KvRef<'a> = (&'a [u8], &'a [u8]);

/// Parses snapshot data into (key, value) pairs.
fn parse_snapshot(data: &[u8]) -> Result<Vec<KvRef<'_>>, MetaError> {
    let bad = || MetaError::Storage("snapshot data is malformed".into());
    let (&format, body) = data.split_first().ok_or_else(bad)?;
    if format != SNAPSHOT_FORMAT {
        return Err(MetaError::Storage(format!("snapshot format {format} is unknown")));
    }
    let take = |at: usize| -> Result<(&[u8], usize), MetaError> {
        let len_bytes: [u8; 4] = body.get(at..at + 4).ok_or_else(bad)?.try_into().map_err(|_| bad())?;
        let end = at + 4 + u32::from_le_bytes(len_bytes) as usize;
        Ok((body.get(at + 4..end).ok_or_else(bad)?, end))
    };
    let mut out = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let (k, next) = take(at)?;
        let (v, next) = take(next)?;
        out.push((k, v));
        at = next;
    }
    Ok(out)
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SErr> {
        let db = self.db().clone();
        let snap = db.snapshot();
        let mut opts = ReadOptions::default();
        opts.set_snapshot(&snap);
        let mut data = vec![SNAPSHOT_FORMAT];
        let mut applied = (None, Membership::default());
        for item in db.iterator_cf_opt(self.cf(CF_SM)?, opts, IteratorMode::Start) {
            let (k, v) = item.map_err(|e| io_err(ErrorSubject::StateMachine, ErrorVerb::Read, &e))?;
            if k.as_ref() == KEY_APPLIED {
                applied = from_bytes(&v).map_err(|e| io_err(ErrorSubject::StateMachine, ErrorVerb::Read, &e))?;
            }
            put_u32_prefixed(&mut data, &k);
            put_u32_prefixed(&mut data, &v);
        }
        let (last_log_id, last_membership): (Option<LogId<u64>>, Membership) = applied;
        let n = self.snapshots_built.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match last_log_id {
            Some(l) => format!("{}-{}-{}-{n}", l.leader_id.term, l.leader_id.node_id, l.index),
            None => format!("empty-{n}"),
        };
        let meta = SnapshotMeta { last_log_id, last_membership, snapshot_id };
        let stored = StoredSnapshot { meta: meta.clone(), data };
        self.save_snapshot(&stored)?;
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(stored.data)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId<u64>>, Membership), SErr> {
        self.applied()
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<RaftResponse>, SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let (_, mut membership) = self.applied()?;
        let mut out = Vec::new();
        let mut map_changed = false;
        for entry in entries {
            let mut batch = WriteBatch::default();
            let response = match &entry.payload {
                EntryPayload::Blank => RaftResponse::default(),
                EntryPayload::Membership(m) => {
                    membership = StoredMembership::new(Some(entry.log_id), m.clone());
                    RaftResponse::default()
                }
                EntryPayload::Normal(req) => {
                    let result = match Command::decode(req.0.as_slice()) {
                        Ok(cmd) => {
                            map_changed |= matches!(cmd.op, Some(Op::RegisterDatanode(_) | Op::SetDiskState(_)));
                            self.state
                                .apply(entry.log_id.index, &cmd, &mut batch)
                                .map_err(|e| sm_err(ErrorVerb::Write, &e))?
                        }
                        // Deterministic on every replica: the entry is refused, not the node.
                        Err(e) => CommandResult {
                            outcome: Some(Outcome::Failure(
                                MetaError::InvalidArgument(format!("undecodable command: {e}")).to_failure(),
                            )),
                        },
                    };
                    RaftResponse(result.encode_to_vec())
                }
            };
            batch.put_cf(self.cf(CF_SM)?, KEY_APPLIED, to_bytes(&(Some(entry.log_id), membership.clone())));
            self.db().write(batch).map_err(|e| io_err(ErrorSubject::StateMachine, ErrorVerb::Write, &e))?;
            out.push(response);
        }
        if map_changed {
            self.state.notify_map_changed();
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, SErr> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), SErr> {
        let data = snapshot.into_inner();
        let subject = ErrorSubject::Snapshot(Some(meta.signature()));
        let pairs = parse_snapshot(&data).map_err(|e| io_err(subject.clone(), ErrorVerb::Read, &e))?;
        let cf = self.cf(CF_SM)?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf, [0u8].as_slice(), [0xffu8].as_slice());
        for (k, v) in pairs {
            batch.put_cf(cf, k, v);
        }
        batch.put_cf(cf, KEY_APPLIED, to_bytes(&(meta.last_log_id, meta.last_membership.clone())));
        let mut w = WriteOptions::default();
        w.set_sync(true);
        self.db().write_opt(batch, &w).map_err(|e| io_err(subject, ErrorVerb::Write, &e))?;
        self.state.notify_map_changed();
        self.save_snapshot(&StoredSnapshot { meta: meta.clone(), data })
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, SErr> {
        let v = self
            .db()
            .get_cf(self.cf(CF_RAFT)?, KEY_SNAPSHOT)
            .map_err(|e| io_err(ErrorSubject::Snapshot(None), ErrorVerb::Read, &e))?;
        match v {
            None => Ok(None),
            Some(v) => {
                let s: StoredSnapshot =
                    from_bytes(&v).map_err(|e| io_err(ErrorSubject::Snapshot(None), ErrorVerb::Read, &e))?;
                Ok(Some(Snapshot { meta: s.meta, snapshot: Box::new(Cursor::new(s.data)) }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_data_round_trips_and_rejects_garbage() {
        let mut data = vec![SNAPSHOT_FORMAT];
        put_u32_prefixed(&mut data, b"key");
        put_u32_prefixed(&mut data, b"");
        put_u32_prefixed(&mut data, b"k2");
        put_u32_prefixed(&mut data, b"value");
        assert_eq!(parse_snapshot(&data).unwrap(), vec![(&b"key"[..], &b""[..]), (&b"k2"[..], &b"value"[..])]);
        assert!(parse_snapshot(&data[..data.len() - 1]).is_err(), "truncated");
        assert!(parse_snapshot(&[9]).is_err(), "unknown format");
        assert!(parse_snapshot(&[]).is_err());
        assert!(parse_snapshot(&[SNAPSHOT_FORMAT, 1, 0]).is_err());
    }
}
