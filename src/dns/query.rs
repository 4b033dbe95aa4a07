//! Reading a query name: which zone it is in (the domain, the alternative domain, a reverse zone, or outside)
//! and, inside the domain, which lookup it asks for. Labels are read right to left, case-insensitively.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Where a name is and what it asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Zone {
    /// Inside `domain` or `alt_domain`.
    Domain {
        /// The domain the query asked in (lower-cased, trailing dot): answers use it.
        domain: String,
        /// What the labels before the domain ask for.
        lookup: Lookup,
    },
    /// A reverse-lookup name (`in-addr.arpa` / `ip6.arpa`) and the address it names, if well formed.
    Reverse(Option<IpAddr>),
    /// Outside every zone this server answers for: recursed, or SERVFAIL without recursors.
    Outside,
}

/// What a name inside the domain asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The domain itself (SOA/NS live here).
    Apex,
    /// `<node>.node[.<dc>]`.
    Node {
        /// The node name (lower-cased; may contain dots).
        node: String,
        /// The datacenter asked for, if any.
        dc: Option<String>,
    },
    /// `[<tag>.]<service>.service[.<dc>]` or `_<service>._<tag|tcp>[.service][.<dc>]`.
    Service {
        /// The service name (lower-cased).
        service: String,
        /// The tag to filter on, if any.
        tag: Option<String>,
        /// The datacenter asked for, if any.
        dc: Option<String>,
    },
    /// `<hex>.addr[.<dc>]`: an address spelled in hex.
    Addr {
        /// The address.
        ip: IpAddr,
        /// The datacenter asked for, if any.
        dc: Option<String>,
    },
    /// A form cairn knows but has nothing for (prepared queries, mesh, peers): the name does not exist.
    Unsupported,
    /// Not a valid query form: NXDOMAIN.
    Invalid,
}

/// The lower-cased `name` (no trailing dot), placed in a zone. `srv` says the query type is SRV (the
/// `.service` label is then optional in the RFC 2782 form).
pub fn classify(name: &str, domain: &str, alt_domain: Option<&str>, srv: bool) -> Zone {
    let with_dot = format!("{name}.");
    for zone in std::iter::once(domain).chain(alt_domain) {
        if let Some(rest) = strip_zone(&with_dot, zone) {
            return Zone::Domain {
                domain: zone.to_string(),
                lookup: lookup(rest, srv),
            };
        }
    }
    if let Some(rest) = strip_zone(&with_dot, "in-addr.arpa.") {
        return Zone::Reverse(reverse_v4(rest));
    }
    if let Some(rest) = strip_zone(&with_dot, "ip6.arpa.") {
        return Zone::Reverse(reverse_v6(rest));
    }
    Zone::Outside
}

/// The labels of `name` (with trailing dot) before `zone`, `Some("")` for the zone itself, `None` outside it.
fn strip_zone<'a>(name: &'a str, zone: &str) -> Option<&'a str> {
    if name == zone {
        return Some("");
    }
    let rest = name.strip_suffix(zone)?;
    rest.strip_suffix('.')
}

/// Reads the labels before the domain.
fn lookup(rest: &str, srv: bool) -> Lookup {
    if rest.is_empty() {
        return Lookup::Apex;
    }
    let labels: Vec<&str> = rest.split('.').collect();
    if labels.iter().any(|l| l.is_empty()) {
        return Lookup::Invalid;
    }
    // The kind is the rightmost known kind label; what follows it is the locality.
    let mut found = None;
    for i in (0..labels.len()).rev() {
        let label = labels[i];
        if matches!(
            label,
            "service" | "node" | "query" | "addr" | "connect" | "ingress" | "virtual"
        ) {
            found = Some((label, &labels[..i], &labels[i + 1..]));
            break;
        }
        // In an SRV query the `.service` label of the RFC 2782 form is optional.
        if srv && label.starts_with('_') {
            found = Some(("service", &labels[..i + 1], &labels[i + 1..]));
            break;
        }
    }
    let Some((kind, parts, suffix)) = found else {
        return Lookup::Invalid;
    };
    let Some(locality) = locality(suffix) else {
        return Lookup::Invalid;
    };
    let dc = match locality {
        Locality::Local => None,
        Locality::Datacenter(dc) => Some(dc),
        Locality::Peer => return Lookup::Unsupported,
    };
    match kind {
        "service" => service(parts, dc),
        "node" if !parts.is_empty() => Lookup::Node {
            node: parts.join("."),
            dc,
        },
        "addr" => match parts {
            [hex] => match parse_hex_ip(hex) {
                Some(ip) => Lookup::Addr { ip, dc },
                None => Lookup::Invalid,
            },
            _ => Lookup::Invalid,
        },
        "query" | "connect" | "ingress" | "virtual" if !parts.is_empty() => Lookup::Unsupported,
        _ => Lookup::Invalid,
    }
}

