//! Anti-entropy: keeps the catalog's copy of this agent's node equal to the agent's local state
//! ([`LocalState`]: the services and checks registered on this agent, the truth for its node).
//!
//! Every change (a registration, a check result, a TTL update) is synced at once by the request or task that
//! made it: `FrontEnd::sync_changes` applies the pending catalog commands and marks what they covered in
//! sync. A full sync on shard 0 every minute (scaled up with the cluster size as Consul does, plus a random
//! stagger) compares the catalog with the local state and repairs any drift, including catalog entries of
//! this node that the agent does not know.
//!
//! The local state is shared by the agent's shards behind one mutex (held for short, non-awaiting
//! sections: the same documented exception as the TTL table). What was registered through the API is kept
//! in `<data_dir>/local/state.json` (written to a temporary file, fsynced and renamed before the request is
//! answered) and restored at startup, so a restart neither forgets nor deregisters it.

use super::check_runner::pause;
use super::http::{Backend, FrontEnd};
use crate::api::local::{full_sync_wait_ms, CatalogNode, LocalState, Persisted, PERSISTED_VERSION};
use crate::api::ApiResponse;
use crate::logging::LogLevel;
use cairn_io::Shutdown;
use parking_lot::Mutex;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Bytes the persisted local state may take when read back.
pub const PERSISTED_BYTES_MAX: u64 = 64 << 20;
/// The pause before a failed sync is tried again.
pub const RETRY_SYNC_MS: u64 = 15_000;
/// How often the full-sync task looks whether a full sync is due or changes wait.
pub const TICK_MS: u64 = 250;

/// The agent's local state and where it is kept, shared by the shards.
#[derive(Debug, Default)]
pub struct LocalAgent {
    /// The services and checks.
    pub state: Mutex<LocalState>,
    /// Where the API registrations are kept (`None`: `-dev`, memory only).
    pub store: Option<LocalStore>,
}

impl LocalAgent {
    /// The local state restored from `data_dir` (empty when there is none yet or in `-dev`).
    pub fn open(data_dir: Option<&Path>) -> Result<LocalAgent, String> {
        let store = data_dir.map(LocalStore::new);
        let mut state = LocalState::new();
        if let Some(persisted) = store.as_ref().map(LocalStore::load).transpose()?.flatten() {
            state.restore(persisted);
        }
        Ok(LocalAgent {
            state: Mutex::new(state),
            store,
        })
    }
}

/// The file keeping the API registrations, and the last version written (so a slower writer of an older
/// version never overwrites a newer one).
#[derive(Debug)]
pub struct LocalStore {
    path: PathBuf,
    written: std::sync::Mutex<u64>,
}

impl LocalStore {
    /// The store in `data_dir/local/state.json`.
    pub fn new(data_dir: &Path) -> LocalStore {
        LocalStore {
            path: data_dir.join("local").join("state.json"),
            written: std::sync::Mutex::new(0),
        }
    }

    /// What an earlier run kept; `None` when it kept nothing. A file that cannot be read or parsed is an
    /// error naming it.
    pub fn load(&self) -> Result<Option<Persisted>, String> {
        let path = &self.path;
        let bytes = match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
            Ok(meta) if meta.len() > PERSISTED_BYTES_MAX => {
                return Err(format!(
                    "{}: {} bytes, more than the {PERSISTED_BYTES_MAX} allowed",
                    path.display(),
                    meta.len()
                ))
            }
            Ok(_) => std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?,
        };
        let persisted: Persisted = serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "{}: not a local state file: {e} (line {}, column {})",
                path.display(),
                e.line(),
                e.column()
            )
        })?;
        if persisted.version != PERSISTED_VERSION {
            return Err(format!(
                "{}: version {} (this build reads {PERSISTED_VERSION})",
                path.display(),
                persisted.version
            ));
        }
        Ok(Some(persisted))
    }

    /// Writes version `seq` of the state durably (temporary file, fsync, rename, fsync of the directory)
    /// unless a newer version was written already. Blocking: run it off the shard.
    pub fn save(&self, seq: u64, bytes: &[u8]) -> Result<(), String> {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        if *written >= seq {
            return Ok(());
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let tmp = self.path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(dir)?;
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            std::fs::File::open(dir)?.sync_all()
        };
        write().map_err(|e| format!("{}: {e}", self.path.display()))?;
        *written = seq;
        Ok(())
    }
}

