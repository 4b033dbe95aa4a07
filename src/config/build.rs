//! Building an [`AgentConfig`] from the merged source tree: typed reads by dotted key, Consul's defaults
//! (and `-dev`'s), validation with Consul's error texts.

use super::*;

/// Read access to the merged tree by dotted key. Values were type-checked per source, so a value of another
/// type than asked for does not occur; it reads as absent.
pub(super) struct Tree<'a>(pub(super) &'a Map<String, Value>);

impl Tree<'_> {
    fn get(&self, path: &str) -> Option<&Value> {
        let mut parts = path.split('.');
        let mut value = self.0.get(parts.next()?)?;
        for part in parts {
            value = value.as_object()?.get(part)?;
        }
        Some(value)
    }

    fn string(&self, path: &str) -> Option<&str> {
        self.get(path)?.as_str()
    }

    fn bool(&self, path: &str) -> Option<bool> {
        self.get(path)?.as_bool()
    }

    /// A whole number; numbers beyond i64 read as i64::MAX (every range check rejects them).
    fn int(&self, path: &str) -> Option<i64> {
        let number = self.get(path)?.as_number()?;
        number
            .as_i64()
            .or_else(|| number.as_u64().map(|_| i64::MAX))
    }

    fn strings(&self, path: &str) -> Vec<&str> {
        match self.get(path) {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    fn objects(&self, path: &str) -> Vec<Value> {
        match self.get(path) {
            Some(Value::Array(items)) => items.clone(),
            _ => Vec::new(),
        }
    }
}

fn invalid(text: String) -> ConfigError {
    ConfigError::Invalid(text)
}

/// One IP address for `key`; `None` when unset or empty.
fn single_ip(tree: &Tree<'_>, key: &str) -> Result<Option<IpAddr>, ConfigError> {
    let Some(text) = tree.string(key) else {
        return Ok(None);
    };
    let ips = ip_list(key, text)?;
    match ips.as_slice() {
        [] => Ok(None),
        [ip] => Ok(Some(*ip)),
        _ => Err(invalid(format!(
            "{key} cannot contain multiple addresses: {text:?}"
        ))),
    }
}

/// A space-separated list of IP addresses (`[::]` allowed), as Consul reads `client_addr`.
fn ip_list(key: &str, text: &str) -> Result<Vec<IpAddr>, ConfigError> {
    if text.contains("{{") {
        return Err(invalid(format!(
            "{key}: go-sockaddr templates are not supported by cairn yet: {text:?}"
        )));
    }
    let mut ips = Vec::new();
    for word in text.split_whitespace() {
        let bare = word
            .strip_prefix('[')
            .and_then(|w| w.strip_suffix(']'))
            .unwrap_or(word);
        let ip = bare
            .parse::<IpAddr>()
            .map_err(|_| invalid(format!("{key}: invalid ip address: {word}")))?;
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    Ok(ips)
}

/// A port key: unset is `default`, 0 or below disables it when `can_disable` (Consul's -1), above 65535 is an
/// error.
fn port(
    tree: &Tree<'_>,
    key: &str,
    default: Option<u16>,
    can_disable: bool,
) -> Result<Option<u16>, ConfigError> {
    let Some(value) = tree.int(key) else {
        return Ok(default);
    };
    if value <= 0 {
        if can_disable {
            return Ok(None);
        }
        return Err(invalid(format!(
            "{key}: invalid port: {value} (this listener cannot be disabled)"
        )));
    }
    u16::try_from(value)
        .map(Some)
        .map_err(|_| invalid(format!("{key}: invalid port: {value}")))
}

/// The gossip addresses of a join list (`IP` or `IP:PORT`; `default_port` when the port is left out).
fn join_addrs(
    tree: &Tree<'_>,
    key: &str,
    default_port: u16,
) -> Result<Vec<SocketAddr>, ConfigError> {
    let mut addrs = Vec::new();
    for text in tree.strings(key) {
        let addr = socket_addr(text, default_port).ok_or_else(|| {
            invalid(format!(
                "{key}: invalid address {text:?}: must be IP or IP:PORT (names and cloud auto-join \
                 are not supported)"
            ))
        })?;
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    Ok(addrs)
}

/// A Go duration for `key` in milliseconds; `default_ms` when unset.
fn duration_ms(tree: &Tree<'_>, key: &str, default_ms: u64) -> Result<u64, ConfigError> {
    match tree.string(key) {
        None => Ok(default_ms),
        Some(text) => crate::api::duration::parse_duration_ms(text)
            .map_err(|error| invalid(format!("{key}: invalid duration: {text:?}: {error}"))),
    }
}

/// A TTL in whole seconds (DNS TTLs are 32-bit seconds).
fn ttl_s(key: &str, text: &str) -> Result<u32, ConfigError> {
    let ms = crate::api::duration::parse_duration_ms(text)
        .map_err(|error| invalid(format!("{key}: invalid duration: {text:?}: {error}")))?;
    u32::try_from(ms / 1_000).map_err(|_| invalid(format!("{key}: TTL too large: {text:?}")))
}

/// A whole number in `0..=u32::MAX` for `key`; `default` when unset.
fn count_u32(tree: &Tree<'_>, key: &str, default: u32) -> Result<u32, ConfigError> {
    match tree.int(key) {
        None => Ok(default),
        Some(n) => u32::try_from(n).map_err(|_| {
            invalid(format!(
                "{key} cannot be {n}: must be between 0 and {}",
                u32::MAX
            ))
        }),
    }
}

/// A domain name lower-cased with its trailing dot; `None` for empty or `.`.
fn domain_name(text: &str) -> Option<String> {
    let name = text.trim().to_ascii_lowercase();
    match name.as_str() {
        "" | "." => None,
        n if n.ends_with('.') => Some(name),
        _ => Some(format!("{name}.")),
    }
}

/// The DNS interface's settings: `domain`, `alt_domain` and `dns_config.*` with Consul's defaults.
fn dns_config(
    tree: &Tree<'_>,
    domain: &str,
    datacenter: &str,
    recursion: bool,
) -> Result<crate::dns::DnsConfig, ConfigError> {
    use crate::dns::{DnsConfig, RecursorStrategy, ServiceTtls, Soa};
    let defaults = DnsConfig::default();
    let alt_domain = tree.string("alt_domain").and_then(domain_name);
    let domain = domain_name(domain).unwrap_or_else(|| DOMAIN_DEFAULT.to_string());
    if alt_domain.as_deref() == Some(domain.as_str()) {
        return Err(invalid(format!(
            "alt_domain cannot be the same as domain: {domain:?}"
        )));
    }
    let mut service_ttl = ServiceTtls::default();
    if let Some(Value::Object(map)) = tree.get("dns_config.service_ttl") {
        for (name, value) in map {
            let key = format!("dns_config.service_ttl.{name}");
            let text = value.as_str().unwrap_or_default();
            service_ttl.insert(name, ttl_s(&key, text)?);
        }
    }
    let node_ttl_s = match tree.string("dns_config.node_ttl") {
        None => defaults.node_ttl_s,
        Some(text) => ttl_s("dns_config.node_ttl", text)?,
    };
    let recursor_strategy = match tree.string("dns_config.recursor_strategy") {
        None | Some("") | Some("sequential") => RecursorStrategy::Sequential,
        Some("random") => RecursorStrategy::Random,
        Some(other) => {
            return Err(invalid(format!(
                "dns_config.recursor_strategy must be \"sequential\" or \"random\", not {other:?}"
            )))
        }
    };
    let udp_answer_limit = match tree.int("dns_config.udp_answer_limit") {
        None => defaults.udp_answer_limit,
        Some(n) if n >= 0 => usize::try_from(n).unwrap_or(usize::MAX),
        Some(n) => {
            return Err(invalid(format!(
                "dns_config.udp_answer_limit cannot be {n}. Must be greater than or equal to zero"
            )))
        }
    };
    let a_record_limit = match tree.int("dns_config.a_record_limit") {
        None => defaults.a_record_limit,
        Some(n) if n >= 0 => usize::try_from(n).unwrap_or(usize::MAX),
        Some(n) => {
            return Err(invalid(format!(
                "dns_config.a_record_limit cannot be {n}. Must be greater than or equal to zero"
            )))
        }
    };
    let soa_defaults = Soa::default();
    let soa = Soa {
        refresh_s: count_u32(tree, "dns_config.soa.refresh", soa_defaults.refresh_s)?,
        retry_s: count_u32(tree, "dns_config.soa.retry", soa_defaults.retry_s)?,
        expire_s: count_u32(tree, "dns_config.soa.expire", soa_defaults.expire_s)?,
        min_ttl_s: count_u32(tree, "dns_config.soa.min_ttl", soa_defaults.min_ttl_s)?,
    };
    let recursor_timeout_ms = duration_ms(
        tree,
        "dns_config.recursor_timeout",
        defaults.recursor_timeout_ms,
    )?;
    if recursor_timeout_ms == 0 {
        return Err(invalid(
            "dns_config.recursor_timeout must be positive".to_string(),
        ));
    }
    Ok(DnsConfig {
        domain,
        alt_domain,
        datacenter: datacenter.to_string(),
        recursion,
        allow_stale: tree
            .bool("dns_config.allow_stale")
            .unwrap_or(defaults.allow_stale),
        max_stale_ms: duration_ms(tree, "dns_config.max_stale", defaults.max_stale_ms)?,
        node_ttl_s,
        service_ttl,
        only_passing: tree
            .bool("dns_config.only_passing")
            .unwrap_or(defaults.only_passing),
        enable_truncate: tree
            .bool("dns_config.enable_truncate")
            .unwrap_or(defaults.enable_truncate),
        udp_answer_limit,
        a_record_limit,
        node_meta_txt: tree
            .bool("dns_config.enable_additional_node_meta_txt")
            .unwrap_or(defaults.node_meta_txt),
        disable_compression: tree
            .bool("dns_config.disable_compression")
            .unwrap_or(defaults.disable_compression),
        soa,
        recursor_timeout_ms,
        recursor_strategy,
    })
}

/// The `autopilot { ... }` block over Consul's defaults.
fn autopilot(tree: &Tree<'_>) -> Result<crate::fsm::AutopilotConfig, ConfigError> {
    let defaults = crate::fsm::AutopilotConfig::default();
    Ok(crate::fsm::AutopilotConfig {
        cleanup_dead_servers: tree
            .bool("autopilot.cleanup_dead_servers")
            .unwrap_or(defaults.cleanup_dead_servers),
        last_contact_threshold_ms: duration_ms(
            tree,
            "autopilot.last_contact_threshold",
            defaults.last_contact_threshold_ms,
        )?,
        max_trailing_logs: at_least(
            tree,
            "autopilot.max_trailing_logs",
            defaults.max_trailing_logs,
            0,
        )?,
        min_quorum: at_least(tree, "autopilot.min_quorum", 0, 0)?,
        server_stabilization_time_ms: duration_ms(
            tree,
            "autopilot.server_stabilization_time",
            defaults.server_stabilization_time_ms,
        )?,
        ..defaults
    })
}

/// A whole number of at least `min`.
fn at_least(tree: &Tree<'_>, key: &str, default: u64, min: u64) -> Result<u64, ConfigError> {
    match tree.int(key) {
        None => Ok(default),
        Some(n) if n >= 0 && n as u64 >= min => Ok(n as u64),
        Some(n) => Err(invalid(format!(
            "{key} cannot be {n}. Must be at least {min}"
        ))),
    }
}

/// Consul's check for datacenter names: lower-case alphanumerics, `-` and `_`.
fn check_basic_name(key: &str, value: &str) -> Result<(), ConfigError> {
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !ok {
        return Err(invalid(format!(
            "{key} can only contain lowercase alphanumeric, - or _ characters. received: {value:?}"
        )));
    }
    if value.len() > crate::rpc::DATACENTER_BYTES_MAX {
        return Err(invalid(format!(
            "{key} must be 1 to {} bytes: {value:?}",
            crate::rpc::DATACENTER_BYTES_MAX
        )));
    }
    Ok(())
}

/// `IP` or `IP:PORT` (`[v6]:PORT`), the port defaulting to `default_port`.
fn socket_addr(text: &str, default_port: u16) -> Option<SocketAddr> {
    text.parse::<SocketAddr>().ok().or_else(|| {
        let bare = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(text);
        bare.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, default_port))
    })
}

fn check_node_meta(meta: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    let bad = |why: String| Err(invalid(format!("node_meta invalid: {why}")));
    if meta.len() > NODE_META_PAIRS_MAX {
        return bad(format!(
            "Node metadata cannot contain more than {NODE_META_PAIRS_MAX} key/value pairs"
        ));
    }
    for (key, value) in meta {
        if key.is_empty() {
            return bad("Key cannot be blank".to_string());
        }
        if !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return bad(format!(
                "Key {key:?} is invalid: only alphanumerics, - and _ are allowed"
            ));
        }
        if key.len() > NODE_META_KEY_BYTES_MAX {
            return bad(format!(
                "Key is too long (limit: {NODE_META_KEY_BYTES_MAX} characters)"
            ));
        }
        if key.starts_with("consul-") {
            return bad(format!(
                "Key prefix 'consul-' is reserved for internal use: {key:?}"
            ));
        }
        if value.len() > NODE_META_VALUE_BYTES_MAX {
            return bad(format!(
                "Value is too long (limit: {NODE_META_VALUE_BYTES_MAX} characters)"
            ));
        }
    }
    Ok(())
}

