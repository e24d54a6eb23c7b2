//! The scrubber finds every injected corruption and resumes after a restart.
//! Replay with `TESSERA_SEED=<seed>`.

// A test that meets an error should fail loudly.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use tessera_common::worker::{WorkerConfig, WorkerHandle, spawn_worker};
use tessera_common::{DataId, DiskId};
use tessera_datanode::{DamageSink, FsDisk, PassProgress, SCRUB_STATE, ScrubWorker, ShardHeader, ShardKey};
use tessera_ec::{CodecId, PieceId, StripeCoder, StripeLayout, new_codec};
use tokio::sync::watch;

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<ShardKey>>>);

impl DamageSink for Collect {
    async fn report(&self, _disk: u32, key: ShardKey, _reason: String) -> Result<(), String> {
        self.0.lock().unwrap().push(key);
        Ok(())
    }
}

/// Stores `n` pieces of 2+1 with random sizes; returns every shard key.
fn fill(disk: &FsDisk, n: usize, rng: &mut StdRng) -> Vec<ShardKey> {
    let c = StripeCoder::new(new_codec(CodecId::DEFAULT, 2, 1).unwrap(), StripeLayout::new(2, 1, 64 * 1024).unwrap())
        .unwrap();
    let l = *c.layout();
    let mut keys = Vec::new();
    for _ in 0..n {
        let id = DataId::new();
        let len = rng.random_range(1..300_000u64);
        let mut data = vec![0u8; len as usize];
        rng.fill_bytes(&mut data);
        let mut ws: Vec<_> = (0..3u16)
            .map(|s| {
                let key = ShardKey { data_id: id, part: 0, shard: s };
                keys.push(key);
                disk.create(ShardHeader { key, codec: 1, k: 2, m: 1, block_len: l.block_len() as u32, piece_len: len })
                    .unwrap()
            })
            .collect();
        for s in 0..l.stripe_count(len) {
            let start = l.stripe_offset(s) as usize;
            let stripe = Bytes::copy_from_slice(&data[start..start + l.stripe_len(len, s)]);
            let enc = c.encode_stripe(PieceId { data_id: *id.as_bytes(), part: 0 }, s, stripe).unwrap();
            for (w, b) in ws.iter_mut().zip(&enc.blocks) {
                w.write_frame(&b.hash, &b.data).unwrap();
            }
        }
        for w in ws {
            w.finish().unwrap();
        }
    }
    keys
}

