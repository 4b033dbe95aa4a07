//! The API layer without IO: plans for each route and parameter, answers from a real state, rendering.

use super::cluster::ClusterView;
use super::query::Query;
use super::*;
use crate::fsm::{Fsm, KvVerb, Outcome};

pub(super) fn ctx() -> Context {
    Context {
        node_name: "node1".to_string(),
        datacenter: "dc1".to_string(),
        session_ttl_min_ms: 10_000,
        kv_max_value_bytes: 16,
        txn_max_req_bytes: 65_536,
        now_ms: 1_000_000,
        new_id: "11111111-2222-3333-4444-555555555555".to_string(),
        agent: std::sync::Arc::new(AgentIdentity {
            node_id: "0b5e4a43-0000-4000-8000-000000000001".to_string(),
            address: "127.0.0.1".to_string(),
            server: true,
            version: "1.0.0".to_string(),
            serf_lan_port: 8301,
            ..AgentIdentity::default()
        }),
        other_datacenters: vec!["dc2".to_string()],
        stats: std::collections::BTreeMap::new(),
        server_names: std::collections::BTreeMap::new(),
    }
}

pub(super) fn plan_of(method: Method, target: &str, body: &[u8]) -> Plan {
    let (path, raw_query) = target.split_once('?').unwrap_or((target, ""));
    let req = ApiRequest {
        method,
        path,
        query: Query::parse(raw_query).expect("query"),
        token: None,
        body,
    };
    plan(&req, &ctx(), &ClusterView::default())
}

pub(super) fn respond(plan: Plan) -> ApiResponse {
    match plan {
        Plan::Respond(response) => response,
        other => panic!("expected an immediate response, got {other:?}"),
    }
}

pub(super) fn body_text(response: &ApiResponse) -> String {
    String::from_utf8_lossy(&response.body).into_owned()
}

fn kv_command(plan: Plan) -> crate::fsm::KvOp {
    match plan {
        Plan::Write(WritePlan {
            command: Command::Kv { op, .. },
            render: Render::Bool,
            ..
        }) => op,
        other => panic!("expected a KV write, got {other:?}"),
    }
}

fn state_with(commands: &[Command]) -> crate::fsm::State {
    let mut fsm = Fsm::new();
    for (at, command) in commands.iter().enumerate() {
        fsm.apply(at as u64 + 10, command);
    }
    fsm.state()
}

fn set(key: &str, value: &[u8]) -> Command {
    let mut op = KvOp::new(KvVerb::Set, key);
    op.value = value.to_vec();
    Command::Kv { now_ms: 0, op }
}

#[test]
fn kv_put_parameters_become_the_matching_verbs() {
    let op = kv_command(plan_of(Method::Put, "/v1/kv/a/b?flags=42", b"v"));
    assert_eq!(
        (op.verb, op.key.as_str(), op.flags, op.value.as_slice()),
        (KvVerb::Set, "a/b", 42, &b"v"[..])
    );
    let op = kv_command(plan_of(Method::Put, "/v1/kv/a?cas=0", b""));
    assert_eq!((op.verb, op.index), (KvVerb::Cas, 0));
    let op = kv_command(plan_of(Method::Put, "/v1/kv/a?acquire=s1", b""));
    assert_eq!((op.verb, op.session.as_str()), (KvVerb::Lock, "s1"));
    let op = kv_command(plan_of(Method::Put, "/v1/kv/a?release=s1", b""));
    assert_eq!(op.verb, KvVerb::Unlock);
    let op = kv_command(plan_of(Method::Delete, "/v1/kv/a?recurse", b""));
    assert_eq!(op.verb, KvVerb::DeleteTree);
    let op = kv_command(plan_of(Method::Delete, "/v1/kv/a?cas=7", b""));
    assert_eq!((op.verb, op.index), (KvVerb::DeleteCas, 7));
    let op = kv_command(plan_of(Method::Delete, "/v1/kv/a", b""));
    assert_eq!(op.verb, KvVerb::Delete);
}

