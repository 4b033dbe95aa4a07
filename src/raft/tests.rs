//! Raft unit tests named after the paper's and dissertation's sections, on a tiny harness that delivers messages
//! by hand and treats every persistence action as durable at once.

use super::*;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

struct Harness {
    nodes: BTreeMap<ServerId, Node>,
    queue: VecDeque<(ServerId, ServerId, Message)>,
    now: u64,
    cut: BTreeSet<ServerId>,
    applied: BTreeMap<ServerId, Vec<Entry>>,
    outputs: Vec<(ServerId, Action)>,
}

fn id(n: u64) -> ServerId {
    ServerId(n)
}

fn voters(n: u64) -> Configuration {
    Configuration::new(
        (1..=n)
            .map(|i| Server {
                id: id(i),
                suffrage: Suffrage::Voter,
                address: format!("s{i}"),
            })
            .collect(),
    )
}

fn cmd(b: &[u8]) -> Bytes {
    b.to_vec().into()
}

impl Harness {
    fn new(n: u64) -> Harness {
        let config = voters(n);
        let mut nodes = BTreeMap::new();
        for i in 1..=n {
            let restore = RestoreState {
                entries: vec![Node::bootstrap_entry(config.clone())],
                ..RestoreState::default()
            };
            let mut opts = Options::consul(id(i), 1);
            opts.trailing_entries = 2;
            nodes.insert(id(i), Node::new(opts, i, restore, 0));
        }
        Harness {
            nodes,
            queue: VecDeque::new(),
            now: 0,
            cut: BTreeSet::new(),
            applied: BTreeMap::new(),
            outputs: Vec::new(),
        }
    }

    fn node(&self, i: u64) -> &Node {
        &self.nodes[&id(i)]
    }

    /// Steps node `i`, persisting at once and queueing its messages (unless it is cut off).
    fn step(&mut self, i: u64, input: Input) {
        let mut out = Vec::new();
        let node = self.nodes.get_mut(&id(i)).expect("node");
        node.step(self.now, input, &mut out);
        let mut k = 0;
        while k < out.len() {
            if let Action::AppendLog(entries) = &out[k] {
                let last = entries.last().expect("non-empty");
                let (index, term) = (last.index, last.term);
                let mut more = Vec::new();
                node.step(self.now, Input::Persisted { index, term }, &mut more);
                out.extend(more);
            }
            k += 1;
        }
        for action in out {
            match &action {
                Action::Send { to, msg, .. }
                    if !self.cut.contains(&id(i)) && !self.cut.contains(to) =>
                {
                    self.queue.push_back((id(i), *to, msg.clone()));
                }
                Action::Apply(entries) => self
                    .applied
                    .entry(id(i))
                    .or_default()
                    .extend(entries.clone()),
                _ => {}
            }
            self.outputs.push((id(i), action));
        }
    }

    /// Delivers one queued message; false when none is left.
    fn deliver_one(&mut self) -> bool {
        let Some((from, to, msg)) = self.queue.pop_front() else {
            return false;
        };
        if !self.cut.contains(&from) && !self.cut.contains(&to) && self.nodes.contains_key(&to) {
            self.step(to.0, Input::Message { from, msg });
        }
        true
    }

    /// Delivers queued messages until none are left (bounded).
    fn deliver(&mut self) {
        for _ in 0..100_000 {
            if !self.deliver_one() {
                return;
            }
        }
        panic!("messages never settled");
    }

    /// Advances time by `ms` in 10 ms ticks, delivering as it goes.
    fn run(&mut self, ms: u64) {
        for _ in 0..ms / 10 {
            self.now += 10;
            let ids: Vec<u64> = self.nodes.keys().map(|i| i.0).collect();
            for i in ids {
                self.step(i, Input::Tick);
            }
            self.deliver();
        }
    }

    fn elect(&mut self, i: u64) {
        self.step(i, Input::Campaign);
        self.deliver();
        assert_eq!(self.node(i).role(), Role::Leader, "s{i} should lead");
    }

    fn leaders(&self) -> Vec<u64> {
        self.nodes
            .values()
            .filter(|n| n.role() == Role::Leader)
            .map(|n| n.id().0)
            .collect()
    }

    fn propose(&mut self, i: u64, ctx: u64, data: &[u8]) {
        self.step(i, Input::Propose(vec![(ctx, cmd(data))]));
        self.deliver();
    }

    fn took(&mut self) -> Vec<(ServerId, Action)> {
        std::mem::take(&mut self.outputs)
    }

