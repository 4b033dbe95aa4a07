//! Log segments: the 32-byte segment header, file names, and the scan that recovery runs over a segment's bytes
//! to find where its frames end (FORMAT.md, "Where the log ends").

use crate::frame::{decode_frame, read_u32, read_u64, FRAME_HEADER_BYTES, FRAME_PAYLOAD_BYTES_MAX};

/// Bytes in a segment header.
pub const SEGMENT_HEADER_BYTES: usize = 32;
/// The magic at the start of every segment.
pub const SEGMENT_MAGIC: &[u8; 8] = b"CRNLOG01";
/// The segment format version this code writes and reads.
pub const SEGMENT_VERSION: u32 = 1;

/// A decoded segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The log's epoch: a reset starts a new epoch, and recovery keeps only the segments of the highest one.
    pub epoch: u32,
    /// The index of the first frame this segment holds or will hold.
    pub first_index: u64,
}

impl SegmentHeader {
    /// The header's 32 bytes.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut b = [0u8; SEGMENT_HEADER_BYTES];
        b[0..8].copy_from_slice(SEGMENT_MAGIC);
        b[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&self.epoch.to_le_bytes());
        b[16..24].copy_from_slice(&self.first_index.to_le_bytes());
        let crc = crc32fast::hash(&b[0..28]);
        b[28..32].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks a header (magic, CRC, version, first index >= 1).
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, String> {
        if bytes.len() < SEGMENT_HEADER_BYTES {
            return Err(format!(
                "segment header cut short ({} of {SEGMENT_HEADER_BYTES} bytes)",
                bytes.len()
            ));
        }
        if &bytes[0..8] != SEGMENT_MAGIC {
            return Err("bad segment magic".to_string());
        }
        let stored = read_u32(bytes, 28);
        let computed = crc32fast::hash(&bytes[0..28]);
        if stored != computed {
            return Err(format!(
                "segment header CRC mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ));
        }
        let version = read_u32(bytes, 8);
        if version != SEGMENT_VERSION {
            return Err(format!("unsupported segment version {version}"));
        }
        let first_index = read_u64(bytes, 16);
        if first_index == 0 {
            return Err("segment first index is 0".to_string());
        }
        Ok(SegmentHeader {
            epoch: read_u32(bytes, 12),
            first_index,
        })
    }
}

/// The file name of the segment whose first index is `first_index`.
pub fn segment_file_name(first_index: u64) -> String {
    format!("log-{first_index:020}.seg")
}

/// The first index in a segment file name, or `None` if `name` is not a segment's name.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("log-")?.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Where a segment's frames stop being valid, when non-zero bytes follow them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Offset of the first bad frame.
    pub offset: u64,
    /// Bytes from `offset` through the last non-zero byte of the segment.
    pub len: u64,
    /// What is wrong with it.
    pub reason: String,
    /// Offset of a valid frame found after the damage, if any: then the damage is not a torn tail.
    pub later_valid_frame: Option<u64>,
}

/// What a scan of a segment's bytes found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentScan {
    /// Offset of every valid frame, in index order.
    pub offsets: Vec<u64>,
    /// Term of every valid frame.
    pub terms: Vec<u64>,
    /// Offset just past the last valid frame: where the log ends in this segment.
    pub end: u64,
    /// Zero bytes from `end` to the end of the segment (reserved space) when nothing else follows the frames.
    pub reserved: u64,
    /// The first invalid bytes after the valid frames, when any byte after them is not zero.
    pub damage: Option<Damage>,
}

/// Scans the frames of a whole segment file (`bytes`, header included) whose first index is `first_index`.
/// Frames must be valid and consecutive from `first_index`; the first one that is not ends them. If only zero
/// bytes follow, they are reserved space (`reserved`); otherwise they are `damage`.
pub fn scan_segment(bytes: &[u8], first_index: u64) -> SegmentScan {
    let mut scan = SegmentScan {
        end: SEGMENT_HEADER_BYTES as u64,
        ..SegmentScan::default()
    };
    let mut at = SEGMENT_HEADER_BYTES;
    while at < bytes.len() {
        let expected = first_index + scan.offsets.len() as u64;
        let reason = match decode_frame(&bytes[at..]) {
            Ok(frame) if frame.index == expected => {
                scan.offsets.push(at as u64);
                scan.terms.push(frame.term);
                at += frame.encoded_len();
                scan.end = at as u64;
                continue;
            }
            Ok(frame) => format!("frame index {} where {expected} was expected", frame.index),
            Err(e) => e.to_string(),
        };
        let Some(last_non_zero) = bytes[at..].iter().rposition(|&b| b != 0) else {
            scan.reserved = (bytes.len() - at) as u64;
            break;
        };
        scan.damage = Some(Damage {
            offset: at as u64,
            len: last_non_zero as u64 + 1,
            reason,
            later_valid_frame: find_valid_frame_after(bytes, at, expected),
        });
        break;
    }
    scan
}

