//! Object versions on the real state machine against a model of S3's
//! rules: random puts, deletes (with and without a version id) and
//! versioning changes; after every step each key's versions (by id and in
//! ListObjectVersions order, paged), ListObjects without delete markers,
//! and the disk index (every live version's shards referenced, every
//! deleted one's collected) are compared with the model.

// A test that meets an error should fail loudly.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::{apply_real, body, md5_hex, open, shards_of};
use proptest::prelude::*;
use tessera_metadata::state::list::ListQuery;
use tessera_metadata::{MetaError, MetaState};
use tessera_rpc::names::version_id;
use tessera_rpc::proto::meta::command::Op;
use tessera_rpc::proto::meta::*;

const KEYS: [&str; 4] = ["a", "a/b", "a/c", "b"];

/// One version as the model has it: id ("" = null), marker, body seq.
#[derive(Clone, Debug, PartialEq)]
struct V {
    id: String,
    marker: bool,
    body: Option<u64>,
}

#[derive(Default)]
struct Model {
    versioning: i32,
    /// Newest first.
    keys: BTreeMap<String, Vec<V>>,
    /// Bodies of deleted versions (their shards must be unreferenced).
    dead: Vec<u64>,
}

impl Model {
    fn drop_null(&mut self, key: &str) {
        let vs = self.keys.entry(key.to_owned()).or_default();
        if let Some(i) = vs.iter().position(|v| v.id.is_empty()) {
            let v = vs.remove(i);
            self.dead.extend(v.body);
        }
    }
    fn write(&mut self, key: &str, seq: u64, v: V) {
        match self.versioning {
            0 => {
                self.drop_null(key);
                if !v.marker {
                    self.keys.entry(key.to_owned()).or_default().insert(0, v);
                }
            }
            1 => self.keys.entry(key.to_owned()).or_default().insert(0, V { id: version_id(seq), ..v }),
            _ => {
                self.drop_null(key);
                self.keys.entry(key.to_owned()).or_default().insert(0, V { id: String::new(), ..v });
            }
        }
        self.keys.retain(|_, vs| !vs.is_empty());
    }
    fn delete_version(&mut self, key: &str, id: &str) {
        let id = if id == "null" { "" } else { id };
        if let Some(vs) = self.keys.get_mut(key)
            && let Some(i) = vs.iter().position(|v| v.id == id)
        {
            let v = vs.remove(i);
            self.dead.extend(v.body);
        }
        self.keys.retain(|_, vs| !vs.is_empty());
    }
}

#[derive(Clone, Debug)]
enum Action {
    Put(usize),
    Delete(usize),
    /// Delete the n-th version of a key (modulo its count), or "null", or an id nobody has.
    DeleteVersion(usize, usize, u8),
    Versioning(bool),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => (0..KEYS.len()).prop_map(Action::Put),
        2 => (0..KEYS.len()).prop_map(Action::Delete),
        2 => (0..KEYS.len(), 0..6usize, 0..4u8).prop_map(|(k, n, w)| Action::DeleteVersion(k, n, w)),
        1 => any::<bool>().prop_map(Action::Versioning),
    ]
}

fn shown(v: &V) -> String {
    if v.id.is_empty() { "null".into() } else { v.id.clone() }
}

fn referenced(st: &MetaState, seq: u64) -> bool {
    let set = shards_of(&Some(body(seq, 1))).unwrap();
    set.disks.iter().all(|d| st.shards_referenced(*d, std::slice::from_ref(&set.data_id)).unwrap() == vec![true])
}

fn collected(st: &MetaState, seq: u64) -> bool {
    let set = shards_of(&Some(body(seq, 1))).unwrap();
    set.disks.iter().all(|d| st.shards_referenced(*d, std::slice::from_ref(&set.data_id)).unwrap() == vec![false])
}

/// (key, version id, is a delete marker, is the latest).
type Listed = (String, String, bool, bool);

