//! Applying one command: every check first, then the writes, collected in
//! [`Writes`] so that a refused command leaves no trace.

use rocksdb::{ColumnFamily, WriteBatch};
use tessera_rpc::names::{bucket_name_problem, key_problem};
use tessera_rpc::proto::meta::command::Op;
use tessera_rpc::proto::meta::command_result::Outcome;
use tessera_rpc::proto::meta::condition::Kind;
use tessera_rpc::proto::meta::{
    AbortUpload, Body, BucketRecord, ClusterCa, Command, CompleteUpload, Condition, CreateBucket, CreateUpload,
    DeleteBucket, DeleteObject, DiskShard, Done, Encryption, JoinTokenRecord, MoveShard, ObjectRecord, PartRecord,
    PartRef, PutObject, PutPart, RestoreShards, RewrapKey, SetBucketCors, SetBucketPolicy, SetPublicAccessBlock,
    ShardSet, UploadRecord, body,
};

use super::MetaState;
use super::multipart::{MAX_PART_NUMBER, bare_etag, check_completion, multipart_etag};
use super::versions;
use crate::MetaError;
use crate::keys;
use crate::record::{decode, encode};
use tessera_rpc::proto::meta::Versioning;

/// Puts and deletes of one command, in order.
#[derive(Default)]
pub(crate) struct Writes {
    ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Writes {
    pub(crate) fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push((key, Some(value)));
    }
    pub(crate) fn delete(&mut self, key: Vec<u8>) {
        self.ops.push((key, None));
    }
    /// Drops the shards of `body` (no record references them any more)
    /// from the disk index: the disks' collectors now find their files
    /// unreferenced and remove them after the grace period.
    pub(crate) fn collect(&mut self, body: Option<&Body>) {
        if let Some(Body { kind: Some(body::Kind::Shards(shards)), .. }) = body {
            for (disk, _) in disk_positions(shards) {
                self.delete(keys::disk_shard(disk, &shards.data_id));
            }
        }
    }
    /// Records in the disk index that the disks of `body` hold its shards
    /// (named with `part`), and which record references it: the object
    /// (`upload_id` empty) or an upload's part. Idempotent: a command applied
    /// again writes the same entries; a part that becomes an object's (on
    /// Complete) is written again with its new owner.
    pub(crate) fn reference(&mut self, owner: Owner<'_>, part: u32, body: Option<&Body>) {
        if let Some(Body { kind: Some(body::Kind::Shards(shards)), .. }) = body {
            for (disk, positions) in disk_positions(shards) {
                let missing = positions.iter().copied().filter(|p| shards.missing.contains(p)).collect();
                let entry = DiskShard {
                    part,
                    missing,
                    positions,
                    pg: shards.pg,
                    disks: shards.disks.clone(),
                    bucket: owner.bucket.to_owned(),
                    key: owner.key.to_owned(),
                    upload_id: owner.upload_id.to_owned(),
                    version_id: owner.version_id.to_owned(),
                };
                self.put(keys::disk_shard(disk, &shards.data_id), encode(&entry));
            }
        }
    }
    pub(crate) fn into_batch(self, batch: &mut WriteBatch, cf: &ColumnFamily) {
        for (k, v) in self.ops {
            match v {
                Some(v) => batch.put_cf(cf, k, v),
                None => batch.delete_cf(cf, k),
            }
        }
    }
}

/// The record that references a body: an object version (`upload_id`
/// empty; `version_id` empty for the `null` version) or an upload's part.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Owner<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub upload_id: &'a str,
    pub version_id: &'a str,
}

impl<'a> Owner<'a> {
    pub(crate) fn version(bucket: &'a str, key: &'a str, version_id: &'a str) -> Self {
        Owner { bucket, key, upload_id: "", version_id }
    }
    fn upload(bucket: &'a str, key: &'a str, upload_id: &'a str) -> Self {
        Owner { bucket, key, upload_id, version_id: "" }
    }
}

/// The disks of a shard set, each with the positions placed on it.
fn disk_positions(s: &ShardSet) -> Vec<(u32, Vec<u32>)> {
    let mut out: Vec<(u32, Vec<u32>)> = Vec::new();
    for (pos, &disk) in s.disks.iter().enumerate() {
        match out.iter_mut().find(|(d, _)| *d == disk) {
            Some((_, p)) => p.push(pos as u32),
            None => out.push((disk, vec![pos as u32])),
        }
    }
    out
}

