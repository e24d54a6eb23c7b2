//! Rebalance and drain end to end on an in-process cluster (1 metadata
//! node, datanodes with one disk each, each its own host; EC 4+2):
//!
//! - a datanode added to a loaded cluster receives the shards CRUSH now
//!   places on it, and only those move (against the minimum the maps give);
//! - a datanode marked out is emptied while reads and writes go on, cannot
//!   be removed before, and is removed after; the data keeps k + m shards;
//! - a datanode silent past `disk_out_after` goes out, its shards are
//!   rebuilt on the others; when it comes back its stale copies are
//!   collected and it takes its share again.
//!
//! Each ends with the records matching CRUSH's answer under the final map,
//! every shard file on the disks referenced by a record (nothing left
//! behind), and every object reading back exactly.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use support::{Cluster, get_all, referenced, shard_files};
use tessera_common::{DiskId, NodeId, PgId};
use tessera_placement::{ClusterMap, Level, PlacementRule, Placer};
use tessera_rpc::proto::meta::command_result::Outcome;
use tessera_rpc::proto::meta::{Body, Command, MarkOut, RemoveDisks, ShardSet, body, command::Op};

const BUCKET: &str = "moves";

fn fast(d: &mut tessera_datanode::DatanodeConfig) {
    d.rebalance_interval = Duration::from_millis(300);
}

/// Writes `count` objects (one stripe and several stripes) and a two-part
/// multipart object; returns them with their bytes.
async fn load(c: &aws_sdk_s3::Client, count: u64) -> Vec<(String, Vec<u8>)> {
    c.create_bucket().bucket(BUCKET).send().await.unwrap();
    let mut objects = Vec::new();
    for i in 0..count {
        let len = if i % 3 == 0 { (2 << 20) + 777 } else { 200 << 10 };
        let data = support::bytes(len, i);
        let key = format!("obj{i:03}");
        c.put_object().bucket(BUCKET).key(&key).body(ByteStream::from(data.clone())).send().await.unwrap();
        objects.push((key, data));
    }
    let parts = [support::bytes(5 << 20, 501), support::bytes(5 << 20, 502)];
    let mp = support::multipart(c, BUCKET, "mp", &parts).await;
    objects.push(("mp".into(), mp));
    objects
}

/// With datanodes `a` and `b` stopped, every object reads back exactly
/// (each has k + m shards on the others); then they start again.
async fn read_with_two_down(cluster: &mut Cluster, a: usize, b: usize, objects: &[(String, Vec<u8>)]) {
    cluster.stop_datanode(a).await;
    cluster.stop_datanode(b).await;
    let c = cluster.client(0);
    for (key, data) in objects {
        assert_eq!(&get_all(&c, BUCKET, key).await, data, "{key}");
    }
    cluster.restart_datanode(a).await;
    cluster.restart_datanode(b).await;
}

/// Every shard set the records of `keys` point at, by (key, part).
async fn sets(cluster: &Cluster, keys: &[String]) -> Vec<((String, u32), ShardSet)> {
    let mut out = Vec::new();
    let shards = |b: &Option<Body>| match b.as_ref().and_then(|b| b.kind.clone()) {
        Some(body::Kind::Shards(s)) => Some(s),
        _ => None,
    };
    for k in keys {
        let rec = cluster.meta_client.get_object(BUCKET, k).await.unwrap().object.unwrap();
        if let Some(s) = shards(&rec.body) {
            out.push(((k.clone(), 0), s));
        }
        for p in &rec.parts {
            if let Some(s) = shards(&p.body) {
                out.push(((k.clone(), p.number), s));
            }
        }
    }
    out
}

/// The sets whose disks are not CRUSH's answer under `map` (compared as sets).
fn misplaced(map: &ClusterMap, sets: &[((String, u32), ShardSet)]) -> usize {
    let placer = Placer::new(map, PlacementRule { shards: 6, failure_domain: Level::Host }).unwrap();
    sets.iter()
        .filter(|(_, s)| {
            let want: BTreeSet<u32> = placer.place(PgId(s.pg)).unwrap().disks.iter().map(|d| d.get()).collect();
            let have: BTreeSet<u32> = s.disks.iter().copied().collect();
            want != have || have.len() != s.disks.len()
        })
        .count()
}

