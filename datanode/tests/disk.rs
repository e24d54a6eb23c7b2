//! The disk store: durable, all-or-nothing shard files, verified reads, and
//! the failure paths (abandoned and crashed writes, corruption, bad input,
//! concurrent writers, a full disk).

// A test that meets an error should fail loudly.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;

use bytes::Bytes;
use rand::RngCore;
use tessera_common::{DataId, DiskId};
use tessera_datanode::{FsDisk, ShardError, ShardHeader, ShardKey};
use tessera_ec::{CodecId, PieceId, StripeCoder, StripeLayout, new_codec};

const K: usize = 4;
const M: usize = 2;

fn coder() -> StripeCoder {
    StripeCoder::new(new_codec(CodecId::DEFAULT, K, M).unwrap(), StripeLayout::new(K, M, 64 * 1024).unwrap()).unwrap()
}

fn random(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::rng().fill_bytes(&mut v);
    v
}

fn header(data_id: DataId, shard: u16, len: u64) -> ShardHeader {
    ShardHeader {
        key: ShardKey { data_id, part: 0, shard },
        codec: CodecId::DEFAULT.as_u16(),
        k: K as u8,
        m: M as u8,
        block_len: coder().layout().block_len() as u32,
        piece_len: len,
    }
}

/// Encodes `data` and writes every shard to `disk`; returns the data id.
fn store_object(disk: &FsDisk, data: &[u8]) -> DataId {
    let id = DataId::new();
    let c = coder();
    let piece = PieceId { data_id: *id.as_bytes(), part: 0 };
    let l = *c.layout();
    let mut writers: Vec<_> =
        (0..K + M).map(|s| disk.create(header(id, s as u16, data.len() as u64)).unwrap()).collect();
    for s in 0..l.stripe_count(data.len() as u64) {
        let start = l.stripe_offset(s) as usize;
        let enc = c
            .encode_stripe(piece, s, Bytes::copy_from_slice(&data[start..start + l.stripe_len(data.len() as u64, s)]))
            .unwrap();
        for (w, b) in writers.iter_mut().zip(&enc.blocks) {
            w.write_frame(&b.hash, &b.data).unwrap();
        }
    }
    for w in writers {
        w.finish().unwrap();
    }
    id
}

fn read_object(disk: &FsDisk, id: DataId, len: u64) -> Vec<u8> {
    let c = coder();
    let piece = PieceId { data_id: *id.as_bytes(), part: 0 };
    let stripes = c.layout().stripe_count(len);
    let shards: Vec<Option<Bytes>> = (0..K + M)
        .map(|s| {
            let (_, frames) = disk.read_frames(&ShardKey { data_id: id, part: 0, shard: s as u16 }, 0..stripes).ok()?;
            Some(Bytes::from(frames.concat()))
        })
        .collect();
    c.decode_range(piece, len, &shards, 0..len).unwrap().0
}

fn open(dir: &Path) -> FsDisk {
    FsDisk::open(DiskId(1), dir).unwrap()
}

#[test]
fn shards_round_trip_through_the_codec() {
    let dir = tempfile::tempdir().unwrap();
    let disk = open(dir.path());
    for len in [1usize, 1000, 64 * 1024, 64 * 1024 + 1, 1 << 20] {
        let data = random(len);
        let id = store_object(&disk, &data);
        assert_eq!(read_object(&disk, id, len as u64), data, "len {len}");
        let key = ShardKey { data_id: id, part: 0, shard: 0 };
        assert_eq!(disk.stat(&key).unwrap().len, disk.read_header(&key).unwrap().file_len().unwrap());
        let (_, two) = disk.read_frames(&key, 0..1).unwrap();
        assert_eq!(two.len(), 1, "a block range reads only what it asks for");
    }
    // Reopening keeps everything, and the disk id is checked.
    let data = random(5000);
    let id = store_object(&disk, &data);
    drop(disk);
    let disk = open(dir.path());
    assert_eq!(read_object(&disk, id, 5000), data);
    assert!(matches!(FsDisk::open(DiskId(2), dir.path()), Err(ShardError::BadRequest(_))));
}

