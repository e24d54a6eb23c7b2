//! One disk: a directory of shard files (DESIGN.md §5).
//!
//! ```text
//!  <root>/DISK_ID                 which disk this directory is
//!  <root>/LAYOUT                  `2`: one level of fan-out (absent: the first layout)
//!  <root>/tmp/                    writes in progress (emptied at open)
//!  <root>/shards/<aa>/<data id>.<part>.<shard>     aa: the id's last byte, hex
//!
//!  create ─► tmp file: header, then [hash][block] per stripe (each hash checked,
//!            unless the gateway of this same process computed it: see
//!            [`ShardWriter::write_hashed_frame`])
//!  (every 4 MiB written: start its writeback, so the fsync waits only for the tail)
//!  finish ─► fsync file ─► rename into shards/<aa>/ ─► fsync <aa>/ ─► durable ─► drop its cached pages
//! ```
//!
//! The 256 fan-out directories are all made when the disk is opened (then
//! `shards/` is fsynced once), so a put costs two fsyncs, not a mkdir and
//! three. One that could not be made then (a full or read-only disk), or
//! was removed by hand later, is made by the first put that needs it. The
//! first layout (`shards/<aa>/<bb>/`, 65,536 directories, most of them new
//! to a put until a disk holds millions of shards) is moved to this one
//! when the disk is opened; a move cut short resumes at the next open.
//!
//! A shard is either wholly there or not there: a writer that is dropped,
//! killed or runs out of space leaves only a temp file, removed on drop or
//! at the next open. Renaming over an existing file makes concurrent puts of
//! one shard resolve to one complete file. A failed write or fsync marks the
//! disk failed: it refuses writes from then on (an fsync is never retried).

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use bytes::Bytes;
use tessera_common::DiskId;
use tessera_ec::{BlockAddress, HASH_LEN, block_hash};

use crate::direct::DirectIo;
use crate::recent::RecentShards;
use crate::shard::{HEADER_LEN, ShardHeader, ShardKey};
use crate::{ShardError, ShardReader, writeback};

/// Size and age of a stored shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardStat {
    /// File length in bytes.
    pub len: u64,
    /// When the file was last written.
    pub modified: SystemTime,
}

/// One page of a disk's shards.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardPage {
    /// Shards in on-disk order.
    pub keys: Vec<ShardKey>,
    /// Pass back to continue after this page; `None` at the end.
    pub next: Option<String>,
}

/// Bytes used and total on the disk's filesystem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskUsage {
    /// Used bytes.
    pub used_bytes: u64,
    /// Capacity in bytes.
    pub capacity_bytes: u64,
}

#[derive(Debug)]
struct Inner {
    id: DiskId,
    /// Made when the folder was formatted (DISK_ID's second line).
    incarnation: String,
    /// The cluster the folder belongs to (DISK_ID's third line), once known.
    cluster_id: OnceLock<String>,
    root: PathBuf,
    failed: AtomicBool,
    /// Free space fell below the reserve, or a write ran out of space:
    /// new shards are refused until [`FsDisk::check_full`] finds room.
    full: AtomicBool,
    /// The reserve in bytes; `u64::MAX`: 1% of the capacity.
    min_free: AtomicU64,
    /// Fan-out directories known to exist with a durable entry in `shards/`.
    dirs_ready: Vec<AtomicBool>,
    /// What reads around the page cache need here, if the filesystem says
    /// (asked of the first shard file read).
    direct_io: OnceLock<Option<DirectIo>>,
    /// Set when the filesystem refused such a read after all.
    direct_refused: AtomicBool,
    /// Gets reading around the page cache now.
    direct_gets: AtomicUsize,
    /// Shards lately read around the page cache.
    recent: Mutex<RecentShards>,
}

mod space;
/// The layout this code writes (see the module doc).
const LAYOUT: &str = "2";

/// A disk directory holding shard files. Cheap to clone. Blocking I/O: the
/// service calls it from blocking threads.
#[derive(Clone, Debug)]
pub struct FsDisk {
    inner: Arc<Inner>,
}

