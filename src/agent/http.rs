//! The HTTP API front end on each shard: `cairn_io::http` framing, [`crate::api`] meaning, and the effects
//! between them: reads of the published state under the asked consistency (with blocking queries woken by
//! change notices), writes through the Raft core, operator actions and leave.
//!
//! Consistency: `stale` reads the published state as it is; `default` reads it at once on a leader whose lease
//! holds, and otherwise asks the core for a read index (the leader's, forwarded from a follower) and waits
//! until the local state has applied it; `consistent` always asks for a ReadIndex confirmed by a quorum.
//! Every read answer carries `X-Consul-Index` (never 0), `X-Consul-KnownLeader`, `X-Consul-LastContact` and
//! `X-Consul-Effective-Consistency`.

use super::anti_entropy::LocalAgent;
use super::remote::RemoteLink;
use super::shard::{ShardLink, Watch};
use super::ttl::{self, TtlTable};
use crate::api::cluster::ClusterView;
use crate::api::query::Query;
use crate::api::{
    self, jitter_ms, ApiRequest, ApiResponse, Consistency, Context, OperatorPlan, Plan, ReadPlan,
    WatchSpec, WritePlan,
};
use crate::api::{AgentIdentity, AgentOp};
use crate::config::AgentConfig;
use crate::fsm::codec::{decode_outcome, encode_command};
use crate::fsm::{CheckDefinition, CheckStatus, Command, HealthCheck};
use crate::rpc::{self, ErrorCode, ErrorReply};
use cairn_io::http::{
    BodyLimit, HttpServer, HttpServerError, HttpServerOptions, Method, ParserLimits, Request,
    Response,
};
use cairn_io::Shutdown;
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Connections one shard serves at once (blocking queries each hold one): further ones get `503`.
pub const CONNECTIONS_MAX_PER_SHARD: usize = 8192;
/// Each connection's read buffer.
pub const READ_BUFFER_BYTES: usize = 4096;
/// Bytes a request body may take on routes without a configured limit.
pub const OTHER_BODY_BYTES_MAX: usize = 1 << 20;
/// How long a read waits for the local state to apply the read index it was given.
pub const APPLY_WAIT_MS_MAX: u64 = 10_000;
/// How long a request keeps retrying while there is no leader or leadership moves (Consul's
/// `RPCHoldTimeout`); then it fails, with `No cluster leader` when none is known.
pub const RPC_HOLD_TIMEOUT_MS: u64 = 7_000;
/// The pause between those retries.
pub const RPC_RETRY_PAUSE_MS: u64 = 50;

/// What the front end needs to know about the agent.
#[derive(Clone, Debug)]
pub struct ApiSettings {
    /// The node name.
    pub node_name: String,
    /// The datacenter.
    pub datacenter: String,
    /// `session_ttl_min`.
    pub session_ttl_min_ms: u64,
    /// `limits.kv_max_value_size`.
    pub kv_max_value_bytes: u64,
    /// `limits.txn_max_req_len`.
    pub txn_max_req_bytes: u64,
    /// This agent's node and build.
    pub agent: Arc<AgentIdentity>,
    /// The agent's TTL timers, shared by its shards.
    pub ttls: Arc<Mutex<TtlTable>>,
    /// The agent's local services and checks, shared by its shards.
    pub local: Arc<LocalAgent>,
    /// `ae_interval`: the base interval of anti-entropy's full sync.
    pub ae_interval_ms: u64,
    /// HTTP requests the agent answered (all shards).
    pub requests_total: Arc<std::sync::atomic::AtomicU64>,
    /// Services from the configuration (`services`/`service`), registered at startup.
    pub config_services: Vec<serde_json::Value>,
    /// Checks from the configuration (`checks`/`check`), registered at startup.
    pub config_checks: Vec<serde_json::Value>,
    /// The gossip pools (members, join, force-leave, user events).
    pub gossip: Arc<super::gossip::GossipHub>,
}

