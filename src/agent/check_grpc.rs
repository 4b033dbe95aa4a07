//! gRPC health checks: one unary call of `/grpc.health.v1.Health/Check` over a minimal HTTP/2 client
//! (RFC 9113) on one stream, over h2c or TLS with ALPN `h2`.
//!
//! The client writes the connection preface, an empty SETTINGS frame, the request HEADERS (HPACK literal
//! fields) and one DATA frame holding the gRPC message (a 5-byte prefix and the protobuf
//! `HealthCheckRequest{service}`), then reads frames: it acknowledges the server's SETTINGS and PINGs,
//! collects stream 1's header blocks (decoded with HPACK) and DATA, and stops at END_STREAM, RST_STREAM
//! or GOAWAY. The answer is passing only when `grpc-status` is 0 and the `HealthCheckResponse` says
//! `SERVING` (1). Bounds: frames of at most [`FRAME_BYTES_MAX`], a header block of at most
//! [`HEADER_BLOCK_BYTES_MAX`], a response body of at most [`BODY_BYTES_MAX`], [`READ_BYTES_MAX`] read in
//! all; anything beyond, or malformed, is an error (the check is critical), never a panic.

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The HTTP/2 connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The path of the health check method.
pub const HEALTH_CHECK_PATH: &str = "/grpc.health.v1.Health/Check";
/// The largest frame payload accepted (HTTP/2's default `SETTINGS_MAX_FRAME_SIZE`, which we never raise).
pub const FRAME_BYTES_MAX: usize = 16_384;
/// The largest header block (HEADERS plus CONTINUATIONs) accepted.
pub const HEADER_BLOCK_BYTES_MAX: usize = 16_384;
/// The largest response body (DATA of stream 1) accepted.
pub const BODY_BYTES_MAX: usize = 16_384;
/// Bytes read from the server in all.
pub const READ_BYTES_MAX: usize = 256 * 1024;
/// The stream the one request uses.
pub const STREAM_ID: u32 = 1;

/// Frame types used here.
pub mod frame_type {
    /// DATA.
    pub const DATA: u8 = 0x0;
    /// HEADERS.
    pub const HEADERS: u8 = 0x1;
    /// RST_STREAM.
    pub const RST_STREAM: u8 = 0x3;
    /// SETTINGS.
    pub const SETTINGS: u8 = 0x4;
    /// PING.
    pub const PING: u8 = 0x6;
    /// GOAWAY.
    pub const GOAWAY: u8 = 0x7;
    /// CONTINUATION.
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags used here.
pub mod flag {
    /// END_STREAM (DATA, HEADERS).
    pub const END_STREAM: u8 = 0x1;
    /// ACK (SETTINGS, PING).
    pub const ACK: u8 = 0x1;
    /// END_HEADERS (HEADERS, CONTINUATION).
    pub const END_HEADERS: u8 = 0x4;
    /// PADDED (DATA, HEADERS).
    pub const PADDED: u8 = 0x8;
    /// PRIORITY (HEADERS).
    pub const PRIORITY: u8 = 0x20;
}

/// One HTTP/2 frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The type.
    pub kind: u8,
    /// The flags.
    pub flags: u8,
    /// The stream (31 bits).
    pub stream: u32,
    /// The payload.
    pub payload: Vec<u8>,
}

/// A frame's bytes: the 9-byte header and the payload (at most [`FRAME_BYTES_MAX`]).
pub fn encode_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = payload.len().min(FRAME_BYTES_MAX) as u32;
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&length.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(&payload[..length as usize]);
    out
}

/// The first whole frame in `bytes` and how many bytes it took; `Ok(None)` when more bytes are needed;
/// an error for a frame longer than [`FRAME_BYTES_MAX`].
pub fn decode_frame(bytes: &[u8]) -> Result<Option<(Frame, usize)>, String> {
    let Some(head) = bytes.get(..9) else {
        return Ok(None);
    };
    let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    if length > FRAME_BYTES_MAX {
        return Err(format!("HTTP/2 frame of {length} bytes is too large"));
    }
    let Some(payload) = bytes.get(9..9 + length) else {
        return Ok(None);
    };
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let frame = Frame {
        kind: head[3],
        flags: head[4],
        stream,
        payload: payload.to_vec(),
    };
    Ok(Some((frame, 9 + length)))
}