fn is_no_space(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::StorageFull | ErrorKind::QuotaExceeded)
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `a` then `b`, in one system call when the kernel takes both.
fn write_both(f: &mut File, a: &[u8], b: &[u8]) -> std::io::Result<()> {
    let mut done = 0;
    while done < a.len() {
        let n = f.write_vectored(&[std::io::IoSlice::new(&a[done..]), std::io::IoSlice::new(b)])?;
        if n == 0 {
            return Err(ErrorKind::WriteZero.into());
        }
        done += n;
    }
    f.write_all(&b[done - a.len()..])
}

/// A fan-out directory's name.
fn hex_dir(a: u8) -> String {
    format!("{a:02x}")
}

/// Moves shards of the first layout (`shards/<aa>/<bb>/<file>`) up into
/// `shards/<aa>/`, fsyncing each directory it moved files into before the
/// emptied one is removed. Idempotent: a move cut short by a crash goes on
/// at the next call (a file in both places is the same shard, renamed over).
fn flatten_fan_out(shards: &Path) -> std::io::Result<u64> {
    let mut moved = 0;
    for a in fs::read_dir(shards)? {
        let a = a?.path();
        if !a.is_dir() {
            continue;
        }
        let mut any = false;
        for b in fs::read_dir(&a)? {
            let b = b?.path();
            if !b.is_dir() {
                continue;
            }
            for f in fs::read_dir(&b)? {
                let f = f?;
                fs::rename(f.path(), a.join(f.file_name()))?;
                moved += 1;
            }
            any = true;
        }
        if any {
            fsync_dir(&a)?;
            for b in fs::read_dir(&a)? {
                let b = b?.path();
                if b.is_dir() {
                    fs::remove_dir(&b)?;
                }
            }
            fsync_dir(&a)?;
        }
    }
    Ok(moved)
}

