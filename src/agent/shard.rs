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
use std::collections::{BTreeMap, BTreeSet};
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
    /// The instances (or their checks) of this service name changed.
    Service(String),
    /// Any of these tables ([`crate::fsm::table`] flags) changed.
    Tables(u32),
    /// The published applied index reached this one.
    AppliedIndex(Index),
}

/// The registered watchers, indexed by what wakes them, so a notice costs a lookup per changed key rather than
/// a pass over every watcher.
#[derive(Default)]
struct Watchers {
    all: BTreeMap<u64, (Watch, LocalSender<()>)>,
    keys: BTreeMap<String, BTreeSet<u64>>,
    prefixes: BTreeMap<String, BTreeSet<u64>>,
    services: BTreeMap<String, BTreeSet<u64>>,
    tables: BTreeMap<u64, u32>,
    applied: BTreeSet<(Index, u64)>,
}

impl Watchers {
    fn insert(&mut self, id: u64, watch: Watch, tx: LocalSender<()>) {
        match &watch {
            Watch::Kv { key, prefix: false } => {
                self.keys.entry(key.clone()).or_default().insert(id);
            }
            Watch::Kv { key, prefix: true } => {
                self.prefixes.entry(key.clone()).or_default().insert(id);
            }
            Watch::Service(name) => {
                self.services.entry(name.clone()).or_default().insert(id);
            }
            Watch::Tables(tables) => {
                self.tables.insert(id, *tables);
            }
            Watch::AppliedIndex(index) => {
                self.applied.insert((*index, id));
            }
        }
        self.all.insert(id, (watch, tx));
    }

    fn remove(&mut self, id: u64) -> Option<LocalSender<()>> {
        let (watch, tx) = self.all.remove(&id)?;
        let unindex = |map: &mut BTreeMap<String, BTreeSet<u64>>, key: &str| {
            if let Some(ids) = map.get_mut(key) {
                ids.remove(&id);
                if ids.is_empty() {
                    map.remove(key);
                }
            }
        };
        match &watch {
            Watch::Kv { key, prefix: false } => unindex(&mut self.keys, key),
            Watch::Kv { key, prefix: true } => unindex(&mut self.prefixes, key),
            Watch::Service(name) => unindex(&mut self.services, name),
            Watch::Tables(_) => {
                self.tables.remove(&id);
            }
            Watch::AppliedIndex(index) => {
                self.applied.remove(&(*index, id));
            }
        }
        Some(tx)
    }

    /// The watchers `notice` wakes.
    fn woken_by(&self, notice: &ChangeNotice) -> BTreeSet<u64> {
        let mut woken: BTreeSet<u64> = self
            .applied
            .range(..=(notice.index, u64::MAX))
            .map(|(_, id)| *id)
            .collect();
        woken.extend(
            self.tables
                .iter()
                .filter(|(_, tables)| notice.tables & **tables != 0)
                .map(|(id, _)| *id),
        );
        self.wake_services(notice, &mut woken);
        if notice.tables & crate::fsm::table::KVS == 0 {
            return woken;
        }
        match &notice.kv_keys {
            None => {
                woken.extend(self.keys.values().flatten());
                woken.extend(self.prefixes.values().flatten());
            }
            Some(keys) => {
                for key in keys.iter() {
                    woken.extend(self.keys.get(key).into_iter().flatten());
                    // Every prefix of the key (by characters, the empty prefix included) that a watcher holds.
                    let cuts = key.char_indices().map(|(at, _)| at).chain([key.len()]);
                    for cut in cuts {
                        woken.extend(self.prefixes.get(&key[..cut]).into_iter().flatten());
                    }
                }
            }
        }
        woken
    }

