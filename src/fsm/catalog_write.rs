//! Catalog writes with Consul's semantics: register (node, then service, then checks) and deregister (a
//! service, a check, or a whole node), each change moving its table's index, the per-service-name indexes
//! and the change log; a check going critical or going away invalidates the sessions bound to it.

use super::apply::end_session;
use super::catalog::{CheckStatus, HealthCheck, Node, RegisterRequest, Service, SERF_CHECK_ID};
use super::{table, ChangeLog, Index, SessionSpec, State};
use std::sync::Arc;

/// Consul's error for a write that needs a node the catalog does not have.
pub const MISSING_NODE: &str = "Missing node registration";
/// Consul's error for a check naming a service instance its node does not have.
pub const MISSING_SERVICE: &str = "Missing service registration";

/// Applies a registration: the node (unless unchanged), the service instance, then each check.
pub(super) fn register(
    state: &mut State,
    index: Index,
    now_ms: u64,
    req: &RegisterRequest,
    log: &mut ChangeLog,
) -> Result<(), String> {
    validate(req)?;
    ensure_node(state, index, now_ms, req, log)
        .map_err(|e| format!("failed inserting node: {e}"))?;
    if let Some(service) = &req.service {
        let mut service = service.clone();
        if service.id.is_empty() {
            service.id = service.service.clone();
        }
        ensure_service(state, index, &req.node, service, log)
            .map_err(|e| format!("failed inserting service: {e}"))?;
    }
    for check in &req.checks {
        let mut check = check.clone();
        if check.node.is_empty() {
            check.node = req.node.clone();
        }
        if check.check_id.is_empty() {
            check.check_id = check.name.clone();
        }
        if !check.node.eq_ignore_ascii_case(&req.node) {
            return Err(format!(
                "check node {:?} does not match node {:?}",
                check.node, req.node
            ));
        }
        let node = check.node.clone();
        ensure_check(state, index, now_ms, check, log)
            .map_err(|e| format!("failed inserting check on node {node:?}: {e}"))?;
    }
    Ok(())
}

/// The request-level checks Consul's catalog endpoint makes before the state store sees a registration.
fn validate(req: &RegisterRequest) -> Result<(), String> {
    if req.node.is_empty() {
        return Err("Must provide node".to_string());
    }
    if req.address.is_empty() && !req.skip_node_update {
        return Err("Must provide address if SkipNodeUpdate is not set".to_string());
    }
    if let Some(service) = &req.service {
        if service.service.is_empty() {
            return Err("Must provide service name with ID".to_string());
        }
    }
    Ok(())
}

/// Deregisters, with Consul's precedence: the service instance if named, else the check if named, else the
/// whole node. Removing what does not exist succeeds and changes nothing.
pub(super) fn deregister(
    state: &mut State,
    index: Index,
    now_ms: u64,
    node: &str,
    service_id: Option<&str>,
    check_id: Option<&str>,
    log: &mut ChangeLog,
) -> Result<(), String> {
    if node.is_empty() {
        return Err("Must provide node".to_string());
    }
    match (service_id, check_id) {
        (Some(id), _) => delete_service(state, index, now_ms, node, id, log),
        (None, Some(id)) => delete_check(state, index, now_ms, node, id, log),
        (None, None) => delete_node(state, index, now_ms, node, log),
    }
    Ok(())
}

/// Consul's refusals for a session on a registered node: each check it names must exist on the node and not
/// be critical; with `require_node`, the node itself must be registered.
pub fn session_binding_error(
    state: &State,
    spec: &SessionSpec,
    require_node: bool,
) -> Option<String> {
    if !state.nodes.contains_key(&spec.node) {
        return require_node.then(|| MISSING_NODE.to_string());
    }
    let service_ids = spec.service_checks.iter().map(|c| &c.id);
    for id in spec.node_checks.iter().chain(service_ids) {
        match state.checks.get(&(spec.node.clone(), id.clone())) {
            None => return Some(format!("Missing check '{id}' registration")),
            Some(c) if c.status == CheckStatus::Critical => {
                return Some(format!("Check '{id}' is in {} state", c.status.as_str()))
            }
            Some(_) => {}
        }
    }
    None
}

/// The state machine's rule for a session create: Consul's check rules apply once the node is in the catalog;
/// a node the catalog does not know yet is accepted (the agent does not register its own node yet).
pub(super) fn check_session_binding(state: &State, spec: &SessionSpec) -> Result<(), String> {
    match session_binding_error(state, spec, false) {
        Some(what) => Err(what),
        None => Ok(()),
    }
}

/// Creates or updates the request's node; an unchanged node (or `skip_node_update` on an existing one) is
/// left alone so its indexes do not move.
fn ensure_node(
    state: &mut State,
    index: Index,
    now_ms: u64,
    req: &RegisterRequest,
    log: &mut ChangeLog,
) -> Result<(), String> {
    let node = req.to_node();
    match state.nodes.get(&req.node) {
        Some(_) if req.skip_node_update => return Ok(()),
        Some(old) if same_node(old, &node) => return Ok(()),
        _ => {}
    }
    if !node.id.is_empty() {
        check_node_id(state, index, now_ms, &node, log)?;
    }
    let create_index = state
        .nodes
        .get(&node.node)
        .map_or(index, |n| n.create_index);
    put_node(state, index, create_index, node, log);
    Ok(())
}