/// This agent's identity from its configuration (the node as its self-registration describes it).
pub fn identity(config: &AgentConfig) -> AgentIdentity {
    let node = super::self_registration::request(config);
    AgentIdentity {
        node_id: node.id,
        address: node.address,
        tagged_addresses: node.tagged_addresses,
        node_meta: node.node_meta,
        server: config.server || config.dev,
        version: env!("CARGO_PKG_VERSION").to_string(),
        serf_lan_port: config.ports.serf_lan.unwrap_or(8301),
        remote_script_checks: config.enable_script_checks,
        check_update_interval_ms: config.check_update_interval_ms,
    }
}

/// Where a front end sends what it cannot answer from the agent's local state.
pub enum Backend {
    /// A server's shard: the Raft core on this machine, and the published state.
    Server(Rc<ShardLink>),
    /// A client agent's shard: the servers, over the server RPC.
    Client(Rc<RemoteLink>),
}

/// One shard's HTTP API.
pub struct FrontEnd {
    pub(super) backend: Backend,
    pub(super) settings: ApiSettings,
    /// Set when `PUT /v1/agent/leave` asked the agent to stop; `shutdown` is then triggered.
    leave_requested: Arc<AtomicBool>,
    shutdown: Shutdown,
}

impl FrontEnd {
    /// A front end reading through `backend`.
    pub fn new(
        backend: Backend,
        settings: ApiSettings,
        leave_requested: Arc<AtomicBool>,
        shutdown: Shutdown,
    ) -> Rc<FrontEnd> {
        Rc::new(FrontEnd {
            backend,
            settings,
            leave_requested,
            shutdown,
        })
    }

    /// Binds the HTTP listener on `addr` (shared by every shard through `SO_REUSEPORT`) and serves until
    /// `shutdown`.
    pub fn serve(
        self: &Rc<Self>,
        addr: SocketAddr,
        shutdown: &Shutdown,
    ) -> Result<HttpServer, HttpServerError> {
        let kv_max = self.settings.kv_max_value_bytes as usize;
        let txn_max = self.settings.txn_max_req_bytes as usize;
        // One byte over each limit reaches the API, which answers with Consul's 413 text.
        let body_limit = BodyLimit::new(move |head: &Request| {
            if head.path.starts_with("/v1/kv/") {
                kv_max.saturating_add(1)
            } else if head.path == "/v1/txn" {
                txn_max.saturating_add(1)
            } else if head.path == "/v1/snapshot" {
                api::snapshot::ARCHIVE_BYTES_MAX.saturating_add(1)
            } else {
                OTHER_BODY_BYTES_MAX
            }
        });
        let options = HttpServerOptions {
            limits: ParserLimits {
                body_limit: Some(body_limit),
                ..ParserLimits::default()
            },
            reuse_port: true,
            connections_max: CONNECTIONS_MAX_PER_SHARD,
            // Go's bufio size: a blocking query holds its connection, and with it this buffer.
            read_buffer_bytes: READ_BUFFER_BYTES,
            ..HttpServerOptions::default()
        };
        let front = Rc::clone(self);
        HttpServer::bind(addr, options, shutdown, move |request| {
            let front = Rc::clone(&front);
            async move { front.handle(request).await }
        })
    }

    /// Answers one request.
    pub async fn handle(&self, request: Request) -> Response {
        self.settings.requests_total.fetch_add(1, Ordering::Relaxed);
        let response = match self.prepare(&request) {
            Ok((path, query, token)) => {
                let api_request = ApiRequest {
                    method: method(&request.method),
                    path: &path,
                    query,
                    token,
                    body: &request.body,
                };
                match api::monitor_plan(&api_request) {
                    Some(Ok((level, json))) => return self.monitor(level, json),
                    Some(Err(response)) => response,
                    None => self.run(&api_request).await,
                }
            }
            Err(response) => response,
        };
        to_http(response)
    }

    fn prepare(&self, request: &Request) -> Result<(String, Query, Option<String>), ApiResponse> {
        let path = percent_decode(&request.path).ok_or_else(|| {
            ApiResponse::text(400, "Invalid URL path: bad percent-encoding or not UTF-8")
        })?;
        let query = Query::parse(&request.query)
            .map_err(|e| ApiResponse::text(400, format!("Invalid query: {e}")))?;
        let token = request
            .headers
            .get_str("x-consul-token")
            .map(str::to_string)
            .or_else(|| {
                request
                    .headers
                    .get_str("authorization")
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .map(|v| v.trim().to_string())
            })
            .or_else(|| query.get("token").map(str::to_string));
        Ok((path, query, token))
    }

