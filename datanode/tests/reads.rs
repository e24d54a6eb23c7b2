//! Where a shard's reads come from: large cold gets around the page cache
//! (`O_DIRECT`, several reads in flight), small, cached or repeated ones
//! through it, the scrubber always from the disk itself — and that every path verifies
//! every block, stops cleanly when the caller stops, and stays whole beside
//! concurrent writers.
//!
//! On a real disk (the target folder), not a tmpfs: reading around the
//! cache needs a filesystem that says how (`STATX_DIOALIGN`: ext4, xfs,
//! btrfs, ...), and the page-cache checks need pages that are not the data.

// A test that meets an error should fail loudly.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;

use bytes::Bytes;
use rand::RngCore;
use tessera_common::metrics::label;
use tessera_common::{DataId, DiskId};
use tessera_datanode::{DataService, DatanodeMetrics, FsDisk, ReadIntent, ShardError, ShardHeader, ShardKey, Source};
use tessera_ec::{BlockAddress, block_hash};
use tessera_rpc::local::LocalShards;
use tessera_rpc::proto::data::{GetShardRequest, ShardRef};

const BLOCK: usize = 256 << 10;
/// Stripes a read around the cache batches together (~1 MiB).
const PER_BATCH: u64 = 4;

fn open(dir: &Path) -> FsDisk {
    FsDisk::open(DiskId(1), dir).unwrap()
}

/// Writes a one-shard piece (k = 1, m = 0) of `len` random bytes; its
/// frames as stored, hash then block.
fn write_shard(disk: &FsDisk, key: ShardKey, len: usize) -> Vec<Vec<u8>> {
    let mut data = vec![0u8; len];
    rand::rng().fill_bytes(&mut data);
    write_data(disk, key, &data)
}

fn header(key: ShardKey, len: usize) -> ShardHeader {
    ShardHeader { key, codec: 1, k: 1, m: 0, block_len: BLOCK as u32, piece_len: len as u64 }
}

/// The frames of `data` as shard `key` stores them, hash then block (the
/// last block zero-padded to its stored length).
fn frames_of(key: ShardKey, data: &[u8]) -> Vec<Vec<u8>> {
    let h = header(key, data.len());
    let addr = |s: usize| BlockAddress {
        data_id: *key.data_id.as_bytes(),
        part: key.part,
        shard: key.shard,
        stripe: s as u64,
    };
    data.chunks(BLOCK)
        .enumerate()
        .map(|(s, chunk)| {
            let mut block = chunk.to_vec();
            block.resize(h.block_len_of(s as u64).unwrap(), 0);
            [&block_hash(&addr(s), &block)[..], &block].concat()
        })
        .collect()
}

fn write_data(disk: &FsDisk, key: ShardKey, data: &[u8]) -> Vec<Vec<u8>> {
    let mut w = disk.create(header(key, data.len())).unwrap();
    let frames = frames_of(key, data);
    for f in &frames {
        let hash: [u8; 32] = f[..32].try_into().unwrap();
        w.write_frame(&hash, &f[32..]).unwrap();
    }
    w.finish().unwrap();
    frames
}

fn key() -> ShardKey {
    ShardKey { data_id: DataId::new(), part: 0, shard: 0 }
}

/// Reads `stripes` of `key`: the frames handed on (also when the read then
/// failed), where the batches came from, and how it ended.
fn read(
    disk: &FsDisk,
    key: &ShardKey,
    stripes: std::ops::Range<u64>,
    intent: ReadIntent,
) -> (Vec<Bytes>, Vec<Source>, Result<Source, ShardError>) {
    let mut r = disk.open_reader(key).unwrap();
    let (mut frames, mut sources) = (Vec::new(), Vec::new());
    let end = r.read_batches(stripes, intent, |b| {
        assert_eq!(b.frames.len(), b.spans.len());
        sources.push(b.source);
        frames.extend(b.frames);
        true
    });
    (
        frames,
        sources,
        end.map(|e| {
            assert!(e.complete);
            e.source
        }),
    )
}

const NEEDS_DIRECT: &str =
    "the target folder's filesystem must read around the page cache (O_DIRECT with STATX_DIOALIGN)";

