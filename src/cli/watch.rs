//! `watch -type=...`: a blocking-query loop over one view. Without a handler the first result is
//! printed as indented JSON and the command ends; with a handler command, it runs on every change
//! with the JSON on stdin and `CONSUL_INDEX` in its environment, and a failing handler ends the
//! watch with exit code 1.

use super::common::{self, boolean, string, Client, Ctx};
use super::http_client::{encode_path, ClientError, Request};
use super::lock::{child_command, exit_text};
use super::lock_kv::blocking_get;
use crate::config::flags::{FlagSpec, ParsedFlags};
use crate::ui;
use serde_json::Value;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

/// How long one blocking query waits.
pub const WATCH_WAIT_MS: u64 = 300_000;
/// The first retry delay after an error; doubled up to [`RETRY_MAX_MS`].
pub const RETRY_BASE_MS: u64 = 1_000;
/// The longest retry delay.
pub const RETRY_MAX_MS: u64 = 30_000;

const WATCH_FLAGS: &[FlagSpec] = &[
    string(
        "type",
        "Specifies the watch type. One of key, keyprefix, services, nodes, service, checks, or \
         event.",
    ),
    string("key", "Specifies the key to watch. Only for 'key' type."),
    string(
        "prefix",
        "Specifies the key prefix to watch. Only for 'keyprefix' type.",
    ),
    string(
        "service",
        "Specifies the service to watch. Required for 'service' type, optional for 'checks' type.",
    ),
    string(
        "tag",
        "Specifies the service tag to filter on. Optional for 'service' type.",
    ),
    string(
        "passingonly",
        "Specifies if only hosts passing all checks are displayed. Optional for 'service' type, \
         must be one of `[true|false]`. Defaults false.",
    ),
    boolean(
        "shell",
        "Use a shell to run the command (can set a custom shell via the SHELL environment \
         variable). The default value is true.",
    ),
    string(
        "state",
        "Specifies the states to watch. Optional for 'checks' type.",
    ),
    string(
        "name",
        "Specifies an event name to watch. Only for 'event' type.",
    ),
];

const WATCH_HELP: &str = "Usage: {p} watch [options] [child...]

  Watches for changes in a given data view from Consul. If a child process
  is specified, it will be invoked with the latest results on changes. Otherwise,
  the latest values are dumped to stdout and the watch terminates.

  Providing the watch type is required, and other parameters may be required
  or supported depending on the watch type.";

/// What is watched: the request for one round and how its answer becomes the handler's data.
#[derive(Clone, Debug)]
struct Plan {
    kind: String,
    request: Request,
    single_key: bool,
    /// Whether 404 means "nothing there" (KV) rather than a missing endpoint.
    not_found_is_empty: bool,
}

fn parse_go_bool(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!(
            "Failed to parse passingonly flag: strconv.ParseBool: parsing \"{text}\": invalid syntax"
        )),
    }
}

/// Builds the plan from the flags, with consul's messages for missing or extra parameters.
fn plan(parsed: &ParsedFlags) -> Result<Plan, String> {
    let get = |name| parsed.string(name).filter(|v| !v.is_empty());
    let kind = get("type").unwrap_or_default().to_string();
    let allowed: &[&str] = match kind.as_str() {
        "key" => &["key"],
        "keyprefix" => &["prefix"],
        "services" | "nodes" => &[],
        "service" => &["service", "tag", "passingonly"],
        "checks" => &["service", "state"],
        "event" => &["name"],
        _ => return Err(format!("Unsupported watch type: {kind}")),
    };
    for name in [
        "key",
        "prefix",
        "service",
        "tag",
        "passingonly",
        "state",
        "name",
    ] {
        if get(name).is_some() && !allowed.contains(&name) {
            return Err(format!("Invalid parameters: [{name}]"));
        }
    }
    let passing = match get("passingonly") {
        Some(text) => parse_go_bool(text)?,
        None => false,
    };
    let request = match kind.as_str() {
        "key" => {
            let key = get("key").ok_or("Must specify a single key to watch")?;
            Request::new("GET", super::kv::kv_path(key))
        }
        "keyprefix" => {
            let prefix = get("prefix").ok_or("Must specify a single prefix to watch")?;
            Request::new("GET", super::kv::kv_path(prefix)).flag("recurse")
        }
        "services" => Request::new("GET", "/v1/catalog/services"),
        "nodes" => Request::new("GET", "/v1/catalog/nodes"),
        "service" => service_request(get("service"), get("tag"), passing)?,
        "checks" => checks_request(get("service"), get("state"))?,
        _ => {
            let request = Request::new("GET", "/v1/event/list");
            match get("name") {
                Some(name) => request.param("name", name),
                None => request,
            }
        }
    };
    Ok(Plan {
        single_key: kind == "key",
        not_found_is_empty: kind == "key" || kind == "keyprefix",
        kind,
        request,
    })
}

fn service_request(
    service: Option<&str>,
    tag: Option<&str>,
    passing: bool,
) -> Result<Request, String> {
    let service = service.ok_or("Must specify a single service to watch")?;
    let mut request = Request::new(
        "GET",
        format!("/v1/health/service/{}", encode_path(service)),
    );
    if let Some(tag) = tag {
        request = request.param("tag", tag);
    }
    if passing {
        request = request.flag("passing");
    }
    Ok(request)
}

