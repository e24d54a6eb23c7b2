//! The cluster map, datanode records and access keys in the state machine.

// A test that meets an error should fail loudly.
#![allow(clippy::unwrap_used)]

use rocksdb::WriteBatch;
use tessera_common::DiskId;
use tessera_metadata::{MetaState, open_db};
use tessera_placement::{PlacementRule, Placer};
use tessera_rpc::proto::meta::command::Op;
use tessera_rpc::proto::meta::command_result::Outcome;
use tessera_rpc::proto::meta::*;

fn apply(st: &MetaState, index: u64, op: Op) -> Result<(), failure::Code> {
    let mut batch = WriteBatch::default();
    let r = st.apply(index, &Command { now_ms: index, op: Some(op) }, &mut batch).unwrap();
    st.db().write(batch).unwrap();
    match r.outcome.unwrap() {
        Outcome::Failure(f) => Err(f.code()),
        _ => Ok(()),
    }
}

fn datanode(id: u64, zone: &str, disks: &[u32]) -> Op {
    Op::RegisterDatanode(RegisterDatanode {
        node: Some(DatanodeRecord {
            node_id: id,
            addr: format!("http://10.0.0.{id}:7100"),
            zone: zone.into(),
            rack: "r1".into(),
            host: format!("host{id}"),
            disks: disks.iter().map(|&d| DiskInfo { id: d, capacity_bytes: 100 << 30, ..Default::default() }).collect(),
            registered_ms: 0,
            version: String::new(),
        }),
        cluster_id: "cluster-one".into(),
    })
}

#[test]
fn the_first_registration_names_the_cluster_and_foreign_disks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let st = MetaState::new(open_db(dir.path()).unwrap());
    assert_eq!(st.cluster_id().unwrap(), "");
    apply(&st, 1, datanode(1, "z", &[1])).unwrap();
    assert_eq!(st.cluster_id().unwrap(), "cluster-one");
    // Later proposals do not rename it.
    let Op::RegisterDatanode(mut second) = datanode(2, "z", &[2]) else { unreachable!() };
    second.cluster_id = "cluster-two".into();
    apply(&st, 2, Op::RegisterDatanode(second.clone())).unwrap();
    assert_eq!(st.cluster_id().unwrap(), "cluster-one");
    // A disk that names another cluster is refused, whatever else it says.
    let node = second.node.as_mut().unwrap();
    node.node_id = 3;
    node.disks = vec![DiskInfo {
        id: 3,
        capacity_bytes: 1 << 30,
        cluster_id: "cluster-two".into(),
        format: true,
        ..Default::default()
    }];
    assert_eq!(apply(&st, 3, Op::RegisterDatanode(second)), Err(failure::Code::InvalidArgument));
    assert!(st.cluster_map().unwrap().unwrap().disk(DiskId(3)).is_none());
}

