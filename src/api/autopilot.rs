//! `/v1/operator/autopilot/{configuration,health,state}`: the replicated autopilot configuration (read and
//! replaced, with `?cas=`), and the leader's view of its servers' health ([`AutopilotView`], computed on the
//! leader by `crate::agent::autopilot` and carried here as plain data).
//!
//! Consul's shapes: the configuration prints durations as Go durations; health answers `429` when the
//! cluster is unhealthy; state keys servers by ID and adds `Status`, `NodeType` and `Meta`.

use super::duration::{civil_from_days, format_go_duration_ms, parse_go_duration};
use super::json;
use super::params;
use super::{
    Answer, ApiRequest, ApiResponse, Method, OperatorPlan, Plan, ReadPlan, ReadQuery, Render,
    WritePlan,
};
use crate::fsm::{AutopilotConfig, Command, State};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// What Consul answers while the leader has not stored a configuration yet.
pub const NOT_INITIALIZED: &str = "autopilot config not initialized yet";

/// The autopilot state the leader computed: cluster health and one entry per server of the Raft
/// configuration, in configuration order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutopilotView {
    /// Every server is healthy.
    pub healthy: bool,
    /// Healthy voters beyond a quorum: how many may fail without losing it.
    pub failure_tolerance: u64,
    /// The leader's server ID (16 hex digits).
    pub leader: String,
    /// The voters' IDs.
    pub voters: Vec<String>,
    /// The servers.
    pub servers: Vec<ServerHealthView>,
}

/// One server's health, as autopilot sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerHealthView {
    /// Its server ID (16 hex digits).
    pub id: String,
    /// Its node name.
    pub name: String,
    /// Its server RPC address.
    pub address: String,
    /// Its gossip status (`alive`, `leaving`, `left`, `failed`, `none`).
    pub serf_status: String,
    /// Its build version.
    pub version: String,
    /// It leads.
    pub leader: bool,
    /// It votes.
    pub voter: bool,
    /// Since its last contact with the leader (0 for the leader).
    pub last_contact_ms: u64,
    /// The term of its last log entry.
    pub last_term: u64,
    /// Its last log index.
    pub last_index: u64,
    /// Alive, in contact and caught up.
    pub healthy: bool,
    /// When its health last changed (wall-clock ms).
    pub stable_since_ms: u64,
    /// Its catalog node's metadata, when the catalog has the node.
    pub meta: Option<BTreeMap<String, String>>,
}

impl ServerHealthView {
    /// Consul's `Status` in the state endpoint: `leader`, `voter` or `non-voter`.
    pub fn status(&self) -> &'static str {
        match (self.leader, self.voter) {
            (true, _) => "leader",
            (false, true) => "voter",
            (false, false) => "non-voter",
        }
    }
}

/// Plans `/v1/operator/autopilot/<rest>`.
pub fn plan(req: &ApiRequest, rest: &str) -> Plan {
    let pretty = req.query.has("pretty");
    match (rest, req.method) {
        ("configuration", Method::Get | Method::Head) => match params::consistency(&req.query) {
            Ok(consistency) => Plan::Read(ReadPlan {
                consistency,
                blocking: None,
                query: ReadQuery::AutopilotConfiguration,
                pretty,
            }),
            Err(response) => Plan::Respond(response),
        },
        ("configuration", Method::Put) => match plan_set(req) {
            Ok(command) => Plan::Write(WritePlan {
                command,
                render: Render::Bool,
                pretty,
            }),
            Err(response) => Plan::Respond(response),
        },
        ("health", Method::Get | Method::Head) => {
            Plan::Operator(OperatorPlan::AutopilotHealth { pretty })
        }
        ("state", Method::Get | Method::Head) => {
            Plan::Operator(OperatorPlan::AutopilotState { pretty })
        }
        ("configuration" | "health" | "state", method) => {
            Plan::Respond(super::router::method_not_allowed(method))
        }
        _ => Plan::Respond(super::router::not_found()),
    }
}

/// The command a `PUT` asks for, or Consul's `400`.
fn plan_set(req: &ApiRequest) -> Result<Command, ApiResponse> {
    let config = parse_config(req.body)
        .map_err(|e| ApiResponse::text(400, format!("Error parsing autopilot config: {e}")))?;
    let cas = match req.query.get("cas") {
        None => None,
        Some(text) => {
            let cas = text.parse::<u64>().map_err(|_| {
                ApiResponse::text(
                    400,
                    format!(
                        "Error parsing cas value: strconv.ParseUint: parsing {text:?}: invalid syntax"
                    ),
                )
            })?;
            Some(cas)
        }
    };
    Ok(Command::AutopilotSet { config, cas })
}

