//! The per-disk shard index and the commands that change a body's shard
//! set in place, on the real state machine: a command applied twice
//! collects nothing live, RestoreShards, MoveShard.

// A test that meets an error should fail loudly.
#![allow(clippy::unwrap_used)]

mod common;

use common::{apply_real, body, md5_hex, open, shards_of};
use tessera_metadata::MetaError;
use tessera_rpc::proto::meta::command::Op;
use tessera_rpc::proto::meta::*;

#[test]
fn a_command_applied_twice_never_collects_live_shards() {
    // Regression: a leader change can make a client retry a write that did
    // commit; the second application must not queue the record's own shards
    // as garbage.
    let dir = tempfile::tempdir().unwrap();
    let st = open(dir.path());
    let create = Command {
        now_ms: 1,
        op: Some(Op::CreateBucket(CreateBucket {
            name: "bkt".into(),
            owner: "o".into(),
            ec: None,
            ..Default::default()
        })),
    };
    apply_real(&st, 1, &create).unwrap();
    let put = Command {
        now_ms: 2,
        op: Some(Op::PutObject(PutObject {
            bucket: "bkt".into(),
            key: "k".into(),
            record: Some(ObjectRecord { etag: md5_hex(1), body: Some(body(42, 1)), ..Default::default() }),
            condition: None,
            origin: String::new(),
            bucket_digest: Vec::new(),
        })),
    };
    apply_real(&st, 2, &put).unwrap();
    apply_real(&st, 3, &put).unwrap();
    let live = |seq: u64| {
        let set = shards_of(&Some(body(seq, 1))).unwrap();
        set.disks.iter().all(|d| st.shards_referenced(*d, std::slice::from_ref(&set.data_id)).unwrap() == vec![true])
    };
    assert!(live(42), "re-applied put collected its own shards");
    let upload = UploadRecord { bucket: "bkt".into(), key: "m".into(), upload_id: "u1".into(), ..Default::default() };
    apply_real(&st, 4, &Command { now_ms: 4, op: Some(Op::CreateUpload(CreateUpload { upload: Some(upload) })) })
        .unwrap();
    let part = Command {
        now_ms: 5,
        op: Some(Op::PutPart(PutPart {
            bucket: "bkt".into(),
            key: "m".into(),
            upload_id: "u1".into(),
            part: Some(PartRecord {
                number: 1,
                size: 10,
                etag: md5_hex(2),
                body: Some(body(43, 1)),
                ..Default::default()
            }),
        })),
    };
    apply_real(&st, 5, &part).unwrap();
    apply_real(&st, 6, &part).unwrap();
    assert!(live(43), "re-applied part collected its own shards");
}

/// RestoreShards takes rebuilt positions out of the missing list of the
/// body that has them — an object's body, a completed object's part, an
/// upload's part — and changes nothing for a body no record holds.
#[test]
fn restored_shards_leave_the_missing_list() {
    let dir = tempfile::tempdir().unwrap();
    let st = open(dir.path());
    let cmd = |now: u64, op: Op| Command { now_ms: now, op: Some(op) };
    let with_missing = |seq: u64, missing: Vec<u32>| {
        let mut b = body(seq, 1);
        if let Some(body::Kind::Shards(s)) = b.kind.as_mut() {
            s.missing = missing;
        }
        b
    };
    let missing_of = |b: &Option<Body>| shards_of(b).unwrap().missing;
    apply_real(
        &st,
        1,
        &cmd(
            1,
            Op::CreateBucket(CreateBucket { name: "bkt".into(), owner: "o".into(), ec: None, ..Default::default() }),
        ),
    )
    .unwrap();
    let rec = ObjectRecord { etag: md5_hex(1), body: Some(with_missing(7, vec![0, 2])), ..Default::default() };
    let put = PutObject {
        bucket: "bkt".into(),
        key: "k".into(),
        record: Some(rec),
        condition: None,
        origin: String::new(),
        bucket_digest: Vec::new(),
    };
    apply_real(&st, 2, &cmd(2, Op::PutObject(put))).unwrap();
    let upload = UploadRecord { bucket: "bkt".into(), key: "m".into(), upload_id: "u1".into(), ..Default::default() };
    apply_real(&st, 3, &cmd(3, Op::CreateUpload(CreateUpload { upload: Some(upload) }))).unwrap();
    let part =
        PartRecord { number: 1, size: 5, etag: md5_hex(2), body: Some(with_missing(8, vec![1])), ..Default::default() };
    let put_part = PutPart { bucket: "bkt".into(), key: "m".into(), upload_id: "u1".into(), part: Some(part) };
    apply_real(&st, 4, &cmd(4, Op::PutPart(put_part))).unwrap();

    let id = |seq: u64| shards_of(&Some(body(seq, 1))).unwrap().data_id;
    let restore = |key: &str, upload_id: &str, seq: u64, positions: Vec<u32>| {
        Op::RestoreShards(RestoreShards {
            bucket: "bkt".into(),
            key: key.into(),
            upload_id: upload_id.into(),
            data_id: id(seq),
            positions,
            version_id: String::new(),
        })
    };
    // The disk index says which of a disk's positions are missing.
    let index_missing = |disk: u32, seq: u64| -> Vec<u32> {
        st.disk_shards(disk).unwrap().into_iter().find(|(d, _)| *d == id(seq)).unwrap().1.missing
    };
    // body(seq, 1) places positions 0, 1, 2 on disks 2, 4, 1 (seq 7) and
    // 3, 3, 4 (seq 8).
    assert_eq!((index_missing(2, 7), index_missing(1, 7)), (vec![0], vec![2]));
    apply_real(&st, 5, &cmd(5, restore("k", "", 7, vec![2]))).unwrap();
    assert_eq!(missing_of(&st.object("bkt", "k").unwrap().unwrap().body), vec![0]);
    assert_eq!((index_missing(2, 7), index_missing(1, 7)), (vec![0], vec![]));
    // Another body's id, or the wrong owner: nothing changes.
    apply_real(&st, 6, &cmd(6, restore("k", "", 8, vec![0]))).unwrap();
    apply_real(&st, 7, &cmd(7, restore("m", "u1", 7, vec![0]))).unwrap();
    assert_eq!(missing_of(&st.object("bkt", "k").unwrap().unwrap().body), vec![0]);
    apply_real(&st, 8, &cmd(8, restore("m", "u1", 8, vec![1]))).unwrap();
    let (parts, _) = st.list_parts("bkt", "m", "u1", 0, 10).unwrap();
    assert_eq!(missing_of(&parts[0].body), Vec::<u32>::new());
    assert_eq!(index_missing(3, 8), Vec::<u32>::new());
    let owner = st.disk_shards(3).unwrap().into_iter().find(|(d, _)| *d == id(8)).unwrap().1;
    assert_eq!((owner.upload_id.as_str(), owner.part), ("u1", 1));
}

