//! `operator autopilot get-config|set-config|state` over `/v1/operator/autopilot`, printed as consul prints.

use super::common::{self, string, Client, Ctx};
use super::http_client::Request;
use crate::api::duration::{format_go_duration_ms, parse_duration_ms};
use crate::config::flags::{FlagSpec, ParsedFlags};
use crate::ui;
use serde_json::Value;

const AUTOPILOT_HELP: &str = "Usage: {p} operator autopilot <subcommand> [options]

  The Autopilot operator command is used to interact with Consul's Autopilot
  subsystem. The command can be used to view or modify the current configuration.

Subcommands:
    get-config    Display the current Autopilot configuration
    set-config    Modify the current Autopilot configuration
    state         Display the current Autopilot state";

/// Runs `operator autopilot <subcommand>`.
pub fn run(ctx: Ctx, args: &[String]) -> i32 {
    let usage = || {
        let help = AUTOPILOT_HELP.replace("{p}", ctx.program);
        super::operator::help_or_usage(&help, args.first())
    };
    let Some((sub, rest)) = args.split_first() else {
        return usage();
    };
    match sub.as_str() {
        "get-config" => get_config(ctx, rest),
        "set-config" => set_config(ctx, rest),
        "state" => state(ctx, rest),
        _ => usage(),
    }
}

fn setup(specs: &[FlagSpec], help: &str, args: &[String]) -> Result<(Client, ParsedFlags), i32> {
    let parsed = common::parse(specs, true, help, args)?;
    let client = Client::from_flags(&parsed).map_err(|error| {
        ui::error(&format!("Error initializing client: {error}"));
        1
    })?;
    Ok((client, parsed))
}

const GET_HELP: &str = "Usage: {p} operator autopilot get-config [options]

  Displays the current Autopilot configuration.";

fn get_config(ctx: Ctx, args: &[String]) -> i32 {
    let help = GET_HELP.replace("{p}", ctx.program);
    let (client, _) = match setup(&[], &help, args) {
        Ok(found) => found,
        Err(code) => return code,
    };
    match client.query_json(Request::new("GET", "/v1/operator/autopilot/configuration")) {
        Ok(config) => {
            ui::output(&config_lines(&config));
            0
        }
        Err(error) => {
            ui::error(&format!("Error querying Autopilot configuration: {error}"));
            1
        }
    }
}

/// consul's get-config lines.
fn config_lines(c: &Value) -> String {
    let number = |name: &str| c[name].as_u64().unwrap_or(0);
    let flag = |name: &str| c[name].as_bool().unwrap_or(false);
    [
        format!("CleanupDeadServers = {}", flag("CleanupDeadServers")),
        format!(
            "LastContactThreshold = {}",
            common::text(c, "LastContactThreshold")
        ),
        format!("MaxTrailingLogs = {}", number("MaxTrailingLogs")),
        format!("MinQuorum = {}", number("MinQuorum")),
        format!(
            "ServerStabilizationTime = {}",
            common::text(c, "ServerStabilizationTime")
        ),
        format!(
            "RedundancyZoneTag = {:?}",
            common::text(c, "RedundancyZoneTag")
        ),
        format!(
            "DisableUpgradeMigration = {}",
            flag("DisableUpgradeMigration")
        ),
        format!(
            "UpgradeVersionTag = {:?}",
            common::text(c, "UpgradeVersionTag")
        ),
    ]
    .join("\n")
}

const SET_FLAGS: &[FlagSpec] = &[
    string(
        "cleanup-dead-servers",
        "Controls whether Consul will automatically remove dead servers when new ones are \
         successfully added. Must be one of `true|false`.",
    ),
    string(
        "max-trailing-logs",
        "Controls the maximum number of log entries that a server can trail the leader by \
         before being considered unhealthy.",
    ),
    string(
        "min-quorum",
        "Sets the minimum number of servers required in a cluster before autopilot can prune \
         dead servers.",
    ),
    string(
        "last-contact-threshold",
        "Controls the maximum amount of time a server can go without contact from the leader \
         before being considered unhealthy. Must be a duration value such as `200ms`.",
    ),
    string(
        "server-stabilization-time",
        "Controls the minimum amount of time a server must be stable in the 'healthy' state \
         before being added to the cluster. Only takes effect if all servers are running Raft \
         protocol version 3 or higher. Must be a duration value such as `10s`.",
    ),
];

