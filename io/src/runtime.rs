//! The executor topology: one Raft executor ("the Raft core") plus N shard executors, each a
//! glommio `LocalExecutor` on its own thread.
//!
//! [`Topology::plan`] derives the shape from the host: the shard count and CPU placement from
//! `available_parallelism()` and the thread's CPU affinity (never a CPU that does not exist), and
//! each executor's glommio `io_memory` from `RLIMIT_MEMLOCK` (the memlock preflight).
//! [`Topology::start`] starts the executors and waits until every one runs (or reports why it
//! could not); [`RunningTopology`] then reports signals and executor exits to the main thread, and
//! [`RunningTopology::shutdown`] stops everything through the shared [`Shutdown`] handle.
//!
//! Typical use from `main`:
//! ```no_run
//! use cairn_io::runtime::{RuntimeEvent, ShutdownSignals, Topology, TopologyOptions};
//! # fn main() -> Result<(), cairn_io::runtime::RuntimeError> {
//! let signals = ShutdownSignals::block()?; // before any thread exists
//! let topology = Topology::plan(&TopologyOptions::default())?;
//! let mut running = topology.start(|ctx| async move {
//!     ctx.shutdown.wait().await;
//!     Ok(())
//! })?;
//! running.watch_signals(signals)?;
//! if let RuntimeEvent::Signal(signal) = running.next_event()? {
//!     eprintln!("caught {}", signal.name());
//! }
//! running.shutdown(5_000)
//! # }
//! ```

mod shutdown;
mod signals;

pub use shutdown::{Shutdown, ShutdownWait};
pub use signals::{ShutdownSignal, ShutdownSignals};

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// glommio's default `io_memory` per executor; we never register more than this by default.
pub const IO_MEMORY_BYTES_DEFAULT_MAX: usize = 10 << 20;

/// The smallest `io_memory` per executor we start with by default; below it the memlock
/// preflight fails with [`RuntimeError::MemlockTooLow`].
pub const IO_MEMORY_BYTES_FLOOR: usize = 256 << 10;

/// glommio registers each executor's `io_memory` buffer with three io_uring rings (main, latency,
/// poll), and the kernel charges every registration against `RLIMIT_MEMLOCK`.
pub const IO_URING_RINGS_PER_EXECUTOR: u64 = 3;

/// The share of `RLIMIT_MEMLOCK` the executors' registered buffers may use together; the rest is
/// margin for the rings themselves (charged on kernels before 5.12), glommio's own small locks and
/// other io_uring users of the same user id (the kernel's io_uring account is per user).
pub const MEMLOCK_BUDGET_PERCENT: u64 = 75;

/// glommio refuses to create an executor when `RLIMIT_MEMLOCK` is below this.
pub const GLOMMIO_MEMLOCK_BYTES_MIN: u64 = 512 << 10;

/// With at least this many usable CPUs the default topology gives the Raft executor a CPU of its
/// own (shards = CPUs - 1); with fewer it shares the first CPU with shard 0 (shards = CPUs).
pub const RAFT_DEDICATED_CPUS_MIN: usize = 8;

/// The largest shard count a topology accepts.
pub const SHARD_COUNT_MAX: usize = 256;

/// Default bound on how long [`Topology::start`] waits for every executor to run.
pub const STARTUP_TIMEOUT_MS_DEFAULT: u64 = 10_000;

/// `io_memory` sizes are multiples of this (glommio rounds up to pages).
const IO_MEMORY_ALIGN_BYTES: usize = 4096;

/// How long a failed start waits for the executors that did start to stop again.
const FAILED_START_STOP_TIMEOUT_MS: u64 = 5_000;

/// How executors are placed on CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Placement {
    /// Pin each executor to one usable CPU (from the thread's affinity mask). The default.
    #[default]
    Pinned,
    /// Do not pin; the kernel schedules the threads freely. For tests and shared machines.
    Unbound,
}

