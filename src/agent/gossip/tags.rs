//! Consul's Serf tags: what a member advertises about itself in the node Meta of the gossip pools.
//!
//! Servers: `role=consul`, `dc`, `port` (server RPC), `id`, `vsn`/`vsn_min`/`vsn_max`, `raft_vsn`, `build`,
//! `segment`, `wan_join_port` (LAN), `expect` (with `-bootstrap-expect`), `bootstrap` (with `-bootstrap`),
//! `ft_fs`/`ft_si`. Clients: `role=node`, `dc`, `id`, the versions, `build`, `segment`.

use crate::config::AgentConfig;
use std::collections::BTreeMap;

/// Consul's agent protocol version and its bounds, as the tags carry them.
const VSN: &str = "2";
const VSN_MIN: &str = "2";
const VSN_MAX: &str = "3";

/// The tags of this agent in its LAN pool.
pub fn lan_tags(config: &AgentConfig, node_id: &str) -> BTreeMap<String, String> {
    let server = config.server || config.dev;
    let mut tags = common_tags(config, node_id, server);
    if server {
        if let Some(port) = config.ports.serf_wan {
            tags.insert("wan_join_port".into(), port.to_string());
        }
    }
    tags
}

/// The tags of this server in the WAN pool.
pub fn wan_tags(config: &AgentConfig, node_id: &str) -> BTreeMap<String, String> {
    common_tags(config, node_id, true)
}

fn common_tags(config: &AgentConfig, node_id: &str, server: bool) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        tags.insert(k.to_string(), v);
    };
    put("dc", config.datacenter.clone());
    put("id", node_id.to_string());
    put("vsn", VSN.into());
    put("vsn_min", VSN_MIN.into());
    put("vsn_max", VSN_MAX.into());
    put("build", format!("{}:cairn", env!("CARGO_PKG_VERSION")));
    put("segment", String::new());
    if !server {
        put("role", "node".into());
        return tags;
    }
    put("role", "consul".into());
    put("port", config.server_port.to_string());
    put("raft_vsn", "3".into());
    put("ft_fs", "1".into());
    put("ft_si", "1".into());
    if config.bootstrap || config.dev {
        put("bootstrap", "1".into());
    } else if let Some(expect) = config.bootstrap_expect {
        put("expect", expect.to_string());
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_and_clients_carry_consuls_tags() {
        let mut config = crate::config::load(&["-dev".to_string()], Some("h"))
            .expect("dev config")
            .config;
        let tags = lan_tags(&config, "id-1");
        assert_eq!(tags["role"], "consul");
        assert_eq!(tags["port"], config.server_port.to_string());
        assert_eq!(tags["bootstrap"], "1");
        assert_eq!(tags["id"], "id-1");
        assert_eq!(tags["dc"], "dc1");
        config.dev = false;
        config.server = false;
        let tags = lan_tags(&config, "id-2");
        assert_eq!(tags["role"], "node");
        assert!(!tags.contains_key("port"));
        assert!(!tags.contains_key("wan_join_port"));
    }
}
