//! A disk that fills, end to end on an in-process cluster (1 metadata node,
//! 6 datanodes, EC 4+2), one datanode's disk a 24 MiB tmpfs (a real
//! filesystem that really runs out of space; the test mounts it, so it
//! runs as root, as CI does):
//!
//! - PUTs keep succeeding while the disk fills: once its datanode reports
//!   it full, the map says so and writes go around it (no record names
//!   it), readiness says degraded, and the heal worker of that disk says
//!   in its status why it rebuilds nothing;
//! - once deletes free space (the collector removes the shards), the disk
//!   takes shards again: heal rebuilds the positions writes gave up there,
//!   the rebalancer moves the shards written around it back, and every
//!   object reads back exactly.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use support::{Cluster, get_all, raw_http, referenced, shard_files};
use tessera_common::DiskId;
use tessera_rpc::proto::meta::body;

/// The datanode whose disk is the small filesystem.
const VICTIM: usize = 5;
const RESERVE: u64 = 4 << 20;

/// Unmounts the small filesystem however the test ends.
struct Mounted(Arc<Mutex<Option<PathBuf>>>);

impl Mounted {
    fn unmount(&self) {
        if let Some(p) = self.0.lock().unwrap().take() {
            let ok = Command::new("umount").arg("-l").arg(&p).status().map(|s| s.success()).unwrap_or(false);
            assert!(ok || std::thread::panicking(), "umount {}", p.display());
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        self.unmount();
    }
}

fn mount_tmpfs(dir: &std::path::Path, size: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let out = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(dir).output();
    let out = out.expect("run mount");
    assert!(
        out.status.success(),
        "this test mounts a small tmpfs and needs root: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The disks the record of `key` names (any position, part 0 or parts).
async fn disks_of(cluster: &Cluster, key: &str) -> (Vec<u32>, Vec<u32>) {
    let rec = cluster.meta_client.get_object("fill", key).await.unwrap().object.unwrap();
    match rec.body.and_then(|b| b.kind) {
        Some(body::Kind::Shards(s)) => (s.disks, s.missing),
        other => panic!("{key}: not sharded: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_is_written_around_and_filled_again_once_space_is_freed() {
    let mounted = Mounted(Arc::new(Mutex::new(None)));
    let at = mounted.0.clone();
    let mut cluster = Cluster::start_with(support::Options {
        gateways: 1,
        datanode: Box::new(move |d| {
            d.disk_min_free = Some(RESERVE);
            d.heal_interval = Duration::from_millis(300);
            d.rebalance_interval = Duration::from_millis(300);
            d.gc_grace = Duration::from_secs(2);
            d.gc_interval = Duration::from_millis(500);
            if d.node_id == 100 + VICTIM as u64 {
                mount_tmpfs(&d.disks[0].1, "24m");
                *at.lock().unwrap() = Some(d.disks[0].1.clone());
            }
        }),
        ..Default::default()
    })
    .await;
    let victim_disk = DiskId(VICTIM as u32 + 1);
    let c = cluster.client(0);
    c.create_bucket().bucket("fill").send().await.unwrap();

    // Fill: every object has a 512 KiB shard on every datanode (6 shards,
    // 6 hosts), so the small disk is out of space after about 40 (the
    // writes after that give its position up, and still succeed). Its
    // datanode reports it at the next heartbeat, the leader's liveness
    // worker marks the map within a second or two.
    let mut objects: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..56u64 {
        let data = support::bytes(2 << 20, i);
        let key = format!("k{i}");
        c.put_object().bucket("fill").key(&key).body(ByteStream::from(data.clone())).send().await.unwrap();
        objects.push((key, data));
        if cluster.map().await.disk(victim_disk).unwrap().full {
            break;
        }
    }
    let started = Instant::now();
    while !cluster.map().await.disk(victim_disk).unwrap().full {
        assert!(started.elapsed() < Duration::from_secs(30), "the small disk never counted as full");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let full_after = objects.len();
    assert!(full_after >= 20, "full after only {full_after} objects");

    // Written around: full width, no position on the full disk.
    for i in 0..8u64 {
        let data = support::bytes(2 << 20, 1000 + i);
        let key = format!("after{i}");
        c.put_object().bucket("fill").key(&key).body(ByteStream::from(data.clone())).send().await.unwrap();
        let (disks, missing) = disks_of(&cluster, &key).await;
        assert!(!disks.contains(&victim_disk.get()), "{key} placed on the full disk: {disks:?}");
        assert!(missing.is_empty(), "{key} gave up positions: {missing:?}");
        objects.push((key, data));
    }
    for (k, data) in &objects {
        assert!(get_all(&c, "fill", k).await == *data, "{k} reads back");
    }

    // Readiness says why; the full disk's heal worker says why it waits.
    let (status, _, body) = raw_http(cluster.gateway_addrs[0], "GET", "/tessera/health/ready", &[], b"").await;
    let text = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status, 200, "{text}");
    assert!(text.contains(&format!("degraded ({victim_disk} full)")), "{text}");
    let heal = format!("heal:{victim_disk}");
    let started = Instant::now();
    loop {
        let workers = cluster.meta_client.worker_status().await.unwrap().workers;
        if workers.iter().any(|w| w.name == heal && w.last_error.contains("is full")) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{heal} never reported the full disk: {workers:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Free space: delete the older half; the collector removes their
    // shards, the disk takes shards again.
    let (gone, kept) = objects.split_at(full_after * 3 / 5);
    for (k, _) in gone {
        c.delete_object().bucket("fill").key(k).send().await.unwrap();
    }
    let started = Instant::now();
    while cluster.map().await.disk(victim_disk).unwrap().full {
        assert!(started.elapsed() < Duration::from_secs(60), "the disk still counts as full after the deletes");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Heal rebuilds what writes gave up on it, the rebalancer brings back
    // what was written around it: every kept object on 6 distinct disks,
    // the small one among them, nothing missing, every file in place.
    let keys: Vec<String> = kept.iter().map(|(k, _)| k.clone()).collect();
    let started = Instant::now();
    loop {
        let mut whole = true;
        for k in &keys {
            let (mut disks, missing) = disks_of(&cluster, k).await;
            disks.sort_unstable();
            disks.dedup();
            whole &= missing.is_empty() && disks.len() == 6 && disks.contains(&victim_disk.get());
        }
        if whole && shard_files(&cluster) == referenced(&cluster, "fill", &keys, None).await {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "kept objects not back to full width on their CRUSH disks after 90 s"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for (k, data) in kept {
        assert!(get_all(&c, "fill", k).await == *data, "{k} reads back after the refill");
    }

    cluster.stop_datanode(VICTIM).await;
    mounted.unmount();
    cluster.shutdown().await;
}
