//! `GET /v1/agent/monitor`: streams the agent's log lines (`?loglevel`, default `info`, whatever the
//! agent's own level; `?logjson` for hclog's JSON lines) as a chunked body until the client goes away or
//! the agent stops. The log tap is [`crate::logging::attach_monitor`]; a task on the shard moves its lines
//! into the response every [`MONITOR_POLL_MS`].

use super::http::{to_http, FrontEnd};
use crate::api::ApiResponse;
use crate::logging::{attach_monitor, LogLevel, MONITORS_MAX};
use cairn_io::http::{BodyStream, Response};
use futures_lite::future::or;
use glommio::channels::local_channel;
use std::sync::mpsc::TryRecvError;
use std::time::Duration;

/// How often a monitor's task moves waiting log lines into its response.
pub const MONITOR_POLL_MS: u64 = 100;
/// Chunks a monitor's response may have waiting to be written.
pub const MONITOR_CHUNKS_MAX: usize = 16;

impl FrontEnd {
    /// Starts streaming the log at `level` and above (as JSON lines with `json`).
    pub(super) fn monitor(&self, level: LogLevel, json: bool) -> Response {
        let Some(lines) = attach_monitor(level, json) else {
            let text = format!("{MONITORS_MAX} monitors are already attached to this agent");
            return to_http(ApiResponse::text(429, text));
        };
        let (chunks, body) = local_channel::new_bounded(MONITOR_CHUNKS_MAX);
        let shutdown = self.shutdown().clone();
        glommio::spawn_local(async move {
            loop {
                let tick = async {
                    glommio::timer::sleep(Duration::from_millis(MONITOR_POLL_MS)).await;
                    true
                };
                let stopping = async {
                    shutdown.wait().await;
                    false
                };
                if !or(tick, stopping).await {
                    return;
                }
                let mut chunk = Vec::new();
                loop {
                    match lines.try_recv() {
                        Ok(line) => chunk.extend_from_slice(line.as_bytes()),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => return,
                    }
                }
                // A closed body means the client went away: detach (dropping `lines`).
                if !chunk.is_empty() && chunks.send(chunk).await.is_err() {
                    return;
                }
            }
        })
        .detach();
        let mut response = to_http(ApiResponse {
            status: 200,
            content_type: Some("text/plain; charset=utf-8"),
            headers: Vec::new(),
            body: Vec::new(),
        });
        response.stream = Some(BodyStream::new(body));
        response
    }
}
