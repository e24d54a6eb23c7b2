//! A disk is known by its id and its incarnation (made when its folder is
//! formatted). A folder that is not empty and not a Tessera disk is refused;
//! an empty folder where a known disk should be (not mounted, wiped, from
//! elsewhere) is refused until the operator accepts it as a new disk, and
//! then heal fills it.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use support::{Cluster, get_all, referenced, shard_files};
use tessera_common::DiskId;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Runs datanode `n` with `config` until it gives up; its error.
async fn refused(config: tessera_datanode::DatanodeConfig) -> String {
    let listener = TcpListener::bind(config.listen).await.unwrap();
    let (_stop, rx) = watch::channel(false);
    let r = tokio::time::timeout(Duration::from_secs(30), tessera_datanode::serve(config, listener, rx)).await;
    r.expect("the datanode kept running").expect_err("the datanode was accepted").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_disk_formatted_anew_is_refused_until_accepted() {
    let mut cluster = Cluster::start_with(support::Options {
        gateways: 1,
        datanode: Box::new(|d| d.heal_interval = Duration::from_millis(300)),
        ..Default::default()
    })
    .await;
    let c = cluster.client(0);
    c.create_bucket().bucket("disks").send().await.unwrap();
    let mut objects = Vec::new();
    for i in 0..6u64 {
        let data = support::bytes(300 << 10, i);
        c.put_object().bucket("disks").key(format!("k{i}")).body(ByteStream::from(data.clone())).send().await.unwrap();
        objects.push((format!("k{i}"), data));
    }
    let n = 3;
    let disk = DiskId(n as u32 + 1);
    cluster.stop_datanode(n).await;
    let dir = cluster.disk_dir(n);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::create_dir(&dir).unwrap();

    // Something else lives in the folder: not a Tessera disk.
    std::fs::write(dir.join("notes.txt"), b"not a disk").unwrap();
    let e = refused(cluster.datanodes[n].config.clone()).await;
    assert!(e.contains("not a Tessera disk"), "{e}");
    std::fs::remove_file(dir.join("notes.txt")).unwrap();

    // Empty, as an unmounted disk's mount point is: formatted anew, so the
    // cluster does not recognise it.
    let e = refused(cluster.datanodes[n].config.clone()).await;
    assert!(e.contains(&format!("--format {}", disk.get())), "{e}");

    // The operator replaced the disk: accepted as new, then healed.
    cluster.datanodes[n].config.format = vec![disk];
    cluster.restart_datanode(n).await;
    let keys: Vec<String> = objects.iter().map(|(k, _)| k.clone()).collect();
    let want = referenced(&cluster, "disks", &keys, None).await;
    let started = Instant::now();
    while shard_files(&cluster) != want {
        assert!(started.elapsed() < Duration::from_secs(60), "the new disk was never healed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // From then on it is the disk the cluster knows: it restarts without --format.
    cluster.stop_datanode(n).await;
    cluster.datanodes[n].config.format.clear();
    let listener = TcpListener::bind(cluster.datanodes[n].config.listen).await.unwrap();
    let (stop, rx) = watch::channel(false);
    let node = tokio::spawn(tessera_datanode::serve(cluster.datanodes[n].config.clone(), listener, rx));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!node.is_finished(), "the healed disk was refused: {:?}", node.await);
    stop.send(true).unwrap();
    node.await.unwrap().unwrap();
    cluster.restart_datanode(n).await;
    for (key, data) in &objects {
        assert_eq!(&get_all(&c, "disks", key).await, data, "{key}");
    }
    cluster.shutdown().await;
}

/// A disk carries its cluster's id (DISK_ID's third line, written when it
/// first joins). Offered to another cluster — even under an id that
/// cluster has never seen — it is refused, so a disk moved between
/// clusters never mixes their shards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_disk_from_another_cluster_is_refused() {
    let mut a = Cluster::start_with(support::Options { gateways: 0, ..Default::default() }).await;
    let b = Cluster::start_with(support::Options { datanodes: 3, gateways: 0, ..Default::default() }).await;
    let a_id = a.meta_client.get_cluster_map().await.unwrap().cluster_id;
    let b_id = b.meta_client.get_cluster_map().await.unwrap().cluster_id;
    assert!(!a_id.is_empty() && !b_id.is_empty() && a_id != b_id, "{a_id} {b_id}");
    // Every disk recorded its cluster.
    for n in 0..6 {
        let text = std::fs::read_to_string(a.disk_dir(n).join("DISK_ID")).unwrap();
        assert_eq!(text.lines().nth(2), Some(a_id.as_str()), "disk {n}: {text}");
    }
    // Disk 4 of cluster A, offered to cluster B (which has disks 1 to 3 only).
    let n = 3;
    a.stop_datanode(n).await;
    let mut config = a.datanodes[n].config.clone();
    config.meta_endpoints = vec![b.meta_addr.clone()];
    config.listen = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let e = refused(config.clone()).await;
    assert!(e.contains("belongs to another Tessera cluster"), "{e}");
    // --format does not make it B's either.
    config.format = vec![DiskId(n as u32 + 1)];
    let e = refused(config).await;
    assert!(e.contains("belongs to another Tessera cluster"), "{e}");
    assert_eq!(b.map().await.disks().count(), 3, "cluster B took the foreign disk into its map");
    // Back in its own cluster it is welcome.
    a.restart_datanode(n).await;
    b.shutdown().await;
    a.shutdown().await;
}
