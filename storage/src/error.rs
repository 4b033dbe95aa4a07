//! Errors from the storage layer: IO failures, corruption found on disk, a locked data dir, misuse of the API.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Every error cairn-storage returns. Corruption names the file and the byte offset so an operator can act on it.
#[derive(Debug)]
pub enum StorageError {
    /// An operating-system call failed on `path` while doing `op`.
    Io {
        /// The file or directory the call was about.
        path: PathBuf,
        /// What was being done ("write", "fdatasync", "open" ...).
        op: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// Bytes on disk are damaged in a way recovery must not paper over.
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the damaged record inside the file.
        offset: u64,
        /// What is wrong there.
        reason: String,
        /// What kind of file it is ("log segment", "hard state", "snapshot").
        kind: &'static str,
    },
    /// Another process holds the data directory's lock.
    Locked {
        /// The data directory.
        path: PathBuf,
        /// What the lock file says about its owner (usually a pid).
        owner: String,
    },
    /// The caller broke a rule of the API (a non-consecutive append, an index out of range ...).
    Usage(String),
}

impl StorageError {
    /// Builds an [`StorageError::Io`] for `op` on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StorageError::Io {
            path: path.into(),
            op,
            source,
        }
    }

    /// Builds a [`StorageError::Corrupt`] for a file of `kind` at `offset`.
    pub fn corrupt(
        kind: &'static str,
        path: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Self {
        StorageError::Corrupt {
            path: path.into(),
            offset,
            reason: reason.into(),
            kind,
        }
    }

    /// True when this error reports damaged bytes on disk.
    pub fn is_corruption(&self) -> bool {
        matches!(self, StorageError::Corrupt { .. })
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::Io { path, op, source } => {
                write!(f, "{op} {}: {source}", path.display())
            }
            StorageError::Corrupt {
                path,
                offset,
                reason,
                kind,
            } => write!(
                f,
                "corrupt {kind} {} at offset {offset}: {reason}",
                path.display()
            ),
            StorageError::Locked { path, owner } => write!(
                f,
                "data dir {} is locked by another process ({owner})",
                path.display()
            ),
            StorageError::Usage(msg) => write!(f, "storage: {msg}"),
        }
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StorageError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The storage layer's result type.
pub type Result<T> = std::result::Result<T, StorageError>;
