//! Agent configuration: command-line flags (Go flag syntax) turned into one [`AgentConfig`].
//! Config files come later.

pub mod flags;

use crate::logging::LogLevel;
use flags::{FlagError, FlagKind, FlagSpec};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// Consul's default server RPC port.
pub const SERVER_PORT_DEFAULT: u16 = 8300;
/// Consul's default datacenter.
pub const DATACENTER_DEFAULT: &str = "dc1";
/// Consul's `raft_snapshot_threshold` default.
pub const RAFT_SNAPSHOT_THRESHOLD_DEFAULT: u64 = 16_384;
/// Consul's `raft_trailing_logs` default.
pub const RAFT_TRAILING_LOGS_DEFAULT: u64 = 10_240;
/// Servers a bootstrap configuration may name.
pub const BOOTSTRAP_SERVERS_MAX: usize = 64;

/// The flags `agent` accepts.
pub const AGENT_FLAGS: &[FlagSpec] = &[
    FlagSpec {
        name: "bind",
        kind: FlagKind::String,
        usage: "Sets the bind address for cluster communication.",
    },
    FlagSpec {
        name: "bootstrap",
        kind: FlagKind::Bool,
        usage: "Sets server to bootstrap mode.",
    },
    FlagSpec {
        name: "bootstrap-expect",
        kind: FlagKind::String,
        usage: "Sets server to expect bootstrap mode. For now the expected servers are this one and the \
                -retry-join addresses, which must name exactly the other servers.",
    },
    FlagSpec {
        name: "data-dir",
        kind: FlagKind::String,
        usage: "Path to a data directory to store agent state.",
    },
    FlagSpec {
        name: "datacenter",
        kind: FlagKind::String,
        usage: "Datacenter of the agent.",
    },
    FlagSpec {
        name: "dev",
        kind: FlagKind::Bool,
        usage: "Starts the agent in development mode.",
    },
    FlagSpec {
        name: "log-level",
        kind: FlagKind::String,
        usage: "Log level of the agent: trace, debug, info, warn or err.",
    },
    FlagSpec {
        name: "node",
        kind: FlagKind::String,
        usage: "Name of this node. Must be unique in the cluster. Defaults to the hostname.",
    },
    FlagSpec {
        name: "raft-snapshot-threshold",
        kind: FlagKind::String,
        usage: "Applied Raft entries between snapshots (cairn extension; Consul's raft_snapshot_threshold \
                config key). Default 16384.",
    },
    FlagSpec {
        name: "raft-trailing-logs",
        kind: FlagKind::String,
        usage: "Raft entries kept after a snapshot for followers that are slightly behind (cairn \
                extension; Consul's raft_trailing_logs config key). Default 10240.",
    },
    FlagSpec {
        name: "retry-join",
        kind: FlagKind::String,
        usage: "Address of another server to join (IP or IP:PORT; the port defaults to 8300). Can be \
                specified multiple times.",
    },
    FlagSpec {
        name: "server",
        kind: FlagKind::Bool,
        usage: "Switches agent to server mode.",
    },
    FlagSpec {
        name: "server-port",
        kind: FlagKind::String,
        usage: "Sets the server port to listen on.",
    },
];

/// Everything the agent needs to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentConfig {
    /// `-dev`: a development server that keeps state in memory.
    pub dev: bool,
    /// `-data-dir`: where agent state lives; required unless `dev`.
    pub data_dir: Option<PathBuf>,
    /// `-node`: this node's name (defaults to the hostname).
    pub node_name: String,
    /// `-log-level`.
    pub log_level: LogLevel,
    /// `-server`: run a Raft server.
    pub server: bool,
    /// `-datacenter`.
    pub datacenter: String,
    /// `-bind`: the address servers reach this one on (required for a server).
    pub bind: Option<IpAddr>,
    /// `-server-port`.
    pub server_port: u16,
    /// `-bootstrap`: bootstrap a cluster of this server alone.
    pub bootstrap: bool,
    /// `-bootstrap-expect`: bootstrap once this many servers are known (this one and `-retry-join`).
    pub bootstrap_expect: Option<usize>,
    /// `-retry-join`: other servers' RPC addresses.
    pub retry_join: Vec<SocketAddr>,
    /// `-raft-snapshot-threshold`.
    pub raft_snapshot_threshold: u64,
    /// `-raft-trailing-logs`.
    pub raft_trailing_logs: u64,
}