impl FsDisk {
    /// Opens (or initializes) the disk at `root` as disk `id`, removing any
    /// temp files a crash left. A directory initialized for another disk id
    /// is refused.
    pub fn open(id: DiskId, root: &Path) -> Result<Self, ShardError> {
        let io = |what: &str| {
            let p = root.display().to_string();
            let what = what.to_owned();
            move |e| ShardError::io(format!("{what} {p}"), e)
        };
        let id_file = root.join("DISK_ID");
        // A folder without DISK_ID that already holds something is not a
        // Tessera disk (or one whose identity was lost): refused, never
        // taken over.
        if !id_file.exists()
            && let Ok(mut entries) = fs::read_dir(root)
            && entries.next().is_some()
        {
            return Err(ShardError::BadRequest(format!(
                "{} is not empty and has no DISK_ID: not a Tessera disk; use an empty folder",
                root.display()
            )));
        }
        fs::create_dir_all(root.join("shards")).map_err(io("create"))?;
        // DISK_ID: the disk id, then its incarnation, a random id made when
        // the folder is formatted. The metadata service remembers the
        // incarnation of every disk id, so an empty folder where a disk
        // should be (not mounted) or a disk from elsewhere is told apart
        // from the disk it claims to be.
        let mut cluster_id = OnceLock::new();
        let incarnation = match fs::read_to_string(&id_file) {
            Ok(s) => {
                let mut lines = s.lines();
                if let Some(c) = s.lines().nth(2).map(str::trim).filter(|l| !l.is_empty()) {
                    cluster_id = OnceLock::from(c.to_owned());
                }
                let got = lines.next().unwrap_or("").trim();
                if got != id.to_string() {
                    return Err(ShardError::BadRequest(format!("{} belongs to disk {got}, not {id}", root.display())));
                }
                match lines.next().map(str::trim).filter(|l| !l.is_empty()) {
                    Some(inc) => inc.to_owned(),
                    None => {
                        // Formatted before incarnations existed: given one now.
                        let inc = uuid::Uuid::now_v7().simple().to_string();
                        write_durably(root, &id_file, &format!("{id}\n{inc}\n")).map_err(io("write disk id in"))?;
                        inc
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let inc = uuid::Uuid::now_v7().simple().to_string();
                write_durably(root, &id_file, &format!("{id}\n{inc}\n")).map_err(io("write disk id in"))?;
                inc
            }
            Err(e) => return Err(io("read disk id in")(e)),
        };
        let tmp = root.join("tmp");
        if tmp.exists() {
            let mut left = 0;
            for entry in fs::read_dir(&tmp).map_err(io("list temp files in"))? {
                let path = entry.map_err(io("list temp files in"))?.path();
                fs::remove_file(&path).map_err(io("remove temp file in"))?;
                left += 1;
            }
            if left > 0 {
                tracing::info!(disk = %id, left, "removed temp files of interrupted writes");
            }
        }
        fs::create_dir_all(&tmp).map_err(io("create"))?;
        let shards = root.join("shards");
        let layout = root.join("LAYOUT");
        match fs::read_to_string(&layout) {
            Ok(s) if s.trim() == LAYOUT => {}
            Ok(s) => {
                return Err(ShardError::BadRequest(format!(
                    "{} has shard layout {}, this datanode knows {LAYOUT}",
                    root.display(),
                    s.trim()
                )));
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let moved = flatten_fan_out(&shards).map_err(io("move shards to layout 2 in"))?;
                if moved > 0 {
                    tracing::info!(disk = %id, moved, "moved shards to one level of fan-out directories");
                }
                fs::write(&layout, format!("{LAYOUT}\n")).map_err(io("write layout in"))?;
                File::open(&layout).and_then(|f| f.sync_all()).map_err(io("fsync layout in"))?;
                fsync_dir(root).map_err(io("fsync"))?;
            }
            Err(e) => return Err(io("read layout in")(e)),
        }
        // Every fan-out directory is made now, and made durable with one
        // fsync, so that no put pays for a mkdir and an fsync of `shards/`.
        // A full or read-only disk still opens (its shards can be read);
        // the directories it lacks are made by the first put that needs one.
        let mut made = Vec::with_capacity(256);
        for a in 0..=255u8 {
            made.push(match fs::create_dir(shards.join(hex_dir(a))) {
                Ok(()) => true,
                Err(e) if e.kind() == ErrorKind::AlreadyExists => true,
                Err(e) if is_no_space(&e) || e.kind() == ErrorKind::ReadOnlyFilesystem => false,
                Err(e) => return Err(io("create a fan-out directory in")(e)),
            });
        }
        if made.contains(&false) {
            tracing::warn!(disk = %id, missing = made.iter().filter(|m| !**m).count(), "could not make every fan-out directory (disk full or read-only)");
        }
        match fsync_dir(&shards) {
            Err(e) if e.kind() != ErrorKind::ReadOnlyFilesystem => return Err(io("fsync")(e)),
            _ => {}
        }
        let dirs_ready: Vec<AtomicBool> = made.into_iter().map(AtomicBool::new).collect();
        Ok(FsDisk {
            inner: Arc::new(Inner {
                id,
                incarnation,
                cluster_id,
                root: root.to_path_buf(),
                failed: AtomicBool::new(false),
                full: AtomicBool::new(false),
                min_free: AtomicU64::new(u64::MAX),
                dirs_ready,
                direct_io: OnceLock::new(),
                direct_refused: AtomicBool::new(false),
                direct_gets: AtomicUsize::new(0),
                recent: Mutex::new(RecentShards::default()),
            }),
        })
    }

    /// Makes sure fan-out directory `a` exists and its entry is durable.
    fn ready_dir(&self, a: u8) -> Result<(), ShardError> {
        let flag = &self.inner.dirs_ready[usize::from(a)];
        if flag.load(Ordering::Acquire) {
            return Ok(());
        }
        let shards = self.inner.root.join("shards");
        match fs::create_dir(shards.join(hex_dir(a))) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(self.write_error("create shard directory", e)),
        }
        fsync_dir(&shards).map_err(|e| self.write_error("fsync shards directory", e))?;
        flag.store(true, Ordering::Release);
        Ok(())
    }

    /// The disk's directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The disk's incarnation: a random id made when its folder was
    /// formatted.
    pub fn incarnation(&self) -> &str {
        &self.inner.incarnation
    }

    /// The cluster the disk belongs to; empty until it first joined one.
    pub fn cluster_id(&self) -> &str {
        self.inner.cluster_id.get().map_or("", String::as_str)
    }

    /// Records in DISK_ID (durably) that the disk belongs to cluster `id`;
    /// a disk that already names a cluster keeps it.
    pub fn adopt_cluster_id(&self, id: &str) -> Result<(), ShardError> {
        if id.is_empty() || self.inner.cluster_id.get().is_some() {
            return Ok(());
        }
        let root = &self.inner.root;
        let text = format!("{}\n{}\n{id}\n", self.inner.id, self.inner.incarnation);
        write_durably(root, &root.join("DISK_ID"), &text)
            .map_err(|e| ShardError::io(format!("write the cluster id in {}", root.display()), e))?;
        let _ = self.inner.cluster_id.set(id.to_owned());
        Ok(())
    }

    /// The disk's id.
    pub fn id(&self) -> DiskId {
        self.inner.id
    }

    /// Whether a write or fsync has failed on this disk.
    pub fn is_failed(&self) -> bool {
        self.inner.failed.load(Ordering::Acquire)
    }

    fn fail(&self, what: &str, e: &std::io::Error) {
        if !self.inner.failed.swap(true, Ordering::AcqRel) {
            tracing::error!(disk = %self.inner.id, error = %e, "{what} failed: disk taken out of service for writes");
        }
    }

    fn shard_dir(&self, key: &ShardKey) -> PathBuf {
        self.inner.root.join("shards").join(hex_dir(key.fan_out()))
    }

    /// Where shard `key` lives.
    pub fn shard_path(&self, key: &ShardKey) -> PathBuf {
        self.shard_dir(key).join(key.file_name())
    }

    /// Starts writing shard `header.key`. Nothing is visible until
    /// [`ShardWriter::finish`].
    ///
    /// Once a shard is durable its pages are dropped from the page cache
    /// (`POSIX_FADV_DONTNEED`; the service does it after acknowledging the
    /// put: [`ShardWriter::finish_durable`]), as MinIO's direct I/O and
    /// Ceph's BlueStore keep written data out of it: the next shard then
    /// reuses those pages instead of the kernel taking fresh ones. On this machine's VM a
    /// fresh page costs about three times the copy into it: 0.35 ms of
    /// system time per 256 KiB shard file against 0.11 ms when dropped
    /// (1 MiB PUTs: ~8.2 → ~7.3 ms of server CPU each). A shard read soon
    /// after it is written comes from the disk; small reads then cache it,
    /// large ones read around the cache (see [`ShardReader`]).
    pub fn create(&self, header: ShardHeader) -> Result<ShardWriter, ShardError> {
        if self.is_failed() {
            return Err(ShardError::DiskFailed(self.inner.id));
        }
        if self.is_full() {
            return Err(ShardError::NoSpace(self.inner.id));
        }
        header.validate()?;
        let tmp = self.inner.root.join("tmp").join(format!(
            "{}.{}.tmp",
            header.key.file_name(),
            uuid::Uuid::now_v7().simple()
        ));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| self.write_error("create temp file", e))?;
        let stripes = header.stripes()?;
        let mut w = ShardWriter {
            disk: self.clone(),
            header,
            file: None,
            tmp,
            next_stripe: 0,
            stripes,
            done: false,
            written: HEADER_LEN as u64,
            written_back: 0,
        };
        file.write_all(&header.encode()).map_err(|e| self.write_error("write header", e))?;
        w.file = Some(file);
        Ok(w)
    }

