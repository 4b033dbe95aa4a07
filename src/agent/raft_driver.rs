//! The Raft driver: runs one pure [`Node`] on the Raft executor with real storage and the server transport.
//!
//! Tasks (all on one latency-sensitive glommio task queue, sharing one `Rc<RefCell<Inner>>`, never holding the
//! borrow across an `.await`):
//! - **inbound**: frames from the [`Listener`], decoded by [`crate::rpc`] and stepped (Raft messages), assembled
//!   (snapshot chunks) or answered (apply, read, status requests);
//! - **timer**: steps `Input::Tick` at [`Node::next_deadline_ms`]; woken early when a step brings the deadline
//!   forward;
//! - **storage**: group commit. Every persistence action of every step since the last job joins
//!   [`storage::PendingOps`]; while no job runs, the pending operations become one job (hard state save, one
//!   log append with one `fdatasync`, snapshot writes) that runs on glommio's blocking pool
//!   (`spawn_blocking`). The [`storage::Storage`] moves into the blocking closure and comes back with the
//!   result, so exactly one job runs at a time and the executor thread never blocks on the disk. While a job
//!   runs, new steps keep accumulating the next batch. When a job is durable the sends it held are released
//!   and Raft is told (`Input::Persisted`, `Input::SnapshotTaken`);
//! - **snapshot senders**: one per follower being sent a snapshot: the file is loaded off the executor and
//!   streamed in chunks of at most [`rpc::CHUNK_BYTES_MAX`], then `InstallSnapshot` follows on the same
//!   connection.
//!
//! The action contract of `src/raft`: a `Send { after_persist: true }` leaves only after every persistence
//! action before it is durable; a `Send { after_persist: false }` waits only for earlier hard-state saves.
//! Each persistence action gets a sequence number; a held send records the number it waits for and leaves
//! when a job covering it completes. Committed entries are applied to the [`StateMachine`] as soon as Raft
//! emits them (Raft only emits entries that are committed and durable here). When the applied index passes
//! the last snapshot by `snapshot_threshold` entries, the state machine's bytes are written as a snapshot,
//! Raft compacts, and the log segments below Raft's first kept index are purged in the next job.
//!
//! Hard-state saves that change only the commit index are not written on their own (each would cost an
//! `fdatasync` of the meta file on every commit, on every server): the commit index rides along with the next
//! save of a new term or vote, or with the next snapshot. Raft does not need the commit index to be durable;
//! after a crash it restarts from an older one (never a newer one) and learns the rest from the leader.
//!
//! Restart recovery is the simulator's `recover`: newest snapshot, hard state, stored entries, then the
//! stored log is trimmed to exactly what Raft kept.

pub mod storage;

use crate::agent::state_machine::StateMachine;
use crate::logging::{LogLevel, Logger};
use crate::raft::{
    Action, Bytes, Configuration, Entry, Index, Input, Message, Node, Options, Payload, RaftError,
    Role, ServerId, Term,
};
use crate::rpc::{
    self, ApplyRequest, Body, Consistency, ErrorCode, ErrorReply, Frame, Header, LeaderHint,
    ReadRequest, SnapshotChunk, StatusReply, WireRole,
};
use cairn_io::net::{
    InboundFrame, Listener, ListenerOptions, Peer, PeerOptions, PeerSender, TrySendErrorKind,
};
use cairn_io::Shutdown;
use cairn_storage::LogOptions;
use futures_lite::future::or;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::{Latency, Shares, Task, TaskQueueHandle};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};
use storage::{encode_meta, load_snapshot, Job, Op, PendingOps, Storage};

/// Consul's `raft_snapshot_threshold` default: applied entries between snapshots.
pub const SNAPSHOT_THRESHOLD_DEFAULT: u64 = 16_384;
/// Snapshots kept on disk.
pub const SNAPSHOTS_RETAINED_DEFAULT: usize = 2;
/// Client requests (writes and reads) waiting for Raft at once; more are refused as overloaded.
pub const REQUESTS_MAX_DEFAULT: usize = 16_384;
/// Reply connections to clients (`reply_to` addresses) kept open at once; the oldest is closed first.
pub const CLIENT_PEERS_MAX_DEFAULT: usize = 64;
/// Sends held for durability at once; beyond it a send is dropped (Raft retransmits) and counted.
pub const HELD_SENDS_MAX: usize = 65_536;
/// Largest snapshot a follower accepts from a leader (bytes held in memory while it arrives).
pub const SNAPSHOT_RECEIVE_BYTES_MAX_DEFAULT: u64 = 1 << 30;
/// Largest frame sent or received on the server transport.
pub const FRAME_BYTES_MAX_DEFAULT: usize = 64 << 20;
/// Frames queued per peer.
pub const PEER_SEND_QUEUE_FRAMES_MAX_DEFAULT: usize = 4096;
/// Frames waiting in the listener's inbound channel.
pub const INBOUND_QUEUE_FRAMES_MAX_DEFAULT: usize = 1024;
/// How long a snapshot sender waits for room in a full peer queue before it retries.
const SNAPSHOT_QUEUE_RETRY_MS: u64 = 2;

/// Everything the driver is configured with.
#[derive(Clone, Debug)]
pub struct RaftDriverOptions {
    /// The Raft core's options (its `id` is this server's id).
    pub raft: Options,
    /// The data directory (locked while the driver runs).
    pub data_dir: PathBuf,
    /// The server RPC address to listen on.
    pub bind: SocketAddr,
    /// This server's datacenter; frames from another datacenter are dropped.
    pub datacenter: String,
    /// Written as the first log entry when the data directory holds no Raft state.
    pub bootstrap: Option<Configuration>,
    /// Applied entries between snapshots (Consul's `raft_snapshot_threshold`).
    pub snapshot_threshold: u64,
    /// Snapshots kept on disk.
    pub snapshots_retained: usize,
    /// Size at which a log segment is sealed and a new one started.
    pub log_segment_bytes_max: u64,
    /// Client requests waiting at once.
    pub requests_max: usize,
    /// Reply connections to clients kept open.
    pub client_peers_max: usize,
    /// Largest snapshot accepted from a leader.
    pub snapshot_receive_bytes_max: u64,
    /// Largest frame on the transport.
    pub frame_bytes_max: usize,
    /// Frames queued per peer.
    pub peer_send_queue_frames_max: usize,
    /// Frames waiting in the inbound channel.
    pub inbound_queue_frames_max: usize,
    /// Seeds Raft's randomized timeouts.
    pub seed: u64,
    /// What the driver logs.
    pub log_level: LogLevel,
}

