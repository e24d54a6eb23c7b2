//! Placement speed: PGs placed per second, and a full map diff.
//! Run: `cargo bench -p tessera-benches --bench placement`.

// A benchmark that hits an error should stop loudly.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tessera_common::{DiskId, NodeId, PgId};
use tessera_placement::{ClusterMap, Disk, Host, PlacementRule, Placer, diff_maps};

fn cluster(hosts: u64, per_host: u32, zones: u64) -> ClusterMap {
    let mut m = ClusterMap::new(4096).unwrap();
    for h in 0..hosts {
        let disks = (0..per_host).map(|i| Disk::new(DiskId(h as u32 * 100 + i), 100)).collect();
        m.add_host(&format!("z{}", h % zones), "r0", Host { node: NodeId(h), name: format!("h{h}"), disks }).unwrap();
    }
    m
}

fn place(c: &mut Criterion) {
    let mut g = c.benchmark_group("place");
    g.throughput(Throughput::Elements(1024));
    for (hosts, disks, zones) in [(6, 1, 3), (12, 4, 3), (100, 8, 5), (1000, 4, 10)] {
        let map = cluster(hosts, disks, zones);
        let placer = Placer::new(&map, PlacementRule::default()).unwrap();
        g.bench_function(BenchmarkId::new("4+2", format!("{hosts}h-{disks}d-{zones}z")), |b| {
            b.iter(|| {
                for pg in 0..1024 {
                    black_box(placer.place(PgId(pg)).unwrap());
                }
            })
        });
    }
    g.finish();
    let old = cluster(100, 8, 5);
    let mut new = old.clone();
    new.remove_host(NodeId(7)).unwrap();
    c.bench_function("diff/100h-remove-host-4096pgs", |b| {
        b.iter(|| diff_maps(&old, &new, PlacementRule::default()).unwrap())
    });
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! { name = benches; config = config(); targets = place }
criterion_main!(benches);
