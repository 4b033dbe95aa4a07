//! `commit_latency`: the whole commit path of the Raft driver (`cairn::agent::raft_driver`): propose on the
//! leader, group-committed append with a real `fdatasync`, replication over loopback TCP, commit, apply to the
//! key/value state machine, reply. Beside it, in the same run, the physical floor: a bare `write` +
//! `fdatasync` of one entry's frame to a plain file in the same directory.
//!
//! Topologies: 1 server, and 3 servers (each its own glommio executor thread and data directory, over
//! 127.0.0.1). Loads: one sequential proposer (latency p50/p99), and 64 / 256 concurrent proposers on the
//! leader's executor (commits/s; group commit turns concurrency into larger batches).
//!
//! Run: `cargo bench -p cairn-bench --bench commit_latency`. Under `cargo test` it makes a token run.

use cairn::agent::raft_driver::{RaftDriverOptions, RaftHandle};
use cairn::agent::server::{bootstrap_configuration, server_id};
use cairn::agent::state_machine::KvStateMachine;
use cairn::rpc::WireRole;
use cairn_bench::{is_bench_run, latency, us, Latency, ScratchDir};
use cairn_io::Shutdown;
use criterion::{BenchmarkId, Criterion, Throughput};
use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};
use std::cell::Cell;
use std::fs::File;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// glommio `io_memory` per executor: three executors must fit an 8 MiB `RLIMIT_MEMLOCK`.
const IO_MEMORY_BYTES: usize = 256 << 10;
/// The value written by each proposal: with the 13-byte command header and 8-byte key, 128-byte commands.
const VALUE_BYTES: usize = 115;
/// The entry frame the floor writes: log frame header (24 B) + payload tag + command.
const FLOOR_RECORD_BYTES: usize = 24 + 1 + 1 + 4 + 8 + VALUE_BYTES;
const CONCURRENCY: [usize; 2] = [64, 256];
/// Distinct keys written (a bounded key space, like etcd's `--key-space-size`), so the state and its
/// snapshots stay the same size however long the bench runs.
const KEY_SPACE: u64 = 10_000;
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

enum Cmd {
    /// `n` proposals one after another; replies with each one's latency.
    Sequential(u64, mpsc::Sender<Vec<Duration>>),
    /// `n` bare write + fdatasync of one entry's frame to a plain file, each through `spawn_blocking` from
    /// the leader's executor (the path the driver's storage jobs take); replies with each one's latency.
    Floor(u64, mpsc::Sender<Vec<Duration>>),
    /// `total` proposals from `proposers` concurrent tasks; replies with the time they took.
    Concurrent {
        proposers: usize,
        total: u64,
        reply: mpsc::Sender<Duration>,
    },
}

/// A running cluster; the leader's executor takes commands.
struct BenchCluster {
    commands: mpsc::Sender<Cmd>,
    shutdown: Shutdown,
    joins: Vec<ExecutorJoinHandle<Result<(), String>>>,
}

impl Drop for BenchCluster {
    fn drop(&mut self) {
        self.shutdown.trigger();
        for join in self.joins.drain(..) {
            match join.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("commit_latency: a server failed: {e}"),
                Err(e) => eprintln!("commit_latency: an executor failed: {e}"),
            }
        }
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn command(k: u64) -> Vec<u8> {
    let key = (k % KEY_SPACE).to_le_bytes();
    KvStateMachine::set_command(&key, &[0x5A; VALUE_BYTES])
}

impl BenchCluster {
    fn start(servers: usize, dir: &Path) -> BenchCluster {
        let addrs: Vec<SocketAddr> = (0..servers)
            .map(|_| SocketAddr::from(([127, 0, 0, 1], free_port())))
            .collect();
        let config = bootstrap_configuration(&addrs);
        let shutdown = Shutdown::new();
        let (commands, command_rx) = mpsc::channel();
        let mut command_rx = Some(command_rx);
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let mut joins = Vec::new();
        // Followers first, the proposer's server last: it campaigns at once and wins.
        for i in (0..servers).rev() {
            let mut options = RaftDriverOptions::new(
                server_id(addrs[i]),
                dir.join(format!("s{servers}-{i}")),
                addrs[i],
            );
            options.bootstrap = Some(config.clone());
            options.log_level = cairn::logging::LogLevel::Warn;
            let (stop, ready) = (shutdown.clone(), ready_tx.clone());
            let commands = if i == 0 { command_rx.take() } else { None };
            let floor_path = dir.join(format!("floor-executor-{servers}"));
            let join = LocalExecutorBuilder::new(Placement::Unbound)
                .name(&format!("bench-raft-{i}"))
                .io_memory(IO_MEMORY_BYTES)
                .spawn(move || server_main(options, floor_path, stop, ready, commands))
                .expect("spawn executor");
            joins.push(join);
        }
        for _ in 0..servers {
            ready_rx
                .recv_timeout(STARTUP_TIMEOUT)
                .expect("servers start in time")
                .expect("server starts");
        }
        BenchCluster {
            commands,
            shutdown,
            joins,
        }
    }

