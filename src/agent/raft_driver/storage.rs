//! The Raft driver's durable state on real files: the log, the hard state and the snapshots of one data
//! directory, recovery at startup (the same rules as the simulator's `recover`), and storage jobs: ordered
//! batches of persistence operations run off the executor thread in one go (group commit).
//!
//! Ordering inside a job is the order of the actions, with two rewrites that never make anything durable
//! earlier than Raft asked: consecutive appends merge into one (one write, one `fdatasync`), and a hard-state
//! save replaces an earlier one that no truncation or snapshot install separates from it and moves to the
//! end of the job. A hard state never moves before a truncation or an install: its commit index could
//! otherwise name entries of a diverged suffix after a crash.

use super::RaftDriverOptions;
use crate::raft::codec::{
    decode_configuration, decode_payload, encode_configuration, encode_payload,
};
use crate::raft::{Configuration, Entry, HardState, Index, Node, ServerId, Term};
use cairn_storage::snapshot::{load, snapshot_file_name, LoadedSnapshot};
use cairn_storage::{
    AnyDisk, DataDir, EntryRef, Log, LogOptions, MetaStore, SnapshotStore, StorageError,
};
use cairn_storage::{FileDisk, MemDisk};
use std::path::{Path, PathBuf};

/// The snapshot payload format the driver writes (the state machine's bytes, opaque here).
pub const SNAPSHOT_PAYLOAD_FORMAT: u32 = 1;

/// The open storage of one server. Moves into a blocking task for each job and back.
pub struct Storage {
    _dir: DataDir<AnyDisk>,
    log: Log<AnyDisk>,
    meta: MetaStore<AnyDisk>,
    snaps: SnapshotStore<AnyDisk>,
    snapshot_dir: PathBuf,
}

/// What recovery found on disk.
pub struct Recovered {
    /// The Raft hard state and stored entries, as Raft's `RestoreState`.
    pub restore: crate::raft::RestoreState,
    /// The newest snapshot's payload (the state machine's bytes), when there is one.
    pub snapshot_payload: Option<Vec<u8>>,
    /// Human-readable notes on what recovery did (torn tails cut, files removed).
    pub notes: Vec<String>,
}

/// One persistence operation.
pub enum Op {
    /// Save the hard state.
    HardState(HardState),
    /// Append entries (payloads encoded with `raft::codec`), consecutive.
    Append(Vec<(Index, Term, Vec<u8>)>),
    /// Remove stored entries from this index on.
    Truncate(Index),
    /// Write a snapshot received from the leader, then restart the log after it.
    Install {
        /// The snapshot's index.
        index: Index,
        /// Its term.
        term: Term,
        /// The configuration as of `index`, encoded.
        meta: Vec<u8>,
        /// The state machine's bytes.
        data: Vec<u8>,
    },
    /// Write a snapshot this server took.
    TakeSnapshot {
        /// The snapshot's index.
        index: Index,
        /// Its term.
        term: Term,
        /// The configuration as of `index`, encoded.
        meta: Vec<u8>,
        /// The state machine's bytes.
        data: Vec<u8>,
    },
    /// Remove whole log segments at or below this index (after a snapshot covers them).
    Purge(Index),
}

impl Op {
    fn is_barrier(&self) -> bool {
        matches!(self, Op::Truncate(_) | Op::Install { .. })
    }
}

/// Persistence operations waiting for the next job, in order.
#[derive(Default)]
pub struct PendingOps {
    ops: Vec<Op>,
}

impl PendingOps {
    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Queues a hard-state save (replacing an earlier one not separated by a barrier; see the module docs).
    pub fn save_hard_state(&mut self, hs: HardState) {
        let replace = self
            .ops
            .iter()
            .rposition(|op| op.is_barrier() || matches!(op, Op::HardState(_)));
        if let Some(at) = replace {
            if matches!(self.ops[at], Op::HardState(_)) {
                self.ops.remove(at);
            }
        }
        self.ops.push(Op::HardState(hs));
    }

    /// Queues entries to append, merging them into an earlier append when no truncation or install is between.
    pub fn append(&mut self, entries: &[Entry]) {
        let encoded = entries.iter().map(|e| {
            let mut b = Vec::with_capacity(1 + e.size_bytes() as usize);
            encode_payload(&e.payload, &mut b);
            (e.index, e.term, b)
        });
        // Snapshot writes and purges touch other entries or files: appends merge across them.
        let last_append = self
            .ops
            .iter()
            .rposition(|op| op.is_barrier() || matches!(op, Op::Append(_)))
            .filter(|&at| matches!(self.ops[at], Op::Append(_)));
        match last_append {
            Some(at) => {
                if let Op::Append(list) = &mut self.ops[at] {
                    list.extend(encoded);
                }
            }
            None => {
                // Keep a pending hard state after the entries: it then never names entries that are not durable.
                let hs_at = self
                    .ops
                    .iter()
                    .rposition(|op| !matches!(op, Op::HardState(_)))
                    .map_or(0, |at| at + 1);
                self.ops.insert(hs_at, Op::Append(encoded.collect()));
            }
        }
    }

