//! `GET/PUT /v1/snapshot`: the operator's snapshot archive of the whole state, and its meaning.
//!
//! An archive is self-checking: a fixed header, a JSON metadata block (ID, index, term, sizes and counts), the
//! state machine snapshot bytes ([`crate::fsm::snapshot`], with their own header and CRC-32), and a SHA-256 of
//! everything before it. Any flipped bit, cut or extra byte is refused with a message naming what is wrong.
//! The layout is written down in README.md ("Snapshot archives"). It is cairn's own, not Consul's gzipped tar:
//! a Consul snapshot cannot be restored into cairn, nor the other way round.
//!
//! Layout (little-endian integers):
//! ```text
//! offset   bytes  field
//! 0        8      magic "CRNSNAP1"
//! 8        4      archive version (u32, ARCHIVE_VERSION)
//! 12       4      metadata length M (u32, at most META_BYTES_MAX)
//! 16       8      state length S (u64)
//! 24       8      zero
//! 32       M      metadata: a JSON object (ArchiveMeta)
//! 32+M     S      state: state machine snapshot bytes
//! 32+M+S   32     SHA-256 of bytes [0, 32+M+S)
//! ```

use super::cluster::ClusterView;
use super::router::method_not_allowed;
use super::{
    params, Answer, ApiRequest, ApiResponse, Context, Method, Plan, ReadPlan, ReadQuery, Render,
    WritePlan,
};
use crate::fsm::{self, Command, State};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The magic at the start of every archive.
pub const ARCHIVE_MAGIC: &[u8; 8] = b"CRNSNAP1";
/// The archive layout this code writes and reads.
pub const ARCHIVE_VERSION: u32 = 1;
/// Bytes of the fixed header.
pub const ARCHIVE_HEADER_BYTES: usize = 32;
/// Bytes of the SHA-256 trailer.
pub const ARCHIVE_TRAILER_BYTES: usize = 32;
/// The largest metadata block read.
pub const META_BYTES_MAX: usize = 64 << 10;
/// The largest archive `PUT /v1/snapshot` takes: the restore travels as one Raft command, which must stay
/// under the server RPC's command limit ([`crate::rpc::COMMAND_BYTES_MAX`], 32 MiB) when a follower forwards
/// it. About 200 000 small KV entries fit.
pub const ARCHIVE_BYTES_MAX: usize = 30 << 20;

/// Counts of what an archive holds, for `snapshot inspect`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ArchiveCounts {
    /// KV entries.
    pub kv_entries: u64,
    /// Sessions.
    pub sessions: u64,
    /// Catalog nodes.
    pub nodes: u64,
    /// Distinct service names.
    pub services: u64,
    /// Service instances.
    pub service_instances: u64,
    /// Health checks.
    pub checks: u64,
}

/// An archive's metadata block (JSON, Consul-like names).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ArchiveMeta {
    /// `<term>-<index>-<created ms>`, as Consul names its snapshots.
    #[serde(rename = "ID")]
    pub id: String,
    /// Bytes of the state part.
    pub size: u64,
    /// The state's index (the `X-Consul-Index` of the `GET`).
    pub index: u64,
    /// The Raft term when the snapshot was taken.
    pub term: u64,
    /// The archive version ([`ARCHIVE_VERSION`]).
    pub version: u32,
    /// The state machine snapshot format of the state part.
    pub state_format: u32,
    /// Wall-clock milliseconds since the Unix epoch when it was taken.
    pub created_ms: u64,
    /// The datacenter it was taken in.
    pub datacenter: String,
    /// What the state holds.
    pub counts: ArchiveCounts,
}

/// A verified archive: its metadata and the state bytes it carries.
#[derive(Debug, PartialEq, Eq)]
pub struct Archive<'a> {
    /// The metadata.
    pub meta: ArchiveMeta,
    /// The state machine snapshot bytes.
    pub state: &'a [u8],
}

/// The archive of `state`, taken at `term`, `now_ms`, in `datacenter`.
pub fn archive_of(state: &State, term: u64, now_ms: u64, datacenter: &str) -> Vec<u8> {
    let bytes = fsm::snapshot::encode(state);
    let counts = state.counts();
    let index = state.applied_index();
    let meta = ArchiveMeta {
        id: format!("{term}-{index}-{now_ms}"),
        size: bytes.len() as u64,
        index,
        term,
        version: ARCHIVE_VERSION,
        state_format: fsm::snapshot::SNAPSHOT_FORMAT,
        created_ms: now_ms,
        datacenter: datacenter.to_string(),
        counts: ArchiveCounts {
            kv_entries: counts.kv_entries,
            sessions: counts.sessions,
            nodes: counts.nodes,
            services: counts.services,
            service_instances: counts.service_instances,
            checks: counts.checks,
        },
    };
    encode_archive(&meta, &bytes)
}

