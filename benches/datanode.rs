//! Shard put and get throughput over loopback, on both transports (gRPC and
//! the shard wire the gateway uses), against the raw disk, measured in the
//! same run. Run: `cargo bench -p tessera-benches --bench datanode`.
//!
//! - raw write: 256 MiB in 1 MiB writes to one file, then fsync;
//! - raw read: the same file read back in 1 MiB reads, cold (page cache
//!   dropped first, so from the disk) and warm (from the page cache);
//! - put: four 64 MiB shards streamed to a datanode (server verifies every
//!   block's hash, writes, fsyncs, renames), one stream at a time, over each
//!   transport;
//! - get: the same shards streamed back (server verifies every block),
//!   cold and warm like the raw read. The cold get is also compared with
//!   plain 1 MiB reads of the very same shard files, from a dropped page
//!   cache, just before and just after it: this virtual disk's read speed
//!   drifts within seconds (0.6–1.7 GB/s), so that bracket is the fairer
//!   yardstick. Five cold gets alternate with six plain reads (each
//!   read brackets the gets on both sides of it); the median ratio is
//!   printed last. The cores kept busy during each get are printed too (from
//!   `/proc/self/stat`: server, client and runtime together).
//!
//! Each shard figure is divided by raw figures taken just before it (this
//! machine's virtual disk drifts). Cold figures need root (to write /proc/sys/vm/drop_caches); without it
//! they are reported as unavailable. Prints MB/s (10^6 bytes) and each shard
//! figure as a fraction of the matching raw one. `TESSERA_BENCH_ONLY=wire`
//! (or `gRPC`) measures one transport only.

// A benchmark that hits an error should stop loudly.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::time::Instant;

use rand::RngCore;
use tessera_common::{DataId, DiskId};
use tessera_datanode::{DataService, DatanodeMetrics, FsDisk, MAX_MESSAGE_BYTES, ShardKey, serve_data};
use tessera_ec::{BlockAddress, block_hash};
use tessera_rpc::proto::data::data_client::DataClient;
use tessera_rpc::proto::data::*;
use tessera_rpc::wire::WireClient;

const TOTAL: usize = 256 << 20;
const SHARD: usize = 64 << 20;

fn mbps(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

/// Flushes dirty pages and drops the page cache; false if not permitted.
fn drop_caches() -> bool {
    std::process::Command::new("sync").status().is_ok_and(|s| s.success())
        && std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

fn read_file(path: &std::path::Path, buf: &mut [u8]) -> f64 {
    let t = Instant::now();
    let mut f = std::fs::File::open(path).unwrap();
    while f.read(buf).unwrap() > 0 {}
    mbps(TOTAL, t.elapsed().as_secs_f64())
}

/// (write+fsync, cold read if caches could be dropped, warm read) in MB/s.
fn raw(dir: &std::path::Path) -> (f64, Option<f64>, f64) {
    let mut buf = vec![0u8; 1 << 20];
    rand::rng().fill_bytes(&mut buf);
    let path = dir.join("raw.bin");
    let t = Instant::now();
    let mut f = std::fs::File::create(&path).unwrap();
    for _ in 0..TOTAL >> 20 {
        f.write_all(&buf).unwrap();
    }
    f.sync_all().unwrap();
    let write = mbps(TOTAL, t.elapsed().as_secs_f64());
    let cold = drop_caches().then(|| read_file(&path, &mut buf));
    let warm = read_file(&path, &mut buf);
    std::fs::remove_file(path).unwrap();
    (write, cold, warm)
}

/// The client side of one transport.
enum Transport {
    Grpc(DataClient<tonic::transport::Channel>),
    Wire(WireClient, String),
}

impl Transport {
    fn name(&self) -> &'static str {
        match self {
            Transport::Grpc(_) => "gRPC",
            Transport::Wire(..) => "wire",
        }
    }

    async fn put(&mut self, first: PutShardRequest, frames: Vec<ShardFrame>) {
        match self {
            Transport::Grpc(c) => {
                let msgs = std::iter::once(first).chain(frames.into_iter().map(|f| PutShardRequest {
                    shard: None,
                    geometry: None,
                    frame: Some(f),
                }));
                c.put_shard(tokio_stream::iter(msgs)).await.unwrap();
            }
            Transport::Wire(c, addr) => {
                let (tx, rx) = tokio::sync::mpsc::channel(4);
                let feed = tokio::spawn(async move {
                    for f in frames {
                        tx.send(f).await.unwrap();
                    }
                });
                c.put_shard(addr, first, rx).await.unwrap();
                feed.await.unwrap();
            }
        }
    }

    /// Reads a shard; the bytes of its blocks.
    async fn get(&mut self, req: GetShardRequest) -> usize {
        let mut got = 0;
        match self {
            Transport::Grpc(c) => {
                let mut s = c.get_shard(req).await.unwrap().into_inner();
                while let Some(f) = s.message().await.unwrap() {
                    got += f.block.len();
                }
            }
            Transport::Wire(c, addr) => {
                let mut s = c.get_shard(addr, req).await.unwrap();
                while let Some(f) = s.message().await.unwrap() {
                    got += f.block.len();
                }
            }
        }
        got
    }
}

/// CPU seconds this process has used (all threads: server, client, runtime).
fn cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    let Some((_, rest)) = stat.rsplit_once(')') else { return 0.0 };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0 // utime + stime; USER_HZ is 100 on Linux
}

