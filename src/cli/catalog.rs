//! `catalog datacenters|nodes|services` over `/v1/catalog`.

use super::common::{self, boolean, string, Client, Ctx};
use super::http_client::{encode_path, Request};
use crate::config::flags::{FlagSpec, ParsedFlags};
use crate::ui;
use serde_json::Value;
use std::collections::BTreeMap;

const CATALOG_HELP: &str = "Usage: {p} catalog <subcommand> [options] [args]

  This command has subcommands for interacting with the catalog. The
  catalog is the authoritative list of nodes and services.

      $ {p} catalog datacenters
      $ {p} catalog nodes
      $ {p} catalog services

Subcommands:
    datacenters    Lists all known datacenters
    nodes          Lists all nodes in the given datacenter
    services       Lists all registered services in a datacenter";

/// Runs `catalog <subcommand>`.
pub fn run(ctx: Ctx, args: &[String]) -> i32 {
    let help = CATALOG_HELP.replace("{p}", ctx.program);
    let Some((sub, rest)) = args.split_first() else {
        ui::error(&help);
        return 1;
    };
    match sub.as_str() {
        "datacenters" => datacenters(ctx, rest),
        "nodes" => nodes(ctx, rest),
        "services" => services(ctx, rest),
        "-h" | "-help" | "--help" => {
            ui::error(&help);
            0
        }
        _ => {
            ui::error(&help);
            1
        }
    }
}

fn no_args(parsed: &ParsedFlags) -> Result<(), i32> {
    if parsed.rest.is_empty() {
        return Ok(());
    }
    ui::error("Too many arguments (expected 0)");
    Err(1)
}

fn setup(specs: &[FlagSpec], help: &str, args: &[String]) -> Result<(ParsedFlags, Client), i32> {
    let parsed = common::parse(specs, true, help, args)?;
    no_args(&parsed)?;
    let client = common::client(&parsed)?;
    Ok((parsed, client))
}

const DATACENTERS_HELP: &str = "Usage: {p} catalog datacenters [options]

  Retrieves the list of all known datacenters.

      $ {p} catalog datacenters";

fn datacenters(ctx: Ctx, args: &[String]) -> i32 {
    let help = DATACENTERS_HELP.replace("{p}", ctx.program);
    let (_, client) = match setup(&[], &help, args) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let list = match client.query_json(Request::new("GET", "/v1/catalog/datacenters")) {
        Ok(list) => list,
        Err(error) => {
            ui::error(&format!("Error listing datacenters: {error}"));
            return 1;
        }
    };
    let names: Vec<&str> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if names.is_empty() {
        ui::error("No datacenters found");
        return 1;
    }
    for name in names {
        ui::output(name);
    }
    0
}

const NODES_FLAGS: &[FlagSpec] = &[
    boolean(
        "detailed",
        "Output detailed information about the nodes including their addresses and metadata.",
    ),
    string(
        "near",
        "Node name to sort the node list in ascending order based on estimated round-trip time \
         from that node. Passing \"_agent\" will use this agent's node for sorting.",
    ),
    string(
        "node-meta",
        "Metadata to filter nodes with the given `key=value` pairs. This flag may be specified \
         multiple times to filter on multiple sources of metadata.",
    ),
    string(
        "service",
        "Service `id or name` to filter nodes. Only nodes which are providing the given service \
         will be returned.",
    ),
    string("filter", "Filter to use with the request"),
];

const NODES_HELP: &str = "Usage: {p} catalog nodes [options]

  Retrieves the list nodes registered in a given datacenter. By default, the
  datacenter of the local agent is queried.

      $ {p} catalog nodes
      $ {p} catalog nodes -detailed
      $ {p} catalog nodes -node-meta=\"foo=bar\"
      $ {p} catalog nodes -service=web";

/// Adds `node-meta=k:v` for each `-node-meta k=v`; a pair without `=` is an error message.
fn node_meta_params(parsed: &ParsedFlags, mut request: Request) -> Result<Request, String> {
    for pair in parsed.strings("node-meta") {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(format!(
                "invalid value \"{pair}\" for flag -node-meta: missing '='"
            ));
        };
        request = request.param("node-meta", format!("{key}:{value}"));
    }
    Ok(request)
}

fn nodes_request(parsed: &ParsedFlags) -> Result<Request, String> {
    let path = match parsed.string("service") {
        Some(service) => format!("/v1/catalog/service/{}", encode_path(service)),
        None => "/v1/catalog/nodes".to_string(),
    };
    let mut request = node_meta_params(parsed, Request::new("GET", path))?;
    if let Some(near) = parsed.string("near") {
        request = request.param("near", near);
    }
    if let Some(filter) = parsed.string("filter") {
        request = request.param("filter", filter);
    }
    Ok(request)
}

fn nodes(ctx: Ctx, args: &[String]) -> i32 {
    let help = NODES_HELP.replace("{p}", ctx.program);
    let (parsed, client) = match setup(NODES_FLAGS, &help, args) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let request = match nodes_request(&parsed) {
        Ok(request) => request,
        Err(why) => {
            ui::error(&why);
            return 1;
        }
    };
    let list = match client.query_json(request) {
        Ok(list) => list,
        Err(error) => {
            ui::error(&format!("Error listing nodes: {error}"));
            return 1;
        }
    };
    let rows = node_rows(&list, parsed.string("service").is_some());
    if rows.is_empty() {
        ui::error("No nodes match the given query - try expanding your search.");
        return 0;
    }
    ui::output(&nodes_table(
        &rows,
        parsed.bool("detailed").unwrap_or(false),
    ));
    0
}

