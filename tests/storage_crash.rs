//! Seeded crash tests of cairn-storage over the `MemDisk` crash model.
//!
//! Each seed runs rounds of random operations on one data directory (appends across segment rolls, suffix
//! truncations, prefix purges, resets, hard-state saves, snapshots), cuts the power after a random number of
//! disk calls, builds the crashed disk (unsynced bytes lost, the first lost write torn at a random byte), reopens
//! everything and checks: recovery succeeds, no acknowledged entry, hard state or snapshot is lost, and every
//! entry served is exactly one that was written. Replay one seed with `CRASH_SEED=<n>`; run more with
//! `CRASH_SEEDS=<n>` (CI runs 1000 seeds x 4 crashes each).
//!
//! Then targeted cases for reserved segment space (FORMAT.md, "Where the log ends"): a power cut at every call of
//! a truncation, then a re-append of same-length entries (a removed frame left after the cut would read as an
//! entry); a power cut at every call of a roll; an append torn at every byte inside reserved space; reopening
//! after clean closes.

mod common;

use cairn_storage::frame::encode_frame;
use cairn_storage::segment::{scan_segment, segment_file_name, SegmentHeader};
use cairn_storage::{
    DataDir, Disk, Entry, EntryRef, HardState, Log, LogOptions, MemDisk, StorageError,
};
use common::{seeds, Rng};
use std::path::Path;

const ROUNDS_PER_SEED: usize = 4;
const OPS_PER_ROUND: usize = 40;
const OPTIONS: LogOptions = LogOptions {
    segment_bytes_max: 2048,
};

/// The operation that was running when the power went out.
#[derive(Debug, Clone)]
enum InFlight {
    None,
    Append(Vec<Entry>),
    Truncate(u64),
    Purge(u64),
    Reset(u64),
    Meta(u64),
    Snapshot(u64),
}

/// What has been acknowledged.
#[derive(Debug, Clone, Default)]
struct Model {
    first: u64,
    entries: Vec<Entry>,
    term: u64,
    snapshot_index: Option<u64>,
}

impl Model {
    fn last(&self) -> u64 {
        self.first + self.entries.len() as u64 - 1
    }

    fn get(&self, index: u64) -> Option<&Entry> {
        index
            .checked_sub(self.first)
            .and_then(|i| self.entries.get(i as usize))
    }
}

fn snapshot_payload(index: u64) -> Vec<u8> {
    let mut rng = Rng::new(index);
    rng.bytes(64 + (index % 200) as usize)
}

struct Open {
    _dir: DataDir<MemDisk>,
    log: Log<MemDisk>,
    meta: cairn_storage::MetaStore<MemDisk>,
    snaps: cairn_storage::SnapshotStore<MemDisk>,
}

fn open_all(disk: &MemDisk) -> Result<Open, StorageError> {
    let dir = DataDir::open(disk.clone(), Path::new("/data"))?;
    let (log, _) = dir.open_log(OPTIONS)?;
    let meta = dir.open_meta()?;
    let snaps = dir.open_snapshots(2)?;
    Ok(Open {
        _dir: dir,
        log,
        meta,
        snaps,
    })
}

