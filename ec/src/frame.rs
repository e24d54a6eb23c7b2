//! Bitrot framing: every block is stored as `[hash (32 B)][block]`.
//!
//! The hash is BLAKE3 keyed with the block's address (object data id, part,
//! shard index, stripe index), so a block that is intact but in the wrong
//! place — another stripe, another shard, another object — fails too.

use crate::EcError;

/// Length of the hash that precedes every block.
pub const HASH_LEN: usize = 32;

/// Where a block belongs. Folded into the hash key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockAddress {
    /// The object's data id (a UUID), as bytes.
    pub data_id: [u8; 16],
    /// Multipart part number; 0 for a simple object.
    pub part: u32,
    /// Shard index, 0..k+m.
    pub shard: u16,
    /// Stripe index within the object or part.
    pub stripe: u64,
}

/// Version tag of the key derivation, so it can change without confusion.
const KEY_VERSION: [u8; 2] = *b"T1";

impl BlockAddress {
    fn key(&self) -> [u8; 32] {
        let mut key = [0u8; 32];
        key[..2].copy_from_slice(&KEY_VERSION);
        key[2..18].copy_from_slice(&self.data_id);
        key[18..22].copy_from_slice(&self.part.to_le_bytes());
        key[22..24].copy_from_slice(&self.shard.to_le_bytes());
        key[24..32].copy_from_slice(&self.stripe.to_le_bytes());
        key
    }
}

/// The hash stored in front of `block` at address `addr`.
pub fn block_hash(addr: &BlockAddress, block: &[u8]) -> [u8; HASH_LEN] {
    *blake3::keyed_hash(&addr.key(), block).as_bytes()
}

/// Checks a frame `[hash][block]` that should hold `block_len` bytes of block
/// at `addr`; returns the block. Any length or hash mismatch is
/// [`EcError::BlockCorrupt`].
pub fn verify_frame<'a>(addr: &BlockAddress, frame: &'a [u8], block_len: usize) -> Result<&'a [u8], EcError> {
    let corrupt = || EcError::BlockCorrupt { shard: addr.shard as usize, stripe: addr.stripe };
    if frame.len() != HASH_LEN + block_len {
        return Err(corrupt());
    }
    let (stored, block) = frame.split_at(HASH_LEN);
    // blake3::Hash compares in constant time; timing does not matter here, but it is free.
    if blake3::Hash::from_bytes(block_hash(addr, block)) != blake3::Hash::from_slice(stored).map_err(|_| corrupt())? {
        return Err(corrupt());
    }
    Ok(block)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(stripe: u64, shard: u16) -> BlockAddress {
        BlockAddress { data_id: [7; 16], part: 0, shard, stripe }
    }

    fn frame(a: &BlockAddress, block: &[u8]) -> Vec<u8> {
        let mut f = block_hash(a, block).to_vec();
        f.extend_from_slice(block);
        f
    }

    #[test]
    fn good_frame_verifies() {
        let a = addr(3, 1);
        let f = frame(&a, b"hello block");
        assert_eq!(verify_frame(&a, &f, 11).unwrap(), b"hello block");
    }

    #[test]
    fn misplaced_frame_fails() {
        let f = frame(&addr(3, 1), b"hello block");
        assert!(verify_frame(&addr(4, 1), &f, 11).is_err());
        assert!(verify_frame(&addr(3, 2), &f, 11).is_err());
        let mut other = addr(3, 1);
        other.data_id[0] = 8;
        assert!(verify_frame(&other, &f, 11).is_err());
        other = addr(3, 1);
        other.part = 1;
        assert!(verify_frame(&other, &f, 11).is_err());
    }

    #[test]
    fn wrong_length_fails() {
        let a = addr(0, 0);
        let f = frame(&a, b"abc");
        assert!(verify_frame(&a, &f, 4).is_err());
        assert!(verify_frame(&a, &f[..f.len() - 1], 2).is_err());
        assert!(verify_frame(&a, &[], 0).is_err());
    }
}
