//! `MemDisk`: an in-memory [`Disk`] that models what a crash or power loss does to a file system.
//!
//! Every file keeps two images: the *live* bytes that reads see and the *durable* bytes that survive a crash.
//! `sync_data` copies live to durable. Writes, truncations and directory changes made since the last sync are
//! kept as pending operations, in order. [`MemDisk::crash`] builds the disk a restarted process would find:
//! for every file, the durable image plus a prefix of its pending operations, the next pending write torn at
//! any byte; for directory entries, the durable names plus a prefix of the pending creates, renames and
//! removes. Directories themselves are durable as soon as they are created.

use crate::disk::{parent_dir, DirLock, Disk, DiskFile};
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An in-memory disk with a crash model; clones share the same state.
#[derive(Clone, Default)]
pub struct MemDisk {
    state: Arc<Mutex<MemState>>,
}

/// Counters of the calls made to a [`MemDisk`], for tests that check the write and sync discipline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemDiskStats {
    /// `write_all_at` calls.
    pub writes: u64,
    /// `sync_data` calls.
    pub file_syncs: u64,
    /// `sync_dir` calls.
    pub dir_syncs: u64,
}

#[derive(Default)]
struct MemState {
    next_id: u64,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    dir_ops: Vec<DirOp>,
    files: BTreeMap<u64, FileImages>,
    dirs: BTreeSet<PathBuf>,
    locks: BTreeSet<PathBuf>,
    stats: MemDiskStats,
    calls_left: Option<u64>,
}

#[derive(Clone, Debug)]
enum DirOp {
    Link { path: PathBuf, id: u64 },
    Unlink { path: PathBuf },
    Rename { from: PathBuf, to: PathBuf, id: u64 },
}

impl DirOp {
    fn dir(&self) -> PathBuf {
        match self {
            DirOp::Link { path, .. } | DirOp::Unlink { path } => parent_dir(path),
            DirOp::Rename { to, .. } => parent_dir(to),
        }
    }

    fn apply(&self, names: &mut BTreeMap<PathBuf, u64>) {
        match self {
            DirOp::Link { path, id } => {
                names.insert(path.clone(), *id);
            }
            DirOp::Unlink { path } => {
                names.remove(path);
            }
            DirOp::Rename { from, to, id } => {
                names.remove(from);
                names.insert(to.clone(), *id);
            }
        }
    }
}

#[derive(Clone, Debug, Default)]
struct FileImages {
    live: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<FileOp>,
}

#[derive(Clone, Debug)]
enum FileOp {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

impl FileOp {
    fn apply(&self, image: &mut Vec<u8>) {
        match self {
            FileOp::Write { offset, data } => write_into(image, *offset, data),
            FileOp::SetLen(len) => image.resize(*len as usize, 0),
        }
    }
}

fn write_into(image: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = offset as usize;
    let end = start + data.len();
    if image.len() < end {
        image.resize(end, 0);
    }
    image[start..end].copy_from_slice(data);
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", path.display()),
    )
}

