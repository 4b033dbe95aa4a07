//! A small msgpack writer and reader following go-msgpack 0.5.5's conventions (WIRE.md §2).
//!
//! serde cannot carry Go's `[]byte` fields, which go out under *string* markers with binary content, so bodies are
//! written field by field with [`Writer`] and read into a bounded [`Value`] tree. The reader tells a truncated
//! buffer ([`ReadError::Incomplete`]) from a malformed one, which stream framing needs.

/// Deepest nesting a decoded value may have.
pub const DEPTH_MAX: usize = 16;

/// Why bytes could not be read as msgpack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The buffer ends inside a value: more bytes may complete it.
    Incomplete,
    /// The bytes are not valid msgpack (or break a limit).
    Malformed(String),
}

/// A decoded msgpack value. Strings and binaries are both raw bytes, as go-msgpack reads them.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `nil`.
    Nil,
    /// A boolean.
    Bool(bool),
    /// A non-negative integer.
    Uint(u64),
    /// A negative integer.
    Int(i64),
    /// A float (32-bit ones are widened).
    Float(f64),
    /// A string or binary.
    Bytes(Vec<u8>),
    /// An array.
    Array(Vec<Value>),
    /// A map, in wire order.
    Map(Vec<(Value, Value)>),
}

impl Value {
    /// The value under string key `key`, when this is a map holding it (keys compare case-sensitively).
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries.iter().find_map(|(k, v)| match k {
                Value::Bytes(b) if b == key.as_bytes() => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }

    /// An unsigned integer (0 for nil; an error for anything else or a negative number).
    pub fn as_u64(&self) -> Result<u64, ReadError> {
        match self {
            Value::Nil => Ok(0),
            Value::Uint(n) => Ok(*n),
            Value::Int(n) if *n >= 0 => Ok(*n as u64),
            other => Err(malformed(format!(
                "expected an unsigned integer, got {other:?}"
            ))),
        }
    }

    /// Bytes of a string or binary (empty for nil).
    pub fn as_bytes(&self) -> Result<&[u8], ReadError> {
        match self {
            Value::Nil => Ok(&[]),
            Value::Bytes(b) => Ok(b),
            other => Err(malformed(format!("expected bytes, got {other:?}"))),
        }
    }

    /// A boolean (false for nil).
    pub fn as_bool(&self) -> Result<bool, ReadError> {
        match self {
            Value::Nil => Ok(false),
            Value::Bool(b) => Ok(*b),
            Value::Uint(n) => Ok(*n != 0),
            other => Err(malformed(format!("expected a boolean, got {other:?}"))),
        }
    }
}

fn malformed(reason: String) -> ReadError {
    ReadError::Malformed(reason)
}

/// Field `key` of map `v` as u64 (0 when absent), checked to fit `max`.
pub fn field_uint(v: &Value, key: &str, max: u64) -> Result<u64, ReadError> {
    let n = match v.get(key) {
        Some(x) => x.as_u64()?,
        None => 0,
    };
    if n > max {
        return Err(malformed(format!("field {key} = {n} is above {max}")));
    }
    Ok(n)
}

/// Field `key` of map `v` as bytes (empty when absent).
pub fn field_bytes(v: &Value, key: &str) -> Result<Vec<u8>, ReadError> {
    match v.get(key) {
        Some(x) => Ok(x.as_bytes()?.to_vec()),
        None => Ok(Vec::new()),
    }
}

/// Field `key` of map `v` as a UTF-8 string (empty when absent).
pub fn field_str(v: &Value, key: &str) -> Result<String, ReadError> {
    let bytes = field_bytes(v, key)?;
    String::from_utf8(bytes).map_err(|_| malformed(format!("field {key} is not UTF-8")))
}

/// Field `key` of map `v` as a boolean (false when absent).
pub fn field_bool(v: &Value, key: &str) -> Result<bool, ReadError> {
    match v.get(key) {
        Some(x) => x.as_bool(),
        None => Ok(false),
    }
}

/// Reads one value from the start of `buf`, returning it and the bytes it used.
pub fn read(buf: &[u8]) -> Result<(Value, usize), ReadError> {
    let mut r = Reader { buf, pos: 0 };
    let v = r.value(0)?;
    Ok((v, r.pos))
}

/// Reads one value that must fill all of `buf`.
pub fn read_exact(buf: &[u8]) -> Result<Value, ReadError> {
    let (v, used) = read(buf)?;
    if used != buf.len() {
        return Err(malformed(format!(
            "{} trailing bytes after a msgpack value",
            buf.len() - used
        )));
    }
    Ok(v)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], ReadError> {
        let end = self.pos.checked_add(n).ok_or(ReadError::Incomplete)?;
        if end > self.buf.len() {
            return Err(ReadError::Incomplete);
        }
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn be(&mut self, n: usize) -> Result<u64, ReadError> {
        Ok(self.take(n)?.iter().fold(0u64, |a, b| (a << 8) | *b as u64))
    }

    /// A container of `n` elements needs at least `n` more bytes; refusing early bounds allocation.
    fn check_len(&self, n: u64, per_item: u64) -> Result<usize, ReadError> {
        let left = (self.buf.len() - self.pos) as u64;
        if n.saturating_mul(per_item) > left {
            return Err(ReadError::Incomplete);
        }
        Ok(n as usize)
    }

    fn value(&mut self, depth: usize) -> Result<Value, ReadError> {
        if depth > DEPTH_MAX {
            return Err(malformed("msgpack nested too deeply".into()));
        }
        let b = self.take(1)?[0];
        Ok(match b {
            0x00..=0x7f => Value::Uint(b as u64),
            0x80..=0x8f => self.map((b & 0x0f) as u64, depth)?,
            0x90..=0x9f => self.array((b & 0x0f) as u64, depth)?,
            0xa0..=0xbf => self.bytes((b & 0x1f) as u64)?,
            0xc0 => Value::Nil,
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4 | 0xd9 => {
                let n = self.be(1)?;
                self.bytes(n)?
            }
            0xc5 | 0xda => {
                let n = self.be(2)?;
                self.bytes(n)?
            }
            0xc6 | 0xdb => {
                let n = self.be(4)?;
                self.bytes(n)?
            }
            0xc7..=0xc9 => {
                let width = [1, 2, 4][(b - 0xc7) as usize];
                let n = self.be(width)?;
                let n = self.check_len(n + 1, 1)?;
                self.take(n)?;
                Value::Nil
            }
            0xca => Value::Float(f32::from_bits(self.be(4)? as u32) as f64),
            0xcb => Value::Float(f64::from_bits(self.be(8)?)),
            0xcc => Value::Uint(self.be(1)?),
            0xcd => Value::Uint(self.be(2)?),
            0xce => Value::Uint(self.be(4)?),
            0xcf => Value::Uint(self.be(8)?),
            0xd0 => Value::Int(self.be(1)? as u8 as i8 as i64),
            0xd1 => Value::Int(self.be(2)? as u16 as i16 as i64),
            0xd2 => Value::Int(self.be(4)? as u32 as i32 as i64),
            0xd3 => Value::Int(self.be(8)? as i64),
            0xd4..=0xd8 => {
                let n = [2, 3, 5, 9, 17][(b - 0xd4) as usize];
                self.take(n)?;
                Value::Nil
            }
            0xdc => {
                let n = self.be(2)?;
                self.array(n, depth)?
            }
            0xdd => {
                let n = self.be(4)?;
                self.array(n, depth)?
            }
            0xde => {
                let n = self.be(2)?;
                self.map(n, depth)?
            }
            0xdf => {
                let n = self.be(4)?;
                self.map(n, depth)?
            }
            0xe0..=0xff => Value::Int(b as i8 as i64),
            0xc1 => return Err(malformed("msgpack byte 0xc1 is never used".into())),
        })
    }

    fn bytes(&mut self, n: u64) -> Result<Value, ReadError> {
        let n = self.check_len(n, 1)?;
        Ok(Value::Bytes(self.take(n)?.to_vec()))
    }

    fn array(&mut self, n: u64, depth: usize) -> Result<Value, ReadError> {
        let n = self.check_len(n, 1)?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(self.value(depth + 1)?);
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, n: u64, depth: usize) -> Result<Value, ReadError> {
        let n = self.check_len(n, 2)?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            let k = self.value(depth + 1)?;
            let v = self.value(depth + 1)?;
            items.push((k, v));
        }
        Ok(Value::Map(items))
    }
}