/// Runs one random operation; on success updates the model, on failure returns what was in flight.
fn step(rng: &mut Rng, o: &mut Open, model: &mut Model) -> Result<(), InFlight> {
    let last = o.log.last_index();
    let first = o.log.first_index();
    let roll = rng.below(100);
    if roll < 68 {
        let term = model.term.max(1);
        let n = 1 + rng.below(16);
        let batch: Vec<Entry> = (0..n)
            .map(|k| {
                let len = rng.below(200) as usize;
                Entry {
                    index: last + 1 + k,
                    term,
                    payload: rng.bytes(len),
                }
            })
            .collect();
        let refs: Vec<EntryRef<'_>> = batch
            .iter()
            .map(|e| EntryRef {
                index: e.index,
                term: e.term,
                payload: &e.payload,
            })
            .collect();
        o.log
            .append(&refs)
            .map_err(|_| InFlight::Append(batch.clone()))?;
        model.entries.extend(batch);
    } else if roll < 76 {
        let lo = first.max(last.saturating_sub(24));
        let at = lo + rng.below(last + 2 - lo);
        o.log
            .truncate_from(at)
            .map_err(|_| InFlight::Truncate(at))?;
        model.entries.truncate((at - model.first) as usize);
    } else if roll < 82 {
        let through = first + rng.below(last + 1 - first.min(last + 1) + 1);
        o.log
            .purge_through(through)
            .map_err(|_| InFlight::Purge(through))?;
        let new_first = o.log.first_index();
        model.entries.drain(..(new_first - model.first) as usize);
        model.first = new_first;
    } else if roll < 85 {
        let next = 1 + rng.below(last + 40);
        o.log.reset(next).map_err(|_| InFlight::Reset(next))?;
        model.entries.clear();
        model.first = next;
    } else if roll < 93 {
        let term = model.term + 1;
        let state = HardState {
            term,
            vote: Some(format!("server-{term}").into_bytes()),
            commit: last,
        };
        o.meta.save(&state).map_err(|_| InFlight::Meta(term))?;
        model.term = term;
    } else {
        let index = last.max(model.snapshot_index.map_or(1, |i| i + 1));
        let meta = index.to_le_bytes();
        o.snaps
            .write(index, model.term, 1, &meta, &snapshot_payload(index))
            .map_err(|_| InFlight::Snapshot(index))?;
        model.snapshot_index = Some(index);
    }
    Ok(())
}

/// Checks the recovered state against the model and what was in flight; returns the new model.
fn check(o: &Open, model: &Model, inflight: &InFlight) -> Result<Model, String> {
    let (first, last) = (o.log.first_index(), o.log.last_index());
    let all = o
        .log
        .read(first, last + 1, u64::MAX)
        .map_err(|e| format!("reading the recovered log: {e}"))?;
    if all.len() as u64 != last + 1 - first {
        return Err(format!("read {} entries of {first}..={last}", all.len()));
    }
    let reset_happened = matches!(inflight, InFlight::Reset(n) if first == *n && last + 1 == *n);
    if !reset_happened {
        check_log_bounds(first, last, model, inflight)?;
        for e in &all {
            let expected = model.get(e.index).or_else(|| match inflight {
                InFlight::Append(batch) => batch.iter().find(|b| b.index == e.index),
                _ => None,
            });
            if expected != Some(e) {
                return Err(format!(
                    "entry {} served differs from what was written",
                    e.index
                ));
            }
        }
    }
    let term = o.meta.state().term;
    let meta_ok = term == model.term || matches!(inflight, InFlight::Meta(t) if *t == term);
    if !meta_ok {
        return Err(format!(
            "hard state term {term}, acknowledged {}",
            model.term
        ));
    }
    let snap = o
        .snaps
        .load_latest()
        .map_err(|e| format!("loading the snapshot: {e}"))?;
    let snap_index = snap.as_ref().map(|s| s.header.index);
    let snap_ok = snap_index == model.snapshot_index
        || matches!(inflight, InFlight::Snapshot(i) if snap_index == Some(*i));
    if !snap_ok {
        return Err(format!(
            "snapshot {snap_index:?}, acknowledged {:?}, in flight {inflight:?}",
            model.snapshot_index
        ));
    }
    if let Some(s) = &snap {
        if s.payload.as_slice() != snapshot_payload(s.header.index).as_slice() {
            return Err(format!("snapshot {} payload differs", s.header.index));
        }
    }
    Ok(Model {
        first,
        entries: all,
        term,
        snapshot_index: snap_index,
    })
}

