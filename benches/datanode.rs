//! Shard put and get throughput over loopback, on both transports (gRPC and
//! the shard wire the gateway uses), against the raw disk, measured in the
//! same run. Run: `cargo bench -p tessera-benches --bench datanode`.
//!
//! - raw write: 256 MiB in 1 MiB writes to one file, then fsync;
//! - raw read: the same file read back in 1 MiB reads, cold (page cache
//!   dropped first, so from the disk) and warm (from the page cache);
//! - five rounds per block size and transport, each: put four new 64 MiB
//!   shards (the server verifies every block's hash, writes, fsyncs,
//!   renames), one stream at a time, compared with raw writes just before
//!   and just after the round; then get them back (the server
//!   verifies every block), their first read, from a dropped page cache.
//!   That cold get is compared with plain 1 MiB reads of the very same
//!   shard files, from a dropped page cache, just before and just after
//!   it: this virtual disk's read speed drifts within seconds (0.6–1.9
//!   GB/s), so that bracket is the fairer yardstick. The medians of the
//!   five rounds are printed, and the cores kept busy during each get
//!   (from `/proc/self/stat`: server, client and runtime together);
//! - then the last round's shards are got again: cold (a shard read again
//!   goes through the page cache) and warm.
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

/// Writes 256 MiB to `path` in 1 MiB writes, then fsyncs: MB/s.
fn raw_write(path: &std::path::Path, buf: &[u8]) -> f64 {
    let t = Instant::now();
    let mut f = std::fs::File::create(path).unwrap();
    for _ in 0..TOTAL >> 20 {
        f.write_all(buf).unwrap();
    }
    f.sync_all().unwrap();
    mbps(TOTAL, t.elapsed().as_secs_f64())
}

/// A raw write+fsync of 256 MiB (the file removed after), MB/s: the
/// bracket of the puts.
fn raw_write_only(dir: &std::path::Path) -> f64 {
    let mut buf = vec![0u8; 1 << 20];
    rand::rng().fill_bytes(&mut buf);
    let path = dir.join("raw.bin");
    let write = raw_write(&path, &buf);
    std::fs::remove_file(path).unwrap();
    write
}

