//! The frame codec of the server-to-server transport: pure code, no IO.
//!
//! Every frame on the wire is
//!
//! ```text
//! +----------------+------------------+-----------------------+
//! | len: u32 (LE)  | crc32: u32 (LE)  | payload: len bytes    |
//! +----------------+------------------+-----------------------+
//! ```
//!
//! `crc32` is CRC-32 (IEEE 802.3, the polynomial of zlib and Ethernet, as computed by
//! `crc32fast`; not CRC-32C) over the payload only. `len` counts the payload only and may be zero.
//! A frame whose `len` exceeds the receiver's `frame_bytes_max` is rejected before any of its
//! payload is buffered.
//!
//! [`FrameDecoder`] is incremental: feed it byte chunks of any size, as they come from a socket,
//! and it yields whole payloads. It buffers at most one frame, grows that buffer only as payload
//! bytes actually arrive, and never allocates more than `frame_bytes_max` for it. After an error
//! the stream cannot be resynchronised (the next frame boundary is unknown), so the decoder keeps
//! returning that error; the caller closes the connection.

use std::fmt;

/// Bytes of the frame header: `len` (u32 LE) then `crc32` (u32 LE).
pub const FRAME_HEADER_BYTES: usize = 8;

/// Default limit on a frame's payload length (64 MiB).
pub const FRAME_BYTES_MAX_DEFAULT: usize = 64 << 20;

/// The largest payload the header can describe (`len` is a u32); a larger `frame_bytes_max` is
/// treated as this.
pub const FRAME_BYTES_MAX_LIMIT: usize = u32::MAX as usize;

/// Why a frame could not be encoded or decoded. Every message says what happened and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The frame's payload length exceeds `frame_bytes_max`.
    TooLarge {
        /// The payload length (from the header when decoding).
        len_bytes: u64,
        /// The limit in force.
        frame_bytes_max: usize,
        /// Offset of the frame's first header byte in the stream (0 when encoding).
        stream_offset_bytes: u64,
    },
    /// The payload's CRC-32 differs from the one in the header.
    Checksum {
        /// The payload length.
        len_bytes: usize,
        /// The CRC-32 stated in the header.
        crc_expected: u32,
        /// The CRC-32 of the payload received.
        crc_actual: u32,
        /// Offset of the frame's first header byte in the stream.
        stream_offset_bytes: u64,
    },
    /// The stream ended in the middle of a frame.
    Truncated {
        /// Bytes of the unfinished frame received (header included).
        received_bytes: usize,
        /// Bytes the frame needs; `None` when the header itself is incomplete.
        needed_bytes: Option<usize>,
        /// Offset of the frame's first header byte in the stream.
        stream_offset_bytes: u64,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLarge {
                len_bytes,
                frame_bytes_max,
                stream_offset_bytes,
            } => write!(
                f,
                "frame of {len_bytes} bytes at stream offset {stream_offset_bytes} exceeds \
                 frame_bytes_max ({frame_bytes_max} bytes): the sender uses a larger limit than \
                 this node (use the same frame_bytes_max everywhere) or does not speak the cairn \
                 frame protocol"
            ),
            FrameError::Checksum {
                len_bytes,
                crc_expected,
                crc_actual,
                stream_offset_bytes,
            } => write!(
                f,
                "frame of {len_bytes} bytes at stream offset {stream_offset_bytes} is corrupt: \
                 its payload has CRC-32 {crc_actual:#010x} but the header says \
                 {crc_expected:#010x} (a faulty link or a sender that does not speak the cairn \
                 frame protocol)"
            ),
            FrameError::Truncated {
                received_bytes,
                needed_bytes,
                stream_offset_bytes,
            } => match needed_bytes {
                Some(needed) => write!(
                    f,
                    "the stream ended inside the frame at offset {stream_offset_bytes}: \
                     {received_bytes} of {needed} bytes received"
                ),
                None => write!(
                    f,
                    "the stream ended inside the header of the frame at offset \
                     {stream_offset_bytes}: {received_bytes} of {FRAME_HEADER_BYTES} bytes \
                     received"
                ),
            },
        }
    }
}

