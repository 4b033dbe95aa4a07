//! A shard's end of the bridge to the Raft core: requests with their replies, and the blocking-query
//! watchers woken by change notices.
//!
//! [`ShardLink::connect`] connects the shard's channel ends and starts one task that receives the core's
//! messages: a reply completes the request waiting for it; a change notice wakes the watchers it touches
//! (a watcher is a few bytes in an ordered map and a one-slot local channel: no polling, no timer per
//! change). Register a watcher with [`ShardLink::watch`] right after reading the published state, with no
//! `.await` in between, and no change can slip past it: notices are handled on this same executor, after
//! the core has published the state they describe.

use super::bridge::{
    ChangeNotice, CoreReply, CoreRequest, OperatorOp, ShardMessage, ShardSide, Shared,
};
use crate::raft::Index;
use crate::rpc::{Consistency, ErrorCode, ErrorReply};
use futures_lite::future::or;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::channels::shared_channel::ConnectedSender;
use glommio::Task;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// Requests one shard may have waiting for the core at once.
pub const PENDING_REQUESTS_MAX: usize = 16_384;
/// How long a request waits for the core's reply before it fails.
pub const CORE_REPLY_TIMEOUT_MS: u64 = 30_000;
/// Blocking queries one shard may have waiting at once.
pub const WATCHERS_MAX: usize = 65_536;

/// What a blocking query waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Watch {
    /// A KV key (or, with `prefix`, any key under it) changed.
    Kv {
        /// The key or prefix.
        key: String,
        /// Whether `key` is a prefix.
        prefix: bool,
    },
    /// Any of these tables ([`crate::fsm::table`] flags) changed.
    Tables(u32),
    /// The published applied index reached this one.
    AppliedIndex(Index),
}

impl Watch {
    fn woken_by(&self, notice: &ChangeNotice) -> bool {
        match self {
            Watch::Kv { key, prefix } => notice.touches_kv(key, *prefix),
            Watch::Tables(tables) => notice.tables & tables != 0,
            Watch::AppliedIndex(index) => notice.index >= *index,
        }
    }
}

/// A registered watcher; resolves when woken. Dropping it unregisters it.
pub struct Watcher {
    link: Rc<ShardLink>,
    id: u64,
    woken: LocalReceiver<()>,
}

impl Watcher {
    /// Waits until woken (`true`) or until `timeout_ms` passes (`false`).
    pub async fn wait(&self, timeout_ms: u64) -> bool {
        let woken = async { self.woken.recv().await.is_some() };
        let timeout = async {
            glommio::timer::sleep(Duration::from_millis(timeout_ms)).await;
            false
        };
        or(woken, timeout).await
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.link.watchers.borrow_mut().remove(&self.id);
    }
}

type ReplySender = LocalSender<Result<CoreReply, ErrorReply>>;

/// A shard's connection to the Raft core.
pub struct ShardLink {
    shared: Arc<Shared>,
    to_core: ConnectedSender<CoreRequest>,
    pending: RefCell<BTreeMap<u64, ReplySender>>,
    next_id: Cell<u64>,
    watchers: RefCell<BTreeMap<u64, (Watch, LocalSender<()>)>>,
    receiver: RefCell<Option<Task<()>>>,
}

impl ShardLink {
    /// Connects this shard's ends (waits until the core has connected its own) and starts receiving.
    pub async fn connect(side: ShardSide) -> Rc<ShardLink> {
        let to_core = side.requests.connect().await;
        let messages = side.messages.connect().await;
        let link = Rc::new(ShardLink {
            shared: side.shared,
            to_core,
            pending: RefCell::new(BTreeMap::new()),
            next_id: Cell::new(1),
            watchers: RefCell::new(BTreeMap::new()),
            receiver: RefCell::new(None),
        });
        let weak = Rc::downgrade(&link);
        let task = glommio::spawn_local(async move {
            while let Some(message) = messages.recv().await {
                let Some(link) = weak.upgrade() else { break };
                link.on_message(message);
            }
        });
        *link.receiver.borrow_mut() = Some(task);
        link
    }