#[test]
fn large_cold_gets_read_around_the_cache_small_cached_or_reread_ones_through_it() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let disk = open(dir.path());
    // 6 MiB and a ragged tail: the file ends off any alignment.
    let big = key();
    let frames = write_shard(&disk, big, (6 << 20) + 12_345);
    let n = frames.len() as u64;
    let path = disk.shard_path(&big);
    assert_eq!(support::cached_bytes(&path), 0, "a finished shard leaves the cache");

    let (got, sources, end) = read(&disk, &big, 0..n, ReadIntent::Serve);
    assert_eq!(end.unwrap(), Source::Disk, "{NEEDS_DIRECT}");
    assert!(sources.iter().all(|s| *s == Source::Disk));
    assert_eq!(got, frames);
    // Read around the cache: of the file, only what opening it read (its
    // header, and the kernel's first read-ahead of it) is cached.
    let cached = support::cached_bytes(&path);
    assert!(cached <= 64 << 10, "{cached} bytes cached");

    // Read again: through the cache, which then holds it for the reads
    // after; the scrubber reads the disk's bytes even so.
    check(&disk, &big, 0..n, ReadIntent::Serve, Source::PageCache, &frames);
    assert!(support::cached_bytes(&path) >= n * BLOCK as u64 / 2, "read again, the shard is cached");
    check(&disk, &big, 0..n, ReadIntent::Serve, Source::PageCache, &frames);
    check(&disk, &big, 0..n, ReadIntent::Scrub, Source::Disk, &frames);

    // Another shard: a range starting mid-file, past the 4 MiB threshold,
    // read around the cache with aligned reads all the same; a small range
    // of it through the cache.
    let other = key();
    let frames = write_shard(&disk, other, 7 << 20);
    let n = frames.len() as u64;
    check(&disk, &other, 3..n, ReadIntent::Serve, Source::Disk, &frames);
    check(&disk, &other, 5..9, ReadIntent::Serve, Source::PageCache, &frames);
    // One the cache holds already is served from it on its first read.
    let warm = key();
    let frames = write_shard(&disk, warm, 5 << 20);
    std::fs::read(disk.shard_path(&warm)).unwrap();
    check(&disk, &warm, 0..frames.len() as u64, ReadIntent::Serve, Source::PageCache, &frames);

    // A small shard: through the cache for a client, around it for a scrub,
    // and a single batch without a second thread.
    let small = key();
    let frames = write_shard(&disk, small, 2 << 20);
    let n = frames.len() as u64;
    check(&disk, &small, 0..n, ReadIntent::Serve, Source::PageCache, &frames);
    check(&disk, &small, 0..n, ReadIntent::Scrub, Source::Disk, &frames);
    check(&disk, &small, 2..3, ReadIntent::Scrub, Source::Disk, &frames);
    // Nothing asked, nothing read.
    let (got, _, end) = read(&disk, &small, 4..4, ReadIntent::Scrub);
    assert!(got.is_empty() && end.is_ok());
}

/// Reads `stripes` of `key` whole: from `source`, the frames of `frames`.
fn check(
    disk: &FsDisk,
    key: &ShardKey,
    stripes: std::ops::Range<u64>,
    intent: ReadIntent,
    source: Source,
    frames: &[Vec<u8>],
) {
    let (got, _, end) = read(disk, key, stripes.clone(), intent);
    assert_eq!(end.unwrap(), source, "stripes {stripes:?}, {intent:?}");
    assert_eq!(got, frames[stripes.start as usize..stripes.end as usize]);
}

/// Damage found reading around the cache is named like damage found
/// through it: the stripe, and only the verified batches before it handed on.
#[test]
fn damage_is_caught_reading_around_the_cache() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let disk = open(dir.path());
    for intent in [ReadIntent::Serve, ReadIntent::Scrub] {
        for (what, stripe) in [("flip", 13u64), ("zero", 7), ("swap", 21), ("truncate", 17)] {
            let k = key();
            let frames = write_shard(&disk, k, 8 << 20);
            let n = frames.len() as u64;
            let h = disk.read_header(&k).unwrap();
            let path = disk.shard_path(&k);
            let at = h.frame_offset(stripe).unwrap();
            let f = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
            let mut reader = disk.open_reader(&k).unwrap();
            match what {
                "flip" => {
                    let mut b = [0u8; 1];
                    rustix::io::pread(&f, &mut b[..], at + 5000).unwrap();
                    b[0] ^= 0x10;
                    rustix::io::pwrite(&f, &b, at + 5000).unwrap();
                }
                "zero" => {
                    rustix::io::pwrite(&f, &vec![0u8; BLOCK + 32], at).unwrap();
                }
                // Another stripe's intact frame in this one's place.
                "swap" => {
                    rustix::io::pwrite(&f, &frames[stripe as usize - 1], at).unwrap();
                }
                // Shrunk after the reader checked its length.
                _ => f.set_len(at + 1000).unwrap(),
            }
            f.sync_all().unwrap();
            let mut got = Vec::new();
            let end = reader.read_batches(0..n, intent, |b| {
                assert_eq!(b.source, Source::Disk, "{NEEDS_DIRECT}");
                got.extend(b.frames);
                true
            });
            match end {
                Err(ShardError::Corrupt { stripe: Some(s), .. }) if s == stripe => {}
                other => panic!("{what} at stripe {stripe} ({intent:?}): {other:?}"),
            }
            let before = (stripe / PER_BATCH * PER_BATCH) as usize;
            assert_eq!(got, frames[..before], "{what}: only the batches before the damage");
        }
    }
    // A file gone between listing and opening is missing, not corrupt.
    let k = key();
    write_shard(&disk, k, 5 << 20);
    assert!(disk.delete(&k).unwrap());
    assert!(matches!(disk.open_reader(&k), Err(ShardError::Missing(_))));
}