fn seeded() -> StdRng {
    let seed = std::env::var("TESSERA_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(rand::random::<u64>);
    println!("seed = {seed} (replay with TESSERA_SEED={seed})");
    StdRng::seed_from_u64(seed)
}

async fn wait_pass(disk: &FsDisk, passes: u64) {
    let start = Instant::now();
    while PassProgress::load(disk, SCRUB_STATE).passes < passes {
        assert!(start.elapsed() < Duration::from_secs(60), "scrub pass did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn checked(h: &WorkerHandle) -> u64 {
    let p = h.status().progress.unwrap_or_default();
    p.split(", ").nth(1).and_then(|s| s.split(' ').next()).and_then(|n| n.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_injected_corruption_is_reported() {
    let mut rng = seeded();
    let dir = tempfile::tempdir().unwrap();
    let disk = FsDisk::open(DiskId(3), dir.path()).unwrap();
    let keys = fill(&disk, 40, &mut rng);
    let mut damaged = BTreeSet::new();
    while damaged.len() < 12 {
        let key = keys[rng.random_range(0..keys.len())];
        if !damaged.insert(key) {
            continue;
        }
        let path = disk.shard_path(&key);
        let mut b = std::fs::read(&path).unwrap();
        match damaged.len() % 4 {
            0 => {
                let at = rng.random_range(64..b.len());
                b[at] ^= 1 << rng.random_range(0..8);
            }
            1 => b.truncate(rng.random_range(0..b.len())),
            2 => {
                let at = rng.random_range(0..b.len());
                let end = (at + 64).min(b.len());
                if b[at..end].iter().all(|&x| x == 0) {
                    b[at] = 1;
                } else {
                    b[at..end].fill(0);
                }
            }
            _ => b[rng.random_range(0..64)] ^= 0x80,
        }
        std::fs::write(&path, &b).unwrap();
    }
    let sink = Collect::default();
    let (stop, rx) = watch::channel(false);
    let registry = tessera_common::MetricsRegistry::new();
    let metrics = tessera_datanode::DatanodeMetrics::register(&registry);
    let h = spawn_worker(
        ScrubWorker::new(disk.clone(), sink.clone(), 1 << 30).with_metrics(metrics),
        WorkerConfig { idle_interval: Duration::from_secs(3600), ..WorkerConfig::default() },
        rx,
    );
    wait_pass(&disk, 1).await;
    stop.send(true).unwrap();
    h.join().await.unwrap();
    let reported: BTreeSet<ShardKey> = sink.0.lock().unwrap().iter().copied().collect();
    assert_eq!(reported, damaged, "the scrubber reports exactly the damaged shards");
    // The same counts reach the metrics.
    let text = registry.render();
    let value = |name: &str| -> u64 {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} missing:\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let disk_label = format!("{{disk=\"{}\"}}", disk.id().get());
    assert_eq!(value(&format!("tessera_datanode_scrub_damaged_shards_total{disk_label}")), damaged.len() as u64);
    assert_eq!(value(&format!("tessera_datanode_scrub_passes_total{disk_label}")), 1);
    assert!(value(&format!("tessera_datanode_scrub_shards_total{disk_label}")) >= damaged.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_scrubber_resumes_where_it_stopped() {
    let mut rng = seeded();
    let dir = tempfile::tempdir().unwrap();
    let disk = FsDisk::open(DiskId(4), dir.path()).unwrap();
    let keys = fill(&disk, 40, &mut rng); // 120 shards, 8 steps of 16
    let bytes: u64 = keys.iter().map(|k| disk.stat(k).unwrap().len).sum();
    // Slow enough that a pass takes ~2 s.
    let rate = bytes / 2;
    let (stop, rx) = watch::channel(false);
    let h = spawn_worker(ScrubWorker::new(disk.clone(), Collect::default(), rate), WorkerConfig::default(), rx);
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.send(true).unwrap();
    // The step in flight finishes (and saves) before the worker stops.
    while h.status().state != tessera_common::worker::WorkerState::Stopped {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let first = checked(&h);
    h.join().await.unwrap();
    let saved = PassProgress::load(&disk, SCRUB_STATE);
    assert_eq!(saved.passes, 0);
    assert!(!saved.cursor.is_empty(), "progress was saved mid-pass");
    assert!(first > 0 && (first as usize) < keys.len(), "stopped mid-pass after {first}");

    let (stop, rx) = watch::channel(false);
    let h = spawn_worker(
        ScrubWorker::new(disk.clone(), Collect::default(), 1 << 30),
        WorkerConfig { idle_interval: Duration::from_secs(3600), ..WorkerConfig::default() },
        rx,
    );
    wait_pass(&disk, 1).await;
    stop.send(true).unwrap();
    // The status counts a step once it returns, which is after it saved
    // its progress: read it once the worker stopped.
    while h.status().state != tessera_common::worker::WorkerState::Stopped {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = checked(&h);
    h.join().await.unwrap();
    assert_eq!(first + second, keys.len() as u64, "the restarted pass checked only what was left");
}

/// A shard the disk cannot read (here a directory where the file should be,
/// so every read fails with an I/O error, as a bad sector's `EIO` would) is
/// reported as damaged and the pass goes on to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_shard_is_reported_and_the_pass_moves_on() {
    let mut rng = seeded();
    let dir = tempfile::tempdir().unwrap();
    let disk = FsDisk::open(DiskId(5), dir.path()).unwrap();
    let keys = fill(&disk, 20, &mut rng);
    let bad = keys[rng.random_range(0..keys.len())];
    let path = disk.shard_path(&bad);
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    let sink = Collect::default();
    let (stop, rx) = watch::channel(false);
    let h = spawn_worker(
        ScrubWorker::new(disk.clone(), sink.clone(), 1 << 30),
        WorkerConfig { idle_interval: Duration::from_secs(3600), ..WorkerConfig::default() },
        rx,
    );
    wait_pass(&disk, 1).await;
    stop.send(true).unwrap();
    while h.status().state != tessera_common::worker::WorkerState::Stopped {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let checked_all = checked(&h);
    assert_eq!(h.status().errors, 0, "a step failed: {:?}", h.status().last_error);
    h.join().await.unwrap();
    assert_eq!(*sink.0.lock().unwrap(), vec![bad], "the unreadable shard, and only it, is reported");
    assert_eq!(checked_all, keys.len() as u64);
}