fn check_log_bounds(
    first: u64,
    last: u64,
    model: &Model,
    inflight: &InFlight,
) -> Result<(), String> {
    let (first_ok, last_ok) = match inflight {
        InFlight::Append(batch) => (
            first == model.first,
            (model.last()..=model.last() + batch.len() as u64).contains(&last),
        ),
        InFlight::Truncate(at) => (
            first == model.first,
            (at - 1..=model.last()).contains(&last),
        ),
        InFlight::Purge(through) => (
            (model.first..=(*through + 1).max(model.first)).contains(&first),
            last == model.last(),
        ),
        InFlight::Reset(_) => (first == model.first, last <= model.last()),
        _ => (first == model.first, last == model.last()),
    };
    if first_ok && last_ok {
        Ok(())
    } else {
        Err(format!(
            "recovered log {first}..={last}, acknowledged {}..={}, in flight {inflight:?}",
            model.first,
            model.last()
        ))
    }
}

fn run_seed(seed: u64) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    let mut disk = MemDisk::new();
    let mut model = Model {
        first: 1,
        ..Model::default()
    };
    for round in 0..ROUNDS_PER_SEED {
        let mut o = open_all(&disk).map_err(|e| format!("round {round}: open: {e}"))?;
        disk.power_cut_after(rng.below(120));
        let mut inflight = InFlight::None;
        for _ in 0..OPS_PER_ROUND {
            if let Err(op) = step(&mut rng, &mut o, &mut model) {
                inflight = op;
                break;
            }
        }
        drop(o);
        disk = disk.crash(|n| rng.below(n));
        let o = open_all(&disk).map_err(|e| format!("round {round}: recovery failed: {e}"))?;
        model = check(&o, &model, &inflight).map_err(|e| format!("round {round}: {e}"))?;
    }
    Ok(())
}

#[test]
fn crash_points_lose_no_synced_entry_and_serve_no_corrupt_one() {
    let seeds = seeds("CRASH", 1000);
    let mut crashes = 0;
    for &seed in &seeds {
        if let Err(e) = run_seed(seed) {
            panic!("CRASH_SEED={seed}: {e}");
        }
        crashes += ROUNDS_PER_SEED;
    }
    assert!(crashes >= seeds.len() * ROUNDS_PER_SEED);
    eprintln!(
        "{} seeds, {crashes} crash points, all recovered",
        seeds.len()
    );
}

#[test]
fn power_cut_mid_append_can_tear_the_write() {
    // Find seeds whose crash tears an append; the recovered log must keep every synced entry.
    let mut torn = 0;
    for seed in 0..200u64 {
        let disk = MemDisk::new();
        disk.create_dir_all(Path::new("/l")).unwrap();
        let (mut log, _) = Log::open(disk.clone(), Path::new("/l"), OPTIONS).unwrap();
        let payload = vec![7u8; 100];
        for i in 1..=5u64 {
            let e = EntryRef {
                index: i,
                term: 1,
                payload: &payload,
            };
            log.append(&[e]).unwrap();
        }
        disk.power_cut_after(1); // the write happens, its fdatasync does not
        let batch: Vec<EntryRef<'_>> = (6..=9u64)
            .map(|index| EntryRef {
                index,
                term: 1,
                payload: &payload,
            })
            .collect();
        assert!(log.append(&batch).is_err());
        let mut rng = Rng::new(seed);
        let crashed = disk.crash(|n| rng.below(n));
        let (log, recovery) = Log::open(crashed, Path::new("/l"), OPTIONS).unwrap();
        assert!((5..=9).contains(&log.last_index()));
        torn += usize::from(recovery.torn_tail.is_some());
    }
    assert!(torn > 50, "the crash model tore only {torn} of 200 writes");
}

// ---- Reserved space and the end of the log (FORMAT.md, "Where the log ends") ----

/// Appends one entry; true when acknowledged.
fn append_one(log: &mut Log<MemDisk>, index: u64, term: u64, payload: &[u8]) -> bool {
    log.append(&[EntryRef {
        index,
        term,
        payload,
    }])
    .is_ok()
}

/// A fixed-length payload for (`index`, `term`): a re-appended entry ends exactly where the removed one did.
fn fixed_payload(index: u64, term: u64) -> Vec<u8> {
    let mut rng = Rng::new(index * 1000 + term);
    (0..40).map(|_| 1 | rng.next_u64() as u8).collect()
}

