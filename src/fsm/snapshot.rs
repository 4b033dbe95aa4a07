//! Snapshot bytes: a 32-byte header, then an rkyv archive of the state as key-sorted vectors.
//!
//! Header (little-endian): `magic "CRNFSM01" (8) | format version u32 | CRC-32/IEEE of the payload u32 |
//! payload length u64 | 8 zero bytes`. The payload is validated with `rkyv::access` (bytecheck) after the
//! CRC, and then for order and references (keys strictly ascending, held keys name existing sessions, services
//! and checks name existing nodes and services, per-service indexes match the registered names), so a cut or a
//! flipped bit is an error, never a panic or a wrong state.
//!
//! Format 2 added the catalog (nodes, services, checks, per-service-name indexes), format 3 check thresholds,
//! format 4 the index offset of a restored state, format 5 the autopilot configuration. Formats 4 and 5 are
//! read (a format 4 snapshot has no autopilot configuration: the leader seeds one); older ones are refused.

use super::catalog::{HealthCheck, Node, Service};
use super::session::{Behavior, ServiceCheck, Session, SessionSpec};
use super::{AutopilotConfig, KvEntry, State, TableIndexes};
use rkyv::rancor;
use rkyv::util::AlignedVec;
use std::sync::Arc;

/// Bytes before the payload (a multiple of 16, so an aligned buffer keeps the payload aligned).
pub const SNAPSHOT_HEADER_BYTES: usize = 32;
/// The magic at the start of every state machine snapshot.
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"CRNFSM01";
/// The payload format this code writes and reads. 3: check definitions carry `SuccessBeforePassing`,
/// `FailuresBeforeWarning` and `FailuresBeforeCritical`. 4: the state carries its index offset (what a
/// snapshot restore added to Raft log indexes). 5: the autopilot configuration. Format 4 is still read
/// ([`SNAPSHOT_FORMAT_OLDEST`]); older formats are refused with a message naming both.
pub const SNAPSHOT_FORMAT: u32 = 5;
/// The oldest payload format this code reads.
pub const SNAPSHOT_FORMAT_OLDEST: u32 = 4;

/// The archived state.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Default)]
struct Image {
    applied_index: u64,
    index_offset: u64,
    kvs_index: u64,
    tombstones_index: u64,
    sessions_index: u64,
    entries: Vec<ImageEntry>,
    tombstones: Vec<ImageMark>,
    sessions: Vec<ImageSession>,
    lock_delays: Vec<ImageMark>,
    catalog: ImageCatalog,
    autopilot: Option<AutopilotConfig>,
}

/// Format 4's archived state: [`Image`] without the autopilot configuration. Its field order must not change.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Default)]
struct ImageV4 {
    applied_index: u64,
    index_offset: u64,
    kvs_index: u64,
    tombstones_index: u64,
    sessions_index: u64,
    entries: Vec<ImageEntry>,
    tombstones: Vec<ImageMark>,
    sessions: Vec<ImageSession>,
    lock_delays: Vec<ImageMark>,
    catalog: ImageCatalog,
}

impl From<ImageV4> for Image {
    fn from(v4: ImageV4) -> Image {
        Image {
            applied_index: v4.applied_index,
            index_offset: v4.index_offset,
            kvs_index: v4.kvs_index,
            tombstones_index: v4.tombstones_index,
            sessions_index: v4.sessions_index,
            entries: v4.entries,
            tombstones: v4.tombstones,
            sessions: v4.sessions,
            lock_delays: v4.lock_delays,
            catalog: v4.catalog,
            autopilot: None,
        }
    }
}

/// The catalog: nodes by name, services by (node, ID), checks by (node, check ID), and indexes.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Default)]
struct ImageCatalog {
    nodes_index: u64,
    services_index: u64,
    checks_index: u64,
    service_extinction_index: u64,
    nodes: Vec<Node>,
    /// (node name, instance).
    services: Vec<(String, Service)>,
    checks: Vec<HealthCheck>,
    /// Per-service-name indexes, name-ascending.
    service_indexes: Vec<ImageMark>,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug)]
struct ImageEntry {
    key: String,
    value: Vec<u8>,
    flags: u64,
    lock_index: u64,
    session: Option<String>,
    create_index: u64,
    modify_index: u64,
}

/// A key with a number: a tombstone's index or a lock-delay's end.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug)]
struct ImageMark {
    key: String,
    at: u64,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug)]
struct ImageSession {
    id: String,
    name: String,
    node: String,
    node_checks: Vec<String>,
    service_checks: Vec<(String, String)>,
    lock_delay_ms: u64,
    /// 0 release, 1 delete.
    behavior: u8,
    ttl_ms: u64,
    ttl: String,
    create_index: u64,
    modify_index: u64,
    deadline_ms: Option<u64>,
}

