//! The config keys cairn knows: their types, and whether cairn uses them, maps them from a deprecated name, or
//! only recognises them as Consul keys it does not implement yet (a warning, not an error).
//!
//! [`check_source`] checks one parsed source against this table: a key Consul does not know is an error
//! (Consul's text, `invalid config key <dotted.key>`), a value of the wrong type is an error naming the key,
//! and HCL's block shapes are folded into the shape each key wants. The keys of a known-but-ignored key's value
//! are not inspected.

use serde_json::{Map, Value};

/// What a key holds.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// `true`/`false`.
    Bool,
    /// A string.
    Str,
    /// A whole number (range checks come later, with the key's meaning).
    Int,
    /// An array of strings.
    StrList,
    /// An object whose values are strings.
    StrMap,
    /// An object with these keys.
    Object(&'static [Key]),
    /// One definition (an object) kept raw, appended to the list key named (`service` -> `services`).
    RawOne(&'static str),
    /// A list of definitions (objects) kept raw.
    RawList,
}

/// What cairn does with a key.
#[derive(Clone, Copy, Debug)]
pub enum Support {
    /// cairn uses it.
    Used,
    /// Accepted and has nothing to do in cairn (e.g. `disable_update_check`: cairn never checks).
    NoOp,
    /// A Consul key cairn does not implement yet: a warning, and the value is ignored.
    Ignored,
    /// A deprecated name for the dotted key given; the value moves there (unless that is set in the same
    /// source) with a warning.
    Renamed(&'static str),
}

/// One known key.
#[derive(Clone, Copy, Debug)]
pub struct Key {
    /// The name (snake_case, as Consul spells it).
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// What cairn does with it.
    pub support: Support,
}

const fn used(name: &'static str, kind: Kind) -> Key {
    Key {
        name,
        kind,
        support: Support::Used,
    }
}

const fn ignored(name: &'static str) -> Key {
    Key {
        name,
        kind: Kind::Bool,
        support: Support::Ignored,
    }
}

const fn renamed(name: &'static str, kind: Kind, to: &'static str) -> Key {
    Key {
        name,
        kind,
        support: Support::Renamed(to),
    }
}

const ACL_TOKENS: &[Key] = &[
    used("initial_management", Kind::Str),
    renamed("master", Kind::Str, "acl.tokens.initial_management"),
    used("agent", Kind::Str),
    used("agent_recovery", Kind::Str),
    renamed("agent_master", Kind::Str, "acl.tokens.agent_recovery"),
    used("default", Kind::Str),
    used("replication", Kind::Str),
    used("dns", Kind::Str),
    ignored("config_file_service_registration"),
    ignored("managed_service_provider"),
];

const ACL: &[Key] = &[
    used("enabled", Kind::Bool),
    used("default_policy", Kind::Str),
    used("down_policy", Kind::Str),
    used("tokens", Kind::Object(ACL_TOKENS)),
    ignored("enable_token_persistence"),
    ignored("enable_key_list_policy"),
    ignored("enable_token_replication"),
    ignored("policy_ttl"),
    ignored("role_ttl"),
    ignored("token_ttl"),
    ignored("disabled_ttl"),
    ignored("msp_disable_bootstrap"),
];

const ADDRESSES: &[Key] = &[
    used("http", Kind::Str),
    used("dns", Kind::Str),
    ignored("https"),
    ignored("grpc"),
    ignored("grpc_tls"),
];

const LIMITS: &[Key] = &[
    used("kv_max_value_size", Kind::Int),
    used("txn_max_req_len", Kind::Int),
    ignored("http_max_conns_per_client"),
    ignored("https_handshake_timeout"),
    ignored("request_limits"),
    ignored("rpc_client_timeout"),
    ignored("rpc_handshake_timeout"),
    ignored("rpc_max_burst"),
    ignored("rpc_max_conns_per_client"),
    ignored("rpc_rate"),
];

const AUTOPILOT: &[Key] = &[
    used("cleanup_dead_servers", Kind::Bool),
    used("last_contact_threshold", Kind::Str),
    used("max_trailing_logs", Kind::Int),
    used("min_quorum", Kind::Int),
    used("server_stabilization_time", Kind::Str),
    ignored("redundancy_zone_tag"),
    ignored("disable_upgrade_migration"),
    ignored("upgrade_version_tag"),
];

const PERFORMANCE: &[Key] = &[
    used("raft_multiplier", Kind::Int),
    ignored("leave_drain_time"),
    ignored("rpc_hold_timeout"),
];

const PORTS: &[Key] = &[
    used("http", Kind::Int),
    used("https", Kind::Int),
    used("dns", Kind::Int),
    used("grpc", Kind::Int),
    used("serf_lan", Kind::Int),
    used("serf_wan", Kind::Int),
    used("server", Kind::Int),
    ignored("grpc_tls"),
    ignored("proxy_min_port"),
    ignored("proxy_max_port"),
    ignored("sidecar_min_port"),
    ignored("sidecar_max_port"),
    ignored("expose_min_port"),
    ignored("expose_max_port"),
];

const DNS_SOA: &[Key] = &[
    used("refresh", Kind::Int),
    used("retry", Kind::Int),
    used("expire", Kind::Int),
    used("min_ttl", Kind::Int),
];

const DNS_CONFIG: &[Key] = &[
    used("allow_stale", Kind::Bool),
    used("max_stale", Kind::Str),
    used("node_ttl", Kind::Str),
    used("service_ttl", Kind::StrMap),
    used("only_passing", Kind::Bool),
    used("enable_truncate", Kind::Bool),
    used("udp_answer_limit", Kind::Int),
    used("a_record_limit", Kind::Int),
    used("enable_additional_node_meta_txt", Kind::Bool),
    used("disable_compression", Kind::Bool),
    used("soa", Kind::Object(DNS_SOA)),
    used("recursor_timeout", Kind::Str),
    used("recursor_strategy", Kind::Str),
    ignored("use_cache"),
    ignored("cache_max_age"),
    ignored("prefer_namespace"),
];

const UI_CONFIG: &[Key] = &[
    used("enabled", Kind::Bool),
    ignored("dir"),
    ignored("content_path"),
    ignored("metrics_provider"),
    ignored("metrics_provider_files"),
    ignored("metrics_provider_options_json"),
    ignored("metrics_proxy"),
    ignored("dashboard_url_templates"),
];

/// Every top-level key of a Consul agent config file (Consul CE 1.12 to 1.20, enterprise keys included so
/// that they warn rather than fail).
pub const TOP_LEVEL: &[Key] = &[
    used("acl", Kind::Object(ACL)),
    used("addresses", Kind::Object(ADDRESSES)),
    used("advertise_addr", Kind::Str),
    used("bind_addr", Kind::Str),
    used("bootstrap", Kind::Bool),
    used("bootstrap_expect", Kind::Int),
    used("check", Kind::RawOne("checks")),
    used("checks", Kind::RawList),
    used("client_addr", Kind::Str),
    used("data_dir", Kind::Str),
    used("datacenter", Kind::Str),
    used("disable_host_node_id", Kind::Bool),
    used("domain", Kind::Str),
    used("alt_domain", Kind::Str),
    used("dns_config", Kind::Object(DNS_CONFIG)),
    used("enable_local_script_checks", Kind::Bool),
    used("enable_script_checks", Kind::Bool),
    used("encrypt", Kind::Str),
    used("leave_on_terminate", Kind::Bool),
    used("limits", Kind::Object(LIMITS)),
    used("log_level", Kind::Str),
    used("node_id", Kind::Str),
    used("node_meta", Kind::StrMap),
    used("node_name", Kind::Str),
    used("performance", Kind::Object(PERFORMANCE)),
    used("pid_file", Kind::Str),
    used("ports", Kind::Object(PORTS)),
    used("primary_datacenter", Kind::Str),
    used("raft_protocol", Kind::Int),
    used("raft_snapshot_threshold", Kind::Int),
    used("raft_trailing_logs", Kind::Int),
    used("recursors", Kind::StrList),
    used("retry_join", Kind::StrList),
    used("server", Kind::Bool),
    used("service", Kind::RawOne("services")),
    used("services", Kind::RawList),
    used("session_ttl_min", Kind::Str),
    used("skip_leave_on_interrupt", Kind::Bool),
    // Deprecated in Consul for ui_config.enabled; resolved after merging, as Consul does.
    used("ui", Kind::Bool),
    used("ui_config", Kind::Object(UI_CONFIG)),
    used("watches", Kind::RawList),
    Key {
        name: "disable_update_check",
        kind: Kind::Bool,
        support: Support::NoOp,
    },
    // Legacy ACL names (Consul maps them per source and warns).
    renamed(
        "acl_agent_master_token",
        Kind::Str,
        "acl.tokens.agent_recovery",
    ),
    renamed("acl_agent_token", Kind::Str, "acl.tokens.agent"),
    renamed("acl_datacenter", Kind::Str, "primary_datacenter"),
    renamed("acl_default_policy", Kind::Str, "acl.default_policy"),
    renamed("acl_down_policy", Kind::Str, "acl.down_policy"),
    renamed(
        "acl_master_token",
        Kind::Str,
        "acl.tokens.initial_management",
    ),
    renamed("acl_replication_token", Kind::Str, "acl.tokens.replication"),
    renamed("acl_token", Kind::Str, "acl.tokens.default"),
    renamed("start_join", Kind::StrList, "retry_join"),
    // Known Consul keys cairn does not implement yet.
    ignored("acl_enable_key_list_policy"),
    ignored("acl_enforce_version_8"),
    ignored("acl_ttl"),
    ignored("advertise_addr_ipv4"),
    ignored("advertise_addr_ipv6"),
    ignored("advertise_addr_wan"),
    ignored("advertise_addr_wan_ipv4"),
    ignored("advertise_addr_wan_ipv6"),
    ignored("advertise_reconnect_timeout"),
    ignored("audit"),
    ignored("auto_config"),
    ignored("auto_encrypt"),
    ignored("auto_reload_config"),
    used("autopilot", Kind::Object(AUTOPILOT)),
    ignored("ca_file"),
    ignored("ca_path"),
    ignored("cache"),
    ignored("cert_file"),
    used("check_output_max_size", Kind::Int),
    used("check_update_interval", Kind::Str),
    ignored("cloud"),
    ignored("config_entries"),
    ignored("connect"),
    ignored("default_query_time"),
    ignored("disable_anonymous_signature"),
    ignored("disable_coordinates"),
    ignored("disable_http_unprintable_char_filter"),
    used("disable_keyring_file", Kind::Bool),
    ignored("disable_remote_exec"),
    ignored("discard_check_output"),
    ignored("discovery_max_stale"),
    ignored("enable_acl_replication"),
    ignored("enable_agent_tls_for_checks"),
    ignored("enable_central_service_config"),
    ignored("enable_debug"),
    ignored("enable_syslog"),
    ignored("encrypt_verify_incoming"),
    ignored("encrypt_verify_outgoing"),
    ignored("gossip_lan"),
    ignored("gossip_wan"),
    ignored("http_config"),
    ignored("key_file"),
    ignored("license_path"),
    ignored("locality"),
    ignored("log_file"),
    ignored("log_json"),
    ignored("log_rotate_bytes"),
    ignored("log_rotate_duration"),
    ignored("log_rotate_max_files"),
    ignored("log_sublevels"),
    ignored("max_query_time"),
    ignored("non_voting_server"),
    ignored("partition"),
    ignored("peering"),
    ignored("primary_gateways"),
    ignored("primary_gateways_interval"),
    ignored("protocol"),
    ignored("raft_boltdb"),
    ignored("raft_logstore"),
    ignored("raft_snapshot_interval"),
    ignored("read_replica"),
    ignored("reconnect_timeout"),
    ignored("reconnect_timeout_wan"),
    ignored("rejoin_after_leave"),
    ignored("reporting"),
    used("retry_interval", Kind::Str),
    used("retry_interval_wan", Kind::Str),
    used("retry_join_wan", Kind::StrList),
    used("retry_max", Kind::Int),
    ignored("retry_max_wan"),
    ignored("rpc"),
    ignored("segment"),
    ignored("segments"),
    ignored("serf_lan"),
    ignored("serf_lan_allowed_cidrs"),
    ignored("serf_wan"),
    ignored("serf_wan_allowed_cidrs"),
    ignored("server_name"),
    ignored("snapshot_agent"),
    renamed("start_join_wan", Kind::StrList, "retry_join_wan"),
    ignored("syslog_facility"),
    ignored("tagged_addresses"),
    ignored("telemetry"),
    ignored("tls"),
    ignored("tls_cipher_suites"),
    ignored("tls_min_version"),
    ignored("tls_prefer_server_cipher_suites"),
    ignored("translate_wan_addrs"),
    ignored("ui_content_path"),
    ignored("ui_dir"),
    ignored("unix_sockets"),
    ignored("use_streaming_backend"),
    ignored("verify_incoming"),
    ignored("verify_incoming_https"),
    ignored("verify_incoming_rpc"),
    ignored("verify_outgoing"),
    ignored("verify_server_hostname"),
    ignored("xds"),
    // Values Consul sets itself (a user may still write them).
    used("ae_interval", Kind::Str),
    ignored("build_date"),
    used("check_deregister_interval_min", Kind::Str),
    used("check_reap_interval", Kind::Str),
    ignored("consul"),
    ignored("license_poll_base_time"),
    ignored("license_poll_max_time"),
    ignored("license_update_base_time"),
    ignored("license_update_max_time"),
    ignored("revision"),
    ignored("segment_limit"),
    ignored("segment_name_limit"),
    ignored("sync_coordinate_interval_min"),
    ignored("sync_coordinate_rate_target"),
    ignored("version"),
    ignored("version_metadata"),
    ignored("version_prerelease"),
];

/// A checked source: its tree in the shapes the keys want, with deprecated names moved, and what to warn about.
#[derive(Debug)]
pub struct Checked {
    /// The normalised tree.
    pub tree: Map<String, Value>,
    /// Warnings (ignored and deprecated keys), each naming the source.
    pub warnings: Vec<String>,
}

/// Checks and normalises one parsed source named `source` (a file path, or `flags-N.hcl` for `-hcl`). The error
/// is the message after `failed to parse <source>: `: every problem, in Consul's multi-error shape.
pub fn check_source(source: &str, tree: Map<String, Value>) -> Result<Checked, String> {
    let mut state = State {
        source,
        errors: Vec::new(),
        warnings: Vec::new(),
        renames: Vec::new(),
        appends: Vec::new(),
    };
    let mut out = state.object(TOP_LEVEL, tree, "");
    if !state.errors.is_empty() {
        return Err(multi_error(&state.errors));
    }
    let State {
        mut warnings,
        renames,
        appends,
        ..
    } = state;
    for (from, to, value) in renames {
        warnings.push(format!(
            "{source}: config key \"{from}\" is deprecated; use \"{to}\" instead"
        ));
        if from == "acl_datacenter" {
            // Naming an ACL datacenter has always turned ACLs on.
            set_path(&mut out, "acl.enabled", Value::Bool(true), true);
        }
        if let Value::Array(_) = value {
            append_path(&mut out, to, value);
        } else {
            set_path(&mut out, to, value, false);
        }
    }
    for (to, value) in appends {
        append_path(&mut out, to, value);
    }
    Ok(Checked {
        tree: out,
        warnings,
    })
}

/// Go's multierror text: `1 error occurred:\n\t* a` / `2 errors occurred:\n\t* a\n\t* b`.
fn multi_error(errors: &[String]) -> String {
    let mut text = if errors.len() == 1 {
        "1 error occurred:".to_string()
    } else {
        format!("{} errors occurred:", errors.len())
    };
    for error in errors {
        text.push_str("\n\t* ");
        text.push_str(error);
    }
    text
}

struct State<'a> {
    source: &'a str,
    errors: Vec<String>,
    warnings: Vec<String>,
    /// (deprecated dotted key, new dotted key, value), applied after the walk.
    renames: Vec<(String, &'static str, Value)>,
    /// (list key, items) from `service`/`check`, appended after the walk.
    appends: Vec<(&'static str, Value)>,
}

impl State<'_> {
    fn object(
        &mut self,
        keys: &[Key],
        tree: Map<String, Value>,
        prefix: &str,
    ) -> Map<String, Value> {
        let mut out = Map::new();
        for (name, value) in tree {
            let path = join(prefix, &name);
            let Some(key) = keys.iter().find(|key| key.name == name) else {
                self.errors.push(format!("invalid config key {path}"));
                continue;
            };
            match key.support {
                Support::Ignored => {
                    self.warnings.push(format!(
                        "{}: config key \"{path}\" is not supported by cairn yet and is ignored",
                        self.source
                    ));
                    continue;
                }
                Support::NoOp => {
                    self.value(key.kind, value, &path);
                    continue;
                }
                Support::Renamed(to) => {
                    if let Some(value) = self.value(key.kind, value, &path) {
                        self.renames.push((path, to, value));
                    }
                    continue;
                }
                Support::Used => {}
            }
            if let Kind::RawOne(list) = key.kind {
                if let Some(value) = self.value(Kind::RawList, value, &path) {
                    self.appends.push((list, value));
                }
                continue;
            }
            if let Some(value) = self.value(key.kind, value, &path) {
                out.insert(name, value);
            }
        }
        out
    }

    /// The value in the shape `kind` wants, or None after recording an error.
    fn value(&mut self, kind: Kind, value: Value, path: &str) -> Option<Value> {
        let ok = match (kind, &value) {
            (Kind::Bool, Value::Bool(_)) | (Kind::Str, Value::String(_)) => true,
            (Kind::Int, Value::Number(n)) => n.is_i64() || n.is_u64(),
            (Kind::StrList, Value::Array(items)) => items.iter().all(Value::is_string),
            (Kind::StrMap, Value::Object(map)) => map.values().all(Value::is_string),
            (Kind::StrMap, Value::Array(items)) => items.iter().all(
                |item| matches!(item, Value::Object(map) if map.values().all(Value::is_string)),
            ),
            (Kind::Object(_), Value::Object(_)) => true,
            (Kind::Object(_), Value::Array(items)) => items.iter().all(Value::is_object),
            (Kind::RawList | Kind::RawOne(_), Value::Object(_)) => true,
            (Kind::RawList | Kind::RawOne(_), Value::Array(items)) => {
                items.iter().all(Value::is_object)
            }
            _ => false,
        };
        if !ok {
            self.errors.push(format!(
                "{path}: expected {}, got {}",
                expected(kind),
                describe(&value)
            ));
            return None;
        }
        match (kind, value) {
            // HCL blocks repeated for an object key: merge them in order.
            (Kind::Object(keys), Value::Array(items)) => {
                let mut merged = Map::new();
                for item in items {
                    if let Value::Object(map) = item {
                        let checked = self.object(keys, map, path);
                        let mut tree = Value::Object(merged);
                        super::file::merge(&mut tree, Value::Object(checked));
                        merged = match tree {
                            Value::Object(map) => map,
                            _ => Map::new(),
                        };
                    }
                }
                Some(Value::Object(merged))
            }
            (Kind::Object(keys), Value::Object(map)) => {
                Some(Value::Object(self.object(keys, map, path)))
            }
            (Kind::StrMap, Value::Array(items)) => {
                let mut merged = Value::Object(Map::new());
                for item in items {
                    super::file::merge(&mut merged, item);
                }
                Some(merged)
            }
            (Kind::RawList | Kind::RawOne(_), object @ Value::Object(_)) => {
                Some(Value::Array(vec![object]))
            }
            (_, value) => Some(value),
        }
    }
}

fn expected(kind: Kind) -> &'static str {
    match kind {
        Kind::Bool => "a boolean",
        Kind::Str => "a string",
        Kind::Int => "a whole number",
        Kind::StrList => "a list of strings",
        Kind::StrMap => "an object of strings",
        Kind::Object(_) => "an object",
        Kind::RawOne(_) => "an object",
        Kind::RawList => "a list of objects",
    }
}

fn describe(value: &Value) -> String {
    let kind = match value {
        Value::Null => return "null".to_string(),
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    };
    let text = value.to_string();
    if text.len() <= 40 {
        format!("{kind} ({text})")
    } else {
        kind.to_string()
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Sets the dotted `path` in `tree` (creating objects on the way); keeps an existing value unless `overwrite`.
fn set_path(tree: &mut Map<String, Value>, path: &str, value: Value, overwrite: bool) {
    let mut parts = path.split('.').peekable();
    let mut node = tree;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            if overwrite || !node.contains_key(part) {
                node.insert(part.to_string(), value);
            }
            return;
        }
        let child = node
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !child.is_object() {
            *child = Value::Object(Map::new());
        }
        let Value::Object(map) = child else { return };
        node = map;
    }
}

/// Appends the array `value` to the list at the top-level key `path`.
fn append_path(tree: &mut Map<String, Value>, path: &str, value: Value) {
    match tree.get_mut(path) {
        Some(existing) => super::file::merge(existing, value),
        None => {
            tree.insert(path.to_string(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(value: Value) -> Result<Checked, String> {
        let Value::Object(map) = value else {
            panic!("an object")
        };
        check_source("f.json", map)
    }

    #[test]
    fn unknown_keys_are_errors_in_consuls_shape() {
        assert_eq!(
            check(json!({"datacenter": "a", "nope": 1})).expect_err("unknown"),
            "1 error occurred:\n\t* invalid config key nope"
        );
        assert_eq!(
            check(json!({"ports": {"htp": 1}, "zzz": true})).expect_err("unknown"),
            "2 errors occurred:\n\t* invalid config key ports.htp\n\t* invalid config key zzz"
        );
    }

    #[test]
    fn types_are_checked() {
        assert_eq!(
            check(json!({"server": "true"})).expect_err("type"),
            "1 error occurred:\n\t* server: expected a boolean, got a string (\"true\")"
        );
        assert_eq!(
            check(json!({"ports": {"http": 1.5}})).expect_err("type"),
            "1 error occurred:\n\t* ports.http: expected a whole number, got a number (1.5)"
        );
        assert!(check(json!({"retry_join": "a"})).is_err());
        assert!(check(json!({"node_meta": {"a": 1}})).is_err());
    }

    #[test]
    fn shapes_are_normalised_and_renames_applied() {
        let checked = check(json!({
            "ports": [{"http": 1}, {"dns": 2, "http": 3}],
            "service": {"name": "a"},
            "services": [{"name": "b"}],
            "check": [{"id": "c1"}, {"id": "c2"}],
            "watches": {"type": "key"},
            "acl_master_token": "m",
            "acl": {"tokens": {"agent_master": "r", "agent_recovery": "kept"}},
            "start_join": ["10.0.0.1"],
            "retry_join": ["10.0.0.2"],
            "telemetry": {"anything": ["goes"]},
        }))
        .expect("valid");
        assert_eq!(
            Value::Object(checked.tree),
            json!({
                "ports": {"http": 3, "dns": 2},
                "services": [{"name": "b"}, {"name": "a"}],
                "checks": [{"id": "c1"}, {"id": "c2"}],
                "watches": [{"type": "key"}],
                "acl": {"tokens": {"agent_recovery": "kept", "initial_management": "m"}},
                "retry_join": ["10.0.0.2", "10.0.0.1"],
            })
        );
        let warnings = checked.warnings.join("\n");
        assert!(
            warnings.contains(
                "f.json: config key \"telemetry\" is not supported by cairn yet and is ignored"
            ),
            "{warnings}"
        );
        assert!(
            warnings.contains(
                "f.json: config key \"acl_master_token\" is deprecated; use \"acl.tokens.initial_management\" instead"
            ),
            "{warnings}"
        );
        assert!(
            warnings.contains("\"acl.tokens.agent_master\" is deprecated"),
            "{warnings}"
        );
        let checked = check(json!({"acl_datacenter": "dc2"})).expect("valid");
        assert_eq!(
            Value::Object(checked.tree),
            json!({"primary_datacenter": "dc2", "acl": {"enabled": true}})
        );
    }

    #[test]
    fn launcher_keys_are_all_known() {
        let keys = json!({
            "ports": {"http": 1, "https": 2, "dns": 3, "grpc": 4, "grpc_tls": 5, "serf_lan": 6, "serf_wan": 7,
                      "server": 8},
            "performance": {"raft_multiplier": 1},
            "enable_script_checks": true, "enable_local_script_checks": true,
            "datacenter": "dc1", "primary_datacenter": "dc1", "acl_datacenter": "dc1", "acl_master_token": "x",
            "acl": {"enabled": true, "default_policy": "deny", "down_policy": "extend-cache",
                    "enable_token_persistence": true,
                    "tokens": {"initial_management": "a", "master": "b", "agent": "c", "agent_master": "d",
                               "agent_recovery": "e", "default": "f", "replication": "g", "dns": "h"}},
            "encrypt": "k", "session_ttl_min": "10s", "server": true, "bootstrap": false, "bootstrap_expect": 3,
            "advertise_addr": "10.0.0.1", "bind_addr": "10.0.0.1", "client_addr": "127.0.0.1",
            "addresses": {"http": "127.0.0.1", "dns": "127.0.0.1"}, "node_name": "n", "node_id": "i",
            "node_meta": {"a": "b"}, "data_dir": "/d", "log_level": "INFO", "disable_update_check": true,
            "skip_leave_on_interrupt": true, "leave_on_terminate": false, "retry_join": ["a"],
            "retry_join_wan": ["b"], "raft_protocol": 3, "segments": [], "connect": {"enabled": true,
            "ca_config": {}}, "peering": {"enabled": false}, "ui_config": {"enabled": true},
            "services": [{}], "checks": [{}], "watches": [{}], "recursors": ["8.8.8.8"],
            "dns_config": {"allow_stale": true}, "domain": "consul", "limits": {"kv_max_value_size": 1}
        });
        check(keys).expect("every launcher key is accepted");
    }
}
