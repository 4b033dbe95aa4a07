//! cairn-storage behaviour tests: bit flips in sealed segments and in the tail, reads checking CRCs, segment
//! rolling, truncation, purge, reset, the one-write-one-sync rule, the data dir lock, snapshots, and seeded codec
//! round trips (plus random bytes through every decoder, which must never panic).

mod common;

use cairn_storage::frame::{decode_frame, encode_frame};
use cairn_storage::segment::{scan_segment, SegmentHeader, SEGMENT_HEADER_BYTES};
use cairn_storage::snapshot::SnapshotHeader;
use cairn_storage::{DataDir, Disk, EntryRef, FileDisk, Log, LogOptions, MemDisk, StorageError};
use common::{seeds, Rng};
use std::path::{Path, PathBuf};

const SMALL: LogOptions = LogOptions {
    segment_bytes_max: 1024,
};

fn dir() -> &'static Path {
    Path::new("/log")
}

/// A MemDisk log with entries 1..=n of 40..80-byte payloads derived from the index, in several segments.
fn filled_log(n: u64) -> (MemDisk, Log<MemDisk>) {
    let disk = MemDisk::new();
    let (mut log, _) = Log::open(disk.clone(), dir(), SMALL).unwrap();
    for i in 1..=n {
        let p = payload(i);
        log.append(&[EntryRef {
            index: i,
            term: 1 + i / 10,
            payload: &p,
        }])
        .unwrap();
    }
    (disk, log)
}

fn payload(i: u64) -> Vec<u8> {
    Rng::new(i).bytes(40 + (i % 40) as usize)
}

fn segment_paths(disk: &MemDisk) -> Vec<PathBuf> {
    let mut names = disk.list_dir(dir()).unwrap();
    names.sort();
    names
        .into_iter()
        .filter(|n| n.ends_with(".seg"))
        .map(|n| dir().join(n))
        .collect()
}

fn reopen(disk: &MemDisk) -> Result<Log<MemDisk>, StorageError> {
    Log::open(disk.clone(), dir(), SMALL).map(|(log, _)| log)
}

#[test]
fn bit_flips_in_sealed_segments_are_startup_errors_naming_file_and_offset() {
    for seed in seeds("FLIP", 300) {
        let (disk, _log) = filled_log(60);
        let paths = segment_paths(&disk);
        assert!(
            paths.len() >= 3,
            "want several segments, got {}",
            paths.len()
        );
        let mut rng = Rng::new(seed);
        let victim = &paths[rng.below(paths.len() as u64 - 1) as usize];
        let len = disk.file_bytes(victim).unwrap().len() as u64;
        let offset = rng.below(len);
        assert!(disk.flip_bit(victim, offset, rng.below(8) as u8));
        let err = reopen(&disk)
            .err()
            .unwrap_or_else(|| panic!("FLIP_SEED={seed}: flip at {offset} undetected"));
        let text = err.to_string();
        assert!(err.is_corruption(), "FLIP_SEED={seed}: {text}");
        assert!(
            text.contains(&victim.display().to_string()),
            "FLIP_SEED={seed}: {text}"
        );
        let StorageError::Corrupt {
            offset: reported, ..
        } = err
        else {
            unreachable!()
        };
        assert!(
            reported <= offset,
            "FLIP_SEED={seed}: reported {reported} after the flip at {offset}"
        );
    }
}

