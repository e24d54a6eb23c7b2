//! Object versions, as S3 keeps them once a bucket's versioning is enabled.
//!
//! ```text
//!  `o` (bucket, key)            the current version: an object or a delete marker
//!  `v` (bucket, key, !seq)      the noncurrent versions, newest first
//!  `q` (bucket, key)            the seq of the key's noncurrent `null` version
//! ```
//!
//! A key has noncurrent versions only while it has a current one, so a
//! listing walks `o` as before and a bucket is empty when `o` is. Every
//! version written in a bucket whose versioning is (or was) enabled gets a
//! `version_seq` from its write's log position; its id is that seq in hex,
//! except for `null` versions (writes while suspended, and objects written
//! before versioning was enabled, whose seq is 0), of which a key has at
//! most one.
//!
//! The disk index names a body's owner by (bucket, key, version id), which
//! does not change when a version becomes noncurrent: heal, rebalance and
//! the collectors find the version wherever it is. A version's shards are
//! collected only when the version itself is deleted (by id), or when a
//! suspended write replaces the `null` version.

use tessera_rpc::names::{VersionRef, parse_version_id, version_id};
use tessera_rpc::proto::meta::command_result::Outcome;
use tessera_rpc::proto::meta::{
    Body, BucketRecord, Condition, DiskShard, ObjectRecord, ObjectSummary, SetBucketVersioning, Versioning, body,
};

use super::MetaState;
use super::apply::{Writes, bodies, check_condition, done, shard_pgs, store_object};
use super::list::ListQuery;
use super::lock::{self, Guard};
use crate::MetaError;
use crate::db::{CF_SM, cf};
use crate::keys;
use crate::record::{decode, encode};

/// One page of ListObjectVersions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VersionPage {
    /// (key, summary with version id and delete marker flag, is latest),
    /// keys in order, each key's versions newest first.
    pub versions: Vec<(String, ObjectRecord, bool)>,
    /// Rolled-up key prefixes.
    pub common_prefixes: Vec<String>,
    /// More remain after this page.
    pub is_truncated: bool,
    /// Where the next page starts (set when truncated).
    pub next_key_marker: Option<String>,
    /// The version of `next_key_marker` the next page continues after.
    pub next_version_id_marker: Option<String>,
}

/// The id S3 shows for a version (`null` for the null version).
pub fn shown_id(rec: &ObjectRecord) -> String {
    if rec.version_id.is_empty() { "null".to_owned() } else { rec.version_id.clone() }
}

fn invalid_version() -> MetaError {
    MetaError::InvalidArgument("Invalid version id specified".into())
}

fn summary_of(raw: &[u8]) -> Result<ObjectRecord, MetaError> {
    let s = decode::<ObjectSummary>(raw)?;
    Ok(ObjectRecord {
        size: s.size,
        etag: s.etag,
        last_modified_ms: s.last_modified_ms,
        checksums: s.checksums,
        version_id: s.version_id,
        delete_marker: s.delete_marker,
        tags: s.tags,
        lock: s.lock,
        ..Default::default()
    })
}

impl MetaState {
    /// Version `vid` of `key` ("": the current one, possibly a delete
    /// marker; "null"; or a version id) and the state-machine key it is
    /// stored under. A malformed id is `InvalidArgument`.
    pub(crate) fn find_version(
        &self,
        bucket: &str,
        key: &str,
        vid: &str,
    ) -> Result<Option<(Vec<u8>, ObjectRecord)>, MetaError> {
        let want = if vid.is_empty() { None } else { Some(parse_version_id(vid).ok_or_else(invalid_version)?) };
        let ck = keys::object(bucket, key);
        let Some(cur) = self.get::<ObjectRecord>(&ck)? else { return Ok(None) };
        match want {
            None => Ok(Some((ck, cur))),
            Some(VersionRef::Null) if cur.version_id.is_empty() => Ok(Some((ck, cur))),
            Some(VersionRef::Null) => {
                let Some(seq) = self.null_seq(bucket, key)? else { return Ok(None) };
                let vk = keys::version(bucket, key, seq);
                Ok(self.get::<ObjectRecord>(&vk)?.filter(|r| r.version_id.is_empty()).map(|r| (vk, r)))
            }
            Some(VersionRef::Seq(seq)) if !cur.version_id.is_empty() && cur.version_seq == seq => Ok(Some((ck, cur))),
            Some(VersionRef::Seq(seq)) => {
                let vk = keys::version(bucket, key, seq);
                Ok(self.get::<ObjectRecord>(&vk)?.filter(|r| !r.version_id.is_empty()).map(|r| (vk, r)))
            }
        }
    }

