//! openraft's state machine over [`MetaState`]: applies entries (each in
//! one RocksDB batch together with the applied log id), builds snapshots
//! from a consistent RocksDB snapshot, and installs received ones — as
//! files, streamed (snapshot.rs). The current snapshot's meta and file name
//! are kept (fsynced) in the `raft` family so it survives restarts and can
//! be sent to followers.

use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{BasicNode, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftSnapshotBuilder};
use openraft::{StorageError, StoredMembership};
use prost::Message;
use rocksdb::{DB, WriteBatch, WriteOptions};
use serde::{Deserialize, Serialize};
use tessera_rpc::proto::meta::{Command, CommandResult, CommandResults, command::Op, command_result::Outcome};

#[cfg(test)]
use super::RaftRequest;
use super::snapshot;
use super::{RaftResponse, TypeConfig, from_bytes, io_err, to_bytes};
use crate::db::{CF_RAFT, CF_SM};
use crate::{MetaError, MetaState};

/// Key of the applied state in the `sm` family (no table uses byte 0).
const KEY_APPLIED: &[u8] = b"\0applied";
/// Key of how many commands of a batched entry are applied, while the rest
/// are not yet (`sm` family, so snapshots carry it).
const KEY_PARTIAL: &[u8] = b"\0partial";
/// Key of the current snapshot in the `raft` family when its data was
/// stored inline (before snapshots became files); removed when a new one is
/// saved.
const KEY_SNAPSHOT_INLINE: &[u8] = b"snapshot";
/// Key of the current snapshot's meta and file name (`raft` family).
const KEY_SNAPSHOT: &[u8] = b"snapshot-file";
/// Key of a snapshot being installed (`raft` family): present at start-up,
/// the install is done again.
const KEY_INSTALLING: &[u8] = b"snapshot-installing";

type SErr = StorageError<u64>;
type Membership = StoredMembership<u64, BasicNode>;

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<u64, BasicNode>,
    /// The file's name in the snapshot folder.
    file: String,
}

/// The state machine storage openraft drives.
#[derive(Clone)]
pub struct StateMachineStore {
    state: MetaState,
    snapshots_built: Arc<AtomicU64>,
    /// The file a snapshot is being received into.
    receiving: Arc<Mutex<Option<PathBuf>>>,
    /// The highest command level this node applies (crate::version).
    level: u32,
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
    /// Applies commands of at most `level` (a node behaving as an older
    /// release); an entry above it stops the node (crate::version).
    pub fn with_level(mut self, level: u32) -> Self {
        self.level = level;
        self
    }

