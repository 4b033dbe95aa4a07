//! The layers around messages (WIRE.md §1): compound, LZW compression, CRC and encryption for UDP packets, and
//! the framing of TCP stream messages (no length prefix in plaintext: [`stream_message_len`] finds the end).

use super::lzw;
use super::messages::{encode_compress, kind, Message, Ping, PushPull};
use super::msgpack::{field_bytes, field_str, field_uint, read, read_exact, ReadError};
use super::security::{self, Keyring, NONCE_BYTES};

/// Largest UDP datagram read (memberlist's receive buffer).
pub const PACKET_BYTES_MAX: usize = 65_536;
/// Largest encrypted stream payload (`maxPushStateBytes`).
pub const STREAM_BYTES_MAX: usize = 20 * 1024 * 1024;
/// Parts a compound may hold (Go misparses more than 127).
pub const COMPOUND_PARTS_MAX: usize = 127;
/// Nesting of compound/compress layers accepted.
const NESTING_MAX: usize = 4;

/// Why received bytes were dropped. The driver logs it; nothing panics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireError(pub String);

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<ReadError> for WireError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Incomplete => WireError("truncated message".into()),
            ReadError::Malformed(why) => WireError(why),
        }
    }
}

impl From<security::SecurityError> for WireError {
    fn from(e: security::SecurityError) -> Self {
        WireError(e.to_string())
    }
}

/// `[0x07][n][len u16 × n][parts]`. At most [`COMPOUND_PARTS_MAX`] parts; callers keep parts below 64 KiB.
pub fn make_compound(parts: &[Vec<u8>]) -> Vec<u8> {
    let parts = &parts[..parts.len().min(COMPOUND_PARTS_MAX)];
    let mut out = Vec::with_capacity(2 + parts.iter().map(|p| p.len() + 2).sum::<usize>());
    out.push(kind::COMPOUND);
    out.push(parts.len() as u8);
    for p in parts {
        out.extend_from_slice(&(p.len().min(u16::MAX as usize) as u16).to_be_bytes());
    }
    for p in parts {
        out.extend_from_slice(&p[..p.len().min(u16::MAX as usize)]);
    }
    out
}

/// One message bare, several as a compound.
pub fn pack(mut parts: Vec<Vec<u8>>) -> Vec<u8> {
    if parts.len() == 1 {
        parts.pop().unwrap_or_default()
    } else {
        make_compound(&parts)
    }
}

/// `[0x0C][crc32-IEEE(msg)][msg]`.
pub fn add_crc(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 5);
    out.push(kind::HAS_CRC);
    out.extend_from_slice(&crc32fast::hash(msg).to_be_bytes());
    out.extend_from_slice(msg);
    out
}

/// `[0x09]{Algo:0, Buf: lzw(msg)}` when that is shorter than `msg`, else `msg` unchanged (UDP rule).
pub fn compress_if_shorter(msg: Vec<u8>) -> Vec<u8> {
    let c = encode_compress(&lzw::compress(&msg));
    if c.len() < msg.len() {
        c
    } else {
        msg
    }
}

/// Encrypts a whole UDP packet with the primary key (no additional data, no type byte).
pub fn seal_packet(
    keyring: &Keyring,
    vsn: u8,
    nonce: [u8; NONCE_BYTES],
    plain: &[u8],
) -> Result<Vec<u8>, WireError> {
    Ok(security::encrypt(
        keyring.primary(),
        vsn,
        nonce,
        plain,
        &[],
    )?)
}

/// What a received packet held: the messages that decoded, and the first problem met (parts after a bad one in a
/// compound are still handled, as memberlist does).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// Messages, in packet order.
    pub messages: Vec<Message>,
    /// The first error, if any.
    pub error: Option<WireError>,
}

