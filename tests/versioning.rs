//! Versioning through aws-sdk-s3 on an in-process cluster (EC 4+2, fast
//! garbage collection): the semantics table (PUT twice, GET each version,
//! DELETE makes a marker, GET by id still works, DELETE by id removes one
//! version, suspended writes replace `null`), ListObjectVersions paging,
//! copies of a version, multipart and multi-delete, bad ids, and the
//! disks: noncurrent versions keep their shards, deleted versions lose
//! theirs, and an emptied bucket can be deleted.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, Delete, MfaDeleteStatus, ObjectIdentifier, VersioningConfiguration};
use support::{Cluster, code, files_of, shard_files, status};

const B: &str = "vers";

async fn get_version(c: &aws_sdk_s3::Client, key: &str, v: Option<&str>) -> (Vec<u8>, Option<String>) {
    let r = c.get_object().bucket(B).key(key).set_version_id(v.map(str::to_owned)).send().await.unwrap();
    let id = r.version_id().map(str::to_owned);
    (r.body.collect().await.unwrap().into_bytes().to_vec(), id)
}

async fn put(c: &aws_sdk_s3::Client, key: &str, data: &[u8]) -> Option<String> {
    let r = c.put_object().bucket(B).key(key).body(ByteStream::from(data.to_vec())).send().await.unwrap();
    r.version_id().map(str::to_owned)
}

async fn set_versioning(c: &aws_sdk_s3::Client, s: BucketVersioningStatus) {
    let cfg = VersioningConfiguration::builder().status(s).build();
    c.put_bucket_versioning().bucket(B).versioning_configuration(cfg).send().await.unwrap();
}

/// Every version of the bucket as (key, version id, is marker, is latest),
/// paged `max` at a time.
async fn all_versions(c: &aws_sdk_s3::Client, max: i32) -> Vec<(String, String, bool, bool)> {
    let mut out = Vec::new();
    let (mut km, mut vm): (Option<String>, Option<String>) = (None, None);
    loop {
        let r = c
            .list_object_versions()
            .bucket(B)
            .max_keys(max)
            .set_key_marker(km.clone())
            .set_version_id_marker(vm.clone())
            .send()
            .await
            .unwrap();
        let mut page: Vec<(String, String, bool, bool)> = r
            .versions()
            .iter()
            .map(|v| (v.key().unwrap().to_owned(), v.version_id().unwrap().to_owned(), false, v.is_latest().unwrap()))
            .chain(r.delete_markers().iter().map(|m| {
                (m.key().unwrap().to_owned(), m.version_id().unwrap().to_owned(), true, m.is_latest().unwrap())
            }))
            .collect();
        assert!(page.len() <= max as usize);
        // s3s answers versions and markers as two lists: put back S3's
        // order (keys in order, the latest first, then ids, which grow with
        // time; a noncurrent `null` is the oldest in these tests).
        page.sort_by(|a, b| a.0.cmp(&b.0).then(b.3.cmp(&a.3)).then(rank(&b.1).cmp(&rank(&a.1))));
        out.extend(page);
        if r.is_truncated() != Some(true) {
            return out;
        }
        km = r.next_key_marker().map(str::to_owned);
        vm = r.next_version_id_marker().map(str::to_owned);
    }
}