/// The snapshot bytes of `state`.
pub fn encode(state: &State) -> Vec<u8> {
    let payload = match rkyv::to_bytes::<rancor::Error>(&image_of(state)) {
        Ok(bytes) => bytes,
        // Serializing plain vectors into memory cannot fail short of allocation failure.
        Err(_) => AlignedVec::new(),
    };
    framed(SNAPSHOT_FORMAT, &payload)
}

/// The header for `format` and `payload`, then the payload.
fn framed(format: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SNAPSHOT_HEADER_BYTES + payload.len());
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.extend_from_slice(&format.to_le_bytes());
    out.extend_from_slice(&crc32(payload).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&[0u8; 8]);
    out.extend_from_slice(payload);
    out
}

/// The state in snapshot bytes written by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<State, String> {
    let (format, payload) = checked_payload(bytes)?;
    let aligned;
    let payload = if payload.as_ptr().align_offset(16) == 0 {
        payload
    } else {
        let mut copy = AlignedVec::<16>::with_capacity(payload.len());
        copy.extend_from_slice(payload);
        aligned = copy;
        aligned.as_slice()
    };
    let invalid = |e: rancor::Error| format!("snapshot payload invalid: {e}");
    let image = if format == SNAPSHOT_FORMAT_OLDEST {
        let archived = rkyv::access::<ArchivedImageV4, rancor::Error>(payload).map_err(invalid)?;
        Image::from(rkyv::deserialize::<ImageV4, rancor::Error>(archived).map_err(invalid)?)
    } else {
        let archived = rkyv::access::<ArchivedImage, rancor::Error>(payload).map_err(invalid)?;
        rkyv::deserialize::<Image, rancor::Error>(archived).map_err(invalid)?
    };
    state_of(image)
}

/// The format and the payload after a valid header, its length and CRC checked.
fn checked_payload(bytes: &[u8]) -> Result<(u32, &[u8]), String> {
    if bytes.len() < SNAPSHOT_HEADER_BYTES {
        return Err(format!(
            "snapshot cut short: {} of {SNAPSHOT_HEADER_BYTES} header bytes",
            bytes.len()
        ));
    }
    let (header, payload) = bytes.split_at(SNAPSHOT_HEADER_BYTES);
    if &header[0..8] != SNAPSHOT_MAGIC {
        return Err("not a state machine snapshot (bad magic)".to_string());
    }
    let format = u32::from_le_bytes(array(&header[8..12]));
    if !(SNAPSHOT_FORMAT_OLDEST..=SNAPSHOT_FORMAT).contains(&format) {
        return Err(format!(
            "snapshot format {format}, this server reads {SNAPSHOT_FORMAT_OLDEST} to {SNAPSHOT_FORMAT}"
        ));
    }
    let stored_crc = u32::from_le_bytes(array(&header[12..16]));
    let len = u64::from_le_bytes(array(&header[16..24]));
    if header[24..32].iter().any(|b| *b != 0) {
        return Err("snapshot header reserved bytes are not zero".to_string());
    }
    if len != payload.len() as u64 {
        return Err(format!(
            "snapshot payload is {} bytes, header says {len}",
            payload.len()
        ));
    }
    let crc = crc32(payload);
    if crc != stored_crc {
        return Err(format!(
            "snapshot payload CRC mismatch (stored {stored_crc:#010x}, computed {crc:#010x})"
        ));
    }
    Ok((format, payload))
}

fn array<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(b);
    out
}

fn image_of(state: &State) -> Image {
    Image {
        applied_index: state.applied_index,
        index_offset: state.index_offset,
        kvs_index: state.indexes.kvs,
        tombstones_index: state.indexes.tombstones,
        sessions_index: state.indexes.sessions,
        entries: state.kvs.values().map(|e| image_entry(e)).collect(),
        tombstones: marks(&state.tombstones),
        sessions: state
            .sessions
            .values()
            .map(|s| image_session(s, state.deadlines.get(&s.spec.id).copied()))
            .collect(),
        lock_delays: marks(&state.lock_delays),
        catalog: image_catalog(state),
        autopilot: state.autopilot.as_deref().cloned(),
    }
}

