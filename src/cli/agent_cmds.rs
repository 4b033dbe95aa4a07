//! Commands about the local agent: `info`, `leave`, `reload`, `maint`, plus the offline
//! `keygen` and `validate`.

use super::common::{self, boolean, string, Client, Ctx};
use super::http_client::{encode_path, Request};
use crate::config::flags::{FlagSpec, ParsedFlags};
use crate::ui;
use base64::Engine;
use serde_json::Value;

/// Parses the flags, rejects positional arguments and builds the client.
fn setup(
    specs: &[FlagSpec],
    help: &str,
    args: &[String],
    command: &str,
) -> Result<(ParsedFlags, Client), i32> {
    let parsed = common::parse(specs, true, help, args)?;
    if !parsed.rest.is_empty() {
        ui::error(&format!("The '{command}' command takes no arguments"));
        ui::error(help);
        return Err(1);
    }
    let client = common::client(&parsed)?;
    Ok((parsed, client))
}

const INFO_HELP: &str = "Usage: {p} info [options]

  Provides debugging information for operators.";

/// `info`: the agent's `Stats` from `/v1/agent/self`, one section per group.
pub fn info(ctx: Ctx, args: &[String]) -> i32 {
    let help = INFO_HELP.replace("{p}", ctx.program);
    let (_, client) = match setup(&[], &help, args, "info") {
        Ok(found) => found,
        Err(code) => return code,
    };
    let this = match client
        .send(Request::new("GET", "/v1/agent/self"))
        .and_then(|r| r.json())
    {
        Ok(this) => this,
        Err(error) => {
            ui::error(&format!("Error querying agent: {error}"));
            return 1;
        }
    };
    let stats = match &this["Stats"] {
        Value::Object(stats) if !stats.is_empty() => this["Stats"].clone(),
        _ => stats_from_config(&this),
    };
    ui::output(&stats_text(&stats));
    0
}

