//! Reliability test 2: bitrot. Bit flips, truncation, zeroed runs and swapped
//! blocks, injected at random into framed blocks: every one is detected by
//! verification, and decoding around it returns the right bytes and names the
//! corrupt shard. Replay with `TESSERA_SEED=<seed>`.

// A test that meets an error should fail loudly.
#![allow(clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use tessera_ec::{CodecId, FramedBlock, PieceId, StripeCoder, StripeLayout, new_codec, verify_frame};

const INJECTIONS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
enum Fault {
    FlipBit,
    Truncate,
    Zero,
    SwapStripe,
    SwapShard,
    SwapObject,
}

#[test]
fn every_injected_corruption_is_detected_and_decoded_around() {
    let seed = std::env::var("TESSERA_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(rand::random::<u64>);
    println!("seed = {seed} (replay with TESSERA_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let (k, m) = (4, 2);
    let c =
        StripeCoder::new(new_codec(CodecId::DEFAULT, k, m).unwrap(), StripeLayout::new(k, m, 1024).unwrap()).unwrap();
    let l = *c.layout();
    let piece = PieceId { data_id: [1; 16], part: 0 };
    let other = PieceId { data_id: [2; 16], part: 0 };
    let size = l.stripe_data_len() * 32;
    let mut data = vec![0u8; size];
    rng.fill_bytes(&mut data);
    // A second object with the SAME bytes: a swapped-in block from it is
    // byte-identical, so only the address in the hash key can catch it.
    let shards = c.encode_object(piece, &data).unwrap();
    let other_shards = c.encode_object(other, &data).unwrap();
    let frame_len = 32 + l.block_len();
    let frame = |sh: &Vec<u8>, stripe: usize| Bytes::copy_from_slice(&sh[stripe * frame_len..(stripe + 1) * frame_len]);
    let stripes = size / l.stripe_data_len();

    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..INJECTIONS {
        let shard = rng.random_range(0..k + m);
        let stripe = rng.random_range(0..stripes);
        let fault =
            [Fault::FlipBit, Fault::Truncate, Fault::Zero, Fault::SwapStripe, Fault::SwapShard, Fault::SwapObject]
                [i % 6];
        let good = frame(&shards[shard], stripe);
        let bad: Bytes = match fault {
            Fault::FlipBit => {
                let mut b = BytesMut::from(&good[..]);
                let bit = rng.random_range(0..b.len() * 8);
                b[bit / 8] ^= 1 << (bit % 8);
                b.freeze()
            }
            Fault::Truncate => good.slice(..rng.random_range(0..good.len())),
            Fault::Zero => {
                let mut b = BytesMut::from(&good[..]);
                let start = rng.random_range(0..b.len());
                let end = rng.random_range(start + 1..=b.len().min(start + 512));
                b[start..end].fill(0);
                if b[..] == good[..] {
                    continue; // the run was zero already: no corruption to find
                }
                b.freeze()
            }
            Fault::SwapStripe => frame(&shards[shard], (stripe + rng.random_range(1..stripes)) % stripes),
            Fault::SwapShard => frame(&shards[(shard + rng.random_range(1..k + m)) % (k + m)], stripe),
            Fault::SwapObject => frame(&other_shards[shard], stripe),
        };
        *counts.entry(format!("{fault:?}")).or_default() += 1;
        assert!(
            verify_frame(&piece.block(shard, stripe as u64), &bad, l.block_len()).is_err(),
            "undetected {fault:?} on shard {shard} stripe {stripe} (seed {seed}, injection {i})"
        );
        let mut frames: Vec<Option<Bytes>> = shards.iter().map(|sh| Some(frame(sh, stripe))).collect();
        frames[shard] = Some(bad);
        // Take away one more shard some of the time, so decoding must use parity.
        if rng.random_bool(0.5) {
            let extra = (shard + 1) % (k + m);
            frames[extra] = None;
        }
        let dec = c.decode_stripe(piece, stripe as u64, l.stripe_data_len(), &frames).unwrap();
        // The same blocks with their hashes apart (as datanodes send them) decode alike.
        let blocks: Vec<Option<FramedBlock>> = frames.iter().map(|f| f.as_ref().map(split)).collect();
        let dec2 = c.decode_stripe_blocks(piece, stripe as u64, l.stripe_data_len(), &blocks).unwrap();
        assert_eq!(dec2.chunks.concat(), dec.chunks.concat(), "split decode differs after {fault:?}");
        assert_eq!(dec2.corrupt, dec.corrupt);
        let start = stripe * l.stripe_data_len();
        let got: Vec<u8> = dec.chunks.iter().flat_map(|c| c.iter().copied()).collect();
        assert!(
            got == data[start..start + l.stripe_data_len()],
            "wrong bytes after {fault:?} (seed {seed}, injection {i})"
        );
        // Parity blocks are only read when a data block is unusable.
        if shard < k {
            assert_eq!(dec.corrupt, vec![shard], "{fault:?} on a data shard must be reported");
        }
    }
    println!("injections by kind: {counts:?}");
    assert!(counts.values().sum::<usize>() >= INJECTIONS * 99 / 100);
}

#[test]
fn more_than_m_corrupt_blocks_is_an_error_not_wrong_bytes() {
    let (k, m) = (4, 2);
    let c =
        StripeCoder::new(new_codec(CodecId::DEFAULT, k, m).unwrap(), StripeLayout::new(k, m, 1024).unwrap()).unwrap();
    let piece = PieceId { data_id: [3; 16], part: 1 };
    let data = vec![7u8; c.layout().stripe_data_len()];
    let shards = c.encode_object(piece, &data).unwrap();
    let mut frames: Vec<Option<Bytes>> = shards.iter().map(|s| Some(Bytes::copy_from_slice(s))).collect();
    for s in [0, 2, 5] {
        let mut b = BytesMut::from(&frames[s].take().unwrap()[..]);
        b[40] ^= 0xff;
        frames[s] = Some(b.freeze());
    }
    match c.decode_stripe(piece, 0, data.len(), &frames) {
        Err(tessera_ec::EcError::NotEnoughShards { needed: 4, available: 3, corrupt, .. }) => {
            assert_eq!(corrupt, vec![0, 2, 5]);
        }
        other => panic!("expected NotEnoughShards, got {other:?}"),
    }
    let blocks: Vec<Option<FramedBlock>> = frames.iter().map(|f| f.as_ref().map(split)).collect();
    match c.decode_stripe_blocks(piece, 0, data.len(), &blocks) {
        Err(tessera_ec::EcError::NotEnoughShards { needed: 4, available: 3, corrupt, .. }) => {
            assert_eq!(corrupt, vec![0, 2, 5]);
        }
        other => panic!("expected NotEnoughShards from the split decode, got {other:?}"),
    }
}

#[test]
fn only_blocks_marked_verified_skip_the_hash_check() {
    let (k, m) = (4, 2);
    let c =
        StripeCoder::new(new_codec(CodecId::DEFAULT, k, m).unwrap(), StripeLayout::new(k, m, 1024).unwrap()).unwrap();
    let piece = PieceId { data_id: [5; 16], part: 0 };
    let data: Vec<u8> = (0..c.layout().stripe_data_len()).map(|i| (i % 253) as u8).collect();
    let shards = c.encode_object(piece, &data).unwrap();
    let mut blocks: Vec<Option<FramedBlock>> = shards.iter().map(|s| Some(split(&Bytes::copy_from_slice(s)))).collect();
    // Block 1's hash no longer matches its bytes.
    blocks[1].as_mut().unwrap().hash[0] ^= 1;
    let joined = |d: &tessera_ec::DecodedStripe| d.slice(0..data.len()).concat();
    // Not marked verified: caught, decoded around from parity.
    let dec = c.decode_stripe_blocks_trusting(piece, 0, data.len(), &blocks, &[false; 6]).unwrap();
    assert_eq!(dec.corrupt, vec![1]);
    assert_eq!(joined(&dec), data);
    // Marked verified elsewhere (by this process's datanode): taken as is,
    // hash not recomputed; its neighbours are still checked.
    let dec = c.decode_stripe_blocks_trusting(piece, 0, data.len(), &blocks, &[false, true]).unwrap();
    assert!(dec.corrupt.is_empty() && !dec.decoded);
    blocks[2].as_mut().unwrap().hash[0] ^= 1;
    let dec = c.decode_stripe_blocks_trusting(piece, 0, data.len(), &blocks, &[false, true]).unwrap();
    assert_eq!(dec.corrupt, vec![2]);
    // A verified block of the wrong length is still refused.
    blocks[2] = Some(split(&Bytes::copy_from_slice(&shards[2])));
    let short = blocks[3].as_ref().unwrap().data.slice(1..);
    blocks[3].as_mut().unwrap().data = short;
    let dec = c.decode_stripe_blocks_trusting(piece, 0, data.len(), &blocks, &[true; 6]).unwrap();
    assert_eq!(dec.corrupt, vec![3]);
    assert_eq!(joined(&dec), data);
}

/// A frame as a datanode sends it: hash and block apart (a frame too short
/// to hold a hash gets a zero hash, which cannot verify).
fn split(f: &Bytes) -> FramedBlock {
    if f.len() >= tessera_ec::HASH_LEN {
        let mut hash = [0u8; tessera_ec::HASH_LEN];
        hash.copy_from_slice(&f[..tessera_ec::HASH_LEN]);
        FramedBlock { hash, data: f.slice(tessera_ec::HASH_LEN..) }
    } else {
        FramedBlock { hash: [0; tessera_ec::HASH_LEN], data: f.clone() }
    }
}
