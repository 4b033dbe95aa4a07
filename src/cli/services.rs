//! `services register|deregister` over the agent API, from service definition files (JSON or
//! HCL, as the agent's config files) or from flags.

use super::common::{self, string, Client, Ctx};
use super::http_client::{encode_path, Request};
use crate::config::file::{self, Format};
use crate::config::flags::{FlagSpec, ParsedFlags};
use crate::ui;
use serde_json::{Map, Value};
use std::path::Path;

const SERVICES_HELP: &str = "Usage: {p} services <subcommand> [options] [args]

  This command has subcommands for interacting with services. The subcommands
  default to working with services registered with the local agent.

      $ {p} services register web.json
      $ {p} services register -name=web -port=80
      $ {p} services deregister -id=web

Subcommands:
    deregister    Deregister services with the local agent
    register      Register services with the local agent";

/// Runs `services <subcommand>`.
pub fn run(ctx: Ctx, args: &[String]) -> i32 {
    let help = SERVICES_HELP.replace("{p}", ctx.program);
    match args.split_first() {
        Some((sub, rest)) if sub == "register" => register(ctx, rest),
        Some((sub, rest)) if sub == "deregister" => deregister(ctx, rest),
        Some((sub, _)) if matches!(sub.as_str(), "-h" | "-help" | "--help") => {
            ui::error(&help);
            0
        }
        _ => {
            ui::error(&help);
            1
        }
    }
}

const REGISTER_FLAGS: &[FlagSpec] = &[
    string(
        "name",
        "Name of the service. This is required if no files are given.",
    ),
    string("id", "ID of the service. Defaults to the name."),
    string("address", "Address of the service."),
    string("port", "Port of the service."),
    string(
        "tag",
        "Tag to add to the service. This flag can be specified multiple times to set multiple \
         tags.",
    ),
    string(
        "meta",
        "Metadata to set on the service, formatted as key=value. This flag may be specified \
         multiple times to set multiple meta fields.",
    ),
    string(
        "tagged-address",
        "Tagged address to set on the service, formatted as key=value. This flag may be \
         specified multiple times to set multiple addresses.",
    ),
];

const REGISTER_HELP: &str = "Usage: {p} services register [options] [FILE...]

  Register one or more services using the local agent API. Services can
  be registered from standard Consul configuration files (HCL or JSON) or
  using flags. The service is registered and the command returns. The caller
  must remember to call \"{p} services deregister\" or a similar API to
  deregister the service when complete.

      $ {p} services register web.json

  Additional flags and more advanced use cases are detailed below.";

/// Reads the service definitions of a config file: its `service` block(s) and `services` list.
fn services_from_file(path: &str) -> Result<Vec<Value>, String> {
    let format = Format::from_extension(Path::new(path)).unwrap_or(Format::Json);
    let text = file::read(Path::new(path)).map_err(|e| e.0)?;
    let tree =
        file::parse(&text, format).map_err(|why| format!("failed to parse {path}: {why}"))?;
    let mut found = Vec::new();
    for key in ["service", "services", "Service", "Services"] {
        match tree.get(key) {
            Some(Value::Array(list)) => found.extend(list.iter().cloned()),
            Some(object @ Value::Object(_)) => found.push(object.clone()),
            _ => {}
        }
    }
    if found.is_empty() {
        return Err(format!(
            "{path}: no service definition found (a \"service\" block)"
        ));
    }
    Ok(found)
}

fn key_value_map(pairs: Vec<&str>, flag: &str) -> Result<Map<String, Value>, String> {
    let mut map = Map::new();
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(format!(
                "invalid value \"{pair}\" for flag -{flag}: missing '='"
            ));
        };
        map.insert(key.to_string(), Value::String(value.to_string()));
    }
    Ok(map)
}