/// Decodes a received UDP packet: decrypt (when keyed), CRC, then compound/compress recursively.
/// With a keyring and `verify_incoming` false, undecryptable packets are read as plaintext.
pub fn decode_packet(bytes: &[u8], keyring: Option<&Keyring>, verify_incoming: bool) -> Decoded {
    let mut out = Decoded::default();
    if bytes.len() > PACKET_BYTES_MAX {
        out.error = Some(WireError(format!("packet above {PACKET_BYTES_MAX} bytes")));
        return out;
    }
    let plain;
    let mut buf = bytes;
    if let Some(ring) = keyring {
        match security::decrypt(ring.keys(), bytes, &[]) {
            Ok(p) => {
                plain = p;
                buf = &plain;
            }
            Err(e) if verify_incoming => {
                out.error = Some(WireError(format!("decrypt packet: {e}")));
                return out;
            }
            Err(_) => {}
        }
    }
    if buf.len() >= 5 && buf[0] == kind::HAS_CRC {
        let want = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
        if crc32fast::hash(&buf[5..]) != want {
            out.error = Some(WireError("packet CRC mismatch".into()));
            return out;
        }
        buf = &buf[5..];
    }
    dispatch(buf, 0, &mut out);
    out
}

fn note(out: &mut Decoded, e: WireError) {
    if out.error.is_none() {
        out.error = Some(e);
    }
}

fn dispatch(buf: &[u8], depth: usize, out: &mut Decoded) {
    if depth > NESTING_MAX {
        return note(out, WireError("compound/compress nested too deeply".into()));
    }
    match buf.first() {
        None => note(out, WireError("empty message".into())),
        Some(&kind::COMPOUND) => {
            let Some(&n) = buf.get(1) else {
                return note(out, WireError("compound without a count".into()));
            };
            let n = n as usize;
            let lens_end = 2 + 2 * n;
            if buf.len() < lens_end {
                return note(
                    out,
                    WireError("compound shorter than its length table".into()),
                );
            }
            let mut pos = lens_end;
            for i in 0..n {
                let len = u16::from_be_bytes([buf[2 + 2 * i], buf[3 + 2 * i]]) as usize;
                if pos + len > buf.len() {
                    return note(
                        out,
                        WireError(format!("compound truncated: {} of {n} parts", i)),
                    );
                }
                dispatch(&buf[pos..pos + len], depth + 1, out);
                pos += len;
            }
        }
        Some(&kind::COMPRESS) => match decompress_body(&buf[1..], PACKET_BYTES_MAX * 16) {
            Ok(inner) => dispatch(&inner, depth + 1, out),
            Err(e) => note(out, e),
        },
        Some(&t) if t == kind::HAS_CRC || t == kind::HAS_LABEL => note(
            out,
            WireError(format!("message type {t} is not supported here")),
        ),
        Some(_) => match Message::decode(buf) {
            Ok(m) => out.messages.push(m),
            Err(e) => note(out, e.into()),
        },
    }
}

/// Decodes a `compress` body (after the 0x09 byte) into the wrapped bytes.
pub fn decompress_body(body: &[u8], output_bytes_max: usize) -> Result<Vec<u8>, WireError> {
    let v = read_exact(body)?;
    let algo = field_uint(&v, "Algo", u64::MAX)?;
    if algo != 0 {
        return Err(WireError(format!("unknown compression algorithm {algo}")));
    }
    let lzw_bytes = field_bytes(&v, "Buf")?;
    lzw::decompress(&lzw_bytes, output_bytes_max).map_err(|e| WireError(format!("lzw: {e:?}")))
}

/// A message read from a TCP stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamMessage {
    /// A push/pull (join or periodic sync).
    PushPull(PushPull),
    /// A TCP fallback ping.
    Ping(Ping),
    /// An ack (the answer to our TCP ping).
    Ack(u32),
    /// A reliable user (serf) message.
    User(Vec<u8>),
    /// The peer's error.
    Err(String),
}

fn incomplete_to_none<T>(r: Result<T, ReadError>) -> Result<Option<T>, WireError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(ReadError::Incomplete) => Ok(None),
        Err(ReadError::Malformed(why)) => Err(WireError(why)),
    }
}