/// Reads the whole log and checks every entry against `expected(index)`.
fn assert_log(log: &Log<MemDisk>, last: u64, expected: impl Fn(u64) -> Entry, what: &str) {
    assert_eq!(log.last_index(), last, "{what}");
    let all = log.read(log.first_index(), last + 1, u64::MAX).unwrap();
    for e in all {
        assert_eq!(e, expected(e.index), "{what}: entry {}", e.index);
    }
}

/// Every segment but the last ends exactly at its last frame (sealed, no reserved space); the last one may
/// hold only zero bytes after its frames.
fn assert_segment_shapes(disk: &MemDisk, dir: &Path, what: &str) {
    let mut names: Vec<String> = disk
        .list_dir(dir)
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".seg"))
        .collect();
    names.sort();
    for (i, name) in names.iter().enumerate() {
        let bytes = disk.file_bytes(&dir.join(name)).unwrap();
        let first = SegmentHeader::decode(&bytes).unwrap().first_index;
        let scan = scan_segment(&bytes, first);
        assert!(scan.damage.is_none(), "{what}: {name}: {:?}", scan.damage);
        if i + 1 < names.len() {
            assert_eq!(
                scan.reserved, 0,
                "{what}: sealed {name} keeps reserved space"
            );
        }
    }
}

#[test]
fn truncate_then_crash_then_reopen_never_serves_a_removed_entry() {
    let dir = Path::new("/t");
    // (entries written, truncate from): inside one segment, and across segments (later ones are removed).
    for (written, from) in [(12u64, 5u64), (60, 5), (60, 37)] {
        for cut_after in 0..12u64 {
            for seed in seeds("TRUNC", 20) {
                let what = format!(
                    "written {written}, from {from}, cut after {cut_after}, TRUNC_SEED={seed}"
                );
                let disk = MemDisk::new();
                let (mut log, _) = Log::open(disk.clone(), dir, OPTIONS).unwrap();
                for i in 1..=written {
                    assert!(append_one(&mut log, i, 1, &fixed_payload(i, 1)));
                }
                disk.power_cut_after(cut_after);
                let acknowledged = log.truncate_from(from).is_ok();
                drop(log);
                let mut rng = Rng::new(seed);
                let disk = disk.crash(|n| rng.below(n));
                let (mut log, _) = Log::open(disk.clone(), dir, OPTIONS).unwrap();
                let last = log.last_index();
                assert!(
                    last == from - 1 || (!acknowledged && (from - 1..=written).contains(&last)),
                    "{what}: recovered up to {last}"
                );
                let old = |i: u64| Entry {
                    index: i,
                    term: 1,
                    payload: fixed_payload(i, 1),
                };
                assert_log(&log, last, old, &what);
                if last != from - 1 {
                    continue;
                }
                // Re-append the removed indexes in a new term with payloads of the same length: each new frame
                // ends exactly where a removed one did, so removed frames left on disk would read as entries.
                assert!(append_one(&mut log, from, 2, &fixed_payload(from, 2)));
                let now = |i: u64| {
                    if i < from {
                        old(i)
                    } else {
                        Entry {
                            index: i,
                            term: 2,
                            payload: fixed_payload(i, 2),
                        }
                    }
                };
                drop(log);
                for (reopened, how) in [
                    (disk.clone(), "clean reopen"),
                    (disk.crash_losing_unsynced(), "crash"),
                ] {
                    let (log, _) = Log::open(reopened.clone(), dir, OPTIONS).unwrap();
                    assert_log(&log, from, now, &format!("{what}, {how}"));
                    assert_segment_shapes(&reopened, dir, &what);
                }
            }
        }
    }
}