fn image_catalog(state: &State) -> ImageCatalog {
    ImageCatalog {
        nodes_index: state.indexes.nodes,
        services_index: state.indexes.services,
        checks_index: state.indexes.checks,
        service_extinction_index: state.indexes.service_extinction,
        nodes: state.nodes.values().map(|n| (**n).clone()).collect(),
        services: state
            .services
            .iter()
            .map(|((node, _), s)| (node.clone(), (**s).clone()))
            .collect(),
        checks: state.checks.values().map(|c| (**c).clone()).collect(),
        service_indexes: marks(&state.service_indexes),
    }
}

fn marks(map: &imbl::OrdMap<String, u64>) -> Vec<ImageMark> {
    map.iter()
        .map(|(key, at)| ImageMark {
            key: key.clone(),
            at: *at,
        })
        .collect()
}

fn image_entry(e: &KvEntry) -> ImageEntry {
    ImageEntry {
        key: e.key.clone(),
        value: e.value.to_vec(),
        flags: e.flags,
        lock_index: e.lock_index,
        session: e.session.clone(),
        create_index: e.create_index,
        modify_index: e.modify_index,
    }
}

fn image_session(s: &Session, deadline_ms: Option<u64>) -> ImageSession {
    let spec = &s.spec;
    ImageSession {
        id: spec.id.clone(),
        name: spec.name.clone(),
        node: spec.node.clone(),
        node_checks: spec.node_checks.clone(),
        service_checks: spec
            .service_checks
            .iter()
            .map(|c| (c.id.clone(), c.namespace.clone()))
            .collect(),
        lock_delay_ms: spec.lock_delay_ms,
        behavior: match spec.behavior {
            Behavior::Release => 0,
            Behavior::Delete => 1,
        },
        ttl_ms: spec.ttl_ms,
        ttl: spec.ttl.clone(),
        create_index: s.create_index,
        modify_index: s.modify_index,
        deadline_ms,
    }
}

/// Rebuilds the state, checking what the archive format cannot: order and references.
fn state_of(image: Image) -> Result<State, String> {
    if image.index_offset > image.applied_index {
        return Err(format!(
            "snapshot index offset {} exceeds its applied index {}",
            image.index_offset, image.applied_index
        ));
    }
    let mut state = State {
        applied_index: image.applied_index,
        index_offset: image.index_offset,
        indexes: TableIndexes {
            kvs: image.kvs_index,
            tombstones: image.tombstones_index,
            sessions: image.sessions_index,
            nodes: image.catalog.nodes_index,
            services: image.catalog.services_index,
            checks: image.catalog.checks_index,
            service_extinction: image.catalog.service_extinction_index,
        },
        autopilot: image.autopilot.map(Arc::new),
        ..State::default()
    };
    restore_catalog(&mut state, image.catalog)?;
    ascending("session", image.sessions.iter().map(|s| s.id.as_str()))?;
    for s in image.sessions {
        let (id, deadline) = (s.id.clone(), s.deadline_ms);
        state.sessions.insert(id.clone(), Arc::new(session_of(s)?));
        if let Some(at) = deadline {
            state.deadlines.insert(id, at);
        }
    }
    ascending("key", image.entries.iter().map(|e| e.key.as_str()))?;
    for e in image.entries {
        if let Some(s) = &e.session {
            if !state.sessions.contains_key(s) {
                return Err(format!(
                    "snapshot invalid: key {:?} held by unknown session {s:?}",
                    e.key
                ));
            }
            state.held.insert((s.clone(), e.key.clone()));
        }
        state.kvs.insert(e.key.clone(), Arc::new(entry_of(e)));
    }
    state.tombstones = marks_of("tombstone", image.tombstones)?;
    state.lock_delays = marks_of("lock-delay", image.lock_delays)?;
    Ok(state)
}

/// Rebuilds the catalog tables, refusing disorder and dangling references.
fn restore_catalog(state: &mut State, catalog: ImageCatalog) -> Result<(), String> {
    ascending("node", catalog.nodes.iter().map(|n| n.node.as_str()))?;
    for node in catalog.nodes {
        state.nodes.insert(node.node.clone(), Arc::new(node));
    }
    ascending_pairs(
        "service",
        catalog
            .services
            .iter()
            .map(|(n, s)| (n.as_str(), s.id.as_str())),
    )?;
    for (node, service) in catalog.services {
        if !state.nodes.contains_key(&node) {
            return Err(format!(
                "snapshot invalid: service {:?} on unknown node {node:?}",
                service.id
            ));
        }
        let name = (service.service.clone(), node.clone(), service.id.clone());
        state.service_names.insert(name);
        state
            .services
            .insert((node, service.id.clone()), Arc::new(service));
    }
    let keys = catalog
        .checks
        .iter()
        .map(|c| (c.node.as_str(), c.check_id.as_str()));
    ascending_pairs("check", keys)?;
    for check in catalog.checks {
        check_references(state, &check)?;
        let key = (check.node.clone(), check.check_id.clone());
        state.checks.insert(key, Arc::new(check));
    }
    state.service_indexes = marks_of("service index", catalog.service_indexes)?;
    let names: std::collections::BTreeSet<&String> =
        state.service_names.iter().map(|(n, _, _)| n).collect();
    if names.len() != state.service_indexes.len()
        || names
            .iter()
            .any(|n| !state.service_indexes.contains_key(*n))
    {
        return Err(
            "snapshot invalid: per-service indexes do not match the registered services"
                .to_string(),
        );
    }
    Ok(())
}

