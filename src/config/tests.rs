use super::*;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn config(list: &[&str]) -> AgentConfig {
    AgentConfig::from_args(&args(list), Some("host1")).expect("config")
}

fn error(list: &[&str]) -> String {
    load(&args(list), Some("host1"))
        .expect_err("rejected")
        .to_string()
}

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "cairn-config-{name}-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create dir");
        }
        std::fs::write(&path, text).expect("write config");
        path.display().to_string()
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("ip")
}

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("socket addr")
}

#[test]
fn defaults_are_consuls() {
    let c = config(&["-data-dir=/d"]);
    assert!(!c.dev && !c.server && !c.bootstrap && !c.ui);
    assert_eq!(c.data_dir, Some(PathBuf::from("/d")));
    assert_eq!(c.node_name, "host1");
    assert_eq!(c.log_level, LogLevel::Info);
    assert_eq!(c.datacenter, "dc1");
    assert_eq!(c.primary_datacenter, "dc1");
    assert_eq!(c.client_addrs, [ip("127.0.0.1")]);
    assert_eq!(
        c.ports,
        Ports {
            http: Some(8500),
            https: None,
            dns: Some(8600),
            grpc: None,
            serf_lan: Some(8301),
            serf_wan: Some(8302),
            server: Some(8300),
        }
    );
    assert_eq!(c.server_port, 8300);
    assert_eq!(c.raft_multiplier, 1);
    assert_eq!(c.session_ttl_min_ms, 10_000);
    assert_eq!(c.kv_max_value_size_bytes, 512 * 1024);
    assert_eq!(c.txn_max_req_len_bytes, 512 * 1024);
    assert_eq!(c.raft_snapshot_threshold, 16_384);
    assert_eq!(c.raft_trailing_logs, 10_240);
    assert_eq!(c.domain, "consul.");
    assert!(c.disable_host_node_id);
    assert_eq!(c.acl.default_policy, "allow");
    assert_eq!(c.acl.down_policy, "extend-cache");
    assert!(!c.acl.enabled);
    assert_eq!(
        (c.bind, c.advertise, c.pid_file.clone()),
        (None, None, None)
    );
    assert!(c.leaves_on_terminate() && !c.skips_leave_on_interrupt());
    assert_eq!(c.http_addrs(), [addr("127.0.0.1:8500")]);
    assert_eq!(c.dns_addrs(), [addr("127.0.0.1:8600")]);
    assert!(c.config_sources.is_empty());
}

#[test]
fn dev_needs_no_data_dir_and_turns_on_ui_debug_and_grpc() {
    let c = config(&["--dev"]);
    assert!(c.dev);
    assert_eq!(c.data_dir, None);
    assert_eq!(c.node_name, "host1");
    assert_eq!(c.log_level, LogLevel::Debug);
    assert!(c.ui);
    assert_eq!(c.ports.grpc, Some(8502));
    let c = config(&["-dev", "-log-level=info", "-ui=false", "-grpc-port=-1"]);
    assert_eq!(
        (c.log_level, c.ui, c.ports.grpc),
        (LogLevel::Info, false, None)
    );
}

