//! Read-after-write and list-after-write across two gateways, and byte
//! fidelity for objects from 0 to 100 MiB and a >100 MiB multipart upload.

#![allow(clippy::unwrap_used)]

mod support;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use support::{Cluster, bytes};

async fn get(c: &aws_sdk_s3::Client, b: &str, k: &str) -> Option<Vec<u8>> {
    match c.get_object().bucket(b).key(k).send().await {
        Ok(r) => Some(r.body.collect().await.unwrap().into_bytes().to_vec()),
        Err(e) => {
            assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(404), "{e:?}");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_and_list_after_write_across_gateways() {
    let cluster = Cluster::start().await;
    let (a, b) = (cluster.client(0), cluster.client(1));
    a.create_bucket().bucket("raw").send().await.unwrap();
    let rounds = 250;
    let writers = 4;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (a, b) = (a.clone(), b.clone());
        tasks.push(tokio::spawn(async move {
            let mut stale = 0;
            let mut checks = 0;
            for i in 0..rounds {
                let key = format!("w{w}/k{}", i % 20);
                // Every tenth value is sharded, the rest inline.
                let size = if i % 10 == 0 { 200_000 } else { 100 + i };
                let v1 = bytes(size, (w * 100_000 + i) as u64);
                let (put, get_via) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
                put.put_object().bucket("raw").key(&key).body(ByteStream::from(v1.clone())).send().await.unwrap();
                checks += 1;
                stale += usize::from(get(get_via, "raw", &key).await.as_deref() != Some(v1.as_slice()));
                // Overwrite through the other gateway; HEAD sees the new size at once.
                let v2 = bytes(size + 1, (w * 100_000 + i) as u64 + 7);
                get_via.put_object().bucket("raw").key(&key).body(ByteStream::from(v2.clone())).send().await.unwrap();
                let h = put.head_object().bucket("raw").key(&key).send().await.unwrap();
                checks += 1;
                stale += usize::from(h.content_length() != Some(v2.len() as i64));
                // Listed at once.
                let l = get_via.list_objects_v2().bucket("raw").prefix(&key).send().await.unwrap();
                checks += 1;
                stale += usize::from(!l.contents().iter().any(|o| o.key() == Some(key.as_str())));
                // Deleted: gone at once from the other gateway, for GET and LIST.
                if i % 3 == 0 {
                    put.delete_object().bucket("raw").key(&key).send().await.unwrap();
                    checks += 2;
                    stale += usize::from(get(get_via, "raw", &key).await.is_some());
                    let l = get_via.list_objects_v2().bucket("raw").prefix(&key).send().await.unwrap();
                    stale += usize::from(l.contents().iter().any(|o| o.key() == Some(key.as_str())));
                }
            }
            (checks, stale)
        }));
    }
    let (mut checks, mut stale) = (0, 0);
    for t in tasks {
        let (c, s) = t.await.unwrap();
        checks += c;
        stale += s;
    }
    println!("read/list-after-write across two gateways: {checks} checks, {stale} stale");
    assert!(checks >= 3000);
    assert_eq!(stale, 0);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bytes_from_zero_to_100_mib_and_a_large_multipart() {
    let cluster = Cluster::start().await;
    let (a, b) = (cluster.client(0), cluster.client(1));
    a.create_bucket().bucket("bytes").send().await.unwrap();

    // Sizes: edges around the inline threshold and stripe sizes, then random up to 100 MiB.
    let mut sizes = vec![0usize, 1, 131_071, 131_072, 131_073, 1_048_575, 1_048_576, 1_048_577, 100 << 20];
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..6 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        sizes.push((x % (40 << 20)) as usize);
    }
    for (i, &n) in sizes.iter().enumerate() {
        let data = bytes(n, 1000 + i as u64);
        let key = format!("o{i}");
        a.put_object().bucket("bytes").key(&key).body(ByteStream::from(data.clone())).send().await.unwrap();
        assert_eq!(get(&b, "bytes", &key).await.unwrap(), data, "size {n}");
        for _ in 0..4 {
            if n == 0 {
                break;
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let s = (x % n as u64) as usize;
            let e = s + ((x >> 20) % (n - s) as u64) as usize;
            let r = b.get_object().bucket("bytes").key(&key).range(format!("bytes={s}-{e}")).send().await.unwrap();
            assert_eq!(&r.body.collect().await.unwrap().into_bytes()[..], &data[s..=e], "size {n} range {s}-{e}");
        }
        a.delete_object().bucket("bytes").key(&key).send().await.unwrap();
    }

    // A 104 MiB multipart upload: 13 parts of 8 MiB sent out of order, one re-uploaded.
    let part = 8 << 20;
    let parts: Vec<Vec<u8>> = (0..13).map(|i| bytes(part, 5000 + i)).collect();
    let up = a.create_multipart_upload().bucket("bytes").key("mp").send().await.unwrap();
    let id = up.upload_id().unwrap().to_owned();
    let mut order: Vec<usize> = (0..13).rev().collect();
    order.push(6);
    let mut etags = vec![String::new(); 13];
    for i in order {
        let client = if i % 2 == 0 { &a } else { &b };
        let r = client
            .upload_part()
            .bucket("bytes")
            .key("mp")
            .upload_id(&id)
            .part_number(i as i32 + 1)
            .body(ByteStream::from(parts[i].clone()))
            .send()
            .await
            .unwrap();
        etags[i] = r.e_tag().unwrap().to_owned();
    }
    let done = CompletedMultipartUpload::builder()
        .set_parts(Some(
            (0..13).map(|i| CompletedPart::builder().part_number(i as i32 + 1).e_tag(&etags[i]).build()).collect(),
        ))
        .build();
    a.complete_multipart_upload().bucket("bytes").key("mp").upload_id(&id).multipart_upload(done).send().await.unwrap();
    let whole = parts.concat();
    assert_eq!(get(&b, "bytes", "mp").await.unwrap(), whole);
    // Ranges across part boundaries.
    for (s, e) in [(part - 10, part + 10), (3 * part - 1, 5 * part), (0, 0), (whole.len() - 1, whole.len() - 1)] {
        let r = b.get_object().bucket("bytes").key("mp").range(format!("bytes={s}-{e}")).send().await.unwrap();
        assert_eq!(&r.body.collect().await.unwrap().into_bytes()[..], &whole[s..=e]);
    }
    cluster.shutdown().await;
}

/// A gateway keeps the bucket record its puts decide with (2 s): a quota
/// set through another gateway still holds at once (the put decided
/// without it is refused at commit, `SlowDown`, nothing stored), and one
/// lifted there no longer refuses anything (a put refused on a kept record
/// is decided again on a fresh one).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_quota_set_or_lifted_through_another_gateway_holds_at_once() {
    let owned = Cluster::start().await;
    let cluster = &owned;
    // Puts through gateway 1, without SDK retries; the admin API on gateway 0.
    let conf = cluster.client(1).config().to_builder().retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled());
    let a = aws_sdk_s3::Client::from_conf(conf.build());
    let who = ("ROOTKEY00000000000001", "root-secret-00000000000000000");
    support::add_key(cluster, who.0, who.1, true).await;
    let put =
        |k: &'static str| a.put_object().bucket("quota-test").key(k).body(ByteStream::from(bytes(100 << 10, 1))).send();
    a.create_bucket().bucket("quota-test").send().await.unwrap();
    put("k0").await.unwrap();
    let quota = |n: u64| async move {
        let body = format!("{{\"quota_bytes\": {n}}}");
        support::admin_call(cluster, "PUT", "buckets/quota-test/quota", body.as_bytes(), who).await
    };
    let (status, answer) = quota(150 << 10).await;
    assert_eq!(status, 200, "{answer}");
    let e = put("k1").await.unwrap_err();
    assert_eq!((support::code(&e).as_str(), support::status(&e)), ("SlowDown", 503), "{e:?}");
    let e = put("k1").await.unwrap_err();
    assert_eq!(support::code(&e), "QuotaExceeded", "{e:?}");
    assert!(get(&a, "quota-test", "k1").await.is_none(), "a refused body was stored");
    let (status, answer) = quota(0).await;
    assert_eq!(status, 200, "{answer}");
    put("k1").await.unwrap();
    assert_eq!(get(&a, "quota-test", "k1").await.unwrap(), bytes(100 << 10, 1));
    owned.shutdown().await;
}

