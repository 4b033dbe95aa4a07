//! The log frame codec: `crc u32 | len u32 | index u64 | term u64 | payload` (see FORMAT.md).

/// Bytes in a frame header.
pub const FRAME_HEADER_BYTES: usize = 24;
/// The largest payload a frame may carry (64 MiB); a longer length field is corruption.
pub const FRAME_PAYLOAD_BYTES_MAX: u32 = 64 << 20;

/// One decoded frame, borrowing its payload from the buffer it was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The entry's log index.
    pub index: u64,
    /// The entry's term.
    pub term: u64,
    /// The entry's bytes.
    pub payload: &'a [u8],
}

impl Frame<'_> {
    /// Bytes this frame takes on disk, header included.
    pub fn encoded_len(&self) -> usize {
        FRAME_HEADER_BYTES + self.payload.len()
    }
}

/// Why bytes do not decode as a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer than [`FRAME_HEADER_BYTES`] bytes remain.
    ShortHeader {
        /// Bytes available.
        available: usize,
    },
    /// The length field is over [`FRAME_PAYLOAD_BYTES_MAX`].
    LengthOverLimit {
        /// The length field.
        len: u32,
    },
    /// The payload runs past the end of the bytes.
    ShortPayload {
        /// Payload bytes the header announces.
        len: u32,
        /// Payload bytes available.
        available: usize,
    },
    /// The stored CRC does not match the bytes.
    CrcMismatch {
        /// CRC in the header.
        stored: u32,
        /// CRC of the bytes as read.
        computed: u32,
    },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::ShortHeader { available } => {
                write!(
                    f,
                    "frame header cut short ({available} of {FRAME_HEADER_BYTES} bytes)"
                )
            }
            FrameError::LengthOverLimit { len } => {
                write!(
                    f,
                    "frame length {len} over the limit of {FRAME_PAYLOAD_BYTES_MAX} bytes"
                )
            }
            FrameError::ShortPayload { len, available } => {
                write!(f, "frame payload cut short ({available} of {len} bytes)")
            }
            FrameError::CrcMismatch { stored, computed } => write!(
                f,
                "frame CRC mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
        }
    }
}

/// Appends the frame for (`index`, `term`, `payload`) to `buf`. Panics only if `payload` is longer than
/// [`FRAME_PAYLOAD_BYTES_MAX`]; callers check that first (the log returns a usage error).
pub fn encode_frame(buf: &mut Vec<u8>, index: u64, term: u64, payload: &[u8]) {
    assert!(payload.len() <= FRAME_PAYLOAD_BYTES_MAX as usize);
    let start = buf.len();
    buf.extend_from_slice(&[0u8; 4]);
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&index.to_le_bytes());
    buf.extend_from_slice(&term.to_le_bytes());
    buf.extend_from_slice(payload);
    let crc = crc32fast::hash(&buf[start + 4..]);
    buf[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Decodes the frame at the start of `bytes`, checking its length and CRC.
pub fn decode_frame(bytes: &[u8]) -> Result<Frame<'_>, FrameError> {
    if bytes.len() < FRAME_HEADER_BYTES {
        return Err(FrameError::ShortHeader {
            available: bytes.len(),
        });
    }
    let stored = u32_at(bytes, 0);
    let len = u32_at(bytes, 4);
    if len > FRAME_PAYLOAD_BYTES_MAX {
        return Err(FrameError::LengthOverLimit { len });
    }
    let end = FRAME_HEADER_BYTES + len as usize;
    if bytes.len() < end {
        return Err(FrameError::ShortPayload {
            len,
            available: bytes.len() - FRAME_HEADER_BYTES,
        });
    }
    let computed = crc32fast::hash(&bytes[4..end]);
    if computed != stored {
        return Err(FrameError::CrcMismatch { stored, computed });
    }
    Ok(Frame {
        index: u64_at(bytes, 8),
        term: u64_at(bytes, 16),
        payload: &bytes[FRAME_HEADER_BYTES..end],
    })
}

/// Reads a little-endian `u32` at `at`; `bytes` must hold it.
pub(crate) fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32_at(bytes, at)
}

/// Reads a little-endian `u64` at `at`; `bytes` must hold it.
pub(crate) fn read_u64(bytes: &[u8], at: usize) -> u64 {
    u64_at(bytes, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_is_ieee() {
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn round_trip_and_layout() {
        let mut buf = Vec::new();
        encode_frame(&mut buf, 7, 3, b"hello");
        assert_eq!(buf.len(), FRAME_HEADER_BYTES + 5);
        assert_eq!(read_u32(&buf, 4), 5);
        assert_eq!(read_u64(&buf, 8), 7);
        assert_eq!(read_u64(&buf, 16), 3);
        let f = decode_frame(&buf).unwrap();
        assert_eq!((f.index, f.term, f.payload), (7, 3, &b"hello"[..]));
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let mut buf = Vec::new();
        encode_frame(&mut buf, 1, 1, b"payload bytes");
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[byte] ^= 1 << bit;
                assert!(
                    decode_frame(&bad).is_err(),
                    "flip at {byte}:{bit} undetected"
                );
            }
        }
    }

    #[test]
    fn short_and_oversized_are_errors() {
        let mut buf = Vec::new();
        encode_frame(&mut buf, 1, 1, b"abc");
        assert!(matches!(
            decode_frame(&buf[..10]),
            Err(FrameError::ShortHeader { .. })
        ));
        assert!(matches!(
            decode_frame(&buf[..buf.len() - 1]),
            Err(FrameError::ShortPayload { .. })
        ));
        buf[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_frame(&buf),
            Err(FrameError::LengthOverLimit { .. })
        ));
    }
}