/// Every version of the bucket, paged `max` at a time, and the common prefixes.
fn all_versions(st: &MetaState, max: usize, delimiter: Option<&str>) -> (Vec<Listed>, Vec<String>) {
    let (mut out, mut prefixes) = (Vec::new(), Vec::new());
    let (mut km, mut vm): (Option<String>, Option<String>) = (None, None);
    for _ in 0..1000 {
        let p = st.list_versions("bkt", "", delimiter, km.as_deref(), vm.as_deref(), max).unwrap();
        assert!(p.versions.len() + p.common_prefixes.len() <= max, "a page holds at most max-keys entries");
        for (k, r, latest) in p.versions {
            let id = if r.version_id.is_empty() { "null".to_owned() } else { r.version_id.clone() };
            out.push((k, id, r.delete_marker, latest));
        }
        prefixes.extend(p.common_prefixes);
        if !p.is_truncated {
            return (out, prefixes);
        }
        km = p.next_key_marker;
        vm = p.next_version_id_marker;
        assert!(km.is_some(), "a truncated page says where to continue");
    }
    panic!("listing did not end");
}

fn check(st: &MetaState, m: &Model, max: usize) {
    // Each key: the current version and every version by id.
    for key in KEYS {
        let cur = st.object_version("bkt", key, "").unwrap();
        match m.keys.get(key) {
            None => assert!(cur.is_none(), "{key}: no versions, yet {cur:?}"),
            Some(vs) => {
                let cur = cur.unwrap();
                assert_eq!((cur.version_id.as_str(), cur.delete_marker), (vs[0].id.as_str(), vs[0].marker), "{key}");
                for v in vs {
                    let got = st.object_version("bkt", key, &shown(v)).unwrap().unwrap();
                    assert_eq!(got.delete_marker, v.marker, "{key} {}", shown(v));
                    assert_eq!(
                        shards_of(&got.body).map(|s| s.data_id),
                        v.body.map(|b| shards_of(&Some(body(b, 1))).unwrap().data_id)
                    );
                }
            }
        }
    }
    // ListObjectVersions, paged: keys in order, newest first.
    let mut want = Vec::new();
    for (k, vs) in &m.keys {
        for (i, v) in vs.iter().enumerate() {
            want.push((k.clone(), shown(v), v.marker, i == 0));
        }
    }
    assert_eq!(all_versions(st, max, None).0, want, "versions paged by {max}");
    // With a delimiter: "a/" rolls up "a/b" and "a/c".
    let (flat, prefixes) = all_versions(st, max, Some("/"));
    let want_flat: Vec<_> = want.iter().filter(|w| !w.0.contains('/')).cloned().collect();
    assert_eq!(flat, want_flat);
    let has_prefix = m.keys.keys().any(|k| k.starts_with("a/"));
    assert_eq!(prefixes, if has_prefix { vec!["a/".to_owned()] } else { vec![] });
    // ListObjects: keys whose current version is not a marker.
    let q = ListQuery { prefix: String::new(), delimiter: None, after: None, max_keys: 1000 };
    let listed: Vec<String> = st.list_objects("bkt", &q).unwrap().items.into_iter().map(|(k, _)| k).collect();
    let live: Vec<String> = m.keys.iter().filter(|(_, vs)| !vs[0].marker).map(|(k, _)| k.clone()).collect();
    assert_eq!(listed, live);
    // Shards: live versions referenced, deleted ones collected.
    for vs in m.keys.values() {
        for b in vs.iter().filter_map(|v| v.body) {
            assert!(referenced(st, b), "a live version's shards are referenced ({b})");
        }
    }
    for &b in &m.dead {
        assert!(collected(st, b), "a deleted version's shards are collected ({b})");
    }
}

