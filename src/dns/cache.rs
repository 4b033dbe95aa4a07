//! A per-shard cache of each asked service's healthy instances, so a query on a large service does not read
//! every instance key, instance and check out of the catalog and shuffle them all.
//!
//! - What is cached: for a service name as asked (lower-cased), the registered spelling and its instances
//!   that pass the health filter (no critical or maintenance check; with `only_passing` no warning either),
//!   each with its node, its service record and whether it has a warning check, in catalog order (node, then
//!   service ID). Node and service records are shared (`Arc`) with the state they came from.
//! - Validity: the cache belongs to one catalog version, named by the nodes, services and checks tables'
//!   last-change indexes (every change to a node, an instance or a check moves one of them; KV writes move
//!   none) and `only_passing`. A state with another version, or an older applied index (a restored snapshot),
//!   empties it first.
//! - Bounds: at most [`CACHED_SERVICES_MAX`] names; inserting one more empties the cache. Names without
//!   healthy-or-not instances are not cached, so unknown names cannot fill it.
//! - Shuffling: each entry keeps a permutation of its instances; a query draws its answers with a partial
//!   Fisher-Yates pass over that permutation (a uniformly random order of as many instances as it reads, from
//!   any starting permutation), so it pays for the instances it reads, not for the whole service.

use super::records::healthy;
use crate::fsm::{CheckStatus, Index, Node, Service, State};
use crate::raft::rng::Rng;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Service names cached at most per shard.
pub const CACHED_SERVICES_MAX: usize = 256;

/// One healthy instance.
#[derive(Clone, Debug)]
pub struct CachedInstance {
    /// Its node.
    pub node: Arc<Node>,
    /// The instance.
    pub service: Arc<Service>,
    /// Whether one of its checks (node-level or its own) is warning.
    pub warning: bool,
}

/// The healthy instances of one service and the permutation its answers are drawn from.
#[derive(Clone, Debug)]
pub struct CachedService {
    /// The healthy instances, by node then service ID.
    pub instances: Vec<CachedInstance>,
    /// A permutation of `0..instances.len()`, reshuffled lazily by [`draw`].
    order: Vec<usize>,
}

impl CachedService {
    /// The instances and the permutation to draw them with ([`draw`]), borrowed apart.
    pub fn parts(&mut self) -> (&[CachedInstance], &mut [usize]) {
        (&self.instances, &mut self.order)
    }

    /// How many healthy instances the service has.
    pub fn len(&self) -> usize {
        self.instances.len()
    }

    /// Whether the service has no healthy instance.
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }
}

/// The instance (its position in the instances) at position `i` of a fresh random order, one partial
/// Fisher-Yates step on `order`: positions `0..i` must have been drawn first in this pass (as a loop from 0
/// does). `None` past the end.
pub fn draw(order: &mut [usize], i: usize, rng: &mut Rng) -> Option<usize> {
    let n = order.len();
    if i >= n {
        return None;
    }
    let j = rng.range(i as u64, n as u64) as usize;
    order.swap(i, j);
    Some(order[i])
}

/// The catalog version a cache belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Version {
    nodes: Index,
    services: Index,
    checks: Index,
    only_passing: bool,
}

/// The per-shard cache of healthy instances by service name; see the module documentation.
#[derive(Debug, Default)]
pub struct ServiceCache {
    version: Option<Version>,
    applied_index: Index,
    services: BTreeMap<String, CachedService>,
}

impl ServiceCache {
    /// An empty cache.
    pub fn new() -> ServiceCache {
        ServiceCache::default()
    }

    /// How many service names are cached.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// The healthy instances of service `name` (lower-cased, matched ignoring case, the exact spelling
    /// first) in `state`, from the cache when it belongs to `state`'s catalog version; `None` when no
    /// service of that name has instances.
    pub fn service(
        &mut self,
        state: &State,
        name: &str,
        only_passing: bool,
    ) -> Option<&mut CachedService> {
        let version = Version {
            nodes: state.nodes_index(),
            services: state.services_index(),
            checks: state.checks_index(),
            only_passing,
        };
        if self.version != Some(version) || state.applied_index() < self.applied_index {
            self.services.clear();
            self.version = Some(version);
        }
        self.applied_index = state.applied_index();
        if !self.services.contains_key(name) {
            let built = build(state, name, only_passing)?;
            if self.services.len() >= CACHED_SERVICES_MAX {
                self.services.clear();
            }
            self.services.insert(name.to_string(), built);
        }
        self.services.get_mut(name)
    }
}

/// Reads the healthy instances of `name` out of `state`.
fn build(state: &State, name: &str, only_passing: bool) -> Option<CachedService> {
    let registered = state.service_name_ignoring_case(name)?;
    let mut instances = Vec::new();
    for (node, id) in state.service_instance_ids(registered) {
        let Some((node, service, checks)) = state.health_instance_shared(node, id) else {
            continue;
        };
        if !healthy(&checks, only_passing) {
            continue;
        }
        let warning = checks.iter().any(|c| c.status == CheckStatus::Warning);
        instances.push(CachedInstance {
            node,
            service,
            warning,
        });
    }
    let order = (0..instances.len()).collect();
    Some(CachedService { instances, order })
}