/// Positions whose disk differs between two snapshots of the same sets.
fn positions_moved(before: &[((String, u32), ShardSet)], after: &[((String, u32), ShardSet)]) -> usize {
    before
        .iter()
        .zip(after)
        .map(|((ka, a), (kb, b))| {
            assert_eq!(ka, kb);
            assert_eq!(a.data_id, b.data_id, "{ka:?} was rewritten");
            a.disks.iter().zip(&b.disks).filter(|(x, y)| x != y).count()
        })
        .sum()
}

/// The fewest positions that must move to reach CRUSH's answer under `map`:
/// per set, the wanted disks it does not use yet.
fn minimum_moves(map: &ClusterMap, sets: &[((String, u32), ShardSet)]) -> usize {
    let placer = Placer::new(map, PlacementRule { shards: 6, failure_domain: Level::Host }).unwrap();
    sets.iter()
        .map(|(_, s)| {
            let want = placer.place(PgId(s.pg)).unwrap().disks;
            want.iter().filter(|d| !s.disks.contains(&d.get())).count()
        })
        .sum()
}

/// Waits until every record matches CRUSH under the current map and every
/// shard file on the disks is one a record references.
async fn wait_settled(cluster: &Cluster, keys: &[String], what: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let map = cluster.map().await;
        let now = sets(cluster, keys).await;
        let off = misplaced(&map, &now);
        let want = referenced(cluster, BUCKET, keys, None).await;
        let files = shard_files(cluster);
        if off == 0 && files == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "{what}: after {limit:?}, {off} sets misplaced; files not referenced: {:?}; referenced but missing: {:?}",
            files.difference(&want).take(5).collect::<Vec<_>>(),
            want.difference(&files).take(5).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn write(cluster: &Cluster, op: Op) -> Outcome {
    cluster.meta_client.write(Command { now_ms: 0, op: Some(op) }).await.unwrap().outcome.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_datanode_takes_its_share_and_only_that_moves() {
    let mut cluster =
        Cluster::start_with(support::Options { gateways: 1, datanode: Box::new(fast), ..Default::default() }).await;
    let c = cluster.client(0);
    let objects = load(&c, 30).await;
    let keys: Vec<String> = objects.iter().map(|(k, _)| k.clone()).collect();
    wait_settled(&cluster, &keys, "before", Duration::from_secs(10)).await;
    let before = sets(&cluster, &keys).await;

    let added = cluster.add_datanode(&fast).await;
    let map = cluster.map().await;
    let minimum = minimum_moves(&map, &before);
    assert!(minimum > 0, "the new datanode is wanted by no PG of the test's objects");
    let took = wait_settled(&cluster, &keys, "after adding a datanode", Duration::from_secs(60)).await;
    let after = sets(&cluster, &keys).await;
    let moved = positions_moved(&before, &after);
    let shards = before.len() * 6;
    println!(
        "added datanode {added}: {moved} of {shards} shard positions moved (minimum {minimum}; capacity share \
         {:.1}), settled in {took:?}",
        shards as f64 / 7.0
    );
    assert!(moved as f64 <= 1.1 * minimum as f64, "{moved} moves for a minimum of {minimum}");
    let on_new = shard_files(&cluster).iter().filter(|(n, _)| *n == added).count();
    assert_eq!(on_new, moved, "every move went to the new datanode");
    for (key, data) in &objects {
        assert_eq!(&get_all(&c, BUCKET, key).await, data, "{key}");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drained_datanode_empties_under_load_and_only_then_is_removed() {
    let mut cluster = Cluster::start_with(support::Options {
        datanodes: 7,
        gateways: 1,
        datanode: Box::new(fast),
        ..Default::default()
    })
    .await;
    let c = cluster.client(0);
    let mut objects = load(&c, 30).await;
    let drained = 3usize;
    let node = 100 + drained as u64;
    let disk = drained as u32 + 1;
    assert!(shard_files(&cluster).iter().any(|(n, _)| *n == drained), "the datanode holds nothing to drain");

    // Not before it is empty.
    match write(&cluster, Op::RemoveDisks(RemoveDisks { disk: 0, node })).await {
        Outcome::Failure(f) => assert!(f.message.contains("still holds shards"), "{}", f.message),
        other => panic!("removal of a datanode holding shards was accepted: {other:?}"),
    }
    assert!(matches!(write(&cluster, Op::MarkOut(MarkOut { disk: 0, node, out: true })).await, Outcome::Done(_)));
    let state = cluster.map().await.disk(DiskId(disk)).unwrap().state;
    assert!(state.up && !state.is_in, "{state:?}");

    // Reads and writes go on while it drains.
    let started = Instant::now();
    let mut i = 0;
    loop {
        let key = format!("during{i:03}");
        let data = support::bytes(150 << 10, 9000 + i);
        c.put_object().bucket(BUCKET).key(&key).body(ByteStream::from(data.clone())).send().await.unwrap();
        let (k, d) = &objects[i as usize % objects.len()];
        assert_eq!(&get_all(&c, BUCKET, k).await, d, "{k} during the drain");
        objects.push((key, data));
        i += 1;
        let left = cluster.meta_client.list_disk_shards(disk, Vec::new(), 1).await.unwrap();
        if left.is_empty() && i >= 5 {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let workers = cluster.meta_client.worker_status().await.unwrap().workers;
            let w: Vec<_> = workers.iter().filter(|w| w.name.starts_with("rebalance")).collect();
            panic!("the drain did not finish in 60 s; {left:?}; rebalancers: {w:#?}");
        }
    }
    println!("drained datanode {drained} in {:?} while {i} objects were written", started.elapsed());
    let keys: Vec<String> = objects.iter().map(|(k, _)| k.clone()).collect();
    wait_settled(&cluster, &keys, "after the drain", Duration::from_secs(30)).await;
    assert_eq!(shard_files(&cluster).iter().filter(|(n, _)| *n == drained).count(), 0, "files left on it");

    assert!(matches!(write(&cluster, Op::RemoveDisks(RemoveDisks { disk: 0, node })).await, Outcome::Done(_)));
    let map = cluster.map().await;
    assert!(map.disk(DiskId(disk)).is_none() && !map.hosts().any(|h| h.node == NodeId(node)));
    cluster.stop_datanode(drained).await;
    // Every object still has k + m shards elsewhere.
    read_with_two_down(&mut cluster, 0, 1, &objects).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_datanode_goes_out_is_rebuilt_elsewhere_and_comes_back_clean() {
    let mut cluster = Cluster::start_with(support::Options {
        datanodes: 7,
        gateways: 1,
        datanode: Box::new(|d| {
            fast(d);
            d.gc_grace = Duration::from_millis(500);
            d.gc_interval = Duration::from_millis(300);
        }),
        meta: Box::new(|m| {
            m.disk_down_after = Duration::from_secs(1);
            m.disk_out_after = Duration::from_secs(3);
        }),
        ..Default::default()
    })
    .await;
    let c = cluster.client(0);
    let objects = load(&c, 24).await;
    let keys: Vec<String> = objects.iter().map(|(k, _)| k.clone()).collect();
    let dead = 5usize;
    let disk = DiskId(dead as u32 + 1);
    let held = shard_files(&cluster).iter().filter(|(n, _)| *n == dead).count();
    assert!(held > 0);
    cluster.stop_datanode(dead).await;
    let started = Instant::now();
    loop {
        let s = cluster.map().await.disk(disk).unwrap().state;
        if !s.up && !s.is_in {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the silent disk did not go out: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Its shards are rebuilt on the others: no record names it any more.
    loop {
        let left = cluster.meta_client.list_disk_shards(disk.get(), Vec::new(), 1).await.unwrap();
        if left.is_empty() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the dead disk's shards were not rebuilt elsewhere");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("{held} shards of a dead datanode rebuilt elsewhere {:?} after it stopped", started.elapsed());
    let all = sets(&cluster, &keys).await;
    assert!(all.iter().all(|(_, s)| !s.disks.contains(&disk.get()) && s.missing.is_empty()));
    // Two more down: everything reads back from the rebuilt shards.
    read_with_two_down(&mut cluster, 0, 1, &objects).await;

    // It comes back: in again; its stale copies are collected and CRUSH's
    // share moves back to it.
    cluster.restart_datanode(dead).await;
    wait_settled(&cluster, &keys, "after the dead datanode came back", Duration::from_secs(60)).await;
    for (key, data) in &objects {
        assert_eq!(&get_all(&c, BUCKET, key).await, data, "{key}");
    }
    cluster.shutdown().await;
}