    fn sequential(&self, n: u64) -> Vec<Duration> {
        let (tx, rx) = mpsc::channel();
        self.commands
            .send(Cmd::Sequential(n, tx))
            .expect("leader executor");
        rx.recv().expect("sequential result")
    }

    fn floor(&self, n: u64) -> Vec<Duration> {
        let (tx, rx) = mpsc::channel();
        self.commands
            .send(Cmd::Floor(n, tx))
            .expect("leader executor");
        rx.recv().expect("floor result")
    }

    fn concurrent(&self, proposers: usize, total: u64) -> Duration {
        let (reply, rx) = mpsc::channel();
        self.commands
            .send(Cmd::Concurrent {
                proposers,
                total,
                reply,
            })
            .expect("leader executor");
        rx.recv().expect("concurrent result")
    }
}

async fn server_main(
    options: RaftDriverOptions,
    floor_path: std::path::PathBuf,
    stop: Shutdown,
    ready: mpsc::Sender<Result<(), String>>,
    commands: Option<mpsc::Receiver<Cmd>>,
) -> Result<(), String> {
    let handle = match RaftHandle::start(options, Box::new(KvStateMachine::new()), &stop).await {
        Ok(handle) => handle,
        Err(e) => {
            let _ = ready.send(Err(e.to_string()));
            return Err(e.to_string());
        }
    };
    if let Some(commands) = commands {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut last_campaign = Instant::now() - Duration::from_secs(10);
        while handle.status().role != WireRole::Leader {
            if Instant::now() > deadline {
                let _ = ready.send(Err("the proposer's server did not become leader".into()));
                return Err("no leader".into());
            }
            if last_campaign.elapsed() > Duration::from_secs(3) {
                handle.campaign();
                last_campaign = Instant::now();
            }
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        // One write so that the leader's no-op and the first append are out of the way.
        handle
            .apply(command(u64::MAX))
            .await
            .map_err(|e| e.message)?;
        let _ = ready.send(Ok(()));
        let mut key = 0u64;
        let mut floor = Some(Floor::new(&floor_path));
        while !stop.is_triggered() {
            match commands.try_recv() {
                Ok(Cmd::Sequential(n, reply)) => {
                    let mut samples = Vec::with_capacity(n as usize);
                    for _ in 0..n {
                        key += 1;
                        let start = Instant::now();
                        handle.apply(command(key)).await.map_err(|e| e.message)?;
                        samples.push(start.elapsed());
                    }
                    let _ = reply.send(samples);
                }
                Ok(Cmd::Floor(n, reply)) => {
                    let mut samples = Vec::with_capacity(n as usize);
                    for _ in 0..n {
                        let mut f = floor.take().expect("floor file");
                        let start = Instant::now();
                        let (f, took) = glommio::executor()
                            .spawn_blocking(move || {
                                let took = f.sample();
                                (f, took)
                            })
                            .await;
                        let _ = took;
                        samples.push(start.elapsed());
                        floor = Some(f);
                    }
                    let _ = reply.send(samples);
                }
                Ok(Cmd::Concurrent {
                    proposers,
                    total,
                    reply,
                }) => {
                    let started = Instant::now();
                    let next = Rc::new(Cell::new(0u64));
                    let base = key;
                    let tasks: Vec<_> = (0..proposers)
                        .map(|_| {
                            let (handle, next) = (handle.clone(), Rc::clone(&next));
                            glommio::spawn_local(async move {
                                loop {
                                    let k = next.get();
                                    if k >= total {
                                        return Ok(());
                                    }
                                    next.set(k + 1);
                                    handle.apply(command(base + k + 1)).await?;
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.map_err(|e: cairn::rpc::ErrorReply| e.message)?;
                    }
                    key += total;
                    let _ = reply.send(started.elapsed());
                }
                Err(mpsc::TryRecvError::Empty) => {
                    glommio::timer::sleep(Duration::from_micros(200)).await;
                }
                Err(mpsc::TryRecvError::Disconnected) => break,
            }
        }
    } else {
        let _ = ready.send(Ok(()));
        handle.stopped().await;
    }
    handle.close().await.map_err(|e| e.to_string())
}

/// The floor: a plain file written with write + fdatasync, one entry's frame at a time: appended to a growing
/// file, or (`preallocated`) written inside space filled with zeros and synced beforehand, as the log's
/// preallocated segments are, so the fdatasync changes no metadata.
struct Floor {
    file: File,
    written: u64,
    preallocated: bool,
}

/// The size of the preallocated floor file (written over from the start again when full).
const PREALLOCATED_FLOOR_BYTES: u64 = 16 << 20;

impl Floor {
    fn new(path: &Path) -> Floor {
        let file = File::create(path).expect("create the floor file");
        Floor {
            file,
            written: 0,
            preallocated: false,
        }
    }

    fn preallocated(path: &Path) -> Floor {
        let mut file = File::create(path).expect("create the floor file");
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..PREALLOCATED_FLOOR_BYTES >> 20 {
            file.write_all(&zeros).expect("preallocate");
        }
        file.sync_all().expect("sync the preallocated floor file");
        Floor {
            file,
            written: 0,
            preallocated: true,
        }
    }

    fn sample(&mut self) -> Duration {
        use std::os::unix::fs::FileExt;
        let record = [0xA5u8; FLOOR_RECORD_BYTES];
        let start = Instant::now();
        if self.preallocated {
            self.file
                .write_all_at(&record, self.written)
                .expect("write");
        } else {
            self.file.write_all(&record).expect("write");
        }
        self.file.sync_data().expect("fdatasync");
        let took = start.elapsed();
        self.written += record.len() as u64;
        if self.preallocated && self.written + record.len() as u64 > PREALLOCATED_FLOOR_BYTES {
            self.written = 0;
        } else if !self.preallocated && self.written > 64 << 20 {
            self.file.set_len(0).expect("truncate the floor file");
            self.written = 0;
        }
        took
    }

    fn samples(&mut self, n: usize) -> Vec<Duration> {
        (0..n).map(|_| self.sample()).collect()
    }
}

fn criterion_cases(c: &mut Criterion, clusters: &[(usize, BenchCluster)], dir: &Path) {
    let mut group = c.benchmark_group("commit_latency");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    group.throughput(Throughput::Elements(1));
    let mut floor = Floor::new(&dir.join("floor"));
    group.bench_function("floor_write_fdatasync", |b| {
        b.iter_custom(|iters| floor.samples(iters as usize).into_iter().sum())
    });
    for (servers, cluster) in clusters {
        group.bench_function(BenchmarkId::new("floor_spawn_blocking", servers), |b| {
            b.iter_custom(|iters| cluster.floor(iters).into_iter().sum())
        });
        group.bench_function(BenchmarkId::new("sequential", servers), |b| {
            b.iter_custom(|iters| cluster.sequential(iters).into_iter().sum())
        });
        for proposers in CONCURRENCY {
            group.bench_function(
                BenchmarkId::new(format!("concurrent_{proposers}"), servers),
                |b| b.iter_custom(|iters| cluster.concurrent(proposers, iters.max(1))),
            );
        }
    }
    group.finish();
}

fn row(case: &str, lat: Option<Latency>, rate: f64, floor: &Latency) {
    match lat {
        Some(l) => println!(
            "{case:<34} {:>9} {:>9} {:>12.0} {:>9.2} {:>9.2}",
            us(l.p50),
            us(l.p99),
            rate,
            l.p50.as_secs_f64() / floor.p50.as_secs_f64(),
            rate * floor.mean.as_secs_f64(),
        ),
        None => println!(
            "{case:<34} {:>9} {:>9} {:>12.0} {:>9} {:>9.2}",
            "-",
            "-",
            rate,
            "-",
            rate * floor.mean.as_secs_f64(),
        ),
    }
}

/// Measures every case beside the floors and prints the table quoted in bench/README.md. Sequential commits
/// and the floors are interleaved in rounds so that drift hits all alike.
fn summary(clusters: &[(usize, BenchCluster)], dir: &Path, sequential: u64, concurrent: u64) {
    const ROUNDS: u64 = 10;
    let per_round = sequential.div_ceil(ROUNDS);
    let mut main_floor = Floor::new(&dir.join("floor"));
    let mut main_samples = Vec::new();
    let mut prealloc_floor = Floor::preallocated(&dir.join("floor-preallocated"));
    let mut prealloc_samples = Vec::new();
    let mut floor_samples: Vec<Vec<Duration>> = vec![Vec::new(); clusters.len()];
    let mut commit_samples: Vec<Vec<Duration>> = vec![Vec::new(); clusters.len()];
    for _ in 0..ROUNDS {
        main_samples.extend(main_floor.samples(per_round as usize));
        prealloc_samples.extend(prealloc_floor.samples(per_round as usize));
        for (k, (_, cluster)) in clusters.iter().enumerate() {
            floor_samples[k].extend(cluster.floor(per_round));
            commit_samples[k].extend(cluster.sequential(per_round));
        }
    }
    let rate = |s: &[Duration]| s.len() as f64 / s.iter().sum::<Duration>().as_secs_f64();
    println!(
        "\ncommit_latency summary ({} sequential proposals per topology in {ROUNDS} rounds interleaved with \
         the floors; {concurrent} proposals per concurrent case; {VALUE_BYTES} B values; same disk, same run)",
        per_round * ROUNDS
    );
    println!(
        "{:<34} {:>9} {:>9} {:>12} {:>9} {:>9}",
        "case", "p50 us", "p99 us", "commits/s", "p50/floor", "rate/floor"
    );
    let main_rate = rate(&main_samples);
    let main_latency = latency(&mut main_samples);
    row(
        "floor: write+fdatasync, main thread",
        Some(main_latency),
        main_rate,
        &main_latency,
    );
    let prealloc_rate = rate(&prealloc_samples);
    let prealloc_latency = latency(&mut prealloc_samples);
    row(
        "floor: same, preallocated file",
        Some(prealloc_latency),
        prealloc_rate,
        &prealloc_latency,
    );
    let mut sequential_p50 = Vec::new();
    for (k, (servers, cluster)) in clusters.iter().enumerate() {
        let floor_rate = rate(&floor_samples[k]);
        let floor = latency(&mut floor_samples[k]);
        row(
            &format!("floor: same via spawn_blocking ({servers})"),
            Some(floor),
            floor_rate,
            &floor,
        );
        let commit_rate = rate(&commit_samples[k]);
        let commit_latency = latency(&mut commit_samples[k]);
        sequential_p50.push((*servers, commit_latency.p50));
        row(
            &format!("{servers} server(s), 1 proposer"),
            Some(commit_latency),
            commit_rate,
            &floor,
        );
        for proposers in CONCURRENCY {
            let took = cluster.concurrent(proposers, concurrent);
            row(
                &format!("{servers} server(s), {proposers} proposers"),
                None,
                concurrent as f64 / took.as_secs_f64(),
                &floor,
            );
        }
    }
    println!(
        "(ratios against the spawn_blocking floor of the same topology, measured on the leader's executor; \
         rate/floor above 1 means group commit put several commits in one fdatasync)"
    );
    for (servers, p50) in sequential_p50 {
        println!(
            "{servers} server(s), 1 proposer, p50 against the main-thread floors: {:.2}x appending, {:.2}x \
             preallocated",
            p50.as_secs_f64() / main_latency.p50.as_secs_f64(),
            p50.as_secs_f64() / prealloc_latency.p50.as_secs_f64()
        );
    }
}

fn main() {
    let dir = ScratchDir::new(env!("CARGO_TARGET_TMPDIR"), "commit-latency").expect("scratch dir");
    let bench = is_bench_run();
    let clusters = vec![
        (1, BenchCluster::start(1, &dir.0)),
        (3, BenchCluster::start(3, &dir.0)),
    ];
    if bench {
        let mut c = Criterion::default().configure_from_args();
        criterion_cases(&mut c, &clusters, &dir.0);
        c.final_summary();
        summary(&clusters, &dir.0, 2000, 20_000);
    } else {
        summary(&clusters, &dir.0, 20, 512);
    }
}