pub(crate) fn done() -> Outcome {
    Outcome::Done(Done {})
}

pub(crate) fn check_key(key: &str) -> Result<(), MetaError> {
    key_problem(key).map_or(Ok(()), |p| Err(MetaError::KeyTooLong(p)))
}

/// Every shard set an object record points at.
pub(crate) fn bodies(rec: &ObjectRecord) -> impl Iterator<Item = &Body> {
    numbered_bodies(rec).map(|(_, b)| b)
}

/// Every body of an object record with the part its shards are named with
/// (0 for a simple object).
fn numbered_bodies(rec: &ObjectRecord) -> impl Iterator<Item = (u32, &Body)> {
    rec.body.iter().map(|b| (0, b)).chain(rec.parts.iter().filter_map(|p| p.body.as_ref().map(|b| (p.number, b))))
}

pub(crate) fn shard_pgs(rec: &ObjectRecord) -> Vec<u32> {
    let mut pgs: Vec<u32> = bodies(rec)
        .filter_map(|b| match &b.kind {
            Some(body::Kind::Shards(ShardSet { pg, .. })) => Some(*pg),
            _ => None,
        })
        .collect();
    pgs.sort_unstable();
    pgs.dedup();
    pgs
}

/// Checks an If-Match / If-None-Match condition against the current object
/// (a delete marker counts as no object).
pub(crate) fn check_condition(cond: Option<&Condition>, current: Option<&ObjectRecord>) -> Result<(), MetaError> {
    match (cond.and_then(|c| c.kind.as_ref()), current.filter(|c| !c.delete_marker)) {
        (Some(Kind::IfNoneMatchAny(true)), Some(_)) => Err(MetaError::PreconditionFailed),
        (Some(Kind::IfMatch(_)), None) => Err(MetaError::NoSuchKey),
        (Some(Kind::IfMatch(etag)), Some(cur)) if bare_etag(etag) != "*" && bare_etag(etag) != cur.etag => {
            Err(MetaError::PreconditionFailed)
        }
        _ => Ok(()),
    }
}

