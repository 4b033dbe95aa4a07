//! Go `compress/lzw` in LSB order with 8-bit literals (the GIF flavour memberlist uses), both ways (WIRE.md §1.5).
//!
//! Codes start 9 bits wide; 256 clears, 257 ends the stream, the first table entry is 258. The width grows when
//! the next code reaches 2^width, up to 12 bits; the encoder clears and restarts once its next code would be 4095.

use std::collections::BTreeMap;

const CLEAR: u32 = 256;
const EOF: u32 = 257;
const WIDTH_MAX: u32 = 12;
const CODES_MAX: u32 = 1 << WIDTH_MAX;
const INVALID: u32 = u32::MAX;

/// Why an LZW stream could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LzwError {
    /// A code names no table entry yet.
    InvalidCode(u32),
    /// The decoded bytes would exceed the caller's limit.
    TooLarge(usize),
    /// The stream ends without an end code.
    Truncated,
}

/// Decodes `input`, refusing to produce more than `output_bytes_max` bytes.
pub fn decompress(input: &[u8], output_bytes_max: usize) -> Result<Vec<u8>, LzwError> {
    let mut prefix = vec![0u16; CODES_MAX as usize];
    let mut suffix = vec![0u8; CODES_MAX as usize];
    let mut out: Vec<u8> = Vec::new();
    let mut scratch: Vec<u8> = Vec::with_capacity(CODES_MAX as usize);
    let (mut width, mut hi, mut overflow, mut last) = (9u32, EOF, 1u32 << 9, INVALID);
    let (mut bits, mut nbits, mut pos) = (0u32, 0u32, 0usize);
    loop {
        while nbits < width {
            let Some(&b) = input.get(pos) else {
                return Err(LzwError::Truncated);
            };
            pos += 1;
            bits |= (b as u32) << nbits;
            nbits += 8;
        }
        let code = bits & ((1 << width) - 1);
        bits >>= width;
        nbits -= width;
        if code < CLEAR {
            out.push(code as u8);
            if last != INVALID {
                suffix[hi as usize] = code as u8;
                prefix[hi as usize] = last as u16;
            }
        } else if code == CLEAR {
            width = 9;
            hi = EOF;
            overflow = 1 << width;
            last = INVALID;
            continue;
        } else if code == EOF {
            return Ok(out);
        } else if code <= hi {
            scratch.clear();
            let mut c = code;
            if code == hi {
                if last == INVALID {
                    return Err(LzwError::InvalidCode(code));
                }
                // KwKwK: the last expansion followed by its own first byte.
                let mut head = last;
                while head >= CLEAR {
                    head = prefix[head as usize] as u32;
                }
                scratch.push(head as u8);
                c = last;
            }
            while c >= CLEAR {
                scratch.push(suffix[c as usize]);
                c = prefix[c as usize] as u32;
            }
            scratch.push(c as u8);
            out.extend(scratch.iter().rev());
            if last != INVALID {
                suffix[hi as usize] = c as u8;
                prefix[hi as usize] = last as u16;
            }
        } else {
            return Err(LzwError::InvalidCode(code));
        }
        if out.len() > output_bytes_max {
            return Err(LzwError::TooLarge(output_bytes_max));
        }
        last = code;
        hi += 1;
        if hi >= overflow {
            if width == WIDTH_MAX {
                last = INVALID;
                hi -= 1;
            } else {
                width += 1;
                overflow <<= 1;
            }
        }
    }
}

struct BitWriter {
    out: Vec<u8>,
    bits: u32,
    nbits: u32,
}

impl BitWriter {
    fn write(&mut self, code: u32, width: u32) {
        self.bits |= code << self.nbits;
        self.nbits += width;
        while self.nbits >= 8 {
            self.out.push(self.bits as u8);
            self.bits >>= 8;
            self.nbits -= 8;
        }
    }
}

/// Encodes `input` as Go 1.19's writer does: a leading clear code, an end code, LSB bit order.
pub fn compress(input: &[u8]) -> Vec<u8> {
    let mut w = BitWriter {
        out: Vec::with_capacity(input.len() / 2 + 4),
        bits: 0,
        nbits: 0,
    };
    let (mut width, mut hi, mut overflow) = (9u32, EOF, 1u32 << 9);
    let mut table: BTreeMap<u32, u32> = BTreeMap::new();
    w.write(CLEAR, width);
    let Some((&first, rest)) = input.split_first() else {
        w.write(EOF, width);
        if w.nbits > 0 {
            w.out.push(w.bits as u8);
        }
        return w.out;
    };
    let mut code = first as u32;
    // Advances the next implied code; true when the table was cleared.
    let inc_hi = |w: &mut BitWriter,
                  width: &mut u32,
                  hi: &mut u32,
                  overflow: &mut u32,
                  table: &mut BTreeMap<u32, u32>| {
        *hi += 1;
        if *hi == *overflow {
            *width += 1;
            *overflow <<= 1;
        }
        if *hi == CODES_MAX - 1 {
            w.write(CLEAR, *width);
            *width = 9;
            *hi = EOF;
            *overflow = 1 << 9;
            table.clear();
            return true;
        }
        false
    };
    for &x in rest {
        let literal = x as u32;
        let key = (code << 8) | literal;
        if let Some(&t) = table.get(&key) {
            code = t;
            continue;
        }
        w.write(code, width);
        code = literal;
        if inc_hi(&mut w, &mut width, &mut hi, &mut overflow, &mut table) {
            continue;
        }
        table.insert(key, hi);
    }
    w.write(code, width);
    inc_hi(&mut w, &mut width, &mut hi, &mut overflow, &mut table);
    w.write(EOF, width);
    if w.nbits > 0 {
        w.out.push(w.bits as u8);
    }
    w.out
}
