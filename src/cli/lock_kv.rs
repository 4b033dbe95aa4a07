//! The KV side of `lock`: a session kept alive by a renewing thread, and consul's lock and
//! semaphore layouts, so that consul's own clients contend correctly with ours:
//! - a lock is the key `<prefix>/.lock`, acquired with the session and the flags
//!   [`LOCK_FLAG_VALUE`];
//! - a semaphore has one contender key `<prefix>/<session>` per holder (acquired with the session)
//!   and `<prefix>/.lock` holding `{"Limit":n,"Holders":{"<session>":true}}`, changed by
//!   check-and-set, both with the flags [`SEMAPHORE_FLAG_VALUE`].

use super::common::Client;
use super::http_client::{ClientError, Request};
use super::kv::{kv_path, Pair};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The flags consul's lock puts on its key.
pub const LOCK_FLAG_VALUE: u64 = 0x2ddc_cbc0_58a5_0c18;
/// The flags consul's semaphore puts on its keys.
pub const SEMAPHORE_FLAG_VALUE: u64 = 0xe0f6_9a2b_aa41_4de0;
/// The lock key under a prefix (also the semaphore's holder record).
pub const LOCK_KEY: &str = ".lock";
/// The session TTL, as consul's lock helpers use.
pub const SESSION_TTL_MS: u64 = 15_000;
/// The longest one blocking query waits.
pub const BLOCK_WAIT_MS: u64 = 15_000;
/// How long to wait before retrying an acquisition refused while nobody holds the key (lock-delay).
pub const RETRY_WAIT_MS: u64 = 1_000;

/// Why an acquisition or release failed.
pub type LockError = String;

/// A session and the thread renewing it; destroyed when stopped.
pub struct Session {
    /// The session ID.
    pub id: String,
    stop: Arc<AtomicBool>,
    renewer: Option<JoinHandle<()>>,
}

impl Session {
    /// Creates a session named `name` with a [`SESSION_TTL_MS`] TTL and renews it until
    /// [`Session::destroy`]; `lost` is set when a renewal says the session is gone.
    pub fn create(
        client: &Client,
        name: &str,
        lost: Arc<AtomicBool>,
    ) -> Result<Session, LockError> {
        let body = serde_json::json!({
            "Name": name,
            "TTL": format!("{}s", SESSION_TTL_MS / 1000),
            "Behavior": "release",
        });
        let request = Request::new("PUT", "/v1/session/create").body(body.to_string().into_bytes());
        let answer = client.send(request).and_then(|r| r.json());
        let answer = answer.map_err(|e| format!("failed to create session: {e}"))?;
        let id = answer["ID"].as_str().unwrap_or_default().to_string();
        if id.is_empty() {
            return Err("failed to create session: no ID in the answer".to_string());
        }
        let stop = Arc::new(AtomicBool::new(false));
        let renewer = {
            let (client, id, stop) = (client.clone(), id.clone(), stop.clone());
            std::thread::spawn(move || renew_loop(&client, &id, &stop, &lost))
        };
        Ok(Session {
            id,
            stop,
            renewer: Some(renewer),
        })
    }

    /// Stops renewing and destroys the session.
    pub fn destroy(mut self, client: &Client) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(renewer) = self.renewer.take() {
            let _ = renewer.join();
        }
        let path = format!("/v1/session/destroy/{}", self.id);
        let _ = client.send(Request::new("PUT", path));
    }
}

fn renew_loop(client: &Client, id: &str, stop: &AtomicBool, lost: &AtomicBool) {
    let period = Duration::from_millis(SESSION_TTL_MS / 2);
    let mut last = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
        if last.elapsed() < period {
            continue;
        }
        last = Instant::now();
        let path = format!("/v1/session/renew/{id}");
        // Other failures are transient: the next period retries, and the TTL leaves room for it.
        if let Err(ClientError::Status { code: 404, .. }) = client.send(Request::new("PUT", path)) {
            lost.store(true, Ordering::SeqCst);
            return;
        }
    }
}

/// Joins a prefix and a child key as Go's `path.Join` does for these simple names.
pub fn join_key(prefix: &str, child: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        child.to_string()
    } else {
        format!("{prefix}/{child}")
    }
}