#[test]
fn unfinished_writes_leave_nothing_visible() {
    let dir = tempfile::tempdir().unwrap();
    let disk = open(dir.path());
    let id = DataId::new();
    let key = ShardKey { data_id: id, part: 0, shard: 0 };
    let c = coder();
    let enc = c.encode_stripe(PieceId { data_id: *id.as_bytes(), part: 0 }, 0, Bytes::from(random(64 * 1024))).unwrap();

    // Dropped after one of two stripes.
    let mut w = disk.create(header(id, 0, 3 * 64 * 1024)).unwrap();
    w.write_frame(&enc.blocks[0].hash, &enc.blocks[0].data).unwrap();
    drop(w);
    assert!(matches!(disk.read_frames(&key, 0..1), Err(ShardError::Missing(_))));
    assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0, "temp file removed on drop");

    // Finished too early.
    let mut w = disk.create(header(id, 0, 3 * 64 * 1024)).unwrap();
    w.write_frame(&enc.blocks[0].hash, &enc.blocks[0].data).unwrap();
    assert!(matches!(w.finish(), Err(ShardError::BadRequest(_))));
    assert!(matches!(disk.stat(&key), Err(ShardError::Missing(_))));

    // A crash mid-write (no destructor runs): the temp file stays until the
    // next open, which removes it; the shard never appears.
    let mut w = disk.create(header(id, 0, 3 * 64 * 1024)).unwrap();
    w.write_frame(&enc.blocks[0].hash, &enc.blocks[0].data).unwrap();
    std::mem::forget(w);
    assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 1);
    drop(disk);
    let disk = open(dir.path());
    assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0, "open removes crashed writes");
    assert!(matches!(disk.read_frames(&key, 0..1), Err(ShardError::Missing(_))));
}

#[test]
fn bad_frames_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let disk = open(dir.path());
    let id = DataId::new();
    let enc =
        coder().encode_stripe(PieceId { data_id: *id.as_bytes(), part: 0 }, 0, Bytes::from(random(1000))).unwrap();
    let b = &enc.blocks[1];
    let mut w = disk.create(header(id, 1, 1000)).unwrap();
    assert!(matches!(w.write_frame(&b.hash, &b.data[1..]), Err(ShardError::BadRequest(_))), "wrong length");
    let mut bad = b.data.to_vec();
    bad[0] ^= 1;
    assert!(matches!(w.write_frame(&b.hash, &bad), Err(ShardError::BadRequest(_))), "damaged in transit");
    assert!(
        matches!(w.write_frame(&enc.blocks[2].hash, &enc.blocks[2].data), Err(ShardError::BadRequest(_))),
        "another shard's block"
    );
    w.write_frame(&b.hash, &b.data).unwrap();
    assert!(
        matches!(w.write_frame(&b.hash, &b.data), Err(ShardError::BadRequest(_))),
        "more stripes than the header says"
    );
    w.finish().unwrap();
    let mut out_of_range = header(id, 6, 1000);
    assert!(matches!(disk.create(out_of_range), Err(ShardError::BadRequest(_))));
    out_of_range.key.shard = 0;
    out_of_range.k = 0;
    assert!(disk.create(out_of_range).is_err());
    let key = ShardKey { data_id: id, part: 0, shard: 1 };
    assert!(matches!(disk.read_frames(&key, 0..2), Err(ShardError::BadRequest(_))), "range past the end");
}

