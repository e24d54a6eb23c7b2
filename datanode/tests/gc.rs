//! The garbage collector against a reference check the test controls:
//! it removes only files unreferenced for the whole grace period, never a
//! referenced one, nothing when the metadata service cannot answer, keeps
//! a file written again since, and resumes its grace clocks after a restart.

// A test that meets an error should fail loudly.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tessera_common::worker::Worker;
use tessera_common::{DataId, DiskId};
use tessera_datanode::{FsDisk, GcState, GcWorker, ReferenceCheck, ShardHeader, ShardKey};
use tessera_ec::{PieceId, StripeCoder, StripeLayout, new_codec};

/// The data ids the "metadata service" references; `down` fails every call.
#[derive(Clone, Default)]
struct Refs {
    live: Arc<Mutex<HashSet<DataId>>>,
    down: Arc<AtomicBool>,
}

impl ReferenceCheck for Refs {
    async fn referenced(&self, disk: u32, data_ids: Vec<DataId>) -> Result<Vec<bool>, String> {
        assert_eq!(disk, 7);
        if self.down.load(Ordering::SeqCst) {
            return Err("metadata unavailable".into());
        }
        let live = self.live.lock().unwrap();
        Ok(data_ids.iter().map(|d| live.contains(d)).collect())
    }
}

/// Stores a 2+1 piece of `len` bytes: three shard files of one data id.
fn store(disk: &FsDisk, len: u64) -> DataId {
    let layout = StripeLayout::new(2, 1, 64 * 1024).unwrap();
    let c = StripeCoder::new(new_codec(tessera_ec::CodecId::DEFAULT, 2, 1).unwrap(), layout).unwrap();
    let id = DataId::new();
    let data = vec![7u8; len as usize];
    let mut ws: Vec<_> = (0..3u16)
        .map(|s| {
            let key = ShardKey { data_id: id, part: 0, shard: s };
            let h = ShardHeader { key, codec: 1, k: 2, m: 1, block_len: layout.block_len() as u32, piece_len: len };
            disk.create(h).unwrap()
        })
        .collect();
    for s in 0..layout.stripe_count(len) {
        let start = layout.stripe_offset(s) as usize;
        let stripe = bytes::Bytes::copy_from_slice(&data[start..start + layout.stripe_len(len, s)]);
        let enc = c.encode_stripe(PieceId { data_id: *id.as_bytes(), part: 0 }, s, stripe).unwrap();
        for (w, b) in ws.iter_mut().zip(&enc.blocks) {
            w.write_frame(&b.hash, &b.data).unwrap();
        }
    }
    for w in ws {
        w.finish().unwrap();
    }
    id
}

fn ids_on(disk: &FsDisk) -> HashSet<DataId> {
    disk.list(None, 100_000).unwrap().keys.iter().map(|k| k.data_id).collect()
}

/// Steps until a pass completes.
async fn pass<C: ReferenceCheck>(w: &mut GcWorker<C>) {
    let start = w.state().passes;
    while w.state().passes == start {
        w.step().await.unwrap();
    }
}