fn rank(id: &str) -> String {
    if id == "null" { String::new() } else { id.to_owned() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn versions_markers_and_their_shards() {
    let cluster = Cluster::start_with(support::Options {
        gateways: 1,
        datanode: Box::new(|d| {
            d.gc_grace = Duration::from_secs(1);
            d.gc_interval = Duration::from_millis(300);
        }),
        ..Default::default()
    })
    .await;
    let c = cluster.client(0);
    c.create_bucket().bucket(B).send().await.unwrap();
    let v = c.get_bucket_versioning().bucket(B).send().await.unwrap();
    assert_eq!(v.status(), None, "never enabled: no Status");

    // Before versioning: the `null` version, no version id shown.
    let size = 300 << 10; // sharded
    let d0 = support::bytes(size, 0);
    assert_eq!(put(&c, "k", &d0).await, None);
    set_versioning(&c, BucketVersioningStatus::Enabled).await;
    let v = c.get_bucket_versioning().bucket(B).send().await.unwrap();
    assert_eq!(v.status(), Some(&BucketVersioningStatus::Enabled));
    assert_eq!(v.mfa_delete(), Some(&MfaDeleteStatus::Disabled));

    // PUT twice: two new versions; GET each.
    let d1 = support::bytes(size, 1);
    let d2 = b"second, inline".to_vec();
    let v1 = put(&c, "k", &d1).await.unwrap();
    let v2 = put(&c, "k", &d2).await.unwrap();
    assert_ne!(v1, v2);
    assert_eq!(get_version(&c, "k", None).await, (d2.clone(), Some(v2.clone())));
    assert_eq!(get_version(&c, "k", Some(&v1)).await, (d1.clone(), Some(v1.clone())));
    assert_eq!(get_version(&c, "k", Some("null")).await.0, d0);
    let h = c.head_object().bucket(B).key("k").version_id(&v1).send().await.unwrap();
    assert_eq!((h.content_length(), h.version_id()), (Some(size as i64), Some(v1.as_str())));

    // DELETE makes a marker; GET says 404 (405 by the marker's id); GET by id still works.
    let del = c.delete_object().bucket(B).key("k").send().await.unwrap();
    assert_eq!(del.delete_marker(), Some(true));
    let marker = del.version_id().unwrap().to_owned();
    let e = c.get_object().bucket(B).key("k").send().await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (404, "NoSuchKey"));
    let raw = e.raw_response().unwrap();
    assert_eq!(raw.headers().get("x-amz-delete-marker"), Some("true"));
    assert_eq!(raw.headers().get("x-amz-version-id"), Some(marker.as_str()));
    let e = c.head_object().bucket(B).key("k").version_id(&marker).send().await.unwrap_err();
    assert_eq!(status(&e), 405);
    assert_eq!(get_version(&c, "k", Some(&v2)).await.0, d2);
    let listed = c.list_objects_v2().bucket(B).send().await.unwrap();
    assert_eq!(listed.key_count(), Some(0), "a key whose current version is a marker is not listed");

    // Other keys, for paging: "a" with three versions, "z" with one.
    let mut a_ids = Vec::new();
    for i in 0..3u64 {
        a_ids.push(put(&c, "a", &support::bytes(100, 10 + i)).await.unwrap());
    }
    let z = put(&c, "z", b"zz").await.unwrap();
    let all = all_versions(&c, 1000).await;
    let want = vec![
        ("a".to_owned(), a_ids[2].clone(), false, true),
        ("a".to_owned(), a_ids[1].clone(), false, false),
        ("a".to_owned(), a_ids[0].clone(), false, false),
        ("k".to_owned(), marker.clone(), true, true),
        ("k".to_owned(), v2.clone(), false, false),
        ("k".to_owned(), v1.clone(), false, false),
        ("k".to_owned(), "null".to_owned(), false, false),
        ("z".to_owned(), z.clone(), false, true),
    ];
    assert_eq!(all, want);
    for max in [1, 2, 3] {
        assert_eq!(all_versions(&c, max).await, want, "paged by {max}");
    }

    // Copy an older version onto its key: it is restored as a new version.
    let copied = c.copy_object().bucket(B).key("k").copy_source(format!("{B}/k?versionId={v1}")).send().await.unwrap();
    assert_eq!(copied.copy_source_version_id(), Some(v1.as_str()));
    let restored = copied.version_id().unwrap().to_owned();
    assert_eq!(get_version(&c, "k", None).await, (d1.clone(), Some(restored.clone())));

    // DELETE by id removes exactly that version.
    let del = c.delete_object().bucket(B).key("k").version_id(&v2).send().await.unwrap();
    assert_eq!((del.version_id(), del.delete_marker()), (Some(v2.as_str()), None));
    let e = c.get_object().bucket(B).key("k").version_id(&v2).send().await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (404, "NoSuchVersion"));
    assert_eq!(get_version(&c, "k", Some(&v1)).await.0, d1);

    // Malformed ids are refused; a well-formed id nobody has is NoSuchVersion.
    let e = c.get_object().bucket(B).key("k").version_id("not-a-version").send().await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidArgument"));
    let e = c.get_object().bucket(B).key("k").version_id("00000000000000ff").send().await.unwrap_err();
    assert_eq!(code(&e), "NoSuchVersion");

    // Suspended: writes replace the `null` version wherever it is; the
    // versions with ids stay.
    set_versioning(&c, BucketVersioningStatus::Suspended).await;
    let d3 = support::bytes(size, 3);
    assert_eq!(put(&c, "k", &d3).await.as_deref(), Some("null"));
    assert_eq!(get_version(&c, "k", Some("null")).await.0, d3);
    let d4 = support::bytes(size, 4);
    put(&c, "k", &d4).await;
    let k_versions: Vec<String> =
        all_versions(&c, 1000).await.into_iter().filter(|v| v.0 == "k").map(|v| v.1).collect();
    assert_eq!(k_versions, vec!["null".to_owned(), restored.clone(), marker.clone(), v1.clone()]);
    assert_eq!(get_version(&c, "k", None).await.0, d4);

    // Conditional writes compare with the current version; a marker is no object.
    set_versioning(&c, BucketVersioningStatus::Enabled).await;
    let only_new = |data: &'static [u8]| {
        c.put_object().bucket(B).key("cond").if_none_match("*").body(ByteStream::from_static(data)).send()
    };
    only_new(b"first").await.unwrap();
    let e = only_new(b"again").await.unwrap_err();
    assert_eq!(status(&e), 412, "If-None-Match: * over a live version");
    c.delete_object().bucket(B).key("cond").send().await.unwrap();
    only_new(b"after the marker").await.unwrap();
    assert_eq!(get_version(&c, "cond", None).await.0, b"after the marker");
    let e = c.delete_object().bucket(B).key("cond").if_match("\"0123\"").send().await.unwrap_err();
    assert_eq!(status(&e), 412);

    // Multipart in a versioned bucket gets a version id.
    let mp = c.create_multipart_upload().bucket(B).key("mp").send().await.unwrap();
    let up = mp.upload_id().unwrap();
    let part = c
        .upload_part()
        .bucket(B)
        .key("mp")
        .upload_id(up)
        .part_number(1)
        .body(ByteStream::from(support::bytes(size, 5)))
        .send()
        .await
        .unwrap();
    let done = aws_sdk_s3::types::CompletedMultipartUpload::builder()
        .parts(aws_sdk_s3::types::CompletedPart::builder().part_number(1).e_tag(part.e_tag().unwrap()).build())
        .build();
    let r = c.complete_multipart_upload().bucket(B).key("mp").upload_id(up).multipart_upload(done).send().await;
    let mp_id = r.unwrap().version_id().unwrap().to_owned();
    assert_eq!(get_version(&c, "mp", Some(&mp_id)).await.0, support::bytes(size, 5));

    // The disks hold the shards of every live version (noncurrent ones
    // included) and, once collected, of nothing else.
    let start = Instant::now();
    let want = loop {
        let want = referenced_versions(&cluster).await;
        if shard_files(&cluster) == want {
            break want;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "shards never matched the versions");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Sharded and live: k's null (d4), its restored copy and v1 (both
    // noncurrent or current), and mp; d0, d3 (replaced nulls) and v2
    // (deleted) are gone.
    assert_eq!(want.len(), 4 * 6, "the live versions' shards are kept, the deleted ones' collected");

    // Multi-delete by version id; then every version and marker, and the
    // bucket can go.
    let all = all_versions(&c, 1000).await;
    let ids: Vec<ObjectIdentifier> =
        all.iter().map(|(k, v, _, _)| ObjectIdentifier::builder().key(k).version_id(v).build().unwrap()).collect();
    let e = c.delete_bucket().bucket(B).send().await.unwrap_err();
    assert_eq!(code(&e), "BucketNotEmpty");
    let r = c
        .delete_objects()
        .bucket(B)
        .delete(Delete::builder().set_objects(Some(ids)).build().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.deleted().len(), all.len());
    assert!(r.errors().is_empty(), "{:?}", r.errors());
    let marker_result = r.deleted().iter().find(|d| d.version_id() == Some(marker.as_str())).unwrap();
    assert_eq!(marker_result.delete_marker(), Some(true));
    assert!(all_versions(&c, 1000).await.is_empty());
    let start = Instant::now();
    while !shard_files(&cluster).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(60), "deleted versions' shards were never collected");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.delete_bucket().bucket(B).send().await.unwrap();
    cluster.shutdown().await;
}

