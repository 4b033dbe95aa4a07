//! Catalog reads for the HTTP layer, each in a fixed order, with the index Consul reports for it.

use super::catalog::{CheckStatus, HealthCheck, Node, Service};
use super::{Index, State};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A `/health/service` entry: the node, the instance, and the node's checks followed by the instance's.
pub type HealthEntry<'a> = (&'a Node, &'a Service, Vec<&'a HealthCheck>);

/// How many of each thing a [`State`] holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateCounts {
    /// Catalog nodes.
    pub nodes: u64,
    /// Distinct service names.
    pub services: u64,
    /// Service instances.
    pub service_instances: u64,
    /// Health checks.
    pub checks: u64,
    /// KV entries.
    pub kv_entries: u64,
    /// Sessions.
    pub sessions: u64,
    /// Sessions with a TTL.
    pub sessions_with_ttl: u64,
}

impl State {
    /// Every node, name-ascending (`/catalog/nodes`; index: [`State::nodes_index`]).
    pub fn nodes(&self) -> Vec<&Node> {
        self.nodes.values().map(|n| &**n).collect()
    }

    /// How many of each thing the state holds (for metrics).
    pub fn counts(&self) -> StateCounts {
        let mut services = 0;
        let mut last: Option<&str> = None;
        for (name, _, _) in &self.service_names {
            if last != Some(name.as_str()) {
                services += 1;
                last = Some(name.as_str());
            }
        }
        StateCounts {
            nodes: self.nodes.len() as u64,
            services,
            service_instances: self.services.len() as u64,
            checks: self.checks.len() as u64,
            kv_entries: self.kvs.len() as u64,
            sessions: self.sessions.len() as u64,
            sessions_with_ttl: self.deadlines.len() as u64,
        }
    }

