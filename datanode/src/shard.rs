//! The shard file format (DESIGN.md §5).
//!
//! ```text
//!  header (64 bytes)
//!    0  magic "TSHD"          4   format version u16     6  header length u16
//!    8  data id [16]         24   part u32              28  shard index u16
//!   30  k u8                 31   m u8                  32  codec u16
//!   34  reserved u16         36   block length u32      40  piece length u64
//!   48  reserved [8]         56   blake3(bytes 0..56)[..8]
//!  then per stripe: [keyed blake3 of the block, 32 bytes][block]
//! ```
//!
//! The header checksum makes a damaged header an explicit error; block
//! hashes are keyed with (data id, part, shard, stripe) by `tessera-ec`, so a
//! block in the wrong file or place fails like a flipped bit.

use std::fmt;

use tessera_common::DataId;
use tessera_ec::{HASH_LEN, StripeLayout};

use crate::ShardError;

/// Magic bytes at the start of every shard file.
pub const MAGIC: &[u8; 4] = b"TSHD";
/// Format version written by this build.
pub const FORMAT_VERSION: u16 = 1;
/// Bytes of the header.
pub const HEADER_LEN: usize = 64;

/// Which shard: a piece (data id and part) and a shard index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardKey {
    /// The body's data id.
    pub data_id: DataId,
    /// Multipart part number, 0 for a simple object.
    pub part: u32,
    /// Shard index within the k + m of the piece.
    pub shard: u16,
}

impl fmt::Display for ShardKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.data_id, self.part, self.shard)
    }
}

impl ShardKey {
    /// The file name: `<data id hex>.<part>.<shard>`.
    pub fn file_name(&self) -> String {
        self.to_string()
    }

    /// Parses a file name back into a key.
    pub fn parse_file_name(name: &str) -> Option<ShardKey> {
        let mut it = name.split('.');
        let data_id = it.next()?.parse().ok()?;
        let part = it.next()?.parse().ok()?;
        let shard = it.next()?.parse().ok()?;
        it.next().is_none().then_some(ShardKey { data_id, part, shard })
    }

    /// The fan-out directory (one of 256) from the id's last byte: a
    /// UUIDv7 starts with a timestamp, so its leading bytes would pile every
    /// new shard into one directory; the tail is random.
    pub fn fan_out(&self) -> u8 {
        self.data_id.as_bytes()[15]
    }
}

/// What a shard file says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardHeader {
    /// Which shard.
    pub key: ShardKey,
    /// Codec id (tessera_ec::CodecId).
    pub codec: u16,
    /// Data shards of the piece.
    pub k: u8,
    /// Parity shards of the piece.
    pub m: u8,
    /// Block length of a full stripe.
    pub block_len: u32,
    /// True length of the piece (object or part) in bytes.
    pub piece_len: u64,
}

impl ShardHeader {
    /// The stripe layout of the piece.
    pub fn layout(&self) -> Result<StripeLayout, ShardError> {
        StripeLayout::from_block_len(self.k as usize, self.m as usize, self.block_len as usize)
            .map_err(|e| ShardError::BadRequest(format!("shard header: {e}")))
    }

    /// Stripes (blocks) in the shard.
    pub fn stripes(&self) -> Result<u64, ShardError> {
        Ok(self.layout()?.stripe_count(self.piece_len))
    }

    /// Length of block `stripe` (the last may be shorter).
    pub fn block_len_of(&self, stripe: u64) -> Result<usize, ShardError> {
        Ok(self.layout()?.block_len_of(self.piece_len, stripe))
    }

    /// Size of the whole file: header and framed blocks.
    pub fn file_len(&self) -> Result<u64, ShardError> {
        Ok(HEADER_LEN as u64 + self.layout()?.framed_shard_len(self.piece_len))
    }

    /// Offset of stripe `stripe`'s frame in the file.
    pub fn frame_offset(&self, stripe: u64) -> Result<u64, ShardError> {
        Ok(HEADER_LEN as u64 + self.layout()?.frame_offset(stripe))
    }

    /// Checks the header is usable (valid profile, shard index in range).
    pub fn validate(&self) -> Result<(), ShardError> {
        self.layout()?;
        if usize::from(self.key.shard) >= usize::from(self.k) + usize::from(self.m) {
            return Err(ShardError::BadRequest(format!(
                "shard index {} out of range for {}+{}",
                self.key.shard, self.k, self.m
            )));
        }
        Ok(())
    }