/// A blocking read of `path` (a key or `?recurse` prefix) after `index`, waiting at most
/// `wait_ms`; returns the JSON (`Null` for 404) and the new index.
pub fn blocking_get(
    client: &Client,
    request: Request,
    index: u64,
    wait_ms: u64,
) -> Result<(Value, u64), ClientError> {
    let mut request = request;
    if index > 0 {
        request = request
            .param("index", index.to_string())
            .param("wait", format!("{}ms", wait_ms.max(1)));
    }
    request.timeout_ms = wait_ms + wait_ms / 16 + 10_000;
    let response = client.send_raw(request)?;
    let next = response.index();
    match response.status {
        404 => Ok((Value::Null, next)),
        200 => Ok((response.json()?, next)),
        code => Err(ClientError::Status {
            code,
            body: String::from_utf8_lossy(&response.body).trim().to_string(),
        }),
    }
}

/// What an acquisition attempt may wait for.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    /// `None` waits forever.
    pub until: Option<Instant>,
}

impl Deadline {
    /// Milliseconds left for one wait (at most [`BLOCK_WAIT_MS`]); `None` when passed.
    pub fn wait_ms(&self) -> Option<u64> {
        match self.until {
            None => Some(BLOCK_WAIT_MS),
            Some(until) => {
                let left = until.saturating_duration_since(Instant::now()).as_millis() as u64;
                (left > 0).then_some(left.min(BLOCK_WAIT_MS))
            }
        }
    }
}

/// Acquires the lock key for `session`; `Ok(false)` when the deadline passed or `stop` was set.
pub fn lock_acquire(
    client: &Client,
    key: &str,
    session: &str,
    deadline: Deadline,
    stop: &AtomicBool,
) -> Result<bool, LockError> {
    let mut index = 0;
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let Some(wait_ms) = deadline.wait_ms() else {
            return Ok(false);
        };
        let (value, next) = blocking_get(client, Request::new("GET", kv_path(key)), index, wait_ms)
            .map_err(|e| format!("failed to read lock: {e}"))?;
        let pair = Pair::list(&value).into_iter().next();
        if let Some(pair) = &pair {
            if pair.flags != LOCK_FLAG_VALUE {
                return Err("Existing key does not match lock use".to_string());
            }
            if !pair.session.is_empty() && pair.session != session {
                index = next;
                continue;
            }
        }
        let request = Request::new("PUT", kv_path(key))
            .param("acquire", session)
            .param("flags", LOCK_FLAG_VALUE.to_string());
        let acquired = client.send(request).and_then(|r| r.json());
        if acquired.map_err(|e| format!("failed to acquire lock: {e}"))? == Value::Bool(true) {
            return Ok(true);
        }
        // Refused while free: a lock-delay is in effect; wait a little.
        std::thread::sleep(Duration::from_millis(RETRY_WAIT_MS.min(wait_ms)));
        index = 0;
    }
}

/// Whether `session` still holds the lock key (`None` on a read error).
fn lock_held(
    client: &Client,
    key: &str,
    session: &str,
    index: u64,
) -> Result<(bool, u64), ClientError> {
    let (value, next) = blocking_get(
        client,
        Request::new("GET", kv_path(key)),
        index,
        BLOCK_WAIT_MS,
    )?;
    let held = Pair::list(&value)
        .first()
        .is_some_and(|pair| pair.session == session);
    Ok((held, next))
}

/// Releases the lock key and deletes it when nobody else holds it (consul's Unlock + Destroy).
pub fn lock_release(client: &Client, key: &str, session: &str) -> Result<(), LockError> {
    let request = Request::new("PUT", kv_path(key))
        .param("release", session)
        .param("flags", LOCK_FLAG_VALUE.to_string());
    client
        .send(request)
        .map_err(|e| format!("failed to release lock: {e}"))?;
    let (value, _) = blocking_get(client, Request::new("GET", kv_path(key)), 0, 0)
        .map_err(|e| format!("failed to read lock: {e}"))?;
    if let Some(pair) = Pair::list(&value).first() {
        if pair.session.is_empty() && pair.flags == LOCK_FLAG_VALUE {
            let request =
                Request::new("DELETE", kv_path(key)).param("cas", pair.modify_index.to_string());
            let _ = client.send(request);
        }
    }
    Ok(())
}

/// The semaphore's holder record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holders {
    /// The most holders at once.
    pub limit: u64,
    /// The holding sessions.
    pub sessions: Vec<String>,
    /// The record's ModifyIndex (0 when absent), for check-and-set.
    pub modify_index: u64,
}

