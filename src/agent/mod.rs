//! The agent: plans and starts the executor topology, prints Consul-like startup lines, and runs
//! until SIGINT/SIGTERM. A `-server` agent runs the Raft driver ([`raft_driver`]) on the Raft
//! executor ([`server`]); the HTTP API and DNS run on every shard. A client agent (no `-server`) has no Raft:
//! its shards answer from the agent's local state and relay the rest, DNS queries included, to the servers
//! ([`remote`], [`relay`]).

pub mod anti_entropy;
pub mod autopilot;
pub mod bridge;
pub mod check_grpc;
pub mod check_runner;
pub mod check_tls;
pub mod checks;
pub mod dns;
pub mod gossip;
pub mod http;
pub mod leader;
pub mod membership;
pub mod metrics;
pub mod monitor;
pub mod raft_driver;
pub mod reconcile;
pub mod relay;
pub mod remote;
pub mod rpc_client;
pub mod self_registration;
pub mod server;
pub mod shard;
pub mod state_machine;
pub mod ttl;
pub mod watches;

use crate::config::AgentConfig;
use crate::logging::{set_level_override, LogLevel, Logger};
use crate::ui;
use anti_entropy::LocalAgent;
use bridge::{bridge, CoreSide, ShardSide};
use cairn_io::runtime::{
    format_bytes, ExecutorContext, ExecutorError, ExecutorRole, RunningTopology, RuntimeError,
    RuntimeEvent, ShutdownSignal, ShutdownSignals, Topology, TopologyOptions,
};

use futures_lite::future::or;
use http::{ApiSettings, Backend, FrontEnd};
use parking_lot::Mutex;
use remote::RemoteLink;
use server::ServerPlan;
use shard::ShardLink;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// The local state kept in the data directory could not be read.
    LocalState(String),
    /// A watch of the configuration is not valid.
    Watch(String),
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentError::Runtime(error) | AgentError::Stopped(error) => write!(f, "{error}"),
            AgentError::DataDir { path, source } => {
                write!(f, "cannot create data_dir {}: {source}", path.display())
            }
            AgentError::LocalState(why) => write!(f, "cannot restore the local state: {why}"),
            AgentError::Watch(why) => f.write_str(why),
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
pub fn run(
    config: &AgentConfig,
    args: &[String],
    hostname: Option<&str>,
) -> Result<(), AgentError> {
    let signals = ShutdownSignals::block()?;
    let logger = Logger::new(config.log_level);
    let watch_plans = watches::plan(config).map_err(AgentError::Watch)?;
    raise_open_files_limit(&logger);
    if let (false, Some(path)) = (config.dev, &config.data_dir) {
        std::fs::create_dir_all(path).map_err(|source| AgentError::DataDir {
            path: path.clone(),
            source,
        })?;
    }
    let config = &with_node_id(config)?;
    let topology = Topology::plan(&TopologyOptions::default())?;

    ui::output("==> Starting Cairn agent...");
    for line in banner(config, &topology) {
        ui::output(&line);
    }
    ui::output("");
    ui::output("==> Log data will now stream in as it occurs:");
    ui::output("");

    let plan = ServerPlan::from_config(config).map(Arc::new);
    let leave_requested = Arc::new(AtomicBool::new(false));
    let local_dir = config.data_dir.as_deref().filter(|_| !config.dev);
    let local = LocalAgent::open(local_dir).map_err(AgentError::LocalState)?;
    let wiring = Arc::new(Wiring::new(
        config,
        &topology,
        Arc::clone(&leave_requested),
        Arc::new(local),
    ));
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
    write_pid_file(config, &logger);
    let running = topology
        .start(move |context| executor_main(context, plan.clone(), Arc::clone(&wiring)))
        .inspect_err(|_| remove_pid_file(config))?;
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
    let watches = watches::start(watch_plans, config, logger);

    let result = run_until_stopped(
        running,
        config,
        args,
        hostname,
        &leave_requested,
        &logger,
        &watches,
    );
    watches.join(watches::WATCHES_JOIN_TIMEOUT_MS);
    remove_pid_file(config);
    result
}

