//! Versions at scale: loads `TESSERA_VERSIONS` versions (default 100,000)
//! into a versioned bucket through the state machine's apply path (entries
//! of 256 commands, as the leader's group commit makes them), in two
//! shapes — 10 versions of each key (a playlist rewritten, a backup tool's
//! history) and 1,000 versions of each key (a hot key) — and reports:
//!
//! - the apply rate of versioned PUTs beside the same PUTs into an
//!   unversioned bucket (what versioning costs the metadata write path);
//! - ListObjectVersions entries/s, pages of 1,000, over the whole bucket,
//!   and ListObjectsV2 keys/s over the same bucket (current versions).
//!
//! `cargo bench -p tessera-metadata --bench versions`; under `cargo test`
//! it loads 2,000 versions only: a check that the bench works.

use std::time::Instant;

use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use prost::Message;
use tessera_metadata::raft::{RaftRequest, StateMachineStore, TypeConfig};
use tessera_metadata::state::list::ListQuery;
use tessera_metadata::{MetaState, open_db};
use tessera_rpc::proto::meta::command::Op;
use tessera_rpc::proto::meta::*;

const PER_ENTRY: u64 = 256;

fn put(bucket: &str, key: String, i: u64) -> Command {
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
        body: Some(Body { kind: Some(body::Kind::Shards(shards)), seal_salt: Vec::new() }),
        ..Default::default()
    };
    let op = Op::PutObject(PutObject {
        bucket: bucket.into(),
        key,
        record: Some(record),
        condition: None,
        origin: String::new(),
        bucket_digest: Vec::new(),
    });
    Command { now_ms: 1_760_000_000_000, op: Some(op) }
}

fn entry(index: u64, cmd: &Command) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(RaftRequest(cmd.encode_to_vec())),
    }
}

/// What [`load`] loads: `n` puts over `keys` keys into `bucket`.
struct Load<'a> {
    bucket: &'a str,
    versioned: bool,
    n: u64,
    keys: u64,
}

/// Loads the puts (key `i % keys`) from log index `index` on and returns
/// the apply rate (commands/s).
fn load(rt: &tokio::runtime::Runtime, sm: &mut StateMachineStore, index: &mut u64, l: Load<'_>) -> f64 {
    let Load { bucket, versioned, n, keys } = l;
    rt.block_on(async {
        *index += 1;
        let create = Command {
            now_ms: 1,
            op: Some(Op::CreateBucket(CreateBucket {
                name: bucket.into(),
                owner: "root".into(),
                ..Default::default()
            })),
        };
        let on = Command {
            now_ms: 1,
            op: Some(Op::SetBucketVersioning(SetBucketVersioning {
                bucket: bucket.into(),
                versioning: Versioning::Enabled as i32,
            })),
        };
        let mut first = vec![entry(*index, &create)];
        if versioned {
            *index += 1;
            first.push(entry(*index, &on));
        }
        sm.apply(first).await.expect("create");
        let t = Instant::now();
        let (mut i, mut entries) = (0, Vec::new());
        while i < n {
            let m = PER_ENTRY.min(n - i);
            let cmds = (i..i + m).map(|j| put(bucket, format!("hls/stream-{:06}.m3u8", j % keys), j)).collect();
            *index += 1;
            entries.push(entry(*index, &Command { now_ms: 1, op: Some(Op::Batch(CommandBatch { commands: cmds })) }));
            i += m;
            if entries.len() == 16 || i == n {
                sm.apply(std::mem::take(&mut entries)).await.expect("apply");
            }
        }
        n as f64 / t.elapsed().as_secs_f64()
    })
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let total: u64 = std::env::var("TESSERA_VERSIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(if bench {
        100_000
    } else {
        2_000
    });
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    for per_key in [10u64, 1000] {
        let keys = (total / per_key).max(1);
        let dir = tempfile::tempdir().expect("temp dir");
        let state = MetaState::new(open_db(dir.path()).expect("open"));
        let mut sm = StateMachineStore::new(state.clone());
        let mut index = 0;
        let plain = load(&rt, &mut sm, &mut index, Load { bucket: "plain", versioned: false, n: total, keys });
        let versioned = load(&rt, &mut sm, &mut index, Load { bucket: "vers", versioned: true, n: total, keys });
        println!(
            "{total} PUTs over {keys} keys ({per_key} each): apply {plain:.0}/s unversioned, {versioned:.0}/s versioned"
        );
        // ListObjectVersions over the whole bucket, pages of 1,000.
        let t = Instant::now();
        let (mut n, mut pages) = (0usize, 0usize);
        let (mut km, mut vm): (Option<String>, Option<String>) = (None, None);
        loop {
            let p = state.list_versions("vers", "", None, km.as_deref(), vm.as_deref(), 1000).expect("list");
            n += p.versions.len();
            pages += 1;
            if !p.is_truncated {
                break;
            }
            (km, vm) = (p.next_key_marker, p.next_version_id_marker);
        }
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(n as u64, total, "every version listed");
        println!(
            "  ListObjectVersions: {n} versions in {pages} pages, {secs:.2} s: {:.0} versions/s, {:.2} ms per page",
            n as f64 / secs,
            secs * 1000.0 / pages as f64
        );
        let t = Instant::now();
        let mut q = ListQuery { max_keys: 1000, ..Default::default() };
        let mut listed = 0;
        loop {
            let p = state.list_objects("vers", &q).expect("list");
            listed += p.items.len();
            if !p.is_truncated {
                break;
            }
            q.after = p.last;
        }
        assert_eq!(listed as u64, keys);
        println!(
            "  ListObjectsV2 of the same bucket: {listed} keys, {:.0} keys/s",
            listed as f64 / t.elapsed().as_secs_f64()
        );
    }
}