    /// How many nodes the catalog holds.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Node `name` (index: [`State::nodes_index`]).
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.get(name).map(|n| &**n)
    }

    /// Each service name with the union of its instances' tags, both ascending (`/catalog/services`; index:
    /// [`State::services_index`]).
    pub fn services_by_name(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for service in self.services.values() {
            out.entry(service.service.clone())
                .or_default()
                .extend(service.tags.iter().cloned());
        }
        for tags in out.values_mut() {
            tags.sort();
            tags.dedup();
        }
        out
    }

    /// The instances of service `name` with their nodes, by node name then service ID (`/catalog/service/:name`;
    /// index: [`State::service_index`]).
    pub fn service_instances(&self, name: &str) -> Vec<(&Node, &Service)> {
        self.instances_of(name)
            .filter_map(|(node, id)| self.instance(node, id))
            .collect()
    }

    /// Node `name` and its service instances, ID-ascending (`/catalog/node/:node`; index:
    /// [`State::node_services_index`]).
    pub fn node_services(&self, name: &str) -> Option<(&Node, Vec<&Service>)> {
        let node = self.node(name)?;
        Some((node, self.services_of_node(name).collect()))
    }

    /// The checks of node `name` (node-level and its instances'), check-ID-ascending (`/health/node/:node`;
    /// index: [`State::checks_index`]).
    pub fn node_checks(&self, name: &str) -> Vec<&HealthCheck> {
        self.checks_of_node(name).collect()
    }

    /// The checks of the instances of service `name`, by node then check ID (`/health/checks/:service`; index:
    /// [`State::checks_index`]).
    pub fn service_checks(&self, name: &str) -> Vec<&HealthCheck> {
        let mut out = Vec::new();
        for (node, id) in self.instances_of(name) {
            out.extend(self.checks_of_node(node).filter(|c| c.service_id == id));
        }
        out.sort_by(|a, b| (&a.node, &a.check_id).cmp(&(&b.node, &b.check_id)));
        out
    }

    /// The checks in state `state` (`passing`, `warning`, `critical`, `maintenance`, or `any`), by node then
    /// check ID; `None` for another word (`/health/state/:state`; index: [`State::checks_index`]).
    pub fn checks_in_state(&self, state: &str) -> Option<Vec<&HealthCheck>> {
        let wanted = match state {
            "any" => None,
            other => Some(CheckStatus::parse(other)?),
        };
        let matching = self.checks.values().map(|c| &**c);
        Some(
            matching
                .filter(|c| wanted.is_none_or(|w| c.status == w))
                .collect(),
        )
    }

    /// The instances of service `name`, each with its node and with the node-level checks followed by the
    /// instance's own, by node name then service ID (`/health/service/:name`; index:
    /// [`State::health_service_index`]).
    pub fn health_service(&self, name: &str) -> Vec<HealthEntry<'_>> {
        self.service_instances(name)
            .into_iter()
            .map(|(node, service)| {
                let checks = self.checks_of_node(&node.node);
                let (mut own, node_level): (Vec<_>, Vec<_>) =
                    checks.partition(|c| !c.service_id.is_empty());
                own.retain(|c| c.service_id == service.id);
                let all = node_level.into_iter().chain(own).collect();
                (node, service, all)
            })
            .collect()
    }

    /// (node, service ID) of each instance of service `name`, ascending, without reading the instances (DNS
    /// shuffles these and reads only as many instances as it answers with).
    pub fn service_instance_ids(&self, name: &str) -> Vec<(&str, &str)> {
        self.instances_of(name).collect()
    }

    /// Instance `id` on `node` as a `/health/service` entry: the node, the instance, the node-level checks
    /// followed by the instance's own.
    pub fn health_instance(&self, node: &str, id: &str) -> Option<HealthEntry<'_>> {
        let (node, service) = self.instance(node, id)?;
        let checks = self
            .checks_of_node(&node.node)
            .filter(|c| c.service_id.is_empty())
            .chain(
                self.checks_of_node(&node.node)
                    .filter(|c| c.service_id == service.id),
            )
            .collect();
        Some((node, service, checks))
    }

    /// As [`State::health_instance`], with the node and the instance as shared handles that outlive this
    /// state (the DNS interface caches them per catalog version).
    pub fn health_instance_shared(
        &self,
        node: &str,
        id: &str,
    ) -> Option<(Arc<Node>, Arc<Service>, Vec<&HealthCheck>)> {
        let service = self.services.get(&(node.to_string(), id.to_string()))?;
        let node = self.nodes.get(node)?;
        let checks = self
            .checks_of_node(&node.node)
            .filter(|c| c.service_id.is_empty())
            .chain(
                self.checks_of_node(&node.node)
                    .filter(|c| c.service_id == service.id),
            )
            .collect();
        Some((Arc::clone(node), Arc::clone(service), checks))
    }

    /// The registered service name equal to `name` ignoring ASCII case, the exact spelling first (DNS names
    /// are case-insensitive); `None` when no such service has instances.
    pub fn service_name_ignoring_case(&self, name: &str) -> Option<&str> {
        if let Some((key, _)) = self.service_indexes.get_key_value(name) {
            if self.instances_of(key).next().is_some() {
                return Some(key.as_str());
            }
        }
        self.service_indexes
            .keys()
            .find(|key| key.eq_ignore_ascii_case(name) && self.instances_of(key).next().is_some())
            .map(String::as_str)
    }

    /// The nodes table's last change (`/catalog/nodes`, `/catalog/node`'s node part).
    pub fn nodes_index(&self) -> Index {
        self.indexes.nodes
    }

    /// The services table's last change (`/catalog/services`).
    pub fn services_index(&self) -> Index {
        self.indexes.services
    }

    /// The checks table's last change (`/health/node`, `/health/checks`, `/health/state`).
    pub fn checks_index(&self) -> Index {
        self.indexes.checks
    }

    /// The index for `/catalog/node/:node`: the last change to the nodes or services table.
    pub fn node_services_index(&self) -> Index {
        self.indexes.nodes.max(self.indexes.services)
    }

    /// The index for `/catalog/service/:name` (Consul's rule): the name's own index while it has instances;
    /// for a missing name the last extinction of any service, else the nodes and services tables' index.
    pub fn service_index(&self, name: &str) -> Index {
        self.name_index(name)
            .unwrap_or_else(|| self.node_services_index())
    }

    /// The index for `/health/service/:name`: as [`State::service_index`], with the checks table in the
    /// fallback.
    pub fn health_service_index(&self, name: &str) -> Index {
        self.name_index(name)
            .unwrap_or_else(|| self.node_services_index().max(self.indexes.checks))
    }

    /// The per-name index of `name`, or the extinction index for a missing name; `None` when neither is set.
    fn name_index(&self, name: &str) -> Option<Index> {
        if let Some(at) = self.service_indexes.get(name) {
            return Some(*at);
        }
        let gone = self.indexes.service_extinction;
        (gone != 0 && self.instances_of(name).next().is_none()).then_some(gone)
    }

    /// Instance `id` on `node`, with the node.
    fn instance(&self, node: &str, id: &str) -> Option<(&Node, &Service)> {
        let service = self.services.get(&(node.to_string(), id.to_string()))?;
        Some((self.node(node)?, &**service))
    }

    /// (node, service ID) of each instance of service `name`, ascending.
    pub(super) fn instances_of<'a>(
        &'a self,
        name: &str,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let name = name.to_string();
        let from = (name.clone(), String::new(), String::new());
        self.service_names
            .range(from..)
            .take_while(move |(n, _, _)| *n == name)
            .map(|(_, node, id)| (node.as_str(), id.as_str()))
    }

    /// The service instances on `node`, ID-ascending.
    pub(super) fn services_of_node<'a>(
        &'a self,
        node: &str,
    ) -> impl Iterator<Item = &'a Service> + 'a {
        let node = node.to_string();
        let from = (node.clone(), String::new());
        self.services
            .range(from..)
            .take_while(move |((n, _), _)| *n == node)
            .map(|(_, s)| &**s)
    }

    /// The checks on `node`, check-ID-ascending.
    pub(super) fn checks_of_node<'a>(
        &'a self,
        node: &str,
    ) -> impl Iterator<Item = &'a HealthCheck> + 'a {
        let node = node.to_string();
        let from = (node.clone(), String::new());
        self.checks
            .range(from..)
            .take_while(move |((n, _), _)| *n == node)
            .map(|(_, c)| &**c)
    }
}
