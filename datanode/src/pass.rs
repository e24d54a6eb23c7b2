//! Where a worker that walks a disk in passes (scrub, heal) stands: its
//! completed passes and its cursor within the current one, kept in a small
//! file on the disk so a restart resumes instead of starting over.

use std::path::PathBuf;

use crate::FsDisk;

/// The scrubber's progress file.
pub const SCRUB_STATE: &str = "scrub.state";
/// The heal worker's progress file.
pub const HEAL_STATE: &str = "heal.state";
/// The rebalancer's progress file.
pub const REBALANCE_STATE: &str = "rebalance.state";

/// Passes and cursor, as saved in `<disk>/<file>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassProgress {
    /// Completed passes over the whole disk.
    pub passes: u64,
    /// Cursor within the current pass (empty: at the start).
    pub cursor: String,
}

impl PassProgress {
    fn path(disk: &FsDisk, file: &str) -> PathBuf {
        disk.root().join(file)
    }

    /// Loads the progress saved in `file` (a missing or unreadable file
    /// starts over).
    pub fn load(disk: &FsDisk, file: &str) -> Self {
        let text = std::fs::read_to_string(Self::path(disk, file)).unwrap_or_default();
        let mut lines = text.lines();
        let passes = lines.next().and_then(|l| l.parse().ok()).unwrap_or(0);
        let cursor = lines.next().unwrap_or_default().to_owned();
        PassProgress { passes, cursor }
    }

    /// Saves atomically (temp file, rename). Progress is advisory: losing
    /// the last save only repeats a little work.
    pub(crate) fn save(&self, disk: &FsDisk, file: &str) -> std::io::Result<()> {
        let path = Self::path(disk, file);
        let tmp = path.with_extension("state.tmp");
        std::fs::write(&tmp, format!("{}\n{}\n", self.passes, self.cursor))?;
        std::fs::rename(tmp, path)
    }
}
