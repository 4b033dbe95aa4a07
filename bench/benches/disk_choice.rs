//! Which file backend should cairn-storage use for the write-ahead log?
//!
//! The log's unit of work is: append one batch of frames at the end of the
//! file, `fdatasync`, then acknowledge. This benchmark measures that unit,
//! one batch in flight at a time, with four backends on the same filesystem:
//!
//! * **(a) `DmaFile`**: glommio's O_DIRECT file driven through io_uring. The
//!   partial tail block is kept in memory; every batch rewrites the aligned
//!   range from the start of the tail block to the end of the new data,
//!   zero-padded to `DmaFile::alignment()`, with one `write_at` of a
//!   `DmaBuffer` from `alloc_dma_buffer`, then `fdatasync().await`.
//! * **(b) `spawn_blocking`**: `std::fs::File::write_all_at` + `sync_data()`
//!   in one closure run on glommio's blocking thread pool through
//!   `glommio::executor().spawn_blocking(..)`; the executor thread stays free.
//! * **(c) inline**: the same two std calls made directly on the executor
//!   thread, which is blocked for the whole duration (the baseline that a
//!   naive implementation would get).
//! * **(d) floor**: the same two std calls on an ordinary thread with no
//!   executor at all: the cost of the disk and the kernel alone.
//!
//! Batch shapes: 1 x 128 B, 16 x 128 B, 256 x 128 B and 1 x 4 KiB frames,
//! each frame carrying a 24-byte header, so a batch is one contiguous buffer
//! of `n * (size + 24)` bytes (content arbitrary). Every case starts from a
//! fresh, empty file (appends extend the file, as a live log segment does).
//!
//! For each case it records per-batch latency (from before the write is
//! issued to after the sync returns) into its own sample vector after a
//! warm-up, and prints a table with the median, p99, batches/s, the bytes
//! handed to the kernel per batch, and the device's sectors written per batch
//! (from `/sys/dev/block/M:m/stat`; whole-device, so noisy if anything else
//! writes to the disk), with ratios to (d). It also prints the round-trip
//! cost of an empty `spawn_blocking` closure.
//!
//! Run it with:
//!
//! ```text
//! cargo bench -p cairn-bench --bench disk_choice
//! ```
//!
//! Files are written under `<workspace>/target/disk-choice-tmp/<pid>/` (the
//! filesystem the build lives on, not `/tmp`, which may be tmpfs) and removed
//! afterwards. `DISK_CHOICE_DIR=/path` points it at another directory (e.g.
//! the real data disk) and `DISK_CHOICE_ITERS=n` changes the sample count.
//! Without `--bench` in the arguments (as under `cargo test --benches` or
//! `cargo test --all-targets`) it runs a handful of iterations as a smoke
//! test. The glommio executor is built with a small `io_memory` (512 KiB) so
//! it fits a small RLIMIT_MEMLOCK, and one unbound blocking-pool thread.

use std::{
    fs::{File, OpenOptions},
    io,
    os::unix::fs::{FileExt, MetadataExt},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use glommio::{io::DmaFile, LocalExecutorBuilder, Placement, PoolPlacement};

/// Size of the per-frame header the log prepends to every payload.
const FRAME_HEADER: usize = 24;
/// Registered io_uring buffer memory for the executor (must fit RLIMIT_MEMLOCK).
const IO_MEMORY: usize = 512 << 10;

#[derive(Clone, Copy)]
struct Shape {
    name: &'static str,
    frames: usize,
    payload: usize,
}

impl Shape {
    fn bytes(&self) -> usize {
        self.frames * (self.payload + FRAME_HEADER)
    }

    /// One contiguous batch buffer with arbitrary (non-zero) content.
    fn batch(&self) -> Vec<u8> {
        (0..self.bytes()).map(|i| (i % 251) as u8 + 1).collect()
    }
}

const SHAPES: [Shape; 4] = [
    Shape {
        name: "1 x 128 B",
        frames: 1,
        payload: 128,
    },
    Shape {
        name: "16 x 128 B",
        frames: 16,
        payload: 128,
    },
    Shape {
        name: "256 x 128 B",
        frames: 256,
        payload: 128,
    },
    Shape {
        name: "1 x 4 KiB",
        frames: 1,
        payload: 4096,
    },
];

#[derive(Clone, Copy)]
struct Config {
    warmup: usize,
    iters: usize,
}

impl Config {
    fn total(&self) -> usize {
        self.warmup + self.iters
    }
}

/// Raw measurements of one case.
struct Run {
    samples: Vec<Duration>,
    /// From the start of the first measured batch to the end of the last.
    wall: Duration,
    /// Bytes handed to the kernel over the measured batches.
    written: u64,
    /// Sectors (512 B) the device reports written during the measured batches.
    dev_sectors: Option<u64>,
}

struct Stats {
    median: Duration,
    p99: Duration,
    per_sec: f64,
    written_per_batch: f64,
    dev_per_batch: Option<f64>,
}

impl Run {
    fn stats(mut self) -> Stats {
        self.samples.sort_unstable();
        let n = self.samples.len();
        assert!(n > 0, "no samples");
        let p99_idx = ((n as f64 * 0.99).ceil() as usize).clamp(1, n) - 1;
        Stats {
            median: self.samples[n / 2],
            p99: self.samples[p99_idx],
            per_sec: n as f64 / self.wall.as_secs_f64(),
            written_per_batch: self.written as f64 / n as f64,
            dev_per_batch: self.dev_sectors.map(|s| s as f64 * 512.0 / n as f64),
        }
    }
}

/// Reads "sectors written" of the block device holding `dir`, if visible.
struct DevStat(Option<PathBuf>);

impl DevStat {
    fn for_dir(dir: &Path) -> DevStat {
        let dev = match std::fs::metadata(dir) {
            Ok(m) => m.dev(),
            Err(_) => return DevStat(None),
        };
        let (major, minor) = (libc::major(dev), libc::minor(dev));
        let path = PathBuf::from(format!("/sys/dev/block/{major}:{minor}/stat"));
        DevStat(path.exists().then_some(path))
    }

    fn sectors_written(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.0.as_ref()?).ok()?;
        text.split_whitespace().nth(6)?.parse().ok()
    }
}