/// (MB/s, cores busy on average) of reading every shard back.
async fn get_all(client: &mut Transport, ids: &[DataId], block: usize) -> (f64, f64) {
    let cpu = cpu_secs();
    let t = Instant::now();
    let mut got = 0;
    for id in ids {
        let req =
            GetShardRequest { shard: Some(shard_ref(*id)), first_stripe: 0, stripe_count: (SHARD / block) as u64 };
        got += client.get(req).await;
    }
    assert_eq!(got, TOTAL);
    let secs = t.elapsed().as_secs_f64();
    (mbps(TOTAL, secs), (cpu_secs() - cpu) / secs)
}

fn shard_ref(id: DataId) -> ShardRef {
    ShardRef { disk: 1, data_id: bytes::Bytes::copy_from_slice(id.as_bytes()), part: 0, shard: 0 }
}

fn frames(id: DataId, block: usize, data: &bytes::Bytes) -> Vec<ShardFrame> {
    data.chunks(block)
        .enumerate()
        .map(|(s, b)| {
            let addr = BlockAddress { data_id: *id.as_bytes(), part: 0, shard: 0, stripe: s as u64 };
            ShardFrame { hash: bytes::Bytes::copy_from_slice(&block_hash(&addr, b)), block: data.slice_ref(b) }
        })
        .collect()
}

/// Cold gets per measurement, alternating with plain reads of the files.
const COLD_ROUNDS: usize = 5;

/// A cold get, and plain reads of the same shard files around it.
struct Cold {
    /// Shard get, MB/s of block bytes.
    get: f64,
    /// Cores busy during the get (server, client and runtime together).
    cores: f64,
    /// The shard files read with plain 1 MiB `read`s from a dropped page
    /// cache, just before and just after the get, MB/s.
    files_before: f64,
    files_after: f64,
}

/// Reads `paths` one after another with 1 MiB reads: MB/s of file bytes.
fn read_files(paths: &[std::path::PathBuf]) -> f64 {
    let mut buf = vec![0u8; 1 << 20];
    let t = Instant::now();
    let mut total = 0;
    for p in paths {
        let mut f = std::fs::File::open(p).unwrap();
        loop {
            let n = f.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            total += n;
        }
    }
    mbps(total, t.elapsed().as_secs_f64())
}

/// (put in MB/s, cold gets if caches could be dropped, warm get in MB/s
/// with the cores it kept busy, the shards' ids).
async fn shards(
    client: &mut Transport,
    disk: &FsDisk,
    block: usize,
    data: &bytes::Bytes,
) -> (f64, Option<Vec<Cold>>, (f64, f64), Vec<DataId>) {
    let ids: Vec<DataId> = (0..TOTAL / SHARD).map(|_| DataId::new()).collect();
    let prepared: Vec<Vec<ShardFrame>> = ids.iter().map(|id| frames(*id, block, data)).collect();
    let t = Instant::now();
    for (id, fs) in ids.iter().zip(prepared) {
        let geometry = ShardGeometry { codec: 1, k: 1, m: 0, block_len: block as u32, piece_len: SHARD as u64 };
        let first = PutShardRequest { shard: Some(shard_ref(*id)), geometry: Some(geometry), frame: None };
        client.put(first, fs).await;
    }
    let put = mbps(TOTAL, t.elapsed().as_secs_f64());
    // This disk's speed drifts within seconds: the cold get is bracketed by
    // plain reads of the very same files, each from a dropped page cache.
    let paths: Vec<_> = ids.iter().map(|id| disk.shard_path(&ShardKey { data_id: *id, part: 0, shard: 0 })).collect();
    // Several rounds, each plain read serving as the bracket on both sides.
    let cold = if drop_caches() {
        let mut rounds = Vec::with_capacity(COLD_ROUNDS);
        let mut files_before = read_files(&paths);
        for _ in 0..COLD_ROUNDS {
            drop_caches();
            let (get, cores) = get_all(client, &ids, block).await;
            drop_caches();
            let files_after = read_files(&paths);
            rounds.push(Cold { get, cores, files_before, files_after });
            files_before = files_after;
        }
        Some(rounds)
    } else {
        None
    };
    let warm = get_all(client, &ids, block).await;
    (put, cold, warm, ids)
}