/// Writes msgpack the way go-msgpack 0.5.5 does: smallest unsigned forms, strings and `[]byte` under str markers
/// (never str8 or bin).
#[derive(Clone, Debug, Default)]
pub struct Writer {
    /// The bytes written so far.
    pub buf: Vec<u8>,
}

impl Writer {
    /// A writer that appends to `buf`.
    pub fn new(buf: Vec<u8>) -> Writer {
        Writer { buf }
    }

    /// A map header for `n` entries.
    pub fn map(&mut self, n: usize) -> &mut Self {
        if n < 16 {
            self.buf.push(0x80 | n as u8);
        } else if n <= u16::MAX as usize {
            self.buf.push(0xde);
            self.buf.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            self.buf.push(0xdf);
            self.buf.extend_from_slice(&(n as u32).to_be_bytes());
        }
        self
    }

    /// An array header for `n` items.
    pub fn array(&mut self, n: usize) -> &mut Self {
        if n < 16 {
            self.buf.push(0x90 | n as u8);
        } else if n <= u16::MAX as usize {
            self.buf.push(0xdc);
            self.buf.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            self.buf.push(0xdd);
            self.buf.extend_from_slice(&(n as u32).to_be_bytes());
        }
        self
    }

    /// Raw bytes under a string marker (fixstr, str16, str32).
    pub fn raw(&mut self, b: &[u8]) -> &mut Self {
        let n = b.len();
        if n < 32 {
            self.buf.push(0xa0 | n as u8);
        } else if n <= u16::MAX as usize {
            self.buf.push(0xda);
            self.buf.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            self.buf.push(0xdb);
            self.buf.extend_from_slice(&(n as u32).to_be_bytes());
        }
        self.buf.extend_from_slice(b);
        self
    }

