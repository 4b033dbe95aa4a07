//! The snapshot container: a 64-byte header, an opaque meta section, and a 16-byte aligned rkyv payload that
//! ends the file. Written through a temporary file and a rename; validated completely before use (FORMAT.md).

use crate::disk::{Disk, DiskFile};
use crate::error::{Result, StorageError};
use crate::frame::{read_u32, read_u64};
use rkyv::util::AlignedVec;
use std::path::{Path, PathBuf};

const KIND: &str = "snapshot";
/// Bytes in a snapshot header.
pub const SNAPSHOT_HEADER_BYTES: u64 = 64;
/// The magic at the start of every snapshot file.
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"CRNSNP01";
/// The container version this code writes and reads.
pub const SNAPSHOT_VERSION: u32 = 1;
/// The payload alignment rkyv needs.
pub const PAYLOAD_ALIGN_BYTES: u64 = 16;
/// Snapshots kept by default after a new one is written.
pub const SNAPSHOT_RETAIN_DEFAULT: usize = 2;

/// A decoded snapshot header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// The payload's schema version, chosen by the state machine.
    pub payload_format: u32,
    /// The last log index the snapshot covers.
    pub index: u64,
    /// The term of that entry.
    pub term: u64,
    /// Length of the meta section.
    pub meta_len: u64,
    /// Length of the payload.
    pub payload_len: u64,
    /// CRC-32/IEEE of everything after the header.
    pub body_crc: u32,
}

impl SnapshotHeader {
    /// Offset of the payload from the start of the file (16-byte aligned).
    pub fn payload_offset(&self) -> u64 {
        (SNAPSHOT_HEADER_BYTES + self.meta_len).next_multiple_of(PAYLOAD_ALIGN_BYTES)
    }