/// What a caller may choose about the topology; everything else is derived from the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopologyOptions {
    /// Number of shard executors; `None` means one per usable CPU (minus one for the Raft core when
    /// there are at least [`RAFT_DEDICATED_CPUS_MIN`] CPUs). Must be 1..=[`SHARD_COUNT_MAX`].
    pub shard_count: Option<usize>,
    /// CPU placement of the executors.
    pub placement: Placement,
    /// Upper bound for each executor's `io_memory`, used when the memlock limit allows it.
    pub io_memory_bytes_max: usize,
    /// Lower bound for each executor's `io_memory`; the preflight fails below it.
    pub io_memory_bytes_min: usize,
    /// How long [`Topology::start`] waits for every executor to be running.
    pub startup_timeout_ms: u64,
}

impl Default for TopologyOptions {
    fn default() -> TopologyOptions {
        TopologyOptions {
            shard_count: None,
            placement: Placement::Pinned,
            io_memory_bytes_max: IO_MEMORY_BYTES_DEFAULT_MAX,
            io_memory_bytes_min: IO_MEMORY_BYTES_FLOOR,
            startup_timeout_ms: STARTUP_TIMEOUT_MS_DEFAULT,
        }
    }
}

/// The facts about the host a topology is planned from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostResources {
    /// CPU ids this process may run on (its affinity mask), ascending.
    pub cpus_allowed: Vec<usize>,
    /// `std::thread::available_parallelism()`: the affinity count, further limited by a cgroup
    /// CPU quota.
    pub parallelism: usize,
    /// The soft `RLIMIT_MEMLOCK` in bytes; `None` when unlimited.
    pub memlock_limit_bytes: Option<u64>,
}

impl HostResources {
    /// Reads the host: available parallelism, the affinity mask (`sched_getaffinity`) and
    /// `RLIMIT_MEMLOCK` (`getrlimit`).
    pub fn probe() -> Result<HostResources, RuntimeError> {
        let parallelism = std::thread::available_parallelism()
            .map_err(RuntimeError::Parallelism)?
            .get();
        Ok(HostResources {
            cpus_allowed: cpus_allowed()?,
            parallelism,
            memlock_limit_bytes: memlock_limit_bytes()?,
        })
    }
}

fn cpus_allowed() -> Result<Vec<usize>, RuntimeError> {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is writable and its size is passed; pid 0 is the calling thread.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(RuntimeError::Affinity(io::Error::last_os_error()));
    }
    let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, the capacity of `set`.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect();
    if cpus.is_empty() {
        return Err(RuntimeError::Affinity(io::Error::other(
            "the CPU affinity mask is empty",
        )));
    }
    Ok(cpus)
}

fn memlock_limit_bytes() -> Result<Option<u64>, RuntimeError> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) };
    if rc != 0 {
        return Err(RuntimeError::MemlockQuery(io::Error::last_os_error()));
    }
    if limit.rlim_cur == libc::RLIM_INFINITY {
        Ok(None)
    } else {
        Ok(Some(limit.rlim_cur))
    }
}

/// What an executor is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExecutorRole {
    /// The Raft core: log, state machine, snapshots.
    Raft,
    /// A shard owning sockets (index 0..shard_count).
    Shard(usize),
}

/// One executor of a planned topology.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutorPlan {
    /// What the executor is for.
    pub role: ExecutorRole,
    /// Thread and executor name: `cairn-raft`, `cairn-shard-<i>`.
    pub name: String,
    /// The CPU the executor is pinned to; `None` when unbound.
    pub cpu: Option<usize>,
    /// glommio `io_memory` registered by this executor.
    pub io_memory_bytes: usize,
}

/// A planned set of executors: one Raft executor first, then the shards in index order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    executors: Vec<ExecutorPlan>,
    host: HostResources,
    placement: Placement,
    startup_timeout_ms: u64,
}

impl Topology {
    /// Plans the topology for this host (see [`HostResources::probe`] and [`Topology::plan_for`]).
    pub fn plan(options: &TopologyOptions) -> Result<Topology, RuntimeError> {
        Topology::plan_for(options, &HostResources::probe()?)
    }