    /// A string.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.raw(s.as_bytes())
    }

    /// Bytes, or nil when empty (Go's nil slice).
    pub fn raw_or_nil(&mut self, b: &[u8]) -> &mut Self {
        if b.is_empty() {
            self.nil()
        } else {
            self.raw(b)
        }
    }

    /// `nil`.
    pub fn nil(&mut self) -> &mut Self {
        self.buf.push(0xc0);
        self
    }

    /// A boolean.
    pub fn bool(&mut self, b: bool) -> &mut Self {
        self.buf.push(if b { 0xc3 } else { 0xc2 });
        self
    }

    /// An unsigned integer in its smallest form.
    pub fn uint(&mut self, n: u64) -> &mut Self {
        if n < 128 {
            self.buf.push(n as u8);
        } else if n <= u8::MAX as u64 {
            self.buf.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= u16::MAX as u64 {
            self.buf.push(0xcd);
            self.buf.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= u32::MAX as u64 {
            self.buf.push(0xce);
            self.buf.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            self.buf.push(0xcf);
            self.buf.extend_from_slice(&n.to_be_bytes());
        }
        self
    }

    /// A signed integer (non-negative ones as unsigned, as go-msgpack does).
    pub fn int(&mut self, n: i64) -> &mut Self {
        if n >= 0 {
            return self.uint(n as u64);
        }
        if n >= -32 {
            self.buf.push(n as i8 as u8);
        } else if n >= i8::MIN as i64 {
            self.buf.extend_from_slice(&[0xd0, n as i8 as u8]);
        } else if n >= i16::MIN as i64 {
            self.buf.push(0xd1);
            self.buf.extend_from_slice(&(n as i16).to_be_bytes());
        } else if n >= i32::MIN as i64 {
            self.buf.push(0xd2);
            self.buf.extend_from_slice(&(n as i32).to_be_bytes());
        } else {
            self.buf.push(0xd3);
            self.buf.extend_from_slice(&n.to_be_bytes());
        }
        self
    }

    /// A 64-bit float.
    pub fn f64(&mut self, x: f64) -> &mut Self {
        self.buf.push(0xcb);
        self.buf.extend_from_slice(&x.to_bits().to_be_bytes());
        self
    }
}
