//! Encoding and decoding of whole stripes with their framing.
//!
//! [`StripeCoder`] ties a codec to a layout. Encoding never copies a full
//! stripe's data blocks (they are slices of the input); decoding reads the
//! data blocks first and touches parity only when a data block is missing or
//! corrupt, so the happy path is a hash check per block and no decode.

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::frame::{BlockAddress, HASH_LEN, block_hash, verify_frame};
use crate::{EcError, ErasureCodec, StripeLayout};

/// One block and the hash stored in front of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FramedBlock {
    /// Keyed BLAKE3 of `data` at its address.
    pub hash: [u8; HASH_LEN],
    /// The block bytes.
    pub data: Bytes,
}

impl FramedBlock {
    /// The frame as one buffer (copies; writers may send hash and data separately).
    pub fn to_frame(&self) -> Bytes {
        let mut f = BytesMut::with_capacity(HASH_LEN + self.data.len());
        f.extend_from_slice(&self.hash);
        f.extend_from_slice(&self.data);
        f.freeze()
    }
}

/// The k + m blocks of one stripe, in shard order.
#[derive(Clone, Debug)]
pub struct EncodedStripe {
    /// Block `i` belongs to shard `i`.
    pub blocks: Vec<FramedBlock>,
}

/// The true bytes of one stripe, as the k data blocks trimmed to length.
#[derive(Clone, Debug)]
pub struct DecodedStripe {
    /// Pieces in order; together they are the stripe's bytes.
    pub chunks: Vec<Bytes>,
    /// Shards whose block was present but failed verification.
    pub corrupt: Vec<usize>,
    /// Whether parity had to be decoded (a data block was missing or corrupt).
    pub decoded: bool,
}

impl DecodedStripe {
    /// Total bytes.
    pub fn len(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum()
    }

    /// True when the stripe holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes `range` (relative to the stripe start) as zero-copy pieces.
    pub fn slice(&self, range: Range<usize>) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut pos = 0;
        for c in &self.chunks {
            let (start, end) = (pos, pos + c.len());
            pos = end;
            let (s, e) = (range.start.max(start), range.end.min(end));
            if s < e {
                out.push(c.slice(s - start..e - start));
            }
        }
        out
    }
}

/// Identifies the shard set of one object (or one multipart part).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PieceId {
    /// The object's data id, as bytes.
    pub data_id: [u8; 16],
    /// Part number; 0 for a simple object.
    pub part: u32,
}

impl PieceId {
    /// The address of block (`shard`, `stripe`) of this piece.
    pub fn block(&self, shard: usize, stripe: u64) -> BlockAddress {
        BlockAddress { data_id: self.data_id, part: self.part, shard: shard as u16, stripe }
    }
}

/// A codec bound to a stripe layout.
#[derive(Clone, Debug)]
pub struct StripeCoder {
    codec: Arc<dyn ErasureCodec>,
    layout: StripeLayout,
}

impl StripeCoder {
    /// Binds `codec` to `layout`; their (k, m) must agree.
    pub fn new(codec: Arc<dyn ErasureCodec>, layout: StripeLayout) -> Result<Self, EcError> {
        if codec.data_shards() != layout.k() || codec.parity_shards() != layout.m() {
            return Err(EcError::BadInput("codec and layout disagree on (k, m)"));
        }
        Ok(StripeCoder { codec, layout })
    }

    /// The layout.
    pub fn layout(&self) -> &StripeLayout {
        &self.layout
    }

    /// The codec.
    pub fn codec(&self) -> &Arc<dyn ErasureCodec> {
        &self.codec
    }

    /// Block length of a stripe holding `stripe_len` bytes.
    fn block_len_for(&self, stripe_len: usize) -> usize {
        if stripe_len == self.layout.stripe_data_len() {
            self.layout.block_len()
        } else {
            stripe_len.div_ceil(self.layout.k()).div_ceil(crate::BLOCK_ALIGN) * crate::BLOCK_ALIGN
        }
    }