/// Frames `state` with `meta` (whose `size` should be `state.len()`) and the checksum.
pub fn encode_archive(meta: &ArchiveMeta, state: &[u8]) -> Vec<u8> {
    let meta_bytes = serde_json::to_vec(meta).unwrap_or_default();
    let total = ARCHIVE_HEADER_BYTES + meta_bytes.len() + state.len() + ARCHIVE_TRAILER_BYTES;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(ARCHIVE_MAGIC);
    out.extend_from_slice(&ARCHIVE_VERSION.to_le_bytes());
    out.extend_from_slice(&(meta_bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&(state.len() as u64).to_le_bytes());
    out.extend_from_slice(&[0u8; 8]);
    out.extend_from_slice(&meta_bytes);
    out.extend_from_slice(state);
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    out
}

/// Verifies an archive (lengths, checksum, metadata) and returns what it holds; the state bytes themselves
/// are checked again (format, CRC, structure) when restored.
pub fn decode_archive(bytes: &[u8]) -> Result<Archive<'_>, String> {
    let least = ARCHIVE_HEADER_BYTES + ARCHIVE_TRAILER_BYTES;
    if bytes.len() < least {
        return Err(format!(
            "archive truncated: {} bytes, an archive has at least {least}",
            bytes.len()
        ));
    }
    if &bytes[0..8] != ARCHIVE_MAGIC {
        return Err("not a cairn snapshot archive (bad magic)".to_string());
    }
    let version = u32::from_le_bytes(array(&bytes[8..12]));
    if version != ARCHIVE_VERSION {
        return Err(format!(
            "archive version {version}, this build reads {ARCHIVE_VERSION}"
        ));
    }
    let meta_len = u32::from_le_bytes(array(&bytes[12..16])) as usize;
    let state_len = u64::from_le_bytes(array(&bytes[16..24]));
    if bytes[24..32].iter().any(|b| *b != 0) {
        return Err("archive header reserved bytes are not zero".to_string());
    }
    if meta_len > META_BYTES_MAX {
        return Err(format!(
            "archive metadata is {meta_len} bytes, at most {META_BYTES_MAX} are read"
        ));
    }
    let expected = (least as u64)
        .saturating_add(meta_len as u64)
        .saturating_add(state_len);
    let len = bytes.len() as u64;
    if len < expected {
        return Err(format!("archive truncated: {len} of {expected} bytes"));
    }
    if len > expected {
        return Err(format!(
            "{} bytes after the end of the archive",
            len - expected
        ));
    }
    let body_len = bytes.len() - ARCHIVE_TRAILER_BYTES;
    let (body, stored) = bytes.split_at(body_len);
    let computed = Sha256::digest(body);
    if computed.as_slice() != stored {
        return Err(format!(
            "archive checksum mismatch: SHA-256 {} computed, {} stored (the archive is corrupt)",
            hex(computed.as_slice()),
            hex(stored)
        ));
    }
    let meta_bytes = &body[ARCHIVE_HEADER_BYTES..ARCHIVE_HEADER_BYTES + meta_len];
    let state = &body[ARCHIVE_HEADER_BYTES + meta_len..];
    let meta: ArchiveMeta = serde_json::from_slice(meta_bytes)
        .map_err(|e| format!("archive metadata unreadable: {e}"))?;
    if meta.size != state.len() as u64 {
        return Err(format!(
            "archive metadata says {} state bytes, the archive holds {}",
            meta.size,
            state.len()
        ));
    }
    if meta.version != version {
        return Err(format!(
            "archive metadata says version {}, the header {version}",
            meta.version
        ));
    }
    Ok(Archive { meta, state })
}

/// Plans `/v1/snapshot`: `GET` reads the state into an archive (`?stale` allowed), `PUT` restores one.
pub fn plan(req: &ApiRequest) -> Plan {
    match req.method {
        Method::Get | Method::Head => match params::consistency(&req.query) {
            Ok(consistency) => Plan::Read(ReadPlan {
                consistency,
                blocking: None,
                query: ReadQuery::Snapshot,
                pretty: false,
            }),
            Err(response) => Plan::Respond(response),
        },
        Method::Put => plan_restore(req.body),
        other => Plan::Respond(method_not_allowed(other)),
    }
}

fn plan_restore(body: &[u8]) -> Plan {
    if body.len() > ARCHIVE_BYTES_MAX {
        return Plan::Respond(ApiResponse::text(
            413,
            format!(
                "Request body too large: a snapshot archive may be at most {ARCHIVE_BYTES_MAX} bytes"
            ),
        ));
    }
    match decode_archive(body) {
        Ok(archive) => Plan::Write(WritePlan {
            command: Command::Restore {
                snapshot: archive.state.to_vec(),
            },
            render: Render::Empty,
            pretty: false,
        }),
        Err(e) => Plan::Respond(ApiResponse::text(
            400,
            format!("Snapshot archive refused: {e}"),
        )),
    }
}

