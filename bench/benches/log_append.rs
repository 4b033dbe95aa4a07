//! `log_append`: group-commit appends to cairn's segmented log (`Log<FileDisk>`: one write and one fdatasync per
//! batch, into space the segment reserved ahead) beside two physical floors, bare `write` + `fdatasync` of the
//! same bytes to a plain file:
//! - *grow*: appended at the end of a growing file, so every fdatasync also commits a new file size (what the
//!   log paid before it reserved space);
//! - *resv*: written inside space reserved first with `fallocate` (64 MiB, the same `DiskFile::allocate` the log
//!   uses), so the fdatasync changes no metadata: the floor for the log as it is now.
//!
//! The three are measured in the same run, interleaved iteration by iteration so that drift hits them alike.
//! Cases: batches of 1, 16 and 256 entries of 128 B and of 4 KiB payload. Criterion reports throughput in
//! entries/s for each; then a summary table prints p50/p99 latency per batch, entries/s, and the log/floor p50
//! ratios. Run: `cargo bench -p cairn-bench --bench log_append` (a few minutes).

use cairn_bench::{is_bench_run, latency, us, ScratchDir};
use cairn_storage::frame::FRAME_HEADER_BYTES;
use cairn_storage::{Disk, DiskFile, EntryRef, FileDisk, Log, LogOptions};
use criterion::{BenchmarkId, Criterion, Throughput};
use std::fs::File;
use std::io::{Seek, Write};
use std::time::{Duration, Instant};

const CASES: [(usize, usize); 6] = [
    (1, 128),
    (16, 128),
    (256, 128),
    (1, 4096),
    (16, 4096),
    (256, 4096),
];
/// Sealed segments are purged (outside the timed region) once the log passes this many entries.
const PURGE_EVERY_ENTRIES: u64 = 200_000;

/// A log under test plus the next index to append.
struct LogUnderTest {
    log: Log<FileDisk>,
    next: u64,
}

impl LogUnderTest {
    fn new(dir: &ScratchDir) -> LogUnderTest {
        let (log, _) =
            Log::open(FileDisk, &dir.0.join("log"), LogOptions::default()).expect("open log");
        LogUnderTest { log, next: 1 }
    }

    /// Appends one batch of `count` entries of `payload`; returns the time the append took.
    fn append(&mut self, count: usize, payload: &[u8]) -> Duration {
        let batch: Vec<EntryRef<'_>> = (0..count as u64)
            .map(|k| EntryRef {
                index: self.next + k,
                term: 1,
                payload,
            })
            .collect();
        let start = Instant::now();
        self.log.append(&batch).expect("append");
        let took = start.elapsed();
        self.next += count as u64;
        if self.next % PURGE_EVERY_ENTRIES < count as u64 {
            self.log.purge_through(self.next - 1).expect("purge");
        }
        took
    }
}

/// Bytes a floor file grows to (or reserves) before it starts over, like a 64 MiB segment.
const FLOOR_FILE_BYTES: u64 = 64 << 20;

/// The growing floor: a plain file, appended with write + fdatasync (each one changes the file size).
struct Floor {
    file: File,
    written: u64,
}

impl Floor {
    fn new(dir: &ScratchDir) -> Floor {
        let file = File::create(dir.0.join("floor")).expect("create floor file");
        Floor { file, written: 0 }
    }

    fn append(&mut self, bytes: &[u8]) -> Duration {
        let start = Instant::now();
        self.file.write_all(bytes).expect("write");
        self.file.sync_data().expect("fdatasync");
        let took = start.elapsed();
        self.written += bytes.len() as u64;
        if self.written > FLOOR_FILE_BYTES {
            self.file.set_len(0).expect("truncate floor");
            self.file.rewind().expect("rewind floor");
            self.written = 0;
        }
        took
    }
}

/// The reserved floor: a file whose space is reserved first (`fallocate`, synced), then written from the start
/// with positional write + fdatasync inside that space (no size change). When the bytes would run past the
/// reservation it starts again with a fresh one, outside the timed region, as the log starts a new segment.
struct ReservedFloor {
    file: <FileDisk as Disk>::File,
    written: u64,
}

impl ReservedFloor {
    fn new(dir: &ScratchDir) -> ReservedFloor {
        let file = FileDisk
            .create_file(&dir.0.join("floor-reserved"))
            .expect("create reserved floor file");
        let mut floor = ReservedFloor { file, written: 0 };
        floor.reserve();
        floor
    }

    fn reserve(&mut self) {
        self.file.set_len(0).expect("truncate reserved floor");
        self.file
            .allocate(FLOOR_FILE_BYTES)
            .expect("reserve floor space");
        self.file.sync_data().expect("sync the reservation");
        self.written = 0;
    }