/// A put refused on the record a gateway kept (ACLs disabled there) is
/// decided again on a fresh one: ACLs enabled through another gateway
/// apply to the very next put.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_put_refused_on_a_kept_record_is_decided_again() {
    use aws_sdk_s3::types::{ObjectCannedAcl, ObjectOwnership, OwnershipControls, OwnershipControlsRule};
    let cluster = Cluster::start().await;
    let (a, b) = (cluster.client(1), cluster.client(0));
    let ownership = |o: ObjectOwnership| {
        OwnershipControls::builder()
            .rules(OwnershipControlsRule::builder().object_ownership(o).build().unwrap())
            .build()
            .unwrap()
    };
    a.create_bucket().bucket("acl-test").send().await.unwrap();
    let enforced = ownership(ObjectOwnership::BucketOwnerEnforced);
    a.put_bucket_ownership_controls().bucket("acl-test").ownership_controls(enforced).send().await.unwrap();
    let put = |k: &'static str, acl: Option<ObjectCannedAcl>| {
        a.put_object().bucket("acl-test").key(k).set_acl(acl).body(ByteStream::from_static(b"x")).send()
    };
    put("k0", None).await.unwrap();
    let e = put("k1", Some(ObjectCannedAcl::PublicRead)).await.unwrap_err();
    assert_eq!(support::code(&e), "AccessControlListNotSupported");
    let writer = ownership(ObjectOwnership::BucketOwnerPreferred);
    b.put_bucket_ownership_controls().bucket("acl-test").ownership_controls(writer).send().await.unwrap();
    put("k2", Some(ObjectCannedAcl::PublicRead)).await.unwrap();
    let grants = a.get_object_acl().bucket("acl-test").key("k2").send().await.unwrap();
    assert!(grants.grants().len() >= 2, "the public grant was stored: {grants:?}");
    cluster.shutdown().await;
}

/// A gateway's own bucket changes reach its next put at once: object lock
/// enabled through it does not cost the next put a `SlowDown`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateways_own_object_lock_change_reaches_its_next_put() {
    use aws_sdk_s3::types::{
        BucketVersioningStatus, ObjectLockConfiguration, ObjectLockEnabled, VersioningConfiguration,
    };
    let cluster = Cluster::start().await;
    let conf = cluster.client(0).config().to_builder().retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled());
    let a = aws_sdk_s3::Client::from_conf(conf.build());
    a.create_bucket().bucket("lock-test").send().await.unwrap();
    let enabled = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    a.put_bucket_versioning().bucket("lock-test").versioning_configuration(enabled).send().await.unwrap();
    let put = |k: &'static str| a.put_object().bucket("lock-test").key(k).body(ByteStream::from_static(b"x")).send();
    put("k0").await.unwrap();
    let lock = ObjectLockConfiguration::builder().object_lock_enabled(ObjectLockEnabled::Enabled).build();
    a.put_object_lock_configuration().bucket("lock-test").object_lock_configuration(lock).send().await.unwrap();
    put("k1").await.unwrap();
    cluster.shutdown().await;
}