/// Applies `cmd`, the write at `seq` (its log position: index << 16 | its
/// place in a batched entry), which names the versions it makes.
pub(crate) fn apply(st: &MetaState, seq: u64, cmd: &Command, w: &mut Writes) -> Result<Outcome, MetaError> {
    let now = cmd.now_ms;
    match cmd.op.as_ref().ok_or_else(|| MetaError::InvalidArgument("empty command".into()))? {
        Op::CreateBucket(c) => create_bucket(st, now, c, w),
        Op::DeleteBucket(c) => delete_bucket(st, c, w),
        Op::PutObject(c) => put_object(st, now, seq, c, w),
        Op::DeleteObject(c) => delete_object(st, now, seq, c, w),
        Op::CreateUpload(c) => create_upload(st, now, c, w),
        Op::PutPart(c) => put_part(st, now, c, w),
        Op::CompleteUpload(c) => complete_upload(st, now, seq, c, w),
        Op::SetBucketVersioning(c) => versions::set_versioning(st, c, w),
        Op::SetObjectLockConfig(c) => super::lock::set_config(st, c, w),
        Op::SetBucketNotifications(c) => super::notify::set_rules(st, c, w),
        Op::SetNotifyTarget(c) => super::notify::set_target(c, w),
        Op::AckEvents(c) => super::notify::ack(st, c, w),
        Op::SetBucketLifecycle(c) => {
            let mut rec = st.require_bucket(&c.bucket)?;
            if c.rules.iter().any(|r| crate::lifecycle::is_extension(r) != c.extension) {
                return Err(MetaError::InvalidArgument("lifecycle rules of the other kind".into()));
            }
            rec.lifecycle.retain(|r| crate::lifecycle::is_extension(r) != c.extension);
            rec.lifecycle.extend(c.rules.iter().cloned());
            w.put(keys::bucket(&c.bucket), encode(&rec));
            Ok(done())
        }
        Op::SetObjectRetention(c) => super::lock::set_retention(st, now, c, w),
        Op::SetObjectLegalHold(c) => {
            super::lock::require_lock(&st.require_bucket(&c.bucket)?)?;
            versions::change_version(st, &c.bucket, &c.key, &c.version_id, w, |rec| {
                rec.lock.get_or_insert_with(Default::default).legal_hold = c.on;
            })
        }
        Op::AbortUpload(c) => abort_upload(st, c, w),
        Op::RegisterDatanode(c) => super::cluster::register_datanode(st, now, c, w),
        Op::SetDiskState(c) => super::cluster::set_disk_state(st, c, w),
        Op::SetDiskFull(c) => super::cluster::set_disk_full(st, c, w),
        Op::SetBucketPolicy(c) => set_bucket_policy(st, c, w),
        Op::SetBucketCors(c) => set_bucket_cors(st, c, w),
        Op::SetPublicAccessBlock(c) => set_public_access_block(st, c, w),
        Op::SetBucketAcl(c) => {
            let mut rec = st.require_bucket(&c.bucket)?;
            rec.acl = c.acl.clone();
            w.put(keys::bucket(&c.bucket), encode(&rec));
            Ok(done())
        }
        Op::SetBucketOwnership(c) => {
            let mut rec = st.require_bucket(&c.bucket)?;
            rec.acl_disabled = c.acl_disabled;
            w.put(keys::bucket(&c.bucket), encode(&rec));
            Ok(done())
        }
        Op::SetBucketEncryption(c) => {
            let mut rec = st.require_bucket(&c.bucket)?;
            if !c.sse_algorithm.is_empty() && c.sse_algorithm != "AES256" {
                return Err(MetaError::InvalidArgument(format!("unknown default encryption {}", c.sse_algorithm)));
            }
            rec.sse_algorithm = c.sse_algorithm.clone();
            w.put(keys::bucket(&c.bucket), encode(&rec));
            Ok(done())
        }
        Op::RewrapKey(c) => rewrap_key(st, c, w),
        Op::SetObjectTags(c) => {
            versions::change_version(st, &c.bucket, &c.key, &c.version_id, w, |rec| rec.tags = c.tags.clone())
        }
        Op::SetBucketTags(c) => {
            let mut rec = st.require_bucket(&c.bucket)?;
            rec.tags = c.tags.clone();
            w.put(keys::bucket(&c.bucket), encode(&rec));
            Ok(done())
        }
        Op::SetBucketQuota(c) => {
            let mut rec = st.require_bucket(&c.bucket)?;
            rec.quota_bytes = c.quota_bytes;
            w.put(keys::bucket(&c.bucket), encode(&rec));
            Ok(done())
        }
        Op::SetBucketEc(c) => {
            let mut rec = st.require_bucket(&c.bucket)?;
            if let Some(ec) = &c.ec
                && (ec.k == 0 || ec.m == 0 || ec.block_len == 0)
            {
                return Err(MetaError::InvalidArgument("an EC profile has k, m and a block length".into()));
            }
            rec.ec = c.ec;
            w.put(keys::bucket(&c.bucket), encode(&rec));
            Ok(done())
        }
        Op::SetClusterCa(c) => {
            let ca = c.ca.clone().filter(|ca| !ca.cert_pem.is_empty() && !ca.key_pem.is_empty());
            let ca =
                ca.ok_or_else(|| MetaError::InvalidArgument("a cluster CA needs its certificate and key".into()))?;
            match st.get::<ClusterCa>(keys::CLUSTER_CA)? {
                Some(have) if have.cert_pem != ca.cert_pem => {
                    Err(MetaError::InvalidArgument("the cluster has another CA".into()))
                }
                _ => {
                    w.put(keys::CLUSTER_CA.to_vec(), encode(&ca));
                    Ok(done())
                }
            }
        }
        Op::CreateJoinToken(c) => {
            if c.id.is_empty() || c.secret_sha256.len() != 32 || c.ttl_ms == 0 {
                return Err(MetaError::InvalidArgument("a join token needs an id, a secret and a lifetime".into()));
            }
            if st.get::<JoinTokenRecord>(&keys::join_token(&c.id))?.is_some() {
                return Err(MetaError::InvalidArgument("a join token with this id exists".into()));
            }
            let rec = JoinTokenRecord {
                id: c.id.clone(),
                secret_sha256: c.secret_sha256.clone(),
                role: c.role.clone(),
                expires_ms: now.saturating_add(c.ttl_ms),
            };
            w.put(keys::join_token(&c.id), encode(&rec));
            Ok(done())
        }
        Op::ConsumeJoinToken(c) => {
            // One answer for every refusal: a prober learns nothing about which part was wrong.
            let refused =
                || MetaError::InvalidArgument("the join token is unknown, used, expired or for another role".into());
            let rec: JoinTokenRecord = st.get(&keys::join_token(&c.id))?.ok_or_else(refused)?;
            if rec.secret_sha256 != c.secret_sha256 || rec.role != c.role || now >= rec.expires_ms {
                return Err(refused());
            }
            let ca: ClusterCa = st
                .get(keys::CLUSTER_CA)?
                .ok_or_else(|| MetaError::InvalidArgument("the cluster has no CA in the metadata service".into()))?;
            w.delete(keys::join_token(&c.id));
            Ok(Outcome::ClusterCa(ca))
        }
        Op::DropRetired(c) => {
            for k in st.first_keys(&[keys::RETIRED_GC], c.max.clamp(1, 10_000) as usize)? {
                w.delete(k);
            }
            Ok(done())
        }
        Op::SetObjectAcl(c) => {
            versions::change_version(st, &c.bucket, &c.key, &c.version_id, w, |rec| rec.acl = c.acl.clone())
        }
        Op::PutPolicy(c) => super::cluster::put_policy(st, now, c, w),
        Op::DeletePolicy(c) => super::cluster::delete_policy(st, c, w),
        Op::UpdateAccessKey(c) => super::cluster::update_access_key(st, c, w),
        Op::CreateAccessKey(c) => super::cluster::create_access_key(st, now, c, w),
        Op::DeleteAccessKey(c) => super::cluster::delete_access_key(st, c, w),
        Op::ReportDamage(c) => super::cluster::report_damage(now, c, w),
        Op::RestoreShards(c) => restore_shards(st, c, w),
        Op::ClearDamage(c) => super::cluster::clear_damage(c, w),
        Op::MoveShard(c) => move_shard(st, c, w),
        Op::MarkOut(c) => super::cluster::mark_out(st, c, w),
        Op::Reweight(c) => super::cluster::reweight(st, c, w),
        Op::RemoveDisks(c) => super::cluster::remove_disks(st, c, w),
        Op::SetWorkerRates(c) => {
            w.put(keys::WORKER_RATES.to_vec(), encode(c));
            Ok(done())
        }
        // The state machine store unpacks batches; one inside another is refused.
        Op::Batch(_) => Err(MetaError::InvalidArgument("a command batch inside a batch".into())),
    }
}