    /// Encodes stripe `stripe` of `piece`, whose bytes are `data`: a full
    /// stripe, or the shorter last one. Returns k + m hashed blocks.
    pub fn encode_stripe(&self, piece: PieceId, stripe: u64, data: Bytes) -> Result<EncodedStripe, EcError> {
        let (k, m) = (self.layout.k(), self.layout.m());
        if data.is_empty() || data.len() > self.layout.stripe_data_len() {
            return Err(EcError::BadInput("a stripe holds 1..=stripe_data_len bytes"));
        }
        let block_len = self.block_len_for(data.len());
        let data = if data.len() == k * block_len {
            data
        } else {
            let mut padded = BytesMut::zeroed(k * block_len);
            padded[..data.len()].copy_from_slice(&data);
            padded.freeze()
        };
        let mut parity: Vec<Vec<u8>> = vec![vec![0u8; block_len]; m];
        {
            let data_refs: Vec<&[u8]> = data.chunks(block_len).collect();
            let mut parity_refs: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
            self.codec.encode(&data_refs, &mut parity_refs)?;
        }
        let mut blocks = Vec::with_capacity(k + m);
        for i in 0..k {
            let b = data.slice(i * block_len..(i + 1) * block_len);
            blocks.push(FramedBlock { hash: block_hash(&piece.block(i, stripe), &b), data: b });
        }
        for (j, p) in parity.into_iter().enumerate() {
            let b = Bytes::from(p);
            blocks.push(FramedBlock { hash: block_hash(&piece.block(k + j, stripe), &b), data: b });
        }
        Ok(EncodedStripe { blocks })
    }

    /// Verifies the frame of `shard`, if present; `None` when missing or bad.
    fn good_block(
        &self,
        piece: PieceId,
        stripe: u64,
        shard: usize,
        frame: Option<&Bytes>,
        block_len: usize,
        corrupt: &mut Vec<usize>,
    ) -> Option<Bytes> {
        let frame = frame?;
        match verify_frame(&piece.block(shard, stripe), frame, block_len) {
            Ok(_) => Some(frame.slice(HASH_LEN..)),
            Err(_) => {
                corrupt.push(shard);
                None
            }
        }
    }

    /// Verifies frames until k good blocks are found, data shards first.
    /// Returns the good blocks by shard index and the corrupt shards.
    fn gather(
        &self,
        piece: PieceId,
        stripe: u64,
        block_len: usize,
        frames: &[Option<Bytes>],
        all: bool,
    ) -> Result<(Vec<Option<Bytes>>, Vec<usize>), EcError> {
        let (k, n) = (self.layout.k(), self.layout.shard_count());
        if frames.len() != n {
            return Err(EcError::BadInput("decode needs k + m frame slots"));
        }
        let mut good: Vec<Option<Bytes>> = vec![None; n];
        let mut corrupt = Vec::new();
        let mut found = 0;
        for (i, f) in frames.iter().enumerate() {
            if found == k && !all {
                break;
            }
            good[i] = self.good_block(piece, stripe, i, f.as_ref(), block_len, &mut corrupt);
            found += usize::from(good[i].is_some());
        }
        if found < k {
            return Err(EcError::NotEnoughShards { stripe, needed: k, available: found, corrupt });
        }
        Ok((good, corrupt))
    }

    /// Decodes stripe `stripe` (holding `stripe_len` true bytes) from the
    /// framed blocks present in `frames` (k + m slots, `None` = missing).
    /// Every block used is verified first; with fewer than k good blocks the
    /// answer is [`EcError::NotEnoughShards`], never wrong bytes.
    pub fn decode_stripe(
        &self,
        piece: PieceId,
        stripe: u64,
        stripe_len: usize,
        frames: &[Option<Bytes>],
    ) -> Result<DecodedStripe, EcError> {
        if stripe_len == 0 || stripe_len > self.layout.stripe_data_len() {
            return Err(EcError::BadInput("a stripe holds 1..=stripe_data_len bytes"));
        }
        let block_len = self.block_len_for(stripe_len);
        let (good, corrupt) = self.gather(piece, stripe, block_len, frames, false)?;
        self.decode_verified(stripe_len, block_len, good, corrupt)
    }