fn run(actions: Vec<Action>, max: usize) {
    let dir = tempfile::tempdir().unwrap();
    let st = open(dir.path());
    let create = CreateBucket { name: "bkt".into(), owner: "o".into(), ..Default::default() };
    apply_real(&st, 1, &Command { now_ms: 1, op: Some(Op::CreateBucket(create)) }).unwrap();
    let mut m = Model::default();
    for (i, a) in actions.into_iter().enumerate() {
        let index = 10 + i as u64;
        let seq = index << 16;
        let op = match &a {
            Action::Put(k) => Op::PutObject(PutObject {
                bucket: "bkt".into(),
                key: KEYS[*k].into(),
                record: Some(ObjectRecord { etag: md5_hex(index), body: Some(body(index, 1)), ..Default::default() }),
                condition: None,
                origin: String::new(),
                bucket_digest: Vec::new(),
            }),
            Action::Delete(k) => {
                Op::DeleteObject(DeleteObject { bucket: "bkt".into(), key: KEYS[*k].into(), ..Default::default() })
            }
            Action::DeleteVersion(k, n, which) => {
                let vs = m.keys.get(KEYS[*k]).cloned().unwrap_or_default();
                let id = match which {
                    0 => "null".to_owned(),
                    1 => version_id(0xdead << 16),
                    _ if vs.is_empty() => "null".to_owned(),
                    _ => shown(&vs[n % vs.len()]),
                };
                Op::DeleteObject(DeleteObject {
                    bucket: "bkt".into(),
                    key: KEYS[*k].into(),
                    version_id: Some(id),
                    ..Default::default()
                })
            }
            Action::Versioning(enable) => Op::SetBucketVersioning(SetBucketVersioning {
                bucket: "bkt".into(),
                versioning: if *enable { Versioning::Enabled } else { Versioning::Suspended } as i32,
            }),
        };
        let got = apply_real(&st, index, &Command { now_ms: index, op: Some(op.clone()) });
        match &a {
            Action::Put(k) => {
                got.unwrap();
                m.write(KEYS[*k], seq, V { id: String::new(), marker: false, body: Some(index) });
            }
            Action::Delete(k) => {
                let r = got.unwrap();
                if m.versioning != 0 {
                    assert!(r.unwrap().delete_marker, "a delete in a versioned bucket makes a marker");
                }
                m.write(KEYS[*k], seq, V { id: String::new(), marker: true, body: None });
            }
            Action::DeleteVersion(k, ..) => {
                let Op::DeleteObject(d) = &op else { unreachable!() };
                got.unwrap();
                m.delete_version(KEYS[*k], d.version_id.as_deref().unwrap());
            }
            Action::Versioning(enable) => {
                got.unwrap();
                m.versioning = if *enable { 1 } else { 2 };
            }
        }
        check(&st, &m, max);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn versions_follow_s3s_rules(actions in proptest::collection::vec(action(), 1..40), max in 1usize..5) {
        run(actions, max);
    }
}

#[test]
fn the_semantics_table() {
    // PUT twice, DELETE makes a marker, DELETE by id removes one version,
    // suspended writes replace `null`: the sequence the issue names.
    run(
        vec![
            Action::Put(0),
            Action::Versioning(true),
            Action::Put(0),
            Action::Put(0),
            Action::Delete(0),
            Action::DeleteVersion(0, 1, 2),
            Action::Versioning(false),
            Action::Put(0),
            Action::Put(0),
            Action::Delete(0),
            Action::DeleteVersion(0, 0, 2),
        ],
        2,
    );
}

fn cmd(i: u64, op: Op) -> Command {
    Command { now_ms: i, op: Some(op) }
}

/// A state machine with bucket `bkt`, versioning enabled (log indexes 1 and 2).
fn versioned_bucket() -> (tempfile::TempDir, MetaState) {
    let dir = tempfile::tempdir().unwrap();
    let st = open(dir.path());
    let create = CreateBucket { name: "bkt".into(), owner: "o".into(), ..Default::default() };
    apply_real(&st, 1, &cmd(1, Op::CreateBucket(create))).unwrap();
    let on = SetBucketVersioning { bucket: "bkt".into(), versioning: Versioning::Enabled as i32 };
    apply_real(&st, 2, &cmd(2, Op::SetBucketVersioning(on))).unwrap();
    (dir, st)
}

#[test]
fn malformed_ids_and_markers_by_id() {
    let (_dir, st) = versioned_bucket();
    let off = SetBucketVersioning { bucket: "bkt".into(), versioning: Versioning::Unversioned as i32 };
    assert!(matches!(apply_real(&st, 3, &cmd(3, Op::SetBucketVersioning(off))), Err(MetaError::InvalidArgument(_))));
    let del = DeleteObject { bucket: "bkt".into(), key: "k".into(), ..Default::default() };
    let marker = apply_real(&st, 4, &cmd(4, Op::DeleteObject(del))).unwrap().unwrap();
    assert!(marker.delete_marker && marker.version_id == version_id(4 << 16));
    assert!(matches!(st.object_version("bkt", "k", "not-an-id"), Err(MetaError::InvalidArgument(_))));
    let tags = SetObjectTags {
        bucket: "bkt".into(),
        key: "k".into(),
        version_id: marker.version_id.clone(),
        ..Default::default()
    };
    assert_eq!(apply_real(&st, 5, &cmd(5, Op::SetObjectTags(tags))), Err(MetaError::MethodNotAllowed));
    let tags =
        SetObjectTags { bucket: "bkt".into(), key: "k".into(), version_id: version_id(77), ..Default::default() };
    assert_eq!(apply_real(&st, 6, &cmd(6, Op::SetObjectTags(tags))), Err(MetaError::NoSuchVersion));
    // A bucket with a marker left is not empty.
    let drop = DeleteBucket { name: "bkt".into() };
    assert_eq!(apply_real(&st, 7, &cmd(7, Op::DeleteBucket(drop.clone()))), Err(MetaError::BucketNotEmpty));
    let del = DeleteObject {
        bucket: "bkt".into(),
        key: "k".into(),
        version_id: Some(marker.version_id),
        ..Default::default()
    };
    apply_real(&st, 8, &cmd(8, Op::DeleteObject(del))).unwrap();
    apply_real(&st, 9, &cmd(9, Op::DeleteBucket(drop))).unwrap();
}

#[test]
fn a_retried_put_makes_one_version() {
    let (_dir, st) = versioned_bucket();
    let put = |b: u64| {
        Op::PutObject(PutObject {
            bucket: "bkt".into(),
            key: "k".into(),
            record: Some(ObjectRecord { etag: md5_hex(b), body: Some(body(b, 1)), ..Default::default() }),
            origin: String::new(),
            bucket_digest: Vec::new(),
            condition: None,
        })
    };
    let first = apply_real(&st, 3, &cmd(3, put(100))).unwrap().unwrap();
    apply_real(&st, 4, &cmd(4, put(101))).unwrap();
    // The first PUT applied again (its answer was lost in a leader change).
    let again = apply_real(&st, 5, &cmd(5, put(100))).unwrap().unwrap();
    assert_eq!(again.version_id, first.version_id, "the retry answers the version it made");
    let p = st.list_versions("bkt", "", None, None, None, 100).unwrap();
    assert_eq!(p.versions.len(), 2, "{p:?}");
    // Deleting that version collects its shards, and only its shards.
    let del = DeleteObject {
        bucket: "bkt".into(),
        key: "k".into(),
        version_id: Some(first.version_id),
        ..Default::default()
    };
    apply_real(&st, 6, &cmd(6, Op::DeleteObject(del))).unwrap();
    assert!(collected(&st, 100) && referenced(&st, 101));
}

#[test]
fn object_lock_is_enforced_by_the_state_machine() {
    let dir = tempfile::tempdir().unwrap();
    let st = open(dir.path());
    let create = CreateBucket { name: "bkt".into(), owner: "o".into(), object_lock: true, ..Default::default() };
    apply_real(&st, 1, &cmd(1, Op::CreateBucket(create))).unwrap();
    assert_eq!(st.bucket("bkt").unwrap().unwrap().versioning(), Versioning::Enabled, "object lock enables versioning");
    let suspend = SetBucketVersioning { bucket: "bkt".into(), versioning: Versioning::Suspended as i32 };
    let e = apply_real(&st, 2, &cmd(2, Op::SetBucketVersioning(suspend)));
    assert!(matches!(e, Err(MetaError::InvalidBucketState(_))), "{e:?}");

    let t0 = 1_000_000;
    let put = |index: u64, key: &str, lock: Option<ObjectLock>| {
        let record = ObjectRecord { etag: md5_hex(index), body: Some(body(index, 1)), lock, ..Default::default() };
        let op = Op::PutObject(PutObject {
            bucket: "bkt".into(),
            key: key.into(),
            record: Some(record),
            condition: None,
            origin: String::new(),
            bucket_digest: Vec::new(),
        });
        apply_real(&st, index, &cmd(t0 + index, op)).unwrap().unwrap().version_id
    };
    let delete = |index: u64, now: u64, key: &str, id: &str, bypass: bool| {
        let op = Op::DeleteObject(DeleteObject {
            bucket: "bkt".into(),
            key: key.into(),
            version_id: Some(id.into()),
            bypass_governance: bypass,
            ..Default::default()
        });
        apply_real(&st, index, &cmd(now, op))
    };
    let lock =
        |mode: LockMode, until: u64| Some(ObjectLock { mode: mode as i32, retain_until_ms: until, legal_hold: false });

    // COMPLIANCE: no delete by id before the date, bypass or not; a marker is fine.
    let c = put(10, "c", lock(LockMode::Compliance, t0 + 5_000));
    for bypass in [false, true] {
        assert!(matches!(delete(11, t0 + 100, "c", &c, bypass), Err(MetaError::ObjectLocked(_))));
    }
    let marker = DeleteObject { bucket: "bkt".into(), key: "c".into(), ..Default::default() };
    apply_real(&st, 12, &cmd(t0 + 100, Op::DeleteObject(marker))).unwrap();
    assert!(st.object_version("bkt", "c", &c).unwrap().is_some(), "the locked version survives");
    // It can be extended, never shortened or weakened.
    let retention = |mode: LockMode, until: u64, bypass: bool| SetObjectRetention {
        bucket: "bkt".into(),
        key: "c".into(),
        version_id: c.clone(),
        mode: mode as i32,
        retain_until_ms: until,
        bypass_governance: bypass,
    };
    for (mode, until) in
        [(LockMode::Compliance, t0 + 4_000), (LockMode::Governance, t0 + 9_000), (LockMode::LockNone, 0)]
    {
        let e = apply_real(&st, 13, &cmd(t0 + 200, Op::SetObjectRetention(retention(mode, until, true))));
        assert!(matches!(e, Err(MetaError::ObjectLocked(_))), "{mode:?} {e:?}");
    }
    apply_real(&st, 14, &cmd(t0 + 200, Op::SetObjectRetention(retention(LockMode::Compliance, t0 + 6_000, false))))
        .unwrap();
    assert!(matches!(delete(15, t0 + 5_500, "c", &c, true), Err(MetaError::ObjectLocked(_))), "extended");
    delete(16, t0 + 6_001, "c", &c, false).unwrap();

    // GOVERNANCE: only with the bypass.
    let g = put(20, "g", lock(LockMode::Governance, t0 + 5_000));
    assert!(matches!(delete(21, t0 + 100, "g", &g, false), Err(MetaError::ObjectLocked(_))));
    delete(22, t0 + 100, "g", &g, true).unwrap();

    // A legal hold: no delete by anyone until it is removed.
    let h = put(30, "h", None);
    let hold = |on: bool| SetObjectLegalHold { bucket: "bkt".into(), key: "h".into(), version_id: h.clone(), on };
    apply_real(&st, 31, &cmd(t0, Op::SetObjectLegalHold(hold(true)))).unwrap();
    assert!(matches!(delete(32, t0 + 100, "h", &h, true), Err(MetaError::ObjectLocked(_))));
    apply_real(&st, 33, &cmd(t0, Op::SetObjectLegalHold(hold(false)))).unwrap();
    delete(34, t0 + 100, "h", &h, false).unwrap();

    // A default retention applies from the write.
    let config = SetObjectLockConfig {
        bucket: "bkt".into(),
        default_retention: Some(DefaultRetention { mode: LockMode::Governance as i32, days: 1, years: 0 }),
    };
    apply_real(&st, 40, &cmd(t0, Op::SetObjectLockConfig(config))).unwrap();
    let d = put(41, "d", None);
    let rec = st.object_version("bkt", "d", &d).unwrap().unwrap();
    assert_eq!(rec.lock, lock(LockMode::Governance, t0 + 41 + 86_400_000));

    // A lock asked for in a bucket without object lock is refused.
    let plain = CreateBucket { name: "plain".into(), owner: "o".into(), ..Default::default() };
    apply_real(&st, 50, &cmd(t0, Op::CreateBucket(plain))).unwrap();
    let record = ObjectRecord {
        etag: md5_hex(51),
        body: Some(body(51, 1)),
        lock: lock(LockMode::Governance, t0 + 9),
        ..Default::default()
    };
    let op = Op::PutObject(PutObject {
        bucket: "plain".into(),
        key: "k".into(),
        record: Some(record),
        condition: None,
        origin: String::new(),
        bucket_digest: Vec::new(),
    });
    let e = apply_real(&st, 51, &cmd(t0, op));
    assert!(matches!(&e, Err(MetaError::InvalidArgument(m)) if m.contains("Object Lock")), "{e:?}");
}

#[test]
fn events_stay_in_the_outbox_until_acknowledged_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let st = open(dir.path());
        let create = CreateBucket { name: "bkt".into(), owner: "o".into(), ..Default::default() };
        apply_real(&st, 1, &cmd(1, Op::CreateBucket(create))).unwrap();
        let target = NotifyTarget { name: "hook".into(), url: "http://127.0.0.1:9/e".into() };
        apply_real(&st, 2, &cmd(2, Op::SetNotifyTarget(SetNotifyTarget { target: Some(target) }))).unwrap();
        let rule = NotifyRule {
            id: "r".into(),
            target: "hook".into(),
            events: vec!["s3:ObjectCreated:*".into()],
            prefix: "live/".into(),
            suffix: String::new(),
        };
        let set = SetBucketNotifications { bucket: "bkt".into(), rules: vec![rule.clone()] };
        apply_real(&st, 3, &cmd(3, Op::SetBucketNotifications(set))).unwrap();
        let bad = NotifyRule { target: "nobody".into(), ..rule };
        let set = SetBucketNotifications { bucket: "bkt".into(), rules: vec![bad] };
        assert!(matches!(
            apply_real(&st, 4, &cmd(4, Op::SetBucketNotifications(set))),
            Err(MetaError::InvalidArgument(_))
        ));
        for (i, key) in [(5u64, "live/a"), (6, "vod/b"), (7, "live/c")] {
            let record = ObjectRecord { etag: md5_hex(i), body: Some(body(i, 0)), ..Default::default() };
            let put = PutObject { bucket: "bkt".into(), key: key.into(), record: Some(record), ..Default::default() };
            apply_real(&st, i, &cmd(i, Op::PutObject(put))).unwrap();
        }
    }
    // Reopened (a restart): both events are still there, in write order.
    let st = open(dir.path());
    let events = st.pending_events(100).unwrap();
    let keys: Vec<&str> = events.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["live/a", "live/c"]);
    assert_eq!(events[0].event_name, "ObjectCreated:Put");
    let ack = AckEvents { seqs: vec![events[0].seq], rules: vec![events[0].rule], dead: false };
    apply_real(&st, 8, &cmd(8, Op::AckEvents(ack))).unwrap();
    let ack = AckEvents { seqs: vec![events[1].seq], rules: vec![events[1].rule], dead: true };
    apply_real(&st, 9, &cmd(9, Op::AckEvents(ack))).unwrap();
    assert!(st.pending_events(100).unwrap().is_empty());
    assert_eq!(st.dead_letters().unwrap(), 1, "the event given up is counted");
}