    /// Adds the service watchers `notice` touches to `woken`.
    fn wake_services(&self, notice: &ChangeNotice, woken: &mut BTreeSet<u64>) {
        if notice.tables & crate::fsm::table::SERVICES == 0 {
            return;
        }
        match &notice.service_names {
            None => woken.extend(self.services.values().flatten()),
            Some(names) => {
                for name in names.iter() {
                    woken.extend(self.services.get(name).into_iter().flatten());
                }
            }
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
        let mut watchers = self.link.watchers.borrow_mut();
        watchers.remove(self.id);
        if watchers.all.is_empty() {
            self.link.shared.listen(self.link.shard, false);
        }
    }
}

type ReplySender = LocalSender<Result<CoreReply, ErrorReply>>;

/// A shard's connection to the Raft core.
pub struct ShardLink {
    shard: usize,
    shared: Arc<Shared>,
    to_core: ConnectedSender<CoreRequest>,
    pending: RefCell<BTreeMap<u64, ReplySender>>,
    next_id: Cell<u64>,
    watchers: RefCell<Watchers>,
    receiver: RefCell<Option<Task<()>>>,
    /// Calls relayed by client agents, for the front end's relay task.
    relays_in: LocalSender<RelayedCall>,
    relays_out: RefCell<Option<LocalReceiver<RelayedCall>>>,
}

/// A call relayed to this shard: its relay id and the encoded call.
pub type RelayedCall = (u64, Vec<u8>);

/// Relayed calls waiting for this shard's front end, at most; more are answered as overloaded at once.
pub const RELAY_QUEUE_MAX: usize = 4096;

impl ShardLink {
    /// Connects this shard's ends (waits until the core has connected its own) and starts receiving.
    pub async fn connect(side: ShardSide) -> Rc<ShardLink> {
        let to_core = side.requests.connect().await;
        let messages = side.messages.connect().await;
        let (relays_in, relays_out) = local_channel::new_bounded(RELAY_QUEUE_MAX);
        let link = Rc::new(ShardLink {
            shard: side.shard,
            shared: side.shared,
            to_core,
            pending: RefCell::new(BTreeMap::new()),
            next_id: Cell::new(1),
            watchers: RefCell::new(Watchers::default()),
            receiver: RefCell::new(None),
            relays_in,
            relays_out: RefCell::new(Some(relays_out)),
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
                for id in watchers.woken_by(&notice) {
                    if let Some(tx) = watchers.remove(id) {
                        let _ = tx.try_send(());
                    }
                }
            }
            ShardMessage::Relay { id, call } => {
                if self.relays_in.try_send((id, call)).is_err() {
                    // If the core's queue is full too, the client's call times out.
                    let answer = crate::agent::relay::encode_answer(&overloaded());
                    let _ = self
                        .to_core
                        .try_send(CoreRequest::RelayAnswer { id, answer });
                }
            }
        }
    }

    /// The queue of calls relayed to this shard (taken once, by the front end's relay task).
    pub fn take_relays(&self) -> Option<LocalReceiver<RelayedCall>> {
        self.relays_out.borrow_mut().take()
    }

    /// Sends the answer to relayed call `id` back through the core.
    pub async fn answer_relay(&self, id: u64, answer: Vec<u8>) {
        let _ = self
            .to_core
            .send(CoreRequest::RelayAnswer { id, answer })
            .await;
    }

    /// Registers a watcher for `watch`, or `None` when too many are registered.
    ///
    /// `seen_index` is the published applied index the caller decided to wait from: if the state moved past it
    /// meanwhile (possible only when this shard was not listening for notices yet), the watcher is woken at
    /// once so the caller looks again.
    pub fn watch(self: &Rc<Self>, watch: Watch, seen_index: Index) -> Option<Watcher> {
        let mut watchers = self.watchers.borrow_mut();
        if watchers.all.len() >= WATCHERS_MAX {
            return None;
        }
        let id = self.take_id();
        let (tx, rx) = local_channel::new_bounded(1);
        if watchers.all.is_empty() {
            self.shared.listen(self.shard, true);
        }
        if self.shared.published().applied_index > seen_index {
            let _ = tx.try_send(());
        }
        watchers.insert(id, watch, tx);
        Some(Watcher {
            link: Rc::clone(self),
            id,
            woken: rx,
        })
    }

