//! `dig` (Debian dnsutils, installed by tests/run.sh) driven by the DNS e2e tests, and readers of its output.

use std::net::IpAddr;
use std::process::Command;

/// Runs `dig @<server> -p <port> +time=5 +tries=1 <args>` and returns its output.
pub fn dig_at(server: IpAddr, port: u16, args: &[&str]) -> String {
    let out = Command::new("dig")
        .arg(format!("@{server}"))
        .arg("-p")
        .arg(port.to_string())
        .args(["+time=5", "+tries=1"])
        .args(args)
        .output()
        .expect("dig runs (tests/run.sh installs dnsutils)");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The `+short` lines of [`dig_at`], sorted.
pub fn short_at(server: IpAddr, port: u16, args: &[&str]) -> Vec<String> {
    let mut all = vec!["+short"];
    all.extend_from_slice(args);
    let mut lines: Vec<String> = dig_at(server, port, &all)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// The `status:` of a dig output (`NOERROR`, `NXDOMAIN`...), `<none>` without one.
pub fn status(output: &str) -> &str {
    output
        .split("status: ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or("<none>")
}

/// The `ANSWER:` count of a dig output (`usize::MAX` without one).
pub fn answer_count(output: &str) -> usize {
    output
        .split("ANSWER: ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX)
}

/// The header flags of a dig output (`qr aa rd`...).
pub fn flags(output: &str) -> String {
    output
        .split(";; flags: ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap_or("")
        .to_string()
}