fn main() {
    // `cargo test --benches` runs benches with no --bench flag: stay quick there.
    if !std::env::args().any(|a| a == "--bench") {
        println!("datanode bench: run with `cargo bench -p tessera-benches --bench datanode`");
        return;
    }
    let dir = tempfile::tempdir_in(std::env::var("TESSERA_BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into())).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let disk = FsDisk::open(DiskId(1), &dir.path().join("disk")).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let service = DataService::new(vec![disk.clone()], DatanodeMetrics::default());
        let server = tokio::spawn(serve_data(listener, service, None, stopped));
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .tcp_nodelay(true)
            .initial_stream_window_size(Some(8 << 20))
            .initial_connection_window_size(Some(32 << 20))
            // As the gateway does: a whole block per HTTP/2 frame.
            .max_frame_size(Some(tessera_datanode::MAX_FRAME_BYTES));
        let grpc = DataClient::new(endpoint.connect().await.unwrap())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let mut cleanup = grpc.clone();
        let mut transports = [
            Transport::Grpc(grpc),
            Transport::Wire(WireClient::new(std::time::Duration::from_secs(5)), format!("http://{addr}")),
        ];
        let mut data = vec![0u8; SHARD];
        rand::rng().fill_bytes(&mut data);
        let data = bytes::Bytes::from(data);
        let show = |v: Option<f64>| v.map_or("n/a (needs root)".to_string(), |v| format!("{v:.0} MB/s"));
        // `TESSERA_BENCH_ONLY=wire` (or `gRPC`) runs one transport, e.g. under a profiler.
        let only = std::env::var("TESSERA_BENCH_ONLY").ok();
        for client in &mut transports {
            if only.as_deref().is_some_and(|o| !o.eq_ignore_ascii_case(client.name())) {
                continue;
            }
            for block in [256 << 10, 1 << 20] {
                // This virtual disk's speed drifts by 2x within minutes: the raw
                // figures are taken right before the shard figures they divide.
                let (raw_w, raw_cold, raw_warm) = raw(dir.path());
                println!(
                    "raw disk: write+fsync {raw_w:.0} MB/s, cold read {}, warm read {raw_warm:.0} MB/s ({} MiB)",
                    show(raw_cold),
                    TOTAL >> 20
                );
                let (put, cold, warm, ids) = shards(client, &disk, block, &data).await;
                for id in &ids {
                    cleanup.delete_shard(shard_ref(*id)).await.unwrap();
                }
                let (warm, warm_cores) = warm;
                println!(
                    "  shards over {:>4}, {:>4} KiB blocks: put {put:.0} MB/s ({:.0}% of raw write); warm get {warm:.0} MB/s ({:.0}% of raw warm read, {warm_cores:.1} cores busy)",
                    client.name(),
                    block >> 10,
                    100.0 * put / raw_w,
                    100.0 * warm / raw_warm
                );
                match (cold, raw_cold) {
                    (Some(rounds), Some(raw_cold)) => {
                        let mut ratios = Vec::with_capacity(rounds.len());
                        for c in &rounds {
                            let files = (c.files_before + c.files_after) / 2.0;
                            ratios.push(100.0 * c.get / files);
                            println!(
                                "    cold get {:.0} MB/s ({:.1} cores busy): {:.0}% of a plain read of the same files around it ({:.0} before, {:.0} after), {:.0}% of the raw cold read",
                                c.get,
                                c.cores,
                                100.0 * c.get / files,
                                c.files_before,
                                c.files_after,
                                100.0 * c.get / raw_cold
                            );
                        }
                        ratios.sort_by(f64::total_cmp);
                        println!(
                            "    cold get vs the plain reads around it, median of {} rounds: {:.0}%",
                            ratios.len(),
                            ratios[ratios.len() / 2]
                        );
                    }
                    _ => println!("    cold get: n/a (needs root)"),
                }
            }
        }
        stop.send(true).unwrap();
        server.await.unwrap().unwrap();
    });
}