    fn write_error(&self, what: &str, e: std::io::Error) -> ShardError {
        if is_no_space(&e) {
            if !self.inner.full.swap(true, Ordering::AcqRel) {
                tracing::warn!(disk = %self.inner.id, "{what}: no space left; the disk takes no new shards until space is freed");
            }
            ShardError::NoSpace(self.inner.id)
        } else {
            self.fail(what, &e);
            ShardError::io(format!("{what} on disk {}", self.inner.id), e)
        }
    }

    fn open_shard(&self, key: &ShardKey) -> Result<(File, ShardHeader), ShardError> {
        let mut f = match File::open(self.shard_path(key)) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(ShardError::Missing(*key)),
            Err(e) => return Err(ShardError::io(format!("open shard {key}"), e)),
        };
        let mut hb = [0u8; HEADER_LEN];
        match f.read_exact(&mut hb) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                return Err(ShardError::Corrupt { key: *key, stripe: None, reason: "shorter than its header".into() });
            }
            Err(e) => return Err(ShardError::io(format!("read shard {key}"), e)),
        }
        let header = ShardHeader::decode(&hb, *key)?;
        let len = f.metadata().map_err(|e| ShardError::io(format!("stat shard {key}"), e))?.len();
        if len != header.file_len()? {
            return Err(ShardError::Corrupt {
                key: *key,
                stripe: None,
                reason: format!("length {len}, expected {}", header.file_len()?),
            });
        }
        Ok((f, header))
    }

    /// The header of shard `key`.
    pub fn read_header(&self, key: &ShardKey) -> Result<ShardHeader, ShardError> {
        Ok(self.open_shard(key)?.1)
    }

    /// Reads and verifies the frames (`[hash][block]`) of `stripes`.
    /// A missing file is [`ShardError::Missing`]; a bad block is
    /// [`ShardError::Corrupt`] naming its stripe — never bad bytes.
    pub fn read_frames(&self, key: &ShardKey, stripes: Range<u64>) -> Result<(ShardHeader, Vec<Bytes>), ShardError> {
        let mut r = self.open_reader(key)?;
        let frames = r.read_frames(stripes)?;
        Ok((*r.header(), frames))
    }

    /// Opens shard `key` for reading stripes one batch after another
    /// through one open file (the kernel's read-ahead follows a sequential
    /// reader; a file opened per batch starts it over each time).
    pub fn open_reader(&self, key: &ShardKey) -> Result<ShardReader, ShardError> {
        let (file, header) = self.open_shard(key)?;
        Ok(ShardReader::new(self.clone(), *key, file, header))
    }

    /// Whether (and how) this disk's reads can go around the page cache
    /// (see [`crate::direct`]), as the filesystem says of `shard`, one of
    /// its shard files (asked once: a shard file, never a tiny file that
    /// a filesystem may keep inline and unfit for such reads).
    pub(crate) fn direct_io(&self, shard: &File) -> Option<DirectIo> {
        if self.inner.direct_refused.load(Ordering::Relaxed) {
            return None;
        }
        *self.inner.direct_io.get_or_init(|| DirectIo::probe(shard))
    }

    /// The same disk told to read around the page cache as `direct_io`
    /// says, whatever the filesystem said: for tests of a refusal.
    #[cfg(test)]
    pub(crate) fn with_direct_io(self, direct_io: Option<DirectIo>) -> FsDisk {
        let Ok(mut inner) = Arc::try_unwrap(self.inner) else { panic!("a disk just opened has one handle") };
        inner.direct_io = OnceLock::from(direct_io);
        FsDisk { inner: Arc::new(inner) }
    }

    /// Whether shard `key` was lately read around the page cache (see
    /// [`crate::recent`]); remembers that it is now, if not.
    pub(crate) fn read_around_cache_lately(&self, key: &ShardKey) -> bool {
        self.inner.recent.lock().unwrap_or_else(|p| p.into_inner()).seen_or_remember(*key)
    }

    /// Counts a get reading around the page cache for as long as the
    /// returned guard lives.
    pub(crate) fn begin_direct_read(&self) -> DirectReads<'_> {
        let gets = self.inner.direct_gets.fetch_add(1, Ordering::Relaxed) + 1;
        DirectReads { disk: self, gets }
    }

    /// The filesystem refused a read around the page cache that it said it
    /// could do: from now on this disk reads through the cache.
    pub(crate) fn refuse_direct_io(&self, e: &std::io::Error) {
        if !self.inner.direct_refused.swap(true, Ordering::Relaxed) {
            tracing::warn!(disk = %self.inner.id, error = %e, "reads around the page cache refused: reading through it from now on");
        }
    }

    /// Removes shard `key`; `false` if it was not there.
    pub fn delete(&self, key: &ShardKey) -> Result<bool, ShardError> {
        match fs::remove_file(self.shard_path(key)) {
            Ok(()) => {
                fsync_dir(&self.shard_dir(key)).map_err(|e| self.write_error("fsync directory", e))?;
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(ShardError::io(format!("delete shard {key}"), e)),
        }
    }

    /// Size and modification time of shard `key`.
    pub fn stat(&self, key: &ShardKey) -> Result<ShardStat, ShardError> {
        match fs::metadata(self.shard_path(key)) {
            Ok(m) => Ok(ShardStat { len: m.len(), modified: m.modified().map_err(|e| ShardError::io("mtime", e))? }),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(ShardError::Missing(*key)),
            Err(e) => Err(ShardError::io(format!("stat shard {key}"), e)),
        }
    }

    /// Up to `max` shards after the cursor `after` (from a previous page).
    /// Files that are not shard files are skipped.
    pub fn list(&self, after: Option<&str>, max: usize) -> Result<ShardPage, ShardError> {
        let sorted = |dir: &Path| -> Result<Vec<String>, ShardError> {
            let mut names = Vec::new();
            match fs::read_dir(dir) {
                Ok(rd) => {
                    for e in rd {
                        names.push(
                            e.map_err(|e| ShardError::io("list disk", e))?.file_name().to_string_lossy().into_owned(),
                        );
                    }
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(ShardError::io("list disk", e)),
            }
            names.sort();
            Ok(names)
        };
        let root = self.inner.root.join("shards");
        let mut page = ShardPage::default();
        // The cursor is `<aa>/<name>`: directories before its own are not
        // read at all, so a page costs one or two directory listings.
        let after_dir = after.map(|c| c.split_once('/').map_or(c, |(a, _)| a));
        for a in sorted(&root)? {
            if after_dir.is_some_and(|d| a.as_str() < d) {
                continue;
            }
            for name in sorted(&root.join(&a))? {
                let cursor = format!("{a}/{name}");
                if after.is_some_and(|after| cursor.as_str() <= after) {
                    continue;
                }
                let Some(key) = ShardKey::parse_file_name(&name) else { continue };
                if page.keys.len() == max {
                    return Ok(page);
                }
                page.keys.push(key);
                page.next = Some(cursor);
            }
        }
        page.next = None;
        Ok(page)
    }
}

/// One get reading a disk around the page cache; see
/// [`FsDisk::begin_direct_read`].
pub(crate) struct DirectReads<'a> {
    disk: &'a FsDisk,
    gets: usize,
}