fn create_bucket(st: &MetaState, now: u64, c: &CreateBucket, w: &mut Writes) -> Result<Outcome, MetaError> {
    if let Some(p) = bucket_name_problem(&c.name) {
        return Err(MetaError::InvalidBucketName(p));
    }
    if let Some(existing) = st.bucket(&c.name)? {
        return Err(if existing.owner == c.owner {
            MetaError::BucketAlreadyOwnedByYou
        } else {
            MetaError::BucketAlreadyExists
        });
    }
    let rec = BucketRecord {
        name: c.name.clone(),
        owner: c.owner.clone(),
        created_ms: now,
        ec: c.ec,
        acl: c.acl.clone(),
        acl_disabled: c.acl_disabled,
        // Object lock needs versioning, which then stays enabled.
        object_lock: c.object_lock,
        versioning: if c.object_lock { Versioning::Enabled as i32 } else { 0 },
        ..Default::default()
    };
    w.put(keys::bucket(&c.name), encode(&rec));
    Ok(done())
}

fn set_bucket_policy(st: &MetaState, c: &SetBucketPolicy, w: &mut Writes) -> Result<Outcome, MetaError> {
    let mut rec = st.require_bucket(&c.bucket)?;
    rec.policy = c.policy.clone();
    w.put(keys::bucket(&c.bucket), encode(&rec));
    Ok(done())
}

fn set_bucket_cors(st: &MetaState, c: &SetBucketCors, w: &mut Writes) -> Result<Outcome, MetaError> {
    let mut rec = st.require_bucket(&c.bucket)?;
    rec.cors = c.rules.clone();
    w.put(keys::bucket(&c.bucket), encode(&rec));
    Ok(done())
}

