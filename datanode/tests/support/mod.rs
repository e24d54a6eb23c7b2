//! Helpers shared by the datanode's tests (each test crate uses some).

#![allow(dead_code)]

use bytes::Bytes;
use tessera_common::DataId;
use tessera_ec::{PieceId, StripeCoder};
use tessera_rpc::proto::data::ShardFrame;

/// Every shard's frames for `data` encoded by `c`, shard by shard.
pub fn encode(c: &StripeCoder, id: DataId, data: &[u8]) -> Vec<Vec<ShardFrame>> {
    let l = *c.layout();
    let piece = PieceId { data_id: *id.as_bytes(), part: 0 };
    let mut shards = vec![Vec::new(); l.k() + l.m()];
    for s in 0..l.stripe_count(data.len() as u64) {
        let start = l.stripe_offset(s) as usize;
        let end = start + l.stripe_len(data.len() as u64, s);
        let enc = c.encode_stripe(piece, s, Bytes::copy_from_slice(&data[start..end])).expect("encode");
        for (i, b) in enc.blocks.iter().enumerate() {
            shards[i].push(ShardFrame { hash: Bytes::copy_from_slice(&b.hash), block: b.data.clone() });
        }
    }
    shards
}

/// Bytes of `path` in the page cache, by `fincore` (util-linux).
pub fn cached_bytes(path: &std::path::Path) -> u64 {
    let out = std::process::Command::new("fincore")
        .args(["--bytes", "--noheadings", "--raw", "-o", "RES"])
        .arg(path)
        .output()
        .expect("fincore (util-linux)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("fincore prints a number")
}
