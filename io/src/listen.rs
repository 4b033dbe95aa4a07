//! What the HTTP server and the transport listener share: the listening socket (exclusive
//! unless `SO_REUSEPORT` is asked for, taken out of the listening set with `shutdown(2)` on
//! stop), the "owner's shutdown or own stop" signal, task spawning, and the count of live
//! connection tasks that [`wait_drained`] waits on.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::os::unix::io::{FromRawFd, IntoRawFd, RawFd};
use std::rc::Rc;
use std::task::{Poll, Waker};

use futures_lite::future::or;
use glommio::net::TcpListener;
use glommio::{Task, TaskQueueHandle};

use crate::runtime::Shutdown;

/// A bound, listening TCP socket owned by glommio, with its descriptor for [`stop_listening`].
#[derive(Debug)]
pub(crate) struct ListeningSocket {
    /// The bound address (with the actual port when bound to port 0).
    pub(crate) local_addr: SocketAddr,
    /// The listening socket's descriptor, valid while `socket` is alive.
    pub(crate) fd: RawFd,
    /// Owns the listening socket (and so `fd`).
    pub(crate) socket: Rc<TcpListener>,
}

impl ListeningSocket {
    /// Binds and listens on `addr` with `backlog`: `SO_REUSEADDR` always (a restarted agent can
    /// bind while old connections linger in `TIME_WAIT`), `SO_REUSEPORT` only when asked, so
    /// that by default an address another socket listens on is an `AddrInUse` error (glommio's
    /// own `bind` would silently share it).
    pub(crate) fn bind(
        addr: SocketAddr,
        reuse_port: bool,
        backlog: i32,
    ) -> io::Result<ListeningSocket> {
        let socket = crate::sockets::listening_socket(addr, reuse_port, backlog)?;
        let local_addr = socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("the listening socket has no IP address"))?;
        let fd = socket.into_raw_fd();
        // SAFETY: `fd` is a bound, listening TCP socket that nothing else owns; glommio takes it
        // over and closes it when the listener is dropped.
        let socket = Rc::new(unsafe { TcpListener::from_raw_fd(fd) });
        Ok(ListeningSocket {
            local_addr,
            fd,
            socket,
        })
    }

    /// Triggers the owner's own stop and stops listening now rather than when the accept task
    /// next runs.
    pub(crate) fn stop(&self, stops: &Stops) {
        stops.local.trigger();
        // `self.fd` is valid: `self.socket` owns it and is alive.
        stop_listening(self.fd);
    }
}

/// A listening handle's running part: the socket, its stop signal and its accept task. Dropping
/// it stops listening at once and cancels the accept task; connection tasks end when they next
/// run, woken by the stop signal.
#[derive(Debug)]
pub(crate) struct Accepting {
    pub(crate) listening: ListeningSocket,
    pub(crate) stops: Stops,
    pub(crate) task: Option<Task<()>>,
}

impl Accepting {
    /// Stops accepting, closes every connection, and returns once the accept task has ended and
    /// no connection task counted in `shared` is left.
    pub(crate) async fn close(&mut self, shared: &impl ConnectionCounts) {
        self.listening.stop(&self.stops);
        if let Some(task) = self.task.take() {
            task.await;
        }
        wait_drained(shared).await;
    }
}

impl Drop for Accepting {
    fn drop(&mut self) {
        self.listening.stop(&self.stops);
        // Dropping the task handle cancels the accept task.
        self.task.take();
    }
}

/// Takes a listening socket out of the listening set: new connections are refused (or go to
/// another socket bound to the same port) and a pending accept fails. `fd` must be an open
/// socket. The result does not matter (the socket may already be shut down).
pub(crate) fn stop_listening(fd: RawFd) {
    // SAFETY: the callers keep the socket that owns `fd` alive; shutdown(2) touches no memory.
    unsafe {
        libc::shutdown(fd, libc::SHUT_RDWR);
    }
}

/// The shutdown handed in by the owner plus the handle's own stop signal.
#[derive(Clone, Debug)]
pub(crate) struct Stops {
    pub(crate) global: Shutdown,
    pub(crate) local: Shutdown,
}

impl Stops {
    pub(crate) fn new(global: &Shutdown) -> Stops {
        Stops {
            global: global.clone(),
            local: Shutdown::new(),
        }
    }

    pub(crate) fn is_triggered(&self) -> bool {
        self.global.is_triggered() || self.local.is_triggered()
    }

    pub(crate) async fn wait(&self) {
        or(self.global.wait(), self.local.wait()).await
    }
}

/// Runs `work` until it finishes or a stop is triggered, whichever comes first.
pub(crate) async fn until_stopped(stops: Stops, work: impl Future<Output = ()>) {
    or(stops.wait(), work).await
}

/// Spawns `future` on the current executor, in `task_queue` when one is given; the error is
/// glommio's, as text.
pub(crate) fn spawn(
    task_queue: Option<TaskQueueHandle>,
    future: impl Future<Output = ()> + 'static,
) -> Result<Task<()>, String> {
    match task_queue {
        Some(queue) => glommio::spawn_local_into(future, queue).map_err(|e| e.to_string()),
        None => Ok(glommio::spawn_local(future)),
    }
}

/// The state a listening handle shares with its connection tasks: the connection counters of
/// its stats, and the waker of a `close` waiting for the last connection to end.
pub(crate) trait ConnectionCounts {
    /// Runs `f` on the `connections_accepted` and `connections_active` counters.
    fn counts<R>(&self, f: impl FnOnce(&mut u64, &mut usize) -> R) -> R;

    /// Woken when the last connection task ends (for `close`).
    fn drained(&self) -> &RefCell<Option<Waker>>;
}

/// Counts a connection task as active for exactly as long as it exists, even when it is
/// cancelled.
pub(crate) struct ConnectionGuard<S: ConnectionCounts> {
    shared: Rc<S>,
}

impl<S: ConnectionCounts> ConnectionGuard<S> {
    pub(crate) fn new(shared: Rc<S>) -> ConnectionGuard<S> {
        shared.counts(|accepted, active| {
            *accepted += 1;
            *active += 1;
        });
        ConnectionGuard { shared }
    }
}

impl<S: ConnectionCounts> Drop for ConnectionGuard<S> {
    fn drop(&mut self) {
        let remaining = self.shared.counts(|_, active| {
            *active -= 1;
            *active
        });
        if remaining == 0 {
            let waker = self.shared.drained().borrow_mut().take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

/// Returns once no connection task is left.
pub(crate) async fn wait_drained(shared: &impl ConnectionCounts) {
    poll_fn(|cx| {
        if shared.counts(|_, active| *active) == 0 {
            return Poll::Ready(());
        }
        *shared.drained().borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    })
    .await;
}
