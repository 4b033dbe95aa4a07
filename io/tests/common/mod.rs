//! The harness shared by the integration tests: each test runs on its own small glommio
//! executor, one at a time, with a deadline on the whole test and on every wait in it.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use glommio::timer::{sleep, timeout};
use glommio::{LocalExecutorBuilder, Placement};

/// Every test gives up after this long, whatever it waits for.
pub const TEST_TIMEOUT_MS: u64 = 60_000;

/// Bound on any single wait inside a test.
pub const WAIT_TIMEOUT_MS: u64 = 10_000;

/// One executor at a time: each registers io_memory against RLIMIT_MEMLOCK (8 MiB here).
static EXECUTOR_LOCK: Mutex<()> = Mutex::new(());

/// Runs `test` on a fresh executor named `name`, failing if it takes over [`TEST_TIMEOUT_MS`].
pub fn run<F, Fut>(name: &str, test: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let _serial = EXECUTOR_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(256 << 10)
        .name(name)
        .spawn(move || async move {
            timeout(Duration::from_millis(TEST_TIMEOUT_MS), async move {
                test().await;
                Ok(())
            })
            .await
            .expect("the test did not finish in time");
        })
        .expect("spawn the executor")
        .join()
        .expect("the executor failed");
}

pub fn loopback_any_port() -> SocketAddr {
    "127.0.0.1:0".parse().expect("address")
}

/// Polls `condition` every few milliseconds until it holds or the deadline passes.
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_millis(WAIT_TIMEOUT_MS);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        sleep(Duration::from_millis(2)).await;
    }
}