    pub(super) fn context(&self, path: &str) -> Context {
        Context {
            node_name: self.settings.node_name.clone(),
            datacenter: self.settings.datacenter.clone(),
            session_ttl_min_ms: self.settings.session_ttl_min_ms,
            kv_max_value_bytes: self.settings.kv_max_value_bytes,
            txn_max_req_bytes: self.settings.txn_max_req_bytes,
            now_ms: wall_clock_ms(),
            agent: Arc::clone(&self.settings.agent),
            server_names: if path == "/v1/operator/raft/configuration" {
                self.settings.gossip.lan_server_names()
            } else {
                std::collections::BTreeMap::new()
            },
            stats: if path == "/v1/agent/self" {
                self.settings.gossip.stats_groups()
            } else {
                std::collections::BTreeMap::new()
            },
            other_datacenters: if path == "/v1/catalog/datacenters" {
                self.settings.gossip.wan_datacenters()
            } else {
                Vec::new()
            },
            new_id: if path == "/v1/session/create" || path.starts_with("/v1/event/fire/") {
                uuid::Uuid::new_v4().to_string()
            } else {
                String::new()
            },
        }
    }

    /// Registers the services and checks of the configuration files as if they came through
    /// `PUT /v1/agent/service/register` and `/v1/agent/check/register` (the same validation and effects),
    /// retrying while there is no leader; a definition refused as invalid is logged and skipped.
    pub async fn register_config_definitions(
        &self,
        logger: &crate::logging::Logger,
        shutdown: &Shutdown,
    ) {
        let definitions = self
            .settings
            .config_services
            .iter()
            .map(|d| ("/v1/agent/service/register", d))
            .chain(
                self.settings
                    .config_checks
                    .iter()
                    .map(|d| ("/v1/agent/check/register", d)),
            );
        for (path, definition) in definitions {
            let body = serde_json::to_vec(definition).unwrap_or_default();
            loop {
                if shutdown.is_triggered() {
                    return;
                }
                let request = ApiRequest {
                    method: api::Method::Put,
                    path,
                    query: Query::default(),
                    token: None,
                    body: &body,
                };
                let response = self.run_request(&request, false).await;
                match response.status {
                    200 => break,
                    400..=499 => {
                        logger.error(
                            "agent",
                            &format!(
                                "config definition refused ({}): {}",
                                response.status,
                                String::from_utf8_lossy(&response.body)
                            ),
                        );
                        break;
                    }
                    _ => {
                        glommio::timer::sleep(Duration::from_millis(RPC_RETRY_PAUSE_MS * 10)).await
                    }
                }
            }
        }
    }

    async fn run(&self, request: &ApiRequest<'_>) -> ApiResponse {
        self.run_request(request, true).await
    }

    /// Runs one request; `persist`: agent registrations are kept across restarts (false for those of the
    /// configuration files, which the next start registers again).
    async fn run_request(&self, request: &ApiRequest<'_>, persist: bool) -> ApiResponse {
        if let Some(dc) = request.query.get("dc") {
            if !dc.is_empty() && dc != self.settings.datacenter {
                return ApiResponse::text(500, "No path to datacenter");
            }
        }
        let ctx = self.context(request.path);
        let cluster = match &self.backend {
            Backend::Server(link) => Arc::clone(&link.shared().published().cluster),
            Backend::Client(_) => Arc::new(ClusterView::default()),
        };
        let plan = api::plan(request, &ctx, &cluster);
        // A client agent relays what needs the servers' state and answers the rest itself.
        let link = match (&self.backend, &plan) {
            (Backend::Server(link), _) => link,
            (Backend::Client(remote), Plan::Read(_) | Plan::Write(_) | Plan::Operator(_)) => {
                return self.relay_http(remote, request).await;
            }
            (Backend::Client(_), _) => return self.run_local(plan, &ctx, &cluster, persist).await,
        };
        match plan {
            Plan::Respond(response) => response,
            Plan::Read(plan) => self.read(link, &plan, &ctx).await,
            Plan::Write(plan) => self.write(link, &plan).await,
            Plan::Operator(plan) => self.operator(link, &plan).await,
            other => self.run_local(other, &ctx, &cluster, persist).await,
        }
    }

