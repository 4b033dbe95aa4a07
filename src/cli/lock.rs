//! `lock [options] prefix child...`: holds a lock (or, with `-n` > 1, a semaphore slot) while a
//! child process runs with `CONSUL_LOCK_HELD=true`; the child gets SIGTERM, then SIGKILL after
//! [`KILL_GRACE_MS`], when the lock is lost or this command is interrupted.

use super::common::{self, boolean, string, Client, Ctx};
use super::lock_kv::{self, Deadline, Held, Session};
use crate::config::flags::{FlagSpec, ParsedFlags};
use crate::ui;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Time between SIGTERM and SIGKILL for a child whose lock was lost.
pub const KILL_GRACE_MS: u64 = 5_000;
/// How often the child, the lock and signals are checked.
const POLL_MS: u64 = 20;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Routes SIGINT and SIGTERM to a flag checked by the command's loops.
pub fn catch_interrupts() {
    let handler: extern "C" fn(libc::c_int) = on_signal;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
}

/// Whether SIGINT or SIGTERM arrived since [`catch_interrupts`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

const LOCK_FLAGS: &[FlagSpec] = &[
    boolean(
        "child-exit-code",
        "Exit 2 if the child process exited with an error if this is true, otherwise this \
         doesn't propagate an error from the child. The default value is false.",
    ),
    string(
        "n",
        "Optional limit on the number of concurrent lock holders. The underlying implementation \
         switches from a lock to a semaphore when the value is greater than 1. The default \
         value is 1.",
    ),
    string(
        "monitor-retry",
        "Number of times to retry if the agent returns an error while monitoring the lock. The \
         default value is 3, with a 1s wait between retries. Set this value to 0 to disable \
         retries.",
    ),
    string(
        "name",
        "Optional name to associate with the lock session. It not provided, one is generated \
         based on the provided child command.",
    ),
    boolean("pass-stdin", "Pass stdin to the child process."),
    boolean(
        "shell",
        "Use a shell to run the command (can set a custom shell via the SHELL environment \
         variable). The default value is true.",
    ),
    string(
        "timeout",
        "Maximum amount of time to wait to acquire the lock, specified as a duration like \"1s\" \
         or \"3h\". The default value is 0.",
    ),
    boolean("verbose", "Enable verbose (debugging) output."),
    string("try", "DEPRECATED. Use -timeout instead."),
];

const LOCK_HELP: &str = "Usage: {p} lock [options] prefix child...

  Acquires a lock or semaphore at a given path, and invokes a child process
  when successful. The child process can assume the lock is held while it
  executes. If the lock is lost or communication is disrupted the child
  process will be sent a SIGTERM signal and given time to gracefully exit.
  After the grace period expires the process will be hard terminated.

  When -n=1, only a single lock holder or leader exists providing mutual
  exclusion. Setting a higher value switches to a semaphore allowing multiple
  holders to coordinate.

  The prefix provided must have write privileges.";

struct Options {
    limit: u64,
    monitor_retry: u64,
    timeout_ms: u64,
    name: String,
    prefix: String,
    child: Vec<String>,
    shell: bool,
    pass_stdin: bool,
    child_exit_code: bool,
    verbose: bool,
}

fn signed_flag(parsed: &ParsedFlags, name: &str, default: i64, help: &str) -> Result<i64, i32> {
    match parsed.string(name) {
        None => Ok(default),
        Some(text) => text.parse().map_err(|_| {
            ui::error(&format!(
                "invalid value {text:?} for flag -{name}: parse error"
            ));
            ui::error(help);
            1
        }),
    }
}

fn timeout_ms(parsed: &ParsedFlags, help: &str) -> Result<u64, i32> {
    // -timeout and its deprecated alias -try set the same value; the last one given wins.
    let last = parsed
        .values()
        .filter(|(name, _)| *name == "timeout" || *name == "try")
        .last()
        .map(|(name, _)| name);
    let Some(name) = last else { return Ok(0) };
    let Some(text) = parsed.string(name) else {
        return Ok(0);
    };
    if text.starts_with('-') {
        ui::error("Timeout must be positive");
        return Err(1);
    }
    Ok(common::duration_flag(parsed, name, help)?.unwrap_or(0))
}

