//! The segmented append-only log: group-committed appends into reserved (preallocated) segment space, reads by
//! index range, suffix truncation, prefix purge, reset, and recovery on open, which finds where the frames end
//! rather than trusting the file length. The byte formats and recovery rules are in FORMAT.md.

use crate::disk::{Disk, DiskFile};
use crate::error::{Result, StorageError};
use crate::frame::{decode_frame, encode_frame, FRAME_PAYLOAD_BYTES_MAX};
use crate::segment::{
    parse_segment_file_name, scan_segment, segment_file_name, SegmentHeader, SEGMENT_HEADER_BYTES,
};
use std::path::{Path, PathBuf};

const KIND: &str = "log segment";

/// The largest unit in which the last segment reserves (preallocates) space ahead of its frames: 4 MiB.
/// FORMAT.md, "Reserved space", says why it is not the whole segment.
pub const SEGMENT_RESERVE_BYTES_MAX: u64 = 4 << 20;

/// Tunables of a [`Log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    /// A new segment is started before an append once the last one holds this many bytes.
    pub segment_bytes_max: u64,
}

impl LogOptions {
    /// The unit in which the last segment reserves space: `min(segment_bytes_max, SEGMENT_RESERVE_BYTES_MAX)`,
    /// at least one byte.
    pub fn reserve_bytes(&self) -> u64 {
        self.segment_bytes_max.clamp(1, SEGMENT_RESERVE_BYTES_MAX)
    }

    /// The file length a segment is reserved to so that it holds `need` bytes: `need` rounded up to a multiple
    /// of [`LogOptions::reserve_bytes`].
    fn reserved_len(&self, need: u64) -> u64 {
        let unit = self.reserve_bytes();
        need.div_ceil(unit).saturating_mul(unit)
    }
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_bytes_max: 64 << 20,
        }
    }
}

/// An entry to append, borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRef<'a> {
    /// The entry's index; a batch's indexes are consecutive from the log's `last_index() + 1`.
    pub index: u64,
    /// The entry's term.
    pub term: u64,
    /// The entry's bytes.
    pub payload: &'a [u8],
}

/// An entry read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The entry's index.
    pub index: u64,
    /// The entry's term.
    pub term: u64,
    /// The entry's bytes.
    pub payload: Vec<u8>,
}

/// What recovery did when the log was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogRecovery {
    /// Files removed: temporary files, a segment whose creation was torn, leftovers of a reset.
    pub removed: Vec<PathBuf>,
    /// The torn tail dropped from the last segment, if there was one.
    pub torn_tail: Option<TornTail>,
}

/// A torn tail that recovery dropped from the last segment (cutting the file there and reserving its space again
/// as zeros).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The segment file.
    pub path: PathBuf,
    /// Where the log now ends: the offset of the first torn byte.
    pub offset: u64,
    /// How many bytes were dropped: from `offset` through the last non-zero byte.
    pub bytes_dropped: u64,
    /// Why the first dropped frame was invalid.
    pub reason: String,
}

struct Segment<F> {
    path: PathBuf,
    file: F,
    first_index: u64,
    offsets: Vec<u64>,
    terms: Vec<u64>,
    /// Where the log ends in this segment: just past the last frame.
    end: u64,
    /// The file's length: `end` plus the reserved zero bytes after it (none once sealed).
    len: u64,
}

impl<F> Segment<F> {
    /// The next index this segment would hold.
    fn next_index(&self) -> u64 {
        self.first_index + self.offsets.len() as u64
    }

    /// Byte offset of `index`'s frame, or the segment end for `next_index()`.
    fn offset_of(&self, index: u64) -> u64 {
        let slot = (index - self.first_index) as usize;
        self.offsets.get(slot).copied().unwrap_or(self.end)
    }
}