#[test]
fn kv_bad_input_gets_consuls_status_and_text() {
    let r = respond(plan_of(Method::Put, "/v1/kv/", b"x"));
    assert_eq!(
        (r.status, body_text(&r).as_str()),
        (400, "Missing key name")
    );
    let r = respond(plan_of(Method::Put, "/v1/kv/a", &[b'x'; 17]));
    assert_eq!(r.status, 413);
    assert!(body_text(&r).starts_with("Request body(17 bytes) too large, max size: 16 bytes"));
    assert_eq!(
        respond(plan_of(Method::Put, "/v1/kv/a?flags=x", b"")).status,
        400
    );
    assert_eq!(
        respond(plan_of(Method::Put, "/v1/kv/a?cas=-1", b"")).status,
        400
    );
    assert_eq!(respond(plan_of(Method::Post, "/v1/kv/a", b"")).status, 405);
    assert_eq!(respond(plan_of(Method::Delete, "/v1/kv/", b"")).status, 400);
    assert_eq!(
        respond(plan_of(Method::Get, "/v1/nothing", b"")).status,
        404
    );
    assert_eq!(respond(plan_of(Method::Get, "/elsewhere", b"")).status, 404);
}

#[test]
fn blocking_and_consistency_parameters() {
    let read = |target: &str| match plan_of(Method::Get, target, b"") {
        Plan::Read(read) => read,
        other => panic!("expected a read, got {other:?}"),
    };
    assert_eq!(read("/v1/kv/a").blocking, None);
    assert_eq!(
        read("/v1/kv/a?index=0&wait=1s").blocking,
        None,
        "index 0 does not block"
    );
    assert_eq!(
        read("/v1/kv/a?index=5").blocking,
        Some(Blocking {
            index: 5,
            wait_ms: WAIT_MS_DEFAULT
        })
    );
    assert_eq!(
        read("/v1/kv/a?index=5&wait=120000ms")
            .blocking
            .unwrap()
            .wait_ms,
        120_000
    );
    assert_eq!(
        read("/v1/kv/a?index=5&wait=1.5s").blocking.unwrap().wait_ms,
        1_500
    );
    assert_eq!(
        read("/v1/kv/a?index=5&wait=1h").blocking.unwrap().wait_ms,
        WAIT_MS_MAX
    );
    assert_eq!(read("/v1/kv/a?stale").consistency, Consistency::Stale);
    assert_eq!(
        read("/v1/kv/a?consistent=").consistency,
        Consistency::Consistent
    );
    assert_eq!(read("/v1/kv/a").consistency, Consistency::Default);
    let r = respond(plan_of(Method::Get, "/v1/kv/a?index=5&wait=soon", b""));
    assert_eq!(
        (r.status, body_text(&r).as_str()),
        (400, "Invalid wait time")
    );
    let r = respond(plan_of(Method::Get, "/v1/kv/a?index=x", b""));
    assert_eq!((r.status, body_text(&r).as_str()), (400, "Invalid index"));
    let r = respond(plan_of(Method::Get, "/v1/kv/a?stale&consistent", b""));
    assert_eq!(r.status, 400);
    for sample in [0, 1, 12345, u64::MAX] {
        assert!(jitter_ms(160_000, sample) < 10_000);
    }
}