/// The configuration with its node ID: `node_id` when set, else the one kept in `<data_dir>/node-id`, else a
/// new random UUID (written there, as Consul does, so the node keeps its ID across restarts).
fn with_node_id(config: &AgentConfig) -> Result<AgentConfig, AgentError> {
    let mut config = config.clone();
    if config.node_id.is_some() {
        return Ok(config);
    }
    let file = config
        .data_dir
        .as_ref()
        .filter(|_| !config.dev)
        .map(|dir| dir.join("node-id"));
    let kept = file
        .as_ref()
        .and_then(|path| std::fs::read_to_string(path).ok())
        .map(|text| text.trim().to_string())
        .filter(|id| uuid::Uuid::parse_str(id).is_ok());
    let id = match kept {
        Some(id) => id,
        None => {
            let id = uuid::Uuid::new_v4().to_string();
            if let Some(path) = &file {
                std::fs::write(path, &id).map_err(|e| {
                    AgentError::LocalState(format!("cannot write {}: {e}", path.display()))
                })?;
            }
            id
        }
    };
    config.node_id = Some(id);
    Ok(config)
}

fn remove_pid_file(config: &AgentConfig) {
    if let Some(path) = &config.pid_file {
        let _ = std::fs::remove_file(path);
    }
}

/// Raises the soft limit on open files to the hard limit, as Go programs (Consul) do at startup: every
/// HTTP connection, blocking queries included, holds a descriptor.
fn raise_open_files_limit(logger: &Logger) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct handed in.
    let raised = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0
            && limit.rlim_cur < limit.rlim_max
            && {
                let before = limit.rlim_cur;
                limit.rlim_cur = limit.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 && before != limit.rlim_cur
            }
    };
    if raised {
        logger.debug(
            "agent",
            &format!("raised the open files limit to {}", limit.rlim_cur),
        );
    }
}

/// Writes `-pid-file` (the process id and a newline), if asked; a failure is logged, as Consul does.
fn write_pid_file(config: &AgentConfig, logger: &Logger) {
    if let Some(path) = &config.pid_file {
        if let Err(e) = std::fs::write(path, format!("{}\n", std::process::id())) {
            logger.error(
                "agent",
                &format!("could not write pid file {}: {e}", path.display()),
            );
        }
    }
}

/// Waits for the end: a shutdown signal, a leave through the API, or an executor failing. SIGHUP reloads
/// what can be reloaded and keeps running.
fn run_until_stopped(
    mut running: RunningTopology,
    config: &AgentConfig,
    args: &[String],
    hostname: Option<&str>,
    leave_requested: &AtomicBool,
    logger: &Logger,
    watches: &watches::Watches,
) -> Result<(), AgentError> {
    let mut current = config.clone();
    loop {
        let event = running.next_event().map_err(AgentError::Stopped)?;
        if !matches!(event, RuntimeEvent::Signal(ShutdownSignal::Hangup)) {
            // Every other event ends the agent: the watches stop before the API goes away.
            watches.stop();
        }
        match event {
            RuntimeEvent::Signal(ShutdownSignal::Hangup) => {
                ui::output("==> Caught signal: hangup");
                current = reload(&current, args, hostname, logger);
            }
            RuntimeEvent::Signal(signal) => {
                ui::output(&format!("==> Caught signal: {}", signal.name()));
                ui::output("==> Gracefully shutting down agent...");
                logger.info("agent", "Requesting shutdown");
                running
                    .shutdown(SHUTDOWN_TIMEOUT_MS)
                    .map_err(AgentError::Stopped)?;
                logger.info("agent", "shutdown complete");
                ui::output("==> Graceful shutdown complete");
                return Ok(());
            }
            RuntimeEvent::ExecutorExited { result: Ok(()), .. }
                if leave_requested.load(Ordering::Acquire) =>
            {
                ui::output(
                    "==> Leave requested through the HTTP API: gracefully shutting down agent...",
                );
                running
                    .shutdown(SHUTDOWN_TIMEOUT_MS)
                    .map_err(AgentError::Stopped)?;
                ui::output("==> Graceful shutdown complete");
                return Ok(());
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
                return Err(AgentError::Stopped(error));
            }
        }
    }
}

