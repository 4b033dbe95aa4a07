//! Helpers of the gossip e2e tests: a client agent's arguments, the member list as (name, status) pairs, and
//! the check that Debian's `serf` is installed.

use super::Agent;
use std::net::IpAddr;
use std::path::Path;

/// The arguments of a client agent `name` on `ip` (HTTP on `http_port`, Serf LAN on `serf_port`, no WAN, no
/// DNS), keeping its data under `dir/name`.
pub fn client_args(
    name: &str,
    ip: IpAddr,
    http_port: u16,
    serf_port: u16,
    dir: &Path,
) -> Vec<String> {
    vec![
        format!("-node={name}"),
        format!("-data-dir={}", dir.join(name).display()),
        format!("-bind={ip}"),
        format!("-client={ip}"),
        format!("-http-port={http_port}"),
        format!("-serf-lan-port={serf_port}"),
        "-serf-wan-port=-1".into(),
        "-dns-port=-1".into(),
        "-log-level=debug".into(),
    ]
}

/// The members `target` (`/v1/agent/members`, `?wan`) lists, as (name, status) pairs sorted by name.
pub fn member_statuses(agent: &Agent, target: &str) -> Vec<(String, u64)> {
    let r = agent.call("GET", target, b"");
    assert_eq!(r.status, 200, "{target}: {}", r.text());
    let mut members: Vec<(String, u64)> = r
        .json()
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            (
                m["Name"].as_str().unwrap_or_default().to_string(),
                m["Status"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    members.sort();
    members
}

/// Fails (never skips) when `serf` is missing: `tests/run.sh` installs it.
pub fn require_serf() {
    let found = std::process::Command::new("serf")
        .arg("version")
        .output()
        .is_ok();
    assert!(
        found,
        "serf is not installed: apt-get install -y serf (tests/run.sh does)"
    );
}