impl RaftDriverOptions {
    /// Defaults for server `id` (Consul's timing) storing in `data_dir` and listening on `bind`.
    pub fn new(id: ServerId, data_dir: PathBuf, bind: SocketAddr) -> RaftDriverOptions {
        RaftDriverOptions {
            raft: Options::consul(id, 1),
            data_dir,
            bind,
            datacenter: "dc1".to_string(),
            bootstrap: None,
            snapshot_threshold: SNAPSHOT_THRESHOLD_DEFAULT,
            snapshots_retained: SNAPSHOTS_RETAINED_DEFAULT,
            log_segment_bytes_max: LogOptions::default().segment_bytes_max,
            requests_max: REQUESTS_MAX_DEFAULT,
            client_peers_max: CLIENT_PEERS_MAX_DEFAULT,
            snapshot_receive_bytes_max: SNAPSHOT_RECEIVE_BYTES_MAX_DEFAULT,
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            peer_send_queue_frames_max: PEER_SEND_QUEUE_FRAMES_MAX_DEFAULT,
            inbound_queue_frames_max: INBOUND_QUEUE_FRAMES_MAX_DEFAULT,
            seed: id.0,
            log_level: LogLevel::Info,
        }
    }
}

/// Why the driver could not start, or why it stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverError(pub String);

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "raft: {}", self.0)
    }
}

impl std::error::Error for DriverError {}

/// A write applied through Raft.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// Its log index.
    pub index: Index,
    /// What the state machine returned.
    pub result: Vec<u8>,
}

/// The answer to a read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadResult {
    /// The applied index the read saw.
    pub index: Index,
    /// What the state machine answered.
    pub result: Vec<u8>,
}

/// Counters of a running driver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Storage jobs completed.
    pub jobs: u64,
    /// Entries made durable by those jobs.
    pub entries_persisted: u64,
    /// Snapshots written by this server.
    pub snapshots_taken: u64,
    /// Snapshots installed from a leader.
    pub snapshots_installed: u64,
    /// Snapshots streamed to followers.
    pub snapshots_sent: u64,
    /// Frames that did not decode, came from another datacenter, or were unexpected.
    pub frames_dropped_inbound: u64,
    /// Frames not sent: full peer queue, unknown peer, too many held sends.
    pub frames_dropped_outbound: u64,
}

enum Reply {
    Applied(Applied),
    Read(ReadResult),
}

type LocalReply = Result<Reply, ErrorReply>;

enum Target {
    Server(ServerId),
    Address(String),
}

enum Responder {
    Local(LocalSender<LocalReply>),
    Remote { target: Target, request_id: u64 },
}

struct Request {
    responder: Responder,
    /// For reads: the query to answer once the read index is applied.
    query: Option<Vec<u8>>,
}

struct Held {
    required_seq: u64,
    to: ServerId,
    msg: Message,
}

struct Incoming {
    from: ServerId,
    index: Index,
    term: Term,
    total_bytes: u64,
    data: Vec<u8>,
}

struct CompleteSnapshot {
    from: ServerId,
    index: Index,
    term: Term,
    data: Vec<u8>,
}

struct PeerSlot {
    address: String,
    peer: Option<Peer>,
}

struct Inner {
    me: Weak<RefCell<Inner>>,
    id: ServerId,
    datacenter: String,
    node: Node,
    sm: Box<dyn StateMachine>,
    clock: Instant,
    logger: Logger,
    tq: TaskQueueHandle,
    stop: Shutdown,
    failure: Option<String>,
    // Storage and group commit.
    storage: Option<Storage>,
    snapshot_dir: PathBuf,
    pending: PendingOps,
    enqueued_seq: u64,
    hard_state_seq: u64,
    durable_seq: u64,
    held: VecDeque<Held>,
    snapshot_in_job: bool,
    snapshot_threshold: u64,
    /// The term and vote of the last hard state queued for saving.
    saved_term_vote: (Term, Option<ServerId>),
    /// A hard state that differs from the saved one only in its commit index, not saved yet.
    lazy_commit: Option<crate::raft::HardState>,
    wake_storage: LocalSender<()>,
    // Timer.
    timer_armed_ms: u64,
    wake_timer: LocalSender<()>,
    // Transport.
    peer_options: PeerOptions,
    peers: BTreeMap<ServerId, PeerSlot>,
    peers_config_index: Option<Index>,
    client_peers: VecDeque<(String, Peer)>,
    client_peers_max: usize,
    // Client requests.
    requests_max: usize,
    next_ctx: u64,
    requests: BTreeMap<u64, Request>,
    /// Proposals gathered during this executor turn; stepped into Raft together, so concurrent proposers
    /// cost one append per follower rather than one each.
    proposal_batch: Vec<(u64, Bytes)>,
    proposals: BTreeMap<Index, (Term, Responder)>,
    reads: Vec<(Index, Request)>,
    // Snapshots in and out.
    snapshot_receive_bytes_max: u64,
    snapshot_timeout_ms: u64,
    incoming: Option<Incoming>,
    complete: Option<CompleteSnapshot>,
    restore_with: Option<(CompleteSnapshot, Configuration)>,
    sending_snapshots: BTreeSet<ServerId>,
    actions: Vec<Action>,
    /// Inputs that arose while actions were carried out; stepped right after.
    deferred: Vec<Input>,
    stats: DriverStats,
}

/// The running driver, on the Raft executor (not `Send`; clone it freely on that executor).
#[derive(Clone)]
pub struct RaftHandle {
    inner: Rc<RefCell<Inner>>,
    parts: Rc<RefCell<Parts>>,
    local_addr: SocketAddr,
}

struct Parts {
    listener: Option<Listener>,
    tasks: Vec<Task<()>>,
}

