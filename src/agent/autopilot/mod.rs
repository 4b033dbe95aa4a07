//! Autopilot, on the Raft executor: while this server leads, every [`AUTOPILOT_INTERVAL_MS`] it seeds the
//! replicated configuration if there is none (from the config file's `autopilot` block), judges every
//! server's health ([`decide`], pure), stores the result for `/v1/operator/autopilot/{health,state}`, and
//! carries out the membership changes [`decide::decide`] asks for, one at a time (a failure ends the round).
//!
//! The servers come from gossip's published member list ([`Membership`], an input of
//! [`crate::agent::server::ServerPlan::run`]); until gossip lists any, autopilot only reports health.

pub mod decide;
#[cfg(test)]
mod tests;

use super::bridge::Shared;
use super::http::wall_clock_ms;
use super::membership::Membership;
use super::raft_driver::RaftHandle;
use crate::api::autopilot::encode_view;
use crate::fsm::codec::encode_command;
use crate::fsm::{AutopilotConfig, Command};
use crate::logging::Logger;
use crate::raft::MembershipChange;
use cairn_io::Shutdown;
use decide::{Action, Inputs, Tracker};
use futures_lite::future::or;
use std::sync::Arc;
use std::time::Duration;

/// How often the leader's autopilot runs a round.
pub const AUTOPILOT_INTERVAL_MS: u64 = 1_000;

/// What autopilot needs to know about this server.
#[derive(Clone, Debug)]
pub struct AutopilotSettings {
    /// The configuration stored when the state has none (the config file's `autopilot` block).
    pub seed: AutopilotConfig,
    /// This server's datacenter.
    pub datacenter: String,
    /// This server's node name.
    pub node_name: String,
    /// This server's version.
    pub version: String,
}

/// Runs autopilot rounds until `stop`.
pub async fn run(
    handle: RaftHandle,
    shared: Arc<Shared>,
    membership: Arc<Membership>,
    settings: AutopilotSettings,
    logger: Logger,
    stop: Shutdown,
) {
    let mut tracker = Tracker::default();
    while !stop.is_triggered() {
        let tick = glommio::timer::sleep(Duration::from_millis(AUTOPILOT_INTERVAL_MS));
        or(
            async {
                tick.await;
            },
            stop.wait(),
        )
        .await;
        if stop.is_triggered() {
            break;
        }
        round(
            &handle,
            &shared,
            &membership,
            &settings,
            &logger,
            &mut tracker,
        )
        .await;
    }
}

/// One round: seed, judge, publish, act.
async fn round(
    handle: &RaftHandle,
    shared: &Shared,
    membership: &Membership,
    settings: &AutopilotSettings,
    logger: &Logger,
    tracker: &mut Tracker,
) {
    let raft = handle.raft_health();
    if !raft.leading {
        tracker.clear();
        handle.set_autopilot_state(None);
        return;
    }
    let published = shared.published();
    let Some(config) = published.state.autopilot_config() else {
        let command = Command::AutopilotSet {
            config: settings.seed.clone(),
            cas: Some(0),
        };
        let _ = handle.apply(encode_command(&command)).await;
        return;
    };
    let members = membership.members();
    let inputs = Inputs {
        config,
        raft: &raft,
        members: &members,
        datacenter: &settings.datacenter,
        node_name: &settings.node_name,
        version: &settings.version,
        state: &published.state,
        now_ms: wall_clock_ms(),
    };
    let assessed = decide::assess(&inputs, tracker);
    handle.set_autopilot_state(Some(encode_view(&decide::view_of(&inputs, &assessed))));
    for action in decide::decide(&inputs, &assessed) {
        logger.info("agent.server.autopilot", &describe(&action));
        if let Err(e) = handle.change_membership(change_of(action)).await {
            logger.error(
                "agent.server.autopilot",
                &format!("membership change failed: {}", e.message),
            );
            break;
        }
    }
}

fn change_of(action: Action) -> MembershipChange {
    match action {
        Action::AddNonvoter { id, address } => MembershipChange::AddNonvoter { id, address },
        Action::Promote { id, address } => MembershipChange::AddVoter { id, address },
        Action::Remove { id } => MembershipChange::Remove { id },
    }
}

fn describe(action: &Action) -> String {
    match action {
        Action::AddNonvoter { id, address } => {
            format!(
                "adding server as non-voter: id={:016x} address={address}",
                id.0
            )
        }
        Action::Promote { id, address } => {
            format!(
                "promoting server to voter: id={:016x} address={address}",
                id.0
            )
        }
        Action::Remove { id } => format!("removing dead server: id={:016x}", id.0),
    }
}
