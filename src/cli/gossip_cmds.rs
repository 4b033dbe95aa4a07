//! The gossip commands, over the agent's HTTP API: `members` (`/v1/agent/members`), `join`
//! (`/v1/agent/join/:addr`), `force-leave` (`/v1/agent/force-leave/:node`) and `event`
//! (`/v1/event/fire/:name`).

use super::common::{self, boolean, string, Ctx};
use super::http_client::{encode_path, Request};
use crate::config::flags::FlagSpec;
use crate::ui;
use regex::Regex;
use serde_json::Value;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The `-segment` value that means every segment (the flag's default).
const ALL_SEGMENTS: &str = "_all";
/// The `role` tag of a server member.
const ROLE_SERVER: &str = "consul";
/// The `role` tag of a client member.
const ROLE_CLIENT: &str = "node";

const MEMBERS_FLAGS: &[FlagSpec] = &[
    boolean("detailed", "Provides detailed information about nodes."),
    boolean(
        "wan",
        "If the agent is in server mode, this can be used to return the other peers in the WAN \
         pool.",
    ),
    string(
        "status",
        "If provided, output is filtered to only nodes matching the regular expression for \
         status. The default is \".*\".",
    ),
    string(
        "segment",
        "(Enterprise-only) If provided, output is filtered to only nodes in the given segment. \
         The default is all segments.",
    ),
    string("filter", "Filter to use with the request"),
    string(
        "partition",
        "(Enterprise-only) Specifies the admin partition to query.",
    ),
];

const MEMBERS_HELP: &str = "Usage: {p} members [options]

  Outputs the members of a running Consul agent.";

/// One member of `/v1/agent/members`, with the tags the table shows filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Member {
    name: String,
    addr: String,
    port: u64,
    status: u64,
    tags: BTreeMap<String, String>,
}

impl Member {
    fn from_json(value: &Value) -> Member {
        let tags = value["Tags"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                (k.clone(), text)
            })
            .collect();
        Member {
            name: common::text(value, "Name").to_string(),
            addr: common::text(value, "Addr").to_string(),
            port: value["Port"].as_u64().unwrap_or(0),
            status: value["Status"].as_u64().unwrap_or(0),
            tags,
        }
    }

    fn tag(&self, key: &str) -> &str {
        self.tags.get(key).map_or("", String::as_str)
    }

    /// The address as Go prints a TCP address: `ip:port`, `[ip6]:port`, `:port` without an IP.
    fn address(&self) -> String {
        match self.addr.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => match ip.to_ipv4_mapped() {
                Some(v4) => format!("{v4}:{}", self.port),
                None => format!("[{ip}]:{}", self.port),
            },
            Ok(IpAddr::V4(ip)) => format!("{ip}:{}", self.port),
            Err(_) => format!(":{}", self.port),
        }
    }

    /// Fills in the partition (`default`) and the segment as consul shows them: `<all>` for the
    /// servers when every segment is listed, `<default>` for a member without one.
    fn decorate(&mut self, segment_flag: &str) {
        let partition = self.tags.entry("ap".to_string()).or_default();
        if partition.is_empty() {
            *partition = "default".to_string();
        }
        if is_default_partition(self.tag("ap")) {
            if segment_flag == ALL_SEGMENTS && self.tag("role") == ROLE_SERVER {
                self.tags.insert("segment".into(), "<all>".into());
            } else if self.tag("segment").is_empty() {
                self.tags.insert("segment".into(), "<default>".into());
            }
        } else {
            self.tags.insert("segment".into(), String::new());
        }
    }
}

fn is_default_partition(partition: &str) -> bool {
    partition.is_empty() || partition == "default"
}

/// Serf's name for a member status code.
fn status_text(status: u64) -> &'static str {
    match status {
        0 => "none",
        1 => "alive",
        2 => "leaving",
        3 => "left",
        4 => "failed",
        _ => "unknown",
    }
}

/// Consul's member order: servers first, then the default partition, then by segment, by
/// partition, and finally by name.
fn member_order(a: &Member, b: &Member) -> Ordering {
    let server = |m: &Member| m.tag("role") != ROLE_SERVER;
    let default = |m: &Member| !is_default_partition(m.tag("ap"));
    server(a)
        .cmp(&server(b))
        .then_with(|| default(a).cmp(&default(b)))
        .then_with(|| a.tag("segment").cmp(b.tag("segment")))
        .then_with(|| a.tag("ap").cmp(b.tag("ap")))
        .then_with(|| a.name.cmp(&b.name))
}

