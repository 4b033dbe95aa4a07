//! Agent configuration: command-line flags (Go flag syntax) and JSON/HCL config files merged into one
//! [`AgentConfig`], with Consul's names, defaults and merge rules.
//!
//! Sources, lowest precedence first (Consul's order):
//! 1. list values given as flags (`-retry-join`, `-join`, `-recursor`), so that list values in files append
//!    after them;
//! 2. the `-config-file`/`-config-dir` paths in command-line order, a directory's `*.json`/`*.hcl` files in
//!    lexical order;
//! 3. every other flag (flags override files whatever their position on the command line);
//! 4. `-hcl` fragments.
//!
//! A later source overrides scalars, merges objects key by key (`ports`, `node_meta`, `acl`...) and appends to
//! lists (`retry_join`, `services`, `checks`, `watches`, `recursors`). Unset keys then take Consul's defaults
//! (`-dev` changes a few). See [`file`] for parsing and [`schema`] for the keys.
//!
//! SIGHUP: [`reload`] re-reads the same sources from the original arguments and applies only
//! [`RELOADABLE_FIELDS`]; other changes are reported as needing a restart.

mod build;
use build::{build, Tree};
pub mod file;
pub mod flags;
pub mod schema;

use crate::logging::LogLevel;
use file::Format;
use flags::{FlagError, FlagKind, FlagSpec, FlagValue};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// Consul's default server RPC port.
pub const SERVER_PORT_DEFAULT: u16 = 8300;
/// Consul's default HTTP API port.
pub const HTTP_PORT_DEFAULT: u16 = 8500;
/// Consul's default DNS port.
pub const DNS_PORT_DEFAULT: u16 = 8600;
/// The gRPC port `-dev` turns on (gRPC is off by default otherwise).
pub const GRPC_PORT_DEV: u16 = 8502;
/// Consul's default Serf LAN port.
pub const SERF_LAN_PORT_DEFAULT: u16 = 8301;
/// Consul's default Serf WAN port.
pub const SERF_WAN_PORT_DEFAULT: u16 = 8302;
/// Consul's default datacenter.
pub const DATACENTER_DEFAULT: &str = "dc1";
/// Consul's default DNS domain.
pub const DOMAIN_DEFAULT: &str = "consul.";
/// Consul's `raft_snapshot_threshold` default.
pub const RAFT_SNAPSHOT_THRESHOLD_DEFAULT: u64 = 16_384;
/// Consul's `raft_trailing_logs` default.
pub const RAFT_TRAILING_LOGS_DEFAULT: u64 = 10_240;
/// cairn's `performance.raft_multiplier` default: 1, Consul's recommendation for production (Consul itself
/// defaults to 5).
pub const RAFT_MULTIPLIER_DEFAULT: u32 = 1;
/// The largest `performance.raft_multiplier` Consul accepts.
pub const RAFT_MULTIPLIER_MAX: u32 = 10;
/// Consul's `session_ttl_min` default, in milliseconds.
pub const SESSION_TTL_MIN_MS_DEFAULT: u64 = 10_000;
/// Consul's `check_update_interval` default, in milliseconds.
pub const CHECK_UPDATE_INTERVAL_MS_DEFAULT: u64 = 300_000;
/// Consul's anti-entropy interval (`ae_interval`, not user-facing), in milliseconds.
pub const AE_INTERVAL_MS_DEFAULT: u64 = 60_000;
/// Consul's `retry_interval` default: 30 s between join attempts.
pub const RETRY_INTERVAL_MS_DEFAULT: u64 = 30_000;
/// Consul's `limits.kv_max_value_size` default (Raft's suggested maximum entry size).
pub const KV_MAX_VALUE_SIZE_BYTES_DEFAULT: u64 = 512 * 1024;
/// Consul's `limits.txn_max_req_len` default.
pub const TXN_MAX_REQ_LEN_BYTES_DEFAULT: u64 = 512 * 1024;
/// Servers a bootstrap configuration may name.
pub const BOOTSTRAP_SERVERS_MAX: usize = 64;
/// Consul's limit on `node_meta` pairs.
pub const NODE_META_PAIRS_MAX: usize = 64;
/// Consul's limit on a `node_meta` key, in bytes.
pub const NODE_META_KEY_BYTES_MAX: usize = 128;
/// Consul's limit on a `node_meta` value, in bytes.
pub const NODE_META_VALUE_BYTES_MAX: usize = 512;

/// What a SIGHUP may change without a restart (names of [`AgentConfig`] fields), as Consul's reloadable set:
/// the log level, node metadata, service/check/watch definitions, ACL tokens and the Raft snapshot tuning.
pub const RELOADABLE_FIELDS: &[&str] = &[
    "log_level",
    "node_meta",
    "services",
    "checks",
    "watches",
    "acl.tokens",
    "raft_snapshot_threshold",
    "raft_trailing_logs",
];

