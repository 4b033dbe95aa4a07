//! The `watches` of the agent configuration: each raw object checked as Consul checks it, with its
//! messages (`Failed to parse watch (...): Must specify a single key to watch`, `Must define a watch
//! handler`, ...), into a [`ConfigWatch`].

use super::handler::{parse_url, Handler, HttpConfig, HTTP_TIMEOUT_MS};
use super::plan::{Params, Plan};
use serde_json::{Map, Value};

/// One checked watch of the agent configuration.
#[derive(Clone, Debug)]
pub struct ConfigWatch {
    /// What is asked.
    pub plan: Plan,
    /// `datacenter`: asked of that datacenter.
    pub datacenter: Option<String>,
    /// `token`: the ACL token of the queries.
    pub token: Option<String>,
    /// What runs on a change.
    pub handler: Handler,
    /// Whether the deprecated `handler` field was used (the agent warns).
    pub deprecated_handler: bool,
}

/// Checks every watch; the first bad one is the error.
pub fn parse_watches(watches: &[Value]) -> Result<Vec<ConfigWatch>, String> {
    watches.iter().map(parse_watch).collect()
}

/// Checks one watch definition.
pub fn parse_watch(definition: &Value) -> Result<ConfigWatch, String> {
    let Value::Object(fields) = definition else {
        return Err(format!(
            "Failed to parse watch ({definition}): a watch must be an object"
        ));
    };
    match fields.get("handler_type") {
        None => {}
        Some(Value::String(kind)) if kind == "http" || kind == "script" => {}
        Some(Value::String(kind)) => return Err(format!("Handler type '{kind}' not recognized")),
        Some(other) => return Err(format!("Handler type '{other}' not recognized")),
    }
    let parsed = parse_fields(fields.clone())
        .map_err(|why| format!("Failed to parse watch ({definition}): {why}"))?;
    let handler = match (parsed.handler, parsed.args, parsed.http) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
            return Err("Only one watch handler allowed".to_string())
        }
        (Some(Value::String(text)), None, None) => Handler::Script {
            args: vec![text],
            shell: true,
        },
        (Some(_), None, None) => return Err("Watch handler must be a string".to_string()),
        (None, Some(args), None) => Handler::Script {
            args: string_list(&args).ok_or("Watch args must be a list of strings")?,
            shell: false,
        },
        (None, None, Some(http)) => Handler::Http(http),
        (None, None, None) => return Err("Must define a watch handler".to_string()),
    };
    if matches!(&handler, Handler::Script { args, .. } if args.is_empty() || args[0].is_empty()) {
        return Err("Must define a watch handler".to_string());
    }
    Ok(ConfigWatch {
        plan: parsed.plan,
        datacenter: parsed.datacenter,
        token: parsed.token,
        deprecated_handler: matches!(handler, Handler::Script { shell: true, .. }),
        handler,
    })
}

/// What [`parse_fields`] found.
struct Parsed {
    plan: Plan,
    datacenter: Option<String>,
    token: Option<String>,
    handler: Option<Value>,
    args: Option<Value>,
    http: Option<HttpConfig>,
}

/// Consul's watch parsing: the generic fields, the handler type, the type's own fields; `handler`
/// and `args` are set aside; anything left is an invalid parameter.
fn parse_fields(mut fields: Map<String, Value>) -> Result<Parsed, String> {
    let datacenter = take_string(&mut fields, "datacenter")?;
    let token = take_string(&mut fields, "token")?;
    let kind = take_string(&mut fields, "type")?.unwrap_or_default();
    if kind.is_empty() {
        return Err("Watch type must be specified".to_string());
    }
    let handler_type = take_string(&mut fields, "handler_type")?;
    let http = match handler_type.as_deref() {
        Some("http") => {
            let config = fields
                .remove("http_handler_config")
                .ok_or("Handler type 'http' requires 'http_handler_config' to be set")?;
            Some(
                http_config(&config)
                    .map_err(|why| format!("Failed to parse 'http_handler_config': {why}"))?,
            )
        }
        _ => None,
    };
    let mut params = Params {
        kind,
        ..Params::default()
    };
    // A type takes only its own fields; the others stay and are named as invalid below.
    let own = super::plan::parameters_of(&params.kind)?;
    for name in own {
        match *name {
            "key" => params.key = take_string(&mut fields, "key")?,
            "prefix" => params.prefix = take_string(&mut fields, "prefix")?,
            "service" => params.service = take_string(&mut fields, "service")?,
            "state" => params.state = take_string(&mut fields, "state")?,
            "name" => params.name = take_string(&mut fields, "name")?,
            "tag" => params.tags = take_strings(&mut fields, "tag")?,
            "passingonly" => params.passing_only = take_bool(&mut fields, "passingonly")?,
            _ => params.stale = take_bool(&mut fields, "stale")?,
        }
    }
    let plan = Plan::new(&params)?;
    let handler = fields.remove("handler");
    let args = fields.remove("args");
    if !fields.is_empty() {
        let names: Vec<&str> = fields.keys().map(String::as_str).collect();
        return Err(format!("Invalid parameters: [{}]", names.join(" ")));
    }
    Ok(Parsed {
        plan,
        datacenter,
        token,
        handler,
        args,
        http,
    })
}

