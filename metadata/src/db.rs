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

/// Opens (or creates) the metadata database at `path`. Corruption or an
/// unreadable database is an error: never repaired silently.
pub fn open_db(path: &Path) -> Result<Arc<DB>, MetaError> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_paranoid_checks(true);
    let cfs = [CF_LOG, CF_RAFT, CF_SM].map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
    let db = DB::open_cf_descriptors(&opts, path, cfs)
        .map_err(|e| MetaError::Storage(format!("open {}: {e}", path.display())))?;
    Ok(Arc::new(db))
}

/// The column family `name`, which `open_db` always creates.
pub(crate) fn cf<'a>(db: &'a DB, name: &str) -> Result<&'a rocksdb::ColumnFamily, MetaError> {
    db.cf_handle(name).ok_or_else(|| MetaError::Storage(format!("column family {name} missing")))
}