const fn flag(name: &'static str, kind: FlagKind, usage: &'static str) -> FlagSpec {
    FlagSpec { name, kind, usage }
}

/// The flags `agent` accepts (Consul's names; `-raft-snapshot-threshold` and `-raft-trailing-logs` are cairn
/// extensions for Consul's config keys).
pub const AGENT_FLAGS: &[FlagSpec] = &[
    flag("advertise", FlagKind::String, "Sets the advertise address to use."),
    flag(
        "alt-domain",
        FlagKind::String,
        "Alternate domain to use for DNS interface.",
    ),
    flag(
        "bind",
        FlagKind::String,
        "Sets the bind address for cluster communication.",
    ),
    flag("bootstrap", FlagKind::Bool, "Sets server to bootstrap mode."),
    flag(
        "bootstrap-expect",
        FlagKind::String,
        "Sets server to expect bootstrap mode. For now the expected servers are this one and the \
         -retry-join addresses, which must name exactly the other servers.",
    ),
    flag(
        "client",
        FlagKind::String,
        "Sets the address to bind for client access (HTTP, DNS, gRPC): one IP or a space-separated \
         list. Default 127.0.0.1.",
    ),
    flag(
        "config-dir",
        FlagKind::String,
        "Path to a directory to read configuration files from: every file ending in .json or .hcl, \
         in lexical order. Can be specified multiple times.",
    ),
    flag(
        "config-file",
        FlagKind::String,
        "Path to a file in JSON or HCL format with a matching file extension. Can be specified \
         multiple times.",
    ),
    flag(
        "config-format",
        FlagKind::String,
        "Config files are in this format irrespective of their extension. Must be 'hcl' or 'json'.",
    ),
    flag(
        "data-dir",
        FlagKind::String,
        "Path to a data directory to store agent state.",
    ),
    flag("datacenter", FlagKind::String, "Datacenter of the agent."),
    flag(
        "dev",
        FlagKind::Bool,
        "Starts the agent in development mode.",
    ),
    flag(
        "disable-keyring-file",
        FlagKind::Bool,
        "Disables the backing up of the keyring to a file.",
    ),
    flag(
        "disable-host-node-id",
        FlagKind::Bool,
        "Do not derive the node ID from the host; generate a random one.",
    ),
    flag(
        "dns-port",
        FlagKind::String,
        "DNS port to use (-1 disables it).",
    ),
    flag(
        "domain",
        FlagKind::String,
        "Domain to use for DNS interface.",
    ),
    flag(
        "enable-local-script-checks",
        FlagKind::Bool,
        "Enables health check scripts from configuration file.",
    ),
    flag(
        "enable-script-checks",
        FlagKind::Bool,
        "Enables health check scripts.",
    ),
    flag(
        "encrypt",
        FlagKind::String,
        "Provides the gossip encryption key.",
    ),
    flag(
        "grpc-port",
        FlagKind::String,
        "Sets the gRPC API port to listen on (-1 disables it).",
    ),
    flag(
        "hcl",
        FlagKind::String,
        "hcl config fragment. Can be specified multiple times.",
    ),
    flag(
        "http-port",
        FlagKind::String,
        "Sets the HTTP API port to listen on (-1 disables it).",
    ),
    flag(
        "https-port",
        FlagKind::String,
        "Sets the HTTPS API port to listen on (-1 disables it).",
    ),
    flag(
        "join",
        FlagKind::String,
        "Address of an agent to join at start time, as -retry-join. Can be specified multiple times.",
    ),
    flag(
        "join-wan",
        FlagKind::String,
        "Address of a server's Serf WAN port to join at start time, as -retry-join-wan. Can be \
         specified multiple times.",
    ),
    flag(
        "log-level",
        FlagKind::String,
        "Log level of the agent: trace, debug, info, warn or err.",
    ),
    flag(
        "node",
        FlagKind::String,
        "Name of this node. Must be unique in the cluster. Defaults to the hostname.",
    ),
    flag(
        "node-id",
        FlagKind::String,
        "A unique ID (a UUID) for this node across space and time.",
    ),
    flag(
        "node-meta",
        FlagKind::String,
        "An arbitrary metadata key/value pair for this node, of the format `key:value`. Can be \
         specified multiple times.",
    ),
    flag(
        "pid-file",
        FlagKind::String,
        "Path to file to store agent PID.",
    ),
    flag(
        "raft-snapshot-threshold",
        FlagKind::String,
        "Applied Raft entries between snapshots (cairn extension; Consul's raft_snapshot_threshold \
         config key). Default 16384.",
    ),
    flag(
        "raft-trailing-logs",
        FlagKind::String,
        "Raft entries kept after a snapshot for followers that are slightly behind (cairn \
         extension; Consul's raft_trailing_logs config key). Default 10240.",
    ),
    flag(
        "recursor",
        FlagKind::String,
        "Address of an upstream DNS server. Can be specified multiple times.",
    ),
    flag(
        "retry-interval",
        FlagKind::String,
        "Time to wait between join attempts. Default 30s.",
    ),
    flag(
        "retry-interval-wan",
        FlagKind::String,
        "Time to wait between join -wan attempts. Default 30s.",
    ),
    flag(
        "retry-join",
        FlagKind::String,
        "Address of an agent to join at start time with retries enabled (IP or IP:PORT; the port \
         defaults to the Serf LAN port 8301). Can be specified multiple times.",
    ),
    flag(
        "retry-join-wan",
        FlagKind::String,
        "Address of a server's Serf WAN port to join at start time with retries enabled (the port \
         defaults to 8302). Can be specified multiple times.",
    ),
    flag(
        "retry-max",
        FlagKind::String,
        "Maximum number of join attempts. Defaults to 0, which will retry indefinitely.",
    ),
    flag(
        "serf-lan-port",
        FlagKind::String,
        "Sets the Serf LAN port to listen on.",
    ),
    flag(
        "serf-wan-port",
        FlagKind::String,
        "Sets the Serf WAN port to listen on (-1 disables it).",
    ),
    flag("server", FlagKind::Bool, "Switches agent to server mode."),
    flag(
        "server-port",
        FlagKind::String,
        "Sets the server port to listen on.",
    ),
    flag(
        "ui",
        FlagKind::Bool,
        "Enables the built-in static web UI server.",
    ),
];

