//! Reliability test 1: round trips over (k, m) profiles, sizes and every
//! erasure subset of at most m shards; m + 1 erasures must always fail.
//! Random cases print their seed; replay with `TESSERA_SEED=<seed>`.

// A test that meets an error should fail loudly.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use tessera_ec::{CodecId, EcError, PieceId, StripeCoder, StripeLayout, new_codec};

const PROFILES: [(usize, usize); 7] = [(1, 0), (2, 1), (2, 2), (4, 2), (6, 3), (8, 4), (12, 4)];
const CODECS: [CodecId; 2] = [CodecId::RsGf8Vandermonde, CodecId::RsGf16Leopard];
const PIECE: PieceId = PieceId { data_id: [0x5a; 16], part: 0 };

fn coder(codec: CodecId, k: usize, m: usize, stripe: usize) -> StripeCoder {
    StripeCoder::new(new_codec(codec, k, m).unwrap(), StripeLayout::new(k, m, stripe).unwrap()).unwrap()
}

fn seed() -> u64 {
    let s = std::env::var("TESSERA_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(rand::random);
    println!("seed = {s} (replay with TESSERA_SEED={s})");
    s
}

fn random_bytes(rng: &mut StdRng, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

/// All subsets of 0..n with at most `max` members (as sorted index lists).
fn subsets(n: usize, max: usize) -> Vec<Vec<usize>> {
    let mut out = vec![vec![]];
    for size in 1..=max.min(n) {
        let mut idx: Vec<usize> = (0..size).collect();
        loop {
            out.push(idx.clone());
            let mut i = size;
            while i > 0 && idx[i - 1] == n - size + i - 1 {
                i -= 1;
            }
            if i == 0 {
                break;
            }
            idx[i - 1] += 1;
            for j in i..size {
                idx[j] = idx[j - 1] + 1;
            }
        }
    }
    out
}

fn erase(shards: &[Vec<u8>], gone: &[usize]) -> Vec<Option<Bytes>> {
    shards.iter().enumerate().map(|(i, s)| (!gone.contains(&i)).then(|| Bytes::copy_from_slice(s))).collect()
}

/// The frames of stripe `s` cut from whole framed shards, minus the `gone` ones.
fn stripe_frames(shards: &[Vec<u8>], l: &StripeLayout, size: usize, s: u64, gone: &[usize]) -> Vec<Option<Bytes>> {
    let frame_len = 32 + l.block_len_of(size as u64, s);
    let at = l.frame_offset(s) as usize;
    shards
        .iter()
        .enumerate()
        .map(|(i, sh)| (!gone.contains(&i)).then(|| Bytes::copy_from_slice(&sh[at..at + frame_len])))
        .collect()
}

/// The interesting sizes for a layout: empty, tiny, block and stripe edges.
fn edge_sizes(l: &StripeLayout) -> Vec<usize> {
    let (b, s) = (l.block_len(), l.stripe_data_len());
    let mut v = vec![0, 1, b - 1, b, b + 1, s - 1, s, s + 1, 2 * s + b / 2];
    v.sort();
    v.dedup();
    v
}

#[test]
fn subsets_are_complete() {
    assert_eq!(subsets(6, 2).len(), 1 + 6 + 15);
    assert_eq!(subsets(16, 4).len(), 1 + 16 + 120 + 560 + 1820);
    assert_eq!(subsets(3, 3).last().unwrap(), &vec![0, 1, 2]);
}

/// Decodes every size with every erasure subset of at most m shards.
fn exhaustive_subsets(codec: CodecId, sizes: impl Fn(&StripeLayout) -> Vec<usize>) {
    let mut rng = StdRng::seed_from_u64(seed());
    for (k, m) in PROFILES {
        let c = coder(codec, k, m, 4096);
        let n = k + m;
        let all = subsets(n, m);
        for size in sizes(c.layout()) {
            let data = random_bytes(&mut rng, size);
            let shards = c.encode_object(PIECE, &data).unwrap();
            for s in &shards {
                assert_eq!(s.len() as u64, c.layout().framed_shard_len(size as u64));
            }
            for gone in &all {
                let (out, corrupt) = c
                    .decode_range(PIECE, size as u64, &erase(&shards, gone), 0..size as u64)
                    .unwrap_or_else(|e| panic!("{codec:?} {k}+{m} size {size} erased {gone:?}: {e}"));
                assert!(out == data, "{codec:?} {k}+{m} size {size} erased {gone:?}: bytes differ");
                assert!(corrupt.is_empty());
            }
        }
    }
}

#[test]
fn every_erasure_subset_up_to_m_decodes_exactly_gf8() {
    exhaustive_subsets(CodecId::RsGf8Vandermonde, edge_sizes);
}

/// Leopard pays ~1 ms per degraded stripe decode whatever the size, so it gets
/// the edge sizes that exercise its distinct paths: a tiny last stripe, a block
/// edge, and a full stripe followed by a short one.
#[test]
fn every_erasure_subset_up_to_m_decodes_exactly_gf16() {
    exhaustive_subsets(CodecId::RsGf16Leopard, |l| vec![0, 1, l.block_len() + 1, l.stripe_data_len() + 1]);
}

#[test]
fn m_plus_one_erasures_always_fail() {
    let mut rng = StdRng::seed_from_u64(seed());
    for codec in CODECS {
        for (k, m) in PROFILES {
            let c = coder(codec, k, m, 4096);
            let n = k + m;
            let size = 2 * c.layout().stripe_data_len() + 100;
            let data = random_bytes(&mut rng, size);
            let shards = c.encode_object(PIECE, &data).unwrap();
            for gone in subsets(n, m + 1).into_iter().filter(|g| g.len() == m + 1) {
                match c.decode_range(PIECE, size as u64, &erase(&shards, &gone), 0..size as u64) {
                    Err(EcError::NotEnoughShards { needed, available, .. }) => {
                        assert_eq!((needed, available), (k, k - 1));
                    }
                    other => panic!("{codec:?} {k}+{m} erased {gone:?}: expected an error, got {other:?}"),
                }
            }
        }
    }
}

/// Large random objects at the default 1 MiB stripe: each stripe is decoded
/// with a different erasure subset, cycling through all of them.
#[test]
fn large_random_objects_decode_under_rotating_erasures() {
    let mut rng = StdRng::seed_from_u64(seed());
    for codec in CODECS {
        for (k, m) in PROFILES {
            let c = coder(codec, k, m, tessera_ec::DEFAULT_STRIPE_SIZE);
            let size = rng.random_range(1..=64 << 20);
            let data = random_bytes(&mut rng, size);
            let shards = c.encode_object(PIECE, &data).unwrap();
            let all = subsets(k + m, m);
            let l = c.layout();
            let offset = rng.random_range(0..all.len());
            let mut out = Vec::with_capacity(size);
            for s in 0..l.stripe_count(size as u64) {
                let gone = &all[(s as usize + offset) % all.len()];
                let stripe_len = l.stripe_len(size as u64, s);
                let frames = stripe_frames(&shards, l, size, s, gone);
                let dec = c.decode_stripe(PIECE, s, stripe_len, &frames).unwrap();
                assert_eq!(dec.decoded, gone.iter().any(|&g| g < k));
                for ch in dec.chunks {
                    out.extend_from_slice(&ch);
                }
            }
            assert!(out == data, "{codec:?} {k}+{m} size {size}: bytes differ");
        }
    }
}

#[test]
fn codecs_are_not_interchangeable_but_both_roundtrip() {
    let a = coder(CodecId::RsGf8Vandermonde, 4, 2, 4096);
    let b = coder(CodecId::RsGf16Leopard, 4, 2, 4096);
    let data = vec![0xabu8; 10_000];
    let sa = a.encode_object(PIECE, &data).unwrap();
    let sb = b.encode_object(PIECE, &data).unwrap();
    assert_eq!(sa[..4], sb[..4], "systematic codes store the data blocks verbatim");
    assert_ne!(sa[4], sb[4], "parity differs, which is why every record names its codec");
}

#[test]
fn healing_rebuilds_exactly_the_lost_shards() {
    let mut rng = StdRng::seed_from_u64(seed());
    for codec in CODECS {
        for (k, m) in PROFILES.into_iter().filter(|&(_, m)| m > 0) {
            let c = coder(codec, k, m, 4096);
            let size = c.layout().stripe_data_len() * 3 - 7;
            let data = random_bytes(&mut rng, size);
            let shards = c.encode_object(PIECE, &data).unwrap();
            for gone in subsets(k + m, m).into_iter().filter(|g| !g.is_empty()) {
                let l = c.layout();
                for s in 0..l.stripe_count(size as u64) {
                    let frames = stripe_frames(&shards, l, size, s, &gone);
                    let (at, frame_len) = (l.frame_offset(s) as usize, 32 + l.block_len_of(size as u64, s));
                    let (rebuilt, corrupt) =
                        c.reconstruct_blocks(PIECE, s, l.stripe_len(size as u64, s), &frames, &gone).unwrap();
                    assert!(corrupt.is_empty());
                    for (b, &g) in rebuilt.iter().zip(&gone) {
                        assert_eq!(
                            &b.to_frame()[..],
                            &shards[g][at..at + frame_len],
                            "{codec:?} {k}+{m} shard {g} stripe {s}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn unknown_codec_and_bad_profiles_are_refused() {
    assert_eq!(CodecId::from_u16(99), Err(EcError::UnknownCodec(99)));
    for id in CODECS {
        assert_eq!(CodecId::from_u16(id.as_u16()), Ok(id));
        assert!(new_codec(id, 0, 1).is_err());
        assert!(new_codec(id, 17, 1).is_err());
        assert!(new_codec(id, 4, 9).is_err());
        assert!(new_codec(id, 16, 8).is_ok());
    }
    let c = new_codec(CodecId::DEFAULT, 4, 2).unwrap();
    assert!(StripeCoder::new(c, StripeLayout::new(4, 3, 4096).unwrap()).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    /// Any range of any object reads back the right bytes, with up to m shards gone.
    #[test]
    fn random_ranges_read_back(
        profile in 0..PROFILES.len(),
        codec in 0..2usize,
        size in 0usize..200_000,
        a in any::<u64>(),
        b in any::<u64>(),
        gone_seed in any::<u64>(),
        fill in any::<u64>(),
    ) {
        let (k, m) = PROFILES[profile];
        let c = coder(CODECS[codec], k, m, 8192);
        let data = random_bytes(&mut StdRng::seed_from_u64(fill), size);
        let shards = c.encode_object(PIECE, &data).unwrap();
        let all = subsets(k + m, m);
        let gone = &all[(gone_seed % all.len() as u64) as usize];
        let (x, y) = if size == 0 { (0, 0) } else { (a % size as u64, b % size as u64) };
        let range = x.min(y)..x.max(y) + 1;
        let (out, _) = c.decode_range(PIECE, size as u64, &erase(&shards, gone), range.clone()).unwrap();
        let end = (range.end as usize).min(size);
        let start = (range.start as usize).min(end);
        prop_assert_eq!(&out[..], &data[start..end]);
    }
}
