//! The gossip routes' answers ([`GossipPlan`]), on any shard: members from the published list, user events
//! from the event buffer, and join, force-leave and fire through the pool owner's mailbox.

use super::events::{validate, UserEvent};
use super::{GossipHub, GossipReply, GossipRequest, KeyringSummary, PoolHub};
use crate::agent::membership::MemberView;
use crate::api::gossip::GossipPlan;
use crate::api::gossip::KeyringOp;
use crate::api::ApiResponse;
use crate::gossip::key_query::KeyOp;
use base64::Engine;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// How often a blocking `/v1/event/list` looks for a new event.
pub const EVENT_WAIT_POLL_MS: u64 = 50;

/// One member as `/v1/agent/members` shows it.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct MemberJson<'a> {
    name: &'a str,
    addr: String,
    port: u16,
    tags: &'a std::collections::BTreeMap<String, String>,
    status: u8,
    protocol_min: u8,
    protocol_max: u8,
    protocol_cur: u8,
    delegate_min: u8,
    delegate_max: u8,
    delegate_cur: u8,
}

impl<'a> MemberJson<'a> {
    fn new(m: &'a MemberView) -> MemberJson<'a> {
        MemberJson {
            name: &m.name,
            addr: m.addr.ip().to_string(),
            port: m.addr.port(),
            tags: &m.tags,
            status: m.state.code(),
            protocol_min: m.vsn[0],
            protocol_max: m.vsn[1],
            protocol_cur: m.vsn[2],
            delegate_min: m.vsn[3],
            delegate_max: m.vsn[4],
            delegate_cur: m.vsn[5],
        }
    }
}

fn json<T: Serialize + ?Sized>(value: &T, pretty: bool) -> ApiResponse {
    let body = if pretty {
        serde_json::to_vec_pretty(value)
    } else {
        serde_json::to_vec(value)
    };
    match body {
        Ok(body) => ApiResponse::json(200, body),
        Err(e) => ApiResponse::text(500, format!("cannot encode the answer: {e}")),
    }
}

/// Answers a gossip route. `new_id` is a fresh UUID (a fired event's ID).
pub async fn answer(
    hub: &GossipHub,
    plan: GossipPlan,
    new_id: String,
    datacenter: &str,
) -> ApiResponse {
    let wan = match &plan {
        GossipPlan::Members { wan, .. }
        | GossipPlan::Join { wan, .. }
        | GossipPlan::ForceLeave { wan, .. } => *wan,
        _ => false,
    };
    let Some(pool) = hub.pool(wan) else {
        return ApiResponse::text(500, "WAN gossip is only available on servers");
    };
    match plan {
        GossipPlan::Members { pretty, .. } => {
            let members = pool.membership.members();
            let list: Vec<MemberJson> = members.iter().map(MemberJson::new).collect();
            json(&list, pretty)
        }
        GossipPlan::Join { addr, wan } => join(pool, &addr, wan).await,
        GossipPlan::ForceLeave { node, prune, .. } => force_leave(pool, node, prune).await,
        GossipPlan::Fire {
            name,
            payload,
            node_filter,
            service_filter,
            tag_filter,
            pretty,
        } => {
            let event = UserEvent {
                id: new_id,
                name,
                payload,
                node_filter,
                service_filter,
                tag_filter,
                version: 1,
                ltime: 0,
            };
            fire(pool, event, datacenter, pretty).await
        }
        GossipPlan::List {
            name,
            blocking,
            pretty,
        } => list(pool, name.as_deref(), blocking, pretty).await,
        GossipPlan::Keyring {
            op,
            local_only,
            pretty,
            ..
        } => keyring(hub, op, local_only, datacenter, pretty).await,
    }
}

/// One pool's keyring as `/v1/operator/keyring` lists it.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct KeyringJson<'a> {
    #[serde(rename = "WAN")]
    wan: bool,
    datacenter: &'a str,
    segment: &'a str,
    partition: &'a str,
    keys: BTreeMap<String, usize>,
    primary_keys: BTreeMap<String, usize>,
    num_nodes: usize,
    messages: BTreeMap<String, String>,
}