    fn append(&mut self, bytes: &[u8]) -> Duration {
        if self.written + bytes.len() as u64 > FLOOR_FILE_BYTES {
            self.reserve();
        }
        let start = Instant::now();
        self.file.write_all_at(bytes, self.written).expect("write");
        self.file.sync_data().expect("fdatasync");
        let took = start.elapsed();
        self.written += bytes.len() as u64;
        took
    }
}

fn case_name(count: usize, size: usize) -> String {
    if size >= 1024 {
        format!("{count}x{}KiB", size / 1024)
    } else {
        format!("{count}x{size}B")
    }
}

fn criterion_cases(c: &mut Criterion, dir: &ScratchDir) {
    let mut group = c.benchmark_group("log_append");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    for (count, size) in CASES {
        let payload = vec![0xA5u8; size];
        let frame_bytes = vec![0x5Au8; count * (size + FRAME_HEADER_BYTES)];
        group.throughput(Throughput::Elements(count as u64));
        let mut log = LogUnderTest::new(dir);
        group.bench_function(BenchmarkId::new("cairn_log", case_name(count, size)), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| log.append(count, &payload)).sum())
        });
        drop(log);
        let mut floor = Floor::new(dir);
        group.bench_function(
            BenchmarkId::new("floor_grow_write_fdatasync", case_name(count, size)),
            |b| b.iter_custom(|iters| (0..iters).map(|_| floor.append(&frame_bytes)).sum()),
        );
        drop(floor);
        let mut floor = ReservedFloor::new(dir);
        group.bench_function(
            BenchmarkId::new("floor_reserved_write_fdatasync", case_name(count, size)),
            |b| b.iter_custom(|iters| (0..iters).map(|_| floor.append(&frame_bytes)).sum()),
        );
        let _ = std::fs::remove_dir_all(dir.0.join("log"));
    }
    group.finish();
}

/// Interleaved log/floor iterations per case; prints the table the README and closing notes quote.
fn summary(dir: &ScratchDir, iterations: usize) {
    println!(
        "\nlog_append summary ({iterations} interleaved iterations per case, same file system, same run)"
    );
    println!(
        "grow: write + fdatasync appending to a growing file; resv: the same inside fallocate-reserved space"
    );
    println!(
        "{:<10} {:>9} {:>9} {:>11} | {:>9} {:>9} {:>11} | {:>9} {:>9} {:>11} | {:>7} {:>7}",
        "batch",
        "log p50us",
        "log p99us",
        "log entry/s",
        "grw p50us",
        "grw p99us",
        "grw entry/s",
        "rsv p50us",
        "rsv p99us",
        "rsv entry/s",
        "p50/grw",
        "p50/rsv"
    );
    for (count, size) in CASES {
        let payload = vec![0xA5u8; size];
        let frame_bytes = vec![0x5Au8; count * (size + FRAME_HEADER_BYTES)];
        let mut log = LogUnderTest::new(dir);
        let mut grow = Floor::new(dir);
        let mut reserved = ReservedFloor::new(dir);
        let (mut log_samples, mut grow_samples, mut reserved_samples) =
            (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..iterations {
            grow_samples.push(grow.append(&frame_bytes));
            reserved_samples.push(reserved.append(&frame_bytes));
            log_samples.push(log.append(count, &payload));
        }
        let rate =
            |s: &[Duration]| (count * s.len()) as f64 / s.iter().sum::<Duration>().as_secs_f64();
        let rates = (
            rate(&log_samples),
            rate(&grow_samples),
            rate(&reserved_samples),
        );
        let l = latency(&mut log_samples);
        let g = latency(&mut grow_samples);
        let r = latency(&mut reserved_samples);
        println!(
            "{:<10} {:>9} {:>9} {:>11.0} | {:>9} {:>9} {:>11.0} | {:>9} {:>9} {:>11.0} | {:>7.3} {:>7.3}",
            case_name(count, size),
            us(l.p50),
            us(l.p99),
            rates.0,
            us(g.p50),
            us(g.p99),
            rates.1,
            us(r.p50),
            us(r.p99),
            rates.2,
            l.p50.as_secs_f64() / g.p50.as_secs_f64(),
            l.p50.as_secs_f64() / r.p50.as_secs_f64(),
        );
        drop(log);
        let _ = std::fs::remove_dir_all(dir.0.join("log"));
    }
}

fn main() {
    let dir = ScratchDir::new(env!("CARGO_TARGET_TMPDIR"), "log-append").expect("scratch dir");
    let bench = is_bench_run();
    if bench {
        let mut c = Criterion::default().configure_from_args();
        criterion_cases(&mut c, &dir);
        c.final_summary();
    }
    summary(&dir, if bench { 2000 } else { 3 });
}
