//! How an object's bytes are cut into stripes and blocks.
//!
//! A full stripe carries `k · block_len` bytes of object data. The last stripe
//! is shorter: its blocks shrink to the smallest aligned length that holds the
//! remaining bytes, and are zero-padded. The true object length is kept by the
//! caller (the object record), so padding never reaches a reader.

use std::ops::Range;

use crate::EcError;

/// Every block length is a multiple of this, as SIMD kernels want.
pub const BLOCK_ALIGN: usize = 64;
/// Default bytes of object data per stripe.
pub const DEFAULT_STRIPE_SIZE: usize = 1024 * 1024;
/// Largest k Tessera accepts.
pub const MAX_DATA_SHARDS: usize = 16;
/// Largest m Tessera accepts.
pub const MAX_PARITY_SHARDS: usize = 8;
/// Largest block Tessera accepts (a stripe size of 16 · 64 MiB would be silly).
const MAX_BLOCK_LEN: usize = 64 * 1024 * 1024;

/// The stripe geometry of one object: k, m and the full block length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StripeLayout {
    k: usize,
    m: usize,
    block_len: usize,
}

fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

impl StripeLayout {
    /// A layout for (k, m) whose full stripes hold about `stripe_size` bytes
    /// (rounded up so that each block is a multiple of [`BLOCK_ALIGN`]).
    pub fn new(k: usize, m: usize, stripe_size: usize) -> Result<Self, EcError> {
        if k == 0 || k > MAX_DATA_SHARDS || m > MAX_PARITY_SHARDS {
            return Err(EcError::InvalidProfile { k, m, reason: "k must be 1..=16 and m 0..=8" });
        }
        if stripe_size == 0 {
            return Err(EcError::InvalidProfile { k, m, reason: "stripe size must be positive" });
        }
        let block_len = round_up(stripe_size.div_ceil(k), BLOCK_ALIGN);
        if block_len > MAX_BLOCK_LEN {
            return Err(EcError::InvalidProfile { k, m, reason: "block length above 64 MiB" });
        }
        Ok(StripeLayout { k, m, block_len })
    }

    /// Rebuilds a layout from a persisted full block length.
    pub fn from_block_len(k: usize, m: usize, block_len: usize) -> Result<Self, EcError> {
        if block_len == 0 || !block_len.is_multiple_of(BLOCK_ALIGN) {
            return Err(EcError::InvalidProfile { k, m, reason: "block length must be a positive multiple of 64" });
        }
        let layout = StripeLayout::new(k, m, block_len * k)?;
        debug_assert_eq!(layout.block_len, block_len);
        Ok(layout)
    }

    /// Data blocks per stripe.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Parity blocks per stripe.
    pub fn m(&self) -> usize {
        self.m
    }

    /// k + m: blocks per stripe, shards per object.
    pub fn shard_count(&self) -> usize {
        self.k + self.m
    }

    /// Length of a block of a full stripe.
    pub fn block_len(&self) -> usize {
        self.block_len
    }

    /// Object bytes in a full stripe.
    pub fn stripe_data_len(&self) -> usize {
        self.block_len * self.k
    }

    /// Stripes needed for an object of `object_len` bytes (0 for an empty one).
    pub fn stripe_count(&self, object_len: u64) -> u64 {
        object_len.div_ceil(self.stripe_data_len() as u64)
    }

    /// Object offset where stripe `stripe` starts.
    pub fn stripe_offset(&self, stripe: u64) -> u64 {
        stripe * self.stripe_data_len() as u64
    }

    /// True object bytes carried by stripe `stripe`.
    pub fn stripe_len(&self, object_len: u64, stripe: u64) -> usize {
        let start = self.stripe_offset(stripe);
        (object_len.saturating_sub(start)).min(self.stripe_data_len() as u64) as usize
    }

    /// Block length of stripe `stripe`: the full length, or less for the last.
    pub fn block_len_of(&self, object_len: u64, stripe: u64) -> usize {
        let len = self.stripe_len(object_len, stripe);
        if len == self.stripe_data_len() { self.block_len } else { round_up(len.div_ceil(self.k), BLOCK_ALIGN) }
    }