#[test]
fn bit_flip_in_the_last_frame_is_dropped_as_a_torn_tail_keeping_the_reserved_space() {
    for seed in seeds("TAILFLIP", 100) {
        let (disk, log) = filled_log(60);
        let last = segment_paths(&disk).pop().unwrap();
        let bytes = disk.file_bytes(&last).unwrap();
        let first = SegmentHeader::decode(&bytes).unwrap().first_index;
        let end = scan_segment(&bytes, first).end;
        let frame_len = (24 + payload(60).len()) as u64;
        let frame_start = end - frame_len;
        let mut rng = Rng::new(seed);
        let offset = frame_start + rng.below(frame_len);
        drop(log);
        assert!(disk.flip_bit(&last, offset, rng.below(8) as u8));
        let flipped = disk.file_bytes(&last).unwrap();
        let non_zero_end = flipped.iter().rposition(|&b| b != 0).unwrap() as u64 + 1;
        let (mut log, recovery) = Log::open(disk.clone(), dir(), SMALL).unwrap();
        assert_eq!(log.last_index(), 59, "TAILFLIP_SEED={seed}");
        let torn = recovery.torn_tail.expect("a torn tail is reported");
        assert_eq!(
            (torn.offset, torn.bytes_dropped),
            (frame_start, non_zero_end - frame_start)
        );
        let after = disk.file_bytes(&last).unwrap();
        assert_eq!(after.len(), bytes.len(), "the reserved space is kept");
        assert_eq!(after[..frame_start as usize], bytes[..frame_start as usize]);
        assert!(
            after[frame_start as usize..].iter().all(|&b| b == 0),
            "TAILFLIP_SEED={seed}: the torn bytes are gone"
        );
        let entries = log.read(1, 60, u64::MAX).unwrap();
        assert!(entries.iter().all(|e| e.payload == payload(e.index)));
        // The next append goes where the log ends, and a reopen finds it there.
        let p = b"re-appended".to_vec();
        log.append(&[EntryRef {
            index: 60,
            term: 99,
            payload: &p,
        }])
        .unwrap();
        drop(log);
        let log = reopen(&disk.crash_losing_unsynced()).unwrap();
        assert_eq!(log.last_index(), 60);
        assert_eq!(log.read(60, 61, u64::MAX).unwrap()[0].payload, p);
    }
}

#[test]
fn bit_flip_mid_last_segment_with_valid_frames_after_is_an_error() {
    let (disk, log) = filled_log(60);
    let last = segment_paths(&disk).pop().unwrap();
    drop(log);
    // Damage the first frame of the last segment: valid frames follow, so this is not a torn tail.
    assert!(disk.flip_bit(&last, SEGMENT_HEADER_BYTES as u64 + 10, 3));
    let err = reopen(&disk)
        .err()
        .expect("damage before valid frames is an error");
    assert!(err.to_string().contains("a valid frame follows"), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("at offset {SEGMENT_HEADER_BYTES}")),
        "{err}"
    );
}

#[test]
fn reads_check_crcs_again() {
    let (disk, log) = filled_log(30);
    let first = segment_paths(&disk)[0].clone();
    assert!(disk.flip_bit(&first, SEGMENT_HEADER_BYTES as u64 + 30, 1));
    let err = log.read(1, 5, u64::MAX).unwrap_err();
    assert!(err.is_corruption(), "{err}");
    assert!(err.to_string().contains("frame CRC mismatch"), "{err}");
}

#[test]
fn real_files_name_the_path_and_offset_of_damage() {
    let tmp = TempDir::new("flip");
    let opts = SMALL;
    {
        let (mut log, _) = Log::open(FileDisk, &tmp.0, opts).unwrap();
        for i in 1..=40 {
            let p = payload(i);
            log.append(&[EntryRef {
                index: i,
                term: 1,
                payload: &p,
            }])
            .unwrap();
        }
    }
    let mut names: Vec<_> = std::fs::read_dir(&tmp.0)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let victim = &names[0];
    let mut bytes = std::fs::read(victim).unwrap();
    bytes[SEGMENT_HEADER_BYTES + 24 + 5] ^= 0x40;
    std::fs::write(victim, &bytes).unwrap();
    let err = Log::open(FileDisk, &tmp.0, opts)
        .err()
        .expect("corruption is detected");
    let want = format!(
        "corrupt log segment {} at offset {SEGMENT_HEADER_BYTES}: frame CRC mismatch",
        victim.display()
    );
    assert!(err.to_string().starts_with(&want), "{err}");
}

