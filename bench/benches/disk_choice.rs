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
//! of `n * (size + 24)` bytes (content arbitrary). Every case appends to its
//! own file, created empty, so every batch extends the file as it does in a
//! live log segment.
//!
//! To keep background disk activity (other processes, writeback) from
//! landing on one case only, the cases run interleaved: the recorded
//! iterations of every case are split into chunks over several rounds, and
//! every round runs one chunk of every case in a rotating order. (a)-(c) run
//! on one long-lived glommio executor thread, (d) on the main thread while
//! the executor is idle. Each case records per-batch latency (from before the
//! write is issued until the sync has returned) into its own sample vector,
//! after a warm-up.
//!
//! The table shows, per case: bytes handed to the kernel per batch, device
//! bytes written per batch (sectors written from `/sys/dev/block/M:m/stat`
//! during the case's chunks; whole-device, so it includes the journal and is
//! noisy if anything else writes to the disk), median and p99 latency,
//! batches/s (recorded batches / time spent in them), and ratios to (d). It
//! also prints the round-trip cost of an empty `spawn_blocking` closure.
//!
//! Run it with:
//!
//! ```text
//! cargo bench -p cairn-bench --bench disk_choice
//! ```
//!
//! Files are written under `<workspace>/target/disk-choice-tmp/<pid>/` (the
//! filesystem the build lives on, not `/tmp`, which may be tmpfs) and removed
//! afterwards; the largest case writes about 90 MB. `DISK_CHOICE_DIR=/path`
//! points it at another directory (e.g. the real data disk) and
//! `DISK_CHOICE_ITERS=n` changes the number of recorded batches per case
//! (default 2000). Without `--bench` in the arguments (as under
//! `cargo test --benches` or `cargo test --all-targets`) it runs a handful of
//! iterations as a smoke test. The glommio executor is built with a small
//! `io_memory` (512 KiB) so it fits a small RLIMIT_MEMLOCK, and with one
//! unbound blocking-pool thread.

use std::{
    fs::{File, OpenOptions},
    io,
    os::unix::fs::{FileExt, MetadataExt},
    path::{Path, PathBuf},
    sync::mpsc,
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

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Backend {
    Dma,
    SpawnBlocking,
    Inline,
    Floor,
}

/// Row order of the table; the run order rotates every round.
const BACKENDS: [Backend; 4] = [
    Backend::Dma,
    Backend::SpawnBlocking,
    Backend::Inline,
    Backend::Floor,
];

impl Backend {
    fn label(self) -> &'static str {
        match self {
            Backend::Dma => "(a) DmaFile",
            Backend::SpawnBlocking => "(b) spawn_blocking",
            Backend::Inline => "(c) inline std",
            Backend::Floor => "(d) std thread",
        }
    }

    fn file_name(self, shape: usize) -> String {
        format!("{self:?}-{shape}.log").to_lowercase()
    }
}

#[derive(Clone, Copy)]
struct Config {
    /// Unrecorded batches before the first chunk of every case.
    warmup: usize,
    /// Unrecorded batches before every later chunk (the case sat idle while
    /// the others ran).
    rewarm: usize,
    /// Recorded batches per chunk.
    chunk: usize,
    rounds: usize,
}

impl Config {
    fn warmup_for(&self, round: usize) -> usize {
        if round == 0 {
            self.warmup
        } else {
            self.rewarm
        }
    }
}

/// Measurements of one or more chunks of one case.
#[derive(Default)]
struct Chunk {
    samples: Vec<Duration>,
    /// Time spent in recorded batches (first start to last end, per chunk).
    wall: Duration,
    /// Bytes handed to the kernel by the recorded batches.
    written: u64,
    /// Sectors (512 B) the device reports written during recorded batches.
    dev_sectors: Option<u64>,
}

