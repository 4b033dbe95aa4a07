//! The bodies of `PUT /v1/catalog/register` and `/v1/catalog/deregister` (Consul's `RegisterRequest` and
//! `DeregisterRequest`): keys matched case-insensitively with snake_case accepted, wrong types answered with
//! `400 Request decode failed: ...`, check durations as Go strings or nanoseconds.

use super::duration::{format_go_duration_ms, parse_go_duration};
use super::json::{self, field, string_field, strings_field, u64_field};
use super::ApiResponse;
use crate::fsm::{
    CheckDefinition, CheckStatus, HealthCheck, RegisterRequest, Service, ServiceAddress, Weights,
};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

type Object = Map<String, Value>;

/// A deregistration: the node, and the service instance or check to remove (neither: the whole node).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deregistration {
    /// The node.
    pub node: String,
    /// `Datacenter` (empty: the agent's).
    pub datacenter: String,
    /// `ServiceID`.
    pub service_id: Option<String>,
    /// `CheckID`.
    pub check_id: Option<String>,
}

/// Parses a register body. Validation Consul does on the server (node, address) is left to the caller.
pub fn register_body(body: &[u8]) -> Result<RegisterRequest, ApiResponse> {
    let object = body_object(body, "structs.RegisterRequest")?;
    let mut req = RegisterRequest {
        id: string_or_empty(&object, "ID")?,
        node: string_or_empty(&object, "Node")?,
        address: string_or_empty(&object, "Address")?,
        datacenter: string_or_empty(&object, "Datacenter")?,
        tagged_addresses: string_map(&object, "TaggedAddresses")?,
        node_meta: string_map(&object, "NodeMeta")?,
        service: None,
        checks: Vec::new(),
        skip_node_update: bool_field(&object, "SkipNodeUpdate")?,
    };
    req.service = match field(&object, "Service") {
        None | Some(Value::Null) => None,
        Some(Value::Object(service)) => Some(service_body(service)?),
        Some(other) => return Err(json::decode_error("Service", "structs.NodeService", other)),
    };
    if let Some(check) = object_field(&object, "Check", "structs.HealthCheck")? {
        req.checks.push(check_body(check)?);
    }
    match field(&object, "Checks") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                let Value::Object(check) = item else {
                    return Err(json::decode_error("Checks", "structs.HealthCheck", item));
                };
                req.checks.push(check_body(check)?);
            }
        }
        Some(other) => return Err(json::decode_error("Checks", "structs.HealthChecks", other)),
    }
    Ok(req)
}

/// Parses a deregister body.
pub fn deregister_body(body: &[u8]) -> Result<Deregistration, ApiResponse> {
    let object = body_object(body, "structs.DeregisterRequest")?;
    let some = |s: String| (!s.is_empty()).then_some(s);
    Ok(Deregistration {
        node: string_or_empty(&object, "Node")?,
        datacenter: string_or_empty(&object, "Datacenter")?,
        service_id: string_field(&object, "ServiceID")?.and_then(some),
        check_id: string_field(&object, "CheckID")?.and_then(some),
    })
}

/// The body as a JSON object; Go's decoder answers an empty body with `EOF`.
pub(super) fn body_object(body: &[u8], go_type: &str) -> Result<Object, ApiResponse> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiResponse::text(400, "Request decode failed: EOF"));
    }
    match json::parse_body(body)? {
        Value::Object(object) => Ok(object),
        other => Err(ApiResponse::text(
            400,
            format!(
                "Request decode failed: json: cannot unmarshal {} into Go value of type {go_type}",
                kind(&other)
            ),
        )),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Null | Value::Object(_) => "object",
    }
}

