//! Snapshots between servers: receiving chunks, installing, and streaming the local snapshot to a follower.

use super::*;

impl Inner {
    pub(super) fn on_chunk(&mut self, from: ServerId, chunk: SnapshotChunk) {
        if chunk.offset_bytes == 0 {
            if chunk.total_bytes > self.snapshot_receive_bytes_max {
                self.logger.error(
                    "agent.server.raft",
                    &format!(
                        "refused a snapshot of {} bytes from {:016x}: over the limit of {}",
                        chunk.total_bytes, from.0, self.snapshot_receive_bytes_max
                    ),
                );
                self.incoming = None;
                return;
            }
            self.incoming = Some(Incoming {
                from,
                index: chunk.index,
                term: chunk.term,
                total_bytes: chunk.total_bytes,
                data: Vec::with_capacity(chunk.total_bytes.min(64 << 20) as usize),
            });
        }
        let Some(incoming) = self.incoming.as_mut() else {
            self.stats.frames_dropped_inbound += 1;
            return;
        };
        let continues = incoming.from == from
            && incoming.index == chunk.index
            && incoming.term == chunk.term
            && incoming.total_bytes == chunk.total_bytes
            && incoming.data.len() as u64 == chunk.offset_bytes;
        if !continues {
            self.incoming = None;
            self.stats.frames_dropped_inbound += 1;
            return;
        }
        incoming.data.extend_from_slice(&chunk.data);
        if chunk.done {
            let done = self.incoming.take().expect("assembling");
            self.complete = Some(CompleteSnapshot {
                from: done.from,
                index: done.index,
                term: done.term,
                data: done.data,
            });
        }
    }

    pub(super) fn on_install_snapshot(
        &mut self,
        from: ServerId,
        term: Term,
        index: Index,
        last_term: Term,
        configuration: Configuration,
    ) {
        let needs_data = self.node.log().term(index) != Some(last_term)
            && index > self.node.commit_index()
            && term >= self.node.term();
        if needs_data {
            match self.complete.take() {
                Some(c) if c.from == from && c.index == index && c.term == last_term => {
                    self.restore_with = Some((c, configuration.clone()));
                }
                other => {
                    self.complete = other;
                    let reply = Message::SnapshotResponse {
                        term: self.node.term(),
                        index,
                        success: false,
                    };
                    self.send_raft(from, reply);
                    return;
                }
            }
        }
        self.step(Input::Message {
            from,
            msg: Message::InstallSnapshot {
                term,
                index,
                last_term,
                configuration,
            },
        });
        self.restore_with = None;
    }

    pub(super) fn restore_snapshot(&mut self, index: Index, term: Term) {
        let Some((snapshot, config)) = self.restore_with.take() else {
            return self.fail(format!(
                "raft asked to restore snapshot {index}/{term} that was never received"
            ));
        };
        if (snapshot.index, snapshot.term) != (index, term) {
            return self.fail(format!(
                "raft asked to restore snapshot {index}/{term} but {}/{} was received",
                snapshot.index, snapshot.term
            ));
        }
        if let Err(e) = self.sm.restore(&snapshot.data) {
            return self.fail(format!("snapshot {index}/{term} from the leader: {e}"));
        }
        self.stats.snapshots_installed += 1;
        self.publish_state();
        self.logger.info(
            "agent.server.raft",
            &format!(
                "installed snapshot {index}/{term} ({} bytes) from {:016x}",
                snapshot.data.len(),
                snapshot.from.0
            ),
        );
        let outstanding: Vec<Responder> = std::mem::take(&mut self.proposals)
            .into_values()
            .map(|(_, r)| r)
            .collect();
        for responder in outstanding {
            self.respond(responder, Err(overwritten()));
        }
        self.pending.push(Op::Install {
            index,
            term,
            meta: encode_meta(&config),
            data: snapshot.data,
        });
        self.enqueued_seq += 1;
    }

