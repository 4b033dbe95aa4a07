//! The gossip routes, planned here and answered by the agent's gossip layer: `/v1/agent/members`,
//! `/v1/agent/join/:addr`, `/v1/agent/force-leave/:node`, `/v1/event/fire/:name`, `/v1/event/list`.

use super::params::{blocking, Blocking};
use super::router::method_not_allowed;
use super::{ApiRequest, ApiResponse, Method, Plan};
use base64::Engine;

/// What a gossip route asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GossipPlan {
    /// `GET /v1/agent/members` (`?wan`, `?segment`).
    Members {
        /// The WAN pool.
        wan: bool,
        /// `?pretty`.
        pretty: bool,
    },
    /// `PUT /v1/agent/join/:addr` (`?wan`).
    Join {
        /// The address as given (IP or IP:PORT).
        addr: String,
        /// The WAN pool.
        wan: bool,
    },
    /// `PUT /v1/agent/force-leave/:node` (`?prune`, `?wan`).
    ForceLeave {
        /// The member's name.
        node: String,
        /// Erase it at once.
        prune: bool,
        /// The WAN pool.
        wan: bool,
    },
    /// `PUT /v1/event/fire/:name` (`?node`, `?service`, `?tag` filters; the body is the payload).
    Fire {
        /// The event name.
        name: String,
        /// The payload (`None` when the body is empty).
        payload: Option<Vec<u8>>,
        /// `?node`.
        node_filter: String,
        /// `?service`.
        service_filter: String,
        /// `?tag`.
        tag_filter: String,
        /// `?pretty`.
        pretty: bool,
    },
    /// `/v1/operator/keyring`.
    Keyring {
        /// What to do.
        op: KeyringOp,
        /// `?local-only` (GET): this agent's keys, without asking the pool.
        local_only: bool,
        /// `?relay-factor` (accepted; answers come straight back).
        relay_factor: u8,
        /// `?pretty`.
        pretty: bool,
    },
    /// `GET /v1/event/list` (`?name`, blocking).
    List {
        /// `?name`.
        name: Option<String>,
        /// `?index` and `?wait`.
        blocking: Option<Blocking>,
        /// `?pretty`.
        pretty: bool,
    },
}

/// A keyring operation asked through `/v1/operator/keyring` (keys in base64, as given).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyringOp {
    /// `GET`: list the keys of every member.
    List,
    /// `POST`: install a key on every member.
    Install(String),
    /// `PUT`: make a key every member's primary.
    Use(String),
    /// `DELETE`: remove a key from every member.
    Remove(String),
}

/// The body of a keyring write.
#[derive(serde::Deserialize)]
struct KeyBody {
    #[serde(rename = "Key", default)]
    key: String,
}

/// Plans `/v1/operator/keyring`.
fn keyring(req: &ApiRequest) -> Result<GossipPlan, ApiResponse> {
    let relay_factor = match req.query.get("relay-factor") {
        None | Some("") => 0,
        Some(text) => text
            .parse::<u8>()
            .ok()
            .filter(|n| *n <= 5)
            .ok_or_else(|| ApiResponse::text(400, "Relay factor must be in range: [0, 5]"))?,
    };
    let local_only = req.query.has("local-only");
    let key = || -> Result<String, ApiResponse> {
        serde_json::from_slice::<KeyBody>(req.body)
            .map(|b| b.key)
            .map_err(|e| ApiResponse::text(400, format!("Request decode failed: {e}")))
    };
    let op = match req.method {
        Method::Get | Method::Head => KeyringOp::List,
        Method::Post => KeyringOp::Install(key()?),
        Method::Put => KeyringOp::Use(key()?),
        Method::Delete => KeyringOp::Remove(key()?),
        other => return Err(method_not_allowed(other)),
    };
    if local_only && op != KeyringOp::List {
        return Err(ApiResponse::text(
            400,
            "local-only can only be used with GET",
        ));
    }
    Ok(GossipPlan::Keyring {
        op,
        local_only,
        relay_factor,
        pretty: req.query.has("pretty"),
    })
}

