//! MD5 throughput: one body at a time against the engine's sixteen lanes.
//! Run: `cargo bench -p tessera-benches --bench md5`.
//!
//! Groups (throughput is body bytes hashed per second, all on one core
//! except the engine's, which is its thread plus the feeding tasks):
//! - `one-body/md-5`: the `md-5` crate, as the gateway used for every body;
//! - `one-body/tessera`: our one-lane function;
//! - `kernel/<kernel>-<lanes>`: `compress16` alone, 1 MiB per busy lane;
//! - `engine/<n>`: n streams of 1 MiB each, fed in 64 KiB chunks by
//!   concurrent tasks, through the engine — what the gateway pays.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use md5::Digest as _;
use rand::RngCore;
use tessera_md5::{Kernel, Md5Engine};

const BODY: usize = 1 << 20;

fn random(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::rng().fill_bytes(&mut v);
    v
}

fn one_body(c: &mut Criterion) {
    let data = random(BODY);
    let mut g = c.benchmark_group("one-body");
    g.throughput(Throughput::Bytes(BODY as u64));
    g.bench_function("md-5", |b| b.iter(|| md5::Md5::digest(black_box(&data))));
    g.bench_function("tessera", |b| b.iter(|| tessera_md5::md5(black_box(&data))));
    g.finish();
}

fn kernel(c: &mut Criterion) {
    let data: Vec<Vec<u8>> = (0..16).map(|_| random(BODY)).collect();
    let mut g = c.benchmark_group("kernel");
    let mut kernels = vec![Kernel::Portable];
    if Kernel::detect() == Kernel::Avx512 {
        kernels.push(Kernel::Avx512);
    }
    for k in kernels {
        for busy in [1usize, 4, 16] {
            let lanes: [&[u8]; 16] = std::array::from_fn(|l| if l < busy { &data[l][..] } else { &[][..] });
            let mut states = [[0u32; 16]; 4];
            g.throughput(Throughput::Bytes((busy * BODY) as u64));
            g.bench_function(BenchmarkId::new(format!("{k:?}"), busy), |b| {
                b.iter(|| k.compress16(&mut states, black_box(&lanes), BODY / 64))
            });
        }
    }
    g.finish();
}

fn engine(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let engine = Md5Engine::start().unwrap();
    let body = Bytes::from(random(BODY));
    let mut g = c.benchmark_group("engine");
    for n in [1usize, 4, 16, 32] {
        g.throughput(Throughput::Bytes((n * BODY) as u64));
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let tasks: Vec<_> = (0..n)
                        .map(|_| {
                            let (engine, body) = (engine.clone(), body.clone());
                            tokio::spawn(async move {
                                let mut s = engine.stream();
                                for at in (0..BODY).step_by(64 << 10) {
                                    s.update(body.slice(at..at + (64 << 10))).await.unwrap();
                                }
                                s.finish().await.unwrap()
                            })
                        })
                        .collect();
                    for t in tasks {
                        black_box(t.await.unwrap());
                    }
                })
            })
        });
    }
    g.finish();
    let st = engine.stats();
    println!("engine: {} rounds, {:.1} busy lanes on average", st.rounds, st.lane_blocks as f64 / st.rounds as f64);
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = one_body, kernel, engine
}
criterion_main!(benches);
