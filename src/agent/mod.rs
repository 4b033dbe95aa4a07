//! The agent: plans and starts the executor topology, prints Consul-like startup lines, and runs
//! until SIGINT/SIGTERM. A `-server` agent runs the Raft driver ([`raft_driver`]) on the Raft
//! executor ([`server`]); the other drivers (gossip, HTTP, DNS) will run on the shards.

pub mod raft_driver;
pub mod rpc_client;
pub mod server;
pub mod state_machine;

use crate::config::AgentConfig;
use crate::logging::Logger;
use crate::ui;
use cairn_io::runtime::{
    format_bytes, ExecutorContext, ExecutorError, ExecutorRole, RuntimeError, RuntimeEvent,
    ShutdownSignals, Topology, TopologyOptions,
};
use server::ServerPlan;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// How long a graceful shutdown may take before the agent gives up and exits non-zero.
pub const SHUTDOWN_TIMEOUT_MS: u64 = 5_000;

/// Why the agent stopped with an error.
#[derive(Debug)]
pub enum AgentError {
    /// Planning or starting the executors failed.
    Runtime(RuntimeError),
    /// The agent was running and then failed (an executor died, or shutdown did not complete).
    Stopped(RuntimeError),
    /// The data directory could not be created.
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentError::Runtime(error) | AgentError::Stopped(error) => write!(f, "{error}"),
            AgentError::DataDir { path, source } => {
                write!(f, "cannot create data_dir {}: {source}", path.display())
            }
        }
    }
}

impl AgentError {
    /// True when the agent never got to running (configuration, preflight or startup).
    pub fn during_startup(&self) -> bool {
        !matches!(self, AgentError::Stopped(_))
    }
}

impl std::error::Error for AgentError {}

impl From<RuntimeError> for AgentError {
    fn from(error: RuntimeError) -> AgentError {
        AgentError::Runtime(error)
    }
}

/// Runs the agent until a shutdown signal; `Ok` after a graceful shutdown.
///
/// Must run on the main thread before any other thread exists: it blocks SIGINT/SIGTERM first so
/// every thread it starts inherits the mask.
pub fn run(config: &AgentConfig) -> Result<(), AgentError> {
    let signals = ShutdownSignals::block()?;
    let logger = Logger::new(config.log_level);
    if let (false, Some(path)) = (config.dev, &config.data_dir) {
        std::fs::create_dir_all(path).map_err(|source| AgentError::DataDir {
            path: path.clone(),
            source,
        })?;
    }
    let topology = Topology::plan(&TopologyOptions::default())?;

    ui::output("==> Starting Cairn agent...");
    for line in banner(config, &topology) {
        ui::output(&line);
    }
    ui::output("");
    ui::output("==> Log data will now stream in as it occurs:");
    ui::output("");

    let plan = ServerPlan::from_config(config).map(Arc::new);
    if let Some(plan) = &plan {
        let bootstrap = match &plan.driver.bootstrap {
            Some(c) => format!(", bootstrap configuration of {} servers", c.servers.len()),
            None => String::new(),
        };
        logger.info(
            "agent.server",
            &format!(
                "raft server {:016x} on {}{bootstrap}",
                plan.driver.raft.id.0, plan.driver.bind
            ),
        );
    }
    let mut running = topology.start(move |context| executor_main(context, plan.clone()))?;
    running.watch_signals(signals)?;
    for plan in topology.executors() {
        let cpu = plan.cpu.map_or("any".to_string(), |cpu| cpu.to_string());
        logger.debug(
            "agent.runtime",
            &format!(
                "executor running: name={} cpu={cpu} io_memory={}",
                plan.name,
                format_bytes(plan.io_memory_bytes as u64)
            ),
        );
    }
    logger.info(
        "agent",
        &format!(
            "started {} executors: {}",
            topology.executors().len(),
            topology.placement_summary()
        ),
    );
    ui::output("==> Cairn agent running!");

    let event = running.next_event().map_err(AgentError::Stopped)?;
    match event {
        RuntimeEvent::Signal(signal) => {
            ui::output(&format!("==> Caught signal: {}", signal.name()));
            ui::output("==> Gracefully shutting down agent...");
            logger.info("agent", "Requesting shutdown");
            running
                .shutdown(SHUTDOWN_TIMEOUT_MS)
                .map_err(AgentError::Stopped)?;
            logger.info("agent", "shutdown complete");
            ui::output("==> Graceful shutdown complete");
            Ok(())
        }
        RuntimeEvent::ExecutorExited { name, result } => {
            // No executor stops on its own before shutdown: treat any exit as a failure.
            let error = match result {
                Err(error) => error,
                Ok(()) => RuntimeError::ExecutorFailed {
                    name,
                    message: "stopped before shutdown was requested".to_string(),
                },
            };
            logger.error("agent", &error.to_string());
            if let Err(stop_error) = running.shutdown(SHUTDOWN_TIMEOUT_MS) {
                logger.error("agent", &stop_error.to_string());
            }
            Err(AgentError::Stopped(error))
        }
    }
}

/// The indented `key: value` lines after `==> Starting Cairn agent...`.
fn banner(config: &AgentConfig, topology: &Topology) -> Vec<String> {
    let host = topology.host();
    let memlock = match host.memlock_limit_bytes {
        Some(limit) => format_bytes(limit),
        None => "unlimited".to_string(),
    };
    let (server, data_dir) = match (&config.dev, &config.data_dir) {
        (true, None) => (
            "true (dev mode)",
            "none (dev mode keeps state in memory)".to_string(),
        ),
        (true, Some(path)) => ("true (dev mode)", path.display().to_string()),
        (false, Some(path)) if config.server => ("true", path.display().to_string()),
        (false, Some(path)) => ("false", path.display().to_string()),
        (false, None) => ("false", "none".to_string()),
    };
    let server = match (config.server, config.bootstrap, config.bootstrap_expect) {
        (true, true, _) => "true (bootstrap: true)".to_string(),
        (true, false, Some(n)) => format!("true (bootstrap-expect: {n})"),
        _ => server.to_string(),
    };
    let rows = [
        ("Version", format!("'{}'", env!("CARGO_PKG_VERSION"))),
        ("Node name", format!("'{}'", config.node_name)),
        ("Server", server),
        ("Datacenter", format!("'{}'", config.datacenter)),
        ("Data dir", data_dir),
        (
            "Executors",
            format!(
                "{} (1 raft + {} shards) on {} usable CPUs",
                topology.executors().len(),
                topology.shard_count(),
                host.parallelism
            ),
        ),
        ("Placement", topology.placement_summary()),
        (
            "IO memory",
            format!(
                "{} per executor (RLIMIT_MEMLOCK {memlock})",
                format_bytes(topology.io_memory_bytes() as u64)
            ),
        ),
    ];
    rows.iter()
        .map(|(key, value)| format!("{key:>18}: {value}"))
        .collect()
}

/// Every executor's main future: the Raft executor of a server runs the Raft driver; the others wait
/// for shutdown (the network front ends will run on the shards).
async fn executor_main(
    context: ExecutorContext,
    plan: Option<Arc<ServerPlan>>,
) -> Result<(), ExecutorError> {
    match (context.plan.role, plan) {
        (ExecutorRole::Raft, Some(plan)) => plan.run(&context.shutdown).await,
        _ => {
            context.shutdown.wait().await;
            Ok(())
        }
    }
}