/// (write+fsync, cold read if caches could be dropped, warm read) in MB/s.
fn raw(dir: &std::path::Path) -> (f64, Option<f64>, f64) {
    let mut buf = vec![0u8; 1 << 20];
    rand::rng().fill_bytes(&mut buf);
    let path = dir.join("raw.bin");
    let write = raw_write(&path, &buf);
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

/// Rounds per measurement (block size and transport).
const ROUNDS: usize = 5;

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

impl Cold {
    /// The get as a percentage of the plain reads around it.
    fn ratio(&self) -> f64 {
        100.0 * self.get / ((self.files_before + self.files_after) / 2.0)
    }
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

fn paths(disk: &FsDisk, ids: &[DataId]) -> Vec<std::path::PathBuf> {
    ids.iter().map(|id| disk.shard_path(&ShardKey { data_id: *id, part: 0, shard: 0 })).collect()
}

/// Gets `ids` with a dropped page cache, between plain reads of their
/// files (each from a dropped cache too); `None` if caches cannot be
/// dropped.
async fn cold_get(client: &mut Transport, disk: &FsDisk, ids: &[DataId], block: usize) -> Option<Cold> {
    let paths = paths(disk, ids);
    if !drop_caches() {
        return None;
    }
    let files_before = read_files(&paths);
    drop_caches();
    let (get, cores) = get_all(client, ids, block).await;
    drop_caches();
    let files_after = read_files(&paths);
    Some(Cold { get, cores, files_before, files_after })
}

/// One round: four new shards put (MB/s), then their first read, cold.
async fn round(
    client: &mut Transport,
    disk: &FsDisk,
    block: usize,
    data: &bytes::Bytes,
) -> (f64, Option<Cold>, Vec<DataId>) {
    let ids: Vec<DataId> = (0..TOTAL / SHARD).map(|_| DataId::new()).collect();
    let prepared: Vec<Vec<ShardFrame>> = ids.iter().map(|id| frames(*id, block, data)).collect();
    let t = Instant::now();
    for (id, fs) in ids.iter().zip(prepared) {
        let geometry = ShardGeometry { codec: 1, k: 1, m: 0, block_len: block as u32, piece_len: SHARD as u64 };
        let first = PutShardRequest { shard: Some(shard_ref(*id)), geometry: Some(geometry), frame: None };
        client.put(first, fs).await;
    }
    let put = mbps(TOTAL, t.elapsed().as_secs_f64());
    // The first read of new files is not measured: it is the only one
    // that could find them still in the host's cache under this VM.
    if drop_caches() {
        read_files(&paths(disk, &ids));
    }
    let cold = cold_get(client, disk, &ids, block).await;
    (put, cold, ids)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
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
                let mut puts = Vec::with_capacity(ROUNDS);
                let mut colds = Vec::with_capacity(ROUNDS);
                let mut last = Vec::new();
                let mut write_before = raw_w;
                for r in 1..=ROUNDS {
                    let (put, cold, ids) = round(client, &disk, block, &data).await;
                    // Raw writes bracket each round's put like the reads its get.
                    let write_after = raw_write_only(dir.path());
                    let raw_write = (write_before + write_after) / 2.0;
                    write_before = write_after;
                    let cold_text = cold.as_ref().map_or("n/a (needs root)".to_string(), |c| {
                        format!(
                            "{:.0} MB/s ({:.1} cores busy): {:.0}% of a plain read of the same files around it ({:.0} before, {:.0} after){}",
                            c.get,
                            c.cores,
                            c.ratio(),
                            c.files_before,
                            c.files_after,
                            raw_cold.map_or(String::new(), |raw| format!(", {:.0}% of the raw cold read", 100.0 * c.get / raw))
                        )
                    });
                    println!(
                        "  {:>4}, {:>4} KiB blocks, round {r}: put {put:.0} MB/s ({:.0}% of the raw writes around it, {raw_write:.0} MB/s); first get, cold: {cold_text}",
                        client.name(),
                        block >> 10,
                        100.0 * put / raw_write,
                    );
                    puts.push(100.0 * put / raw_write);
                    colds.extend(cold);
                    for id in last.drain(..) {
                        cleanup.delete_shard(shard_ref(id)).await.unwrap();
                    }
                    last = ids;
                }
                let cold_median = if colds.is_empty() {
                    "n/a (needs root)".to_string()
                } else {
                    format!("{:.0}%", median(colds.iter().map(Cold::ratio).collect()))
                };
                println!(
                    "    median of {ROUNDS} rounds: put {:.0}% of the raw writes around it; first get, cold, {cold_median} of the plain reads around it",
                    median(puts)
                );
                // Read again: a large shard's second read goes through the
                // page cache (and leaves it cached), from the disk at first.
                if let Some(c) = cold_get(client, &disk, &last, block).await {
                    println!(
                        "    get again, cold (through the page cache): {:.0} MB/s ({:.1} cores busy): {:.0}% of a plain read of the same files around it ({:.0} before, {:.0} after)",
                        c.get,
                        c.cores,
                        c.ratio(),
                        c.files_before,
                        c.files_after
                    );
                }
                let (warm, warm_cores) = get_all(client, &last, block).await;
                println!(
                    "    get again, warm: {warm:.0} MB/s ({:.0}% of raw warm read, {warm_cores:.1} cores busy)",
                    100.0 * warm / raw_warm
                );
                for id in last {
                    cleanup.delete_shard(shard_ref(id)).await.unwrap();
                }
            }
        }
        stop.send(true).unwrap();
        server.await.unwrap().unwrap();
    });
}