impl Chunk {
    fn merge(&mut self, other: Chunk) {
        let first = self.samples.is_empty();
        self.samples.extend(other.samples);
        self.wall += other.wall;
        self.written += other.written;
        self.dev_sectors = match (first, self.dev_sectors, other.dev_sectors) {
            (true, _, d) => d,
            (false, Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
    }

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

struct Stats {
    median: Duration,
    p99: Duration,
    per_sec: f64,
    written_per_batch: f64,
    dev_per_batch: Option<f64>,
}

/// Reads "sectors written" of the block device holding a directory.
#[derive(Clone)]
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

/// Records one chunk: `warmup` unrecorded batches, then `n` recorded ones.
struct Recorder<'a> {
    dev: &'a DevStat,
    warmup: usize,
    chunk: Chunk,
    start: Option<(Instant, Option<u64>)>,
}

impl<'a> Recorder<'a> {
    fn new(dev: &'a DevStat, warmup: usize, n: usize) -> Self {
        Recorder {
            dev,
            warmup,
            chunk: Chunk {
                samples: Vec::with_capacity(n),
                ..Chunk::default()
            },
            start: None,
        }
    }

    /// Called before batch `i` starts its clock.
    fn begin(&mut self, i: usize) {
        if i == self.warmup {
            self.start = Some((Instant::now(), self.dev.sectors_written()));
        }
    }

    /// Called when batch `i`, started at `t0`, has been acknowledged.
    fn end(&mut self, i: usize, t0: Instant, written: usize) {
        if i >= self.warmup {
            self.chunk.samples.push(t0.elapsed());
            self.chunk.written += written as u64;
        }
    }

    fn finish(mut self) -> Chunk {
        let (start, sectors0) = self.start.expect("no recorded batches");
        self.chunk.wall = start.elapsed();
        self.chunk.dev_sectors = match (sectors0, self.dev.sectors_written()) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        self.chunk
    }
}

/// A log on a std `File`: positional append + `fdatasync`.
struct StdLog {
    file: File,
    data: Vec<u8>,
    len: u64,
}

impl StdLog {
    fn create(path: &Path, shape: Shape) -> io::Result<StdLog> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(StdLog {
            file,
            data: shape.batch(),
            len: 0,
        })
    }

    /// Appends one batch and syncs it; returns the bytes written.
    fn append_sync(&mut self) -> io::Result<usize> {
        self.file.write_all_at(&self.data, self.len)?;
        self.file.sync_data()?;
        self.len += self.data.len() as u64;
        Ok(self.data.len())
    }
}

/// A log on a glommio `DmaFile`. `len - tail.len()` is always aligned; the
/// bytes of the partial tail block are kept in `tail` and rewritten, together
/// with the next batch, as one aligned, zero-padded O_DIRECT write.
struct DmaLog {
    file: DmaFile,
    align: usize,
    data: Vec<u8>,
    len: u64,
    tail: Vec<u8>,
}

impl DmaLog {
    async fn create(path: &Path, shape: Shape) -> io::Result<DmaLog> {
        let file = DmaFile::create(path).await?;
        let align = file.alignment() as usize;
        Ok(DmaLog {
            file,
            align,
            data: shape.batch(),
            len: 0,
            tail: Vec::with_capacity(align),
        })
    }

