//! The leader's reconcile of the LAN pool into the catalog, as Consul's leader does it: every member of this
//! datacenter is a node with a `serfHealth` check — passing while it is alive, critical once it failed — a
//! server also carries the `consul` service; a member that left, or was reaped after failing, is deregistered.
//!
//! Pure: [`reconcile`] compares the published member list with the state machine and returns the catalog
//! commands that would make them agree (none in the steady state); the leader applies them through Raft.
//! Sessions bound to `serfHealth` are invalidated by the state machine when the check goes critical.

use super::membership::{MemberState, MemberView};
use super::self_registration::SERF_HEALTH_ID;
use crate::fsm::{CheckStatus, Command, HealthCheck, RegisterRequest, Service, State};
use std::collections::BTreeSet;

/// `serfHealth`'s output while the member is alive (Consul's SerfCheckAliveOutput).
pub const ALIVE_OUTPUT: &str = "Agent alive and reachable";
/// `serfHealth`'s output once it failed (Consul's SerfCheckFailedOutput).
pub const FAILED_OUTPUT: &str = "Agent not live or unreachable";
/// `serfHealth`'s name.
pub const SERF_HEALTH_NAME: &str = "Serf Health Status";

/// The commands that bring the catalog in line with `members` (the LAN pool of `datacenter`). `now_ms` is the
/// proposer's clock for the commands. An empty list, or one without `me` (gossip not running yet), changes
/// nothing.
pub fn reconcile(
    members: &[MemberView],
    state: &State,
    datacenter: &str,
    me: &str,
    now_ms: u64,
) -> Vec<Command> {
    if !members.iter().any(|m| m.name == me) {
        return Vec::new();
    }
    let mut commands = Vec::new();
    let mut known = BTreeSet::new();
    for member in members {
        if member.tags.get("dc").is_some_and(|dc| dc != datacenter) {
            continue;
        }
        known.insert(member.name.as_str());
        let command = match member.state {
            MemberState::Alive | MemberState::Leaving => alive(member, state, now_ms),
            MemberState::Failed => failed(member, state, now_ms),
            MemberState::Left => left(&member.name, state, now_ms),
        };
        commands.extend(command);
    }
    // Nodes that gossip once reported (they carry serfHealth) and that it has forgotten: reaped.
    for node in state.nodes() {
        let gossiped = state
            .node_checks(&node.node)
            .iter()
            .any(|c| c.check_id == SERF_HEALTH_ID);
        if gossiped && !known.contains(node.node.as_str()) {
            commands.extend(left(&node.node, state, now_ms));
        }
    }
    commands
}

fn serf_health(state: &State, node: &str) -> Option<(CheckStatus, String)> {
    state
        .node_checks(node)
        .into_iter()
        .find(|c| c.check_id == SERF_HEALTH_ID)
        .map(|c| (c.status, c.output.clone()))
}

/// Registers the node with `serfHealth` passing, unless it is already there with this address and a passing
/// check (and, for a server, the `consul` service).
fn alive(member: &MemberView, state: &State, now_ms: u64) -> Option<Command> {
    let address = member.addr.ip().to_string();
    let server = member.server();
    let node = state.node(&member.name);
    let in_step = node.is_some_and(|n| n.address == address)
        && serf_health(state, &member.name).is_some_and(|(s, _)| s == CheckStatus::Passing)
        && (server.is_none()
            || state
                .node_services(&member.name)
                .is_some_and(|(_, services)| services.iter().any(|s| s.id == "consul")));
    if in_step {
        return None;
    }
    let service = server.map(|s| Service {
        id: "consul".to_string(),
        service: "consul".to_string(),
        port: u32::from(s.rpc_addr.port()),
        ..Service::default()
    });
    Some(register(
        member,
        state,
        CheckStatus::Passing,
        ALIVE_OUTPUT,
        service,
        now_ms,
    ))
}

/// Marks `serfHealth` critical, unless it already is.
fn failed(member: &MemberView, state: &State, now_ms: u64) -> Option<Command> {
    if state.node(&member.name).is_some()
        && serf_health(state, &member.name).is_some_and(|(s, _)| s == CheckStatus::Critical)
    {
        return None;
    }
    Some(register(
        member,
        state,
        CheckStatus::Critical,
        FAILED_OUTPUT,
        None,
        now_ms,
    ))
}

/// Deregisters the node, when it is in the catalog.
fn left(name: &str, state: &State, now_ms: u64) -> Option<Command> {
    state.node(name)?;
    Some(Command::CatalogDeregister {
        now_ms,
        node: name.to_string(),
        service_id: None,
        check_id: None,
    })
}