    /// Plans the topology for the given host facts; pure, so it can be tested for any machine.
    ///
    /// The usable CPUs are the first `parallelism` CPUs of the affinity mask. Shard `i` is pinned
    /// to usable CPU `i mod n`; the Raft executor takes the first usable CPU no shard uses, or
    /// shares the first CPU with shard 0 when every CPU has a shard. `io_memory` is sized so that
    /// every executor's registrations together fit in [`MEMLOCK_BUDGET_PERCENT`] of the limit.
    pub fn plan_for(
        options: &TopologyOptions,
        host: &HostResources,
    ) -> Result<Topology, RuntimeError> {
        if options.io_memory_bytes_min == 0
            || options.io_memory_bytes_min > options.io_memory_bytes_max
        {
            return Err(RuntimeError::InvalidOptions(format!(
                "io_memory_bytes_min ({}) must be positive and at most io_memory_bytes_max ({})",
                options.io_memory_bytes_min, options.io_memory_bytes_max
            )));
        }
        let usable_count = host.parallelism.min(host.cpus_allowed.len()).max(1);
        let usable: &[usize] = match options.placement {
            Placement::Pinned => {
                if host.cpus_allowed.is_empty() {
                    return Err(RuntimeError::Affinity(io::Error::other(
                        "no CPU is allowed by the affinity mask",
                    )));
                }
                &host.cpus_allowed[..usable_count]
            }
            Placement::Unbound => &[],
        };
        let shard_count = match options.shard_count {
            Some(count) => count,
            None if usable_count >= RAFT_DEDICATED_CPUS_MIN => usable_count - 1,
            None => usable_count,
        };
        if shard_count == 0 || shard_count > SHARD_COUNT_MAX {
            return Err(RuntimeError::InvalidOptions(format!(
                "shard_count must be between 1 and {SHARD_COUNT_MAX}, not {shard_count}"
            )));
        }
        let executor_count = shard_count + 1;
        let io_memory_bytes = size_io_memory(options, host.memlock_limit_bytes, executor_count)?;
        let cpu_of = |slot: usize| -> Option<usize> {
            if usable.is_empty() {
                None
            } else {
                Some(usable[slot % usable.len()])
            }
        };
        let raft_slot = if shard_count < usable.len() {
            shard_count
        } else {
            0
        };
        let mut executors = Vec::with_capacity(executor_count);
        executors.push(ExecutorPlan {
            role: ExecutorRole::Raft,
            name: "cairn-raft".to_string(),
            cpu: cpu_of(raft_slot),
            io_memory_bytes,
        });
        executors.extend((0..shard_count).map(|index| ExecutorPlan {
            role: ExecutorRole::Shard(index),
            name: format!("cairn-shard-{index}"),
            cpu: cpu_of(index),
            io_memory_bytes,
        }));
        Ok(Topology {
            executors,
            host: host.clone(),
            placement: options.placement,
            startup_timeout_ms: options.startup_timeout_ms,
        })
    }

    /// Every executor: the Raft executor first, then the shards in index order.
    pub fn executors(&self) -> &[ExecutorPlan] {
        &self.executors
    }

    /// The Raft executor.
    pub fn raft(&self) -> &ExecutorPlan {
        &self.executors[0]
    }

    /// The shard executors in index order.
    pub fn shards(&self) -> &[ExecutorPlan] {
        &self.executors[1..]
    }

    /// Number of shard executors.
    pub fn shard_count(&self) -> usize {
        self.executors.len() - 1
    }

    /// How the executors are placed.
    pub fn placement(&self) -> Placement {
        self.placement
    }

    /// True when the Raft executor is pinned to the same CPU as a shard.
    pub fn raft_shares_cpu(&self) -> bool {
        let raft_cpu = self.raft().cpu;
        raft_cpu.is_some() && self.shards().iter().any(|shard| shard.cpu == raft_cpu)
    }

    /// `io_memory` of each executor (all executors get the same).
    pub fn io_memory_bytes(&self) -> usize {
        self.raft().io_memory_bytes
    }

    /// The host facts the plan was made from.
    pub fn host(&self) -> &HostResources {
        &self.host
    }

    /// Locked memory the executors' buffer registrations need together, without margin.
    pub fn memlock_registered_bytes(&self) -> u64 {
        self.io_memory_bytes() as u64 * IO_URING_RINGS_PER_EXECUTOR * self.executors.len() as u64
    }

