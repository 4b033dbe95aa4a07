//! [`AnyDisk`]: one type for either backend, chosen at runtime (real files for a server, memory for a
//! `-dev` agent that keeps no state across restarts).

use crate::disk::{DirLock, Disk, DiskFile, FileDisk, RealFile};
use crate::memdisk::{MemDisk, MemFile};
use std::io;
use std::path::Path;

/// Real files or memory, picked when the agent starts.
#[derive(Clone)]
pub enum AnyDisk {
    /// Real files ([`FileDisk`]).
    File(FileDisk),
    /// Memory ([`MemDisk`]): nothing survives the process.
    Memory(MemDisk),
}

/// A file of an [`AnyDisk`].
pub enum AnyFile {
    /// A real file.
    File(RealFile),
    /// A memory file.
    Memory(MemFile),
}

macro_rules! each_file {
    ($self:expr, $f:ident => $body:expr) => {
        match $self {
            AnyFile::File($f) => $body,
            AnyFile::Memory($f) => $body,
        }
    };
}

macro_rules! each_disk {
    ($self:expr, $d:ident => $body:expr) => {
        match $self {
            AnyDisk::File($d) => $body,
            AnyDisk::Memory($d) => $body,
        }
    };
}

impl DiskFile for AnyFile {
    fn len(&self) -> io::Result<u64> {
        each_file!(self, f => f.len())
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        each_file!(self, f => f.read_exact_at(buf, offset))
    }

    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        each_file!(self, f => f.write_all_at(buf, offset))
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        each_file!(self, f => f.set_len(len))
    }

    fn allocate(&mut self, len: u64) -> io::Result<()> {
        each_file!(self, f => f.allocate(len))
    }

    fn sync_data(&mut self) -> io::Result<()> {
        each_file!(self, f => f.sync_data())
    }
}

impl Disk for AnyDisk {
    type File = AnyFile;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        each_disk!(self, d => d.create_dir_all(dir))
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        each_disk!(self, d => d.list_dir(dir))
    }

    fn open_file(&self, path: &Path) -> io::Result<AnyFile> {
        match self {
            AnyDisk::File(d) => d.open_file(path).map(AnyFile::File),
            AnyDisk::Memory(d) => d.open_file(path).map(AnyFile::Memory),
        }
    }

    fn create_file(&self, path: &Path) -> io::Result<AnyFile> {
        match self {
            AnyDisk::File(d) => d.create_file(path).map(AnyFile::File),
            AnyDisk::Memory(d) => d.create_file(path).map(AnyFile::Memory),
        }
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        each_disk!(self, d => d.remove_file(path))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        each_disk!(self, d => d.rename(from, to))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        each_disk!(self, d => d.sync_dir(dir))
    }

    fn lock_exclusive(&self, path: &Path, owner: &str) -> io::Result<DirLock> {
        each_disk!(self, d => d.lock_exclusive(path, owner))
    }
}