fn service_body(object: &Object) -> Result<Service, ApiResponse> {
    Ok(Service {
        id: string_or_empty(object, "ID")?,
        service: string_or_empty(object, "Service")?,
        tags: strings_field(object, "Tags")?.unwrap_or_default(),
        address: string_or_empty(object, "Address")?,
        tagged_addresses: service_addresses(object)?,
        meta: string_map(object, "Meta")?,
        port: port(object, "Port")?,
        weights: weights(object)?,
        enable_tag_override: bool_field(object, "EnableTagOverride")?,
        kind: string_or_empty(object, "Kind")?,
        create_index: 0,
        modify_index: 0,
    })
}

fn check_body(object: &Object) -> Result<HealthCheck, ApiResponse> {
    let status_text = string_or_empty(object, "Status")?;
    let status = match status_text.as_str() {
        "" => CheckStatus::Critical,
        text => CheckStatus::parse(text).ok_or_else(|| {
            ApiResponse::text(
                400,
                format!("Request decode failed: invalid check status {text:?}"),
            )
        })?,
    };
    let mut definition = match object_field(object, "Definition", "structs.HealthCheckDefinition")?
    {
        Some(def) => definition_body(def)?,
        None => CheckDefinition::default(),
    };
    for (name, slot) in [
        ("Interval", &mut definition.interval),
        ("Timeout", &mut definition.timeout),
    ] {
        if slot.is_empty() {
            *slot = duration(object, name)?;
        }
    }
    Ok(HealthCheck {
        node: string_or_empty(object, "Node")?,
        check_id: string_or_empty(object, "CheckID")?,
        name: string_or_empty(object, "Name")?,
        status,
        notes: string_or_empty(object, "Notes")?,
        output: string_or_empty(object, "Output")?,
        service_id: string_or_empty(object, "ServiceID")?,
        check_type: string_or_empty(object, "Type")?,
        exposed_port: port(object, "ExposedPort")?,
        definition,
        ..HealthCheck::default()
    })
}

pub(super) fn definition_body(o: &Object) -> Result<CheckDefinition, ApiResponse> {
    Ok(CheckDefinition {
        http: string_or_empty(o, "HTTP")?,
        tls_server_name: string_or_empty(o, "TLSServerName")?,
        tls_skip_verify: bool_field(o, "TLSSkipVerify")?,
        header: header(o)?,
        method: string_or_empty(o, "Method")?,
        body: string_or_empty(o, "Body")?,
        disable_redirects: bool_field(o, "DisableRedirects")?,
        tcp: string_or_empty(o, "TCP")?,
        tcp_use_tls: bool_field(o, "TCPUseTLS")?,
        udp: string_or_empty(o, "UDP")?,
        h2ping: string_or_empty(o, "H2PING")?,
        h2ping_use_tls: bool_field(o, "H2PingUseTLS")?,
        os_service: string_or_empty(o, "OSService")?,
        grpc: string_or_empty(o, "GRPC")?,
        grpc_use_tls: bool_field(o, "GRPCUseTLS")?,
        alias_node: string_or_empty(o, "AliasNode")?,
        alias_service: string_or_empty(o, "AliasService")?,
        script_args: strings_field(o, "ScriptArgs")?.unwrap_or_default(),
        docker_container_id: string_or_empty(o, "DockerContainerID")?,
        shell: string_or_empty(o, "Shell")?,
        interval: duration(o, "Interval")?,
        timeout: duration(o, "Timeout")?,
        ttl: duration(o, "TTL")?,
        deregister_critical_service_after: duration(o, "DeregisterCriticalServiceAfter")?,
        output_max_size: port(o, "OutputMaxSize")?,
        success_before_passing: port(o, "SuccessBeforePassing")?,
        failures_before_warning: port(o, "FailuresBeforeWarning")?,
        failures_before_critical: port(o, "FailuresBeforeCritical")?,
    })
}

pub(super) fn string_or_empty(object: &Object, name: &str) -> Result<String, ApiResponse> {
    Ok(string_field(object, name)?.unwrap_or_default())
}

pub(super) fn bool_field(object: &Object, name: &str) -> Result<bool, ApiResponse> {
    match field(object, name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(json::decode_error(name, "bool", other)),
    }
}