    /// Appends one batch and syncs it; returns the bytes written.
    async fn append_sync(&mut self) -> io::Result<usize> {
        let start = self.len - self.tail.len() as u64;
        let logical = self.tail.len() + self.data.len();
        let write_len = logical.div_ceil(self.align) * self.align;
        let mut buf = self.file.alloc_dma_buffer(write_len);
        let bytes = buf.as_bytes_mut();
        bytes[..self.tail.len()].copy_from_slice(&self.tail);
        bytes[self.tail.len()..logical].copy_from_slice(&self.data);
        bytes[logical..].fill(0);
        let keep = logical % self.align;
        self.tail.clear();
        self.tail.extend_from_slice(&bytes[logical - keep..logical]);
        let n = self.file.write_at(buf, start).await?;
        if n != write_len {
            return Err(io::Error::other(format!(
                "short O_DIRECT write: {n} of {write_len} bytes"
            )));
        }
        self.file.fdatasync().await?;
        self.len += self.data.len() as u64;
        Ok(write_len)
    }
}

/// (d): the floor, on the calling (non-executor) thread.
fn chunk_floor(log: &mut StdLog, dev: &DevStat, warmup: usize, n: usize) -> io::Result<Chunk> {
    let mut rec = Recorder::new(dev, warmup, n);
    for i in 0..warmup + n {
        rec.begin(i);
        let t0 = Instant::now();
        let w = log.append_sync()?;
        rec.end(i, t0, w);
    }
    Ok(rec.finish())
}

/// (c): the same calls inline on the executor thread (blocking it).
async fn chunk_inline(
    log: &mut StdLog,
    dev: &DevStat,
    warmup: usize,
    n: usize,
) -> io::Result<Chunk> {
    let mut rec = Recorder::new(dev, warmup, n);
    for i in 0..warmup + n {
        rec.begin(i);
        let t0 = Instant::now();
        let w = log.append_sync()?;
        rec.end(i, t0, w);
        // Give the reactor its turn between batches, as a real task would.
        glommio::yield_if_needed().await;
    }
    Ok(rec.finish())
}

/// (b): the same calls in one closure on glommio's blocking thread pool. The
/// log (file and owned batch buffer) moves into the closure and back out, as
/// an owned-buffer log writer would do.
async fn chunk_spawn_blocking(
    slot: &mut Option<StdLog>,
    dev: &DevStat,
    warmup: usize,
    n: usize,
) -> io::Result<Chunk> {
    let mut rec = Recorder::new(dev, warmup, n);
    for i in 0..warmup + n {
        rec.begin(i);
        let t0 = Instant::now();
        let mut log = slot.take().expect("log in use");
        let (log, res) = glommio::executor()
            .spawn_blocking(move || {
                let res = log.append_sync();
                (log, res)
            })
            .await;
        *slot = Some(log);
        let w = res?;
        rec.end(i, t0, w);
    }
    Ok(rec.finish())
}

/// (a): O_DIRECT through io_uring.
async fn chunk_dma(log: &mut DmaLog, dev: &DevStat, warmup: usize, n: usize) -> io::Result<Chunk> {
    let mut rec = Recorder::new(dev, warmup, n);
    for i in 0..warmup + n {
        rec.begin(i);
        let t0 = Instant::now();
        let w = log.append_sync().await?;
        rec.end(i, t0, w);
    }
    Ok(rec.finish())
}

/// Round trip of an empty closure through `spawn_blocking`.
async fn chunk_noop_spawn_blocking(warmup: usize, n: usize) -> Chunk {
    let dev = DevStat(None);
    let mut rec = Recorder::new(&dev, warmup, n);
    for i in 0..warmup + n {
        rec.begin(i);
        let t0 = Instant::now();
        glommio::executor().spawn_blocking(|| ()).await;
        rec.end(i, t0, 0);
    }
    rec.finish()
}

/// Requests from the main thread to the executor thread.
enum Cmd {
    /// Run one chunk of case (shape, backend); backend is one of (a)-(c).
    Chunk {
        shape: usize,
        backend: Backend,
        warmup: usize,
        n: usize,
    },
    /// Measure the empty `spawn_blocking` round trip.
    Noop { warmup: usize, n: usize },
    /// Close and delete every file.
    Finish,
}

enum Reply {
    Ready { alignment: u64 },
    Chunk(Chunk),
    Done,
}

/// The executor thread's per-shape state for (a)-(c); files are created on
/// first use so every case starts from an empty file.
#[derive(Default)]
struct ExecutorLogs {
    dma: Option<DmaLog>,
    spawn_blocking: Option<StdLog>,
    inline: Option<StdLog>,
}

async fn executor_main(
    dir: PathBuf,
    cmds: mpsc::Receiver<Cmd>,
    replies: mpsc::Sender<io::Result<Reply>>,
) -> io::Result<()> {
    let dev = DevStat::for_dir(&dir);
    let alignment = {
        let path = dir.join("probe");
        let probe = DmaFile::create(&path).await?;
        let a = probe.alignment();
        probe.close().await?;
        std::fs::remove_file(&path)?;
        a
    };
    let send = |r: io::Result<Reply>| replies.send(r).map_err(io::Error::other);
    send(Ok(Reply::Ready { alignment }))?;
    let mut logs: Vec<ExecutorLogs> = SHAPES.iter().map(|_| ExecutorLogs::default()).collect();
    // Blocking on the channel is fine here: nothing else runs on this
    // executor, and no I/O or blocking-pool work is in flight between chunks.
    while let Ok(cmd) = cmds.recv() {
        match cmd {
            Cmd::Chunk {
                shape,
                backend,
                warmup,
                n,
            } => {
                let path = dir.join(backend.file_name(shape));
                let logs = &mut logs[shape];
                let res = async {
                    match backend {
                        Backend::Dma => {
                            if logs.dma.is_none() {
                                logs.dma = Some(DmaLog::create(&path, SHAPES[shape]).await?);
                            }
                            let log = logs.dma.as_mut().expect("created above");
                            chunk_dma(log, &dev, warmup, n).await
                        }
                        Backend::SpawnBlocking => {
                            if logs.spawn_blocking.is_none() {
                                logs.spawn_blocking = Some(StdLog::create(&path, SHAPES[shape])?);
                            }
                            chunk_spawn_blocking(&mut logs.spawn_blocking, &dev, warmup, n).await
                        }
                        Backend::Inline => {
                            if logs.inline.is_none() {
                                logs.inline = Some(StdLog::create(&path, SHAPES[shape])?);
                            }
                            let log = logs.inline.as_mut().expect("created above");
                            chunk_inline(log, &dev, warmup, n).await
                        }
                        Backend::Floor => Err(io::Error::other("(d) runs off the executor")),
                    }
                }
                .await;
                send(res.map(Reply::Chunk))?;
            }
            Cmd::Noop { warmup, n } => {
                let chunk = chunk_noop_spawn_blocking(warmup, n).await;
                send(Ok(Reply::Chunk(chunk)))?;
            }
            Cmd::Finish => {
                for (shape, l) in logs.drain(..).enumerate() {
                    if let Some(dma) = l.dma {
                        dma.file.close().await?;
                    }
                    drop(l.spawn_blocking);
                    drop(l.inline);
                    for backend in [Backend::Dma, Backend::SpawnBlocking, Backend::Inline] {
                        let _ = std::fs::remove_file(dir.join(backend.file_name(shape)));
                    }
                }
                send(Ok(Reply::Done))?;
                break;
            }
        }
    }
    Ok(())
}

/// Main-thread handle to the executor running cases (a)-(c).
struct Executor {
    cmds: mpsc::Sender<Cmd>,
    replies: mpsc::Receiver<io::Result<Reply>>,
    handle: Option<glommio::ExecutorJoinHandle<io::Result<()>>>,
}

impl Executor {
    fn start(dir: PathBuf) -> io::Result<(Executor, u64)> {
        let (cmd_tx, cmd_rx) = mpsc::channel();
        let (reply_tx, reply_rx) = mpsc::channel();
        let handle = LocalExecutorBuilder::new(Placement::Unbound)
            .name("disk-choice")
            .io_memory(IO_MEMORY)
            .blocking_thread_pool_placement(PoolPlacement::Unbound(1))
            .spawn(move || executor_main(dir, cmd_rx, reply_tx))
            .map_err(io::Error::from)?;
        let mut ex = Executor {
            cmds: cmd_tx,
            replies: reply_rx,
            handle: Some(handle),
        };
        match ex.recv()? {
            Reply::Ready { alignment } => Ok((ex, alignment)),
            _ => Err(io::Error::other("unexpected reply")),
        }
    }