    /// An object version (see [`MetaState::find_version`]); `NoSuchBucket`
    /// if the bucket is missing.
    pub fn object_version(&self, bucket: &str, key: &str, vid: &str) -> Result<Option<ObjectRecord>, MetaError> {
        self.require_bucket(bucket)?;
        Ok(self.find_version(bucket, key, vid)?.map(|(_, r)| r))
    }

    fn null_seq(&self, bucket: &str, key: &str) -> Result<Option<u64>, MetaError> {
        match self.db.get_pinned_cf(cf(&self.db, CF_SM)?, keys::null_version(bucket, key))? {
            Some(v) => {
                let b: [u8; 8] =
                    v.as_ref().try_into().map_err(|_| MetaError::Storage("bad null version pointer".into()))?;
                Ok(Some(u64::from_be_bytes(b)))
            }
            None => Ok(None),
        }
    }

    /// Up to `max` noncurrent versions of `key` from state-machine key
    /// `from` on (skipping `from` itself when `after`), as summaries, and
    /// whether more follow.
    fn noncurrent(
        &self,
        bucket: &str,
        key: &str,
        from: Option<Vec<u8>>,
        max: usize,
    ) -> Result<(Vec<ObjectRecord>, bool), MetaError> {
        let prefix = keys::versions_of_key(bucket, key);
        let mut it = self.db.raw_iterator_cf(cf(&self.db, CF_SM)?);
        match &from {
            Some(k) => {
                it.seek(k);
                if it.valid() && it.key() == Some(k.as_slice()) {
                    it.next();
                }
            }
            None => it.seek(&prefix),
        }
        let mut out = Vec::new();
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else { break };
            if !k.starts_with(&prefix) {
                break;
            }
            if out.len() == max {
                return Ok((out, true));
            }
            out.push(summary_of(v)?);
            it.next();
        }
        it.status()?;
        Ok((out, false))
    }

    /// The newest noncurrent version of `key`, with its state-machine key.
    fn newest_noncurrent(&self, bucket: &str, key: &str) -> Result<Option<(Vec<u8>, ObjectRecord)>, MetaError> {
        let prefix = keys::versions_of_key(bucket, key);
        let mut it = self.db.raw_iterator_cf(cf(&self.db, CF_SM)?);
        it.seek(&prefix);
        let found = match (it.key(), it.value()) {
            (Some(k), Some(v)) if it.valid() && k.starts_with(&prefix) => Some((k.to_vec(), decode(v)?)),
            _ => None,
        };
        it.status()?;
        Ok(found)
    }

    /// One page of ListObjectVersions: keys (and common prefixes) in order
    /// as a listing has them, each key's versions newest first; versions,
    /// delete markers and common prefixes count against `max`. A page may
    /// end inside a key's versions (`next_version_id_marker`).
    pub fn list_versions(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        key_marker: Option<&str>,
        version_id_marker: Option<&str>,
        max: usize,
    ) -> Result<VersionPage, MetaError> {
        self.require_bucket(bucket)?;
        let mut page = VersionPage::default();
        if max == 0 {
            return Ok(page);
        }
        let mut budget = max;
        // Inside the marker key: the versions after the marker version.
        if let (Some(k), Some(v)) = (key_marker, version_id_marker.filter(|v| !v.is_empty()))
            && k.starts_with(prefix)
        {
            let from = match self.find_version(bucket, k, v)? {
                Some((sk, _)) if sk == keys::object(bucket, k) => None,
                Some((sk, _)) => Some(sk),
                None => match parse_version_id(v).ok_or_else(invalid_version)? {
                    // The marker version is gone: continue with what is older.
                    VersionRef::Seq(seq) => Some(keys::version(bucket, k, seq)),
                    VersionRef::Null => Some(keys::version(bucket, k, 0)),
                },
            };
            if self.get::<ObjectRecord>(&keys::object(bucket, k))?.is_some() {
                let (vers, more) = self.noncurrent(bucket, k, from, budget)?;
                budget -= vers.len();
                let last = vers.last().map(shown_id);
                page.versions.extend(vers.into_iter().map(|r| (k.to_owned(), r, false)));
                if more || budget == 0 {
                    page.is_truncated = more || self.anything_after(bucket, prefix, delimiter, k)?;
                    if page.is_truncated {
                        page.next_key_marker = Some(k.to_owned());
                        page.next_version_id_marker = last.or_else(|| Some(v.to_owned()));
                    }
                    return Ok(page);
                }
            }
        }
        let q = ListQuery {
            prefix: prefix.to_owned(),
            delimiter: delimiter.map(str::to_owned),
            after: key_marker.map(str::to_owned),
            max_keys: budget,
        };
        let listed = self.list_raw(bucket, &q, false)?;
        // Keys and common prefixes in one order (each costs at least one).
        enum Entry {
            Key(String, Vec<u8>),
            Prefix(String),
        }
        let mut entries: Vec<(String, Entry)> =
            listed.items.into_iter().map(|(k, v)| (k.clone(), Entry::Key(k, v.1))).collect();
        entries.extend(listed.common_prefixes.into_iter().map(|p| (p.clone(), Entry::Prefix(p))));
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let total = entries.len();
        for (i, (_, e)) in entries.into_iter().enumerate() {
            let (name, last) = match e {
                Entry::Prefix(p) => {
                    page.common_prefixes.push(p.clone());
                    budget -= 1;
                    (p, None)
                }
                Entry::Key(k, raw) => {
                    let cur = summary_of(&raw)?;
                    budget -= 1;
                    let mut last = shown_id(&cur);
                    page.versions.push((k.clone(), cur, true));
                    let (vers, more) = self.noncurrent(bucket, &k, None, budget)?;
                    budget -= vers.len();
                    if let Some(v) = vers.last() {
                        last = shown_id(v);
                    }
                    page.versions.extend(vers.into_iter().map(|r| (k.clone(), r, false)));
                    if more {
                        page.is_truncated = true;
                        page.next_key_marker = Some(k);
                        page.next_version_id_marker = Some(last);
                        return Ok(page);
                    }
                    (k, Some(last))
                }
            };
            if budget == 0 {
                page.is_truncated = i + 1 < total || listed.is_truncated;
                if page.is_truncated {
                    page.next_key_marker = Some(name);
                    page.next_version_id_marker = last;
                }
                return Ok(page);
            }
        }
        Ok(page)
    }

    /// Whether a listing of `prefix` holds anything after `key`.
    fn anything_after(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        key: &str,
    ) -> Result<bool, MetaError> {
        let q = ListQuery {
            prefix: prefix.to_owned(),
            delimiter: delimiter.map(str::to_owned),
            after: Some(key.to_owned()),
            max_keys: 1,
        };
        let p = self.list_raw(bucket, &q, false)?;
        Ok(!p.items.is_empty() || !p.common_prefixes.is_empty())
    }
}

