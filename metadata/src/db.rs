//! The node's RocksDB: one database, three column families.
//!
//! | family | holds |
//! |---|---|
//! | `log` | Raft log entries by index |
//! | `raft` | vote, committed and purged log ids, the current snapshot |
//! | `sm` | the state machine's tables (see `keys`) and its applied state |

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, DB, Options};

use crate::MetaError;

/// Raft log entries.
pub const CF_LOG: &str = "log";
/// Raft's own small state.
pub const CF_RAFT: &str = "raft";
/// The state machine.
pub const CF_SM: &str = "sm";

/// Most bytes of memtables the database holds, all families together.
/// Measured (issue 24): after 1,000,000 records loaded through Raft a
/// metadata node peaked at 145–170 MiB RSS with RocksDB's defaults.
const DB_WRITE_BUFFER_BYTES: usize = 32 << 20;

/// The block cache, one for the three families. Left to RocksDB, each
/// family gets a 32 MiB cache of its own; listing a 1,000,000-object
/// bucket filled the leader's to ~120 MiB of RSS (issue #24's memory goal).
const BLOCK_CACHE_BYTES: usize = 16 << 20;

/// Opens (or creates) the metadata database at `path`. Corruption or an
/// unreadable database is an error: never repaired silently.
pub fn open_db(path: &Path) -> Result<Arc<DB>, MetaError> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_paranoid_checks(true);
    // All memtables of the three families together (RocksDB's default
    // lets each family hold two of 64 MiB): a full one is flushed early
    // instead of growing the node's memory with its write volume.
    opts.set_db_write_buffer_size(DB_WRITE_BUFFER_BYTES);
    let cache = rocksdb::Cache::new_lru_cache(BLOCK_CACHE_BYTES);
    let mut table = rocksdb::BlockBasedOptions::default();
    table.set_block_cache(&cache);
    let cfs = [CF_LOG, CF_RAFT, CF_SM].map(|name| {
        let mut cf = Options::default();
        cf.set_block_based_table_factory(&table);
        ColumnFamilyDescriptor::new(name, cf)
    });
    let db = DB::open_cf_descriptors(&opts, path, cfs)
        .map_err(|e| MetaError::Storage(format!("open {}: {e}", path.display())))?;
    Ok(Arc::new(db))
}

/// The column family `name`, which `open_db` always creates.
pub(crate) fn cf<'a>(db: &'a DB, name: &str) -> Result<&'a rocksdb::ColumnFamily, MetaError> {
    db.cf_handle(name).ok_or_else(|| MetaError::Storage(format!("column family {name} missing")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    /// The memtable cap reaches RocksDB (it writes its options to an
    /// OPTIONS file beside the data).
    #[test]
    fn memtables_are_capped_for_the_whole_database() {
        let dir = tempfile::tempdir().unwrap();
        drop(super::open_db(dir.path()).unwrap());
        let options = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("OPTIONS-"))
            .unwrap();
        let text = std::fs::read_to_string(options).unwrap();
        let want = format!("db_write_buffer_size={}", super::DB_WRITE_BUFFER_BYTES);
        assert!(text.lines().any(|l| l.trim() == want), "{want} not in the OPTIONS file");
    }

    /// Every family reads through the one capped block cache.
    #[test]
    fn the_block_cache_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        let db = super::open_db(dir.path()).unwrap();
        for name in [super::CF_LOG, super::CF_RAFT, super::CF_SM] {
            let cf = db.cf_handle(name).unwrap();
            let capacity = db.property_int_value_cf(cf, "rocksdb.block-cache-capacity").unwrap();
            assert_eq!(capacity, Some(super::BLOCK_CACHE_BYTES as u64), "{name}");
        }
    }
}
