//! Fuzzes log recovery: arbitrary bytes after a valid segment header are opened as the last segment of a log.
//! Recovery must either succeed (serving only valid frames) or return an error; it must never panic.
//! Run: `cd storage/fuzz && cargo fuzz run log_recover`.
#![no_main]

use cairn_storage::segment::{segment_file_name, SegmentHeader};
use cairn_storage::{Disk, DiskFile, Log, LogOptions, MemDisk};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let disk = MemDisk::new();
    let dir = Path::new("/log");
    disk.create_dir_all(dir).expect("mem dir");
    let mut bytes = SegmentHeader { epoch: 0, first_index: 1 }.encode().to_vec();
    bytes.extend_from_slice(data);
    let mut file = disk.create_file(&dir.join(segment_file_name(1))).expect("mem file");
    file.write_all_at(&bytes, 0).expect("mem write");
    if let Ok((log, _)) = Log::open(disk, dir, LogOptions::default()) {
        let (first, last) = (log.first_index(), log.last_index());
        let entries = log.read(first, last + 1, u64::MAX).expect("recovered entries read back");
        assert_eq!(entries.len() as u64, last + 1 - first);
    }
});