pub(super) fn set_versioning(st: &MetaState, c: &SetBucketVersioning, w: &mut Writes) -> Result<Outcome, MetaError> {
    let mut rec = st.require_bucket(&c.bucket)?;
    if rec.object_lock && c.versioning != Versioning::Enabled as i32 {
        return Err(MetaError::InvalidBucketState(
            "an object lock configuration is present on this bucket, so the versioning state cannot be changed".into(),
        ));
    }
    match Versioning::try_from(c.versioning) {
        Ok(v @ (Versioning::Enabled | Versioning::Suspended)) => rec.versioning = v as i32,
        _ => return Err(MetaError::InvalidArgument("versioning can be enabled or suspended, not turned off".into())),
    }
    w.put(keys::bucket(&c.bucket), encode(&rec));
    Ok(done())
}

/// The version a retried write already made: a new version carries bodies
/// no record references yet, so a body the disk index already knows for
/// this key is the same write applied again (a client retry after a
/// leader change), answered with what it made instead of a second version
/// sharing the same shards.
pub(super) fn already_stored(
    st: &MetaState,
    bucket: &str,
    key: &str,
    rec: &ObjectRecord,
) -> Result<Option<ObjectRecord>, MetaError> {
    let Some(Body { kind: Some(body::Kind::Shards(s)), .. }) = &rec.body else { return Ok(None) };
    for &disk in &s.disks {
        if let Some(e) = st.get::<DiskShard>(&keys::disk_shard(disk, &s.data_id))? {
            if !e.upload_id.is_empty() || e.bucket != bucket || e.key != key {
                return Ok(None);
            }
            let vid = if e.version_id.is_empty() { "null" } else { e.version_id.as_str() };
            return Ok(st.find_version(bucket, key, vid)?.map(|(_, r)| r));
        }
    }
    Ok(None)
}