impl std::error::Error for FrameError {}

fn effective_max(frame_bytes_max: usize) -> usize {
    frame_bytes_max.min(FRAME_BYTES_MAX_LIMIT)
}

/// The header for `payload`: its length and CRC-32, little-endian.
///
/// Fails with [`FrameError::TooLarge`] when the payload is longer than `frame_bytes_max` (or than
/// a u32 can describe).
pub fn encode_header(
    payload: &[u8],
    frame_bytes_max: usize,
) -> Result<[u8; FRAME_HEADER_BYTES], FrameError> {
    let limit = effective_max(frame_bytes_max);
    if payload.len() > limit {
        return Err(FrameError::TooLarge {
            len_bytes: payload.len() as u64,
            frame_bytes_max: limit,
            stream_offset_bytes: 0,
        });
    }
    let mut header = [0u8; FRAME_HEADER_BYTES];
    // The length fits: it is at most FRAME_BYTES_MAX_LIMIT == u32::MAX.
    header[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[4..].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    Ok(header)
}

/// Appends the frame for `payload` (header then payload) to `out`.
///
/// Fails with [`FrameError::TooLarge`] (leaving `out` unchanged) when the payload is longer than
/// `frame_bytes_max`.
pub fn encode_frame(
    payload: &[u8],
    frame_bytes_max: usize,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let header = encode_header(payload, frame_bytes_max)?;
    out.reserve(FRAME_HEADER_BYTES + payload.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
    Ok(())
}

/// The outcome of one [`FrameDecoder::decode`] call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Bytes of the input consumed; the caller passes the rest in the next call.
    pub consumed_bytes: usize,
    /// The payload of the frame completed by these bytes, if one was.
    pub frame: Option<Vec<u8>>,
}

/// An incremental decoder of a stream of frames (see the [module docs](self)).
///
/// ```
/// use cairn_io::net::frame::{encode_frame, FrameDecoder, FRAME_BYTES_MAX_DEFAULT};
/// let mut wire = Vec::new();
/// encode_frame(b"hello", FRAME_BYTES_MAX_DEFAULT, &mut wire).unwrap();
/// encode_frame(b"world", FRAME_BYTES_MAX_DEFAULT, &mut wire).unwrap();
/// let mut decoder = FrameDecoder::new(FRAME_BYTES_MAX_DEFAULT);
/// let mut frames = Vec::new();
/// for chunk in wire.chunks(3) {
///     for frame in decoder.frames(chunk) {
///         frames.push(frame.unwrap());
///     }
/// }
/// assert_eq!(frames, vec![b"hello".to_vec(), b"world".to_vec()]);
/// assert!(decoder.finish().is_ok());
/// ```
#[derive(Debug)]
pub struct FrameDecoder {
    frame_bytes_max: usize,
    header: [u8; FRAME_HEADER_BYTES],
    header_filled_bytes: usize,
    /// `Some((len, crc))` once the current frame's header is complete.
    expected: Option<(usize, u32)>,
    payload: Vec<u8>,
    /// Stream offset of the current frame's first header byte.
    frame_offset_bytes: u64,
    failed: Option<FrameError>,
}

impl Default for FrameDecoder {
    fn default() -> FrameDecoder {
        FrameDecoder::new(FRAME_BYTES_MAX_DEFAULT)
    }
}

impl FrameDecoder {
    /// A decoder that rejects payloads longer than `frame_bytes_max` (capped at
    /// [`FRAME_BYTES_MAX_LIMIT`]).
    pub fn new(frame_bytes_max: usize) -> FrameDecoder {
        FrameDecoder {
            frame_bytes_max: effective_max(frame_bytes_max),
            header: [0; FRAME_HEADER_BYTES],
            header_filled_bytes: 0,
            expected: None,
            payload: Vec::new(),
            frame_offset_bytes: 0,
            failed: None,
        }
    }

    /// The payload limit in force.
    pub fn frame_bytes_max(&self) -> usize {
        self.frame_bytes_max
    }

    /// Bytes of the unfinished frame held (header and payload), 0 at a frame boundary.
    pub fn buffered_bytes(&self) -> usize {
        if self.expected.is_some() {
            FRAME_HEADER_BYTES + self.payload.len()
        } else {
            self.header_filled_bytes
        }
    }

    /// The error the decoder stopped at, if any; once set, every call returns it.
    pub fn error(&self) -> Option<&FrameError> {
        self.failed.as_ref()
    }

    /// Consumes bytes from `input` until one frame is complete or the input is used up.
    ///
    /// Call again with `&input[consumed_bytes..]` while bytes remain. Returns an error for an
    /// over-limit length (before buffering the payload) or a CRC mismatch; the decoder then stays
    /// failed.
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded, FrameError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let mut consumed = 0;
        let (len, crc_expected) = match self.expected {
            Some(expected) => expected,
            None => {
                let take = (FRAME_HEADER_BYTES - self.header_filled_bytes).min(input.len());
                self.header[self.header_filled_bytes..self.header_filled_bytes + take]
                    .copy_from_slice(&input[..take]);
                self.header_filled_bytes += take;
                consumed += take;
                if self.header_filled_bytes < FRAME_HEADER_BYTES {
                    return Ok(Decoded {
                        consumed_bytes: consumed,
                        frame: None,
                    });
                }
                let len = u32::from_le_bytes([
                    self.header[0],
                    self.header[1],
                    self.header[2],
                    self.header[3],
                ]) as usize;
                let crc = u32::from_le_bytes([
                    self.header[4],
                    self.header[5],
                    self.header[6],
                    self.header[7],
                ]);
                if len > self.frame_bytes_max {
                    return Err(self.fail(FrameError::TooLarge {
                        len_bytes: len as u64,
                        frame_bytes_max: self.frame_bytes_max,
                        stream_offset_bytes: self.frame_offset_bytes,
                    }));
                }
                self.expected = Some((len, crc));
                (len, crc)
            }
        };
        let rest = &input[consumed..];
        let take = (len - self.payload.len()).min(rest.len());
        self.reserve_payload(len, take);
        self.payload.extend_from_slice(&rest[..take]);
        consumed += take;
        if self.payload.len() < len {
            return Ok(Decoded {
                consumed_bytes: consumed,
                frame: None,
            });
        }
        let payload = std::mem::take(&mut self.payload);
        let crc_actual = crc32fast::hash(&payload);
        if crc_actual != crc_expected {
            return Err(self.fail(FrameError::Checksum {
                len_bytes: len,
                crc_expected,
                crc_actual,
                stream_offset_bytes: self.frame_offset_bytes,
            }));
        }
        self.expected = None;
        self.header_filled_bytes = 0;
        self.frame_offset_bytes += (FRAME_HEADER_BYTES + len) as u64;
        Ok(Decoded {
            consumed_bytes: consumed,
            frame: Some(payload),
        })
    }

    /// An iterator over the frames completed by `chunk`, consuming all of it. It yields each
    /// payload in order, and after an error yields that error once and stops.
    pub fn frames<'a>(&'a mut self, chunk: &'a [u8]) -> Frames<'a> {
        Frames {
            decoder: self,
            input: chunk,
            done: false,
        }
    }

    /// Checks the end of the stream: `Ok` at a frame boundary, [`FrameError::Truncated`] inside a
    /// frame, or the error the decoder stopped at.
    pub fn finish(&self) -> Result<(), FrameError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        match self.expected {
            None if self.header_filled_bytes == 0 => Ok(()),
            None => Err(FrameError::Truncated {
                received_bytes: self.header_filled_bytes,
                needed_bytes: None,
                stream_offset_bytes: self.frame_offset_bytes,
            }),
            Some((len, _)) => Err(FrameError::Truncated {
                received_bytes: FRAME_HEADER_BYTES + self.payload.len(),
                needed_bytes: Some(FRAME_HEADER_BYTES + len),
                stream_offset_bytes: self.frame_offset_bytes,
            }),
        }
    }

    /// Grows the payload buffer for `take` more bytes of a `len`-byte payload: at least doubling
    /// (amortised O(1) appends) but never past `len`, which is at most `frame_bytes_max`. Memory
    /// follows the bytes that actually arrived, not the length a peer claims.
    fn reserve_payload(&mut self, len: usize, take: usize) {
        let needed = self.payload.len() + take;
        if needed > self.payload.capacity() {
            let target = needed
                .max(self.payload.capacity().saturating_mul(2))
                .min(len);
            self.payload.reserve_exact(target - self.payload.len());
        }
    }

    fn fail(&mut self, error: FrameError) -> FrameError {
        self.payload = Vec::new();
        self.failed = Some(error.clone());
        error
    }
}