    /// Runs what the agent answers itself, on a server or a client.
    async fn run_local(
        &self,
        plan: Plan,
        ctx: &Context,
        cluster: &ClusterView,
        persist: bool,
    ) -> ApiResponse {
        match plan {
            Plan::Agent(op) => self.agent_write(&op, ctx, persist).await,
            Plan::AgentRead(read, pretty) => {
                let local = self.settings.local.state.lock();
                api::agent_read_answer(&local, cluster, &read, ctx, pretty)
            }
            Plan::Reload => {
                // The same path as SIGHUP: the main thread reloads.
                // SAFETY: kill(2) on our own pid with a signal the agent handles.
                unsafe { libc::kill(libc::getpid(), libc::SIGHUP) };
                ApiResponse::empty()
            }
            Plan::Leave => {
                self.leave_requested.store(true, Ordering::Release);
                self.shutdown.trigger();
                ApiResponse::empty()
            }
            Plan::Metrics { prometheus, pretty } => self.metrics(prometheus, pretty),
            Plan::Gossip(plan) => {
                super::gossip::http::answer(
                    &self.settings.gossip,
                    plan,
                    ctx.new_id.clone(),
                    &self.settings.datacenter,
                )
                .await
            }
            Plan::Respond(response) => response,
            Plan::Read(_) | Plan::Write(_) | Plan::Operator(_) => {
                ApiResponse::text(500, "this agent cannot serve that request itself")
            }
        }
    }

    async fn read(&self, link: &Rc<ShardLink>, plan: &ReadPlan, ctx: &Context) -> ApiResponse {
        let deadline_ms = plan.blocking.map(|b| {
            let jitter = jitter_ms(b.wait_ms, u64::from(rand_u32()));
            link.shared().now_ms() + b.wait_ms + jitter
        });
        // The first answer's index: an answer below it after a wait means the state went backwards (a
        // snapshot restore), which ends the wait at once, as Consul's restore wakes every blocking query.
        let mut first_index: Option<u64> = None;
        loop {
            if let Err(e) = self.satisfy(link, plan.consistency).await {
                return error_response(&e);
            }
            let published = link.shared().published();
            let answer = if matches!(plan.query, api::ReadQuery::Snapshot) {
                // Encoding and hashing the whole state takes long: off the shard, on the blocking pool.
                let (published, ctx) = (Arc::clone(&published), ctx.clone());
                glommio::executor()
                    .spawn_blocking(move || {
                        api::snapshot::answer(&published.state, &published.cluster, &ctx)
                    })
                    .await
            } else {
                plan.query
                    .answer(&published.state, &published.cluster, ctx, plan.pretty)
            };
            let now_ms = link.shared().now_ms();
            if let (Some(blocking), Some(deadline)) = (plan.blocking, deadline_ms) {
                let went_back = first_index.is_some_and(|first| answer.index < first);
                first_index.get_or_insert(answer.index);
                if answer.index <= blocking.index && !went_back && now_ms < deadline {
                    let watch = match plan.query.watch() {
                        WatchSpec::Kv { key, prefix } => Watch::Kv { key, prefix },
                        WatchSpec::Service(name) => Watch::Service(name),
                        WatchSpec::Tables(tables) => Watch::Tables(tables),
                        WatchSpec::Any => Watch::AppliedIndex(published.applied_index + 1),
                    };
                    let Some(watcher) = link.watch(watch, published.applied_index) else {
                        return ApiResponse::text(429, "too many blocking queries on this agent");
                    };
                    watcher.wait(deadline - now_ms).await;
                    continue;
                }
            }
            let mut response = answer.response;
            query_headers(
                link,
                &mut response,
                answer.index,
                plan.consistency,
                &published.cluster,
            );
            return response;
        }
    }