#[test]
fn every_flag_in_both_forms() {
    let dir = TempDir::new("flags");
    let file = dir.write("a.json", r#"{"node_meta": {"from": "file"}}"#);
    let given: &[(&str, &str)] = &[
        ("advertise", "10.0.0.9"),
        ("bind", "10.0.0.1"),
        ("bootstrap-expect", "3"),
        ("client", "127.0.0.1 10.0.0.1"),
        ("config-file", &file),
        ("config-format", "json"),
        ("data-dir", "/var/lib/cairn"),
        ("datacenter", "East"),
        ("dns-port", "8653"),
        ("domain", "example"),
        ("encrypt", "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s="),
        ("grpc-port", "8502"),
        ("http-port", "8501"),
        ("https-port", "8443"),
        ("join", "10.0.0.2"),
        ("log-level", "DEBUG"),
        ("node", "n1"),
        ("node-id", "ADF4238A-882B-9DDC-4A9D-5B6758E4159E"),
        ("node-meta", "rack:r1"),
        ("pid-file", "/run/cairn.pid"),
        ("raft-snapshot-threshold", "64"),
        ("raft-trailing-logs", "8"),
        ("recursor", "8.8.8.8"),
        ("retry-join", "10.0.0.3:8310"),
        ("serf-lan-port", "8401"),
        ("serf-wan-port", "8402"),
        ("server-port", "8310"),
    ];
    let bools = [
        "server",
        "disable-host-node-id",
        "enable-script-checks",
        "enable-local-script-checks",
        "ui",
    ];
    let mut attached = vec!["-hcl=encrypt = \"\"".to_string()];
    let mut separate = vec!["--hcl".to_string(), "encrypt = \"\"".to_string()];
    for (name, value) in given {
        attached.push(format!("-{name}={value}"));
        separate.push(format!("--{name}"));
        separate.push(value.to_string());
    }
    for name in bools {
        attached.push(format!("-{name}=true"));
        separate.push(format!("-{name}"));
    }
    let one = AgentConfig::from_args(&attached, Some("h")).expect("attached form");
    let two = AgentConfig::from_args(&separate, Some("h")).expect("separate form");
    assert_eq!(one, two);
    let c = one;
    assert_eq!(c.advertise, Some(ip("10.0.0.9")));
    assert_eq!(c.bind, Some(ip("10.0.0.1")));
    assert_eq!(c.bootstrap_expect, Some(3));
    assert_eq!(c.client_addrs, [ip("127.0.0.1"), ip("10.0.0.1")]);
    assert_eq!(c.config_sources, [PathBuf::from(&file)]);
    assert_eq!(c.data_dir, Some(PathBuf::from("/var/lib/cairn")));
    assert_eq!(c.datacenter, "east");
    assert_eq!(c.domain, "example.");
    assert_eq!(c.encrypt, None, "the -hcl fragment comes last");
    assert_eq!(
        c.ports,
        Ports {
            http: Some(8501),
            https: Some(8443),
            dns: Some(8653),
            grpc: Some(8502),
            serf_lan: Some(8401),
            serf_wan: Some(8402),
            server: Some(8310),
        }
    );
    assert_eq!(c.server_port, 8310);
    assert_eq!(c.retry_join, [addr("10.0.0.2:8401"), addr("10.0.0.3:8310")]);
    assert_eq!(c.log_level, LogLevel::Debug);
    assert_eq!(c.node_name, "n1");
    assert_eq!(
        c.node_id.as_deref(),
        Some("adf4238a-882b-9ddc-4a9d-5b6758e4159e")
    );
    assert_eq!(
        c.node_meta,
        BTreeMap::from([
            ("from".to_string(), "file".to_string()),
            ("rack".to_string(), "r1".to_string())
        ])
    );
    assert_eq!(c.pid_file, Some(PathBuf::from("/run/cairn.pid")));
    assert_eq!((c.raft_snapshot_threshold, c.raft_trailing_logs), (64, 8));
    assert_eq!(c.recursors, [addr("8.8.8.8:53")]);
    assert!(c.server && c.ui && c.disable_host_node_id);
    assert!(c.enable_script_checks && c.enable_local_script_checks);
    // Booleans can be turned off explicitly, and -dev has no value.
    let c = config(&["-dev", "-disable-host-node-id=false", "-ui=0"]);
    assert!(!c.disable_host_node_id && !c.ui);
}

#[test]
fn minus_one_disables_a_port() {
    let c = config(&[
        "-dev",
        "-http-port=-1",
        "-dns-port",
        "-1",
        "-https-port=-1",
        "-grpc-port=0",
        "-serf-wan-port=-1",
    ]);
    assert_eq!(
        (
            c.ports.http,
            c.ports.dns,
            c.ports.https,
            c.ports.grpc,
            c.ports.serf_wan
        ),
        (None, None, None, None, None)
    );
    assert!(c.http_addrs().is_empty() && c.dns_addrs().is_empty());
    let dir = TempDir::new("ports");
    let file = dir.write("p.hcl", "ports {\n  http = -1\n  https = 8501\n}\n");
    let c = config(&["-dev", &format!("-config-file={file}")]);
    assert_eq!((c.ports.http, c.ports.https), (None, Some(8501)));
    assert!(error(&["-dev", "-server-port=-1"]).contains("ports.server: invalid port: -1"));
    assert!(error(&["-dev", "-serf-lan-port=0"]).contains("ports.serf_lan: invalid port: 0"));
    assert_eq!(
        error(&["-dev", "-http-port=70000"]),
        "ports.http: invalid port: 70000"
    );
    assert_eq!(
        error(&["-dev", "-http-port=eighty"]),
        "invalid value \"eighty\" for flag -http-port: parse error"
    );
}

#[test]
fn json_and_hcl_give_the_same_config() {
    let dir = TempDir::new("formats");
    let json = dir.write(
        "c.json",
        r#"{
  "datacenter": "west", "primary_datacenter": "east", "data_dir": "/data", "node_name": "n",
  "server": true, "bind_addr": "127.0.0.1", "bootstrap_expect": 3,
  "retry_join": ["127.0.0.2", "127.0.0.3:8300"],
  "client_addr": "0.0.0.0", "advertise_addr": "10.1.1.1",
  "addresses": {"http": "127.0.0.5", "dns": "127.0.0.6"},
  "ports": {"http": 8080, "https": -1, "dns": 53, "grpc": 8502, "serf_lan": 8311, "serf_wan": -1, "server": 8300},
  "performance": {"raft_multiplier": 5},
  "session_ttl_min": "1m30s",
  "limits": {"kv_max_value_size": 1048576, "txn_max_req_len": 65536},
  "node_id": "adf4238a-882b-9ddc-4a9d-5b6758e4159e", "node_meta": {"rack": "a", "zone": "b"},
  "ui_config": {"enabled": true}, "enable_script_checks": true, "enable_local_script_checks": false,
  "acl": {"enabled": true, "default_policy": "deny", "down_policy": "async-cache",
          "tokens": {"initial_management": "im", "agent": "ag", "agent_recovery": "ar", "default": "df",
                     "replication": "rp", "dns": "dn"}},
  "encrypt": "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=",
  "leave_on_terminate": true, "skip_leave_on_interrupt": false,
  "service": {"name": "web", "port": 80},
  "services": [{"name": "db"}, {"name": "cache"}],
  "checks": [{"id": "c1", "ttl": "30s"}],
  "watches": [{"type": "key", "key": "k", "args": ["/bin/true"]}],
  "recursors": ["1.1.1.1", "9.9.9.9:5353"], "domain": "corp.", "pid_file": "/run/c.pid",
  "log_level": "warn", "raft_protocol": 3, "raft_snapshot_threshold": 100, "raft_trailing_logs": 50,
  "disable_update_check": true
}"#,
    );
    let hcl = dir.write(
        "c.hcl",
        r#"
datacenter = "west"
primary_datacenter = "east"
data_dir = "/data"
node_name = "n"
server = true
bind_addr = "127.0.0.1"
bootstrap_expect = 3
retry_join = ["127.0.0.2", "127.0.0.3:8300"]
client_addr = "0.0.0.0"
advertise_addr = "10.1.1.1"
addresses {
  http = "127.0.0.5"
  dns = "127.0.0.6"
}
ports {
  http = 8080
  https = -1
  dns = 53
  grpc = 8502
  serf_lan = 8311
  serf_wan = -1
  server = 8300
}
performance { raft_multiplier = 5 }
session_ttl_min = "1m30s"
limits {
  kv_max_value_size = 1048576
  txn_max_req_len = 65536
}
node_id = "adf4238a-882b-9ddc-4a9d-5b6758e4159e"
node_meta {
  rack = "a"
  zone = "b"
}
ui_config { enabled = true }
enable_script_checks = true
enable_local_script_checks = false
acl {
  enabled = true
  default_policy = "deny"
  down_policy = "async-cache"
  tokens {
    initial_management = "im"
    agent = "ag"
    agent_recovery = "ar"
    default = "df"
    replication = "rp"
    dns = "dn"
  }
}
encrypt = "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s="
leave_on_terminate = true
skip_leave_on_interrupt = false
service {
  name = "web"
  port = 80
}
services = [{ name = "db" }, { name = "cache" }]
checks = [{ id = "c1", ttl = "30s" }]
watches = [{ type = "key", key = "k", args = ["/bin/true"] }]
recursors = ["1.1.1.1", "9.9.9.9:5353"]
domain = "corp."
pid_file = "/run/c.pid"
log_level = "warn"
raft_protocol = 3
raft_snapshot_threshold = 100
raft_trailing_logs = 50
disable_update_check = true
"#,
    );
    let from_json = load(&args(&["-config-file", &json]), Some("h")).expect("json");
    let from_hcl = load(&args(&["-config-file", &hcl]), Some("h")).expect("hcl");
    assert_eq!(from_json.warnings, from_hcl.warnings);
    let (mut a, b) = (from_json.config, from_hcl.config);
    assert_eq!(a.config_sources, [PathBuf::from(&json)]);
    a.config_sources = b.config_sources.clone();
    assert_eq!(a, b);
    let c = a;
    assert_eq!(c.datacenter, "west");
    assert_eq!(c.primary_datacenter, "east");
    assert_eq!(c.client_addrs, [ip("0.0.0.0")]);
    assert_eq!(
        (c.addresses_http, c.addresses_dns),
        (Some(ip("127.0.0.5")), Some(ip("127.0.0.6")))
    );
    assert_eq!(c.http_addrs(), [addr("127.0.0.5:8080")]);
    assert_eq!(c.ports.serf_wan, None);
    assert_eq!(c.raft_multiplier, 5);
    assert_eq!(c.session_ttl_min_ms, 90_000);
    assert_eq!(
        (c.kv_max_value_size_bytes, c.txn_max_req_len_bytes),
        (1_048_576, 65_536)
    );
    assert!(c.ui && c.enable_script_checks && !c.enable_local_script_checks);
    assert_eq!(c.acl.tokens.dns.as_deref(), Some("dn"));
    assert_eq!(c.acl.default_policy, "deny");
    assert_eq!(
        (c.leave_on_terminate, c.skip_leave_on_interrupt),
        (Some(true), Some(false))
    );
    assert_eq!(
        c.services,
        [
            json!({"name": "db"}),
            json!({"name": "cache"}),
            json!({"name": "web", "port": 80})
        ]
    );
    assert_eq!(c.checks, [json!({"id": "c1", "ttl": "30s"})]);
    assert_eq!(c.watches.len(), 1);
    assert_eq!(c.recursors, [addr("1.1.1.1:53"), addr("9.9.9.9:5353")]);
    assert_eq!(c.domain, "corp.");
    assert_eq!(c.log_level, LogLevel::Warn);
    assert_eq!(c.bootstrap_expect, Some(3));
    assert_eq!(
        c.retry_join,
        [addr("127.0.0.2:8311"), addr("127.0.0.3:8300")]
    );
}