/// A restored check must name an existing node and, if bound to one, an existing service instance on it.
fn check_references(state: &State, check: &HealthCheck) -> Result<(), String> {
    if !state.nodes.contains_key(&check.node) {
        return Err(format!(
            "snapshot invalid: check {:?} on unknown node {:?}",
            check.check_id, check.node
        ));
    }
    let service = (check.node.clone(), check.service_id.clone());
    if !check.service_id.is_empty() && !state.services.contains_key(&service) {
        return Err(format!(
            "snapshot invalid: check {:?} names unknown service {:?}",
            check.check_id, check.service_id
        ));
    }
    Ok(())
}

fn ascending_pairs<'a>(
    what: &str,
    keys: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<(), String> {
    let mut last: Option<(&str, &str)> = None;
    for key in keys {
        if last.is_some_and(|l| l >= key) {
            return Err(format!("snapshot invalid: {what} {key:?} out of order"));
        }
        last = Some(key);
    }
    Ok(())
}

fn ascending<'a>(what: &str, keys: impl Iterator<Item = &'a str>) -> Result<(), String> {
    let mut last: Option<&str> = None;
    for key in keys {
        if last.is_some_and(|l| l >= key) {
            return Err(format!("snapshot invalid: {what} {key:?} out of order"));
        }
        last = Some(key);
    }
    Ok(())
}

fn marks_of(what: &str, marks: Vec<ImageMark>) -> Result<imbl::OrdMap<String, u64>, String> {
    ascending(what, marks.iter().map(|m| m.key.as_str()))?;
    Ok(marks.into_iter().map(|m| (m.key, m.at)).collect())
}

fn entry_of(e: ImageEntry) -> KvEntry {
    KvEntry {
        key: e.key,
        value: Arc::from(e.value),
        flags: e.flags,
        lock_index: e.lock_index,
        session: e.session,
        create_index: e.create_index,
        modify_index: e.modify_index,
    }
}

fn session_of(s: ImageSession) -> Result<Session, String> {
    let behavior = match s.behavior {
        0 => Behavior::Release,
        1 => Behavior::Delete,
        b => return Err(format!("snapshot invalid: session behavior {b}")),
    };
    Ok(Session {
        spec: SessionSpec {
            id: s.id,
            name: s.name,
            node: s.node,
            node_checks: s.node_checks,
            service_checks: s
                .service_checks
                .into_iter()
                .map(|(id, namespace)| ServiceCheck { id, namespace })
                .collect(),
            lock_delay_ms: s.lock_delay_ms,
            behavior,
            ttl_ms: s.ttl_ms,
            ttl: s.ttl,
        },
        create_index: s.create_index,
        modify_index: s.modify_index,
    })
}

/// The CRC-32/IEEE table (reflected polynomial 0xEDB88320), built at compile time.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[n] = c;
        n += 1;
    }
    table
};

/// CRC-32/IEEE of `bytes` (the same function as `crc32fast::hash`).
pub(super) fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for b in bytes {
        c = CRC_TABLE[((c ^ u32::from(*b)) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod crc_tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(super::crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn format_4_snapshots_still_restore_without_an_autopilot_configuration() {
        let v4 = ImageV4 {
            applied_index: 7,
            kvs_index: 7,
            entries: vec![ImageEntry {
                key: "k".to_string(),
                value: b"v".to_vec(),
                flags: 0,
                lock_index: 0,
                session: None,
                create_index: 7,
                modify_index: 7,
            }],
            ..ImageV4::default()
        };
        let payload = rkyv::to_bytes::<rancor::Error>(&v4).unwrap();
        let state = decode(&framed(4, &payload)).unwrap();
        assert_eq!(state.applied_index(), 7);
        assert_eq!(state.kv_get("k").map(|e| e.modify_index), Some(7));
        assert!(state.autopilot_config().is_none());
        let err = decode(&framed(3, &payload)).unwrap_err();
        assert_eq!(err, "snapshot format 3, this server reads 4 to 5");
    }
}