/// The labels after the kind: nothing, a bare datacenter, or `<dc>.dc` / `<peer>.peer` pairs.
enum Locality {
    Local,
    Datacenter(String),
    Peer,
}

fn locality(suffix: &[&str]) -> Option<Locality> {
    match suffix {
        [] => Some(Locality::Local),
        [dc] => Some(Locality::Datacenter(dc.to_string())),
        [dc, "dc"] => Some(Locality::Datacenter(dc.to_string())),
        [_, "peer"] => Some(Locality::Peer),
        _ => None,
    }
}

fn service(parts: &[&str], dc: Option<String>) -> Lookup {
    match parts {
        [] => Lookup::Invalid,
        // RFC 2782: `_<service>._<tag>`; `_tcp` means no tag filter.
        [name, tag] if name.starts_with('_') && tag.starts_with('_') => {
            let tag = &tag[1..];
            Lookup::Service {
                service: name[1..].to_string(),
                tag: (tag != "tcp" && !tag.is_empty()).then(|| tag.to_string()),
                dc,
            }
        }
        // `[tag.]name`: a legacy multi-label tag is joined again.
        [tags @ .., name] => Lookup::Service {
            service: name.to_string(),
            tag: (!tags.is_empty()).then(|| tags.join(".")),
            dc,
        },
    }
}

/// 8 hex digits (IPv4) or 32 (IPv6).
pub fn parse_hex_ip(hex: &str) -> Option<IpAddr> {
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    match hex.len() {
        8 => u32::from_str_radix(hex, 16)
            .ok()
            .map(|n| IpAddr::V4(Ipv4Addr::from(n))),
        32 => u128::from_str_radix(hex, 16)
            .ok()
            .map(|n| IpAddr::V6(Ipv6Addr::from(n))),
        _ => None,
    }
}

/// The hex spelling of `ip` used in `.addr` names (8 or 32 lower-case digits).
pub fn hex_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{:08x}", u32::from(v4)),
        IpAddr::V6(v6) => format!("{:032x}", u128::from(v6)),
    }
}

/// `d.c.b.a` (before `in-addr.arpa`) as `a.b.c.d`.
fn reverse_v4(rest: &str) -> Option<IpAddr> {
    let mut octets = [0u8; 4];
    let labels: Vec<&str> = rest.split('.').collect();
    if labels.len() != 4 {
        return None;
    }
    for (i, label) in labels.iter().rev().enumerate() {
        if label.is_empty() || label.len() > 3 || !label.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        octets[i] = label.parse().ok()?;
    }
    Some(IpAddr::V4(Ipv4Addr::from(octets)))
}

/// 32 reversed nibbles (before `ip6.arpa`) as an IPv6 address.
fn reverse_v6(rest: &str) -> Option<IpAddr> {
    let labels: Vec<&str> = rest.split('.').collect();
    if labels.len() != 32 {
        return None;
    }
    let mut value: u128 = 0;
    for label in labels.iter().rev() {
        let [digit] = label.as_bytes() else {
            return None;
        };
        let nibble = (*digit as char).to_digit(16)?;
        value = (value << 4) | u128::from(nibble);
    }
    Some(IpAddr::V6(Ipv6Addr::from(value)))
}

/// The reverse-zone name of `ip` (without trailing dot), as PTR answers are owned.
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(v6) => {
            let hex = format!("{:032x}", u128::from(v6));
            let mut out = String::with_capacity(72);
            for digit in hex.chars().rev() {
                out.push(digit);
                out.push('.');
            }
            out.push_str("ip6.arpa");
            out
        }
    }
}
