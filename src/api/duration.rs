//! Go duration strings, as Consul accepts them in `?wait=`, `TTL`, `LockDelay`, check intervals and config files:
//! `"15s"`, `"1m30s"`, `"0.001s"`, `"120000ms"`, `"1h2m3.5s"`, `"0"`. Units: ns, us (µs, μs), ms, s, m, h.

/// Nanoseconds per unit, by suffix.
const UNITS: [(&str, u64); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses a Go duration into signed nanoseconds. Errors read like Go's (`time: invalid duration "x"`), since
/// clients and operators know those texts.
pub fn parse_go_duration(text: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration \"{text}\"");
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total_ns: u128 = 0;
    while !rest.is_empty() {
        let (whole, after_whole) = split_digits(rest);
        let (fraction, after_fraction) = match after_whole.strip_prefix('.') {
            Some(f) => split_digits(f),
            None => ("", after_whole),
        };
        if whole.is_empty() && fraction.is_empty() {
            return Err(invalid());
        }
        let unit_len = after_fraction
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after_fraction.len());
        let unit = &after_fraction[..unit_len];
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration \"{text}\""));
        }
        let Some(&(_, scale)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(format!(
                "time: unknown unit \"{unit}\" in duration \"{text}\""
            ));
        };
        total_ns += component_ns(whole, fraction, scale).ok_or_else(invalid)?;
        if total_ns > i64::MAX as u128 + u128::from(negative) {
            return Err(invalid());
        }
        rest = &after_fraction[unit_len..];
    }
    let signed = if negative {
        -(total_ns as i128)
    } else {
        total_ns as i128
    };
    i64::try_from(signed).map_err(|_| invalid())
}

/// Parses a Go duration that must not be negative, in whole milliseconds (rounded down).
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let ns = parse_go_duration(text)?;
    u64::try_from(ns)
        .map(|ns| ns / 1_000_000)
        .map_err(|_| format!("negative duration \"{text}\""))
}

/// Formats milliseconds the way Go prints a `time.Duration` (`"15s"`, `"1m30s"`, `"500ms"`, `"0s"`), as Consul's
/// JSON shows TTLs and intervals.
pub fn format_go_duration_ms(ms: u64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let (hours, rest_ms) = (ms / 3_600_000, ms % 3_600_000);
    let (minutes, rest_ms) = (rest_ms / 60_000, rest_ms % 60_000);
    let seconds = match rest_ms % 1_000 {
        0 => format!("{}s", rest_ms / 1_000),
        frac => format!(
            "{}.{}s",
            rest_ms / 1_000,
            format!("{frac:03}").trim_end_matches('0')
        ),
    };
    match (hours, minutes) {
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}

fn split_digits(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s.split_at(end)
}

/// `whole.fraction` units of `scale` nanoseconds, truncated to whole nanoseconds; None on overflow.
fn component_ns(whole: &str, fraction: &str, scale: u64) -> Option<u128> {
    let whole_value: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut ns = whole_value.checked_mul(u128::from(scale))?;
    let mut place = u128::from(scale);
    for digit in fraction.bytes().take(30) {
        place /= 10;
        ns += u128::from(digit - b'0') * place;
    }
    Some(ns)
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
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

    const S: i64 = 1_000_000_000;

    #[test]
    fn parses_what_consul_clients_send() {
        for (text, ns) in [
            ("15s", 15 * S),
            ("1m30s", 90 * S),
            ("0.001s", 1_000_000),
            ("120000ms", 120 * S),
            ("9.99812345s", 9_998_123_450),
            ("1h2m3.5s", 3723 * S + S / 2),
            ("0", 0),
            ("300us", 300_000),
            ("300µs", 300_000),
            ("-1.5h", -5400 * S),
            (".5s", S / 2),
            ("1.s", S),
        ] {
            assert_eq!(parse_go_duration(text), Ok(ns), "{text}");
        }
    }

    #[test]
    fn refuses_what_go_refuses_with_go_texts() {
        assert_eq!(
            parse_go_duration("10"),
            Err("time: missing unit in duration \"10\"".to_string())
        );
        assert_eq!(
            parse_go_duration("10x"),
            Err("time: unknown unit \"x\" in duration \"10x\"".to_string())
        );
        for bad in ["", "s", ".s", "-", "1.2.3s", "9999999999999h", "abc"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_duration_ms("-1s").is_err());
        assert_eq!(parse_duration_ms("2.5s"), Ok(2_500));
    }

    #[test]
    fn formats_like_go() {
        for (ms, text) in [
            (0, "0s"),
            (500, "500ms"),
            (15_000, "15s"),
            (90_000, "1m30s"),
            (1_500, "1.5s"),
            (3_723_500, "1h2m3.5s"),
            (86_400_000, "24h0m0s"),
        ] {
            assert_eq!(format_go_duration_ms(ms), text);
            assert_eq!(parse_duration_ms(text), Ok(ms), "{text} round trip");
        }
    }
}