    /// The state shared with the core.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    fn on_message(&self, message: ShardMessage) {
        match message {
            ShardMessage::Reply { id, reply } => {
                if let Some(tx) = self.pending.borrow_mut().remove(&id) {
                    let _ = tx.try_send(reply);
                }
            }
            ShardMessage::Changed(notice) => {
                let mut watchers = self.watchers.borrow_mut();
                let woken: Vec<u64> = watchers
                    .iter()
                    .filter(|(_, (watch, _))| watch.woken_by(&notice))
                    .map(|(id, _)| *id)
                    .collect();
                for id in woken {
                    if let Some((_, tx)) = watchers.remove(&id) {
                        let _ = tx.try_send(());
                    }
                }
            }
        }
    }

    /// Registers a watcher for `watch`, or `None` when too many are registered.
    pub fn watch(self: &Rc<Self>, watch: Watch) -> Option<Watcher> {
        let mut watchers = self.watchers.borrow_mut();
        if watchers.len() >= WATCHERS_MAX {
            return None;
        }
        let id = self.take_id();
        let (tx, rx) = local_channel::new_bounded(1);
        watchers.insert(id, (watch, tx));
        Some(Watcher {
            link: Rc::clone(self),
            id,
            woken: rx,
        })
    }

    /// Waits until the published applied index reaches `index`; `false` when `timeout_ms` passed first.
    pub async fn wait_applied(self: &Rc<Self>, index: Index, timeout_ms: u64) -> bool {
        loop {
            if self.shared.published().applied_index >= index {
                return true;
            }
            let Some(watcher) = self.watch(Watch::AppliedIndex(index)) else {
                return false;
            };
            if !watcher.wait(timeout_ms).await {
                return self.shared.published().applied_index >= index;
            }
        }
    }

    fn take_id(&self) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }

    async fn request(
        &self,
        make: impl FnOnce(u64) -> CoreRequest,
    ) -> Result<CoreReply, ErrorReply> {
        if self.pending.borrow().len() >= PENDING_REQUESTS_MAX {
            return Err(error(
                ErrorCode::Overloaded,
                format!("{PENDING_REQUESTS_MAX} requests are already waiting for the raft core"),
            ));
        }
        let id = self.take_id();
        let (tx, rx) = local_channel::new_bounded(1);
        self.pending.borrow_mut().insert(id, tx);
        if self.to_core.send(make(id)).await.is_err() {
            self.pending.borrow_mut().remove(&id);
            return Err(error(
                ErrorCode::Unknown,
                "the raft core stopped".to_string(),
            ));
        }
        let reply = async { rx.recv().await };
        let timeout = async {
            glommio::timer::sleep(Duration::from_millis(CORE_REPLY_TIMEOUT_MS)).await;
            None
        };
        let answer = or(reply, timeout).await;
        self.pending.borrow_mut().remove(&id);
        answer.unwrap_or_else(|| {
            Err(error(
                ErrorCode::Unknown,
                "timed out waiting for the raft core".to_string(),
            ))
        })
    }

    /// Applies an encoded command through Raft; returns its index and the encoded outcome.
    pub async fn apply(&self, command: Vec<u8>) -> Result<(Index, Vec<u8>), ErrorReply> {
        match self
            .request(|id| CoreRequest::Apply { id, command })
            .await?
        {
            CoreReply::Applied { index, result } => Ok((index, result)),
            other => Err(unexpected(&other)),
        }
    }

    /// The applied index a `default` or `consistent` read must see.
    pub async fn read_index(&self, consistency: Consistency) -> Result<Index, ErrorReply> {
        match self
            .request(|id| CoreRequest::ReadIndex { id, consistency })
            .await?
        {
            CoreReply::ReadIndex(index) => Ok(index),
            other => Err(unexpected(&other)),
        }
    }

    /// Runs an operator action.
    pub async fn operator(&self, op: OperatorOp) -> Result<(), ErrorReply> {
        match self.request(|id| CoreRequest::Operator { id, op }).await? {
            CoreReply::Done | CoreReply::Applied { .. } => Ok(()),
            other => Err(unexpected(&other)),
        }
    }
}

fn error(code: ErrorCode, message: String) -> ErrorReply {
    ErrorReply {
        code,
        leader: None,
        message,
    }
}

fn unexpected(reply: &CoreReply) -> ErrorReply {
    error(
        ErrorCode::Unknown,
        format!("unexpected reply from the raft core: {reply:?}"),
    )
}