    /// A one-line description of the placement, e.g.
    /// `raft on cpu 0 (shared with shard 0); shards on cpus 0, 1` or `unbound`.
    pub fn placement_summary(&self) -> String {
        if self.placement == Placement::Unbound {
            return "unbound (not pinned to CPUs)".to_string();
        }
        let cpu = |plan: &ExecutorPlan| match plan.cpu {
            Some(cpu) => cpu.to_string(),
            None => "any".to_string(),
        };
        let mut summary = format!("raft on cpu {}", cpu(self.raft()));
        if let Some(shard) = self.shards().iter().find(|s| s.cpu == self.raft().cpu) {
            if let ExecutorRole::Shard(index) = shard.role {
                summary.push_str(&format!(" (shared with shard {index})"));
            }
        } else {
            summary.push_str(" (dedicated)");
        }
        let shard_cpus: Vec<String> = self.shards().iter().map(cpu).collect();
        summary.push_str(&format!("; shards on cpus {}", shard_cpus.join(", ")));
        summary
    }

    /// Starts every executor on its own thread and waits (at most `startup_timeout_ms`) until each
    /// one is running its main future, built by `executor_main` on the executor's own thread.
    ///
    /// An executor that cannot start (glommio reports its error when the executor is built, e.g.
    /// io_uring unavailable or a CPU that is not online) makes this return that error after the
    /// executors that did start are stopped again. Each main future should finish promptly once
    /// [`ExecutorContext::shutdown`] is triggered.
    pub fn start<G, F>(&self, executor_main: G) -> Result<RunningTopology, RuntimeError>
    where
        G: Fn(ExecutorContext) -> F + Send + Sync + 'static,
        F: Future<Output = Result<(), ExecutorError>> + 'static,
    {
        let (tx, rx) = mpsc::channel();
        let mut running = RunningTopology {
            shutdown: Shutdown::new(),
            tx,
            rx,
            threads: Vec::with_capacity(self.executors.len()),
            pending: VecDeque::new(),
        };
        let executor_main = Arc::new(executor_main);
        for (index, plan) in self.executors.iter().enumerate() {
            let thread_plan = plan.clone();
            let shutdown = running.shutdown.clone();
            let tx = running.tx.clone();
            let main = Arc::clone(&executor_main);
            let spawned = std::thread::Builder::new()
                .name(plan.name.clone())
                .spawn(move || run_executor(index, thread_plan, shutdown, tx, main));
            match spawned {
                Ok(handle) => running.threads.push(ExecutorThread {
                    name: plan.name.clone(),
                    handle: Some(handle),
                }),
                Err(source) => {
                    // Best effort: the spawn error is the one worth reporting.
                    let _ = running.stop(FAILED_START_STOP_TIMEOUT_MS);
                    return Err(RuntimeError::ThreadSpawn {
                        name: plan.name.clone(),
                        source,
                    });
                }
            }
        }
        match running.wait_ready(self.startup_timeout_ms) {
            Ok(()) => Ok(running),
            Err(error) => {
                let _ = running.stop(FAILED_START_STOP_TIMEOUT_MS);
                Err(error)
            }
        }
    }
}

fn align_down(bytes: usize) -> usize {
    bytes / IO_MEMORY_ALIGN_BYTES * IO_MEMORY_ALIGN_BYTES
}

/// Locked memory needed for `executor_count` executors of `io_memory_bytes` each, margin included.
fn memlock_required_bytes(io_memory_bytes: usize, executor_count: usize) -> u64 {
    let registered = io_memory_bytes as u64 * IO_URING_RINGS_PER_EXECUTOR * executor_count as u64;
    registered
        .saturating_mul(100)
        .div_ceil(MEMLOCK_BUDGET_PERCENT)
        .max(GLOMMIO_MEMLOCK_BYTES_MIN)
}