#[test]
fn kv_get_answers_entries_keys_and_raw_values() {
    let state = state_with(&[
        set("app/db", b"pg"),
        set("app/web/port", b"80"),
        set("other", b""),
    ]);
    let cluster = ClusterView::default();
    let get = |query: ReadQuery| query.answer(&state, &cluster, &ctx(), false);
    let kv = |key: &str, recurse, keys, separator: Option<&str>, raw| ReadQuery::Kv {
        key: key.to_string(),
        recurse,
        keys,
        separator: separator.map(String::from),
        raw,
    };
    let a = get(kv("app/db", false, false, None, false));
    assert_eq!(a.index, 10);
    assert_eq!(
        body_text(&a.response),
        r#"[{"LockIndex":0,"Key":"app/db","Flags":0,"Value":"cGc=","CreateIndex":10,"ModifyIndex":10}]"#
    );
    let a = get(kv("other", false, false, None, false));
    assert!(
        body_text(&a.response).contains(r#""Value":null"#),
        "an empty value is null"
    );
    let a = get(kv("app/db", false, false, None, true));
    assert_eq!(
        (a.response.body.as_slice(), a.response.content_type),
        (&b"pg"[..], Some("text/plain; charset=utf-8"))
    );
    let a = get(kv("missing", false, false, None, false));
    assert_eq!(
        (a.response.status, a.index),
        (404, 12),
        "absent: the table's index"
    );
    let a = get(kv("app/", true, false, None, false));
    assert_eq!((a.response.status, a.index), (200, 11));
    assert_eq!(body_text(&a.response).matches("\"Key\"").count(), 2);
    let a = get(kv("app/", false, true, Some("/"), false));
    assert_eq!(body_text(&a.response), r#"["app/db","app/web/"]"#);
    assert_eq!(
        get(kv("nope/", true, false, None, false)).response.status,
        404
    );
    assert_eq!(
        get(kv("nope/", false, true, None, false)).response.status,
        404
    );
}

#[test]
fn session_create_validates_like_consul() {
    let create = |body: &str| plan_of(Method::Put, "/v1/session/create", body.as_bytes());
    match create("") {
        Plan::Write(WritePlan {
            command: Command::SessionCreate { spec, now_ms },
            render: Render::SessionCreated,
            ..
        }) => {
            assert_eq!(now_ms, 1_000_000);
            assert_eq!(spec.node, "node1");
            assert_eq!(spec.node_checks, vec!["serfHealth".to_string()]);
            assert_eq!(spec.lock_delay_ms, crate::fsm::LOCK_DELAY_MS_DEFAULT);
            assert_eq!(spec.id, ctx().new_id);
            assert_eq!(spec.ttl_ms, 0);
        }
        other => panic!("expected a session create, got {other:?}"),
    }
    match create(r#"{"lock_delay": 5, "ttl": "30s", "Behavior": "delete", "NodeChecks": []}"#) {
        Plan::Write(WritePlan {
            command: Command::SessionCreate { spec, .. },
            ..
        }) => {
            assert_eq!(
                (spec.lock_delay_ms, spec.ttl_ms, spec.ttl.as_str()),
                (5_000, 30_000, "30s")
            );
            assert_eq!(spec.behavior, crate::fsm::Behavior::Delete);
            assert!(spec.node_checks.is_empty());
        }
        other => panic!("expected a session create, got {other:?}"),
    }
    let r = respond(create(r#"{"TTL":"5s"}"#));
    assert_eq!(
        (r.status, body_text(&r).as_str()),
        (
            500,
            "Invalid Session TTL '5000000000', must be between [10s=24h0m0s]"
        )
    );
    assert_eq!(respond(create(r#"{"TTL":"25h"}"#)).status, 500);
    assert_eq!(respond(create(r#"{"Behavior":"explode"}"#)).status, 500);
    let r = respond(create("{nope"));
    assert_eq!(r.status, 400);
    assert!(body_text(&r).starts_with("Request decode failed"));
    assert_eq!(respond(create(r#"{"LockDelay":"61s"}"#)).status, 400);
    assert_eq!(
        respond(plan_of(Method::Get, "/v1/session/create", b"")).status,
        405
    );
}

#[test]
fn session_renew_outcomes_render_as_consul() {
    let renew = Render::SessionRenewed("abc".to_string());
    let r = render_outcome(&renew, Outcome::SessionRenewed(None), false);
    assert_eq!(
        (r.status, body_text(&r).as_str()),
        (404, "Session id 'abc' not found")
    );
    let r = render_outcome(
        &Render::Bool,
        Outcome::Error("invalid session \"x\"".into()),
        false,
    );
    assert_eq!(
        (r.status, body_text(&r).as_str()),
        (500, "invalid session \"x\"")
    );
    let r = render_outcome(&Render::Bool, Outcome::Bool(false), false);
    assert_eq!(body_text(&r), "false");
}

#[test]
fn txn_plans_reads_writes_and_refusals() {
    let op = |verb: &str, key: &str| {
        format!(r#"{{"KV":{{"Verb":"{verb}","Key":"{key}","Value":"dg=="}}}}"#)
    };
    let body = format!("[{},{}]", op("get", "a"), op("check-not-exists", "b"));
    assert!(
        matches!(plan_of(Method::Put, "/v1/txn", body.as_bytes()), Plan::Read(ReadPlan { query: ReadQuery::Txn(ref ops), .. }) if ops.len() == 2)
    );
    let body = format!("[{},{}]", op("set", "a"), op("get", "a"));
    match plan_of(Method::Put, "/v1/txn", body.as_bytes()) {
        Plan::Write(WritePlan {
            command: Command::Txn { ops, .. },
            render: Render::Txn,
            ..
        }) => assert_eq!(
            (ops[0].verb, ops[0].value.as_slice()),
            (KvVerb::Set, &b"v"[..])
        ),
        other => panic!("expected a txn write, got {other:?}"),
    }
    let many = format!("[{}]", vec![op("get", "a"); 129].join(","));
    let r = respond(plan_of(Method::Put, "/v1/txn", many.as_bytes()));
    assert_eq!(
        (r.status, body_text(&r).as_str()),
        (413, "Transaction contains too many operations (129 > 128)")
    );
    let r = respond(plan_of(
        Method::Put,
        "/v1/txn",
        format!("[{}]", op("frobnicate", "a")).as_bytes(),
    ));
    assert_eq!(r.status, 409);
    assert_eq!(
        body_text(&r),
        r#"{"Results":null,"Errors":[{"OpIndex":0,"What":"unknown KV verb \"frobnicate\""}]}"#
    );
    assert_eq!(respond(plan_of(Method::Put, "/v1/txn", b"{}")).status, 400);
    assert_eq!(respond(plan_of(Method::Put, "/v1/txn", b"[")).status, 400);
    assert_eq!(respond(plan_of(Method::Get, "/v1/txn", b"[]")).status, 405);
}

#[test]
fn txn_results_render_values_only_for_gets() {
    let state = state_with(&[set("a", b"v")]);
    let ops = vec![KvOp::new(KvVerb::Get, "a")];
    let a = ReadQuery::Txn(ops).answer(&state, &ClusterView::default(), &ctx(), false);
    assert_eq!(a.response.status, 200);
    assert_eq!(
        body_text(&a.response),
        r#"{"Results":[{"KV":{"LockIndex":0,"Key":"a","Flags":0,"Value":"dg==","CreateIndex":10,"ModifyIndex":10}}],"Errors":null}"#
    );
}

#[test]
fn status_and_operator_routes_read_the_cluster_view() {
    use super::cluster::ServerView;
    use crate::raft::ServerId;
    let cluster = ClusterView {
        id: ServerId(1),
        leader_id: Some(ServerId(2)),
        leader_address: Some("127.0.0.2:8300".to_string()),
        servers: vec![
            ServerView {
                id: ServerId(1),
                address: "127.0.0.1:8300".into(),
                voter: true,
            },
            ServerView {
                id: ServerId(2),
                address: "127.0.0.2:8300".into(),
                voter: true,
            },
            ServerView {
                id: ServerId(3),
                address: "127.0.0.3:8300".into(),
                voter: false,
            },
        ],
        config_index: 4,
        term: 2,
    };
    let run = |method, target: &str| {
        let (path, q) = target.split_once('?').unwrap_or((target, ""));
        let req = ApiRequest {
            method,
            path,
            query: Query::parse(q).unwrap(),
            token: None,
            body: b"",
        };
        plan(&req, &ctx(), &cluster)
    };
    assert_eq!(
        body_text(&respond(run(Method::Get, "/v1/status/leader"))),
        r#""127.0.0.2:8300""#
    );
    assert_eq!(
        body_text(&respond(run(Method::Get, "/v1/status/peers"))),
        r#"["127.0.0.1:8300","127.0.0.2:8300"]"#
    );
    assert!(matches!(
        run(
            Method::Delete,
            "/v1/operator/raft/peer?address=127.0.0.3:8300"
        ),
        Plan::Operator(OperatorPlan::RemovePeer(ServerId(3)))
    ));
    assert!(matches!(
        run(Method::Delete, "/v1/operator/raft/peer?id=0000000000000002"),
        Plan::Operator(OperatorPlan::RemovePeer(ServerId(2)))
    ));
    assert_eq!(
        respond(run(Method::Delete, "/v1/operator/raft/peer")).status,
        400
    );
    assert_eq!(
        respond(run(
            Method::Delete,
            "/v1/operator/raft/peer?address=1.2.3.4:1"
        ))
        .status,
        500
    );
    assert!(matches!(
        run(Method::Post, "/v1/operator/raft/transfer-leader"),
        Plan::Operator(OperatorPlan::TransferLeader(None))
    ));
    let a =
        ReadQuery::RaftConfiguration.answer(&crate::fsm::State::default(), &cluster, &ctx(), false);
    let text = body_text(&a.response);
    assert!(text.contains(r#""ID":"0000000000000001","Node":"node1","Address":"127.0.0.1:8300","Leader":false,"Voter":true"#), "{text}");
    assert!(
        text.contains(r#""Node":"127.0.0.2","Address":"127.0.0.2:8300","Leader":true"#),
        "{text}"
    );
    assert!(text.ends_with(r#""Index":4}"#), "{text}");
    assert!(matches!(run(Method::Put, "/v1/agent/leave"), Plan::Leave));
}
