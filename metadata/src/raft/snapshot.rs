//! Snapshots as files, streamed: built from a consistent RocksDB snapshot
//! straight into a file, sent by openraft in chunks read from that file,
//! received into a file, and installed from it in bounded write batches —
//! on blocking threads, never holding the state in memory (memory stays
//! flat in the state's size).
//!
//! File format: a format byte, then `[u32 len][key][u32 len][value]` for
//! every key of the `sm` family (the same bytes as before snapshots became
//! files). Files live in `<db>/raft-snapshots/`; the current one's meta and
//! file name are kept in the `raft` family.
//!
//! An install deletes the state and writes the snapshot's in several
//! batches, so a crash halfway would leave part of each. Before it starts,
//! the received file is made durable and an "installing" marker naming it
//! is stored (fsynced); the last batch writes the applied log id; the
//! marker is removed after. A node that finds the marker at start-up
//! installs the same file again before anything reads its state.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use rocksdb::{DB, IteratorMode, ReadOptions, WriteBatch, WriteOptions};

use crate::MetaError;
use crate::db::{CF_SM, cf};

/// The snapshot file format.
pub(crate) const SNAPSHOT_FORMAT: u8 = 1;
/// Bytes of snapshot data per install batch.
const INSTALL_BATCH_BYTES: usize = 8 << 20;
/// Buffer of the file writer and reader.
const IO_BUFFER: usize = 1 << 20;
/// Largest key or value a snapshot may hold (records are far smaller): a
/// damaged length is refused before anything that size is allocated.
const MAX_ITEM: usize = 64 << 20;

fn storage(what: &str, e: impl std::fmt::Display) -> MetaError {
    MetaError::Storage(format!("{what}: {e}"))
}

/// The folder of a database's snapshot files.
pub(crate) fn dir(db: &DB) -> PathBuf {
    db.path().join("raft-snapshots")
}

/// Writes every key of the `sm` family, as of one consistent RocksDB
/// snapshot, to `path` (made durable); returns the stored applied state
/// (its raw value) and the bytes written.
pub(crate) fn build(db: &DB, path: &Path, applied_key: &[u8]) -> Result<(Option<Vec<u8>>, u64), MetaError> {
    let parent = path.parent().ok_or_else(|| storage("snapshot path", "no folder"))?;
    std::fs::create_dir_all(parent).map_err(|e| storage("create the snapshot folder", e))?;
    let tmp = path.with_extension("tmp");
    let file = File::create(&tmp).map_err(|e| storage("create a snapshot file", e))?;
    let mut out = BufWriter::with_capacity(IO_BUFFER, file);
    let snap = db.snapshot();
    let mut opts = ReadOptions::default();
    opts.set_snapshot(&snap);
    // A scan of everything: do not churn the block cache.
    opts.fill_cache(false);
    let write = |out: &mut BufWriter<File>, b: &[u8]| -> Result<(), MetaError> {
        let len = u32::try_from(b.len()).map_err(|_| storage("snapshot", "a key or value over 4 GiB"))?;
        out.write_all(&len.to_le_bytes()).and_then(|()| out.write_all(b)).map_err(|e| storage("write a snapshot", e))
    };
    out.write_all(&[SNAPSHOT_FORMAT]).map_err(|e| storage("write a snapshot", e))?;
    let mut applied = None;
    let mut bytes = 1u64;
    for item in db.iterator_cf_opt(cf(db, CF_SM)?, opts, IteratorMode::Start) {
        let (k, v) = item.map_err(|e| storage("read the state", e))?;
        if k.as_ref() == applied_key {
            applied = Some(v.to_vec());
        }
        write(&mut out, &k)?;
        write(&mut out, &v)?;
        bytes += 8 + k.len() as u64 + v.len() as u64;
    }
    let file = out.into_inner().map_err(|e| storage("write a snapshot", e.error()))?;
    file.sync_all().map_err(|e| storage("sync a snapshot", e))?;
    std::fs::rename(&tmp, path).map_err(|e| storage("name a snapshot", e))?;
    sync_dir(parent)?;
    Ok((applied, bytes))
}

/// Makes a rename or a removal in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), MetaError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| storage("sync the snapshot folder", e))
}