const SET_HELP: &str = "Usage: {p} operator autopilot set-config [options]

  Modifies the current Autopilot configuration.";

fn set_config(ctx: Ctx, args: &[String]) -> i32 {
    let help = SET_HELP.replace("{p}", ctx.program);
    let (client, parsed) = match setup(SET_FLAGS, &help, args) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let request = Request::new("GET", "/v1/operator/autopilot/configuration");
    let mut config = match client.send(request).and_then(|r| r.json()) {
        Ok(config) => config,
        Err(error) => {
            ui::error(&format!("Error querying Autopilot configuration: {error}"));
            return 1;
        }
    };
    if let Err(message) = merge_flags(&mut config, &parsed) {
        ui::error(&format!("Failed to parse args: {message}"));
        return 1;
    }
    let cas = config["ModifyIndex"].as_u64().unwrap_or(0).to_string();
    let body = serde_json::to_vec(&config).unwrap_or_default();
    let request = Request::new("PUT", "/v1/operator/autopilot/configuration")
        .param("cas", cas)
        .body(body);
    match client.send(request).and_then(|r| r.json()) {
        Ok(Value::Bool(true)) => {
            ui::output("Configuration updated!");
            0
        }
        Ok(_) => {
            ui::output("Configuration could not be atomically updated, please try again");
            1
        }
        Err(error) => {
            ui::error(&format!("Error setting Autopilot configuration: {error}"));
            1
        }
    }
}

/// Applies the flags that were given to the configuration read back from the agent.
fn merge_flags(config: &mut Value, parsed: &ParsedFlags) -> Result<(), String> {
    let invalid = |flag: &str, text: &str, why: String| {
        format!("invalid value {text:?} for flag -{flag}: {why}")
    };
    if let Some(text) = parsed.string("cleanup-dead-servers") {
        let value = match text {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => true,
            "0" | "f" | "F" | "FALSE" | "false" | "False" => false,
            _ => {
                let why = format!("strconv.ParseBool: parsing {text:?}: invalid syntax");
                return Err(invalid("cleanup-dead-servers", text, why));
            }
        };
        config["CleanupDeadServers"] = Value::Bool(value);
    }
    for (flag, field) in [
        ("max-trailing-logs", "MaxTrailingLogs"),
        ("min-quorum", "MinQuorum"),
    ] {
        if let Some(text) = parsed.string(flag) {
            let value: u64 = text.parse().map_err(|_| {
                let why = format!("strconv.ParseUint: parsing {text:?}: invalid syntax");
                invalid(flag, text, why)
            })?;
            config[field] = Value::from(value);
        }
    }
    for (flag, field) in [
        ("last-contact-threshold", "LastContactThreshold"),
        ("server-stabilization-time", "ServerStabilizationTime"),
    ] {
        if let Some(text) = parsed.string(flag) {
            let ms = parse_duration_ms(text).map_err(|why| invalid(flag, text, why))?;
            config[field] = Value::String(format_go_duration_ms(ms));
        }
    }
    Ok(())
}

const STATE_FLAGS: &[FlagSpec] = &[string("format", "Output format {pretty|json}")];

const STATE_HELP: &str = "Usage: {p} operator autopilot state [options]

  Displays the current Autopilot state.";

fn state(ctx: Ctx, args: &[String]) -> i32 {
    let help = STATE_HELP.replace("{p}", ctx.program);
    let (client, parsed) = match setup(STATE_FLAGS, &help, args) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let format = parsed.string("format").unwrap_or("pretty").to_string();
    if format != "pretty" && format != "json" {
        ui::error(&format!("Unknown format: {format}"));
        return 1;
    }
    let request = Request::new("GET", "/v1/operator/autopilot/state").flag("pretty");
    let response = match client.query(request) {
        Ok(response) => response,
        Err(error) => {
            ui::error(&format!("Error querying Autopilot state: {error}"));
            return 1;
        }
    };
    if format == "json" {
        ui::output(String::from_utf8_lossy(&response.body).trim_end());
        return 0;
    }
    match response.json() {
        Ok(state) => {
            ui::output(&pretty_state(&state));
            0
        }
        Err(error) => {
            ui::error(&format!("Error querying Autopilot state: {error}"));
            1
        }
    }
}

