//! `keyring`: lists and rotates the gossip encryption keys of every pool through `/v1/operator/keyring`
//! (`-list`, `-list-primary`, `-install`, `-use`, `-remove`, `-relay-factor`, `-local-only`).

use super::common::{self, boolean, string, Ctx};
use super::http_client::Request;
use crate::config::flags::FlagSpec;
use crate::ui;
use serde_json::Value;

const FLAGS: &[FlagSpec] = &[
    string(
        "install",
        "Install a new encryption key. This will broadcast the new key to all members in the cluster.",
    ),
    boolean("list", "List all keys currently in use within the cluster."),
    boolean(
        "list-primary",
        "List all primary keys currently in use within the cluster.",
    ),
    string(
        "remove",
        "Remove the given key from the cluster. This operation may only be performed on keys \
         which are not currently the primary key.",
    ),
    string(
        "use",
        "Change the primary encryption key, which is used to encrypt messages. The key must \
         already be installed before this operation can succeed.",
    ),
    string(
        "relay-factor",
        "Setting this to a non-zero value will cause nodes to relay their response to the \
         operation through this many randomly-chosen other nodes in the cluster. The maximum \
         allowed value is 5.",
    ),
    boolean(
        "local-only",
        "Setting this to true will force the keyring query to only hit local servers (no WAN \
         traffic). This flag can only be set for list queries.",
    ),
];

const HELP: &str = "Usage: {p} keyring [options]

  Manages encryption keys used for gossip messages. Gossip encryption is
  optional. When enabled, this command may be used to examine active encryption
  keys in the cluster, add new keys, and remove old ones. When combined, this
  functionality provides the ability to perform key rotation cluster-wide,
  without disrupting the cluster.

  All operations performed by this command can only be run against server nodes,
  and affect both the LAN and WAN keyrings in lock-step.

  All variations of the keyring command return 0 if all nodes reply and there
  are no errors. If any node fails to reply or reports failure, the exit code
  will be 1.";

/// What one invocation does.
enum Action {
    List { primary: bool },
    Install(String),
    Use(String),
    Remove(String),
}

/// `keyring`.
pub fn run(ctx: Ctx, args: &[String]) -> i32 {
    let help = common::full_help(&HELP.replace("{p}", ctx.program), FLAGS);
    let parsed = match common::parse(FLAGS, true, &help, args) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let mut actions = Vec::new();
    for (flag, primary) in [("list", false), ("list-primary", true)] {
        if parsed.bool(flag) == Some(true) {
            actions.push(Action::List { primary });
        }
    }
    for (flag, make) in [
        ("install", Action::Install as fn(String) -> Action),
        ("use", Action::Use),
        ("remove", Action::Remove),
    ] {
        if let Some(key) = parsed.string(flag).filter(|k| !k.is_empty()) {
            actions.push(make(key.to_string()));
        }
    }
    if actions.len() > 1 {
        ui::error("Only a single action is allowed");
        return 1;
    }
    let Some(action) = actions.pop() else {
        ui::error(&help);
        return 1;
    };
    let relay = match parsed.string("relay-factor").unwrap_or("0").parse::<u8>() {
        Ok(n) if n <= 5 => n,
        _ => {
            ui::error("Error parsing relay factor: Relay factor must be in range: [0, 5]");
            return 1;
        }
    };
    let local_only = parsed.bool("local-only") == Some(true);
    if local_only && !matches!(action, Action::List { .. }) {
        ui::error("Error validating local-only: local-only can only be set for list requests");
        return 1;
    }
    let client = match common::client(&parsed) {
        Ok(client) => client,
        Err(code) => return code,
    };
    let with_options = |request: Request| {
        let request = request.param("relay-factor", relay.to_string());
        if local_only {
            request.flag("local-only")
        } else {
            request
        }
    };
    let (intro, request) = match &action {
        Action::List { primary: false } => (
            "==> Gathering installed encryption keys...",
            Request::new("GET", "/v1/operator/keyring"),
        ),
        Action::List { primary: true } => (
            "==> Gathering installed primary encryption keys...",
            Request::new("GET", "/v1/operator/keyring"),
        ),
        Action::Install(key) => (
            "==> Installing new gossip encryption key...",
            write("POST", key),
        ),
        Action::Use(key) => (
            "==> Changing primary gossip encryption key...",
            write("PUT", key),
        ),
        Action::Remove(key) => (
            "==> Removing gossip encryption key...",
            write("DELETE", key),
        ),
    };
    ui::output(intro);
    let answer = match client.send(with_options(request)) {
        Ok(answer) => answer,
        Err(error) => {
            ui::error(&format!("error: {error}"));
            return 1;
        }
    };
    if let Action::List { primary } = action {
        match answer.json() {
            Ok(pools) => ui::output(&list_text(&pools, primary)),
            Err(error) => {
                ui::error(&format!("error: {error}"));
                return 1;
            }
        }
    }
    0
}

fn write(method: &'static str, key: &str) -> Request {
    let body = serde_json::json!({ "Key": key }).to_string().into_bytes();
    Request::new(method, "/v1/operator/keyring").body(body)
}

/// Each pool as consul prints it: `WAN:` or `<dc> (LAN):`, then `  <key> [held/members]` lines.
fn list_text(pools: &Value, primary: bool) -> String {
    let mut out = Vec::new();
    for pool in pools.as_array().map(Vec::as_slice).unwrap_or_default() {
        let name = if pool["WAN"] == true {
            "WAN".to_string()
        } else {
            format!("{} (LAN)", common::text(pool, "Datacenter"))
        };
        out.push(String::new());
        out.push(format!("{name}:"));
        let nodes = pool["NumNodes"].as_u64().unwrap_or(0);
        let field = if primary { "PrimaryKeys" } else { "Keys" };
        if let Some(keys) = pool[field].as_object() {
            for (key, held) in keys {
                out.push(format!("  {key} [{}/{nodes}]", held.as_u64().unwrap_or(0)));
            }
        }
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_print_as_consul_lists_them() {
        let pools = serde_json::json!([
            {"WAN": true, "Datacenter": "dc1", "Keys": {"a=": 1}, "PrimaryKeys": {"a=": 1}, "NumNodes": 1},
            {"WAN": false, "Datacenter": "dc1", "Keys": {"a=": 2, "b=": 2}, "PrimaryKeys": {"a=": 2}, "NumNodes": 2}
        ]);
        assert_eq!(
            list_text(&pools, false),
            "\nWAN:\n  a= [1/1]\n\ndc1 (LAN):\n  a= [2/2]\n  b= [2/2]"
        );
        assert_eq!(
            list_text(&pools, true),
            "\nWAN:\n  a= [1/1]\n\ndc1 (LAN):\n  a= [2/2]"
        );
    }
}