fn take_string(fields: &mut Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match fields.remove(name) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(format!("Expecting {name} to be a string")),
    }
}

fn take_bool(fields: &mut Map<String, Value>, name: &str) -> Result<Option<bool>, String> {
    match fields.remove(name) {
        None => Ok(None),
        Some(Value::Bool(value)) => Ok(Some(value)),
        Some(_) => Err(format!("Expecting {name} to be a boolean")),
    }
}

fn take_strings(fields: &mut Map<String, Value>, name: &str) -> Result<Vec<String>, String> {
    match fields.remove(name) {
        None => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(vec![text]),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(text) => Ok(text.clone()),
                _ => Err(format!("Index {i} of {name} expected to be string")),
            })
            .collect(),
        Some(_) => Err(format!("Expecting {name} to be a string or []string")),
    }
}

fn string_list(value: &Value) -> Option<Vec<String>> {
    value
        .as_array()?
        .iter()
        .map(|item| item.as_str().map(str::to_string))
        .collect()
}

/// A field of `http_handler_config`, its name matched without regard to case (as Consul decodes
/// it); unknown fields are ignored.
fn field<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    fields
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
}

fn config_string(fields: &Map<String, Value>, name: &str) -> Result<String, String> {
    match field(fields, name) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(text)) => Ok(text.clone()),
        Some(other) => Err(format!(
            "'{name}' expected type 'string', got {}",
            type_name(other)
        )),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

/// Checks `http_handler_config` (an object, or a one-object list as an HCL block may give).
fn http_config(value: &Value) -> Result<HttpConfig, String> {
    let fields = match value {
        Value::Object(fields) => fields,
        Value::Array(items) if items.len() == 1 && items[0].is_object() => {
            items[0].as_object().ok_or("expected an object")?
        }
        other => return Err(format!("expected an object, got {}", type_name(other))),
    };
    let path = config_string(fields, "path")?;
    if path.is_empty() {
        return Err("Requires 'path' to be set".to_string());
    }
    parse_url(&path)?;
    let mut method = config_string(fields, "method")?;
    if method.is_empty() {
        method = "POST".to_string();
    }
    if !method.bytes().all(is_token_byte) {
        return Err(format!("invalid method {method:?}"));
    }
    let timeout = config_string(fields, "timeout")?;
    let timeout_ms = if timeout.is_empty() {
        HTTP_TIMEOUT_MS
    } else {
        crate::api::duration::parse_duration_ms(&timeout)
            .map_err(|e| format!("Failed to parse timeout: {e}"))?
    };
    let tls_skip_verify = match field(fields, "tls_skip_verify") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(value)) => *value,
        Some(other) => {
            return Err(format!(
                "'tls_skip_verify' expected type 'bool', got {}",
                type_name(other)
            ))
        }
    };
    Ok(HttpConfig {
        path,
        method,
        header: header(field(fields, "header"))?,
        timeout_ms,
        tls_skip_verify,
    })
}

/// `header { name = ["value", ...] }` (a single string is taken as one value), in name order.
fn header(value: Option<&Value>) -> Result<Vec<(String, Vec<String>)>, String> {
    let fields = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(fields)) => fields,
        Some(Value::Array(items)) if items.len() == 1 && items[0].is_object() => {
            items[0].as_object().ok_or("expected an object")?
        }
        Some(other) => {
            return Err(format!(
                "'header' expected a map, got '{}'",
                type_name(other)
            ))
        }
    };
    let mut header = Vec::with_capacity(fields.len());
    for (name, values) in fields {
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(format!("invalid header field name {name:?}"));
        }
        let values = match values {
            Value::String(text) => vec![text.clone()],
            other => string_list(other)
                .ok_or_else(|| format!("'header[{name}]' expected a list of strings"))?,
        };
        if let Some(bad) = values.iter().find(|v| v.contains(['\r', '\n'])) {
            return Err(format!("invalid value {bad:?} of header field {name}"));
        }
        header.push((name.clone(), values));
    }
    Ok(header)
}

