//! The datanode crate's error type.

use tessera_common::DiskId;

use crate::ShardKey;

/// What a shard operation can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// No such shard on this disk.
    #[error("shard {0} not found")]
    Missing(ShardKey),
    /// The shard exists but a block (or its header) fails verification.
    #[error("shard {key} is corrupt at stripe {stripe:?}: {reason}")]
    Corrupt {
        /// The shard.
        key: ShardKey,
        /// The first bad stripe, if the damage is in a block.
        stripe: Option<u64>,
        /// What was wrong.
        reason: String,
    },
    /// The disk is full: nothing was stored.
    #[error("disk {0} is full")]
    NoSpace(DiskId),
    /// The disk failed a write or fsync earlier and takes no more writes.
    #[error("disk {0} has failed and is read-only until it is replaced")]
    DiskFailed(DiskId),
    /// The caller's request does not fit the shard (bad range, wrong block
    /// count, a block whose hash does not match what was sent).
    #[error("bad shard request: {0}")]
    BadRequest(String),
    /// Any other I/O failure, with context.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

impl ShardError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ShardError::Io { context: context.into(), source }
    }
}