/// The iterator returned by [`FrameDecoder::frames`].
#[derive(Debug)]
pub struct Frames<'a> {
    decoder: &'a mut FrameDecoder,
    input: &'a [u8],
    done: bool,
}

impl Iterator for Frames<'_> {
    type Item = Result<Vec<u8>, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done && !self.input.is_empty() {
            match self.decoder.decode(self.input) {
                Ok(decoded) => {
                    self.input = &self.input[decoded.consumed_bytes..];
                    if let Some(frame) = decoded.frame {
                        return Some(Ok(frame));
                    }
                }
                Err(error) => {
                    self.done = true;
                    return Some(Err(error));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::SplitMix64 as Rng;

    fn random_payloads(rng: &mut Rng, count: usize, len_max: usize) -> Vec<Vec<u8>> {
        (0..count)
            .map(|_| {
                // Mostly small frames, some empty, some near the maximum.
                let len = match rng.below(10) {
                    0 => 0,
                    1 => len_max - rng.below(16).min(len_max),
                    _ => rng.below(len_max / 8 + 1),
                };
                rng.bytes(len)
            })
            .collect()
    }

    fn encode_all(payloads: &[Vec<u8>], frame_bytes_max: usize) -> Vec<u8> {
        let mut wire = Vec::new();
        for payload in payloads {
            encode_frame(payload, frame_bytes_max, &mut wire).expect("encode");
        }
        wire
    }

    fn decode_chunked(
        decoder: &mut FrameDecoder,
        wire: &[u8],
        rng: &mut Rng,
        chunk_bytes_max: usize,
    ) -> (Vec<Vec<u8>>, Option<FrameError>) {
        let mut frames = Vec::new();
        let mut rest = wire;
        while !rest.is_empty() {
            let chunk_len = (1 + rng.below(chunk_bytes_max)).min(rest.len());
            let (chunk, tail) = rest.split_at(chunk_len);
            rest = tail;
            for frame in decoder.frames(chunk) {
                match frame {
                    Ok(frame) => frames.push(frame),
                    Err(error) => return (frames, Some(error)),
                }
            }
        }
        (frames, None)
    }

    #[test]
    fn header_layout_is_len_then_crc_little_endian() {
        let header = encode_header(b"123456789", 100).expect("header");
        assert_eq!(&header[..4], &9u32.to_le_bytes());
        // The CRC-32/IEEE check value of "123456789".
        assert_eq!(&header[4..], &0xCBF4_3926u32.to_le_bytes());
        let mut wire = Vec::new();
        encode_frame(b"", 100, &mut wire).expect("empty frame");
        assert_eq!(wire, vec![0u8; FRAME_HEADER_BYTES]);
    }

    #[test]
    fn encoding_an_over_limit_payload_fails_and_leaves_the_output_alone() {
        let mut wire = vec![7u8];
        let error = encode_frame(&[0u8; 11], 10, &mut wire).unwrap_err();
        assert_eq!(
            error,
            FrameError::TooLarge {
                len_bytes: 11,
                frame_bytes_max: 10,
                stream_offset_bytes: 0
            }
        );
        assert_eq!(wire, vec![7u8]);
        encode_frame(&[0u8; 10], 10, &mut wire).expect("exactly the limit is fine");
    }

    #[test]
    fn round_trip_with_seeded_random_chunking() {
        for seed in 0..50u64 {
            let mut rng = Rng::new(seed);
            let frame_bytes_max = 1 + rng.below(4096);
            let payloads = random_payloads(&mut rng, 200, frame_bytes_max);
            let wire = encode_all(&payloads, frame_bytes_max);
            let mut decoder = FrameDecoder::new(frame_bytes_max);
            let chunk_bytes_max = [1, 7, 64, 5000][seed as usize % 4];
            let (frames, error) = decode_chunked(&mut decoder, &wire, &mut rng, chunk_bytes_max);
            assert_eq!(error, None, "seed {seed}");
            assert_eq!(frames, payloads, "seed {seed}");
            assert_eq!(decoder.finish(), Ok(()), "seed {seed}");
            assert_eq!(decoder.buffered_bytes(), 0, "seed {seed}");
        }
    }

    #[test]
    fn the_whole_stream_in_one_chunk_yields_every_frame() {
        let mut rng = Rng::new(99);
        let payloads = random_payloads(&mut rng, 100, 300);
        let wire = encode_all(&payloads, 300);
        let mut decoder = FrameDecoder::new(300);
        let frames: Result<Vec<_>, _> = decoder.frames(&wire).collect();
        assert_eq!(frames.expect("decode"), payloads);
    }

    #[test]
    fn decode_consumes_at_most_one_frame_per_call() {
        let wire = encode_all(&[b"ab".to_vec(), b"cde".to_vec()], 100);
        let mut decoder = FrameDecoder::new(100);
        let first = decoder.decode(&wire).expect("first");
        assert_eq!(first.consumed_bytes, FRAME_HEADER_BYTES + 2);
        assert_eq!(first.frame, Some(b"ab".to_vec()));
        let second = decoder
            .decode(&wire[first.consumed_bytes..])
            .expect("second");
        assert_eq!(second.consumed_bytes, FRAME_HEADER_BYTES + 3);
        assert_eq!(second.frame, Some(b"cde".to_vec()));
        let empty = decoder.decode(&[]).expect("empty input");
        assert_eq!(empty.consumed_bytes, 0);
        assert_eq!(empty.frame, None);
    }

    #[test]
    fn an_over_limit_length_fails_before_buffering_the_payload() {
        let mut header = Vec::new();
        header.extend_from_slice(&u32::MAX.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        let mut decoder = FrameDecoder::new(1 << 20);
        let mut wire = encode_all(&[b"fine".to_vec()], 1 << 20);
        let good_end = wire.len() as u64;
        wire.extend_from_slice(&header);
        wire.extend_from_slice(&[0u8; 100]);
        let results: Vec<_> = decoder.frames(&wire).collect();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0], Ok(b"fine".to_vec()));
        let expected = FrameError::TooLarge {
            len_bytes: u32::MAX as u64,
            frame_bytes_max: 1 << 20,
            stream_offset_bytes: good_end,
        };
        assert_eq!(results[1], Err(expected.clone()));
        assert_eq!(
            decoder.payload.capacity(),
            0,
            "no payload buffer was allocated"
        );
        // The decoder stays failed.
        assert_eq!(decoder.decode(b"more"), Err(expected.clone()));
        assert_eq!(decoder.finish(), Err(expected.clone()));
        assert!(expected.to_string().contains("exceeds frame_bytes_max"));
    }

    #[test]
    fn buffer_growth_follows_arriving_bytes_and_never_exceeds_the_length() {
        let len = 10_000;
        let frame_bytes_max = 1 << 20;
        let wire = encode_all(&[vec![5u8; len]], frame_bytes_max);
        let mut decoder = FrameDecoder::new(frame_bytes_max);
        // A header claiming 10 000 bytes followed by only 10 allocates for 10, not 10 000.
        assert_eq!(decoder.frames(&wire[..FRAME_HEADER_BYTES + 10]).count(), 0);
        assert!(decoder.payload.capacity() <= 20);
        for chunk in wire[FRAME_HEADER_BYTES + 10..len].chunks(97) {
            assert_eq!(decoder.frames(chunk).count(), 0);
            assert!(decoder.payload.capacity() <= len);
        }
        let frames: Vec<_> = decoder.frames(&wire[len..]).collect();
        assert_eq!(frames, vec![Ok(vec![5u8; len])]);
    }

    #[test]
    fn a_flipped_bit_anywhere_is_detected_or_changes_the_frame_structure() {
        for seed in 0..200u64 {
            let mut rng = Rng::new(1000 + seed);
            let frame_bytes_max = 512;
            let payloads = random_payloads(&mut rng, 20, frame_bytes_max);
            let mut wire = encode_all(&payloads, frame_bytes_max);
            if wire.is_empty() {
                continue;
            }
            let position = rng.below(wire.len());
            wire[position] ^= 1 << rng.below(8);
            let mut decoder = FrameDecoder::new(frame_bytes_max);
            let (frames, error) = decode_chunked(&mut decoder, &wire, &mut rng, 64);
            // Never a panic, never a wrong payload delivered as good: the frames before the
            // error are a prefix of the originals and the corruption is reported (as a CRC
            // mismatch, an over-limit length, or a stream that ends inside a frame).
            assert!(
                frames.len() < payloads.len(),
                "seed {seed}: corruption not caught"
            );
            assert_eq!(frames, payloads[..frames.len()], "seed {seed}");
            let error = error.or_else(|| decoder.finish().err());
            assert!(error.is_some(), "seed {seed}: corruption not reported");
        }
    }

    #[test]
    fn a_corrupt_payload_reports_a_checksum_mismatch_with_its_offset() {
        let payloads = vec![b"first".to_vec(), b"second".to_vec()];
        let mut wire = encode_all(&payloads, 100);
        let second_offset = FRAME_HEADER_BYTES + 5;
        let last = wire.len() - 1;
        wire[last] ^= 0xFF;
        let mut decoder = FrameDecoder::new(100);
        let results: Vec<_> = decoder.frames(&wire).collect();
        assert_eq!(results[0], Ok(b"first".to_vec()));
        match &results[1] {
            Err(FrameError::Checksum {
                len_bytes,
                crc_expected,
                crc_actual,
                stream_offset_bytes,
            }) => {
                assert_eq!(*len_bytes, 6);
                assert_eq!(*crc_expected, crc32fast::hash(b"second"));
                assert_ne!(crc_actual, crc_expected);
                assert_eq!(*stream_offset_bytes, second_offset as u64);
            }
            other => panic!("expected a checksum error, got {other:?}"),
        }
        assert!(results[1]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("corrupt"));
    }

    #[test]
    fn finish_reports_a_truncated_header_or_payload() {
        let wire = encode_all(&[b"payload".to_vec()], 100);
        let mut decoder = FrameDecoder::new(100);
        assert_eq!(decoder.frames(&wire[..3]).count(), 0);
        assert_eq!(
            decoder.finish(),
            Err(FrameError::Truncated {
                received_bytes: 3,
                needed_bytes: None,
                stream_offset_bytes: 0
            })
        );
        assert_eq!(decoder.frames(&wire[3..10]).count(), 0);
        assert_eq!(decoder.buffered_bytes(), 10);
        let error = decoder.finish().unwrap_err();
        assert_eq!(
            error,
            FrameError::Truncated {
                received_bytes: 10,
                needed_bytes: Some(FRAME_HEADER_BYTES + 7),
                stream_offset_bytes: 0
            }
        );
        assert!(error.to_string().contains("10 of 15 bytes"));
    }

    #[test]
    fn random_garbage_never_panics() {
        for seed in 0..100u64 {
            let mut rng = Rng::new(5000 + seed);
            let len = rng.below(2000);
            let garbage = rng.bytes(len);
            let mut decoder = FrameDecoder::new(256);
            let _ = decode_chunked(&mut decoder, &garbage, &mut rng, 50);
            let _ = decoder.finish();
            assert!(decoder.payload.capacity() <= 256);
        }
    }

    #[test]
    fn a_limit_above_u32_is_capped() {
        let decoder = FrameDecoder::new(usize::MAX);
        assert_eq!(decoder.frame_bytes_max(), FRAME_BYTES_MAX_LIMIT);
    }
}