fn same_node(a: &Node, b: &Node) -> bool {
    a.id == b.id
        && a.node == b.node
        && a.address == b.address
        && a.datacenter == b.datacenter
        && a.tagged_addresses == b.tagged_addresses
        && a.meta == b.meta
}

/// Consul's node ID rules: an ID already used under another name renames that node (when the name is free);
/// a new ID may take over a name only from a node without ID or whose `serfHealth` is missing or critical.
fn check_node_id(
    state: &mut State,
    index: Index,
    now_ms: u64,
    node: &Node,
    log: &mut ChangeLog,
) -> Result<(), String> {
    let owner = state.nodes.values().find(|n| n.id == node.id).cloned();
    match owner {
        Some(old) if !old.node.eq_ignore_ascii_case(&node.node) => {
            similar_name_error(state, node, false).map_or(Ok(()), |e| {
                Err(format!(
                    "Error while renaming Node ID: {:?} ({}): {e}",
                    node.id, node.address
                ))
            })?;
            delete_node(state, index, now_ms, &old.node, log);
            Ok(())
        }
        Some(_) => Ok(()),
        None => similar_name_error(state, node, true).map_or(Ok(()), |e| {
            Err(format!("Error while renaming Node ID: {:?}: {e}", node.id))
        }),
    }
}

/// Consul's clash rule: another node with the same name (ignoring case) and another ID, alive per its
/// `serfHealth`, reserves the name (unless it has no ID and `allow_without_id`).
fn similar_name_error(state: &State, node: &Node, allow_without_id: bool) -> Option<String> {
    for other in state.nodes.values() {
        if !other.node.eq_ignore_ascii_case(&node.node) || other.id == node.id {
            continue;
        }
        let serf = state
            .checks
            .get(&(other.node.clone(), SERF_CHECK_ID.to_string()));
        let healthy = serf.is_some_and(|c| c.status != CheckStatus::Critical);
        if !(other.id.is_empty() && allow_without_id) && healthy {
            return Some(format!(
                "Node name {} is reserved by node {} with name {} ({})",
                node.node, other.id, other.node, other.address
            ));
        }
    }
    None
}

/// Stores `node` at `index`; its services' indexes move too (health results include the node).
fn put_node(
    state: &mut State,
    index: Index,
    create_index: Index,
    mut node: Node,
    log: &mut ChangeLog,
) {
    node.create_index = create_index;
    node.modify_index = index;
    let name = node.node.clone();
    state.nodes.insert(name.clone(), Arc::new(node));
    state.indexes.nodes = index;
    log.node(&name, table::NODES);
    bump_node_services(state, index, &name, log);
}

/// Creates or updates a service instance on `node`; identical content changes nothing.
fn ensure_service(
    state: &mut State,
    index: Index,
    node: &str,
    mut service: Service,
    log: &mut ChangeLog,
) -> Result<(), String> {
    let key = (node.to_string(), service.id.clone());
    let old = state.services.get(&key).cloned();
    if old.as_ref().is_some_and(|o| o.same_content(&service)) {
        return Ok(());
    }
    if !state.nodes.contains_key(node) {
        return Err(MISSING_NODE.to_string());
    }
    service.create_index = old.as_ref().map_or(index, |o| o.create_index);
    service.modify_index = index;
    if let Some(old) = old.filter(|o| o.service != service.service) {
        forget_instance(state, index, node, &old, log);
    }
    let name = service.service.clone();
    state
        .service_names
        .insert((name.clone(), node.to_string(), service.id.clone()));
    state.services.insert(key, Arc::new(service));
    state.indexes.services = index;
    bump_service(state, index, &name, log);
    Ok(())
}

/// Creates or updates a check (Consul's `ensureCheckTxn`): its service name and tags come from its service
/// instance; identical content changes nothing; a critical check invalidates the sessions bound to it.
fn ensure_check(
    state: &mut State,
    index: Index,
    now_ms: u64,
    mut check: HealthCheck,
    log: &mut ChangeLog,
) -> Result<(), String> {
    if !state.nodes.contains_key(&check.node) {
        return Err(MISSING_NODE.to_string());
    }
    if !check.service_id.is_empty() {
        let key = (check.node.clone(), check.service_id.clone());
        let Some(service) = state.services.get(&key) else {
            return Err(MISSING_SERVICE.to_string());
        };
        check.service_name = service.service.clone();
        check.service_tags = service.tags.clone();
    } else {
        check.service_name.clear();
        check.service_tags.clear();
    }
    let key = (check.node.clone(), check.check_id.clone());
    let old = state.checks.get(&key).cloned();
    if old.as_ref().is_some_and(|o| o.same_content(&check)) {
        return Ok(());
    }
    check.create_index = old.as_ref().map_or(index, |o| o.create_index);
    check.modify_index = index;
    let critical = check.status == CheckStatus::Critical;
    touch_check(state, index, &check, log);
    state.checks.insert(key.clone(), Arc::new(check));
    if critical {
        invalidate_check_sessions(state, index, now_ms, &key.0, &key.1, log);
    }
    Ok(())
}