impl RaftHandle {
    /// Opens the data directory (recovering it, or bootstrapping it when empty and `options.bootstrap` is
    /// set), binds the server RPC listener and starts the driver's tasks. Must run on a glommio executor; the
    /// driver stops when `shutdown` is triggered, when [`RaftHandle::close`] is called, or on a storage error.
    pub async fn start(
        options: RaftDriverOptions,
        mut sm: Box<dyn StateMachine>,
        shutdown: &Shutdown,
    ) -> Result<RaftHandle, DriverError> {
        let logger = Logger::new(options.log_level);
        let open_options = options.clone();
        let opened = glommio::executor()
            .spawn_blocking(move || open_storage(open_options))
            .await
            .map_err(DriverError)?;
        let (storage, node, snapshot_payload, notes) = opened;
        for note in notes {
            logger.info("agent.server.raft", &note);
        }
        if let Some(payload) = snapshot_payload {
            sm.restore(&payload)
                .map_err(|e| DriverError(format!("restore the snapshot: {e}")))?;
        }
        let tq = glommio::executor().create_task_queue(
            Shares::Static(1000),
            Latency::Matters(Duration::from_millis(2)),
            "cairn-raft",
        );
        let stop = Shutdown::new();
        let (listener, inbound) = Listener::bind(
            options.bind,
            ListenerOptions {
                frame_bytes_max: options.frame_bytes_max,
                inbound_queue_frames_max: options.inbound_queue_frames_max,
                task_queue: Some(tq),
                ..ListenerOptions::default()
            },
            &stop,
        )
        .map_err(|e| DriverError(e.to_string()))?;
        let local_addr = listener.local_addr();
        let (wake_storage, storage_wakes) = local_channel::new_bounded(1);
        let (wake_timer, timer_wakes) = local_channel::new_bounded(1);
        let snapshot_dir = storage.snapshot_dir().to_path_buf();
        let saved_term_vote = (node.term(), node.hard_state().vote);
        let inner = Rc::new_cyclic(|me| {
            RefCell::new(Inner {
                me: me.clone(),
                id: options.raft.id,
                datacenter: options.datacenter.clone(),
                node,
                sm,
                clock: Instant::now(),
                logger,
                tq,
                stop: stop.clone(),
                failure: None,
                storage: Some(storage),
                snapshot_dir,
                pending: PendingOps::default(),
                enqueued_seq: 0,
                hard_state_seq: 0,
                durable_seq: 0,
                held: VecDeque::new(),
                snapshot_in_job: false,
                snapshot_threshold: options.snapshot_threshold.max(1),
                saved_term_vote,
                lazy_commit: None,
                wake_storage,
                timer_armed_ms: 0,
                wake_timer,
                peer_options: PeerOptions {
                    send_queue_frames_max: options.peer_send_queue_frames_max,
                    frame_bytes_max: options.frame_bytes_max,
                    task_queue: Some(tq),
                    ..PeerOptions::default()
                },
                peers: BTreeMap::new(),
                peers_config_index: None,
                client_peers: VecDeque::new(),
                client_peers_max: options.client_peers_max.max(1),
                requests_max: options.requests_max.max(1),
                next_ctx: 1,
                requests: BTreeMap::new(),
                proposal_batch: Vec::new(),
                proposals: BTreeMap::new(),
                reads: Vec::new(),
                snapshot_receive_bytes_max: options.snapshot_receive_bytes_max,
                snapshot_timeout_ms: options.raft.snapshot_timeout_ms,
                incoming: None,
                complete: None,
                restore_with: None,
                sending_snapshots: BTreeSet::new(),
                actions: Vec::new(),
                deferred: Vec::new(),
                stats: DriverStats::default(),
            })
        });
        let spawn = |future: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>| {
            glommio::spawn_local_into(future, tq).map_err(|e| DriverError(e.to_string()))
        };
        let link = {
            let (outer, stop) = (shutdown.clone(), stop.clone());
            spawn(Box::pin(async move {
                or(outer.wait(), stop.wait()).await;
                stop.trigger();
            }))?
        };
        let tasks = vec![
            link,
            spawn(Box::pin(inbound_loop(
                Rc::clone(&inner),
                inbound,
                stop.clone(),
            )))?,
            spawn(Box::pin(timer_loop(
                Rc::clone(&inner),
                timer_wakes,
                stop.clone(),
            )))?,
            spawn(Box::pin(storage_loop(
                Rc::clone(&inner),
                storage_wakes,
                stop.clone(),
            )))?,
        ];
        inner.borrow_mut().step(Input::Tick);
        Ok(RaftHandle {
            inner,
            parts: Rc::new(RefCell::new(Parts {
                listener: Some(listener),
                tasks,
            })),
            local_addr,
        })
    }

    /// The address the server RPC listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// This server's id.
    pub fn id(&self) -> ServerId {
        self.inner.borrow().id
    }

    /// Role, term, leader and indexes, as a status query answers them.
    pub fn status(&self) -> StatusReply {
        self.inner.borrow().status()
    }

    /// The driver's counters.
    pub fn stats(&self) -> DriverStats {
        self.inner.borrow().stats
    }

    /// Asks Raft to start an election now (bootstrap, benchmarks).
    pub fn campaign(&self) {
        self.inner.borrow_mut().step(Input::Campaign);
    }

    /// Proposes `command`; resolves once it is applied (with the state machine's result) or refused.
    pub async fn apply(&self, command: Vec<u8>) -> Result<Applied, ErrorReply> {
        let (tx, rx) = local_channel::new_bounded(1);
        self.inner
            .borrow_mut()
            .propose(command, Responder::Local(tx));
        match rx.recv().await {
            Some(Ok(Reply::Applied(applied))) => Ok(applied),
            Some(Ok(Reply::Read(_))) => Err(stopped_error()),
            Some(Err(e)) => Err(e),
            None => Err(stopped_error()),
        }
    }

    /// Reads through the state machine's `query` with the given consistency.
    pub async fn read(
        &self,
        consistency: Consistency,
        query: Vec<u8>,
    ) -> Result<ReadResult, ErrorReply> {
        let (tx, rx) = local_channel::new_bounded(1);
        self.inner
            .borrow_mut()
            .read(consistency, query, Responder::Local(tx));
        match rx.recv().await {
            Some(Ok(Reply::Read(read))) => Ok(read),
            Some(Ok(Reply::Applied(_))) => Err(stopped_error()),
            Some(Err(e)) => Err(e),
            None => Err(stopped_error()),
        }
    }

    /// Resolves once the driver stops (its shutdown was triggered, or storage failed).
    pub async fn stopped(&self) {
        let stop = self.inner.borrow().stop.clone();
        stop.wait().await;
    }

    /// Why the driver failed, if it did.
    pub fn failure(&self) -> Option<String> {
        self.inner.borrow().failure.clone()
    }

