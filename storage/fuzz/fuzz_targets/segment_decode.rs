//! Fuzzes the byte decoders: log frames, segment headers, whole-segment scans, snapshot headers.
//! Run: `cd storage/fuzz && cargo fuzz run segment_decode` (see storage/FORMAT.md, "Fuzzing").
#![no_main]

use cairn_storage::frame::decode_frame;
use cairn_storage::segment::{scan_segment, SegmentHeader};
use cairn_storage::snapshot::SnapshotHeader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = decode_frame(data) {
        assert!(frame.encoded_len() <= data.len());
    }
    let _ = SegmentHeader::decode(data);
    let first_index = data.first().map_or(1, |&b| 1 + u64::from(b));
    let scan = scan_segment(data, first_index);
    assert!(scan.end as usize <= data.len().max(32));
    assert_eq!(scan.offsets.len(), scan.terms.len());
    let _ = SnapshotHeader::decode(data, data.len() as u64);
});
