//! The `watches` of the agent configuration: checked before the agent starts (a bad one is a
//! startup error), then each run on a named std thread of its own against the agent's own HTTP API,
//! for as long as the agent runs. A failing handler is logged and the watch goes on, as Consul's
//! agent does. Watches are not restarted on reload.
//!
//! The loop is the CLI's ([`crate::watch::run`]) with a bounded wait ([`CONFIG_WATCH_WAIT_MS`]) so a
//! thread sees the stop flag within a few seconds; [`Watches::join`] waits at most its timeout and
//! leaves any thread still busy (a handler still running) to end with the process.

use crate::cli::common::Client;
use crate::cli::http_client::Endpoint;
use crate::config::AgentConfig;
use crate::logging::Logger;
use crate::watch::config::{parse_watches, ConfigWatch};
use crate::watch::handler::{run_script_captured, send_http, Handler};
use crate::watch::run::{self, Settings, Step};
use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long one blocking query of a config watch waits: the longest a watch takes to see the stop flag.
pub const CONFIG_WATCH_WAIT_MS: u64 = 5_000;
/// How long [`Watches::join`] waits for the threads by default at shutdown.
pub const WATCHES_JOIN_TIMEOUT_MS: u64 = 2_000;
/// How long a watch waits, quietly, for the agent's HTTP API to accept connections before its first
/// query (the listeners come up just after the watches start).
pub const API_WAIT_MS: u64 = 10_000;
/// The log component of config watches.
const COMPONENT: &str = "agent.watch";

/// Checks the configured watches: `Ok` with each one ready to run (none when there are none).
pub fn plan(config: &AgentConfig) -> Result<Vec<ConfigWatch>, String> {
    if config.watches.is_empty() {
        return Ok(Vec::new());
    }
    let watches = parse_watches(&config.watches)?;
    if api_addr(config).is_none() {
        return Err("watch plans require an HTTP or HTTPS endpoint".to_string());
    }
    Ok(watches)
}

/// Where the watches ask: the first HTTP address (a wildcard one asked on loopback).
pub fn api_addr(config: &AgentConfig) -> Option<SocketAddr> {
    let addr = *config.http_addrs().first()?;
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Some(SocketAddr::new(ip, addr.port()))
}

/// The running config watches.
pub struct Watches {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// Starts one thread per watch; a thread that cannot be started is logged and skipped.
pub fn start(watches: Vec<ConfigWatch>, config: &AgentConfig, logger: Logger) -> Watches {
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::with_capacity(watches.len());
    let Some(addr) = api_addr(config) else {
        return Watches { stop, threads };
    };
    for (number, watch) in watches.into_iter().enumerate() {
        if watch.deprecated_handler {
            logger.log(
                crate::logging::LogLevel::Warn,
                COMPONENT,
                "The 'handler' field in watches has been deprecated and replaced with the 'args' \
                 field.",
            );
        }
        let token = watch
            .token
            .clone()
            .or_else(|| config.acl.tokens.default.clone())
            .filter(|t| !t.is_empty());
        let client = Client::new(
            Endpoint::Tcp(addr.to_string()),
            token,
            watch.datacenter.clone(),
        );
        let flag = Arc::clone(&stop);
        let spawned = std::thread::Builder::new()
            .name(format!("watch-{number}"))
            .spawn(move || {
                if wait_for_api(addr, &flag) {
                    run_watch(&watch, &client, &flag, logger);
                }
            });
        match spawned {
            Ok(thread) => threads.push(thread),
            Err(e) => logger.error(COMPONENT, &format!("cannot start watch {number}: {e}")),
        }
    }
    if !threads.is_empty() {
        logger.info(
            COMPONENT,
            &format!("running {} watches against {addr}", threads.len()),
        );
    }
    Watches { stop, threads }
}

impl Watches {
    /// Tells every watch to stop (it notices between queries, within [`CONFIG_WATCH_WAIT_MS`]).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// Stops the watches and waits at most `timeout_ms` for their threads; any still running (a
    /// handler that has not returned) is left to end with the process.
    pub fn join(mut self, timeout_ms: u64) {
        self.stop();
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        while !self.threads.is_empty() && Instant::now() < deadline {
            let (done, busy): (Vec<_>, Vec<_>) =
                self.threads.drain(..).partition(JoinHandle::is_finished);
            for thread in done {
                let _ = thread.join();
            }
            self.threads = busy;
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Waits until `addr` accepts a connection, at most [`API_WAIT_MS`]; false when stopped meanwhile.
fn wait_for_api(addr: SocketAddr, stop: &AtomicBool) -> bool {
    let deadline = Instant::now() + Duration::from_millis(API_WAIT_MS);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            break;
        }
        if run::pause(50, Some(stop)) {
            return false;
        }
    }
    !stop.load(Ordering::Acquire)
}

fn run_watch(watch: &ConfigWatch, client: &Client, stop: &AtomicBool, logger: Logger) {
    let settings = Settings {
        wait_ms: CONFIG_WATCH_WAIT_MS,
        stop: Some(stop),
        refusal_ends: false,
    };
    run::run(
        client,
        &watch.plan,
        settings,
        &mut |message| logger.error(COMPONENT, message),
        &mut |data, index| {
            invoke(&watch.handler, data, index, logger);
            Step::Continue
        },
    );
}

/// Runs the handler once; a failure is logged, as Consul's agent does, and the watch goes on.
pub fn invoke(handler: &Handler, data: &Value, index: u64, logger: Logger) {
    match handler {
        Handler::Script { args, shell } => {
            let name = handler.describe();
            let output = match run_script_captured(args, *shell, data, index) {
                Ok(output) => output,
                Err((why, output)) => {
                    logger.error(
                        COMPONENT,
                        &format!("Failed to run watch handler: handler={name:?} error={why:?}"),
                    );
                    output
                }
            };
            logger.debug(
                COMPONENT,
                &format!("watch handler output: handler={name:?} output={output:?}"),
            );
        }
        Handler::Http(config) => match send_http(config, data, index) {
            Err(why) => logger.error(
                COMPONENT,
                &format!("Failed to invoke http watch handler: error={why:?}"),
            ),
            Ok(answer) if !(200..300).contains(&answer.status) => logger.error(
                COMPONENT,
                &format!(
                    "http watch handler failed with status code: url={} status_code={} output={:?}",
                    config.path, answer.status, answer.output
                ),
            ),
            Ok(answer) => logger.debug(
                COMPONENT,
                &format!(
                    "http watch handler output: url={} output={:?}",
                    config.path, answer.output
                ),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_need_the_http_api() {
        let args = ["-dev".to_string()];
        let mut config = AgentConfig::from_args(&args, Some("host")).expect("config");
        assert_eq!(plan(&config).map(|w| w.len()), Ok(0));
        config.watches = vec![serde_json::json!({"type": "nodes", "args": ["true"]})];
        config.ports.http = None;
        assert_eq!(
            plan(&config).map(|w| w.len()),
            Err("watch plans require an HTTP or HTTPS endpoint".to_string())
        );
        config.ports.http = Some(8500);
        config.client_addrs = vec!["0.0.0.0".parse().expect("ip")];
        config.addresses_http = None;
        assert_eq!(plan(&config).map(|w| w.len()), Ok(1));
        assert_eq!(
            api_addr(&config),
            Some("127.0.0.1:8500".parse().expect("addr"))
        );
    }
}
