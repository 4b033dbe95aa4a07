//! Gathers what `GET /v1/agent/metrics` reports (rendered by [`crate::api::metrics`]): the process's
//! resident memory, the published state's sizes and Raft position on a server, and the requests served.

use super::http::{wall_clock_ms, Backend, FrontEnd};
use crate::api::metrics::{render_json, render_prometheus, Metrics};
use crate::api::ApiResponse;
use std::sync::atomic::Ordering;

impl FrontEnd {
    /// Answers `GET /v1/agent/metrics`.
    pub(super) fn metrics(&self, prometheus: bool, pretty: bool) -> ApiResponse {
        let metrics = self.gather_metrics();
        if prometheus {
            render_prometheus(&metrics)
        } else {
            render_json(&metrics, pretty)
        }
    }

    fn gather_metrics(&self) -> Metrics {
        let mut gauges = Vec::new();
        if let Some(rss) = resident_bytes() {
            gauges.push(("consul.runtime.sys_bytes".to_string(), rss as f64));
        }
        if let Backend::Server(link) = &self.backend {
            let published = link.shared().published();
            let counts = published.state.counts();
            let leader = published.cluster.is_leader();
            for (name, value) in [
                ("consul.state.nodes", counts.nodes),
                ("consul.state.services", counts.services),
                ("consul.state.service_instances", counts.service_instances),
                ("consul.state.kv_entries", counts.kv_entries),
                ("consul.session_ttl.active", counts.sessions_with_ttl),
                ("consul.raft.applied_index", published.applied_index),
                ("consul.server.isLeader", u64::from(leader)),
            ] {
                gauges.push((name.to_string(), value as f64));
            }
        }
        let requests = self.settings.requests_total.load(Ordering::Relaxed);
        Metrics {
            timestamp_ms: wall_clock_ms(),
            gauges,
            counters: vec![("consul.api.http".to_string(), requests)],
        }
    }
}

/// The process's resident set size, from `/proc/self/statm`.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page_bytes = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page_bytes).ok()?)
}