    /// Stops the driver: lets a storage job under way finish, stops the tasks, closes the listener and every
    /// connection, and fails the requests still waiting. `Err` when the driver had failed.
    pub async fn close(&self) -> Result<(), DriverError> {
        let stop = self.inner.borrow().stop.clone();
        stop.trigger();
        let (listener, tasks) = {
            let mut parts = self.parts.borrow_mut();
            (parts.listener.take(), std::mem::take(&mut parts.tasks))
        };
        for task in tasks {
            task.await;
        }
        if let Some(listener) = listener {
            listener.close().await;
        }
        let mut inner = self.inner.borrow_mut();
        inner.fail_requests("the server is shutting down");
        inner.peers.clear();
        inner.client_peers.clear();
        match &inner.failure {
            Some(why) => Err(DriverError(why.clone())),
            None => Ok(()),
        }
    }
}

fn stopped_error() -> ErrorReply {
    ErrorReply {
        code: ErrorCode::Unknown,
        leader: None,
        message: "the raft driver stopped".to_string(),
    }
}

type Opened = (Storage, Node, Option<Vec<u8>>, Vec<String>);

/// Opens storage and rebuilds the Raft node (blocking; runs on the blocking pool).
fn open_storage(options: RaftDriverOptions) -> Result<Opened, String> {
    let log_options = LogOptions {
        segment_bytes_max: options.log_segment_bytes_max,
    };
    let (mut storage, recovered) = Storage::open(
        &options.data_dir,
        log_options,
        options.snapshots_retained,
        options.bootstrap.as_ref(),
    )?;
    let mut notes = recovered.notes;
    let node = Node::new(options.raft.clone(), options.seed, recovered.restore, 0);
    if storage.trim_to(node.log().last_index())? {
        notes.push(format!(
            "trimmed the stored log to Raft's last index {}",
            node.log().last_index()
        ));
    }
    notes.push(format!(
        "recovered: term {}, log {}..={}, snapshot {}, commit {}",
        node.term(),
        node.log().first_index(),
        node.log().last_index(),
        node.log().snapshot_index(),
        node.commit_index()
    ));
    Ok((storage, node, recovered.snapshot_payload, notes))
}

async fn inbound_loop(
    inner: Rc<RefCell<Inner>>,
    frames: LocalReceiver<InboundFrame>,
    stop: Shutdown,
) {
    loop {
        let frame = or(frames.recv(), async {
            stop.wait().await;
            None
        })
        .await;
        let Some(frame) = frame else { break };
        inner.borrow_mut().on_frame(frame);
        glommio::yield_if_needed().await;
    }
}

async fn timer_loop(inner: Rc<RefCell<Inner>>, wakes: LocalReceiver<()>, stop: Shutdown) {
    let mut spins = 0u32;
    while !stop.is_triggered() {
        let wait_ms = {
            let mut i = inner.borrow_mut();
            let deadline = i.node.next_deadline_ms();
            i.timer_armed_ms = deadline;
            let wait = deadline.saturating_sub(i.now_ms());
            // A deadline that a tick did not move forward would spin: sleep at least 1 ms then.
            if wait == 0 && spins > 0 {
                1
            } else {
                wait
            }
        };
        if wait_ms > 0 {
            let sleep = async {
                glommio::timer::sleep(Duration::from_millis(wait_ms)).await;
            };
            let woken = async {
                wakes.recv().await;
            };
            or(or(sleep, woken), stop.wait()).await;
        }
        let mut i = inner.borrow_mut();
        if i.now_ms() >= i.node.next_deadline_ms() {
            i.step(Input::Tick);
            spins = if i.now_ms() >= i.node.next_deadline_ms() {
                spins + 1
            } else {
                0
            };
        }
    }
}

async fn storage_loop(inner: Rc<RefCell<Inner>>, wakes: LocalReceiver<()>, stop: Shutdown) {
    loop {
        if stop.is_triggered() {
            break;
        }
        let started = inner.borrow_mut().begin_job();
        match started {
            None => {
                or(
                    async {
                        wakes.recv().await;
                    },
                    stop.wait(),
                )
                .await;
            }
            Some((mut storage, job, seq)) => {
                let (storage, job, result) = glommio::executor()
                    .spawn_blocking(move || {
                        let result = storage.run(&job);
                        (storage, job, result)
                    })
                    .await;
                inner.borrow_mut().job_done(storage, job, seq, result);
            }
        }
    }
}

impl Inner {
    fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    fn fail(&mut self, why: String) {
        if self.failure.is_none() {
            self.logger.error("agent.server.raft", &why);
            self.failure = Some(why);
        }
        self.stop.trigger();
    }

    /// Feeds one input to Raft, carries out the actions, and wakes the storage and timer tasks as needed.
    fn step(&mut self, input: Input) {
        if self.failure.is_some() || self.stop.is_triggered() {
            return;
        }
        let now = self.now_ms();
        let mut actions = std::mem::take(&mut self.actions);
        self.node.step(now, input, &mut actions);
        self.carry_out(&mut actions);
        self.actions = actions;
        let deferred = std::mem::take(&mut self.deferred);
        for input in deferred {
            self.step(input);
        }
        if !self.pending.is_empty() && self.storage.is_some() {
            let _ = self.wake_storage.try_send(());
        }
        if self.node.next_deadline_ms() < self.timer_armed_ms {
            self.timer_armed_ms = self.node.next_deadline_ms();
            let _ = self.wake_timer.try_send(());
        }
    }