/// Decodes a configuration body the way Consul's `api.AutopilotConfiguration` does: keys match without
/// regard to case, unknown keys are ignored, missing ones are zero, durations are Go duration strings or
/// numbers of nanoseconds.
pub fn parse_config(body: &[u8]) -> Result<AutopilotConfig, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("EOF".to_string());
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let Value::Object(object) = value else {
        return Err(format!(
            "json: cannot unmarshal {} into Go value of type api.AutopilotConfiguration",
            kind(&value)
        ));
    };
    Ok(AutopilotConfig {
        cleanup_dead_servers: bool_field(&object, "CleanupDeadServers")?,
        last_contact_threshold_ms: duration_field(&object, "LastContactThreshold")?,
        max_trailing_logs: u64_field(&object, "MaxTrailingLogs", "uint64")?,
        min_quorum: u64_field(&object, "MinQuorum", "uint")?,
        server_stabilization_time_ms: duration_field(&object, "ServerStabilizationTime")?,
        redundancy_zone_tag: string_field(&object, "RedundancyZoneTag")?,
        disable_upgrade_migration: bool_field(&object, "DisableUpgradeMigration")?,
        upgrade_version_tag: string_field(&object, "UpgradeVersionTag")?,
        create_index: 0,
        modify_index: 0,
    })
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_error(name: &str, want: &str, got: &Value) -> String {
    format!(
        "json: cannot unmarshal {} into Go struct field AutopilotConfiguration.{name} of type {want}",
        kind(got)
    )
}

fn bool_field(object: &Map<String, Value>, name: &str) -> Result<bool, String> {
    match json::field(object, name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(type_error(name, "bool", other)),
    }
}

fn u64_field(object: &Map<String, Value>, name: &str, want: &str) -> Result<u64, String> {
    match json::field(object, name) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64().unwrap_or(0)),
        Some(other) => Err(type_error(name, want, other)),
    }
}

fn string_field(object: &Map<String, Value>, name: &str) -> Result<String, String> {
    match json::field(object, name) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(type_error(name, "string", other)),
    }
}

/// A `ReadableDuration`: a Go duration string, or a number of nanoseconds; negative is refused.
fn duration_field(object: &Map<String, Value>, name: &str) -> Result<u64, String> {
    let ns: i64 = match json::field(object, name) {
        None | Some(Value::Null) => 0,
        Some(Value::String(text)) => parse_go_duration(text)?,
        Some(Value::Number(n)) => n.as_f64().map_or(0, |f| f as i64),
        Some(other) => return Err(type_error(name, "api.ReadableDuration", other)),
    };
    u64::try_from(ns / 1_000_000).map_err(|_| format!("{name}: negative duration"))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ConfigJson<'a> {
    cleanup_dead_servers: bool,
    last_contact_threshold: String,
    max_trailing_logs: u64,
    min_quorum: u64,
    server_stabilization_time: String,
    redundancy_zone_tag: &'a str,
    disable_upgrade_migration: bool,
    upgrade_version_tag: &'a str,
    create_index: u64,
    modify_index: u64,
}

/// `GET /v1/operator/autopilot/configuration`.
pub fn answer_configuration(state: &State, pretty: bool) -> Answer {
    let Some(c) = state.autopilot_config() else {
        return Answer {
            index: state.applied_index(),
            response: ApiResponse::text(500, NOT_INITIALIZED),
        };
    };
    let body = ConfigJson {
        cleanup_dead_servers: c.cleanup_dead_servers,
        last_contact_threshold: format_go_duration_ms(c.last_contact_threshold_ms),
        max_trailing_logs: c.max_trailing_logs,
        min_quorum: c.min_quorum,
        server_stabilization_time: format_go_duration_ms(c.server_stabilization_time_ms),
        redundancy_zone_tag: &c.redundancy_zone_tag,
        disable_upgrade_migration: c.disable_upgrade_migration,
        upgrade_version_tag: &c.upgrade_version_tag,
        create_index: c.create_index,
        modify_index: c.modify_index,
    };
    Answer {
        index: c.modify_index,
        response: json::ok(&body, pretty),
    }
}

/// `2020-11-06T14:51:00Z` for wall-clock `ms`; with `fraction`, Go's RFC 3339 with nanoseconds (trailing
/// zeros dropped), else rounded to the second as Consul's health endpoint does.
pub fn rfc3339(ms: u64, fraction: bool) -> String {
    let ms = if fraction {
        ms
    } else {
        (ms + 500) / 1_000 * 1_000
    };
    let secs = ms / 1_000;
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let of_day = secs % 86_400;
    let (h, m, s) = (of_day / 3_600, of_day % 3_600 / 60, of_day % 60);
    let frac = match ms % 1_000 {
        0 => String::new(),
        f => format!(".{}", format!("{f:03}").trim_end_matches('0')),
    };
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}{frac}Z")
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct HealthJson<'a> {
    healthy: bool,
    failure_tolerance: u64,
    servers: Vec<ServerJson<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ServerJson<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    name: &'a str,
    address: &'a str,
    serf_status: &'a str,
    version: &'a str,
    leader: bool,
    last_contact: String,
    last_term: u64,
    last_index: u64,
    healthy: bool,
    voter: bool,
    stable_since: String,
}