/// Reads `<prefix>/.lock` from a recursive listing and prunes holders whose contender key is
/// no longer held by a session.
pub fn read_holders(pairs: &[Pair], prefix: &str) -> Result<Holders, LockError> {
    let lock_key = join_key(prefix, LOCK_KEY);
    let Some(record) = pairs.iter().find(|p| p.key == lock_key) else {
        return Ok(Holders::default());
    };
    if record.flags != SEMAPHORE_FLAG_VALUE {
        return Err("Existing key does not match semaphore use".to_string());
    }
    let value: Value = serde_json::from_slice(&record.value)
        .map_err(|e| format!("Failed to decode semaphore record: {e}"))?;
    let alive = |session: &str| {
        pairs
            .iter()
            .any(|p| p.key == join_key(prefix, session) && p.session == session)
    };
    let sessions = value["Holders"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(session, _)| session.clone())
        .filter(|session| alive(session))
        .collect();
    Ok(Holders {
        limit: value["Limit"].as_u64().unwrap_or(0),
        sessions,
        modify_index: record.modify_index,
    })
}

fn holders_body(limit: u64, sessions: &[String]) -> Vec<u8> {
    let holders: serde_json::Map<String, Value> = sessions
        .iter()
        .map(|s| (s.clone(), Value::Bool(true)))
        .collect();
    serde_json::json!({"Limit": limit, "Holders": holders})
        .to_string()
        .into_bytes()
}

fn list_prefix(
    client: &Client,
    prefix: &str,
    index: u64,
    wait_ms: u64,
) -> Result<(Vec<Pair>, u64), LockError> {
    let request = Request::new(
        "GET",
        kv_path(&format!("{}/", prefix.trim_end_matches('/'))),
    )
    .flag("recurse");
    let (value, next) = blocking_get(client, request, index, wait_ms)
        .map_err(|e| format!("failed to read prefix: {e}"))?;
    Ok((Pair::list(&value), next))
}

fn cas_holders(
    client: &Client,
    prefix: &str,
    holders: &Holders,
    sessions: &[String],
) -> Result<bool, LockError> {
    let request = Request::new("PUT", kv_path(&join_key(prefix, LOCK_KEY)))
        .param("cas", holders.modify_index.to_string())
        .param("flags", SEMAPHORE_FLAG_VALUE.to_string())
        .body(holders_body(holders.limit, sessions));
    let answer = client.send(request).and_then(|r| r.json());
    Ok(answer.map_err(|e| format!("failed to update semaphore: {e}"))? == Value::Bool(true))
}

/// Takes a semaphore slot for `session`; `Ok(false)` when the deadline passed or `stop` was set.
pub fn semaphore_acquire(
    client: &Client,
    prefix: &str,
    limit: u64,
    session: &str,
    deadline: Deadline,
    stop: &AtomicBool,
) -> Result<bool, LockError> {
    let contender = Request::new("PUT", kv_path(&join_key(prefix, session)))
        .param("acquire", session)
        .param("flags", SEMAPHORE_FLAG_VALUE.to_string());
    let made = client.send(contender).and_then(|r| r.json());
    if made.map_err(|e| format!("failed to make contender entry: {e}"))? != Value::Bool(true) {
        return Err("failed to make contender entry".to_string());
    }
    let outcome = semaphore_wait(client, prefix, limit, session, deadline, stop);
    if outcome != Ok(true) {
        // Not holding a slot: the contender key goes, as consul's semaphore does.
        let _ = client.send(Request::new("DELETE", kv_path(&join_key(prefix, session))));
    }
    outcome
}

fn semaphore_wait(
    client: &Client,
    prefix: &str,
    limit: u64,
    session: &str,
    deadline: Deadline,
    stop: &AtomicBool,
) -> Result<bool, LockError> {
    let mut index = 0;
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let Some(wait_ms) = deadline.wait_ms() else {
            return Ok(false);
        };
        let (pairs, next) = list_prefix(client, prefix, index, wait_ms)?;
        let mut holders = read_holders(&pairs, prefix)?;
        if holders.limit == 0 {
            holders.limit = limit;
        } else if holders.limit != limit {
            return Err(format!(
                "Semaphore limit conflict (lock: {}, local: {limit})",
                holders.limit
            ));
        }
        if holders.sessions.len() as u64 >= limit {
            index = next;
            continue;
        }
        let mut sessions = holders.sessions.clone();
        sessions.push(session.to_string());
        if cas_holders(client, prefix, &holders, &sessions)? {
            return Ok(true);
        }
        index = 0;
    }
}

