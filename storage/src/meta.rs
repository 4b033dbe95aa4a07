//! The Raft hard state (term, vote, commit index) in two alternating CRC-checked slots (see FORMAT.md).

use crate::disk::{Disk, DiskFile};
use crate::error::{Result, StorageError};
use crate::frame::{read_u32, read_u64};
use std::path::{Path, PathBuf};

const KIND: &str = "hard state";
/// Bytes between the two slots (one slot per 4 KiB block).
pub const META_SLOT_STRIDE_BYTES: u64 = 4096;
/// Bytes of a slot that carry data.
pub const META_SLOT_BYTES: usize = 128;
/// The longest server id a vote may name.
pub const VOTE_BYTES_MAX: usize = 64;
const META_VERSION: u32 = 1;

/// What Raft must never forget: the current term, the vote cast in it, and the commit index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HardState {
    /// The current term.
    pub term: u64,
    /// The server id voted for in `term`, if any (at most [`VOTE_BYTES_MAX`] bytes).
    pub vote: Option<Vec<u8>>,
    /// The highest log index known to be committed.
    pub commit: u64,
}

/// The hard-state file: loads the newest valid slot, saves to the other one.
pub struct MetaStore<D: Disk> {
    path: PathBuf,
    file: D::File,
    sequence: u64,
    state: HardState,
}

