//! `MemDisk`: an in-memory [`Disk`] that models what a crash or power loss does to a file system.
//!
//! Every file keeps two images: the *live* bytes that reads see and the *durable* bytes that survive a crash.
//! Writes, truncations, allocations and directory changes made since the last sync are kept as pending
//! operations, in order; `sync_data` applies a file's pending operations to its durable image. [`MemDisk::crash`] builds the disk a restarted process would find:
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
    /// `allocate` calls.
    pub allocates: u64,
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
    Write {
        offset: u64,
        data: Vec<u8>,
    },
    SetLen(u64),
    /// Extends the file with zeros to at least this length (never shrinks it).
    Allocate(u64),
}

impl FileOp {
    fn apply(&self, image: &mut Vec<u8>) {
        match self {
            FileOp::Write { offset, data } => write_into(image, *offset, data),
            FileOp::SetLen(len) => image.resize(*len as usize, 0),
            FileOp::Allocate(len) => {
                if image.len() < *len as usize {
                    image.resize(*len as usize, 0);
                }
            }
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

    fn allocate(&mut self, len: u64) -> io::Result<()> {
        self.with(|state, img| {
            state.tick()?;
            state.stats.allocates += 1;
            let op = FileOp::Allocate(len);
            op.apply(&mut img.live);
            img.pending.push(op);
            Ok(())
        })?
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.with(|state, img| {
            state.tick()?;
            state.stats.file_syncs += 1;
            // durable + pending == live: applying the pending operations costs what was written since the
            // last sync, where copying the live image would cost the whole file (reserved space included).
            for op in img.pending.drain(..) {
                op.apply(&mut img.durable);
            }
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

    /// Cuts the power after `calls` more mutating calls (writes, truncations, allocations, syncs, creates,
    /// renames, removes):
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

#[cfg(test)]
mod tests {
    use super::*;

    fn file_at(disk: &MemDisk, path: &str) -> MemFile {
        disk.create_dir_all(Path::new("/d")).unwrap();
        disk.create_file(Path::new(path)).unwrap()
    }

    fn durable_dir(disk: &MemDisk) {
        disk.sync_dir(Path::new("/d")).unwrap();
    }

    #[test]
    fn allocate_extends_with_zeros_and_never_shrinks() {
        let disk = MemDisk::new();
        let mut f = file_at(&disk, "/d/f");
        f.write_all_at(b"abc", 0).unwrap();
        f.allocate(16).unwrap();
        assert_eq!(f.len().unwrap(), 16);
        let mut buf = [9u8; 16];
        f.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf[..3], b"abc");
        assert!(buf[3..].iter().all(|&b| b == 0));
        f.allocate(4).unwrap();
        assert_eq!(f.len().unwrap(), 16, "allocate never cuts");
        assert_eq!(disk.stats().allocates, 2);
    }

    #[test]
    fn an_allocation_is_durable_only_after_a_sync() {
        let disk = MemDisk::new();
        let mut f = file_at(&disk, "/d/f");
        durable_dir(&disk);
        f.write_all_at(b"head", 0).unwrap();
        f.sync_data().unwrap();
        f.allocate(64).unwrap();
        let path = Path::new("/d/f");
        let lost = disk.crash_losing_unsynced();
        assert_eq!(lost.file_bytes(path).unwrap(), b"head");
        // A crash may keep the allocation (a prefix of the pending operations): then the new bytes are zero.
        let kept = disk.crash(|n| n - 1);
        let bytes = kept.file_bytes(path).unwrap();
        assert_eq!(bytes.len(), 64);
        assert!(bytes[4..].iter().all(|&b| b == 0));
        f.sync_data().unwrap();
        assert_eq!(
            disk.crash_losing_unsynced().file_bytes(path).unwrap().len(),
            64
        );
    }

    #[test]
    fn cut_then_allocate_survives_a_crash_as_a_prefix_of_both() {
        let disk = MemDisk::new();
        let mut f = file_at(&disk, "/d/f");
        durable_dir(&disk);
        f.write_all_at(&[7u8; 32], 0).unwrap();
        f.sync_data().unwrap();
        f.set_len(8).unwrap();
        f.allocate(32).unwrap();
        let path = Path::new("/d/f");
        let images: Vec<Vec<u8>> = (0..3u64)
            .map(|keep| disk.crash(|n| keep.min(n - 1)).file_bytes(path).unwrap())
            .collect();
        assert_eq!(images[0], vec![7u8; 32], "nothing kept: the old bytes");
        assert_eq!(images[1], vec![7u8; 8], "the cut only");
        let mut both = vec![7u8; 8];
        both.resize(32, 0);
        assert_eq!(
            images[2], both,
            "cut and allocated: zeros, never the old bytes"
        );
    }

    #[test]
    fn sync_makes_the_durable_image_equal_the_live_one() {
        let disk = MemDisk::new();
        let mut f = file_at(&disk, "/d/f");
        durable_dir(&disk);
        f.allocate(10).unwrap();
        f.write_all_at(b"xyz", 8).unwrap();
        f.set_len(9).unwrap();
        f.write_all_at(b"q", 2).unwrap();
        f.sync_data().unwrap();
        let live = disk.file_bytes(Path::new("/d/f")).unwrap();
        assert_eq!(live, b"\0\0q\0\0\0\0\0x");
        assert_eq!(
            disk.crash_losing_unsynced().file_bytes(Path::new("/d/f")),
            Some(live)
        );
    }
}