/// The default table: one row per member, with the type and build from its tags.
fn standard_rows(members: &[Member]) -> Vec<String> {
    let mut rows = vec![
        "Node\x1fAddress\x1fStatus\x1fType\x1fBuild\x1fProtocol\x1fDC\x1fPartition\x1fSegment"
            .to_string(),
    ];
    for member in members {
        let status = status_text(member.status);
        let kind = match member.tag("role") {
            ROLE_SERVER => "server",
            ROLE_CLIENT => "client",
            _ => {
                rows.push(format!(
                    "{}\x1f{}\x1f{status}\x1funknown\x1f\x1f\x1f\x1f\x1f",
                    member.name,
                    member.address()
                ));
                continue;
            }
        };
        let build = match member.tag("build") {
            "" => "< 0.3",
            build => build.split(':').next().unwrap_or(build),
        };
        rows.push(format!(
            "{}\x1f{}\x1f{status}\x1f{kind}\x1f{build}\x1f{}\x1f{}\x1f{}\x1f{}",
            member.name,
            member.address(),
            member.tag("vsn"),
            member.tag("dc"),
            member.tag("ap"),
            member.tag("segment"),
        ));
    }
    rows
}

/// The `-detailed` table: the tags sorted by key, `k=v` joined by commas.
fn detailed_rows(members: &[Member]) -> Vec<String> {
    let mut rows = vec!["Node\x1fAddress\x1fStatus\x1fTags".to_string()];
    for member in members {
        let tags: Vec<String> = member
            .tags
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        rows.push(format!(
            "{}\x1f{}\x1f{}\x1f{}",
            member.name,
            member.address(),
            status_text(member.status),
            tags.join(",")
        ));
    }
    rows
}

/// Turns the members answer into the output table; `None` when no member's status matches.
fn members_table(
    list: &Value,
    status: &Regex,
    segment_flag: &str,
    detailed: bool,
) -> Option<String> {
    let mut members: Vec<Member> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(Member::from_json)
        .collect();
    for member in &mut members {
        member.decorate(segment_flag);
    }
    members.retain(|m| status.is_match(status_text(m.status)));
    if members.is_empty() {
        return None;
    }
    members.sort_by(member_order);
    let rows = if detailed {
        detailed_rows(&members)
    } else {
        standard_rows(&members)
    };
    Some(common::columnize(&rows))
}

/// A Go-regexp-like compile error message: the first line of the regex crate's error.
fn regex_error(error: &regex::Error) -> String {
    let text = error.to_string();
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .trim_start_matches("error: ")
        .to_string();
    format!("error parsing regexp: {last}")
}

/// `members`: the agent's view of the LAN (or, with `-wan`, WAN) gossip pool. Exit code 2 when
/// no member matches `-status`.
pub fn members(ctx: Ctx, args: &[String]) -> i32 {
    let help = MEMBERS_HELP.replace("{p}", ctx.program);
    let parsed = match common::parse(MEMBERS_FLAGS, true, &help, args) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    if !parsed.rest.is_empty() {
        ui::error("Too many arguments (expected 0)");
        return 1;
    }
    let status = match Regex::new(parsed.string("status").unwrap_or(".*")) {
        Ok(re) => re,
        Err(error) => {
            ui::error(&format!(
                "Failed to compile status regexp: {}",
                regex_error(&error)
            ));
            return 1;
        }
    };
    let client = match common::client(&parsed) {
        Ok(client) => client,
        Err(code) => return code,
    };
    let segment = parsed.string("segment").unwrap_or(ALL_SEGMENTS);
    let mut request = Request::new("GET", "/v1/agent/members");
    if segment != ALL_SEGMENTS {
        request = request.param("segment", segment);
    }
    if parsed.bool("wan").unwrap_or(false) {
        request = request.param("wan", "1");
    }
    for name in ["filter", "partition"] {
        if let Some(value) = parsed.string(name).filter(|v| !v.is_empty()) {
            request = request.param(name, value);
        }
    }
    let list = match client.send(request).and_then(|r| r.json()) {
        Ok(list) => list,
        Err(error) => {
            ui::error(&format!("Error retrieving members: {error}"));
            return 1;
        }
    };
    let detailed = parsed.bool("detailed").unwrap_or(false);
    match members_table(&list, &status, segment, detailed) {
        Some(table) => {
            ui::output(&table);
            0
        }
        None => 2,
    }
}

const JOIN_FLAGS: &[FlagSpec] = &[boolean(
    "wan",
    "Joins a server to another server in the WAN pool.",
)];