    fn carry_out(&mut self, actions: &mut Vec<Action>) {
        for action in actions.drain(..) {
            match action {
                Action::SaveHardState(hs) => {
                    if (hs.term, hs.vote) == self.saved_term_vote {
                        // Only the commit index moved: it is saved with the next term or vote change or
                        // snapshot, not with an fdatasync of its own (see the module docs).
                        self.lazy_commit = Some(hs);
                    } else {
                        self.saved_term_vote = (hs.term, hs.vote);
                        self.lazy_commit = None;
                        self.pending.save_hard_state(hs);
                        self.enqueued_seq += 1;
                        self.hard_state_seq = self.enqueued_seq;
                    }
                }
                Action::TruncateLog { from } => {
                    self.pending.push(Op::Truncate(from));
                    self.enqueued_seq += 1;
                }
                Action::AppendLog(entries) => {
                    self.pending.append(&entries);
                    self.enqueued_seq += 1;
                }
                Action::Send {
                    to,
                    msg,
                    after_persist,
                } => {
                    let required_seq = if after_persist {
                        self.enqueued_seq
                    } else {
                        self.hard_state_seq
                    };
                    if required_seq <= self.durable_seq {
                        self.send_raft(to, msg);
                    } else if self.held.len() < HELD_SENDS_MAX {
                        self.held.push_back(Held {
                            required_seq,
                            to,
                            msg,
                        });
                    } else {
                        self.stats.frames_dropped_outbound += 1;
                    }
                }
                Action::Apply(entries) => self.apply_entries(entries),
                Action::SendSnapshot { to, index, term } => {
                    self.start_snapshot_send(to, index, term)
                }
                Action::RestoreSnapshot { index, term } => self.restore_snapshot(index, term),
                Action::Proposed { ctx, index, term } => {
                    if let Some(request) = self.requests.remove(&ctx) {
                        self.proposals.insert(index, (term, request.responder));
                    }
                }
                Action::ReadReady { ctx, index } => {
                    if let Some(request) = self.requests.remove(&ctx) {
                        self.reads.push((index, request));
                        self.serve_reads();
                    }
                }
                Action::Rejected { ctx, error } => {
                    if let Some(request) = self.requests.remove(&ctx) {
                        let reply = self.raft_error(error);
                        self.respond(request.responder, Err(reply));
                    }
                }
                Action::TransferDone { .. } => {}
                Action::LeaderChanged { term, leader } => self.leader_changed(term, leader),
            }
        }
    }

    fn leader_changed(&mut self, term: Term, leader: Option<ServerId>) {
        let text = match leader {
            Some(id) if id == self.id => format!("entering leader state: term {term}"),
            Some(id) => {
                let address = self
                    .node
                    .config()
                    .get(id)
                    .map(|s| s.address.clone())
                    .unwrap_or_default();
                format!("leader is {address} (id {:016x}) in term {term}", id.0)
            }
            None => format!("no known leader in term {term}"),
        };
        self.logger.info("agent.server.raft", &text);
    }

    // --- storage -----------------------------------------------------------------------------

    fn begin_job(&mut self) -> Option<(Storage, Job, u64)> {
        if self.failure.is_some() || self.pending.is_empty() {
            return None;
        }
        let storage = self.storage.take()?;
        Some((storage, self.pending.take_job(), self.enqueued_seq))
    }

    fn job_done(&mut self, storage: Storage, job: Job, seq: u64, result: Result<(), String>) {
        self.storage = Some(storage);
        if let Err(why) = result {
            self.fail(format!("storage failed, stopping this server: {why}"));
            return;
        }
        self.stats.jobs += 1;
        self.stats.entries_persisted += job.entries;
        self.durable_seq = self.durable_seq.max(seq);
        while let Some(held) = self.held.front() {
            if held.required_seq > self.durable_seq {
                break;
            }
            let held = self.held.pop_front().expect("front exists");
            self.send_raft(held.to, held.msg);
        }
        // Sends with smaller requirements may sit behind a bigger one: release those too.
        if !self.held.is_empty() {
            let durable = self.durable_seq;
            let (ready, waiting): (VecDeque<Held>, VecDeque<Held>) = std::mem::take(&mut self.held)
                .into_iter()
                .partition(|h| h.required_seq <= durable);
            self.held = waiting;
            for h in ready {
                self.send_raft(h.to, h.msg);
            }
        }
        if let Some((index, term)) = job.last_appended {
            self.step(Input::Persisted { index, term });
        }
        if let Some(index) = job.snapshot_taken {
            self.snapshot_in_job = false;
            self.stats.snapshots_taken += 1;
            self.step(Input::SnapshotTaken { index });
            let through = self.node.log().first_index().saturating_sub(1);
            if through > 0 {
                self.pending.push(Op::Purge(through));
            }
            self.logger.debug(
                "agent.server.raft",
                &format!("snapshot taken at index {index}; log purged through {through}"),
            );
        }
        if !self.pending.is_empty() {
            let _ = self.wake_storage.try_send(());
        }
    }

    // --- applying ----------------------------------------------------------------------------

    fn apply_entries(&mut self, entries: Vec<Entry>) {
        for e in entries {
            let result = match &e.payload {
                Payload::Command(bytes) => Some(self.sm.apply(e.index, bytes)),
                Payload::Noop | Payload::Config(_) => None,
            };
            // Proposals at lower indexes can no longer be applied (a snapshot went past them).
            while let Some((&index, _)) = self.proposals.first_key_value() {
                if index >= e.index {
                    break;
                }
                let (_, (_, responder)) = self.proposals.pop_first().expect("first exists");
                self.respond(responder, Err(overwritten()));
            }
            if let Some((term, responder)) = self.proposals.remove(&e.index) {
                let reply = match result {
                    Some(result) if term == e.term => Ok(Reply::Applied(Applied {
                        index: e.index,
                        result,
                    })),
                    _ => Err(overwritten()),
                };
                self.respond(responder, reply);
            }
        }
        self.serve_reads();
        self.maybe_snapshot();
    }