/// Tracks the measured window of a case: warm-up iterations are run but not
/// recorded; the wall clock and device counter start at the first measured one.
struct Recorder<'a> {
    cfg: Config,
    dev: &'a DevStat,
    samples: Vec<Duration>,
    written: u64,
    start: Option<(Instant, Option<u64>)>,
}

impl<'a> Recorder<'a> {
    fn new(cfg: Config, dev: &'a DevStat) -> Self {
        Recorder {
            cfg,
            dev,
            samples: Vec::with_capacity(cfg.iters),
            written: 0,
            start: None,
        }
    }

    /// Called before iteration `i` starts its clock.
    fn begin(&mut self, i: usize) {
        if i == self.cfg.warmup {
            self.start = Some((Instant::now(), self.dev.sectors_written()));
        }
    }

    /// Called when iteration `i` has been acknowledged.
    fn end(&mut self, i: usize, t0: Instant, written: usize) {
        if i >= self.cfg.warmup {
            self.samples.push(t0.elapsed());
            self.written += written as u64;
        }
    }

    fn finish(self) -> Run {
        let (start, sectors0) = self.start.expect("no measured iterations");
        let wall = start.elapsed();
        let dev_sectors = match (sectors0, self.dev.sectors_written()) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        Run {
            samples: self.samples,
            wall,
            written: self.written,
            dev_sectors,
        }
    }
}

