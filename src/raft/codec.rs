//! Byte encodings of what Raft stores and sends: entry payloads (the log frame carries index and term) and
//! configurations (also a snapshot's meta section). Little-endian, length-prefixed, bounded; decoding bad bytes
//! is an error, never a panic.

use super::types::{Configuration, Payload, Server, ServerId, Suffrage};

/// Members a configuration may hold.
pub const CONFIG_SERVERS_MAX: usize = 1024;
/// Bytes an address may take.
pub const ADDRESS_BYTES_MAX: usize = 1024;

const TAG_NOOP: u8 = 0;
const TAG_COMMAND: u8 = 1;
const TAG_CONFIG: u8 = 2;

/// Encodes a payload: a tag byte, then the command bytes or the configuration.
pub fn encode_payload(payload: &Payload, out: &mut Vec<u8>) {
    match payload {
        Payload::Noop => out.push(TAG_NOOP),
        Payload::Command(bytes) => {
            out.push(TAG_COMMAND);
            out.extend_from_slice(bytes);
        }
        Payload::Config(config) => {
            out.push(TAG_CONFIG);
            encode_configuration(config, out);
        }
    }
}

/// Decodes a payload written by [`encode_payload`].
pub fn decode_payload(bytes: &[u8]) -> Result<Payload, String> {
    match bytes.split_first() {
        Some((&TAG_NOOP, [])) => Ok(Payload::Noop),
        Some((&TAG_NOOP, _)) => Err("no-op entry with trailing bytes".to_string()),
        Some((&TAG_COMMAND, rest)) => Ok(Payload::Command(rest.into())),
        Some((&TAG_CONFIG, rest)) => decode_configuration(rest).map(Payload::Config),
        Some((tag, _)) => Err(format!("unknown entry tag {tag}")),
        None => Err("empty entry".to_string()),
    }
}

/// Encodes a configuration: `u32 count`, then per server `u64 id | u8 voter | u32 len | address`.
pub fn encode_configuration(config: &Configuration, out: &mut Vec<u8>) {
    out.extend_from_slice(&(config.servers.len() as u32).to_le_bytes());
    for s in &config.servers {
        out.extend_from_slice(&s.id.0.to_le_bytes());
        out.push(u8::from(s.suffrage == Suffrage::Voter));
        out.extend_from_slice(&(s.address.len() as u32).to_le_bytes());
        out.extend_from_slice(s.address.as_bytes());
    }
}

/// Decodes a configuration written by [`encode_configuration`]; the bytes must be consumed exactly.
pub fn decode_configuration(bytes: &[u8]) -> Result<Configuration, String> {
    let mut r = Reader { bytes, at: 0 };
    let count = r.u32()? as usize;
    if count > CONFIG_SERVERS_MAX {
        return Err(format!(
            "configuration of {count} servers, over {CONFIG_SERVERS_MAX}"
        ));
    }
    let mut servers = Vec::with_capacity(count);
    for _ in 0..count {
        let id = ServerId(r.u64()?);
        let suffrage = match r.u8()? {
            1 => Suffrage::Voter,
            0 => Suffrage::Nonvoter,
            other => return Err(format!("bad suffrage {other}")),
        };
        let len = r.u32()? as usize;
        if len > ADDRESS_BYTES_MAX {
            return Err(format!("address of {len} bytes, over {ADDRESS_BYTES_MAX}"));
        }
        let address = String::from_utf8(r.take(len)?.to_vec())
            .map_err(|_| "address is not UTF-8".to_string())?;
        servers.push(Server {
            id,
            suffrage,
            address,
        });
    }
    if r.at != bytes.len() {
        return Err(format!(
            "{} trailing bytes after the configuration",
            bytes.len() - r.at
        ));
    }
    Ok(Configuration::new(servers))
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| format!("cut short at byte {} (wanted {n} more)", self.at))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Configuration {
        Configuration::new(vec![
            Server {
                id: ServerId(3),
                suffrage: Suffrage::Voter,
                address: "127.0.0.3:8300".into(),
            },
            Server {
                id: ServerId(1),
                suffrage: Suffrage::Nonvoter,
                address: "127.0.0.1:8300".into(),
            },
        ])
    }

    #[test]
    fn payloads_round_trip() {
        for p in [
            Payload::Noop,
            Payload::Command(b"put k v".as_slice().into()),
            Payload::Config(config()),
        ] {
            let mut b = Vec::new();
            encode_payload(&p, &mut b);
            assert_eq!(decode_payload(&b), Ok(p));
        }
    }

    #[test]
    fn bad_bytes_are_errors() {
        let mut b = Vec::new();
        encode_payload(&Payload::Config(config()), &mut b);
        for cut in 1..b.len() {
            assert!(decode_payload(&b[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode_payload(&[9]).is_err());
        assert!(decode_payload(&[]).is_err());
        assert!(decode_payload(&[TAG_CONFIG, 0xFF, 0xFF, 0xFF, 0xFF]).is_err());
    }
}
