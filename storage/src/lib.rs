//! cairn-storage: the durable bytes under cairn. A segmented, append-only, CRC-checked log with group commit;
//! the Raft hard state in two alternating slots; a snapshot container for rkyv payloads; the data directory's
//! exclusive lock; and the [`Disk`] abstraction with a real-file backend and an in-memory crash model.
//! It knows files, not Raft or Consul types. Byte formats and recovery rules: `storage/FORMAT.md`.

pub mod anydisk;
pub mod datadir;
pub mod disk;
pub mod error;
pub mod frame;
pub mod log;
pub mod memdisk;
pub mod meta;
pub mod segment;
pub mod snapshot;

pub use anydisk::{AnyDisk, AnyFile};
pub use datadir::DataDir;
pub use disk::{DirLock, Disk, DiskFile, FileDisk};
pub use error::{Result, StorageError};
pub use log::{Entry, EntryRef, Log, LogOptions, LogRecovery, TornTail};
pub use memdisk::{MemDisk, MemDiskStats};
pub use meta::{HardState, MetaStore};
pub use snapshot::{LoadedSnapshot, SnapshotHeader, SnapshotStore, SnapshotWriter};
