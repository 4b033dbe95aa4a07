//! Calls a client agent relays to a server (the body of the server RPC's Relay frames, kinds 40/41 in
//! `src/rpc/WIRE.md`), and their answers. The server hands each call to one of its shards, whose front end
//! answers it the way it answers its own HTTP clients: consistency modes, blocking queries, forwarding to
//! the leader; a DNS query (`RelayCall::Dns`) goes to the shard's DNS front end, which answers it with the
//! client's DNS settings (see `super::dns`). MessagePack (rmp-serde) with externally tagged enums; decoding
//! bad bytes is an error.

use super::dns::DnsFrontEnd;
use super::http::{Backend, FrontEnd};
use super::remote::{RemoteLink, CALL_TIMEOUT_MS};
pub use crate::api::local::CatalogNode as NodeView;
use crate::api::query::Query;
use crate::api::{self, ApiRequest, ApiResponse};
use crate::dns::{DnsConfig, Outcome as DnsOutcome, Transport};
use crate::fsm::codec::{decode_command, decode_outcome, encode_command};
use crate::fsm::{Command, Outcome};
use cairn_io::Shutdown;
use futures_lite::future::or;
use serde::{Deserialize, Serialize};
use std::rc::Rc;

/// What a client agent asks a server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RelayCall {
    /// An HTTP API request the client agent does not answer itself.
    Http {
        /// The method (`GET`, `PUT`...).
        method: String,
        /// The path, percent-decoded.
        path: String,
        /// The raw query string (without `?`).
        query: String,
        /// The ACL token of the request.
        token: Option<String>,
        /// The body.
        body: Vec<u8>,
    },
    /// Apply an encoded state-machine command (anti-entropy's catalog writes) and wait until the answering
    /// server has applied it.
    Apply {
        /// The encoded `fsm::Command`.
        command: Vec<u8>,
    },
    /// The catalog's entries for one node (anti-entropy's full sync).
    NodeView {
        /// The node name.
        node: String,
    },
    /// A DNS query the client agent cannot answer without the catalog, with the client's DNS settings: the
    /// server answers it from its state as that client would (domain, TTLs, limits, `allow_stale`/`max_stale`).
    Dns {
        /// The query packet as the client received it (at most [`DNS_PACKET_BYTES_MAX`]).
        packet: Vec<u8>,
        /// How it came (the answer's size limit).
        transport: Transport,
        /// The client agent's DNS settings.
        config: DnsConfig,
    },
}

/// What a server answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RelayAnswer {
    /// The HTTP response.
    Http {
        /// The status code.
        status: u16,
        /// The `Content-Type`, when there is a body type.
        content_type: Option<String>,
        /// The other headers.
        headers: Vec<(String, String)>,
        /// The body.
        body: Vec<u8>,
    },
    /// The command was applied; `result` is the encoded `fsm::Outcome`.
    Applied {
        /// The state machine's answer.
        result: Vec<u8>,
    },
    /// The call failed with this HTTP status and message.
    Failed {
        /// The status Consul gives the failure.
        status: u16,
        /// The message.
        message: String,
    },
    /// A node's catalog entries.
    NodeView(NodeView),
    /// What to do with a relayed DNS query: the answer packet, or recurse (the client asks its own
    /// recursors), or drop it.
    Dns(DnsOutcome),
}

/// The largest DNS packet relayed either way (a TCP message's two-byte length caps it).
pub const DNS_PACKET_BYTES_MAX: usize = crate::dns::config::TCP_BYTES_MAX;

/// Encodes a call.
pub fn encode_call(call: &RelayCall) -> Vec<u8> {
    rmp_serde::to_vec(call).unwrap_or_default()
}

/// Decodes a call; bad bytes are an error naming why.
pub fn decode_call(bytes: &[u8]) -> Result<RelayCall, String> {
    rmp_serde::from_slice(bytes).map_err(|e| format!("undecodable relay call: {e}"))
}

/// Encodes an answer.
pub fn encode_answer(answer: &RelayAnswer) -> Vec<u8> {
    rmp_serde::to_vec(answer).unwrap_or_default()
}

/// Decodes an answer; bad bytes are an error naming why.
pub fn decode_answer(bytes: &[u8]) -> Result<RelayAnswer, String> {
    rmp_serde::from_slice(bytes).map_err(|e| format!("undecodable relay answer: {e}"))
}

/// Header names a relayed answer may carry back (the answer's other headers are dropped).
const RELAYED_HEADERS: [&str; 6] = [
    "X-Consul-Index",
    "X-Consul-KnownLeader",
    "X-Consul-LastContact",
    "X-Consul-Effective-Consistency",
    "X-Consul-ContentHash",
    "X-Consul-Translate-Addresses",
];
/// Content types a relayed answer may name.
const RELAYED_CONTENT_TYPES: [&str; 3] = [
    "application/json",
    "text/plain; charset=utf-8",
    "application/octet-stream",
];
/// How long a relayed blocking query may take beyond its `wait` (jitter, queueing).
pub const BLOCKING_MARGIN_MS: u64 = 60_000;