/// How a flag becomes a config key.
#[derive(Clone, Copy)]
enum FlagKey {
    Str(&'static str),
    Bool(&'static str),
    Int(&'static str),
    List(&'static str),
    Meta,
}

/// The flags that set config keys (the others: `-dev`, `-config-*`, `-hcl`).
const FLAG_KEYS: &[(&str, FlagKey)] = &[
    ("advertise", FlagKey::Str("advertise_addr")),
    ("alt-domain", FlagKey::Str("alt_domain")),
    ("bind", FlagKey::Str("bind_addr")),
    ("bootstrap", FlagKey::Bool("bootstrap")),
    ("bootstrap-expect", FlagKey::Int("bootstrap_expect")),
    ("client", FlagKey::Str("client_addr")),
    ("data-dir", FlagKey::Str("data_dir")),
    ("datacenter", FlagKey::Str("datacenter")),
    (
        "disable-host-node-id",
        FlagKey::Bool("disable_host_node_id"),
    ),
    (
        "disable-keyring-file",
        FlagKey::Bool("disable_keyring_file"),
    ),
    ("dns-port", FlagKey::Int("ports.dns")),
    ("domain", FlagKey::Str("domain")),
    (
        "enable-local-script-checks",
        FlagKey::Bool("enable_local_script_checks"),
    ),
    (
        "enable-script-checks",
        FlagKey::Bool("enable_script_checks"),
    ),
    ("encrypt", FlagKey::Str("encrypt")),
    ("grpc-port", FlagKey::Int("ports.grpc")),
    ("http-port", FlagKey::Int("ports.http")),
    ("https-port", FlagKey::Int("ports.https")),
    ("join", FlagKey::List("retry_join")),
    ("join-wan", FlagKey::List("retry_join_wan")),
    ("log-level", FlagKey::Str("log_level")),
    ("node", FlagKey::Str("node_name")),
    ("node-id", FlagKey::Str("node_id")),
    ("node-meta", FlagKey::Meta),
    ("pid-file", FlagKey::Str("pid_file")),
    (
        "raft-snapshot-threshold",
        FlagKey::Int("raft_snapshot_threshold"),
    ),
    ("raft-trailing-logs", FlagKey::Int("raft_trailing_logs")),
    ("recursor", FlagKey::List("recursors")),
    ("retry-interval", FlagKey::Str("retry_interval")),
    ("retry-interval-wan", FlagKey::Str("retry_interval_wan")),
    ("retry-join", FlagKey::List("retry_join")),
    ("retry-join-wan", FlagKey::List("retry_join_wan")),
    ("retry-max", FlagKey::Int("retry_max")),
    ("serf-lan-port", FlagKey::Int("ports.serf_lan")),
    ("serf-wan-port", FlagKey::Int("ports.serf_wan")),
    ("server", FlagKey::Bool("server")),
    ("server-port", FlagKey::Int("ports.server")),
    ("ui", FlagKey::Bool("ui_config.enabled")),
];

/// The listener ports; `None` is a disabled listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ports {
    /// `ports.http` (8500).
    pub http: Option<u16>,
    /// `ports.https` (off by default).
    pub https: Option<u16>,
    /// `ports.dns` (8600).
    pub dns: Option<u16>,
    /// `ports.grpc` (off by default; 8502 with `-dev`).
    pub grpc: Option<u16>,
    /// `ports.serf_lan` (8301; cannot be disabled).
    pub serf_lan: Option<u16>,
    /// `ports.serf_wan` (8302).
    pub serf_wan: Option<u16>,
    /// `ports.server` (8300; cannot be disabled).
    pub server: Option<u16>,
}

/// `acl.tokens`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AclTokens {
    /// `initial_management` (legacy `master`, `acl_master_token`).
    pub initial_management: Option<String>,
    /// `agent` (legacy `acl_agent_token`).
    pub agent: Option<String>,
    /// `agent_recovery` (legacy `agent_master`, `acl_agent_master_token`).
    pub agent_recovery: Option<String>,
    /// `default` (legacy `acl_token`).
    pub default: Option<String>,
    /// `replication` (legacy `acl_replication_token`).
    pub replication: Option<String>,
    /// `dns`.
    pub dns: Option<String>,
}

/// The `acl` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acl {
    /// `acl.enabled` (also turned on by the legacy `acl_datacenter`).
    pub enabled: bool,
    /// `acl.default_policy`: `allow` (default) or `deny`.
    pub default_policy: String,
    /// `acl.down_policy`: `extend-cache` (default), `async-cache`, `allow` or `deny`.
    pub down_policy: String,
    /// `acl.tokens`.
    pub tokens: AclTokens,
}

/// Everything the agent needs to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentConfig {
    /// `-dev`: a development agent that keeps state in memory.
    pub dev: bool,
    /// `data_dir`: where agent state lives; required unless `dev`.
    pub data_dir: Option<PathBuf>,
    /// `node_name`: this node's name (defaults to the hostname).
    pub node_name: String,
    /// `log_level` (INFO; DEBUG with `-dev`).
    pub log_level: LogLevel,
    /// `server`: run a Raft server.
    pub server: bool,
    /// `datacenter` (lower-cased, as Consul does).
    pub datacenter: String,
    /// `bind_addr`: the address servers reach this one on (required for a server).
    pub bind: Option<IpAddr>,
    /// The server RPC port: always `ports.server`.
    pub server_port: u16,
    /// `bootstrap`: bootstrap a cluster of this server alone (also `bootstrap_expect = 1`).
    pub bootstrap: bool,
    /// `bootstrap_expect`: bootstrap once this many servers are alive in the LAN pool.
    pub bootstrap_expect: Option<usize>,
    /// `retry_join` (with `-join` and the legacy `start_join`): LAN gossip addresses to join (port 8301 unless
    /// given).
    pub retry_join: Vec<SocketAddr>,
    /// `retry_join_wan` (`-retry-join-wan`, `-join-wan`): WAN gossip addresses of other servers (port 8302).
    pub retry_join_wan: Vec<SocketAddr>,
    /// `retry_interval`: the wait between LAN join attempts (30 s).
    pub retry_interval_ms: u64,
    /// `retry_interval_wan`: the wait between WAN join attempts (30 s).
    pub retry_interval_wan_ms: u64,
    /// `retry_max`: LAN join attempts at most (0: no limit).
    pub retry_max: u32,
    /// `raft_snapshot_threshold`.
    pub raft_snapshot_threshold: u64,
    /// `raft_trailing_logs`.
    pub raft_trailing_logs: u64,
    /// `autopilot { ... }`: the autopilot configuration a new cluster's leader stores first.
    pub autopilot: crate::fsm::AutopilotConfig,
    /// `client_addr`: where the HTTP, DNS and gRPC listeners bind (127.0.0.1 by default).
    pub client_addrs: Vec<IpAddr>,
    /// `advertise_addr`: the address advertised to the cluster, when not the bind address.
    pub advertise: Option<IpAddr>,
    /// `ports`.
    pub ports: Ports,
    /// `addresses.http`: overrides `client_addrs` for the HTTP listener.
    pub addresses_http: Option<IpAddr>,
    /// `addresses.dns`: overrides `client_addrs` for the DNS listener.
    pub addresses_dns: Option<IpAddr>,
    /// `pid_file`.
    pub pid_file: Option<PathBuf>,
    /// `performance.raft_multiplier` (1 to 10) scales Raft timing.
    pub raft_multiplier: u32,
    /// `session_ttl_min`, in milliseconds.
    pub session_ttl_min_ms: u64,
    /// `ae_interval`: the base interval of anti-entropy's full sync, in milliseconds (tests shorten it).
    pub ae_interval_ms: u64,
    /// `check_update_interval`: how long a check's change of output alone waits before it is synced to the
    /// catalog, in milliseconds (Consul's default 5 minutes; 0 syncs every change at once).
    pub check_update_interval_ms: u64,
    /// `check_deregister_interval_min` (Consul's internal setting, 1 minute by default): the shortest
    /// `deregister_critical_service_after` honoured, in milliseconds.
    pub check_deregister_interval_min_ms: u64,
    /// `check_reap_interval` (Consul's internal setting, 30 seconds by default): how often services
    /// critical for too long are deregistered, in milliseconds.
    pub check_reap_interval_ms: u64,
    /// `check_output_max_size`: bytes of output kept for a check that names no `OutputMaxSize` (4096 by
    /// default, at most 64 KiB).
    pub check_output_max_size_bytes: u64,
    /// `limits.kv_max_value_size`.
    pub kv_max_value_size_bytes: u64,
    /// `limits.txn_max_req_len`.
    pub txn_max_req_len_bytes: u64,
    /// `node_id` (a lower-cased UUID).
    pub node_id: Option<String>,
    /// `disable_host_node_id` (true by default: a random node ID).
    pub disable_host_node_id: bool,
    /// `node_meta`.
    pub node_meta: BTreeMap<String, String>,
    /// `primary_datacenter` (legacy `acl_datacenter`); this datacenter when unset.
    pub primary_datacenter: String,
    /// `ui_config.enabled` (legacy `ui`, flag `-ui`; on with `-dev`).
    pub ui: bool,
    /// `enable_script_checks`.
    pub enable_script_checks: bool,
    /// `enable_local_script_checks` (defaults to `enable_script_checks`).
    pub enable_local_script_checks: bool,
    /// `acl`.
    pub acl: Acl,
    /// `encrypt`: the gossip key (base64 of 16, 24 or 32 bytes).
    pub encrypt: Option<String>,
    /// `leave_on_terminate` as given; see [`AgentConfig::leaves_on_terminate`].
    pub leave_on_terminate: Option<bool>,
    /// `disable_keyring_file`: do not keep the gossip keyring in `<data_dir>/serf/*.keyring`.
    pub disable_keyring_file: bool,
    /// `skip_leave_on_interrupt` as given; see [`AgentConfig::skips_leave_on_interrupt`].
    pub skip_leave_on_interrupt: Option<bool>,
    /// `services` and `service`, raw, in source order.
    pub services: Vec<Value>,
    /// `checks` and `check`, raw, in source order.
    pub checks: Vec<Value>,
    /// `watches`, raw.
    pub watches: Vec<Value>,
    /// `recursors`: upstream DNS servers (port 53 unless given).
    pub recursors: Vec<SocketAddr>,
    /// `domain`, with its trailing dot (`consul.`).
    pub domain: String,
    /// The DNS interface: `domain`, `alt_domain`, `dns_config` and whether `recursors` exist, with Consul's
    /// defaults.
    pub dns: crate::dns::DnsConfig,
    /// The config files loaded, in order (what a reload reads again).
    pub config_sources: Vec<PathBuf>,
}