    /// Waits until the published state may answer a read in `consistency` mode.
    async fn satisfy(
        &self,
        link: &Rc<ShardLink>,
        consistency: Consistency,
    ) -> Result<(), ErrorReply> {
        let shared = link.shared();
        let lease_read = consistency == Consistency::Default
            && shared.published().cluster.is_leader()
            && shared.lease_valid();
        if consistency == Consistency::Stale || lease_read {
            return Ok(());
        }
        let wire = match consistency {
            Consistency::Consistent => rpc::Consistency::Consistent,
            _ => rpc::Consistency::Default,
        };
        let index = self
            .hold(
                link,
                |e| e.code != ErrorCode::Overloaded,
                || link.read_index(wire),
            )
            .await?;
        if link.wait_applied(index, APPLY_WAIT_MS_MAX).await {
            Ok(())
        } else {
            Err(ErrorReply {
                code: ErrorCode::Unknown,
                leader: None,
                message: format!("timed out waiting for this server to apply index {index}"),
            })
        }
    }

    /// Runs `attempt` again while it fails with an error `retry` accepts, for at most
    /// [`RPC_HOLD_TIMEOUT_MS`]: an election in progress delays a request rather than failing it.
    async fn hold<T, F, Fut>(
        &self,
        link: &ShardLink,
        retry: impl Fn(&ErrorReply) -> bool,
        attempt: F,
    ) -> Result<T, ErrorReply>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, ErrorReply>>,
    {
        let deadline_ms = link.shared().now_ms() + RPC_HOLD_TIMEOUT_MS;
        loop {
            match attempt().await {
                Err(e) if retry(&e) && link.shared().now_ms() < deadline_ms => {
                    glommio::timer::sleep(Duration::from_millis(RPC_RETRY_PAUSE_MS)).await;
                }
                other => return other,
            }
        }
    }

    async fn write(&self, link: &Rc<ShardLink>, plan: &WritePlan) -> ApiResponse {
        let command = encode_command(&plan.command);
        // Only errors that say the command never reached Raft are retried: a write is not applied twice.
        let safe = |e: &ErrorReply| matches!(e.code, ErrorCode::NotLeader | ErrorCode::Rejected);
        match self.hold(link, safe, || link.apply(command.clone())).await {
            Ok((_, result)) => match decode_outcome(&result) {
                Ok(outcome) => api::render_outcome(&plan.render, outcome, plan.pretty),
                Err(e) => ApiResponse::text(500, format!("undecodable outcome: {e}")),
            },
            Err(e) => error_response(&e),
        }
    }

    /// Carries out an agent write on the local state, keeps it on disk, syncs it to the catalog (so a read
    /// right after the response sees it) and updates the TTL timers.
    async fn agent_write(&self, op: &AgentOp, ctx: &Context, persist: bool) -> ApiResponse {
        let applied = op.apply(&mut self.settings.local.state.lock(), ctx, persist);
        let ttls = match applied {
            Ok(ttls) => ttls,
            Err(response) => return response,
        };
        if !matches!(op, AgentOp::UpdateTtl { .. }) {
            if let Err(response) = self.persist_local().await {
                return response;
            }
        }
        let now_ms = self.now_ms();
        {
            let mut table = self.settings.ttls.lock();
            for (id, ttl) in &ttls {
                match ttl {
                    Some(ttl_ms) if !table.arm(id, *ttl_ms, now_ms) => {
                        return ApiResponse::text(500, "too many TTL checks on this agent");
                    }
                    Some(_) => {}
                    None => table.forget(id),
                }
            }
        }
        match self.sync_changes().await {
            Ok(()) => ApiResponse::empty(),
            Err(response) => response,
        }
    }

    /// Applies one command (retried only while it cannot have reached Raft) and waits until the local
    /// published state includes it (on a client agent: through a server); a refusal by the state machine is
    /// a `500` with its message.
    pub(super) async fn apply_and_wait(&self, command: &Command) -> Result<(), ApiResponse> {
        match &self.backend {
            Backend::Client(remote) => self.relay_apply(remote, command).await,
            Backend::Server(_) => {
                let result = self.apply_and_wait_outcome(command).await?;
                super::relay::check_outcome(&result)
            }
        }
    }