fn set_public_access_block(st: &MetaState, c: &SetPublicAccessBlock, w: &mut Writes) -> Result<Outcome, MetaError> {
    let mut rec = st.require_bucket(&c.bucket)?;
    rec.public_access_block = c.block;
    w.put(keys::bucket(&c.bucket), encode(&rec));
    Ok(done())
}

fn delete_bucket(st: &MetaState, c: &DeleteBucket, w: &mut Writes) -> Result<Outcome, MetaError> {
    st.require_bucket(&c.name)?;
    if st.has_any(&keys::objects_prefix(&c.name, ""))? {
        return Err(MetaError::BucketNotEmpty);
    }
    // In-progress uploads die with the bucket; their parts become garbage.
    for (k, v) in st.scan(&keys::uploads_prefix(&c.name, ""))? {
        let up: UploadRecord = decode(&v)?;
        drop_upload_parts(st, &up.upload_id, &[], w)?;
        w.delete(k);
    }
    w.delete(keys::bucket(&c.name));
    Ok(done())
}

fn data_id(b: &Body) -> Option<&[u8]> {
    match &b.kind {
        Some(body::Kind::Shards(s)) => Some(&s.data_id),
        _ => None,
    }
}

/// Stores `rec` at (bucket, key), replacing (and collecting) what was there.
/// Shards the new record still references are never collected, so a command
/// applied twice (a client retry after a leader change) loses nothing.
pub(crate) fn store_object(bucket: &str, key: &str, old: Option<&ObjectRecord>, rec: &ObjectRecord, w: &mut Writes) {
    if let Some(old) = old {
        let live: Vec<&[u8]> = bodies(rec).filter_map(data_id).collect();
        for b in bodies(old).filter(|b| data_id(b).is_none_or(|id| !live.contains(&id))) {
            w.collect(Some(b));
        }
        for pg in shard_pgs(old) {
            w.delete(keys::pg_entry(pg, bucket, key));
        }
    }
    for pg in shard_pgs(rec) {
        w.put(keys::pg_entry(pg, bucket, key), Vec::new());
    }
    for (part, b) in numbered_bodies(rec) {
        w.reference(Owner::version(bucket, key, &rec.version_id), part, Some(b));
    }
    w.put(keys::object(bucket, key), encode(rec));
}

fn put_object(st: &MetaState, now: u64, seq: u64, c: &PutObject, w: &mut Writes) -> Result<Outcome, MetaError> {
    let bucket = st.require_bucket(&c.bucket)?;
    if !c.bucket_digest.is_empty() && c.bucket_digest != super::bucket_digest(&bucket) {
        return Err(MetaError::BucketChanged);
    }
    check_key(&c.key)?;
    let mut rec = c.record.clone().ok_or_else(|| MetaError::InvalidArgument("put without a record".into()))?;
    if rec.body.is_none() || !rec.parts.is_empty() {
        return Err(MetaError::InvalidArgument("a simple object has a body and no parts".into()));
    }
    let old: Option<ObjectRecord> = st.get(&keys::object(&c.bucket, &c.key))?;
    check_condition(c.condition.as_ref(), old.as_ref())?;
    rec.last_modified_ms = now;
    if bucket.versioning() != Versioning::Unversioned {
        if let Some(same) = versions::already_stored(st, &c.bucket, &c.key, &rec)? {
            return Ok(Outcome::Object(same));
        }
        let rec = versions::put_version(st, &bucket, &c.key, old, rec, seq, w)?;
        super::notify::emit(&bucket, &c.key, &created(&c.origin), &rec, seq, now, w);
        return Ok(Outcome::Object(rec));
    }
    super::lock::on_write(&bucket, &mut rec)?;
    super::notify::emit(&bucket, &c.key, &created(&c.origin), &rec, seq, now, w);
    store_object(&c.bucket, &c.key, old.as_ref(), &rec, w);
    Ok(Outcome::Object(rec))
}

/// The event name of a PutObject made by `origin` (a copy, a form upload).
fn created(origin: &str) -> String {
    match origin {
        "Copy" | "Post" => format!("ObjectCreated:{origin}"),
        _ => "ObjectCreated:Put".to_owned(),
    }
}