    /// The 64 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..4].copy_from_slice(MAGIC);
        h[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        h[6..8].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
        h[8..24].copy_from_slice(self.key.data_id.as_bytes());
        h[24..28].copy_from_slice(&self.key.part.to_le_bytes());
        h[28..30].copy_from_slice(&self.key.shard.to_le_bytes());
        h[30] = self.k;
        h[31] = self.m;
        h[32..34].copy_from_slice(&self.codec.to_le_bytes());
        h[36..40].copy_from_slice(&self.block_len.to_le_bytes());
        h[40..48].copy_from_slice(&self.piece_len.to_le_bytes());
        let sum = blake3::hash(&h[..56]);
        h[56..64].copy_from_slice(&sum.as_bytes()[..8]);
        h
    }

    /// Parses and checks header bytes read from the file of `expected`.
    pub fn decode(bytes: &[u8], expected: ShardKey) -> Result<Self, ShardError> {
        let corrupt = |reason: &str| ShardError::Corrupt { key: expected, stripe: None, reason: reason.into() };
        if bytes.len() < HEADER_LEN || &bytes[0..4] != MAGIC {
            return Err(corrupt("not a shard file"));
        }
        let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        if u16_at(4) != FORMAT_VERSION {
            return Err(corrupt(&format!("unknown format version {}", u16_at(4))));
        }
        if blake3::hash(&bytes[..56]).as_bytes()[..8] != bytes[56..64] {
            return Err(corrupt("header checksum mismatch"));
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&bytes[8..24]);
        let mut len = [0u8; 8];
        len.copy_from_slice(&bytes[40..48]);
        let h = ShardHeader {
            key: ShardKey { data_id: DataId::from_bytes(id), part: u32_at(24), shard: u16_at(28) },
            codec: u16_at(32),
            k: bytes[30],
            m: bytes[31],
            block_len: u32_at(36),
            piece_len: u64::from_le_bytes(len),
        };
        if h.key != expected {
            return Err(corrupt("header names another shard"));
        }
        h.validate().map_err(|e| corrupt(&e.to_string()))?;
        Ok(h)
    }
}

/// Frame length of stripe `stripe`: hash plus block.
pub(crate) fn frame_len(h: &ShardHeader, stripe: u64) -> Result<usize, ShardError> {
    Ok(HASH_LEN + h.block_len_of(stripe)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> ShardHeader {
        ShardHeader {
            key: ShardKey { data_id: DataId::new(), part: 3, shard: 5 },
            codec: 1,
            k: 4,
            m: 2,
            block_len: 256 * 1024,
            piece_len: 3 << 20,
        }
    }

    #[test]
    fn header_round_trips_and_detects_damage() {
        let h = header();
        let b = h.encode();
        assert_eq!(ShardHeader::decode(&b, h.key).unwrap(), h);
        for i in 0..HEADER_LEN {
            let mut bad = b;
            bad[i] ^= 0x10;
            assert!(ShardHeader::decode(&bad, h.key).is_err(), "flip at byte {i} undetected");
        }
        let other = ShardKey { shard: 4, ..h.key };
        assert!(ShardHeader::decode(&b, other).is_err());
        assert!(ShardHeader::decode(&b[..10], h.key).is_err());
    }

    #[test]
    fn names_round_trip_and_fan_out_uses_the_random_tail() {
        let k = header().key;
        assert_eq!(ShardKey::parse_file_name(&k.file_name()), Some(k));
        assert_eq!(ShardKey::parse_file_name("x.1.2"), None);
        assert_eq!(ShardKey::parse_file_name(&format!("{}.1", k.data_id)), None);
        let dirs: std::collections::HashSet<_> =
            (0..64).map(|_| ShardKey { data_id: DataId::new(), part: 0, shard: 0 }.fan_out()).collect();
        assert!(dirs.len() > 32, "ids made in the same millisecond still spread");
    }

    #[test]
    fn sizes_follow_the_layout() {
        let h = header();
        assert_eq!(h.stripes().unwrap(), 3);
        assert_eq!(h.file_len().unwrap(), 64 + 3 * (32 + 256 * 1024));
        let bad = ShardHeader { key: ShardKey { shard: 6, ..h.key }, ..h };
        assert!(bad.validate().is_err());
    }
}