    fn commands_applied(&self, i: u64) -> Vec<Vec<u8>> {
        self.applied
            .get(&id(i))
            .map(|es| {
                es.iter()
                    .filter_map(|e| match &e.payload {
                        Payload::Command(b) => Some(b.to_vec()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[test]
fn election_5_2_a_candidate_with_a_majority_leads_and_opens_its_term_with_a_noop() {
    let mut h = Harness::new(3);
    h.elect(1);
    assert_eq!(h.leaders(), vec![1]);
    let leader = h.node(1);
    assert_eq!(leader.term(), 1);
    let noop = leader.log().get(leader.log().last_index()).expect("entry");
    assert_eq!(noop.payload, Payload::Noop);
    assert_eq!(noop.term, leader.term());
    h.run(200);
    assert_eq!(h.node(2).leader(), Some(id(1)));
    assert_eq!(h.node(3).commit_index(), h.node(1).log().last_index());
}

#[test]
fn election_5_2_a_voter_grants_one_vote_per_term_and_persists_it_first() {
    let mut n = Harness::new(3).nodes.remove(&id(2)).expect("node");
    let ask = |candidate: u64| Input::Message {
        from: id(candidate),
        msg: Message::VoteRequest {
            term: 5,
            last_index: 10,
            last_term: 4,
            pre_vote: false,
            transfer: false,
        },
    };
    let mut out = Vec::new();
    n.step(0, ask(1), &mut out);
    let save = out
        .iter()
        .position(|a| matches!(a, Action::SaveHardState(hs) if hs.vote == Some(id(1))));
    let reply = out.iter().position(|a| {
        matches!(
            a,
            Action::Send {
                msg: Message::VoteResponse { granted: true, .. },
                after_persist: true,
                ..
            }
        )
    });
    assert!(save.is_some() && reply.is_some() && save < reply, "{out:?}");
    out.clear();
    n.step(0, ask(3), &mut out);
    assert!(out.iter().any(|a| matches!(
        a,
        Action::Send {
            msg: Message::VoteResponse { granted: false, .. },
            ..
        }
    )));
}

#[test]
fn election_5_4_1_voters_refuse_candidates_with_stale_logs() {
    let mut h = Harness::new(3);
    h.elect(1);
    h.propose(1, 1, b"x");
    let mut out = Vec::new();
    let node = h.nodes.get_mut(&id(2)).expect("node");
    let stale = Message::VoteRequest {
        term: 9,
        last_index: 1,
        last_term: 1,
        pre_vote: false,
        transfer: true,
    };
    node.step(
        h.now,
        Input::Message {
            from: id(3),
            msg: stale,
        },
        &mut out,
    );
    assert!(out.iter().any(|a| matches!(
        a,
        Action::Send {
            msg: Message::VoteResponse { granted: false, .. },
            ..
        }
    )));
}

#[test]
fn prevote_9_6_a_partitioned_server_does_not_raise_its_term_or_disrupt_the_leader() {
    let mut h = Harness::new(3);
    h.elect(1);
    let term = h.node(1).term();
    h.cut.insert(id(3));
    h.run(10_000);
    assert_eq!(
        h.node(3).term(),
        term,
        "pre-vote keeps the isolated server's term"
    );
    h.cut.clear();
    h.run(3_000);
    assert_eq!(h.leaders(), vec![1]);
    assert_eq!(h.node(1).term(), term);
}

#[test]
fn check_quorum_an_isolated_leader_steps_down_and_the_majority_elects_another() {
    let mut h = Harness::new(3);
    h.elect(1);
    h.cut.insert(id(1));
    h.run(5_000);
    assert_ne!(
        h.node(1).role(),
        Role::Leader,
        "the isolated leader steps down"
    );
    let others: Vec<u64> = h.leaders();
    assert_eq!(others.len(), 1);
    assert_ne!(others[0], 1);
}

#[test]
fn replication_5_3_conflicting_suffixes_are_replaced_and_logs_converge() {
    let mut h = Harness::new(3);
    h.elect(1);
    h.propose(1, 1, b"a");
    // s1 appends entries nobody else gets, then loses leadership.
    h.cut.insert(id(1));
    h.step(
        1,
        Input::Propose(vec![(2, cmd(b"lost-1")), (3, cmd(b"lost-2"))]),
    );
    h.run(5_000);
    let new_leader = h.leaders()[0];
    assert_ne!(new_leader, 1);
    h.propose(new_leader, 4, b"b");
    h.cut.clear();
    h.run(3_000);
    let (a, b) = (h.node(1).log(), h.node(new_leader).log());
    assert_eq!(a.last_index(), b.last_index());
    for i in 1..=a.last_index() {
        assert_eq!(a.get(i), b.get(i), "entry {i}");
    }
    assert!(!h.commands_applied(1).contains(&b"lost-1".to_vec()));
    assert_eq!(h.commands_applied(1), vec![b"a".to_vec(), b"b".to_vec()]);
}

#[test]
fn commit_5_4_2_an_entry_of_an_older_term_is_not_committed_by_counting_replicas() {
    // Figure 8: s1 leads term 2 and gets an entry onto s2 only; a later leader of term 3 must not count it
    // committed just because a majority holds it; it commits only together with an entry of its own term.
    let mut h = Harness::new(3);
    h.elect(1);
    h.run(200);
    h.cut.insert(id(3));
    h.step(1, Input::Propose(vec![(1, cmd(b"old"))]));
    let old_index = h.node(1).log().last_index();
    // Deliver only the append to s2, not its answer.
    let append = h.queue.iter().position(|(_, to, m)| {
        *to == id(2) && matches!(m, Message::Append { entries, .. } if !entries.is_empty())
    });
    let (from, to, msg) = h
        .queue
        .remove(append.expect("append to s2"))
        .expect("queued");
    h.queue.clear();
    let mut out = Vec::new();
    h.nodes
        .get_mut(&to)
        .expect("s2")
        .step(h.now, Input::Message { from, msg }, &mut out);
    assert_eq!(h.node(2).log().last_index(), old_index);
    // s1 crashes (is cut off); s2 becomes leader in a later term, replicating one entry per message so that
    // the old entry reaches a majority (s2, s3) before s2's own no-op does.
    h.cut = [id(1)].into_iter().collect();
    h.nodes.get_mut(&id(2)).expect("s2").opts.append_entries_max = 1;
    h.nodes
        .get_mut(&id(3))
        .expect("s3")
        .opts
        .election_timeout_ms = 60_000;
    for _ in 0..500 {
        h.now += 10;
        for i in [2, 3] {
            h.step(i, Input::Tick);
        }
        while h.deliver_one() {
            let s2 = h.node(2);
            if s2.role() == Role::Leader {
                assert!(
                    s2.commit_index() < old_index
                        || s2.log().term(s2.commit_index()) == Some(s2.term()),
                    "commit {} counts an entry of an older term",
                    s2.commit_index()
                );
            }
        }
    }
    let leader = h.node(2);
    assert_eq!(leader.role(), Role::Leader);
    assert!(leader.term() > 1);
    // Once s2's own no-op commits, the older entry commits with it: never alone.
    assert!(leader.commit_index() > old_index);
}

#[test]
fn snapshots_7_a_follower_behind_the_compacted_log_gets_the_snapshot() {
    let mut h = Harness::new(3);
    h.elect(1);
    h.cut.insert(id(3));
    for k in 0..20 {
        h.propose(1, k, format!("v{k}").as_bytes());
    }
    let applied = h.node(1).applied_index();
    h.step(1, Input::SnapshotTaken { index: applied });
    assert!(h.node(1).log().first_index() > 2);
    h.took();
    h.cut.clear();
    h.run(500);
    let sent = h
        .took()
        .into_iter()
        .any(|(from, a)| from == id(1) && matches!(a, Action::SendSnapshot { to, index, .. } if to == id(3) && index == applied));
    assert!(sent, "the leader asks the driver to send its snapshot");
    // The driver delivers it; the follower installs it and catches up on the rest.
    let term = h.node(1).term();
    let msg = Message::InstallSnapshot {
        term,
        index: applied,
        last_term: h.node(1).log().term(applied).expect("term"),
        configuration: voters(3),
    };
    h.step(3, Input::Message { from: id(1), msg });
    assert!(h.took().iter().any(|(who, a)| *who == id(3)
        && matches!(a, Action::RestoreSnapshot { index, .. } if *index == applied)));
    h.deliver();
    h.propose(1, 99, b"after");
    h.run(300);
    assert_eq!(h.node(3).commit_index(), h.node(1).commit_index());
    assert_eq!(h.node(3).log().last_index(), h.node(1).log().last_index());
}

#[test]
fn membership_4_1_one_change_at_a_time_and_a_removed_leader_steps_down() {
    let mut h = Harness::new(3);
    h.elect(1);
    h.run(100);
    let add = MembershipChange::AddNonvoter {
        id: id(4),
        address: "s4".into(),
    };
    h.step(
        1,
        Input::ChangeMembership {
            ctx: 1,
            change: add,
        },
    );
    let remove = MembershipChange::Remove { id: id(2) };
    h.step(
        1,
        Input::ChangeMembership {
            ctx: 2,
            change: remove,
        },
    );
    let refused = h.took().into_iter().any(|(_, a)| {
        matches!(
            a,
            Action::Rejected {
                ctx: 2,
                error: RaftError::ConfigChangeInProgress
            }
        )
    });
    assert!(refused, "a second change waits for the first to commit");
    h.deliver();
    assert!(h.node(1).config().get(id(4)).is_some());
    assert!(!h.node(1).config().is_voter(id(4)), "a non-voter");
    h.run(100);
    h.step(
        1,
        Input::ChangeMembership {
            ctx: 3,
            change: MembershipChange::Remove { id: id(1) },
        },
    );
    h.run(500);
    assert_ne!(
        h.node(1).role(),
        Role::Leader,
        "the leader steps down once its removal commits"
    );
    h.run(5_000);
    let leaders = h.leaders();
    assert_eq!(leaders.len(), 1);
    assert_ne!(leaders[0], 1);
}

#[test]
fn membership_4_2_1_non_voters_do_not_count_towards_commit() {
    let mut h = Harness::new(2);
    h.elect(1);
    h.run(100);
    let demote = MembershipChange::AddNonvoter {
        id: id(2),
        address: "s2".into(),
    };
    h.step(
        1,
        Input::ChangeMembership {
            ctx: 1,
            change: demote,
        },
    );
    h.run(200);
    assert_eq!(h.node(1).config().quorum(), 1);
    h.cut.insert(id(2));
    h.propose(1, 2, b"alone");
    assert_eq!(
        h.node(1).commit_index(),
        h.node(1).log().last_index(),
        "one voter commits alone"
    );
}

#[test]
fn transfer_3_10_timeout_now_hands_leadership_to_the_target() {
    let mut h = Harness::new(3);
    h.elect(1);
    h.propose(1, 1, b"x");
    h.step(
        1,
        Input::TransferLeadership {
            ctx: 7,
            to: Some(id(3)),
        },
    );
    h.step(
        1,
        Input::Propose(vec![(8, cmd(b"refused during transfer"))]),
    );
    let refused = h.took().into_iter().any(|(_, a)| {
        matches!(
            a,
            Action::Rejected {
                ctx: 8,
                error: RaftError::TransferInProgress
            }
        )
    });
    assert!(refused);
    h.deliver();
    assert_eq!(h.leaders(), vec![3]);
    assert!(h
        .took()
        .into_iter()
        .any(|(_, a)| matches!(a, Action::TransferDone { ctx: 7 })));
}

#[test]
fn reads_6_4_read_index_waits_for_a_quorum_round_and_the_lease_expires_without_contact() {
    let mut h = Harness::new(3);
    h.elect(1);
    h.run(100);
    h.step(
        1,
        Input::Read {
            ctx: 1,
            lease: false,
        },
    );
    let ready_now = h
        .took()
        .into_iter()
        .any(|(_, a)| matches!(a, Action::ReadReady { ctx: 1, .. }));
    assert!(!ready_now, "a ReadIndex read needs a heartbeat round first");
    h.deliver();
    assert!(h
        .took()
        .into_iter()
        .any(|(_, a)| matches!(a, Action::ReadReady { ctx: 1, .. })));
    assert!(h.node(1).lease_valid());
    h.step(
        1,
        Input::Read {
            ctx: 2,
            lease: true,
        },
    );
    assert!(
        h.took()
            .into_iter()
            .any(|(_, a)| matches!(a, Action::ReadReady { ctx: 2, .. })),
        "lease read"
    );
    h.cut.insert(id(2));
    h.cut.insert(id(3));
    h.run(600);
    assert!(
        !h.node(1).lease_valid(),
        "no quorum contact for longer than the lease"
    );
    h.step(
        1,
        Input::Read {
            ctx: 3,
            lease: true,
        },
    );
    assert!(!h
        .took()
        .into_iter()
        .any(|(_, a)| matches!(a, Action::ReadReady { ctx: 3, .. })));
    h.step(
        2,
        Input::Read {
            ctx: 4,
            lease: false,
        },
    );
    let refused = h.took().into_iter().any(|(_, a)| {
        matches!(a, Action::Rejected { ctx: 4, error: RaftError::NotLeader { leader: Some(l) } } if l == id(1))
    });
    assert!(refused, "followers refuse reads and name the leader");
}
