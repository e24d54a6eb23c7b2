//! The version gate for rolling upgrades.
//!
//! Every command a metadata node can apply belongs to a *command level*:
//! the release that first understood it. A node knows its own level
//! ([`LEVEL`], lower only when told to behave as an older release), tells it
//! in its `ClusterStatus` answers and when it joins, and:
//!
//! - the leader proposes a command only when every member of the Raft group
//!   (voters and learners) understands its level; until then the write is
//!   refused with `NotYetEnabled` and nothing is applied. A member whose
//!   level was never heard counts as level 1 (every release understands it);
//! - a node refuses to apply a log entry it does not understand (a command
//!   of a higher level, or one that decodes to no command at all because its
//!   kind is newer than this release): it stops applying, loudly, instead of
//!   skipping it and holding a state the others do not have. With the gate
//!   above this happens only when an older release is started in a cluster
//!   that already uses newer commands (a downgrade), which must be refused.
//!
//! So a cluster can be upgraded one node at a time: while any node runs the
//! previous release the cluster keeps serving everything that release knows;
//! the new commands are used once the last node is upgraded.
//!
//! Levels:
//! 1. buckets, objects, multipart uploads, the cluster map, keys, policies,
//!    CORS, public access blocks (commands 10–37);
//! 2. ACLs (`SetBucketAcl`, `SetObjectAcl`, `SetBucketOwnership`, ACLs
//!    carried by `CreateBucket`, `PutObject` and `CreateUpload`) and
//!    `DropRetired` (commands 38–41);
//! 3. server-side encryption: `SetBucketEncryption`, `RewrapKey`
//!    (commands 42–43), and records carrying an `Encryption` or sealed
//!    bodies (`PutObject`, `CreateUpload`, `PutPart`): an older node would
//!    drop those fields and serve ciphertext as the object's bytes; the
//!    cluster CA and join tokens (`SetClusterCa`, `CreateJoinToken`,
//!    `ConsumeJoinToken`, commands 44–46); tags (`SetObjectTags`,
//!    `SetBucketTags`, commands 47–48, and tags carried by `PutObject` and
//!    `CreateUpload`).
//! 4. versioning: `SetBucketVersioning` (command 49), and commands naming a
//!    version (`DeleteObject`, `SetObjectTags`, `SetObjectAcl`,
//!    `RestoreShards`, `MoveShard`, `RewrapKey` with a version id); object
//!    lock (`SetObjectLockConfig`, `SetObjectRetention`,
//!    `SetObjectLegalHold`, commands 50–52, a bucket created with it,
//!    records carrying a lock); lifecycle rules (`SetBucketLifecycle`,
//!    command 53); bucket notifications (`SetBucketNotifications`,
//!    `SetNotifyTarget`, `AckEvents`, commands 54–56). Writes into a
//!    versioned bucket are level-1 commands whose meaning the bucket's
//!    record changes; they exist only after `SetBucketVersioning`, which
//!    the gate holds back until every member is at level 4. (A node of an
//!    older release must not be added to a cluster once versioning was
//!    enabled: built from a snapshot it would not see the command it does
//!    not know.)
//!
//! 5. bucket administration: `SetBucketQuota`, `SetBucketEc` (commands
//!    57–58); paused workers (`SetWorkerRates` with a pause set).
//! 6. paused garbage collectors and lifecycle worker (`SetWorkerRates` with
//!    `gc_paused` or `lifecycle_paused`).
//! 7. paced garbage collectors and lifecycle worker (`SetWorkerRates` with
//!    `gc_files_per_sec` or `lifecycle_versions_per_sec`).
//! 8. writes checked against the bucket record they were decided with
//!    (`PutObject` with a `bucket_digest`): an older node would apply them
//!    unchecked where the others refuse.
//!
//! A new command, or a new field that changes what an existing command
//! means, raises the level and is classified in [`needed`]: an older node
//! would drop an unknown field without noticing.

use std::collections::HashMap;
use std::sync::Mutex;

use tessera_rpc::proto::meta::Command;
use tessera_rpc::proto::meta::command::Op;

/// The highest command level this release understands.
pub const LEVEL: u32 = 8;