/// A segmented, append-only, CRC-checked log of (index, term, payload) entries on a [`Disk`].
pub struct Log<D: Disk> {
    disk: D,
    dir: PathBuf,
    options: LogOptions,
    segments: Vec<Segment<D::File>>,
    buf: Vec<u8>,
    epoch: u32,
    failed: Option<String>,
}

impl<D: Disk> Log<D> {
    /// Opens (or creates) the log in `dir`, running the recovery rules of FORMAT.md.
    pub fn open(disk: D, dir: &Path, options: LogOptions) -> Result<(Log<D>, LogRecovery)> {
        disk.create_dir_all(dir)
            .map_err(|e| StorageError::io("create directory", dir, e))?;
        let mut recovery = LogRecovery::default();
        let mut log = Log {
            disk,
            dir: dir.to_path_buf(),
            options,
            segments: Vec::new(),
            buf: Vec::new(),
            epoch: 0,
            failed: None,
        };
        let found = log.list_segments(&mut recovery)?;
        let found = log.drop_older_epochs(found, &mut recovery)?;
        let count = found.len();
        for (i, (path, header, bytes)) in found.into_iter().enumerate() {
            log.recover_segment(path, header, bytes, i + 1 == count, &mut recovery)?;
        }
        if log.segments.is_empty() {
            log.create_segment(1)?;
        }
        Ok((log, recovery))
    }

    /// Reads every segment file's bytes and header, dropping a last segment whose creation was torn.
    fn list_segments(
        &self,
        recovery: &mut LogRecovery,
    ) -> Result<Vec<(PathBuf, SegmentHeader, Vec<u8>)>> {
        let names = self
            .disk
            .list_dir(&self.dir)
            .map_err(|e| StorageError::io("list directory", &self.dir, e))?;
        let mut removed_any = false;
        let mut indexed = Vec::new();
        for name in names {
            let path = self.dir.join(&name);
            if name.starts_with("log-") && name.ends_with(".tmp") {
                self.remove(&path)?;
                recovery.removed.push(path);
                removed_any = true;
            } else if let Some(first) = parse_segment_file_name(&name) {
                indexed.push((first, path));
            }
        }
        indexed.sort();
        let mut found = Vec::new();
        let count = indexed.len();
        for (i, (first, path)) in indexed.into_iter().enumerate() {
            let bytes = self.read_whole(&path)?;
            match SegmentHeader::decode(&bytes) {
                Ok(h) if h.first_index == first => found.push((path, h, bytes)),
                Ok(h) => {
                    let why = format!(
                        "header first index {} does not match the file name",
                        h.first_index
                    );
                    return Err(StorageError::corrupt(KIND, path, 16, why));
                }
                Err(_) if i + 1 == count && holds_no_frame(&bytes) => {
                    self.remove(&path)?;
                    recovery.removed.push(path);
                    removed_any = true;
                }
                Err(why) => return Err(StorageError::corrupt(KIND, path, 0, why)),
            }
        }
        if removed_any {
            self.sync_dir()?;
        }
        Ok(found)
    }

    /// Keeps only the segments of the highest epoch, removing the others (leftovers of an interrupted reset).
    fn drop_older_epochs(
        &mut self,
        found: Vec<(PathBuf, SegmentHeader, Vec<u8>)>,
        recovery: &mut LogRecovery,
    ) -> Result<Vec<(PathBuf, SegmentHeader, Vec<u8>)>> {
        self.epoch = found.iter().map(|(_, h, _)| h.epoch).max().unwrap_or(0);
        let (kept, stale): (Vec<_>, Vec<_>) = found
            .into_iter()
            .partition(|(_, h, _)| h.epoch == self.epoch);
        for (path, _, _) in &stale {
            self.remove(path)?;
            recovery.removed.push(path.clone());
        }
        if !stale.is_empty() {
            self.sync_dir()?;
        }
        Ok(kept)
    }