    /// [`StripeCoder::decode_stripe`] for blocks whose hash travels apart
    /// from the data (as the datanode sends them): no frame is assembled, so
    /// no block is copied on the healthy path.
    pub fn decode_stripe_blocks(
        &self,
        piece: PieceId,
        stripe: u64,
        stripe_len: usize,
        blocks: &[Option<FramedBlock>],
    ) -> Result<DecodedStripe, EcError> {
        self.decode_stripe_blocks_trusting(piece, stripe, stripe_len, blocks, &[])
    }

    /// [`StripeCoder::decode_stripe_blocks`] where `verified[i]` says block
    /// `i` was checked against its hash in this process already (read by
    /// the datanode of this process, which verifies every frame it reads):
    /// only its length is checked, so its bytes are not hashed twice. Blocks
    /// past the end of `verified`, and every block that came over a network,
    /// are verified here.
    pub fn decode_stripe_blocks_trusting(
        &self,
        piece: PieceId,
        stripe: u64,
        stripe_len: usize,
        blocks: &[Option<FramedBlock>],
        verified: &[bool],
    ) -> Result<DecodedStripe, EcError> {
        let (k, n) = (self.layout.k(), self.layout.shard_count());
        if blocks.len() != n {
            return Err(EcError::BadInput("decode needs k + m block slots"));
        }
        if stripe_len == 0 || stripe_len > self.layout.stripe_data_len() {
            return Err(EcError::BadInput("a stripe holds 1..=stripe_data_len bytes"));
        }
        let block_len = self.block_len_for(stripe_len);
        let mut good: Vec<Option<Bytes>> = vec![None; n];
        let mut corrupt = Vec::new();
        let mut found = 0;
        for (i, b) in blocks.iter().enumerate() {
            if found == k {
                break;
            }
            let Some(b) = b else { continue };
            let ok = b.data.len() == block_len
                && (verified.get(i).copied().unwrap_or(false)
                    || blake3::Hash::from_bytes(block_hash(&piece.block(i, stripe), &b.data))
                        == blake3::Hash::from_bytes(b.hash));
            if ok {
                good[i] = Some(b.data.clone());
                found += 1;
            } else {
                corrupt.push(i);
            }
        }
        if found < k {
            return Err(EcError::NotEnoughShards { stripe, needed: k, available: found, corrupt });
        }
        self.decode_verified(stripe_len, block_len, good, corrupt)
    }

    /// Rebuilds the data blocks from verified ones and trims them to the stripe.
    fn decode_verified(
        &self,
        stripe_len: usize,
        block_len: usize,
        good: Vec<Option<Bytes>>,
        corrupt: Vec<usize>,
    ) -> Result<DecodedStripe, EcError> {
        let k = self.layout.k();
        let decoded = good[..k].iter().any(Option::is_none);
        let data_blocks: Vec<Bytes> = if decoded {
            let mut shards: Vec<Option<Vec<u8>>> = good.iter().map(|b| b.as_ref().map(|b| b.to_vec())).collect();
            self.codec.reconstruct(&mut shards, block_len, false)?;
            shards
                .into_iter()
                .take(k)
                .map(|s| s.map(Bytes::from).ok_or(EcError::Backend("codec left a data block empty".into())))
                .collect::<Result<_, _>>()?
        } else {
            good.into_iter().take(k).flatten().collect()
        };
        let mut chunks = Vec::with_capacity(k);
        let mut left = stripe_len;
        for b in data_blocks {
            if left == 0 {
                break;
            }
            let take = left.min(b.len());
            chunks.push(b.slice(..take));
            left -= take;
        }
        Ok(DecodedStripe { chunks, corrupt, decoded })
    }