fn create_std(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

fn align_up(v: usize, align: usize) -> usize {
    v.div_ceil(align) * align
}

/// (d): positional write + fdatasync on the calling thread, no executor.
fn run_floor(path: &Path, shape: Shape, cfg: Config, dev: &DevStat) -> io::Result<Run> {
    let file = create_std(path)?;
    let data = shape.batch();
    let mut rec = Recorder::new(cfg, dev);
    let mut len = 0u64;
    for i in 0..cfg.total() {
        rec.begin(i);
        let t0 = Instant::now();
        file.write_all_at(&data, len)?;
        file.sync_data()?;
        len += data.len() as u64;
        rec.end(i, t0, data.len());
    }
    let run = rec.finish();
    drop(file);
    std::fs::remove_file(path)?;
    Ok(run)
}

/// (c): the same calls inline on the executor thread (blocking it).
async fn run_inline(path: PathBuf, shape: Shape, cfg: Config, dev: &DevStat) -> io::Result<Run> {
    let file = create_std(&path)?;
    let data = shape.batch();
    let mut rec = Recorder::new(cfg, dev);
    let mut len = 0u64;
    for i in 0..cfg.total() {
        rec.begin(i);
        let t0 = Instant::now();
        file.write_all_at(&data, len)?;
        file.sync_data()?;
        len += data.len() as u64;
        rec.end(i, t0, data.len());
        // Let the executor run its reactor between batches, as a real task would.
        glommio::yield_if_needed().await;
    }
    let run = rec.finish();
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(run)
}

/// (b): the same calls in one closure on glommio's blocking thread pool. The
/// file and the batch buffer are moved into the closure and handed back, as
/// an owned-buffer log writer would do.
async fn run_spawn_blocking(
    path: PathBuf,
    shape: Shape,
    cfg: Config,
    dev: &DevStat,
) -> io::Result<Run> {
    let mut file = create_std(&path)?;
    let mut data = shape.batch();
    let batch_len = data.len();
    let mut rec = Recorder::new(cfg, dev);
    let mut len = 0u64;
    for i in 0..cfg.total() {
        rec.begin(i);
        let t0 = Instant::now();
        let at = len;
        let (f, d, res) = glommio::executor()
            .spawn_blocking(move || {
                let res = file.write_all_at(&data, at).and_then(|()| file.sync_data());
                (file, data, res)
            })
            .await;
        res?;
        (file, data) = (f, d);
        len += batch_len as u64;
        rec.end(i, t0, batch_len);
    }
    let run = rec.finish();
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(run)
}

/// (a): O_DIRECT through io_uring. The partial tail block lives in memory and
/// is rewritten, together with the new data, as one aligned, zero-padded write.
async fn run_dma(path: PathBuf, shape: Shape, cfg: Config, dev: &DevStat) -> io::Result<Run> {
    let file = DmaFile::create(&path).await?;
    let align = file.alignment() as usize;
    let data = shape.batch();
    let mut rec = Recorder::new(cfg, dev);
    // Logical end of the log; `len - tail.len()` is always aligned.
    let mut len = 0u64;
    let mut tail: Vec<u8> = Vec::with_capacity(align);
    for i in 0..cfg.total() {
        rec.begin(i);
        let t0 = Instant::now();
        let start = len - tail.len() as u64;
        let logical = tail.len() + data.len();
        let write_len = align_up(logical, align);
        let mut buf = file.alloc_dma_buffer(write_len);
        let bytes = buf.as_bytes_mut();
        bytes[..tail.len()].copy_from_slice(&tail);
        bytes[tail.len()..logical].copy_from_slice(&data);
        bytes[logical..].fill(0);
        let keep = logical % align;
        tail.clear();
        tail.extend_from_slice(&bytes[logical - keep..logical]);
        let n = file.write_at(buf, start).await?;
        if n != write_len {
            return Err(io::Error::other(format!(
                "short O_DIRECT write: {n} of {write_len} bytes"
            )));
        }
        file.fdatasync().await?;
        len += data.len() as u64;
        rec.end(i, t0, write_len);
    }
    let run = rec.finish();
    file.close().await?;
    std::fs::remove_file(&path)?;
    Ok(run)
}

/// Round trip of an empty closure through `spawn_blocking`.
async fn run_noop_spawn_blocking(cfg: Config) -> Run {
    let dev = DevStat(None);
    let mut rec = Recorder::new(cfg, &dev);
    for i in 0..cfg.total() {
        rec.begin(i);
        let t0 = Instant::now();
        glommio::executor().spawn_blocking(|| ()).await;
        rec.end(i, t0, 0);
    }
    rec.finish()
}

/// Results of the executor-side cases (a), (b), (c) for one shape.
struct ExecutorRuns {
    dma: Run,
    spawn_blocking: Run,
    inline: Run,
    alignment: u64,
    noop: Option<Run>,
}

fn run_executor_cases(
    dir: PathBuf,
    shape: Shape,
    cfg: Config,
    with_noop: bool,
) -> io::Result<ExecutorRuns> {
    let handle = LocalExecutorBuilder::new(Placement::Unbound)
        .name("disk-choice")
        .io_memory(IO_MEMORY)
        .blocking_thread_pool_placement(PoolPlacement::Unbound(1))
        .spawn(move || async move {
            let dev = DevStat::for_dir(&dir);
            let alignment = {
                let probe = DmaFile::create(dir.join("probe")).await?;
                let a = probe.alignment();
                probe.close().await?;
                std::fs::remove_file(dir.join("probe"))?;
                a
            };
            let dma = run_dma(dir.join("dma.log"), shape, cfg, &dev).await?;
            let spawn_blocking =
                run_spawn_blocking(dir.join("spawn-blocking.log"), shape, cfg, &dev).await?;
            let inline = run_inline(dir.join("inline.log"), shape, cfg, &dev).await?;
            let noop = if with_noop {
                Some(run_noop_spawn_blocking(cfg).await)
            } else {
                None
            };
            Ok::<_, io::Error>(ExecutorRuns {
                dma,
                spawn_blocking,
                inline,
                alignment,
                noop,
            })
        })
        .map_err(io::Error::from)?;
    handle.join().map_err(|e| {
        io::Error::other(format!(
            "glommio executor failed (io_uring available? RLIMIT_MEMLOCK >= {} KiB?): {e}",
            IO_MEMORY >> 10
        ))
    })?
}

/// Removes the scratch directory (and its parent, if empty) even on panic.
struct ScratchDir {
    dir: PathBuf,
    remove_parent: bool,
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if self.remove_parent {
            if let Some(parent) = self.dir.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
    }
}

fn scratch_dir() -> io::Result<ScratchDir> {
    let (base, remove_parent) = match std::env::var_os("DISK_CHOICE_DIR") {
        Some(d) => (PathBuf::from(d), false),
        None => (
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/disk-choice-tmp"),
            true,
        ),
    };
    let dir = base.join(std::process::id().to_string());
    std::fs::create_dir_all(&dir)?;
    let dir = dir.canonicalize()?;
    Ok(ScratchDir { dir, remove_parent })
}

fn fs_type(dir: &Path) -> String {
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return "?".into();
    };
    // SAFETY: `c` is a valid NUL-terminated path; `st` is plain old data.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return "?".into();
    }
    match st.f_type as i64 {
        0xEF53 => "ext4".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        0x0102_1994 => "tmpfs".into(),
        0x794C_7630 => "overlayfs".into(),
        other => format!("0x{other:x}"),
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn print_row(label: &str, shape: &str, s: &Stats, floor: &Stats) {
    let dev = s
        .dev_per_batch
        .map_or_else(|| "-".to_string(), |b| format!("{b:.0}"));
    println!(
        "{shape:<12} {label:<20} {:>9.0} {:>9} {:>10.1} {:>10.1} {:>10.0} {:>7.2}x {:>7.2}x {:>7.2}x",
        s.written_per_batch,
        dev,
        us(s.median),
        us(s.p99),
        s.per_sec,
        s.median.as_secs_f64() / floor.median.as_secs_f64(),
        s.p99.as_secs_f64() / floor.p99.as_secs_f64(),
        s.per_sec / floor.per_sec,
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not.
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let iters = std::env::var("DISK_CHOICE_ITERS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0);
    let cfg = if bench_mode {
        let iters = iters.unwrap_or(2000);
        Config {
            warmup: (iters / 10).max(20),
            iters,
        }
    } else {
        Config {
            warmup: 2,
            iters: iters.unwrap_or(8),
        }
    };

    let scratch = scratch_dir().expect("create scratch directory");
    let dir = scratch.dir.clone();
    let dev = DevStat::for_dir(&dir);

    let mut rows = Vec::new();
    let mut alignment = 0;
    let mut noop = None;
    for (idx, shape) in SHAPES.iter().copied().enumerate() {
        let floor = run_floor(&dir.join("floor.log"), shape, cfg, &dev)
            .expect("(d) std thread floor")
            .stats();
        let ex = run_executor_cases(dir.clone(), shape, cfg, idx == 0)
            .expect("executor cases (a)-(c)");
        alignment = ex.alignment;
        if let Some(n) = ex.noop {
            noop = Some(n.stats());
        }
        rows.push((
            shape,
            ex.dma.stats(),
            ex.spawn_blocking.stats(),
            ex.inline.stats(),
            floor,
        ));
    }

    println!();
    println!(
        "disk_choice: append batch + fdatasync, one batch in flight, {} measured iterations per case after {} warm-up",
        cfg.iters, cfg.warmup
    );
    println!(
        "  dir {} ({}), DmaFile alignment {alignment} B, glommio io_memory {} KiB, 1 blocking-pool thread",
        dir.display(),
        fs_type(&dir),
        IO_MEMORY >> 10,
    );
    println!(
        "  kernel B/batch = bytes handed to write(); device B/batch = sectors written on the whole device / batches (noisy)"
    );
    println!();
    println!(
        "{:<12} {:<20} {:>9} {:>9} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8}",
        "batch",
        "backend",
        "kernel B",
        "device B",
        "median us",
        "p99 us",
        "batches/s",
        "med/(d)",
        "p99/(d)",
        "rate/(d)"
    );
    for (shape, dma, sb, inline, floor) in &rows {
        let name = format!("{} ({} B)", shape.name, shape.bytes());
        println!("{name}");
        print_row("(a) DmaFile", "", dma, floor);
        print_row("(b) spawn_blocking", "", sb, floor);
        print_row("(c) inline std", "", inline, floor);
        print_row("(d) std thread", "", floor, floor);
    }
    if let Some(n) = noop {
        println!();
        println!(
            "spawn_blocking(no-op) round trip: median {:.1} us, p99 {:.1} us",
            us(n.median),
            us(n.p99)
        );
    }
    drop(scratch);
}
