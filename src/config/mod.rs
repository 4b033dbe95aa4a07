//! Agent configuration: command-line flags (Go flag syntax) turned into one [`AgentConfig`].
//! Config files come later.

pub mod flags;

use crate::logging::LogLevel;
use flags::{FlagError, FlagKind, FlagSpec};
use std::fmt;
use std::path::PathBuf;

/// The flags `agent` accepts.
pub const AGENT_FLAGS: &[FlagSpec] = &[
    FlagSpec {
        name: "data-dir",
        kind: FlagKind::String,
        usage: "Path to a data directory to store agent state.",
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
        Ok(AgentConfig {
            dev,
            data_dir,
            node_name,
            log_level,
        })
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