/// The shard files every version in the bucket references.
async fn referenced_versions(cluster: &Cluster) -> BTreeSet<(usize, String)> {
    let mut out = BTreeSet::new();
    let r = cluster
        .meta_client
        .list_versions(tessera_rpc::proto::meta::ListVersionsRequest {
            bucket: B.into(),
            max_keys: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    for v in r.versions {
        let id = v.record.unwrap().version_id;
        let id = if id.is_empty() { "null".to_owned() } else { id };
        let rec = cluster.meta_client.get_object_version(B, &v.key, &id).await.unwrap().object.unwrap();
        files_of(0, rec.body.as_ref(), &mut out);
        for p in &rec.parts {
            files_of(p.number, p.body.as_ref(), &mut out);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn versioning_requests_that_are_refused() {
    let cluster = Cluster::start_with(support::Options { gateways: 1, ..Default::default() }).await;
    let c = cluster.client(0);
    c.create_bucket().bucket(B).send().await.unwrap();
    // MFA delete is not supported: refused, not ignored.
    let cfg = VersioningConfiguration::builder()
        .status(BucketVersioningStatus::Enabled)
        .mfa_delete(aws_sdk_s3::types::MfaDelete::Enabled)
        .build();
    let e = c.put_bucket_versioning().bucket(B).versioning_configuration(cfg).send().await.unwrap_err();
    assert_eq!(code(&e), "NotImplemented");
    assert_eq!(c.get_bucket_versioning().bucket(B).send().await.unwrap().status(), None);
    // A version-id marker needs a key marker.
    let e = c.list_object_versions().bucket(B).version_id_marker("null").send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidArgument");
    // In a bucket never versioned, `null` names the object; other ids are none of its.
    c.put_object().bucket(B).key("k").body(ByteStream::from_static(b"x")).send().await.unwrap();
    let r = c.get_object().bucket(B).key("k").version_id("null").send().await.unwrap();
    assert_eq!(r.version_id(), None);
    let e = c.get_object().bucket(B).key("k").version_id("0000000000010000").send().await.unwrap_err();
    assert_eq!(code(&e), "NoSuchVersion");
    let v = c.list_object_versions().bucket(B).send().await.unwrap();
    assert_eq!(v.versions().len(), 1);
    assert_eq!(v.versions()[0].version_id(), Some("null"));
    cluster.shutdown().await;
}