fn size_io_memory(
    options: &TopologyOptions,
    memlock_limit_bytes: Option<u64>,
    executor_count: usize,
) -> Result<usize, RuntimeError> {
    let max = align_down(options.io_memory_bytes_max).max(IO_MEMORY_ALIGN_BYTES);
    let Some(limit) = memlock_limit_bytes else {
        return Ok(max);
    };
    let budget = limit / 100 * MEMLOCK_BUDGET_PERCENT + limit % 100 * MEMLOCK_BUDGET_PERCENT / 100;
    let per_executor = budget / (IO_URING_RINGS_PER_EXECUTOR * executor_count as u64);
    let io_memory = align_down(usize::try_from(per_executor).unwrap_or(usize::MAX)).min(max);
    let required = memlock_required_bytes(options.io_memory_bytes_min, executor_count);
    if io_memory < options.io_memory_bytes_min || limit < required {
        return Err(RuntimeError::MemlockTooLow {
            limit_bytes: limit,
            required_bytes: required,
            executor_count,
            io_memory_bytes_min: options.io_memory_bytes_min,
        });
    }
    Ok(io_memory)
}

/// Formats a byte count for people: `512 B`, `680 KiB`, `8 MiB`, `1.5 GiB`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut unit = 0;
    let mut scaled = bytes as f64;
    while scaled >= 1024.0 && unit + 1 < UNITS.len() {
        scaled /= 1024.0;
        unit += 1;
    }
    if unit == 0 || scaled.fract() == 0.0 {
        format!("{} {}", scaled as u64, UNITS[unit])
    } else {
        format!("{:.1} {}", scaled, UNITS[unit])
    }
}

/// The error an executor's main future may end with.
pub type ExecutorError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What an executor's main future receives.
#[derive(Clone, Debug)]
pub struct ExecutorContext {
    /// This executor's plan: role, name, CPU, io_memory.
    pub plan: ExecutorPlan,
    /// The topology-wide shutdown handle; the main future returns once it is triggered.
    pub shutdown: Shutdown,
}

enum ExitCause {
    Start(String),
    Failed(String),
    Panicked,
}

enum Event {
    Ready(usize),
    Exited(usize, Result<(), ExitCause>),
    Signal(ShutdownSignal),
}

/// Sends the executor's exit to the main thread exactly once, also when the thread unwinds.
struct ExitReporter {
    tx: Sender<Event>,
    index: usize,
    sent: bool,
}

impl ExitReporter {
    fn report(&mut self, result: Result<(), ExitCause>) {
        self.sent = true;
        // The receiver is gone only when nobody waits for this executor any more.
        let _ = self.tx.send(Event::Exited(self.index, result));
    }
}

impl Drop for ExitReporter {
    fn drop(&mut self) {
        if !self.sent {
            self.report(Err(ExitCause::Panicked));
        }
    }
}

fn glommio_placement(cpu: Option<usize>) -> Result<glommio::Placement, String> {
    let Some(cpu) = cpu else {
        return Ok(glommio::Placement::Unbound);
    };
    let online = glommio::CpuSet::online()
        .map_err(|error| format!("cannot read the CPU topology: {error}"))?;
    let set = online.filter(|location| location.cpu == cpu);
    if set.is_empty() {
        return Err(format!("cpu {cpu} is not online"));
    }
    // Fenced to a one-CPU set pins like `Fixed`, without `Fixed`'s panic when sysfs is unreadable.
    Ok(glommio::Placement::Fenced(set))
}

fn run_executor<G, F>(
    index: usize,
    plan: ExecutorPlan,
    shutdown: Shutdown,
    tx: Sender<Event>,
    executor_main: Arc<G>,
) where
    G: Fn(ExecutorContext) -> F + Send + Sync + 'static,
    F: Future<Output = Result<(), ExecutorError>> + 'static,
{
    let mut reporter = ExitReporter {
        tx: tx.clone(),
        index,
        sent: false,
    };
    let placement = match glommio_placement(plan.cpu) {
        Ok(placement) => placement,
        Err(message) => return reporter.report(Err(ExitCause::Start(message))),
    };
    let built = glommio::LocalExecutorBuilder::new(placement)
        .name(&plan.name)
        .io_memory(plan.io_memory_bytes)
        .make();
    let executor = match built {
        Ok(executor) => executor,
        Err(error) => {
            let message = format!(
                "{error} (glommio needs io_uring: Linux 5.8 or newer, sysctl \
                 kernel.io_uring_disabled=0, and a seccomp profile that allows io_uring_setup in \
                 containers)"
            );
            return reporter.report(Err(ExitCause::Start(message)));
        }
    };
    let context = ExecutorContext { plan, shutdown };
    let result = executor.run(async move {
        // The receiver is gone only when nobody waits for this executor any more.
        let _ = tx.send(Event::Ready(index));
        executor_main(context).await
    });
    drop(executor);
    reporter.report(result.map_err(|error| ExitCause::Failed(error.to_string())));
}