fn delete_object(st: &MetaState, now: u64, seq: u64, c: &DeleteObject, w: &mut Writes) -> Result<Outcome, MetaError> {
    let bucket = st.require_bucket(&c.bucket)?;
    check_key(&c.key)?;
    if let Some(id) = &c.version_id {
        let guard = super::lock::Guard { now, bypass_governance: c.bypass_governance };
        return versions::delete_version(st, &bucket, &c.key, id, c.condition.as_ref(), (guard, seq), w);
    }
    let old: Option<ObjectRecord> = st.get(&keys::object(&c.bucket, &c.key))?;
    check_condition(c.condition.as_ref(), old.as_ref())?;
    if bucket.versioning() != Versioning::Unversioned {
        let marker = ObjectRecord { delete_marker: true, last_modified_ms: now, ..Default::default() };
        let marker = versions::put_version(st, &bucket, &c.key, old, marker, seq, w)?;
        super::notify::emit(&bucket, &c.key, "ObjectRemoved:DeleteMarkerCreated", &marker, seq, now, w);
        return Ok(Outcome::Object(marker));
    }
    if let Some(old) = old {
        super::notify::emit(&bucket, &c.key, "ObjectRemoved:Delete", &old, seq, now, w);
        for b in bodies(&old) {
            w.collect(Some(b));
        }
        for pg in shard_pgs(&old) {
            w.delete(keys::pg_entry(pg, &c.bucket, &c.key));
        }
        w.delete(keys::object(&c.bucket, &c.key));
    }
    Ok(done()) // deleting a missing key succeeds, as in S3 (unless If-Match asked for it)
}

/// Takes `positions` out of the missing list of the body `data_id` in its
/// owner's record; nothing changes when the record no longer holds it.
fn restore_shards(st: &MetaState, c: &RestoreShards, w: &mut Writes) -> Result<Outcome, MetaError> {
    // The disk index mirrors the missing list: its entries are written again.
    with_body(st, owner_of(&c.bucket, &c.key, &c.upload_id, &c.version_id), &c.data_id, w, |s| {
        s.missing.retain(|p| !c.positions.contains(p));
        Ok(())
    })?;
    Ok(done())
}

fn move_shard(st: &MetaState, c: &MoveShard, w: &mut Writes) -> Result<Outcome, MetaError> {
    let found = with_body(st, owner_of(&c.bucket, &c.key, &c.upload_id, &c.version_id), &c.data_id, w, |s| {
        let at = s
            .disks
            .get_mut(c.position as usize)
            .ok_or_else(|| MetaError::InvalidArgument(format!("the body has no shard position {}", c.position)))?;
        if *at != c.from {
            return Err(MetaError::PreconditionFailed);
        }
        *at = c.to;
        s.missing.retain(|p| *p != c.position);
        Ok(())
    })?;
    let Some(set) = found else { return Err(MetaError::NoSuchKey) };
    if !set.disks.contains(&c.from) {
        w.delete(keys::disk_shard(c.from, &c.data_id));
    }
    Ok(done())
}

fn owner_of<'a>(bucket: &'a str, key: &'a str, upload_id: &'a str, version_id: &'a str) -> Owner<'a> {
    Owner { bucket, key, upload_id, version_id }
}

/// Finds the body `data_id` that `owner` (an object version, or an upload's
/// part) references, changes its shard set with `change`, stores the
/// record and rewrites its disk index entries. The changed set, or `None`
/// when the owner holds no such body (nothing is written).
fn with_body(
    st: &MetaState,
    owner: Owner<'_>,
    data_id: &[u8],
    w: &mut Writes,
    mut change: impl FnMut(&mut ShardSet) -> Result<(), MetaError>,
) -> Result<Option<ShardSet>, MetaError> {
    let mut apply = |part: u32, b: &mut Option<Body>, w: &mut Writes| -> Result<Option<ShardSet>, MetaError> {
        match b.as_mut().and_then(|b| b.kind.as_mut()) {
            Some(body::Kind::Shards(s)) if s.data_id == data_id => {
                change(s)?;
                let set = s.clone();
                w.reference(owner, part, b.as_ref());
                Ok(Some(set))
            }
            _ => Ok(None),
        }
    };
    let Owner { bucket, key, upload_id, version_id } = owner;
    if upload_id.is_empty() {
        let vid = if version_id.is_empty() { "null" } else { version_id };
        let Some((k, mut rec)) = st.find_version(bucket, key, vid)? else { return Ok(None) };
        let mut found = apply(0, &mut rec.body, w)?;
        for p in &mut rec.parts {
            if found.is_none() {
                found = apply(p.number, &mut p.body, w)?;
            }
        }
        if found.is_some() {
            w.put(k, encode(&rec));
        }
        return Ok(found);
    }
    if st.get::<UploadRecord>(&keys::upload(bucket, key, upload_id))?.is_none() {
        return Ok(None);
    }
    for (k, v) in st.scan(&keys::parts_prefix(upload_id))? {
        let mut part: PartRecord = decode(&v)?;
        if let Some(set) = apply(part.number, &mut part.body, w)? {
            w.put(k, encode(&part));
            return Ok(Some(set));
        }
    }
    Ok(None)
}