impl FrontEnd {
    /// Keeps the API registrations of the local state on disk; a `500` when that fails.
    pub(super) async fn persist_local(&self) -> Result<(), ApiResponse> {
        let local = &self.settings.local;
        if local.store.is_none() {
            return Ok(());
        }
        let (seq, bytes) = {
            let state = local.state.lock();
            (state.revision(), serde_json::to_vec(&state.persisted()))
        };
        let bytes = bytes.map_err(|e| ApiResponse::text(500, e.to_string()))?;
        let agent = std::sync::Arc::clone(local);
        let saved = glommio::executor()
            .spawn_blocking(move || match &agent.store {
                Some(store) => store.save(seq, &bytes),
                None => Ok(()),
            })
            .await;
        saved.map_err(|e| ApiResponse::text(500, format!("persisting the local state: {e}")))
    }

    /// Applies the catalog commands for whatever is out of sync and marks what they covered; stops at the
    /// first failure (the full sync retries later) and returns it.
    pub(super) async fn sync_changes(&self) -> Result<(), ApiResponse> {
        let ctx = self.context("");
        let steps = self.settings.local.state.lock().pending(&ctx);
        for step in steps {
            self.apply_and_wait(&step.command).await?;
            self.settings.local.state.lock().mark_synced(&step.covers);
        }
        Ok(())
    }

    /// Compares the catalog's copy of this node with the local state and syncs the differences; returns
    /// how many entries differed and how many nodes the catalog holds.
    pub(super) async fn full_sync(&self) -> Result<(usize, u64), ApiResponse> {
        let ctx = self.context("");
        let catalog = self.catalog_node(&ctx.node_name).await?;
        let marked = self.settings.local.state.lock().compare(&catalog, &ctx);
        self.sync_changes().await?;
        Ok((marked, catalog.node_count))
    }

    /// The catalog's copy of node `name`: from the published state on a server, from a server on a client.
    async fn catalog_node(&self, name: &str) -> Result<CatalogNode, ApiResponse> {
        match &self.backend {
            Backend::Server(link) => Ok(CatalogNode::from_state(
                &link.shared().published().state,
                name,
            )),
            Backend::Client(remote) => self.relay_node_view(remote, name).await,
        }
    }

    /// Whether a leader is known (a client agent always tries: the servers answer).
    fn leader_known(&self) -> bool {
        match &self.backend {
            Backend::Server(link) => link.shared().published().cluster.leader_id.is_some(),
            Backend::Client(_) => true,
        }
    }

    /// Runs anti-entropy until `shutdown` (on one shard per agent): a full sync once a leader is known,
    /// then one every interval (scaled by the number of nodes, with a random stagger), and a retry of
    /// changes left out of sync by a failure.
    pub async fn run_anti_entropy(&self, logger: &crate::logging::Logger, shutdown: &Shutdown) {
        let mut next_full_ms = 0;
        let mut next_retry_ms = 0;
        let mut nodes = 1;
        while !shutdown.is_triggered() {
            pause(TICK_MS, shutdown).await;
            let now_ms = self.now_ms();
            if !self.leader_known() {
                continue;
            }
            let released = self
                .settings
                .local
                .state
                .lock()
                .release_deferred(super::http::wall_clock_ms());
            if released > 0 {
                next_retry_ms = 0;
            }
            if now_ms >= next_full_ms {
                match self.full_sync().await {
                    Ok((marked, count)) => {
                        nodes = count;
                        if marked > 0 {
                            logger.info(
                                "agent",
                                &format!("anti-entropy: synced {marked} entries that differed from the catalog"),
                            );
                        }
                    }
                    Err(e) => logger.log(LogLevel::Warn, "agent", &sync_failure(&e)),
                }
                let interval_ms = self.settings.ae_interval_ms;
                next_full_ms =
                    now_ms + full_sync_wait_ms(interval_ms, nodes, super::http::random_u64());
            } else if now_ms >= next_retry_ms && !self.settings.local.state.lock().is_synced() {
                if let Err(e) = self.sync_changes().await {
                    logger.log(LogLevel::Warn, "agent", &sync_failure(&e));
                    next_retry_ms = now_ms + RETRY_SYNC_MS;
                }
            }
        }
    }
}

fn sync_failure(response: &ApiResponse) -> String {
    format!(
        "anti-entropy: syncing with the catalog failed ({}): {}",
        response.status,
        String::from_utf8_lossy(&response.body)
    )
}