#[test]
fn real_segments_are_reserved_ahead_sealed_exact_and_reopened_at_their_end() {
    let tmp = TempDir::new("reserve");
    let seg_files = || {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&tmp.0)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        paths
    };
    let mut next = 1u64;
    for round in 0..4 {
        let (mut log, recovery) = Log::open(FileDisk, &tmp.0, SMALL).unwrap();
        assert!(recovery.torn_tail.is_none(), "round {round}");
        assert_eq!(log.last_index(), next - 1, "round {round}");
        if round == 0 {
            let paths = seg_files();
            assert_eq!(paths.len(), 1);
            assert_eq!(
                std::fs::metadata(&paths[0]).unwrap().len(),
                1024,
                "reserved at creation"
            );
        }
        for _ in 0..7 {
            let p = payload(next);
            log.append(&[EntryRef {
                index: next,
                term: 1,
                payload: &p,
            }])
            .unwrap();
            next += 1;
        }
        drop(log);
        let paths = seg_files();
        for (i, path) in paths.iter().enumerate() {
            let bytes = std::fs::read(path).unwrap();
            let first = SegmentHeader::decode(&bytes).unwrap().first_index;
            let scan = scan_segment(&bytes, first);
            assert!(scan.damage.is_none(), "{}", path.display());
            if i + 1 < paths.len() {
                assert_eq!(
                    scan.reserved,
                    0,
                    "sealed {} ends at its frames",
                    path.display()
                );
            } else {
                assert_eq!(
                    bytes.len() % 1024,
                    0,
                    "the last segment is reserved in whole units"
                );
            }
        }
    }
    let (log, _) = Log::open(FileDisk, &tmp.0, SMALL).unwrap();
    assert!(log.segment_count() > 1);
    let all = log.read(1, next, u64::MAX).unwrap();
    assert_eq!(all.len() as u64, next - 1);
    assert!(all.iter().all(|e| e.payload == payload(e.index)));
}

#[test]
fn append_is_one_write_and_one_sync_per_batch_and_segments_roll() {
    let disk = MemDisk::new();
    let (mut log, _) = Log::open(disk.clone(), dir(), SMALL).unwrap();
    let p = vec![1u8; 100];
    let batch: Vec<EntryRef<'_>> = (1..=8)
        .map(|index| EntryRef {
            index,
            term: 1,
            payload: &p,
        })
        .collect();
    let before = disk.stats();
    log.append(&batch).unwrap();
    let after = disk.stats();
    assert_eq!(after.writes - before.writes, 1);
    assert_eq!(after.file_syncs - before.file_syncs, 1);
    assert_eq!(after.dir_syncs, before.dir_syncs);
    // 32 + 8 x 124 = 1024 bytes: the batch fills the reserved space exactly, so nothing was allocated.
    assert_eq!(after.allocates, before.allocates);
    assert_eq!(
        disk.file_bytes(&segment_paths(&disk)[0]).unwrap().len(),
        1024
    );
    // The segment is now over 1 KiB: the next append starts a new segment first.
    let e = EntryRef {
        index: 9,
        term: 2,
        payload: &p,
    };
    log.append(&[e]).unwrap();
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.term(9), Some(2));
    assert_eq!(log.term(8), Some(1));
    let err = log
        .append(&[EntryRef {
            index: 11,
            term: 2,
            payload: &p,
        }])
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("append of index 11 where 10 was expected"),
        "{err}"
    );
}

#[test]
fn reads_span_segments_and_honour_the_byte_budget() {
    let (_disk, log) = filled_log(100);
    assert!(log.segment_count() > 3);
    let all = log.read(1, 101, u64::MAX).unwrap();
    assert_eq!(all.len(), 100);
    for e in &all {
        assert_eq!(e.payload, payload(e.index));
        assert_eq!(Some(e.term), log.term(e.index));
    }
    let some = log.read(10, 101, 200).unwrap();
    assert!(
        !some.is_empty() && some.len() < 10,
        "{} entries",
        some.len()
    );
    assert_eq!(some[0].index, 10);
    assert_eq!(log.read(50, 51, 0).unwrap().len(), 1, "at least one entry");
    assert!(log.read(0, 5, 10).is_err());
    assert!(log.read(1, 102, 10).is_err());
}

#[test]
fn truncate_purge_and_reset_survive_reopen() {
    let (disk, mut log) = filled_log(100);
    let segments = log.segment_count();
    log.truncate_from(71).unwrap();
    assert_eq!(log.last_index(), 70);
    assert!(log.segment_count() < segments);
    let p = b"after truncation".to_vec();
    log.append(&[EntryRef {
        index: 71,
        term: 9,
        payload: &p,
    }])
    .unwrap();
    log.purge_through(40).unwrap();
    let first = log.first_index();
    assert!(first > 1 && first <= 41, "first {first}");
    drop(log);
    let disk = disk.crash_losing_unsynced();
    let mut log = reopen(&disk).unwrap();
    assert_eq!((log.first_index(), log.last_index()), (first, 71));
    assert_eq!(log.read(71, 72, 100).unwrap()[0].payload, p);
    assert_eq!(log.term(71), Some(9));
    // Reset below the current first index: the log starts again empty at 5.
    log.reset(5).unwrap();
    assert_eq!((log.first_index(), log.last_index()), (5, 4));
    log.append(&[EntryRef {
        index: 5,
        term: 10,
        payload: &p,
    }])
    .unwrap();
    let disk = disk.crash_losing_unsynced();
    let log = reopen(&disk).unwrap();
    assert_eq!((log.first_index(), log.last_index()), (5, 5));
    assert_eq!(segment_paths(&disk).len(), 1);
    // Truncating everything leaves an empty log at the same first index.
    let mut log = log;
    log.truncate_from(5).unwrap();
    assert_eq!((log.first_index(), log.last_index()), (5, 4));
}