/// How many bytes at the start of `buf` form one whole stream message: `Ok(None)` while more are needed.
/// The driver reads until this answers, then hands exactly those bytes to the core.
pub fn stream_message_len(buf: &[u8], nodes_max: usize) -> Result<Option<usize>, WireError> {
    let Some(&t) = buf.first() else {
        return Ok(None);
    };
    let body = &buf[1..];
    match t {
        kind::ENCRYPT => {
            if buf.len() < 5 {
                return Ok(None);
            }
            let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
            if len > STREAM_BYTES_MAX {
                return Err(WireError(format!(
                    "encrypted stream of {len} bytes is above {STREAM_BYTES_MAX}"
                )));
            }
            Ok((buf.len() >= 5 + len).then_some(5 + len))
        }
        kind::COMPRESS | kind::PING | kind::ACK | kind::ERR => {
            Ok(incomplete_to_none(read(body))?.map(|(_, n)| 1 + n))
        }
        kind::PUSH_PULL => {
            Ok(incomplete_to_none(PushPull::decode_body(body, nodes_max))?.map(|(_, n)| 1 + n))
        }
        kind::USER => {
            let Some((h, n)) = incomplete_to_none(read(body))? else {
                return Ok(None);
            };
            let len = field_uint(&h, "UserMsgLen", STREAM_BYTES_MAX as u64)? as usize;
            Ok((body.len() >= n + len).then_some(1 + n + len))
        }
        other => Err(WireError(format!(
            "stream message type {other} is not supported"
        ))),
    }
}

/// Decodes one whole stream message (as delimited by [`stream_message_len`]): decrypt, decompress, parse.
/// A keyed receiver refuses plaintext and an unkeyed one refuses ciphertext.
pub fn decode_stream(
    buf: &[u8],
    keyring: Option<&Keyring>,
    nodes_max: usize,
) -> Result<StreamMessage, WireError> {
    let decrypted;
    let mut msg = buf;
    match (buf.first(), keyring) {
        (Some(&kind::ENCRYPT), Some(ring)) => {
            if buf.len() < 5 {
                return Err(WireError("encrypted stream header truncated".into()));
            }
            decrypted = security::decrypt(ring.keys(), &buf[5..], &buf[..5])?;
            msg = &decrypted;
        }
        (Some(&kind::ENCRYPT), None) => {
            return Err(WireError(
                "encrypted stream received but encryption is not configured".into(),
            ))
        }
        (Some(_), Some(_)) => {
            return Err(WireError(
                "plaintext stream received but encryption is required".into(),
            ))
        }
        _ => {}
    }
    let decompressed;
    if msg.first() == Some(&kind::COMPRESS) {
        decompressed = decompress_body(&msg[1..], STREAM_BYTES_MAX)?;
        msg = &decompressed;
    }
    let Some((&t, body)) = msg.split_first() else {
        return Err(WireError("empty stream message".into()));
    };
    match t {
        kind::PUSH_PULL => {
            let (pp, _) = PushPull::decode_body(body, nodes_max)?;
            Ok(StreamMessage::PushPull(pp))
        }
        kind::PING => match Message::decode(msg)? {
            Message::Ping(p) => Ok(StreamMessage::Ping(p)),
            _ => Err(WireError("bad stream ping".into())),
        },
        kind::ACK => match Message::decode(msg)? {
            Message::Ack(a) => Ok(StreamMessage::Ack(a.seq_no)),
            _ => Err(WireError("bad stream ack".into())),
        },
        kind::ERR => {
            let v = read_exact(body)?;
            Ok(StreamMessage::Err(field_str(&v, "Error")?))
        }
        kind::USER => {
            let (h, n) = read(body)?;
            let len = field_uint(&h, "UserMsgLen", STREAM_BYTES_MAX as u64)? as usize;
            let rest = &body[n..];
            if rest.len() < len {
                return Err(WireError("user stream message truncated".into()));
            }
            Ok(StreamMessage::User(rest[..len].to_vec()))
        }
        other => Err(WireError(format!(
            "stream message type {other} is not supported"
        ))),
    }
}

/// Wraps an outgoing stream message: LZW-compressed when `compress` (always, even if larger, as memberlist does),
/// then encrypted as `[0x0A][len u32][vsn|nonce|ciphertext|tag]` with the header as additional data when keyed.
pub fn encode_stream(
    msg: Vec<u8>,
    compress: bool,
    keyring: Option<&Keyring>,
    nonce: [u8; NONCE_BYTES],
) -> Result<Vec<u8>, WireError> {
    let msg = if compress {
        encode_compress(&lzw::compress(&msg))
    } else {
        msg
    };
    let Some(ring) = keyring else {
        return Ok(msg);
    };
    let len = (security::OVERHEAD_V1_BYTES + msg.len()) as u32;
    let mut header = vec![kind::ENCRYPT];
    header.extend_from_slice(&len.to_be_bytes());
    let sealed = security::encrypt(ring.primary(), 1, nonce, &msg, &header)?;
    header.extend_from_slice(&sealed);
    Ok(header)
}
