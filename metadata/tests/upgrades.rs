//! Rolling upgrades on a real in-process metadata cluster: the version gate
//! with nodes of an older command level beside this release's.

// A test that meets an error should fail loudly.
#![allow(clippy::unwrap_used)]

mod cluster_support;

use std::time::{Duration, Instant};

use cluster_support::*;
use tessera_rpc::proto::meta::command::Op;
use tessera_rpc::proto::meta::command_result::Outcome;
use tessera_rpc::proto::meta::*;

fn set_bucket_acl(bucket: &str) -> Command {
    let grant = AclGrant { grantee: acl_grant::Grantee::AllUsers as i32, id: String::new(), permission: "READ".into() };
    Command { now_ms: 0, op: Some(Op::SetBucketAcl(SetBucketAcl { bucket: bucket.into(), acl: vec![grant] })) }
}

/// `cmd` (a PutObject) checked against the bucket record with `digest`.
fn checked(mut cmd: Command, digest: &[u8]) -> Command {
    if let Some(Op::PutObject(p)) = cmd.op.as_mut() {
        p.bucket_digest = digest.to_vec();
    }
    cmd
}

fn failure_code(o: &Outcome) -> Option<failure::Code> {
    match o {
        Outcome::Failure(f) => Some(f.code()),
        _ => None,
    }
}