/// The offset of the first valid frame strictly after `bad_offset` whose index is at least `expected`.
/// Used to tell a torn tail (nothing valid follows) from damage inside synced data (valid frames follow).
fn find_valid_frame_after(bytes: &[u8], bad_offset: usize, expected: u64) -> Option<u64> {
    let last_start = bytes.len().checked_sub(FRAME_HEADER_BYTES)?;
    let index_max = expected + (bytes.len() / FRAME_HEADER_BYTES) as u64;
    (bad_offset + 1..=last_start)
        .find(|&at| {
            let len = read_u32(bytes, at + 4);
            let index = read_u64(bytes, at + 8);
            len <= FRAME_PAYLOAD_BYTES_MAX
                && (expected..=index_max).contains(&index)
                && decode_frame(&bytes[at..]).is_ok()
        })
        .map(|at| at as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode_frame;

    fn segment(first: u64, n: u64) -> Vec<u8> {
        let mut b = SegmentHeader {
            epoch: 3,
            first_index: first,
        }
        .encode()
        .to_vec();
        for i in first..first + n {
            encode_frame(&mut b, i, 1, &i.to_le_bytes());
        }
        b
    }

    #[test]
    fn header_round_trip_and_names() {
        let h = SegmentHeader {
            epoch: 3,
            first_index: 42,
        };
        assert_eq!(SegmentHeader::decode(&h.encode()), Ok(h));
        assert_eq!(segment_file_name(42), "log-00000000000000000042.seg");
        assert_eq!(parse_segment_file_name(&segment_file_name(42)), Some(42));
        assert_eq!(parse_segment_file_name("log-42.seg"), None);
        assert_eq!(
            parse_segment_file_name("log-0000000000000000004x.seg"),
            None
        );
    }

    #[test]
    fn clean_scan_and_torn_tail() {
        let b = segment(5, 10);
        let scan = scan_segment(&b, 5);
        assert_eq!(scan.offsets.len(), 10);
        assert_eq!(scan.end, b.len() as u64);
        assert!(scan.damage.is_none());
        let torn = &b[..b.len() - 3];
        let scan = scan_segment(torn, 5);
        assert_eq!(scan.offsets.len(), 9);
        let damage = scan.damage.unwrap();
        assert_eq!(damage.later_valid_frame, None);
    }

    #[test]
    fn zeros_after_the_frames_are_reserved_space_not_damage() {
        let mut b = segment(5, 3);
        let end = b.len() as u64;
        b.resize(4096, 0);
        let scan = scan_segment(&b, 5);
        assert_eq!((scan.offsets.len(), scan.end), (3, end));
        assert_eq!(scan.reserved, 4096 - end);
        assert!(scan.damage.is_none());
        // An empty segment: the header and zeros.
        let mut empty = segment(9, 0);
        empty.resize(100, 0);
        let scan = scan_segment(&empty, 9);
        assert_eq!((scan.end, scan.reserved), (32, 68));
        assert!(scan.damage.is_none());
    }

    #[test]
    fn a_torn_frame_in_reserved_space_is_damage_up_to_its_last_written_byte() {
        let whole = segment(1, 4);
        let last_frame = scan_segment(&whole, 1).offsets[3] as usize;
        // Ten bytes of the last frame's header were written (CRC, length, part of the index), the term and
        // payload are still zero: the CRC catches it.
        let mut b = whole[..last_frame + 10].to_vec();
        b.resize(4096, 0);
        let scan = scan_segment(&b, 1);
        assert_eq!((scan.offsets.len(), scan.end), (3, last_frame as u64));
        let damage = scan.damage.unwrap();
        assert_eq!(damage.offset, last_frame as u64);
        let written = b[..last_frame + 10].iter().rposition(|&x| x != 0).unwrap() + 1;
        assert_eq!(damage.len, (written - last_frame) as u64);
        assert!(damage.reason.contains("CRC mismatch"), "{}", damage.reason);
        assert_eq!(damage.later_valid_frame, None);
        assert_eq!(scan.reserved, 0);
        // A write torn inside the trailing zeros of a payload left every byte of the frame as intended: the
        // frame is whole and valid (never acknowledged, but exactly what was written).
        let mut b = whole[..last_frame + 25].to_vec();
        b.resize(4096, 0);
        let scan = scan_segment(&b, 1);
        assert_eq!((scan.offsets.len(), scan.end), (4, whole.len() as u64));
        assert!(scan.damage.is_none());
    }

    #[test]
    fn damage_in_the_middle_sees_later_frames() {
        let mut b = segment(1, 10);
        b[SEGMENT_HEADER_BYTES + 40] ^= 0x10;
        let scan = scan_segment(&b, 1);
        let damage = scan.damage.unwrap();
        assert_eq!(scan.offsets.len(), 1);
        assert!(damage.later_valid_frame.is_some());
    }
}