/// Reads the (key, value) pairs of snapshot data from `r`, handing each to
/// `f`; fails on an unknown format or a truncated pair.
pub(crate) fn read_pairs(
    r: impl Read,
    mut f: impl FnMut(&[u8], &[u8]) -> Result<(), MetaError>,
) -> Result<(), MetaError> {
    let mut r = BufReader::with_capacity(IO_BUFFER, r);
    let mut format = [0u8; 1];
    r.read_exact(&mut format).map_err(|_| storage("snapshot data", "empty"))?;
    if format[0] != SNAPSHOT_FORMAT {
        return Err(storage("snapshot data", format!("format {} is unknown", format[0])));
    }
    let (mut k, mut v) = (Vec::new(), Vec::new());
    loop {
        let mut len = [0u8; 4];
        // The end of the data may only come between pairs.
        match r.read(&mut len[..1]) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(storage("read snapshot data", e)),
        }
        let truncated = |_| storage("snapshot data", "truncated");
        let size = |len: [u8; 4]| match u32::from_le_bytes(len) as usize {
            n if n > MAX_ITEM => Err(storage("snapshot data", format!("an item of {n} bytes"))),
            n => Ok(n),
        };
        r.read_exact(&mut len[1..]).map_err(truncated)?;
        k.resize(size(len)?, 0);
        r.read_exact(&mut k).map_err(truncated)?;
        r.read_exact(&mut len).map_err(truncated)?;
        v.resize(size(len)?, 0);
        r.read_exact(&mut v).map_err(truncated)?;
        f(&k, &v)?;
    }
}

/// Replaces the `sm` family with the snapshot in `path`, in batches of
/// [`INSTALL_BATCH_BYTES`]; `last` (the applied state and anything else
/// that must land with the end) goes into the final batch, written with
/// fsync. Idempotent: installing the same file again gives the same state.
pub(crate) fn install(db: &DB, path: &Path, last: impl FnOnce(&mut WriteBatch)) -> Result<u64, MetaError> {
    let family = cf(db, CF_SM)?;
    let mut batch = WriteBatch::default();
    batch.delete_range_cf(family, [0u8].as_slice(), [0xffu8; 1].as_slice());
    let mut pending = 0usize;
    let mut pairs = 0u64;
    let file = File::open(path).map_err(|e| storage("open a received snapshot", e))?;
    read_pairs(file, |k, v| {
        batch.put_cf(family, k, v);
        pending += k.len() + v.len();
        pairs += 1;
        if pending >= INSTALL_BATCH_BYTES {
            db.write(std::mem::take(&mut batch)).map_err(|e| storage("install a snapshot", e))?;
            pending = 0;
        }
        Ok(())
    })?;
    last(&mut batch);
    let mut w = WriteOptions::default();
    w.set_sync(true);
    db.write_opt(batch, &w).map_err(|e| storage("install a snapshot", e))?;
    Ok(pairs)
}

/// Reads the snapshot file at `path` whole: its pairs, or why it is not a
/// snapshot (checked before an install touches the state).
pub(crate) fn check(path: &Path) -> Result<u64, MetaError> {
    let file = File::open(path).map_err(|e| storage("open a received snapshot", e))?;
    let mut pairs = 0u64;
    read_pairs(file, |_, _| {
        pairs += 1;
        Ok(())
    })?;
    Ok(pairs)
}

/// Removes every snapshot file in `dir` but `keep`.
pub(crate) fn remove_others(dir: &Path, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p != keep {
            let _ = std::fs::remove_file(&p);
        }
    }
    let _ = sync_dir(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

    fn collect(data: &[u8]) -> Result<Pairs, MetaError> {
        let mut out = Vec::new();
        read_pairs(data, |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn snapshot_data_round_trips_and_rejects_garbage() {
        let mut data = vec![SNAPSHOT_FORMAT];
        for b in [&b"key"[..], b"", b"k2", b"value"] {
            data.extend_from_slice(&(b.len() as u32).to_le_bytes());
            data.extend_from_slice(b);
        }
        let pairs = collect(&data).unwrap();
        assert_eq!(pairs, vec![(b"key".to_vec(), Vec::new()), (b"k2".to_vec(), b"value".to_vec())]);
        assert!(collect(&data[..data.len() - 1]).is_err(), "truncated");
        assert!(collect(&data[..data.len() - 7]).is_err(), "truncated in a length");
        assert!(collect(&[9]).is_err(), "unknown format");
        assert!(collect(&[]).is_err());
        assert!(collect(&[SNAPSHOT_FORMAT, 1, 0]).is_err());
        assert_eq!(collect(&[SNAPSHOT_FORMAT]).unwrap(), Vec::new(), "an empty state");
        assert!(collect(&[SNAPSHOT_FORMAT, 0xff, 0xff, 0xff, 0xff]).is_err(), "a 4 GiB key is not allocated");
    }
}