#[test]
fn a_data_dir_can_be_opened_by_one_holder_only() {
    let tmp = TempDir::new("lock");
    let held = DataDir::open(FileDisk, &tmp.0).unwrap();
    let err = DataDir::open(FileDisk, &tmp.0)
        .err()
        .expect("second open fails");
    let text = err.to_string();
    assert!(text.contains("is locked by another process"), "{text}");
    assert!(
        text.contains(&format!("pid {}", std::process::id())),
        "{text}"
    );
    drop(held);
    DataDir::open(FileDisk, &tmp.0).expect("free again after the holder goes");
}

#[test]
fn snapshots_round_trip_aligned_keep_the_newest_and_reject_damage() {
    let tmp = TempDir::new("snap");
    let dd = DataDir::open(FileDisk, &tmp.0).unwrap();
    let store = dd.open_snapshots(2).unwrap();
    assert!(store.load_latest().unwrap().is_none());
    for (index, meta_len) in [(10u64, 0usize), (20, 5), (30, 17)] {
        let meta = vec![9u8; meta_len];
        store.write(index, 2, 7, &meta, &payload(index)).unwrap();
    }
    let names: Vec<u64> = store.list().unwrap().iter().map(|(i, _, _)| *i).collect();
    assert_eq!(names, vec![20, 30], "keeps the newest two");
    let snap = store.load_latest().unwrap().unwrap();
    assert_eq!(
        (
            snap.header.index,
            snap.header.term,
            snap.header.payload_format
        ),
        (30, 2, 7)
    );
    assert_eq!(snap.meta, vec![9u8; 17]);
    assert_eq!(snap.payload.as_slice(), payload(30).as_slice());
    assert_eq!(snap.payload.as_ptr() as usize % 16, 0);
    assert_eq!(snap.header.payload_offset() % 16, 0);
    // Damage the payload: load names the file and the body offset.
    let path = snap.path.clone();
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let err = store.load_latest().err().expect("damage detected");
    assert!(
        err.to_string().contains(&format!(
            "corrupt snapshot {} at offset 64: body CRC mismatch",
            path.display()
        )),
        "{err}"
    );
    // Cut the file: the header's lengths no longer match.
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    let err = store.load_latest().err().expect("short file detected");
    assert!(
        err.to_string().contains("do not match the file size"),
        "{err}"
    );
    // An unfinished write leaves a .tmp that the next open removes.
    let w = store.begin(40, 2, 7, b"").unwrap();
    drop(w);
    assert!(std::fs::read_dir(dd.snapshot_dir()).unwrap().any(|e| e
        .unwrap()
        .path()
        .extension()
        .is_some_and(|x| x == "tmp")));
    let _store = dd.open_snapshots(2).unwrap();
    assert!(!std::fs::read_dir(dd.snapshot_dir()).unwrap().any(|e| e
        .unwrap()
        .path()
        .extension()
        .is_some_and(|x| x == "tmp")));
}

#[test]
fn snapshot_payload_is_an_rkyv_archive_that_validates() {
    let disk = MemDisk::new();
    let store = cairn_storage::SnapshotStore::open(disk, Path::new("/s"), 2).unwrap();
    let value: Vec<(String, u64)> = (0..1000).map(|i| (format!("key/{i}"), i)).collect();
    let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&value).unwrap();
    store.write(5, 1, 1, b"cfg", &bytes).unwrap();
    let snap = store.load_latest().unwrap().unwrap();
    let archived =
        rkyv::access::<rkyv::Archived<Vec<(String, u64)>>, rkyv::rancor::Error>(&snap.payload)
            .unwrap();
    assert_eq!(archived.len(), 1000);
    assert_eq!(archived[999].0.as_str(), "key/999");
}