    /// The header's 64 bytes.
    pub fn encode(&self) -> [u8; SNAPSHOT_HEADER_BYTES as usize] {
        let mut b = [0u8; SNAPSHOT_HEADER_BYTES as usize];
        b[0..8].copy_from_slice(SNAPSHOT_MAGIC);
        b[8..12].copy_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&self.payload_format.to_le_bytes());
        b[16..24].copy_from_slice(&self.index.to_le_bytes());
        b[24..32].copy_from_slice(&self.term.to_le_bytes());
        b[32..40].copy_from_slice(&self.meta_len.to_le_bytes());
        b[40..48].copy_from_slice(&self.payload_len.to_le_bytes());
        b[48..52].copy_from_slice(&self.body_crc.to_le_bytes());
        let crc = crc32fast::hash(&b[0..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks a header against the size of its file: `Err((offset, reason))` when invalid.
    pub fn decode(b: &[u8], file_len: u64) -> std::result::Result<SnapshotHeader, (u64, String)> {
        if b.len() < SNAPSHOT_HEADER_BYTES as usize {
            return Err((
                0,
                format!(
                    "header cut short ({} of {SNAPSHOT_HEADER_BYTES} bytes)",
                    b.len()
                ),
            ));
        }
        if &b[0..8] != SNAPSHOT_MAGIC {
            return Err((0, "bad snapshot magic".to_string()));
        }
        let stored = read_u32(b, 60);
        let computed = crc32fast::hash(&b[0..60]);
        if stored != computed {
            return Err((
                60,
                format!("header CRC mismatch (stored {stored:#010x}, computed {computed:#010x})"),
            ));
        }
        let version = read_u32(b, 8);
        if version != SNAPSHOT_VERSION {
            return Err((8, format!("unsupported snapshot version {version}")));
        }
        let h = SnapshotHeader {
            payload_format: read_u32(b, 12),
            index: read_u64(b, 16),
            term: read_u64(b, 24),
            meta_len: read_u64(b, 32),
            payload_len: read_u64(b, 40),
            body_crc: read_u32(b, 48),
        };
        let expected_len = (SNAPSHOT_HEADER_BYTES.checked_add(h.meta_len))
            .map(|n| n.next_multiple_of(PAYLOAD_ALIGN_BYTES))
            .and_then(|n| n.checked_add(h.payload_len));
        if expected_len != Some(file_len) {
            return Err((
                32,
                format!(
                    "lengths (meta {}, payload {}) do not match the file size {file_len}",
                    h.meta_len, h.payload_len
                ),
            ));
        }
        Ok(h)
    }
}

/// A snapshot read back and validated: its header, meta bytes, and the payload in a 16-byte aligned buffer
/// ready for `rkyv::access`.
pub struct LoadedSnapshot {
    /// Where it was read from.
    pub path: PathBuf,
    /// The header.
    pub header: SnapshotHeader,
    /// The meta section (Raft's configuration, opaque here).
    pub meta: Vec<u8>,
    /// The payload, 16-byte aligned.
    pub payload: AlignedVec<16>,
}

/// The snapshot directory: writes new snapshots, keeps the newest `retain`, loads the newest.
pub struct SnapshotStore<D: Disk> {
    disk: D,
    dir: PathBuf,
    retain: usize,
}

/// The file name of the snapshot at (`index`, `term`).
pub fn snapshot_file_name(index: u64, term: u64) -> String {
    format!("snap-{index:020}-{term:020}.snap")
}

/// (index, term) from a snapshot file name, or `None` if `name` is not one.
pub fn parse_snapshot_file_name(name: &str) -> Option<(u64, u64)> {
    let body = name.strip_prefix("snap-")?.strip_suffix(".snap")?;
    let (index, term) = body.split_once('-')?;
    let digits = |s: &str| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(index) || !digits(term) {
        return None;
    }
    Some((index.parse().ok()?, term.parse().ok()?))
}

impl<D: Disk> SnapshotStore<D> {
    /// Opens the snapshot directory `dir` (created if missing), removing unfinished `.tmp` files.
    pub fn open(disk: D, dir: &Path, retain: usize) -> Result<SnapshotStore<D>> {
        disk.create_dir_all(dir)
            .map_err(|e| StorageError::io("create directory", dir, e))?;
        let store = SnapshotStore {
            disk,
            dir: dir.to_path_buf(),
            retain: retain.max(1),
        };
        let mut removed = false;
        for name in store.names()? {
            if name.ends_with(".tmp") {
                let path = store.dir.join(&name);
                store
                    .disk
                    .remove_file(&path)
                    .map_err(|e| StorageError::io("remove", &path, e))?;
                removed = true;
            }
        }
        if removed {
            store.sync_dir()?;
        }
        Ok(store)
    }

    fn names(&self) -> Result<Vec<String>> {
        self.disk
            .list_dir(&self.dir)
            .map_err(|e| StorageError::io("list directory", &self.dir, e))
    }

    fn sync_dir(&self) -> Result<()> {
        self.disk
            .sync_dir(&self.dir)
            .map_err(|e| StorageError::io("fsync directory", &self.dir, e))
    }

    /// The snapshots on disk as (index, term, path), oldest first.
    pub fn list(&self) -> Result<Vec<(u64, u64, PathBuf)>> {
        let mut found: Vec<_> = self
            .names()?
            .into_iter()
            .filter_map(|n| parse_snapshot_file_name(&n).map(|(i, t)| (i, t, self.dir.join(n))))
            .collect();
        found.sort();
        Ok(found)
    }

    /// Starts writing the snapshot at (`index`, `term`); stream the payload into the writer, then `finish` it.
    pub fn begin(
        &self,
        index: u64,
        term: u64,
        payload_format: u32,
        meta: &[u8],
    ) -> Result<SnapshotWriter<D>> {
        let name = snapshot_file_name(index, term);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let file = self
            .disk
            .create_file(&tmp)
            .map_err(|e| StorageError::io("create", &tmp, e))?;
        let mut writer = SnapshotWriter {
            disk: self.disk.clone(),
            dir: self.dir.clone(),
            retain: self.retain,
            tmp,
            path: self.dir.join(name),
            file,
            header: SnapshotHeader {
                payload_format,
                index,
                term,
                meta_len: meta.len() as u64,
                payload_len: 0,
                body_crc: 0,
            },
            crc: crc32fast::Hasher::new(),
            at: SNAPSHOT_HEADER_BYTES,
        };
        let pad =
            (writer.header.payload_offset() - SNAPSHOT_HEADER_BYTES - meta.len() as u64) as usize;
        writer.put(meta)?;
        writer.put(&[0u8; PAYLOAD_ALIGN_BYTES as usize][..pad])?;
        Ok(writer)
    }

    /// Writes a whole snapshot in one call; returns its path once it is durable.
    pub fn write(
        &self,
        index: u64,
        term: u64,
        payload_format: u32,
        meta: &[u8],
        payload: &[u8],
    ) -> Result<PathBuf> {
        let mut writer = self.begin(index, term, payload_format, meta)?;
        writer.write_payload(payload)?;
        writer.finish()
    }

    /// Loads and validates the newest snapshot, or `Ok(None)` when there is none. A damaged newest snapshot is an
    /// error naming the file and offset (an older one cannot stand in: the log it needs may be purged).
    pub fn load_latest(&self) -> Result<Option<LoadedSnapshot>> {
        match self.list()?.pop() {
            Some((_, _, path)) => load(&self.disk, &path).map(Some),
            None => Ok(None),
        }
    }
}

/// Reads and validates the snapshot file at `path`.
pub fn load<D: Disk>(disk: &D, path: &Path) -> Result<LoadedSnapshot> {
    let file = disk
        .open_file(path)
        .map_err(|e| StorageError::io("open", path, e))?;
    let file_len = file.len().map_err(|e| StorageError::io("stat", path, e))?;
    let mut head = [0u8; SNAPSHOT_HEADER_BYTES as usize];
    let head_len = file_len.min(SNAPSHOT_HEADER_BYTES) as usize;
    file.read_exact_at(&mut head[..head_len], 0)
        .map_err(|e| StorageError::io("read", path, e))?;
    let header = SnapshotHeader::decode(&head[..head_len], file_len)
        .map_err(|(offset, why)| StorageError::corrupt(KIND, path, offset, why))?;
    if let Some((index, term)) = path
        .file_name()
        .and_then(|n| parse_snapshot_file_name(&n.to_string_lossy()))
    {
        if (index, term) != (header.index, header.term) {
            let why = format!(
                "header says index {} term {}, the file name {index} {term}",
                header.index, header.term
            );
            return Err(StorageError::corrupt(KIND, path, 16, why));
        }
    }
    let payload_offset = header.payload_offset();
    let mut meta_and_pad = vec![0u8; (payload_offset - SNAPSHOT_HEADER_BYTES) as usize];
    file.read_exact_at(&mut meta_and_pad, SNAPSHOT_HEADER_BYTES)
        .map_err(|e| StorageError::io("read", path, e))?;
    let mut payload = AlignedVec::<16>::with_capacity(header.payload_len as usize);
    payload.resize(header.payload_len as usize, 0);
    file.read_exact_at(&mut payload, payload_offset)
        .map_err(|e| StorageError::io("read", path, e))?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&meta_and_pad);
    crc.update(&payload);
    let computed = crc.finalize();
    if computed != header.body_crc {
        let why = format!(
            "body CRC mismatch (stored {:#010x}, computed {computed:#010x})",
            header.body_crc
        );
        return Err(StorageError::corrupt(
            KIND,
            path,
            SNAPSHOT_HEADER_BYTES,
            why,
        ));
    }
    meta_and_pad.truncate(header.meta_len as usize);
    Ok(LoadedSnapshot {
        path: path.to_path_buf(),
        header,
        meta: meta_and_pad,
        payload,
    })
}

/// A snapshot being written to its temporary file.
pub struct SnapshotWriter<D: Disk> {
    disk: D,
    dir: PathBuf,
    retain: usize,
    tmp: PathBuf,
    path: PathBuf,
    file: D::File,
    header: SnapshotHeader,
    crc: crc32fast::Hasher,
    at: u64,
}

impl<D: Disk> SnapshotWriter<D> {
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all_at(bytes, self.at)
            .map_err(|e| StorageError::io("write", &self.tmp, e))?;
        self.crc.update(bytes);
        self.at += bytes.len() as u64;
        Ok(())
    }