#[test]
fn merge_order_files_then_dir_then_flags() {
    let dir = TempDir::new("merge");
    let first = dir.write(
        "first.json",
        r#"{"datacenter": "one", "node_name": "from-first", "log_level": "err",
            "retry_join": ["10.0.0.1"], "node_meta": {"a": "1", "b": "1"}, "ports": {"http": 1111, "dns": 1}}"#,
    );
    let second = dir.write(
        "second.hcl",
        "datacenter = \"two\"\nretry_join = [\"10.0.0.2\"]\nnode_meta { b = \"2\" }\nports { http = 2222 }\n",
    );
    // The directory: lexical order, other files skipped with a warning, subdirectories not read.
    dir.write(
        "d/b.json",
        r#"{"datacenter": "dir-b", "retry_join": ["10.0.0.4"]}"#,
    );
    dir.write(
        "d/a.hcl",
        "datacenter = \"dir-a\"\nretry_join = [\"10.0.0.3\"]\n",
    );
    dir.write("d/notes.txt", "not = config");
    dir.write("d/sub/z.json", r#"{"nope": 1}"#);
    let loaded = load(
        &args(&[
            "-dev",
            "-node=from-flag",
            "-retry-join=10.0.0.9",
            "-config-file",
            &first,
            "-config-dir",
            &dir.path("d"),
            "-config-file",
            &second,
        ]),
        Some("h"),
    )
    .expect("config");
    let c = loaded.config;
    assert_eq!(
        c.config_sources,
        [
            PathBuf::from(&first),
            PathBuf::from(dir.path("d/a.hcl")),
            PathBuf::from(dir.path("d/b.json")),
            PathBuf::from(&second)
        ]
    );
    assert_eq!(c.datacenter, "two", "the last file wins");
    assert_eq!(
        c.node_name, "from-flag",
        "flags win whatever their position"
    );
    assert_eq!(c.log_level, LogLevel::Error);
    assert_eq!(
        (c.ports.http, c.ports.dns),
        (Some(2222), Some(1)),
        "objects merge key by key"
    );
    assert_eq!(
        c.node_meta,
        BTreeMap::from([
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string())
        ])
    );
    // Lists append: flag values first (as Consul merges them), then the files in order.
    let joined: Vec<String> = c.retry_join.iter().map(|a| a.ip().to_string()).collect();
    assert_eq!(
        joined,
        ["10.0.0.9", "10.0.0.1", "10.0.0.3", "10.0.0.4", "10.0.0.2"]
    );
    let warnings = loaded.warnings.join("\n");
    assert!(warnings.contains("skipping file"), "{warnings}");
    assert!(warnings.contains("notes.txt"), "{warnings}");
}

