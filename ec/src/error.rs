//! The crate's one error type.

/// What can go wrong while coding or checking stripes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EcError {
    /// The (k, m) profile or stripe size is outside what Tessera supports.
    #[error("invalid erasure profile k={k} m={m}: {reason}")]
    InvalidProfile {
        /// Data shards asked for.
        k: usize,
        /// Parity shards asked for.
        m: usize,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A record names a codec this build does not know.
    #[error("unknown codec id {0}")]
    UnknownCodec(u16),
    /// Fewer than k good blocks remain for a stripe: the data cannot be rebuilt.
    #[error("stripe {stripe}: {available} good shards, {needed} needed (corrupt: {corrupt:?})")]
    NotEnoughShards {
        /// The stripe that cannot be decoded.
        stripe: u64,
        /// k.
        needed: usize,
        /// Blocks that were present and verified.
        available: usize,
        /// Shard indexes whose block failed verification.
        corrupt: Vec<usize>,
    },
    /// A framed block failed its length or hash check.
    #[error("block of shard {shard}, stripe {stripe} is corrupt")]
    BlockCorrupt {
        /// Shard index.
        shard: usize,
        /// Stripe index.
        stripe: u64,
    },
    /// The caller passed buffers whose count or length do not fit the layout.
    #[error("bad buffers: {0}")]
    BadInput(&'static str),
    /// The backing library refused an operation the wrapper had validated.
    #[error("codec backend failed: {0}")]
    Backend(String),
}