/// Rolling upgrade: a cluster with one node of the previous release (ACLs
/// unknown to it) keeps serving what that release knows, refuses the new
/// commands with NotYetEnabled (nothing applied), and enables them once
/// the node runs this release.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_version_cluster_serves_and_enables_new_commands_once_every_node_is_upgraded() {
    use tessera_metadata::version::{BASE_LEVEL, LEVEL};
    let root = tempfile::tempdir().unwrap();
    let n1 = start(1, root.path(), true, 0).await;
    let n2 = start(2, root.path(), false, 0).await;
    let n3 = start_at(3, root.path(), false, 0, BASE_LEVEL).await;
    let c = client(vec![n1.addr.clone(), n2.addr.clone(), n3.addr.clone()]);
    wait_applied(&n1, 1).await;
    c.add_learner(2, &n2.addr, LEVEL).await.unwrap();
    c.add_learner(3, &n3.addr, BASE_LEVEL).await.unwrap();
    c.change_membership(vec![1, 2, 3]).await.unwrap();
    let status = n3.client().cluster_status().await.unwrap();
    assert_eq!(status.command_level, BASE_LEVEL, "the old node says what it understands");

    // Everything the previous release knows works.
    create_bucket(&c, "videos").await;
    must_write(&c, put("videos", "a", 1)).await;
    check_acked(&c, "videos", &[("a".into(), 1)]).await;
    let page = c
        .list_objects(ListObjectsRequest { bucket: "videos".into(), max_keys: 100, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(page.objects.len(), 1);

    // The new commands are refused, and nothing is applied.
    let r = c.write(set_bucket_acl("videos")).await.unwrap().outcome.unwrap();
    assert_eq!(failure_code(&r), Some(failure::Code::NotYetEnabled), "{r:?}");
    let mut public = put("videos", "b", 2);
    if let Some(Op::PutObject(p)) = public.op.as_mut() {
        p.record.as_mut().unwrap().acl = vec![AclGrant {
            grantee: acl_grant::Grantee::AllUsers as i32,
            id: String::new(),
            permission: "READ".into(),
        }];
    }
    let r = c.write(public.clone()).await.unwrap().outcome.unwrap();
    assert_eq!(failure_code(&r), Some(failure::Code::NotYetEnabled), "{r:?}");
    let versioning = Command {
        now_ms: 0,
        op: Some(Op::SetBucketVersioning(SetBucketVersioning {
            bucket: "videos".into(),
            versioning: Versioning::Enabled as i32,
        })),
    };
    let r = c.write(versioning.clone()).await.unwrap().outcome.unwrap();
    assert_eq!(failure_code(&r), Some(failure::Code::NotYetEnabled), "{r:?}");
    assert!(c.get_bucket("videos").await.unwrap().bucket.unwrap().acl.is_empty());
    assert_eq!(c.get_bucket("videos").await.unwrap().bucket.unwrap().versioning, 0);
    assert!(c.get_object("videos", "b").await.unwrap().object.is_none());
    let digest = c.get_bucket("videos").await.unwrap().digest;
    assert_eq!(digest.len(), 32);
    let r = c.write(checked(put("videos", "c", 3), &digest)).await.unwrap().outcome.unwrap();
    assert_eq!(failure_code(&r), Some(failure::Code::NotYetEnabled), "{r:?}");
    assert!(c.get_object("videos", "c").await.unwrap().object.is_none());

    // Upgrade the old node: same data, this release.
    let (id, port) = n3.stop().await;
    let n3 = start(id, root.path(), false, port).await;
    let start_at = Instant::now();
    loop {
        let r = c.write(set_bucket_acl("videos")).await.unwrap().outcome.unwrap();
        match failure_code(&r) {
            None => break,
            Some(failure::Code::NotYetEnabled) => {
                assert!(start_at.elapsed() < Duration::from_secs(15), "still not enabled after the upgrade");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Some(other) => panic!("refused: {other:?} {r:?}"),
        }
    }
    must_write(&c, public).await;
    must_write(&c, versioning).await;
    assert_eq!(c.get_bucket("videos").await.unwrap().bucket.unwrap().acl.len(), 1);
    assert_eq!(c.get_bucket("videos").await.unwrap().bucket.unwrap().versioning, Versioning::Enabled as i32);
    // A put checked against the bucket's record: applied while the record
    // is the one it was decided with, refused (nothing applied) once the
    // record changed, applied again with the new record's digest.
    let digest = c.get_bucket("videos").await.unwrap().digest;
    must_write(&c, checked(put("videos", "c", 3), &digest)).await;
    must_write(&c, set_bucket_acl("videos")).await;
    assert_eq!(c.get_bucket("videos").await.unwrap().digest, digest, "the same ACL again: the same record");
    let tags = SetBucketTags { bucket: "videos".into(), tags: vec![Header { name: "team".into(), value: "a".into() }] };
    must_write(&c, Command { now_ms: 0, op: Some(Op::SetBucketTags(tags)) }).await;
    let r = c.write(checked(put("videos", "d", 4), &digest)).await.unwrap().outcome.unwrap();
    assert_eq!(failure_code(&r), Some(failure::Code::BucketChanged), "{r:?}");
    assert!(c.get_object("videos", "d").await.unwrap().object.is_none());
    let fresh = c.get_bucket("videos").await.unwrap().digest;
    assert_ne!(fresh, digest);
    must_write(&c, checked(put("videos", "d", 4), &fresh)).await;
    assert!(c.get_object("videos", "d").await.unwrap().object.is_some());
    // The upgraded node applied the new commands too.
    let leader = n1.client().cluster_status().await.unwrap().last_applied;
    wait_applied(&n3, leader).await;
    assert!(!n3.task.is_finished());
    for n in [n1, n2, n3] {
        n.stop().await;
    }
}

/// A node of an older release that meets a log entry it does not
/// understand (it joined a cluster that already uses newer commands) stops
/// applying there instead of skipping it; this release's binary, started
/// on the same data, applies it and catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_node_stops_at_an_entry_it_does_not_understand_and_an_upgrade_goes_on() {
    use tessera_metadata::version::BASE_LEVEL;
    let root = tempfile::tempdir().unwrap();
    let n1 = start(1, root.path(), true, 0).await;
    let c = client(vec![n1.addr.clone()]);
    wait_applied(&n1, 1).await;
    create_bucket(&c, "videos").await;
    must_write(&c, set_bucket_acl("videos")).await;
    must_write(&c, put("videos", "a", 1)).await;
    let acl_index = n1.client().cluster_status().await.unwrap().last_applied - 1;

    let old = start_at(2, root.path(), false, 0, BASE_LEVEL).await;
    // The leader adds it (and replicates to it); it never catches up.
    let (addr, c2) = (old.addr.clone(), c.clone());
    let adding = tokio::spawn(async move { c2.add_learner(2, &addr, BASE_LEVEL).await });
    tokio::time::sleep(Duration::from_secs(3)).await;
    let seen = old.client().cluster_status().await.map(|s| s.last_applied).unwrap_or(0);
    assert!(seen < acl_index, "the old node applied entry {acl_index}, which it cannot understand (at {seen})");
    // It stopped by itself, with the reason.
    let port = old.port();
    let stopped = tokio::time::timeout(Duration::from_secs(10), old.task).await;
    let err = stopped.expect("the old node is still running").unwrap().unwrap_err();
    assert!(err.to_string().contains("command level"), "{err}");
    drop(old.stop);

    // This release's binary on the same data applies the entry and goes on.
    let new = start(2, root.path(), false, port).await;
    adding.abort();
    c.add_learner(2, &new.addr, tessera_metadata::version::LEVEL).await.unwrap();
    let target = n1.client().cluster_status().await.unwrap().last_applied;
    let s = wait_applied(&new, target).await;
    assert!(s.last_applied >= target);
    for n in [n1, new] {
        n.stop().await;
    }
}