pub(super) fn object_field<'a>(
    object: &'a Object,
    name: &str,
    go_type: &str,
) -> Result<Option<&'a Object>, ApiResponse> {
    match field(object, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(inner)) => Ok(Some(inner)),
        Some(other) => Err(json::decode_error(name, go_type, other)),
    }
}

/// A port-sized number (ports, sizes); Go's `int` in Consul, bounded to `u32` here.
pub(super) fn port(object: &Object, name: &str) -> Result<u32, ApiResponse> {
    let n = u64_field(object, name)?.unwrap_or(0);
    u32::try_from(n).map_err(|_| json::decode_error(name, "int", &Value::from(n)))
}

pub(super) fn string_map(
    object: &Object,
    name: &str,
) -> Result<BTreeMap<String, String>, ApiResponse> {
    let Some(inner) = object_field(object, name, "map[string]string")? else {
        return Ok(BTreeMap::new());
    };
    inner
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            other => Err(json::decode_error(name, "string", other)),
        })
        .collect()
}

pub(super) fn service_addresses(
    object: &Object,
) -> Result<BTreeMap<String, ServiceAddress>, ApiResponse> {
    let name = "TaggedAddresses";
    let Some(inner) = object_field(object, name, "map[string]structs.ServiceAddress")? else {
        return Ok(BTreeMap::new());
    };
    let mut out = BTreeMap::new();
    for (tag, value) in inner {
        let Value::Object(address) = value else {
            return Err(json::decode_error(name, "structs.ServiceAddress", value));
        };
        let entry = ServiceAddress {
            address: string_or_empty(address, "Address")?,
            port: port(address, "Port")?,
        };
        out.insert(tag.clone(), entry);
    }
    Ok(out)
}

/// `Weights`, with Consul's rule: missing or invalid weights (passing below 1, either above 65535) are the
/// defaults.
pub(super) fn weights(object: &Object) -> Result<Weights, ApiResponse> {
    let Some(inner) = object_field(object, "Weights", "structs.Weights")? else {
        return Ok(Weights::default());
    };
    let passing = u64_field(inner, "Passing")?.unwrap_or(0);
    let warning = u64_field(inner, "Warning")?.unwrap_or(0);
    if !(1..=65_535).contains(&passing) || warning > 65_535 {
        return Ok(Weights::default());
    }
    Ok(Weights {
        passing: passing as u32,
        warning: warning as u32,
    })
}

fn header(object: &Object) -> Result<BTreeMap<String, Vec<String>>, ApiResponse> {
    let Some(inner) = object_field(object, "Header", "map[string][]string")? else {
        return Ok(BTreeMap::new());
    };
    let mut out = BTreeMap::new();
    for (name, _) in inner {
        out.insert(
            name.clone(),
            strings_field(inner, name)?.unwrap_or_default(),
        );
    }
    Ok(out)
}

/// A duration given as a Go string or as nanoseconds, kept the way Consul prints it (`"10s"`); `""` when
/// unset or zero.
pub(super) fn duration(object: &Object, name: &str) -> Result<String, ApiResponse> {
    let ns = match field(object, name) {
        None | Some(Value::Null) => return Ok(String::new()),
        Some(Value::String(text)) if text.is_empty() => return Ok(String::new()),
        Some(Value::String(text)) => parse_go_duration(text)
            .map_err(|e| ApiResponse::text(400, format!("Request decode failed: {e}")))?,
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| json::decode_error(name, "time.Duration", &Value::Number(n.clone())))?,
        Some(other) => return Err(json::decode_error(name, "time.Duration", other)),
    };
    Ok(match ns {
        0 => String::new(),
        ns if ns > 0 && ns % 1_000_000 == 0 => format_go_duration_ms(ns as u64 / 1_000_000),
        ns => format!("{ns}ns"),
    })
}