/// The service definition the flags describe.
fn service_from_flags(parsed: &ParsedFlags, help: &str) -> Result<Value, i32> {
    let mut service = Map::new();
    let mut set = |key: &str, value: Value| {
        service.insert(key.to_string(), value);
    };
    set("Name", parsed.string("name").unwrap_or_default().into());
    if let Some(id) = parsed.string("id") {
        set("ID", id.into());
    }
    if let Some(address) = parsed.string("address") {
        set("Address", address.into());
    }
    let port = common::u64_flag(parsed, "port", 0, help)?;
    if port != 0 {
        set("Port", port.into());
    }
    let tags: Vec<Value> = parsed.strings("tag").into_iter().map(Value::from).collect();
    if !tags.is_empty() {
        set("Tags", Value::Array(tags));
    }
    let fail = |why: String| {
        ui::error(&why);
        1
    };
    let meta = key_value_map(parsed.strings("meta"), "meta").map_err(fail)?;
    if !meta.is_empty() {
        set("Meta", Value::Object(meta));
    }
    let tagged = key_value_map(parsed.strings("tagged-address"), "tagged-address").map_err(fail)?;
    if !tagged.is_empty() {
        let addresses = tagged
            .into_iter()
            .map(|(k, v)| (k, serde_json::json!({"Address": v})))
            .collect();
        set("TaggedAddresses", Value::Object(addresses));
    }
    Ok(Value::Object(service))
}

fn name_of(service: &Value) -> String {
    for key in ["Name", "name"] {
        if let Some(name) = service[key].as_str() {
            return name.to_string();
        }
    }
    String::new()
}

fn id_of(service: &Value) -> String {
    for key in ["ID", "id", "Id"] {
        if let Some(id) = service[key].as_str().filter(|id| !id.is_empty()) {
            return id.to_string();
        }
    }
    name_of(service)
}

fn register(ctx: Ctx, args: &[String]) -> i32 {
    let help = REGISTER_HELP.replace("{p}", ctx.program);
    let parsed = match common::parse(REGISTER_FLAGS, true, &help, args) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let services = if parsed.rest.is_empty() {
        if parsed.string("name").unwrap_or_default().is_empty() {
            ui::error("Service registration requires at least one argument or flags.");
            return 1;
        }
        match service_from_flags(&parsed, &help) {
            Ok(service) => vec![service],
            Err(code) => return code,
        }
    } else {
        match files_services(&parsed.rest) {
            Ok(services) => services,
            Err(code) => return code,
        }
    };
    match common::client(&parsed) {
        Ok(client) => register_all(&client, &services),
        Err(code) => code,
    }
}

fn files_services(paths: &[String]) -> Result<Vec<Value>, i32> {
    let mut services = Vec::new();
    for path in paths {
        match services_from_file(path) {
            Ok(found) => services.extend(found),
            Err(why) => {
                ui::error(&format!("Error: {why}"));
                return Err(1);
            }
        }
    }
    Ok(services)
}

fn register_all(client: &Client, services: &[Value]) -> i32 {
    for service in services {
        let name = name_of(service);
        let body = serde_json::to_vec(service).unwrap_or_default();
        let request = Request::new("PUT", "/v1/agent/service/register").body(body);
        if let Err(error) = client.send(request) {
            ui::error(&format!("Error registering service \"{name}\": {error}"));
            return 1;
        }
        ui::output(&format!("Registered service: {name}"));
    }
    0
}

const DEREGISTER_FLAGS: &[FlagSpec] = &[string(
    "id",
    "ID to deregister. This must not be set if arguments are given.",
)];

const DEREGISTER_HELP: &str = "Usage: {p} services deregister [options] [FILE...]

  Deregister one or more services that were previously registered with
  the local agent.

      $ {p} services deregister web.json
      $ {p} services deregister -id=web

  Additional flags and more advanced use cases are detailed below.";

fn deregister(ctx: Ctx, args: &[String]) -> i32 {
    let help = DEREGISTER_HELP.replace("{p}", ctx.program);
    let parsed = match common::parse(DEREGISTER_FLAGS, true, &help, args) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let id = parsed.string("id").unwrap_or_default();
    let ids: Vec<String> = match (id.is_empty(), parsed.rest.is_empty()) {
        (false, false) => {
            ui::error("Specify either -id or files, not both.");
            return 1;
        }
        (true, true) => {
            ui::error("Service deregistration requires at least one argument or -id.");
            return 1;
        }
        (false, true) => vec![id.to_string()],
        (true, false) => match files_services(&parsed.rest) {
            Ok(services) => services.iter().map(id_of).collect(),
            Err(code) => return code,
        },
    };
    let client = match common::client(&parsed) {
        Ok(client) => client,
        Err(code) => return code,
    };
    for id in ids {
        let path = format!("/v1/agent/service/deregister/{}", encode_path(&id));
        if let Err(error) = client.send(Request::new("PUT", path)) {
            ui::error(&format!("Error deregistering service \"{id}\": {error}"));
            return 1;
        }
        ui::output(&format!("Deregistered service: {id}"));
    }
    0
}