    /// Waits until the published applied index reaches `index`; `false` when `timeout_ms` passed first.
    pub async fn wait_applied(self: &Rc<Self>, index: Index, timeout_ms: u64) -> bool {
        loop {
            let applied = self.shared.published().applied_index;
            if applied >= index {
                return true;
            }
            let Some(watcher) = self.watch(Watch::AppliedIndex(index), applied) else {
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
    pub async fn operator(&self, op: OperatorOp) -> Result<Vec<u8>, ErrorReply> {
        match self.request(|id| CoreRequest::Operator { id, op }).await? {
            CoreReply::Done => Ok(Vec::new()),
            CoreReply::Applied { result, .. } => Ok(result),
            other => Err(unexpected(&other)),
        }
    }
}

fn overloaded() -> crate::agent::relay::RelayAnswer {
    crate::agent::relay::RelayAnswer::Failed {
        status: 429,
        message: format!("{RELAY_QUEUE_MAX} relayed calls are already waiting on this server"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsm::table;

    fn notice(index: Index, tables: u32, keys: Option<&[&str]>) -> ChangeNotice {
        ChangeNotice {
            index,
            tables,
            kv_keys: keys.map(|k| Arc::new(k.iter().map(|s| s.to_string()).collect())),
            ..ChangeNotice::default()
        }
    }

    fn service_notice(names: Option<&[&str]>) -> ChangeNotice {
        ChangeNotice {
            index: 9,
            tables: table::SERVICES | table::CHECKS,
            service_names: names.map(|n| Arc::new(n.iter().map(|s| s.to_string()).collect())),
            ..ChangeNotice::default()
        }
    }

    #[test]
    fn a_notice_wakes_exactly_the_watchers_it_touches() {
        let executor = glommio::LocalExecutorBuilder::default()
            .io_memory(256 << 10)
            .make()
            .expect("executor");
        executor.run(async {
            let mut w = Watchers::default();
            let kv = |key: &str, prefix| Watch::Kv {
                key: key.to_string(),
                prefix,
            };
            for (id, watch) in [
                (1, kv("app/db", false)),
                (2, kv("app/", true)),
                (3, kv("", true)),
                (4, kv("web/", true)),
                (5, Watch::Tables(table::SESSIONS)),
                (6, Watch::AppliedIndex(10)),
                (7, kv("app/dbx", false)),
                (8, Watch::Service("web".to_string())),
                (9, Watch::Service("db".to_string())),
            ] {
                let (tx, _rx) = local_channel::new_bounded(1);
                w.insert(id, watch, tx);
            }
            fn ids(w: &Watchers, n: &ChangeNotice) -> Vec<u64> {
                w.woken_by(n).into_iter().collect()
            }
            assert_eq!(
                ids(&w, &notice(9, table::KVS, Some(&["app/db"]))),
                vec![1, 2, 3]
            );
            assert_eq!(ids(&w, &notice(10, table::SESSIONS, None)), vec![5, 6]);
            assert_eq!(ids(&w, &notice(9, table::KVS, None)), vec![1, 2, 3, 4, 7]);
            assert_eq!(ids(&w, &notice(9, table::KVS, Some(&["other"]))), vec![3]);
            assert_eq!(ids(&w, &service_notice(Some(&["web"]))), vec![8]);
            assert_eq!(
                ids(&w, &service_notice(Some(&["cache"]))),
                Vec::<u64>::new()
            );
            assert_eq!(ids(&w, &service_notice(None)), vec![8, 9]);
            assert!(w.remove(1).is_some());
            assert!(w.remove(1).is_none());
            assert_eq!(
                ids(&w, &notice(9, table::KVS, Some(&["app/db"]))),
                vec![2, 3]
            );
            for id in [2, 3, 4, 5, 6, 7, 8, 9] {
                assert!(w.remove(id).is_some());
            }
            assert!(w.keys.is_empty() && w.prefixes.is_empty() && w.tables.is_empty());
            assert!(w.services.is_empty());
            assert!(w.applied.is_empty() && w.all.is_empty());
        });
    }
}