/// A bucket's usage counts current objects and their bytes, noncurrent
/// versions and theirs, delete markers, and uploads in progress with their
/// parts' bytes: what a quota is compared with.
#[test]
fn bucket_usage_counts_versions_markers_and_uploads() {
    let (_dir, st) = versioned_bucket();
    let put = |key: &str, size: u64, i: u64| {
        let record = ObjectRecord { size, etag: md5_hex(i), body: Some(body(i, 1)), ..Default::default() };
        Op::PutObject(PutObject { bucket: "bkt".into(), key: key.into(), record: Some(record), ..Default::default() })
    };
    apply_real(&st, 3, &cmd(3, put("k1", 100, 3))).unwrap();
    apply_real(&st, 4, &cmd(4, put("k1", 200, 4))).unwrap();
    apply_real(&st, 5, &cmd(5, put("k2", 50, 5))).unwrap();
    let del = DeleteObject { bucket: "bkt".into(), key: "k2".into(), ..Default::default() };
    apply_real(&st, 6, &cmd(6, Op::DeleteObject(del))).unwrap();
    let upload = UploadRecord { bucket: "bkt".into(), key: "big".into(), upload_id: "u1".into(), ..Default::default() };
    apply_real(&st, 7, &cmd(7, Op::CreateUpload(CreateUpload { upload: Some(upload) }))).unwrap();
    for n in 1..=2u32 {
        let part = PartRecord {
            number: n,
            size: 300,
            etag: md5_hex(u64::from(n)),
            body: Some(body(8, 1)),
            ..Default::default()
        };
        let put = PutPart { bucket: "bkt".into(), key: "big".into(), upload_id: "u1".into(), part: Some(part) };
        apply_real(&st, 7 + u64::from(n), &cmd(7 + u64::from(n), Op::PutPart(put))).unwrap();
    }
    let u = st.bucket_usage("bkt").unwrap();
    assert_eq!((u.objects, u.bytes), (1, 200), "{u:?}");
    assert_eq!((u.noncurrent_versions, u.noncurrent_bytes), (2, 150), "{u:?}");
    assert_eq!(u.delete_markers, 1, "{u:?}");
    assert_eq!((u.uploads, u.upload_bytes), (1, 600), "{u:?}");
    assert_eq!(st.bucket_usage("nope"), Err(MetaError::NoSuchBucket));
}
