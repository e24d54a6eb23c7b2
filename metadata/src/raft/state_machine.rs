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
use tessera_rpc::proto::meta::{Command, CommandResult, CommandResults, command::Op, command_result::Outcome};

#[cfg(test)]
use super::RaftRequest;
use super::{RaftResponse, TypeConfig, from_bytes, io_err, to_bytes};
use crate::db::{CF_RAFT, CF_SM};
use crate::{MetaError, MetaState};

/// Key of the applied state in the `sm` family (no table uses byte 0).
const KEY_APPLIED: &[u8] = b"\0applied";
/// Key of how many commands of a batched entry are applied, while the rest
/// are not yet (`sm` family, so snapshots carry it).
const KEY_PARTIAL: &[u8] = b"\0partial";
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
        let sm = StateMachineStore { state, snapshots_built: Arc::new(AtomicU64::new(0)) };
        // Unreadable here means unreadable at start-up too, where it is reported.
        if let Ok((Some(applied), _)) = sm.applied() {
            sm.state.note_applied(applied.index);
        }
        sm
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

    /// Applies the commands of one batched entry, in order, each seeing the
    /// writes of those before it: every command but the last is written on
    /// its own, together with a marker of how far the entry got; the last
    /// one's writes go into `last` (written with the applied log id, which
    /// also clears the marker). Replaying the entry after a crash skips the
    /// commands the marker counts, so none is applied twice.
    fn apply_batch(&self, index: u64, cmds: &[Command], last: &mut WriteBatch) -> Result<CommandResult, SErr> {
        let partial: Option<(u64, u16)> = self
            .db()
            .get_cf(self.cf(CF_SM)?, KEY_PARTIAL)
            .map_err(|e| io_err(ErrorSubject::StateMachine, ErrorVerb::Read, &e))?
            .map(|v| from_bytes(&v))
            .transpose()
            .map_err(|e| io_err(ErrorSubject::StateMachine, ErrorVerb::Read, &e))?;
        let done = match partial {
            Some((i, n)) if i == index => usize::from(n),
            _ => 0,
        };
        if cmds.len() > usize::from(u16::MAX) {
            let e = MetaError::InvalidArgument(format!("a batch of {} commands", cmds.len()));
            return Ok(CommandResult { outcome: Some(Outcome::Failure(e.to_failure())) });
        }
        let mut results = Vec::with_capacity(cmds.len());
        for (i, cmd) in cmds.iter().enumerate() {
            if i < done {
                // Applied before a restart; nobody waits for this answer.
                let e = MetaError::InvalidArgument("applied before a restart".into());
                results.push(CommandResult { outcome: Some(Outcome::Failure(e.to_failure())) });
                continue;
            }
            let sub = i as u16;
            if i + 1 == cmds.len() {
                last.delete_cf(self.cf(CF_SM)?, KEY_PARTIAL);
                results
                    .push(self.state.apply_in_entry(index, sub, cmd, last).map_err(|e| sm_err(ErrorVerb::Write, &e))?);
            } else {
                let mut b = WriteBatch::default();
                results.push(
                    self.state.apply_in_entry(index, sub, cmd, &mut b).map_err(|e| sm_err(ErrorVerb::Write, &e))?,
                );
                b.put_cf(self.cf(CF_SM)?, KEY_PARTIAL, to_bytes(&(index, sub + 1)));
                self.db().write(b).map_err(|e| io_err(ErrorSubject::StateMachine, ErrorVerb::Write, &e))?;
            }
        }
        Ok(CommandResult { outcome: Some(Outcome::Batch(CommandResults { results })) })
    }

    fn save_snapshot(&self, snap: &StoredSnapshot) -> Result<(), SErr> {
        let mut w = WriteOptions::default();
        w.set_sync(true);
        self.db()
            .put_cf_opt(self.cf(CF_RAFT)?, KEY_SNAPSHOT, to_bytes(snap), &w)
            .map_err(|e| io_err(ErrorSubject::Snapshot(Some(snap.meta.signature())), ErrorVerb::Write, &e))
    }
}