    /// Scans one segment, checks it continues the log, and cuts a torn tail if it is the last one.
    fn recover_segment(
        &mut self,
        path: PathBuf,
        header: SegmentHeader,
        bytes: Vec<u8>,
        is_last: bool,
        recovery: &mut LogRecovery,
    ) -> Result<()> {
        if let Some(prev) = self.segments.last() {
            if header.first_index != prev.next_index() {
                let why = format!(
                    "segment starts at index {} but the previous segment ends at {}",
                    header.first_index,
                    prev.next_index() - 1
                );
                return Err(StorageError::corrupt(KIND, path, 16, why));
            }
        }
        let scan = scan_segment(&bytes, header.first_index);
        let mut file = self
            .disk
            .open_file(&path)
            .map_err(|e| StorageError::io("open", &path, e))?;
        if !is_last && scan.reserved > 0 {
            let why = format!(
                "{} zero bytes after the last frame of a sealed segment",
                scan.reserved
            );
            return Err(StorageError::corrupt(KIND, path, scan.end, why));
        }
        let len = bytes.len() as u64;
        if let Some(damage) = scan.damage {
            if !is_last {
                let why = format!("{} in a sealed segment", damage.reason);
                return Err(StorageError::corrupt(KIND, path, damage.offset, why));
            }
            if let Some(valid) = damage.later_valid_frame {
                let why = format!(
                    "{}, but a valid frame follows at offset {valid}",
                    damage.reason
                );
                return Err(StorageError::corrupt(KIND, path, damage.offset, why));
            }
            cut_and_reserve(&mut file, scan.end, len)
                .map_err(|e| StorageError::io("drop the torn tail of", &path, e))?;
            recovery.torn_tail = Some(TornTail {
                path: path.clone(),
                offset: scan.end,
                bytes_dropped: damage.len,
                reason: damage.reason,
            });
        }
        self.segments.push(Segment {
            path,
            file,
            first_index: header.first_index,
            offsets: scan.offsets,
            terms: scan.terms,
            end: scan.end,
            len,
        });
        Ok(())
    }

    fn read_whole(&self, path: &Path) -> Result<Vec<u8>> {
        let file = self
            .disk
            .open_file(path)
            .map_err(|e| StorageError::io("open", path, e))?;
        let len = file.len().map_err(|e| StorageError::io("stat", path, e))?;
        let mut bytes = vec![0u8; len as usize];
        file.read_exact_at(&mut bytes, 0)
            .map_err(|e| StorageError::io("read", path, e))?;
        Ok(bytes)
    }

    fn remove(&self, path: &Path) -> Result<()> {
        self.disk
            .remove_file(path)
            .map_err(|e| StorageError::io("remove", path, e))
    }

    fn sync_dir(&self) -> Result<()> {
        self.disk
            .sync_dir(&self.dir)
            .map_err(|e| StorageError::io("fsync directory", &self.dir, e))
    }

    /// Writes a new empty segment starting at `first_index` through a temporary file and a rename, so it appears
    /// whole or not at all, with its first unit of space reserved, and makes it durable.
    fn create_segment(&mut self, first_index: u64) -> Result<()> {
        let path = self.dir.join(segment_file_name(first_index));
        let tmp = self
            .dir
            .join(format!("{}.tmp", segment_file_name(first_index)));
        let header = SegmentHeader {
            epoch: self.epoch,
            first_index,
        }
        .encode();
        let mut file = self
            .disk
            .create_file(&tmp)
            .map_err(|e| StorageError::io("create", &tmp, e))?;
        let len = self.options.reserved_len(SEGMENT_HEADER_BYTES as u64);
        file.allocate(len)
            .map_err(|e| StorageError::io("reserve space for", &tmp, e))?;
        file.write_all_at(&header, 0)
            .and_then(|_| file.sync_data())
            .map_err(|e| StorageError::io("write segment header", &tmp, e))?;
        self.disk
            .rename(&tmp, &path)
            .map_err(|e| StorageError::io("rename", &tmp, e))?;
        self.sync_dir()?;
        self.segments.push(Segment {
            path,
            file,
            first_index,
            offsets: Vec::new(),
            terms: Vec::new(),
            end: SEGMENT_HEADER_BYTES as u64,
            len,
        });
        Ok(())
    }