fn checks_request(service: Option<&str>, state: Option<&str>) -> Result<Request, String> {
    match (service, state) {
        (Some(_), Some(_)) => Err("Cannot specify service and state".to_string()),
        (Some(service), None) => Ok(Request::new(
            "GET",
            format!("/v1/health/checks/{}", encode_path(service)),
        )),
        (None, state) => Ok(Request::new(
            "GET",
            format!("/v1/health/state/{}", encode_path(state.unwrap_or("any"))),
        )),
    }
}

extern "C" fn exit_on_signal(_: libc::c_int) {
    // SAFETY: _exit is async-signal-safe; a watch interrupted by the user ends with 0 as consul's.
    unsafe { libc::_exit(0) }
}

/// Runs `watch`.
pub fn run(ctx: Ctx, args: &[String]) -> i32 {
    let help = WATCH_HELP.replace("{p}", ctx.program);
    let parsed = match common::parse(WATCH_FLAGS, true, &help, args) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    if parsed.string("type").unwrap_or_default().is_empty() {
        ui::error("Watch type must be specified");
        ui::error("");
        ui::error(&common::full_help(
            &help,
            &[WATCH_FLAGS, common::HTTP_FLAGS].concat(),
        ));
        return 1;
    }
    let plan = match plan(&parsed) {
        Ok(plan) => plan,
        Err(why) => {
            ui::error(&why);
            return 1;
        }
    };
    let client = match common::client(&parsed) {
        Ok(client) => client,
        Err(code) => return code,
    };
    if let Err(error) = client.node_name() {
        ui::error(&format!("Error querying Consul agent: {error}"));
        return 1;
    }
    let handler: extern "C" fn(libc::c_int) = exit_on_signal;
    // SAFETY: installing a handler that only calls _exit.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
    let shell = parsed.bool("shell").unwrap_or(true);
    watch_loop(&client, &plan, &parsed.rest, shell)
}

/// The data handed to the handler from one answer.
fn data_of(plan: &Plan, answer: Value) -> Value {
    if plan.single_key {
        return answer
            .as_array()
            .and_then(|entries| entries.first().cloned())
            .unwrap_or(Value::Null);
    }
    answer
}

fn watch_loop(client: &Client, plan: &Plan, handler: &[String], shell: bool) -> i32 {
    let mut index = 0;
    let mut last: Option<Value> = None;
    let mut retry_ms = RETRY_BASE_MS;
    loop {
        let request = if client.stale() {
            plan.request.clone().flag("stale")
        } else {
            plan.request.clone()
        };
        let (answer, next) = match blocking_get(client, request, index, WATCH_WAIT_MS) {
            Ok((Value::Null, _)) if !plan.not_found_is_empty => {
                ui::error("Error querying Consul agent: Unexpected response code: 404 (404 page not found)");
                return 1;
            }
            Ok(found) => found,
            Err(ClientError::Status { code, body }) if (400..500).contains(&code) => {
                ui::error(&format!(
                    "Error querying Consul agent: Unexpected response code: {code} ({body})"
                ));
                return 1;
            }
            Err(error) => {
                ui::error(&format!(
                    "consul.watch: Watch errored: type={} error=\"{error}\" retry={}s",
                    plan.kind,
                    retry_ms / 1000
                ));
                std::thread::sleep(Duration::from_millis(retry_ms));
                retry_ms = (retry_ms * 2).min(RETRY_MAX_MS);
                continue;
            }
        };
        retry_ms = RETRY_BASE_MS;
        let data = data_of(plan, answer);
        let old_index = index;
        index = if next < old_index { 0 } else { next.max(1) };
        if old_index != 0 && last.as_ref() == Some(&data) {
            continue;
        }
        last = Some(data.clone());
        if handler.is_empty() {
            ui::output(&common::pretty_json(&data, "    "));
            return 0;
        }
        if let Err(why) = run_handler(handler, shell, &data, index) {
            ui::error(&why);
            return 1;
        }
    }
}

/// Runs the handler once with `data` as JSON on stdin.
fn run_handler(args: &[String], shell: bool, data: &Value, index: u64) -> Result<(), String> {
    let mut command = child_command(args, shell);
    command
        .env("CONSUL_INDEX", index.to_string())
        .stdin(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|e| format!("Error starting handler: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let mut input = data.to_string().into_bytes();
        input.push(b'\n');
        // A handler that does not read its input may close the pipe; that is not a failure.
        let _ = stdin.write_all(&input);
    }
    let status = child
        .wait()
        .map_err(|e| format!("Error executing handler: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("Error executing handler: {}", exit_text(status)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::flags;

    fn plan_of(args: &[&str]) -> Result<Plan, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        plan(&flags::parse(WATCH_FLAGS, &args).expect("flags"))
    }

    #[test]
    fn plans_check_their_parameters_like_consul() {
        assert_eq!(
            plan_of(&["-type=key"]).map(|_| ()),
            Err("Must specify a single key to watch".to_string())
        );
        assert_eq!(
            plan_of(&["-type=bogus"]).map(|_| ()),
            Err("Unsupported watch type: bogus".to_string())
        );
        assert_eq!(
            plan_of(&["-type=checks", "-service=a", "-state=passing"]).map(|_| ()),
            Err("Cannot specify service and state".to_string())
        );
        let p = plan_of(&["-type=service", "-service=web", "-passingonly=true"]).expect("plan");
        assert_eq!(p.request.path, "/v1/health/service/web");
        assert!(plan_of(&["-type=service", "-service=web", "-passingonly=x"]).is_err());
        assert!(plan_of(&["-type=nodes", "-key=a"]).is_err());
    }
}