/// Makes `rec` (an object or a delete marker) the current version of `key`
/// in a bucket with versioning enabled or suspended. Enabled: it gets its
/// own id and the current version becomes noncurrent. Suspended: it is the
/// `null` version, replacing (and collecting) the one there was.
pub(super) fn put_version(
    st: &MetaState,
    bucket: &BucketRecord,
    key: &str,
    old: Option<ObjectRecord>,
    mut rec: ObjectRecord,
    seq: u64,
    w: &mut Writes,
) -> Result<ObjectRecord, MetaError> {
    let b = bucket.name.as_str();
    let enabled = bucket.versioning() == Versioning::Enabled;
    rec.version_seq = seq;
    rec.version_id = if enabled { version_id(seq) } else { String::new() };
    lock::on_write(bucket, &mut rec)?;
    match old {
        Some(old) if !enabled && old.version_id.is_empty() => {
            lock::may_remove(&old, Guard { now: rec.last_modified_ms, bypass_governance: false })?;
            store_object(b, key, Some(&old), &rec, w);
            return Ok(rec);
        }
        Some(old) => {
            // Noncurrent now: out of the pg index (current versions only),
            // its disk index entries unchanged (they name the version).
            for pg in shard_pgs(&old) {
                w.delete(keys::pg_entry(pg, b, key));
            }
            if old.version_id.is_empty() {
                w.put(keys::null_version(b, key), old.version_seq.to_be_bytes().to_vec());
            }
            w.put(keys::version(b, key, old.version_seq), encode(&old));
        }
        None => {}
    }
    if !enabled {
        drop_noncurrent_null(st, b, key, rec.last_modified_ms, w)?;
    }
    store_object(b, key, None, &rec, w);
    Ok(rec)
}

fn drop_noncurrent_null(st: &MetaState, bucket: &str, key: &str, now: u64, w: &mut Writes) -> Result<(), MetaError> {
    let Some(seq) = st.null_seq(bucket, key)? else { return Ok(()) };
    let vk = keys::version(bucket, key, seq);
    if let Some(r) = st.get::<ObjectRecord>(&vk)? {
        lock::may_remove(&r, Guard { now, bypass_governance: false })?;
        for b in bodies(&r) {
            w.collect(Some(b));
        }
    }
    w.delete(vk);
    w.delete(keys::null_version(bucket, key));
    Ok(())
}

/// Deletes version `id` of `key` for good and collects its shards; when it
/// was the current version, the newest noncurrent one takes its place.
/// Deleting a version that does not exist succeeds, as in S3. Answers the
/// deleted version's id and whether it was a delete marker.
pub(super) fn delete_version(
    st: &MetaState,
    b: &BucketRecord,
    key: &str,
    id: &str,
    cond: Option<&Condition>,
    (guard, seq): (Guard, u64),
    w: &mut Writes,
) -> Result<Outcome, MetaError> {
    let bucket = b.name.as_str();
    if id.is_empty() {
        return Err(invalid_version());
    }
    let Some((sk, rec)) = st.find_version(bucket, key, id)? else {
        check_condition(cond, None)?;
        let version_id = if id == "null" { String::new() } else { id.to_owned() };
        return Ok(Outcome::Object(ObjectRecord { version_id, ..Default::default() }));
    };
    check_condition(cond, Some(&rec))?;
    lock::may_remove(&rec, guard)?;
    super::notify::emit(b, key, "ObjectRemoved:Delete", &rec, seq, guard.now, w);
    for b in bodies(&rec) {
        w.collect(Some(b));
    }
    if sk == keys::object(bucket, key) {
        for pg in shard_pgs(&rec) {
            w.delete(keys::pg_entry(pg, bucket, key));
        }
        match st.newest_noncurrent(bucket, key)? {
            Some((vk, next)) => {
                w.delete(vk);
                if next.version_id.is_empty() {
                    w.delete(keys::null_version(bucket, key));
                }
                for pg in shard_pgs(&next) {
                    w.put(keys::pg_entry(pg, bucket, key), Vec::new());
                }
                w.put(sk, encode(&next));
            }
            None => w.delete(sk),
        }
    } else {
        w.delete(sk);
        if rec.version_id.is_empty() {
            w.delete(keys::null_version(bucket, key));
        }
    }
    Ok(Outcome::Object(ObjectRecord {
        version_id: rec.version_id,
        delete_marker: rec.delete_marker,
        version_seq: rec.version_seq,
        ..Default::default()
    }))
}

/// Changes one version's record (tags, ACL): "" the current version. A
/// delete marker has neither: `NoSuchKey` as the current version,
/// `MethodNotAllowed` by id.
pub(super) fn change_version(
    st: &MetaState,
    bucket: &str,
    key: &str,
    vid: &str,
    w: &mut Writes,
    change: impl FnOnce(&mut ObjectRecord),
) -> Result<Outcome, MetaError> {
    st.require_bucket(bucket)?;
    let missing = if vid.is_empty() { MetaError::NoSuchKey } else { MetaError::NoSuchVersion };
    let (sk, mut rec) = st.find_version(bucket, key, vid)?.ok_or(missing)?;
    if rec.delete_marker {
        return Err(if vid.is_empty() { MetaError::NoSuchKey } else { MetaError::MethodNotAllowed });
    }
    change(&mut rec);
    w.put(sk, encode(&rec));
    Ok(done())
}