/// Re-reads the configuration sources and applies what can change while running (the log level now;
/// the rest is reported as needing a restart). A bad configuration keeps the running one.
fn reload(
    current: &AgentConfig,
    args: &[String],
    hostname: Option<&str>,
    logger: &Logger,
) -> AgentConfig {
    match crate::config::reload(args, hostname, current) {
        Ok(reloaded) => {
            for warning in &reloaded.warnings {
                logger.log(LogLevel::Warn, "agent", warning);
            }
            set_level_override(reloaded.config.log_level);
            logger.info(
                "agent",
                &format!(
                    "reloaded configuration; applied: {}",
                    reloaded.applied.join(", ")
                ),
            );
            reloaded.config
        }
        Err(e) => {
            logger.error("agent", &format!("failed to reload configuration: {e}"));
            current.clone()
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

/// What the executors share, built on the main thread: the bridge's ends (each taken once by its executor),
/// the HTTP API settings and address, and the leave flag.
struct Wiring {
    core: Mutex<Option<CoreSide>>,
    shards: Mutex<Vec<Option<ShardSide>>>,
    settings: ApiSettings,
    http_addrs: Vec<SocketAddr>,
    /// The gossip pools: what the rest of the agent sees of them, and what their owner needs.
    gossip: Arc<gossip::GossipHub>,
    pools: Vec<gossip::PoolSettings>,
    /// Per pool: the channels from the other shards' UDP receivers to the owner.
    forwarders: Vec<gossip::receiver::Forwarders>,
    /// The address a client agent's shards listen on for the servers' answers.
    client_ip: IpAddr,
    dns_addrs: Vec<SocketAddr>,
    dns: Arc<crate::dns::DnsConfig>,
    recursors: Arc<Vec<SocketAddr>>,
    log_level: LogLevel,
    leave_requested: Arc<AtomicBool>,
    check_settings: checks::RunnerSettings,
}

impl Wiring {
    fn new(
        config: &AgentConfig,
        topology: &Topology,
        leave_requested: Arc<AtomicBool>,
        local: Arc<LocalAgent>,
    ) -> Wiring {
        let (core, shards) = bridge(topology.shard_count());
        let pools = gossip::pools(config, &http::identity(config).node_id);
        let gossip = Arc::new(gossip::GossipHub::new(
            (config.server || config.dev) && config.ports.serf_wan.is_some(),
        ));
        Wiring {
            core: Mutex::new(Some(core)),
            shards: Mutex::new(shards.into_iter().map(Some).collect()),
            settings: ApiSettings {
                node_name: config.node_name.clone(),
                datacenter: config.datacenter.clone(),
                session_ttl_min_ms: config.session_ttl_min_ms,
                kv_max_value_bytes: config.kv_max_value_size_bytes,
                txn_max_req_bytes: config.txn_max_req_len_bytes,
                agent: Arc::new(http::identity(config)),
                ttls: Arc::default(),
                local,
                ae_interval_ms: config.ae_interval_ms,
                requests_total: Arc::default(),
                config_services: config.services.clone(),
                config_checks: config.checks.clone(),
                gossip: Arc::clone(&gossip),
            },
            http_addrs: config.http_addrs(),
            gossip,
            forwarders: pools
                .iter()
                .map(|_| gossip::receiver::Forwarders::new(topology.shard_count()))
                .collect(),
            pools,
            client_ip: http::identity(config)
                .address
                .parse()
                .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            dns_addrs: config.dns_addrs(),
            dns: Arc::new(config.dns.clone()),
            recursors: Arc::new(config.recursors.clone()),
            log_level: config.log_level,
            leave_requested,
            check_settings: checks::RunnerSettings {
                deregister_min_ms: config.check_deregister_interval_min_ms,
                reap_interval_ms: config.check_reap_interval_ms,
                output_max_bytes: config.check_output_max_size_bytes as usize,
            },
        }
    }
}

/// Every executor's main future: the Raft executor of a server runs the Raft driver; each shard serves the
/// HTTP API and DNS (a client agent's through the servers); the others wait for shutdown.
async fn executor_main(
    context: ExecutorContext,
    plan: Option<Arc<ServerPlan>>,
    wiring: Arc<Wiring>,
) -> Result<(), ExecutorError> {
    match (context.plan.role, plan) {
        (ExecutorRole::Raft, Some(plan)) => {
            let core = wiring.core.lock().take();
            let lan = Arc::clone(&wiring.gossip.lan.membership);
            plan.run(&context.shutdown, core, lan).await
        }
        (ExecutorRole::Shard(index), plan) => {
            let pools = if index == 0 {
                start_gossip(&context, &wiring).await?
            } else {
                receive_gossip(index, &wiring)?
            };
            let result = match plan {
                Some(_) => serve_http(&context, index, &wiring).await,
                None => serve_client(&context, index, &wiring).await,
            };
            // The owners stop with the shutdown, after gossiping this agent's leave when it leaves; the
            // other shards' receivers are cancelled.
            if index == 0 {
                for pool in pools {
                    pool.await;
                }
            }
            result
        }
        _ => {
            context.shutdown.wait().await;
            Ok(())
        }
    }
}

/// Starts the owner of every gossip pool on this shard (shard 0): binds their sockets, joins, runs until
/// shutdown. A socket that cannot be bound stops the agent, as in Consul.
async fn start_gossip(
    context: &ExecutorContext,
    wiring: &Wiring,
) -> Result<Vec<glommio::Task<()>>, ExecutorError> {
    let mut tasks = Vec::new();
    for (settings, forwarders) in wiring.pools.iter().zip(&wiring.forwarders) {
        let Some(hub) = wiring.gossip.pool(settings.pool == gossip::Pool::Wan) else {
            continue;
        };
        let local = Arc::clone(&wiring.settings.local);
        let services = Rc::new(move || {
            local
                .state
                .lock()
                .services()
                .map(|s| (s.service.clone(), s.tags.clone()))
                .collect()
        });
        let links = gossip::owner::AgentLinks {
            node_name: wiring.settings.node_name.clone(),
            local_services: services,
            logger: Logger::new(wiring.log_level),
            leave_requested: Arc::clone(&wiring.leave_requested),
            forwarded: forwarders.take_receivers(),
        };
        let task = gossip::owner::run_pool(
            Arc::clone(hub),
            settings.clone(),
            links,
            context.shutdown.clone(),
        )
        .await?;
        tasks.push(task);
    }
    Ok(tasks)
}

/// Binds every pool's UDP port on shard `index` (above 0) and forwards its datagrams to the owner.
fn receive_gossip(index: usize, wiring: &Wiring) -> Result<Vec<glommio::Task<()>>, ExecutorError> {
    let mut tasks = Vec::new();
    for (settings, forwarders) in wiring.pools.iter().zip(&wiring.forwarders) {
        if let Some(sender) = forwarders.take_sender(index) {
            tasks.push(gossip::receiver::receive_on_shard(settings, sender)?);
        }
    }
    Ok(tasks)
}

/// Serves the HTTP API and DNS on one shard until shutdown.
async fn serve_http(
    context: &ExecutorContext,
    index: usize,
    wiring: &Wiring,
) -> Result<(), ExecutorError> {
    let side = wiring.shards.lock().get_mut(index).and_then(Option::take);
    let serving = !wiring.http_addrs.is_empty() || !wiring.dns_addrs.is_empty();
    let Some(side) = side.filter(|_| serving) else {
        context.shutdown.wait().await;
        return Ok(());
    };
    let connect = async { Some(ShardLink::connect(side).await) };
    let stopped = async {
        context.shutdown.wait().await;
        None
    };
    let Some(link) = or(connect, stopped).await else {
        return Ok(());
    };
    let dns_front = dns::DnsFrontEnd::new(
        dns::DnsSource::Local(Rc::clone(&link)),
        Arc::clone(&wiring.dns),
        Arc::clone(&wiring.recursors),
        index,
    );
    serve_front(
        context,
        index,
        wiring,
        Backend::Server(link),
        Some(dns_front),
    )
    .await
}

/// Serves the HTTP API and DNS of a client agent on one shard until shutdown: what it cannot answer itself
/// goes to the servers (`retry_join`); DNS uses the client's own settings and recursors, the catalog comes
/// from the servers (see [`dns`]).
async fn serve_client(
    context: &ExecutorContext,
    index: usize,
    wiring: &Wiring,
) -> Result<(), ExecutorError> {
    if wiring.http_addrs.is_empty() && wiring.dns_addrs.is_empty() {
        context.shutdown.wait().await;
        return Ok(());
    }
    let remote = RemoteLink::start(
        Arc::clone(&wiring.gossip.lan.membership),
        wiring.client_ip,
        wiring.settings.datacenter.clone(),
        &context.shutdown,
    )?;
    let dns_front = dns::DnsFrontEnd::new(
        dns::DnsSource::Remote(Rc::clone(&remote)),
        Arc::clone(&wiring.dns),
        Arc::clone(&wiring.recursors),
        index,
    );
    let backend = Backend::Client(Rc::clone(&remote));
    let result = serve_front(context, index, wiring, backend, Some(dns_front)).await;
    remote.close().await;
    result
}

/// Serves the front end on one shard: the HTTP and DNS listeners, the relayed calls (servers), and on
/// shard 0 the check runner, TTL timers, anti-entropy and the config files' definitions.
async fn serve_front(
    context: &ExecutorContext,
    index: usize,
    wiring: &Wiring,
    backend: Backend,
    dns_front: Option<Rc<dns::DnsFrontEnd>>,
) -> Result<(), ExecutorError> {
    let front = FrontEnd::new(
        backend,
        wiring.settings.clone(),
        Arc::clone(&wiring.leave_requested),
        context.shutdown.clone(),
    );
    let relays = glommio::spawn_local(
        Rc::clone(&front).serve_relays(dns_front.clone(), context.shutdown.clone()),
    );
    let timers = (index == 0).then(|| {
        let front = std::rc::Rc::clone(&front);
        let shutdown = context.shutdown.clone();
        glommio::spawn_local(async move { front.run_ttl_timers(&shutdown).await })
    });
    let checks = (index == 0).then(|| {
        let front = std::rc::Rc::clone(&front);
        glommio::spawn_local(check_runner::run_checks(
            front,
            wiring.check_settings,
            context.shutdown.clone(),
        ))
    });
    let definitions = (index == 0).then(|| {
        let front = std::rc::Rc::clone(&front);
        let shutdown = context.shutdown.clone();
        let logger = Logger::new(wiring.log_level);
        glommio::spawn_local(async move {
            front.register_config_definitions(&logger, &shutdown).await;
        })
    });
    let anti_entropy = (index == 0).then(|| {
        let front = std::rc::Rc::clone(&front);
        let shutdown = context.shutdown.clone();
        let logger = Logger::new(wiring.log_level);
        glommio::spawn_local(async move { front.run_anti_entropy(&logger, &shutdown).await })
    });
    let mut servers = Vec::with_capacity(wiring.http_addrs.len());
    for addr in &wiring.http_addrs {
        let server = front
            .serve(*addr, &context.shutdown)
            .map_err(|e| format!("HTTP API on {addr}: {e}"))?;
        servers.push(server);
    }
    let mut dns_servers = Vec::with_capacity(wiring.dns_addrs.len());
    if let Some(dns_front) = &dns_front {
        for addr in &wiring.dns_addrs {
            let server = dns_front
                .serve(*addr, &context.shutdown)
                .map_err(|e| format!("DNS on {addr}: {e}"))?;
            dns_servers.push(server);
        }
    }
    context.shutdown.wait().await;
    for server in servers {
        server.close().await;
    }
    for server in dns_servers {
        server.close().await;
    }
    relays.await;
    // The background tasks may be waiting on the Raft core, which is stopping too: cancel them (dropping a
    // task cancels it at its current await) rather than wait for their timeouts.
    drop((timers, checks, anti_entropy, definitions));
    Ok(())
}