/// A HEADERS or DATA payload without its padding (and a HEADERS priority block).
fn unpadded(frame: &Frame) -> Result<&[u8], String> {
    let mut payload = frame.payload.as_slice();
    let mut pad = 0usize;
    if frame.flags & flag::PADDED != 0 {
        let (&length, rest) = payload
            .split_first()
            .ok_or("HTTP/2 padded frame without its pad length")?;
        pad = length as usize;
        payload = rest;
    }
    if frame.kind == frame_type::HEADERS && frame.flags & flag::PRIORITY != 0 {
        payload = payload
            .get(5..)
            .ok_or("HTTP/2 HEADERS frame too short for its priority")?;
    }
    let end = payload
        .len()
        .checked_sub(pad)
        .ok_or("HTTP/2 frame padding longer than the frame")?;
    Ok(&payload[..end])
}

/// The protobuf `grpc.health.v1.HealthCheckRequest{service}`.
pub fn health_request(service: &str) -> Vec<u8> {
    let mut out = Vec::new();
    if !service.is_empty() {
        out.push(0x0a);
        put_varint(&mut out, service.len() as u64);
        out.extend_from_slice(service.as_bytes());
    }
    out
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn get_varint(bytes: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at).ok_or("truncated protobuf varint")?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("protobuf varint too long".to_string())
}

/// `ServingStatus` of a `HealthCheckResponse` (0 UNKNOWN when the field is absent); unknown fields are
/// skipped.
pub fn decode_health_response(bytes: &[u8]) -> Result<u64, String> {
    let mut at = 0;
    let mut status = 0;
    while at < bytes.len() {
        let key = get_varint(bytes, &mut at)?;
        let skip = match (key >> 3, key & 7) {
            (1, 0) => {
                status = get_varint(bytes, &mut at)?;
                0
            }
            (_, 0) => {
                get_varint(bytes, &mut at)?;
                0
            }
            (_, 1) => 8,
            (_, 5) => 4,
            (_, 2) => usize::try_from(get_varint(bytes, &mut at)?)
                .map_err(|_| "protobuf length too large".to_string())?,
            (_, wire) => return Err(format!("unsupported protobuf wire type {wire}")),
        };
        at = at
            .checked_add(skip)
            .filter(|end| *end <= bytes.len())
            .ok_or("truncated protobuf field")?;
    }
    Ok(status)
}

/// The name of a `ServingStatus`.
pub fn serving_status_name(status: u64) -> &'static str {
    match status {
        0 => "UNKNOWN",
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "an unknown status",
    }
}

/// A gRPC message: the 5-byte prefix (not compressed, length) and `message`.
pub fn grpc_message(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + message.len());
    out.push(0);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// The first gRPC message in a response body; an error when it is compressed, cut short or absent.
pub fn first_grpc_message(body: &[u8]) -> Result<&[u8], String> {
    let head = body.get(..5).ok_or("the gRPC response has no message")?;
    if head[0] != 0 {
        return Err("the gRPC response message is compressed".to_string());
    }
    let length = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    body.get(5..5 + length)
        .ok_or_else(|| "the gRPC response message is cut short".to_string())
}

