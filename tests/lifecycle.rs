//! Lifecycle end to end on an in-process cluster (fast lifecycle passes and
//! garbage collection): a 1-second TTL rule (Tessera's extension, set
//! through the admin API) expires current objects, noncurrent versions and
//! the delete markers left behind, and aborts incomplete uploads, and their
//! shards leave the disks; objects outside the rule's prefix stay; a
//! COMPLIANCE-locked version survives the same rule. S3's own lifecycle
//! configuration is checked, kept and shown as AWS does (and the TTL rules
//! are not mixed into it).

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketVersioningStatus, ExpirationStatus,
    LifecycleExpiration, LifecycleRule, LifecycleRuleAndOperator, LifecycleRuleFilter, NoncurrentVersionExpiration,
    ObjectLockMode, Tag, Transition, TransitionStorageClass, VersioningConfiguration,
};
use support::{Cluster, code, files_of, shard_files};

const ROOT: (&str, &str) = ("ROOTKEY00000000000011", "root-secret-000000000000000011");

async fn versions(c: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<(String, String)> {
    let r = c.list_object_versions().bucket(bucket).prefix(prefix).send().await.unwrap();
    let mut v: Vec<(String, String)> = r
        .versions()
        .iter()
        .map(|v| (v.key().unwrap().to_owned(), v.version_id().unwrap().to_owned()))
        .chain(r.delete_markers().iter().map(|m| (m.key().unwrap().to_owned(), m.version_id().unwrap().to_owned())))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_one_second_ttl_expires_versions_markers_and_uploads() {
    let cluster = Cluster::start_with(support::Options {
        gateways: 1,
        meta: Box::new(|m| m.lifecycle_interval = Duration::from_millis(300)),
        datanode: Box::new(|d| {
            d.gc_grace = Duration::from_secs(1);
            d.gc_interval = Duration::from_millis(300);
        }),
        ..Default::default()
    })
    .await;
    let c = cluster.client(0);
    support::add_key(&cluster, ROOT.0, ROOT.1, true).await;
    c.create_bucket().bucket("dvr").send().await.unwrap();
    let on = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    c.put_bucket_versioning().bucket("dvr").versioning_configuration(on).send().await.unwrap();
    let ttl =
        br#"{"rules":[{"prefix":"live/","expire_seconds":1,"noncurrent_seconds":1,"abort_incomplete_seconds":1}]}"#;
    let (st, out) = support::admin_call(&cluster, "PUT", "bucket-ttl/dvr", ttl, ROOT).await;
    assert_eq!(st, 200, "{out}");
    let (st, out) = support::admin_call(&cluster, "GET", "bucket-ttl/dvr", b"", ROOT).await;
    assert_eq!((st, out["rules"][0]["expire_seconds"].as_u64()), (200, Some(1)), "{out}");
    let (st, _) =
        support::admin_call(&cluster, "PUT", "bucket-ttl/dvr", ttl, (support::ACCESS_KEY, support::SECRET_KEY)).await;
    assert_eq!(st, 403, "a plain key set a TTL");
    let (st, _) = support::admin_call(&cluster, "PUT", "bucket-ttl/nope", ttl, ROOT).await;
    assert_eq!(st, 404);
    // S3's own view: no lifecycle configuration (the TTL is not one of its rules).
    let e = c.get_bucket_lifecycle_configuration().bucket("dvr").send().await.unwrap_err();
    assert_eq!(code(&e), "NoSuchLifecycleConfiguration");

    let seg = |n: u64| ByteStream::from(support::bytes(300 << 10, n));
    c.put_object().bucket("dvr").key("live/seg1.ts").body(seg(1)).send().await.unwrap();
    c.put_object().bucket("dvr").key("live/seg1.ts").body(seg(2)).send().await.unwrap();
    c.put_object().bucket("dvr").key("live/seg2.ts").body(seg(3)).send().await.unwrap();
    c.put_object().bucket("dvr").key("keep/archive.ts").body(seg(4)).send().await.unwrap();
    let up = c.create_multipart_upload().bucket("dvr").key("live/rec.ts").send().await.unwrap();
    let up = up.upload_id().unwrap().to_owned();
    c.upload_part().bucket("dvr").key("live/rec.ts").upload_id(&up).part_number(1).body(seg(5)).send().await.unwrap();

    // A locked bucket under the same kind of rule: its version stays.
    c.create_bucket().bucket("vault").object_lock_enabled_for_bucket(true).send().await.unwrap();
    let ttl_all = br#"{"rules":[{"prefix":"","expire_seconds":1,"noncurrent_seconds":1}]}"#;
    assert_eq!(support::admin_call(&cluster, "PUT", "bucket-ttl/vault", ttl_all, ROOT).await.0, 200);
    let locked = c
        .put_object()
        .bucket("vault")
        .key("evidence.ts")
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(DateTime::from(SystemTime::now() + Duration::from_secs(3600)))
        .body(seg(6))
        .send()
        .await
        .unwrap()
        .version_id
        .unwrap();

    // Everything under live/ goes: current versions (a marker each), the
    // noncurrent ones, then the markers left alone; the upload is aborted.
    let start = Instant::now();
    loop {
        let left = versions(&c, "dvr", "live/").await;
        let uploads = c.list_multipart_uploads().bucket("dvr").send().await.unwrap();
        if left.is_empty() && uploads.uploads().is_empty() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "after 30 s: {left:?}, {} uploads", uploads.uploads().len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("live/ expired {:?} after the writes", start.elapsed());
    assert_eq!(versions(&c, "dvr", "keep/").await.len(), 1, "outside the prefix, nothing expires");
    let got = c.get_object().bucket("vault").key("evidence.ts").version_id(&locked).send().await.unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().to_vec(), support::bytes(300 << 10, 6));

    // Their shards leave the disks: what stays is what the records reference.
    let mut want = BTreeSet::new();
    for (bucket, key, version) in [("dvr", "keep/archive.ts", ""), ("vault", "evidence.ts", locked.as_str())] {
        let rec = cluster.meta_client.get_object_version(bucket, key, version).await.unwrap().object.unwrap();
        files_of(0, rec.body.as_ref(), &mut want);
    }
    let start = Instant::now();
    while shard_files(&cluster) != want {
        assert!(start.elapsed() < Duration::from_secs(30), "expired shards were never collected");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The worker says what it did.
    let (st, status) = support::admin_call(&cluster, "GET", "lifecycle", b"", ROOT).await;
    let progress = status["progress"].as_str().unwrap_or_default().to_owned();
    assert_eq!(st, 200, "{status}");
    assert!(progress.contains("expired") && !progress.starts_with("0 passes"), "{progress}");
    assert!(!progress.contains(" 0 refused"), "the worker never met the locked version: {progress}");
    cluster.shutdown().await;
}

/// The operator's pace (`tessera admin lifecycle throttle 4`): the worker
/// examines at most 4 versions a second, so 16 objects due at once expire
/// over at least three seconds (unpaced, in one step).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paced_lifecycle_worker_expires_at_its_rate() {
    let cluster = Cluster::start_with(support::Options {
        gateways: 1,
        meta: Box::new(|m| m.lifecycle_interval = Duration::from_millis(300)),
        ..Default::default()
    })
    .await;
    let c = cluster.client(0);
    support::add_key(&cluster, ROOT.0, ROOT.1, true).await;
    let (st, out) =
        support::admin_call(&cluster, "PUT", "worker-rates", br#"{"lifecycle_versions_per_sec": 4}"#, ROOT).await;
    assert_eq!((st, out["lifecycle_versions_per_sec"].as_u64()), (200, Some(4)), "{out}");
    c.create_bucket().bucket("paced").send().await.unwrap();
    for i in 0..16 {
        c.put_object()
            .bucket("paced")
            .key(format!("p/{i:02}"))
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap();
    }
    let ttl = br#"{"rules":[{"prefix":"p/","expire_seconds":1}]}"#;
    let (st, out) = support::admin_call(&cluster, "PUT", "bucket-ttl/paced", ttl, ROOT).await;
    assert_eq!(st, 200, "{out}");
    let left = || async { c.list_objects_v2().bucket("paced").send().await.unwrap().key_count().unwrap_or(0) };
    let start = Instant::now();
    while left().await == 16 {
        assert!(start.elapsed() < Duration::from_secs(30), "nothing expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = Instant::now();
    while left().await > 0 {
        assert!(first.elapsed() < Duration::from_secs(30), "not everything expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let spread = first.elapsed();
    assert!(spread >= Duration::from_secs(2), "16 versions at 4 a second expired within {spread:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_lifecycle_configurations_are_checked_and_kept() {
    let cluster = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let c = cluster.client(0);
    c.create_bucket().bucket("rules").send().await.unwrap();
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build().unwrap();
    let rules = vec![
        LifecycleRule::builder()
            .id("segments")
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix("live/").build())
            .expiration(LifecycleExpiration::builder().days(30).build())
            .noncurrent_version_expiration(
                NoncurrentVersionExpiration::builder().noncurrent_days(7).newer_noncurrent_versions(2).build(),
            )
            .abort_incomplete_multipart_upload(
                AbortIncompleteMultipartUpload::builder().days_after_initiation(3).build(),
            )
            .build()
            .unwrap(),
        LifecycleRule::builder()
            .id("tagged")
            .status(ExpirationStatus::Disabled)
            .filter(
                LifecycleRuleFilter::builder()
                    .and(
                        LifecycleRuleAndOperator::builder()
                            .prefix("tmp/")
                            .tags(tag("class", "scratch"))
                            .object_size_greater_than(1024)
                            .build(),
                    )
                    .build(),
            )
            .expiration(LifecycleExpiration::builder().days(1).build())
            .build()
            .unwrap(),
    ];
    let cfg = BucketLifecycleConfiguration::builder().set_rules(Some(rules.clone())).build().unwrap();
    c.put_bucket_lifecycle_configuration().bucket("rules").lifecycle_configuration(cfg).send().await.unwrap();
    let got = c.get_bucket_lifecycle_configuration().bucket("rules").send().await.unwrap();
    assert_eq!(got.rules(), rules.as_slice());

    // Refused, and nothing changes: transitions, no action, a date not at midnight.
    let bad = [
        LifecycleRule::builder()
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix("").build())
            .transitions(Transition::builder().days(30).storage_class(TransitionStorageClass::Glacier).build())
            .build()
            .unwrap(),
        LifecycleRule::builder()
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix("").build())
            .build()
            .unwrap(),
        LifecycleRule::builder()
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix("").build())
            .expiration(LifecycleExpiration::builder().date(DateTime::from_secs(1_800_000_123)).build())
            .build()
            .unwrap(),
    ];
    for (rule, want) in bad.into_iter().zip(["NotImplemented", "InvalidRequest", "InvalidArgument"]) {
        let cfg = BucketLifecycleConfiguration::builder().rules(rule).build().unwrap();
        let e = c.put_bucket_lifecycle_configuration().bucket("rules").lifecycle_configuration(cfg).send().await;
        assert_eq!(code(&e.unwrap_err()), want);
    }
    assert_eq!(c.get_bucket_lifecycle_configuration().bucket("rules").send().await.unwrap().rules().len(), 2);
    c.delete_bucket_lifecycle().bucket("rules").send().await.unwrap();
    let e = c.get_bucket_lifecycle_configuration().bucket("rules").send().await.unwrap_err();
    assert_eq!(code(&e), "NoSuchLifecycleConfiguration");
    cluster.shutdown().await;
}
