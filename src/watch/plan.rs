//! What a watch asks for: the parameters of one watch type, checked as Consul checks them, and the
//! request for one round of the blocking-query loop.

use crate::cli::http_client::{encode_path, Request};
use crate::cli::kv::kv_path;
use serde_json::Value;

/// The watch types, in the order Consul documents them.
pub const WATCH_TYPES: &[&str] = &[
    "key",
    "keyprefix",
    "services",
    "nodes",
    "service",
    "checks",
    "event",
];

/// The type-specific parameters of a watch, as given (from the CLI's flags or a config watch).
/// `None` (or an empty tag list) is "not given".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params {
    /// `type`.
    pub kind: String,
    /// `key` (type `key`).
    pub key: Option<String>,
    /// `prefix` (type `keyprefix`).
    pub prefix: Option<String>,
    /// `service` (types `service` and `checks`).
    pub service: Option<String>,
    /// `tag` (type `service`): one or more tags every instance must have.
    pub tags: Vec<String>,
    /// `passingonly` (type `service`).
    pub passing_only: Option<bool>,
    /// `state` (type `checks`).
    pub state: Option<String>,
    /// `name` (type `event`).
    pub name: Option<String>,
    /// `stale` (every type but `event`): reads may come from any server.
    pub stale: Option<bool>,
}

/// What is watched: the request for one round and how its answer becomes the handler's data.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The watch type.
    pub kind: String,
    /// The request of one round (without `index`/`wait`).
    pub request: Request,
    /// A `key` watch hands over the one entry, not the list.
    single_key: bool,
    /// Whether 404 means "nothing there" (KV) rather than a missing endpoint.
    pub not_found_is_empty: bool,
}

