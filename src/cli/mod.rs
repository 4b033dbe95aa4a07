//! Command-line dispatch. The binary behaves the same whether invoked as `cairn` or `consul`
//! (argv\[0\]'s basename only changes the program name shown in usage text).

mod agent_cmds;
mod catalog;
pub mod common;
mod gossip_cmds;
pub mod http_client;
mod keyring;
pub(crate) mod kv;
mod kv_transfer;
pub(crate) mod lock;
pub(crate) mod lock_kv;
mod monitor;
mod operator;
mod operator_autopilot;
mod services;
mod snapshot;
mod watch;

use crate::agent;
use crate::config::flags::{self, FlagError};
use crate::config::{self, ConfigError, Loaded, AGENT_FLAGS};
use crate::logging::{LogLevel, Logger};
use crate::ui;
use std::ffi::{OsStr, OsString};
use std::path::Path;

/// The Raft/Serf protocol line `consul version` prints.
pub const PROTOCOL_LINE: &str = "Protocol 2 spoken by default, understands 2 to 3 (agent will \
     automatically use protocol >2 when speaking to compatible agents)";

/// The commands, with the one-line help shown in usage.
const COMMANDS: &[(&str, &str)] = &[
    ("agent", "Runs a Cairn agent"),
    ("catalog", "Interact with the catalog"),
    ("event", "Fire a new event"),
    (
        "force-leave",
        "Forces a member of the cluster to enter the \"left\" state",
    ),
    ("info", "Provides debugging information for operators."),
    ("join", "Tell Consul agent to join cluster"),
    ("keygen", "Generates a new encryption key"),
    ("keyring", "Manages gossip layer encryption keys"),
    ("kv", "Interact with the key-value store"),
    (
        "leave",
        "Gracefully leaves the Consul cluster and shuts down",
    ),
    ("lock", "Execute a command holding a lock"),
    ("maint", "Controls node or service maintenance mode"),
    ("members", "Lists the members of a Consul cluster"),
    ("monitor", "Stream logs from a Consul agent"),
    (
        "operator",
        "Provides cluster-level tools for Consul operators",
    ),
    ("reload", "Triggers the agent to reload configuration files"),
    ("services", "Interact with services"),
    ("snapshot", "Saves, restores and analyzes snapshots"),
    ("validate", "Validate config files/directories"),
    ("version", "Prints the Cairn version"),
    ("watch", "Watch for changes in Consul"),
];

/// The program name to show for an argv\[0\]: `consul` when invoked through a name `consul`,
/// otherwise `cairn`.
pub fn program_name(argv0: &OsStr) -> &'static str {
    match Path::new(argv0).file_name().and_then(OsStr::to_str) {
        Some("consul") => "consul",
        _ => "cairn",
    }
}

/// The `version` output: `Cairn v<version>` and the protocol line.
pub fn version_text() -> String {
    format!("Cairn v{}\n{PROTOCOL_LINE}", env!("CARGO_PKG_VERSION"))
}

fn usage_text(program: &str) -> String {
    let mut text = format!(
        "Usage: {program} [--version] [--help] <command> [<args>]\n\nAvailable commands are:"
    );
    for (name, help) in COMMANDS {
        text.push_str(&format!("\n    {name:<14} {help}"));
    }
    text
}

fn agent_help(program: &str) -> String {
    format!(
        "Usage: {program} agent [options]\n\n  Starts the Cairn agent and runs until an interrupt \
         is received. The\n  agent represents a single node in a cluster.\n\nOptions:\n\n{}",
        flags::usage(AGENT_FLAGS)
    )
}

/// Runs the command line `args` (argv\[0\] first) and returns the process exit code.
pub fn run(args: Vec<OsString>) -> i32 {
    let program = args.first().map_or("cairn", |argv0| program_name(argv0));
    let mut strings = Vec::with_capacity(args.len().saturating_sub(1));
    for arg in args.iter().skip(1) {
        match arg.to_str() {
            Some(s) => strings.push(s.to_string()),
            None => {
                ui::error(&format!(
                    "argument is not valid UTF-8: {}",
                    arg.to_string_lossy()
                ));
                return 1;
            }
        }
    }
    let Some((command, rest)) = strings.split_first() else {
        ui::error(&usage_text(program));
        return 1;
    };
    match command.as_str() {
        "version" | "-v" | "-version" | "--version" => version(rest),
        "-h" | "-help" | "--help" => {
            ui::error(&usage_text(program));
            0
        }
        "agent" => agent_command(program, rest),
        other => client_command(common::Ctx { program }, other, rest),
    }
}

