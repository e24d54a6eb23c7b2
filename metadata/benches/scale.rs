//! Metadata at scale: loads `TESSERA_SCALE_OBJECTS` object records (default
//! 10,000,000) into one bucket through the state machine's own apply path
//! (Raft entries of 256 commands, as the leader's group commit makes them),
//! then reports:
//!
//! - the load rate and the RocksDB size per object (after a flush and a
//!   full compaction);
//! - ListObjectsV2 keys/s in pages of 1,000 at the start, middle and end of
//!   the bucket, and with a delimiter over its 100,000 prefixes (each
//!   prefix holds `objects / 100,000` keys): listing cost must not grow
//!   with the bucket;
//! - snapshot build, transfer (a file copy: what a follower receives) and
//!   install times, and the peak RSS of each.
//!
//! The records are those of 1 MiB objects coded EC 4+2 (a shard set of six
//! disks, a 16-byte data id, an ETag and a CRC32C checksum), with keys like
//! an HLS pipeline's: `live/stream-00042/seg-000000123.ts`.
//!
//! `cargo bench -p tessera-metadata --bench scale` (10 M records: about
//! 20 GiB of free disk under the temp folder and 10–15 minutes on 2 cores);
//! `TESSERA_SCALE_OBJECTS=1000000` for a quicker look. Run by `cargo test`
//! (the test suite's `--all-targets`), it loads 20,000 records only: a
//! check that the bench still works, not a measurement.

use std::time::Instant;

use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftSnapshotBuilder};
use prost::Message;
use tessera_metadata::raft::{RaftRequest, StateMachineStore, TypeConfig};
use tessera_metadata::state::list::ListQuery;
use tessera_metadata::{MetaState, open_db};
use tessera_rpc::proto::meta::command::Op;
use tessera_rpc::proto::meta::*;

mod support;
use support::{mib, reset_peak, rss};

const PREFIXES: u64 = 100_000;
const BUCKET: &str = "videos";
const PER_ENTRY: u64 = 256;

fn dir_size(p: &std::path::Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
        let Ok(m) = e.metadata() else { continue };
        total += if m.is_dir() { dir_size(&e.path()) } else { m.len() };
    }
    total
}

/// Key `i` of `n`: prefix `i % PREFIXES`, so every prefix fills evenly.
fn key(i: u64) -> String {
    format!("live/stream-{:05}/seg-{:09}.ts", i % PREFIXES, i / PREFIXES)
}

fn put(i: u64) -> Command {
    let mut data_id = [0u8; 16];
    data_id[..8].copy_from_slice(&i.to_be_bytes());
    data_id[8..].copy_from_slice(&(i ^ 0x5a5a_5a5a).to_le_bytes());
    let shards = ShardSet {
        data_id: data_id.to_vec(),
        ec: Some(EcProfile { k: 4, m: 2, block_len: 1 << 20, ..Default::default() }),
        pg: (i % 256) as u32,
        disks: (0..6).map(|d| ((i + d * 7) % 60) as u32 + 1).collect(),
        missing: Vec::new(),
        stored_len: 0,
    };
    let record = ObjectRecord {
        size: 1 << 20,
        etag: format!("{:032x}", u128::from(i) * 0x9e37_79b9_7f4a_7c15),
        checksums: vec![Checksum { algorithm: "CRC32C".into(), value: "yZRlqg==".into(), ..Default::default() }],
        body: Some(Body { kind: Some(body::Kind::Shards(shards)), seal_salt: Vec::new() }),
        ..Default::default()
    };
    Command {
        now_ms: 1_760_000_000_000,
        op: Some(Op::PutObject(PutObject {
            bucket: BUCKET.into(),
            key: key(i),
            record: Some(record),
            condition: None,
            origin: String::new(),
            bucket_digest: Vec::new(),
        })),
    }
}

fn entry(index: u64, cmd: &Command) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(RaftRequest(cmd.encode_to_vec())),
    }
}