    /// Surfaces the executor's own error (startup errors come from `join`).
    fn failure(&mut self) -> io::Error {
        let Some(handle) = self.handle.take() else {
            return io::Error::other("executor gone");
        };
        let err = match handle.join() {
            Ok(Ok(())) => "exited early".to_string(),
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        io::Error::other(format!(
            "glommio executor failed (needs io_uring and RLIMIT_MEMLOCK >= {} KiB): {err}",
            IO_MEMORY >> 10
        ))
    }

    fn recv(&mut self) -> io::Result<Reply> {
        match self.replies.recv() {
            Ok(reply) => reply,
            Err(_) => Err(self.failure()),
        }
    }

    fn call(&mut self, cmd: Cmd) -> io::Result<Reply> {
        if self.cmds.send(cmd).is_err() {
            return Err(self.failure());
        }
        self.recv()
    }

    fn chunk(&mut self, cmd: Cmd) -> io::Result<Chunk> {
        match self.call(cmd)? {
            Reply::Chunk(c) => Ok(c),
            _ => Err(io::Error::other("unexpected reply")),
        }
    }

    fn finish(mut self) -> io::Result<()> {
        self.call(Cmd::Finish)?;
        match self.handle.take().map(|h| h.join()) {
            Some(Ok(r)) => r,
            Some(Err(e)) => Err(io::Error::from(e)),
            None => Ok(()),
        }
    }
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
    // SAFETY: `st` is plain old data that statfs fills in.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out pointer.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return "?".into();
    }
    match st.f_type as i64 {
        0xEF53 => "ext4".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        0x0102_1994 => "tmpfs".into(),
        0x794C_7630 => "overlayfs".into(),
        other => format!("fs magic 0x{other:x}"),
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn print_row(label: &str, s: &Stats, floor: &Stats) {
    let dev = s
        .dev_per_batch
        .map_or_else(|| "-".to_string(), |b| format!("{b:.0}"));
    println!(
        "  {label:<20} {:>9.0} {:>9} {:>10.1} {:>10.1} {:>10.0} {:>7.2}x {:>7.2}x {:>7.2}x",
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
        let rounds = iters.clamp(1, 20);
        Config {
            warmup: 100,
            rewarm: 5,
            chunk: iters.div_ceil(rounds),
            rounds,
        }
    } else {
        let iters = iters.unwrap_or(8);
        Config {
            warmup: 2,
            rewarm: 1,
            chunk: iters.div_ceil(2),
            rounds: 2,
        }
    };

    let scratch = scratch_dir().expect("create scratch directory");
    let dir = scratch.dir.clone();
    let dev = DevStat::for_dir(&dir);
    let (mut ex, alignment) = Executor::start(dir.clone()).expect("start glommio executor");

    let mut floors: Vec<Option<StdLog>> = SHAPES.iter().map(|_| None).collect();
    let mut results: Vec<Vec<Chunk>> = SHAPES
        .iter()
        .map(|_| BACKENDS.iter().map(|_| Chunk::default()).collect())
        .collect();
    let mut turn = 0;
    for round in 0..cfg.rounds {
        let warmup = cfg.warmup_for(round);
        for (s, shape) in SHAPES.iter().enumerate() {
            for k in 0..BACKENDS.len() {
                let b = (turn + k) % BACKENDS.len();
                let backend = BACKENDS[b];
                let chunk = if backend == Backend::Floor {
                    let log = floors[s].get_or_insert_with(|| {
                        StdLog::create(&dir.join(backend.file_name(s)), *shape)
                            .expect("create (d) log")
                    });
                    chunk_floor(log, &dev, warmup, cfg.chunk)
                } else {
                    ex.chunk(Cmd::Chunk {
                        shape: s,
                        backend,
                        warmup,
                        n: cfg.chunk,
                    })
                };
                let chunk =
                    chunk.unwrap_or_else(|e| panic!("{} {}: {e}", shape.name, backend.label()));
                results[s][b].merge(chunk);
            }
            turn += 1;
        }
    }
    let noop = ex
        .chunk(Cmd::Noop {
            warmup: cfg.warmup,
            n: cfg.chunk * cfg.rounds,
        })
        .expect("spawn_blocking round trip")
        .stats();
    ex.finish().expect("shut down executor");
    drop(floors);

    println!();
    println!(
        "disk_choice: append one batch + fdatasync, one batch in flight; {} recorded batches per case \
         ({} rounds x {}, interleaved), after {} warm-up",
        cfg.chunk * cfg.rounds,
        cfg.rounds,
        cfg.chunk,
        cfg.warmup
    );
    println!(
        "  dir {} ({}), DmaFile alignment {alignment} B, glommio io_memory {} KiB, 1 blocking-pool thread",
        dir.display(),
        fs_type(&dir),
        IO_MEMORY >> 10,
    );
    println!(
        "  kernel B = bytes passed to write() per batch; device B = device sectors written per batch \
         (whole device, incl. journal; noisy)"
    );
    println!();
    println!(
        "  {:<20} {:>9} {:>9} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8}",
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
    let floor_idx = BACKENDS
        .iter()
        .position(|&b| b == Backend::Floor)
        .expect("floor backend");
    for (shape, chunks) in SHAPES.iter().zip(results) {
        println!("{} ({} B per batch)", shape.name, shape.bytes());
        let stats: Vec<Stats> = chunks.into_iter().map(Chunk::stats).collect();
        for (backend, s) in BACKENDS.iter().zip(&stats) {
            print_row(backend.label(), s, &stats[floor_idx]);
        }
    }
    println!();
    println!(
        "spawn_blocking(no-op) round trip: median {:.1} us, p99 {:.1} us",
        us(noop.median),
        us(noop.p99)
    );
    drop(scratch);
}