/// Something the main thread should react to while the topology runs.
#[derive(Debug)]
pub enum RuntimeEvent {
    /// SIGINT, SIGTERM or SIGHUP arrived (after [`RunningTopology::watch_signals`]).
    Signal(ShutdownSignal),
    /// An executor's main future returned (`Ok`) or failed; either way it no longer runs.
    ExecutorExited {
        /// The executor's name.
        name: String,
        /// How it ended.
        result: Result<(), RuntimeError>,
    },
}

struct ExecutorThread {
    name: String,
    /// `None` once the thread has exited and been joined.
    handle: Option<JoinHandle<()>>,
}

/// The started executors. Dropping it triggers shutdown without waiting; call
/// [`RunningTopology::shutdown`] to wait for a clean stop.
pub struct RunningTopology {
    shutdown: Shutdown,
    tx: Sender<Event>,
    rx: Receiver<Event>,
    threads: Vec<ExecutorThread>,
    pending: VecDeque<RuntimeEvent>,
}

impl fmt::Debug for RunningTopology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningTopology")
            .field("running", &self.running_names())
            .field("shutdown", &self.shutdown.is_triggered())
            .finish()
    }
}

impl RunningTopology {
    /// The shutdown handle every executor observes.
    pub fn shutdown_handle(&self) -> &Shutdown {
        &self.shutdown
    }

    /// Names of the executors whose threads have not exited yet.
    pub fn running_names(&self) -> Vec<String> {
        self.threads
            .iter()
            .filter(|thread| thread.handle.is_some())
            .map(|thread| thread.name.clone())
            .collect()
    }

    /// Reports SIGINT/SIGTERM as [`RuntimeEvent::Signal`] from now on (see [`ShutdownSignals`]).
    pub fn watch_signals(&self, signals: ShutdownSignals) -> Result<(), RuntimeError> {
        let tx = self.tx.clone();
        signals.spawn_watcher(move |signal| tx.send(Event::Signal(signal)).is_ok())
    }

    /// Blocks until the next signal or executor exit. Does not poll: the thread sleeps in the
    /// channel until an executor thread or the signal watcher sends something.
    pub fn next_event(&mut self) -> Result<RuntimeEvent, RuntimeError> {
        if let Some(event) = self.pending.pop_front() {
            return Ok(event);
        }
        loop {
            let event = self.rx.recv().map_err(|_| RuntimeError::EventsClosed)?;
            match event {
                Event::Ready(_) => continue,
                Event::Signal(signal) => return Ok(RuntimeEvent::Signal(signal)),
                Event::Exited(index, result) => return Ok(self.exited(index, result)),
            }
        }
    }

    /// Triggers shutdown and waits at most `timeout_ms` for every executor to stop. Returns the
    /// first executor failure seen while stopping, [`RuntimeError::ShutdownTimeout`] naming the
    /// executors still running, or [`RuntimeError::ShutdownInterrupted`] on a second signal.
    pub fn shutdown(mut self, timeout_ms: u64) -> Result<(), RuntimeError> {
        self.stop(timeout_ms)
    }