impl DirectReads<'_> {
    /// Gets reading the disk this way when this one began, itself included.
    pub(crate) fn gets(&self) -> usize {
        self.gets
    }
}

impl Drop for DirectReads<'_> {
    fn drop(&mut self) {
        self.disk.inner.direct_gets.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A shard being written. Dropping it without [`ShardWriter::finish`]
/// removes the temp file; nothing becomes visible.
pub struct ShardWriter {
    disk: FsDisk,
    header: ShardHeader,
    file: Option<File>,
    tmp: PathBuf,
    next_stripe: u64,
    stripes: u64,
    done: bool,
    /// Bytes in the temp file so far, and how many of them the kernel was
    /// already asked to write back (see [`crate::writeback`]).
    written: u64,
    written_back: u64,
}

impl std::fmt::Debug for ShardWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ShardWriter({} on {}, stripe {}/{})",
            self.header.key,
            self.disk.id(),
            self.next_stripe,
            self.stripes
        )
    }
}

impl ShardWriter {
    /// Appends the frame of the next stripe. The hash must match the block
    /// at its address: a block damaged on the way is refused, not stored.
    pub fn write_frame(&mut self, hash: &[u8; HASH_LEN], block: &[u8]) -> Result<(), ShardError> {
        self.check_frame(block)?;
        let s = self.next_stripe;
        let k = self.header.key;
        let addr = BlockAddress { data_id: *k.data_id.as_bytes(), part: k.part, shard: k.shard, stripe: s };
        if &block_hash(&addr, block) != hash {
            return Err(ShardError::BadRequest(format!("stripe {s}: block does not match its hash")));
        }
        self.append_frame(hash, block)
    }

