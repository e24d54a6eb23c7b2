//! The metadata state machine: commands applied to RocksDB tables, and the
//! reads served from them. Deterministic: everything a command needs (even
//! the time) is in the command, so every replica computes the same state.
//!
//! ```text
//!  Command (from the Raft log) ──apply──► checks (names, existence, conditions)
//!                                          │ ok: writes into one WriteBatch,
//!                                          │     replaced shards leave the disk index
//!                                          └ err: nothing written, a Failure result
//! ```

mod apply;
mod cluster;
pub mod list;
mod lock;
pub mod multipart;
pub mod notify;
pub mod versions;

use std::sync::Arc;

use rocksdb::{DB, Direction, IteratorMode, WriteBatch};
use tessera_rpc::proto::meta::command_result::Outcome;
use tessera_rpc::proto::meta::{
    BucketRecord, Command, CommandResult, ObjectRecord, ObjectSummary, PartRecord, UploadRecord,
};

use crate::MetaError;
use crate::db::{CF_SM, cf};
use crate::keys;
use crate::record::decode;
use list::{KeyCursor, ListPage, ListQuery, list_page};

/// The state machine's tables in one column family of a shared RocksDB.
#[derive(Clone)]
pub struct MetaState {
    db: Arc<DB>,
    /// Counts applied changes of the cluster map, for watchers.
    map_changes: Arc<tokio::sync::watch::Sender<u64>>,
    /// The last log index applied to these tables, for reads waiting on it.
    applied: Arc<tokio::sync::watch::Sender<u64>>,
}

impl std::fmt::Debug for MetaState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetaState")
    }
}

/// One page of ListMultipartUploads.
#[derive(Clone, Debug, PartialEq)]
pub struct UploadPage {
    /// Uploads in (key, initiation) order.
    pub uploads: Vec<UploadRecord>,
    /// Rolled-up key prefixes.
    pub common_prefixes: Vec<String>,
    /// More remain.
    pub is_truncated: bool,
    /// Next key-marker and upload-id-marker.
    pub next: Option<(String, String)>,
}

impl MetaState {
    /// The state machine over `db` (opened by [`crate::open_db`]).
    pub fn new(db: Arc<DB>) -> Self {
        MetaState {
            db,
            map_changes: Arc::new(tokio::sync::watch::channel(0).0),
            applied: Arc::new(tokio::sync::watch::channel(0).0),
        }
    }

    /// Records that entries up to `index` are applied (written).
    pub fn note_applied(&self, index: u64) {
        self.applied.send_if_modified(|a| {
            let newer = index > *a;
            if newer {
                *a = index;
            }
            newer
        });
    }

    /// Waits until entries up to `index` are applied. The state machine
    /// tells this directly, so a read does not wait for Raft's metrics.
    pub async fn applied_at_least(&self, index: u64) {
        let mut rx = self.applied.subscribe();
        // The sender lives in `self`: the wait cannot see it closed.
        let _ = rx.wait_for(|&a| a >= index).await;
    }

    /// Tells watchers the cluster map may have changed (called after the
    /// change is written).
    pub fn notify_map_changed(&self) {
        self.map_changes.send_modify(|n| *n += 1);
    }