#[test]
fn frames_hashed_by_the_caller_are_checked_for_shape_and_caught_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let disk = open(dir.path());
    let id = DataId::new();
    let enc =
        coder().encode_stripe(PieceId { data_id: *id.as_bytes(), part: 0 }, 0, Bytes::from(random(1000))).unwrap();
    // Shape is still checked: length and stripe count.
    let b = &enc.blocks[0];
    let mut w = disk.create(header(id, 0, 1000)).unwrap();
    assert!(matches!(w.write_hashed_frame(&b.hash, &b.data[1..]), Err(ShardError::BadRequest(_))), "wrong length");
    w.write_hashed_frame(&b.hash, &b.data).unwrap();
    assert!(matches!(w.write_hashed_frame(&b.hash, &b.data), Err(ShardError::BadRequest(_))), "one stripe too many");
    w.finish().unwrap();
    let key0 = ShardKey { data_id: id, part: 0, shard: 0 };
    assert_eq!(disk.read_frames(&key0, 0..1).unwrap().1.concat(), [&b.hash[..], &b.data[..]].concat());
    // A hash that does not match is not hashed again on the way in, but no
    // read hands the block out: it is corrupt.
    let mut w = disk.create(header(id, 1, 1000)).unwrap();
    w.write_hashed_frame(&enc.blocks[2].hash, &enc.blocks[1].data).unwrap();
    w.finish().unwrap();
    let key1 = ShardKey { data_id: id, part: 0, shard: 1 };
    assert!(matches!(disk.read_frames(&key1, 0..1), Err(ShardError::Corrupt { .. })));
}

#[test]
fn corruption_is_reported_as_corrupt_and_missing_as_missing() {
    let dir = tempfile::tempdir().unwrap();
    let disk = open(dir.path());
    let data = random(300_000);
    let id = store_object(&disk, &data);
    let key = |s| ShardKey { data_id: id, part: 0, shard: s };
    let h = disk.read_header(&key(0)).unwrap();

    // A flipped bit in stripe 2's block of shard 0.
    let p0 = disk.shard_path(&key(0));
    let mut bytes = std::fs::read(&p0).unwrap();
    bytes[h.frame_offset(2).unwrap() as usize + 40] ^= 0x04;
    std::fs::write(&p0, &bytes).unwrap();
    match disk.read_frames(&key(0), 0..h.stripes().unwrap()) {
        Err(ShardError::Corrupt { stripe: Some(2), .. }) => {}
        other => panic!("expected corrupt stripe 2, got {other:?}"),
    }
    assert!(disk.read_frames(&key(0), 0..2).is_ok(), "undamaged stripes still read");

    // Truncated shard 1, zeroed header of shard 2, deleted shard 3.
    let p1 = disk.shard_path(&key(1));
    let len = std::fs::metadata(&p1).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&p1).unwrap().set_len(len - 100).unwrap();
    assert!(matches!(disk.read_frames(&key(1), 0..1), Err(ShardError::Corrupt { stripe: None, .. })));
    let p2 = disk.shard_path(&key(2));
    let mut b2 = std::fs::read(&p2).unwrap();
    b2[..64].fill(0);
    std::fs::write(&p2, &b2).unwrap();
    assert!(matches!(disk.read_frames(&key(2), 0..1), Err(ShardError::Corrupt { stripe: None, .. })));
    assert!(disk.delete(&key(3)).unwrap());
    assert!(!disk.delete(&key(3)).unwrap());
    assert!(matches!(disk.read_frames(&key(3), 0..1), Err(ShardError::Missing(_))));
    // A shard file copied under another shard's name fails its block hashes.
    std::fs::copy(disk.shard_path(&key(4)), disk.shard_path(&key(3))).unwrap();
    assert!(disk.read_frames(&key(3), 0..1).is_err());
}

