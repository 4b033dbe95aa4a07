//! `operator raft list-peers|remove-peer|transfer-leader` over `/v1/operator/raft`; `operator autopilot` is in
//! [`super::operator_autopilot`].

use super::common::{self, string, Client, Ctx};
use super::http_client::Request;
use crate::config::flags::FlagSpec;
use crate::ui;
use serde_json::Value;
use std::collections::HashMap;

const OPERATOR_HELP: &str = "Usage: {p} operator <subcommand> [options]

  Provides cluster-level tools for operators, such as interacting with
  the Raft subsystem.

Subcommands:
    autopilot    Provides tools for modifying Autopilot configuration
    raft         Provides cluster-level tools for Consul operators";

const RAFT_HELP: &str = "Usage: {p} operator raft <subcommand> [options]

  The Raft operator command is used to interact with the Raft subsystem.

      $ {p} operator raft list-peers
      $ {p} operator raft remove-peer -address=\"10.0.0.1:8300\"
      $ {p} operator raft transfer-leader -id=\"<server id>\"

Subcommands:
    list-peers         Display the current Raft peer configuration
    remove-peer        Remove a Consul server from the Raft configuration
    transfer-leader    Transfer raft leadership to another node";

/// Prints `help`; exit status 0 when help was asked for, else 1 (a usage error).
pub(super) fn help_or_usage(help: &str, sub: Option<&String>) -> i32 {
    ui::error(help);
    match sub.map(String::as_str) {
        Some("-h" | "-help" | "--help") => 0,
        _ => 1,
    }
}

/// Runs `operator <subcommand>`.
pub fn run(ctx: Ctx, args: &[String]) -> i32 {
    match args.split_first() {
        Some((sub, rest)) if sub == "raft" => raft(ctx, rest),
        Some((sub, rest)) if sub == "autopilot" => super::operator_autopilot::run(ctx, rest),
        _ => help_or_usage(&OPERATOR_HELP.replace("{p}", ctx.program), args.first()),
    }
}

fn raft(ctx: Ctx, args: &[String]) -> i32 {
    let Some((sub, rest)) = args.split_first() else {
        return help_or_usage(&RAFT_HELP.replace("{p}", ctx.program), None);
    };
    match sub.as_str() {
        "list-peers" => list_peers(ctx, rest),
        "remove-peer" => remove_peer(ctx, rest),
        "transfer-leader" => transfer_leader(ctx, rest),
        _ => help_or_usage(&RAFT_HELP.replace("{p}", ctx.program), Some(sub)),
    }
}

fn setup(
    specs: &[FlagSpec],
    help: &str,
    args: &[String],
) -> Result<(Client, Vec<String>, crate::config::flags::ParsedFlags), i32> {
    let parsed = common::parse(specs, true, help, args)?;
    let client = Client::from_flags(&parsed).map_err(|error| {
        ui::error(&format!("Error initializing client: {error}"));
        1
    })?;
    Ok((client, parsed.rest.clone(), parsed))
}

const LIST_HELP: &str = "Usage: {p} operator raft list-peers [options]

  Displays the current Raft peer configuration.";

fn list_peers(ctx: Ctx, args: &[String]) -> i32 {
    let help = LIST_HELP.replace("{p}", ctx.program);
    let (client, _, _) = match setup(&[], &help, args) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let request = Request::new("GET", "/v1/operator/raft/configuration");
    let config = match client.query_json(request) {
        Ok(config) => config,
        Err(error) => {
            ui::error(&format!(
                "Error getting peers: Failed to retrieve raft configuration: {error}"
            ));
            return 1;
        }
    };
    // Consul 1.17+ adds the commit index from autopilot health; without that endpoint the table
    // has the earlier six columns.
    // 429 answers an unhealthy cluster with the same body, as consul's client accepts it.
    let health = client
        .send_raw(Request::new("GET", "/v1/operator/autopilot/health"))
        .ok()
        .filter(|r| r.status == 200 || r.status == 429)
        .and_then(|r| r.json().ok());
    ui::output(&peers_table(&config, health.as_ref()));
    0
}

fn peer_row(server: &Value) -> String {
    let protocol = match &server["ProtocolVersion"] {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => "<=1".to_string(),
    };
    let state = if server["Leader"].as_bool() == Some(true) {
        "leader"
    } else {
        "follower"
    };
    format!(
        "{}\x1f{}\x1f{}\x1f{state}\x1f{}\x1f{protocol}",
        common::text(server, "Node"),
        common::text(server, "ID"),
        common::text(server, "Address"),
        server["Voter"].as_bool().unwrap_or(false),
    )
}