    /// Cuts the last segment's reserved space off (it ends at its last frame) and makes that durable, before a
    /// roll starts the next segment: a sealed segment has no reserved space.
    fn seal_last(&mut self) -> Result<()> {
        let seg = self
            .segments
            .last_mut()
            .expect("a log always has a segment");
        if seg.len == seg.end {
            return Ok(());
        }
        let done = seg.file.set_len(seg.end).and_then(|_| seg.file.sync_data());
        if let Err(e) = done {
            self.failed = Some(e.to_string());
            return Err(StorageError::io("seal", &seg.path, e));
        }
        seg.len = seg.end;
        Ok(())
    }

    /// The directory holding the segments.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The lowest index still on disk (equals `last_index() + 1` when the log is empty).
    pub fn first_index(&self) -> u64 {
        self.segments[0].first_index
    }

    /// The highest index on disk (`first_index() - 1` when the log is empty; 0 for a new log).
    pub fn last_index(&self) -> u64 {
        self.last_segment().next_index() - 1
    }

    /// The term of the entry at `index`, if it is on disk.
    pub fn term(&self, index: u64) -> Option<u64> {
        let seg = self.segment_holding(index)?;
        seg.terms.get((index - seg.first_index) as usize).copied()
    }

    /// The number of segment files.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    fn last_segment(&self) -> &Segment<D::File> {
        &self.segments[self.segments.len() - 1]
    }

    fn segment_position(&self, index: u64) -> Option<usize> {
        if index < self.first_index() || index > self.last_index() {
            return None;
        }
        Some(self.segments.partition_point(|s| s.first_index <= index) - 1)
    }

    fn segment_holding(&self, index: u64) -> Option<&Segment<D::File>> {
        self.segment_position(index).map(|i| &self.segments[i])
    }

    fn check_usable(&self) -> Result<()> {
        match &self.failed {
            Some(why) => Err(StorageError::Usage(format!(
                "the log failed earlier and must be reopened: {why}"
            ))),
            None => Ok(()),
        }
    }

    /// Appends a batch with one write and one `fdatasync`; returns once it is durable. The write lands in space
    /// the last segment reserved ahead, so the sync commits no size change; a batch that runs past that space
    /// first extends the reservation (FORMAT.md, "Reserved space"). The batch's indexes must run consecutively
    /// from `last_index() + 1`. After an IO error the log refuses further writes: reopen it.
    pub fn append(&mut self, batch: &[EntryRef<'_>]) -> Result<()> {
        self.check_usable()?;
        self.check_batch(batch)?;
        if batch.is_empty() {
            return Ok(());
        }
        let last = self.last_segment();
        if last.end >= self.options.segment_bytes_max && !last.offsets.is_empty() {
            let next = last.next_index();
            self.seal_last()?;
            self.create_segment(next)?;
        }
        self.buf.clear();
        let seg_end = self.last_segment().end;
        let mut offsets = Vec::with_capacity(batch.len());
        for e in batch {
            offsets.push(seg_end + self.buf.len() as u64);
            encode_frame(&mut self.buf, e.index, e.term, e.payload);
        }
        let need = seg_end + self.buf.len() as u64;
        let options = self.options;
        let seg = self
            .segments
            .last_mut()
            .expect("a log always has a segment");
        // Past the reserved space, reserve the next units first; the one fdatasync makes the new length durable.
        let grow_to = (need > seg.len).then(|| options.reserved_len(need));
        let written = grow_to
            .map_or(Ok(()), |len| seg.file.allocate(len))
            .and_then(|_| seg.file.write_all_at(&self.buf, seg_end))
            .and_then(|_| seg.file.sync_data());
        if let Err(e) = written {
            self.failed = Some(e.to_string());
            return Err(StorageError::io("append to", &seg.path, e));
        }
        seg.offsets.extend_from_slice(&offsets);
        seg.terms.extend(batch.iter().map(|e| e.term));
        seg.end = need;
        seg.len = seg.len.max(grow_to.unwrap_or(0));
        Ok(())
    }

    fn check_batch(&self, batch: &[EntryRef<'_>]) -> Result<()> {
        for (expected, e) in (self.last_index() + 1..).zip(batch) {
            if e.index != expected {
                return Err(StorageError::Usage(format!(
                    "append of index {} where {expected} was expected",
                    e.index
                )));
            }
            if e.payload.len() > FRAME_PAYLOAD_BYTES_MAX as usize {
                return Err(StorageError::Usage(format!(
                    "entry {} is {} bytes, over the limit of {FRAME_PAYLOAD_BYTES_MAX}",
                    e.index,
                    e.payload.len()
                )));
            }
        }
        Ok(())
    }

    /// Reads entries `lo..hi` (`hi` exclusive), stopping early once `bytes_max` payload bytes are read (at least
    /// one entry is returned when `lo < hi`). Every frame's CRC is checked again.
    pub fn read(&self, lo: u64, hi: u64, bytes_max: u64) -> Result<Vec<Entry>> {
        if lo < self.first_index() || hi > self.last_index() + 1 || lo > hi {
            return Err(StorageError::Usage(format!(
                "read of {lo}..{hi} outside the log's {}..={}",
                self.first_index(),
                self.last_index()
            )));
        }
        let mut out = Vec::new();
        let mut bytes = 0u64;
        let mut index = lo;
        while index < hi && (out.is_empty() || bytes < bytes_max) {
            let pos = self.segment_position(index).expect("index checked above");
            let seg = &self.segments[pos];
            let seg_hi = hi.min(seg.next_index());
            bytes += self.read_segment_range(
                seg,
                index,
                seg_hi,
                bytes_max.saturating_sub(bytes),
                &mut out,
            )?;
            index = out.last().map_or(index, |e| e.index + 1);
            if index < seg_hi {
                break;
            }
        }
        Ok(out)
    }

    /// Reads `lo..hi` from one segment with one positional read; returns the payload bytes read.
    fn read_segment_range(
        &self,
        seg: &Segment<D::File>,
        lo: u64,
        hi: u64,
        bytes_max: u64,
        out: &mut Vec<Entry>,
    ) -> Result<u64> {
        let start = seg.offset_of(lo);
        let end = seg.offset_of(hi);
        let mut raw = vec![0u8; (end - start) as usize];
        seg.file
            .read_exact_at(&mut raw, start)
            .map_err(|e| StorageError::io("read", &seg.path, e))?;
        let mut at = 0usize;
        let mut bytes = 0u64;
        for index in lo..hi {
            let frame = decode_frame(&raw[at..]).map_err(|e| {
                StorageError::corrupt(KIND, &seg.path, start + at as u64, e.to_string())
            })?;
            if frame.index != index {
                let why = format!("frame index {} where {index} was expected", frame.index);
                return Err(StorageError::corrupt(
                    KIND,
                    &seg.path,
                    start + at as u64,
                    why,
                ));
            }
            at += frame.encoded_len();
            bytes += frame.payload.len() as u64;
            out.push(Entry {
                index,
                term: frame.term,
                payload: frame.payload.to_vec(),
            });
            if bytes >= bytes_max {
                break;
            }
        }
        Ok(bytes)
    }

    /// Removes every entry at `index` and above (a Raft conflict); durable when it returns. `index` may be as low
    /// as `first_index()` (empties the log) and at most `last_index() + 1` (no-op).
    pub fn truncate_from(&mut self, index: u64) -> Result<()> {
        self.check_usable()?;
        if index < self.first_index() || index > self.last_index() + 1 {
            return Err(StorageError::Usage(format!(
                "truncate from {index} outside the log's {}..={}",
                self.first_index(),
                self.last_index() + 1
            )));
        }
        if index == self.last_index() + 1 {
            return Ok(());
        }
        let keep = self
            .segments
            .partition_point(|s| s.first_index < index)
            .max(1);
        while self.segments.len() > keep {
            let seg = self.segments.pop().expect("len > keep >= 1");
            self.remove(&seg.path)?;
        }
        self.sync_dir()?;
        let seg = self.segments.last_mut().expect("keep >= 1");
        let cut = seg.offset_of(index);
        let done = cut_and_reserve(&mut seg.file, cut, seg.len);
        if let Err(e) = done {
            self.failed = Some(e.to_string());
            return Err(StorageError::io("truncate", &seg.path, e));
        }
        let kept = (index - seg.first_index) as usize;
        seg.offsets.truncate(kept);
        seg.terms.truncate(kept);
        seg.end = cut;
        Ok(())
    }

    /// Removes whole sealed segments whose entries are all `<= index` (after a snapshot covers them). The last
    /// segment always stays, so `first_index()` may remain below `index + 1`.
    pub fn purge_through(&mut self, index: u64) -> Result<()> {
        self.check_usable()?;
        let mut removed = 0;
        while self.segments.len() - removed > 1 && self.segments[removed].next_index() - 1 <= index
        {
            self.remove(&self.segments[removed].path)?;
            removed += 1;
        }
        if removed > 0 {
            self.segments.drain(..removed);
            self.sync_dir()?;
        }
        Ok(())
    }

    /// Makes the log end exactly at `last` (the last index the consensus layer kept after recovery): cuts the
    /// entries after it, or, when `last` is not on disk (a snapshot got ahead of the log), starts the log again
    /// empty after it. Returns whether anything changed; durable when it returns.
    pub fn end_at(&mut self, last: u64) -> Result<bool> {
        if self.last_index() == last {
            return Ok(false);
        }
        if (self.first_index()..=self.last_index()).contains(&last) {
            self.truncate_from(last + 1)?;
        } else {
            self.reset(last + 1)?;
        }
        Ok(true)
    }

    /// Discards the whole log and starts it again empty at `next_index` (after installing a snapshot).
    pub fn reset(&mut self, next_index: u64) -> Result<()> {
        self.check_usable()?;
        if next_index == 0 {
            return Err(StorageError::Usage("reset to index 0".to_string()));
        }
        let older = std::mem::take(&mut self.segments);
        let replaced = self.dir.join(segment_file_name(next_index));
        self.epoch = self.epoch.checked_add(1).ok_or_else(|| {
            self.failed = Some("epoch overflow".to_string());
            StorageError::Usage("the log's epoch counter is exhausted".to_string())
        })?;
        if let Err(e) = self.create_segment(next_index) {
            self.failed = Some(e.to_string());
            self.segments = older;
            return Err(e);
        }
        for seg in older.iter().filter(|s| s.path != replaced) {
            self.remove(&seg.path)?;
        }
        self.sync_dir()
    }
}

/// True when `bytes` (a segment file) holds nothing but zero bytes after its header: no frame was ever written.
fn holds_no_frame(bytes: &[u8]) -> bool {
    bytes
        .get(SEGMENT_HEADER_BYTES..)
        .is_none_or(|rest| rest.iter().all(|&b| b == 0))
}

/// Ends a last segment at `cut` without leaving old bytes after it: cuts the file there (the blocks after it are
/// freed, their bytes can never be read again), reserves it again to `len` (the new bytes read as zero), and
/// syncs. Neither step writes frame bytes, so a crash leaves the file uncut, cut, or cut and reserved: in every
/// case only zero bytes follow `cut` once it is cut (FORMAT.md, "Truncate a suffix").
fn cut_and_reserve<F: DiskFile>(file: &mut F, cut: u64, len: u64) -> std::io::Result<()> {
    file.set_len(cut)?;
    file.allocate(len)?;
    file.sync_data()
}
