//! The `Disk` abstraction: the few file-system calls the storage layer makes, with a real-file backend here and
//! an in-memory crash model in [`crate::memdisk`].

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
#[cfg(target_os = "linux")]
use std::os::unix::io::AsRawFd;
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
    /// Makes the file at least `len` bytes long with disk space reserved for every byte up to `len`, so later
    /// writes below `len` overwrite allocated space and change no metadata. Bytes past the old length read as
    /// zero; a file already `len` bytes or longer keeps its length and bytes. Like a write, the new length is
    /// durable only after [`DiskFile::sync_data`].
    fn allocate(&mut self, len: u64) -> io::Result<()>;
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

    /// `fallocate(fd, 0, 0, len)` (mode 0 keeps the size change, so it is durable after the next
    /// `fdatasync`); where the file system does not support it, zeros written from the current end to `len`.
    fn allocate(&mut self, len: u64) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        match fallocate(&self.file, len) {
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                let from = self.len()?;
                write_zeros(&self.file, from, len)
            }
            done => done,
        }
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// `fallocate(fd, 0, 0, len)`, retried when a signal interrupts it.
#[cfg(target_os = "linux")]
fn fallocate(file: &File, len: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(len).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot allocate {len} bytes: over the largest file offset"),
        )
    })?;
    loop {
        // SAFETY: fallocate takes no pointers; the descriptor stays open while `file` is borrowed.
        if unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// No `fallocate` off Linux: reported as unsupported, so the caller writes zeros.
#[cfg(not(target_os = "linux"))]
fn fallocate(_file: &File, _len: u64) -> io::Result<()> {
    Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP))
}

/// Bytes of zeros written per call by [`write_zeros`].
const ZERO_WRITE_BYTES_MAX: usize = 1 << 20;

/// Writes zero bytes over `from..to` (nothing when `to <= from`), at most [`ZERO_WRITE_BYTES_MAX`] per write.
fn write_zeros(file: &File, from: u64, to: u64) -> io::Result<()> {
    let Some(total) = to.checked_sub(from).filter(|&n| n > 0) else {
        return Ok(());
    };
    let zeros = vec![0u8; (total as usize).min(ZERO_WRITE_BYTES_MAX)];
    let mut at = from;
    while at < to {
        let n = ((to - at) as usize).min(zeros.len());
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory under the system temp dir, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let path = std::env::temp_dir()
                .join(format!("cairn-storage-disk-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            Scratch(path)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn read_all(file: &RealFile) -> Vec<u8> {
        let mut bytes = vec![0u8; file.len().unwrap() as usize];
        file.read_exact_at(&mut bytes, 0).unwrap();
        bytes
    }

    #[test]
    fn allocate_extends_with_zeros_reserves_blocks_and_never_shrinks() {
        let dir = Scratch::new("allocate");
        let path = dir.0.join("f");
        let mut file = FileDisk.create_file(&path).unwrap();
        file.write_all_at(b"header", 0).unwrap();
        file.allocate(1 << 20).unwrap();
        assert_eq!(file.len().unwrap(), 1 << 20);
        let bytes = read_all(&file);
        assert_eq!(&bytes[..6], b"header");
        assert!(bytes[6..].iter().all(|&b| b == 0));
        // Blocks are reserved, not a sparse hole (st_blocks counts 512-byte units).
        let blocks = std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&path).unwrap());
        assert!(blocks * 512 >= 1 << 20, "only {blocks} blocks allocated");
        // A write inside the reserved space keeps the length; a smaller allocate neither cuts nor clears.
        file.write_all_at(b"frame", 4096).unwrap();
        file.allocate(100).unwrap();
        file.allocate(1 << 20).unwrap();
        file.sync_data().unwrap();
        assert_eq!(file.len().unwrap(), 1 << 20);
        assert_eq!(&read_all(&file)[4096..4101], b"frame");
        file.allocate(0).unwrap();
        assert_eq!(file.len().unwrap(), 1 << 20);
    }

    #[test]
    fn the_zero_fallback_fills_exactly_the_gap() {
        let dir = Scratch::new("zeros");
        let mut file = FileDisk.create_file(&dir.0.join("f")).unwrap();
        file.write_all_at(&[0xAB; 10], 0).unwrap();
        write_zeros(&file.file, 10, 10 + 2 * ZERO_WRITE_BYTES_MAX as u64 + 7).unwrap();
        let bytes = read_all(&file);
        assert_eq!(bytes.len(), 10 + 2 * ZERO_WRITE_BYTES_MAX + 7);
        assert!(bytes[..10].iter().all(|&b| b == 0xAB));
        assert!(bytes[10..].iter().all(|&b| b == 0));
        write_zeros(&file.file, 50, 20).unwrap();
        assert_eq!(file.len().unwrap(), bytes.len() as u64);
    }
}