/// `GET /v1/operator/autopilot/health`: `429` when the cluster is unhealthy, as Consul answers.
pub fn render_health(view: &AutopilotView, pretty: bool) -> ApiResponse {
    let servers = view
        .servers
        .iter()
        .map(|s| ServerJson {
            id: &s.id,
            name: &s.name,
            address: &s.address,
            serf_status: &s.serf_status,
            version: &s.version,
            leader: s.leader,
            last_contact: format_go_duration_ms(s.last_contact_ms),
            last_term: s.last_term,
            last_index: s.last_index,
            healthy: s.healthy,
            voter: s.voter,
            stable_since: rfc3339(s.stable_since_ms, false),
        })
        .collect();
    let body = HealthJson {
        healthy: view.healthy,
        failure_tolerance: view.failure_tolerance,
        servers,
    };
    let mut response = json::ok(&body, pretty);
    if !view.healthy {
        response.status = 429;
    }
    response
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct StateJson<'a> {
    healthy: bool,
    failure_tolerance: u64,
    optimistic_failure_tolerance: u64,
    servers: BTreeMap<&'a str, StateServerJson<'a>>,
    leader: &'a str,
    voters: &'a [String],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct StateServerJson<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    name: &'a str,
    address: &'a str,
    node_status: &'a str,
    version: &'a str,
    last_contact: String,
    last_term: u64,
    last_index: u64,
    healthy: bool,
    stable_since: String,
    status: &'static str,
    meta: &'a Option<BTreeMap<String, String>>,
    node_type: &'static str,
}

/// `GET /v1/operator/autopilot/state`. CE has no redundancy zones, so the optimistic failure tolerance is
/// the failure tolerance.
pub fn render_state(view: &AutopilotView, pretty: bool) -> ApiResponse {
    let servers = view
        .servers
        .iter()
        .map(|s| {
            let json = StateServerJson {
                id: &s.id,
                name: &s.name,
                address: &s.address,
                node_status: &s.serf_status,
                version: &s.version,
                last_contact: format_go_duration_ms(s.last_contact_ms),
                last_term: s.last_term,
                last_index: s.last_index,
                healthy: s.healthy,
                stable_since: rfc3339(s.stable_since_ms, true),
                status: s.status(),
                meta: &s.meta,
                node_type: "voter",
            };
            (s.id.as_str(), json)
        })
        .collect();
    let body = StateJson {
        healthy: view.healthy,
        failure_tolerance: view.failure_tolerance,
        optimistic_failure_tolerance: view.failure_tolerance,
        servers,
        leader: &view.leader,
        voters: &view.voters,
    };
    json::ok(&body, pretty)
}

/// Encodes a view for the trip from the leader to the server that was asked (MessagePack).
pub fn encode_view(view: &AutopilotView) -> Vec<u8> {
    rmp_serde::to_vec(view).unwrap_or_default()
}

