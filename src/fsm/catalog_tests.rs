//! Catalog tests: register and deregister with Consul's semantics, indexes, check-bound sessions, reads,
//! snapshot and changes.

use super::codec::{decode_command, encode_command};
use super::*;

const NOW_MS: u64 = 1_000_000;

fn node_req(node: &str) -> RegisterRequest {
    RegisterRequest {
        id: String::new(),
        node: node.to_string(),
        address: format!("10.0.0.{}", node.len()),
        datacenter: "dc1".to_string(),
        ..RegisterRequest::default()
    }
}

fn service(id: &str, name: &str, tags: &[&str]) -> Service {
    Service {
        id: id.to_string(),
        service: name.to_string(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        port: 8080,
        ..Service::default()
    }
}

fn check(id: &str, status: CheckStatus, service_id: &str) -> HealthCheck {
    HealthCheck {
        check_id: id.to_string(),
        name: format!("name-{id}"),
        status,
        service_id: service_id.to_string(),
        ..HealthCheck::default()
    }
}

fn with_service(mut req: RegisterRequest, s: Service) -> RegisterRequest {
    req.service = Some(s);
    req
}

fn with_checks(mut req: RegisterRequest, checks: Vec<HealthCheck>) -> RegisterRequest {
    req.checks = checks;
    req
}

fn register(fsm: &mut Fsm, index: Index, request: RegisterRequest) -> Outcome {
    fsm.apply(
        index,
        &Command::CatalogRegister {
            now_ms: NOW_MS,
            request: Box::new(request),
        },
    )
}

fn ok(fsm: &mut Fsm, index: Index, request: RegisterRequest) {
    assert_eq!(register(fsm, index, request), Outcome::Bool(true));
}

fn deregister(
    fsm: &mut Fsm,
    index: Index,
    node: &str,
    svc: Option<&str>,
    chk: Option<&str>,
) -> Outcome {
    fsm.apply(
        index,
        &Command::CatalogDeregister {
            now_ms: NOW_MS,
            node: node.to_string(),
            service_id: svc.map(str::to_string),
            check_id: chk.map(str::to_string),
        },
    )
}

fn session(id: &str, node: &str, node_checks: &[&str], behavior: Behavior) -> SessionSpec {
    SessionSpec {
        id: id.to_string(),
        node: node.to_string(),
        node_checks: node_checks.iter().map(|c| c.to_string()).collect(),
        lock_delay_ms: 5_000,
        behavior,
        ..SessionSpec::default()
    }
}

fn create(fsm: &mut Fsm, index: Index, spec: SessionSpec) -> Outcome {
    fsm.apply(
        index,
        &Command::SessionCreate {
            now_ms: NOW_MS,
            spec,
        },
    )
}

fn lock(fsm: &mut Fsm, index: Index, key: &str, session: &str) {
    let op = KvOp {
        session: session.to_string(),
        ..KvOp::new(KvVerb::Lock, key)
    };
    let out = fsm.apply(index, &Command::Kv { now_ms: NOW_MS, op });
    assert_eq!(out, Outcome::Bool(true));
}

/// n1 with web (check web-check passing) and serfHealth passing; n2 with web too.
fn web_fsm() -> Fsm {
    let mut fsm = Fsm::new();
    let req = with_service(node_req("n1"), service("web1", "web", &["v1"]));
    let checks = vec![
        check("serfHealth", CheckStatus::Passing, ""),
        check("web-check", CheckStatus::Passing, "web1"),
    ];
    ok(&mut fsm, 1, with_checks(req, checks));
    ok(
        &mut fsm,
        2,
        with_service(node_req("n2"), service("web2", "web", &["v2", "v1"])),
    );
    fsm.take_changes();
    fsm
}

// ---- register ----

#[test]
fn register_creates_the_node_service_and_checks_at_the_index() {
    let fsm = web_fsm();
    let state = fsm.state();
    let n1 = state.node("n1").expect("n1");
    assert_eq!((n1.create_index, n1.modify_index), (1, 1));
    assert_eq!(n1.datacenter, "dc1");
    let (_, services) = state.node_services("n1").expect("n1");
    assert_eq!(services.len(), 1);
    assert_eq!((services[0].create_index, services[0].modify_index), (1, 1));
    let checks = state.node_checks("n1");
    assert_eq!(checks.len(), 2);
    let web_check = checks[1];
    assert_eq!(web_check.node, "n1");
    assert_eq!(web_check.service_name, "web");
    assert_eq!(web_check.service_tags, vec!["v1".to_string()]);
    assert_eq!(web_check.create_index, 1);
    let idx = state.table_indexes();
    assert_eq!((idx.nodes, idx.services, idx.checks), (2, 2, 1));
}

#[test]
fn register_defaults_the_service_id_to_its_name_and_the_check_id_to_its_name() {
    let mut fsm = Fsm::new();
    let mut c = check("", CheckStatus::Passing, "");
    c.name = "mem".to_string();
    let req = with_checks(
        with_service(node_req("n1"), service("", "db", &[])),
        vec![c],
    );
    ok(&mut fsm, 1, req);
    let state = fsm.state();
    assert_eq!(state.service_instances("db")[0].1.id, "db");
    assert_eq!(state.node_checks("n1")[0].check_id, "mem");
}

#[test]
fn identical_registrations_move_no_index_and_report_no_change() {
    let mut fsm = web_fsm();
    let before = fsm.state();
    let req = with_service(node_req("n1"), service("web1", "web", &["v1"]));
    let checks = vec![
        check("serfHealth", CheckStatus::Passing, ""),
        check("web-check", CheckStatus::Passing, "web1"),
    ];
    ok(&mut fsm, 3, with_checks(req, checks));
    let after = fsm.state();
    assert_eq!(after.table_indexes(), before.table_indexes());
    assert_eq!(after.node("n1"), before.node("n1"));
    assert_eq!(after.node_checks("n1"), before.node_checks("n1"));
    assert_eq!(after.service_index("web"), 2);
    let changes = fsm.take_changes();
    assert_eq!(changes.tables, 0);
    assert_eq!(changes.service_names, Some(vec![]));
}

#[test]
fn a_changed_service_moves_its_modify_index_and_its_names_index_only() {
    let mut fsm = web_fsm();
    ok(
        &mut fsm,
        3,
        with_service(node_req("n1"), service("db1", "db", &[])),
    );
    ok(
        &mut fsm,
        4,
        with_service(node_req("n1"), service("db1", "db", &["primary"])),
    );
    let state = fsm.state();
    assert_eq!(state.service_index("db"), 4);
    assert_eq!(state.service_index("web"), 2);
    let db = state.service_instances("db")[0].1;
    assert_eq!((db.create_index, db.modify_index), (3, 4));
    assert_eq!(state.node("n1").expect("n1").modify_index, 1);
}

#[test]
fn a_node_change_moves_the_indexes_of_its_services() {
    let mut fsm = web_fsm();
    let mut req = node_req("n2");
    req.address = "192.168.1.9".to_string();
    ok(&mut fsm, 3, req);
    let state = fsm.state();
    let n2 = state.node("n2").expect("n2");
    assert_eq!(
        (n2.create_index, n2.modify_index, n2.address.as_str()),
        (2, 3, "192.168.1.9")
    );
    assert_eq!(state.service_index("web"), 3);
    assert_eq!(state.nodes_index(), 3);
}

#[test]
fn skip_node_update_leaves_the_node_alone() {
    let mut fsm = web_fsm();
    let mut req = with_service(node_req("n1"), service("db1", "db", &[]));
    req.address = String::new();
    req.skip_node_update = true;
    ok(&mut fsm, 3, req);
    let state = fsm.state();
    assert_eq!(state.node("n1").expect("n1").address, "10.0.0.2");
    assert_eq!(state.node("n1").expect("n1").modify_index, 1);
}

#[test]
fn a_check_on_a_missing_service_is_refused_with_consuls_text_and_nothing_applies() {
    let mut fsm = Fsm::new();
    let req = with_checks(
        node_req("n1"),
        vec![check("c", CheckStatus::Passing, "nope")],
    );
    assert_eq!(
        register(&mut fsm, 1, req),
        Outcome::Error(format!(
            "failed inserting check on node \"n1\": {MISSING_SERVICE}"
        ))
    );
    assert!(fsm.state().node("n1").is_none());
    assert_eq!(fsm.state().applied_index(), 1);
}

#[test]
fn malformed_registrations_are_refused() {
    let mut fsm = Fsm::new();
    let mut req = node_req("n1");
    req.address.clear();
    assert_eq!(
        register(&mut fsm, 1, req),
        Outcome::Error("Must provide address if SkipNodeUpdate is not set".to_string())
    );
    assert_eq!(
        register(&mut fsm, 2, node_req("")),
        Outcome::Error("Must provide node".to_string())
    );
    let mut c = check("c", CheckStatus::Passing, "");
    c.node = "other".to_string();
    assert_eq!(
        register(&mut fsm, 3, with_checks(node_req("n1"), vec![c])),
        Outcome::Error("check node \"other\" does not match node \"n1\"".to_string())
    );
    let mut req = with_service(node_req("n1"), service("x", "", &[]));
    req.skip_node_update = true;
    assert_eq!(
        register(&mut fsm, 4, req),
        Outcome::Error("Must provide service name with ID".to_string())
    );
}

#[test]
fn a_service_on_a_missing_node_with_skip_node_update_creates_the_node_as_consul_does() {
    let mut fsm = Fsm::new();
    let mut req = with_service(node_req("n1"), service("a", "a", &[]));
    req.skip_node_update = true;
    ok(&mut fsm, 1, req);
    assert!(fsm.state().node("n1").is_some());
}

#[test]
fn a_new_node_id_for_a_live_name_is_refused_and_allowed_without_serf_health() {
    let mut fsm = Fsm::new();
    let mut req = node_req("n1");
    req.id = "11111111-0000-0000-0000-000000000000".to_string();
    let live = with_checks(
        req.clone(),
        vec![check("serfHealth", CheckStatus::Passing, "")],
    );
    ok(&mut fsm, 1, live);
    let mut other = req.clone();
    other.id = "22222222-0000-0000-0000-000000000000".to_string();
    assert_eq!(
        register(&mut fsm, 2, other.clone()),
        Outcome::Error(format!(
            "failed inserting node: Error while renaming Node ID: \"{}\": Node name n1 is reserved by node {} with name n1 ({})",
            other.id, req.id, req.address
        ))
    );
    deregister(&mut fsm, 3, "n1", None, Some("serfHealth"));
    ok(&mut fsm, 4, other.clone());
    assert_eq!(fsm.state().node("n1").expect("n1").id, other.id);
}

#[test]
fn a_known_node_id_under_a_new_name_renames_the_node() {
    let mut fsm = Fsm::new();
    let mut req = with_service(node_req("old"), service("a", "a", &[]));
    req.id = "11111111-0000-0000-0000-000000000000".to_string();
    ok(&mut fsm, 1, req.clone());
    req.node = "new".to_string();
    req.service = None;
    ok(&mut fsm, 2, req);
    let state = fsm.state();
    assert!(state.node("old").is_none());
    assert_eq!(state.node("new").expect("new").create_index, 2);
    assert!(state.service_instances("a").is_empty());
}

// ---- deregister ----

#[test]
fn deregistering_a_service_removes_its_checks_and_keeps_the_node() {
    let mut fsm = web_fsm();
    assert_eq!(
        deregister(&mut fsm, 3, "n1", Some("web1"), None),
        Outcome::Bool(true)
    );
    let state = fsm.state();
    assert!(state.node("n1").is_some());
    let ids: Vec<&str> = state
        .node_checks("n1")
        .iter()
        .map(|c| c.check_id.as_str())
        .collect();
    assert_eq!(ids, vec!["serfHealth"]);
    assert_eq!(state.service_instances("web").len(), 1);
    assert_eq!(state.service_index("web"), 3);
    assert_eq!(state.checks_index(), 3);
}

#[test]
fn deregistering_the_last_instance_sets_the_extinction_index() {
    let mut fsm = web_fsm();
    deregister(&mut fsm, 3, "n1", Some("web1"), None);
    deregister(&mut fsm, 4, "n2", Some("web2"), None);
    let state = fsm.state();
    assert!(state.services_by_name().is_empty());
    assert_eq!(state.table_indexes().service_extinction, 4);
    assert_eq!(state.service_index("web"), 4);
    assert_eq!(state.service_index("never-registered"), 4);
}

#[test]
fn a_missing_service_index_falls_back_to_the_catalog_tables() {
    let fsm = web_fsm();
    let state = fsm.state();
    assert_eq!(state.service_index("nope"), 2);
    assert_eq!(state.health_service_index("nope"), 2);
}

#[test]
fn deregistering_a_check_removes_only_it() {
    let mut fsm = web_fsm();
    deregister(&mut fsm, 3, "n1", None, Some("web-check"));
    let state = fsm.state();
    assert_eq!(state.node_checks("n1").len(), 1);
    assert_eq!(state.service_instances("web").len(), 2);
    assert_eq!(state.service_index("web"), 3);
}

#[test]
fn deregistering_a_node_removes_its_services_and_checks() {
    let mut fsm = web_fsm();
    deregister(&mut fsm, 3, "n1", None, None);
    let state = fsm.state();
    assert!(state.node("n1").is_none());
    assert!(state.node_checks("n1").is_empty());
    assert_eq!(state.service_instances("web").len(), 1);
    let idx = state.table_indexes();
    assert_eq!((idx.nodes, idx.services, idx.checks), (3, 3, 3));
}

#[test]
fn deregistering_what_does_not_exist_is_true_and_changes_nothing() {
    let mut fsm = web_fsm();
    let before = fsm.state().table_indexes();
    assert_eq!(
        deregister(&mut fsm, 3, "zz", None, None),
        Outcome::Bool(true)
    );
    assert_eq!(
        deregister(&mut fsm, 4, "n1", Some("zz"), None),
        Outcome::Bool(true)
    );
    assert_eq!(
        deregister(&mut fsm, 5, "n1", None, Some("zz")),
        Outcome::Bool(true)
    );
    assert_eq!(fsm.state().table_indexes(), before);
    assert_eq!(fsm.take_changes().tables, 0);
}

// ---- sessions bound to checks ----

#[test]
fn a_session_on_a_registered_node_needs_its_checks_present_and_not_critical() {
    let mut fsm = web_fsm();
    ok(
        &mut fsm,
        3,
        with_checks(
            node_req("n2"),
            vec![check("bad", CheckStatus::Critical, "")],
        ),
    );
    assert_eq!(
        create(
            &mut fsm,
            4,
            session("s1", "n1", &["nope"], Behavior::Release)
        ),
        Outcome::Error("Missing check 'nope' registration".to_string())
    );
    assert_eq!(
        create(
            &mut fsm,
            5,
            session("s2", "n2", &["bad"], Behavior::Release)
        ),
        Outcome::Error("Check 'bad' is in critical state".to_string())
    );
    let mut spec = session("s3", "n1", &["serfHealth"], Behavior::Release);
    spec.service_checks = vec![ServiceCheck {
        id: "web-check".to_string(),
        namespace: String::new(),
    }];
    assert_eq!(
        create(&mut fsm, 6, spec),
        Outcome::SessionCreated("s3".to_string())
    );
}

#[test]
fn a_session_on_a_node_the_catalog_does_not_know_is_accepted_by_the_state_machine() {
    let mut fsm = Fsm::new();
    let spec = session("s1", "ghost", &["serfHealth"], Behavior::Release);
    let state = fsm.state();
    assert_eq!(
        session_binding_error(&state, &spec, true),
        Some(MISSING_NODE.to_string())
    );
    assert_eq!(session_binding_error(&state, &spec, false), None);
    assert_eq!(
        create(&mut fsm, 1, spec),
        Outcome::SessionCreated("s1".to_string())
    );
}

#[test]
fn a_check_going_critical_invalidates_its_sessions_with_lock_delay() {
    let mut fsm = web_fsm();
    create(
        &mut fsm,
        3,
        session("s1", "n1", &["serfHealth"], Behavior::Release),
    );
    create(
        &mut fsm,
        4,
        session("s2", "n1", &["web-check"], Behavior::Delete),
    );
    lock(&mut fsm, 5, "a", "s1");
    lock(&mut fsm, 6, "b", "s2");
    fsm.take_changes();
    let critical = vec![check("serfHealth", CheckStatus::Critical, "")];
    ok(&mut fsm, 7, with_checks(node_req("n1"), critical));
    let state = fsm.state();
    assert!(state.session_get("s1").is_none());
    assert!(state.session_get("s2").is_some());
    let a = state.kv_get("a").expect("released, kept");
    assert_eq!((a.session.as_deref(), a.modify_index), (None, 7));
    assert_eq!(state.lock_delay_until_ms("a"), Some(NOW_MS + 5_000));
    assert_eq!(state.table_indexes().sessions, 7);
    let changes = fsm.take_changes();
    let want = table::CHECKS | table::SERVICES | table::SESSIONS | table::KVS;
    assert_eq!(changes.tables, want);
    assert_eq!(changes.kv_keys, Some(vec!["a".to_string()]));
}

#[test]
fn deregistering_a_bound_check_invalidates_its_sessions() {
    let mut fsm = web_fsm();
    create(
        &mut fsm,
        3,
        session("s2", "n1", &["web-check"], Behavior::Delete),
    );
    lock(&mut fsm, 4, "b", "s2");
    deregister(&mut fsm, 5, "n1", None, Some("web-check"));
    let state = fsm.state();
    assert!(state.session_get("s2").is_none());
    assert!(state.kv_get("b").is_none());
    assert_eq!(state.lock_delay_until_ms("b"), Some(NOW_MS + 5_000));
}

#[test]
fn deregistering_a_node_invalidates_all_its_sessions() {
    let mut fsm = web_fsm();
    create(&mut fsm, 3, session("s1", "n1", &[], Behavior::Release));
    create(&mut fsm, 4, session("s2", "n2", &[], Behavior::Release));
    deregister(&mut fsm, 5, "n1", None, None);
    let state = fsm.state();
    assert!(state.session_get("s1").is_none());
    assert!(state.session_get("s2").is_some());
}

// ---- reads ----

#[test]
fn services_by_name_unions_and_sorts_tags() {
    let fsm = web_fsm();
    let services = fsm.state().services_by_name();
    assert_eq!(services.len(), 1);
    assert_eq!(services["web"], vec!["v1".to_string(), "v2".to_string()]);
}

#[test]
fn health_service_lists_node_checks_then_the_instances_own() {
    let mut fsm = web_fsm();
    ok(
        &mut fsm,
        3,
        with_service(node_req("n1"), service("web9", "web", &[])),
    );
    let other = vec![check("other", CheckStatus::Warning, "web9")];
    ok(&mut fsm, 4, with_checks(node_req("n1"), other));
    let state = fsm.state();
    let entries = state.health_service("web");
    let shape: Vec<(&str, &str, Vec<&str>)> = entries
        .iter()
        .map(|(n, s, c)| {
            let ids = c.iter().map(|c| c.check_id.as_str()).collect();
            (n.node.as_str(), s.id.as_str(), ids)
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            ("n1", "web1", vec!["serfHealth", "web-check"]),
            ("n1", "web9", vec!["serfHealth", "other"]),
            ("n2", "web2", vec![]),
        ]
    );
    assert_eq!(state.health_service_index("web"), 4);
    let svc_checks: Vec<&str> = state
        .service_checks("web")
        .iter()
        .map(|c| c.check_id.as_str())
        .collect();
    assert_eq!(svc_checks, vec!["other", "web-check"]);
}

#[test]
fn checks_in_state_filters_by_status_or_any() {
    let mut fsm = web_fsm();
    ok(
        &mut fsm,
        3,
        with_checks(node_req("n2"), vec![check("w", CheckStatus::Warning, "")]),
    );
    let state = fsm.state();
    let ids = |s: &str| -> Vec<String> {
        let found = state.checks_in_state(s).expect("valid state");
        found.iter().map(|c| c.check_id.clone()).collect()
    };
    assert_eq!(ids("any"), vec!["serfHealth", "web-check", "w"]);
    assert_eq!(ids("warning"), vec!["w"]);
    assert!(ids("critical").is_empty());
    assert!(state.checks_in_state("bogus").is_none());
    assert_eq!(
        CheckStatus::parse("maintenance").map(CheckStatus::as_str),
        Some("maintenance")
    );
}

// ---- snapshot, changes, codec ----

#[test]
fn snapshot_round_trip_keeps_the_catalog() {
    let mut fsm = web_fsm();
    create(
        &mut fsm,
        3,
        session("s1", "n1", &["serfHealth"], Behavior::Release),
    );
    let mut req = with_service(node_req("n3"), service("x", "x", &["t"]));
    req.tagged_addresses
        .insert("lan".to_string(), "10.1.1.1".to_string());
    req.node_meta.insert("rack".to_string(), "r1".to_string());
    let mut c = check("h", CheckStatus::Passing, "x");
    c.definition.http = "http://localhost/health".to_string();
    c.definition.interval = "10s".to_string();
    c.definition
        .header
        .insert("X".to_string(), vec!["1".to_string()]);
    ok(&mut fsm, 4, with_checks(req, vec![c]));
    deregister(&mut fsm, 5, "n3", Some("x"), None);
    ok(
        &mut fsm,
        6,
        with_service(node_req("n3"), service("x", "x", &["t"])),
    );
    let mut restored = Fsm::restore(&fsm.snapshot()).expect("restores");
    assert_eq!(restored.state(), fsm.state());
    let changes = restored.take_changes();
    assert_eq!(changes.tables & table::NODES, table::NODES);
    assert_eq!(changes.service_names, None);
    assert_eq!(changes.node_names, None);
}

#[test]
fn changes_name_the_services_and_nodes_touched() {
    let mut fsm = web_fsm();
    ok(
        &mut fsm,
        3,
        with_service(node_req("n2"), service("db1", "db", &[])),
    );
    ok(
        &mut fsm,
        4,
        with_checks(node_req("n1"), vec![check("c", CheckStatus::Passing, "")]),
    );
    let changes = fsm.take_changes();
    assert_eq!(changes.tables, table::SERVICES | table::CHECKS);
    assert_eq!(
        changes.service_names,
        Some(vec!["db".to_string(), "web".to_string()])
    );
    assert_eq!(changes.node_names, Some(vec!["n1".to_string()]));
    assert_eq!(changes.kv_keys, Some(vec![]));
}

#[test]
fn catalog_commands_round_trip_through_the_codec() {
    let req = with_checks(
        with_service(node_req("n1"), service("a", "a", &["x"])),
        vec![check("c", CheckStatus::Warning, "a")],
    );
    let commands = [
        Command::CatalogRegister {
            now_ms: 5,
            request: Box::new(req),
        },
        Command::CatalogDeregister {
            now_ms: 6,
            node: "n1".to_string(),
            service_id: Some("a".to_string()),
            check_id: None,
        },
    ];
    for command in commands {
        assert_eq!(decode_command(&encode_command(&command)), Ok(command));
    }
}
