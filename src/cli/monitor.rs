//! `monitor`: streams the agent's log lines (`GET /v1/agent/monitor`) to stdout until interrupted or until
//! the agent ends the stream.

use super::common::{self, boolean, string, Ctx};
use super::http_client::{next_chunk, Request};
use crate::config::flags::FlagSpec;
use crate::ui;
use std::io::Write;

const MONITOR_FLAGS: &[FlagSpec] = &[
    string(
        "log-level",
        "Log level of the agent (trace, debug, info, warn, err). Defaults to info.",
    ),
    boolean("log-json", "Output logs in JSON format."),
];

const MONITOR_HELP: &str = "Usage: {p} monitor [options]

  Shows recent log messages of a Consul agent, and attaches to the agent,
  outputting log messages as they occur in real time. The monitor lets you
  listen for log levels that may be filtered out of the Consul agent. For
  example your agent may only be logging at INFO level, but with the monitor
  you can see the DEBUG level logs.";

/// `monitor`: prints the agent's log lines as they come.
pub fn monitor(ctx: Ctx, args: &[String]) -> i32 {
    let help = MONITOR_HELP.replace("{p}", ctx.program);
    let parsed = match common::parse(MONITOR_FLAGS, true, &help, args) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    if !parsed.rest.is_empty() {
        ui::error("The 'monitor' command takes no arguments");
        ui::error(&help);
        return 1;
    }
    let client = match common::client(&parsed) {
        Ok(client) => client,
        Err(code) => return code,
    };
    let level = parsed.string("log-level").unwrap_or("info").to_string();
    let mut request = Request::new("GET", "/v1/agent/monitor").param("loglevel", level);
    if parsed.bool("log-json").unwrap_or(false) {
        request = request.flag("logjson");
    }
    let mut response = match client.open_stream(request) {
        Ok(response) => response,
        Err(error) => {
            ui::error(&format!("Error starting monitor: {error}"));
            return 1;
        }
    };
    let mut out = std::io::stdout();
    loop {
        let chunk = if response.chunked {
            next_chunk(&mut response.body)
        } else {
            let mut line = Vec::new();
            std::io::BufRead::read_until(&mut response.body, b'\n', &mut line)
                .map(|n| (n > 0).then_some(line))
        };
        match chunk {
            Ok(Some(data)) => {
                if out.write_all(&data).and_then(|()| out.flush()).is_err() {
                    return 0;
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    ui::error(
        "Remote side ended the monitor! This usually means that the\nremote side has exited or crashed.",
    );
    1
}
