//! The client workload: operations invoked on servers, completed from applies and reads, recorded in the history.

use super::*;

impl Sim {
    pub(super) fn client_next(&mut self, c: usize) -> Result<(), Fail> {
        if !self.clients_on || self.clients[c].pending.is_some() {
            return Ok(());
        }
        let key = self.rng.range(0, KEYS);
        let op = match self.rng.range(0, 10) {
            0..=3 => Op::Write {
                key,
                value: self.rng.range(1, 1_000_000),
            },
            4..=5 => {
                // Mostly the value this client last saw (so many CAS succeed), sometimes absent or arbitrary.
                let expected = match self.rng.range(0, 8) {
                    0 => None,
                    1 => Some(self.rng.range(1, 1_000_000)),
                    _ => self.clients[c].seen.get(&key).copied().flatten(),
                };
                Op::Cas {
                    key,
                    expected,
                    new: self.rng.range(1, 1_000_000),
                }
            }
            _ => Op::Read { key },
        };
        let lease = self.rng.range(0, 2) == 0;
        self.start_op(c, op, lease)
    }

    /// Invokes `op` for client `c` on its target node (a live one).
    pub(super) fn start_op(&mut self, c: usize, op: Op, lease: bool) -> Result<(), Fail> {
        let mut node = self.clients[c].target;
        if self.nodes[node].live.is_none() {
            let live: Vec<usize> = (0..self.nodes.len())
                .filter(|&n| self.nodes[n].live.is_some())
                .collect();
            if live.is_empty() {
                self.schedule(50, Event::ClientNext { client: c });
                return Ok(());
            }
            node = live[self.rng.range(0, live.len() as u64) as usize];
            self.clients[c].target = node;
        }
        let ctx = self.next_ctx;
        self.next_ctx += 1;
        let id = self.history.invoke(c as u64, op, self.now);
        self.clients[c].pending = Some(Pending {
            id,
            op,
            node,
            ctx,
            started: self.now,
        });
        self.ctx_client.insert(ctx, c);
        let input = match op {
            Op::Read { .. } => Input::Read { ctx, lease },
            Op::Write { key, value } => Input::Propose(vec![(
                ctx,
                Command::Write {
                    op: ctx,
                    key,
                    value,
                }
                .encode()
                .into(),
            )]),
            Op::Cas { key, expected, new } => Input::Propose(vec![(
                ctx,
                Command::Cas {
                    op: ctx,
                    key,
                    expected,
                    new,
                }
                .encode()
                .into(),
            )]),
        };
        self.step(node, input)
    }

    pub(super) fn take_pending(&mut self, ctx: u64) -> Option<(usize, Pending)> {
        let c = self.ctx_client.remove(&ctx)?;
        if self.clients[c]
            .pending
            .as_ref()
            .is_some_and(|p| p.ctx == ctx)
        {
            let p = self.clients[c].pending.take()?;
            return Some((c, p));
        }
        None
    }

    pub(super) fn next_op_soon(&mut self, c: usize) {
        let delay = self.rng.range(0, 20);
        self.schedule(delay, Event::ClientNext { client: c });
    }

    pub(super) fn complete(&mut self, ctx: u64, result: OpResult) {
        if let Some((c, p)) = self.take_pending(ctx) {
            let seen = match (p.op, result) {
                (Op::Read { key }, OpResult::Read(v)) => Some((key, v)),
                (Op::Write { key, value }, _) => Some((key, Some(value))),
                (Op::Cas { key, new, .. }, OpResult::Cas(true)) => Some((key, Some(new))),
                _ => None,
            };
            if result == OpResult::Cas(true) {
                self.report.cas_succeeded += 1;
            }
            if let Some((key, value)) = seen {
                self.clients[c].seen.insert(key, value);
            }
            self.history.complete(p.id, result, self.now);
            self.report.completed += 1;
            self.next_op_soon(c);
        }
    }

    pub(super) fn complete_write(&mut self, ctx: u64, took_effect: bool) {
        let result = match self.clients[self.ctx_client.get(&ctx).copied().unwrap_or(0)]
            .pending
            .as_ref()
            .map(|p| p.op)
        {
            Some(Op::Cas { .. }) => OpResult::Cas(took_effect),
            _ => OpResult::Write,
        };
        self.complete(ctx, result);
    }

    /// The operation definitely had no effect (refused, or its entry was overwritten).
    pub(super) fn fail_op(&mut self, ctx: u64) {
        if let Some((c, p)) = self.take_pending(ctx) {
            self.history.fail(p.id);
            self.next_op_soon(c);
        }
    }

    pub(super) fn rejected(&mut self, ctx: u64, error: RaftError) {
        let Some(&c) = self.ctx_client.get(&ctx) else {
            return;
        };
        match &error {
            RaftError::NotLeader { leader: Some(l) } => self.clients[c].target = (l.0 - 1) as usize,
            _ => self.clients[c].target = self.rng.range(0, self.nodes.len() as u64) as usize,
        }
        self.fail_op(ctx);
    }

    /// The client gives up waiting: the outcome stays unknown.
    pub(super) fn abandon(&mut self, c: usize) {
        if let Some(p) = self.clients[c].pending.take() {
            self.ctx_client.remove(&p.ctx);
            self.next_op_soon(c);
        }
    }

    pub(super) fn expire_client_ops(&mut self) {
        for c in 0..self.clients.len() {
            if self.clients[c]
                .pending
                .as_ref()
                .is_some_and(|p| self.now >= p.started + OP_TIMEOUT_MS)
            {
                self.abandon(c);
            }
        }
    }
}
