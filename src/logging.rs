//! Log lines in Consul's (hclog's) shape: `2024-05-04T10:11:12.345Z [INFO]  agent: message`,
//! written to stdout and filtered by level. Write errors (a closed stdout) are ignored.

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
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
        if level < level_override().unwrap_or(self.level) {
            return;
        }
        let line = format!(
            "{} {}{component}: {message}\n",
            utc_timestamp(SystemTime::now()),
            level.tag()
        );
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
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

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
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