    /// The state machine storage over `state`'s database.
    pub fn new(state: MetaState) -> Self {
        let sm = StateMachineStore {
            state,
            snapshots_built: Arc::new(AtomicU64::new(0)),
            receiving: Arc::new(Mutex::new(None)),
            level: crate::version::LEVEL,
        };
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

    fn snap_err(e: &MetaError) -> SErr {
        io_err(ErrorSubject::Snapshot(None), ErrorVerb::Write, e)
    }

    fn stored(&self, key: &[u8]) -> Result<Option<StoredSnapshot>, SErr> {
        let read = |e: &dyn std::error::Error| {
            io_err(ErrorSubject::Snapshot(None), ErrorVerb::Read, &MetaError::Storage(e.to_string()))
        };
        let v = self.db().get_cf(self.cf(CF_RAFT)?, key).map_err(|e| read(&e))?;
        v.map(|v| from_bytes(&v).map_err(|e| read(&e))).transpose()
    }

    /// Makes `snap` the current snapshot (and forgets an install marker and
    /// an inline snapshot of old), fsynced; removes the other files.
    fn save_current(&self, snap: &StoredSnapshot) -> Result<(), SErr> {
        let raft = self.cf(CF_RAFT)?;
        let mut b = WriteBatch::default();
        b.put_cf(raft, KEY_SNAPSHOT, to_bytes(snap));
        b.delete_cf(raft, KEY_INSTALLING);
        b.delete_cf(raft, KEY_SNAPSHOT_INLINE);
        let mut w = WriteOptions::default();
        w.set_sync(true);
        self.db()
            .write_opt(b, &w)
            .map_err(|e| io_err(ErrorSubject::Snapshot(Some(snap.meta.signature())), ErrorVerb::Write, &e))?;
        let dir = snapshot::dir(self.db());
        snapshot::remove_others(&dir, &dir.join(&snap.file));
        Ok(())
    }

    /// Installs the snapshot file `snap` names (a marker makes a crash
    /// halfway be followed by the same install at start-up).
    async fn install_file(&self, snap: StoredSnapshot) -> Result<(), SErr> {
        let subject = ErrorSubject::Snapshot(Some(snap.meta.signature()));
        // The file is read whole before the state is touched, or a marker
        // set: a bad file changes nothing and is not tried again.
        let path = snapshot::dir(self.db()).join(&snap.file);
        let checked = tokio::task::spawn_blocking(move || snapshot::check(&path))
            .await
            .map_err(|e| Self::snap_err(&MetaError::Storage(format!("snapshot check task: {e}"))))?;
        checked.map_err(|e| io_err(subject.clone(), ErrorVerb::Read, &e))?;
        let mut w = WriteOptions::default();
        w.set_sync(true);
        self.db()
            .put_cf_opt(self.cf(CF_RAFT)?, KEY_INSTALLING, to_bytes(&snap), &w)
            .map_err(|e| io_err(subject.clone(), ErrorVerb::Write, &e))?;
        let db = self.db().clone();
        let path = snapshot::dir(&db).join(&snap.file);
        let applied = to_bytes(&(snap.meta.last_log_id, snap.meta.last_membership.clone()));
        let installed = tokio::task::spawn_blocking(move || {
            let sm = crate::db::cf(&db, CF_SM)?;
            snapshot::install(&db, &path, |b| b.put_cf(sm, KEY_APPLIED, applied))
        })
        .await
        .map_err(|e| Self::snap_err(&MetaError::Storage(format!("install task: {e}"))))?;
        let pairs = installed.map_err(|e| io_err(subject, ErrorVerb::Write, &e))?;
        tracing::info!(snapshot = %snap.meta.snapshot_id, pairs, "snapshot installed");
        if let Some(l) = snap.meta.last_log_id {
            self.state.note_applied(l.index);
        }
        self.state.notify_map_changed();
        self.save_current(&snap)
    }

    /// A snapshot install cut short (a crash): done again from its file.
    async fn finish_install(&self) -> Result<(), SErr> {
        if let Some(snap) = self.stored(KEY_INSTALLING)? {
            tracing::warn!(snapshot = %snap.meta.snapshot_id, "a snapshot install was cut short: installing it again");
            self.install_file(snap).await?;
        }
        Ok(())
    }
}

/// A snapshot id as a file name.
fn file_name(snapshot_id: &str) -> String {
    let safe: String =
        snapshot_id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    format!("snap-{safe}.snap")
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

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SErr> {
        let db = self.db().clone();
        let n = self.snapshots_built.fetch_add(1, Ordering::Relaxed);
        let dir = snapshot::dir(&db);
        let building = dir.join(format!("building-{n}.snap"));
        let path = building.clone();
        // Off the runtime's threads: a scan of the whole state.
        let (applied, bytes) = tokio::task::spawn_blocking(move || snapshot::build(&db, &path, KEY_APPLIED))
            .await
            .map_err(|e| Self::snap_err(&MetaError::Storage(format!("snapshot task: {e}"))))?
            .map_err(|e| Self::snap_err(&e))?;
        let (last_log_id, last_membership): (Option<LogId<u64>>, Membership) = match applied {
            Some(v) => from_bytes(&v).map_err(|e| io_err(ErrorSubject::StateMachine, ErrorVerb::Read, &e))?,
            None => (None, Membership::default()),
        };
        let snapshot_id = match last_log_id {
            Some(l) => format!("{}-{}-{}-{n}", l.leader_id.term, l.leader_id.node_id, l.index),
            None => format!("empty-{n}"),
        };
        let meta = SnapshotMeta { last_log_id, last_membership, snapshot_id };
        let stored = StoredSnapshot { meta: meta.clone(), file: file_name(&meta.snapshot_id) };
        let path = dir.join(&stored.file);
        std::fs::rename(&building, &path)
            .map_err(|e| Self::snap_err(&MetaError::Storage(format!("name a snapshot: {e}"))))?;
        snapshot::sync_dir(&dir).map_err(|e| Self::snap_err(&e))?;
        self.save_current(&stored)?;
        tracing::info!(snapshot = %meta.snapshot_id, bytes, "snapshot built");
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| io_err(ErrorSubject::Snapshot(Some(meta.signature())), ErrorVerb::Read, &e))?;
        Ok(Snapshot { meta, snapshot: Box::new(file) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId<u64>>, Membership), SErr> {
        // Called first at start-up: a cut-short install is finished before
        // anything reads the state.
        self.finish_install().await?;
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
                        // A command this release does not know, or a newer
                        // level than it runs: applying anything else would
                        // leave this node with a state the others do not
                        // have. Stop here; an upgraded binary applies it.
                        Ok(cmd) if !crate::version::understood(&cmd, self.level) => {
                            let needs = crate::version::needed(&cmd)
                                .map_or_else(|| "a command kind it does not know".to_owned(), |n| format!("level {n}"));
                            tracing::error!(
                                index = entry.log_id.index,
                                "log entry needs {needs}, but this node runs command level {}: it stops applying; \
                                 run the release the rest of the cluster runs",
                                self.level
                            );
                            return Err(sm_err(
                                ErrorVerb::Write,
                                &MetaError::Storage(format!(
                                    "entry {} needs {needs}; this node understands command level {}",
                                    entry.log_id.index, self.level
                                )),
                            ));
                        }
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

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, SErr> {
        let dir = snapshot::dir(self.db());
        let n = self.snapshots_built.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("receiving-{n}.part"));
        let err = |e: &std::io::Error| io_err(ErrorSubject::Snapshot(None), ErrorVerb::Write, e);
        tokio::fs::create_dir_all(&dir).await.map_err(|e| err(&e))?;
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .await
            .map_err(|e| err(&e))?;
        *self.receiving.lock().unwrap_or_else(|p| p.into_inner()) = Some(path);
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), SErr> {
        use tokio::io::{AsyncSeekExt as _, AsyncWriteExt as _};
        let subject = ErrorSubject::Snapshot(Some(meta.signature()));
        let io = |e: std::io::Error| io_err(subject.clone(), ErrorVerb::Write, &e);
        let mut file = *snapshot;
        let dir = snapshot::dir(self.db());
        // The data is normally in the file begin_receiving_snapshot made;
        // anything else given is copied in first.
        let receiving = self.receiving.lock().unwrap_or_else(|p| p.into_inner()).take();
        let same = |a: &std::fs::Metadata, b: &std::fs::Metadata| {
            use std::os::unix::fs::MetadataExt as _;
            a.dev() == b.dev() && a.ino() == b.ino()
        };
        let given = file.metadata().await.map_err(io)?;
        let receiving = match receiving {
            Some(p) if std::fs::metadata(&p).is_ok_and(|m| same(&m, &given)) => Some(p),
            _ => None,
        };
        let received = match receiving {
            Some(path) => {
                file.flush().await.map_err(io)?;
                file.sync_all().await.map_err(io)?;
                path
            }
            // Data from elsewhere (not received here): copied in first.
            None => {
                let n = self.snapshots_built.fetch_add(1, Ordering::Relaxed);
                let path = dir.join(format!("given-{n}.part"));
                tokio::fs::create_dir_all(&dir).await.map_err(io)?;
                let mut out = tokio::fs::File::create(&path).await.map_err(io)?;
                file.seek(std::io::SeekFrom::Start(0)).await.map_err(io)?;
                tokio::io::copy(&mut file, &mut out).await.map_err(io)?;
                out.sync_all().await.map_err(io)?;
                path
            }
        };
        drop(file);
        let stored = StoredSnapshot { meta: meta.clone(), file: file_name(&meta.snapshot_id) };
        std::fs::rename(&received, dir.join(&stored.file))
            .map_err(|e| io_err(subject.clone(), ErrorVerb::Write, &e))?;
        snapshot::sync_dir(&dir).map_err(|e| io_err(subject, ErrorVerb::Write, &e))?;
        self.install_file(stored).await
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, SErr> {
        let Some(s) = self.stored(KEY_SNAPSHOT)? else { return Ok(None) };
        let path = snapshot::dir(self.db()).join(&s.file);
        match tokio::fs::File::open(&path).await {
            Ok(file) => Ok(Some(Snapshot { meta: s.meta, snapshot: Box::new(file) })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Built again when one is needed.
                tracing::warn!(file = %path.display(), "the current snapshot's file is missing");
                Ok(None)
            }
            Err(e) => Err(io_err(ErrorSubject::Snapshot(Some(s.meta.signature())), ErrorVerb::Read, &e)),
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
            stored_len: 0,
        };
        let record = ObjectRecord {
            etag: format!("{id:032x}"),
            body: Some(Body { kind: Some(body::Kind::Shards(shards)), ..Default::default() }),
            ..Default::default()
        };
        Command {
            now_ms: 2,
            op: Some(Op::PutObject(PutObject {
                bucket: bucket.into(),
                key: key.into(),
                record: Some(record),
                condition: None,
                origin: String::new(),
                bucket_digest: Vec::new(),
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
}

#[cfg(test)]
mod snapshot_tests {
    use super::*;
    use openraft::CommittedLeaderId;
    use tessera_rpc::proto::meta::CreateBucket;

    fn create(index: u64, name: &str) -> Entry<TypeConfig> {
        let cmd = Command {
            now_ms: 1,
            op: Some(Op::CreateBucket(CreateBucket { name: name.into(), owner: "o".into(), ..Default::default() })),
        };
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(RaftRequest(cmd.encode_to_vec())),
        }
    }

    fn names(sm: &StateMachineStore) -> Vec<String> {
        sm.state().buckets().unwrap().into_iter().map(|b| b.name).collect()
    }

    /// A crash in the middle of an install leaves part of the old state and
    /// part of the new; the marker makes the next start install it again.
    #[tokio::test]
    async fn a_cut_short_install_is_finished_at_start_up() {
        let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut a = StateMachineStore::new(MetaState::new(crate::db::open_db(a_dir.path()).unwrap()));
        a.apply((1..=3).map(|i| create(i, &format!("snap-{i}")))).await.unwrap();
        let snap = a.get_snapshot_builder().await.build_snapshot().await.unwrap();
        let stored = a.stored(KEY_SNAPSHOT).unwrap().unwrap();
        assert!(snapshot::dir(a.db()).join(&stored.file).exists());

        // Node b had other buckets; its install got as far as the marker and a
        // first batch that deleted its state and wrote one key.
        {
            let mut b = StateMachineStore::new(MetaState::new(crate::db::open_db(b_dir.path()).unwrap()));
            b.apply((1..=2).map(|i| create(i, &format!("old-{i}")))).await.unwrap();
            let dir = snapshot::dir(b.db());
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::copy(snapshot::dir(a.db()).join(&stored.file), dir.join(&stored.file)).unwrap();
            let marker = StoredSnapshot { meta: snap.meta.clone(), file: stored.file.clone() };
            b.db().put_cf(b.cf(CF_RAFT).unwrap(), KEY_INSTALLING, to_bytes(&marker)).unwrap();
            b.db().delete_cf(b.cf(CF_SM).unwrap(), crate::keys::bucket("old-1")).unwrap();
            assert_eq!(names(&b), ["old-2"], "a half-installed state");
        }
        let mut b = StateMachineStore::new(MetaState::new(crate::db::open_db(b_dir.path()).unwrap()));
        let (applied, _) = b.applied_state().await.unwrap();
        assert_eq!(applied.map(|l| l.index), Some(3));
        assert_eq!(names(&b), ["snap-1", "snap-2", "snap-3"]);
        assert!(b.stored(KEY_INSTALLING).unwrap().is_none(), "the marker is gone");
        assert_eq!(b.get_current_snapshot().await.unwrap().unwrap().meta.snapshot_id, snap.meta.snapshot_id);
    }

    /// A truncated received file is refused before the state is touched.
    #[tokio::test]
    async fn a_truncated_snapshot_changes_nothing() {
        let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut a = StateMachineStore::new(MetaState::new(crate::db::open_db(a_dir.path()).unwrap()));
        a.apply((1..=3).map(|i| create(i, &format!("snap-{i}")))).await.unwrap();
        let snap = a.get_snapshot_builder().await.build_snapshot().await.unwrap();
        let full = std::fs::read(snapshot::dir(a.db()).join(a.stored(KEY_SNAPSHOT).unwrap().unwrap().file)).unwrap();
        let mut b = StateMachineStore::new(MetaState::new(crate::db::open_db(b_dir.path()).unwrap()));
        b.apply([create(1, "mine")]).await.unwrap();
        let mut file = b.begin_receiving_snapshot().await.unwrap();
        use tokio::io::AsyncWriteExt as _;
        file.write_all(&full[..full.len() - 3]).await.unwrap();
        assert!(b.install_snapshot(&snap.meta, file).await.is_err());
        assert_eq!(names(&b), ["mine"]);
    }
}