/// The `build` and `consul` groups from `Config` and `Member`, for an agent whose `/v1/agent/self`
/// has no `Stats`.
fn stats_from_config(this: &Value) -> Value {
    let config = &this["Config"];
    serde_json::json!({
        "build": {
            "revision": common::text(config, "Revision"),
            "version": common::text(config, "Version"),
        },
        "consul": {
            "datacenter": common::text(config, "Datacenter"),
            "leader": common::text(&this["Member"]["Tags"], "leader") == "true",
            "server": config["Server"].as_bool().unwrap_or(false),
        },
    })
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `group:` then `\tkey = value` lines, groups and keys sorted.
fn stats_text(stats: &Value) -> String {
    let mut groups: Vec<(&String, &Value)> = stats.as_object().into_iter().flatten().collect();
    groups.sort_by(|a, b| a.0.cmp(b.0));
    let mut lines = Vec::new();
    for (group, values) in groups {
        lines.push(format!("{group}:"));
        let mut entries: Vec<(&String, &Value)> =
            values.as_object().into_iter().flatten().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        for (key, value) in entries {
            lines.push(format!("\t{key} = {}", scalar_text(value)));
        }
    }
    lines.join("\n")
}

const LEAVE_HELP: &str = "Usage: {p} leave [options]

  Causes the agent to gracefully leave the Consul cluster and shutdown.";

/// `leave`: `PUT /v1/agent/leave`.
pub fn leave(ctx: Ctx, args: &[String]) -> i32 {
    let help = LEAVE_HELP.replace("{p}", ctx.program);
    let (_, client) = match setup(&[], &help, args, "leave") {
        Ok(found) => found,
        Err(code) => return code,
    };
    match client.send(Request::new("PUT", "/v1/agent/leave")) {
        Ok(_) => {
            ui::output("Graceful leave complete");
            0
        }
        Err(error) => {
            ui::error(&format!("Error leaving: {error}"));
            1
        }
    }
}

const RELOAD_HELP: &str = "Usage: {p} reload [options]

  Causes the agent to reload configurations. This can be used instead
  of sending the SIGHUP signal to the agent.";

/// `reload`: `PUT /v1/agent/reload`.
pub fn reload(ctx: Ctx, args: &[String]) -> i32 {
    let help = RELOAD_HELP.replace("{p}", ctx.program);
    let (_, client) = match setup(&[], &help, args, "reload") {
        Ok(found) => found,
        Err(code) => return code,
    };
    match client.send(Request::new("PUT", "/v1/agent/reload")) {
        Ok(_) => {
            ui::output("Configuration reload triggered");
            0
        }
        Err(error) => {
            ui::error(&format!("Error reloading: {error}"));
            1
        }
    }
}

const MAINT_FLAGS: &[FlagSpec] = &[
    boolean("enable", "Enable maintenance mode."),
    boolean("disable", "Disable maintenance mode."),
    string("reason", "Text describing the maintenance reason."),
    string(
        "service",
        "Control maintenance mode for a specific service ID.",
    ),
];

const MAINT_HELP: &str = "Usage: {p} maint [options]

  Places a node or service into maintenance mode. During maintenance mode,
  the node or service will be excluded from all queries through the DNS
  or API interfaces, effectively taking it out of the pool of available
  nodes. This is done by registering an additional critical health check.

  When enabling maintenance mode for a node or service, you may optionally
  specify a reason string. This string will appear in the \"Notes\" field
  of the critical health check which is registered against the node or
  service. If no reason is provided, a default value will be used.

  If no arguments are given, the agent's maintenance status will be shown.";

/// `maint`: shows or changes node and service maintenance mode.
pub fn maint(ctx: Ctx, args: &[String]) -> i32 {
    let help = MAINT_HELP.replace("{p}", ctx.program);
    let (parsed, client) = match setup(MAINT_FLAGS, &help, args, "maint") {
        Ok(found) => found,
        Err(code) => return code,
    };
    let enable = parsed.bool("enable").unwrap_or(false);
    let disable = parsed.bool("disable").unwrap_or(false);
    let reason = parsed.string("reason").unwrap_or_default();
    let service = parsed.string("service").unwrap_or_default();
    if enable && disable {
        ui::error("Only one of -enable or -disable may be provided");
        return 1;
    }
    if !enable && !reason.is_empty() {
        ui::error("Reason may only be provided with -enable");
        return 1;
    }
    if !enable && !disable && !service.is_empty() {
        ui::error("Service requires either -enable or -disable");
        return 1;
    }
    if let Err(error) = client.node_name() {
        ui::error(&format!("Error querying Consul agent: {error}"));
        return 1;
    }
    if !enable && !disable {
        return maint_status(&client);
    }
    maint_change(&client, enable, reason, service)
}

fn maint_change(client: &Client, enable: bool, reason: &str, service: &str) -> i32 {
    let path = if service.is_empty() {
        "/v1/agent/maintenance".to_string()
    } else {
        format!("/v1/agent/service/maintenance/{}", encode_path(service))
    };
    let mut request = Request::new("PUT", path).param("enable", enable.to_string());
    if enable && !reason.is_empty() {
        request = request.param("reason", reason);
    }
    let (what, state) = if enable {
        ("enabling", "enabled")
    } else {
        ("disabling", "disabled")
    };
    let result = client.send(request);
    match (result, service.is_empty()) {
        (Ok(_), true) => ui::output(&format!("Node maintenance is now {state}")),
        (Ok(_), false) => ui::output(&format!(
            "Service maintenance is now {state} for \"{service}\""
        )),
        (Err(error), true) => {
            ui::error(&format!("Error {what} node maintenance: {error}"));
            return 1;
        }
        (Err(error), false) => {
            ui::error(&format!("Error {what} service maintenance: {error}"));
            return 1;
        }
    }
    0
}

fn maint_status(client: &Client) -> i32 {
    let checks = match client
        .send(Request::new("GET", "/v1/agent/checks"))
        .and_then(|r| r.json())
    {
        Ok(checks) => checks,
        Err(error) => {
            ui::error(&format!("Error getting checks: {error}"));
            return 1;
        }
    };
    let mut all: Vec<&Value> = checks
        .as_object()
        .into_iter()
        .flatten()
        .map(|(_, c)| c)
        .collect();
    all.sort_by_key(|c| common::text(c, "CheckID").to_string());
    for check in all {
        let id = common::text(check, "CheckID");
        if id == "_node_maintenance" {
            ui::output("Node:");
            ui::output(&format!("  Name:   {}", common::text(check, "Node")));
            ui::output(&format!("  Reason: {}", common::text(check, "Notes")));
            ui::output("");
        } else if id.starts_with("_service_maintenance:") {
            ui::output("Service:");
            ui::output(&format!("  ID:     {}", common::text(check, "ServiceID")));
            ui::output(&format!("  Reason: {}", common::text(check, "Notes")));
            ui::output("");
        }
    }
    0
}

const KEYGEN_HELP: &str = "Usage: {p} keygen

  Generates a new encryption key that can be used to configure the
  agent to encrypt traffic. The output of this command is already
  in the proper format that the agent expects.";

/// `keygen`: 32 random bytes (from /dev/urandom), base64.
pub fn keygen(ctx: Ctx, args: &[String]) -> i32 {
    let help = KEYGEN_HELP.replace("{p}", ctx.program);
    if let Err(code) = common::parse(&[], false, &help, args) {
        return code;
    }
    let mut key = [0u8; 32];
    let read = std::fs::File::open("/dev/urandom")
        .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut key));
    if let Err(error) = read {
        ui::error(&format!("Error reading random data: {error}"));
        return 1;
    }
    ui::output(&base64::engine::general_purpose::STANDARD.encode(key));
    0
}

