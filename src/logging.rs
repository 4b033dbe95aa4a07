//! Log lines in Consul's (hclog's) shape: `2024-05-04T10:11:12.345Z [INFO]  agent: message`,
//! written to stdout and filtered by level. Write errors (a closed stdout) are ignored.

use crate::api::duration::civil_from_days;
use std::io::Write;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// How much the agent logs; each level includes the ones after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Everything.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation (the default).
    Info,
    /// Problems that need attention.
    Warn,
    /// Failures.
    Error,
}

impl LogLevel {
    /// Parses a level the way Consul does (case-insensitive; `err` and `error` both mean Error).
    pub fn parse(text: &str) -> Option<LogLevel> {
        match text.to_ascii_lowercase().as_str() {
            "trace" => Some(LogLevel::Trace),
            "debug" => Some(LogLevel::Debug),
            "info" => Some(LogLevel::Info),
            "warn" => Some(LogLevel::Warn),
            "err" | "error" => Some(LogLevel::Error),
            _ => None,
        }
    }

    /// The lowercase name (`info`), as hclog's JSON lines name it.
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }

    /// The bracketed tag hclog prints, padded to a common width.
    fn tag(self) -> &'static str {
        match self {
            LogLevel::Trace => "[TRACE] ",
            LogLevel::Debug => "[DEBUG] ",
            LogLevel::Info => "[INFO]  ",
            LogLevel::Warn => "[WARN]  ",
            LogLevel::Error => "[ERROR] ",
        }
    }
}

/// A level set at runtime (SIGHUP reload) that overrides every logger's own; `u8::MAX` when unset.
static LEVEL_OVERRIDE: AtomicU8 = AtomicU8::new(u8::MAX);

/// Makes every logger of the process use `level` from now on (a reloaded `log_level`).
pub fn set_level_override(level: LogLevel) {
    LEVEL_OVERRIDE.store(level as u8, Ordering::Relaxed);
}

fn level_override() -> Option<LogLevel> {
    match LEVEL_OVERRIDE.load(Ordering::Relaxed) {
        0 => Some(LogLevel::Trace),
        1 => Some(LogLevel::Debug),
        2 => Some(LogLevel::Info),
        3 => Some(LogLevel::Warn),
        4 => Some(LogLevel::Error),
        _ => None,
    }
}

/// A level-filtered logger writing to stdout.
#[derive(Clone, Copy, Debug)]
pub struct Logger {
    level: LogLevel,
}

impl Logger {
    /// A logger printing `level` and above.
    pub fn new(level: LogLevel) -> Logger {
        Logger { level }
    }

    /// Logs `message` from `component` (e.g. `agent`) at `level`.
    pub fn log(&self, level: LogLevel, component: &str, message: &str) {
        let shown = level >= level_override().unwrap_or(self.level);
        let tapped = MONITOR_COUNT.load(Ordering::Relaxed) > 0;
        if !shown && !tapped {
            return;
        }
        let timestamp = utc_timestamp(SystemTime::now());
        let line = format!("{timestamp} {}{component}: {message}\n", level.tag());
        if shown {
            let _ = std::io::stdout().lock().write_all(line.as_bytes());
        }
        if tapped {
            publish(level, &line, || {
                json_line(level, component, message, &timestamp)
            });
        }
    }

    /// Logs at [`LogLevel::Info`].
    pub fn info(&self, component: &str, message: &str) {
        self.log(LogLevel::Info, component, message);
    }

    /// Logs at [`LogLevel::Debug`].
    pub fn debug(&self, component: &str, message: &str) {
        self.log(LogLevel::Debug, component, message);
    }

    /// Logs at [`LogLevel::Error`].
    pub fn error(&self, component: &str, message: &str) {
        self.log(LogLevel::Error, component, message);
    }
}

/// Log lines one monitor may have waiting before newer ones are dropped.
pub const MONITOR_QUEUE_LINES_MAX: usize = 1024;
/// Monitors (`GET /v1/agent/monitor`) attached at once, at most.
pub const MONITORS_MAX: usize = 64;

/// A monitor's end of the log: every line at its level or above, as text or as hclog JSON.
struct Tap {
    level: LogLevel,
    json: bool,
    sender: SyncSender<String>,
}

static MONITORS: Mutex<Vec<Tap>> = Mutex::new(Vec::new());
static MONITOR_COUNT: AtomicUsize = AtomicUsize::new(0);

/// Attaches a monitor receiving every log line of `level` and above from now on (whatever the agent's own
/// level), as text or JSON lines; `None` when [`MONITORS_MAX`] are attached. Dropping the receiver
/// detaches it (at the next line logged). A monitor that falls [`MONITOR_QUEUE_LINES_MAX`] lines behind
/// loses lines.
pub fn attach_monitor(level: LogLevel, json: bool) -> Option<Receiver<String>> {
    let mut taps = MONITORS.lock().unwrap_or_else(|e| e.into_inner());
    if taps.len() >= MONITORS_MAX {
        return None;
    }
    let (sender, receiver) = sync_channel(MONITOR_QUEUE_LINES_MAX);
    taps.push(Tap {
        level,
        json,
        sender,
    });
    MONITOR_COUNT.store(taps.len(), Ordering::Relaxed);
    Some(receiver)
}

fn publish(level: LogLevel, text: &str, json: impl Fn() -> String) {
    let mut taps = MONITORS.lock().unwrap_or_else(|e| e.into_inner());
    taps.retain(|tap| {
        if level < tap.level {
            return true;
        }
        let line = if tap.json { json() } else { text.to_string() };
        !matches!(
            tap.sender.try_send(line),
            Err(TrySendError::Disconnected(_))
        )
    });
    MONITOR_COUNT.store(taps.len(), Ordering::Relaxed);
}

/// hclog's JSON form of a line.
fn json_line(level: LogLevel, component: &str, message: &str, timestamp: &str) -> String {
    let value = serde_json::json!({
        "@level": level.name(),
        "@message": message,
        "@module": component,
        "@timestamp": timestamp,
    });
    format!("{value}\n")
}

/// RFC 3339 UTC with milliseconds, e.g. `2024-05-04T10:11:12.345Z`.
pub fn utc_timestamp(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let (days, second_of_day) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60,
        since_epoch.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_utc_rfc3339() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_709_251_199_123); // leap year, Feb 29
        assert_eq!(utc_timestamp(t), "2024-02-29T23:59:59.123Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_868_800); // 2000-03-01
        assert_eq!(utc_timestamp(t), "2000-03-01T00:00:00.000Z");
    }

    #[test]
    fn levels_parse_like_consul() {
        assert_eq!(LogLevel::parse("ERR"), Some(LogLevel::Error));
        assert_eq!(LogLevel::parse("Warn"), Some(LogLevel::Warn));
        assert_eq!(LogLevel::parse("verbose"), None);
        assert!(LogLevel::Debug < LogLevel::Info);
    }
}