    fn serve_reads(&mut self) {
        let applied = self.node.applied_index();
        if !self.reads.iter().any(|(index, _)| *index <= applied) {
            return;
        }
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.reads)
            .into_iter()
            .partition(|(index, _)| *index <= applied);
        self.reads = waiting;
        for (_, request) in ready {
            let result = self.sm.query(request.query.as_deref().unwrap_or_default());
            self.respond(
                request.responder,
                Ok(Reply::Read(ReadResult {
                    index: applied,
                    result,
                })),
            );
        }
    }

    fn maybe_snapshot(&mut self) {
        let applied = self.node.applied_index();
        if self.snapshot_in_job
            || applied < self.node.log().snapshot_index() + self.snapshot_threshold
        {
            return;
        }
        let Some(term) = self.node.log().term(applied) else {
            return;
        };
        let meta = encode_meta(&self.node.config_at(applied));
        let data = self.sm.snapshot();
        if let Some(hs) = self.lazy_commit.take() {
            self.pending.save_hard_state(hs);
        }
        self.pending.push(Op::TakeSnapshot {
            index: applied,
            term,
            meta,
            data,
        });
        self.snapshot_in_job = true;
        let _ = self.wake_storage.try_send(());
    }

    // --- client requests ---------------------------------------------------------------------

    fn waiting_requests(&self) -> usize {
        self.requests.len() + self.proposals.len() + self.reads.len()
    }

    fn leader_hint(&self) -> Option<LeaderHint> {
        let id = self.node.leader()?;
        let address = self
            .node
            .config()
            .get(id)
            .map(|s| s.address.clone())
            .unwrap_or_default();
        Some(LeaderHint { id, address })
    }

    fn not_leader(&self) -> ErrorReply {
        let leader = self.leader_hint();
        let message = match &leader {
            Some(hint) => format!("not the leader; the leader is {}", hint.address),
            None => "not the leader, and no leader is known".to_string(),
        };
        ErrorReply {
            code: ErrorCode::NotLeader,
            leader,
            message,
        }
    }

    fn raft_error(&self, error: RaftError) -> ErrorReply {
        let (code, message) = match error {
            RaftError::NotLeader { .. } => return self.not_leader(),
            RaftError::LeadershipLost => (
                ErrorCode::Rejected,
                "leadership was lost before the request completed".to_string(),
            ),
            other => (ErrorCode::Rejected, format!("{other:?}")),
        };
        ErrorReply {
            code,
            leader: self.leader_hint(),
            message,
        }
    }

    /// Registers a leader-only request and returns its context number, or answers it at once when this server
    /// is not the leader or too many requests are waiting.
    fn admit(&mut self, responder: Responder, query: Option<Vec<u8>>) -> Option<u64> {
        if self.node.role() != Role::Leader {
            let reply = self.not_leader();
            self.respond(responder, Err(reply));
            return None;
        }
        if self.waiting_requests() >= self.requests_max {
            self.respond(responder, Err(overloaded(self.requests_max)));
            return None;
        }
        let ctx = self.next_ctx;
        self.next_ctx += 1;
        self.requests.insert(ctx, Request { responder, query });
        Some(ctx)
    }

    fn propose(&mut self, command: Vec<u8>, responder: Responder) {
        if self.failure.is_some() || self.stop.is_triggered() {
            return self.respond(responder, Err(stopped_error()));
        }
        let Some(ctx) = self.admit(responder, None) else {
            return;
        };
        if self.proposal_batch.is_empty() {
            self.schedule_proposal_flush();
        }
        self.proposal_batch.push((ctx, command.into()));
    }

    /// Steps the gathered proposals into Raft once the tasks that are ready now have run (they may add more).
    fn schedule_proposal_flush(&self) {
        let me = self.me.clone();
        glommio::spawn_local(async move {
            futures_lite::future::yield_now().await;
            if let Some(inner) = me.upgrade() {
                inner.borrow_mut().flush_proposals();
            }
        })
        .detach();
    }

    fn flush_proposals(&mut self) {
        let batch = std::mem::take(&mut self.proposal_batch);
        if !batch.is_empty() {
            self.step(Input::Propose(batch));
        }
    }

    fn read(&mut self, consistency: Consistency, query: Vec<u8>, responder: Responder) {
        if self.failure.is_some() || self.stop.is_triggered() {
            return self.respond(responder, Err(stopped_error()));
        }
        if consistency == Consistency::Stale {
            let result = self.sm.query(&query);
            let index = self.node.applied_index();
            return self.respond(responder, Ok(Reply::Read(ReadResult { index, result })));
        }
        let Some(ctx) = self.admit(responder, Some(query)) else {
            return;
        };
        self.step(Input::Read {
            ctx,
            lease: consistency == Consistency::Default,
        });
    }

    fn status(&self) -> StatusReply {
        StatusReply {
            id: self.id,
            role: match self.node.role() {
                Role::Follower => WireRole::Follower,
                Role::PreCandidate => WireRole::PreCandidate,
                Role::Candidate => WireRole::Candidate,
                Role::Leader => WireRole::Leader,
            },
            term: self.node.term(),
            leader: self.leader_hint(),
            commit_index: self.node.commit_index(),
            applied_index: self.node.applied_index(),
            last_index: self.node.log().last_index(),
            snapshot_index: self.node.log().snapshot_index(),
        }
    }

    fn fail_requests(&mut self, why: &str) {
        let error = ErrorReply {
            code: ErrorCode::Unknown,
            leader: None,
            message: why.to_string(),
        };
        let requests: Vec<Responder> = std::mem::take(&mut self.requests)
            .into_values()
            .map(|r| r.responder)
            .chain(
                std::mem::take(&mut self.proposals)
                    .into_values()
                    .map(|(_, r)| r),
            )
            .chain(
                std::mem::take(&mut self.reads)
                    .into_iter()
                    .map(|(_, r)| r.responder),
            )
            .collect();
        for responder in requests {
            self.respond(responder, Err(error.clone()));
        }
    }

    fn respond(&mut self, responder: Responder, reply: LocalReply) {
        match responder {
            Responder::Local(tx) => {
                let _ = tx.try_send(reply);
            }
            Responder::Remote { target, request_id } => {
                let body = match reply {
                    Ok(Reply::Applied(a)) => Body::Applied {
                        index: a.index,
                        result: a.result,
                    },
                    Ok(Reply::Read(r)) => Body::ReadResult {
                        index: r.index,
                        result: r.result,
                    },
                    Err(e) => Body::Error(e),
                };
                self.send_to(target, request_id, body);
            }
        }
    }

    // --- transport ---------------------------------------------------------------------------

    fn encode(&mut self, request_id: u64, body: Body) -> Option<Vec<u8>> {
        let frame = Frame {
            header: Header {
                datacenter: self.datacenter.clone(),
                sender: self.id,
                request_id,
            },
            body,
        };
        match rpc::encode(&frame) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                self.logger.error("agent.server.rpc", &e.to_string());
                self.stats.frames_dropped_outbound += 1;
                None
            }
        }
    }

    /// Makes the peer set match the latest configuration (every member but this server).
    fn sync_peers(&mut self) {
        let config_index = self.node.config_index();
        if self.peers_config_index == Some(config_index) {
            return;
        }
        self.peers_config_index = Some(config_index);
        let config = self.node.config().clone();
        self.peers
            .retain(|id, slot| config.get(*id).is_some_and(|s| s.address == slot.address));
        for server in &config.servers {
            if server.id == self.id || self.peers.contains_key(&server.id) {
                continue;
            }
            let peer = match server.address.parse::<SocketAddr>() {
                Ok(addr) => match Peer::start(addr, self.peer_options.clone(), &self.stop) {
                    Ok(peer) => Some(peer),
                    Err(e) => {
                        self.logger.error(
                            "agent.server.rpc",
                            &format!("cannot start a connection to {}: {e}", server.address),
                        );
                        None
                    }
                },
                Err(_) => {
                    self.logger.error(
                        "agent.server.rpc",
                        &format!(
                            "server {:016x} has an address that is not IP:PORT: {:?}",
                            server.id.0, server.address
                        ),
                    );
                    None
                }
            };
            self.peers.insert(
                server.id,
                PeerSlot {
                    address: server.address.clone(),
                    peer,
                },
            );
        }
    }

    fn peer_sender(&mut self, to: ServerId) -> Option<PeerSender> {
        self.sync_peers();
        self.peers
            .get(&to)
            .and_then(|slot| slot.peer.as_ref())
            .map(Peer::sender)
    }

    fn client_peer_sender(&mut self, address: &str) -> Option<PeerSender> {
        if let Some((_, peer)) = self.client_peers.iter().find(|(a, _)| a == address) {
            return Some(peer.sender());
        }
        let addr: SocketAddr = address.parse().ok()?;
        let options = PeerOptions {
            send_queue_frames_max: 1024,
            ..self.peer_options.clone()
        };
        let peer = Peer::start(addr, options, &self.stop).ok()?;
        let sender = peer.sender();
        self.client_peers.push_back((address.to_string(), peer));
        while self.client_peers.len() > self.client_peers_max {
            self.client_peers.pop_front();
        }
        Some(sender)
    }

    fn send_bytes(&mut self, sender: Option<PeerSender>, bytes: Vec<u8>) {
        let Some(sender) = sender else {
            self.stats.frames_dropped_outbound += 1;
            return;
        };
        if let Err(e) = sender.try_send(bytes) {
            self.stats.frames_dropped_outbound += 1;
            if !matches!(e.kind(), TrySendErrorKind::QueueFull { .. }) {
                self.logger.debug(
                    "agent.server.rpc",
                    &format!("send to {} failed: {e:?}", sender.addr()),
                );
            }
        }
    }

    fn send_raft(&mut self, to: ServerId, msg: Message) {
        let Some(bytes) = self.encode(0, Body::Raft(msg)) else {
            return;
        };
        let sender = self.peer_sender(to);
        self.send_bytes(sender, bytes);
    }

    fn send_to(&mut self, target: Target, request_id: u64, body: Body) {
        let Some(bytes) = self.encode(request_id, body) else {
            return;
        };
        let sender = match target {
            Target::Server(id) => self.peer_sender(id),
            Target::Address(address) => self.client_peer_sender(&address),
        };
        self.send_bytes(sender, bytes);
    }

    fn on_frame(&mut self, frame: InboundFrame) {
        let decoded = match rpc::decode(&frame.payload) {
            Ok(decoded) => decoded,
            Err(e) => {
                self.stats.frames_dropped_inbound += 1;
                self.logger.debug(
                    "agent.server.rpc",
                    &format!("dropped a frame from {}: {e}", frame.peer_addr),
                );
                return;
            }
        };
        if decoded.header.datacenter != self.datacenter {
            self.stats.frames_dropped_inbound += 1;
            self.logger.debug(
                "agent.server.rpc",
                &format!(
                    "dropped a frame from datacenter {:?} (this is {:?})",
                    decoded.header.datacenter, self.datacenter
                ),
            );
            return;
        }
        let from = decoded.header.sender;
        let request_id = decoded.header.request_id;
        let reply_target = |reply_to: String| {
            if reply_to.is_empty() {
                Target::Server(from)
            } else {
                Target::Address(reply_to)
            }
        };
        match decoded.body {
            Body::Raft(Message::InstallSnapshot {
                term,
                index,
                last_term,
                configuration,
            }) => self.on_install_snapshot(from, term, index, last_term, configuration),
            Body::Raft(msg) => self.step(Input::Message { from, msg }),
            Body::SnapshotChunk(chunk) => self.on_chunk(from, chunk),
            Body::Apply(ApplyRequest {
                reply_to, command, ..
            }) => {
                let responder = Responder::Remote {
                    target: reply_target(reply_to),
                    request_id,
                };
                self.propose(command, responder);
            }
            Body::Read(ReadRequest {
                reply_to,
                consistency,
                query,
                ..
            }) => {
                let responder = Responder::Remote {
                    target: reply_target(reply_to),
                    request_id,
                };
                self.read(consistency, query, responder);
            }
            Body::Status { reply_to } => {
                let body = Body::StatusReply(self.status());
                self.send_to(reply_target(reply_to), request_id, body);
            }
            Body::Applied { .. }
            | Body::Error(_)
            | Body::ReadResult { .. }
            | Body::StatusReply(_) => {
                // Replies to forwarded requests; nothing forwards yet.
                self.stats.frames_dropped_inbound += 1;
            }
        }
    }

    // --- snapshots ---------------------------------------------------------------------------

    fn on_chunk(&mut self, from: ServerId, chunk: SnapshotChunk) {
        if chunk.offset_bytes == 0 {
            if chunk.total_bytes > self.snapshot_receive_bytes_max {
                self.logger.error(
                    "agent.server.raft",
                    &format!(
                        "refused a snapshot of {} bytes from {:016x}: over the limit of {}",
                        chunk.total_bytes, from.0, self.snapshot_receive_bytes_max
                    ),
                );
                self.incoming = None;
                return;
            }
            self.incoming = Some(Incoming {
                from,
                index: chunk.index,
                term: chunk.term,
                total_bytes: chunk.total_bytes,
                data: Vec::with_capacity(chunk.total_bytes.min(64 << 20) as usize),
            });
        }
        let Some(incoming) = self.incoming.as_mut() else {
            self.stats.frames_dropped_inbound += 1;
            return;
        };
        let continues = incoming.from == from
            && incoming.index == chunk.index
            && incoming.term == chunk.term
            && incoming.total_bytes == chunk.total_bytes
            && incoming.data.len() as u64 == chunk.offset_bytes;
        if !continues {
            self.incoming = None;
            self.stats.frames_dropped_inbound += 1;
            return;
        }
        incoming.data.extend_from_slice(&chunk.data);
        if chunk.done {
            let done = self.incoming.take().expect("assembling");
            self.complete = Some(CompleteSnapshot {
                from: done.from,
                index: done.index,
                term: done.term,
                data: done.data,
            });
        }
    }

    fn on_install_snapshot(
        &mut self,
        from: ServerId,
        term: Term,
        index: Index,
        last_term: Term,
        configuration: Configuration,
    ) {
        let needs_data = self.node.log().term(index) != Some(last_term)
            && index > self.node.commit_index()
            && term >= self.node.term();
        if needs_data {
            match self.complete.take() {
                Some(c) if c.from == from && c.index == index && c.term == last_term => {
                    self.restore_with = Some((c, configuration.clone()));
                }
                other => {
                    self.complete = other;
                    let reply = Message::SnapshotResponse {
                        term: self.node.term(),
                        index,
                        success: false,
                    };
                    self.send_raft(from, reply);
                    return;
                }
            }
        }
        self.step(Input::Message {
            from,
            msg: Message::InstallSnapshot {
                term,
                index,
                last_term,
                configuration,
            },
        });
        self.restore_with = None;
    }

    fn restore_snapshot(&mut self, index: Index, term: Term) {
        let Some((snapshot, config)) = self.restore_with.take() else {
            return self.fail(format!(
                "raft asked to restore snapshot {index}/{term} that was never received"
            ));
        };
        if (snapshot.index, snapshot.term) != (index, term) {
            return self.fail(format!(
                "raft asked to restore snapshot {index}/{term} but {}/{} was received",
                snapshot.index, snapshot.term
            ));
        }
        if let Err(e) = self.sm.restore(&snapshot.data) {
            return self.fail(format!("snapshot {index}/{term} from the leader: {e}"));
        }
        self.stats.snapshots_installed += 1;
        self.logger.info(
            "agent.server.raft",
            &format!(
                "installed snapshot {index}/{term} ({} bytes) from {:016x}",
                snapshot.data.len(),
                snapshot.from.0
            ),
        );
        let outstanding: Vec<Responder> = std::mem::take(&mut self.proposals)
            .into_values()
            .map(|(_, r)| r)
            .collect();
        for responder in outstanding {
            self.respond(responder, Err(overwritten()));
        }
        self.pending.push(Op::Install {
            index,
            term,
            meta: encode_meta(&config),
            data: snapshot.data,
        });
        self.enqueued_seq += 1;
    }

    fn start_snapshot_send(&mut self, to: ServerId, index: Index, term: Term) {
        if !self.sending_snapshots.insert(to) {
            return;
        }
        let Some(me) = self.me.upgrade() else {
            return;
        };
        let spawned = glommio::spawn_local_into(send_snapshot(me, to, index, term), self.tq);
        match spawned {
            Ok(task) => {
                task.detach();
            }
            Err(e) => {
                self.sending_snapshots.remove(&to);
                self.logger.error(
                    "agent.server.raft",
                    &format!("cannot start a snapshot transfer: {e}"),
                );
                // Stepped after the current actions are carried out, never in the middle of them.
                self.deferred.push(Input::SnapshotSendFailed { to });
            }
        }
    }
}

