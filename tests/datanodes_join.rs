//! Datanodes join a real metadata node: they register their disks (the
//! cluster map gains hosts and disks), heartbeat to stay up, and a stopped
//! datanode's disks are marked down; a shard damaged on a datanode's disk is
//! found by its scrubber and reported to the metadata service. Real gRPC on loopback, real RocksDB,
//! real disk directories.

// A test that meets an error should fail loudly.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use tessera_common::DiskId;
use tessera_datanode::DatanodeConfig;
use tessera_metadata::MetaConfig;
use tessera_placement::{ClusterMap, PlacementRule, Placer};
use tessera_rpc::proto::data::{PutShardRequest, ShardFrame, ShardGeometry, ShardRef};
use tessera_rpc::{MetaClient, MetaClientConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

async fn map_of(c: &MetaClient) -> Option<ClusterMap> {
    let r = c.get_cluster_map().await.ok()?;
    (!r.map.is_empty()).then(|| ClusterMap::from_bytes(&r.map).unwrap())
}

async fn wait_for(c: &MetaClient, what: &str, pred: impl Fn(&ClusterMap) -> bool) -> ClusterMap {
    let start = Instant::now();
    loop {
        if let Some(m) = map_of(c).await
            && pred(&m)
        {
            return m;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datanodes_register_heartbeat_and_go_down_when_stopped() {
    let root = tempfile::tempdir().unwrap();
    let meta_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let meta_addr = format!("http://{}", meta_listener.local_addr().unwrap());
    let mut mc = MetaConfig::new(1, meta_listener.local_addr().unwrap(), root.path().join("meta"));
    mc.bootstrap = true;
    mc.heartbeat = Duration::from_millis(50);
    mc.election_timeout = (Duration::from_millis(300), Duration::from_millis(600));
    mc.disk_down_after = Duration::from_millis(800);
    mc.disk_out_after = Duration::from_secs(60);
    mc.liveness_interval = Duration::from_millis(100);
    let (meta_stop, meta_rx) = watch::channel(false);
    let meta_task = tokio::spawn(tessera_metadata::serve(mc, meta_listener, meta_rx));

    let mut datanodes = Vec::new();
    for n in 1..=3u64 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let cfg = DatanodeConfig {
            node_id: 100 + n,
            listen: listener.local_addr().unwrap(),
            advertise: None,
            disks: (0..2).map(|d| (DiskId((n * 10 + d) as u32), root.path().join(format!("dn{n}/d{d}")))).collect(),
            zone: format!("zone-{n}"),
            rack: "r1".into(),
            host: format!("host-{n}"),
            meta_endpoints: vec![meta_addr.clone()],
            heartbeat_interval: Duration::from_millis(100),
            scrub_rate_bytes_per_sec: 100 << 20,
            scrub_interval: Duration::from_millis(200),
            gc_grace: Duration::from_secs(3600),
            gc_interval: Duration::from_secs(3600),
            format: Vec::new(),
            heal_rate_bytes_per_sec: 64 << 20,
            heal_interval: Duration::from_secs(3600),
            rebalance_rate_bytes_per_sec: 64 << 20,
            rebalance_interval: Duration::from_secs(3600),
            disk_min_free: None,
            metrics: Default::default(),
        };
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(tessera_datanode::serve(cfg, listener, rx));
        datanodes.push((stop, task));
    }

    let c = MetaClient::new(MetaClientConfig::new(vec![meta_addr]));
    let map = wait_for(&c, "three datanodes", |m| m.hosts().count() == 3).await;
    assert_eq!(map.disks().count(), 6);
    assert_eq!(map.zones.len(), 3);
    let reply = c.get_cluster_map().await.unwrap();
    assert_eq!(reply.datanodes.len(), 3);
    assert!(reply.datanodes.iter().all(|d| d.addr.starts_with("http://127.0.0.1:")));
    // 2+1 over three hosts in three zones places without falling back.
    let p = Placer::new(&map, PlacementRule { shards: 3, failure_domain: tessera_placement::Level::Host }).unwrap();
    assert!(!p.fell_back());

    // Heartbeats keep every disk up well past the down timeout.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let map = map_of(&c).await.unwrap();
    assert!(map.disks().all(|(_, _, _, d)| d.state.up), "heartbeating disks stay up");
    let usage = c.get_cluster_map().await.unwrap().usage;
    assert_eq!(usage.len(), 6, "the leader shows each disk's reported usage");
    assert!(usage.iter().all(|u| u.healthy && u.capacity_bytes > 0));

    // A shard written to datanode 1 and then damaged on disk is found by its
    // scrubber and reported to the metadata service.
    let dn1 = reply.datanodes.iter().find(|d| d.node_id == 101).unwrap().addr.clone();
    let mut data = tessera_rpc::proto::data::data_client::DataClient::connect(dn1).await.unwrap();
    let id = tessera_common::DataId::new();
    let block = vec![7u8; 4096];
    let addr = tessera_ec::BlockAddress { data_id: *id.as_bytes(), part: 0, shard: 0, stripe: 0 };
    let frame =
        ShardFrame { hash: bytes::Bytes::copy_from_slice(&tessera_ec::block_hash(&addr, &block)), block: block.into() };
    let shard = ShardRef { disk: 10, data_id: bytes::Bytes::copy_from_slice(id.as_bytes()), part: 0, shard: 0 };
    let geometry = ShardGeometry { codec: 1, k: 1, m: 0, block_len: 4096, piece_len: 4096 };
    let msgs = vec![
        PutShardRequest { shard: Some(shard), geometry: Some(geometry), frame: None },
        PutShardRequest { shard: None, geometry: None, frame: Some(frame) },
    ];
    data.put_shard(tokio_stream::iter(msgs)).await.unwrap();
    let path = root.path().join("dn1/d0/shards");
    let file = walk(&path).into_iter().find(|p| p.to_string_lossy().contains(&id.to_string())).unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&file, bytes).unwrap();
    let start = Instant::now();
    loop {
        let reports = c.list_damage(100).await.unwrap().reports;
        if reports.iter().any(|r| r.data_id.as_slice() == id.as_bytes() && r.disk == 10) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "the damaged shard was never reported");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Stop datanode 2: its disks go down, the others stay up.
    let (stop, task) = datanodes.remove(1);
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
    let map = wait_for(&c, "datanode 2's disks down", |m| {
        [20u32, 21].iter().all(|&d| m.disk(DiskId(d)).is_some_and(|d| !d.state.up))
    })
    .await;
    assert!(map.disks().filter(|(_, _, h, _)| h.node.get() != 102).all(|(_, _, _, d)| d.state.up));

    for (stop, task) in datanodes {
        stop.send(true).unwrap();
        task.await.unwrap().unwrap();
    }
    meta_stop.send(true).unwrap();
    meta_task.await.unwrap().unwrap();
}