pub(super) fn build(
    tree: &Tree<'_>,
    dev: bool,
    hostname: Option<&str>,
    config_sources: Vec<PathBuf>,
    warnings: &mut Vec<String>,
) -> Result<AgentConfig, ConfigError> {
    let datacenter = tree
        .string("datacenter")
        .unwrap_or(DATACENTER_DEFAULT)
        .to_lowercase();
    check_basic_name("datacenter", &datacenter)?;

    let data_dir = tree
        .string("data_dir")
        .filter(|path| !path.is_empty())
        .map(PathBuf::from);
    if !dev && data_dir.is_none() {
        return Err(ConfigError::DataDirEmpty);
    }
    if let (false, Some(path)) = (dev, &data_dir) {
        if path.exists() && !path.is_dir() {
            return Err(invalid(format!(
                "data_dir {:?} is not a directory",
                path.display().to_string()
            )));
        }
    }

    let mut node_name = tree
        .string("node_name")
        .unwrap_or_default()
        .trim()
        .to_string();
    if node_name.is_empty() {
        node_name = hostname.unwrap_or_default().trim().to_string();
    }
    if node_name.is_empty() {
        return Err(ConfigError::NodeNameEmpty);
    }
    if !node_name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        warnings.push(format!(
            "Node name {node_name:?} will not be discoverable via DNS due to invalid characters. \
             Valid characters include all alpha-numerics and dashes."
        ));
    } else if node_name.len() > 63 {
        warnings.push(format!(
            "Node name {node_name:?} will not be discoverable via DNS due to it being too long. \
             Valid lengths are between 1 and 63 bytes."
        ));
    }

    let log_level = match tree.string("log_level") {
        Some(level) => {
            LogLevel::parse(level).ok_or_else(|| ConfigError::InvalidLogLevel(level.to_string()))?
        }
        None if dev => LogLevel::Debug,
        None => LogLevel::Info,
    };

    let server = tree.bool("server").unwrap_or(false);
    let mut bootstrap = tree.bool("bootstrap").unwrap_or(false);
    let mut bootstrap_expect = match tree.int("bootstrap_expect") {
        None | Some(0) => None,
        Some(n) if n < 0 => {
            return Err(invalid(format!(
                "bootstrap_expect cannot be {n}. Must be greater than or equal to zero"
            )))
        }
        Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
    };
    if bootstrap_expect == Some(1) {
        bootstrap = true;
        bootstrap_expect = None;
        warnings
            .push("BootstrapExpect is set to 1; this is the same as Bootstrap mode.".to_string());
    }

    let bind = single_ip(tree, "bind_addr")?;
    let advertise = single_ip(tree, "advertise_addr")?;
    if advertise.is_some_and(|ip| ip.is_unspecified()) {
        return Err(invalid(
            "Advertise address cannot be 0.0.0.0, :: or [::]".to_string(),
        ));
    }
    let client_addrs = match tree.string("client_addr") {
        None => vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        Some(text) => ip_list("client_addr", text)?,
    };
    if client_addrs.is_empty() {
        warnings.push(
            "client_addr is empty, client services (DNS, HTTP, HTTPS, GRPC) will not be listening \
             for connections"
                .to_string(),
        );
    }
    let addresses_http = single_ip(tree, "addresses.http")?;
    let addresses_dns = single_ip(tree, "addresses.dns")?;

    let ports = Ports {
        http: port(tree, "ports.http", Some(HTTP_PORT_DEFAULT), true)?,
        https: port(tree, "ports.https", None, true)?,
        dns: port(tree, "ports.dns", Some(DNS_PORT_DEFAULT), true)?,
        grpc: port(tree, "ports.grpc", dev.then_some(GRPC_PORT_DEV), true)?,
        serf_lan: port(tree, "ports.serf_lan", Some(SERF_LAN_PORT_DEFAULT), false)?,
        serf_wan: port(tree, "ports.serf_wan", Some(SERF_WAN_PORT_DEFAULT), true)?,
        server: port(tree, "ports.server", Some(SERVER_PORT_DEFAULT), false)?,
    };
    let server_port = ports.server.unwrap_or(SERVER_PORT_DEFAULT);

    let serf_lan_port = ports.serf_lan.unwrap_or(SERF_LAN_PORT_DEFAULT);
    let retry_join = join_addrs(tree, "retry_join", serf_lan_port)?;
    let serf_wan_port = ports.serf_wan.unwrap_or(SERF_WAN_PORT_DEFAULT);
    let retry_join_wan = join_addrs(tree, "retry_join_wan", serf_wan_port)?;
    let retry_interval_ms = duration_ms(tree, "retry_interval", RETRY_INTERVAL_MS_DEFAULT)?.max(1);
    let retry_interval_wan_ms =
        duration_ms(tree, "retry_interval_wan", RETRY_INTERVAL_MS_DEFAULT)?.max(1);
    let retry_max = count_u32(tree, "retry_max", 0)?;

    let raft_snapshot_threshold = at_least(
        tree,
        "raft_snapshot_threshold",
        RAFT_SNAPSHOT_THRESHOLD_DEFAULT,
        1,
    )?;
    let raft_trailing_logs = at_least(tree, "raft_trailing_logs", RAFT_TRAILING_LOGS_DEFAULT, 0)?;
    let autopilot = autopilot(tree)?;
    if let Some(version) = tree.int("raft_protocol") {
        if version != 3 {
            return Err(invalid(format!(
                "raft_protocol version {version} is not supported by this version of cairn"
            )));
        }
    }
    let raft_multiplier = match tree.int("performance.raft_multiplier") {
        None => RAFT_MULTIPLIER_DEFAULT,
        Some(n) if (1..=i64::from(RAFT_MULTIPLIER_MAX)).contains(&n) => n as u32,
        Some(n) => {
            return Err(invalid(format!(
                "performance.raft_multiplier cannot be {n}. Must be between 1 and {RAFT_MULTIPLIER_MAX}"
            )))
        }
    };
    let session_ttl_min_ms = match tree.string("session_ttl_min") {
        None => SESSION_TTL_MIN_MS_DEFAULT,
        Some(text) => crate::api::duration::parse_duration_ms(text).map_err(|error| {
            invalid(format!(
                "session_ttl_min: invalid duration: {text:?}: {error}"
            ))
        })?,
    };
    let ae_interval_ms = match tree.string("ae_interval") {
        None => AE_INTERVAL_MS_DEFAULT,
        Some(text) => match crate::api::duration::parse_duration_ms(text) {
            Ok(ms) if ms > 0 => ms,
            Ok(_) => return Err(invalid("ae_interval must be positive".to_string())),
            Err(error) => {
                return Err(invalid(format!(
                    "ae_interval: invalid duration: {text:?}: {error}"
                )))
            }
        },
    };
    let check_ms = |key: &str, default_ms: u64| match tree.string(key) {
        None => Ok(default_ms),
        Some(text) => crate::api::duration::parse_duration_ms(text)
            .map_err(|error| invalid(format!("{key}: invalid duration: {text:?}: {error}"))),
    };
    let check_deregister_interval_min_ms = check_ms(
        "check_deregister_interval_min",
        crate::agent::checks::DEREGISTER_MS_MIN_DEFAULT,
    )?;
    let check_reap_interval_ms = check_ms(
        "check_reap_interval",
        crate::agent::checks::REAP_INTERVAL_MS_DEFAULT,
    )?
    .max(1);
    let check_output_max_size_bytes = at_least(
        tree,
        "check_output_max_size",
        crate::api::agent::CHECK_OUTPUT_BYTES_MAX as u64,
        1,
    )?
    .min(crate::api::agent::CHECK_OUTPUT_BYTES_CAP as u64);
    let check_update_interval_ms = match tree.string("check_update_interval") {
        None => CHECK_UPDATE_INTERVAL_MS_DEFAULT,
        Some(text) => crate::api::duration::parse_duration_ms(text).map_err(|error| {
            invalid(format!(
                "check_update_interval: invalid duration: {text:?}: {error}"
            ))
        })?,
    };
    let kv_max_value_size_bytes = at_least(
        tree,
        "limits.kv_max_value_size",
        KV_MAX_VALUE_SIZE_BYTES_DEFAULT,
        1,
    )?;
    let txn_max_req_len_bytes = at_least(
        tree,
        "limits.txn_max_req_len",
        TXN_MAX_REQ_LEN_BYTES_DEFAULT,
        1,
    )?;

    let node_id = match tree.string("node_id").map(str::trim) {
        None | Some("") => None,
        Some(text) => {
            let id = text.to_lowercase();
            let is_uuid = id.len() == 36 && uuid::Uuid::try_parse(&id).is_ok();
            if !is_uuid {
                return Err(invalid(format!(
                    "node_id: invalid node ID {text:?}: must be a UUID (8-4-4-4-12 hex digits)"
                )));
            }
            Some(id)
        }
    };
    let disable_host_node_id = tree.bool("disable_host_node_id").unwrap_or(true);
    let node_meta: BTreeMap<String, String> = match tree.get("node_meta") {
        Some(Value::Object(map)) => map
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect(),
        _ => BTreeMap::new(),
    };
    check_node_meta(&node_meta)?;

    let primary_datacenter = match tree.string("primary_datacenter") {
        None | Some("") => datacenter.clone(),
        Some(text) => {
            let name = text.to_lowercase();
            check_basic_name("primary_datacenter", &name)?;
            name
        }
    };

    let ui = match (tree.bool("ui_config.enabled"), tree.bool("ui")) {
        (Some(enabled), legacy) => {
            if legacy.is_some() {
                warnings.push(ui_deprecation());
            }
            enabled
        }
        (None, Some(enabled)) => {
            warnings.push(ui_deprecation());
            enabled
        }
        (None, None) => dev,
    };
    let enable_script_checks = tree.bool("enable_script_checks").unwrap_or(false);
    let enable_local_script_checks = tree
        .bool("enable_local_script_checks")
        .unwrap_or(enable_script_checks);

    let token = |key: &str| {
        tree.string(key)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
    };
    let acl = Acl {
        enabled: tree.bool("acl.enabled").unwrap_or(false),
        default_policy: tree
            .string("acl.default_policy")
            .unwrap_or("allow")
            .to_string(),
        down_policy: tree
            .string("acl.down_policy")
            .unwrap_or("extend-cache")
            .to_string(),
        tokens: AclTokens {
            initial_management: token("acl.tokens.initial_management"),
            agent: token("acl.tokens.agent"),
            agent_recovery: token("acl.tokens.agent_recovery"),
            default: token("acl.tokens.default"),
            replication: token("acl.tokens.replication"),
            dns: token("acl.tokens.dns"),
        },
    };
    if !matches!(acl.default_policy.as_str(), "allow" | "deny") {
        return Err(invalid(format!(
            "acl.default_policy must be \"allow\" or \"deny\", not {:?}",
            acl.default_policy
        )));
    }
    if !matches!(
        acl.down_policy.as_str(),
        "allow" | "deny" | "extend-cache" | "async-cache"
    ) {
        return Err(invalid(format!(
            "acl.down_policy must be \"allow\", \"deny\", \"extend-cache\" or \"async-cache\", not {:?}",
            acl.down_policy
        )));
    }

    let encrypt = match tree.string("encrypt") {
        None | Some("") => None,
        Some(key) => {
            use base64::Engine;
            match base64::engine::general_purpose::STANDARD.decode(key) {
                Ok(bytes) if matches!(bytes.len(), 16 | 24 | 32) => Some(key.to_string()),
                Ok(bytes) => {
                    return Err(invalid(format!(
                    "encrypt has invalid key: the key is {} bytes; it must be 16, 24 or 32 bytes",
                    bytes.len()
                )))
                }
                Err(error) => return Err(invalid(format!("encrypt has invalid key: {error}"))),
            }
        }
    };

    let mut recursors = Vec::new();
    for text in tree.strings("recursors") {
        let addr = socket_addr(text, 53).ok_or_else(|| {
            invalid(format!(
                "recursors: invalid address {text:?}: must be IP or IP:PORT"
            ))
        })?;
        if addr.ip().is_unspecified() {
            return Err(invalid(
                "DNS recursor address cannot be 0.0.0.0, :: or [::]".to_string(),
            ));
        }
        if !recursors.contains(&addr) {
            recursors.push(addr);
        }
    }
    let domain = match tree.string("domain").map(str::trim) {
        None | Some("") | Some(".") => DOMAIN_DEFAULT.to_string(),
        Some(name) if name.ends_with('.') => name.to_string(),
        Some(name) => format!("{name}."),
    };
    let dns = dns_config(tree, &domain, &datacenter, !recursors.is_empty())?;
    let pid_file = tree
        .string("pid_file")
        .filter(|path| !path.is_empty())
        .map(PathBuf::from);

    let config = AgentConfig {
        dev,
        data_dir,
        node_name,
        log_level,
        server,
        datacenter,
        bind,
        server_port,
        bootstrap,
        bootstrap_expect,
        retry_join,
        retry_join_wan,
        retry_interval_ms,
        retry_interval_wan_ms,
        retry_max,
        raft_snapshot_threshold,
        raft_trailing_logs,
        autopilot,
        client_addrs,
        advertise,
        ports,
        addresses_http,
        addresses_dns,
        pid_file,
        raft_multiplier,
        session_ttl_min_ms,
        ae_interval_ms,
        check_update_interval_ms,
        check_deregister_interval_min_ms,
        check_reap_interval_ms,
        check_output_max_size_bytes,
        kv_max_value_size_bytes,
        txn_max_req_len_bytes,
        node_id,
        disable_host_node_id,
        node_meta,
        primary_datacenter,
        ui,
        enable_script_checks,
        enable_local_script_checks,
        acl,
        encrypt,
        leave_on_terminate: tree.bool("leave_on_terminate"),
        disable_keyring_file: tree.bool("disable_keyring_file").unwrap_or(false),
        skip_leave_on_interrupt: tree.bool("skip_leave_on_interrupt"),
        services: tree.objects("services"),
        checks: tree.objects("checks"),
        watches: tree.objects("watches"),
        recursors,
        domain,
        dns,
        config_sources,
    };
    config.check_server_flags()?;
    if config.server && !config.bootstrap {
        match config.bootstrap_expect {
            Some(2) => warnings.push(
                "bootstrap_expect = 2: A cluster with 2 servers will provide no failure tolerance."
                    .to_string(),
            ),
            Some(n) if n > 2 && n % 2 == 0 => warnings.push(
                "bootstrap_expect is even number: A cluster with an even number of servers does \
                 not achieve optimum fault tolerance."
                    .to_string(),
            ),
            _ => {}
        }
    }
    if config.server && config.bootstrap {
        warnings.push("bootstrap = true: do not enable unless necessary".to_string());
    }
    Ok(config)
}

fn ui_deprecation() -> String {
    "config key \"ui\" is deprecated; use \"ui_config.enabled\" instead".to_string()
}