/// Plans `rest` (the path after `/v1/`) when it is a gossip route.
pub fn plan(req: &ApiRequest, rest: &str) -> Option<Plan> {
    let wan = req.query.has("wan");
    let plan = if rest == "agent/members" {
        only(req, Method::Get)?;
        GossipPlan::Members {
            wan,
            pretty: req.query.has("pretty"),
        }
    } else if let Some(addr) = rest.strip_prefix("agent/join/") {
        only(req, Method::Put)?;
        GossipPlan::Join {
            addr: addr.to_string(),
            wan,
        }
    } else if let Some(node) = rest.strip_prefix("agent/force-leave/") {
        only(req, Method::Put)?;
        GossipPlan::ForceLeave {
            node: node.to_string(),
            prune: req.query.has("prune"),
            wan,
        }
    } else if let Some(name) = rest.strip_prefix("event/fire/") {
        only(req, Method::Put)?;
        fire(req, name)?
    } else if rest == "operator/keyring" {
        match keyring(req) {
            Ok(plan) => plan,
            Err(response) => return Some(Plan::Respond(response)),
        }
    } else if rest == "event/list" {
        only(req, Method::Get)?;
        GossipPlan::List {
            name: req
                .query
                .get("name")
                .filter(|n| !n.is_empty())
                .map(str::to_string),
            blocking: match blocking(&req.query) {
                Ok(b) => b,
                Err(response) => return Some(Plan::Respond(response)),
            },
            pretty: req.query.has("pretty"),
        }
    } else {
        return None;
    };
    Some(Plan::Gossip(plan))
}

/// `Some(())` when the method fits; a 405 plan is returned by the caller otherwise.
fn only(req: &ApiRequest, method: Method) -> Option<()> {
    let fits = req.method == method || (method == Method::Get && req.method == Method::Head);
    fits.then_some(())
}

fn fire(req: &ApiRequest, name: &str) -> Option<GossipPlan> {
    Some(GossipPlan::Fire {
        name: name.to_string(),
        payload: (!req.body.is_empty()).then(|| req.body.to_vec()),
        node_filter: req.query.get("node").unwrap_or_default().to_string(),
        service_filter: req.query.get("service").unwrap_or_default().to_string(),
        tag_filter: req.query.get("tag").unwrap_or_default().to_string(),
        pretty: req.query.has("pretty"),
    })
}

/// The 405 for a gossip route asked with another method; `None` when `rest` is not a gossip route.
pub fn wrong_method(req: &ApiRequest, rest: &str) -> Option<ApiResponse> {
    let known = rest == "agent/members"
        || rest == "event/list"
        || ["agent/join/", "agent/force-leave/", "event/fire/"]
            .iter()
            .any(|p| rest.starts_with(p));
    known.then(|| method_not_allowed(req.method))
}

/// An event payload as JSON shows it (base64).
pub fn payload_json(payload: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Query;

    fn run(method: Method, target: &str, body: &[u8]) -> Option<Plan> {
        let (path, raw) = target.split_once('?').unwrap_or((target, ""));
        let query = Query::parse(raw).unwrap();
        let req = ApiRequest {
            method,
            path,
            query,
            token: None,
            body,
        };
        plan(&req, path.strip_prefix("/v1/").unwrap())
    }

    #[test]
    fn gossip_routes_plan_their_parameters() {
        let Some(Plan::Gossip(GossipPlan::Members { wan: true, .. })) =
            run(Method::Get, "/v1/agent/members?wan=1", b"")
        else {
            panic!("members");
        };
        assert_eq!(
            run(Method::Put, "/v1/agent/force-leave/n1?prune", b"").map(|p| format!("{p:?}")),
            Some(format!(
                "{:?}",
                Plan::Gossip(GossipPlan::ForceLeave {
                    node: "n1".into(),
                    prune: true,
                    wan: false
                })
            ))
        );
        let Some(Plan::Gossip(GossipPlan::Fire {
            name,
            payload,
            service_filter,
            ..
        })) = run(Method::Put, "/v1/event/fire/deploy?service=web", b"v2")
        else {
            panic!("fire");
        };
        assert_eq!((name.as_str(), payload), ("deploy", Some(b"v2".to_vec())));
        assert_eq!(service_filter, "web");
        assert!(run(Method::Get, "/v1/agent/join/1.2.3.4", b"").is_none());
        assert!(matches!(
            run(Method::Get, "/v1/event/list?wait=x", b""),
            Some(Plan::Respond(r)) if r.status == 400
        ));
        assert_eq!(payload_json(b"hi"), "aGk=");
    }
}
