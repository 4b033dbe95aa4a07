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
//!   log append with one `fdatasync`, snapshot writes). A job that writes a snapshot runs on glommio's
//!   blocking pool (`spawn_blocking`: the [`storage::Storage`] moves into the blocking closure and comes back
//!   with the result); a small one (appends and hard state: a few writes and one `fdatasync`) runs on the
//!   executor thread, after one turn of the reactor so the appends just queued for followers leave first:
//!   the two thread hops of the pool cost about as much as the `fdatasync` itself (measured: ~47 us of a
//!   ~400 us PUT). Exactly one job runs at a time; requests arriving meanwhile wait in their channels and
//!   form the next batch. When a job is durable the sends it held are released and Raft is told
//!   (`Input::Persisted`, `Input::SnapshotTaken`);
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

mod autopilot;
mod requests;
mod shards;
mod snapshots;
pub mod storage;
mod transport;

pub use autopilot::{PeerHealth, RaftHealth};
use requests::overwritten;

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
use cairn_storage::{AnyDisk, LogOptions};
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
    /// Keep the log, hard state and snapshots in memory (`-dev`): nothing survives the process.
    pub in_memory: bool,
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
            in_memory: false,
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
    /// An operator action finished.
    Done,
}

type LocalReply = Result<Reply, ErrorReply>;

enum Target {
    Server(ServerId),
    Address(String),
}

enum Responder {
    Local(LocalSender<LocalReply>),
    Remote {
        target: Target,
        request_id: u64,
    },
    /// A request from shard `shard` (its request id `id`), answered over the bridge.
    Shard {
        shard: usize,
        id: u64,
    },
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
    disk: AnyDisk,
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
    /// Where servers outside the configuration are found (the LAN pool): a server not yet in the configuration
    /// answers the leader that is adding it, and a new leader reaches it.
    directory: Option<std::sync::Arc<crate::agent::membership::Membership>>,
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
    // Shards (the bridge), when attached.
    bridge: Option<shards::BridgeCore>,
    /// Requests forwarded to the leader, by request id: who to answer and when to give up (`now_ms`).
    forwarded: BTreeMap<u64, (Responder, u64)>,
    next_forward_id: u64,
    /// The address replies to forwarded requests come back to (this server's RPC listener).
    reply_address: String,
    /// Calls of client agents relayed to a shard, by relay id: where the answer goes.
    relays: BTreeMap<u64, (Target, u64)>,
    next_relay_id: u64,
    /// Inputs that arose while actions were carried out; stepped right after.
    deferred: Vec<Input>,
    stats: DriverStats,
    autopilot: autopilot::AutopilotSlot,
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
            .spawn_blocking(move || storage::open_storage(open_options))
            .await
            .map_err(DriverError)?;
        let (storage, disk, node, snapshot_payload, notes) = opened;
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
                disk,
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
                directory: None,
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
                bridge: None,
                forwarded: BTreeMap::new(),
                next_forward_id: 1,
                reply_address: local_addr.to_string(),
                relays: BTreeMap::new(),
                next_relay_id: 1,
                deferred: Vec::new(),
                stats: DriverStats::default(),
                autopilot: autopilot::AutopilotSlot::default(),
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
                options.in_memory,
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

    /// Finds servers that are not in the Raft configuration through `directory` (the LAN pool's members).
    pub fn set_directory(&self, directory: std::sync::Arc<crate::agent::membership::Membership>) {
        self.inner.borrow_mut().directory = Some(directory);
    }

    /// Asks Raft to start an election now (bootstrap, benchmarks).
    pub fn campaign(&self) {
        self.inner.borrow_mut().step(Input::Campaign);
    }

    /// Proposes `command` (forwarded to the leader from a follower); resolves once it is applied (with the
    /// state machine's result) or refused.
    pub async fn apply(&self, command: Vec<u8>) -> Result<Applied, ErrorReply> {
        let (tx, rx) = local_channel::new_bounded(1);
        self.inner
            .borrow_mut()
            .submit(command, Responder::Local(tx));
        match rx.recv().await {
            Some(Ok(Reply::Applied(applied))) => Ok(applied),
            Some(Ok(Reply::Read(_) | Reply::Done)) => Err(stopped_error()),
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
            Some(Ok(Reply::Applied(_) | Reply::Done)) => Err(stopped_error()),
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

async fn storage_loop(
    inner: Rc<RefCell<Inner>>,
    wakes: LocalReceiver<()>,
    stop: Shutdown,
    inline: bool,
) {
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
            Some((mut storage, job, seq)) if inline || job.is_small() => {
                // One small write and one fdatasync (or memory only): cheaper on this thread than the two
                // thread hops of the blocking pool. Let the reactor submit what the writer tasks queued
                // first (the appends to followers), so followers write in parallel with this fdatasync.
                glommio::executor().yield_task_queue_now().await;
                let result = storage.run(&job);
                inner.borrow_mut().job_done(storage, job, seq, result);
                glommio::yield_if_needed().await;
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
        self.after_step();
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
                Action::TransferDone { ctx } => {
                    if let Some(request) = self.requests.remove(&ctx) {
                        self.respond(request.responder, Ok(Reply::Done));
                    }
                }
                Action::LeaderChanged { term, leader } => self.leader_changed(term, leader),
            }
        }
    }

    fn leader_changed(&mut self, term: Term, leader: Option<ServerId>) {
        self.hurry_forwarded();
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
        let mut replies = Vec::new();
        for e in entries {
            let result = match &e.payload {
                Payload::Command(bytes) => Some(self.sm.apply(e.index, bytes)),
                Payload::Config(_) => Some(Vec::new()),
                Payload::Noop => None,
            };
            // Proposals at lower indexes can no longer be applied (a snapshot went past them).
            while let Some((&index, _)) = self.proposals.first_key_value() {
                if index >= e.index {
                    break;
                }
                let (_, (_, responder)) = self.proposals.pop_first().expect("first exists");
                replies.push((responder, Err(overwritten())));
            }
            if let Some((term, responder)) = self.proposals.remove(&e.index) {
                let reply = match result {
                    Some(result) if term == e.term => Ok(Reply::Applied(Applied {
                        index: e.index,
                        result,
                    })),
                    _ => Err(overwritten()),
                };
                replies.push((responder, reply));
            }
        }
        // Publish before answering: a client that has its answer and reads again, on any shard, must see its
        // write (`kv put` then `kv get` from a script).
        self.publish_state();
        for (responder, reply) in replies {
            self.respond(responder, reply);
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
}