const VALIDATE_FLAGS: &[FlagSpec] = &[
    string(
        "config-format",
        "Config files are in this format irrespective of their extension. Must be 'hcl' or \
         'json'",
    ),
    boolean(
        "quiet",
        "When given, a successful run will produce no output.",
    ),
];

const VALIDATE_HELP: &str = "Usage: {p} validate [options] FILE_OR_DIRECTORY...

  Performs a thorough sanity test on Consul configuration files. For each file
  or directory given, the validate command will attempt to parse the contents
  just as the \"{p} agent\" command would, and catch any errors.

  This is useful to do a test of the configuration only, without actually
  starting the agent. This performs all of the validation the agent would, so
  this should be given the complete set of configuration files that are going
  to be loaded by the agent. This command cannot operate on partial
  configuration fragments since those won't pass the full agent validation.

  Returns 0 if the configuration is valid, or 1 if there are problems.

      $ {p} validate /etc/consul.d/foo.json /etc/consul.d/bar.json
      $ {p} validate /etc/consul.d";

/// `validate`: runs the agent's configuration loader on the given files and directories.
pub fn validate(ctx: Ctx, args: &[String]) -> i32 {
    let help = VALIDATE_HELP.replace("{p}", ctx.program);
    let parsed = match common::parse(VALIDATE_FLAGS, false, &help, args) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    if parsed.rest.is_empty() {
        ui::error("Must specify at least one config file or directory");
        return 1;
    }
    let mut agent_args = Vec::new();
    if let Some(format) = parsed.string("config-format") {
        agent_args.push(format!("-config-format={format}"));
    }
    for path in &parsed.rest {
        agent_args.push(format!("-config-file={path}"));
    }
    match crate::config::load(&agent_args, Some("validate")) {
        Ok(loaded) => {
            if !parsed.bool("quiet").unwrap_or(false) {
                for warning in &loaded.warnings {
                    ui::output(warning);
                }
                ui::output("Configuration is valid!");
            }
            0
        }
        Err(error) => {
            ui::error(&format!("Config validation failed: {error}"));
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_grouped_and_sorted() {
        let stats = serde_json::json!({"raft": {"state": "Leader", "applied_index": "5"}, "agent": {"checks": "1"}});
        assert_eq!(
            stats_text(&stats),
            "agent:\n\tchecks = 1\nraft:\n\tapplied_index = 5\n\tstate = Leader"
        );
    }
}
