//! Reliability test 4: openraft's storage conformance suite on our RocksDB
//! log store and state machine, plus durability across a reopen.

// A test that meets an error should fail loudly.
#![allow(clippy::unwrap_used)]

use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader, RaftSnapshotBuilder, StorageError, Vote};
use prost::Message;
use tempfile::TempDir;
use tessera_metadata::raft::{LogStore, RaftRequest, StateMachineStore, TypeConfig};
use tessera_metadata::{MetaState, open_db};
use tessera_rpc::proto::meta::{Command, CreateBucket, command::Op};

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<u64>> {
        let dir = tempfile::tempdir().unwrap();
        let db = open_db(dir.path()).unwrap();
        Ok((dir, LogStore::new(db.clone()), StateMachineStore::new(MetaState::new(db))))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(Builder).unwrap();
}

fn entry(term: u64, index: u64, bucket: &str) -> Entry<TypeConfig> {
    let cmd = Command {
        now_ms: index,
        op: Some(Op::CreateBucket(CreateBucket {
            name: bucket.into(),
            owner: "o".into(),
            ec: None,
            ..Default::default()
        })),
    };
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
        payload: EntryPayload::Normal(RaftRequest(cmd.encode_to_vec())),
    }
}

#[tokio::test]
async fn log_vote_state_and_snapshot_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open_db(dir.path()).unwrap();
        let mut log = LogStore::new(db.clone());
        let mut sm = StateMachineStore::new(MetaState::new(db));
        log.save_vote(&Vote::new(3, 1)).await.unwrap();
        let entries: Vec<_> = (1..=3).map(|i| entry(3, i, &format!("bucket-{i}"))).collect();
        // The suite's append callback is internal to openraft; blocking_append
        // drives the same code path and waits for the flush.
        openraft::storage::RaftLogStorageExt::blocking_append(&mut log, entries.clone()).await.unwrap();
        sm.apply(entries).await.unwrap();
        sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
        sm.apply(vec![entry(3, 4, "bucket-4")]).await.unwrap();
    }
    let db = open_db(dir.path()).unwrap();
    let mut log = LogStore::new(db.clone());
    let mut sm = StateMachineStore::new(MetaState::new(db));
    assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(3, 1)));
    assert_eq!(log.try_get_log_entries(1..4).await.unwrap().len(), 3);
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(applied.map(|l| l.index), Some(4));
    let names: Vec<String> = sm.state().buckets().unwrap().into_iter().map(|b| b.name).collect();
    assert_eq!(names, ["bucket-1", "bucket-2", "bucket-3", "bucket-4"]);
    let snap = sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(snap.meta.last_log_id.map(|l| l.index), Some(3));

    // Installing that snapshot on a fresh node gives exactly its state.
    let other_dir = tempfile::tempdir().unwrap();
    let mut other = StateMachineStore::new(MetaState::new(open_db(other_dir.path()).unwrap()));
    other.install_snapshot(&snap.meta, snap.snapshot).await.unwrap();
    let names: Vec<String> = other.state().buckets().unwrap().into_iter().map(|b| b.name).collect();
    assert_eq!(names, ["bucket-1", "bucket-2", "bucket-3"]);
    assert_eq!(other.applied_state().await.unwrap().0.map(|l| l.index), Some(3));
}