#[test]
fn a_crash_around_a_roll_keeps_the_sealed_segment_exact_and_the_log_whole() {
    let dir = Path::new("/r");
    // In both cases the tenth append rolls. 200-byte payloads make 224-byte frames: 32 + 9 x 224 = 2048, so nine
    // entries fill the reserved space exactly and sealing has nothing to cut. 210-byte payloads: the ninth
    // append grows the reservation to 4096 bytes and sealing cuts it back to 2138.
    // A roll is: seal (cut, sync; only when there is reserved space), create (create, allocate, header, sync,
    // rename, dir sync), then the append's write and sync. Cut the power after each of those calls.
    for (payload_len, calls) in [(200usize, 8u64), (210, 10)] {
        let payload = |i: u64| vec![i as u8 | 1; payload_len];
        let entry = |i: u64| Entry {
            index: i,
            term: 1,
            payload: payload(i),
        };
        for cut_after in 0..=calls {
            for seed in seeds("ROLL", 30) {
                let what =
                    format!("payload {payload_len}, cut after {cut_after}, ROLL_SEED={seed}");
                let disk = MemDisk::new();
                let (mut log, _) = Log::open(disk.clone(), dir, OPTIONS).unwrap();
                for i in 1..=9 {
                    assert!(append_one(&mut log, i, 1, &payload(i)));
                }
                assert_eq!(log.segment_count(), 1);
                disk.power_cut_after(cut_after);
                let acknowledged = append_one(&mut log, 10, 1, &payload(10));
                assert_eq!(acknowledged, cut_after >= calls, "{what}");
                drop(log);
                let mut rng = Rng::new(seed);
                let disk = disk.crash(|n| rng.below(n));
                let (mut log, _) = Log::open(disk.clone(), dir, OPTIONS).unwrap();
                let last = log.last_index();
                assert!(last == 10 || (!acknowledged && last == 9), "{what}: {last}");
                assert_log(&log, last, entry, &what);
                assert_segment_shapes(&disk, dir, &what);
                for i in last + 1..=12 {
                    assert!(append_one(&mut log, i, 1, &payload(i)), "{what}");
                }
                assert_eq!(log.segment_count(), 2, "{what}");
                drop(log);
                let disk = disk.crash_losing_unsynced();
                let (log, _) = Log::open(disk.clone(), dir, OPTIONS).unwrap();
                assert_log(&log, 12, entry, &what);
                assert_segment_shapes(&disk, dir, &what);
            }
        }
    }
}

