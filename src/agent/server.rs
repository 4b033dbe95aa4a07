//! Server mode: what a `-server` agent runs on its Raft executor. The Raft driver with the key/value state
//! machine, listening on `-bind`:`-server-port`.
//!
//! Until gossip exists (issue 6) the servers of a new cluster are this one plus the `-retry-join` addresses,
//! and every one of them bootstraps the identical configuration entry. A server's Raft id must be known to
//! all of them before they have talked, so it is derived from its server RPC address (`IP:PORT`) with
//! FNV-1a 64: the node names of the other servers are not known yet. Gossip will carry Consul's node ids.

use super::autopilot::AutopilotSettings;
use super::bridge::{CoreSide, Shared};
use super::membership::{MemberState, Membership};
use super::raft_driver::{RaftDriverOptions, RaftHandle};
use super::self_registration;
use super::state_machine::ConsulStateMachine;
use crate::config::AgentConfig;
use crate::fsm::RegisterRequest;
use crate::logging::Logger;
use crate::raft::{Configuration, Options, Server, ServerId, Suffrage};
use cairn_io::runtime::ExecutorError;
use cairn_io::Shutdown;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

/// FNV-1a 64 of `text`.
pub fn fnv1a64(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The Raft id of the server whose RPC address is `addr`.
pub fn server_id(addr: SocketAddr) -> ServerId {
    ServerId(fnv1a64(&addr.to_string()))
}

/// Everything the Raft executor needs to run this server (built on the main thread, `Send`).
#[derive(Clone, Debug)]
pub struct ServerPlan {
    /// The driver's options.
    pub driver: RaftDriverOptions,
    /// This server's own catalog registration (node, `serfHealth`, the `consul` service).
    pub registration: RegisterRequest,
    /// `-bootstrap-expect` above 1: on an empty data directory, wait until that many servers of this
    /// datacenter are alive in the LAN pool, then bootstrap a configuration of exactly them.
    pub bootstrap_expect: Option<usize>,
    /// What the leader's autopilot needs (the seed configuration, names).
    pub autopilot: AutopilotSettings,
}

/// The autopilot settings of `config`.
fn autopilot_settings(config: &AgentConfig) -> AutopilotSettings {
    AutopilotSettings {
        seed: config.autopilot.clone(),
        datacenter: config.datacenter.clone(),
        node_name: config.node_name.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

impl ServerPlan {
    /// The plan for `config`, or `None` when it is not a server.
    pub fn from_config(config: &AgentConfig) -> Option<ServerPlan> {
        if config.dev {
            return Some(ServerPlan::dev(config));
        }
        if !config.server {
            return None;
        }
        let addr = config.server_addr()?;
        let data_dir = config.data_dir.clone()?;
        let id = server_id(addr);
        let mut driver = RaftDriverOptions::new(id, data_dir, addr);
        driver.raft = Options {
            trailing_entries: config.raft_trailing_logs,
            ..Options::consul(id, u64::from(config.raft_multiplier))
        };
        driver.datacenter = config.datacenter.clone();
        driver.snapshot_threshold = config.raft_snapshot_threshold;
        driver.log_level = config.log_level;
        driver.seed = id.0 ^ u64::from(std::process::id()) ^ clock_nanos();
        driver.bootstrap = match (config.bootstrap, config.bootstrap_expect) {
            (true, _) | (false, Some(1)) => Some(bootstrap_configuration(&[addr])),
            _ => None,
        };
        Some(ServerPlan {
            driver,
            registration: self_registration::request(config),
            bootstrap_expect: config
                .bootstrap_expect
                .filter(|n| *n > 1 && !config.bootstrap),
            autopilot: autopilot_settings(config),
        })
    }

    /// The `-dev` server: in memory, alone in its configuration, on `127.0.0.1:<server port>`.
    fn dev(config: &AgentConfig) -> ServerPlan {
        let bind = config.bind.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let addr = SocketAddr::new(bind, config.server_port);
        let id = server_id(addr);
        let data_dir = config
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("/cairn-dev"));
        let mut driver = RaftDriverOptions::new(id, data_dir, addr);
        driver.raft = Options::consul(id, u64::from(config.raft_multiplier));
        driver.in_memory = true;
        driver.datacenter = config.datacenter.clone();
        driver.log_level = config.log_level;
        driver.seed = id.0 ^ u64::from(std::process::id()) ^ clock_nanos();
        driver.bootstrap = Some(bootstrap_configuration(&[addr]));
        ServerPlan {
            driver,
            registration: self_registration::request(config),
            bootstrap_expect: None,
            autopilot: autopilot_settings(config),
        }
    }

    /// Runs the server until `shutdown`: starts the driver with the Consul state machine, connects the
    /// shards (`core`), runs the leader's periodic work and autopilot (whose servers come from gossip's
    /// `membership`), then closes the driver. Errors end the executor.
    pub async fn run(
        &self,
        shutdown: &Shutdown,
        core: Option<CoreSide>,
        lan: Arc<Membership>,
    ) -> Result<(), ExecutorError> {
        let shared = core
            .as_ref()
            .map_or_else(|| Arc::new(Shared::new()), |c| Arc::clone(&c.shared));
        let mut driver = self.driver.clone();
        if let Some(expect) = self.bootstrap_expect {
            let options = driver.clone();
            let fresh = glommio::executor()
                .spawn_blocking(move || super::raft_driver::storage::holds_no_state(&options))
                .await?;
            if fresh {
                let logger = Logger::new(driver.log_level);
                let Some(servers) =
                    wait_for_expected_servers(&lan, &driver.datacenter, expect, &logger, shutdown)
                        .await
                else {
                    return Ok(());
                };
                driver.bootstrap = Some(bootstrap_configuration(&servers));
            }
        }
        let machine = ConsulStateMachine::new(Arc::clone(&shared));
        let handle = RaftHandle::start(driver, Box::new(machine), shutdown).await?;
        handle.set_directory(Arc::clone(&lan));
        if let Some(core) = core {
            handle.attach_shards(core)?;
        }
        if self.single_server_bootstrap() {
            // Alone in the configuration: no one else can win, so skip the election timeout.
            handle.campaign();
        }
        let stop = Shutdown::new();
        let context = super::leader::LeaderContext {
            lan: Arc::clone(&lan),
            datacenter: self.driver.datacenter.clone(),
            node_name: self.registration.node.clone(),
        };
        let leader_work = glommio::spawn_local(super::leader::run(
            handle.clone(),
            Arc::clone(&shared),
            context,
            stop.clone(),
        ));
        let autopilot = glommio::spawn_local(super::autopilot::run(
            handle.clone(),
            Arc::clone(&shared),
            Arc::clone(&lan),
            self.autopilot.clone(),
            Logger::new(self.driver.log_level),
            stop.clone(),
        ));
        let registration = glommio::spawn_local(self_registration::run(
            handle.clone(),
            shared,
            self.registration.clone(),
            Logger::new(self.driver.log_level),
            stop.clone(),
        ));
        handle.stopped().await;
        stop.trigger();
        // Close first: it fails the requests still waiting, which the tasks below may be awaiting.
        let closed = handle.close().await;
        leader_work.await;
        autopilot.await;
        registration.await;
        closed?;
        Ok(())
    }

    fn single_server_bootstrap(&self) -> bool {
        self.driver
            .bootstrap
            .as_ref()
            .is_some_and(|c| c.servers.len() == 1 && c.servers[0].id == self.driver.raft.id)
    }
}

/// How often a server waiting for `-bootstrap-expect` looks at the LAN pool.
pub const BOOTSTRAP_POLL_MS: u64 = 200;

/// Waits until exactly `expect` servers of `datacenter` started with the same `-bootstrap-expect` are alive in
/// the LAN pool; their RPC addresses, or `None` at shutdown. More such servers than expected means a cluster
/// that already exists (its leader adds this server): keep waiting. Servers without `-bootstrap-expect` do not
/// count.
async fn wait_for_expected_servers(
    lan: &Membership,
    datacenter: &str,
    expect: usize,
    logger: &Logger,
    shutdown: &Shutdown,
) -> Option<Vec<SocketAddr>> {
    logger.info(
        "agent.server",
        &format!("waiting for {expect} servers in the LAN pool to bootstrap (-bootstrap-expect)"),
    );
    let mut warned = 0;
    while !shutdown.is_triggered() {
        let servers: Vec<_> = lan
            .servers(datacenter)
            .into_iter()
            .filter(|s| s.state == MemberState::Alive)
            .collect();
        let conflicting = servers
            .iter()
            .find(|s| s.expect.is_some_and(|e| e != expect));
        match conflicting {
            Some(s) if warned != lan.version() => {
                warned = lan.version();
                logger.error(
                    "agent.server",
                    &format!(
                        "Member {} has a conflicting expect value. All nodes should expect the same number.",
                        s.name
                    ),
                );
            }
            None if servers.iter().filter(|s| s.expect.is_some()).count() == expect => {
                // Servers started without -bootstrap-expect are not part of the bootstrap: they wait to be
                // added by the leader's autopilot.
                let mut addrs: Vec<SocketAddr> = servers
                    .iter()
                    .filter(|s| s.expect.is_some())
                    .map(|s| s.rpc_addr)
                    .collect();
                addrs.sort();
                logger.info(
                    "agent.server",
                    &format!("found expected number of peers, attempting bootstrap: {addrs:?}"),
                );
                return Some(addrs);
            }
            _ => {}
        }
        let tick = glommio::timer::sleep(std::time::Duration::from_millis(BOOTSTRAP_POLL_MS));
        futures_lite::future::or(
            async {
                tick.await;
            },
            shutdown.wait(),
        )
        .await;
    }
    None
}

/// The bootstrap configuration naming `servers` (all voters).
pub fn bootstrap_configuration(servers: &[SocketAddr]) -> Configuration {
    Configuration::new(
        servers
            .iter()
            .map(|addr| Server {
                id: server_id(*addr),
                suffrage: Suffrage::Voter,
                address: addr.to_string(),
            })
            .collect(),
    )
}

fn clock_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_fnv1a_of_the_address_and_every_server_bootstraps_the_same_configuration() {
        assert_eq!(fnv1a64(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64("a"), 0xaf63_dc4c_8601_ec8c);
        let a: SocketAddr = "127.0.0.1:8300".parse().unwrap();
        let b: SocketAddr = "127.0.0.2:8300".parse().unwrap();
        assert_eq!(
            bootstrap_configuration(&[a, b]),
            bootstrap_configuration(&[b, a])
        );
        assert_ne!(server_id(a), server_id(b));
    }
}
