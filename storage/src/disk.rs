//! The `Disk` abstraction: the few file-system calls the storage layer makes, with a real-file backend here and
//! an in-memory crash model in [`crate::memdisk`].

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A file opened for positional reads and writes.
pub trait DiskFile: Send {
    /// The file's current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// True when the file holds no bytes.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Fills `buf` from `offset`; fails with `UnexpectedEof` if the file ends first.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset` (one write as far as the crash model is concerned).
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Cuts or extends the file to `len` bytes.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// Makes every byte written so far durable (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;
}

/// Holds a data directory's exclusive lock until dropped.
pub struct DirLock {
    _held: Box<dyn Send>,
}

impl DirLock {
    /// Wraps whatever value keeps the lock held while it lives.
    pub fn new(held: Box<dyn Send>) -> Self {
        DirLock { _held: held }
    }
}

/// The file-system calls cairn-storage needs. Directory entries (create, rename, remove) become durable only
/// after [`Disk::sync_dir`] of their directory; file bytes only after [`DiskFile::sync_data`].
pub trait Disk: Clone + Send + 'static {
    /// The file handle type.
    type File: DiskFile;
    /// Creates `dir` and its parents (directories count as durable at once).
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The names of the regular files directly in `dir`.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Opens an existing file for reading and writing.
    fn open_file(&self, path: &Path) -> io::Result<Self::File>;
    /// Creates a file for reading and writing, cutting it to zero length if it exists.
    fn create_file(&self, path: &Path) -> io::Result<Self::File>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Renames `from` to `to`, replacing `to` atomically.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the directory's entries durable (`fsync` of the directory).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Takes an exclusive, non-blocking lock on the file at `path` (created if missing) and writes `owner` into
    /// it. When another holder has it, fails with `WouldBlock` and the current owner text as the message.
    fn lock_exclusive(&self, path: &Path, owner: &str) -> io::Result<DirLock>;
}

/// The real-file backend: `std::fs` with positional IO, `fdatasync` and directory `fsync`.
#[derive(Clone, Copy, Debug, Default)]
pub struct FileDisk;

/// A real file opened by [`FileDisk`].
pub struct RealFile {
    file: File,
}

impl DiskFile for RealFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}

impl Disk for FileDisk {
    type File = RealFile;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    fn open_file(&self, path: &Path) -> io::Result<RealFile> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(RealFile { file })
    }

    fn create_file(&self, path: &Path) -> io::Result<RealFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(RealFile { file })
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn lock_exclusive(&self, path: &Path, owner: &str) -> io::Result<DirLock> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let held_by = std::fs::read_to_string(path).unwrap_or_default();
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    held_by.trim().to_string(),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        file.set_len(0)?;
        io::Write::write_all(&mut file, owner.as_bytes())?;
        Ok(DirLock::new(Box::new(file)))
    }
}

/// The directory holding `path` (the path itself when it has no parent).
pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    path.parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| path.to_path_buf())
}
