//! Erasure-coding throughput: the raw libraries against our wrappers, per
//! core, at 1 MiB stripes. Run: `cargo bench -p tessera-benches --bench ec`.
//!
//! Groups (throughput is object data bytes per second):
//! - `encode/raw-*`: the library call alone, buffers prepared outside the loop;
//! - `encode/codec-*`: our `ErasureCodec::encode` (the trait wrapper);
//! - `encode/stripe-*`: `StripeCoder::encode_stripe`: slicing, parity
//!   allocation, encode and keyed BLAKE3 of all k+m blocks — what a PUT pays;
//! - `decode/stripe-*`: `decode_stripe` with m data blocks missing: hash
//!   checks plus reconstruction — the worst case a GET pays;
//! - `blake3`: keyed hashing alone.

// A benchmark that hits an error should stop loudly.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::RngCore;
use tessera_ec::{CodecId, PieceId, StripeCoder, StripeLayout, new_codec};

const STRIPE: usize = 1 << 20;
const PROFILES: [(usize, usize); 3] = [(4, 2), (8, 4), (12, 4)];
const PIECE: PieceId = PieceId { data_id: [9; 16], part: 0 };

fn random(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::rng().fill_bytes(&mut v);
    v
}

fn codec_name(id: CodecId) -> &'static str {
    match id {
        CodecId::RsGf8Vandermonde => "gf8",
        CodecId::RsGf16Leopard => "gf16",
    }
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    for (k, m) in PROFILES {
        let layout = StripeLayout::new(k, m, STRIPE).unwrap();
        let b = layout.block_len();
        let data = random(b * k);
        let blocks: Vec<&[u8]> = data.chunks(b).collect();
        let mut parity = vec![vec![0u8; b]; m];
        let p = format!("{k}+{m}");
        g.throughput(Throughput::Bytes((b * k) as u64));

        let rs = reed_solomon_erasure::galois_8::ReedSolomon::new(k, m).unwrap();
        g.bench_function(BenchmarkId::new("raw-gf8", &p), |bench| {
            bench.iter(|| rs.encode_sep(black_box(&blocks), &mut parity).unwrap())
        });
        let mut enc = reed_solomon_simd::ReedSolomonEncoder::new(k, m, b).unwrap();
        g.bench_function(BenchmarkId::new("raw-gf16", &p), |bench| {
            bench.iter(|| {
                for blk in &blocks {
                    enc.add_original_shard(blk).unwrap();
                }
                let r = enc.encode().unwrap();
                for (out, rec) in parity.iter_mut().zip(r.recovery_iter()) {
                    out.copy_from_slice(rec);
                }
            })
        });
        for id in [CodecId::RsGf8Vandermonde, CodecId::RsGf16Leopard] {
            let codec = new_codec(id, k, m).unwrap();
            g.bench_function(BenchmarkId::new(format!("codec-{}", codec_name(id)), &p), |bench| {
                bench.iter(|| {
                    let mut outs: Vec<&mut [u8]> = parity.iter_mut().map(|v| v.as_mut_slice()).collect();
                    codec.encode(black_box(&blocks), &mut outs).unwrap()
                })
            });
            let coder = StripeCoder::new(codec.clone(), layout).unwrap();
            let bytes = Bytes::from(data.clone());
            g.bench_function(BenchmarkId::new(format!("stripe-{}", codec_name(id)), &p), |bench| {
                bench.iter(|| coder.encode_stripe(PIECE, 0, black_box(bytes.clone())).unwrap())
            });
        }
    }
    g.finish();
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    for (k, m) in PROFILES {
        let layout = StripeLayout::new(k, m, STRIPE).unwrap();
        let data = Bytes::from(random(layout.stripe_data_len()));
        g.throughput(Throughput::Bytes(data.len() as u64));
        let p = format!("{k}+{m}");
        for id in [CodecId::RsGf8Vandermonde, CodecId::RsGf16Leopard] {
            let coder = StripeCoder::new(new_codec(id, k, m).unwrap(), layout).unwrap();
            let enc = coder.encode_stripe(PIECE, 0, data.clone()).unwrap();
            let all: Vec<Option<Bytes>> = enc.blocks.iter().map(|b| Some(b.to_frame())).collect();
            let mut degraded = all.clone();
            for slot in degraded.iter_mut().take(m) {
                *slot = None; // lose m data blocks: the worst case
            }
            g.bench_function(BenchmarkId::new(format!("stripe-healthy-{}", codec_name(id)), &p), |bench| {
                bench.iter(|| coder.decode_stripe(PIECE, 0, data.len(), black_box(&all)).unwrap())
            });
            g.bench_function(BenchmarkId::new(format!("stripe-{m}-lost-{}", codec_name(id)), &p), |bench| {
                bench.iter(|| coder.decode_stripe(PIECE, 0, data.len(), black_box(&degraded)).unwrap())
            });
        }
    }
    g.finish();
}

fn hashing(c: &mut Criterion) {
    let mut g = c.benchmark_group("blake3");
    let block = random(256 * 1024);
    g.throughput(Throughput::Bytes(block.len() as u64));
    let addr = PIECE.block(0, 0);
    g.bench_function("keyed-256KiB-block", |b| b.iter(|| tessera_ec::block_hash(&addr, black_box(&block))));
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! { name = benches; config = config(); targets = encode, decode, hashing }
criterion_main!(benches);