/// A loaded configuration and what to warn the operator about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// The configuration.
    pub config: AgentConfig,
    /// Warnings: Consul keys cairn ignores (naming the file), deprecated keys, skipped files, advice.
    pub warnings: Vec<String>,
}

/// The outcome of a reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reloaded {
    /// The running configuration with the reloadable fields replaced.
    pub config: AgentConfig,
    /// Warnings from loading, then one per changed field that needs a restart.
    pub warnings: Vec<String>,
    /// The reloadable fields that changed (names from [`RELOADABLE_FIELDS`]).
    pub applied: Vec<&'static str>,
    /// Fields that changed but only take effect after a restart.
    pub needs_restart: Vec<&'static str>,
}

/// Why the agent's configuration was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// A flag error (Go's message), including a help request.
    Flag(FlagError),
    /// Neither `-dev` nor `data_dir` was given, or `data_dir` was empty.
    DataDirEmpty,
    /// `node_name` was empty and no hostname was available.
    NodeNameEmpty,
    /// `log_level` is not a known level.
    InvalidLogLevel(String),
    /// Arguments were left after the flags.
    UnexpectedArguments(Vec<String>),
    /// A config file could not be read or parsed (`failed to parse <path>: ...`), or a path could not be
    /// opened (the message says which).
    Source(String),
    /// A value is not acceptable; the message names the key.
    Invalid(String),
    /// Settings that contradict each other or are missing for the mode asked for.
    Conflict(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Flag(error) => write!(f, "{error}"),
            ConfigError::DataDirEmpty => write!(
                f,
                "data_dir cannot be empty: pass -data-dir=<path>, or -dev for an in-memory \
                 development agent"
            ),
            ConfigError::NodeNameEmpty => {
                write!(f, "node_name cannot be empty: pass -node=<name>")
            }
            ConfigError::InvalidLogLevel(level) => write!(
                f,
                "Invalid log level: {level:?}. Valid log levels are: [TRACE DEBUG INFO WARN ERR]"
            ),
            ConfigError::UnexpectedArguments(args) => {
                write!(f, "unexpected arguments: {}", args.join(" "))
            }
            ConfigError::Source(why) | ConfigError::Invalid(why) | ConfigError::Conflict(why) => {
                write!(f, "{why}")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// The command line, sorted into sources.
struct CommandLine {
    dev: bool,
    paths: Vec<PathBuf>,
    format: Option<Format>,
    hcl: Vec<String>,
    /// List values from flags (merged before the files).
    slices: Map<String, Value>,
    /// Every other value from flags (merged after the files).
    values: Map<String, Value>,
}

fn parse_command_line(args: &[String]) -> Result<CommandLine, ConfigError> {
    let parsed = flags::parse(AGENT_FLAGS, args).map_err(ConfigError::Flag)?;
    if !parsed.rest.is_empty() {
        return Err(ConfigError::UnexpectedArguments(parsed.rest.clone()));
    }
    let mut line = CommandLine {
        dev: false,
        paths: Vec::new(),
        format: None,
        hcl: Vec::new(),
        slices: Map::new(),
        values: Map::new(),
    };
    for (name, value) in parsed.values() {
        let text = match value {
            FlagValue::String(text) => text.as_str(),
            FlagValue::Bool(b) => {
                match name {
                    "dev" => line.dev = *b,
                    _ => {
                        if let Some((_, FlagKey::Bool(key))) =
                            FLAG_KEYS.iter().find(|(flag, _)| *flag == name)
                        {
                            set_dotted(&mut line.values, key, Value::Bool(*b));
                        }
                    }
                }
                continue;
            }
        };
        match name {
            "config-file" | "config-dir" => line.paths.push(PathBuf::from(text)),
            "config-format" => {
                line.format = Some(Format::parse(text).ok_or_else(|| {
                    ConfigError::Invalid(
                        "config: -config-format must be either 'hcl' or 'json'".to_string(),
                    )
                })?)
            }
            "hcl" => line.hcl.push(text.to_string()),
            _ => {
                let Some((_, key)) = FLAG_KEYS.iter().find(|(flag, _)| *flag == name) else {
                    continue;
                };
                match *key {
                    FlagKey::Str(key) => {
                        set_dotted(&mut line.values, key, Value::String(text.to_string()))
                    }
                    FlagKey::Int(key) => {
                        let number = parse_go_int(text).ok_or_else(|| {
                            ConfigError::Flag(FlagError::InvalidValue {
                                name: name.to_string(),
                                value: text.to_string(),
                            })
                        })?;
                        set_dotted(&mut line.values, key, Value::from(number))
                    }
                    FlagKey::List(key) => {
                        let list = line
                            .slices
                            .entry(key.to_string())
                            .or_insert_with(|| Value::Array(Vec::new()));
                        if let Value::Array(items) = list {
                            items.push(Value::String(text.to_string()));
                        }
                    }
                    FlagKey::Meta => {
                        let Some((k, v)) = text.split_once(':') else {
                            return Err(ConfigError::Invalid(format!(
                                "invalid value {text:?} for -node-meta: must be key:value"
                            )));
                        };
                        let meta = line
                            .values
                            .entry("node_meta".to_string())
                            .or_insert_with(|| Value::Object(Map::new()));
                        if let Value::Object(map) = meta {
                            map.insert(k.to_string(), Value::String(v.to_string()));
                        }
                    }
                    FlagKey::Bool(_) => {}
                }
            }
        }
    }
    Ok(line)
}

/// Go's `strconv.ParseInt(text, 0, 64)`: decimal, `0x`, `0o`/`0` octal, `0b`, with a sign and underscores
/// only between digits after a prefix; simplified to the forms people type.
fn parse_go_int(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let lower = digits.to_ascii_lowercase();
    let (radix, body) = if let Some(hex) = lower.strip_prefix("0x") {
        (16, hex)
    } else if let Some(bin) = lower.strip_prefix("0b") {
        (2, bin)
    } else if let Some(oct) = lower.strip_prefix("0o") {
        (8, oct)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if body.is_empty() || body.starts_with(['+', '-']) {
        return None;
    }
    let magnitude = i128::from_str_radix(body, radix).ok()?;
    i64::try_from(if negative { -magnitude } else { magnitude }).ok()
}

fn set_dotted(tree: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            tree.insert(path.to_string(), value);
        }
        Some((head, rest)) => {
            let child = tree
                .entry(head.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            if let Value::Object(map) = child {
                set_dotted(map, rest, value);
            }
        }
    }
}

/// Loads the configuration from `agent`'s arguments: flags, then the config files they name; `hostname` is the
/// default node name.
pub fn load(args: &[String], hostname: Option<&str>) -> Result<Loaded, ConfigError> {
    let line = parse_command_line(args)?;
    let mut warnings = Vec::new();
    let files = file::expand_paths(&line.paths, line.format, &mut warnings)
        .map_err(|error| ConfigError::Source(error.0))?;
    let mut tree = Value::Object(line.slices.clone());
    let mut config_sources = Vec::new();
    for source in &files {
        let text = file::read(&source.path).map_err(|error| ConfigError::Source(error.0))?;
        let name = source.path.display().to_string();
        let parsed = parse_source(&name, &text, source.format, &mut warnings)?;
        file::merge(&mut tree, Value::Object(parsed));
        config_sources.push(source.path.clone());
    }
    file::merge(&mut tree, Value::Object(line.values.clone()));
    for (index, fragment) in line.hcl.iter().enumerate() {
        let name = format!("flags-{index}.hcl");
        let parsed = parse_source(&name, fragment, Format::Hcl, &mut warnings)?;
        file::merge(&mut tree, Value::Object(parsed));
    }
    // Merging objects into an object keeps an object.
    let empty = Map::new();
    let config = build(
        &Tree(tree.as_object().unwrap_or(&empty)),
        line.dev,
        hostname,
        config_sources,
        &mut warnings,
    )?;
    Ok(Loaded { config, warnings })
}

fn parse_source(
    name: &str,
    text: &str,
    format: Format,
    warnings: &mut Vec<String>,
) -> Result<Map<String, Value>, ConfigError> {
    let failed = |why: String| ConfigError::Source(format!("failed to parse {name}: {why}"));
    let parsed = file::parse(text, format).map_err(failed)?;
    let checked = schema::check_source(name, parsed).map_err(failed)?;
    warnings.extend(checked.warnings);
    Ok(checked.tree)
}

/// Reloads for SIGHUP: reads the same sources again from the original `args` and returns `running` with the
/// [`RELOADABLE_FIELDS`] replaced. Other changed fields are listed (and warned about) as needing a restart. An
/// error leaves the running configuration as it is.
pub fn reload(
    args: &[String],
    hostname: Option<&str>,
    running: &AgentConfig,
) -> Result<Reloaded, ConfigError> {
    let Loaded {
        config: fresh,
        mut warnings,
    } = load(args, hostname)?;
    let mut next = running.clone();
    let mut applied = Vec::new();
    macro_rules! reload_field {
        ($name:literal, $($field:ident).+) => {
            if next.$($field).+ != fresh.$($field).+ {
                next.$($field).+ = fresh.$($field).+.clone();
                applied.push($name);
            }
        };
    }
    reload_field!("log_level", log_level);
    reload_field!("node_meta", node_meta);
    reload_field!("services", services);
    reload_field!("checks", checks);
    reload_field!("watches", watches);
    reload_field!("acl.tokens", acl.tokens);
    reload_field!("raft_snapshot_threshold", raft_snapshot_threshold);
    reload_field!("raft_trailing_logs", raft_trailing_logs);
    next.config_sources = fresh.config_sources.clone();
    let needs_restart = differing_fields(&next, &fresh);
    for field in &needs_restart {
        warnings.push(format!(
            "the change to {field} takes effect only after a restart"
        ));
    }
    Ok(Reloaded {
        config: next,
        warnings,
        applied,
        needs_restart,
    })
}

/// The fields (outside the reloadable set) that differ between `a` and `b`.
fn differing_fields(a: &AgentConfig, b: &AgentConfig) -> Vec<&'static str> {
    let mut out = Vec::new();
    macro_rules! compare {
        ($($name:literal => $($field:ident).+),+ $(,)?) => {
            $(if a.$($field).+ != b.$($field).+ { out.push($name); })+
        };
    }
    compare!(
        "dev" => dev,
        "data_dir" => data_dir,
        "node_name" => node_name,
        "server" => server,
        "datacenter" => datacenter,
        "bind" => bind,
        "server_port" => server_port,
        "bootstrap" => bootstrap,
        "bootstrap_expect" => bootstrap_expect,
        "retry_join" => retry_join,
        "retry_join_wan" => retry_join_wan,
        "retry_interval_ms" => retry_interval_ms,
        "retry_interval_wan_ms" => retry_interval_wan_ms,
        "retry_max" => retry_max,
        "client_addrs" => client_addrs,
        "advertise" => advertise,
        "ports" => ports,
        "addresses_http" => addresses_http,
        "addresses_dns" => addresses_dns,
        "pid_file" => pid_file,
        "raft_multiplier" => raft_multiplier,
        "session_ttl_min_ms" => session_ttl_min_ms,
        "ae_interval_ms" => ae_interval_ms,
        "check_update_interval_ms" => check_update_interval_ms,
        "check_deregister_interval_min_ms" => check_deregister_interval_min_ms,
        "check_reap_interval_ms" => check_reap_interval_ms,
        "check_output_max_size_bytes" => check_output_max_size_bytes,
        "kv_max_value_size_bytes" => kv_max_value_size_bytes,
        "txn_max_req_len_bytes" => txn_max_req_len_bytes,
        "node_id" => node_id,
        "disable_host_node_id" => disable_host_node_id,
        "primary_datacenter" => primary_datacenter,
        "ui" => ui,
        "enable_script_checks" => enable_script_checks,
        "enable_local_script_checks" => enable_local_script_checks,
        "acl.enabled" => acl.enabled,
        "acl.default_policy" => acl.default_policy,
        "acl.down_policy" => acl.down_policy,
        "encrypt" => encrypt,
        "leave_on_terminate" => leave_on_terminate,
        "disable_keyring_file" => disable_keyring_file,
        "skip_leave_on_interrupt" => skip_leave_on_interrupt,
        "recursors" => recursors,
        "domain" => domain,
        "dns_config" => dns,
    );
    out
}

impl AgentConfig {
    /// Builds the configuration from `agent`'s arguments (flags and the config files they name), dropping the
    /// warnings; see [`load`].
    pub fn from_args(args: &[String], hostname: Option<&str>) -> Result<AgentConfig, ConfigError> {
        load(args, hostname).map(|loaded| loaded.config)
    }

    fn check_server_flags(&self) -> Result<(), ConfigError> {
        let conflict = |why: &str| Err(ConfigError::Conflict(why.to_string()));
        if !self.server {
            if self.bootstrap {
                return conflict("'bootstrap = true' requires 'server = true'");
            }
            if self.bootstrap_expect.is_some() {
                return conflict("'bootstrap_expect > 0' requires 'server = true'");
            }
            return Ok(());
        }
        if self.dev {
            // -dev is an in-memory server on 127.0.0.1: -server adds nothing and needs no -bind.
            return Ok(());
        }
        let Some(bind) = self.bind else {
            return conflict(
                "a server needs -bind=<ip> (bind_addr): the address other servers reach it on",
            );
        };
        if bind.is_unspecified() {
            return conflict("-bind must be an address other servers can reach, not 0.0.0.0 or ::");
        }
        if self.bootstrap && self.bootstrap_expect.is_some() {
            return conflict(
                "'bootstrap_expect > 0' and 'bootstrap = true' are mutually exclusive",
            );
        }
        if let Some(expect) = self.bootstrap_expect.filter(|e| *e > BOOTSTRAP_SERVERS_MAX) {
            return conflict(&format!(
                "bootstrap_expect = {expect} is over the limit of {BOOTSTRAP_SERVERS_MAX} servers"
            ));
        }
        Ok(())
    }

    /// This server's RPC address (`bind_addr`:`ports.server`), when it is a server.
    pub fn server_addr(&self) -> Option<SocketAddr> {
        self.bind.map(|ip| SocketAddr::new(ip, self.server_port))
    }

    /// Whether SIGTERM leaves the cluster gracefully: `leave_on_terminate`, by default true for clients and
    /// false for servers (Consul's defaults).
    pub fn leaves_on_terminate(&self) -> bool {
        self.leave_on_terminate.unwrap_or(!self.server)
    }

    /// Whether SIGINT skips the graceful leave: `skip_leave_on_interrupt`, by default true for servers and
    /// false for clients.
    pub fn skips_leave_on_interrupt(&self) -> bool {
        self.skip_leave_on_interrupt.unwrap_or(self.server)
    }

    /// The addresses the HTTP listener binds: `addresses.http` or the client addresses (none when disabled).
    pub fn http_addrs(&self) -> Vec<SocketAddr> {
        listener_addrs(self.addresses_http, &self.client_addrs, self.ports.http)
    }

    /// The addresses the DNS listener binds: `addresses.dns` or the client addresses (none when disabled).
    pub fn dns_addrs(&self) -> Vec<SocketAddr> {
        listener_addrs(self.addresses_dns, &self.client_addrs, self.ports.dns)
    }
}

fn listener_addrs(
    specific: Option<IpAddr>,
    client: &[IpAddr],
    port: Option<u16>,
) -> Vec<SocketAddr> {
    let Some(port) = port else {
        return Vec::new();
    };
    match specific {
        Some(ip) => vec![SocketAddr::new(ip, port)],
        None => client.iter().map(|ip| SocketAddr::new(*ip, port)).collect(),
    }
}

#[cfg(test)]
mod tests;