/// Whether `cmd` changes the cluster map (watchers are told after the apply).
fn changes_map(cmd: &Command) -> bool {
    matches!(
        cmd.op,
        Some(
            Op::RegisterDatanode(_)
                | Op::SetDiskState(_)
                | Op::MarkOut(_)
                | Op::Reweight(_)
                | Op::RemoveDisks(_)
                | Op::SetDiskFull(_)
        )
    )
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
                        Ok(Command { op: Some(Op::Batch(b)), .. }) => {
                            for cmd in &b.commands {
                                map_changed |= changes_map(cmd);
                            }
                            self.apply_batch(entry.log_id.index, &b.commands, &mut batch)?
                        }
                        Ok(cmd) => {
                            map_changed |= changes_map(&cmd);
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
            self.state.note_applied(entry.log_id.index);
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
        if let Some(l) = meta.last_log_id {
            self.state.note_applied(l.index);
        }
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
    use openraft::CommittedLeaderId;
    use tessera_rpc::proto::meta::{
        Body, CommandBatch, CreateBucket, EcProfile, ObjectRecord, PutObject, ShardSet, body, failure,
    };

    fn entry(index: u64, cmd: &Command) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(RaftRequest(cmd.encode_to_vec())),
        }
    }

    fn batch(cmds: Vec<Command>) -> Command {
        Command { now_ms: 0, op: Some(Op::Batch(CommandBatch { commands: cmds })) }
    }

    fn create(name: &str) -> Command {
        Command {
            now_ms: 1,
            op: Some(Op::CreateBucket(CreateBucket {
                name: name.into(),
                owner: "o".into(),
                ec: None,
                ..Default::default()
            })),
        }
    }

    /// The first byte of each data id indexed on disk 1 (where every
    /// `put` places a shard), in order.
    fn indexed(sm: &StateMachineStore) -> Vec<u8> {
        sm.state().disk_shards(1).unwrap().into_iter().map(|(id, _)| id[0]).collect()
    }

    fn put(bucket: &str, key: &str, id: u8) -> Command {
        let shards = ShardSet {
            data_id: vec![id; 16],
            ec: Some(EcProfile { codec: 1, k: 2, m: 1, block_len: 4096 }),
            pg: 0,
            disks: vec![1, 2, 3],
            missing: vec![],
        };
        let record = ObjectRecord {
            etag: format!("{id:032x}"),
            body: Some(Body { kind: Some(body::Kind::Shards(shards)) }),
            ..Default::default()
        };
        Command {
            now_ms: 2,
            op: Some(Op::PutObject(PutObject {
                bucket: bucket.into(),
                key: key.into(),
                record: Some(record),
                condition: None,
            })),
        }
    }

    async fn apply_one(sm: &mut StateMachineStore, index: u64, cmd: &Command) -> CommandResult {
        let out = sm.apply([entry(index, cmd)]).await.unwrap();
        CommandResult::decode(out[0].0.as_slice()).unwrap()
    }

    fn results(r: CommandResult) -> Vec<CommandResult> {
        match r.outcome {
            Some(Outcome::Batch(b)) => b.results,
            other => panic!("not a batch result: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_batch_applies_in_order_and_answers_each_command() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = StateMachineStore::new(MetaState::new(crate::open_db(dir.path()).unwrap()));
        // Each command sees the ones before it: the bucket made first takes
        // the puts; the second put of "k" replaces the first, and the next
        // entry replaces both "j" and "k" again.
        let cmds = vec![create("bkt"), put("bkt", "k", 1), put("nope", "k", 2), put("bkt", "k", 3), put("bkt", "j", 4)];
        let r = results(apply_one(&mut sm, 5, &batch(cmds)).await);
        assert_eq!(r.len(), 5);
        assert!(matches!(r[0].outcome, Some(Outcome::Done(_))));
        assert!(matches!(&r[1].outcome, Some(Outcome::Object(o)) if o.etag == format!("{:032x}", 1)));
        assert!(
            matches!(&r[2].outcome, Some(Outcome::Failure(f)) if f.code == failure::Code::NoSuchBucket as i32),
            "{:?}",
            r[2]
        );
        assert!(matches!(&r[3].outcome, Some(Outcome::Object(o)) if o.etag == format!("{:032x}", 3)));
        let r = results(apply_one(&mut sm, 6, &batch(vec![put("bkt", "j", 5), put("bkt", "k", 6)])).await);
        assert!(r.iter().all(|r| matches!(r.outcome, Some(Outcome::Object(_)))));
        // Only the last sets of "k" and "j" are still indexed on their disks.
        assert_eq!(indexed(&sm), vec![5, 6], "replaced shard sets left the disk index, live ones stayed");
        assert_eq!(sm.state().object("bkt", "k").unwrap().unwrap().etag, format!("{:032x}", 6));
        assert_eq!(sm.applied().unwrap().0.unwrap().index, 6);
        assert!(sm.db().get_cf(sm.cf(CF_SM).unwrap(), KEY_PARTIAL).unwrap().is_none());
        // A nested batch is refused, alone.
        let r = results(apply_one(&mut sm, 7, &batch(vec![batch(vec![create("ccc")]), create("ddd")])).await);
        assert!(matches!(r[0].outcome, Some(Outcome::Failure(_))));
        assert!(matches!(r[1].outcome, Some(Outcome::Done(_))));
        assert!(sm.state().bucket("ccc").unwrap().is_none());
    }

    #[tokio::test]
    async fn a_batch_cut_by_a_crash_resumes_after_the_commands_already_applied() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = StateMachineStore::new(MetaState::new(crate::open_db(dir.path()).unwrap()));
        apply_one(&mut sm, 1, &create("bkt")).await;
        // As a crash would leave it: the first two commands of entry 2
        // written with the marker, the entry itself not marked applied.
        let cmds = vec![put("bkt", "k", 1), put("bkt", "k", 2), put("bkt", "k", 3)];
        for (i, cmd) in cmds[..2].iter().enumerate() {
            let mut w = WriteBatch::default();
            sm.state.apply_in_entry(2, i as u16, cmd, &mut w).unwrap();
            w.put_cf(sm.cf(CF_SM).unwrap(), KEY_PARTIAL, to_bytes(&(2u64, i as u16 + 1)));
            sm.db().write(w).unwrap();
        }
        let mut sm = StateMachineStore::new(sm.state.clone());
        assert_eq!(sm.applied().unwrap().0.unwrap().index, 1);
        // Replayed: the two already applied are skipped, not applied again.
        let r = results(apply_one(&mut sm, 2, &batch(cmds)).await);
        assert!(matches!(&r[0].outcome, Some(Outcome::Failure(_))));
        assert!(matches!(&r[1].outcome, Some(Outcome::Failure(_))));
        assert!(matches!(&r[2].outcome, Some(Outcome::Object(_))));
        assert_eq!(indexed(&sm), vec![3], "the replaced sets 1 and 2 left the index");
        assert!(sm.db().get_cf(sm.cf(CF_SM).unwrap(), KEY_PARTIAL).unwrap().is_none(), "marker cleared");
        // A marker of another entry is ignored.
        let mut w = WriteBatch::default();
        w.put_cf(sm.cf(CF_SM).unwrap(), KEY_PARTIAL, to_bytes(&(99u64, 1u16)));
        sm.db().write(w).unwrap();
        let r = results(apply_one(&mut sm, 3, &batch(vec![create("xxx"), create("yyy")])).await);
        assert!(r.iter().all(|r| matches!(r.outcome, Some(Outcome::Done(_)))));
    }

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