/// Why the agent's command line was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// A flag error (Go's message), including a help request.
    Flag(FlagError),
    /// Neither `-dev` nor `-data-dir` was given, or `-data-dir` was empty.
    DataDirEmpty,
    /// `-node` was empty and no hostname was available.
    NodeNameEmpty,
    /// `-log-level` is not a known level.
    InvalidLogLevel(String),
    /// Arguments were left after the flags.
    UnexpectedArguments(Vec<String>),
    /// A flag's value is not acceptable.
    InvalidValue {
        /// The flag, without dashes.
        flag: &'static str,
        /// The value given.
        value: String,
        /// What is wrong and what would be right.
        reason: String,
    },
    /// Flags that contradict each other or are missing for the mode asked for.
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
            ConfigError::InvalidValue {
                flag,
                value,
                reason,
            } => write!(f, "invalid value {value:?} for -{flag}: {reason}"),
            ConfigError::Conflict(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl AgentConfig {
    /// Builds the configuration from `agent`'s arguments; `hostname` is the default node name.
    pub fn from_args(args: &[String], hostname: Option<&str>) -> Result<AgentConfig, ConfigError> {
        let parsed = flags::parse(AGENT_FLAGS, args).map_err(ConfigError::Flag)?;
        if !parsed.rest.is_empty() {
            return Err(ConfigError::UnexpectedArguments(parsed.rest.clone()));
        }
        let dev = parsed.bool("dev").unwrap_or(false);
        let data_dir = match parsed.string("data-dir") {
            Some("") => None,
            Some(path) => Some(PathBuf::from(path)),
            None => None,
        };
        if !dev && data_dir.is_none() {
            return Err(ConfigError::DataDirEmpty);
        }
        let node_name = match parsed.string("node") {
            Some(name) => name.to_string(),
            None => hostname.unwrap_or_default().to_string(),
        };
        if node_name.is_empty() {
            return Err(ConfigError::NodeNameEmpty);
        }
        let log_level = match parsed.string("log-level") {
            Some(level) => LogLevel::parse(level)
                .ok_or_else(|| ConfigError::InvalidLogLevel(level.to_string()))?,
            None => LogLevel::Info,
        };
        let number = |flag: &'static str, default: u64, min: u64| -> Result<u64, ConfigError> {
            match parsed.string(flag) {
                None => Ok(default),
                Some(text) => match text.parse::<u64>() {
                    Ok(n) if n >= min => Ok(n),
                    _ => Err(ConfigError::InvalidValue {
                        flag,
                        value: text.to_string(),
                        reason: format!("must be a whole number of at least {min}"),
                    }),
                },
            }
        };
        let server = parsed.bool("server").unwrap_or(false);
        let datacenter = parsed
            .string("datacenter")
            .unwrap_or(DATACENTER_DEFAULT)
            .to_string();
        if datacenter.is_empty() || datacenter.len() > crate::rpc::DATACENTER_BYTES_MAX {
            return Err(ConfigError::InvalidValue {
                flag: "datacenter",
                value: datacenter,
                reason: format!("must be 1 to {} bytes", crate::rpc::DATACENTER_BYTES_MAX),
            });
        }
        let bind = match parsed.string("bind") {
            None => None,
            Some(text) => Some(
                text.parse::<IpAddr>()
                    .map_err(|_| ConfigError::InvalidValue {
                        flag: "bind",
                        value: text.to_string(),
                        reason: "must be an IP address".to_string(),
                    })?,
            ),
        };
        let server_port = number("server-port", u64::from(SERVER_PORT_DEFAULT), 1)?;
        let server_port = u16::try_from(server_port).map_err(|_| ConfigError::InvalidValue {
            flag: "server-port",
            value: server_port.to_string(),
            reason: "must be a port number (1 to 65535)".to_string(),
        })?;
        let bootstrap = parsed.bool("bootstrap").unwrap_or(false);
        let bootstrap_expect = match parsed.string("bootstrap-expect") {
            None => None,
            Some(_) => Some(number("bootstrap-expect", 0, 1)? as usize),
        };
        let mut retry_join = Vec::new();
        for text in parsed.strings("retry-join") {
            let addr = text
                .parse::<SocketAddr>()
                .or_else(|_| {
                    text.parse::<IpAddr>()
                        .map(|ip| SocketAddr::new(ip, SERVER_PORT_DEFAULT))
                })
                .map_err(|_| ConfigError::InvalidValue {
                    flag: "retry-join",
                    value: text.to_string(),
                    reason: "must be IP or IP:PORT (names are resolved once gossip exists)"
                        .to_string(),
                })?;
            if !retry_join.contains(&addr) {
                retry_join.push(addr);
            }
        }
        let raft_snapshot_threshold = number(
            "raft-snapshot-threshold",
            RAFT_SNAPSHOT_THRESHOLD_DEFAULT,
            1,
        )?;
        let raft_trailing_logs = number("raft-trailing-logs", RAFT_TRAILING_LOGS_DEFAULT, 0)?;
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
            raft_snapshot_threshold,
            raft_trailing_logs,
        };
        config.check_server_flags()?;
        Ok(config)
    }

    fn check_server_flags(&self) -> Result<(), ConfigError> {
        let conflict = |why: &str| Err(ConfigError::Conflict(why.to_string()));
        if !self.server {
            if self.bootstrap || self.bootstrap_expect.is_some() {
                return conflict("-bootstrap and -bootstrap-expect need -server");
            }
            return Ok(());
        }
        if self.dev {
            return conflict("-server runs a persistent server: drop -dev (which has no Raft yet)");
        }
        let Some(bind) = self.bind else {
            return conflict("a server needs -bind=<ip>: the address other servers reach it on");
        };
        if bind.is_unspecified() {
            return conflict("-bind must be an address other servers can reach, not 0.0.0.0 or ::");
        }
        if self.bootstrap && self.bootstrap_expect.is_some() {
            return conflict("-bootstrap and -bootstrap-expect are mutually exclusive");
        }
        let servers = self.bootstrap_servers().len();
        if servers > BOOTSTRAP_SERVERS_MAX {
            return conflict(&format!(
                "{servers} servers is over the limit of {BOOTSTRAP_SERVERS_MAX}"
            ));
        }
        if let Some(expect) = self.bootstrap_expect {
            if expect != servers {
                return Err(ConfigError::Conflict(format!(
                    "-bootstrap-expect={expect} but this server and the -retry-join addresses name \
                     {servers} servers: for now cairn bootstraps from -retry-join, so list exactly \
                     the other {} servers",
                    expect.saturating_sub(1)
                )));
            }
        }
        Ok(())
    }

    /// This server's RPC address (`-bind`:`-server-port`), when it is a server.
    pub fn server_addr(&self) -> Option<SocketAddr> {
        self.bind.map(|ip| SocketAddr::new(ip, self.server_port))
    }

    /// The servers a bootstrap configuration names: this one and every `-retry-join` address, ascending.
    pub fn bootstrap_servers(&self) -> Vec<SocketAddr> {
        let mut all: Vec<SocketAddr> = self.server_addr().into_iter().collect();
        for addr in &self.retry_join {
            if !all.contains(addr) {
                all.push(*addr);
            }
        }
        all.sort();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn dev_needs_no_data_dir_and_defaults_the_node_to_the_hostname() {
        let config = AgentConfig::from_args(&args(&["--dev"]), Some("host1")).expect("config");
        assert!(config.dev);
        assert_eq!(config.data_dir, None);
        assert_eq!(config.node_name, "host1");
        assert_eq!(config.log_level, LogLevel::Info);
    }

    #[test]
    fn all_flags_in_both_forms() {
        let config = AgentConfig::from_args(
            &args(&[
                "-data-dir",
                "/var/lib/cairn",
                "-node=n1",
                "-log-level",
                "DEBUG",
            ]),
            Some("host1"),
        )
        .expect("config");
        assert!(!config.dev);
        assert_eq!(config.data_dir, Some(PathBuf::from("/var/lib/cairn")));
        assert_eq!(config.node_name, "n1");
        assert_eq!(config.log_level, LogLevel::Debug);
    }

    #[test]
    fn server_flags() {
        let config = AgentConfig::from_args(
            &args(&[
                "-server",
                "-data-dir=/d",
                "-node=s1",
                "-bind",
                "127.0.0.1",
                "-server-port=8310",
                "-bootstrap-expect=3",
                "-retry-join=127.0.0.2:8310",
                "-retry-join",
                "127.0.0.3",
                "-raft-snapshot-threshold=64",
                "-raft-trailing-logs=8",
                "-datacenter=east",
            ]),
            Some("h"),
        )
        .expect("config");
        assert!(config.server);
        assert_eq!(config.datacenter, "east");
        assert_eq!(
            config.server_addr(),
            Some("127.0.0.1:8310".parse().unwrap())
        );
        assert_eq!(
            config.bootstrap_servers(),
            [
                "127.0.0.1:8310".parse::<SocketAddr>().unwrap(),
                "127.0.0.2:8310".parse().unwrap(),
                "127.0.0.3:8300".parse().unwrap()
            ]
        );
        assert_eq!(config.raft_snapshot_threshold, 64);
        assert_eq!(config.raft_trailing_logs, 8);
        let err = |list: &[&str]| {
            AgentConfig::from_args(&args(list), Some("h"))
                .expect_err("rejected")
                .to_string()
        };
        assert!(err(&["-server", "-data-dir=/d"]).contains("needs -bind"));
        assert!(err(&["-server", "-data-dir=/d", "-bind=0.0.0.0"]).contains("not 0.0.0.0"));
        assert!(err(&[
            "-server",
            "-data-dir=/d",
            "-bind=127.0.0.1",
            "-bootstrap-expect=2"
        ])
        .contains("list exactly the other 1 servers"));
        assert!(err(&["-data-dir=/d", "-bootstrap"]).contains("need -server"));
        assert!(err(&["-data-dir=/d", "-server-port=70000"]).contains("port number"));
        assert!(err(&["-data-dir=/d", "-retry-join=nowhere"]).contains("IP or IP:PORT"));
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
            AgentConfig::from_args(&args(&["-dev", "-node="]), Some("h")),
            Err(ConfigError::NodeNameEmpty)
        );
        assert_eq!(
            AgentConfig::from_args(&args(&["-dev", "-log-level=loud"]), Some("h")),
            Err(ConfigError::InvalidLogLevel("loud".to_string()))
        );
        assert_eq!(
            AgentConfig::from_args(&args(&["-dev", "extra"]), Some("h")),
            Err(ConfigError::UnexpectedArguments(args(&["extra"])))
        );
    }
}