/// A registration of the member's node with `serfHealth` in `status`, keeping the node's tagged addresses and
/// metadata when it is already in the catalog.
fn register(
    member: &MemberView,
    state: &State,
    status: CheckStatus,
    output: &str,
    service: Option<Service>,
    now_ms: u64,
) -> Command {
    let address = member.addr.ip().to_string();
    let existing = state.node(&member.name);
    let tagged_addresses = existing.map_or_else(
        || {
            ["lan", "lan_ipv4", "wan", "wan_ipv4"]
                .iter()
                .map(|k| (k.to_string(), address.clone()))
                .collect()
        },
        |n| n.tagged_addresses.clone(),
    );
    let request = RegisterRequest {
        id: member.tags.get("id").cloned().unwrap_or_default(),
        node: member.name.clone(),
        address,
        datacenter: member.tags.get("dc").cloned().unwrap_or_default(),
        tagged_addresses,
        node_meta: existing.map(|n| n.meta.clone()).unwrap_or_default(),
        service,
        checks: vec![HealthCheck {
            node: member.name.clone(),
            check_id: SERF_HEALTH_ID.to_string(),
            name: SERF_HEALTH_NAME.to_string(),
            status,
            output: output.to_string(),
            ..HealthCheck::default()
        }],
        skip_node_update: false,
    };
    Command::CatalogRegister {
        now_ms,
        request: Box::new(request),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::membership::socket_addr;
    use crate::fsm::Fsm;

    fn member(name: &str, last: u8, server: bool, state: MemberState) -> MemberView {
        let mut tags: std::collections::BTreeMap<String, String> = [("dc", "dc1"), ("id", "")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        tags.insert("role".into(), if server { "consul" } else { "node" }.into());
        if server {
            tags.insert("port".into(), "8300".into());
        }
        MemberView {
            name: name.into(),
            addr: socket_addr(&[127, 0, 0, last], 8301).unwrap(),
            tags,
            state,
            vsn: [1, 5, 2, 2, 5, 4],
        }
    }

    fn apply_all(fsm: &mut Fsm, commands: Vec<Command>, index: &mut u64) {
        for c in commands {
            *index += 1;
            fsm.apply(*index, &c);
        }
    }

    #[test]
    fn members_become_nodes_with_serf_health_and_converge() {
        let mut fsm = Fsm::new();
        let mut index = 0;
        let mut members = vec![
            member("s1", 1, true, MemberState::Alive),
            member("c1", 2, false, MemberState::Alive),
        ];
        // Gossip not running (no self): nothing.
        assert!(reconcile(&members[1..], &fsm.state(), "dc1", "s1", 1).is_empty());
        let commands = reconcile(&members, &fsm.state(), "dc1", "s1", 1);
        assert_eq!(commands.len(), 2);
        apply_all(&mut fsm, commands, &mut index);
        let state = fsm.state();
        assert_eq!(serf_health(&state, "c1").unwrap().0, CheckStatus::Passing);
        assert!(state
            .node_services("s1")
            .unwrap()
            .1
            .iter()
            .any(|s| s.id == "consul"));
        assert!(
            reconcile(&members, &state, "dc1", "s1", 2).is_empty(),
            "steady state"
        );

        // c1 fails: critical once, then steady.
        members[1].state = MemberState::Failed;
        let commands = reconcile(&members, &fsm.state(), "dc1", "s1", 3);
        assert_eq!(commands.len(), 1);
        apply_all(&mut fsm, commands, &mut index);
        let (status, output) = serf_health(&fsm.state(), "c1").unwrap();
        assert_eq!(
            (status, output.as_str()),
            (CheckStatus::Critical, FAILED_OUTPUT)
        );
        assert!(reconcile(&members, &fsm.state(), "dc1", "s1", 4).is_empty());

        // c1 is reaped (gone from the list): deregistered. A node without serfHealth is left alone.
        members.pop();
        apply_all(
            &mut fsm,
            vec![Command::CatalogRegister {
                now_ms: 5,
                request: Box::new(RegisterRequest {
                    node: "external".into(),
                    address: "10.0.0.9".into(),
                    ..RegisterRequest::default()
                }),
            }],
            &mut index,
        );
        let commands = reconcile(&members, &fsm.state(), "dc1", "s1", 6);
        assert_eq!(commands.len(), 1);
        apply_all(&mut fsm, commands, &mut index);
        assert!(fsm.state().node("c1").is_none());
        assert!(fsm.state().node("external").is_some());

        // A member of another datacenter is not this catalog's business; one that left is deregistered.
        let mut other = member("x1", 9, false, MemberState::Alive);
        other.tags.insert("dc".into(), "dc2".into());
        members.push(other);
        members.push(member("s1-left", 7, false, MemberState::Left));
        assert!(reconcile(&members, &fsm.state(), "dc1", "s1", 7).is_empty());
    }
}