    /// Appends the frame of the next stripe whose hash the caller computed
    /// from `block` itself, in this process (the gateway of `tessera
    /// server` handing over the buffers it just encoded). The block's
    /// length is still checked; its hash is not computed a second time. A
    /// wrong hash would still be caught by every later read and scrub.
    pub fn write_hashed_frame(&mut self, hash: &[u8; HASH_LEN], block: &[u8]) -> Result<(), ShardError> {
        self.check_frame(block)?;
        self.append_frame(hash, block)
    }

    /// Refuses a block beyond the last stripe or of the wrong length.
    fn check_frame(&self, block: &[u8]) -> Result<(), ShardError> {
        let s = self.next_stripe;
        if s >= self.stripes {
            return Err(ShardError::BadRequest(format!("shard has {} stripes; got more", self.stripes)));
        }
        let want = self.header.block_len_of(s)?;
        if block.len() != want {
            return Err(ShardError::BadRequest(format!("stripe {s}: block of {} bytes, expected {want}", block.len())));
        }
        Ok(())
    }

    fn append_frame(&mut self, hash: &[u8; HASH_LEN], block: &[u8]) -> Result<(), ShardError> {
        let f = self.file.as_mut().ok_or_else(|| ShardError::BadRequest("writer already closed".into()))?;
        write_both(f, hash, block).map_err(|e| self.disk.write_error("write shard", e))?;
        self.written += (HASH_LEN + block.len()) as u64;
        if self.written - self.written_back >= writeback::STEP {
            let (from, len) = (self.written_back, self.written - self.written_back);
            writeback::start(f, from, len).map_err(|e| self.disk.write_error("start writeback of shard", e))?;
            self.written_back = self.written;
        }
        self.next_stripe += 1;
        Ok(())
    }