fn overwritten() -> ErrorReply {
    ErrorReply {
        code: ErrorCode::Unknown,
        leader: None,
        message: "leadership changed before the entry was applied; it may or may not have been"
            .to_string(),
    }
}

fn overloaded(max: usize) -> ErrorReply {
    ErrorReply {
        code: ErrorCode::Overloaded,
        leader: None,
        message: format!("{max} requests are already waiting; retry later"),
    }
}

/// Streams the snapshot at (`index`, `term`) to `to`, then sends `InstallSnapshot`. Reports a failure to Raft.
async fn send_snapshot(inner: Rc<RefCell<Inner>>, to: ServerId, index: Index, term: Term) {
    let result = stream_snapshot(&inner, to, index, term).await;
    let mut i = inner.borrow_mut();
    i.sending_snapshots.remove(&to);
    match result {
        Ok(bytes) => {
            i.stats.snapshots_sent += 1;
            i.logger.info(
                "agent.server.raft",
                &format!(
                    "sent snapshot {index}/{term} ({bytes} bytes) to {:016x}",
                    to.0
                ),
            );
        }
        Err(why) => {
            i.logger.info(
                "agent.server.raft",
                &format!("snapshot {index}/{term} to {:016x} failed: {why}", to.0),
            );
            i.step(Input::SnapshotSendFailed { to });
        }
    }
}