impl MemState {
    /// Counts one mutating call against [`MemDisk::power_cut_after`]; fails once the budget is spent.
    fn tick(&mut self) -> io::Result<()> {
        match self.calls_left {
            Some(0) => Err(io::Error::other("simulated power loss")),
            Some(n) => {
                self.calls_left = Some(n - 1);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn id_of(&self, path: &Path) -> io::Result<u64> {
        self.names.get(path).copied().ok_or_else(|| not_found(path))
    }

    fn check_dir(&self, path: &Path) -> io::Result<()> {
        let dir = parent_dir(path);
        if self.dirs.contains(&dir) {
            Ok(())
        } else {
            Err(not_found(&dir))
        }
    }
}

/// A file handle on a [`MemDisk`].
pub struct MemFile {
    disk: MemDisk,
    id: u64,
}

impl MemFile {
    fn with<T>(&self, f: impl FnOnce(&mut MemState, &mut FileImages) -> T) -> io::Result<T> {
        let mut state = self.disk.state.lock();
        let mut images = state
            .files
            .remove(&self.id)
            .ok_or_else(|| io::Error::other("file handle outlived its disk image"))?;
        let out = f(&mut state, &mut images);
        state.files.insert(self.id, images);
        Ok(out)
    }
}

impl DiskFile for MemFile {
    fn len(&self) -> io::Result<u64> {
        self.with(|_, img| img.live.len() as u64)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.with(|_, img| {
            let start = offset as usize;
            let end = start.checked_add(buf.len())?;
            buf.copy_from_slice(img.live.get(start..end)?);
            Some(())
        })?
        .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))
    }

    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.with(|state, img| {
            state.tick()?;
            state.stats.writes += 1;
            write_into(&mut img.live, offset, buf);
            img.pending.push(FileOp::Write {
                offset,
                data: buf.to_vec(),
            });
            Ok(())
        })?
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.with(|state, img| {
            state.tick()?;
            img.live.resize(len as usize, 0);
            img.pending.push(FileOp::SetLen(len));
            Ok(())
        })?
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.with(|state, img| {
            state.tick()?;
            state.stats.file_syncs += 1;
            img.durable = img.live.clone();
            img.pending.clear();
            Ok(())
        })?
    }
}

/// Holds a [`MemDisk`] lock; removes it when dropped.
struct MemLock {
    disk: MemDisk,
    path: PathBuf,
}

impl Drop for MemLock {
    fn drop(&mut self) {
        self.disk.state.lock().locks.remove(&self.path);
    }
}

impl Disk for MemDisk {
    type File = MemFile;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        for ancestor in dir.ancestors() {
            state.dirs.insert(ancestor.to_path_buf());
        }
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let state = self.state.lock();
        if !state.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        Ok(state
            .names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect())
    }

    fn open_file(&self, path: &Path) -> io::Result<MemFile> {
        let id = self.state.lock().id_of(path)?;
        Ok(MemFile {
            disk: self.clone(),
            id,
        })
    }

    fn create_file(&self, path: &Path) -> io::Result<MemFile> {
        let mut state = self.state.lock();
        state.check_dir(path)?;
        state.tick()?;
        if let Ok(id) = state.id_of(path) {
            drop(state);
            let mut file = MemFile {
                disk: self.clone(),
                id,
            };
            file.set_len(0)?;
            return Ok(file);
        }
        state.next_id += 1;
        let id = state.next_id;
        state.files.insert(id, FileImages::default());
        state.names.insert(path.to_path_buf(), id);
        state.dir_ops.push(DirOp::Link {
            path: path.to_path_buf(),
            id,
        });
        Ok(MemFile {
            disk: self.clone(),
            id,
        })
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.id_of(path)?;
        state.tick()?;
        state.names.remove(path);
        state.dir_ops.push(DirOp::Unlink {
            path: path.to_path_buf(),
        });
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        let id = state.id_of(from)?;
        state.check_dir(to)?;
        state.tick()?;
        state.names.remove(from);
        state.names.insert(to.to_path_buf(), id);
        state.dir_ops.push(DirOp::Rename {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
            id,
        });
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.tick()?;
        state.stats.dir_syncs += 1;
        let ops = std::mem::take(&mut state.dir_ops);
        let (now, later): (Vec<DirOp>, Vec<DirOp>) =
            ops.into_iter().partition(|op| op.dir() == dir);
        for op in &now {
            op.apply(&mut state.durable_names);
        }
        state.dir_ops = later;
        Ok(())
    }

    fn lock_exclusive(&self, path: &Path, owner: &str) -> io::Result<DirLock> {
        {
            let mut state = self.state.lock();
            if !state.locks.insert(path.to_path_buf()) {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "held in this process".to_string(),
                ));
            }
        }
        let mut file = self.create_file(path)?;
        file.write_all_at(owner.as_bytes(), 0)?;
        Ok(DirLock::new(Box::new(MemLock {
            disk: self.clone(),
            path: path.to_path_buf(),
        })))
    }
}