fn valid_upload_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn create_upload(st: &MetaState, now: u64, c: &CreateUpload, w: &mut Writes) -> Result<Outcome, MetaError> {
    let mut up = c.upload.clone().ok_or_else(|| MetaError::InvalidArgument("upload without a record".into()))?;
    st.require_bucket(&up.bucket)?;
    check_key(&up.key)?;
    if !valid_upload_id(&up.upload_id) {
        return Err(MetaError::InvalidArgument("upload id must be 1-64 letters, digits, '-' or '_'".into()));
    }
    let k = keys::upload(&up.bucket, &up.key, &up.upload_id);
    if st.get::<UploadRecord>(&k)?.is_some() {
        return Err(MetaError::InvalidArgument("upload id already in use".into()));
    }
    up.initiated_ms = now;
    w.put(k, encode(&up));
    Ok(done())
}

fn require_upload(st: &MetaState, bucket: &str, key: &str, upload_id: &str) -> Result<UploadRecord, MetaError> {
    st.require_bucket(bucket)?;
    check_key(key)?;
    st.get(&keys::upload(bucket, key, upload_id))?.ok_or(MetaError::NoSuchUpload)
}

fn put_part(st: &MetaState, now: u64, c: &PutPart, w: &mut Writes) -> Result<Outcome, MetaError> {
    require_upload(st, &c.bucket, &c.key, &c.upload_id)?;
    let mut part = c.part.clone().ok_or_else(|| MetaError::InvalidArgument("part without a record".into()))?;
    if !(1..=MAX_PART_NUMBER).contains(&part.number) {
        return Err(MetaError::InvalidArgument(format!("part number must be 1 to {MAX_PART_NUMBER}")));
    }
    let k = keys::part(&c.upload_id, part.number);
    if let Some(old) = st.get::<PartRecord>(&k)? {
        // A re-uploaded part's old data is garbage, unless this is the same
        // upload applied again.
        let same =
            old.body.as_ref().and_then(data_id).is_some_and(|id| Some(id) == part.body.as_ref().and_then(data_id));
        if !same {
            w.collect(old.body.as_ref());
        }
    }
    part.last_modified_ms = now;
    w.reference(Owner::upload(&c.bucket, &c.key, &c.upload_id), part.number, part.body.as_ref());
    w.put(k, encode(&part));
    Ok(done())
}

/// Deletes the part records of an upload, collecting every part not in `keep`.
fn drop_upload_parts(st: &MetaState, upload_id: &str, keep: &[u32], w: &mut Writes) -> Result<(), MetaError> {
    for (k, v) in st.scan(&keys::parts_prefix(upload_id))? {
        let part: PartRecord = decode(&v)?;
        if !keep.contains(&part.number) {
            w.collect(part.body.as_ref());
        }
        w.delete(k);
    }
    Ok(())
}