/// `/v1/operator/keyring`: a serf key query in every pool of this agent (LAN, and WAN on a server).
async fn keyring(
    hub: &GossipHub,
    op: KeyringOp,
    local_only: bool,
    datacenter: &str,
    pretty: bool,
) -> ApiResponse {
    let engine = &base64::engine::general_purpose::STANDARD;
    let decode = |key: &str| {
        engine
            .decode(key.trim())
            .map_err(|e| ApiResponse::text(400, format!("Invalid key: {e}")))
    };
    let key_op = match &op {
        KeyringOp::List => KeyOp::List,
        KeyringOp::Install(k) => match decode(k) {
            Ok(k) => KeyOp::Install(k),
            Err(r) => return r,
        },
        KeyringOp::Use(k) => match decode(k) {
            Ok(k) => KeyOp::Use(k),
            Err(r) => return r,
        },
        KeyringOp::Remove(k) => match decode(k) {
            Ok(k) => KeyOp::Remove(k),
            Err(r) => return r,
        },
    };
    // WAN first, as Consul lists them.
    let pools: Vec<(bool, &PoolHub)> = hub
        .wan
        .as_deref()
        .map(|w| (true, w))
        .into_iter()
        .chain(std::iter::once((false, hub.lan.as_ref())))
        .collect();
    let mut listed = Vec::new();
    for (wan, pool) in pools {
        let request = if local_only {
            GossipRequest::ListKeys
        } else {
            GossipRequest::Keyring(key_op.clone())
        };
        let summary = match pool.request(request).await {
            GossipReply::Keyring(summary) => summary,
            GossipReply::Keys(keys) => local_summary(keys),
            GossipReply::Failed(why) => return ApiResponse::text(500, why),
            GossipReply::Done(_) => return ApiResponse::text(500, "unexpected answer"),
        };
        if summary.num_err > 0 {
            let mut text = format!(
                "{}/{} nodes reported failure",
                summary.num_err, summary.num_nodes
            );
            for (node, message) in &summary.messages {
                text.push_str(&format!("\n{node}: {message}"));
            }
            return ApiResponse::text(500, text);
        }
        listed.push(KeyringJson {
            wan,
            datacenter,
            segment: "",
            partition: "",
            keys: summary.keys,
            primary_keys: summary.primary_keys,
            num_nodes: summary.num_nodes,
            messages: summary.messages,
        });
    }
    match op {
        KeyringOp::List => json(&listed, pretty),
        _ => ApiResponse::empty(),
    }
}

/// This agent's own keys as a one-member summary (`?local-only`).
fn local_summary(keys: Vec<String>) -> KeyringSummary {
    KeyringSummary {
        num_nodes: 1,
        num_resp: 1,
        primary_keys: keys.first().map(|k| (k.clone(), 1)).into_iter().collect(),
        keys: keys.into_iter().map(|k| (k, 1)).collect(),
        ..KeyringSummary::default()
    }
}

async fn join(pool: &PoolHub, addr: &str, wan: bool) -> ApiResponse {
    let default_port = if wan { 8302 } else { 8301 };
    let parsed = addr.parse::<SocketAddr>().ok().or_else(|| {
        addr.trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, default_port))
    });
    let Some(target) = parsed else {
        return ApiResponse::text(
            500,
            format!("1 error occurred:\n\t* Failed to resolve {addr}: not an IP address\n\n"),
        );
    };
    match pool.request(GossipRequest::Join(vec![target])).await {
        GossipReply::Done(_) => ApiResponse::empty(),
        GossipReply::Failed(why) => ApiResponse::text(
            500,
            format!("1 error occurred:\n\t* Failed to join {target}: {why}\n\n"),
        ),
        _ => ApiResponse::text(500, "unexpected answer"),
    }
}

async fn force_leave(pool: &PoolHub, node: String, prune: bool) -> ApiResponse {
    let members = pool.membership.members();
    if !members.iter().any(|m| m.name == node) {
        return ApiResponse::text(500, format!("agent: No node found with name '{node}'"));
    }
    match pool
        .request(GossipRequest::ForceLeave { node, prune })
        .await
    {
        GossipReply::Done(_) => ApiResponse::empty(),
        GossipReply::Failed(why) => ApiResponse::text(500, why),
        _ => ApiResponse::text(500, "unexpected answer"),
    }
}

async fn fire(pool: &PoolHub, event: UserEvent, datacenter: &str, pretty: bool) -> ApiResponse {
    if event.name.starts_with('_') {
        return ApiResponse::text(400, "User event names starting with '_' are reserved");
    }
    if let Err(why) = validate(&event) {
        return ApiResponse::text(400, why);
    }
    let _ = datacenter;
    let (name, payload) = event.to_serf();
    match pool
        .request(GossipRequest::UserEvent { name, payload })
        .await
    {
        GossipReply::Done(_) => json(&event, pretty),
        GossipReply::Failed(why) => ApiResponse::text(500, why),
        _ => ApiResponse::text(500, "unexpected answer"),
    }
}

async fn list(
    pool: &PoolHub,
    name: Option<&str>,
    blocking: Option<crate::api::Blocking>,
    pretty: bool,
) -> ApiResponse {
    let deadline = blocking.map(|b| Instant::now() + Duration::from_millis(b.wait_ms));
    loop {
        let events = pool.events.lock().list(name);
        let index = events.last().map_or(0, UserEvent::index);
        let waiting = blocking.is_some_and(|b| b.index == index);
        if !waiting || deadline.is_some_and(|d| Instant::now() >= d) {
            let mut response = json(&events, pretty);
            response
                .headers
                .push(("X-Consul-Index", index.max(1).to_string()));
            return response;
        }
        glommio::timer::sleep(Duration::from_millis(EVENT_WAIT_POLL_MS)).await;
    }
}
