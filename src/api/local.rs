//! The agent's local state: the services and checks registered on this agent, which are the truth for its
//! node in the catalog (Consul's agent-local state). Anti-entropy makes the catalog agree with it: every
//! change marks its entry out of sync, [`LocalState::pending`] turns what is out of sync into catalog
//! commands, and [`LocalState::mark_synced`] records what the catalog accepted. A periodic full sync
//! ([`LocalState::compare`]) compares the catalog's copy of the node with the local one, marks differing
//! entries out of sync and schedules the removal of catalog entries the agent does not know.
//!
//! Entries are versioned by a revision counter, so a sync that raced with a newer change leaves the entry
//! out of sync. A removed entry stays (marked deleted) until its deregistration is synced.

use super::agent::{node_request, output_limit_bytes, truncate, ttl_ms, CHECK_OUTPUT_BYTES_CAP};
use super::{ApiResponse, Context};
use crate::fsm::{CheckStatus, Command, HealthCheck, Node, Service, State};
use std::collections::BTreeMap;

/// Services one agent may hold.
pub const LOCAL_SERVICES_MAX: usize = 16_384;
/// Checks one agent may hold.
pub const LOCAL_CHECKS_MAX: usize = 65_536;
/// The check every server registers for gossip health; anti-entropy leaves it to the servers.
pub const SERF_HEALTH_CHECK_ID: &str = "serfHealth";
/// The service a server registers for itself; anti-entropy leaves it to the servers.
pub const CONSUL_SERVICE_ID: &str = "consul";
/// Cluster size after which full syncs are spread further apart (doubling with each doubling of size).
pub const SCALE_THRESHOLD_NODES: u64 = 128;

/// An entry and its sync bookkeeping.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry<T> {
    value: T,
    /// Removed locally; the catalog copy is still to be deregistered.
    deleted: bool,
    /// The catalog holds exactly this.
    in_sync: bool,
    /// The change counter when this entry last changed.
    revision: u64,
    /// Registered through the API (kept across restarts), not from the configuration files.
    persist: bool,
    /// A check whose output alone changed while in sync: when (wall-clock ms) that output is synced
    /// (Consul's `check_update_interval`); until then the entry counts as in sync.
    output_due_ms: Option<u64>,
}

/// The version of [`Persisted`] this code writes and reads.
pub const PERSISTED_VERSION: u32 = 1;

/// What an agent keeps of its local state across restarts (the file `local/state.json` in the data dir):
/// the services and checks registered through the API, with the checks' last status.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Persisted {
    /// [`PERSISTED_VERSION`].
    pub version: u32,
    /// The services.
    pub services: Vec<Service>,
    /// The checks.
    pub checks: Vec<HealthCheck>,
}

/// The catalog's copy of one node, as a full sync compares it with the local state.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CatalogNode {
    /// The node, when registered.
    pub node: Option<Node>,
    /// Its service instances.
    pub services: Vec<Service>,
    /// Its checks.
    pub checks: Vec<HealthCheck>,
    /// How many nodes the catalog holds (scales the full-sync interval).
    pub node_count: u64,
}

impl CatalogNode {
    /// Node `name`'s entries in `state`.
    pub fn from_state(state: &State, name: &str) -> CatalogNode {
        CatalogNode {
            node: state.node(name).cloned(),
            services: state
                .node_services(name)
                .map(|(_, services)| services.into_iter().cloned().collect())
                .unwrap_or_default(),
            checks: state.node_checks(name).into_iter().cloned().collect(),
            node_count: state.node_count() as u64,
        }
    }
}

/// Which entry a sync step is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SyncKey {
    /// The node's own information (address, metadata).
    Node,
    /// A service instance, by ID.
    Service(String),
    /// A check, by ID.
    Check(String),
}

/// One catalog command of a sync and the entries (with their revisions) it brings in sync.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncStep {
    /// The command to apply.
    pub command: Command,
    /// The entries this command syncs, with the revision it carries.
    pub covers: Vec<(SyncKey, u64)>,
}

/// This agent's services and checks.
#[derive(Clone, Debug, Default)]
pub struct LocalState {
    services: BTreeMap<String, Entry<Service>>,
    checks: BTreeMap<String, Entry<HealthCheck>>,
    /// Whether the catalog's node entry matches this agent (address, metadata).
    node_in_sync: bool,
    node_revision: u64,
    revision: u64,
}

fn unknown_service(id: &str) -> ApiResponse {
    ApiResponse::text(
        404,
        format!("Unknown service ID {id:?}. Ensure that the service ID is passed, not the service name."),
    )
}

