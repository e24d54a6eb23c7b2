//! Garbage collection end to end on an in-process cluster (1 metadata node,
//! 6 datanodes, EC 4+2): after overwrites, deletes, a re-uploaded part, an
//! aborted upload and a write that stored its shards but never committed,
//! the disks come to hold exactly the shard files the records reference —
//! not before the grace period — and every object still reads back.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use support::{Cluster, code, get_all, referenced, shard_files};

const GRACE: Duration = Duration::from_secs(4);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unreferenced_shards_leave_the_disks_after_the_grace_period() {
    let cluster = Cluster::start_with(support::Options {
        gateways: 1,
        datanode: Box::new(|d| {
            d.gc_grace = GRACE;
            d.gc_interval = Duration::from_millis(300);
        }),
        ..Default::default()
    })
    .await;
    let c = cluster.client(0);
    c.create_bucket().bucket("gcb").send().await.unwrap();
    let size = 300 << 10; // sharded, not inline
    let mut live: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..24u64 {
        let data = support::bytes(size, i);
        c.put_object().bucket("gcb").key(format!("k{i}")).body(ByteStream::from(data.clone())).send().await.unwrap();
        live.push((format!("k{i}"), data));
    }
    let first = shard_files(&cluster);
    assert_eq!(first.len(), 24 * 6);

    // Overwrite 8, delete 8.
    for (i, entry) in live.iter_mut().enumerate().take(8) {
        let data = support::bytes(size, 1000 + i as u64);
        c.put_object().bucket("gcb").key(&entry.0).body(ByteStream::from(data.clone())).send().await.unwrap();
        entry.1 = data;
    }
    for (k, _) in live.drain(8..16) {
        c.delete_object().bucket("gcb").key(k).send().await.unwrap();
    }
    // A write that stores every shard and then fails its Content-MD5: never
    // committed, so its shards belong to nothing.
    let e = c
        .put_object()
        .bucket("gcb")
        .key("bad")
        .content_md5("1B2M2Y8AsgTpgAmY7PhCfg==")
        .body(ByteStream::from(support::bytes(size, 77)))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "BadDigest");

    // Multipart: part 1 uploaded twice (the first copy is garbage), then
    // completed; a second upload aborted; a third left in progress.
    let part = |n: u64| support::bytes(5 << 20, 500 + n);
    let up = c.create_multipart_upload().bucket("gcb").key("mp").send().await.unwrap().upload_id.unwrap();
    for (n, seed) in [(1, 1), (2, 2), (1, 3)] {
        c.upload_part()
            .bucket("gcb")
            .key("mp")
            .upload_id(&up)
            .part_number(n)
            .body(ByteStream::from(part(seed)))
            .send()
            .await
            .unwrap();
    }
    let parts = c.list_parts().bucket("gcb").key("mp").upload_id(&up).send().await.unwrap();
    let done: Vec<CompletedPart> = parts
        .parts()
        .iter()
        .map(|p| CompletedPart::builder().part_number(p.part_number().unwrap()).e_tag(p.e_tag().unwrap()).build())
        .collect();
    c.complete_multipart_upload()
        .bucket("gcb")
        .key("mp")
        .upload_id(&up)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(done)).build())
        .send()
        .await
        .unwrap();
    let mut mp = part(3);
    mp.extend_from_slice(&part(2));
    live.push(("mp".into(), mp));
    let aborted = c.create_multipart_upload().bucket("gcb").key("ab").send().await.unwrap().upload_id.unwrap();
    c.upload_part()
        .bucket("gcb")
        .key("ab")
        .upload_id(&aborted)
        .part_number(1)
        .body(ByteStream::from(part(9)))
        .send()
        .await
        .unwrap();
    c.abort_multipart_upload().bucket("gcb").key("ab").upload_id(&aborted).send().await.unwrap();
    let open = c.create_multipart_upload().bucket("gcb").key("open").send().await.unwrap().upload_id.unwrap();
    c.upload_part()
        .bucket("gcb")
        .key("open")
        .upload_id(&open)
        .part_number(1)
        .body(ByteStream::from(part(10)))
        .send()
        .await
        .unwrap();
    let changed = Instant::now();

    let keys: Vec<String> = live.iter().map(|(k, _)| k.clone()).collect();
    let want = referenced(&cluster, "gcb", &keys, Some(("open", &open))).await;
    let now = shard_files(&cluster);
    // Within the grace period, the shards of overwritten and deleted
    // objects are all still there.
    assert!(changed.elapsed() < GRACE / 2, "the test itself was too slow to check the grace period");
    assert!(first.is_subset(&now), "{} shard files removed before the grace period", first.difference(&now).count());
    let garbage = now.difference(&want).count();
    // 16 objects, part 1's first copy, the aborted part, the bad write.
    assert_eq!(garbage, (16 + 3) * 6, "unreferenced shard files before collection");

    // Then the disks come to hold exactly what the records reference.
    let start = Instant::now();
    loop {
        let now = shard_files(&cluster);
        if now == want {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "after 60 s: {} unreferenced files left, {} referenced files missing",
            now.difference(&want).count(),
            want.difference(&now).count()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("collected {garbage} shard files {:?} after the last change", changed.elapsed());
    assert!(changed.elapsed() >= GRACE, "collected before the grace period ended");
    for (k, data) in &live {
        assert_eq!(&get_all(&c, "gcb", k).await, data, "{k}");
    }
    // The upload in progress still completes with its stored part.
    let p = c.list_parts().bucket("gcb").key("open").upload_id(&open).send().await.unwrap();
    let etag = p.parts()[0].e_tag().unwrap().to_owned();
    c.complete_multipart_upload()
        .bucket("gcb")
        .key("open")
        .upload_id(&open)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(CompletedPart::builder().part_number(1).e_tag(etag).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(get_all(&c, "gcb", "open").await, part(10));

    cluster.shutdown().await;
}

/// The operator's pause: while the collectors are paused a deleted
/// object's shards stay on the disks past the grace period; started again,
/// they are removed (at once: starting wakes the collectors).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paused_collectors_remove_nothing_until_started() {
    const ROOT: (&str, &str) = ("ROOTKEY00000000000001", "root-secret-00000000000000000");
    let cluster = Cluster::start_with(support::Options {
        gateways: 1,
        datanode: Box::new(|d| {
            d.gc_grace = Duration::from_secs(1);
            d.gc_interval = Duration::from_millis(200);
        }),
        ..Default::default()
    })
    .await;
    let c = support::add_key(&cluster, ROOT.0, ROOT.1, true).await;
    c.create_bucket().bucket("gcp").send().await.unwrap();
    for k in ["keep", "drop"] {
        let data = support::bytes(300 << 10, 9);
        c.put_object().bucket("gcp").key(k).body(ByteStream::from(data)).send().await.unwrap();
    }
    let (status, v) = support::admin_call(&cluster, "PUT", "worker-rates", br#"{"gc_paused": true}"#, ROOT).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["gc_paused"], true, "{v}");
    // Every datanode hears of the pause with its next heartbeat.
    let start = Instant::now();
    loop {
        let (_, w) = support::admin_call(&cluster, "GET", "workers", b"", ROOT).await;
        let gc: Vec<&serde_json::Value> = w["workers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["name"].as_str().unwrap().starts_with("gc:"))
            .collect();
        if gc.len() == 6 && gc.iter().all(|x| x["progress"] == "paused by the operator") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "the collectors never said they were paused: {w}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.delete_object().bucket("gcp").key("drop").send().await.unwrap();
    let before = shard_files(&cluster);
    assert_eq!(before.len(), 12);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(shard_files(&cluster), before, "a paused collector removed files");

    let (status, v) = support::admin_call(&cluster, "PUT", "worker-rates", br#"{"gc_paused": false}"#, ROOT).await;
    assert_eq!(status, 200, "{v}");
    let start = Instant::now();
    while shard_files(&cluster).len() != 6 {
        assert!(start.elapsed() < Duration::from_secs(30), "the collectors never removed the deleted object's shards");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(get_all(&c, "gcp", "keep").await, support::bytes(300 << 10, 9));
    cluster.shutdown().await;
}