    /// A server's [`FrontEnd::apply_and_wait`], returning the encoded outcome.
    pub(super) async fn apply_and_wait_outcome(
        &self,
        command: &Command,
    ) -> Result<Vec<u8>, ApiResponse> {
        let Backend::Server(link) = &self.backend else {
            return Err(ApiResponse::text(
                500,
                "a client agent applies no commands itself",
            ));
        };
        let bytes = encode_command(command);
        let safe = |e: &ErrorReply| matches!(e.code, ErrorCode::NotLeader | ErrorCode::Rejected);
        let (index, result) = self
            .hold(link, safe, || link.apply(bytes.clone()))
            .await
            .map_err(|e| error_response(&e))?;
        link.wait_applied(index, APPLY_WAIT_MS_MAX).await;
        Ok(result)
    }

    /// Runs a request relayed by a client agent (kept across restarts like any API write).
    pub(super) async fn run_relayed(&self, request: &ApiRequest<'_>) -> ApiResponse {
        self.run_request(request, true).await
    }

    /// Turns expired TTL checks critical until `shutdown` (run on one shard per agent).
    pub async fn run_ttl_timers(&self, shutdown: &Shutdown) {
        while !shutdown.is_triggered() {
            super::check_runner::pause(ttl::TICK_MS, shutdown).await;
            let now_ms = self.now_ms();
            let expired = self.settings.ttls.lock().take_expired(now_ms);
            for id in expired {
                self.expire(&id, now_ms).await;
            }
        }
    }

    async fn expire(&self, id: &str, now_ms: u64) {
        let changed = api::expire_ttl(&mut self.settings.local.state.lock(), id);
        // An expiry whose earlier sync failed is still out of sync: try again.
        let unsynced = !self.settings.local.state.lock().is_synced();
        if !changed && !unsynced {
            return;
        }
        if self.sync_changes().await.is_err() {
            self.settings.ttls.lock().arm(id, ttl::RETRY_MS, now_ms);
        }
    }

    /// The agent's shutdown signal.
    pub(super) fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// The agent's monotonic clock, in milliseconds.
    pub fn now_ms(&self) -> u64 {
        match &self.backend {
            Backend::Server(link) => link.shared().now_ms(),
            Backend::Client(remote) => remote.now_ms(),
        }
    }

    /// The index of the published state this shard reads.
    pub fn applied_index(&self) -> u64 {
        match &self.backend {
            Backend::Server(link) => link.shared().published().applied_index,
            Backend::Client(_) => 0,
        }
    }

    /// The changes counter of the agent's local state (it moves when a service or check changes).
    pub fn local_revision(&self) -> u64 {
        self.settings.local.state.lock().revision()
    }

    /// This agent's checks (its local state).
    pub fn local_checks(&self) -> Vec<HealthCheck> {
        self.settings.local.state.lock().checks().cloned().collect()
    }

    /// This agent's node name.
    pub fn node_name(&self) -> &str {
        &self.settings.node_name
    }

    /// What an alias check of `node` (empty: this agent's) and service ID `service` sees: whether the
    /// service is registered, and the node's checks. This agent's own node is read from its local state;
    /// another node from the published catalog (a client agent sees no other node: not found).
    pub fn alias_view(&self, node: &str, service: &str) -> (String, bool, Vec<HealthCheck>) {
        let node = if node.is_empty() {
            self.settings.node_name.clone()
        } else {
            node.to_string()
        };
        if node == self.settings.node_name {
            let local = self.settings.local.state.lock();
            let found = local.service(service).is_some();
            return (node, found, local.checks().cloned().collect());
        }
        let Backend::Server(link) = &self.backend else {
            return (node, false, Vec::new());
        };
        let published = link.shared().published();
        let found = published
            .state
            .node_services(&node)
            .is_some_and(|(_, services)| services.iter().any(|s| s.id == service));
        let checks = published.state.node_checks(&node);
        let checks = checks.into_iter().cloned().collect();
        (node, found, checks)
    }

    /// Deregisters service `id` of this agent (and its checks) the way
    /// `PUT /v1/agent/service/deregister/:id` does; `false` when that failed.
    pub async fn deregister_local_service(&self, id: &str) -> bool {
        let ctx = self.context("");
        let op = AgentOp::DeregisterService(id.to_string());
        self.agent_write(&op, &ctx, true).await.status == 200
    }