/// A byte of an HTTP token (method, field name).
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn error(definition: Value) -> String {
        parse_watch(&definition).map(|_| ()).expect_err("refused")
    }

    #[test]
    fn good_watches_are_accepted() {
        let watch = parse_watch(&json!({
            "type": "key", "key": "a/b", "args": ["/bin/echo", "x"], "datacenter": "dc2", "token": "t"
        }))
        .expect("key watch");
        assert_eq!(watch.plan.request.path, "/v1/kv/a/b");
        assert_eq!(watch.datacenter.as_deref(), Some("dc2"));
        assert_eq!(watch.token.as_deref(), Some("t"));
        assert_eq!(
            watch.handler,
            Handler::Script {
                args: vec!["/bin/echo".into(), "x".into()],
                shell: false
            }
        );
        let watch = parse_watch(&json!({"type": "nodes", "handler": "cat >> /tmp/x"}))
            .expect("legacy handler");
        assert!(watch.deprecated_handler);
        let watch = parse_watch(&json!({
            "type": "service", "service": "web", "tag": ["a", "b"], "passingonly": true,
            "handler_type": "http",
            "http_handler_config": {
                "path": "https://example.com/hook", "Method": "PUT", "timeout": "2s",
                "header": {"X-A": ["1"], "X-B": "2"}, "tls_skip_verify": true
            }
        }))
        .expect("http watch");
        let Handler::Http(config) = watch.handler else {
            panic!("not http")
        };
        assert_eq!(config.method, "PUT");
        assert_eq!(config.timeout_ms, 2_000);
        assert!(config.tls_skip_verify);
        assert_eq!(config.header.len(), 2);
        let watch = parse_watch(&json!({
            "type": "checks", "state": "critical", "handler_type": "http",
            "http_handler_config": [{"path": "http://127.0.0.1:1/"}]
        }))
        .expect("defaults");
        let Handler::Http(config) = watch.handler else {
            panic!("not http")
        };
        assert_eq!(
            (config.method.as_str(), config.timeout_ms),
            ("POST", HTTP_TIMEOUT_MS)
        );
        assert!(
            parse_watches(&[json!({"type": "event", "name": "deploy", "args": ["true"]})]).is_ok()
        );
        let watch = parse_watch(&json!({
            "type": "keyprefix", "prefix": "app/", "handler_type": "script", "args": ["true"]
        }))
        .expect("explicit script");
        assert!(matches!(
            watch.handler,
            Handler::Script { shell: false, .. }
        ));
    }

    #[test]
    fn bad_watches_are_refused_with_consuls_messages() {
        assert_eq!(
            error(json!({"type": "key", "args": ["true"]})),
            r#"Failed to parse watch ({"args":["true"],"type":"key"}): Must specify a single key to watch"#
        );
        assert!(error(json!({"type": "bogus", "args": ["true"]}))
            .ends_with("): Unsupported watch type: bogus"));
        assert!(error(json!({"key": "k", "args": ["true"]}))
            .ends_with("): Watch type must be specified"));
        assert_eq!(
            error(json!({"type": "key", "key": "k"})),
            "Must define a watch handler"
        );
        assert_eq!(
            error(json!({"type": "key", "key": "k", "handler_type": "grpc"})),
            "Handler type 'grpc' not recognized"
        );
        assert_eq!(
            error(json!({"type": "key", "key": "k", "args": ["a"], "handler": "b"})),
            "Only one watch handler allowed"
        );
        assert_eq!(
            error(json!({"type": "key", "key": "k", "args": "a"})),
            "Watch args must be a list of strings"
        );
        assert_eq!(
            error(json!({"type": "key", "key": "k", "handler": 1})),
            "Watch handler must be a string"
        );
        assert!(error(json!({"type": "nodes", "key": "k", "args": ["a"]}))
            .ends_with("): Invalid parameters: [key]"));
        assert!(error(json!({"type": "key", "key": 1, "args": ["a"]}))
            .ends_with("): Expecting key to be a string"));
        assert!(error(
            json!({"type": "service", "service": "s", "passingonly": "yes", "args": ["a"]})
        )
        .ends_with("): Expecting passingonly to be a boolean"));
        assert!(
            error(json!({"type": "key", "key": "k", "handler_type": "http"}))
                .ends_with("): Handler type 'http' requires 'http_handler_config' to be set")
        );
        assert!(
            error(json!({"type": "key", "key": "k", "handler_type": "http",
                             "http_handler_config": {"method": "GET"}}))
            .ends_with("): Failed to parse 'http_handler_config': Requires 'path' to be set")
        );
        assert!(
            error(json!({"type": "key", "key": "k", "handler_type": "http",
                             "http_handler_config": {"path": "http://h/", "timeout": "soon"}}))
            .ends_with(r#"Failed to parse timeout: time: invalid duration "soon""#)
        );
        assert_eq!(
            error(
                json!({"type": "key", "key": "k", "handler_type": "http", "args": ["a"],
                         "http_handler_config": {"path": "http://h/"}})
            ),
            "Only one watch handler allowed"
        );
        assert!(error(json!({"type": "key", "key": "k", "args": ["a"],
                             "http_handler_config": {"path": "http://h/"}}))
        .ends_with("): Invalid parameters: [http_handler_config]"));
        assert!(error(json!("key")).contains("a watch must be an object"));
    }
}
