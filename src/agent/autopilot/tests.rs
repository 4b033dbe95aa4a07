//! The pure autopilot judgement: health, failure tolerance, stabilization, dead-server cleanup.

use super::decide::{assess, decide, server_healthy, view_of, Action, Inputs, Tracker};
use crate::agent::membership::{socket_addr, MemberState, MemberView};
use crate::agent::raft_driver::{PeerHealth, RaftHealth};
use crate::agent::server::server_id;
use crate::fsm::{AutopilotConfig, State};
use crate::raft::ServerId;
use std::collections::BTreeMap;
use std::net::SocketAddr;

fn rpc(n: u8) -> SocketAddr {
    format!("127.0.0.{n}:8300").parse().unwrap()
}

fn id(n: u8) -> ServerId {
    server_id(rpc(n))
}

/// A peer caught up and just heard from; `voter` as given.
fn peer(n: u8, voter: bool) -> PeerHealth {
    PeerHealth {
        id: id(n),
        address: rpc(n).to_string(),
        voter,
        match_index: 100,
        match_term: 2,
        contact_age_ms: Some(if n == 1 { 0 } else { 10 }),
    }
}

/// Server 1 leads; the others are as given.
fn raft(peers: Vec<PeerHealth>) -> RaftHealth {
    RaftHealth {
        id: id(1),
        leading: true,
        term: 2,
        last_index: 100,
        last_term: 2,
        servers: peers,
    }
}