#[test]
fn a_write_torn_at_any_byte_inside_reserved_space_loses_only_unacknowledged_frames() {
    let dir = Path::new("/w");
    let synced: Vec<Entry> = (1..=4)
        .map(|i| Entry {
            index: i,
            term: 1,
            payload: fixed_payload(i, 1),
        })
        .collect();
    // The torn batch: an ordinary payload, an empty one, and one ending in zero bytes (a write torn inside
    // those zeros still leaves the whole frame as intended).
    let torn_batch = [
        Entry {
            index: 5,
            term: 2,
            payload: vec![9u8; 50],
        },
        Entry {
            index: 6,
            term: 2,
            payload: Vec::new(),
        },
        Entry {
            index: 7,
            term: 2,
            payload: vec![1, 2, 3, 0, 0, 0, 0, 0],
        },
    ];
    let mut encoded = Vec::new();
    let mut frame_ends = Vec::new();
    for e in &torn_batch {
        encode_frame(&mut encoded, e.index, e.term, &e.payload);
        frame_ends.push(encoded.len());
    }
    for torn_len in 0..=encoded.len() {
        let what = format!("torn after {torn_len} of {} bytes", encoded.len());
        let disk = MemDisk::new();
        let (mut log, _) = Log::open(disk.clone(), dir, OPTIONS).unwrap();
        for e in &synced {
            assert!(append_one(&mut log, e.index, e.term, &e.payload));
        }
        let path = dir.join(segment_file_name(1));
        let reserved_len = disk.file_bytes(&path).unwrap().len();
        disk.power_cut_after(1); // the write happens, its fdatasync does not
        let refs: Vec<EntryRef<'_>> = torn_batch
            .iter()
            .map(|e| EntryRef {
                index: e.index,
                term: e.term,
                payload: &e.payload,
            })
            .collect();
        assert!(log.append(&refs).is_err());
        drop(log);
        // Keep no directory operation and no pending file operation, then tear the lost write at `torn_len`.
        let mut script = [0, 0, torn_len as u64].into_iter();
        let disk = disk.crash(|n| {
            let v = script.next().unwrap_or(0);
            assert!(v < n, "{what}: crash script out of range");
            v
        });
        // A frame survives when every byte of it past the tear was zero anyway.
        let kept = frame_ends
            .iter()
            .take_while(|&&end| encoded[torn_len.min(end)..end].iter().all(|&b| b == 0))
            .count();
        let kept_end = if kept == 0 { 0 } else { frame_ends[kept - 1] };
        let leftover = encoded[kept_end..torn_len.max(kept_end)]
            .iter()
            .any(|&b| b != 0);
        let (mut log, recovery) = Log::open(disk.clone(), dir, OPTIONS).unwrap();
        assert_eq!(log.last_index(), 4 + kept as u64, "{what}");
        assert_eq!(recovery.torn_tail.is_some(), leftover, "{what}");
        let expected = |i: u64| {
            let e = synced.iter().chain(&torn_batch).find(|e| e.index == i);
            e.cloned().unwrap()
        };
        assert_log(&log, 4 + kept as u64, expected, &what);
        let bytes = disk.file_bytes(&path).unwrap();
        assert_eq!(
            bytes.len(),
            reserved_len,
            "{what}: the reserved space is kept"
        );
        let end = scan_segment(&bytes, 1).end as usize;
        assert!(
            bytes[end..].iter().all(|&b| b == 0),
            "{what}: torn bytes remain"
        );
        // The next append goes where the log ends; a reopen finds it there.
        let next = log.last_index() + 1;
        assert!(append_one(&mut log, next, 3, b"after the tear"));
        drop(log);
        let (log, _) = Log::open(disk.crash_losing_unsynced(), dir, OPTIONS).unwrap();
        assert_eq!(log.last_index(), next, "{what}");
        assert_eq!(
            log.read(next, next + 1, u64::MAX).unwrap()[0].payload,
            b"after the tear"
        );
    }
}

#[test]
fn reopen_after_a_clean_close_appends_where_the_log_ends() {
    let dir = Path::new("/c");
    let disk = MemDisk::new();
    let mut rng = Rng::new(7);
    let mut written: Vec<Entry> = Vec::new();
    for round in 0..8 {
        let what = format!("round {round}");
        let (mut log, recovery) = Log::open(disk.clone(), dir, OPTIONS).unwrap();
        assert!(
            recovery.torn_tail.is_none() && recovery.removed.is_empty(),
            "{what}"
        );
        let last = written.len() as u64;
        assert_log(&log, last, |i| written[i as usize - 1].clone(), &what);
        for _ in 0..1 + rng.below(6) {
            let first = written.len() as u64 + 1;
            let batch: Vec<Entry> = (first..first + 1 + rng.below(8))
                .map(|index| {
                    let len = rng.below(300) as usize;
                    Entry {
                        index,
                        term: round + 1,
                        payload: rng.bytes(len),
                    }
                })
                .collect();
            let refs: Vec<EntryRef<'_>> = batch
                .iter()
                .map(|e| EntryRef {
                    index: e.index,
                    term: e.term,
                    payload: &e.payload,
                })
                .collect();
            log.append(&refs).unwrap();
            written.extend(batch);
        }
        drop(log);
        assert_segment_shapes(&disk, dir, &what);
        // The last segment keeps reserved space: its file is longer than its frames most of the time, and the
        // clean reopen above still found the end.
    }
    let (log, _) = Log::open(disk.crash_losing_unsynced(), dir, OPTIONS).unwrap();
    assert_log(
        &log,
        written.len() as u64,
        |i| written[i as usize - 1].clone(),
        "after a crash",
    );
    assert!(log.segment_count() > 2, "the rounds rolled segments");
}
