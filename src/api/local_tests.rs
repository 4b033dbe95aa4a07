//! Tests of the agent's local state and its sync with a real state machine.

use super::super::tests::ctx;
use super::*;
use crate::fsm::{CheckStatus, Fsm, RegisterRequest};

fn service(id: &str) -> Service {
    Service {
        id: id.into(),
        service: id.into(),
        port: 80,
        ..Service::default()
    }
}

fn check(id: &str, service_id: &str, status: CheckStatus) -> HealthCheck {
    HealthCheck {
        check_id: id.into(),
        name: id.into(),
        service_id: service_id.into(),
        status,
        check_type: "ttl".into(),
        ..HealthCheck::default()
    }
}

/// Applies every pending step to `fsm` and marks it synced, as the front end does; the steps applied.
fn sync(local: &mut LocalState, fsm: &mut Fsm, index: &mut u64) -> usize {
    let steps = local.pending(&ctx());
    for step in &steps {
        *index += 1;
        fsm.apply(*index, &step.command);
        local.mark_synced(&step.covers);
    }
    steps.len()
}

fn catalog_services(fsm: &Fsm) -> Vec<String> {
    let state = fsm.state();
    let services = state
        .node_services("node1")
        .map(|(_, s)| s)
        .unwrap_or_default();
    services.iter().map(|s| s.id.clone()).collect()
}

fn catalog_checks(fsm: &Fsm) -> Vec<(String, CheckStatus)> {
    let state = fsm.state();
    let checks = state.node_checks("node1");
    checks
        .iter()
        .map(|c| (c.check_id.clone(), c.status))
        .collect()
}

#[test]
fn a_service_is_registered_with_its_checks_in_one_command() {
    let (mut local, mut fsm, mut index) = (LocalState::new(), Fsm::new(), 0);
    let checks = vec![check("web-alive", "web", CheckStatus::Critical)];
    local
        .add_service(service("web"), checks, false, true)
        .expect("add");
    let steps = local.pending(&ctx());
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert_eq!(sync(&mut local, &mut fsm, &mut index), 1);
    assert!(local.is_synced());
    assert_eq!(catalog_services(&fsm), vec!["web"]);
    assert_eq!(
        catalog_checks(&fsm),
        vec![("web-alive".to_string(), CheckStatus::Critical)]
    );
    assert_eq!(
        sync(&mut local, &mut fsm, &mut index),
        0,
        "nothing left to sync"
    );
}

#[test]
fn changes_removals_and_status_updates_reach_the_catalog() {
    let (mut local, mut fsm, mut index) = (LocalState::new(), Fsm::new(), 0);
    let checks = vec![check("a", "web", CheckStatus::Critical)];
    local
        .add_service(service("web"), checks, false, true)
        .expect("add");
    local
        .add_service(service("db"), vec![], false, true)
        .expect("add");
    local
        .add_check(check("node-check", "", CheckStatus::Passing), true)
        .expect("check");
    sync(&mut local, &mut fsm, &mut index);
    assert!(local.update_check("a", CheckStatus::Passing, "ok"));
    assert_eq!(sync(&mut local, &mut fsm, &mut index), 1);
    assert!(catalog_checks(&fsm).contains(&("a".to_string(), CheckStatus::Passing)));
    local.remove_service("web").expect("remove");
    local.remove_check("node-check").expect("remove");
    sync(&mut local, &mut fsm, &mut index);
    assert_eq!(catalog_services(&fsm), vec!["db"]);
    assert!(catalog_checks(&fsm).is_empty());
    assert!(local.is_synced());
}

#[test]
fn a_sync_that_raced_with_a_newer_change_leaves_it_out_of_sync() {
    let (mut local, mut fsm) = (LocalState::new(), Fsm::new());
    local
        .add_check(check("c", "", CheckStatus::Passing), true)
        .expect("check");
    let steps = local.pending(&ctx());
    assert!(local.update_check("c", CheckStatus::Warning, "newer"));
    for step in &steps {
        fsm.apply(1, &step.command);
        local.mark_synced(&step.covers);
    }
    assert!(!local.is_synced(), "the newer status is still to sync");
    let steps = local.pending(&ctx());
    assert_eq!(steps.len(), 1);
}