    fn stop(&mut self, timeout_ms: u64) -> Result<(), RuntimeError> {
        self.shutdown.trigger();
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        let mut first_error = None;
        while self.threads.iter().any(|thread| thread.handle.is_some()) {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(remaining) {
                Ok(Event::Ready(_)) => {}
                Ok(Event::Signal(ShutdownSignal::Hangup)) => {}
                Ok(Event::Signal(signal)) => {
                    return Err(RuntimeError::ShutdownInterrupted(signal));
                }
                Ok(Event::Exited(index, result)) => {
                    if let RuntimeEvent::ExecutorExited { result: Err(e), .. } =
                        self.exited(index, result)
                    {
                        first_error.get_or_insert(e);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(RuntimeError::ShutdownTimeout {
                        running: self.running_names(),
                        timeout_ms,
                    });
                }
                Err(RecvTimeoutError::Disconnected) => return Err(RuntimeError::EventsClosed),
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn wait_ready(&mut self, timeout_ms: u64) -> Result<(), RuntimeError> {
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        let mut ready = vec![false; self.threads.len()];
        while ready.iter().any(|r| !r) {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(remaining) {
                Ok(Event::Ready(index)) => {
                    if let Some(flag) = ready.get_mut(index) {
                        *flag = true;
                    }
                }
                Ok(Event::Signal(signal)) => self.pending.push_back(RuntimeEvent::Signal(signal)),
                Ok(Event::Exited(index, result)) => {
                    let was_ready = ready.get(index).copied().unwrap_or(true);
                    if let Some(flag) = ready.get_mut(index) {
                        *flag = true;
                    }
                    match self.exited(index, result) {
                        RuntimeEvent::ExecutorExited { result: Err(e), .. } => return Err(e),
                        RuntimeEvent::ExecutorExited {
                            name,
                            result: Ok(()),
                        } if !was_ready => {
                            return Err(RuntimeError::ExecutorStart {
                                name,
                                message: "the executor thread ended before it ran".to_string(),
                            });
                        }
                        event => self.pending.push_back(event),
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    let pending = self
                        .threads
                        .iter()
                        .zip(&ready)
                        .filter(|(_, ready)| !**ready)
                        .map(|(thread, _)| thread.name.clone())
                        .collect();
                    return Err(RuntimeError::StartupTimeout {
                        pending,
                        timeout_ms,
                    });
                }
                Err(RecvTimeoutError::Disconnected) => return Err(RuntimeError::EventsClosed),
            }
        }
        Ok(())
    }

    /// Joins the exited executor's thread and turns its exit into an event.
    fn exited(&mut self, index: usize, result: Result<(), ExitCause>) -> RuntimeEvent {
        let name = match self.threads.get_mut(index) {
            Some(thread) => {
                if let Some(handle) = thread.handle.take() {
                    // The thread has sent its last message and is ending; a panic was already
                    // reported as `ExitCause::Panicked`.
                    let _ = handle.join();
                }
                thread.name.clone()
            }
            None => format!("executor #{index}"),
        };
        let result = result.map_err(|cause| match cause {
            ExitCause::Start(message) => RuntimeError::ExecutorStart {
                name: name.clone(),
                message,
            },
            ExitCause::Failed(message) => RuntimeError::ExecutorFailed {
                name: name.clone(),
                message,
            },
            ExitCause::Panicked => RuntimeError::ExecutorPanicked { name: name.clone() },
        });
        RuntimeEvent::ExecutorExited { name, result }
    }
}

impl Drop for RunningTopology {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// Why the runtime could not be planned, started or stopped. Every message says what to do.
#[derive(Debug)]
pub enum RuntimeError {
    /// `available_parallelism()` failed.
    Parallelism(io::Error),
    /// The CPU affinity mask could not be read or is empty.
    Affinity(io::Error),
    /// `getrlimit(RLIMIT_MEMLOCK)` failed.
    MemlockQuery(io::Error),
    /// `RLIMIT_MEMLOCK` is too low for the planned executors even at the smallest `io_memory`.
    MemlockTooLow {
        /// The current soft limit.
        limit_bytes: u64,
        /// The smallest limit that would work, margin included.
        required_bytes: u64,
        /// Executors planned (Raft + shards).
        executor_count: usize,
        /// The smallest `io_memory` per executor that was allowed.
        io_memory_bytes_min: usize,
    },
    /// The options contradict each other or exceed a limit.
    InvalidOptions(String),
    /// Blocking or waiting for signals failed.
    Signals(io::Error),
    /// A thread could not be spawned.
    ThreadSpawn {
        /// The thread's name.
        name: String,
        /// The OS error.
        source: io::Error,
    },
    /// An executor could not be built (reported by glommio on the executor's thread).
    ExecutorStart {
        /// The executor's name.
        name: String,
        /// glommio's error.
        message: String,
    },
    /// An executor's main future returned an error.
    ExecutorFailed {
        /// The executor's name.
        name: String,
        /// The error.
        message: String,
    },
    /// An executor thread panicked (the panic message went to stderr).
    ExecutorPanicked {
        /// The executor's name.
        name: String,
    },
    /// Not every executor was running within the startup bound.
    StartupTimeout {
        /// Executors that had not reported running.
        pending: Vec<String>,
        /// The bound.
        timeout_ms: u64,
    },
    /// Not every executor stopped within the shutdown bound.
    ShutdownTimeout {
        /// Executors still running.
        running: Vec<String>,
        /// The bound.
        timeout_ms: u64,
    },
    /// A second SIGINT/SIGTERM arrived while shutting down.
    ShutdownInterrupted(ShutdownSignal),
    /// The internal event channel closed (cannot happen while the topology is alive).
    EventsClosed,
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeError::Parallelism(e) => {
                write!(f, "cannot determine the number of usable CPUs: {e}")
            }
            RuntimeError::Affinity(e) => write!(f, "cannot read the CPU affinity mask: {e}"),
            RuntimeError::MemlockQuery(e) => {
                write!(
                    f,
                    "cannot read the locked-memory limit (RLIMIT_MEMLOCK): {e}"
                )
            }
            RuntimeError::MemlockTooLow {
                limit_bytes,
                required_bytes,
                executor_count,
                io_memory_bytes_min,
            } => {
                let recommended_mib = required_bytes.div_ceil(1 << 20);
                write!(
                    f,
                    "the locked-memory limit is too low: RLIMIT_MEMLOCK is {} ({limit_bytes} bytes), \
                     but {executor_count} executors (1 raft + {} shards) need at least {} \
                     ({required_bytes} bytes): io_uring registers each executor's io_memory \
                     (at least {}) with {IO_URING_RINGS_PER_EXECUTOR} rings, and {}% of the limit \
                     is kept as margin. Raise the limit to at least {recommended_mib} MiB: \
                     `ulimit -l {}` (in KiB) in the shell that starts the agent, \
                     `LimitMEMLOCK={recommended_mib}M` in its systemd unit, a `memlock` line in \
                     /etc/security/limits.conf, or `--ulimit memlock={}` with docker run",
                    format_bytes(*limit_bytes),
                    executor_count.saturating_sub(1),
                    format_bytes(*required_bytes),
                    format_bytes(*io_memory_bytes_min as u64),
                    100 - MEMLOCK_BUDGET_PERCENT,
                    recommended_mib * 1024,
                    recommended_mib << 20,
                )
            }
            RuntimeError::InvalidOptions(message) => {
                write!(f, "invalid runtime options: {message}")
            }
            RuntimeError::Signals(e) => {
                write!(f, "cannot set up SIGINT/SIGTERM handling: {e}")
            }
            RuntimeError::ThreadSpawn { name, source } => {
                write!(f, "cannot spawn thread {name}: {source}")
            }
            RuntimeError::ExecutorStart { name, message } => {
                write!(f, "executor {name} failed to start: {message}")
            }
            RuntimeError::ExecutorFailed { name, message } => {
                write!(f, "executor {name} failed: {message}")
            }
            RuntimeError::ExecutorPanicked { name } => {
                write!(f, "executor {name} panicked (see the panic message above)")
            }
            RuntimeError::StartupTimeout {
                pending,
                timeout_ms,
            } => write!(
                f,
                "executors not running after {timeout_ms} ms: {}",
                pending.join(", ")
            ),
            RuntimeError::ShutdownTimeout {
                running,
                timeout_ms,
            } => write!(
                f,
                "executors still running {timeout_ms} ms after shutdown was requested: {}",
                running.join(", ")
            ),
            RuntimeError::ShutdownInterrupted(signal) => {
                write!(
                    f,
                    "caught a second signal ({}) while shutting down",
                    signal.name()
                )
            }
            RuntimeError::EventsClosed => write!(f, "the runtime event channel closed"),
        }
    }
}

impl std::error::Error for RuntimeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RuntimeError::Parallelism(e)
            | RuntimeError::Affinity(e)
            | RuntimeError::MemlockQuery(e)
            | RuntimeError::Signals(e)
            | RuntimeError::ThreadSpawn { source: e, .. } => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