fn unknown_check(id: &str) -> ApiResponse {
    ApiResponse::text(
        404,
        format!("Unknown check ID {id:?}. Ensure that the check ID is passed, not the check name."),
    )
}

impl LocalState {
    /// An empty local state (the node still to be synced).
    pub fn new() -> LocalState {
        LocalState::default()
    }

    /// The change counter: it moves whenever a service or check is added, changed or removed.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    fn bump(&mut self) -> u64 {
        self.revision += 1;
        self.revision
    }

    /// The live service `id`.
    pub fn service(&self, id: &str) -> Option<&Service> {
        self.services
            .get(id)
            .filter(|e| !e.deleted)
            .map(|e| &e.value)
    }

    /// Every live service, by ID.
    pub fn services(&self) -> impl Iterator<Item = &Service> {
        self.services
            .values()
            .filter(|e| !e.deleted)
            .map(|e| &e.value)
    }

    /// The live check `id`.
    pub fn check(&self, id: &str) -> Option<&HealthCheck> {
        self.checks.get(id).filter(|e| !e.deleted).map(|e| &e.value)
    }

    /// Every live check, by ID.
    pub fn checks(&self) -> impl Iterator<Item = &HealthCheck> {
        self.checks
            .values()
            .filter(|e| !e.deleted)
            .map(|e| &e.value)
    }

    /// The live checks of service `id`.
    pub fn service_checks<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a HealthCheck> {
        self.checks().filter(move |c| c.service_id == id)
    }

    /// Adds or replaces a service and its checks (with `replace_checks`, the service's other checks go).
    /// Returns the TTL timer changes: `(check, Some(ttl_ms))` to arm, `(check, None)` to forget.
    /// With `persist`, they are part of [`LocalState::persisted`] (registered through the API).
    pub fn add_service(
        &mut self,
        service: Service,
        checks: Vec<HealthCheck>,
        replace_checks: bool,
        persist: bool,
    ) -> Result<Vec<(String, Option<u64>)>, ApiResponse> {
        let new_checks = checks
            .iter()
            .filter(|c| self.check(&c.check_id).is_none())
            .count();
        if self.service(&service.id).is_none() && self.services().count() >= LOCAL_SERVICES_MAX
            || self.checks().count() + new_checks > LOCAL_CHECKS_MAX
        {
            return Err(ApiResponse::text(
                500,
                "too many services or checks on this agent",
            ));
        }
        let mut ttls = Vec::new();
        if replace_checks {
            let stale: Vec<String> = self
                .service_checks(&service.id)
                .filter(|old| !checks.iter().any(|c| c.check_id == old.check_id))
                .map(|old| old.check_id.clone())
                .collect();
            for id in stale {
                self.mark_check_deleted(&id);
                ttls.push((id, None));
            }
        }
        let revision = self.bump();
        let id = service.id.clone();
        self.services.insert(id, kept(service, revision, persist));
        for check in checks {
            ttls.push((check.check_id.clone(), ttl_ms(&check)));
            self.checks
                .insert(check.check_id.clone(), kept(check, revision, persist));
        }
        Ok(ttls)
    }

    /// Removes service `id` and its checks; the TTL timers to forget.
    pub fn remove_service(&mut self, id: &str) -> Result<Vec<(String, Option<u64>)>, ApiResponse> {
        if self.service(id).is_none() {
            return Err(unknown_service(id));
        }
        let revision = self.bump();
        if let Some(entry) = self.services.get_mut(id) {
            entry.deleted = true;
            entry.in_sync = false;
            entry.revision = revision;
        }
        let checks: Vec<String> = self
            .service_checks(id)
            .map(|c| c.check_id.clone())
            .collect();
        // The catalog drops a service's checks with it: they leave without a sync of their own.
        for check in &checks {
            self.checks.remove(check);
        }
        Ok(checks.into_iter().map(|c| (c, None)).collect())
    }

    /// Adds or replaces a check; its service, if any, must be registered here. With `persist`, it is part
    /// of [`LocalState::persisted`].
    pub fn add_check(
        &mut self,
        check: HealthCheck,
        persist: bool,
    ) -> Result<Option<u64>, ApiResponse> {
        if !check.service_id.is_empty() && self.service(&check.service_id).is_none() {
            let text = format!("ServiceID {:?} does not exist", check.service_id);
            return Err(ApiResponse::text(404, text));
        }
        if self.check(&check.check_id).is_none() && self.checks().count() >= LOCAL_CHECKS_MAX {
            return Err(ApiResponse::text(
                500,
                "too many services or checks on this agent",
            ));
        }
        let ttl = ttl_ms(&check);
        let revision = self.bump();
        self.checks
            .insert(check.check_id.clone(), kept(check, revision, persist));
        Ok(ttl)
    }

    /// Removes check `id`.
    pub fn remove_check(&mut self, id: &str) -> Result<(), ApiResponse> {
        if self.check(id).is_none() {
            return Err(unknown_check(id));
        }
        self.mark_check_deleted(id);
        Ok(())
    }

    fn mark_check_deleted(&mut self, id: &str) {
        let revision = self.bump();
        if let Some(entry) = self.checks.get_mut(id) {
            entry.deleted = true;
            entry.in_sync = false;
            entry.revision = revision;
        }
    }

    /// Sets check `id`'s status and output (the output cut to the check's `OutputMaxSize`, or to
    /// [`CHECK_OUTPUT_BYTES_CAP`] when it names none: the runner cut it to the agent's limit already);
    /// `false` when there is no such check. Nothing changes (and nothing is to sync) when both are the
    /// same already.
    pub fn update_check(&mut self, id: &str, status: CheckStatus, output: &str) -> bool {
        let Some(entry) = self.checks.get(id).filter(|e| !e.deleted) else {
            return false;
        };
        let limit = match entry.value.definition.output_max_size {
            0 => CHECK_OUTPUT_BYTES_CAP,
            _ => output_limit_bytes(&entry.value.definition),
        };
        let output = truncate(output, limit);
        if entry.value.status == status && entry.value.output == output {
            return true;
        }
        let revision = self.bump();
        if let Some(entry) = self.checks.get_mut(id) {
            entry.value.status = status;
            entry.value.output = output.to_string();
            entry.in_sync = false;
            entry.revision = revision;
            entry.output_due_ms = None;
        }
        true
    }

    /// The services and checks registered through the API (live ones), to keep across restarts.
    pub fn persisted(&self) -> Persisted {
        Persisted {
            version: PERSISTED_VERSION,
            services: kept_values(&self.services),
            checks: kept_values(&self.checks),
        }
    }

    /// Adds what an earlier run persisted (out of sync, so the next sync confirms it in the catalog).
    pub fn restore(&mut self, persisted: Persisted) {
        let revision = self.bump();
        for service in persisted.services {
            self.services
                .insert(service.id.clone(), kept(service, revision, true));
        }
        for check in persisted.checks {
            let orphan = !check.service_id.is_empty() && self.service(&check.service_id).is_none();
            if !orphan {
                self.checks
                    .insert(check.check_id.clone(), kept(check, revision, true));
            }
        }
    }

    /// Like [`LocalState::update_check`], but a change of output alone to a check that is in sync is synced
    /// only `defer_ms` after `now_ms` (Consul's `check_update_interval`; 0 syncs at once): the agent shows
    /// it at once, the catalog later, and a status change syncs at once either way.
    pub fn update_check_deferring(
        &mut self,
        id: &str,
        status: CheckStatus,
        output: &str,
        now_ms: u64,
        defer_ms: u64,
    ) -> bool {
        let Some(entry) = self.checks.get(id).filter(|e| !e.deleted) else {
            return false;
        };
        let output_only = entry.value.status == status && entry.value.output != output;
        let was_synced = entry.in_sync;
        let due = entry.output_due_ms;
        if !self.update_check(id, status, output) {
            return false;
        }
        if let Some(entry) = self.checks.get_mut(id) {
            if output_only && was_synced && defer_ms > 0 {
                entry.in_sync = true;
                entry.output_due_ms = Some(due.unwrap_or(now_ms + defer_ms));
            } else {
                entry.output_due_ms = None;
            }
        }
        true
    }

    /// Marks out of sync the checks whose deferred output is due at `now_ms`; how many.
    pub fn release_deferred(&mut self, now_ms: u64) -> usize {
        let mut released = 0;
        for entry in self.checks.values_mut() {
            if entry.output_due_ms.is_some_and(|due| due <= now_ms) {
                entry.output_due_ms = None;
                entry.in_sync = false;
                released += 1;
            }
        }
        released
    }

    /// Whether everything is in sync with the catalog.
    pub fn is_synced(&self) -> bool {
        self.node_in_sync
            && self.services.values().all(|e| e.in_sync)
            && self.checks.values().all(|e| e.in_sync)
    }

    /// The catalog commands that bring what is out of sync into the catalog, in order: deregistrations,
    /// then each service with its out-of-sync checks in one registration (so an instance never shows
    /// without its checks), then the other checks in one registration (which also carries the node).
    pub fn pending(&self, ctx: &Context) -> Vec<SyncStep> {
        let mut steps = Vec::new();
        for (id, e) in self.services.iter().filter(|(_, e)| e.deleted) {
            steps.push(SyncStep {
                command: deregister(ctx, Some(id), None),
                covers: vec![(SyncKey::Service(id.clone()), e.revision)],
            });
        }
        for (id, e) in self.checks.iter().filter(|(_, e)| e.deleted) {
            steps.push(SyncStep {
                command: deregister(ctx, None, Some(id)),
                covers: vec![(SyncKey::Check(id.clone()), e.revision)],
            });
        }
        let mut node_covered = false;
        for (id, e) in self
            .services
            .iter()
            .filter(|(_, e)| !e.deleted && !e.in_sync)
        {
            let checks: Vec<&Entry<HealthCheck>> = self.dirty_checks_of(id).collect();
            let mut covers = vec![(SyncKey::Service(id.clone()), e.revision)];
            covers.extend(checks.iter().map(|c| check_key(c)));
            if !node_covered {
                covers.push((SyncKey::Node, self.node_revision));
                node_covered = true;
            }
            let checks = checks.iter().map(|c| c.value.clone()).collect();
            steps.push(SyncStep {
                command: register(ctx, Some(e.value.clone()), checks),
                covers,
            });
        }
        let rest: Vec<&Entry<HealthCheck>> = self
            .checks
            .values()
            .filter(|e| !e.deleted && !e.in_sync)
            .filter(|e| {
                e.value.service_id.is_empty()
                    || self
                        .services
                        .get(&e.value.service_id)
                        .is_some_and(|s| s.in_sync)
            })
            .collect();
        if !rest.is_empty() || (!self.node_in_sync && !node_covered) {
            let mut covers: Vec<(SyncKey, u64)> = rest.iter().map(|c| check_key(c)).collect();
            covers.push((SyncKey::Node, self.node_revision));
            let checks = rest.iter().map(|c| c.value.clone()).collect();
            steps.push(SyncStep {
                command: register(ctx, None, checks),
                covers,
            });
        }
        steps
    }

    fn dirty_checks_of<'a>(
        &'a self,
        service_id: &'a str,
    ) -> impl Iterator<Item = &'a Entry<HealthCheck>> {
        self.checks
            .values()
            .filter(move |e| !e.deleted && !e.in_sync && e.value.service_id == service_id)
    }

    /// Records that the catalog accepted a step: each covered entry still at that revision is in sync
    /// (a deleted one is forgotten).
    pub fn mark_synced(&mut self, covers: &[(SyncKey, u64)]) {
        for (key, revision) in covers {
            match key {
                SyncKey::Node if self.node_revision == *revision => self.node_in_sync = true,
                SyncKey::Node => {}
                SyncKey::Service(id) => settle(&mut self.services, id, *revision),
                SyncKey::Check(id) => settle(&mut self.checks, id, *revision),
            }
        }
    }

    /// The full sync's comparison: marks out of sync every local entry whose catalog copy (`catalog`, this
    /// agent's node) is missing or differs, and the node when its entry differs; schedules the
    /// deregistration of catalog services and checks of the node that the agent does not know (except the
    /// servers' own `consul` service and `serfHealth` check). Returns how many entries it marked.
    pub fn compare(&mut self, catalog: &CatalogNode, ctx: &Context) -> usize {
        let mut marked = 0;
        let node_matches = catalog.node.as_ref().is_some_and(|n| {
            n.address == ctx.agent.address
                && n.meta == ctx.agent.node_meta
                && n.tagged_addresses == ctx.agent.tagged_addresses
        });
        if !node_matches && self.node_in_sync {
            self.node_in_sync = false;
            self.node_revision = self.bump();
            marked += 1;
        }
        let remote_services = &catalog.services;
        let remote_checks = &catalog.checks;
        for remote in remote_services {
            if remote.id == CONSUL_SERVICE_ID && ctx.agent.server {
                continue;
            }
            if !self.services.contains_key(&remote.id) {
                let revision = self.bump();
                let mut entry = fresh(remote.clone(), revision);
                entry.deleted = true;
                self.services.insert(remote.id.clone(), entry);
                marked += 1;
            }
        }
        for remote in remote_checks {
            if remote.check_id == SERF_HEALTH_CHECK_ID {
                continue;
            }
            let owned_by_deleted = self
                .services
                .get(&remote.service_id)
                .is_some_and(|s| s.deleted);
            if !self.checks.contains_key(&remote.check_id) && !owned_by_deleted {
                let revision = self.bump();
                let mut entry = fresh(remote.clone(), revision);
                entry.deleted = true;
                self.checks.insert(remote.check_id.clone(), entry);
                marked += 1;
            }
        }
        for (id, entry) in self
            .services
            .iter_mut()
            .filter(|(_, e)| !e.deleted && e.in_sync)
        {
            let same = remote_services
                .iter()
                .any(|r| r.id == *id && same_service(r, &entry.value));
            if !same {
                entry.in_sync = false;
                marked += 1;
            }
        }
        for (id, entry) in self
            .checks
            .iter_mut()
            .filter(|(_, e)| !e.deleted && e.in_sync)
        {
            let deferred = entry.output_due_ms.is_some();
            let same = remote_checks
                .iter()
                .any(|r| r.check_id == *id && same_check(r, &entry.value, deferred));
            if !same {
                entry.in_sync = false;
                entry.output_due_ms = None;
                marked += 1;
            }
        }
        marked
    }
}