    pub(super) fn start_snapshot_send(&mut self, to: ServerId, index: Index, term: Term) {
        if !self.sending_snapshots.insert(to) {
            return;
        }
        let Some(me) = self.me.upgrade() else {
            return;
        };
        let spawned = glommio::spawn_local_into(send_snapshot(me, to, index, term), self.tq);
        match spawned {
            Ok(task) => {
                task.detach();
            }
            Err(e) => {
                self.sending_snapshots.remove(&to);
                self.logger.error(
                    "agent.server.raft",
                    &format!("cannot start a snapshot transfer: {e}"),
                );
                // Stepped after the current actions are carried out, never in the middle of them.
                self.deferred.push(Input::SnapshotSendFailed { to });
            }
        }
    }
}

/// Streams the snapshot at (`index`, `term`) to `to`, then sends `InstallSnapshot`. Reports a failure to Raft.
pub(super) async fn send_snapshot(
    inner: Rc<RefCell<Inner>>,
    to: ServerId,
    index: Index,
    term: Term,
) {
    let result = stream_snapshot(&inner, to, index, term).await;
    let mut i = inner.borrow_mut();
    i.sending_snapshots.remove(&to);
    match result {
        Ok(bytes) => {
            i.stats.snapshots_sent += 1;
            i.logger.info(
                "agent.server.raft",
                &format!(
                    "sent snapshot {index}/{term} ({bytes} bytes) to {:016x}",
                    to.0
                ),
            );
        }
        Err(why) => {
            i.logger.info(
                "agent.server.raft",
                &format!("snapshot {index}/{term} to {:016x} failed: {why}", to.0),
            );
            i.step(Input::SnapshotSendFailed { to });
        }
    }
}

pub(super) async fn stream_snapshot(
    inner: &Rc<RefCell<Inner>>,
    to: ServerId,
    index: Index,
    term: Term,
) -> Result<u64, String> {
    let (disk, dir, leader_term, stop, timeout_ms) = {
        let i = inner.borrow();
        (
            i.disk.clone(),
            i.snapshot_dir.clone(),
            i.node.term(),
            i.stop.clone(),
            i.snapshot_timeout_ms,
        )
    };
    let (config, loaded) = glommio::executor()
        .spawn_blocking(move || load_snapshot(&disk, &dir, index, term))
        .await?;
    let payload: &[u8] = &loaded.payload;
    let total_bytes = payload.len() as u64;
    let started = Instant::now();
    let still_leading = |i: &Inner| i.node.role() == Role::Leader && i.node.term() == leader_term;
    let mut offset = 0usize;
    loop {
        let end = (offset + rpc::CHUNK_BYTES_MAX).min(payload.len());
        let chunk = SnapshotChunk {
            leader_term,
            index,
            term,
            offset_bytes: offset as u64,
            total_bytes,
            done: end == payload.len(),
            data: payload[offset..end].to_vec(),
        };
        let mut bytes = {
            let mut i = inner.borrow_mut();
            if !still_leading(&i) {
                return Err("no longer the leader".to_string());
            }
            i.encode(0, Body::SnapshotChunk(chunk))
                .ok_or("cannot encode a chunk")?
        };
        loop {
            if stop.is_triggered() {
                return Err("shutting down".to_string());
            }
            if started.elapsed() > Duration::from_millis(timeout_ms) {
                return Err(format!("not sent within {timeout_ms} ms"));
            }
            let sender = inner
                .borrow_mut()
                .peer_sender(to)
                .ok_or("no connection to the follower")?;
            match sender.try_send(bytes) {
                Ok(()) => break,
                Err(e) if matches!(e.kind(), TrySendErrorKind::QueueFull { .. }) => {
                    bytes = e.into_payload();
                    glommio::timer::sleep(Duration::from_millis(SNAPSHOT_QUEUE_RETRY_MS)).await;
                }
                Err(e) => return Err(format!("{e:?}")),
            }
        }
        offset = end;
        if offset == payload.len() {
            break;
        }
        glommio::yield_if_needed().await;
    }
    let mut i = inner.borrow_mut();
    if !still_leading(&i) {
        return Err("no longer the leader".to_string());
    }
    i.send_raft(
        to,
        Message::InstallSnapshot {
            term: leader_term,
            index,
            last_term: term,
            configuration: config,
        },
    );
    Ok(total_bytes)
}
