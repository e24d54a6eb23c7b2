//! The shard wire (the gateway's transport for shard bytes) against a
//! datanode serving both transports on one port: round trips, the same
//! distinct errors as gRPC, refusals the client hears about, a client that
//! vanishes mid-put, garbage on the port, a full disk, and shutdown.

// A test that meets an error should fail loudly.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use bytes::Bytes;
use rand::RngCore;
use tessera_common::{DataId, DiskId};
use tessera_datanode::{DataService, DatanodeMetrics, FsDisk, ShardKey, serve_data};
use tessera_ec::{CodecId, StripeCoder, StripeLayout, new_codec};
use tessera_rpc::proto::data::data_client::DataClient;
use tessera_rpc::proto::data::*;
use tessera_rpc::wire::{PREFACE, WireClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tonic::Code;

const K: usize = 4;
const M: usize = 2;
const BLOCK: usize = 256 << 10;

struct Node {
    addr: String,
    wire: WireClient,
    grpc: DataClient<tonic::transport::Channel>,
    disks: Vec<FsDisk>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

async fn start(disks: Vec<FsDisk>) -> Node {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = watch::channel(false);
    let svc = DataService::new(disks.clone(), DatanodeMetrics::default());
    let task = tokio::spawn(serve_data(listener, svc, None, stopped));
    let grpc = DataClient::connect(addr.clone()).await.unwrap();
    Node { addr, wire: WireClient::new(Duration::from_secs(2)), grpc, disks, stop, task }
}

impl Node {
    async fn stop(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.task).await.expect("server stops").unwrap().unwrap();
    }

    async fn put(&self, first: PutShardRequest, frames: Vec<ShardFrame>) -> Result<(), tonic::Status> {
        let (tx, rx) = mpsc::channel(4);
        let feed = tokio::spawn(async move {
            for f in frames {
                if tx.send(f).await.is_err() {
                    return;
                }
            }
        });
        let r = self.wire.put_shard(&self.addr, first, rx).await;
        feed.await.unwrap();
        r
    }

    async fn get(&self, r: ShardRef, first: u64, count: u64) -> (Vec<ShardFrame>, Result<(), tonic::Status>) {
        let req = GetShardRequest { shard: Some(r), first_stripe: first, stripe_count: count };
        let mut out = Vec::new();
        let mut s = match self.wire.get_shard(&self.addr, req).await {
            Ok(s) => s,
            Err(e) => return (out, Err(e)),
        };
        loop {
            match s.message().await {
                Ok(Some(f)) => out.push(f),
                Ok(None) => return (out, Ok(())),
                Err(e) => return (out, Err(e)),
            }
        }
    }
}

fn coder() -> StripeCoder {
    StripeCoder::new(new_codec(CodecId::DEFAULT, K, M).unwrap(), StripeLayout::from_block_len(K, M, BLOCK).unwrap())
        .unwrap()
}

fn first(disk: u32, id: DataId, shard: u32, len: u64) -> PutShardRequest {
    let geometry = ShardGeometry {
        codec: u32::from(CodecId::DEFAULT.as_u16()),
        k: K as u32,
        m: M as u32,
        block_len: BLOCK as u32,
        piece_len: len,
    };
    PutShardRequest { shard: Some(shard_ref(disk, id, shard)), geometry: Some(geometry), frame: None }
}

fn shard_ref(disk: u32, id: DataId, shard: u32) -> ShardRef {
    ShardRef { disk, data_id: Bytes::copy_from_slice(id.as_bytes()), part: 0, shard }
}

/// Every shard's frames for `data`, shard by shard.
fn encode(id: DataId, data: &[u8]) -> Vec<Vec<ShardFrame>> {
    support::encode(&coder(), id, data)
}

fn random(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::rng().fill_bytes(&mut v);
    v
}

fn disks(root: &std::path::Path, n: u32) -> Vec<FsDisk> {
    (1..=n).map(|i| FsDisk::open(DiskId(i), &root.join(format!("d{i}"))).unwrap()).collect()
}

fn temp_files(d: &FsDisk) -> usize {
    std::fs::read_dir(d.root().join("tmp")).unwrap().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_round_trip_and_errors_match_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = start(disks(dir.path(), 2)).await;
    let id = DataId::new();
    let data = random(9 << 20);
    let len = data.len() as u64;
    let shards = encode(id, &data);
    let stripes = shards[0].len() as u64;
    for (i, frames) in shards.iter().enumerate() {
        node.put(first(1 + (i % 2) as u32, id, i as u32, len), frames.clone()).await.unwrap();
    }
    // Every shard reads back as written, and through gRPC on the same port.
    for (i, frames) in shards.iter().enumerate() {
        let (got, end) = node.get(shard_ref(1 + (i % 2) as u32, id, i as u32), 0, stripes).await;
        end.unwrap();
        assert_eq!(got, *frames, "shard {i}");
    }
    let st = node.grpc.stat_shard(shard_ref(1, id, 0)).await.unwrap().into_inner();
    assert!(st.len > (stripes * BLOCK as u64));
    // A sub-range.
    let (got, end) = node.get(shard_ref(2, id, 1), 2, 3).await;
    end.unwrap();
    assert_eq!(got, shards[1][2..5].to_vec());

    // Missing shard and unknown disk: NOT_FOUND; bad range: INVALID_ARGUMENT.
    assert_eq!(node.get(shard_ref(1, id, 3), 0, 1).await.1.unwrap_err().code(), Code::NotFound);
    assert_eq!(node.get(shard_ref(7, id, 0), 0, 1).await.1.unwrap_err().code(), Code::NotFound);
    assert_eq!(node.get(shard_ref(1, id, 0), 0, stripes + 1).await.1.unwrap_err().code(), Code::InvalidArgument);
    let e = node.put(first(7, id, 0, len), shards[0].clone()).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e}");
    let mut malformed = first(1, id, 0, len);
    malformed.shard.as_mut().unwrap().data_id.truncate(15);
    assert_eq!(node.put(malformed, shards[0].clone()).await.unwrap_err().code(), Code::InvalidArgument);

    // A stream that ends early (the gateway gives up): refused, nothing stored.
    let other = DataId::new();
    let e = node.put(first(1, other, 0, len), encode(other, &data)[0][..2].to_vec()).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");
    assert!(e.message().contains("ended after 2 of"), "{e}");
    assert_eq!(node.grpc.stat_shard(shard_ref(1, other, 0)).await.unwrap_err().code(), Code::NotFound);

    // A frame damaged in transit, early in a long stream: the datanode
    // refuses it while the client is still sending, and the client hears why.
    let mut bad = encode(other, &data)[0].clone();
    let mut damaged = bad[1].block.to_vec();
    damaged[3] ^= 1;
    bad[1].block = Bytes::from(damaged);
    let e = node.put(first(1, other, 0, len), bad).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");
    assert!(e.message().contains("does not match its hash"), "{e}");
    assert_eq!(node.grpc.stat_shard(shard_ref(1, other, 0)).await.unwrap_err().code(), Code::NotFound);
    // Too many frames.
    let mut extra = encode(other, &data)[0].clone();
    extra.push(extra[0].clone());
    assert_eq!(node.put(first(1, other, 0, len), extra).await.unwrap_err().code(), Code::InvalidArgument);

    // A corrupt block on disk: the good stripes before it, then DATA_LOSS.
    let key = ShardKey { data_id: id, part: 0, shard: 2 };
    let path = node.disks[0].shard_path(&key);
    let header = node.disks[0].read_header(&key).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[header.frame_offset(3).unwrap() as usize + 100] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let (got, end) = node.get(shard_ref(1, id, 2), 0, stripes).await;
    assert_eq!(end.unwrap_err().code(), Code::DataLoss);
    assert!(got.len() <= 3 && got.iter().zip(&shards[2]).all(|(a, b)| a == b), "only good stripes came");

    // After all of that the client's pooled connections still work.
    let (got, end) = node.get(shard_ref(2, id, 5), 0, stripes).await;
    end.unwrap();
    assert_eq!(got, shards[5]);
    assert!(node.disks.iter().all(|d| temp_files(d) == 0));
    node.grpc.delete_shard(shard_ref(2, id, 5)).await.unwrap();
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_client_or_garbage_stores_nothing_and_harms_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(disks(dir.path(), 1)).await;
    let id = DataId::new();
    let data = random(6 << 20);
    let shards = encode(id, &data);

    // The client goes away after two frames: no shard, and the temp file goes.
    let (tx, rx) = mpsc::channel(4);
    for f in &shards[0][..2] {
        tx.send(f.clone()).await.unwrap();
    }
    let wire = node.wire.clone();
    let (addr, req) = (node.addr.clone(), first(1, id, 0, data.len() as u64));
    let put = tokio::spawn(async move { wire.put_shard(&addr, req, rx).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    put.abort();
    drop(tx);
    let start = std::time::Instant::now();
    while temp_files(&node.disks[0]) > 0 {
        assert!(start.elapsed() < Duration::from_secs(5), "temp file of the abandoned put stays");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(node.disks[0].stat(&ShardKey { data_id: id, part: 0, shard: 0 }).is_err());

    // Garbage on the port: a wrong preface, an absurd header, a silent
    // connection. Each is closed; nothing else notices.
    let target = node.addr.trim_start_matches("http://").to_owned();
    let mut wrong = TcpStream::connect(&target).await.unwrap();
    wrong.write_all(b"TSHARD/9").await.unwrap();
    let mut huge = TcpStream::connect(&target).await.unwrap();
    huge.write_all(PREFACE).await.unwrap();
    huge.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    let _silent = TcpStream::connect(&target).await.unwrap();
    for mut c in [wrong, huge] {
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf)).await.expect("closed").unwrap_or(0);
        assert_eq!(n, 0, "the datanode answers garbage by closing");
    }
    node.put(first(1, id, 0, data.len() as u64), shards[0].clone()).await.unwrap();
    let (got, end) = node.get(shard_ref(1, id, 0), 0, shards[0].len() as u64).await;
    end.unwrap();
    assert_eq!(got, shards[0]);
    // An idle pooled connection and the silent one do not hold up shutdown.
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_a_clear_error_over_the_wire() {
    if !rustix::process::geteuid().is_root() {
        println!("needs root to mount a small tmpfs; skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&small)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mount tmpfs");
    let (d1, d2) = (small.join("d1"), dir.path().join("d2"));
    let result = async move {
        let disks = vec![FsDisk::open(DiskId(1), &d1).unwrap(), FsDisk::open(DiskId(2), &d2).unwrap()];
        let node = start(disks).await;
        let id = DataId::new();
        let data = random(12 << 20); // 3 MiB shards: more than the small disk holds
        let shards = encode(id, &data);
        let e = node.put(first(1, id, 0, data.len() as u64), shards[0].clone()).await.unwrap_err();
        assert_eq!(e.code(), Code::ResourceExhausted, "{e}");
        assert!(e.message().contains("full"), "{e}");
        assert_eq!(temp_files(&node.disks[0]), 0, "nothing partial left");
        assert!(!node.disks[0].is_failed(), "a full disk is not a failed disk");
        // The other disk keeps working, over the same client.
        node.put(first(2, id, 1, data.len() as u64), shards[1].clone()).await.unwrap();
        let (got, end) = node.get(shard_ref(2, id, 1), 0, shards[1].len() as u64).await;
        end.unwrap();
        assert_eq!(got, shards[1]);
        node.stop().await;
    };
    let outcome = tokio::spawn(result).await;
    let unmounted = std::process::Command::new("umount").arg(&small).status().unwrap().success();
    assert!(unmounted, "umount tmpfs");
    if let Err(p) = outcome {
        std::panic::resume_unwind(p.into_panic());
    }
}

/// A reader that goes away after one frame of a long get: the datanode
/// stops sending from the file (the socket errors), serves the next get of
/// the same shard whole, and shuts down without waiting on the dead one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_abandoned_mid_shard_ends_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(disks(dir.path(), 1)).await;
    let id = DataId::new();
    // Shards of ~12 MiB: more than loopback's socket buffers hold, so the
    // datanode is still sending when the reader leaves.
    let data = random(48 << 20);
    let shards = encode(id, &data);
    let stripes = shards[0].len() as u64;
    node.put(first(1, id, 0, data.len() as u64), shards[0].clone()).await.unwrap();
    for _ in 0..3 {
        let req = GetShardRequest { shard: Some(shard_ref(1, id, 0)), first_stripe: 0, stripe_count: stripes };
        let mut s = node.wire.get_shard(&node.addr, req).await.unwrap();
        assert_eq!(s.message().await.unwrap().unwrap(), shards[0][0]);
        drop(s);
    }
    let (got, end) = node.get(shard_ref(1, id, 0), 0, stripes).await;
    end.unwrap();
    assert!(got == shards[0], "the whole shard after abandoned gets");
    node.stop().await;
}