fn options(parsed: &ParsedFlags, help: &str) -> Result<Options, i32> {
    let limit = signed_flag(parsed, "n", 1, help)?;
    if limit <= 0 {
        ui::error("Lock holder limit must be positive");
        return Err(1);
    }
    if parsed.rest.len() < 2 {
        ui::error("Key prefix and child command must be specified");
        return Err(1);
    }
    let prefix = parsed.rest[0].trim_start_matches('/').to_string();
    let child = parsed.rest[1..].to_vec();
    let timeout_ms = timeout_ms(parsed, help)?;
    let monitor_retry = signed_flag(parsed, "monitor-retry", 3, help)?;
    if monitor_retry < 0 {
        ui::error("Number for 'monitor-retry' must be >= 0");
        return Err(1);
    }
    let name = match parsed.string("name").filter(|n| !n.is_empty()) {
        Some(name) => name.to_string(),
        None => format!("Consul lock for '{}' at '{prefix}'", child.join(" ")),
    };
    Ok(Options {
        limit: limit as u64,
        monitor_retry: monitor_retry as u64,
        timeout_ms,
        name,
        prefix,
        child,
        shell: parsed.bool("shell").unwrap_or(true),
        pass_stdin: parsed.bool("pass-stdin").unwrap_or(false),
        child_exit_code: parsed.bool("child-exit-code").unwrap_or(false),
        verbose: parsed.bool("verbose").unwrap_or(false),
    })
}

/// Runs `lock`.
pub fn run(ctx: Ctx, args: &[String]) -> i32 {
    let help = LOCK_HELP.replace("{p}", ctx.program);
    let parsed = match common::parse(LOCK_FLAGS, true, &help, args) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let options = match options(&parsed, &help) {
        Ok(options) => options,
        Err(code) => return code,
    };
    let client = match common::reachable_client(&parsed) {
        Ok(client) => client,
        Err(code) => return code,
    };
    catch_interrupts();
    let lost = Arc::new(AtomicBool::new(false));
    let session = match Session::create(&client, &options.name, lost.clone()) {
        Ok(session) => session,
        Err(why) => {
            ui::error(&format!("Lock setup failed: {why}"));
            return 1;
        }
    };
    let code = with_session(&client, &options, &session.id, &lost);
    session.destroy(&client);
    code
}

fn verbose(options: &Options, line: &str) {
    if options.verbose {
        ui::output(line);
    }
}

fn held_of(options: &Options) -> Held {
    if options.limit == 1 {
        Held::Lock(lock_kv::join_key(&options.prefix, lock_kv::LOCK_KEY))
    } else {
        Held::Semaphore(options.prefix.clone())
    }
}

fn acquire(
    client: &Client,
    options: &Options,
    session: &str,
    stop: &AtomicBool,
) -> Result<bool, String> {
    let deadline = Deadline {
        until: (options.timeout_ms > 0)
            .then(|| Instant::now() + Duration::from_millis(options.timeout_ms)),
    };
    match held_of(options) {
        Held::Lock(key) => {
            verbose(options, &format!("Setting up lock at path: {key}"));
            lock_kv::lock_acquire(client, &key, session, deadline, stop)
        }
        Held::Semaphore(prefix) => {
            verbose(
                options,
                &format!(
                    "Setting up semaphore (limit {}) at prefix: {prefix}",
                    options.limit
                ),
            );
            lock_kv::semaphore_acquire(client, &prefix, options.limit, session, deadline, stop)
        }
    }
}

fn release(client: &Client, options: &Options, session: &str) -> Result<(), String> {
    match held_of(options) {
        Held::Lock(key) => lock_kv::lock_release(client, &key, session),
        Held::Semaphore(prefix) => lock_kv::semaphore_release(client, &prefix, session),
    }
}