async fn stream_snapshot(
    inner: &Rc<RefCell<Inner>>,
    to: ServerId,
    index: Index,
    term: Term,
) -> Result<u64, String> {
    let (dir, leader_term, stop, timeout_ms) = {
        let i = inner.borrow();
        (
            i.snapshot_dir.clone(),
            i.node.term(),
            i.stop.clone(),
            i.snapshot_timeout_ms,
        )
    };
    let (config, loaded) = glommio::executor()
        .spawn_blocking(move || load_snapshot(&dir, index, term))
        .await?;
    let payload: &[u8] = &loaded.payload;
    let total_bytes = payload.len() as u64;
    let started = Instant::now();
    let still_leading = |i: &Inner| i.node.role() == Role::Leader && i.node.term() == leader_term;
    let mut offset = 0usize;
    loop {
        let end = (offset + rpc::CHUNK_BYTES_MAX).min(payload.len());
        let chunk = SnapshotChunk {
            leader_term,
            index,
            term,
            offset_bytes: offset as u64,
            total_bytes,
            done: end == payload.len(),
            data: payload[offset..end].to_vec(),
        };
        let mut bytes = {
            let mut i = inner.borrow_mut();
            if !still_leading(&i) {
                return Err("no longer the leader".to_string());
            }
            i.encode(0, Body::SnapshotChunk(chunk))
                .ok_or("cannot encode a chunk")?
        };
        loop {
            if stop.is_triggered() {
                return Err("shutting down".to_string());
            }
            if started.elapsed() > Duration::from_millis(timeout_ms) {
                return Err(format!("not sent within {timeout_ms} ms"));
            }
            let sender = inner
                .borrow_mut()
                .peer_sender(to)
                .ok_or("no connection to the follower")?;
            match sender.try_send(bytes) {
                Ok(()) => break,
                Err(e) if matches!(e.kind(), TrySendErrorKind::QueueFull { .. }) => {
                    bytes = e.into_payload();
                    glommio::timer::sleep(Duration::from_millis(SNAPSHOT_QUEUE_RETRY_MS)).await;
                }
                Err(e) => return Err(format!("{e:?}")),
            }
        }
        offset = end;
        if offset == payload.len() {
            break;
        }
        glommio::yield_if_needed().await;
    }
    let mut i = inner.borrow_mut();
    if !still_leading(&i) {
        return Err("no longer the leader".to_string());
    }
    i.send_raft(
        to,
        Message::InstallSnapshot {
            term: leader_term,
            index,
            last_term: term,
            configuration: config,
        },
    );
    Ok(total_bytes)
}
