//! Memory of snapshot build and install against the state's size: fills a
//! metadata database with `TESSERA_SNAPSHOT_BYTES` of state (default 256
//! MiB; 4 KiB values, as inline bodies are), then builds a snapshot and
//! installs it into a fresh database, reporting the process's peak RSS
//! (VmHWM, reset between phases) and the time of each phase.
//!
//! `TESSERA_SNAPSHOT_BYTES=5368709120 cargo bench -p tessera-metadata --bench snapshot_memory`
//! (needs about three times that much free disk under the temp folder).

use std::time::Instant;

use openraft::RaftSnapshotBuilder;
use openraft::storage::RaftStateMachine;
use tessera_metadata::raft::StateMachineStore;
use tessera_metadata::{CF_SM, MetaState, open_db};

mod support;
use support::{mib, reset_peak, rss};

fn main() {
    let total: u64 = std::env::var("TESSERA_SNAPSHOT_BYTES").ok().and_then(|v| v.parse().ok()).unwrap_or(256 << 20);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let a_dir = tempfile::tempdir().expect("temp dir");
    let b_dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let db = open_db(a_dir.path()).expect("open");
    {
        let cf = db.cf_handle(CF_SM).expect("sm family");
        let value = vec![0x5au8; 4096];
        let mut batch = rocksdb::WriteBatch::default();
        let mut written = 0u64;
        let mut i = 0u64;
        while written < total {
            // Object-table-like keys: bucket and key.
            let key = format!("ovideos\0seg-{i:012}.ts");
            batch.put_cf(cf, key.as_bytes(), &value);
            written += key.len() as u64 + value.len() as u64;
            i += 1;
            if batch.size_in_bytes() >= 8 << 20 {
                db.write(std::mem::take(&mut batch)).expect("write");
            }
        }
        db.write(batch).expect("write");
        db.flush_cf(cf).expect("flush");
        println!("state: {:.0} MiB in {i} keys, written in {:.1} s", mib(written), started.elapsed().as_secs_f64());
    }
    let base = rss("VmRSS:");
    let mut a = StateMachineStore::new(MetaState::new(db));
    reset_peak();
    let t = Instant::now();
    let snap = rt.block_on(async { a.get_snapshot_builder().await.build_snapshot().await }).expect("build");
    let peak = rss("VmHWM:");
    println!(
        "build: {:.1} s, peak RSS {:.0} MiB (+{:.0} MiB over the {:.0} MiB before)",
        t.elapsed().as_secs_f64(),
        mib(peak),
        mib(peak.saturating_sub(base)),
        mib(base)
    );

    let mut b = StateMachineStore::new(MetaState::new(open_db(b_dir.path()).expect("open")));
    let base = rss("VmRSS:");
    reset_peak();
    let t = Instant::now();
    rt.block_on(async {
        // The data as a follower receives it: openraft copies the sender's
        // chunks into the file begin_receiving_snapshot gives.
        let mut into = b.begin_receiving_snapshot().await.expect("receive");
        let mut from = snap.snapshot;
        tokio::io::copy(&mut from, &mut *into).await.expect("copy");
        b.install_snapshot(&snap.meta, into).await.expect("install");
    });
    let peak = rss("VmHWM:");
    println!(
        "receive + install: {:.1} s, peak RSS {:.0} MiB (+{:.0} MiB over the {:.0} MiB before)",
        t.elapsed().as_secs_f64(),
        mib(peak),
        mib(peak.saturating_sub(base)),
        mib(base)
    );
}