/// Everything the client writes before reading: preface, SETTINGS, the request's HEADERS and DATA.
/// `scheme` is `http` or `https`, `authority` the target's `host:port`.
pub fn request_bytes(scheme: &str, authority: &str, service: &str) -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    // SETTINGS_ENABLE_PUSH (0x2) = 0.
    out.extend(encode_frame(
        frame_type::SETTINGS,
        0,
        0,
        &[0, 2, 0, 0, 0, 0],
    ));
    let fields: [(&[u8], &[u8]); 7] = [
        (b":method", b"POST"),
        (b":scheme", scheme.as_bytes()),
        (b":path", HEALTH_CHECK_PATH.as_bytes()),
        (b":authority", authority.as_bytes()),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
        (b"user-agent", b"Consul Health Check"),
    ];
    let mut block = Vec::new();
    for (name, value) in fields {
        literal_field(&mut block, name, value);
    }
    out.extend(encode_frame(
        frame_type::HEADERS,
        flag::END_HEADERS,
        STREAM_ID,
        &block,
    ));
    let message = grpc_message(&health_request(service));
    out.extend(encode_frame(
        frame_type::DATA,
        flag::END_STREAM,
        STREAM_ID,
        &message,
    ));
    out
}

/// An HPACK "literal header field without indexing — new name" (no Huffman coding).
fn literal_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0);
    hpack_string(out, name);
    hpack_string(out, value);
}

fn hpack_string(out: &mut Vec<u8>, text: &[u8]) {
    // A 7-bit prefix integer (RFC 7541 §5.1), Huffman bit clear.
    let mut length = text.len();
    if length < 0x7f {
        out.push(length as u8);
    } else {
        out.push(0x7f);
        length -= 0x7f;
        while length >= 0x80 {
            out.push((length as u8 & 0x7f) | 0x80);
            length >>= 7;
        }
        out.push(length as u8);
    }
    out.extend_from_slice(text);
}

/// What the server answered on stream 1.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrpcAnswer {
    /// `:status`.
    pub http_status: Option<u16>,
    /// `grpc-status` (from the trailers, or from a trailers-only answer).
    pub grpc_status: Option<u32>,
    /// `grpc-message`.
    pub grpc_message: String,
    /// The DATA of stream 1.
    pub body: Vec<u8>,
}

/// The reading side of the client: frames in, acknowledgements out, the answer when the stream ends.
pub struct Reader {
    buffer: Vec<u8>,
    read_bytes: usize,
    decoder: loona_hpack::Decoder<'static>,
    block: Vec<u8>,
    in_block: bool,
    block_ends_stream: bool,
    header_blocks: usize,
    answer: GrpcAnswer,
    ended: bool,
    replies: Vec<u8>,
}

impl Default for Reader {
    fn default() -> Reader {
        Reader {
            buffer: Vec::new(),
            read_bytes: 0,
            decoder: loona_hpack::Decoder::new(),
            block: Vec::new(),
            in_block: false,
            block_ends_stream: false,
            header_blocks: 0,
            answer: GrpcAnswer::default(),
            ended: false,
            replies: Vec::new(),
        }
    }
}