/// A node as the table shows it.
struct NodeRow {
    name: String,
    id: String,
    address: String,
    datacenter: String,
    tagged: String,
    meta: String,
}

fn pairs_text(value: &Value) -> String {
    let map: BTreeMap<&String, String> = value
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_string)))
        .collect();
    let parts: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.join(", ")
}

/// Rows from `/v1/catalog/nodes` or (for `-service`) `/v1/catalog/service/:name`, one per node,
/// in the answer's order.
fn node_rows(list: &Value, from_service: bool) -> Vec<NodeRow> {
    let mut rows: Vec<NodeRow> = Vec::new();
    for entry in list.as_array().into_iter().flatten() {
        let name = common::text(entry, "Node").to_string();
        if from_service && rows.iter().any(|row| row.name == name) {
            continue;
        }
        let meta_field = if from_service { "NodeMeta" } else { "Meta" };
        rows.push(NodeRow {
            name,
            id: common::text(entry, "ID").to_string(),
            address: common::text(entry, "Address").to_string(),
            datacenter: common::text(entry, "Datacenter").to_string(),
            tagged: pairs_text(&entry["TaggedAddresses"]),
            meta: pairs_text(&entry[meta_field]),
        });
    }
    rows
}

fn nodes_table(rows: &[NodeRow], detailed: bool) -> String {
    let mut lines = vec![if detailed {
        "Node\x1fID\x1fAddress\x1fDC\x1fTaggedAddresses\x1fMeta".to_string()
    } else {
        "Node\x1fID\x1fAddress\x1fDC".to_string()
    }];
    for row in rows {
        if detailed {
            lines.push(format!(
                "{}\x1f{}\x1f{}\x1f{}\x1f{}\x1f{}",
                row.name, row.id, row.address, row.datacenter, row.tagged, row.meta
            ));
        } else {
            let id: String = row.id.chars().take(8).collect();
            lines.push(format!(
                "{}\x1f{}\x1f{}\x1f{}",
                row.name, id, row.address, row.datacenter
            ));
        }
    }
    common::columnize(&lines)
}

const SERVICES_FLAGS: &[FlagSpec] = &[
    string("node", "Node `id or name` for which to list services."),
    string(
        "node-meta",
        "Metadata to filter nodes with the given `key=value` pairs. If specified, only services \
         running on nodes matching the given metadata will be returned. This flag may be \
         specified multiple times to filter on multiple sources of metadata.",
    ),
    boolean(
        "tags",
        "Display each service's tags as a comma-separated list beside each service entry.",
    ),
    string("filter", "Filter to use with the request"),
];

const SERVICES_HELP: &str = "Usage: {p} catalog services [options]

  Retrieves the list services registered in a given datacenter. By default, the
  datacenter of the local agent is queried.

      $ {p} catalog services
      $ {p} catalog services -tags
      $ {p} catalog services -node=web-001";

fn services(ctx: Ctx, args: &[String]) -> i32 {
    let help = SERVICES_HELP.replace("{p}", ctx.program);
    let (parsed, client) = match setup(SERVICES_FLAGS, &help, args) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let services = match parsed.string("node") {
        Some(node) => node_services(&client, &parsed, node),
        None => all_services(&client, &parsed),
    };
    let services = match services {
        Ok(services) => services,
        Err(why) => {
            ui::error(&why);
            return 1;
        }
    };
    if services.is_empty() {
        ui::error("No services match the given query - try expanding your search.");
        return 0;
    }
    if parsed.bool("tags").unwrap_or(false) {
        let rows: Vec<String> = services
            .iter()
            .map(|(name, tags)| format!("{name}\x1f{}", tags.join(",")))
            .collect();
        ui::output(&common::columnize(&rows));
    } else {
        for name in services.keys() {
            ui::output(name);
        }
    }
    0
}

fn tags_of(value: &Value) -> Vec<String> {
    let mut tags: Vec<String> = value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect();
    tags.sort();
    tags.dedup();
    tags
}

fn all_services(
    client: &Client,
    parsed: &ParsedFlags,
) -> Result<BTreeMap<String, Vec<String>>, String> {
    let mut request = node_meta_params(parsed, Request::new("GET", "/v1/catalog/services"))?;
    if let Some(filter) = parsed.string("filter") {
        request = request.param("filter", filter);
    }
    let map = client
        .query_json(request)
        .map_err(|error| format!("Error listing services: {error}"))?;
    Ok(map
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, tags)| (name.clone(), tags_of(tags)))
        .collect())
}

fn node_services(
    client: &Client,
    parsed: &ParsedFlags,
    node: &str,
) -> Result<BTreeMap<String, Vec<String>>, String> {
    let mut request = Request::new("GET", format!("/v1/catalog/node/{}", encode_path(node)));
    if let Some(filter) = parsed.string("filter") {
        request = request.param("filter", filter);
    }
    let answer = client
        .query_json(request)
        .map_err(|error| format!("Error listing services for node: {error}"))?;
    let mut services: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for service in answer["Services"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(_, s)| s)
    {
        let entry = services
            .entry(common::text(service, "Service").to_string())
            .or_default();
        entry.extend(tags_of(&service["Tags"]));
        entry.sort();
        entry.dedup();
    }
    Ok(services)
}