/// Runs a client command, or prints the usage for an unknown one.
fn client_command(ctx: common::Ctx, command: &str, rest: &[String]) -> i32 {
    match command {
        "kv" => kv::run(ctx, rest),
        "catalog" => catalog::run(ctx, rest),
        "services" => services::run(ctx, rest),
        "operator" => operator::run(ctx, rest),
        "info" => agent_cmds::info(ctx, rest),
        "leave" => agent_cmds::leave(ctx, rest),
        "reload" => agent_cmds::reload(ctx, rest),
        "maint" => agent_cmds::maint(ctx, rest),
        "monitor" => monitor::monitor(ctx, rest),
        "keygen" => agent_cmds::keygen(ctx, rest),
        "keyring" => keyring::run(ctx, rest),
        "members" => gossip_cmds::members(ctx, rest),
        "join" => gossip_cmds::join(ctx, rest),
        "force-leave" => gossip_cmds::force_leave(ctx, rest),
        "event" => gossip_cmds::event(ctx, rest),
        "validate" => agent_cmds::validate(ctx, rest),
        "lock" => lock::run(ctx, rest),
        "watch" => watch::run(ctx, rest),
        "snapshot" => snapshot::run(ctx, rest),
        other => {
            ui::error(&format!("Unknown command: {other:?}"));
            ui::error(&usage_text(ctx.program));
            1
        }
    }
}

fn version(args: &[String]) -> i32 {
    match flags::parse(&[], args) {
        Ok(parsed) if parsed.rest.is_empty() => {
            ui::output(&version_text());
            0
        }
        Ok(parsed) => {
            ui::error(&format!("unexpected arguments: {}", parsed.rest.join(" ")));
            1
        }
        Err(FlagError::Help) => {
            ui::error("Usage: version\n\n  Prints the version of this binary.");
            0
        }
        Err(error) => {
            ui::error(&error.to_string());
            1
        }
    }
}

fn agent_command(program: &str, args: &[String]) -> i32 {
    let config = match config::load(args, hostname().as_deref()) {
        Ok(Loaded { config, warnings }) => {
            let logger = Logger::new(config.log_level);
            for warning in &warnings {
                logger.log(LogLevel::Warn, "agent", warning);
            }
            config
        }
        Err(ConfigError::Flag(FlagError::Help)) => {
            ui::error(&agent_help(program));
            return 0;
        }
        Err(ConfigError::Flag(error)) => {
            // Go's flag package prints the error, then the usage.
            ui::error(&error.to_string());
            ui::error(&agent_help(program));
            return 1;
        }
        Err(error) => {
            ui::error(&format!("==> {error}"));
            return 1;
        }
    };
    match agent::run(&config, args, hostname().as_deref()) {
        Ok(()) => 0,
        Err(error) if error.during_startup() => {
            ui::error(&format!("==> Error starting agent: {error}"));
            1
        }
        Err(error) => {
            ui::error(&format!("==> Agent stopped with an error: {error}"));
            1
        }
    }
}

/// The kernel's host name, if it can be read.
fn hostname() -> Option<String> {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is writable and its length is passed; the result is NUL-terminated when
    // it fits, and we stop at the first NUL or the buffer end.
    let rc = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if rc != 0 {
        return None;
    }
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    let name = std::str::from_utf8(&buffer[..end]).ok()?.trim();
    (!name.is_empty()).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_name_follows_the_basename() {
        assert_eq!(program_name(OsStr::new("/usr/local/bin/consul")), "consul");
        assert_eq!(program_name(OsStr::new("consul")), "consul");
        assert_eq!(program_name(OsStr::new("/opt/cairn/bin/cairn")), "cairn");
        assert_eq!(program_name(OsStr::new("")), "cairn");
    }

    #[test]
    fn version_has_consuls_shape() {
        let text = version_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], format!("Cairn v{}", env!("CARGO_PKG_VERSION")));
        assert!(lines[1].starts_with("Protocol 2 spoken by default, understands 2 to 3"));
    }

    #[test]
    fn usage_lists_every_command() {
        let text = usage_text("consul");
        assert!(text.starts_with("Usage: consul [--version]"));
        for (name, _) in COMMANDS {
            assert!(text.contains(&format!("    {name} ")), "{name} missing");
        }
    }
}