/// Records a change to `check` (written or removed): the checks table, its node, and the indexes of the
/// service it belongs to (or of every service on its node, for a node-level check).
fn touch_check(state: &mut State, index: Index, check: &HealthCheck, log: &mut ChangeLog) {
    state.indexes.checks = index;
    log.node(&check.node, table::CHECKS);
    if check.service_id.is_empty() {
        bump_node_services(state, index, &check.node, log);
    } else {
        let key = (check.node.clone(), check.service_id.clone());
        if let Some(name) = state.services.get(&key).map(|s| s.service.clone()) {
            bump_service(state, index, &name, log);
        }
    }
}

/// Removes check `check_id` of `node` and invalidates the sessions bound to it; nothing when absent.
fn delete_check(
    state: &mut State,
    index: Index,
    now_ms: u64,
    node: &str,
    check_id: &str,
    log: &mut ChangeLog,
) {
    let key = (node.to_string(), check_id.to_string());
    let Some(check) = state.checks.remove(&key) else {
        return;
    };
    touch_check(state, index, &check, log);
    invalidate_check_sessions(state, index, now_ms, node, check_id, log);
}

/// Removes service instance `id` of `node` with its checks; nothing when absent.
fn delete_service(
    state: &mut State,
    index: Index,
    now_ms: u64,
    node: &str,
    id: &str,
    log: &mut ChangeLog,
) {
    let key = (node.to_string(), id.to_string());
    let Some(service) = state.services.get(&key).cloned() else {
        return;
    };
    let bound: Vec<String> = state
        .checks_of_node(node)
        .filter(|c| c.service_id == id)
        .map(|c| c.check_id.clone())
        .collect();
    for check_id in bound {
        delete_check(state, index, now_ms, node, &check_id, log);
    }
    state.services.remove(&key);
    state.indexes.services = index;
    forget_instance(state, index, node, &service, log);
}

/// Removes `node` with its services, its checks and its sessions; nothing when absent.
fn delete_node(state: &mut State, index: Index, now_ms: u64, node: &str, log: &mut ChangeLog) {
    if !state.nodes.contains_key(node) {
        return;
    }
    let ids: Vec<String> = state.services_of_node(node).map(|s| s.id.clone()).collect();
    for id in ids {
        delete_service(state, index, now_ms, node, &id, log);
    }
    let checks: Vec<String> = state
        .checks_of_node(node)
        .map(|c| c.check_id.clone())
        .collect();
    for id in checks {
        delete_check(state, index, now_ms, node, &id, log);
    }
    state.nodes.remove(node);
    state.indexes.nodes = index;
    log.node(node, table::NODES);
    let sessions: Vec<String> = state
        .sessions_for_node(node)
        .iter()
        .map(|s| s.spec.id.clone())
        .collect();
    for id in sessions {
        end_session(state, index, now_ms, &id, log);
    }
}

/// Drops the by-name entry of an instance that is gone (or renamed): the name's index moves, or, for its
/// last instance, the name's index goes and the extinction index moves (Consul's rule).
fn forget_instance(
    state: &mut State,
    index: Index,
    node: &str,
    old: &Service,
    log: &mut ChangeLog,
) {
    let name = old.service.clone();
    state
        .service_names
        .remove(&(name.clone(), node.to_string(), old.id.clone()));
    if state.instances_of(&name).next().is_none() {
        state.service_indexes.remove(&name);
        state.indexes.service_extinction = index;
        log.service(&name);
    } else {
        bump_service(state, index, &name, log);
    }
}

/// Moves the index of service name `name`.
fn bump_service(state: &mut State, index: Index, name: &str, log: &mut ChangeLog) {
    state.service_indexes.insert(name.to_string(), index);
    log.service(name);
}

/// Moves the index of every service name with an instance on `node`.
fn bump_node_services(state: &mut State, index: Index, node: &str, log: &mut ChangeLog) {
    let names: Vec<String> = state
        .services_of_node(node)
        .map(|s| s.service.clone())
        .collect();
    for name in names {
        bump_service(state, index, &name, log);
    }
}

/// Ends (per their behavior, with lock-delay) the sessions of `node` bound to check `check_id`.
fn invalidate_check_sessions(
    state: &mut State,
    index: Index,
    now_ms: u64,
    node: &str,
    check_id: &str,
    log: &mut ChangeLog,
) {
    let bound: Vec<String> = state
        .sessions_for_node(node)
        .iter()
        .filter(|s| {
            s.spec.node_checks.iter().any(|c| c == check_id)
                || s.spec.service_checks.iter().any(|c| c.id == check_id)
        })
        .map(|s| s.spec.id.clone())
        .collect();
    for id in bound {
        end_session(state, index, now_ms, &id, log);
    }
}
