//! Every server puts its own node in the catalog: the node (name, address, metadata), the `serfHealth` check
//! and the `consul` service, as Consul's servers appear (clients look for them). It registers once a leader is
//! known, through the Raft core (a follower's write is forwarded), and again after every restart; a failed
//! attempt is retried.
//!
//! Until gossip lands (issue 6) nothing watches the node's health: `serfHealth` is registered passing and
//! stays so; the gossip failure detector will drive it.

use super::bridge::Shared;
use super::http::wall_clock_ms;
use super::raft_driver::RaftHandle;
use crate::config::AgentConfig;
use crate::fsm::codec::{decode_outcome, encode_command};
use crate::fsm::{CheckStatus, Command, HealthCheck, Outcome, RegisterRequest, Service};
use crate::logging::Logger;
use cairn_io::Shutdown;
use futures_lite::future::or;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

/// The check every agent's node carries (Consul's `serfHealth`).
pub const SERF_HEALTH_ID: &str = "serfHealth";
/// How long to wait between attempts.
pub const RETRY_MS: u64 = 1_000;

/// The registration of this server's own node.
pub fn request(config: &AgentConfig) -> RegisterRequest {
    let address = config
        .advertise
        .or(config.bind)
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .to_string();
    let tagged: BTreeMap<String, String> = ["lan", "lan_ipv4", "wan", "wan_ipv4"]
        .iter()
        .map(|k| (k.to_string(), address.clone()))
        .collect();
    RegisterRequest {
        id: config.node_id.clone().unwrap_or_default(),
        node: config.node_name.clone(),
        address: address.clone(),
        datacenter: config.datacenter.clone(),
        tagged_addresses: tagged,
        node_meta: config.node_meta.clone(),
        service: Some(Service {
            id: "consul".to_string(),
            service: "consul".to_string(),
            port: u32::from(config.server_port),
            ..Service::default()
        }),
        checks: vec![HealthCheck {
            node: config.node_name.clone(),
            check_id: SERF_HEALTH_ID.to_string(),
            name: "Serf Health Status".to_string(),
            status: CheckStatus::Passing,
            output: "Agent alive and reachable".to_string(),
            ..HealthCheck::default()
        }],
        skip_node_update: false,
    }
}

/// Registers `request` once a leader is known, retrying until it is applied or `stop`.
pub async fn run(
    handle: RaftHandle,
    shared: Arc<Shared>,
    request: RegisterRequest,
    logger: Logger,
    stop: Shutdown,
) {
    let mut pause_ms = 50;
    while !stop.is_triggered() {
        let sleep = glommio::timer::sleep(Duration::from_millis(pause_ms));
        or(
            async {
                sleep.await;
            },
            stop.wait(),
        )
        .await;
        pause_ms = RETRY_MS;
        if shared.published().cluster.leader_id.is_none() {
            pause_ms = 100;
            continue;
        }
        let command = Command::CatalogRegister {
            now_ms: wall_clock_ms(),
            request: Box::new(request.clone()),
        };
        let outcome = handle
            .apply(encode_command(&command))
            .await
            .map_err(|e| e.message)
            .and_then(|applied| decode_outcome(&applied.result));
        match outcome {
            Ok(Outcome::Bool(true)) => {
                logger.info(
                    "agent.catalog",
                    &format!("registered node {:?} with the consul service", request.node),
                );
                return;
            }
            Ok(other) => logger.error(
                "agent.catalog",
                &format!("registering this node failed: {other:?}; retrying"),
            ),
            Err(e) => logger.debug(
                "agent.catalog",
                &format!("registering this node failed: {e}; retrying"),
            ),
        }
    }
}