    /// A receiver that wakes after every applied map change.
    pub fn subscribe_map_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.map_changes.subscribe()
    }

    /// The database, for the Raft storage that shares it.
    pub fn db(&self) -> &Arc<DB> {
        &self.db
    }

    /// Applies `cmd` (the entry at log `index`) by adding its writes to
    /// `batch`. A refused command writes nothing and yields a `Failure`.
    /// `Err` is only a storage failure, which is fatal for the node.
    pub fn apply(&self, index: u64, cmd: &Command, batch: &mut WriteBatch) -> Result<CommandResult, MetaError> {
        self.apply_in_entry(index, 0, cmd, batch)
    }

    /// [`MetaState::apply`] for the `sub`-th command of a batched entry.
    /// A command's writes do not depend on its place in the entry (the
    /// store's resume marker does).
    pub fn apply_in_entry(
        &self,
        index: u64,
        sub: u16,
        cmd: &Command,
        batch: &mut WriteBatch,
    ) -> Result<CommandResult, MetaError> {
        let mut writes = apply::Writes::default();
        // The write's place in the log: what names the versions it makes.
        let seq = (index << 16) | u64::from(sub);
        match apply::apply(self, seq, cmd, &mut writes) {
            Ok(outcome) => {
                writes.into_batch(batch, cf(&self.db, CF_SM)?);
                Ok(CommandResult { outcome: Some(outcome) })
            }
            Err(MetaError::Storage(e)) => Err(MetaError::Storage(e)),
            Err(e) => Ok(CommandResult { outcome: Some(Outcome::Failure(e.to_failure())) }),
        }
    }

    pub(crate) fn get<M: prost::Message + Default>(&self, key: &[u8]) -> Result<Option<M>, MetaError> {
        match self.db.get_pinned_cf(cf(&self.db, CF_SM)?, key)? {
            Some(v) => decode(&v).map(Some),
            None => Ok(None),
        }
    }

    /// Every (key, value) under `prefix`, in order.
    pub(crate) fn scan(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, MetaError> {
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(cf(&self.db, CF_SM)?, IteratorMode::From(prefix, Direction::Forward));
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    /// The first `max` keys under `prefix`, in order.
    pub(crate) fn first_keys(&self, prefix: &[u8], max: usize) -> Result<Vec<Vec<u8>>, MetaError> {
        let mut out = Vec::new();
        let mut it = self.db.raw_iterator_cf(cf(&self.db, CF_SM)?);
        it.seek(prefix);
        while out.len() < max && it.valid() {
            match it.key() {
                Some(k) if k.starts_with(prefix) => out.push(k.to_vec()),
                _ => break,
            }
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    /// Whether the retired garbage queue of older versions still holds
    /// entries (the leader drops them, `DropRetired`).
    pub fn has_retired(&self) -> Result<bool, MetaError> {
        self.has_any(&[keys::RETIRED_GC])
    }

    pub(crate) fn has_any(&self, prefix: &[u8]) -> Result<bool, MetaError> {
        let mut it = self.db.raw_iterator_cf(cf(&self.db, CF_SM)?);
        it.seek(prefix);
        let found = it.valid() && it.key().is_some_and(|k| k.starts_with(prefix));
        it.status()?;
        Ok(found)
    }

    /// A bucket's record.
    pub fn bucket(&self, name: &str) -> Result<Option<BucketRecord>, MetaError> {
        self.get(&keys::bucket(name))
    }

    /// All buckets, by name.
    pub fn buckets(&self) -> Result<Vec<BucketRecord>, MetaError> {
        self.scan(&[keys::BUCKETS])?.iter().map(|(_, v)| decode(v)).collect()
    }

    /// What `bucket` holds, counted from its records (a scan: its cost
    /// grows with the bucket). Records are decoded as summaries, so bodies
    /// and parts are never copied.
    pub fn bucket_usage(&self, bucket: &str) -> Result<tessera_rpc::proto::meta::BucketUsageReply, MetaError> {
        use tessera_rpc::proto::meta::{BucketUsageReply, ObjectSummary};
        self.require_bucket(bucket)?;
        let mut u = BucketUsageReply::default();
        let mut it = self.db.raw_iterator_cf(cf(&self.db, CF_SM)?);
        let mut each = |prefix: &[u8], f: &mut dyn FnMut(&[u8]) -> Result<(), MetaError>| -> Result<(), MetaError> {
            it.seek(prefix);
            while let (Some(k), Some(v)) = (it.key(), it.value()) {
                if !k.starts_with(prefix) {
                    break;
                }
                f(v)?;
                it.next();
            }
            it.status()?;
            Ok(())
        };
        each(&keys::objects_prefix(bucket, ""), &mut |v| {
            let s: ObjectSummary = decode(v)?;
            if s.delete_marker {
                u.delete_markers += 1;
            } else {
                u.objects += 1;
                u.bytes += s.size;
            }
            Ok(())
        })?;
        each(&keys::versions_prefix(bucket), &mut |v| {
            let s: ObjectSummary = decode(v)?;
            if s.delete_marker {
                u.delete_markers += 1;
            } else {
                u.noncurrent_versions += 1;
                u.noncurrent_bytes += s.size;
            }
            Ok(())
        })?;
        let mut uploads = Vec::new();
        each(&keys::uploads_prefix(bucket, ""), &mut |v| {
            let up: tessera_rpc::proto::meta::UploadRecord = decode(v)?;
            uploads.push(up.upload_id);
            Ok(())
        })?;
        u.uploads = uploads.len() as u64;
        for id in uploads {
            each(&keys::parts_prefix(&id), &mut |v| {
                let p: tessera_rpc::proto::meta::PartSummary = decode(v)?;
                u.upload_bytes += p.size;
                Ok(())
            })?;
        }
        Ok(u)
    }

    fn require_bucket(&self, name: &str) -> Result<BucketRecord, MetaError> {
        self.bucket(name)?.ok_or(MetaError::NoSuchBucket)
    }

    /// An object's record; `NoSuchBucket` if the bucket is missing.
    pub fn object(&self, bucket: &str, key: &str) -> Result<Option<ObjectRecord>, MetaError> {
        self.require_bucket(bucket)?;
        self.get(&keys::object(bucket, key))
    }

    /// One page of the `o` table of `bucket` (current versions), raw;
    /// without delete markers when `skip_markers`.
    pub(crate) fn list_raw(
        &self,
        bucket: &str,
        q: &ListQuery,
        skip_markers: bool,
    ) -> Result<ListPage<KeyValue>, MetaError> {
        let mut cur = RocksCursor::new(self, keys::objects_prefix(bucket, ""), |rest| {
            std::str::from_utf8(rest).ok().map(|k| (k.to_owned(), Vec::new()))
        })?;
        cur.skip_markers = skip_markers;
        list_page(&mut cur, q)
    }

    /// One page of a bucket's objects (current versions; delete markers
    /// are no objects).
    pub fn list_objects(&self, bucket: &str, q: &ListQuery) -> Result<ListPage<ObjectRecord>, MetaError> {
        let b = self.require_bucket(bucket)?;
        // Only a bucket that ever had versioning enabled can hold markers.
        let page = self.list_raw(bucket, q, b.versioning != 0)?;
        let items = page
            .items
            .into_iter()
            .map(|(k, v)| {
                // Only what a listing shows: bodies, parts and metadata are skipped undecoded.
                let s = decode::<ObjectSummary>(&v.1)?;
                let summary = ObjectRecord {
                    size: s.size,
                    etag: s.etag,
                    last_modified_ms: s.last_modified_ms,
                    checksums: s.checksums,
                    ..Default::default()
                };
                Ok((k, summary))
            })
            .collect::<Result<_, MetaError>>()?;
        Ok(ListPage { items, common_prefixes: page.common_prefixes, is_truncated: page.is_truncated, last: page.last })
    }

    /// An in-progress upload.
    pub fn upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<Option<UploadRecord>, MetaError> {
        self.require_bucket(bucket)?;
        self.get(&keys::upload(bucket, key, upload_id))
    }

    /// One page of a bucket's in-progress uploads (ListMultipartUploads):
    /// after (`key_marker`, `upload_id_marker`) as S3 defines them.
    pub fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        key_marker: Option<&str>,
        upload_id_marker: Option<&str>,
        max_uploads: usize,
    ) -> Result<UploadPage, MetaError> {
        self.require_bucket(bucket)?;
        let table = keys::uploads_prefix(bucket, "");
        let mut cur =
            RocksCursor::new(self, table, |rest| keys::split_upload_key(rest).map(|(k, id)| (k, id.into_bytes())))?;
        cur.escape_seeks = true;
        // With an upload-id marker, uploads of the marker key itself continue
        // after that id; without one, listing resumes after the whole key.
        let after = match (key_marker, upload_id_marker) {
            (Some(k), Some(id)) => {
                cur.skip_through = Some((k.to_owned(), id.to_owned()));
                None
            }
            (Some(k), None) => Some(k.to_owned()),
            _ => None,
        };
        let q = ListQuery {
            prefix: prefix.to_owned(),
            delimiter: delimiter.map(str::to_owned),
            after,
            max_keys: max_uploads,
        };
        let page = list_page(&mut cur, &q)?;
        let next = match (page.is_truncated, page.items.last()) {
            (false, _) => None,
            (true, Some((k, (id, _)))) if page.last.as_ref() == Some(k) => {
                Some((k.clone(), String::from_utf8_lossy(id).into_owned()))
            }
            (true, _) => page.last.clone().map(|p| (p, String::new())), // ended on a common prefix
        };
        let uploads = page.items.iter().map(|(_, (_, v))| decode::<UploadRecord>(v)).collect::<Result<_, _>>()?;
        Ok(UploadPage { uploads, common_prefixes: page.common_prefixes, is_truncated: page.is_truncated, next })
    }

    /// The uploaded parts of an upload, by number, after `after_part`.
    pub fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        after_part: u32,
        max_parts: usize,
    ) -> Result<(Vec<PartRecord>, bool), MetaError> {
        self.upload(bucket, key, upload_id)?.ok_or(MetaError::NoSuchUpload)?;
        let mut parts: Vec<PartRecord> =
            self.scan(&keys::parts_prefix(upload_id))?.iter().map(|(_, v)| decode(v)).collect::<Result<_, _>>()?;
        parts.retain(|p| p.number > after_part);
        let truncated = parts.len() > max_parts;
        parts.truncate(max_parts);
        Ok((parts, truncated))
    }

    /// Objects whose shards live in placement group `pg`, as (bucket, key),
    /// after `after` (exclusive), at most `max`.
    pub fn objects_in_pg(
        &self,
        pg: u32,
        after: Option<(&str, &str)>,
        max: usize,
    ) -> Result<Vec<(String, String)>, MetaError> {
        let prefix = keys::pg_prefix(pg);
        let start = match after {
            Some((b, k)) => {
                let mut s = keys::pg_entry(pg, b, k);
                s.push(0);
                s
            }
            None => prefix.clone(),
        };
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf(&self.db, CF_SM)?, IteratorMode::From(&start, Direction::Forward)) {
            let (k, _) = item?;
            if !k.starts_with(&prefix) || out.len() == max {
                break;
            }
            out.push(keys::split_pg_entry(&k).ok_or_else(|| MetaError::Storage("bad pg index key".into()))?);
        }
        Ok(out)
    }
}