    /// Queues any other operation.
    pub fn push(&mut self, op: Op) {
        self.ops.push(op);
    }

    /// Takes everything queued as one job.
    pub fn take_job(&mut self) -> Job {
        let ops = std::mem::take(&mut self.ops);
        let mut last_appended = None;
        let mut snapshot_taken = None;
        let mut entries = 0;
        for op in &ops {
            match op {
                Op::Append(list) => {
                    entries += list.len() as u64;
                    if let Some((i, t, _)) = list.last() {
                        last_appended = Some((*i, *t));
                    }
                }
                Op::Truncate(from) if last_appended.is_some_and(|(i, _)| i >= *from) => {
                    last_appended = None;
                }
                Op::Install { .. } => last_appended = None,
                Op::TakeSnapshot { index, .. } => snapshot_taken = Some(*index),
                _ => {}
            }
        }
        Job {
            ops,
            last_appended,
            snapshot_taken,
            entries,
        }
    }
}

/// A batch of operations run together: on the executor thread when small ([`Job::is_small`]), else on
/// glommio's blocking pool.
pub struct Job {
    ops: Vec<Op>,
    /// The last entry the job appends that no later operation of the job removes: report it as persisted.
    pub last_appended: Option<(Index, Term)>,
    /// The index of a snapshot the job writes for this server: report it taken.
    pub snapshot_taken: Option<Index>,
    /// Entries the job appends.
    pub entries: u64,
}

impl Job {
    /// The operations, for tests and logging.
    pub fn op_count(&self) -> usize {
        self.ops.len()
    }

    /// True when the job writes no snapshot: a few small writes and one `fdatasync`, short enough to run
    /// on the executor thread (a snapshot write may take long and goes to the blocking pool).
    pub fn is_small(&self) -> bool {
        !self
            .ops
            .iter()
            .any(|op| matches!(op, Op::TakeSnapshot { .. } | Op::Install { .. }))
    }
}

fn err(what: &str, e: StorageError) -> String {
    format!("{what}: {e}")
}

