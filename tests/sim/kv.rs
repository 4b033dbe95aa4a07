//! The simulator's replicated state machine: a map of u64 keys to u64 values, with write and compare-and-set
//! commands, and its snapshot encoding.

use std::collections::BTreeMap;

/// A state-machine command, tagged with the client operation it carries out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Set `key` to `value`.
    Write { op: u64, key: u64, value: u64 },
    /// Set `key` to `new` if it holds `expected`.
    Cas {
        op: u64,
        key: u64,
        expected: Option<u64>,
        new: u64,
    },
}

impl Command {
    /// The command's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(34);
        match *self {
            Command::Write { op, key, value } => {
                b.push(1);
                for v in [op, key, value] {
                    b.extend_from_slice(&v.to_le_bytes());
                }
            }
            Command::Cas {
                op,
                key,
                expected,
                new,
            } => {
                b.push(2);
                for v in [op, key, expected.map_or(0, |e| e + 1), new] {
                    b.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        b
    }

    /// Decodes [`Command::encode`]'s bytes.
    pub fn decode(b: &[u8]) -> Option<Command> {
        let word = |i: usize| -> Option<u64> {
            Some(u64::from_le_bytes(
                b.get(1 + 8 * i..9 + 8 * i)?.try_into().ok()?,
            ))
        };
        match b.first()? {
            1 if b.len() == 25 => Some(Command::Write {
                op: word(0)?,
                key: word(1)?,
                value: word(2)?,
            }),
            2 if b.len() == 33 => {
                let expected = word(2)?.checked_sub(1);
                Some(Command::Cas {
                    op: word(0)?,
                    key: word(1)?,
                    expected,
                    new: word(3)?,
                })
            }
            _ => None,
        }
    }

    /// The client operation id.
    pub fn op(&self) -> u64 {
        match *self {
            Command::Write { op, .. } | Command::Cas { op, .. } => op,
        }
    }
}

/// The key/value map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kv {
    map: BTreeMap<u64, u64>,
}

impl Kv {
    /// Applies a command; returns whether it took effect (a CAS may not).
    pub fn apply(&mut self, cmd: &Command) -> bool {
        match *cmd {
            Command::Write { key, value, .. } => {
                self.map.insert(key, value);
                true
            }
            Command::Cas {
                key, expected, new, ..
            } => {
                if self.map.get(&key).copied() == expected {
                    self.map.insert(key, new);
                    true
                } else {
                    false
                }
            }
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: u64) -> Option<u64> {
        self.map.get(&key).copied()
    }

    /// The snapshot bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(16 * self.map.len());
        for (k, v) in &self.map {
            b.extend_from_slice(&k.to_le_bytes());
            b.extend_from_slice(&v.to_le_bytes());
        }
        b
    }

    /// Decodes [`Kv::encode`]'s bytes.
    pub fn decode(b: &[u8]) -> Option<Kv> {
        if !b.len().is_multiple_of(16) {
            return None;
        }
        let map = b
            .chunks_exact(16)
            .map(|c| {
                let k = u64::from_le_bytes(c[..8].try_into().expect("8 bytes"));
                let v = u64::from_le_bytes(c[8..].try_into().expect("8 bytes"));
                (k, v)
            })
            .collect();
        Some(Kv { map })
    }
}
