//! The datanode gRPC service over loopback: streamed puts and gets, and the
//! distinct errors for missing, corrupt, bad input and early stream ends.

// A test that meets an error should fail loudly.
#![allow(clippy::unwrap_used)]

mod support;

use bytes::Bytes;
use rand::RngCore;
use tessera_common::{DataId, DiskId};
use tessera_datanode::{DataService, FsDisk, ShardKey, server_builder};
use tessera_ec::{CodecId, PieceId, StripeCoder, StripeLayout, new_codec};
use tessera_rpc::proto::data::data_client::DataClient;
use tessera_rpc::proto::data::*;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Code;
use tonic::transport::Channel;

const K: usize = 4;
const M: usize = 2;

struct Node {
    client: DataClient<Channel>,
    disks: Vec<FsDisk>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    _dir: tempfile::TempDir,
}

async fn start() -> Node {
    // On a real disk (the target folder), not a tmpfs: see the page-cache check.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let disks: Vec<FsDisk> =
        (1..=2).map(|i| FsDisk::open(DiskId(i), &dir.path().join(format!("d{i}"))).unwrap()).collect();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let svc = DataService::server(disks.clone());
    let task = tokio::spawn(server_builder().add_service(svc).serve_with_incoming_shutdown(
        TcpListenerStream::new(listener),
        async {
            rx.await.ok();
        },
    ));
    let client = DataClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
        .max_decoding_message_size(tessera_datanode::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(tessera_datanode::MAX_MESSAGE_BYTES);
    Node { client, disks, stop, task, _dir: dir }
}

impl Node {
    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

fn coder() -> StripeCoder {
    StripeCoder::new(new_codec(CodecId::DEFAULT, K, M).unwrap(), StripeLayout::new(K, M, 1 << 20).unwrap()).unwrap()
}

fn geometry(len: u64) -> ShardGeometry {
    ShardGeometry {
        codec: u32::from(CodecId::DEFAULT.as_u16()),
        k: K as u32,
        m: M as u32,
        block_len: coder().layout().block_len() as u32,
        piece_len: len,
    }
}

fn shard_ref(disk: u32, id: DataId, shard: u32) -> ShardRef {
    ShardRef { disk, data_id: Bytes::copy_from_slice(id.as_bytes()), part: 0, shard }
}

/// Every shard's frames for `data`, shard by shard.
fn encode(id: DataId, data: &[u8]) -> Vec<Vec<ShardFrame>> {
    support::encode(&coder(), id, data)
}

fn put_messages(r: ShardRef, len: u64, frames: Vec<ShardFrame>) -> Vec<PutShardRequest> {
    let mut msgs = vec![PutShardRequest { shard: Some(r), geometry: Some(geometry(len)), frame: None }];
    msgs.extend(frames.into_iter().map(|f| PutShardRequest { shard: None, geometry: None, frame: Some(f) }));
    msgs
}

async fn get_all(c: &mut DataClient<Channel>, r: ShardRef, count: u64) -> Result<Vec<ShardFrame>, tonic::Status> {
    let mut s =
        c.get_shard(GetShardRequest { shard: Some(r), first_stripe: 0, stripe_count: count }).await?.into_inner();
    let mut out = Vec::new();
    while let Some(f) = s.message().await? {
        out.push(f);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_stream_in_and_out() {
    let mut node = start().await;
    let id = DataId::new();
    let mut data = vec![0u8; 5 << 20];
    rand::rng().fill_bytes(&mut data);
    let shards = encode(id, &data);
    let stripes = shards[0].len() as u64;
    for (i, frames) in shards.iter().enumerate() {
        let disk = 1 + (i % 2) as u32;
        let msgs = put_messages(shard_ref(disk, id, i as u32), data.len() as u64, frames.clone());
        node.client.put_shard(tokio_stream::iter(msgs)).await.unwrap();
    }
    // Acknowledged, each shard's pages then leave the page cache.
    for (i, _) in shards.iter().enumerate() {
        let path = node.disks[i % 2].shard_path(&ShardKey { data_id: id, part: 0, shard: i as u16 });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while support::cached_bytes(&path) > 0 {
            assert!(std::time::Instant::now() < deadline, "shard {i} still cached");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    // Read back k shards (two of them parity) and decode.
    let c = coder();
    let mut framed: Vec<Option<Bytes>> = vec![None; K + M];
    for i in [0usize, 2, 4, 5] {
        let got = get_all(&mut node.client, shard_ref(1 + (i % 2) as u32, id, i as u32), stripes).await.unwrap();
        assert_eq!(got.len() as u64, stripes);
        framed[i] =
            Some(Bytes::from(got.iter().flat_map(|f| f.hash.iter().chain(&f.block).copied()).collect::<Vec<u8>>()));
    }
    let (out, corrupt) = c
        .decode_range(PieceId { data_id: *id.as_bytes(), part: 0 }, data.len() as u64, &framed, 0..data.len() as u64)
        .unwrap();
    assert!(out == data && corrupt.is_empty());
    // A sub-range reads only its stripes.
    let mut s = node
        .client
        .get_shard(GetShardRequest { shard: Some(shard_ref(1, id, 0)), first_stripe: 2, stripe_count: 2 })
        .await
        .unwrap()
        .into_inner();
    let mut n = 0;
    while s.message().await.unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 2);
    let st = node.client.stat_shard(shard_ref(1, id, 0)).await.unwrap().into_inner();
    assert!(st.len > 0 && st.modified_ms > 0);
    let listed = node
        .client
        .list_shards(ListShardsRequest { disk: 1, after: String::new(), max: 100 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.shards.len(), 3);
    let usage = node.client.disk_usage(DiskUsageRequest {}).await.unwrap().into_inner();
    assert_eq!(usage.disks.iter().map(|d| d.disk).collect::<Vec<_>>(), [1, 2]);
    assert!(usage.disks.iter().all(|d| d.healthy && d.capacity_bytes > 0));
    assert!(node.client.delete_shard(shard_ref(1, id, 0)).await.unwrap().into_inner().existed);
    assert!(!node.client.delete_shard(shard_ref(1, id, 0)).await.unwrap().into_inner().existed);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_distinct_and_nothing_partial_is_stored() {
    let mut node = start().await;
    let id = DataId::new();
    let mut data = vec![0u8; 3 << 20];
    rand::rng().fill_bytes(&mut data);
    let shards = encode(id, &data);
    let stripes = shards[0].len() as u64;
    let len = data.len() as u64;

    // A stream that ends early: refused, nothing stored.
    let short = put_messages(shard_ref(1, id, 0), len, shards[0][..1].to_vec());
    let e = node.client.put_shard(tokio_stream::iter(short)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");
    assert_eq!(node.client.stat_shard(shard_ref(1, id, 0)).await.unwrap_err().code(), Code::NotFound);

    // A frame damaged in transit: refused, nothing stored.
    let mut bad = shards[1].clone();
    let mut damaged = bad[1].block.to_vec();
    damaged[7] ^= 1;
    bad[1].block = Bytes::from(damaged);
    let e = node.client.put_shard(tokio_stream::iter(put_messages(shard_ref(1, id, 1), len, bad))).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(node.client.stat_shard(shard_ref(1, id, 1)).await.unwrap_err().code(), Code::NotFound);

    // Unknown disk, malformed id, missing shard, bad range.
    let e = node
        .client
        .put_shard(tokio_stream::iter(put_messages(shard_ref(9, id, 0), len, shards[0].clone())))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let mut malformed = shard_ref(1, id, 0);
    malformed.data_id.truncate(15);
    assert_eq!(node.client.stat_shard(malformed).await.unwrap_err().code(), Code::InvalidArgument);
    assert_eq!(get_all(&mut node.client, shard_ref(1, id, 3), 1).await.unwrap_err().code(), Code::NotFound);
    node.client.put_shard(tokio_stream::iter(put_messages(shard_ref(1, id, 2), len, shards[2].clone()))).await.unwrap();
    assert_eq!(
        get_all(&mut node.client, shard_ref(1, id, 2), stripes + 1).await.unwrap_err().code(),
        Code::InvalidArgument
    );

    // A corrupt block on disk: the stream delivers the good stripes before
    // it, then DATA_LOSS — never the bad bytes.
    let key = tessera_datanode::ShardKey { data_id: id, part: 0, shard: 2 };
    let path = node.disks[0].shard_path(&key);
    let header = node.disks[0].read_header(&key).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[header.frame_offset(2).unwrap() as usize + 100] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let mut s = node
        .client
        .get_shard(GetShardRequest { shard: Some(shard_ref(1, id, 2)), first_stripe: 0, stripe_count: stripes })
        .await
        .unwrap()
        .into_inner();
    let mut good = 0;
    let err = loop {
        match s.message().await {
            Ok(Some(_)) => good += 1,
            Ok(None) => panic!("stream ended without reporting the corrupt block"),
            Err(e) => break e,
        }
    };
    assert_eq!(err.code(), Code::DataLoss);
    assert!(good <= 2, "nothing at or after the corrupt stripe was sent ({good} frames)");
    node.stop().await;
}
