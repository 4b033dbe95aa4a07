//! The shutdown handle: one flag shared by every executor, set once by the main thread.
//!
//! Executors await [`Shutdown::wait`]; [`Shutdown::trigger`] sets the flag and wakes every
//! registered waker from whatever thread calls it (glommio routes a foreign wakeup to the
//! owning executor through its eventfd, so a parked executor wakes at once; nothing polls).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// A cloneable, thread-safe shutdown signal.
///
/// Every clone observes the same flag. Triggering is idempotent and never blocks for longer than
/// it takes to wake the registered tasks.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    triggered: AtomicBool,
    waiters: Mutex<Waiters>,
}

#[derive(Debug, Default)]
struct Waiters {
    next_id: u64,
    wakers: Vec<(u64, Waker)>,
}

impl Inner {
    fn lock_waiters(&self) -> MutexGuard<'_, Waiters> {
        // The critical sections below cannot leave `Waiters` inconsistent, so a poisoned lock
        // (a panic elsewhere while holding it) is still safe to use.
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Shutdown {
    /// Creates a handle that has not been triggered.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Requests shutdown: sets the flag and wakes every task waiting in [`Shutdown::wait`].
    /// Safe to call from any thread, any number of times.
    pub fn trigger(&self) {
        self.inner.triggered.store(true, Ordering::Release);
        let wakers = std::mem::take(&mut self.inner.lock_waiters().wakers);
        for (_, waker) in wakers {
            waker.wake();
        }
    }

    /// Returns true once [`Shutdown::trigger`] has been called on any clone.
    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::Acquire)
    }

    /// A future that completes once shutdown is triggered (at once if it already was).
    pub fn wait(&self) -> ShutdownWait {
        ShutdownWait {
            inner: Arc::clone(&self.inner),
            id: None,
        }
    }
}

/// The future returned by [`Shutdown::wait`]. Dropping it deregisters its waker.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct ShutdownWait {
    inner: Arc<Inner>,
    id: Option<u64>,
}

impl ShutdownWait {
    fn deregister(&mut self) {
        if let Some(id) = self.id.take() {
            self.inner
                .lock_waiters()
                .wakers
                .retain(|(other, _)| *other != id);
        }
    }
}

impl Future for ShutdownWait {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.inner.triggered.load(Ordering::Acquire) {
            self.deregister();
            return Poll::Ready(());
        }
        let inner = Arc::clone(&self.inner);
        let mut waiters = inner.lock_waiters();
        // Re-check under the lock: `trigger` sets the flag before it takes the lock to drain the
        // wakers, so either we see the flag here or our waker is drained and woken.
        if inner.triggered.load(Ordering::Acquire) {
            drop(waiters);
            self.deregister();
            return Poll::Ready(());
        }
        match self.id {
            Some(id) => {
                if let Some((_, waker)) = waiters.wakers.iter_mut().find(|(other, _)| *other == id)
                {
                    if !waker.will_wake(cx.waker()) {
                        waker.clone_from(cx.waker());
                    }
                } else {
                    waiters.wakers.push((id, cx.waker().clone()));
                }
            }
            None => {
                let id = waiters.next_id;
                waiters.next_id += 1;
                waiters.wakers.push((id, cx.waker().clone()));
                self.id = Some(id);
            }
        }
        Poll::Pending
    }
}

impl Drop for ShutdownWait {
    fn drop(&mut self) {
        self.deregister();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Wake;

    struct CountingWaker(std::sync::atomic::AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn wait_completes_after_trigger_and_wakes_the_waiter() {
        let shutdown = Shutdown::new();
        let counter = Arc::new(CountingWaker(Default::default()));
        let waker = Waker::from(Arc::clone(&counter));
        let mut cx = Context::from_waker(&waker);
        let mut wait = shutdown.wait();
        assert_eq!(Pin::new(&mut wait).poll(&mut cx), Poll::Pending);
        assert_eq!(Pin::new(&mut wait).poll(&mut cx), Poll::Pending);
        assert_eq!(shutdown.inner.lock_waiters().wakers.len(), 1);
        let other = shutdown.clone();
        std::thread::spawn(move || other.trigger())
            .join()
            .expect("trigger thread");
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert!(shutdown.is_triggered());
        assert_eq!(Pin::new(&mut wait).poll(&mut cx), Poll::Ready(()));
        // A wait created after the trigger completes at once.
        assert_eq!(
            Pin::new(&mut shutdown.wait()).poll(&mut cx),
            Poll::Ready(())
        );
    }

    #[test]
    fn dropping_a_wait_deregisters_it() {
        let shutdown = Shutdown::new();
        let waker = Waker::from(Arc::new(CountingWaker(Default::default())));
        let mut cx = Context::from_waker(&waker);
        let mut wait = shutdown.wait();
        assert_eq!(Pin::new(&mut wait).poll(&mut cx), Poll::Pending);
        drop(wait);
        assert!(shutdown.inner.lock_waiters().wakers.is_empty());
    }
}