/// A caller that stops after one batch ends the read (the read threads
/// stop at their next hand-over); the next read is whole.
#[test]
fn a_read_stopped_early_ends_and_the_next_is_whole() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let disk = open(dir.path());
    for stop_after in [1, 2, 5] {
        let k = key();
        let frames = write_shard(&disk, k, 16 << 20);
        let n = frames.len() as u64;
        let mut r = disk.open_reader(&k).unwrap();
        let mut seen = 0;
        let end = r
            .read_batches(0..n, ReadIntent::Serve, |b| {
                assert_eq!(b.first_stripe, seen * PER_BATCH, "in order");
                seen += 1;
                seen < stop_after
            })
            .unwrap();
        assert!(!end.complete);
        assert_eq!(end.source, Source::Disk, "{NEEDS_DIRECT}");
        assert_eq!(seen, stop_after);
        // Whole, around the cache (a scrub) and through it (read again).
        check(&disk, &k, 0..n, ReadIntent::Scrub, Source::Disk, &frames);
        check(&disk, &k, 0..n, ReadIntent::Serve, Source::PageCache, &frames);
    }
}

/// Writers renaming new copies over a shard while readers read it around
/// the cache: every reader sees the whole shard, or none before the first.
#[test]
fn readers_around_the_cache_beside_concurrent_writers_see_whole_shards() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let disk = open(dir.path());
    let k = key();
    let mut data = vec![0u8; 5 << 20];
    rand::rng().fill_bytes(&mut data);
    let expected = frames_of(k, &data);
    let n = expected.len() as u64;
    std::thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(|| {
                for _ in 0..3 {
                    write_data(&disk, k, &data);
                }
            });
            scope.spawn(|| {
                for _ in 0..6 {
                    let Ok(mut r) = disk.open_reader(&k) else { continue };
                    let mut got = Vec::new();
                    let end = r.read_batches(0..n, ReadIntent::Serve, |b| {
                        got.extend(b.frames);
                        true
                    });
                    let end = end.unwrap_or_else(|e| panic!("a reader saw a partial shard: {e}"));
                    assert!(end.complete);
                    assert!(got == expected, "a reader saw other bytes");
                }
            });
        }
    });
    let (got, _, end) = read(&disk, &k, 0..n, ReadIntent::Serve);
    assert!(end.is_ok());
    assert_eq!(got, expected);
    assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
}

/// The service counts each completed get by where it was read from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gets_are_counted_by_source() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let disk = open(dir.path());
    let (big, small) = (key(), key());
    let big_frames = write_shard(&disk, big, 8 << 20);
    let small_frames = write_shard(&disk, small, 1 << 20);
    let metrics = DatanodeMetrics::default();
    let service = DataService::new(vec![disk], metrics.clone());
    for (k, frames) in [(big, &big_frames), (small, &small_frames)] {
        let shard = ShardRef { disk: 1, data_id: Bytes::copy_from_slice(k.data_id.as_bytes()), part: 0, shard: 0 };
        let req = GetShardRequest { shard: Some(shard), first_stripe: 0, stripe_count: frames.len() as u64 };
        let mut got = LocalShards::get_shard(&service, req).await.unwrap();
        let mut n = 0;
        while let Some(f) = got.message().await.unwrap() {
            assert_eq!([&f.hash[..], &f.block[..]].concat(), frames[n]);
            n += 1;
        }
        assert_eq!(n, frames.len());
    }
    let count = |source: &'static str| metrics.shard_get_sources.get_or_create(&label("source", source)).get();
    assert_eq!((count("disk"), count("page_cache")), (1, 1), "{NEEDS_DIRECT}");
}
