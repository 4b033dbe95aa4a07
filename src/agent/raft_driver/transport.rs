//! The driver's side of the server RPC: encoding, per-peer senders, and inbound frames.

use super::*;

impl Inner {
    pub(super) fn encode(&mut self, request_id: u64, body: Body) -> Option<Vec<u8>> {
        let frame = Frame {
            header: Header {
                datacenter: self.datacenter.clone(),
                sender: self.id,
                request_id,
            },
            body,
        };
        match rpc::encode(&frame) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                self.logger.error("agent.server.rpc", &e.to_string());
                self.stats.frames_dropped_outbound += 1;
                None
            }
        }
    }

    /// Makes the peer set match the latest configuration (every member but this server).
    pub(super) fn sync_peers(&mut self) {
        let config_index = self.node.config_index();
        if self.peers_config_index == Some(config_index) {
            return;
        }
        self.peers_config_index = Some(config_index);
        let config = self.node.config().clone();
        self.peers
            .retain(|id, slot| config.get(*id).is_some_and(|s| s.address == slot.address));
        for server in &config.servers {
            if server.id == self.id || self.peers.contains_key(&server.id) {
                continue;
            }
            let peer = match server.address.parse::<SocketAddr>() {
                Ok(addr) => match Peer::start(addr, self.peer_options.clone(), &self.stop) {
                    Ok(peer) => Some(peer),
                    Err(e) => {
                        self.logger.error(
                            "agent.server.rpc",
                            &format!("cannot start a connection to {}: {e}", server.address),
                        );
                        None
                    }
                },
                Err(_) => {
                    self.logger.error(
                        "agent.server.rpc",
                        &format!(
                            "server {:016x} has an address that is not IP:PORT: {:?}",
                            server.id.0, server.address
                        ),
                    );
                    None
                }
            };
            self.peers.insert(
                server.id,
                PeerSlot {
                    address: server.address.clone(),
                    peer,
                },
            );
        }
    }

    pub(super) fn peer_sender(&mut self, to: ServerId) -> Option<PeerSender> {
        self.sync_peers();
        if !self.peers.contains_key(&to) {
            self.add_directory_peer(to);
        }
        self.peers
            .get(&to)
            .and_then(|slot| slot.peer.as_ref())
            .map(Peer::sender)
    }

    /// A connection to server `to`, which the configuration does not name, at the address the LAN pool gives
    /// it (its id is derived from that address); dropped at the next configuration change unless named then.
    fn add_directory_peer(&mut self, to: ServerId) {
        let found = self.directory.as_ref().and_then(|lan| {
            lan.members()
                .iter()
                .filter_map(crate::agent::membership::MemberView::server)
                .find(|s| s.id == to)
                .map(|s| s.rpc_addr)
        });
        let Some(addr) = found else { return };
        match Peer::start(addr, self.peer_options.clone(), &self.stop) {
            Ok(peer) => {
                self.peers.insert(
                    to,
                    PeerSlot {
                        address: addr.to_string(),
                        peer: Some(peer),
                    },
                );
            }
            Err(e) => self.logger.error(
                "agent.server.rpc",
                &format!("cannot start a connection to {addr}: {e}"),
            ),
        }
    }

    pub(super) fn client_peer_sender(&mut self, address: &str) -> Option<PeerSender> {
        if let Some((_, peer)) = self.client_peers.iter().find(|(a, _)| a == address) {
            return Some(peer.sender());
        }
        let addr: SocketAddr = address.parse().ok()?;
        let options = PeerOptions {
            send_queue_frames_max: 1024,
            ..self.peer_options.clone()
        };
        let peer = Peer::start(addr, options, &self.stop).ok()?;
        let sender = peer.sender();
        self.client_peers.push_back((address.to_string(), peer));
        while self.client_peers.len() > self.client_peers_max {
            self.client_peers.pop_front();
        }
        Some(sender)
    }

    pub(super) fn send_bytes(&mut self, sender: Option<PeerSender>, bytes: Vec<u8>) {
        let Some(sender) = sender else {
            self.stats.frames_dropped_outbound += 1;
            return;
        };
        if let Err(e) = sender.try_send(bytes) {
            self.stats.frames_dropped_outbound += 1;
            if !matches!(e.kind(), TrySendErrorKind::QueueFull { .. }) {
                self.logger.debug(
                    "agent.server.rpc",
                    &format!("send to {} failed: {e:?}", sender.addr()),
                );
            }
        }
    }

    pub(super) fn send_raft(&mut self, to: ServerId, msg: Message) {
        let Some(bytes) = self.encode(0, Body::Raft(msg)) else {
            return;
        };
        let sender = self.peer_sender(to);
        self.send_bytes(sender, bytes);
    }

    pub(super) fn send_to(&mut self, target: Target, request_id: u64, body: Body) {
        let Some(bytes) = self.encode(request_id, body) else {
            return;
        };
        let sender = match target {
            Target::Server(id) => self.peer_sender(id),
            Target::Address(address) => self.client_peer_sender(&address),
        };
        self.send_bytes(sender, bytes);
    }

    pub(super) fn on_frame(&mut self, frame: InboundFrame) {
        let decoded = match rpc::decode(&frame.payload) {
            Ok(decoded) => decoded,
            Err(e) => {
                self.stats.frames_dropped_inbound += 1;
                self.logger.debug(
                    "agent.server.rpc",
                    &format!("dropped a frame from {}: {e}", frame.peer_addr),
                );
                return;
            }
        };
        if decoded.header.datacenter != self.datacenter {
            self.stats.frames_dropped_inbound += 1;
            self.logger.debug(
                "agent.server.rpc",
                &format!(
                    "dropped a frame from datacenter {:?} (this is {:?})",
                    decoded.header.datacenter, self.datacenter
                ),
            );
            return;
        }
        let from = decoded.header.sender;
        let request_id = decoded.header.request_id;
        let reply_target = |reply_to: String| {
            if reply_to.is_empty() {
                Target::Server(from)
            } else {
                Target::Address(reply_to)
            }
        };
        match decoded.body {
            Body::Raft(Message::InstallSnapshot {
                term,
                index,
                last_term,
                configuration,
            }) => self.on_install_snapshot(from, term, index, last_term, configuration),
            Body::Raft(msg) => {
                self.step(Input::Message { from, msg });
                self.note_leader_contact(from);
                self.note_heard(from);
            }
            Body::SnapshotChunk(chunk) => self.on_chunk(from, chunk),
            Body::Apply(ApplyRequest {
                reply_to, command, ..
            }) => {
                let responder = Responder::Remote {
                    target: reply_target(reply_to),
                    request_id,
                };
                self.propose(command, responder);
            }
            Body::Read(ReadRequest {
                reply_to,
                consistency,
                query,
                ..
            }) => {
                let responder = Responder::Remote {
                    target: reply_target(reply_to),
                    request_id,
                };
                self.read(consistency, query, responder);
            }
            Body::Operator(request) => {
                let responder = Responder::Remote {
                    target: reply_target(request.reply_to),
                    request_id,
                };
                self.operator(responder, request.action);
            }
            Body::Status { reply_to } => {
                let body = Body::StatusReply(self.status());
                self.send_to(reply_target(reply_to), request_id, body);
            }
            Body::Applied { index, result } => {
                self.on_forward_reply(request_id, Ok(Reply::Applied(Applied { index, result })))
            }
            Body::ReadResult { index, result } => {
                self.on_forward_reply(request_id, Ok(Reply::Read(ReadResult { index, result })))
            }
            Body::Error(error) => self.on_forward_reply(request_id, Err(error)),
            Body::Relay(request) => {
                self.relay_to_shard(reply_target(request.reply_to), request_id, request.call)
            }
            Body::StatusReply(_) | Body::RelayReply { .. } => {
                // This server never asks another for its status, nor relays calls.
                self.stats.frames_dropped_inbound += 1;
            }
        }
    }
}