/// Acquires, runs the child while the lock is held, releases; returns the exit code.
fn with_session(client: &Client, options: &Options, session: &str, lost: &Arc<AtomicBool>) -> i32 {
    verbose(options, "Attempting lock acquisition");
    let stop = Arc::new(AtomicBool::new(false));
    let interrupt_watch = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if interrupted() {
                    stop.store(true, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(POLL_MS));
            }
        })
    };
    let acquired = acquire(client, options, session, &stop);
    let code = match acquired {
        Err(why) => {
            ui::error(&format!("Lock acquisition failed: {why}"));
            1
        }
        Ok(false) => {
            ui::error("Shutdown triggered or timeout during lock acquisition");
            1
        }
        Ok(true) => run_holding(client, options, session, lost),
    };
    stop.store(true, Ordering::SeqCst);
    let _ = interrupt_watch.join();
    code
}

fn run_holding(client: &Client, options: &Options, session: &str, lost: &Arc<AtomicBool>) -> i32 {
    let stop_monitor = Arc::new(AtomicBool::new(false));
    let monitor = {
        let (client, held, session) = (client.clone(), held_of(options), session.to_string());
        let (stop, lost, retries) = (stop_monitor.clone(), lost.clone(), options.monitor_retry);
        std::thread::spawn(move || {
            lock_kv::monitor(&client, &held, &session, retries, &stop, &lost)
        })
    };
    let child_failed = supervise_child(options, lost);
    stop_monitor.store(true, Ordering::SeqCst);
    // The monitor may be in a blocking query; it notices the flag when that returns, and the
    // process does not wait for it.
    drop(monitor);
    if let Err(why) = release(client, options, session) {
        ui::error(&format!("Lock release failed: {why}"));
        return 1;
    }
    verbose(options, "Cleanup succeeded");
    if options.child_exit_code && child_failed {
        2
    } else {
        0
    }
}

/// Starts the child and waits for it, killing it when the lock is lost or on SIGINT/SIGTERM;
/// returns whether it failed.
fn supervise_child(options: &Options, lost: &AtomicBool) -> bool {
    verbose(options, "Starting handler");
    let mut child = match spawn_child(options) {
        Ok(child) => child,
        Err(error) => {
            ui::error(&format!("Error starting handler: {error}"));
            return true;
        }
    };
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return report_exit(status),
            Ok(None) => {}
            Err(error) => {
                ui::error(&format!("Error running handler: {error}"));
                return true;
            }
        }
        if lost.load(Ordering::SeqCst) || interrupted() {
            verbose(options, "Lock lost, killing child");
            kill_child(&mut child, options);
            return true;
        }
        std::thread::sleep(Duration::from_millis(POLL_MS));
    }
}

fn report_exit(status: std::process::ExitStatus) -> bool {
    if status.success() {
        return false;
    }
    ui::error(&format!("Error running handler: {}", exit_text(status)));
    true
}

/// Go's text for a failed process (`exit status 3`, `signal: killed`).
pub fn exit_text(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(libc::SIGKILL)) => "signal: killed".to_string(),
        (None, Some(libc::SIGTERM)) => "signal: terminated".to_string(),
        (None, Some(signal)) => format!("signal: {signal}"),
        (None, None) => "exit status unknown".to_string(),
    }
}

/// The command for a child: `$SHELL -c "<args joined>"` (default `/bin/sh`) or the args as is.
pub fn child_command(args: &[String], shell: bool) -> Command {
    if shell {
        let shell = std::env::var("SHELL")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "/bin/sh".to_string());
        let mut command = Command::new(shell);
        command.arg("-c").arg(args.join(" "));
        command
    } else {
        let mut command = Command::new(&args[0]);
        command.args(&args[1..]);
        command
    }
}

fn spawn_child(options: &Options) -> std::io::Result<Child> {
    let mut command = child_command(&options.child, options.shell);
    command.env("CONSUL_LOCK_HELD", "true");
    if !options.pass_stdin {
        command.stdin(Stdio::null());
    }
    command.spawn()
}

fn kill_child(child: &mut Child, options: &Options) {
    let pid = child.id() as libc::pid_t;
    verbose(options, &format!("Terminating child pid {pid}"));
    // SAFETY: signalling our own child by its pid; it has not been reaped yet.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_millis(KILL_GRACE_MS);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            verbose(options, "Child terminated");
            return;
        }
        std::thread::sleep(Duration::from_millis(POLL_MS));
    }
    verbose(options, &format!("Killing child pid {pid}"));
    let _ = child.kill();
    let _ = child.wait();
}