#[tokio::test]
async fn collects_only_what_stays_unreferenced_for_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let disk = FsDisk::open(DiskId(7), dir.path()).unwrap();
    let refs = Refs::default();
    let live = store(&disk, 200_000);
    let dead = store(&disk, 150_000);
    let revived = store(&disk, 10);
    refs.live.lock().unwrap().extend([live]);
    let grace = Duration::from_millis(600);
    let mut gc = GcWorker::new(disk.clone(), refs.clone(), grace);

    // First pass: the unreferenced ones become pending; nothing is removed.
    pass(&mut gc).await;
    assert_eq!(ids_on(&disk), HashSet::from([live, dead, revived]));
    assert_eq!(gc.state().pending.len(), 6, "three shards each of two unreferenced ids");

    // One of them is referenced again before the grace period ends (a
    // write whose commit came late): it must survive.
    refs.live.lock().unwrap().insert(revived);
    // The metadata service goes away: a step fails and removes nothing.
    tokio::time::sleep(grace).await;
    refs.down.store(true, Ordering::SeqCst);
    assert!(gc.step().await.is_err());
    assert_eq!(ids_on(&disk), HashSet::from([live, dead, revived]));
    refs.down.store(false, Ordering::SeqCst);

    // Past the grace period: only the file unreferenced all along goes.
    pass(&mut gc).await;
    assert_eq!(ids_on(&disk), HashSet::from([live, revived]));
    assert!(gc.state().pending.is_empty());
    assert_eq!(gc.deleted, 3);
    let p = gc.progress().unwrap();
    assert!(p.contains("3 removed"), "{p}");

    // Everything unreferenced, then a restart: the grace clocks resume
    // from the saved state instead of starting over...
    refs.live.lock().unwrap().clear();
    pass(&mut gc).await;
    assert_eq!(gc.state().pending.len(), 6);
    let saved = GcState::load(&disk);
    assert_eq!(saved.pending, gc.state().pending, "the pending list survives a restart");
    drop(gc);
    tokio::time::sleep(grace).await;
    // ...but a file written again since it was first seen (the same shard
    // stored anew) is not removed until it has been left alone for the
    // grace period too.
    let rewritten = store(&disk, 5);
    let mut gc = GcWorker::new(disk.clone(), refs.clone(), grace);
    let key = ShardKey { data_id: live, part: 0, shard: 1 };
    let path = disk.shard_path(&key);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, &bytes).unwrap(); // a fresh mtime
    pass(&mut gc).await;
    let left: Vec<ShardKey> = disk.list(None, 100).unwrap().keys;
    assert_eq!(
        left.iter().map(|k| (k.data_id, k.shard)).collect::<HashSet<_>>(),
        HashSet::from([(live, 1), (rewritten, 0), (rewritten, 1), (rewritten, 2)]),
        "removed at once after the restart: the old unreferenced files, not the rewritten one nor the new ones"
    );
    tokio::time::sleep(grace).await;
    pass(&mut gc).await;
    assert!(ids_on(&disk).is_empty(), "{:?}", ids_on(&disk));
    assert!(GcState::load(&disk).pending.is_empty());
}

/// The operator's pace: a collector limited to 5 files a second takes at
/// least two seconds over 12 shard files, one second's worth a step, and
/// says so; unlimited again,
/// it takes no such time; paused, it takes no step.
#[tokio::test]
async fn a_paced_collector_examines_at_most_its_rate_of_files() {
    let dir = tempfile::tempdir().unwrap();
    let disk = FsDisk::open(DiskId(7), dir.path()).unwrap();
    let refs = Refs::default();
    for _ in 0..4 {
        store(&disk, 1000); // 4 data ids × 3 shard files
    }
    let rate = tessera_datanode::Rate::new(5);
    let mut gc = GcWorker::new(disk.clone(), refs.clone(), Duration::from_secs(3600)).with_pause(rate.clone());
    let started = std::time::Instant::now();
    let mut steps = 0;
    let start = gc.state().passes;
    while gc.state().passes == start {
        gc.step().await.unwrap();
        steps += 1;
    }
    let paced = started.elapsed();
    assert!(paced >= Duration::from_millis(2000), "12 files at 5 a second took {paced:?}");
    assert_eq!(steps, 3, "a step examines a second's worth (5, 5, 2)");
    assert!(gc.progress().unwrap().contains("at most 5 files/s"), "{:?}", gc.progress());
    rate.set(u64::MAX);
    let started = std::time::Instant::now();
    pass(&mut gc).await;
    assert!(started.elapsed() < paced, "unpaced, the pass took {:?} (paced: {paced:?})", started.elapsed());
    assert!(!gc.progress().unwrap().contains("files/s"), "{:?}", gc.progress());
    rate.set_paused(true);
    let passes = gc.state().passes;
    assert_eq!(gc.step().await.unwrap(), tessera_common::worker::StepResult::Idle);
    assert_eq!(gc.state().passes, passes, "a paused collector takes no step");
}