    /// Records the result of a run of check `id` when the agent still holds the `definition` that ran,
    /// and syncs it to the catalog when it changed the status or output; `false` when the sync failed.
    pub async fn record_check(
        &self,
        id: &str,
        definition: &CheckDefinition,
        status: CheckStatus,
        output: &str,
    ) -> bool {
        {
            let mut local = self.settings.local.state.lock();
            let same = local.check(id).is_some_and(|c| c.definition == *definition);
            let defer_ms = self.settings.agent.check_update_interval_ms;
            let now_ms = wall_clock_ms();
            if !same || !local.update_check_deferring(id, status, output, now_ms, defer_ms) {
                return true;
            }
        }
        self.sync_changes().await.is_ok()
    }

    async fn operator(&self, link: &ShardLink, plan: &OperatorPlan) -> ApiResponse {
        let op = match plan {
            OperatorPlan::TransferLeader(to) => super::bridge::OperatorOp::TransferLeader(*to),
            OperatorPlan::RemovePeer(id) => super::bridge::OperatorOp::RemovePeer(*id),
            OperatorPlan::AutopilotHealth { .. } | OperatorPlan::AutopilotState { .. } => {
                super::bridge::OperatorOp::AutopilotState
            }
        };
        match link.operator(op).await {
            Ok(result) => plan.done(&result),
            Err(e) => error_response(&e),
        }
    }
}

/// Adds the headers every read answer carries.
fn query_headers(
    link: &ShardLink,
    response: &mut ApiResponse,
    index: u64,
    consistency: Consistency,
    cluster: &ClusterView,
) {
    let last_contact_ms = if cluster.is_leader() {
        0
    } else {
        link.shared().last_contact_age_ms().unwrap_or(0)
    };
    let headers = &mut response.headers;
    headers.push(("X-Consul-Index", index.max(1).to_string()));
    headers.push((
        "X-Consul-KnownLeader",
        cluster.leader_id.is_some().to_string(),
    ));
    headers.push(("X-Consul-LastContact", last_contact_ms.to_string()));
    headers.push((
        "X-Consul-Effective-Consistency",
        consistency.header_value().to_string(),
    ));
}

/// Consul's answer to a failed server request: `500 No cluster leader` when there is none.
fn error_response(error: &ErrorReply) -> ApiResponse {
    if error.code == ErrorCode::NotLeader && error.leader.is_none() {
        return ApiResponse::text(500, "No cluster leader");
    }
    if error.code == ErrorCode::Overloaded {
        return ApiResponse::text(429, error.message.clone());
    }
    ApiResponse::text(500, format!("rpc error: {}", error.message))
}

fn method(method: &Method) -> api::Method {
    match method {
        Method::Get => api::Method::Get,
        Method::Head => api::Method::Head,
        Method::Put => api::Method::Put,
        Method::Post => api::Method::Post,
        Method::Delete => api::Method::Delete,
        _ => api::Method::Other,
    }
}

/// The HTTP response for an API answer.
pub(super) fn to_http(response: ApiResponse) -> Response {
    let mut out = Response::new(response.status);
    if let Some(content_type) = response.content_type {
        out.headers.push("Content-Type", content_type);
    }
    for (name, value) in &response.headers {
        out.headers.push(name, value);
    }
    out.headers.push("X-Consul-Default-Acl-Policy", "allow");
    out.body = response.body;
    out
}

/// Percent-decodes a URL path; `None` for a bad escape or bytes that are not UTF-8.
pub fn percent_decode(path: &str) -> Option<String> {
    if !path.contains('%') {
        return Some(path.to_string());
    }
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%' {
            let hex = std::str::from_utf8(bytes.get(at + 1..at + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            at += 3;
        } else {
            out.push(bytes[at]);
            at += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Milliseconds since the Unix epoch.
pub fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A cheap random number for staggering (not for anything secret).
pub(super) fn random_u64() -> u64 {
    (u64::from(rand_u32()) << 32) | u64::from(rand_u32().rotate_left(7))
}

/// A cheap random number for jitter (not for anything secret).
fn rand_u32() -> u32 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .subsec_nanos();
    nanos.wrapping_mul(2_654_435_761)
}