/// The level every release understands (also what a node that never said
/// counts as: releases before the gate did not say).
pub const BASE_LEVEL: u32 = 1;

/// The level a command needs, or `None` when this release does not know
/// the command at all (a newer kind, decoded as no command).
pub fn needed(cmd: &Command) -> Option<u32> {
    let op = cmd.op.as_ref()?;
    Some(match op {
        Op::PutObject(c) if !c.bucket_digest.is_empty() => 8,
        Op::SetBucketQuota(_) | Op::SetBucketEc(_) => 5,
        Op::SetWorkerRates(c) if c.gc_files_per_sec > 0 || c.lifecycle_versions_per_sec > 0 => 7,
        Op::SetWorkerRates(c) if c.gc_paused || c.lifecycle_paused => 6,
        Op::SetWorkerRates(c) if c.heal_paused || c.rebalance_paused || c.scrub_paused => 5,
        Op::SetBucketVersioning(_)
        | Op::SetObjectLockConfig(_)
        | Op::SetObjectRetention(_)
        | Op::SetObjectLegalHold(_)
        | Op::SetBucketLifecycle(_)
        | Op::SetBucketNotifications(_)
        | Op::SetNotifyTarget(_)
        | Op::AckEvents(_) => 4,
        Op::CreateBucket(c) if c.object_lock => 4,
        Op::PutObject(c) if c.record.as_ref().is_some_and(|r| r.lock.is_some()) => 4,
        Op::CreateUpload(c) if c.upload.as_ref().is_some_and(|u| u.lock.is_some()) => 4,
        Op::DeleteObject(c) if c.version_id.is_some() => 4,
        Op::SetObjectTags(c) if !c.version_id.is_empty() => 4,
        Op::SetObjectAcl(c) if !c.version_id.is_empty() => 4,
        Op::RestoreShards(c) if !c.version_id.is_empty() => 4,
        Op::MoveShard(c) if !c.version_id.is_empty() => 4,
        Op::RewrapKey(c) if !c.version_id.is_empty() => 4,
        Op::SetBucketEncryption(_)
        | Op::RewrapKey(_)
        | Op::SetClusterCa(_)
        | Op::CreateJoinToken(_)
        | Op::ConsumeJoinToken(_)
        | Op::SetObjectTags(_)
        | Op::SetBucketTags(_) => 3,
        Op::PutObject(c) if c.record.as_ref().is_some_and(|r| !r.tags.is_empty()) => 3,
        Op::CreateUpload(c) if c.upload.as_ref().is_some_and(|u| !u.tags.is_empty()) => 3,
        Op::PutObject(c) if c.record.as_ref().is_some_and(|r| r.sse.is_some()) => 3,
        Op::CreateUpload(c) if c.upload.as_ref().is_some_and(|u| u.sse.is_some()) => 3,
        Op::PutPart(c) if c.part.as_ref().and_then(|p| p.body.as_ref()).is_some_and(|b| !b.seal_salt.is_empty()) => 3,
        Op::SetBucketAcl(_) | Op::SetObjectAcl(_) | Op::SetBucketOwnership(_) | Op::DropRetired(_) => 2,
        Op::CreateBucket(c) if !c.acl.is_empty() || c.acl_disabled => 2,
        Op::PutObject(c) if c.record.as_ref().is_some_and(|r| !r.acl.is_empty()) => 2,
        Op::CreateUpload(c) if c.upload.as_ref().is_some_and(|u| !u.acl.is_empty()) => 2,
        Op::Batch(b) => {
            let mut level = BASE_LEVEL;
            for c in &b.commands {
                // A nested batch is malformed, not newer: judged by apply.
                if matches!(c.op, Some(Op::Batch(_))) {
                    continue;
                }
                level = level.max(needed(c)?);
            }
            level
        }
        _ => BASE_LEVEL,
    })
}

/// Whether a node at `level` understands `cmd`.
pub fn understood(cmd: &Command, level: u32) -> bool {
    needed(cmd).is_some_and(|n| n <= level)
}

/// A node's own level and what the leader has heard from the others.
#[derive(Debug)]
pub struct Levels {
    mine: u32,
    heard: Mutex<HashMap<u64, u32>>,
}

