//! Heal end to end on an in-process cluster (1 metadata node, 6 datanodes,
//! EC 4+2): a datanode whose disk is wiped comes back, its heal worker
//! rebuilds every shard the records place on it (simple objects of one and
//! many stripes, completed multipart objects, a part of an upload in
//! progress, SSE-S3 and SSE-C objects, whose shards it rebuilds without
//! any key, a noncurrent object version) from the other datanodes, and
//! then, with two *other* datanodes stopped, every object and version
//! still reads back exactly.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use support::{Cluster, get_all, referenced, shard_files};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wiped_disk_is_rebuilt_from_its_peers() {
    let keys = tempfile::tempdir().unwrap();
    let ring = keys.path().join("sse.keyring");
    tessera_gateway::sse::Keyring::create_file(&ring).unwrap();
    let ring = std::sync::Arc::new(tessera_gateway::sse::KeyringFile::open(&ring).unwrap());
    let mut cluster = Cluster::start_with(support::Options {
        gateways: 1,
        datanode: Box::new(|d| d.heal_interval = Duration::from_millis(300)),
        gateway: Box::new(move |g| g.sse_keyring = Some(ring.clone())),
        ..Default::default()
    })
    .await;
    let c = cluster.client(0);
    c.create_bucket().bucket("heal").send().await.unwrap();
    let mut objects: Vec<(String, Vec<u8>)> = Vec::new();
    // Encrypted objects: heal rebuilds their sealed shards without a key.
    let sealed = support::bytes((3 << 20) + 777, 77);
    c.put_object()
        .bucket("heal")
        .key("sse-s3")
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256)
        .body(ByteStream::from(sealed.clone()))
        .send()
        .await
        .unwrap();
    objects.push(("sse-s3".into(), sealed.clone()));
    // The SSE-C key: 32 bytes of 0x5a, and its MD5.
    let (ck, ck_md5) = ("WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlo=", "BuASUiSbvhMWBKAmsiYRhg==");
    c.put_object()
        .bucket("heal")
        .key("sse-c")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(ck)
        .sse_customer_key_md5(ck_md5)
        .body(ByteStream::from(sealed.clone()))
        .send()
        .await
        .unwrap();
    // TESSERA_HEAL_OBJECTS scales the data set to measure heal throughput.
    let count: u64 = std::env::var("TESSERA_HEAL_OBJECTS").ok().and_then(|v| v.parse().ok()).unwrap_or(12);
    for i in 0..count {
        // One partial stripe, and several stripes with a short last one.
        let len = if i % 2 == 0 { 300 << 10 } else { (3 << 20) + 12345 };
        let data = support::bytes(len, i);
        let key = format!("k{i}");
        c.put_object().bucket("heal").key(&key).body(ByteStream::from(data.clone())).send().await.unwrap();
        objects.push((key, data));
    }
    let part = |n: u64| support::bytes(5 << 20, 100 + n);
    let mp = support::multipart(&c, "heal", "mp", &[part(1), part(2)]).await;
    objects.push(("mp".into(), mp));
    // Its parts have placement groups of their own (spread over the disks).
    let rec = cluster.meta_client.get_object("heal", "mp").await.unwrap().object.unwrap();
    let pgs: Vec<u32> = rec
        .parts
        .iter()
        .filter_map(|p| match p.body.as_ref().and_then(|b| b.kind.as_ref()) {
            Some(tessera_rpc::proto::meta::body::Kind::Shards(s)) => Some(s.pg),
            _ => None,
        })
        .collect();
    assert!(pgs.len() == 2 && pgs[0] != pgs[1], "the parts' groups: {pgs:?}");
    let open = c.create_multipart_upload().bucket("heal").key("open").send().await.unwrap().upload_id.unwrap();
    let r = c
        .upload_part()
        .bucket("heal")
        .key("open")
        .upload_id(&open)
        .part_number(1)
        .body(ByteStream::from(part(9)))
        .send()
        .await
        .unwrap();
    let open_etag = r.e_tag().unwrap().to_owned();
    // Versions: k1 overwritten in a versioned bucket; its first (`null`)
    // version is noncurrent, and heal rebuilds its shards too.
    let cfg = aws_sdk_s3::types::VersioningConfiguration::builder()
        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
        .build();
    c.put_bucket_versioning().bucket("heal").versioning_configuration(cfg).send().await.unwrap();
    let k1 = objects.iter().position(|(k, _)| k == "k1").unwrap();
    let first_k1 = objects[k1].1.clone();
    let newer = support::bytes(300 << 10, 4242);
    c.put_object().bucket("heal").key("k1").body(ByteStream::from(newer.clone())).send().await.unwrap();
    objects[k1].1 = newer;
    let noncurrent = cluster.meta_client.get_object_version("heal", "k1", "null").await.unwrap().object.unwrap();

    let mut keys: Vec<String> = objects.iter().map(|(k, _)| k.clone()).collect();
    keys.push("sse-c".into());
    let mut want = referenced(&cluster, "heal", &keys, Some(("open", &open))).await;
    support::files_of(0, noncurrent.body.as_ref(), &mut want);
    assert_eq!(shard_files(&cluster), want, "every shard stored before the wipe");

    // Wipe datanode 2's disk (its identity stays) while it is stopped.
    let victim = 2;
    cluster.stop_datanode(victim).await;
    let shards = cluster.disk_dir(victim).join("shards");
    let lost = want.iter().filter(|(n, _)| *n == victim).count();
    assert!(lost > 10, "datanode {victim} held only {lost} shards");
    std::fs::remove_dir_all(&shards).unwrap();
    for f in ["heal.state", "scrub.state", "gc.state"] {
        let _ = std::fs::remove_file(cluster.disk_dir(victim).join(f));
    }
    cluster.restart_datanode(victim).await;
    let started = Instant::now();
    loop {
        let now = shard_files(&cluster);
        if now == want {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "after 90 s: {} of {lost} shards rebuilt; unexpected files: {:?}",
            now.iter().filter(|(n, _)| *n == victim).count(),
            now.difference(&want).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = started.elapsed();
    let bytes: u64 = support::walk(&shards).iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
    println!(
        "rebuilt {lost} shards, {:.1} MiB, in {took:?}: {:.1} MiB/s (the first pass starts within the heal interval, 300 ms)",
        bytes as f64 / (1 << 20) as f64,
        bytes as f64 / (1 << 20) as f64 / took.as_secs_f64()
    );

    // Two other datanodes down: every object is read from the rebuilt disk
    // and the three others — which only works if the rebuilt shards are right.
    let others: Vec<usize> = (0..6).filter(|n| *n != victim).take(2).collect();
    for n in &others {
        cluster.stop_datanode(*n).await;
    }
    for (key, data) in &objects {
        assert_eq!(&get_all(&c, "heal", key).await, data, "{key}");
    }
    let r = c.get_object().bucket("heal").key("sse-c").sse_customer_algorithm("AES256");
    let r = r.sse_customer_key(ck).sse_customer_key_md5(ck_md5).send().await.unwrap();
    assert_eq!(r.body.collect().await.unwrap().into_bytes().to_vec(), sealed, "sse-c");
    let r = c.get_object().bucket("heal").key("k1").version_id("null").send().await.unwrap();
    assert_eq!(r.body.collect().await.unwrap().into_bytes().to_vec(), first_k1, "k1's noncurrent version");
    for n in &others {
        cluster.restart_datanode(*n).await;
    }
    c.complete_multipart_upload()
        .bucket("heal")
        .key("open")
        .upload_id(&open)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(CompletedPart::builder().part_number(1).e_tag(open_etag).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(get_all(&c, "heal", "open").await, part(9));
    cluster.shutdown().await;
}

/// A write that gave up on a hung datanode records that shard position
/// missing; the heal worker of that datanode rebuilds it (or, when the
/// stalled bytes did arrive after all, verifies the file) and clears the
/// record's missing list, so the object has all k + m shards again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shard_missing_since_its_write_is_restored() {
    let mut cluster = Cluster::start_with(support::Options {
        gateways: 1,
        proxied: true,
        gateway: Box::new(|g| {
            g.hedge_timeout = Duration::from_millis(300);
            g.shard_write_timeout = Duration::from_secs(2);
        }),
        datanode: Box::new(|d| d.heal_interval = Duration::from_millis(300)),
        ..Default::default()
    })
    .await;
    let c = cluster.client(0);
    c.create_bucket().bucket("heal").send().await.unwrap();
    c.put_object()
        .bucket("heal")
        .key("warm")
        .body(ByteStream::from(support::bytes(300 << 10, 1)))
        .send()
        .await
        .unwrap();
    let hung = 0;
    cluster.datanodes[hung].proxy.as_ref().unwrap().pause(true);
    let data = support::bytes(3 << 20, 2);
    c.put_object().bucket("heal").key("b").body(ByteStream::from(data.clone())).send().await.unwrap();
    let set = |rec: tessera_rpc::proto::meta::ObjectRecord| match rec.body.unwrap().kind {
        Some(tessera_rpc::proto::meta::body::Kind::Shards(s)) => s,
        _ => panic!("not sharded"),
    };
    let written = set(cluster.meta_client.get_object("heal", "b").await.unwrap().object.unwrap());
    assert_eq!(written.missing.len(), 1, "{written:?}");
    assert_eq!(written.disks[written.missing[0] as usize], hung as u32 + 1);
    cluster.datanodes[hung].proxy.as_ref().unwrap().pause(false);

    let started = Instant::now();
    loop {
        let now = set(cluster.meta_client.get_object("heal", "b").await.unwrap().object.unwrap());
        if now.missing.is_empty() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the missing shard was never restored: {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let want = referenced(&cluster, "heal", &["warm".into(), "b".into()], None).await;
    assert_eq!(shard_files(&cluster), want, "the rebuilt shard file is on the hung datanode's disk");
    // Read with two other datanodes down: the restored shard is needed.
    for n in [1, 2] {
        cluster.stop_datanode(n).await;
    }
    assert_eq!(get_all(&c, "heal", "b").await, data);
    cluster.shutdown().await;
}

/// Shards damaged on disk — a flipped bit, a truncated file, a deleted
/// file — are found (by the scrubber, or as missing), rebuilt by heal, and
/// come back byte for byte; GETs stay correct meanwhile and no damage report
/// is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn damaged_shards_are_found_and_rebuilt() {
    let cluster = Cluster::start_with(support::Options {
        gateways: 1,
        datanode: Box::new(|d| {
            d.heal_interval = Duration::from_millis(300);
            d.scrub_interval = Duration::from_millis(300);
        }),
        ..Default::default()
    })
    .await;
    let c = cluster.client(0);
    c.create_bucket().bucket("heal").send().await.unwrap();
    let mut objects = Vec::new();
    for i in 0..8u64 {
        let data = support::bytes(if i % 2 == 0 { 400 << 10 } else { (2 << 20) + 777 }, 50 + i);
        c.put_object().bucket("heal").key(format!("k{i}")).body(ByteStream::from(data.clone())).send().await.unwrap();
        objects.push((format!("k{i}"), data));
    }
    let mut files: Vec<std::path::PathBuf> =
        (0..6).flat_map(|n| support::walk(&cluster.disk_dir(n).join("shards"))).collect();
    files.sort();
    let before: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
    // Six damaged files, at most one per object (each object keeps k + 1).
    let mut hit = std::collections::BTreeSet::new();
    let mut damaged = Vec::new();
    for (i, p) in files.iter().enumerate() {
        let id = p.file_name().unwrap().to_string_lossy().split('.').next().unwrap().to_owned();
        if damaged.len() < 6 && hit.insert(id) {
            damaged.push(i);
        }
    }
    for (n, &i) in damaged.iter().enumerate() {
        let p = &files[i];
        match n % 3 {
            0 => {
                let mut b = before[i].clone();
                let at = b.len() - 100;
                b[at] ^= 0x10;
                std::fs::write(p, b).unwrap();
            }
            1 => std::fs::write(p, &before[i][..before[i].len() / 2]).unwrap(),
            _ => std::fs::remove_file(p).unwrap(),
        }
    }
    for (key, data) in &objects {
        assert_eq!(&get_all(&c, "heal", key).await, data, "{key} while damaged");
    }
    let started = Instant::now();
    loop {
        let whole = files.iter().zip(&before).all(|(p, b)| std::fs::read(p).ok().as_ref() == Some(b));
        let reports = cluster.meta_client.list_damage(100).await.unwrap().reports;
        if whole && reports.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "after 60 s: {} files differ, damage reports: {reports:?}",
            files.iter().zip(&before).filter(|(p, b)| std::fs::read(p).ok().as_ref() != Some(*b)).count()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("6 damaged shards rebuilt byte for byte in {:?}", started.elapsed());
    for (key, data) in &objects {
        assert_eq!(&get_all(&c, "heal", key).await, data, "{key}");
    }
    cluster.shutdown().await;
}

/// A heal source that returns bad bytes is caught by its block hashes and
/// another shard is read instead: with every shard of one datanode
/// silently corrupted (no scrub has seen it), a wiped disk is still rebuilt
/// right — proven by reading every object from the rebuilt disk and the
/// three others left when the corrupt datanode and one more are stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_heal_source_with_bad_bytes_is_passed_over() {
    let mut cluster = Cluster::start_with(support::Options {
        gateways: 1,
        datanode: Box::new(|d| d.heal_interval = Duration::from_millis(300)),
        ..Default::default()
    })
    .await;
    let c = cluster.client(0);
    c.create_bucket().bucket("src").send().await.unwrap();
    let mut objects = Vec::new();
    for i in 0..6u64 {
        let data = support::bytes((2 << 20) + 333, 70 + i);
        let key = format!("o{i}");
        c.put_object().bucket("src").key(&key).body(ByteStream::from(data.clone())).send().await.unwrap();
        objects.push((key, data));
    }
    let keys: Vec<String> = objects.iter().map(|(k, _)| k.clone()).collect();
    let want = referenced(&cluster, "src", &keys, None).await;
    // Datanode 0: one bit flipped in the first block of every shard it holds.
    let (bad, victim) = (0, 2);
    let files = support::walk(&cluster.disk_dir(bad).join("shards"));
    assert!(!files.is_empty());
    for f in &files {
        let mut b = std::fs::read(f).unwrap();
        // After the 64-byte header and the 32-byte hash of the first frame.
        b[64 + 32 + 100] ^= 0x04;
        std::fs::write(f, b).unwrap();
    }
    cluster.stop_datanode(victim).await;
    std::fs::remove_dir_all(cluster.disk_dir(victim).join("shards")).unwrap();
    let _ = std::fs::remove_file(cluster.disk_dir(victim).join("heal.state"));
    cluster.restart_datanode(victim).await;
    let started = Instant::now();
    while shard_files(&cluster) != want {
        assert!(started.elapsed() < Duration::from_secs(60), "the wiped disk was not rebuilt");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The corrupt datanode and another down: four shards left, one of them rebuilt.
    cluster.stop_datanode(bad).await;
    cluster.stop_datanode(4).await;
    for (key, data) in &objects {
        assert_eq!(&get_all(&c, "src", key).await, data, "{key}");
    }
    cluster.restart_datanode(bad).await;
    cluster.restart_datanode(4).await;
    cluster.shutdown().await;
}

/// The operator changes the workers' rates while they run (a Raft command;
/// each datanode applies it at its next heartbeat), and 0 gives each
/// datanode its own setting back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn worker_rates_change_live() {
    use tessera_rpc::proto::meta::{Command, SetWorkerRates, command::Op};
    // Workers report their rate after each step: passes 300 ms apart.
    let cluster = Cluster::start_with(support::Options {
        gateways: 0,
        datanode: Box::new(|d| d.heal_interval = Duration::from_millis(300)),
        ..Default::default()
    })
    .await;
    let heal_rates = || async {
        let workers = cluster.meta_client.worker_status().await.unwrap().workers;
        let rates: Vec<String> = workers
            .iter()
            .filter(|w| w.name.starts_with("heal"))
            .map(|w| w.progress.rsplit("at most ").next().unwrap_or("").to_owned())
            .collect();
        rates
    };
    let wait_for = |want: &'static str| async move {
        let started = Instant::now();
        loop {
            let rates = heal_rates().await;
            if rates.len() == 6 && rates.iter().all(|r| r == want) {
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "heal rates {rates:?}, want {want}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    // The test datanodes' own heal rate: 256 MiB/s.
    wait_for("262144 KiB/s").await;
    let set = |heal: u64| Command {
        now_ms: 0,
        op: Some(Op::SetWorkerRates(SetWorkerRates { heal_bytes_per_sec: heal, ..Default::default() })),
    };
    cluster.meta_client.write(set(3 << 20)).await.unwrap();
    wait_for("3072 KiB/s").await;
    cluster.meta_client.write(set(0)).await.unwrap();
    wait_for("262144 KiB/s").await;
    cluster.shutdown().await;
}