/// The HTTP response for a relayed answer.
pub fn to_api_response(answer: RelayAnswer) -> ApiResponse {
    match answer {
        RelayAnswer::Http {
            status,
            content_type,
            headers,
            body,
        } => ApiResponse {
            status,
            content_type: content_type.and_then(|t| known(&RELAYED_CONTENT_TYPES, &t)),
            headers: headers
                .into_iter()
                .filter_map(|(name, value)| Some((known(&RELAYED_HEADERS, &name)?, value)))
                .collect(),
            body,
        },
        RelayAnswer::Failed { status, message } => ApiResponse::text(status, message),
        RelayAnswer::Applied { .. } | RelayAnswer::NodeView(_) | RelayAnswer::Dns(_) => {
            ApiResponse::text(500, "rpc error: unexpected answer from the server")
        }
    }
}

fn known(list: &[&'static str], name: &str) -> Option<&'static str> {
    list.iter().copied().find(|n| n.eq_ignore_ascii_case(name))
}

/// How long a relayed HTTP request may wait for its answer: a blocking query its `wait` (default 5 min,
/// at most 10) plus a margin, anything else [`CALL_TIMEOUT_MS`].
fn http_timeout_ms(query: &Query) -> u64 {
    if !query.has("index") {
        return CALL_TIMEOUT_MS;
    }
    let wait_ms = query
        .get("wait")
        .and_then(|w| crate::api::duration::parse_duration_ms(w).ok())
        .unwrap_or(300_000)
        .min(600_000);
    wait_ms + BLOCKING_MARGIN_MS
}

impl FrontEnd {
    /// Serves the calls client agents relay to this shard until `shutdown` (server agents); `dns` answers
    /// the relayed DNS queries.
    pub async fn serve_relays(self: Rc<Self>, dns: Option<Rc<DnsFrontEnd>>, shutdown: Shutdown) {
        let Backend::Server(link) = &self.backend else {
            return;
        };
        let Some(calls) = link.take_relays() else {
            return;
        };
        loop {
            let next = or(calls.recv(), async {
                shutdown.wait().await;
                None
            })
            .await;
            let Some((id, call)) = next else { break };
            let front = Rc::clone(&self);
            let dns = dns.clone();
            glommio::spawn_local(async move {
                let answer = match decode_call(&call) {
                    Ok(call) => front.answer_relay(call, dns.as_deref()).await,
                    Err(why) => RelayAnswer::Failed {
                        status: 400,
                        message: why,
                    },
                };
                if let Backend::Server(link) = &front.backend {
                    link.answer_relay(id, encode_answer(&answer)).await;
                }
            })
            .detach();
        }
    }

    /// Answers one relayed call the way this shard answers its own clients.
    async fn answer_relay(&self, call: RelayCall, dns: Option<&DnsFrontEnd>) -> RelayAnswer {
        match call {
            RelayCall::Http {
                method,
                path,
                query,
                token,
                body,
            } => {
                let query = match Query::parse(&query) {
                    Ok(query) => query,
                    Err(e) => return failed(400, format!("Invalid query: {e}")),
                };
                let request = ApiRequest {
                    method: api_method(&method),
                    path: &path,
                    query,
                    token,
                    body: &body,
                };
                let response = self.run_relayed(&request).await;
                RelayAnswer::Http {
                    status: response.status,
                    content_type: response.content_type.map(str::to_string),
                    headers: response
                        .headers
                        .into_iter()
                        .map(|(name, value)| (name.to_string(), value))
                        .collect(),
                    body: response.body,
                }
            }
            RelayCall::Apply { command } => match decode_command(&command) {
                Ok(command) => match self.apply_and_wait_outcome(&command).await {
                    Ok(result) => RelayAnswer::Applied { result },
                    Err(response) => failed(
                        response.status,
                        String::from_utf8_lossy(&response.body).into_owned(),
                    ),
                },
                Err(e) => failed(400, format!("undecodable command: {e}")),
            },
            RelayCall::NodeView { node } => match &self.backend {
                Backend::Server(link) => RelayAnswer::NodeView(NodeView::from_state(
                    &link.shared().published().state,
                    &node,
                )),
                Backend::Client(_) => failed(500, "a client agent serves no relayed calls".into()),
            },
            RelayCall::Dns {
                packet,
                transport,
                config,
            } => answer_dns(dns, &packet, transport, &config).await,
        }
    }

    /// Relays an HTTP request this client agent does not answer itself.
    pub(super) async fn relay_http(
        &self,
        remote: &RemoteLink,
        request: &ApiRequest<'_>,
    ) -> ApiResponse {
        let call = RelayCall::Http {
            method: request.method.as_str().to_string(),
            path: request.path.to_string(),
            query: request.query.to_raw(),
            token: request.token.clone(),
            body: request.body.to_vec(),
        };
        let token = request.token.clone().unwrap_or_default();
        let timeout_ms = http_timeout_ms(&request.query);
        to_api_response(remote.call(&call, &token, timeout_ms).await)
    }

    /// Applies an anti-entropy command through a server.
    pub(super) async fn relay_apply(
        &self,
        remote: &RemoteLink,
        command: &Command,
    ) -> Result<(), ApiResponse> {
        let call = RelayCall::Apply {
            command: encode_command(command),
        };
        match remote.call(&call, "", CALL_TIMEOUT_MS).await {
            RelayAnswer::Applied { result } => check_outcome(&result),
            other => Err(to_api_response(other)),
        }
    }

    /// The catalog's copy of node `name`, from a server.
    pub(super) async fn relay_node_view(
        &self,
        remote: &RemoteLink,
        name: &str,
    ) -> Result<NodeView, ApiResponse> {
        let call = RelayCall::NodeView {
            node: name.to_string(),
        };
        match remote.call(&call, "", CALL_TIMEOUT_MS).await {
            RelayAnswer::NodeView(view) => Ok(view),
            other => Err(to_api_response(other)),
        }
    }
}

/// `Err` with a `500` when an encoded outcome is a refusal by the state machine.
pub(super) fn check_outcome(result: &[u8]) -> Result<(), ApiResponse> {
    match decode_outcome(result) {
        Ok(Outcome::Error(message)) => Err(ApiResponse::text(500, message)),
        Ok(_) => Ok(()),
        Err(e) => Err(ApiResponse::text(500, format!("undecodable outcome: {e}"))),
    }
}

/// Answers a relayed DNS query with the client's settings; a packet over the size limit, or a shard without
/// DNS, is a failure (the client answers SERVFAIL).
async fn answer_dns(
    dns: Option<&DnsFrontEnd>,
    packet: &[u8],
    transport: Transport,
    config: &DnsConfig,
) -> RelayAnswer {
    if packet.len() > DNS_PACKET_BYTES_MAX {
        let why = format!(
            "DNS packet of {} bytes is over the limit of {DNS_PACKET_BYTES_MAX}",
            packet.len()
        );
        return failed(413, why);
    }
    let Some(dns) = dns else {
        return failed(500, "this agent answers no relayed DNS queries".into());
    };
    match dns.answer_relayed(config, packet, transport).await {
        Ok(outcome) => RelayAnswer::Dns(outcome),
        Err(why) => failed(500, why),
    }
}

fn failed(status: u16, message: String) -> RelayAnswer {
    RelayAnswer::Failed { status, message }
}

fn api_method(method: &str) -> api::Method {
    match method {
        "GET" => api::Method::Get,
        "HEAD" => api::Method::Head,
        "PUT" => api::Method::Put,
        "POST" => api::Method::Post,
        "DELETE" => api::Method::Delete,
        _ => api::Method::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsm::{HealthCheck, Node, Service};

    #[test]
    fn calls_and_answers_round_trip_and_garbage_is_an_error() {
        let call = RelayCall::Http {
            method: "PUT".into(),
            path: "/v1/kv/a".into(),
            query: "cas=0".into(),
            token: Some("t".into()),
            body: b"v".to_vec(),
        };
        assert_eq!(decode_call(&encode_call(&call)), Ok(call));
        let view = RelayAnswer::NodeView(NodeView {
            node: Some(Node {
                node: "n1".into(),
                ..Node::default()
            }),
            services: vec![Service::default()],
            checks: vec![HealthCheck::default()],
            node_count: 3,
        });
        assert_eq!(decode_answer(&encode_answer(&view)), Ok(view));
        assert!(decode_call(b"\xc1garbage").is_err());
        assert!(decode_answer(&[]).is_err());
    }

    #[test]
    fn dns_calls_and_answers_round_trip_with_the_client_settings() {
        let mut config = DnsConfig {
            domain: "cairn.".into(),
            alt_domain: Some("alt.".into()),
            recursion: true,
            allow_stale: false,
            max_stale_ms: 5_000,
            only_passing: true,
            enable_truncate: true,
            udp_answer_limit: 5,
            recursor_strategy: crate::dns::RecursorStrategy::Random,
            ..DnsConfig::default()
        };
        config.service_ttl.insert("web*", 9);
        config.soa.min_ttl_s = 30;
        let call = RelayCall::Dns {
            packet: vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1],
            transport: Transport::Tcp,
            config,
        };
        let decoded = decode_call(&encode_call(&call));
        assert_eq!(decoded, Ok(call.clone()));
        for outcome in [
            DnsOutcome::Reply(vec![0x12, 0x34, 0x84, 0x03]),
            DnsOutcome::Recurse,
            DnsOutcome::Drop,
        ] {
            let answer = RelayAnswer::Dns(outcome);
            assert_eq!(decode_answer(&encode_answer(&answer)), Ok(answer));
        }
        // A truncated call is an error, not a panic; a DNS answer is no HTTP response.
        let bytes = encode_call(&call);
        for cut in 0..bytes.len() {
            assert!(decode_call(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let as_http = to_api_response(RelayAnswer::Dns(DnsOutcome::Drop));
        assert_eq!(as_http.status, 500);
    }
}