    /// Rebuilds the blocks of the shards in `wanted` for one stripe (healing).
    /// All present frames are verified, so a corrupt block is never used as a
    /// source. Returns the rebuilt blocks (in `wanted` order) and the corrupt shards.
    pub fn reconstruct_blocks(
        &self,
        piece: PieceId,
        stripe: u64,
        stripe_len: usize,
        frames: &[Option<Bytes>],
        wanted: &[usize],
    ) -> Result<(Vec<FramedBlock>, Vec<usize>), EcError> {
        let (k, n) = (self.layout.k(), self.layout.shard_count());
        if wanted.iter().any(|&w| w >= n) {
            return Err(EcError::BadInput("wanted shard index out of range"));
        }
        if stripe_len == 0 || stripe_len > self.layout.stripe_data_len() {
            return Err(EcError::BadInput("a stripe holds 1..=stripe_data_len bytes"));
        }
        let block_len = self.block_len_for(stripe_len);
        let (good, corrupt) = self.gather(piece, stripe, block_len, frames, true)?;
        let mut shards: Vec<Option<Vec<u8>>> = good.iter().map(|b| b.as_ref().map(|b| b.to_vec())).collect();
        for &w in wanted {
            shards[w] = None; // rebuild even if present: the caller asked for it
        }
        let present = shards.iter().filter(|s| s.is_some()).count();
        if present < k {
            return Err(EcError::NotEnoughShards { stripe, needed: k, available: present, corrupt });
        }
        let with_parity = wanted.iter().any(|&w| w >= k);
        self.codec.reconstruct(&mut shards, block_len, with_parity)?;
        let mut out = Vec::with_capacity(wanted.len());
        for &w in wanted {
            let data = shards[w].take().map(Bytes::from).ok_or(EcError::Backend("codec left a block empty".into()))?;
            out.push(FramedBlock { hash: block_hash(&piece.block(w, stripe), &data), data });
        }
        Ok((out, corrupt))
    }

    /// Encodes a whole object held in memory into k + m framed shards.
    /// For tests and small tools; the gateway streams stripe by stripe.
    pub fn encode_object(&self, piece: PieceId, data: &[u8]) -> Result<Vec<Vec<u8>>, EcError> {
        let n = self.layout.shard_count();
        let len = data.len() as u64;
        let mut shards: Vec<Vec<u8>> =
            (0..n).map(|_| Vec::with_capacity(self.layout.framed_shard_len(len) as usize)).collect();
        for s in 0..self.layout.stripe_count(len) {
            let start = self.layout.stripe_offset(s) as usize;
            let end = start + self.layout.stripe_len(len, s);
            let enc = self.encode_stripe(piece, s, Bytes::copy_from_slice(&data[start..end]))?;
            for (shard, b) in shards.iter_mut().zip(enc.blocks) {
                shard.extend_from_slice(&b.hash);
                shard.extend_from_slice(&b.data);
            }
        }
        Ok(shards)
    }

    /// Reads the bytes `range` of an object of `object_len` bytes from whole
    /// framed shards (`None` = missing), touching only the stripes the range
    /// needs. Returns the bytes and every shard found corrupt on the way.
    pub fn decode_range(
        &self,
        piece: PieceId,
        object_len: u64,
        shards: &[Option<Bytes>],
        range: Range<u64>,
    ) -> Result<(Vec<u8>, BTreeSet<usize>), EcError> {
        let l = &self.layout;
        if shards.len() != l.shard_count() {
            return Err(EcError::BadInput("decode needs k + m shard slots"));
        }
        let mut out = Vec::new();
        let mut corrupt = BTreeSet::new();
        for s in l.stripes_for_range(object_len, range.clone()) {
            let stripe_len = l.stripe_len(object_len, s);
            let frame_len = HASH_LEN + self.block_len_for(stripe_len);
            let at = l.frame_offset(s) as usize;
            let frames: Vec<Option<Bytes>> = shards
                .iter()
                .map(|sh| sh.as_ref().map(|sh| sh.slice(at.min(sh.len())..(at + frame_len).min(sh.len()))))
                .collect();
            let dec = self.decode_stripe(piece, s, stripe_len, &frames)?;
            corrupt.extend(dec.corrupt.iter().copied());
            let base = l.stripe_offset(s);
            let from = range.start.saturating_sub(base) as usize;
            let to = (range.end.min(object_len) - base).min(stripe_len as u64) as usize;
            for c in dec.slice(from..to) {
                out.extend_from_slice(&c);
            }
        }
        Ok((out, corrupt))
    }
}