    /// Bytes of one shard (blocks only, no framing).
    pub fn shard_len(&self, object_len: u64) -> u64 {
        let stripes = self.stripe_count(object_len);
        if stripes == 0 {
            return 0;
        }
        (stripes - 1) * self.block_len as u64 + self.block_len_of(object_len, stripes - 1) as u64
    }

    /// Bytes of one framed shard: every block preceded by its 32-byte hash.
    pub fn framed_shard_len(&self, object_len: u64) -> u64 {
        self.shard_len(object_len) + self.stripe_count(object_len) * crate::HASH_LEN as u64
    }

    /// Where stripe `stripe`'s frame starts inside a framed shard.
    pub fn frame_offset(&self, stripe: u64) -> u64 {
        stripe * (self.block_len + crate::HASH_LEN) as u64
    }

    /// The stripes that hold the bytes `range` of an object of `object_len`
    /// bytes. An empty or out-of-bounds range needs no stripes.
    pub fn stripes_for_range(&self, object_len: u64, range: Range<u64>) -> Range<u64> {
        let end = range.end.min(object_len);
        if range.start >= end {
            return 0..0;
        }
        let per = self.stripe_data_len() as u64;
        range.start / per..end.div_ceil(per)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_len_is_aligned_and_covers_the_stripe() {
        for k in 1..=MAX_DATA_SHARDS {
            let l = StripeLayout::new(k, 2, DEFAULT_STRIPE_SIZE).unwrap();
            assert_eq!(l.block_len() % BLOCK_ALIGN, 0);
            assert!(l.stripe_data_len() >= DEFAULT_STRIPE_SIZE);
            assert!(l.stripe_data_len() < DEFAULT_STRIPE_SIZE + k * BLOCK_ALIGN);
        }
    }

    #[test]
    fn last_stripe_shrinks() {
        let l = StripeLayout::new(4, 2, 1 << 20).unwrap();
        assert_eq!(l.block_len(), 256 * 1024);
        assert_eq!(l.stripe_count(0), 0);
        assert_eq!(l.shard_len(0), 0);
        assert_eq!(l.stripe_count(1), 1);
        assert_eq!(l.block_len_of(1, 0), 64);
        let len = (1 << 20) + 1000;
        assert_eq!(l.stripe_count(len), 2);
        assert_eq!(l.stripe_len(len, 1), 1000);
        assert_eq!(l.block_len_of(len, 1), 256);
        assert_eq!(l.shard_len(len), 256 * 1024 + 256);
        assert_eq!(l.framed_shard_len(len), 256 * 1024 + 256 + 64);
    }

    #[test]
    fn ranges_map_to_stripes() {
        let l = StripeLayout::new(2, 1, 128).unwrap();
        assert_eq!(l.stripe_data_len(), 128);
        assert_eq!(l.stripes_for_range(1000, 0..1), 0..1);
        assert_eq!(l.stripes_for_range(1000, 127..129), 0..2);
        assert_eq!(l.stripes_for_range(1000, 128..256), 1..2);
        assert_eq!(l.stripes_for_range(1000, 900..5000), 7..8);
        assert_eq!(l.stripes_for_range(1000, 1000..1001), 0..0);
        assert_eq!(l.stripes_for_range(1000, 5..5), 0..0);
    }

    #[test]
    fn refuses_bad_profiles() {
        assert!(StripeLayout::new(0, 1, 1024).is_err());
        assert!(StripeLayout::new(17, 1, 1024).is_err());
        assert!(StripeLayout::new(4, 9, 1024).is_err());
        assert!(StripeLayout::new(4, 2, 0).is_err());
        assert!(StripeLayout::from_block_len(4, 2, 100).is_err());
        assert_eq!(StripeLayout::from_block_len(4, 2, 256 * 1024).unwrap(), StripeLayout::new(4, 2, 1 << 20).unwrap());
    }
}