impl MemDisk {
    /// A new, empty disk.
    pub fn new() -> Self {
        Self::default()
    }

    /// The disk a process would find after a crash at this instant. `below(n)` must return a number in `0..n`;
    /// it chooses how many pending directory operations and file operations survive and where the first lost
    /// write is torn. This disk is left as it is.
    pub fn crash(&self, mut below: impl FnMut(u64) -> u64) -> MemDisk {
        let state = self.state.lock();
        let mut names = state.durable_names.clone();
        let keep_dir_ops = below(state.dir_ops.len() as u64 + 1) as usize;
        for op in &state.dir_ops[..keep_dir_ops] {
            op.apply(&mut names);
        }
        let mut files = BTreeMap::new();
        for &id in names.values() {
            let Some(images) = state.files.get(&id) else {
                continue;
            };
            let image = crashed_image(images, &mut below);
            files.insert(
                id,
                FileImages {
                    live: image.clone(),
                    durable: image,
                    pending: Vec::new(),
                },
            );
        }
        MemDisk {
            state: Arc::new(Mutex::new(MemState {
                next_id: state.next_id,
                durable_names: names.clone(),
                names,
                dir_ops: Vec::new(),
                files,
                dirs: state.dirs.clone(),
                locks: BTreeSet::new(),
                stats: MemDiskStats::default(),
                calls_left: None,
            })),
        }
    }

    /// The disk after a power loss that kept nothing unsynced.
    pub fn crash_losing_unsynced(&self) -> MemDisk {
        self.crash(|_| 0)
    }

    /// The live bytes of the file at `path`, if it exists.
    pub fn file_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.state.lock();
        let id = state.names.get(path)?;
        state.files.get(id).map(|img| img.live.clone())
    }

    /// Flips bit `bit` (0..8) of the byte at `offset` of the file at `path`, in both the live and the durable
    /// image: damage as a failing disk would cause it. Returns false when there is no such byte.
    pub fn flip_bit(&self, path: &Path, offset: u64, bit: u8) -> bool {
        let mut state = self.state.lock();
        let Some(&id) = state.names.get(path) else {
            return false;
        };
        let Some(img) = state.files.get_mut(&id) else {
            return false;
        };
        let mask = 1u8 << (bit % 8);
        let at = offset as usize;
        if at >= img.live.len() {
            return false;
        }
        img.live[at] ^= mask;
        if let Some(b) = img.durable.get_mut(at) {
            *b ^= mask;
        }
        true
    }

    /// Cuts the power after `calls` more mutating calls (writes, truncations, syncs, creates, renames, removes):
    /// from then on every mutating call fails with "simulated power loss" and changes nothing, as if the process
    /// died there. [`MemDisk::crash`] then gives the disk a restarted process finds.
    pub fn power_cut_after(&self, calls: u64) {
        self.state.lock().calls_left = Some(calls);
    }

    /// The counters of calls made so far.
    pub fn stats(&self) -> MemDiskStats {
        self.state.lock().stats
    }
}

/// The image of one file after a crash: durable bytes, a prefix of the pending operations, and the next pending
/// write torn after a chosen number of bytes.
fn crashed_image(images: &FileImages, below: &mut impl FnMut(u64) -> u64) -> Vec<u8> {
    let mut image = images.durable.clone();
    let kept = below(images.pending.len() as u64 + 1) as usize;
    for op in &images.pending[..kept] {
        op.apply(&mut image);
    }
    if let Some(FileOp::Write { offset, data }) = images.pending.get(kept) {
        let torn_len = below(data.len() as u64 + 1) as usize;
        if torn_len > 0 {
            write_into(&mut image, *offset, &data[..torn_len]);
        }
    }
    image
}