const JOIN_HELP: &str = "Usage: {p} join [options] address ...

  Tells a running Consul agent (with \"{p} agent\") to join the cluster
  by specifying at least one existing member.";

/// `join`: asks the agent to contact each address; succeeds when at least one join worked.
pub fn join(ctx: Ctx, args: &[String]) -> i32 {
    let help = JOIN_HELP.replace("{p}", ctx.program);
    let parsed = match common::parse(JOIN_FLAGS, true, &help, args) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    if parsed.rest.is_empty() {
        ui::error("At least one address to join must be specified.");
        ui::error("");
        ui::error(&common::full_help(
            &help,
            &[JOIN_FLAGS, common::HTTP_FLAGS].concat(),
        ));
        return 1;
    }
    let client = match common::client(&parsed) {
        Ok(client) => client,
        Err(code) => return code,
    };
    let wan = parsed.bool("wan").unwrap_or(false);
    let mut joined = 0;
    for addr in &parsed.rest {
        let mut request = Request::new("PUT", format!("/v1/agent/join/{}", encode_path(addr)));
        if wan {
            request = request.param("wan", "1");
        }
        match client.send(request) {
            Ok(_) => joined += 1,
            Err(error) => ui::error(&format!("Error joining address '{addr}': {error}")),
        }
    }
    if joined == 0 {
        ui::error("Failed to join any nodes.");
        return 1;
    }
    ui::output(&format!(
        "Successfully joined cluster by contacting {joined} nodes."
    ));
    0
}

const FORCE_LEAVE_FLAGS: &[FlagSpec] = &[
    boolean(
        "prune",
        "Remove the agent from the list of members at once instead of waiting for it to be \
         reaped.",
    ),
    boolean(
        "wan",
        "Remove the agent from the WAN gossip pool only (servers).",
    ),
];

const FORCE_LEAVE_HELP: &str = "Usage: {p} force-leave [options] name

  Moves a member of the cluster into the \"left\" state. A member that is in
  fact still alive will come back on its own. Use this to clean out \"failed\"
  nodes that will not return; otherwise the agents keep trying to reach them
  for a while before reaping them. With -prune the member is erased from the
  member list at once.";

/// `force-leave`: moves a failed member to `left` (or erases it with `-prune`).
pub fn force_leave(ctx: Ctx, args: &[String]) -> i32 {
    let help = FORCE_LEAVE_HELP.replace("{p}", ctx.program);
    let parsed = match common::parse(FORCE_LEAVE_FLAGS, true, &help, args) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let [node] = parsed.rest.as_slice() else {
        ui::error("A single node name must be specified to force leave.");
        ui::error("");
        ui::error(&common::full_help(
            &help,
            &[FORCE_LEAVE_FLAGS, common::HTTP_FLAGS].concat(),
        ));
        return 1;
    };
    let client = match common::client(&parsed) {
        Ok(client) => client,
        Err(code) => return code,
    };
    let mut request = Request::new(
        "PUT",
        format!("/v1/agent/force-leave/{}", encode_path(node)),
    );
    if parsed.bool("prune").unwrap_or(false) {
        request = request.param("prune", "1");
    }
    if parsed.bool("wan").unwrap_or(false) {
        request = request.param("wan", "1");
    }
    match client.send(request) {
        Ok(_) => 0,
        Err(error) => {
            ui::error(&format!("Error force leaving: {error}"));
            1
        }
    }
}

const EVENT_FLAGS: &[FlagSpec] = &[
    string("name", "Name of the event."),
    string("node", "Regular expression to filter on node names."),
    string(
        "service",
        "Regular expression to filter on service instances.",
    ),
    string(
        "tag",
        "Regular expression to filter on service tags. Must be used with -service.",
    ),
];

const EVENT_HELP: &str = "Usage: {p} event [options] [payload]

  Sends a user event to every agent of a datacenter. The event needs a name;
  the payload is optional. Regular expressions on the node name, the service
  and the service tags choose which agents act on it.";

/// Checks the `-node`, `-service` and `-tag` filters as consul does, printing the first problem.
fn check_filters(node: &str, service: &str, tag: &str) -> Result<(), String> {
    for (what, filter) in [("node", node), ("service", service), ("tag", tag)] {
        if filter.is_empty() {
            continue;
        }
        if let Err(error) = Regex::new(filter) {
            return Err(format!(
                "Failed to compile {what} filter regexp: {}",
                regex_error(&error)
            ));
        }
    }
    if !tag.is_empty() && service.is_empty() {
        return Err("Cannot provide tag filter without service filter.".to_string());
    }
    Ok(())
}

/// `event`: fires a user event through the agent and prints its ID.
pub fn event(ctx: Ctx, args: &[String]) -> i32 {
    let help = EVENT_HELP.replace("{p}", ctx.program);
    let parsed = match common::parse(EVENT_FLAGS, true, &help, args) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let full_help = || common::full_help(&help, &[EVENT_FLAGS, common::HTTP_FLAGS].concat());
    let name = parsed.string("name").unwrap_or_default();
    if name.is_empty() {
        ui::error("Event name must be specified");
        ui::error("");
        ui::error(&full_help());
        return 1;
    }
    let node = parsed.string("node").unwrap_or_default();
    let service = parsed.string("service").unwrap_or_default();
    let tag = parsed.string("tag").unwrap_or_default();
    if let Err(why) = check_filters(node, service, tag) {
        ui::error(&why);
        return 1;
    }
    let payload = match parsed.rest.as_slice() {
        [] => Vec::new(),
        [payload] => payload.as_bytes().to_vec(),
        _ => {
            ui::error("Too many command line arguments.");
            ui::error("");
            ui::error(&full_help());
            return 1;
        }
    };
    let client = match common::reachable_client(&parsed) {
        Ok(client) => client,
        Err(code) => return code,
    };
    let mut request = Request::new("PUT", format!("/v1/event/fire/{}", encode_path(name)));
    for (param, value) in [("node", node), ("service", service), ("tag", tag)] {
        if !value.is_empty() {
            request = request.param(param, value);
        }
    }
    match client.send(request.body(payload)).and_then(|r| r.json()) {
        Ok(answer) => {
            ui::output(&format!("Event ID: {}", common::text(&answer, "ID")));
            0
        }
        Err(error) => {
            ui::error(&format!("Error firing event: {error}"));
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn member(name: &str, role: &str, status: u64) -> Value {
        json!({"Name": name, "Addr": "10.0.0.1", "Port": 8301, "Status": status,
               "Tags": {"role": role, "dc": "dc1", "build": "0.1.0:cairn", "vsn": "2"}})
    }

    #[test]
    fn members_sort_servers_first_then_by_name() {
        let list = json!([
            member("zeta", ROLE_CLIENT, 1),
            member("beta", ROLE_SERVER, 1),
            member("alpha", ROLE_CLIENT, 4),
            member("gamma", ROLE_SERVER, 3),
        ]);
        let all = Regex::new(".*").unwrap();
        let table = members_table(&list, &all, ALL_SEGMENTS, false).unwrap();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "Node   Address        Status  Type    Build  Protocol  DC   Partition  Segment"
        );
        assert_eq!(
            lines[1],
            "beta   10.0.0.1:8301  alive   server  0.1.0  2         dc1  default    <all>"
        );
        let names: Vec<&str> = lines[1..]
            .iter()
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(names, ["beta", "gamma", "alpha", "zeta"]);
        assert!(lines[3].contains("failed  client") && lines[3].ends_with("<default>"));
    }

    #[test]
    fn members_filter_by_status_and_show_tags_in_detail() {
        let list = json!([member("a", ROLE_CLIENT, 1), member("b", ROLE_CLIENT, 4)]);
        let failed = Regex::new("(?:fail)").unwrap();
        let table = members_table(&list, &failed, ALL_SEGMENTS, true).unwrap();
        assert_eq!(
            table,
            "Node  Address        Status  Tags\n\
             b     10.0.0.1:8301  failed  ap=default,build=0.1.0:cairn,dc=dc1,role=node,\
             segment=<default>,vsn=2"
        );
        let none = Regex::new("left").unwrap();
        assert_eq!(members_table(&list, &none, ALL_SEGMENTS, false), None);
    }

    #[test]
    fn addresses_print_like_go() {
        let mut m = Member::from_json(&member("a", ROLE_CLIENT, 1));
        assert_eq!(m.address(), "10.0.0.1:8301");
        m.addr = "::1".into();
        assert_eq!(m.address(), "[::1]:8301");
        m.addr = String::new();
        assert_eq!(m.address(), ":8301");
        m.tags.clear();
        assert_eq!(status_text(9), "unknown");
        let rows = standard_rows(&[m]);
        assert_eq!(
            rows[1],
            "a\x1f:8301\x1falive\x1funknown\x1f\x1f\x1f\x1f\x1f"
        );
    }

    #[test]
    fn event_filters_are_checked() {
        assert_eq!(check_filters("", "", ""), Ok(()));
        assert_eq!(
            check_filters("", "", "v1"),
            Err("Cannot provide tag filter without service filter.".to_string())
        );
        let err = check_filters("(", "", "").unwrap_err();
        assert!(
            err.starts_with("Failed to compile node filter regexp: error parsing regexp"),
            "{err}"
        );
    }
}
