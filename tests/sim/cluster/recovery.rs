//! Bootstrapping a server's disk and recovering a server from it after a crash.

use super::*;

/// Opens a node's storage after a crash and rebuilds its Raft node and state machine.
pub(super) fn recover(
    id: ServerId,
    disk: &MemDisk,
    seed: u64,
    now: u64,
) -> Result<(Live, bool), String> {
    let dir = DataDir::open(disk.clone(), data_dir()).map_err(|e| e.to_string())?;
    let (mut log, _) = dir
        .open_log(LogOptions {
            segment_bytes_max: 4096,
        })
        .map_err(|e| e.to_string())?;
    let meta = dir.open_meta().map_err(|e| e.to_string())?;
    let snaps = dir.open_snapshots(2).map_err(|e| e.to_string())?;
    let (kv, snapshot) = match snaps.load_latest().map_err(|e| e.to_string())? {
        Some(s) => {
            let config = decode_configuration(&s.meta)?;
            let kv = Kv::decode(&s.payload).ok_or("bad snapshot payload")?;
            (kv, Some((s.header.index, s.header.term, config)))
        }
        None => (Kv::default(), None),
    };
    let stored = log
        .read(log.first_index(), log.last_index() + 1, u64::MAX)
        .map_err(|e| e.to_string())?;
    let entries = stored
        .into_iter()
        .map(|e| {
            decode_payload(&e.payload).map(|payload| Entry {
                index: e.index,
                term: e.term,
                payload,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let hs = meta.state();
    let vote = match &hs.vote {
        Some(b) => Some(ServerId(u64::from_le_bytes(
            b.as_slice().try_into().map_err(|_| "bad vote")?,
        ))),
        None => None,
    };
    let hard_state = HardState {
        term: hs.term,
        vote,
        commit: hs.commit,
    };
    let snap_index = snapshot.as_ref().map_or(0, |s| s.0);
    let raft = Node::new(
        options(id),
        seed,
        RestoreState {
            hard_state,
            snapshot,
            entries,
        },
        now,
    );
    // The stored log must hold exactly the entries Raft kept: cut a diverged suffix, or start it after the
    // snapshot when the snapshot got ahead of it (a crash between installing a snapshot and resetting the log).
    let trimmed = log
        .end_at(raft.log().last_index())
        .map_err(|e| e.to_string())?;
    let live = Live {
        raft,
        _dir: dir,
        log,
        meta,
        snaps,
        kv,
        applied: snap_index,
        last_commit: 0,
        incoming: None,
        proposals: BTreeMap::new(),
        reads: Vec::new(),
    };
    Ok((live, trimmed))
}

pub(super) fn bootstrap_disk(disk: &MemDisk, config: &Configuration) -> Result<(), String> {
    let dir = DataDir::open(disk.clone(), data_dir()).map_err(|e| e.to_string())?;
    let (mut log, _) = dir
        .open_log(LogOptions {
            segment_bytes_max: 4096,
        })
        .map_err(|e| e.to_string())?;
    cairn::agent::raft_driver::storage::append_bootstrap_entry(&mut log, config)
        .map_err(|e| e.to_string())
}