/// A raw (key, value) pair of the state machine's column family.
pub(crate) type KeyValue = (Vec<u8>, Vec<u8>);

type Decoder = fn(&[u8]) -> Option<(String, Vec<u8>)>;

/// A [`KeyCursor`] over one table range of the state machine. Items are the
/// decoded key plus (an extra, e.g. the upload id) and the raw value.
struct RocksCursor<'a> {
    it: rocksdb::DBRawIteratorWithThreadMode<'a, DB>,
    table: Vec<u8>,
    split: Decoder,
    escape_seeks: bool,
    /// Skip entries up to and including this (key, extra): the upload-id marker.
    skip_through: Option<(String, String)>,
    /// Skip object records that are delete markers.
    skip_markers: bool,
}

impl<'a> RocksCursor<'a> {
    fn new(state: &'a MetaState, table: Vec<u8>, split: Decoder) -> Result<Self, MetaError> {
        let it = state.db.raw_iterator_cf(cf(&state.db, CF_SM)?);
        Ok(RocksCursor { it, table, split, escape_seeks: false, skip_through: None, skip_markers: false })
    }
}

impl KeyCursor for RocksCursor<'_> {
    type Item = (Vec<u8>, Vec<u8>);

    fn seek(&mut self, key: &[u8]) -> Result<(), MetaError> {
        let mut k = self.table.clone();
        if self.escape_seeks {
            for &b in key {
                k.push(b);
                if b == 0 {
                    k.push(0xff);
                }
            }
        } else {
            k.extend_from_slice(key);
        }
        self.it.seek(&k);
        Ok(())
    }

    fn next_entry(&mut self) -> Result<Option<(String, Self::Item)>, MetaError> {
        loop {
            if !self.it.valid() {
                self.it.status()?;
                return Ok(None);
            }
            let (Some(k), Some(v)) = (self.it.key(), self.it.value()) else {
                return Ok(None);
            };
            if !k.starts_with(&self.table) {
                return Ok(None);
            }
            let (key, extra) = (self.split)(&k[self.table.len()..])
                .ok_or_else(|| MetaError::Storage("undecodable table key".into()))?;
            if self.skip_markers && decode::<ObjectSummary>(v)?.delete_marker {
                self.it.next();
                continue;
            }
            let v = v.to_vec();
            self.it.next();
            if let Some((sk, sid)) = &self.skip_through
                && (key < *sk || (key == *sk && extra.as_slice() <= sid.as_bytes()))
            {
                continue;
            }
            return Ok(Some((key, (extra, v))));
        }
    }
}

/// The digest of a bucket's record: SHA-256 of its encoding by this
/// release. A writer that decided with the record it read (`BucketReply`'s
/// `digest`) sends it with its PutObject, which applies only while the
/// record is still that one. Every voter computes it alike: the records are
/// the same commands applied, and a field an older release would drop can
/// only be set by a command the version gate holds back until every voter
/// knows it.
pub fn bucket_digest(b: &tessera_rpc::proto::meta::BucketRecord) -> Vec<u8> {
    use prost::Message;
    use sha2::Digest;
    sha2::Sha256::digest(b.encode_to_vec()).to_vec()
}