#[test]
fn codecs_round_trip_on_seeded_input() {
    for seed in seeds("CODEC", 200) {
        let mut rng = Rng::new(seed);
        let mut buf = Vec::new();
        let mut want = Vec::new();
        for _ in 0..1 + rng.below(20) {
            let (index, term) = (rng.next_u64(), rng.next_u64());
            let len = rng.below(3000) as usize;
            let p = rng.bytes(len);
            encode_frame(&mut buf, index, term, &p);
            want.push((index, term, p));
        }
        let mut at = 0;
        for (index, term, p) in &want {
            let f = decode_frame(&buf[at..]).unwrap();
            assert_eq!(
                (f.index, f.term, f.payload),
                (*index, *term, &p[..]),
                "CODEC_SEED={seed}"
            );
            at += f.encoded_len();
        }
        assert_eq!(at, buf.len());
        let h = SegmentHeader {
            epoch: rng.next_u64() as u32,
            first_index: 1 + rng.below(u64::MAX - 1),
        };
        assert_eq!(SegmentHeader::decode(&h.encode()), Ok(h));
        let s = SnapshotHeader {
            payload_format: rng.next_u64() as u32,
            index: rng.next_u64(),
            term: rng.next_u64(),
            meta_len: rng.below(100),
            payload_len: rng.below(1 << 20),
            body_crc: rng.next_u64() as u32,
        };
        let file_len = s.payload_offset() + s.payload_len;
        assert_eq!(SnapshotHeader::decode(&s.encode(), file_len), Ok(s));
    }
}

#[test]
fn random_bytes_never_panic_a_decoder() {
    for seed in seeds("GARBAGE", 2000) {
        let mut rng = Rng::new(seed);
        let len = rng.below(400) as usize;
        let mut bytes = rng.bytes(len);
        if rng.chance(50) && bytes.len() >= 8 {
            // Give the header decoders a chance to get past the magic.
            let magic: &[u8] = if rng.chance(50) {
                b"CRNLOG01"
            } else {
                b"CRNSNP01"
            };
            bytes[..8].copy_from_slice(magic);
        }
        let _ = decode_frame(&bytes);
        let _ = SegmentHeader::decode(&bytes);
        let _ = SnapshotHeader::decode(&bytes, rng.next_u64());
        let _ = scan_segment(&bytes, 1 + rng.below(1000));
    }
}

/// A directory under the target dir, removed on drop (real files for the FileDisk tests).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let path = base.join(format!("storage-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn end_at_cuts_a_suffix_or_restarts_after_a_snapshot_index() {
    let (disk, mut log) = filled_log(30);
    assert!(!log.end_at(30).unwrap(), "already ends there");
    assert!(log.end_at(25).unwrap());
    assert_eq!((log.first_index(), log.last_index()), (1, 25));
    assert!(
        log.end_at(40).unwrap(),
        "beyond the log: start again after it"
    );
    assert_eq!((log.first_index(), log.last_index()), (41, 40));
    drop(log);
    let log = reopen(&disk.crash_losing_unsynced()).unwrap();
    assert_eq!((log.first_index(), log.last_index()), (41, 40));
}

#[test]
fn a_last_segment_with_a_bad_header_and_only_zeros_after_it_is_removed() {
    use cairn_storage::segment::segment_file_name;
    use cairn_storage::DiskFile;
    for (tail, removed) in [(0u8, true), (1, false)] {
        let (disk, log) = filled_log(30);
        drop(log);
        // A last segment whose header is damaged, followed by reserved space: zeros (held no frame), or not.
        let path = dir().join(segment_file_name(31));
        let mut file = disk.create_file(&path).unwrap();
        let mut bytes = vec![0u8; 1024];
        bytes[..8].copy_from_slice(b"CRNLOG01");
        bytes[500] = tail;
        file.write_all_at(&bytes, 0).unwrap();
        file.sync_data().unwrap();
        disk.sync_dir(dir()).unwrap();
        match Log::open(disk.clone(), dir(), SMALL) {
            Ok((log, recovery)) => {
                assert!(removed, "a segment holding non-zero bytes was removed");
                assert_eq!(recovery.removed, vec![path]);
                assert_eq!(log.last_index(), 30);
            }
            Err(e) => {
                assert!(!removed, "{e}");
                assert!(e.is_corruption(), "{e}");
            }
        }
    }
}
