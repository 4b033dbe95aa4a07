//! `watch -type=...`: a blocking-query loop over one view. Without a handler the first result is
//! printed as indented JSON and the command ends; with a handler command, it runs on every change
//! with the JSON on stdin and `CONSUL_INDEX` in its environment, and a failing handler ends the
//! watch with exit code 1.

use super::common::{self, boolean, string, Client, Ctx};
use crate::config::flags::{FlagSpec, ParsedFlags};
use crate::ui;
use crate::watch::handler::run_script_inherit;
use crate::watch::plan::{check_parameters, parse_go_bool, Params, Plan};
use crate::watch::run::{self, End, Settings, Step};

/// How long one blocking query waits.
pub const WATCH_WAIT_MS: u64 = 300_000;

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

/// The watch parameters from the flags; `passingonly` is only marked as given here (it is parsed
/// after the parameters are checked, as consul's order of messages has it).
fn params_of(parsed: &ParsedFlags) -> Params {
    let get = |name| {
        parsed
            .string(name)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    Params {
        kind: get("type").unwrap_or_default(),
        key: get("key"),
        prefix: get("prefix"),
        service: get("service"),
        tags: get("tag").into_iter().collect(),
        passing_only: get("passingonly").map(|_| false),
        state: get("state"),
        name: get("name"),
        stale: None,
    }
}

/// Builds the plan from the flags, with consul's messages for missing or extra parameters.
fn plan(parsed: &ParsedFlags) -> Result<Plan, String> {
    let mut params = params_of(parsed);
    check_parameters(&params)?;
    if let Some(text) = parsed.string("passingonly").filter(|v| !v.is_empty()) {
        params.passing_only = Some(parse_go_bool(text).ok_or_else(|| {
            format!(
                "Failed to parse passingonly flag: strconv.ParseBool: parsing \"{text}\": invalid syntax"
            )
        })?);
    }
    Plan::new(&params)
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
    let client = match common::reachable_client(&parsed) {
        Ok(client) => client,
        Err(code) => return code,
    };
    let handler: extern "C" fn(libc::c_int) = exit_on_signal;
    // SAFETY: installing a handler that only calls _exit.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
    let shell = parsed.bool("shell").unwrap_or(true);
    watch_loop(&client, &plan, &parsed.rest, shell)
}

fn watch_loop(client: &Client, plan: &Plan, handler: &[String], shell: bool) -> i32 {
    let settings = Settings {
        wait_ms: WATCH_WAIT_MS,
        stop: None,
        refusal_ends: true,
    };
    let mut code = 0;
    let end = run::run(
        client,
        plan,
        settings,
        &mut |message| ui::error(&format!("consul.watch: {message}")),
        &mut |data, index| {
            if handler.is_empty() {
                ui::output(&common::pretty_json(data, "    "));
                return Step::Stop;
            }
            match run_script_inherit(handler, shell, data, index) {
                Ok(()) => Step::Continue,
                Err(why) => {
                    ui::error(&why);
                    code = 1;
                    Step::Stop
                }
            }
        },
    );
    match end {
        End::Refused(why) => {
            ui::error(&why);
            1
        }
        End::Done | End::Stopped => code,
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
