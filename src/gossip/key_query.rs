//! Serf's internal keyring queries (serf `internal_query.go` / `keymanager.go` behaviour): `_serf_list-keys`,
//! `_serf_install-key`, `_serf_use-key`, `_serf_remove-key`. The request payload is `[7][msgpack {Key: bin}]`
//! (message type keyRequest), every member answers `[8][msgpack {Result, Message, Keys, PrimaryKey}]` (type
//! keyResponse) with its keyring after the operation; the originator counts the answers.

use super::msgpack::{field_bool, field_str, read_exact, Value, Writer};
use super::security::Keyring;
use base64::Engine;

/// The name prefix of serf's internal queries.
pub const INTERNAL_PREFIX: &str = "_serf_";
/// Message type of a key request payload.
pub const KEY_REQUEST: u8 = 7;
/// Message type of a key response payload.
pub const KEY_RESPONSE: u8 = 8;

/// A keyring operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyOp {
    /// List the keys.
    List,
    /// Add a key.
    Install(Vec<u8>),
    /// Make a key the primary one.
    Use(Vec<u8>),
    /// Drop a key (not the primary one).
    Remove(Vec<u8>),
}

impl KeyOp {
    /// The query name carrying this operation.
    pub fn query_name(&self) -> String {
        let op = match self {
            KeyOp::List => "list-keys",
            KeyOp::Install(_) => "install-key",
            KeyOp::Use(_) => "use-key",
            KeyOp::Remove(_) => "remove-key",
        };
        format!("{INTERNAL_PREFIX}{op}")
    }

    /// The query payload (`[7][{Key}]`; empty for a list).
    pub fn payload(&self) -> Vec<u8> {
        let key = match self {
            KeyOp::List => return Vec::new(),
            KeyOp::Install(k) | KeyOp::Use(k) | KeyOp::Remove(k) => k,
        };
        let mut w = Writer::new(vec![KEY_REQUEST]);
        w.map(1).str("Key").raw(key);
        w.buf
    }

    /// The operation a query asks for, when it is a key query.
    pub fn from_query(name: &str, payload: &[u8]) -> Option<Result<KeyOp, String>> {
        let op = name.strip_prefix(INTERNAL_PREFIX)?;
        if op == "list-keys" {
            return Some(Ok(KeyOp::List));
        }
        if !matches!(op, "install-key" | "use-key" | "remove-key") {
            return None;
        }
        let key = match payload.split_first() {
            Some((&KEY_REQUEST, body)) => read_exact(body)
                .map_err(|e| format!("bad key request: {e:?}"))
                .and_then(|v| match v.get("Key") {
                    Some(Value::Bytes(k)) => Ok(k.clone()),
                    _ => Err("key request without a key".to_string()),
                }),
            _ => Err("bad key request".to_string()),
        };
        Some(key.map(|k| match op {
            "install-key" => KeyOp::Install(k),
            "use-key" => KeyOp::Use(k),
            _ => KeyOp::Remove(k),
        }))
    }
}

/// One member's answer to a key query.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct KeyResponse {
    /// The operation worked there.
    pub result: bool,
    /// Why not.
    pub message: String,
    /// Its keys (base64) after the operation.
    pub keys: Vec<String>,
    /// Its primary key (base64).
    pub primary_key: String,
}

impl KeyResponse {
    /// `[8][msgpack]`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(vec![KEY_RESPONSE]);
        w.map(4).str("Result").bool(self.result);
        w.str("Message").str(&self.message);
        w.str("Keys").array(self.keys.len());
        for k in &self.keys {
            w.str(k);
        }
        w.str("PrimaryKey").str(&self.primary_key);
        w.buf
    }

    /// Decodes `[8][msgpack]`.
    pub fn decode(bytes: &[u8]) -> Result<KeyResponse, String> {
        let Some((&KEY_RESPONSE, body)) = bytes.split_first() else {
            return Err("not a key response".into());
        };
        let v = read_exact(body).map_err(|e| format!("bad key response: {e:?}"))?;
        let keys = match v.get("Keys") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|k| {
                    k.as_bytes()
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                        .map_err(|e| format!("{e:?}"))
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => Vec::new(),
        };
        let text = |key| field_str(&v, key).map_err(|e| format!("{e:?}"));
        Ok(KeyResponse {
            result: field_bool(&v, "Result").map_err(|e| format!("{e:?}"))?,
            message: text("Message")?,
            keys,
            primary_key: text("PrimaryKey")?,
        })
    }
}

/// Carries out `op` on this member's keyring and says how it went, as serf's key query handler answers.
pub fn apply(keyring: Option<&mut Keyring>, op: &KeyOp) -> KeyResponse {
    let Some(keyring) = keyring else {
        return KeyResponse {
            message: "Keyring is empty (encryption not enabled)".into(),
            ..KeyResponse::default()
        };
    };
    let outcome = match op {
        KeyOp::List => Ok(()),
        KeyOp::Install(k) => keyring.install(k.clone()).map_err(|e| e.to_string()),
        KeyOp::Use(k) => keyring.use_key(k).map_err(|e| e.to_string()),
        KeyOp::Remove(k) => keyring.remove(k).map_err(|e| e.to_string()),
    };
    let engine = &base64::engine::general_purpose::STANDARD;
    KeyResponse {
        result: outcome.is_ok(),
        message: outcome.err().unwrap_or_default(),
        keys: keyring.keys().iter().map(|k| engine.encode(k)).collect(),
        primary_key: engine.encode(keyring.primary()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_queries_round_trip_and_apply_to_the_keyring() {
        let op = KeyOp::Install(vec![7; 16]);
        assert_eq!(op.query_name(), "_serf_install-key");
        assert_eq!(
            KeyOp::from_query(&op.query_name(), &op.payload()),
            Some(Ok(op.clone()))
        );
        assert_eq!(
            KeyOp::from_query("_serf_list-keys", b""),
            Some(Ok(KeyOp::List))
        );
        assert_eq!(KeyOp::from_query("_serf_ping", b""), None);
        assert_eq!(KeyOp::from_query("deploy", b""), None);
        assert!(matches!(
            KeyOp::from_query("_serf_use-key", b"\x07\xc1"),
            Some(Err(_))
        ));

        let mut ring = Keyring::new(vec![1; 32]).unwrap();
        let answer = apply(Some(&mut ring), &op);
        assert!(answer.result, "{answer:?}");
        assert_eq!(answer.keys.len(), 2);
        assert_eq!(KeyResponse::decode(&answer.encode()), Ok(answer.clone()));
        let removing_primary = apply(Some(&mut ring), &KeyOp::Remove(vec![1; 32]));
        assert!(!removing_primary.result);
        assert!(!removing_primary.message.is_empty());
        let unencrypted = apply(None, &KeyOp::List);
        assert!(!unencrypted.result);
        assert!(KeyResponse::decode(b"\x05").is_err());
    }
}
