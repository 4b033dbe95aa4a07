//! The data directory: its exclusive lock and where the log, hard state and snapshots live in it.

use crate::disk::{DirLock, Disk};
use crate::error::{Result, StorageError};
use crate::log::{Log, LogOptions, LogRecovery};
use crate::meta::MetaStore;
use crate::snapshot::SnapshotStore;
use std::path::{Path, PathBuf};

/// An open, locked data directory. While it lives no other process (and no other `DataDir` in this process)
/// can open the same directory.
pub struct DataDir<D: Disk> {
    disk: D,
    path: PathBuf,
    _lock: DirLock,
}

impl<D: Disk> DataDir<D> {
    /// Creates `path` if needed and takes its exclusive lock (`LOCK`, holding this process's pid).
    pub fn open(disk: D, path: &Path) -> Result<DataDir<D>> {
        disk.create_dir_all(path)
            .map_err(|e| StorageError::io("create data dir", path, e))?;
        let owner = format!("pid {}", std::process::id());
        let lock = disk
            .lock_exclusive(&path.join("LOCK"), &owner)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::WouldBlock => StorageError::Locked {
                    path: path.to_path_buf(),
                    owner: e.to_string(),
                },
                _ => StorageError::io("lock", path.join("LOCK"), e),
            })?;
        Ok(DataDir {
            disk,
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the log segments and the hard state live.
    pub fn raft_dir(&self) -> PathBuf {
        self.path.join("raft")
    }

    /// Where the snapshots live.
    pub fn snapshot_dir(&self) -> PathBuf {
        self.path.join("snapshots")
    }

    /// Opens (recovering) the Raft log.
    pub fn open_log(&self, options: LogOptions) -> Result<(Log<D>, LogRecovery)> {
        Log::open(self.disk.clone(), &self.raft_dir(), options)
    }

    /// Opens the hard state.
    pub fn open_meta(&self) -> Result<MetaStore<D>> {
        let dir = self.raft_dir();
        self.disk
            .create_dir_all(&dir)
            .map_err(|e| StorageError::io("create directory", &dir, e))?;
        MetaStore::open(&self.disk, &dir)
    }

    /// Opens the snapshot store, keeping the newest `retain` snapshots.
    pub fn open_snapshots(&self, retain: usize) -> Result<SnapshotStore<D>> {
        SnapshotStore::open(self.disk.clone(), &self.snapshot_dir(), retain)
    }
}