fn member(n: u8, state: MemberState, nonvoter: bool) -> MemberView {
    let mut tags: BTreeMap<String, String> = [
        ("role", "consul"),
        ("dc", "dc1"),
        ("port", "8300"),
        ("build", "1.17.0:abc"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if nonvoter {
        tags.insert("nonvoter".to_string(), "1".to_string());
    }
    MemberView {
        name: format!("s{n}"),
        addr: socket_addr(&[127, 0, 0, n], 8301).unwrap(),
        tags,
        state,
        vsn: [1, 5, 2, 2, 5, 4],
    }
}

struct Case {
    config: AutopilotConfig,
    raft: RaftHealth,
    members: Vec<MemberView>,
    state: State,
}

impl Case {
    fn new(peers: Vec<PeerHealth>, members: Vec<MemberView>) -> Case {
        Case {
            config: AutopilotConfig::default(),
            raft: raft(peers),
            members,
            state: State::default(),
        }
    }

    fn inputs(&self, now_ms: u64) -> Inputs<'_> {
        Inputs {
            config: &self.config,
            raft: &self.raft,
            members: &self.members,
            datacenter: "dc1",
            node_name: "leader-node",
            version: "0.1.0",
            state: &self.state,
            now_ms,
        }
    }

    /// Runs a round at `now_ms` with `tracker`: the actions.
    fn round(&self, tracker: &mut Tracker, now_ms: u64) -> Vec<Action> {
        let inputs = self.inputs(now_ms);
        let assessed = assess(&inputs, tracker);
        decide(&inputs, &assessed)
    }
}

#[test]
fn health_needs_gossip_alive_recent_contact_the_leaders_term_and_few_trailing_logs() {
    let config = AutopilotConfig::default();
    let r = raft(vec![peer(1, true), peer(2, true)]);
    let alive = MemberState::Alive;
    assert!(server_healthy(&config, &r, &peer(2, true), alive));
    assert!(!server_healthy(
        &config,
        &r,
        &peer(2, true),
        MemberState::Failed
    ));
    let late = PeerHealth {
        contact_age_ms: Some(201),
        ..peer(2, true)
    };
    assert!(!server_healthy(&config, &r, &late, alive));
    let never = PeerHealth {
        contact_age_ms: None,
        ..peer(2, true)
    };
    assert!(!server_healthy(&config, &r, &never, alive));
    let old_term = PeerHealth {
        match_term: 1,
        ..peer(2, true)
    };
    assert!(!server_healthy(&config, &r, &old_term, alive));
    let behind = |match_index| PeerHealth {
        match_index,
        ..peer(2, true)
    };
    let far = RaftHealth {
        last_index: 400,
        ..r.clone()
    };
    assert!(
        server_healthy(&config, &far, &behind(150), alive),
        "250 behind is fine"
    );
    assert!(!server_healthy(&config, &far, &behind(149), alive));
    let leader_never_heard = PeerHealth {
        contact_age_ms: None,
        ..peer(1, true)
    };
    assert!(server_healthy(&config, &r, &leader_never_heard, alive));
}

#[test]
fn three_healthy_voters_tolerate_one_failure_and_the_view_has_consuls_fields() {
    let case = Case::new(
        vec![peer(1, true), peer(2, true), peer(3, true)],
        Vec::new(),
    );
    let mut tracker = Tracker::default();
    let inputs = case.inputs(5_000);
    let assessed = assess(&inputs, &mut tracker);
    let view = view_of(&inputs, &assessed);
    assert!(view.healthy);
    assert_eq!(view.failure_tolerance, 1);
    assert_eq!(view.leader, format!("{:016x}", id(1).0));
    assert_eq!(view.voters.len(), 3);
    let leader = view.servers.iter().find(|s| s.leader).unwrap();
    assert_eq!(
        (leader.name.as_str(), leader.version.as_str()),
        ("leader-node", "0.1.0")
    );
    let other = view.servers.iter().find(|s| !s.leader).unwrap();
    assert_eq!(
        other.name, "127.0.0.2",
        "unlisted servers are named by host"
    );
    assert_eq!(
        other.serf_status, "alive",
        "unlisted servers count as alive"
    );
    assert_eq!(
        (other.last_index, other.last_term, other.last_contact_ms),
        (100, 2, 10)
    );
    assert_eq!(other.stable_since_ms, 5_000);
    assert_eq!(other.status(), "voter");
    assert!(
        decide(&inputs, &assessed).is_empty(),
        "no gossip, no action"
    );
}

#[test]
fn an_unhealthy_voter_lowers_the_tolerance_and_stable_since_moves_with_health() {
    let mut case = Case::new(
        vec![peer(1, true), peer(2, true), peer(3, true)],
        Vec::new(),
    );
    let mut tracker = Tracker::default();
    assess(&case.inputs(1_000), &mut tracker);
    case.raft.servers[2].contact_age_ms = Some(5_000);
    let inputs = case.inputs(2_000);
    let assessed = assess(&inputs, &mut tracker);
    let view = view_of(&inputs, &assessed);
    assert!(!view.healthy);
    assert_eq!(view.failure_tolerance, 0);
    assert_eq!(
        assessed[1].stable_since_ms, 1_000,
        "unchanged health keeps its time"
    );
    assert_eq!(assessed[2].stable_since_ms, 2_000);
}

#[test]
fn a_new_server_is_added_as_a_nonvoter_and_promoted_once_stable() {
    let alive = MemberState::Alive;
    let mut case = Case::new(
        vec![peer(1, true), peer(2, true), peer(3, true)],
        vec![
            member(1, alive, false),
            member(2, alive, false),
            member(3, alive, false),
            member(4, alive, false),
            member(5, alive, true),
        ],
    );
    let mut tracker = Tracker::default();
    assert_eq!(
        case.round(&mut tracker, 0),
        vec![
            Action::AddNonvoter {
                id: id(4),
                address: rpc(4).to_string()
            },
            Action::AddNonvoter {
                id: id(5),
                address: rpc(5).to_string()
            },
        ]
    );
    case.raft.servers.push(peer(4, false));
    case.raft.servers.push(peer(5, false));
    assert!(case.round(&mut tracker, 1_000).is_empty(), "not stable yet");
    assert!(case.round(&mut tracker, 10_999).is_empty());
    assert_eq!(
        case.round(&mut tracker, 11_000),
        vec![Action::Promote {
            id: id(4),
            address: rpc(4).to_string()
        }],
        "server 5 is tagged nonvoter and stays one"
    );
    case.raft.servers[3].match_term = 1;
    assert!(
        case.round(&mut tracker, 30_000).is_empty(),
        "unhealthy: not promoted"
    );
}

#[test]
fn dead_servers_are_removed_within_min_quorum_and_a_minority_at_a_time() {
    let (alive, failed, left) = (MemberState::Alive, MemberState::Failed, MemberState::Left);
    let peers = vec![
        peer(1, true),
        peer(2, true),
        peer(3, true),
        peer(4, true),
        peer(5, true),
        peer(6, false),
    ];
    let members = vec![
        member(1, alive, false),
        member(2, failed, false),
        member(3, left, false),
        member(4, failed, false),
        member(5, alive, false),
        member(6, failed, false),
    ];
    let mut case = Case::new(peers, members);
    let mut tracker = Tracker::default();
    let remove = |n| Action::Remove { id: id(n) };
    assert_eq!(
        case.round(&mut tracker, 0),
        vec![remove(6), remove(2), remove(3)],
        "the non-voter, then two of five voters"
    );
    case.config.min_quorum = 4;
    assert_eq!(case.round(&mut tracker, 0), vec![remove(6), remove(2)]);
    case.config.min_quorum = 5;
    assert_eq!(case.round(&mut tracker, 0), vec![remove(6)]);
    case.config.cleanup_dead_servers = false;
    assert!(case.round(&mut tracker, 0).is_empty());
}

#[test]
fn nothing_is_removed_when_gossip_lists_nothing_or_when_not_leading() {
    let mut case = Case::new(
        vec![peer(1, true), peer(2, true), peer(3, true)],
        Vec::new(),
    );
    let mut tracker = Tracker::default();
    assert!(case.round(&mut tracker, 0).is_empty());
    case.members = vec![member(2, MemberState::Failed, false)];
    assert_eq!(
        case.round(&mut tracker, 0),
        vec![Action::Remove { id: id(2) }]
    );
    case.raft.leading = false;
    assert!(case.round(&mut tracker, 0).is_empty());
    case.raft.leading = true;
    case.members = vec![member(1, MemberState::Failed, false)];
    assert!(
        case.round(&mut tracker, 0).is_empty(),
        "the leader never removes itself"
    );
}
