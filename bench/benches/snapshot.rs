//! `snapshot`: write and load of a snapshot holding 1 M small KV entries through cairn's snapshot container
//! (`SnapshotStore<FileDisk>`: rkyv payload, tmp -> fsync -> rename -> fsync dir; load = read + CRC +
//! `rkyv::access` validation). The stages are timed separately in a summary beside the bare floors measured in the
//! same run: writing the same bytes to a plain file with one fsync, and reading them back.
//! Run: `cargo bench -p cairn-bench --bench snapshot`.

use cairn_bench::{is_bench_run, ScratchDir};
use cairn_storage::{FileDisk, SnapshotStore};
use criterion::{Criterion, Throughput};
use rkyv::rancor::Error as RkyvError;
use rkyv::{Archive, Deserialize, Serialize};
use std::io::Write;
use std::time::{Duration, Instant};

/// A small KV entry, the shape of the state machine's KV rows.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct KvEntry {
    key: String,
    value: Vec<u8>,
    flags: u64,
    create_index: u64,
    modify_index: u64,
}

fn state(entries: usize) -> Vec<KvEntry> {
    (0..entries)
        .map(|i| KvEntry {
            key: format!("service/web/config/{i:08}"),
            value: format!("value-{i}").into_bytes(),
            flags: 0,
            create_index: i as u64 + 1,
            modify_index: i as u64 + 1,
        })
        .collect()
}

/// Times `f` once.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

/// The median of `samples`.
fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Interleaved rounds of (floor write, snapshot write, floor read, snapshot load); prints medians and ratios.
fn summary(dir: &ScratchDir, entries: usize, rounds: usize) {
    let store = SnapshotStore::open(FileDisk, &dir.0.join("snapshots"), 2).expect("open store");
    let data = state(entries);
    let (bytes, serialize) = timed(|| rkyv::to_bytes::<RkyvError>(&data).expect("serialize"));
    let floor_path = dir.0.join("floor");
    let mut t: [Vec<Duration>; 5] = Default::default();
    for round in 0..rounds {
        t[0].push(
            timed(|| {
                let mut f = std::fs::File::create(&floor_path).expect("create");
                f.write_all(&bytes).expect("write");
                f.sync_all().expect("fsync");
            })
            .1,
        );
        t[1].push(
            timed(|| {
                store
                    .write(100 + round as u64, 1, 1, b"", &bytes)
                    .expect("write snapshot")
            })
            .1,
        );
        t[2].push(timed(|| std::fs::read(&floor_path).expect("read")).1);
        let (loaded, load) = timed(|| store.load_latest().expect("load").expect("a snapshot"));
        t[3].push(load);
        let (count, access) = timed(|| {
            rkyv::access::<rkyv::Archived<Vec<KvEntry>>, RkyvError>(&loaded.payload)
                .expect("validate")
                .len()
        });
        assert_eq!(count, entries);
        t[4].push(access);
    }
    let [floor_write, write, floor_read, load, access] = t.map(|mut v| median(&mut v));
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("\nsnapshot summary: {entries} entries, {:.1} MB payload, medians of {rounds} interleaved rounds", bytes.len() as f64 / 1e6);
    println!("  serialize (rkyv)           {:>8.1} ms", ms(serialize));
    println!(
        "  write (container + fsync)  {:>8.1} ms   floor write+fsync {:>8.1} ms  ({:.2}x)",
        ms(write),
        ms(floor_write),
        ms(write) / ms(floor_write)
    );
    println!(
        "  load (read + CRC)          {:>8.1} ms   floor read        {:>8.1} ms  ({:.2}x)",
        ms(load),
        ms(floor_read),
        ms(load) / ms(floor_read)
    );
    println!("  access (rkyv validation)   {:>8.1} ms", ms(access));
}

fn criterion_cases(c: &mut Criterion, dir: &ScratchDir, entries: usize) {
    let store = SnapshotStore::open(FileDisk, &dir.0.join("crit"), 2).expect("open store");
    let bytes = rkyv::to_bytes::<RkyvError>(&state(entries)).expect("serialize");
    let mut group = c.benchmark_group("snapshot");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(entries as u64));
    let mut index = 1;
    group.bench_function("write_1M", |b| {
        b.iter(|| {
            index += 1;
            store.write(index, 1, 1, b"", &bytes).expect("write")
        })
    });
    group.bench_function("load_and_validate_1M", |b| {
        b.iter(|| {
            let snap = store.load_latest().expect("load").expect("a snapshot");
            rkyv::access::<rkyv::Archived<Vec<KvEntry>>, RkyvError>(&snap.payload)
                .expect("validate")
                .len()
        })
    });
    group.finish();
}

fn main() {
    let dir = ScratchDir::new(env!("CARGO_TARGET_TMPDIR"), "snapshot").expect("scratch dir");
    let bench = is_bench_run();
    let entries = if bench { 1_000_000 } else { 1_000 };
    if bench {
        let mut c = Criterion::default().configure_from_args();
        criterion_cases(&mut c, &dir, entries);
        c.final_summary();
    }
    summary(&dir, entries, if bench { 7 } else { 1 });
}