    /// Makes the shard durable and visible: fsync, rename, fsync directory;
    /// then lets its pages go from the page cache (see [`FsDisk::create`]).
    pub fn finish(self) -> Result<(), ShardError> {
        self.finish_durable().map(Finished::drop_pages)
    }

    /// [`ShardWriter::finish`] up to the shard being durable and visible,
    /// leaving the page-cache release to the caller, who can acknowledge
    /// the put first: dropping a 64 MiB shard's pages takes ~3 ms here.
    pub fn finish_durable(mut self) -> Result<Finished, ShardError> {
        if self.next_stripe != self.stripes {
            return Err(ShardError::BadRequest(format!(
                "shard ended after {} of {} stripes",
                self.next_stripe, self.stripes
            )));
        }
        let f = self.file.take().ok_or_else(|| ShardError::BadRequest("writer already closed".into()))?;
        f.sync_all().map_err(|e| self.disk.write_error("fsync shard", e))?;
        let a = self.header.key.fan_out();
        self.disk.ready_dir(a)?;
        let dir = self.disk.shard_dir(&self.header.key);
        let target = dir.join(self.header.key.file_name());
        let mut renamed = fs::rename(&self.tmp, &target);
        if matches!(&renamed, Err(e) if e.kind() == ErrorKind::NotFound) && self.tmp.exists() {
            // The remembered directory was removed under us (by hand): make
            // it again rather than call the disk failed.
            self.disk.inner.dirs_ready[usize::from(a)].store(false, Ordering::Release);
            self.disk.ready_dir(a)?;
            renamed = fs::rename(&self.tmp, &target);
        }
        renamed.map_err(|e| self.disk.write_error("rename shard", e))?;
        self.done = true;
        fsync_dir(&dir).map_err(|e| self.disk.write_error("fsync shard directory", e))?;
        Ok(Finished { file: f })
    }
}

/// A shard made durable by [`ShardWriter::finish_durable`], its pages
/// still cached.
#[derive(Debug)]
pub struct Finished {
    file: File,
}

impl Finished {
    /// Drops the shard's (clean, fsynced) pages from the page cache: the
    /// next shard written reuses them instead of fresh ones. A hint only.
    pub fn drop_pages(self) {
        let _ = rustix::fs::fadvise(&self.file, 0, None, rustix::fs::Advice::DontNeed);
    }
}

impl Drop for ShardWriter {
    fn drop(&mut self) {
        if !self.done {
            self.file.take();
            if let Err(e) = fs::remove_file(&self.tmp)
                && e.kind() != ErrorKind::NotFound
            {
                tracing::warn!(path = %self.tmp.display(), error = %e, "could not remove temp file; removed at next open");
            }
        }
    }
}

/// Writes `file` (temp, fsync, rename, fsync of `root`).
fn write_durably(root: &Path, file: &Path, text: &str) -> std::io::Result<()> {
    let tmp = file.with_extension("tmp");
    fs::write(&tmp, text)?;
    File::open(&tmp)?.sync_all()?;
    fs::rename(&tmp, file)?;
    fsync_dir(root)
}
