//! Helpers the metadata state machine's tests share.

#![allow(dead_code)]

use std::path::Path;

use rocksdb::WriteBatch;
use tessera_metadata::{MetaError, MetaState, open_db};
use tessera_rpc::proto::meta::command_result::Outcome;
use tessera_rpc::proto::meta::*;

pub fn md5_hex(n: u64) -> String {
    format!("{:032x}", u128::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835))
}

/// A body: inline bytes or a shard set with a unique data id and a pg.
pub fn body(seq: u64, choice: u8) -> Body {
    if choice.is_multiple_of(2) {
        Body { kind: Some(body::Kind::InlineData(vec![choice; (choice % 7) as usize])), ..Default::default() }
    } else {
        let mut data_id = [0u8; 16];
        data_id[..8].copy_from_slice(&seq.to_be_bytes());
        Body {
            kind: Some(body::Kind::Shards(ShardSet {
                data_id: data_id.to_vec(),
                ec: Some(EcProfile { codec: 1, k: 2, m: 1, block_len: 4096 }),
                pg: u32::from(choice % 3),
                // Three placements, one with two shards on one disk.
                disks: [vec![1, 2, 3], vec![2, 4, 1], vec![3, 3, 4]][(seq % 3) as usize].clone(),
                missing: vec![],
                stored_len: 0,
            })),
            seal_salt: Vec::new(),
        }
    }
}

pub fn shards_of(b: &Option<Body>) -> Option<ShardSet> {
    match b {
        Some(Body { kind: Some(body::Kind::Shards(s)), .. }) => Some(s.clone()),
        _ => None,
    }
}

pub fn apply_real(st: &MetaState, index: u64, cmd: &Command) -> Result<Option<ObjectRecord>, MetaError> {
    let mut batch = WriteBatch::default();
    let r = st.apply(index, cmd, &mut batch)?;
    st.db().write(batch)?;
    match r.outcome.unwrap() {
        Outcome::Done(_) | Outcome::ClusterCa(_) => Ok(None),
        Outcome::Object(o) => Ok(Some(o)),
        Outcome::Failure(f) => Err(MetaError::from_failure(&f)),
        Outcome::Batch(b) => panic!("a single command answered as a batch: {b:?}"),
    }
}

pub fn open(path: &Path) -> MetaState {
    MetaState::new(open_db(path).unwrap())
}