/// Whether `session` is still among the semaphore's holders.
fn semaphore_held(
    client: &Client,
    prefix: &str,
    session: &str,
    index: u64,
) -> Result<(bool, u64), LockError> {
    let (pairs, next) = list_prefix(client, prefix, index, BLOCK_WAIT_MS)?;
    let holders = read_holders(&pairs, prefix)?;
    Ok((holders.sessions.iter().any(|s| s == session), next))
}

/// Gives the slot back, deletes the contender key, and deletes the record when nobody holds it.
pub fn semaphore_release(client: &Client, prefix: &str, session: &str) -> Result<(), LockError> {
    for _ in 0..32 {
        let (pairs, _) = list_prefix(client, prefix, 0, 0)?;
        let holders = read_holders(&pairs, prefix)?;
        let rest: Vec<String> = holders
            .sessions
            .iter()
            .filter(|s| *s != session)
            .cloned()
            .collect();
        if holders.modify_index == 0 || cas_holders(client, prefix, &holders, &rest)? {
            break;
        }
    }
    let contender = Request::new("DELETE", kv_path(&join_key(prefix, session)));
    client
        .send(contender)
        .map_err(|e| format!("failed to remove contender entry: {e}"))?;
    let (pairs, _) = list_prefix(client, prefix, 0, 0)?;
    let holders = read_holders(&pairs, prefix)?;
    if holders.modify_index != 0 && holders.sessions.is_empty() {
        let request = Request::new("DELETE", kv_path(&join_key(prefix, LOCK_KEY)))
            .param("cas", holders.modify_index.to_string());
        let _ = client.send(request);
    }
    Ok(())
}

/// What is held: a lock key or a semaphore slot.
#[derive(Clone, Debug)]
pub enum Held {
    /// The lock key `<prefix>/.lock`.
    Lock(String),
    /// A slot of the semaphore at this prefix.
    Semaphore(String),
}

/// Watches the lock or slot until it is lost (or `stop` is set) and then sets `lost`. Up to
/// `retries` failed reads are tolerated, one second apart.
pub fn monitor(
    client: &Client,
    held: &Held,
    session: &str,
    retries: u64,
    stop: &AtomicBool,
    lost: &AtomicBool,
) {
    let mut index = 0;
    let mut failures = 0;
    while !stop.load(Ordering::SeqCst) && !lost.load(Ordering::SeqCst) {
        let outcome = match held {
            Held::Lock(key) => lock_held(client, key, session, index).map_err(|e| e.to_string()),
            Held::Semaphore(prefix) => semaphore_held(client, prefix, session, index),
        };
        match outcome {
            Ok((true, next)) => {
                failures = 0;
                index = next;
            }
            Ok((false, _)) => break,
            Err(_) if failures < retries => {
                failures += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(_) => break,
        }
    }
    if !stop.load(Ordering::SeqCst) {
        lost.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(key: &str, session: &str, flags: u64, value: &str) -> Pair {
        Pair {
            key: key.into(),
            session: session.into(),
            flags,
            value: value.as_bytes().to_vec(),
            modify_index: 9,
            ..Pair::default()
        }
    }

    #[test]
    fn holders_without_a_held_contender_key_are_pruned() {
        let record = r#"{"Limit":2,"Holders":{"s1":true,"s2":true}}"#;
        let pairs = vec![
            pair("p/.lock", "", SEMAPHORE_FLAG_VALUE, record),
            pair("p/s1", "s1", SEMAPHORE_FLAG_VALUE, ""),
            pair("p/s2", "", SEMAPHORE_FLAG_VALUE, ""),
        ];
        let holders = read_holders(&pairs, "p").expect("read");
        assert_eq!(holders.limit, 2);
        assert_eq!(holders.sessions, vec!["s1".to_string()]);
        assert_eq!(holders.modify_index, 9);
        let wrong = vec![pair("p/.lock", "", 1, record)];
        assert!(read_holders(&wrong, "p").is_err());
        assert_eq!(join_key("p/", ".lock"), "p/.lock");
    }
}