/// Pages of 1,000 from `after` for `pages` pages: keys (or prefixes) a second.
fn list_rate(st: &MetaState, after: Option<String>, delimiter: bool, pages: usize) -> (f64, usize) {
    let mut q = ListQuery {
        prefix: if delimiter { "live/".into() } else { String::new() },
        delimiter: delimiter.then(|| "/".to_owned()),
        after,
        max_keys: 1000,
    };
    let t = Instant::now();
    let mut n = 0;
    for _ in 0..pages {
        let page = st.list_objects(BUCKET, &q).expect("list");
        n += page.items.len() + page.common_prefixes.len();
        if !page.is_truncated {
            break;
        }
        q.after = page.last;
    }
    (n as f64 / t.elapsed().as_secs_f64(), n)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test` runs this as a smoke test.
    let default = if std::env::args().any(|a| a == "--bench") { 10_000_000 } else { 20_000 };
    let objects: u64 = std::env::var("TESSERA_SCALE_OBJECTS").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let a_dir = tempfile::tempdir().expect("temp dir");
    let b_dir = tempfile::tempdir().expect("temp dir");
    let db = open_db(a_dir.path()).expect("open");
    let state = MetaState::new(db.clone());
    let mut sm = StateMachineStore::new(state.clone());

    // Load through the apply path: a bucket, then entries of 256 puts.
    let t = Instant::now();
    rt.block_on(async {
        let create = Command {
            now_ms: 1,
            op: Some(Op::CreateBucket(CreateBucket {
                name: BUCKET.into(),
                owner: "root".into(),
                ..Default::default()
            })),
        };
        sm.apply([entry(1, &create)]).await.expect("create bucket");
        let mut index = 2;
        let mut i = 0;
        let mut entries = Vec::new();
        while i < objects {
            let n = PER_ENTRY.min(objects - i);
            let batch = Command {
                now_ms: 1_760_000_000_000,
                op: Some(Op::Batch(CommandBatch { commands: (i..i + n).map(put).collect() })),
            };
            entries.push(entry(index, &batch));
            index += 1;
            i += n;
            // openraft hands the state machine a few entries at a time.
            if entries.len() == 16 || i == objects {
                sm.apply(std::mem::take(&mut entries)).await.expect("apply");
            }
            if i % 1_000_000 < n {
                println!("  {i} records, {:.0} records/s", i as f64 / t.elapsed().as_secs_f64());
            }
        }
    });
    let load = t.elapsed().as_secs_f64();
    for cf in [tessera_metadata::CF_LOG, tessera_metadata::CF_RAFT, tessera_metadata::CF_SM] {
        if let Some(h) = db.cf_handle(cf) {
            db.flush_cf(h).expect("flush");
            db.compact_range_cf(h, None::<&[u8]>, None::<&[u8]>);
        }
    }
    let size = dir_size(a_dir.path());
    println!(
        "load: {objects} records in {load:.1} s ({:.0} records/s); RocksDB {:.0} MiB after compaction, \
         {:.0} bytes per object",
        objects as f64 / load,
        mib(size),
        size as f64 / objects as f64
    );

    // Listing at the start, middle and end of the bucket.
    let pages = 200;
    for (name, at) in [("start", 0), ("middle", objects / 2), ("end", objects.saturating_sub(200_000))] {
        let after = (at > 0).then(|| key(at));
        let (rate, n) = list_rate(&state, after, false, pages);
        println!("ListObjectsV2 at the {name}: {rate:.0} keys/s ({n} keys in pages of 1,000)");
    }
    for (name, at) in [("start", 0), ("middle", PREFIXES / 2), ("end", PREFIXES - 20_000)] {
        let after = (at > 0).then(|| format!("live/stream-{at:05}/"));
        let (rate, n) = list_rate(&state, after, true, 20);
        println!(
            "ListObjectsV2 with a delimiter at the {name} of {PREFIXES} prefixes: {rate:.0} prefixes/s ({n} \
             prefixes in pages of 1,000)"
        );
    }

    // Snapshot: build, transfer, install.
    let base = rss("VmRSS:");
    reset_peak();
    let t = Instant::now();
    let snap = rt.block_on(async { sm.get_snapshot_builder().await.build_snapshot().await }).expect("build");
    println!(
        "snapshot build: {:.1} s, peak RSS +{:.0} MiB",
        t.elapsed().as_secs_f64(),
        mib(rss("VmHWM:").saturating_sub(base))
    );
    let mut b = StateMachineStore::new(MetaState::new(open_db(b_dir.path()).expect("open")));
    let base = rss("VmRSS:");
    reset_peak();
    let t = Instant::now();
    let into = rt.block_on(async {
        let mut into = b.begin_receiving_snapshot().await.expect("receive");
        let mut from = snap.snapshot;
        let copied = tokio::io::copy(&mut from, &mut *into).await.expect("copy");
        (into, copied)
    });
    println!("snapshot transfer (file copy): {:.1} s for {:.0} MiB", t.elapsed().as_secs_f64(), mib(into.1));
    let t = Instant::now();
    rt.block_on(b.install_snapshot(&snap.meta, into.0)).expect("install");
    println!(
        "snapshot install: {:.1} s, peak RSS over receive and install +{:.0} MiB",
        t.elapsed().as_secs_f64(),
        mib(rss("VmHWM:").saturating_sub(base))
    );
}
