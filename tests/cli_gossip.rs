//! The gossip commands against running agents: `join`, `members` (plain, `-detailed`, `-status`),
//! `event`, `force-leave`, under both program names, plus their usage errors and help.
//!
//! Two client agents, each with its own loopback address and Serf LAN port: gA on 127.0.0.61 and gB
//! on 127.0.0.62; 127.0.0.63 is where nothing listens.

mod cli_support;
mod support;

use cli_support::{cli, command, consul_link, dead_addr, fails, ok, run_command, wait_until};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;
use support::{common_free_port, request, test_dir, Agent};

/// How long a membership change may take to be seen (failure detection is a few probe rounds).
const CONVERGE: Duration = Duration::from_secs(40);

/// A client agent `name` on `ip` with HTTP on `http_port` and Serf LAN on `serf_port`.
fn client_agent(name: &str, ip: IpAddr, http_port: u16, serf_port: u16, dir: &Path) -> Agent {
    let args = support::gossip::client_args(name, ip, http_port, serf_port, dir);
    let http = SocketAddr::new(ip, http_port);
    let agent = Agent::start(&args, http, dir.join(format!("{name}.log")));
    wait_until(CONVERGE, "the agent answers", || {
        request(http, "GET", "/v1/agent/self", b"", Duration::from_secs(1))
            .is_ok_and(|r| r.status == 200)
    });
    agent
}

/// `members` rows of the agent at `http` as (node, status) pairs.
fn member_states(http: SocketAddr) -> Vec<(String, String)> {
    let out = cli(http, &["members"]);
    assert_eq!(out.code, 0, "{out:?}");
    out.stdout
        .lines()
        .skip(1)
        .map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            (cells[0].to_string(), cells[2].to_string())
        })
        .collect()
}

fn status_of(http: SocketAddr, node: &str) -> Option<String> {
    member_states(http)
        .into_iter()
        .find(|(n, _)| n == node)
        .map(|(_, s)| s)
}