/// Decodes [`encode_view`] bytes.
pub fn decode_view(bytes: &[u8]) -> Result<AutopilotView, String> {
    rmp_serde::from_slice(bytes).map_err(|e| format!("bad autopilot state: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::tests::{body_text, plan_of, respond};
    use crate::fsm::Fsm;

    fn set_command(target: &str, body: &str) -> (AutopilotConfig, Option<u64>) {
        match plan_of(Method::Put, target, body.as_bytes()) {
            Plan::Write(WritePlan {
                command: Command::AutopilotSet { config, cas },
                render: Render::Bool,
                ..
            }) => (config, cas),
            other => panic!("expected an autopilot write, got {other:?}"),
        }
    }

    #[test]
    fn put_reads_consuls_body_and_cas() {
        let body = r#"{"cleanupdeadservers": true, "LastContactThreshold": "1s",
            "MaxTrailingLogs": 7, "MinQuorum": 3, "ServerStabilizationTime": 2000000000,
            "RedundancyZoneTag": "zone", "Unknown": 1}"#;
        let (config, cas) = set_command("/v1/operator/autopilot/configuration?cas=5", body);
        assert_eq!(cas, Some(5));
        assert!(config.cleanup_dead_servers && !config.disable_upgrade_migration);
        assert_eq!(config.last_contact_threshold_ms, 1_000);
        assert_eq!(config.server_stabilization_time_ms, 2_000);
        assert_eq!((config.max_trailing_logs, config.min_quorum), (7, 3));
        assert_eq!(config.redundancy_zone_tag, "zone");
        let (config, cas) = set_command("/v1/operator/autopilot/configuration", "{}");
        assert_eq!(cas, None);
        assert!(!config.cleanup_dead_servers, "missing fields are zero");
        let bad = |target: &str, body: &str| {
            let response = respond(plan_of(Method::Put, target, body.as_bytes()));
            assert_eq!(response.status, 400);
            body_text(&response)
        };
        let path = "/v1/operator/autopilot/configuration";
        assert_eq!(
            bad(&format!("{path}?cas=x"), "{}"),
            "Error parsing cas value: strconv.ParseUint: parsing \"x\": invalid syntax"
        );
        assert_eq!(bad(path, ""), "Error parsing autopilot config: EOF");
        assert_eq!(
            bad(path, r#"{"MaxTrailingLogs": "many"}"#),
            "Error parsing autopilot config: json: cannot unmarshal string into Go struct field \
             AutopilotConfiguration.MaxTrailingLogs of type uint64"
        );
        assert_eq!(
            bad(path, r#"{"LastContactThreshold": "soon"}"#),
            "Error parsing autopilot config: time: invalid duration \"soon\""
        );
        let other = respond(plan_of(Method::Delete, path, b""));
        assert_eq!(other.status, 405);
        let missing = respond(plan_of(Method::Get, "/v1/operator/autopilot/nope", b""));
        assert_eq!(missing.status, 404);
    }

    #[test]
    fn get_answers_the_stored_configuration_or_consuls_error() {
        let mut fsm = Fsm::new();
        let answer = answer_configuration(&fsm.state(), false);
        assert_eq!(answer.response.status, 500);
        assert_eq!(body_text(&answer.response), NOT_INITIALIZED);
        let command = Command::AutopilotSet {
            config: AutopilotConfig::default(),
            cas: Some(0),
        };
        fsm.apply(4, &command);
        let answer = answer_configuration(&fsm.state(), false);
        assert_eq!(answer.index, 4);
        assert_eq!(
            body_text(&answer.response),
            r#"{"CleanupDeadServers":true,"LastContactThreshold":"200ms","MaxTrailingLogs":250,"MinQuorum":0,"ServerStabilizationTime":"10s","RedundancyZoneTag":"","DisableUpgradeMigration":false,"UpgradeVersionTag":"","CreateIndex":4,"ModifyIndex":4}"#
        );
        assert!(matches!(
            plan_of(Method::Get, "/v1/operator/autopilot/health", b""),
            Plan::Operator(OperatorPlan::AutopilotHealth { pretty: false })
        ));
    }

    fn view(healthy: bool) -> AutopilotView {
        AutopilotView {
            healthy,
            failure_tolerance: 0,
            leader: "00000000000000aa".to_string(),
            voters: vec!["00000000000000aa".to_string()],
            servers: vec![ServerHealthView {
                id: "00000000000000aa".to_string(),
                name: "n1".to_string(),
                address: "127.0.0.1:8300".to_string(),
                serf_status: "alive".to_string(),
                version: "0.1.0".to_string(),
                leader: true,
                voter: true,
                last_contact_ms: 0,
                last_term: 2,
                last_index: 9,
                healthy,
                stable_since_ms: 1_604_674_260_400,
                meta: None,
            }],
        }
    }

    #[test]
    fn health_and_state_render_consuls_shapes() {
        let view = view(true);
        assert_eq!(decode_view(&encode_view(&view)).unwrap(), view);
        let health = OperatorPlan::AutopilotHealth { pretty: false }.done(&encode_view(&view));
        assert_eq!(health.status, 200);
        assert_eq!(
            body_text(&health),
            r#"{"Healthy":true,"FailureTolerance":0,"Servers":[{"ID":"00000000000000aa","Name":"n1","Address":"127.0.0.1:8300","SerfStatus":"alive","Version":"0.1.0","Leader":true,"LastContact":"0s","LastTerm":2,"LastIndex":9,"Healthy":true,"Voter":true,"StableSince":"2020-11-06T14:51:00Z"}]}"#
        );
        let unhealthy = render_health(&super::tests::view(false), false);
        assert_eq!(unhealthy.status, 429);
        let state = render_state(&view, false);
        assert_eq!(
            body_text(&state),
            r#"{"Healthy":true,"FailureTolerance":0,"OptimisticFailureTolerance":0,"Servers":{"00000000000000aa":{"ID":"00000000000000aa","Name":"n1","Address":"127.0.0.1:8300","NodeStatus":"alive","Version":"0.1.0","LastContact":"0s","LastTerm":2,"LastIndex":9,"Healthy":true,"StableSince":"2020-11-06T14:51:00.4Z","Status":"leader","Meta":null,"NodeType":"voter"}},"Leader":"00000000000000aa","Voters":["00000000000000aa"]}"#
        );
        assert_eq!(rfc3339(0, false), "1970-01-01T00:00:00Z");
    }
}