#[test]
fn datanodes_build_the_map_and_states_bump_the_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let st = MetaState::new(open_db(dir.path()).unwrap());
    assert!(st.cluster_map().unwrap().is_none());
    for (i, zone) in ["z1", "z2", "z3", "z1", "z2", "z3"].iter().enumerate() {
        let id = i as u64 + 1;
        apply(&st, id, datanode(id, zone, &[id as u32 * 10, id as u32 * 10 + 1])).unwrap();
    }
    let map = st.cluster_map().unwrap().unwrap();
    assert_eq!(map.epoch, 6);
    assert_eq!(map.zones.len(), 3);
    assert_eq!(map.disks().count(), 12);
    assert_eq!(map.disk(DiskId(10)).unwrap().weight, 100, "weight is capacity in GiB");
    assert_eq!(st.datanodes().unwrap().len(), 6);
    // The stored map places PGs over six hosts in three zones.
    let p = Placer::new(&map, PlacementRule::default()).unwrap();
    assert!(!p.fell_back());

    // Re-registration after a restart: no duplicate host; disks back up; new disk joins.
    apply(&st, 7, Op::SetDiskState(SetDiskState { disk: 10, up: false, is_in: false })).unwrap();
    assert!(!st.cluster_map().unwrap().unwrap().disk(DiskId(10)).unwrap().state.is_in);
    apply(&st, 8, datanode(1, "z1", &[10, 11, 12])).unwrap();
    let map = st.cluster_map().unwrap().unwrap();
    assert_eq!(map.hosts().count(), 6);
    assert_eq!(map.disks().count(), 13);
    assert!(map.disk(DiskId(10)).unwrap().state.is_in && map.disk(DiskId(10)).unwrap().state.up);
    assert!(map.epoch > 6);

    // Refusals: a disk of another node, duplicate disks, no disks, unknown disk.
    assert_eq!(apply(&st, 9, datanode(9, "z1", &[20])), Err(failure::Code::InvalidArgument));
    assert_eq!(apply(&st, 10, datanode(9, "z1", &[90, 90])), Err(failure::Code::InvalidArgument));
    assert_eq!(apply(&st, 11, datanode(9, "z1", &[])), Err(failure::Code::InvalidArgument));
    assert_eq!(
        apply(&st, 12, Op::SetDiskState(SetDiskState { disk: 999, up: true, is_in: true })),
        Err(failure::Code::InvalidArgument)
    );
    assert_eq!(st.datanodes().unwrap().len(), 6, "refused registrations store nothing");
}

#[test]
fn a_new_root_key_revokes_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let st = MetaState::new(open_db(dir.path()).unwrap());
    let key = |id: &str, root: bool| {
        Op::CreateAccessKey(CreateAccessKey {
            key: Some(AccessKeyRecord {
                access_key_id: id.into(),
                secret_key: "a-long-enough-secret".into(),
                created_ms: 0,
                description: String::new(),
                root,
                policies: Vec::new(),
                disabled: false,
                expires_ms: 0,
            }),
        })
    };
    apply(&st, 1, key("ROOTONE", true)).unwrap();
    apply(&st, 2, key("APPKEY", false)).unwrap();
    apply(&st, 3, key("ROOTTWO", true)).unwrap();
    assert!(st.access_key("ROOTONE").unwrap().is_none(), "the old root key is revoked");
    assert!(st.access_key("ROOTTWO").unwrap().unwrap().root);
    assert!(st.access_key("APPKEY").unwrap().is_some(), "other keys stay");
    // The same root key made again (a new secret: deleted, then created) stays.
    apply(&st, 4, Op::DeleteAccessKey(DeleteAccessKey { access_key_id: "ROOTTWO".into() })).unwrap();
    apply(&st, 5, key("ROOTTWO", true)).unwrap();
    assert!(st.access_key("ROOTTWO").unwrap().is_some());
}

#[test]
fn access_keys_are_created_read_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let st = MetaState::new(open_db(dir.path()).unwrap());
    let key = |id: &str, secret: &str| {
        Op::CreateAccessKey(CreateAccessKey {
            key: Some(AccessKeyRecord {
                access_key_id: id.into(),
                secret_key: secret.into(),
                created_ms: 0,
                description: "test".into(),
                root: false,
                policies: Vec::new(),
                disabled: false,
                expires_ms: 0,
            }),
        })
    };
    apply(&st, 1, key("AKIDEXAMPLE1", "wJalrXUtnFEMI/K7MDENG")).unwrap();
    let k = st.access_key("AKIDEXAMPLE1").unwrap().unwrap();
    assert_eq!(k.secret_key, "wJalrXUtnFEMI/K7MDENG");
    assert_eq!(k.created_ms, 1);
    assert_eq!(apply(&st, 2, key("AKIDEXAMPLE1", "another-secret")), Err(failure::Code::InvalidArgument));
    assert_eq!(apply(&st, 3, key("a!", "long-enough-secret")), Err(failure::Code::InvalidArgument));
    assert_eq!(apply(&st, 4, key("AKIDEXAMPLE2", "short")), Err(failure::Code::InvalidArgument));
    apply(&st, 5, Op::DeleteAccessKey(DeleteAccessKey { access_key_id: "AKIDEXAMPLE1".into() })).unwrap();
    assert!(st.access_key("AKIDEXAMPLE1").unwrap().is_none());
    assert_eq!(
        apply(&st, 6, Op::DeleteAccessKey(DeleteAccessKey { access_key_id: "AKIDEXAMPLE1".into() })),
        Err(failure::Code::NoSuchAccessKey)
    );
}

