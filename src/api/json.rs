//! JSON in and out the way Consul does it: PascalCase field names out (minified, or indented with four
//! spaces under `?pretty`), request keys matched case-insensitively with snake_case accepted, base64 values.

use super::ApiResponse;
use crate::fsm::KvEntry;
use base64::Engine;
use serde::Serialize;
use serde_json::{Map, Value};

/// Serializes `value` as Consul would (`pretty`: four-space indent and a final newline).
pub fn to_body<T: Serialize + ?Sized>(value: &T, pretty: bool) -> Vec<u8> {
    if !pretty {
        return serde_json::to_vec(value).unwrap_or_default();
    }
    let mut out = Vec::with_capacity(128);
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    if value.serialize(&mut ser).is_err() {
        return Vec::new();
    }
    out.push(b'\n');
    out
}

/// A `200` JSON response of `value`.
pub fn ok<T: Serialize + ?Sized>(value: &T, pretty: bool) -> ApiResponse {
    ApiResponse::json(200, to_body(value, pretty))
}

/// Standard base64 of `bytes`.
pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes standard base64.
pub fn unbase64(text: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("illegal base64 data: {e}"))
}

/// A KV entry as Consul renders it.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KvJson<'a> {
    lock_index: u64,
    key: &'a str,
    flags: u64,
    value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<&'a str>,
    create_index: u64,
    modify_index: u64,
}

impl<'a> KvJson<'a> {
    /// The JSON view of `entry`; an empty value is `null`, as in Consul.
    pub fn new(entry: &'a KvEntry) -> KvJson<'a> {
        KvJson {
            lock_index: entry.lock_index,
            key: &entry.key,
            flags: entry.flags,
            value: (!entry.value.is_empty()).then(|| base64(&entry.value)),
            session: entry.session.as_deref(),
            create_index: entry.create_index,
            modify_index: entry.modify_index,
        }
    }
}

/// Folds a JSON key for case-insensitive, snake_case-tolerant matching (`Lock_Delay` -> `lockdelay`).
fn fold(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// The field of `object` named `name` (matched case-insensitively, underscores ignored).
pub fn field<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    let want = fold(name);
    object
        .iter()
        .find(|(key, _)| fold(key) == want)
        .map(|(_, value)| value)
}

/// Parses a request body as JSON; Consul answers malformed JSON with `400 Request decode failed: ...`.
pub fn parse_body(body: &[u8]) -> Result<Value, ApiResponse> {
    serde_json::from_slice(body)
        .map_err(|e| ApiResponse::text(400, format!("Request decode failed: {e}")))
}

/// A string field, or `Err` naming it when it has another type.
pub fn string_field(
    object: &Map<String, Value>,
    name: &str,
) -> Result<Option<String>, ApiResponse> {
    match field(object, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(decode_error(name, "string", other)),
    }
}

/// An unsigned integer field.
pub fn u64_field(object: &Map<String, Value>, name: &str) -> Result<Option<u64>, ApiResponse> {
    match field(object, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
        Some(other) => Err(decode_error(name, "uint64", other)),
    }
}

/// A list-of-strings field.
pub fn strings_field(
    object: &Map<String, Value>,
    name: &str,
) -> Result<Option<Vec<String>>, ApiResponse> {
    match field(object, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(decode_error(name, "string", other)),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(decode_error(name, "[]string", other)),
    }
}

/// `400 Request decode failed: ...` for a field of the wrong type.
pub fn decode_error(name: &str, want: &str, got: &Value) -> ApiResponse {
    let kind = match got {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    ApiResponse::text(
        400,
        format!(
            "Request decode failed: json: cannot unmarshal {kind} into field {name} of type {want}"
        ),
    )
}
