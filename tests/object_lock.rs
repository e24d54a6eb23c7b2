//! Object lock through aws-sdk-s3 on an in-process cluster: a bucket made
//! with object lock (versioning on, never suspended), COMPLIANCE retention
//! that no one — not the root key, not with the bypass header — can delete
//! or shorten before its date, GOVERNANCE retention that only a key allowed
//! `s3:BypassGovernanceRetention` can bypass, legal holds, the bucket's
//! default retention, the lock headers on GET/HEAD, and the refusals
//! (lock headers on a bucket without object lock, bad dates).

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, SystemTime};

use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    BucketVersioningStatus, DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockLegalHold,
    ObjectLockLegalHoldStatus, ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode, ObjectLockRule,
    VersioningConfiguration,
};
use support::{Cluster, code, status};

const B: &str = "locked";

fn in_secs(s: u64) -> DateTime {
    DateTime::from(SystemTime::now() + Duration::from_secs(s))
}

async fn put_locked(c: &aws_sdk_s3::Client, key: &str, mode: Option<ObjectLockMode>, secs: u64) -> String {
    let mut r = c.put_object().bucket(B).key(key).body(ByteStream::from(support::bytes(300 << 10, 1)));
    if let Some(m) = mode {
        r = r.object_lock_mode(m).object_lock_retain_until_date(in_secs(secs));
    }
    r.send().await.unwrap().version_id.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retention_and_legal_holds_protect_versions() {
    let cluster = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let owner = cluster.client(0);
    let root = support::add_key(&cluster, "ROOTKEY00000000000009", "root-secret-000000000000000009", true).await;
    let other = support::add_key(&cluster, "OTHERKEY000000000009", "other-secret-00000000000000009", false).await;
    owner.create_bucket().bucket(B).object_lock_enabled_for_bucket(true).send().await.unwrap();
    let v = owner.get_bucket_versioning().bucket(B).send().await.unwrap();
    assert_eq!(v.status(), Some(&BucketVersioningStatus::Enabled), "object lock turns versioning on");
    let cfg = owner.get_object_lock_configuration().bucket(B).send().await.unwrap();
    let cfg = cfg.object_lock_configuration().unwrap();
    assert_eq!(cfg.object_lock_enabled(), Some(&ObjectLockEnabled::Enabled));
    let suspend = VersioningConfiguration::builder().status(BucketVersioningStatus::Suspended).build();
    let e = owner.put_bucket_versioning().bucket(B).versioning_configuration(suspend).send().await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (409, "InvalidBucketState"));
    // The other key may delete versions (a bucket policy), not bypass.
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"OTHERKEY000000000009"}},
        "Action":["s3:DeleteObject","s3:DeleteObjectVersion","s3:GetObject","s3:PutObjectRetention"],"Resource":"arn:aws:s3:::{B}/*"}}]}}"#
    );
    owner.put_bucket_policy().bucket(B).policy(policy).send().await.unwrap();

    // COMPLIANCE: a marker is fine; the version itself cannot go, not even
    // for root with the bypass header; it cannot be shortened or weakened.
    let c = put_locked(&owner, "compliance", Some(ObjectLockMode::Compliance), 3600).await;
    let h = owner.head_object().bucket(B).key("compliance").send().await.unwrap();
    assert_eq!(h.object_lock_mode(), Some(&ObjectLockMode::Compliance));
    assert!(h.object_lock_retain_until_date().is_some());
    assert_eq!(h.object_lock_legal_hold_status(), Some(&ObjectLockLegalHoldStatus::Off));
    owner.delete_object().bucket(B).key("compliance").send().await.unwrap();
    for client in [&owner, &root] {
        let e = client
            .delete_object()
            .bucket(B)
            .key("compliance")
            .version_id(&c)
            .bypass_governance_retention(true)
            .send()
            .await
            .unwrap_err();
        assert_eq!((status(&e), code(&e).as_str()), (403, "AccessDenied"));
    }
    let shorter =
        ObjectLockRetention::builder().mode(ObjectLockRetentionMode::Compliance).retain_until_date(in_secs(60)).build();
    let e = root
        .put_object_retention()
        .bucket(B)
        .key("compliance")
        .version_id(&c)
        .retention(shorter)
        .bypass_governance_retention(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied", "a COMPLIANCE retention was shortened");
    let longer = ObjectLockRetention::builder()
        .mode(ObjectLockRetentionMode::Compliance)
        .retain_until_date(in_secs(7200))
        .build();
    owner.put_object_retention().bucket(B).key("compliance").version_id(&c).retention(longer).send().await.unwrap();
    let r = owner.get_object_retention().bucket(B).key("compliance").version_id(&c).send().await.unwrap();
    assert_eq!(r.retention().unwrap().mode(), Some(&ObjectLockRetentionMode::Compliance));
    let got = owner.get_object().bucket(B).key("compliance").version_id(&c).send().await.unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().len(), 300 << 10, "the locked version reads");
    // DeleteObjects by version id is refused per key too.
    let ids = aws_sdk_s3::types::Delete::builder()
        .objects(aws_sdk_s3::types::ObjectIdentifier::builder().key("compliance").version_id(&c).build().unwrap())
        .build()
        .unwrap();
    let r = root.delete_objects().bucket(B).delete(ids).bypass_governance_retention(true).send().await.unwrap();
    assert_eq!(r.errors().len(), 1);
    assert_eq!(r.errors()[0].code(), Some("AccessDenied"));

    // GOVERNANCE: refused without the bypass, and to a key not allowed to
    // bypass even when it asks; the owner (allowed) bypasses.
    let g = put_locked(&owner, "governance", Some(ObjectLockMode::Governance), 3600).await;
    let e = owner.delete_object().bucket(B).key("governance").version_id(&g).send().await.unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    let e = other
        .delete_object()
        .bucket(B)
        .key("governance")
        .version_id(&g)
        .bypass_governance_retention(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied", "a key without s3:BypassGovernanceRetention bypassed");
    let free = put_locked(&owner, "free", None, 0).await;
    other.delete_object().bucket(B).key("free").version_id(&free).send().await.unwrap();
    owner
        .delete_object()
        .bucket(B)
        .key("governance")
        .version_id(&g)
        .bypass_governance_retention(true)
        .send()
        .await
        .unwrap();

    // A legal hold blocks deletion by anyone until it is removed.
    let h = put_locked(&owner, "held", None, 0).await;
    let hold = |s: ObjectLockLegalHoldStatus| ObjectLockLegalHold::builder().status(s).build();
    owner
        .put_object_legal_hold()
        .bucket(B)
        .key("held")
        .version_id(&h)
        .legal_hold(hold(ObjectLockLegalHoldStatus::On))
        .send()
        .await
        .unwrap();
    let got = owner.get_object_legal_hold().bucket(B).key("held").version_id(&h).send().await.unwrap();
    assert_eq!(got.legal_hold().unwrap().status(), Some(&ObjectLockLegalHoldStatus::On));
    let e = root
        .delete_object()
        .bucket(B)
        .key("held")
        .version_id(&h)
        .bypass_governance_retention(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    owner
        .put_object_legal_hold()
        .bucket(B)
        .key("held")
        .version_id(&h)
        .legal_hold(hold(ObjectLockLegalHoldStatus::Off))
        .send()
        .await
        .unwrap();
    owner.delete_object().bucket(B).key("held").version_id(&h).send().await.unwrap();

    // The bucket's default retention applies to new versions.
    let rule = ObjectLockRule::builder()
        .default_retention(DefaultRetention::builder().mode(ObjectLockRetentionMode::Governance).days(1).build())
        .build();
    let cfg = ObjectLockConfiguration::builder().object_lock_enabled(ObjectLockEnabled::Enabled).rule(rule).build();
    owner.put_object_lock_configuration().bucket(B).object_lock_configuration(cfg).send().await.unwrap();
    let got = owner.get_object_lock_configuration().bucket(B).send().await.unwrap();
    let d = got.object_lock_configuration().unwrap().rule().unwrap().default_retention().unwrap();
    assert_eq!((d.mode(), d.days()), (Some(&ObjectLockRetentionMode::Governance), Some(1)));
    let dflt = put_locked(&owner, "default", None, 0).await;
    let h = owner.head_object().bucket(B).key("default").version_id(&dflt).send().await.unwrap();
    assert_eq!(h.object_lock_mode(), Some(&ObjectLockMode::Governance));
    let until = h.object_lock_retain_until_date().unwrap().secs();
    let now = DateTime::from(SystemTime::now()).secs();
    assert!((until - now - 86_400).abs() < 120, "one day from the write: {}", until - now);

    // Refusals: a past date; lock headers where the bucket has no object lock.
    let e = owner
        .put_object()
        .bucket(B)
        .key("past")
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(DateTime::from_secs(1_000_000))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidArgument");
    owner.create_bucket().bucket("plain").send().await.unwrap();
    let e = owner
        .put_object()
        .bucket("plain")
        .key("k")
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidRequest"));
    let e = owner.get_object_lock_configuration().bucket("plain").send().await.unwrap_err();
    assert_eq!(code(&e), "ObjectLockConfigurationNotFoundError");
    cluster.shutdown().await;
}
