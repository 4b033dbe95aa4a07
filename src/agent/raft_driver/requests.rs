//! Client requests on the driver: admission, proposals (gathered per executor turn), reads, status, replies.

use super::*;

impl Inner {
    pub(super) fn waiting_requests(&self) -> usize {
        self.requests.len() + self.proposals.len() + self.reads.len()
    }

    pub(super) fn leader_hint(&self) -> Option<LeaderHint> {
        let id = self.node.leader()?;
        let address = self
            .node
            .config()
            .get(id)
            .map(|s| s.address.clone())
            .unwrap_or_default();
        Some(LeaderHint { id, address })
    }

    pub(super) fn not_leader(&self) -> ErrorReply {
        let leader = self.leader_hint();
        let message = match &leader {
            Some(hint) => format!("not the leader; the leader is {}", hint.address),
            None => "not the leader, and no leader is known".to_string(),
        };
        ErrorReply {
            code: ErrorCode::NotLeader,
            leader,
            message,
        }
    }

    pub(super) fn raft_error(&self, error: RaftError) -> ErrorReply {
        let (code, message) = match error {
            RaftError::NotLeader { .. } => return self.not_leader(),
            RaftError::LeadershipLost => (
                ErrorCode::Rejected,
                "leadership was lost before the request completed".to_string(),
            ),
            other => (ErrorCode::Rejected, format!("{other:?}")),
        };
        ErrorReply {
            code,
            leader: self.leader_hint(),
            message,
        }
    }

    /// Registers a leader-only request and returns its context number, or answers it at once when this server
    /// is not the leader or too many requests are waiting.
    pub(super) fn admit(&mut self, responder: Responder, query: Option<Vec<u8>>) -> Option<u64> {
        if self.node.role() != Role::Leader {
            let reply = self.not_leader();
            self.respond(responder, Err(reply));
            return None;
        }
        if self.waiting_requests() >= self.requests_max {
            self.respond(responder, Err(overloaded(self.requests_max)));
            return None;
        }
        let ctx = self.next_ctx;
        self.next_ctx += 1;
        self.requests.insert(ctx, Request { responder, query });
        Some(ctx)
    }

    pub(super) fn propose(&mut self, command: Vec<u8>, responder: Responder) {
        if self.failure.is_some() || self.stop.is_triggered() {
            return self.respond(responder, Err(stopped_error()));
        }
        let Some(ctx) = self.admit(responder, None) else {
            return;
        };
        if self.proposal_batch.is_empty() {
            self.schedule_proposal_flush();
        }
        self.proposal_batch.push((ctx, command.into()));
    }

    /// Steps the gathered proposals into Raft once the tasks that are ready now have run (they may add more).
    pub(super) fn schedule_proposal_flush(&self) {
        let me = self.me.clone();
        glommio::spawn_local(async move {
            futures_lite::future::yield_now().await;
            if let Some(inner) = me.upgrade() {
                inner.borrow_mut().flush_proposals();
            }
        })
        .detach();
    }

    pub(super) fn flush_proposals(&mut self) {
        let batch = std::mem::take(&mut self.proposal_batch);
        if !batch.is_empty() {
            self.step(Input::Propose(batch));
        }
    }

    pub(super) fn read(&mut self, consistency: Consistency, query: Vec<u8>, responder: Responder) {
        if self.failure.is_some() || self.stop.is_triggered() {
            return self.respond(responder, Err(stopped_error()));
        }
        if consistency == Consistency::Stale {
            let result = self.sm.query(&query);
            let index = self.node.applied_index();
            return self.respond(responder, Ok(Reply::Read(ReadResult { index, result })));
        }
        let Some(ctx) = self.admit(responder, Some(query)) else {
            return;
        };
        self.step(Input::Read {
            ctx,
            lease: consistency == Consistency::Default,
        });
    }

    pub(super) fn status(&self) -> StatusReply {
        StatusReply {
            id: self.id,
            role: match self.node.role() {
                Role::Follower => WireRole::Follower,
                Role::PreCandidate => WireRole::PreCandidate,
                Role::Candidate => WireRole::Candidate,
                Role::Leader => WireRole::Leader,
            },
            term: self.node.term(),
            leader: self.leader_hint(),
            commit_index: self.node.commit_index(),
            applied_index: self.node.applied_index(),
            last_index: self.node.log().last_index(),
            snapshot_index: self.node.log().snapshot_index(),
        }
    }

    pub(super) fn fail_requests(&mut self, why: &str) {
        let error = ErrorReply {
            code: ErrorCode::Unknown,
            leader: None,
            message: why.to_string(),
        };
        let requests: Vec<Responder> = std::mem::take(&mut self.requests)
            .into_values()
            .map(|r| r.responder)
            .chain(
                std::mem::take(&mut self.proposals)
                    .into_values()
                    .map(|(_, r)| r),
            )
            .chain(
                std::mem::take(&mut self.reads)
                    .into_iter()
                    .map(|(_, r)| r.responder),
            )
            .collect();
        for responder in requests {
            self.respond(responder, Err(error.clone()));
        }
    }

    pub(super) fn respond(&mut self, responder: Responder, reply: LocalReply) {
        match responder {
            Responder::Local(tx) => {
                let _ = tx.try_send(reply);
            }
            Responder::Shard { shard, id } => self.reply_to_shard(shard, id, reply),
            Responder::Remote { target, request_id } => {
                let body = match reply {
                    Ok(Reply::Applied(a)) => Body::Applied {
                        index: a.index,
                        result: a.result,
                    },
                    Ok(Reply::Done) => Body::Applied {
                        index: self.node.applied_index(),
                        result: Vec::new(),
                    },
                    Ok(Reply::Read(r)) => Body::ReadResult {
                        index: r.index,
                        result: r.result,
                    },
                    Err(e) => Body::Error(e),
                };
                self.send_to(target, request_id, body);
            }
        }
    }
}

pub(super) fn overwritten() -> ErrorReply {
    ErrorReply {
        code: ErrorCode::Unknown,
        leader: None,
        message: "leadership changed before the entry was applied; it may or may not have been"
            .to_string(),
    }
}

pub(super) fn overloaded(max: usize) -> ErrorReply {
    ErrorReply {
        code: ErrorCode::Overloaded,
        leader: None,
        message: format!("{max} requests are already waiting; retry later"),
    }
}
