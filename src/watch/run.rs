//! The blocking-query loop of a watch: ask, wait for a change, hand changed data to the caller.
//!
//! As Consul's watch plans: the first answer is always handed over; afterwards an answer is handed
//! over only when its index moved and its data differs from the last one handed over. An index that
//! goes backwards restarts from 0. Errors are retried with a doubling delay.

use crate::cli::common::Client;
use crate::cli::http_client::ClientError;
use crate::cli::lock_kv::blocking_get;
use crate::watch::plan::Plan;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The first retry delay after an error; doubled up to [`RETRY_MAX_MS`].
pub const RETRY_BASE_MS: u64 = 1_000;
/// The longest retry delay.
pub const RETRY_MAX_MS: u64 = 30_000;
/// How often a retry delay looks at the stop flag.
pub const STOP_POLL_MS: u64 = 100;

/// How a loop runs.
#[derive(Clone, Copy, Debug)]
pub struct Settings<'a> {
    /// How long one blocking query waits (the agent answers when it passes, unchanged).
    pub wait_ms: u64,
    /// Set to end the loop; looked at between queries and during retry delays.
    pub stop: Option<&'a AtomicBool>,
    /// Whether an answer refusing the request (4xx, or 404 from an endpoint that is not KV) ends
    /// the loop (the CLI) instead of being retried (config watches).
    pub refusal_ends: bool,
}

/// What the caller wants after a change was handed over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Keep watching.
    Continue,
    /// End the loop.
    Stop,
}

/// How a loop ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// The caller asked to stop ([`Step::Stop`]).
    Done,
    /// The stop flag was set.
    Stopped,
    /// The agent refused the request (only with [`Settings::refusal_ends`]); the message names why.
    Refused(String),
}

/// Runs the loop: `on_change(data, index)` gets every change; `on_error(message)` every error
/// that will be retried (`Watch errored: type=key error="..." retry=1s`).
pub fn run(
    client: &Client,
    plan: &Plan,
    settings: Settings<'_>,
    on_error: &mut dyn FnMut(&str),
    on_change: &mut dyn FnMut(&Value, u64) -> Step,
) -> End {
    let stopped = || settings.stop.is_some_and(|s| s.load(Ordering::Acquire));
    let mut index = 0;
    let mut last: Option<Value> = None;
    let mut retry_ms = RETRY_BASE_MS;
    loop {
        if stopped() {
            return End::Stopped;
        }
        let request = if client.stale() {
            plan.request.clone().flag("stale")
        } else {
            plan.request.clone()
        };
        let answer = blocking_get(client, request, index, settings.wait_ms);
        if stopped() {
            return End::Stopped;
        }
        let error = match answer {
            Ok((Value::Null, _)) if !plan.not_found_is_empty => ClientError::Status {
                code: 404,
                body: "404 page not found".to_string(),
            },
            Ok((answer, next)) => {
                retry_ms = RETRY_BASE_MS;
                let data = plan.data_of(answer);
                let old_index = index;
                index = if next < old_index { 0 } else { next.max(1) };
                if old_index != 0 && last.as_ref() == Some(&data) {
                    continue;
                }
                if on_change(&data, index) == Step::Stop {
                    return End::Done;
                }
                last = Some(data);
                continue;
            }
            Err(error) => error,
        };
        if let ClientError::Status { code, .. } = &error {
            if settings.refusal_ends && (400..500).contains(code) {
                return End::Refused(format!("Error querying Consul agent: {error}"));
            }
        }
        on_error(&format!(
            "Watch errored: type={} error=\"{error}\" retry={}s",
            plan.kind,
            retry_ms / 1000
        ));
        if pause(retry_ms, settings.stop) {
            return End::Stopped;
        }
        retry_ms = (retry_ms * 2).min(RETRY_MAX_MS);
    }
}

/// Sleeps `ms`, looking at `stop` every [`STOP_POLL_MS`]; true when it was set.
pub fn pause(ms: u64, stop: Option<&AtomicBool>) -> bool {
    let Some(stop) = stop else {
        std::thread::sleep(Duration::from_millis(ms));
        return false;
    };
    let until = Instant::now() + Duration::from_millis(ms);
    loop {
        if stop.load(Ordering::Acquire) {
            return true;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        std::thread::sleep(left.min(Duration::from_millis(STOP_POLL_MS)));
    }
}