/// MoveShard switches one position of a body to another disk — only if the
/// record still names the expected disk there — and the disk index follows
/// in the same batch: the new disk's entry appears, the old disk's goes when
/// no position is left on it, every entry names the new set.
#[test]
fn a_moved_shard_switches_its_record_and_the_disk_index() {
    let dir = tempfile::tempdir().unwrap();
    let st = open(dir.path());
    let cmd = |now: u64, op: Op| Command { now_ms: now, op: Some(op) };
    apply_real(
        &st,
        1,
        &cmd(
            1,
            Op::CreateBucket(CreateBucket { name: "bkt".into(), owner: "o".into(), ec: None, ..Default::default() }),
        ),
    )
    .unwrap();
    // body(8, 1) places positions 0, 1, 2 on disks 3, 3, 4, and counts 1 missing.
    let mut b = body(8, 1);
    if let Some(body::Kind::Shards(s)) = b.kind.as_mut() {
        s.missing = vec![1];
    }
    let id = shards_of(&Some(b.clone())).unwrap().data_id;
    let rec = ObjectRecord { etag: md5_hex(1), body: Some(b), ..Default::default() };
    apply_real(
        &st,
        2,
        &cmd(
            2,
            Op::PutObject(PutObject {
                bucket: "bkt".into(),
                key: "k".into(),
                record: Some(rec),
                condition: None,
                origin: String::new(),
                bucket_digest: Vec::new(),
            }),
        ),
    )
    .unwrap();
    let mv = |position: u32, from: u32, to: u32, key: &str| {
        Op::MoveShard(MoveShard {
            bucket: "bkt".into(),
            key: key.into(),
            upload_id: String::new(),
            data_id: id.clone(),
            position,
            from,
            to,
            version_id: String::new(),
        })
    };
    let entry = |disk: u32| st.disk_shards(disk).unwrap().into_iter().find(|(d, _)| *d == id).map(|(_, e)| e);
    apply_real(&st, 3, &cmd(3, mv(1, 3, 5, "k"))).unwrap();
    let set = shards_of(&st.object("bkt", "k").unwrap().unwrap().body).unwrap();
    assert_eq!((set.disks.clone(), set.missing.clone()), (vec![3, 5, 4], vec![]), "moved, and whole again");
    assert_eq!(entry(3).unwrap().positions, vec![0]);
    assert_eq!(entry(5).unwrap().positions, vec![1]);
    for d in [3, 4, 5] {
        assert_eq!(entry(d).unwrap().disks, vec![3, 5, 4], "disk {d}'s entry names the new set");
    }
    apply_real(&st, 4, &cmd(4, mv(2, 4, 0, "k"))).unwrap();
    assert!(entry(4).is_none(), "the old disk's entry is gone");
    assert_eq!(entry(0).unwrap().positions, vec![2]);
    // The record no longer names 4 at position 2: refused, nothing changes.
    assert!(matches!(apply_real(&st, 5, &cmd(5, mv(2, 4, 1, "k"))), Err(MetaError::PreconditionFailed)));
    assert!(matches!(apply_real(&st, 6, &cmd(6, mv(0, 3, 1, "other"))), Err(MetaError::NoSuchKey)));
    assert!(matches!(apply_real(&st, 7, &cmd(7, mv(9, 3, 1, "k"))), Err(MetaError::InvalidArgument(_))));
    assert!(entry(1).is_none());
    assert_eq!(shards_of(&st.object("bkt", "k").unwrap().unwrap().body).unwrap().disks, vec![3, 5, 0]);
}
