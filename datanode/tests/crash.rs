//! Crash safety: a child process writes shards as fast as it can and is
//! killed with SIGKILL at random moments. After each kill the disk reopens
//! with no temp file left, every visible shard verifies whole, and every
//! shard the child recorded as acknowledged is there.
//! Replay a run with `TESSERA_SEED=<seed>`.

// A test that meets an error should fail loudly.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use tessera_common::{DataId, DiskId};
use tessera_datanode::{FsDisk, ShardHeader, ShardKey};
use tessera_ec::{CodecId, PieceId, StripeCoder, StripeLayout, new_codec};

const CHILD_ENV: &str = "TESSERA_CRASH_CHILD";
const ROUNDS: usize = 12;

/// The child: write shards of random sizes forever; log each acknowledged
/// one (fsynced) after `finish` returns.
fn child(dir: &Path) -> ! {
    let disk = FsDisk::open(DiskId(1), dir).unwrap();
    let coder =
        StripeCoder::new(new_codec(CodecId::DEFAULT, 2, 1).unwrap(), StripeLayout::new(2, 1, 256 * 1024).unwrap())
            .unwrap();
    let l = *coder.layout();
    let mut log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("acked.log")).unwrap();
    let mut rng = rand::rng();
    loop {
        let id = DataId::new();
        let len = rng.random_range(1..3 << 20) as u64;
        let mut data = vec![0u8; len as usize];
        rng.fill_bytes(&mut data);
        let header = ShardHeader {
            key: ShardKey { data_id: id, part: 0, shard: 0 },
            codec: CodecId::DEFAULT.as_u16(),
            k: 2,
            m: 1,
            block_len: l.block_len() as u32,
            piece_len: len,
        };
        let mut w = disk.create(header).unwrap();
        for s in 0..l.stripe_count(len) {
            let start = l.stripe_offset(s) as usize;
            let stripe = Bytes::copy_from_slice(&data[start..start + l.stripe_len(len, s)]);
            let enc = coder.encode_stripe(PieceId { data_id: *id.as_bytes(), part: 0 }, s, stripe).unwrap();
            w.write_frame(&enc.blocks[0].hash, &enc.blocks[0].data).unwrap();
        }
        w.finish().unwrap();
        writeln!(log, "{}", header.key.file_name()).unwrap();
        log.sync_all().unwrap();
    }
}

#[test]
fn killed_writers_leave_no_partial_shards() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir));
    }
    let seed = std::env::var("TESSERA_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(rand::random::<u64>);
    println!("seed = {seed} (replay with TESSERA_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut total_visible = 0;
    for round in 0..ROUNDS {
        let mut child = std::process::Command::new(&exe)
            .args(["--exact", "killed_writers_leave_no_partial_shards", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.random_range(30..400)));
        child.kill().unwrap(); // SIGKILL: no destructor, no flush
        child.wait().unwrap();

        let disk = FsDisk::open(DiskId(1), dir.path()).unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0,
            "round {round}: temp files left after open"
        );
        let page = disk.list(None, 1_000_000).unwrap();
        for key in &page.keys {
            let h =
                disk.read_header(key).unwrap_or_else(|e| panic!("round {round}: visible shard {key} is damaged: {e}"));
            disk.read_frames(key, 0..h.stripes().unwrap())
                .unwrap_or_else(|e| panic!("round {round}: visible shard {key} is partial: {e}"));
        }
        let acked = std::fs::read_to_string(dir.path().join("acked.log")).unwrap_or_default();
        for line in acked.lines() {
            let key = ShardKey::parse_file_name(line).unwrap();
            assert!(page.keys.contains(&key), "round {round}: acknowledged shard {key} is missing");
        }
        total_visible = page.keys.len();
    }
    println!("{ROUNDS} kills, {total_visible} complete shards, no partial one visible");
    assert!(total_visible > 0, "the child never finished a shard: the test proved nothing");
}
