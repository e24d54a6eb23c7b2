//! Shards of disks served by this same process: `tessera server` runs the
//! gateway and the datanode together, and there the gateway hands shard
//! frames to the datanode's service directly instead of through loopback
//! TCP (three fewer copies of every byte: send, receive, and the receive
//! buffer). Same checks, same errors, same metrics as over the network:
//! the datanode still verifies every block before storing or returning it.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tonic::Status;

use crate::proto::data::{GetShardRequest, PutShardRequest, ShardFrame};

/// A datanode's shard service, callable within the process.
#[tonic::async_trait]
pub trait LocalShards: Send + Sync + 'static {
    /// The disks it serves.
    fn disks(&self) -> HashSet<u32>;

    /// Stores one shard: `first` names it and its geometry, `frames` yields
    /// its frames in stripe order; closing `frames` before the last stripe
    /// stores nothing. Acknowledged once fsynced and visible.
    async fn put_shard(&self, first: PutShardRequest, frames: mpsc::Receiver<ShardFrame>) -> Result<(), Status>;

    /// Starts reading stripes of a shard.
    async fn get_shard(&self, req: GetShardRequest) -> Result<LocalFrames, Status>;
}

/// A handle on the datanode of this process, for the gateway.
#[derive(Clone)]
pub struct LocalDatanode {
    shards: Arc<dyn LocalShards>,
    disks: Arc<HashSet<u32>>,
}

impl std::fmt::Debug for LocalDatanode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalDatanode").field("disks", &self.disks).finish_non_exhaustive()
    }
}

impl LocalDatanode {
    /// A handle on `shards`.
    pub fn new(shards: impl LocalShards) -> Self {
        let disks = Arc::new(shards.disks());
        LocalDatanode { shards: Arc::new(shards), disks }
    }

    /// Whether `disk` is served by this process.
    pub fn serves(&self, disk: u32) -> bool {
        self.disks.contains(&disk)
    }

    /// See [`LocalShards::put_shard`].
    pub async fn put_shard(&self, first: PutShardRequest, frames: mpsc::Receiver<ShardFrame>) -> Result<(), Status> {
        self.shards.put_shard(first, frames).await
    }

    /// See [`LocalShards::get_shard`].
    pub async fn get_shard(&self, req: GetShardRequest) -> Result<LocalFrames, Status> {
        self.shards.get_shard(req).await
    }
}

/// The frames of one local get, each verified by the datanode.
#[derive(Debug)]
pub struct LocalFrames {
    rx: mpsc::Receiver<Result<Bytes, Status>>,
    left: u64,
}

impl LocalFrames {
    /// Frames as the datanode reads them (hash then block), `count` of them.
    pub fn new(rx: mpsc::Receiver<Result<Bytes, Status>>, count: u64) -> Self {
        LocalFrames { rx, left: count }
    }

    /// The next frame; `None` after the last.
    pub async fn message(&mut self) -> Result<Option<ShardFrame>, Status> {
        match self.rx.recv().await {
            Some(Ok(f)) if f.len() > crate::wire::HASH_BYTES => {
                self.left = self.left.saturating_sub(1);
                Ok(Some(ShardFrame {
                    hash: f.slice(..crate::wire::HASH_BYTES),
                    block: f.slice(crate::wire::HASH_BYTES..),
                }))
            }
            Some(Ok(_)) => Err(Status::internal("a frame without a block")),
            Some(Err(status)) => Err(status),
            None if self.left == 0 => Ok(None),
            None => Err(Status::internal(format!("shard reader stopped with {} stripes to go", self.left))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reader_that_stops_early_is_an_error_not_an_end() {
        let (tx, rx) = mpsc::channel(4);
        let mut frame = vec![1u8; crate::wire::HASH_BYTES];
        frame.extend_from_slice(b"abc");
        tx.send(Ok(Bytes::from(frame))).await.unwrap();
        drop(tx);
        let mut f = LocalFrames::new(rx, 2);
        assert_eq!(&f.message().await.unwrap().unwrap().block[..], b"abc");
        assert_eq!(f.message().await.unwrap_err().code(), tonic::Code::Internal);
        let (tx, rx) = mpsc::channel(1);
        drop(tx);
        assert!(LocalFrames::new(rx, 0).message().await.unwrap().is_none());
    }
}