impl Reader {
    /// Takes bytes read from the server and handles every whole frame in them.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.read_bytes = self.read_bytes.saturating_add(bytes.len());
        if self.read_bytes > READ_BYTES_MAX {
            return Err(format!(
                "the gRPC server sent more than {READ_BYTES_MAX} bytes"
            ));
        }
        self.buffer.extend_from_slice(bytes);
        let mut at = 0;
        while !self.ended {
            let Some((frame, used)) = decode_frame(&self.buffer[at..])? else {
                break;
            };
            at += used;
            self.handle(&frame)?;
        }
        self.buffer.drain(..at);
        Ok(())
    }

    /// Bytes to send back (SETTINGS and PING acknowledgements), taken.
    pub fn take_replies(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.replies)
    }

    /// The answer once stream 1 has ended.
    pub fn answer(&self) -> Option<&GrpcAnswer> {
        self.ended.then_some(&self.answer)
    }

    fn handle(&mut self, frame: &Frame) -> Result<(), String> {
        if self.in_block && frame.kind != frame_type::CONTINUATION {
            return Err("HTTP/2 header block interrupted".to_string());
        }
        match frame.kind {
            frame_type::SETTINGS if frame.flags & flag::ACK == 0 => {
                self.replies
                    .extend(encode_frame(frame_type::SETTINGS, flag::ACK, 0, &[]));
            }
            frame_type::PING if frame.flags & flag::ACK == 0 => {
                self.replies
                    .extend(encode_frame(frame_type::PING, flag::ACK, 0, &frame.payload));
            }
            frame_type::GOAWAY => {
                return Err("the server closed the HTTP/2 connection (GOAWAY)".to_string());
            }
            frame_type::RST_STREAM if frame.stream == STREAM_ID => {
                let code = frame
                    .payload
                    .get(..4)
                    .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                return Err(format!(
                    "the server reset the stream (HTTP/2 error code {code})"
                ));
            }
            frame_type::HEADERS if frame.stream == STREAM_ID => {
                self.block_ends_stream = frame.flags & flag::END_STREAM != 0;
                let fragment = unpadded(frame)?.to_vec();
                self.add_fragment(&fragment, frame.flags)?;
            }
            frame_type::CONTINUATION if self.in_block && frame.stream == STREAM_ID => {
                let fragment = frame.payload.clone();
                self.add_fragment(&fragment, frame.flags)?;
            }
            frame_type::CONTINUATION => {
                return Err("unexpected HTTP/2 CONTINUATION frame".to_string());
            }
            frame_type::DATA if frame.stream == STREAM_ID => {
                let data = unpadded(frame)?;
                if self.answer.body.len() + data.len() > BODY_BYTES_MAX {
                    return Err(format!(
                        "the gRPC response is larger than {BODY_BYTES_MAX} bytes"
                    ));
                }
                self.answer.body.extend_from_slice(data);
                if frame.flags & flag::END_STREAM != 0 {
                    self.ended = true;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn add_fragment(&mut self, fragment: &[u8], flags: u8) -> Result<(), String> {
        if self.block.len() + fragment.len() > HEADER_BLOCK_BYTES_MAX {
            return Err(format!(
                "HTTP/2 header block larger than {HEADER_BLOCK_BYTES_MAX} bytes"
            ));
        }
        self.block.extend_from_slice(fragment);
        self.in_block = flags & flag::END_HEADERS == 0;
        if self.in_block {
            return Ok(());
        }
        let block = std::mem::take(&mut self.block);
        let fields = decode_block(&mut self.decoder, &block)?;
        self.header_blocks += 1;
        for (name, value) in fields {
            let value = String::from_utf8_lossy(&value).into_owned();
            match name.as_slice() {
                b":status" => self.answer.http_status = value.parse().ok(),
                b"grpc-status" => self.answer.grpc_status = value.parse().ok(),
                b"grpc-message" => self.answer.grpc_message = value,
                _ => {}
            }
        }
        if self.block_ends_stream {
            self.ended = true;
        }
        Ok(())
    }
}

/// A decoded header field: name and value.
pub type HeaderField = (Vec<u8>, Vec<u8>);

/// HPACK-decodes a header block; a malformed block is an error (a panic inside the decoder is caught and
/// reported the same way).
fn decode_block(
    decoder: &mut loona_hpack::Decoder<'static>,
    block: &[u8],
) -> Result<Vec<HeaderField>, String> {
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decoder.decode(block)));
    match decoded {
        Ok(Ok(fields)) => Ok(fields),
        Ok(Err(e)) => Err(format!("malformed HTTP/2 header block: {e:?}")),
        Err(_) => Err("malformed HTTP/2 header block".to_string()),
    }
}

/// The check's verdict on an answer: passing with `success`, or critical with the reason.
pub fn verdict(answer: &GrpcAnswer) -> Result<(), String> {
    if let Some(code) = answer.http_status.filter(|c| *c != 200) {
        return Err(format!("HTTP status {code}"));
    }
    match answer.grpc_status {
        Some(0) => {}
        Some(code) => {
            return Err(format!(
                "rpc error: code = {code} desc = {}",
                answer.grpc_message
            ))
        }
        None => return Err("the answer has no grpc-status".to_string()),
    }
    let message = first_grpc_message(&answer.body)?;
    match decode_health_response(message)? {
        1 => Ok(()),
        status => Err(format!(
            "service health status is {}",
            serving_status_name(status)
        )),
    }
}

/// Makes the one call over `stream` (already connected, TLS done) and returns the answer.
pub async fn call<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    scheme: &str,
    authority: &str,
    service: &str,
) -> Result<GrpcAnswer, String> {
    let request = request_bytes(scheme, authority, service);
    stream
        .write_all(&request)
        .await
        .map_err(|e| format!("write: {e}"))?;
    stream.flush().await.map_err(|e| format!("write: {e}"))?;
    let mut reader = Reader::default();
    let mut buffer = [0u8; 4096];
    loop {
        let read = stream
            .read(&mut buffer)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if read == 0 {
            return Err("the server closed the connection before answering".to_string());
        }
        reader.feed(&buffer[..read])?;
        let replies = reader.take_replies();
        if !replies.is_empty() {
            stream
                .write_all(&replies)
                .await
                .map_err(|e| format!("write: {e}"))?;
            stream.flush().await.map_err(|e| format!("write: {e}"))?;
        }
        if let Some(answer) = reader.answer() {
            return Ok(answer.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers_frame(flags: u8, fields: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut encoder = loona_hpack::Encoder::new();
        let block = encoder.encode(fields.iter().copied());
        encode_frame(frame_type::HEADERS, flags, STREAM_ID, &block)
    }

    fn health_response(status: u64) -> Vec<u8> {
        let mut message = vec![0x08];
        put_varint(&mut message, status);
        grpc_message(&message)
    }

    #[test]
    fn frames_round_trip_and_are_bounded() {
        let bytes = encode_frame(frame_type::PING, 0, 0, &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&bytes[..9], &[0, 0, 8, 6, 0, 0, 0, 0, 0]);
        let (frame, used) = decode_frame(&bytes).expect("ok").expect("whole");
        assert_eq!((frame.kind, frame.payload.len(), used), (6, 8, 17));
        assert_eq!(decode_frame(&bytes[..10]), Ok(None));
        assert_eq!(decode_frame(&bytes[..3]), Ok(None));
        let huge = [0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1];
        assert!(decode_frame(&huge).is_err());
    }

    #[test]
    fn the_request_is_a_preface_settings_headers_and_one_message() {
        let bytes = request_bytes("http", "127.0.0.1:9", "my.svc");
        assert!(bytes.starts_with(PREFACE));
        let mut rest = &bytes[PREFACE.len()..];
        let mut frames = Vec::new();
        while let Some((frame, used)) = decode_frame(rest).expect("frame") {
            frames.push(frame);
            rest = &rest[used..];
        }
        assert!(rest.is_empty());
        let kinds: Vec<u8> = frames.iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            vec![frame_type::SETTINGS, frame_type::HEADERS, frame_type::DATA]
        );
        let mut decoder = loona_hpack::Decoder::new();
        let fields = decoder.decode(&frames[1].payload).expect("hpack");
        assert!(fields.contains(&(b":path".to_vec(), HEALTH_CHECK_PATH.as_bytes().to_vec())));
        assert!(fields.contains(&(b":authority".to_vec(), b"127.0.0.1:9".to_vec())));
        assert!(fields.contains(&(b"te".to_vec(), b"trailers".to_vec())));
        assert_eq!(frames[2].flags, flag::END_STREAM);
        let message = first_grpc_message(&frames[2].payload).expect("message");
        assert_eq!(message, b"\x0a\x06my.svc");
        // A long value takes a multi-byte length.
        let mut long = Vec::new();
        hpack_string(&mut long, &[b'a'; 300]);
        assert_eq!(&long[..3], &[0x7f, 0xad, 0x01]);
    }

    #[test]
    fn an_answer_is_read_acknowledged_and_judged() {
        let mut server = encode_frame(frame_type::SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]);
        server.extend(encode_frame(frame_type::PING, 0, 0, &[9; 8]));
        server.extend(headers_frame(
            flag::END_HEADERS,
            &[(b":status", b"200"), (b"content-type", b"application/grpc")],
        ));
        server.extend(encode_frame(
            frame_type::DATA,
            0,
            STREAM_ID,
            &health_response(1),
        ));
        server.extend(headers_frame(
            flag::END_HEADERS | flag::END_STREAM,
            &[(b"grpc-status", b"0")],
        ));
        let mut reader = Reader::default();
        // Fed one byte at a time: frames may arrive split anywhere.
        for byte in &server {
            reader.feed(std::slice::from_ref(byte)).expect("feed");
        }
        let replies = reader.take_replies();
        let (ack, used) = decode_frame(&replies).expect("ok").expect("frame");
        assert_eq!((ack.kind, ack.flags), (frame_type::SETTINGS, flag::ACK));
        let (pong, _) = decode_frame(&replies[used..]).expect("ok").expect("frame");
        assert_eq!((pong.kind, pong.flags, pong.payload), (6, 1, vec![9; 8]));
        let answer = reader.answer().expect("ended").clone();
        assert_eq!(
            (answer.http_status, answer.grpc_status),
            (Some(200), Some(0))
        );
        assert_eq!(verdict(&answer), Ok(()));

        let not_serving = GrpcAnswer {
            body: health_response(2),
            ..answer.clone()
        };
        assert_eq!(
            verdict(&not_serving),
            Err("service health status is NOT_SERVING".to_string())
        );
        let unknown_service = GrpcAnswer {
            grpc_status: Some(5),
            grpc_message: "unknown service".to_string(),
            body: Vec::new(),
            ..answer
        };
        assert_eq!(
            verdict(&unknown_service),
            Err("rpc error: code = 5 desc = unknown service".to_string())
        );
    }

    #[test]
    fn a_trailers_only_answer_and_padding_are_understood() {
        let mut reader = Reader::default();
        let block = loona_hpack::Encoder::new().encode([
            (&b":status"[..], &b"200"[..]),
            (&b"grpc-status"[..], &b"12"[..]),
        ]);
        let mut padded = vec![3];
        padded.extend_from_slice(&block);
        padded.extend_from_slice(&[0, 0, 0]);
        let frame = encode_frame(
            frame_type::HEADERS,
            flag::END_HEADERS | flag::END_STREAM | flag::PADDED,
            STREAM_ID,
            &padded,
        );
        reader.feed(&frame).expect("feed");
        assert_eq!(reader.answer().expect("ended").grpc_status, Some(12));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let mut reader = Reader::default();
        let garbage = encode_frame(
            frame_type::HEADERS,
            flag::END_HEADERS,
            STREAM_ID,
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        );
        assert!(reader.feed(&garbage).is_err());
        let mut reader = Reader::default();
        let bad_pad = encode_frame(frame_type::DATA, flag::PADDED, STREAM_ID, &[200, 1, 2]);
        assert!(reader.feed(&bad_pad).is_err());
        let mut reader = Reader::default();
        let reset = encode_frame(frame_type::RST_STREAM, 0, STREAM_ID, &[0, 0, 0, 2]);
        assert!(reader.feed(&reset).unwrap_err().contains("code 2"));
        let mut reader = Reader::default();
        let big = encode_frame(frame_type::DATA, 0, STREAM_ID, &[0; FRAME_BYTES_MAX]);
        for _ in 0..=BODY_BYTES_MAX / FRAME_BYTES_MAX {
            if reader.feed(&big).is_err() {
                return;
            }
        }
        panic!("an oversized body was accepted");
    }

    #[test]
    fn protobuf_fields_decode_and_skip() {
        assert_eq!(decode_health_response(&[]), Ok(0));
        assert_eq!(decode_health_response(&[0x08, 0x01]), Ok(1));
        // An unknown length-delimited field 2, then status 2.
        assert_eq!(
            decode_health_response(&[0x12, 0x02, b'h', b'i', 0x08, 0x02]),
            Ok(2)
        );
        assert!(decode_health_response(&[0x12, 0x05, b'h']).is_err());
        assert!(decode_health_response(&[0x08]).is_err());
        assert!(decode_health_response(&[0x0b]).is_err());
        assert!(first_grpc_message(&[1, 0, 0, 0, 0]).is_err());
        assert!(first_grpc_message(&[0, 0, 0, 0, 9, 1]).is_err());
    }
}