/// Parses a boolean as Go's `strconv.ParseBool` does.
pub fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Checks the type and that only its parameters are given (`Unsupported watch type: x`,
/// `Invalid parameters: [key state]`), before any value is looked at.
///
/// The parameters each watch type takes live in [`parameters_of`].
pub fn check_parameters(params: &Params) -> Result<(), String> {
    if params.kind.is_empty() {
        return Err("Watch type must be specified".to_string());
    }
    let allowed = parameters_of(&params.kind)?;
    let given = [
        ("key", params.key.is_some()),
        ("prefix", params.prefix.is_some()),
        ("service", params.service.is_some()),
        ("tag", !params.tags.is_empty()),
        ("passingonly", params.passing_only.is_some()),
        ("state", params.state.is_some()),
        ("name", params.name.is_some()),
        ("stale", params.stale.is_some()),
    ];
    let extra: Vec<&str> = given
        .iter()
        .filter(|(name, given)| *given && !allowed.contains(name))
        .map(|(name, _)| *name)
        .collect();
    if extra.is_empty() {
        Ok(())
    } else {
        Err(format!("Invalid parameters: [{}]", extra.join(" ")))
    }
}

impl Plan {
    /// Builds the plan, with Consul's messages for an unknown type and missing or extra parameters.
    pub fn new(params: &Params) -> Result<Plan, String> {
        check_parameters(params)?;
        let kind = params.kind.as_str();
        let present = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
        let mut request = match kind {
            "key" => {
                let key = present(&params.key).ok_or("Must specify a single key to watch")?;
                Request::new("GET", kv_path(&key))
            }
            "keyprefix" => {
                let prefix =
                    present(&params.prefix).ok_or("Must specify a single prefix to watch")?;
                Request::new("GET", kv_path(&prefix)).flag("recurse")
            }
            "services" => Request::new("GET", "/v1/catalog/services"),
            "nodes" => Request::new("GET", "/v1/catalog/nodes"),
            "service" => service_request(
                present(&params.service),
                &params.tags,
                params.passing_only.unwrap_or(false),
            )?,
            "checks" => checks_request(present(&params.service), present(&params.state))?,
            _ => {
                let request = Request::new("GET", "/v1/event/list");
                match present(&params.name) {
                    Some(name) => request.param("name", name),
                    None => request,
                }
            }
        };
        if params.stale == Some(true) {
            request = request.flag("stale");
        }
        Ok(Plan {
            single_key: kind == "key",
            not_found_is_empty: kind == "key" || kind == "keyprefix",
            kind: kind.to_string(),
            request,
        })
    }

    /// The data handed to the handler from one answer: the entry of a `key` watch (`null` when
    /// missing), else the answer as is.
    pub fn data_of(&self, answer: Value) -> Value {
        if self.single_key {
            return answer
                .as_array()
                .and_then(|entries| entries.first().cloned())
                .unwrap_or(Value::Null);
        }
        answer
    }
}

fn service_request(
    service: Option<String>,
    tags: &[String],
    passing: bool,
) -> Result<Request, String> {
    let service = service.ok_or("Must specify a single service to watch")?;
    let mut request = Request::new(
        "GET",
        format!("/v1/health/service/{}", encode_path(&service)),
    );
    for tag in tags {
        request = request.param("tag", tag.as_str());
    }
    if passing {
        request = request.flag("passing");
    }
    Ok(request)
}

fn checks_request(service: Option<String>, state: Option<String>) -> Result<Request, String> {
    match (service, state) {
        (Some(_), Some(_)) => Err("Cannot specify service and state".to_string()),
        (Some(service), None) => Ok(Request::new(
            "GET",
            format!("/v1/health/checks/{}", encode_path(&service)),
        )),
        (None, state) => Ok(Request::new(
            "GET",
            format!(
                "/v1/health/state/{}",
                encode_path(state.as_deref().unwrap_or("any"))
            ),
        )),
    }
}

/// The parameters a watch type takes (`Unsupported watch type: <kind>` for an unknown one).
pub fn parameters_of(kind: &str) -> Result<&'static [&'static str], String> {
    Ok(match kind {
        "key" => &["key", "stale"],
        "keyprefix" => &["prefix", "stale"],
        "services" | "nodes" => &["stale"],
        "service" => &["service", "tag", "passingonly", "stale"],
        "checks" => &["service", "state", "stale"],
        "event" => &["name"],
        other => return Err(format!("Unsupported watch type: {other}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(kind: &str) -> Params {
        Params {
            kind: kind.to_string(),
            ..Params::default()
        }
    }

    #[test]
    fn each_type_asks_its_endpoint() {
        let mut p = params("key");
        p.key = Some("a/b".into());
        assert_eq!(Plan::new(&p).expect("key").request.path, "/v1/kv/a/b");
        let mut p = params("service");
        p.service = Some("web".into());
        p.tags = vec!["a".into(), "b".into()];
        p.passing_only = Some(true);
        let plan = Plan::new(&p).expect("service");
        assert_eq!(plan.request.path, "/v1/health/service/web");
        assert_eq!(plan.request.query.len(), 3);
        let plan = Plan::new(&params("checks")).expect("checks");
        assert_eq!(plan.request.path, "/v1/health/state/any");
        let mut p = params("nodes");
        p.stale = Some(true);
        let plan = Plan::new(&p).expect("nodes");
        assert_eq!(plan.request.query, vec![("stale".to_string(), None)]);
    }

    #[test]
    fn wrong_parameters_are_named() {
        let mut p = params("nodes");
        p.key = Some("a".into());
        p.state = Some("passing".into());
        assert_eq!(
            Plan::new(&p).map(|_| ()),
            Err("Invalid parameters: [key state]".to_string())
        );
        assert_eq!(
            Plan::new(&params("")).map(|_| ()),
            Err("Watch type must be specified".to_string())
        );
        let mut p = params("event");
        p.stale = Some(false);
        assert!(Plan::new(&p).is_err());
    }

    #[test]
    fn a_key_watch_hands_over_one_entry() {
        let mut p = params("key");
        p.key = Some("k".into());
        let plan = Plan::new(&p).expect("plan");
        let entry = serde_json::json!({"Key": "k"});
        assert_eq!(plan.data_of(serde_json::json!([entry.clone()])), entry);
        assert_eq!(plan.data_of(Value::Null), Value::Null);
    }
}