impl Storage {
    /// Opens (locks, recovers) the data directory at `path` on `disk`. When the directory holds no Raft state yet and
    /// `bootstrap` is given, writes the bootstrap entry first. Returns the storage and what Raft restarts from;
    /// the stored log is trimmed to exactly what Raft kept (see [`Storage::trim_to`]).
    pub fn open(
        disk: AnyDisk,
        path: &Path,
        log_options: LogOptions,
        snapshots_retained: usize,
        bootstrap: Option<&Configuration>,
    ) -> Result<(Storage, Recovered), String> {
        let dir = DataDir::open(disk, path).map_err(|e| e.to_string())?;
        let (mut log, recovery) = dir.open_log(log_options).map_err(|e| err("log", e))?;
        let mut notes = Vec::new();
        for removed in &recovery.removed {
            notes.push(format!("removed {}", removed.display()));
        }
        if let Some(t) = &recovery.torn_tail {
            notes.push(format!(
                "cut a torn tail of {} bytes at offset {} of {}: {}",
                t.bytes_dropped,
                t.offset,
                t.path.display(),
                t.reason
            ));
        }
        let meta = dir.open_meta().map_err(|e| err("hard state", e))?;
        let snaps = dir
            .open_snapshots(snapshots_retained)
            .map_err(|e| err("snapshots", e))?;
        let snapshot_dir = dir.snapshot_dir();
        let latest = snaps.load_latest().map_err(|e| err("snapshot", e))?;
        let fresh = latest.is_none() && log.last_index() == 0 && meta.state().term == 0;
        if let (true, Some(config)) = (fresh, bootstrap) {
            append_bootstrap_entry(&mut log, config).map_err(|e| err("bootstrap", e))?;
            notes.push(format!(
                "bootstrapped a configuration of {} servers",
                config.servers.len()
            ));
        }
        let (snapshot, snapshot_payload) = match latest {
            Some(s) => {
                let config = decode_configuration(&s.meta)
                    .map_err(|e| format!("snapshot {}: configuration: {e}", s.path.display()))?;
                (
                    Some((s.header.index, s.header.term, config)),
                    Some(s.payload.to_vec()),
                )
            }
            None => (None, None),
        };
        let stored = if log.last_index() >= log.first_index() {
            log.read(log.first_index(), log.last_index() + 1, u64::MAX)
                .map_err(|e| err("read log", e))?
        } else {
            Vec::new()
        };
        let entries = stored
            .into_iter()
            .map(|e| {
                decode_payload(&e.payload)
                    .map(|payload| Entry {
                        index: e.index,
                        term: e.term,
                        payload,
                    })
                    .map_err(|why| format!("log entry {}: {why}", e.index))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let hs = meta.state();
        let vote = match &hs.vote {
            Some(b) => Some(ServerId(u64::from_le_bytes(
                b.as_slice()
                    .try_into()
                    .map_err(|_| format!("hard state: a vote of {} bytes", b.len()))?,
            ))),
            None => None,
        };
        let hard_state = HardState {
            term: hs.term,
            vote,
            commit: hs.commit,
        };
        Ok((
            Storage {
                _dir: dir,
                log,
                meta,
                snaps,
                snapshot_dir,
            },
            Recovered {
                restore: crate::raft::RestoreState {
                    hard_state,
                    snapshot,
                    entries,
                },
                snapshot_payload,
                notes,
            },
        ))
    }

    /// Makes the stored log hold exactly the entries Raft kept (`kept_last` is Raft's last index): cuts a
    /// diverged suffix, or restarts the log after the snapshot when the snapshot got ahead of it (a crash
    /// between installing a snapshot and resetting the log). True when something changed.
    pub fn trim_to(&mut self, kept_last: Index) -> Result<bool, String> {
        self.log.end_at(kept_last).map_err(|e| err("trim log", e))
    }

    /// Where the snapshots live (for loading one to send without this handle).
    pub fn snapshot_dir(&self) -> &Path {
        &self.snapshot_dir
    }

    /// Runs every operation of `job` in order. An error is fatal for the server (the log refuses further
    /// writes after an IO error).
    pub fn run(&mut self, job: &Job) -> Result<(), String> {
        for op in &job.ops {
            match op {
                Op::HardState(hs) => {
                    let state = cairn_storage::HardState {
                        term: hs.term,
                        vote: hs.vote.map(|v| v.0.to_le_bytes().to_vec()),
                        commit: hs.commit,
                    };
                    self.meta
                        .save(&state)
                        .map_err(|e| err("save hard state", e))?;
                }
                Op::Append(list) => {
                    let refs: Vec<EntryRef<'_>> = list
                        .iter()
                        .map(|(index, term, payload)| EntryRef {
                            index: *index,
                            term: *term,
                            payload,
                        })
                        .collect();
                    self.log.append(&refs).map_err(|e| err("append", e))?;
                }
                Op::Truncate(from) => {
                    let result = if *from < self.log.first_index() {
                        self.log.reset(*from)
                    } else {
                        self.log.truncate_from(*from)
                    };
                    result.map_err(|e| err("truncate", e))?;
                }
                Op::Install {
                    index,
                    term,
                    meta,
                    data,
                } => {
                    self.snaps
                        .write(*index, *term, SNAPSHOT_PAYLOAD_FORMAT, meta, data)
                        .map_err(|e| err("install snapshot", e))?;
                    self.log.reset(index + 1).map_err(|e| err("reset log", e))?;
                }
                Op::TakeSnapshot {
                    index,
                    term,
                    meta,
                    data,
                } => {
                    self.snaps
                        .write(*index, *term, SNAPSHOT_PAYLOAD_FORMAT, meta, data)
                        .map_err(|e| err("write snapshot", e))?;
                }
                Op::Purge(through) => {
                    self.log
                        .purge_through(*through)
                        .map_err(|e| err("purge log", e))?;
                }
            }
        }
        Ok(())
    }
}

/// Writes the cluster-bootstrapping entry (the configuration at index 1, term 1) to an empty log; every server
/// bootstrapping the same cluster writes the same entry.
pub fn append_bootstrap_entry<D: cairn_storage::Disk>(
    log: &mut cairn_storage::Log<D>,
    config: &Configuration,
) -> cairn_storage::Result<()> {
    let entry = Node::bootstrap_entry(config.clone());
    let mut payload = Vec::new();
    encode_payload(&entry.payload, &mut payload);
    log.append(&[EntryRef {
        index: entry.index,
        term: entry.term,
        payload: &payload,
    }])
}

/// Encodes a configuration for a snapshot's meta section.
pub fn encode_meta(config: &Configuration) -> Vec<u8> {
    let mut meta = Vec::new();
    encode_configuration(config, &mut meta);
    meta
}

/// Loads the snapshot at (`index`, `term`) from `dir` on `disk` to send it (blocking; run off the executor). An error
/// when that exact snapshot is not there any more.
pub fn load_snapshot(
    disk: &AnyDisk,
    dir: &Path,
    index: Index,
    term: Term,
) -> Result<(Configuration, LoadedSnapshot), String> {
    let path = dir.join(snapshot_file_name(index, term));
    let loaded = load(disk, &path).map_err(|e| err("load snapshot", e))?;
    let config = decode_configuration(&loaded.meta)
        .map_err(|e| format!("snapshot {}: configuration: {e}", path.display()))?;
    Ok((config, loaded))
}

/// What opening storage gives the driver: the storage, its disk, the rebuilt node, the snapshot payload to
/// restore, and notes for the log.
pub(super) type Opened = (Storage, AnyDisk, Node, Option<Vec<u8>>, Vec<String>);

/// Opens storage and rebuilds the Raft node (blocking; runs on the blocking pool).
pub(super) fn open_storage(options: RaftDriverOptions) -> Result<Opened, String> {
    let log_options = LogOptions {
        segment_bytes_max: options.log_segment_bytes_max,
    };
    let disk = if options.in_memory {
        AnyDisk::Memory(MemDisk::new())
    } else {
        AnyDisk::File(FileDisk)
    };
    let (mut storage, recovered) = Storage::open(
        disk.clone(),
        &options.data_dir,
        log_options,
        options.snapshots_retained,
        options.bootstrap.as_ref(),
    )?;
    let mut notes = recovered.notes;
    let node = Node::new(options.raft.clone(), options.seed, recovered.restore, 0);
    if storage.trim_to(node.log().last_index())? {
        notes.push(format!(
            "trimmed the stored log to Raft's last index {}",
            node.log().last_index()
        ));
    }
    notes.push(format!(
        "recovered: term {}, log {}..={}, snapshot {}, commit {}",
        node.term(),
        node.log().first_index(),
        node.log().last_index(),
        node.log().snapshot_index(),
        node.commit_index()
    ));
    Ok((storage, disk, node, recovered.snapshot_payload, notes))
}

/// True when the data directory holds no Raft state yet (no entry, no snapshot, term 0): a server waiting for
/// `-bootstrap-expect` may still bootstrap it. Opens the directory and closes it again (blocking).
pub fn holds_no_state(options: &RaftDriverOptions) -> Result<bool, String> {
    if options.in_memory {
        return Ok(true);
    }
    let log_options = LogOptions {
        segment_bytes_max: options.log_segment_bytes_max,
    };
    let (_storage, recovered) = Storage::open(
        AnyDisk::File(FileDisk),
        &options.data_dir,
        log_options,
        options.snapshots_retained,
        None,
    )?;
    let restore = &recovered.restore;
    Ok(restore.snapshot.is_none() && restore.entries.is_empty() && restore.hard_state.term == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::Payload;

    fn entry(index: Index, term: Term) -> Entry {
        Entry {
            index,
            term,
            payload: Payload::Noop,
        }
    }

    fn hs(term: Term, commit: Index) -> HardState {
        HardState {
            term,
            vote: None,
            commit,
        }
    }

    fn shape(p: &PendingOps) -> Vec<String> {
        p.ops
            .iter()
            .map(|op| match op {
                Op::HardState(h) => format!("hs{}", h.commit),
                Op::Append(l) => format!("append{}..{}", l[0].0, l[l.len() - 1].0),
                Op::Truncate(f) => format!("truncate{f}"),
                Op::Install { index, .. } => format!("install{index}"),
                Op::TakeSnapshot { index, .. } => format!("snap{index}"),
                Op::Purge(i) => format!("purge{i}"),
            })
            .collect()
    }

    #[test]
    fn appends_merge_and_hard_states_move_to_the_end_but_not_past_barriers() {
        let mut p = PendingOps::default();
        p.save_hard_state(hs(1, 0));
        p.append(&[entry(1, 1), entry(2, 1)]);
        p.save_hard_state(hs(1, 1));
        p.append(&[entry(3, 1)]);
        assert_eq!(shape(&p), ["append1..3", "hs1"]);
        // Purges (and snapshot writes) do not stop appends from merging.
        p.push(Op::Purge(0));
        p.append(&[entry(4, 1)]);
        assert_eq!(shape(&p), ["append1..4", "hs1", "purge0"]);
        // A truncation does; a hard state never moves before it.
        p.push(Op::Truncate(4));
        p.save_hard_state(hs(2, 2));
        p.append(&[entry(4, 2)]);
        p.save_hard_state(hs(2, 3));
        assert_eq!(
            shape(&p),
            [
                "append1..4",
                "hs1",
                "purge0",
                "truncate4",
                "append4..4",
                "hs3"
            ]
        );
        let job = p.take_job();
        assert_eq!(job.last_appended, Some((4, 2)));
        assert_eq!(job.entries, 5);
        assert!(p.is_empty());
    }

    #[test]
    fn a_truncation_after_the_last_append_hides_it() {
        let mut p = PendingOps::default();
        p.append(&[entry(5, 1), entry(6, 1)]);
        p.push(Op::Truncate(6));
        let job = p.take_job();
        assert_eq!(job.last_appended, None);
    }
}