impl Levels {
    /// Levels of a node running at `mine` (at most [`LEVEL`]).
    pub fn new(mine: u32) -> Self {
        Levels { mine: mine.clamp(BASE_LEVEL, LEVEL), heard: Mutex::new(HashMap::new()) }
    }

    /// This node's level.
    pub fn mine(&self) -> u32 {
        self.mine
    }

    /// Records what node `id` said its level is (0: a release before the
    /// gate, which did not say: the base level).
    pub fn heard(&self, id: u64, level: u32) {
        let level = level.max(BASE_LEVEL);
        self.heard.lock().unwrap_or_else(|p| p.into_inner()).insert(id, level);
    }

    /// The level node `id` last said it runs (`None`: not heard yet).
    pub fn level_of(&self, id: u64) -> Option<u32> {
        if let Some(l) = self.heard.lock().unwrap_or_else(|p| p.into_inner()).get(&id) {
            return Some(*l);
        }
        None
    }

    /// The level every one of `members` understands (this node's own
    /// included; `me` is this node's id).
    pub fn cluster(&self, me: u64, members: impl IntoIterator<Item = u64>) -> u32 {
        let heard = self.heard.lock().unwrap_or_else(|p| p.into_inner());
        members
            .into_iter()
            .filter(|&id| id != me)
            .map(|id| heard.get(&id).copied().unwrap_or(BASE_LEVEL))
            .fold(self.mine, u32::min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_rpc::proto::meta::{
        AclGrant, CommandBatch, CreateBucket, CreateUpload, DeleteObject, DropRetired, Encryption, ObjectRecord,
        PutObject, RestoreShards, RewrapKey, SetBucketAcl, SetBucketEncryption, SetBucketVersioning, SetObjectTags,
        UploadRecord,
    };

    fn cmd(op: Op) -> Command {
        Command { now_ms: 0, op: Some(op) }
    }

    #[test]
    fn commands_are_classified_by_the_release_that_introduced_them() {
        let grant = AclGrant::default();
        assert_eq!(needed(&cmd(Op::DeleteObject(DeleteObject::default()))), Some(1));
        assert_eq!(needed(&cmd(Op::CreateBucket(CreateBucket::default()))), Some(1));
        assert_eq!(needed(&cmd(Op::SetBucketAcl(SetBucketAcl::default()))), Some(2));
        assert_eq!(needed(&cmd(Op::DropRetired(DropRetired { max: 1 }))), Some(2));
        let with_acl = CreateBucket { acl: vec![grant.clone()], ..Default::default() };
        assert_eq!(needed(&cmd(Op::CreateBucket(with_acl))), Some(2));
        let enforced = CreateBucket { acl_disabled: true, ..Default::default() };
        assert_eq!(needed(&cmd(Op::CreateBucket(enforced))), Some(2));
        let plain = PutObject { record: Some(ObjectRecord::default()), ..Default::default() };
        assert_eq!(needed(&cmd(Op::PutObject(plain.clone()))), Some(1));
        let public = PutObject { record: Some(ObjectRecord { acl: vec![grant], ..Default::default() }), ..plain };
        assert_eq!(needed(&cmd(Op::PutObject(public.clone()))), Some(2));
        // A batch needs what its most demanding command needs; an unknown
        // command anywhere makes the batch unknown.
        let batch = |cs: Vec<Command>| cmd(Op::Batch(CommandBatch { commands: cs }));
        assert_eq!(needed(&batch(vec![cmd(Op::DeleteObject(DeleteObject::default()))])), Some(1));
        assert_eq!(
            needed(&batch(vec![cmd(Op::DeleteObject(DeleteObject::default())), cmd(Op::PutObject(public))])),
            Some(2)
        );
        // Encryption: an older node would drop the fields and serve ciphertext.
        assert_eq!(needed(&cmd(Op::SetBucketEncryption(SetBucketEncryption::default()))), Some(3));
        assert_eq!(needed(&cmd(Op::RewrapKey(RewrapKey::default()))), Some(3));
        let sealed = ObjectRecord { sse: Some(Encryption::default()), ..Default::default() };
        assert_eq!(needed(&cmd(Op::PutObject(PutObject { record: Some(sealed), ..Default::default() }))), Some(3));
        let up = UploadRecord { sse: Some(Encryption::default()), ..Default::default() };
        assert_eq!(needed(&cmd(Op::CreateUpload(CreateUpload { upload: Some(up) }))), Some(3));
        assert_eq!(needed(&cmd(Op::CreateUpload(CreateUpload::default()))), Some(1));
        let tagged = ObjectRecord { tags: vec![Default::default()], ..Default::default() };
        assert_eq!(needed(&cmd(Op::PutObject(PutObject { record: Some(tagged), ..Default::default() }))), Some(3));
        assert_eq!(needed(&cmd(Op::SetBucketVersioning(SetBucketVersioning::default()))), Some(4));
        let by_id = DeleteObject { version_id: Some("null".into()), ..Default::default() };
        assert_eq!(needed(&cmd(Op::DeleteObject(by_id))), Some(4));
        let tags = SetObjectTags { version_id: "null".into(), ..Default::default() };
        assert_eq!(needed(&cmd(Op::SetObjectTags(tags))), Some(4));
        assert_eq!(needed(&cmd(Op::SetObjectTags(SetObjectTags::default()))), Some(3));
        let restore = RestoreShards { version_id: "0000000000010000".into(), ..Default::default() };
        assert_eq!(needed(&cmd(Op::RestoreShards(restore))), Some(4));
        assert_eq!(needed(&cmd(Op::RestoreShards(RestoreShards::default()))), Some(1));
        let rewrap = RewrapKey { version_id: "null".into(), ..Default::default() };
        assert_eq!(needed(&cmd(Op::RewrapKey(rewrap))), Some(4));
        use tessera_rpc::proto::meta::SetWorkerRates;
        let rates = |r: SetWorkerRates| needed(&cmd(Op::SetWorkerRates(r)));
        assert_eq!(rates(SetWorkerRates { heal_bytes_per_sec: 1, ..Default::default() }), Some(1));
        assert_eq!(rates(SetWorkerRates { scrub_paused: true, ..Default::default() }), Some(5));
        assert_eq!(rates(SetWorkerRates { gc_paused: true, ..Default::default() }), Some(6));
        assert_eq!(rates(SetWorkerRates { gc_files_per_sec: 9, gc_paused: true, ..Default::default() }), Some(7));
        assert_eq!(rates(SetWorkerRates { lifecycle_versions_per_sec: 9, ..Default::default() }), Some(7));
        // Checked against the bucket record, whatever else the put carries.
        let locked = ObjectRecord { lock: Some(Default::default()), ..Default::default() };
        let checked = PutObject { record: Some(locked), bucket_digest: vec![1; 32], ..Default::default() };
        assert_eq!(needed(&cmd(Op::PutObject(checked))), Some(8));
        let unknown = Command { now_ms: 0, op: None };
        assert_eq!(needed(&unknown), None);
        assert_eq!(needed(&batch(vec![unknown.clone()])), None);
        assert!(!understood(&unknown, LEVEL));
        assert!(understood(&cmd(Op::SetBucketAcl(SetBucketAcl::default())), 2));
        assert!(!understood(&cmd(Op::SetBucketAcl(SetBucketAcl::default())), 1));
    }

    #[test]
    fn the_cluster_level_is_the_lowest_member_level_and_unheard_members_count_as_base() {
        let l = Levels::new(LEVEL);
        assert_eq!(l.cluster(1, [1]), LEVEL, "alone, a node uses its own level");
        assert_eq!(l.cluster(1, [1, 2, 3]), BASE_LEVEL, "members never heard count as the base level");
        l.heard(2, 2);
        l.heard(3, 0);
        assert_eq!(l.cluster(1, [1, 2, 3]), BASE_LEVEL, "a release before the gate says 0: base");
        l.heard(3, 2);
        assert_eq!(l.cluster(1, [1, 2, 3]), 2);
        assert_eq!(Levels::new(1).cluster(1, [1, 2, 3]), 1, "the node's own level caps it");
        assert_eq!(Levels::new(99).mine(), LEVEL, "never above what the release understands");
    }
}