#[test]
fn gossip_commands_check_their_arguments_and_print_help() {
    let http = dead_addr();
    let out = cli(http, &["members", "-bogus"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .starts_with("flag provided but not defined: -bogus\nUsage: cairn members"),
        "{}",
        out.stderr
    );
    let err = fails(http, &["members", "-status=("]);
    assert!(
        err.starts_with("Failed to compile status regexp: error parsing regexp"),
        "{err}"
    );
    let err = fails(http, &["join"]);
    assert!(
        err.starts_with("At least one address to join must be specified.\n\nUsage: cairn join"),
        "{err}"
    );
    let err = fails(http, &["force-leave"]);
    assert!(
        err.starts_with("A single node name must be specified to force leave.\n\nUsage:"),
        "{err}"
    );
    assert!(fails(http, &["force-leave", "a", "b"]).starts_with("A single node name"));
    let err = fails(http, &["event", "payload"]);
    assert!(
        err.starts_with("Event name must be specified\n\nUsage: cairn event"),
        "{err}"
    );
    assert_eq!(
        fails(http, &["event", "-name=x", "-tag=v1"]),
        "Cannot provide tag filter without service filter.\n"
    );
    assert!(fails(http, &["event", "-name=x", "-node=(["])
        .starts_with("Failed to compile node filter regexp: "));
    assert!(fails(http, &["event", "-name=x", "a", "b"])
        .starts_with("Too many command line arguments.\n\nUsage:"));
    // Nothing listens: the errors name the request.
    assert!(fails(http, &["members"]).starts_with("Error retrieving members: Get \"http://"));
    assert!(fails(http, &["event", "-name=x"]).starts_with("Error querying Consul agent: Get"));
    for (command, usage) in [
        ("members", "Usage: cairn members [options]"),
        ("join", "Usage: cairn join [options] address ..."),
        ("force-leave", "Usage: cairn force-leave [options] name"),
        ("event", "Usage: cairn event [options] [payload]"),
    ] {
        let out = cli(http, &[command, "-h"]);
        assert_eq!(out.code, 0, "{out:?}");
        assert!(out.stderr.starts_with(usage), "{}", out.stderr);
        assert!(
            out.stderr.contains("  -http-addr=<value>"),
            "{}",
            out.stderr
        );
    }
    let usage = cli(http, &["--help"]);
    for command in ["members", "join", "force-leave", "event"] {
        assert!(
            usage.stderr.contains(&format!("    {command} ")),
            "{}",
            usage.stderr
        );
    }
}

#[test]
fn two_agents_join_list_members_fire_events_and_force_leave() {
    let dir = test_dir("cli-gossip");
    let ips: Vec<IpAddr> = ["127.0.0.61", "127.0.0.62"]
        .iter()
        .map(|s| s.parse().expect("ip"))
        .collect();
    let http_port = common_free_port(&ips, &[]);
    let serf_port = common_free_port(&ips, &[http_port]);
    let g_a = client_agent("gA", ips[0], http_port, serf_port, &dir);
    let mut g_b = Some(client_agent("gB", ips[1], http_port, serf_port, &dir));
    let (a, b) = (g_a.http, SocketAddr::new(ips[1], http_port));

    // Alone at first: one member, itself.
    assert_eq!(member_states(a), [("gA".to_string(), "alive".to_string())]);

    let target = format!("{}:{serf_port}", ips[1]);
    assert_eq!(
        ok(a, &["join", &target]),
        "Successfully joined cluster by contacting 1 nodes.\n"
    );
    for http in [a, b] {
        wait_until(CONVERGE, "both agents list both members", || {
            let states = member_states(http);
            states.len() == 2 && states.iter().all(|(_, s)| s == "alive")
        });
    }
    let table = ok(a, &["members"]);
    let lines: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        [
            "Node",
            "Address",
            "Status",
            "Type",
            "Build",
            "Protocol",
            "DC",
            "Partition",
            "Segment"
        ]
    );
    let address_a = format!("{}:{serf_port}", ips[0]);
    assert_eq!(
        lines[1],
        [
            "gA",
            address_a.as_str(),
            "alive",
            "client",
            "0.1.0",
            "2",
            "dc1",
            "default",
            "<default>"
        ]
    );
    assert_eq!(lines[2][0..3], ["gB", target.as_str(), "alive"]);
    // The columns line up: every row starts its Address where the header does.
    let column = table.lines().next().unwrap().find("Address").unwrap();
    assert!(table.lines().all(|l| l[column..].starts_with(['A', '1'])));

    let detailed = ok(a, &["members", "-detailed"]);
    let header: Vec<&str> = detailed
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["Node", "Address", "Status", "Tags"]);
    let row_b = detailed.lines().find(|l| l.starts_with("gB")).unwrap();
    let tags = row_b.split_whitespace().last().unwrap();
    assert!(tags.contains("build=0.1.0:cairn,dc=dc1,"), "{tags}");
    assert!(tags.contains(",role=node,"), "{tags}");
    let keys: Vec<&str> = tags
        .split(',')
        .map(|kv| kv.split('=').next().unwrap())
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);

    assert_eq!(ok(a, &["members", "-status=alive"]), table);
    // No member matches: nothing printed, exit code 2.
    let none = cli(a, &["members", "-status=^left$"]);
    assert_eq!((none.code, none.stdout.as_str()), (2, ""), "{none:?}");
    // -segment is accepted (segments are enterprise-only).
    assert_eq!(ok(a, &["members", "-segment=_all"]), table);

    // A user event fired at gA reaches gB.
    let out = ok(a, &["event", "-name=deploy", "hi"]);
    let id = out
        .strip_prefix("Event ID: ")
        .and_then(|s| s.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(id.len(), 36, "{id}");
    wait_until(CONVERGE, "gB sees the event", || {
        let r = request(
            b,
            "GET",
            "/v1/event/list?name=deploy",
            b"",
            Duration::from_secs(2),
        );
        r.is_ok_and(|r| {
            let list: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            list.as_array()
                .into_iter()
                .flatten()
                .any(|e| e["ID"] == id && e["Name"] == "deploy" && e["Payload"] == "aGk=")
        })
    });
    let err = fails(a, &["event", "-name=_reserved"]);
    assert!(
        err.starts_with("Error firing event: Unexpected response code: 400"),
        "{err}"
    );

    // Unknown and alive members cannot be forced out; nothing at the join address fails the join.
    assert_eq!(
        fails(a, &["force-leave", "nobody"]),
        "Error force leaving: Unexpected response code: 500 (agent: No node found with name \
         'nobody')\n"
    );
    let err = fails(a, &["force-leave", "gB"]);
    assert!(
        err.starts_with("Error force leaving: Unexpected response code: 500"),
        "{err}"
    );
    let nowhere = format!("127.0.0.63:{serf_port}");
    let err = fails(a, &["join", &nowhere]);
    assert!(
        err.starts_with(&format!(
            "Error joining address '{nowhere}': Unexpected response code: 500"
        )),
        "{err}"
    );
    assert!(err.ends_with("Failed to join any nodes.\n"), "{err}");

    // The `consul` program name works the same.
    let consul = consul_link(&dir);
    let out = run_command(command(&consul, Some(a), &["members"]), b"");
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, table.as_str()),
        "{out:?}"
    );

    // gB dies without leaving: gA marks it failed, then force-leave moves it to left.
    drop(g_b.take());
    wait_until(CONVERGE, "gA sees gB failed", || {
        status_of(a, "gB").as_deref() == Some("failed")
    });
    let failed = ok(a, &["members", "-status=failed"]);
    assert_eq!(failed.lines().count(), 2, "{failed}");
    assert_eq!(ok(a, &["force-leave", "gB"]), "");
    wait_until(CONVERGE, "gA shows gB left", || {
        status_of(a, "gB").as_deref() == Some("left")
    });
    assert!(ok(a, &["members", "-status=left"]).contains("gB"));
}