/// consul's pretty state: the cluster lines, the voters, then each server by ID.
fn pretty_state(state: &Value) -> String {
    let mut out = String::new();
    let number = |v: &Value| v.as_u64().unwrap_or(0);
    out.push_str(&format!(
        "Healthy:                      {}\n",
        state["Healthy"].as_bool().unwrap_or(false)
    ));
    out.push_str(&format!(
        "Failure Tolerance:            {}\n",
        number(&state["FailureTolerance"])
    ));
    out.push_str(&format!(
        "Optimistic Failure Tolerance: {}\n",
        number(&state["OptimisticFailureTolerance"])
    ));
    out.push_str(&format!(
        "Leader:                       {}\n",
        common::text(state, "Leader")
    ));
    out.push_str("Voters:\n");
    for voter in state["Voters"].as_array().into_iter().flatten() {
        out.push_str(&format!("   {}\n", voter.as_str().unwrap_or_default()));
    }
    out.push_str("Servers:\n");
    if let Some(servers) = state["Servers"].as_object() {
        let mut ids: Vec<&String> = servers.keys().collect();
        ids.sort();
        for id in ids {
            out.push_str(&pretty_server(&servers[id]));
        }
    }
    out
}

fn pretty_server(s: &Value) -> String {
    let mut out = format!("   {}\n", common::text(s, "ID"));
    for (label, field) in [
        ("Name:            ", "Name"),
        ("Address:         ", "Address"),
        ("Version:         ", "Version"),
        ("Status:          ", "Status"),
        ("Node Type:       ", "NodeType"),
        ("Node Status:     ", "NodeStatus"),
    ] {
        out.push_str(&format!("      {label}{}\n", common::text(s, field)));
    }
    let healthy = s["Healthy"].as_bool().unwrap_or(false);
    out.push_str(&format!("      Healthy:         {healthy}\n"));
    let contact = common::text(s, "LastContact");
    out.push_str(&format!("      Last Contact:    {contact}\n"));
    let (term, index) = (s["LastTerm"].as_u64(), s["LastIndex"].as_u64());
    out.push_str(&format!("      Last Term:       {}\n", term.unwrap_or(0)));
    out.push_str(&format!("      Last Index:      {}\n", index.unwrap_or(0)));
    if let Some(meta) = s["Meta"].as_object().filter(|m| !m.is_empty()) {
        out.push_str("      Meta\n");
        let mut keys: Vec<&String> = meta.keys().collect();
        keys.sort();
        for key in keys {
            let value = meta[key].as_str().unwrap_or_default();
            out.push_str(&format!("         {key:?}: {value:?}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_config_prints_consuls_lines() {
        let config = serde_json::json!({"CleanupDeadServers": true, "LastContactThreshold": "200ms",
            "MaxTrailingLogs": 250, "MinQuorum": 0, "ServerStabilizationTime": "10s",
            "RedundancyZoneTag": "", "DisableUpgradeMigration": false, "UpgradeVersionTag": ""});
        assert_eq!(
            config_lines(&config),
            "CleanupDeadServers = true\nLastContactThreshold = 200ms\nMaxTrailingLogs = 250\n\
             MinQuorum = 0\nServerStabilizationTime = 10s\nRedundancyZoneTag = \"\"\n\
             DisableUpgradeMigration = false\nUpgradeVersionTag = \"\""
        );
    }

    #[test]
    fn state_prints_consuls_pretty_layout() {
        let state = serde_json::json!({"Healthy": true, "FailureTolerance": 0,
            "OptimisticFailureTolerance": 0, "Leader": "aa", "Voters": ["aa"],
            "Servers": {"aa": {"ID": "aa", "Name": "n1", "Address": "127.0.0.1:8300",
                "NodeStatus": "alive", "Version": "0.1.0", "LastContact": "0s", "LastTerm": 2,
                "LastIndex": 9, "Healthy": true, "Status": "leader", "NodeType": "voter",
                "Meta": {"b": "2", "a": "1"}}}});
        let text = pretty_state(&state);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Healthy:                      true");
        assert_eq!(lines[3], "Leader:                       aa");
        assert_eq!(lines[4..7], ["Voters:", "   aa", "Servers:"]);
        assert_eq!(lines[7], "   aa");
        assert_eq!(lines[8], "      Name:            n1");
        assert_eq!(lines[12], "      Node Type:       voter");
        assert_eq!(lines[17], "      Last Index:      9");
        assert_eq!(
            lines[18..],
            [
                "      Meta",
                "         \"a\": \"1\"",
                "         \"b\": \"2\""
            ]
        );
    }
}