fn encode_slot(sequence: u64, state: &HardState) -> [u8; META_SLOT_BYTES] {
    let mut b = [0u8; META_SLOT_BYTES];
    b[4..8].copy_from_slice(&META_VERSION.to_le_bytes());
    b[8..16].copy_from_slice(&sequence.to_le_bytes());
    b[16..24].copy_from_slice(&state.term.to_le_bytes());
    b[24..32].copy_from_slice(&state.commit.to_le_bytes());
    if let Some(vote) = &state.vote {
        b[32..34].copy_from_slice(&(vote.len() as u16).to_le_bytes());
        b[40..40 + vote.len()].copy_from_slice(vote);
    }
    let crc = crc32fast::hash(&b[4..]);
    b[0..4].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes a slot: `Ok((sequence, state))`, or why it is invalid.
fn decode_slot(b: &[u8]) -> std::result::Result<(u64, HardState), String> {
    if b.len() < META_SLOT_BYTES {
        return Err(format!(
            "slot cut short ({} of {META_SLOT_BYTES} bytes)",
            b.len()
        ));
    }
    let stored = read_u32(b, 0);
    let computed = crc32fast::hash(&b[4..META_SLOT_BYTES]);
    if stored != computed {
        return Err(format!(
            "slot CRC mismatch (stored {stored:#010x}, computed {computed:#010x})"
        ));
    }
    let version = read_u32(b, 4);
    if version != META_VERSION {
        return Err(format!("unsupported hard state version {version}"));
    }
    let vote_len = u16::from_le_bytes([b[32], b[33]]) as usize;
    if vote_len > VOTE_BYTES_MAX {
        return Err(format!("vote length {vote_len} over {VOTE_BYTES_MAX}"));
    }
    let vote = (vote_len > 0).then(|| b[40..40 + vote_len].to_vec());
    let state = HardState {
        term: read_u64(b, 16),
        commit: read_u64(b, 24),
        vote,
    };
    Ok((read_u64(b, 8), state))
}

impl<D: Disk> MetaStore<D> {
    /// Opens `dir/meta`, creating it (durably, with an all-zero state) if it does not exist.
    pub fn open(disk: &D, dir: &Path) -> Result<MetaStore<D>> {
        let path = dir.join("meta");
        let names = disk
            .list_dir(dir)
            .map_err(|e| StorageError::io("list directory", dir, e))?;
        if !names.iter().any(|n| n == "meta") {
            create_initial(disk, dir, &path)?;
        }
        let file = disk
            .open_file(&path)
            .map_err(|e| StorageError::io("open", &path, e))?;
        let (sequence, state) = load_newest(&file, &path)?;
        Ok(MetaStore {
            path,
            file,
            sequence,
            state,
        })
    }

    /// The hard state last saved.
    pub fn state(&self) -> &HardState {
        &self.state
    }

    /// Saves `state` to the older slot with one write and one `fdatasync`; durable when it returns.
    pub fn save(&mut self, state: &HardState) -> Result<()> {
        if state
            .vote
            .as_ref()
            .is_some_and(|v| v.len() > VOTE_BYTES_MAX)
        {
            return Err(StorageError::Usage(format!(
                "vote is longer than {VOTE_BYTES_MAX} bytes"
            )));
        }
        let sequence = self.sequence + 1;
        let slot = encode_slot(sequence, state);
        let offset = (sequence % 2) * META_SLOT_STRIDE_BYTES;
        self.file
            .write_all_at(&slot, offset)
            .and_then(|_| self.file.sync_data())
            .map_err(|e| StorageError::io("save hard state to", &self.path, e))?;
        self.sequence = sequence;
        self.state = state.clone();
        Ok(())
    }
}

fn create_initial<D: Disk>(disk: &D, dir: &Path, path: &Path) -> Result<()> {
    let tmp = dir.join("meta.tmp");
    let mut file = disk
        .create_file(&tmp)
        .map_err(|e| StorageError::io("create", &tmp, e))?;
    let mut bytes = vec![0u8; 2 * META_SLOT_STRIDE_BYTES as usize];
    bytes[..META_SLOT_BYTES].copy_from_slice(&encode_slot(0, &HardState::default()));
    file.write_all_at(&bytes, 0)
        .and_then(|_| file.sync_data())
        .map_err(|e| StorageError::io("write", &tmp, e))?;
    disk.rename(&tmp, path)
        .map_err(|e| StorageError::io("rename", &tmp, e))?;
    disk.sync_dir(dir)
        .map_err(|e| StorageError::io("fsync directory", dir, e))
}

fn load_newest<F: DiskFile>(file: &F, path: &Path) -> Result<(u64, HardState)> {
    let mut reasons = Vec::new();
    let mut best: Option<(u64, HardState)> = None;
    for slot in 0..2u64 {
        let offset = slot * META_SLOT_STRIDE_BYTES;
        let mut b = [0u8; META_SLOT_BYTES];
        let decoded = match file.read_exact_at(&mut b, offset) {
            Ok(()) => decode_slot(&b),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err("slot cut short".to_string())
            }
            Err(e) => return Err(StorageError::io("read", path, e)),
        };
        match decoded {
            Ok((seq, state)) if best.as_ref().is_none_or(|(s, _)| seq > *s) => {
                best = Some((seq, state))
            }
            Ok(_) => {}
            Err(why) => reasons.push(format!("slot at offset {offset}: {why}")),
        }
    }
    best.ok_or_else(|| {
        StorageError::corrupt(
            KIND,
            path,
            0,
            format!("no valid slot ({})", reasons.join("; ")),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memdisk::MemDisk;

    #[test]
    fn slot_round_trip() {
        let s = HardState {
            term: 9,
            vote: Some(b"server-2".to_vec()),
            commit: 77,
        };
        assert_eq!(decode_slot(&encode_slot(5, &s)), Ok((5, s)));
    }

    #[test]
    fn saves_alternate_and_survive_reopen() {
        let disk = MemDisk::new();
        let dir = Path::new("/d");
        disk.create_dir_all(dir).unwrap();
        let mut m = MetaStore::open(&disk, dir).unwrap();
        assert_eq!(m.state(), &HardState::default());
        for term in 1..=5 {
            let s = HardState {
                term,
                vote: None,
                commit: term * 10,
            };
            m.save(&s).unwrap();
        }
        let disk = disk.crash_losing_unsynced();
        let m = MetaStore::open(&disk, dir).unwrap();
        assert_eq!(m.state().term, 5);
        assert_eq!(m.state().commit, 50);
    }

    #[test]
    fn one_damaged_slot_falls_back_two_fail() {
        let disk = MemDisk::new();
        let dir = Path::new("/d");
        disk.create_dir_all(dir).unwrap();
        let mut m = MetaStore::open(&disk, dir).unwrap();
        m.save(&HardState {
            term: 1,
            vote: None,
            commit: 0,
        })
        .unwrap();
        m.save(&HardState {
            term: 2,
            vote: None,
            commit: 0,
        })
        .unwrap();
        let path = dir.join("meta");
        // Save 2 went to slot 0; damage it and the older save 1 (slot 1) must win.
        assert!(disk.flip_bit(&path, 20, 0));
        assert_eq!(MetaStore::open(&disk, dir).unwrap().state().term, 1);
        assert!(disk.flip_bit(&path, META_SLOT_STRIDE_BYTES + 20, 0));
        let err = MetaStore::open(&disk, dir).err().unwrap();
        assert!(err.is_corruption(), "{err}");
        assert!(err.to_string().contains("meta at offset 0"), "{err}");
    }
}