#[test]
fn a_corrupt_database_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let st = MetaState::new(open_db(dir.path()).unwrap());
        apply(&st, 1, datanode(1, "z", &[1])).unwrap();
    }
    // Overwrite every table and manifest file with garbage of the same length.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("MANIFEST") || name.ends_with(".sst") || name == "CURRENT" {
            let len = std::fs::metadata(&path).unwrap().len() as usize;
            std::fs::write(&path, vec![0x5a; len.max(1)]).unwrap();
        }
    }
    assert!(open_db(dir.path()).is_err(), "a corrupt database must be an error, never silently repaired");
}

#[test]
fn damage_reports_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let st = MetaState::new(open_db(dir.path()).unwrap());
    let report = |id: Vec<u8>, shard: u32| {
        Op::ReportDamage(ReportDamage {
            report: Some(DamageReport {
                disk: 7,
                data_id: id,
                part: 0,
                shard,
                reason: "stripe 2".into(),
                reported_ms: 0,
            }),
        })
    };
    apply(&st, 1, report(vec![1; 16], 2)).unwrap();
    apply(&st, 2, report(vec![1; 16], 2)).unwrap(); // reported again: one entry
    apply(&st, 3, report(vec![0; 16], 1)).unwrap();
    assert_eq!(apply(&st, 4, report(vec![1; 3], 0)), Err(failure::Code::InvalidArgument));
    assert_eq!(apply(&st, 5, report(vec![1; 16], 70_000)), Err(failure::Code::InvalidArgument));
    let got = st.damage_reports(10, None).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].data_id.clone(), got[0].shard, got[0].reported_ms), (vec![0; 16], 1, 3));
    assert_eq!((got[1].disk, got[1].reported_ms), (7, 2));
    // Per disk, and cleared once dealt with.
    assert_eq!(st.damage_reports(10, Some(7)).unwrap().len(), 2);
    assert!(st.damage_reports(10, Some(8)).unwrap().is_empty());
    let clear = Op::ClearDamage(ClearDamage { disk: 7, data_id: vec![0; 16], part: 0, shard: 1 });
    apply(&st, 6, clear).unwrap();
    let got = st.damage_reports(10, Some(7)).unwrap();
    assert_eq!(got.iter().map(|r| (r.data_id.clone(), r.shard)).collect::<Vec<_>>(), vec![(vec![1; 16], 2)]);
}

#[test]
fn the_retired_garbage_queue_is_dropped_in_steps() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path()).unwrap();
    let st = MetaState::new(db.clone());
    let sm = db.cf_handle(tessera_metadata::CF_SM).unwrap();
    for i in 0..5u8 {
        db.put_cf(sm, [b'x', i], b"old entry").unwrap();
    }
    db.put_cf(sm, b"y-after", b"a policy-table key stays").unwrap();
    assert!(st.has_retired().unwrap());
    apply(&st, 1, Op::DropRetired(DropRetired { max: 3 })).unwrap();
    assert!(st.has_retired().unwrap(), "two left");
    assert_eq!(db.get_cf(sm, [b'x', 3]).unwrap().as_deref(), Some(&b"old entry"[..]));
    apply(&st, 2, Op::DropRetired(DropRetired { max: 3 })).unwrap();
    assert!(!st.has_retired().unwrap());
    assert!(db.get_cf(sm, b"y-after").unwrap().is_some(), "other tables are untouched");
    apply(&st, 3, Op::DropRetired(DropRetired { max: 3 })).unwrap();
}
