//! AES-GCM encryption with a keyring, as memberlist's security.go and keyring.go do it (WIRE.md §5).
//!
//! Layout of an encrypted payload: `[vsn][nonce:12][ciphertext][tag:16]`. Version 0 pads the plaintext PKCS#7-style to
//! a multiple of 16 first (1–16 bytes); version 1 does not. Senders use the primary key; receivers try every key,
//! primary first. Nonces come from the caller (the core's seeded PRNG, which the driver seeds from OS entropy).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm};

type Aes192Gcm = AesGcm<aes_gcm::aes::Aes192, aes_gcm::aead::consts::U12>;

/// Bytes of a GCM nonce.
pub const NONCE_BYTES: usize = 12;
/// Bytes of a GCM tag.
pub const TAG_BYTES: usize = 16;
/// Encryption overhead of version 1: version byte, nonce, tag.
pub const OVERHEAD_V1_BYTES: usize = 1 + NONCE_BYTES + TAG_BYTES;
/// Encryption overhead of version 0 at most (adds up to 16 bytes of padding).
pub const OVERHEAD_V0_BYTES: usize = OVERHEAD_V1_BYTES + 16;
/// Keys a keyring holds at most.
pub const KEYS_MAX: usize = 16;

/// Why a keyring operation or a decryption failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecurityError {
    /// A key must be 16, 24 or 32 bytes.
    BadKeyLength(usize),
    /// The key is not installed.
    NoSuchKey,
    /// The primary key cannot be removed.
    RemovePrimary,
    /// The keyring is full.
    TooManyKeys,
    /// The payload is too short or has an unknown version.
    Malformed(String),
    /// No installed key opened the payload.
    NoKeyMatched,
}

impl std::fmt::Display for SecurityError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecurityError::BadKeyLength(n) => write!(f, "key is {n} bytes; must be 16, 24 or 32"),
            SecurityError::NoSuchKey => write!(f, "key is not in the keyring"),
            SecurityError::RemovePrimary => write!(f, "removing the primary key is not allowed"),
            SecurityError::TooManyKeys => write!(f, "keyring holds {KEYS_MAX} keys at most"),
            SecurityError::Malformed(why) => write!(f, "encrypted payload: {why}"),
            SecurityError::NoKeyMatched => write!(f, "no installed key could decrypt the message"),
        }
    }
}

/// Installed keys; the first is the primary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keyring {
    keys: Vec<Vec<u8>>,
}

fn check_key(key: &[u8]) -> Result<(), SecurityError> {
    match key.len() {
        16 | 24 | 32 => Ok(()),
        n => Err(SecurityError::BadKeyLength(n)),
    }
}

impl Keyring {
    /// A keyring whose primary key is `primary`.
    pub fn new(primary: Vec<u8>) -> Result<Keyring, SecurityError> {
        check_key(&primary)?;
        Ok(Keyring {
            keys: vec![primary],
        })
    }

    /// Installed keys, primary first.
    pub fn keys(&self) -> &[Vec<u8>] {
        &self.keys
    }

    /// The primary key.
    pub fn primary(&self) -> &[u8] {
        &self.keys[0]
    }

    /// Installs `key` (a no-op when present).
    pub fn install(&mut self, key: Vec<u8>) -> Result<(), SecurityError> {
        check_key(&key)?;
        if !self.keys.contains(&key) {
            if self.keys.len() >= KEYS_MAX {
                return Err(SecurityError::TooManyKeys);
            }
            self.keys.push(key);
        }
        Ok(())
    }

    /// Makes installed `key` the primary.
    pub fn use_key(&mut self, key: &[u8]) -> Result<(), SecurityError> {
        let i = self
            .keys
            .iter()
            .position(|k| k == key)
            .ok_or(SecurityError::NoSuchKey)?;
        let k = self.keys.remove(i);
        self.keys.insert(0, k);
        Ok(())
    }