fn fresh<T>(value: T, revision: u64) -> Entry<T> {
    Entry {
        value,
        deleted: false,
        in_sync: false,
        revision,
        persist: false,
        output_due_ms: None,
    }
}

fn kept<T>(value: T, revision: u64, persist: bool) -> Entry<T> {
    Entry {
        persist,
        ..fresh(value, revision)
    }
}

fn kept_values<T: Clone>(entries: &BTreeMap<String, Entry<T>>) -> Vec<T> {
    entries
        .values()
        .filter(|e| !e.deleted && e.persist)
        .map(|e| e.value.clone())
        .collect()
}

fn check_key(entry: &Entry<HealthCheck>) -> (SyncKey, u64) {
    (SyncKey::Check(entry.value.check_id.clone()), entry.revision)
}

fn settle<T>(entries: &mut BTreeMap<String, Entry<T>>, id: &str, revision: u64) {
    let Some(entry) = entries.get_mut(id).filter(|e| e.revision == revision) else {
        return;
    };
    if entry.deleted {
        entries.remove(id);
    } else {
        entry.in_sync = true;
    }
}

/// Whether the catalog's `remote` copy holds what the agent registered as `local` (indexes aside).
fn same_service(remote: &Service, local: &Service) -> bool {
    remote.same_content(local)
}