fn complete_upload(
    st: &MetaState,
    now: u64,
    seq: u64,
    c: &CompleteUpload,
    w: &mut Writes,
) -> Result<Outcome, MetaError> {
    let up = match require_upload(st, &c.bucket, &c.key, &c.upload_id) {
        Ok(up) => up,
        Err(MetaError::NoSuchUpload) => {
            // A completion retried after it succeeded (its answer was lost):
            // the same answer, while the object is still what it made.
            let cur: Option<ObjectRecord> = st.get(&keys::object(&c.bucket, &c.key))?;
            return match cur {
                Some(cur) if completed_by(&cur, c) => Ok(Outcome::Object(cur)),
                _ => Err(MetaError::NoSuchUpload),
            };
        }
        Err(e) => return Err(e),
    };
    let stored: Vec<PartRecord> =
        st.scan(&keys::parts_prefix(&c.upload_id))?.iter().map(|(_, v)| decode(v)).collect::<Result<_, _>>()?;
    let chosen = check_completion(&c.parts, &stored)?;
    let old: Option<ObjectRecord> = st.get(&keys::object(&c.bucket, &c.key))?;
    check_condition(c.condition.as_ref(), old.as_ref())?;
    let etags: Vec<&str> = chosen.iter().map(|p| p.etag.as_str()).collect();
    let rec = ObjectRecord {
        size: chosen.iter().map(|p| p.size).sum(),
        etag: multipart_etag(&etags)?,
        last_modified_ms: now,
        meta: up.meta.clone(),
        checksums: c.checksums.clone(),
        body: None,
        upload_id: c.upload_id.clone(),
        acl: up.acl.clone(),
        sse: up.sse.clone(),
        tags: up.tags.clone(),
        version_id: String::new(),
        delete_marker: false,
        version_seq: 0,
        lock: up.lock,
        parts: chosen
            .iter()
            .map(|p| PartRef {
                number: p.number,
                size: p.size,
                etag: p.etag.clone(),
                body: p.body.clone(),
                checksums: p.checksums.clone(),
            })
            .collect(),
    };
    let keep: Vec<u32> = chosen.iter().map(|p| p.number).collect();
    drop_upload_parts(st, &c.upload_id, &keep, w)?;
    w.delete(keys::upload(&c.bucket, &c.key, &c.upload_id));
    let bucket = st.require_bucket(&c.bucket)?;
    if bucket.versioning() != Versioning::Unversioned {
        let rec = versions::put_version(st, &bucket, &c.key, old, rec, seq, w)?;
        super::notify::emit(&bucket, &c.key, "ObjectCreated:CompleteMultipartUpload", &rec, seq, now, w);
        return Ok(Outcome::Object(rec));
    }
    let mut rec = rec;
    super::lock::on_write(&bucket, &mut rec)?;
    super::notify::emit(&bucket, &c.key, "ObjectCreated:CompleteMultipartUpload", &rec, seq, now, w);
    store_object(&c.bucket, &c.key, old.as_ref(), &rec, w);
    Ok(Outcome::Object(rec))
}

/// Whether `rec` is what completing `c` made: the same upload, the same
/// parts with the same ETags, in order.
fn completed_by(rec: &ObjectRecord, c: &CompleteUpload) -> bool {
    !c.upload_id.is_empty()
        && rec.upload_id == c.upload_id
        && rec.parts.len() == c.parts.len()
        && rec
            .parts
            .iter()
            .zip(&c.parts)
            .all(|(have, asked)| have.number == asked.number && have.etag == bare_etag(&asked.etag))
}

/// Replaces a wrapped data key that is still the one the gateway read;
/// anything else (the object was replaced or deleted meanwhile) is left as
/// it is and answered `Done` all the same: the new record needs no rewrap
/// from this pass.
fn rewrap_key(st: &MetaState, c: &RewrapKey, w: &mut Writes) -> Result<Outcome, MetaError> {
    let still = |sse: &Option<Encryption>| sse.as_ref().is_some_and(|e| e.wrapped_key == c.old_wrapped_key);
    let new = c.sse.clone().filter(|e| !e.wrapped_key.is_empty());
    let Some(new) = new else { return Err(MetaError::InvalidArgument("a rewrap without a wrapped key".into())) };
    if c.upload_id.is_empty() {
        let found = match st.find_version(&c.bucket, &c.key, &c.version_id) {
            Err(MetaError::InvalidArgument(_)) => None,
            other => other?,
        };
        if let Some((k, mut rec)) = found
            && still(&rec.sse)
        {
            rec.sse = Some(new);
            w.put(k, encode(&rec));
        }
    } else {
        let k = keys::upload(&c.bucket, &c.key, &c.upload_id);
        if let Some(mut up) = st.get::<UploadRecord>(&k)?
            && still(&up.sse)
        {
            up.sse = Some(new);
            w.put(k, encode(&up));
        }
    }
    Ok(done())
}

fn abort_upload(st: &MetaState, c: &AbortUpload, w: &mut Writes) -> Result<Outcome, MetaError> {
    require_upload(st, &c.bucket, &c.key, &c.upload_id)?;
    drop_upload_parts(st, &c.upload_id, &[], w)?;
    w.delete(keys::upload(&c.bucket, &c.key, &c.upload_id));
    Ok(done())
}