/// The list-peers table from a raft configuration and, when known, autopilot health.
fn peers_table(config: &Value, health: Option<&Value>) -> String {
    let servers: Vec<&Value> = config["Servers"].as_array().into_iter().flatten().collect();
    let Some(health) = health else {
        let mut rows = vec!["Node\x1fID\x1fAddress\x1fState\x1fVoter\x1fRaftProtocol".to_string()];
        rows.extend(servers.iter().map(|s| peer_row(s)));
        return common::columnize(&rows);
    };
    let last_index: HashMap<&str, u64> = health["Servers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| (common::text(s, "ID"), s["LastIndex"].as_u64().unwrap_or(0)))
        .collect();
    let leader_index = servers
        .iter()
        .find(|s| s["Leader"].as_bool() == Some(true))
        .and_then(|s| last_index.get(common::text(s, "ID")))
        .copied()
        .unwrap_or(0);
    let mut rows = vec![
        "Node\x1fID\x1fAddress\x1fState\x1fVoter\x1fRaftProtocol\x1fCommit Index\x1fTrails Leader By"
            .to_string(),
    ];
    for server in servers {
        let row = peer_row(server);
        let Some(index) = last_index.get(common::text(server, "ID")) else {
            rows.push(format!("{row}\x1f_"));
            continue;
        };
        let behind = leader_index.saturating_sub(*index);
        let trails = if server["Leader"].as_bool() == Some(true) {
            "_".to_string()
        } else if behind <= 1 {
            format!("{behind} Commit")
        } else {
            format!("{behind} Commits")
        };
        rows.push(format!("{row}\x1f{index}\x1f{trails}"));
    }
    common::columnize(&rows)
}

const REMOVE_FLAGS: &[FlagSpec] = &[
    string(
        "address",
        "The address to remove from the Raft configuration.",
    ),
    string("id", "The ID to remove from the Raft configuration."),
];

const REMOVE_HELP: &str = "Usage: {p} operator raft remove-peer [options]

  Remove the Consul server with given -address from the Raft configuration.

  There are rare cases where a peer may be left behind in the Raft quorum even
  though the server is no longer present and known to the cluster. This command
  can be used to remove the failed server so that it is no longer affects the
  Raft quorum. If the server still shows in the output of the \"{p} members\"
  command, it is preferable to clean up by simply running \"{p} force-leave\"
  instead of this command.";

fn remove_peer(ctx: Ctx, args: &[String]) -> i32 {
    let help = REMOVE_HELP.replace("{p}", ctx.program);
    let (client, _, parsed) = match setup(REMOVE_FLAGS, &help, args) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let address = parsed.string("address").unwrap_or_default();
    let id = parsed.string("id").unwrap_or_default();
    let (param, value) = match (address.is_empty(), id.is_empty()) {
        (true, true) => {
            ui::error("Error removing peer: an address or id is required for the peer to remove");
            return 1;
        }
        (false, false) => {
            ui::error("Error removing peer: cannot give both an address and id");
            return 1;
        }
        (false, true) => ("address", address),
        (true, false) => ("id", id),
    };
    let request = Request::new("DELETE", "/v1/operator/raft/peer").param(param, value);
    if let Err(error) = client.send(request) {
        ui::error(&format!("Error removing peer: {error}"));
        return 1;
    }
    ui::output(&format!("Removed peer with {param} \"{value}\""));
    0
}

const TRANSFER_FLAGS: &[FlagSpec] = &[string(
    "id",
    "The ID of the node to transfer leadership to.",
)];

const TRANSFER_HELP: &str = "Usage: {p} operator raft transfer-leader [options]

  Transfer raft leadership to another node.";

fn transfer_leader(ctx: Ctx, args: &[String]) -> i32 {
    let help = TRANSFER_HELP.replace("{p}", ctx.program);
    let (client, _, parsed) = match setup(TRANSFER_FLAGS, &help, args) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let mut request = Request::new("POST", "/v1/operator/raft/transfer-leader");
    if let Some(id) = parsed.string("id").filter(|id| !id.is_empty()) {
        request = request.param("id", id);
    }
    let outcome = client.send(request).and_then(|r| r.json());
    match outcome {
        Ok(reply) if reply["Success"].as_bool() == Some(true) => {
            ui::output("Success");
            0
        }
        Ok(_) => {
            ui::error("Error transfering leadership: Failed to transfer leadership");
            1
        }
        Err(error) => {
            ui::error(&format!(
                "Error transfering leadership: Failed to transfer leadership {error}"
            ));
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_table_has_consuls_columns() {
        let config = serde_json::json!({"Servers": [
            {"ID": "a1", "Node": "n1", "Address": "127.0.0.1:8300", "Leader": true, "Voter": true, "ProtocolVersion": "3"},
            {"ID": "b2", "Node": "n2", "Address": "127.0.0.2:8300", "Leader": false, "Voter": true, "ProtocolVersion": "3"}
        ]});
        let table = peers_table(&config, None);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "Node  ID  Address         State     Voter  RaftProtocol"
        );
        assert_eq!(lines[1], "n1    a1  127.0.0.1:8300  leader    true   3");
        let health = serde_json::json!({"Servers": [{"ID": "a1", "LastIndex": 10}, {"ID": "b2", "LastIndex": 7}]});
        let table = peers_table(&config, Some(&health));
        assert!(table
            .lines()
            .nth(2)
            .is_some_and(|l| l.ends_with("7             3 Commits")));
    }
}