#[test]
fn unknown_keys_are_errors_naming_the_file() {
    let dir = TempDir::new("unknown");
    let file = dir.write("bad.json", r#"{"datacenter": "a", "datacentre": "b"}"#);
    assert_eq!(
        error(&["-dev", "-config-file", &file]),
        format!("failed to parse {file}: 1 error occurred:\n\t* invalid config key datacentre")
    );
    let file = dir.write("bad.hcl", "ports {\n  htp = 1\n}\n");
    assert_eq!(
        error(&["-dev", "-config-dir", &dir.path("")]),
        format!(
            "failed to parse {}: 1 error occurred:\n\t* invalid config key ports.htp",
            file
        )
    );
    let file = dir.write("types.json", r#"{"server": "yes"}"#);
    assert!(error(&["-dev", "-config-file", &file])
        .contains("server: expected a boolean, got a string (\"yes\")"));
}

#[test]
fn known_but_unimplemented_keys_warn() {
    let dir = TempDir::new("warn");
    let file = dir.write(
        "t.hcl",
        "telemetry { prometheus_retention_time = \"24h\" }\nports { grpc_tls = 8503 }\nacl_master_token = \"m\"\n",
    );
    let loaded = load(&args(&["-dev", "-config-file", &file]), Some("h")).expect("loads");
    let warnings = loaded.warnings.join("\n");
    assert!(
        warnings.contains(&format!(
            "{file}: config key \"telemetry\" is not supported by cairn yet and is ignored"
        )),
        "{warnings}"
    );
    assert!(
        warnings.contains(&format!(
            "{file}: config key \"ports.grpc_tls\" is not supported by cairn yet"
        )),
        "{warnings}"
    );
    assert!(
        warnings.contains("\"acl_master_token\" is deprecated"),
        "{warnings}"
    );
    assert_eq!(
        loaded.config.acl.tokens.initial_management.as_deref(),
        Some("m")
    );
}

#[test]
fn bad_syntax_names_the_file_and_position() {
    let dir = TempDir::new("syntax");
    let file = dir.write(
        "a.json",
        "{\n  \"datacenter\": \"a\"\n  \"server\": true\n}\n",
    );
    let text = error(&["-dev", "-config-file", &file]);
    assert!(
        text.starts_with(&format!("failed to parse {file}: line 3, column 3: ")),
        "{text}"
    );
    let file = dir.write("b.hcl", "datacenter = \"a\"\nports {\n  http = \n}\n");
    let text = error(&["-dev", "-config-file", &file]);
    assert!(
        text.starts_with(&format!("failed to parse {file}: line 3, column ")),
        "{text}"
    );
    let file = dir.write("c.conf", "{}");
    assert!(error(&["-dev", "-config-file", &file]).contains("must end in .json or .hcl"));
    let c = config(&["-dev", "-config-format=json", "-config-file", &file]);
    assert_eq!(c.config_sources, [PathBuf::from(&file)]);
    assert_eq!(
        error(&["-dev", "-config-format=yaml"]),
        "config: -config-format must be either 'hcl' or 'json'"
    );
    assert!(error(&["-dev", "-config-file", &dir.path("missing.json")])
        .starts_with("config: Open failed on "));
}

#[test]
fn raft_multiplier_bounds() {
    let dir = TempDir::new("multiplier");
    let with = |n: i64| {
        let file = dir.write(
            &format!("m{n}.json"),
            &format!(r#"{{"performance": {{"raft_multiplier": {n}}}}}"#),
        );
        load(&args(&["-dev", "-config-file", &file]), Some("h"))
    };
    assert_eq!(with(1).expect("1").config.raft_multiplier, 1);
    assert_eq!(with(10).expect("10").config.raft_multiplier, 10);
    for n in [0, 11, -1] {
        assert_eq!(
            with(n).expect_err("out of range").to_string(),
            format!("performance.raft_multiplier cannot be {n}. Must be between 1 and 10")
        );
    }
}

#[test]
fn session_ttl_min_is_a_go_duration() {
    let dir = TempDir::new("ttl");
    let with = |text: &str| {
        let file = dir.write("t.hcl", &format!("session_ttl_min = \"{text}\"\n"));
        load(&args(&["-dev", "-config-file", &file]), Some("h"))
    };
    for (text, ms) in [
        ("15s", 15_000),
        ("1m30s", 90_000),
        ("0.5s", 500),
        ("250ms", 250),
    ] {
        assert_eq!(with(text).expect(text).config.session_ttl_min_ms, ms);
    }
    assert_eq!(
        with("ten").expect_err("bad").to_string(),
        "session_ttl_min: invalid duration: \"ten\": time: invalid duration \"ten\""
    );
    assert!(with("-1s").is_err());
    let file = dir.write("n.json", r#"{"session_ttl_min": 10}"#);
    assert!(error(&["-dev", "-config-file", &file]).contains("session_ttl_min: expected a string"));
}

#[test]
fn server_flags() {
    let c = config(&[
        "-server",
        "-data-dir=/d",
        "-node=s1",
        "-bind",
        "127.0.0.1",
        "-server-port=8310",
        "-bootstrap-expect=3",
        "-retry-join=127.0.0.2:8310",
        "-join",
        "127.0.0.3",
        "-datacenter=east",
    ]);
    assert!(c.server);
    assert!(!c.leaves_on_terminate() && c.skips_leave_on_interrupt());
    assert_eq!(c.server_addr(), Some(addr("127.0.0.1:8310")));
    // Join addresses are gossip addresses: the port defaults to the Serf LAN port.
    assert_eq!(
        c.retry_join,
        [addr("127.0.0.2:8310"), addr("127.0.0.3:8301")]
    );
    // bootstrap_expect = 1 is bootstrap mode, as in Consul.
    let loaded = load(
        &args(&[
            "-server",
            "-data-dir=/d",
            "-bind=127.0.0.1",
            "-bootstrap-expect=1",
        ]),
        Some("h"),
    )
    .expect("config");
    assert!(loaded.config.bootstrap && loaded.config.bootstrap_expect.is_none());
    assert!(loaded
        .warnings
        .iter()
        .any(|w| w.contains("same as Bootstrap mode")));
    assert!(error(&["-server", "-data-dir=/d"]).contains("needs -bind"));
    assert!(error(&["-server", "-data-dir=/d", "-bind=0.0.0.0"]).contains("not 0.0.0.0"));
    assert!(error(&[
        "-server",
        "-data-dir=/d",
        "-bind=127.0.0.1",
        "-bootstrap-expect=2000"
    ])
    .contains("over the limit"));
    assert!(error(&[
        "-server",
        "-data-dir=/d",
        "-bind=127.0.0.1",
        "-bootstrap",
        "-bootstrap-expect=3"
    ])
    .contains("mutually exclusive"));
    assert_eq!(
        error(&["-data-dir=/d", "-bootstrap"]),
        "'bootstrap = true' requires 'server = true'"
    );
    assert_eq!(
        error(&["-data-dir=/d", "-bootstrap-expect=3"]),
        "'bootstrap_expect > 0' requires 'server = true'"
    );
    assert!(error(&["-data-dir=/d", "-bootstrap-expect=-2"]).contains("cannot be -2"));
    assert!(error(&["-data-dir=/d", "-retry-join=nowhere"]).contains("IP or IP:PORT"));
    assert!(error(&["-data-dir=/d", "-bind=::x"]).contains("bind_addr: invalid ip address: ::x"));
    assert!(error(&["-data-dir=/d", "-client={{ GetPrivateIP }}"]).contains("templates"));
    assert!(error(&["-data-dir=/d", "-advertise=0.0.0.0"]).contains("Advertise address cannot be"));
}

#[test]
fn rejections() {
    assert_eq!(
        AgentConfig::from_args(&[], Some("h")),
        Err(ConfigError::DataDirEmpty)
    );
    assert_eq!(
        AgentConfig::from_args(&args(&["-data-dir="]), Some("h")),
        Err(ConfigError::DataDirEmpty)
    );
    assert_eq!(
        AgentConfig::from_args(&args(&["-dev", "-node="]), None),
        Err(ConfigError::NodeNameEmpty)
    );
    assert_eq!(config(&["-dev", "-node="]).node_name, "host1");
    assert_eq!(
        AgentConfig::from_args(&args(&["-dev", "-log-level=loud"]), Some("h")),
        Err(ConfigError::InvalidLogLevel("loud".to_string()))
    );
    assert_eq!(
        AgentConfig::from_args(&args(&["-dev", "extra"]), Some("h")),
        Err(ConfigError::UnexpectedArguments(args(&["extra"])))
    );
    assert!(error(&["-dev", "-datacenter=d c"]).contains("can only contain lowercase"));
    assert!(error(&["-dev", "-node-id=nope"]).contains("invalid node ID"));
    assert!(error(&["-dev", "-node-meta=nocolon"]).contains("must be key:value"));
    assert!(error(&["-dev", "-node-meta=consul-x:1"]).starts_with("node_meta invalid:"));
    assert!(error(&["-dev", "-encrypt=abc"]).starts_with("encrypt has invalid key"));
    assert!(error(&["-dev", "-hcl=raft_protocol = 2"]).contains("raft_protocol version 2"));
    assert!(error(&["-dev", "-raft-snapshot-threshold=0"]).contains("cannot be 0"));
    assert!(error(&["-dev", "-hcl=acl { default_policy = \"maybe\" }"]).contains("default_policy"));
    assert!(error(&["-dev", "-recursor=0.0.0.0"]).contains("cannot be 0.0.0.0"));
    let dir = TempDir::new("datadir");
    let not_dir = dir.write("file", "");
    assert!(error(&["-data-dir", &not_dir]).contains("is not a directory"));
}

#[test]
fn legacy_keys_map_to_the_new_ones() {
    let dir = TempDir::new("legacy");
    let file = dir.write(
        "legacy.json",
        r#"{"acl_datacenter": "DC0", "acl_master_token": "m", "acl_agent_master_token": "am",
            "acl_agent_token": "a", "acl_token": "t", "acl_replication_token": "r",
            "acl_default_policy": "deny", "acl_down_policy": "allow", "start_join": ["10.0.0.7"],
            "ui": true}"#,
    );
    let loaded = load(
        &args(&["-dev", "-ui=false", "-config-file", &file]),
        Some("h"),
    )
    .expect("ok");
    let c = loaded.config;
    assert!(c.acl.enabled, "acl_datacenter turns ACLs on");
    assert_eq!(c.primary_datacenter, "dc0");
    assert_eq!(
        c.acl.tokens,
        AclTokens {
            initial_management: Some("m".into()),
            agent: Some("a".into()),
            agent_recovery: Some("am".into()),
            default: Some("t".into()),
            replication: Some("r".into()),
            dns: None,
        }
    );
    assert_eq!(
        (c.acl.default_policy.as_str(), c.acl.down_policy.as_str()),
        ("deny", "allow")
    );
    assert_eq!(c.retry_join, [addr("10.0.0.7:8301")]);
    assert!(
        !c.ui,
        "-ui=false sets ui_config.enabled, which wins over the legacy key"
    );
    assert!(loaded
        .warnings
        .iter()
        .any(|w| w.contains("\"ui\" is deprecated")));
}

#[test]
fn reload_applies_only_reloadable_fields() {
    let dir = TempDir::new("reload");
    let file = dir.write(
        "a.json",
        r#"{"log_level": "info", "ports": {"http": 8500}}"#,
    );
    let line = args(&["-dev", "-config-file", &file]);
    let running = load(&line, Some("h")).expect("load").config;
    dir.write(
        "a.json",
        r#"{"log_level": "warn", "ports": {"http": 9500}, "node_meta": {"k": "v"},
            "services": [{"name": "web"}], "acl": {"tokens": {"agent": "t"}}}"#,
    );
    let reloaded = reload(&line, Some("h"), &running).expect("reload");
    assert_eq!(reloaded.config.log_level, LogLevel::Warn);
    assert_eq!(
        reloaded.config.ports.http,
        Some(8500),
        "a port needs a restart"
    );
    assert_eq!(reloaded.config.services, [json!({"name": "web"})]);
    assert_eq!(
        reloaded.applied,
        ["log_level", "node_meta", "services", "acl.tokens"]
    );
    assert_eq!(reloaded.needs_restart, ["ports"]);
    assert!(reloaded
        .warnings
        .iter()
        .any(|w| w == "the change to ports takes effect only after a restart"));
    for field in &reloaded.applied {
        assert!(RELOADABLE_FIELDS.contains(field));
    }
    dir.write("a.json", "{ broken");
    assert!(reload(&line, Some("h"), &running).is_err());
}

#[test]
fn go_integers() {
    assert_eq!(parse_go_int("42"), Some(42));
    assert_eq!(parse_go_int("-1"), Some(-1));
    assert_eq!(parse_go_int("+7"), Some(7));
    assert_eq!(parse_go_int("0x1F"), Some(31));
    assert_eq!(parse_go_int("010"), Some(8));
    assert_eq!(parse_go_int("0"), Some(0));
    assert_eq!(parse_go_int(""), None);
    assert_eq!(parse_go_int("--1"), None);
    assert_eq!(parse_go_int("1.5"), None);
}

#[test]
fn dns_defaults_are_consuls() {
    let c = config(&["-dev"]);
    assert_eq!(c.ports.dns, Some(8600));
    let dns = &c.dns;
    assert_eq!(dns.domain, "consul.");
    assert_eq!(dns.alt_domain, None);
    assert_eq!(dns.datacenter, "dc1");
    assert!(!dns.recursion);
    assert!(dns.allow_stale);
    assert_eq!(dns.max_stale_ms, 87_600 * 3_600 * 1_000);
    assert_eq!((dns.node_ttl_s, dns.service_ttl.lookup("web")), (0, None));
    assert!(!dns.only_passing && !dns.enable_truncate && !dns.disable_compression);
    assert!(dns.node_meta_txt);
    assert_eq!((dns.udp_answer_limit, dns.a_record_limit), (3, 0));
    assert_eq!(dns.soa, crate::dns::Soa::default());
    assert_eq!(dns.recursor_timeout_ms, 2_000);
    assert_eq!(
        dns.recursor_strategy,
        crate::dns::RecursorStrategy::Sequential
    );
    assert_eq!(config(&["-dev", "-dns-port", "-1"]).ports.dns, None);
    assert_eq!(config(&["-dev", "-dns-port=8653"]).ports.dns, Some(8653));
}

#[test]
fn dns_config_keys_json_and_hcl() {
    let dir = TempDir::new("dns");
    let json = dir.write(
        "d.json",
        r#"{"domain": "Corp", "alt_domain": "alt.example", "recursors": ["1.1.1.1"],
            "dns_config": {"allow_stale": false, "max_stale": "10s", "node_ttl": "30s",
              "service_ttl": {"*": "5s", "web*": "1m", "db": "2s"}, "only_passing": true,
              "enable_truncate": true, "udp_answer_limit": 5, "a_record_limit": 2,
              "enable_additional_node_meta_txt": false, "disable_compression": true,
              "soa": {"refresh": 1, "retry": 2, "expire": 3, "min_ttl": 4},
              "recursor_timeout": "500ms", "recursor_strategy": "random", "use_cache": true}}"#,
    );
    let hcl = dir.write(
        "d.hcl",
        r#"domain = "Corp"
alt_domain = "alt.example"
recursors = ["1.1.1.1"]
dns_config {
  allow_stale = false
  max_stale = "10s"
  node_ttl = "30s"
  service_ttl = { "*" = "5s", "web*" = "1m", "db" = "2s" }
  only_passing = true
  enable_truncate = true
  udp_answer_limit = 5
  a_record_limit = 2
  enable_additional_node_meta_txt = false
  disable_compression = true
  soa {
    refresh = 1
    retry = 2
    expire = 3
    min_ttl = 4
  }
  recursor_timeout = "500ms"
  recursor_strategy = "random"
  use_cache = true
}
"#,
    );
    let from_json = config(&["-dev", "-config-file", &json]);
    let from_hcl = config(&["-dev", "-config-file", &hcl]);
    assert_eq!(from_json.dns, from_hcl.dns);
    let dns = from_json.dns;
    assert_eq!(dns.domain, "corp.");
    assert_eq!(dns.alt_domain.as_deref(), Some("alt.example."));
    assert!(dns.recursion);
    assert!(!dns.allow_stale);
    assert_eq!(dns.max_stale_ms, 10_000);
    assert_eq!(dns.node_ttl_s, 30);
    assert_eq!(dns.service_ttl.lookup("web-api"), Some(60));
    assert_eq!(dns.service_ttl.lookup("db"), Some(2));
    assert_eq!(dns.service_ttl.lookup("other"), Some(5));
    assert!(dns.only_passing && dns.enable_truncate && dns.disable_compression);
    assert!(!dns.node_meta_txt);
    assert_eq!((dns.udp_answer_limit, dns.a_record_limit), (5, 2));
    assert_eq!(
        dns.soa,
        crate::dns::Soa {
            refresh_s: 1,
            retry_s: 2,
            expire_s: 3,
            min_ttl_s: 4
        }
    );
    assert_eq!(dns.recursor_timeout_ms, 500);
    assert_eq!(dns.recursor_strategy, crate::dns::RecursorStrategy::Random);
    // The flag form of alt_domain.
    assert_eq!(
        config(&["-dev", "-alt-domain", "other"])
            .dns
            .alt_domain
            .as_deref(),
        Some("other.")
    );
    // Bad values name the key.
    let bad = dir.write(
        "b.json",
        r#"{"dns_config": {"recursor_strategy": "fastest"}}"#,
    );
    assert!(error(&["-dev", "-config-file", &bad]).contains("dns_config.recursor_strategy"));
    let bad = dir.write("c.json", r#"{"dns_config": {"node_ttl": "soon"}}"#);
    assert!(error(&["-dev", "-config-file", &bad]).contains("dns_config.node_ttl"));
    let bad = dir.write("e.json", r#"{"dns_config": {"udp_answer_limit": -1}}"#);
    assert!(error(&["-dev", "-config-file", &bad]).contains("dns_config.udp_answer_limit"));
    let bad = dir.write("f.json", r#"{"dns_config": {"nonsense": 1}}"#);
    assert!(error(&["-dev", "-config-file", &bad]).contains("dns_config.nonsense"));
}

#[test]
fn the_autopilot_block_seeds_the_autopilot_configuration() {
    assert_eq!(
        config(&["-dev"]).autopilot,
        crate::fsm::AutopilotConfig::default()
    );
    let dir = TempDir::new("autopilot");
    let path = dir.write(
        "a.hcl",
        "autopilot {\n  cleanup_dead_servers = false\n  last_contact_threshold = \"1s\"\n  \
         max_trailing_logs = 99\n  min_quorum = 3\n  server_stabilization_time = \"2m\"\n}\n",
    );
    let a = config(&["-dev", "-config-file", &path]).autopilot;
    assert!(!a.cleanup_dead_servers);
    assert_eq!(
        (a.last_contact_threshold_ms, a.max_trailing_logs),
        (1_000, 99)
    );
    assert_eq!((a.min_quorum, a.server_stabilization_time_ms), (3, 120_000));
    let bad = dir.write("b.json", r#"{"autopilot": {"min_quorum": -1}}"#);
    assert!(error(&["-dev", "-config-file", &bad]).contains("autopilot.min_quorum"));
}