    /// Removes `key`, which must not be the primary.
    pub fn remove(&mut self, key: &[u8]) -> Result<(), SecurityError> {
        if self.keys[0] == key {
            return Err(SecurityError::RemovePrimary);
        }
        let before = self.keys.len();
        self.keys.retain(|k| k != key);
        if self.keys.len() == before {
            return Err(SecurityError::NoSuchKey);
        }
        Ok(())
    }
}

fn seal(key: &[u8], nonce: &[u8; NONCE_BYTES], msg: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    let payload = Payload { msg, aad };
    let nonce = nonce.into();
    match key.len() {
        16 => Aes128Gcm::new_from_slice(key)
            .ok()?
            .encrypt(nonce, payload)
            .ok(),
        24 => Aes192Gcm::new_from_slice(key)
            .ok()?
            .encrypt(nonce, payload)
            .ok(),
        32 => Aes256Gcm::new_from_slice(key)
            .ok()?
            .encrypt(nonce, payload)
            .ok(),
        _ => None,
    }
}

fn open(key: &[u8], nonce: &[u8; NONCE_BYTES], msg: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    let payload = Payload { msg, aad };
    let nonce = nonce.into();
    match key.len() {
        16 => Aes128Gcm::new_from_slice(key)
            .ok()?
            .decrypt(nonce, payload)
            .ok(),
        24 => Aes192Gcm::new_from_slice(key)
            .ok()?
            .decrypt(nonce, payload)
            .ok(),
        32 => Aes256Gcm::new_from_slice(key)
            .ok()?
            .decrypt(nonce, payload)
            .ok(),
        _ => None,
    }
}

/// Encrypts `plain` with `key` as version `vsn` (0 or 1; anything else is treated as 1) and `aad`.
pub fn encrypt(
    key: &[u8],
    vsn: u8,
    nonce: [u8; NONCE_BYTES],
    plain: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, SecurityError> {
    check_key(key)?;
    let vsn = if vsn == 0 { 0 } else { 1 };
    let mut padded;
    let msg = if vsn == 0 {
        let pad = 16 - plain.len() % 16;
        padded = plain.to_vec();
        padded.extend(std::iter::repeat_n(pad as u8, pad));
        &padded[..]
    } else {
        plain
    };
    let sealed = seal(key, &nonce, msg, aad)
        .ok_or_else(|| SecurityError::Malformed("encryption failed".into()))?;
    let mut out = Vec::with_capacity(1 + NONCE_BYTES + sealed.len());
    out.push(vsn);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Decrypts `payload` with each of `keys` in turn (version 0 or 1), removing version-0 padding.
pub fn decrypt(keys: &[Vec<u8>], payload: &[u8], aad: &[u8]) -> Result<Vec<u8>, SecurityError> {
    let Some(&vsn) = payload.first() else {
        return Err(SecurityError::Malformed("empty".into()));
    };
    let min = match vsn {
        0 => OVERHEAD_V0_BYTES,
        1 => OVERHEAD_V1_BYTES,
        v => return Err(SecurityError::Malformed(format!("unknown version {v}"))),
    };
    if payload.len() < min {
        return Err(SecurityError::Malformed(format!(
            "{} bytes is shorter than the {min}-byte minimum",
            payload.len()
        )));
    }
    let mut nonce = [0u8; NONCE_BYTES];
    nonce.copy_from_slice(&payload[1..1 + NONCE_BYTES]);
    let body = &payload[1 + NONCE_BYTES..];
    for key in keys {
        if let Some(mut plain) = open(key, &nonce, body, aad) {
            if vsn == 0 {
                let pad = plain.last().copied().unwrap_or(0) as usize;
                if pad == 0 || pad > 16 || pad > plain.len() {
                    return Err(SecurityError::Malformed("bad padding".into()));
                }
                plain.truncate(plain.len() - pad);
            }
            return Ok(plain);
        }
    }
    Err(SecurityError::NoKeyMatched)
}