#[test]
fn concurrent_puts_of_one_shard_leave_one_complete_file() {
    let dir = tempfile::tempdir().unwrap();
    let disk = open(dir.path());
    let id = DataId::new();
    let data = random(200_000);
    let c = coder();
    let l = *c.layout();
    let piece = PieceId { data_id: *id.as_bytes(), part: 0 };
    let frames: Vec<_> = (0..l.stripe_count(200_000))
        .map(|s| {
            let start = l.stripe_offset(s) as usize;
            c.encode_stripe(piece, s, Bytes::copy_from_slice(&data[start..start + l.stripe_len(200_000, s)]))
                .unwrap()
                .blocks[0]
                .clone()
        })
        .collect();
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                let mut w = disk.create(header(id, 0, 200_000)).unwrap();
                for f in &frames {
                    w.write_frame(&f.hash, &f.data).unwrap();
                }
                w.finish().unwrap();
            });
            scope.spawn(|| {
                // Readers meanwhile see the whole shard or none of it.
                match disk.read_frames(&ShardKey { data_id: id, part: 0, shard: 0 }, 0..frames.len() as u64) {
                    Ok((_, got)) => assert_eq!(got.len(), frames.len()),
                    Err(ShardError::Missing(_)) => {}
                    Err(e) => panic!("reader saw a partial shard: {e}"),
                }
            });
        }
    });
    let (_, got) = disk.read_frames(&ShardKey { data_id: id, part: 0, shard: 0 }, 0..frames.len() as u64).unwrap();
    assert_eq!(got.len(), frames.len());
    assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
}

#[test]
fn listing_pages_cover_every_shard_once() {
    let dir = tempfile::tempdir().unwrap();
    let disk = open(dir.path());
    let mut want = Vec::new();
    for _ in 0..20 {
        let id = store_object(&disk, &random(100));
        want.extend((0..(K + M) as u16).map(|s| ShardKey { data_id: id, part: 0, shard: s }));
    }
    std::fs::write(disk.shard_path(&want[0]).with_file_name("not-a-shard"), b"x").unwrap();
    let mut got = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = disk.list(cursor.as_deref(), 7).unwrap();
        assert!(page.keys.len() <= 7);
        got.extend(page.keys);
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    got.sort();
    want.sort();
    assert_eq!(got, want);
    let u = disk.usage().unwrap();
    assert!(u.capacity_bytes > 0 && u.used_bytes <= u.capacity_bytes);
}

#[test]
fn a_disk_of_the_first_layout_is_moved_to_one_level_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let disk = open(dir.path());
    let objects: Vec<(DataId, Vec<u8>)> = (0..30)
        .map(|_| {
            let data = random(1000);
            (store_object(&disk, &data), data)
        })
        .collect();
    drop(disk);
    // Rebuild the first layout by hand: shards/<aa>/<bb>/<file>, bb from
    // the id's second-to-last byte, and no LAYOUT file.
    std::fs::remove_file(dir.path().join("LAYOUT")).unwrap();
    let shards = dir.path().join("shards");
    let mut files = Vec::new();
    for a in std::fs::read_dir(&shards).unwrap() {
        for f in std::fs::read_dir(a.unwrap().path()).unwrap() {
            files.push(f.unwrap().path());
        }
    }
    assert_eq!(files.len(), 30 * (K + M));
    for (i, f) in files.iter().enumerate() {
        let key = ShardKey::parse_file_name(f.file_name().unwrap().to_str().unwrap()).unwrap();
        let b = f.parent().unwrap().join(format!("{:02x}", key.data_id.as_bytes()[14]));
        std::fs::create_dir_all(&b).unwrap();
        // The first third stays where layout 2 puts it: a move cut short.
        if i >= files.len() / 3 {
            std::fs::rename(f, b.join(f.file_name().unwrap())).unwrap();
        }
    }
    let disk = open(dir.path());
    assert_eq!(std::fs::read_to_string(dir.path().join("LAYOUT")).unwrap().trim(), "2");
    // Every fan-out directory is there from the start.
    for a in 0..=255u8 {
        assert!(shards.join(format!("{a:02x}")).is_dir(), "fan-out directory {a:02x} missing after open");
    }
    for a in std::fs::read_dir(&shards).unwrap() {
        for e in std::fs::read_dir(a.unwrap().path()).unwrap() {
            assert!(e.unwrap().file_type().unwrap().is_file(), "a second-level directory is left");
        }
    }
    for (id, data) in &objects {
        assert_eq!(&read_object(&disk, *id, data.len() as u64), data);
    }
    let page = disk.list(None, 1000).unwrap();
    assert_eq!(page.keys.len(), 30 * (K + M));
    // New writes land in the same layout, into new and existing directories.
    for _ in 0..10 {
        let data = random(500);
        let id = store_object(&disk, &data);
        assert_eq!(read_object(&disk, id, 500), data);
        assert_eq!(
            disk.shard_path(&ShardKey { data_id: id, part: 0, shard: 0 }).parent().unwrap().parent().unwrap(),
            shards
        );
    }
    // Fan-out directories removed from under an open disk are made again
    // (not taken for a failed disk).
    let removed: Vec<_> = std::fs::read_dir(&shards).unwrap().map(|e| e.unwrap().file_name()).collect();
    std::fs::remove_dir_all(&shards).unwrap();
    std::fs::create_dir(&shards).unwrap();
    let mut hit = false;
    for _ in 0..2000 {
        let data = random(700);
        let id = store_object(&disk, &data);
        assert_eq!(read_object(&disk, id, 700), data);
        let dir = disk.shard_path(&ShardKey { data_id: id, part: 0, shard: 0 }).parent().unwrap().to_owned();
        if removed.iter().any(|r| dir.file_name() == Some(r.as_os_str())) {
            hit = true;
            break;
        }
    }
    assert!(hit, "no write landed in a removed directory");
    drop(disk);
    // A layout this code does not know is refused, not guessed at.
    std::fs::write(dir.path().join("LAYOUT"), "3\n").unwrap();
    let err = FsDisk::open(DiskId(1), dir.path()).unwrap_err();
    assert!(err.to_string().contains("layout 3"), "{err}");
}