    /// Appends the next piece of the payload.
    pub fn write_payload(&mut self, chunk: &[u8]) -> Result<()> {
        self.put(chunk)?;
        self.header.payload_len += chunk.len() as u64;
        Ok(())
    }

    /// Writes the header, syncs, renames the file into place, syncs the directory, then removes all but the
    /// newest `retain` snapshots. Returns the final path.
    pub fn finish(mut self) -> Result<PathBuf> {
        self.header.body_crc = self.crc.clone().finalize();
        let header = self.header.encode();
        self.file
            .write_all_at(&header, 0)
            .and_then(|_| self.file.sync_data())
            .map_err(|e| StorageError::io("write", &self.tmp, e))?;
        self.disk
            .rename(&self.tmp, &self.path)
            .map_err(|e| StorageError::io("rename", &self.tmp, e))?;
        let store = SnapshotStore {
            disk: self.disk.clone(),
            dir: self.dir.clone(),
            retain: self.retain,
        };
        store.sync_dir()?;
        let all = store.list()?;
        let excess = all.len().saturating_sub(self.retain);
        for (_, _, old) in &all[..excess] {
            self.disk
                .remove_file(old)
                .map_err(|e| StorageError::io("remove", old, e))?;
        }
        if excess > 0 {
            store.sync_dir()?;
        }
        Ok(self.path)
    }

    /// Abandons the snapshot, removing its temporary file.
    pub fn abort(self) -> Result<()> {
        self.disk
            .remove_file(&self.tmp)
            .map_err(|e| StorageError::io("remove", &self.tmp, e))
    }
}