#[test]
fn a_full_sync_repairs_drift_and_removes_what_the_agent_does_not_know() {
    let (mut local, mut fsm, mut index) = (LocalState::new(), Fsm::new(), 0);
    local
        .add_service(service("web"), vec![], false, true)
        .expect("add");
    sync(&mut local, &mut fsm, &mut index);
    // Someone else deregisters the agent's service and registers one the agent does not know, plus the
    // servers' own entries, which anti-entropy leaves alone.
    let c = ctx();
    index += 1;
    fsm.apply(
        index,
        &Command::CatalogDeregister {
            now_ms: 1,
            node: "node1".into(),
            service_id: Some("web".into()),
            check_id: None,
        },
    );
    let stranger = RegisterRequest {
        node: "node1".into(),
        address: "10.0.0.9".into(),
        service: Some(service("stranger")),
        checks: vec![check(SERF_HEALTH_CHECK_ID, "", CheckStatus::Passing)],
        ..RegisterRequest::default()
    };
    let consul = RegisterRequest {
        service: Some(service(CONSUL_SERVICE_ID)),
        checks: vec![check("orphan", "", CheckStatus::Critical)],
        ..stranger.clone()
    };
    for request in [stranger, consul] {
        index += 1;
        fsm.apply(
            index,
            &Command::CatalogRegister {
                now_ms: 1,
                request: Box::new(request),
            },
        );
    }
    let marked = local.compare(&CatalogNode::from_state(&fsm.state(), "node1"), &c);
    assert_eq!(
        marked, 4,
        "node differs, web missing, stranger and orphan unknown"
    );
    sync(&mut local, &mut fsm, &mut index);
    assert_eq!(catalog_services(&fsm), vec![CONSUL_SERVICE_ID, "web"]);
    assert_eq!(
        catalog_checks(&fsm),
        vec![(SERF_HEALTH_CHECK_ID.to_string(), CheckStatus::Passing)]
    );
    let address = fsm.state().node("node1").map(|n| n.address.clone());
    assert_eq!(address.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        local.compare(&CatalogNode::from_state(&fsm.state(), "node1"), &c),
        0,
        "converged"
    );
    assert!(local.service("stranger").is_none());
}

#[test]
fn api_registrations_are_persisted_and_restored() {
    let mut local = LocalState::new();
    local
        .add_service(
            service("api"),
            vec![check("a", "api", CheckStatus::Passing)],
            false,
            true,
        )
        .expect("api");
    local
        .add_service(service("from-config"), vec![], false, false)
        .expect("config");
    let persisted = local.persisted();
    assert_eq!(persisted.services.len(), 1);
    assert_eq!(persisted.checks.len(), 1);
    let json = serde_json::to_vec(&persisted).expect("json");
    let back: Persisted = serde_json::from_slice(&json).expect("parse");
    let mut restored = LocalState::new();
    restored.restore(back);
    assert!(restored.service("api").is_some());
    assert_eq!(
        restored.check("a").map(|c| c.status),
        Some(CheckStatus::Passing)
    );
    assert!(
        !restored.is_synced(),
        "restored entries are confirmed by the next sync"
    );
}

#[test]
fn the_full_sync_interval_scales_with_the_cluster() {
    assert_eq!(scale_factor(1), 1);
    assert_eq!(scale_factor(128), 1);
    assert_eq!(scale_factor(129), 2);
    assert_eq!(scale_factor(256), 2);
    assert_eq!(scale_factor(257), 3);
    assert_eq!(scale_factor(8192), 7);
    assert_eq!(full_sync_wait_ms(60_000, 10, 0), 60_000);
    assert!(full_sync_wait_ms(60_000, 10, u64::MAX) < 120_000);
    assert!(full_sync_wait_ms(60_000, 10_000, u64::MAX) < 60_000 * 9);
}

#[test]
fn a_change_of_output_alone_is_synced_after_the_update_interval() {
    let (mut local, mut fsm, mut index) = (LocalState::new(), Fsm::new(), 0);
    local
        .add_check(check("c", "", CheckStatus::Passing), true)
        .expect("check");
    sync(&mut local, &mut fsm, &mut index);
    let output_in_catalog = |fsm: &Fsm| fsm.state().node_checks("node1")[0].output.clone();
    // Output alone: shown by the agent at once, synced only when due.
    assert!(local.update_check_deferring("c", CheckStatus::Passing, "run 1", 1_000, 60_000));
    assert_eq!(local.check("c").map(|c| c.output.as_str()), Some("run 1"));
    assert_eq!(sync(&mut local, &mut fsm, &mut index), 0);
    let catalog = CatalogNode::from_state(&fsm.state(), "node1");
    assert_eq!(
        local.compare(&catalog, &ctx()),
        0,
        "a deferred output is not drift"
    );
    assert!(local.update_check_deferring("c", CheckStatus::Passing, "run 2", 30_000, 60_000));
    assert_eq!(
        local.release_deferred(60_999),
        0,
        "due 60 s after the first change"
    );
    assert_eq!(local.release_deferred(61_000), 1);
    assert_eq!(sync(&mut local, &mut fsm, &mut index), 1);
    assert_eq!(output_in_catalog(&fsm), "run 2");
    // A status change syncs at once, with its output.
    assert!(local.update_check_deferring("c", CheckStatus::Critical, "down", 62_000, 60_000));
    assert_eq!(sync(&mut local, &mut fsm, &mut index), 1);
    assert_eq!(output_in_catalog(&fsm), "down");
    // No deferral with an interval of 0.
    assert!(local.update_check_deferring("c", CheckStatus::Critical, "still down", 63_000, 0));
    assert_eq!(sync(&mut local, &mut fsm, &mut index), 1);
    assert_eq!(output_in_catalog(&fsm), "still down");
}
