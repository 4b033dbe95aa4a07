//! Command and outcome bytes: a format version byte, then MessagePack (`rmp-serde`). Decoding bad bytes is an
//! error, never a panic, and never allocates more than the input justifies.

use super::{Command, Outcome};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::Cursor;

/// The format version this code writes and reads (the first byte of every command and outcome).
pub const CODEC_VERSION: u8 = 1;

/// Encodes a command for the Raft log.
pub fn encode_command(command: &Command) -> Vec<u8> {
    encode(command)
}

/// Decodes a command written by [`encode_command`].
pub fn decode_command(bytes: &[u8]) -> Result<Command, String> {
    decode(bytes, "command")
}

/// Encodes an outcome for the proposer.
pub fn encode_outcome(outcome: &Outcome) -> Vec<u8> {
    encode(outcome)
}

/// Decodes an outcome written by [`encode_outcome`].
pub fn decode_outcome(bytes: &[u8]) -> Result<Outcome, String> {
    decode(bytes, "outcome")
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![CODEC_VERSION];
    // Writing to a Vec fails only on a type serde cannot express (a map with non-string keys in some
    // formats); ours have none, so an error here is a bug, reported as an empty payload that will not decode.
    if rmp_serde::encode::write(&mut out, value).is_err() {
        out.truncate(1);
    }
    out
}

fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, String> {
    let (version, body) = bytes.split_first().ok_or_else(|| format!("empty {what}"))?;
    if *version != CODEC_VERSION {
        return Err(format!(
            "{what} format version {version}, expected {CODEC_VERSION}"
        ));
    }
    let mut de = rmp_serde::Deserializer::new(Cursor::new(body));
    let value = T::deserialize(&mut de).map_err(|e| format!("bad {what}: {e}"))?;
    let used = de.position();
    if used != body.len() as u64 {
        return Err(format!(
            "bad {what}: {} trailing bytes",
            body.len() as u64 - used
        ));
    }
    Ok(value)
}

/// Accepts a byte string as MessagePack `bin` (what we write) or as an array of numbers.
struct BytesVisitor;

impl<'de> serde::de::Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut out = Vec::new();
        while let Some(b) = seq.next_element::<u8>()? {
            out.push(b);
        }
        Ok(out)
    }
}

/// Serde for `Vec<u8>` as a byte string (MessagePack `bin`, not an array of numbers).
pub(crate) mod vec_bytes {
    use serde::{Deserializer, Serializer};

    /// Writes the bytes as one byte string.
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    /// Reads a byte string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_bytes(super::BytesVisitor)
    }
}

/// Serde for `Arc<[u8]>` as a byte string.
pub(crate) mod shared_bytes {
    use serde::{Deserializer, Serializer};
    use std::sync::Arc;

    /// Writes the bytes as one byte string.
    pub fn serialize<S: Serializer>(v: &Arc<[u8]>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    /// Reads a byte string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<[u8]>, D::Error> {
        d.deserialize_bytes(super::BytesVisitor).map(Arc::from)
    }
}