#[test]
fn a_disk_too_full_for_its_fan_out_directories_still_opens() {
    if !rustix::process::geteuid().is_root() {
        println!("needs root to mount a tmpfs; skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("few-inodes");
    std::fs::create_dir(&mnt).unwrap();
    let mount = |opts: &str| {
        let ok = std::process::Command::new("mount").args(["-t", "tmpfs", "-o", opts, "tmpfs"]).arg(&mnt).status();
        assert!(ok.unwrap().success(), "mount {opts}");
    };
    // Room for the disk's own files and a few dozen directories, not 256.
    mount("size=8m,nr_inodes=48");
    let result = std::panic::catch_unwind(|| {
        let disk = open(&mnt);
        assert!(!disk.is_failed());
        let made = std::fs::read_dir(mnt.join("shards")).unwrap().count();
        assert!(made < 256, "{made} fan-out directories on a tmpfs of 48 inodes");
        // Room again: puts make the directories they miss.
        let ok = std::process::Command::new("mount").args(["-o", "remount,nr_inodes=4096"]).arg(&mnt).status();
        assert!(ok.unwrap().success(), "remount");
        for _ in 0..40 {
            let data = random(300);
            let id = store_object(&disk, &data);
            assert_eq!(read_object(&disk, id, 300), data);
        }
        assert!(!disk.is_failed());
    });
    let unmounted = std::process::Command::new("umount").arg(&mnt).status().unwrap();
    assert!(unmounted.success(), "umount tmpfs");
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

#[test]
fn a_full_disk_stores_nothing_and_keeps_working() {
    if !rustix::process::geteuid().is_root() {
        println!("needs root to mount a small tmpfs; skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=512k", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(status.success(), "mount tmpfs");
    let result = std::panic::catch_unwind(|| {
        let disk = open(&mnt);
        let id = DataId::new();
        let data = random(2 << 20);
        let c = coder();
        let l = *c.layout();
        let piece = PieceId { data_id: *id.as_bytes(), part: 0 };
        let mut w = disk.create(header(id, 0, data.len() as u64)).unwrap();
        let mut err = None;
        for s in 0..l.stripe_count(data.len() as u64) {
            let start = l.stripe_offset(s) as usize;
            let enc = c
                .encode_stripe(
                    piece,
                    s,
                    Bytes::copy_from_slice(&data[start..start + l.stripe_len(data.len() as u64, s)]),
                )
                .unwrap();
            let b = &enc.blocks[0];
            if let Err(e) = w.write_frame(&b.hash, &b.data) {
                err = Some(e);
                break;
            }
        }
        assert!(matches!(err, Some(ShardError::NoSpace(_))), "expected NoSpace, got {err:?}");
        drop(w);
        assert!(!disk.is_failed(), "a full disk is not a failed disk");
        assert_eq!(std::fs::read_dir(mnt.join("tmp")).unwrap().count(), 0, "the partial write is gone");
        assert!(matches!(disk.stat(&ShardKey { data_id: id, part: 0, shard: 0 }), Err(ShardError::Missing(_))));
        // Out of space, the disk counts as full and refuses new shards at
        // once, until a usage check (each heartbeat) finds room again.
        assert!(disk.is_full());
        assert!(matches!(disk.create(header(DataId::new(), 0, 1000)), Err(ShardError::NoSpace(_))));
        // Space is back: a small shard still fits. (tmpfs returns the freed
        // pages of the removed temp file promptly but not always at once when
        // other tests load the machine: allow it 2 s.)
        let start = std::time::Instant::now();
        loop {
            disk.check_full().unwrap();
            match disk.create(header(DataId::new(), 0, 1000)) {
                Ok(w) => break drop(w),
                Err(ShardError::NoSpace(_)) if start.elapsed() < std::time::Duration::from_secs(2) => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                Err(e) => panic!("space did not come back: {e}"),
            }
        }
        let small = store_object(&disk, &random(1000));
        assert_eq!(read_object(&disk, small, 1000).len(), 1000);
    });
    let unmounted = std::process::Command::new("umount").arg(&mnt).status().unwrap();
    assert!(unmounted.success(), "umount tmpfs");
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

#[test]
fn a_disk_whose_writes_fail_stops_taking_writes() {
    if !rustix::process::geteuid().is_root() {
        println!("needs root to mount a tmpfs; skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("failing");
    std::fs::create_dir(&mnt).unwrap();
    let mount = |args: &[&str]| {
        let ok = std::process::Command::new("mount").args(args).arg(&mnt).status().unwrap().success();
        assert!(ok, "mount {args:?}");
    };
    mount(&["-t", "tmpfs", "-o", "size=8m", "tmpfs"]);
    let result = std::panic::catch_unwind(|| {
        let disk = open(&mnt);
        let kept = store_object(&disk, &random(10_000));
        // The device turns read-only: the next write fails with an I/O error
        // (not "full"), which latches the disk failed; later writes are
        // refused up front.
        mount(&["-o", "remount,ro"]);
        let first = disk.create(header(DataId::new(), 0, 1000));
        assert!(matches!(first, Err(ShardError::Io { .. })), "a write on a read-only device fails: {first:?}");
        assert!(disk.is_failed(), "the failure latched the disk");
        mount(&["-o", "remount,rw"]);
        let next = disk.create(header(DataId::new(), 0, 1000));
        assert!(
            matches!(next, Err(ShardError::DiskFailed(_))),
            "a failed disk takes no more writes, even if it seems back: {next:?}"
        );
        // What was stored before stays readable.
        assert_eq!(read_object(&disk, kept, 10_000).len(), 10_000);
    });
    let unmounted = std::process::Command::new("umount").arg(&mnt).status().unwrap();
    assert!(unmounted.success(), "umount tmpfs");
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

/// A finished shard's pages leave the page cache once it is fsynced (the
/// next shard reuses them instead of fresh ones); it still reads back whole.
/// On a real disk (the target folder), not a tmpfs, whose pages are its data.
#[test]
fn a_finished_shard_leaves_the_page_cache() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let disk = open(dir.path());
    let data = random(3 << 20);
    let id = store_object(&disk, &data);
    for shard in 0..(K + M) as u16 {
        let path = disk.shard_path(&ShardKey { data_id: id, part: 0, shard });
        let cached = support::cached_bytes(&path);
        assert_eq!(cached, 0, "shard {shard}: {cached} bytes still cached");
    }
    assert_eq!(read_object(&disk, id, data.len() as u64), data);
}
