//! SIGINT/SIGTERM handling without signal handlers: the signals are blocked in the main thread
//! before any other thread exists (threads inherit the mask), and one watcher thread takes them
//! with `sigwait`. So no executor thread is ever interrupted, and nothing polls.

use super::RuntimeError;
use std::io;

/// A signal that asks the agent to shut down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownSignal {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM (`kill`, systemd, container runtimes).
    Terminate,
    /// SIGHUP: reload the configuration (stops nothing).
    Hangup,
}

impl ShutdownSignal {
    /// The name Go's `os/signal` prints for this signal ("interrupt", "terminated"), which is what
    /// Consul shows in its `Caught signal` line.
    pub fn name(self) -> &'static str {
        match self {
            ShutdownSignal::Interrupt => "interrupt",
            ShutdownSignal::Terminate => "terminated",
            ShutdownSignal::Hangup => "hangup",
        }
    }

    /// The POSIX signal number.
    pub fn number(self) -> i32 {
        match self {
            ShutdownSignal::Interrupt => libc::SIGINT,
            ShutdownSignal::Terminate => libc::SIGTERM,
            ShutdownSignal::Hangup => libc::SIGHUP,
        }
    }

    fn from_number(number: i32) -> Option<ShutdownSignal> {
        match number {
            libc::SIGINT => Some(ShutdownSignal::Interrupt),
            libc::SIGTERM => Some(ShutdownSignal::Terminate),
            libc::SIGHUP => Some(ShutdownSignal::Hangup),
            _ => None,
        }
    }
}

/// Proof that SIGINT and SIGTERM are blocked in the calling thread (and so in every thread it
/// spawns afterwards); hand it to a watcher with [`ShutdownSignals::spawn_watcher`].
#[derive(Debug)]
pub struct ShutdownSignals {
    set: libc::sigset_t,
}

impl ShutdownSignals {
    /// Blocks SIGINT and SIGTERM in the calling thread with `pthread_sigmask`.
    ///
    /// Call this first thing in `main`, before any thread is spawned: a thread created earlier keeps
    /// its old mask and the kernel may deliver the signal there, running the default action
    /// (terminating the process) instead of a graceful shutdown.
    pub fn block() -> Result<ShutdownSignals, RuntimeError> {
        // SAFETY: sigset_t is plain data; sigemptyset initializes it before any other use.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid, writable sigset_t and the signal numbers are valid.
        let rc = unsafe {
            let mut rc = libc::sigemptyset(&mut set);
            if rc == 0 {
                rc = libc::sigaddset(&mut set, libc::SIGINT);
            }
            if rc == 0 {
                rc = libc::sigaddset(&mut set, libc::SIGTERM);
            }
            if rc == 0 {
                rc = libc::sigaddset(&mut set, libc::SIGHUP);
            }
            rc
        };
        if rc != 0 {
            return Err(RuntimeError::Signals(io::Error::last_os_error()));
        }
        // SAFETY: `set` is initialized; a null old-set pointer is allowed.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(RuntimeError::Signals(io::Error::from_raw_os_error(rc)));
        }
        Ok(ShutdownSignals { set })
    }

    /// Spawns the thread `cairn-signals`, which waits for SIGINT/SIGTERM with `sigwait` and calls
    /// `on_signal` for each one; the thread ends when `on_signal` returns false. It blocks in the
    /// kernel between signals, so it costs nothing while idle; at process exit it is simply
    /// discarded.
    pub fn spawn_watcher<F>(self, mut on_signal: F) -> Result<(), RuntimeError>
    where
        F: FnMut(ShutdownSignal) -> bool + Send + 'static,
    {
        let set = self.set;
        std::thread::Builder::new()
            .name("cairn-signals".to_string())
            .spawn(move || loop {
                let mut number: libc::c_int = 0;
                // SAFETY: `set` is an initialized sigset_t whose signals are blocked in this thread
                // (inherited from the thread that called `block`), as sigwait requires.
                let rc = unsafe { libc::sigwait(&set, &mut number) };
                if rc != 0 {
                    // sigwait only fails for an invalid set, which `block` rules out; stop rather
                    // than spin.
                    return;
                }
                if let Some(signal) = ShutdownSignal::from_number(number) {
                    if !on_signal(signal) {
                        return;
                    }
                }
            })
            .map(drop)
            .map_err(|source| RuntimeError::ThreadSpawn {
                name: "cairn-signals".to_string(),
                source,
            })
    }
}