/// The `GET /v1/snapshot` answer: the archive, with the state's index.
pub fn answer(state: &State, cluster: &ClusterView, ctx: &Context) -> Answer {
    let body = archive_of(state, cluster.term, ctx.now_ms, &ctx.datacenter);
    Answer {
        index: state.applied_index(),
        response: ApiResponse {
            status: 200,
            content_type: Some("application/octet-stream"),
            headers: Vec::new(),
            body,
        },
    }
}

fn array<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(b);
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsm::{Fsm, KvOp, KvVerb};

    fn sample_state() -> State {
        let mut fsm = Fsm::new();
        for i in 0..20u64 {
            let mut op = KvOp::new(KvVerb::Set, &format!("k/{i:03}"));
            op.value = vec![i as u8; 3];
            fsm.apply(i + 1, &Command::Kv { now_ms: 1, op });
        }
        fsm.state()
    }

    #[test]
    fn an_archive_round_trips_with_its_index_term_and_counts() {
        let state = sample_state();
        let bytes = archive_of(&state, 7, 1_700_000_000_000, "dc1");
        let archive = decode_archive(&bytes).expect("decodes");
        assert_eq!(archive.meta.index, 20);
        assert_eq!(archive.meta.term, 7);
        assert_eq!(archive.meta.id, "7-20-1700000000000");
        assert_eq!(archive.meta.counts.kv_entries, 20);
        assert_eq!(archive.meta.size, archive.state.len() as u64);
        let restored = Fsm::restore(archive.state).expect("state restores");
        assert_eq!(restored.state(), state);
    }

    #[test]
    fn every_flipped_byte_is_refused() {
        let bytes = archive_of(&sample_state(), 3, 5, "dc1");
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            let err = decode_archive(&bad).expect_err(&format!("flip at {at} refused"));
            assert!(!err.is_empty());
        }
        // Each region names its own fault.
        let meta_len = u32::from_le_bytes(array(&bytes[12..16])) as usize;
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(decode_archive(&bad).unwrap_err().contains("bad magic"));
        let mut bad = bytes.clone();
        bad[ARCHIVE_HEADER_BYTES + meta_len + 5] ^= 1;
        assert!(decode_archive(&bad)
            .unwrap_err()
            .contains("checksum mismatch"));
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(decode_archive(&bad)
            .unwrap_err()
            .contains("checksum mismatch"));
        let mut bad = bytes.clone();
        bad[8] = 2;
        assert!(decode_archive(&bad)
            .unwrap_err()
            .contains("archive version 2"));
        let mut bad = bytes;
        bad[30] = 1;
        assert!(decode_archive(&bad).unwrap_err().contains("reserved"));
    }

    #[test]
    fn every_truncation_and_trailing_bytes_are_refused() {
        let bytes = archive_of(&sample_state(), 3, 5, "dc1");
        for cut in 0..bytes.len() {
            let err = decode_archive(&bytes[..cut]).expect_err("a cut archive is refused");
            assert!(err.contains("truncated"), "cut at {cut}: {err}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(decode_archive(&long).unwrap_err().contains("1 bytes after"));
    }

    #[test]
    fn lengths_in_the_header_cannot_overflow_or_allocate() {
        let mut bytes = archive_of(&sample_state(), 3, 5, "dc1");
        bytes[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode_archive(&bytes).unwrap_err().contains("truncated"));
        bytes[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_archive(&bytes).unwrap_err().contains("metadata is"));
    }

    #[test]
    fn metadata_must_agree_with_the_parts() {
        let state = fsm::snapshot::encode(&sample_state());
        let mut meta = ArchiveMeta {
            id: "1-1-1".into(),
            size: state.len() as u64 + 1,
            index: 1,
            term: 1,
            version: ARCHIVE_VERSION,
            state_format: fsm::snapshot::SNAPSHOT_FORMAT,
            created_ms: 1,
            datacenter: "dc1".into(),
            counts: ArchiveCounts::default(),
        };
        let err = decode_archive(&encode_archive(&meta, &state)).unwrap_err();
        assert!(err.contains("state bytes"), "{err}");
        meta.size = state.len() as u64;
        meta.version = 9;
        let err = decode_archive(&encode_archive(&meta, &state)).unwrap_err();
        assert!(err.contains("version 9"), "{err}");
    }

    #[test]
    fn put_plans_a_restore_or_refuses_the_body() {
        let bytes = archive_of(&sample_state(), 3, 5, "dc1");
        match plan_restore(&bytes) {
            Plan::Write(write) => {
                assert_eq!(write.render, Render::Empty);
                assert!(matches!(write.command, Command::Restore { .. }));
            }
            other => panic!("not a write: {other:?}"),
        }
        match plan_restore(&bytes[..bytes.len() - 1]) {
            Plan::Respond(r) => {
                assert_eq!(r.status, 400);
                assert!(String::from_utf8_lossy(&r.body).contains("truncated"));
            }
            other => panic!("not refused: {other:?}"),
        }
        match plan_restore(&vec![0u8; ARCHIVE_BYTES_MAX + 1]) {
            Plan::Respond(r) => assert_eq!(r.status, 413),
            other => panic!("not refused: {other:?}"),
        }
    }
}