/// Whether the catalog's `remote` copy of a check holds what the agent has (the service name and tags
/// the catalog fills in, and the indexes, aside; the output too while its sync is deferred).
fn same_check(remote: &HealthCheck, local: &HealthCheck, output_deferred: bool) -> bool {
    let output = if output_deferred {
        remote.output.clone()
    } else {
        local.output.clone()
    };
    let comparable = HealthCheck {
        node: remote.node.clone(),
        output,
        service_name: remote.service_name.clone(),
        service_tags: remote.service_tags.clone(),
        create_index: remote.create_index,
        modify_index: remote.modify_index,
        ..local.clone()
    };
    comparable == *remote
}

fn register(ctx: &Context, service: Option<Service>, checks: Vec<HealthCheck>) -> Command {
    Command::CatalogRegister {
        now_ms: ctx.now_ms,
        request: Box::new(node_request(ctx, service, checks)),
    }
}

fn deregister(ctx: &Context, service_id: Option<&str>, check_id: Option<&str>) -> Command {
    Command::CatalogDeregister {
        now_ms: ctx.now_ms,
        node: ctx.node_name.clone(),
        service_id: service_id.map(str::to_string),
        check_id: check_id.map(str::to_string),
    }
}

/// Consul's scale factor for the full-sync interval: 1 up to [`SCALE_THRESHOLD_NODES`] nodes, then one
/// more for each doubling of the cluster.
pub fn scale_factor(nodes: u64) -> u64 {
    if nodes <= SCALE_THRESHOLD_NODES {
        return 1;
    }
    let ratio = nodes as f64 / SCALE_THRESHOLD_NODES as f64;
    ratio.log2().ceil() as u64 + 1
}

/// The wait before the next full sync: `interval_ms` (Consul's `ae_interval`, 1 min) plus a random
/// stagger of up to the interval scaled by the cluster size (`random` is any `u64`).
pub fn full_sync_wait_ms(interval_ms: u64, nodes: u64, random: u64) -> u64 {
    let spread_ms = interval_ms.max(1) * scale_factor(nodes);
    interval_ms + random % spread_ms
}

#[cfg(test)]
#[path = "local_tests.rs"]
mod tests;
