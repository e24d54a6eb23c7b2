//! The Raft log and vote in RocksDB. An append or a vote is reported
//! durable only after its write is fsynced; the fsync runs on a blocking
//! thread so the runtime keeps serving.

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogReader, StorageError, Vote};
use rocksdb::{DB, Direction, IteratorMode, WriteBatch, WriteOptions};

use super::{TypeConfig, from_bytes, io_err, to_bytes};
use crate::db::{CF_LOG, CF_RAFT};

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_PURGED: &[u8] = b"purged";

type SErr = StorageError<u64>;

/// Raft log storage over the node's RocksDB.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogStore")
    }
}

fn synced() -> WriteOptions {
    let mut w = WriteOptions::default();
    w.set_sync(true);
    w
}

impl LogStore {
    /// The log store of `db` (opened by [`crate::open_db`]).
    pub fn new(db: Arc<DB>) -> Self {
        LogStore { db }
    }

    fn cf_log(&self) -> Result<&rocksdb::ColumnFamily, SErr> {
        self.db.cf_handle(CF_LOG).ok_or_else(|| io_err(ErrorSubject::Logs, ErrorVerb::Read, &missing_cf()))
    }

    fn cf_raft(&self) -> Result<&rocksdb::ColumnFamily, SErr> {
        self.db.cf_handle(CF_RAFT).ok_or_else(|| io_err(ErrorSubject::Store, ErrorVerb::Read, &missing_cf()))
    }

    fn read_value<T: for<'a> serde::Deserialize<'a>>(
        &self,
        key: &[u8],
        subject: ErrorSubject<u64>,
    ) -> Result<Option<T>, SErr> {
        let v = self.db.get_cf(self.cf_raft()?, key).map_err(|e| io_err(subject.clone(), ErrorVerb::Read, &e))?;
        v.map(|v| from_bytes(&v).map_err(|e| io_err(subject, ErrorVerb::Read, &e))).transpose()
    }

    /// Writes `batch` with fsync on a blocking thread.
    async fn write_synced(&self, batch: WriteBatch, subject: ErrorSubject<u64>) -> Result<(), SErr> {
        let db = self.db.clone();
        let r = tokio::task::spawn_blocking(move || db.write_opt(batch, &synced()))
            .await
            .map_err(|e| io_err(subject.clone(), ErrorVerb::Write, &e))?;
        r.map_err(|e| io_err(subject, ErrorVerb::Write, &e))
    }
}

fn missing_cf() -> std::io::Error {
    std::io::Error::other("column family missing")
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, SErr> {
        use std::ops::Bound;
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s + 1,
            Bound::Unbounded => 0,
        };
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(self.cf_log()?, IteratorMode::From(&index_key(start), Direction::Forward));
        for item in iter {
            let (k, v) = item.map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, &e))?;
            let idx = u64::from_be_bytes(
                k.as_ref().try_into().map_err(|_| io_err(ErrorSubject::Logs, ErrorVerb::Read, &bad_key()))?,
            );
            if !range.contains(&idx) {
                break;
            }
            out.push(from_bytes(&v).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, &e))?);
        }
        Ok(out)
    }
}

fn bad_key() -> std::io::Error {
    std::io::Error::other("log key is not 8 bytes")
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, SErr> {
        let last_purged_log_id: Option<LogId<u64>> = self.read_value(KEY_PURGED, ErrorSubject::Store)?;
        let mut it = self.db.raw_iterator_cf(self.cf_log()?);
        it.seek_to_last();
        let last = match it.value() {
            Some(v) => Some(
                from_bytes::<Entry<TypeConfig>>(v).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, &e))?.log_id,
            ),
            None => None,
        };
        it.status().map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, &e))?;
        Ok(LogState { last_purged_log_id, last_log_id: last.or(last_purged_log_id) })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), SErr> {
        let mut b = WriteBatch::default();
        b.put_cf(self.cf_raft()?, KEY_VOTE, to_bytes(vote));
        self.write_synced(b, ErrorSubject::Vote).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, SErr> {
        self.read_value(KEY_VOTE, ErrorSubject::Vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> Result<(), SErr> {
        // Not fsynced: losing it only means re-deriving the commit index.
        self.db
            .put_cf(self.cf_raft()?, KEY_COMMITTED, to_bytes(&committed))
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, &e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, SErr> {
        Ok(self.read_value::<Option<LogId<u64>>>(KEY_COMMITTED, ErrorSubject::Store)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut b = WriteBatch::default();
        let cf = self.cf_log()?;
        for e in entries {
            b.put_cf(cf, index_key(e.log_id.index), to_bytes(&e));
        }
        let r = self.write_synced(b, ErrorSubject::Logs).await;
        match &r {
            Ok(()) => callback.log_io_completed(Ok(())),
            Err(e) => callback.log_io_completed(Err(std::io::Error::other(e.to_string()))),
        }
        r
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), SErr> {
        let mut b = WriteBatch::default();
        b.delete_range_cf(self.cf_log()?, index_key(log_id.index), index_key(u64::MAX));
        b.delete_cf(self.cf_log()?, index_key(u64::MAX));
        self.write_synced(b, ErrorSubject::Logs).await
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), SErr> {
        // The state machine's writes are not fsynced one by one; make them
        // durable before the log that could replay them goes away.
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush_wal(true))
            .await
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, &e))?
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, &e))?;
        let mut b = WriteBatch::default();
        b.put_cf(self.cf_raft()?, KEY_PURGED, to_bytes(&log_id));
        b.delete_range_cf(self.cf_log()?, index_key(0), index_key(log_id.index + 1));
        self.write_synced(b, ErrorSubject::Logs).await
    }
}
