//! The lookups: from a classified question and the catalog to the response's sections.

use super::cache::{draw, ServiceCache};
use super::config::DnsConfig;
use super::query::{hex_ip, Lookup};
use super::wire::{rcode, QType, Sections};
use crate::fsm::{CheckStatus, HealthCheck, Node, Service, State};
use crate::raft::rng::Rng;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::collections::BTreeSet;

/// The service whose instances are the DNS servers (NS records).
pub const SERVER_SERVICE: &str = "consul";
/// NS records in an answer at most.
pub const NS_RECORDS_MAX: usize = 3;
/// TXT strings are at most this long on the wire.
const TXT_STRING_BYTES_MAX: usize = 255;

/// A record's data.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RData {
    /// An IPv4 address.
    A(Ipv4Addr),
    /// An IPv6 address.
    Aaaa(Ipv6Addr),
    /// An alias.
    Cname(String),
    /// A reverse pointer.
    Ptr(String),
    /// A name server.
    Ns(String),
    /// A service location.
    Srv {
        /// Priority (always 1).
        priority: u16,
        /// Weight by health.
        weight: u16,
        /// Port.
        port: u16,
        /// Target host name.
        target: String,
    },
    /// Text strings.
    Txt(Vec<String>),
    /// Start of authority.
    Soa {
        /// Primary name server.
        mname: String,
        /// Responsible mailbox.
        rname: String,
        /// Serial (the current Unix time).
        serial: u32,
        /// Refresh.
        refresh_s: u32,
        /// Retry.
        retry_s: u32,
        /// Expire.
        expire_s: u32,
        /// Minimum (negative-cache TTL).
        minimum_s: u32,
    },
}

/// One resource record (class IN).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Record {
    /// The owner name, without trailing dot.
    pub name: String,
    /// The TTL.
    pub ttl_s: u32,
    /// The data.
    pub data: RData,
}

impl Record {
    fn new(name: &str, ttl_s: u32, data: RData) -> Record {
        Record {
            name: name.trim_end_matches('.').to_string(),
            ttl_s,
            data,
        }
    }
}

/// What a lookup needs besides the question.
pub struct Context<'a> {
    /// The settings.
    pub config: &'a DnsConfig,
    /// The catalog.
    pub state: &'a State,
    /// The SOA serial (the current Unix time).
    pub serial: u32,
    /// Shuffles answers and picks name servers.
    pub rng: &'a mut Rng,
    /// How many answers the response can carry at most (the UDP answer limit without EDNS), so a large
    /// service is sampled rather than read whole.
    pub answers_wanted: usize,
    /// The healthy instances of the services asked for, per catalog version.
    pub cache: &'a mut ServiceCache,
}

/// The sections answering `qtype` for a name in the domain; `qname` is the name as asked.
pub fn answer_domain(
    ctx: &mut Context<'_>,
    domain: &str,
    lookup: &Lookup,
    qname: &str,
    qtype: QType,
) -> Sections {
    match qtype {
        QType::Soa => {
            let mut sections = Sections {
                answers: vec![(soa(ctx, domain), Vec::new())],
                ..Sections::default()
            };
            let (ns, glue) = nameservers(ctx, domain);
            sections.authority = ns;
            sections.additional = glue;
            return sections;
        }
        QType::Ns => {
            let (ns, glue) = nameservers(ctx, domain);
            let mut sections = Sections {
                answers: ns.into_iter().map(|r| (r, Vec::new())).collect(),
                additional: glue,
                ..Sections::default()
            };
            if sections.answers.is_empty() {
                sections.authority.push(soa(ctx, domain));
            }
            return sections;
        }
        _ => {}
    }
    let local = |dc: &Option<String>| {
        dc.as_ref()
            .is_none_or(|dc| dc.eq_ignore_ascii_case(&ctx.config.datacenter))
    };
    let sections = match lookup {
        Lookup::Apex => Some(Sections::default()),
        Lookup::Node { node, dc } if local(dc) => node_lookup(ctx, domain, node, qname, qtype),
        Lookup::Service { service, tag, dc } if local(dc) => {
            service_lookup(ctx, domain, service, tag.as_deref(), qname, qtype)
        }
        Lookup::Addr { ip, dc } if local(dc) => Some(addr_lookup(ctx, *ip, qname, qtype)),
        _ => None,
    };
    match sections {
        Some(mut sections) => {
            if sections.answers.is_empty() {
                sections.authority.push(soa(ctx, domain));
            }
            sections
        }
        None => nxdomain(ctx, domain),
    }
}

/// NXDOMAIN with the SOA in the authority section.
pub fn nxdomain(ctx: &mut Context<'_>, domain: &str) -> Sections {
    Sections {
        rcode: rcode::NXDOMAIN,
        authority: vec![soa(ctx, domain)],
        ..Sections::default()
    }
}

/// The PTR answer for `ip`: the node with that address, else the services with it; `None` when nothing has
/// it.
pub fn answer_reverse(ctx: &mut Context<'_>, ip: IpAddr, qname: &str) -> Option<Sections> {
    let domain = ctx.config.domain.clone();
    let dc = &ctx.config.datacenter;
    let ttl_s = ctx.config.node_ttl_s;
    let mut targets = BTreeSet::new();
    for node in ctx.state.nodes() {
        if parse_ip(&node.address) == Some(ip) {
            targets.insert(format!("{}.node.{dc}.{domain}", node.node));
        }
    }
    if targets.is_empty() {
        for (name, _) in ctx.state.services_by_name() {
            let hit = ctx
                .state
                .service_instances(&name)
                .iter()
                .any(|(_, s)| parse_ip(&s.address) == Some(ip));
            if hit {
                targets.insert(format!("{name}.service.{dc}.{domain}"));
            }
        }
    }
    if targets.is_empty() {
        return None;
    }
    Some(Sections {
        answers: targets
            .into_iter()
            .map(|t| (Record::new(qname, ttl_s, RData::Ptr(t)), Vec::new()))
            .collect(),
        ..Sections::default()
    })
}

/// The SOA of `domain`.
pub fn soa(ctx: &Context<'_>, domain: &str) -> Record {
    let soa = ctx.config.soa;
    Record::new(
        domain,
        soa.min_ttl_s,
        RData::Soa {
            mname: format!("ns.{domain}"),
            rname: format!("hostmaster.{domain}"),
            serial: ctx.serial,
            refresh_s: soa.refresh_s,
            retry_s: soa.retry_s,
            expire_s: soa.expire_s,
            minimum_s: soa.min_ttl_s,
        },
    )
}

/// Up to [`NS_RECORDS_MAX`] servers picked at random (the nodes of the `consul` service), with glue.
fn nameservers(ctx: &mut Context<'_>, domain: &str) -> (Vec<Record>, Vec<Record>) {
    let dc = ctx.config.datacenter.clone();
    let ttl_s = ctx.config.node_ttl_s;
    let mut servers: Vec<&Node> = ctx
        .state
        .service_instances(SERVER_SERVICE)
        .into_iter()
        .map(|(node, _)| node)
        .filter(|node| is_label(&node.node))
        .collect();
    servers.dedup_by(|a, b| a.node == b.node);
    shuffle(ctx.rng, &mut servers);
    let mut ns = Vec::new();
    let mut glue = Vec::new();
    for node in servers.into_iter().take(NS_RECORDS_MAX) {
        let target = format!("{}.node.{dc}.{domain}", node.node);
        if let Some(ip) = parse_ip(&node.address) {
            glue.push(Record::new(&target, ttl_s, ip_data(ip)));
        }
        ns.push(Record::new(domain, ttl_s, RData::Ns(target)));
    }
    (ns, glue)
}

/// A node name usable as one DNS label.
fn is_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn node_lookup(
    ctx: &mut Context<'_>,
    _domain: &str,
    name: &str,
    qname: &str,
    qtype: QType,
) -> Option<Sections> {
    let node = find_node(ctx.state, name)?;
    let ttl_s = ctx.config.node_ttl_s;
    let mut answers = Vec::new();
    if qtype != QType::Txt {
        answers.extend(address_records(qname, &node.address, qtype, ttl_s));
    }
    if matches!(qtype, QType::Txt | QType::Any) {
        answers.extend(meta_txt(qname, node, ttl_s));
    }
    Some(Sections {
        answers: answers.into_iter().map(|r| (r, Vec::new())).collect(),
        ..Sections::default()
    })
}

/// Node `name`, matched exactly or else ignoring ASCII case.
fn find_node<'a>(state: &'a State, name: &str) -> Option<&'a Node> {
    state.node(name).or_else(|| {
        state
            .nodes()
            .into_iter()
            .find(|n| n.node.eq_ignore_ascii_case(name))
    })
}

/// The records for `address` owned by `owner`: A or AAAA by the question type, a CNAME for a host name.
fn address_records(owner: &str, address: &str, qtype: QType, ttl_s: u32) -> Option<Record> {
    match parse_ip(address) {
        Some(IpAddr::V4(ip)) if matches!(qtype, QType::A | QType::Any) => {
            Some(Record::new(owner, ttl_s, RData::A(ip)))
        }
        Some(IpAddr::V6(ip)) if matches!(qtype, QType::Aaaa | QType::Any) => {
            Some(Record::new(owner, ttl_s, RData::Aaaa(ip)))
        }
        Some(_) => None,
        None if !address.is_empty() => Some(Record::new(
            owner,
            ttl_s,
            RData::Cname(address.trim_end_matches('.').to_string()),
        )),
        None => None,
    }
}

/// Node meta as RFC 1464 TXT records (`key=value`; a `rfc1035-` key gives the value alone).
fn meta_txt(owner: &str, node: &Node, ttl_s: u32) -> Vec<Record> {
    node.meta
        .iter()
        .map(|(key, value)| {
            if key.starts_with("rfc1035-") {
                value.clone()
            } else {
                format!("{key}={value}")
            }
        })
        .filter(|text| text.len() <= TXT_STRING_BYTES_MAX)
        .map(|text| Record::new(owner, ttl_s, RData::Txt(vec![text])))
        .collect()
}

fn addr_lookup(ctx: &mut Context<'_>, ip: IpAddr, qname: &str, qtype: QType) -> Sections {
    let record = Record::new(qname, ctx.config.node_ttl_s, ip_data(ip));
    let wanted = matches!(
        (ip, qtype),
        (IpAddr::V4(_), QType::A | QType::Any) | (IpAddr::V6(_), QType::Aaaa | QType::Any)
    );
    if wanted {
        Sections {
            answers: vec![(record, Vec::new())],
            ..Sections::default()
        }
    } else {
        Sections {
            additional: vec![record],
            ..Sections::default()
        }
    }
}

fn ip_data(ip: IpAddr) -> RData {
    match ip {
        IpAddr::V4(v4) => RData::A(v4),
        IpAddr::V6(v6) => RData::Aaaa(v6),
    }
}

/// An IP address as the catalog stores it (IPv6 possibly in brackets).
fn parse_ip(text: &str) -> Option<IpAddr> {
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse().ok()
}

/// Whether an instance with these checks is answered: no critical (or maintenance) check, and with
/// `only_passing` no warning either.
pub fn healthy(checks: &[&HealthCheck], only_passing: bool) -> bool {
    checks.iter().all(|c| match c.status {
        CheckStatus::Passing => true,
        CheckStatus::Warning => !only_passing,
        CheckStatus::Critical | CheckStatus::Maintenance => false,
    })
}

fn tag_fits(service: &Service, tag: Option<&str>) -> bool {
    tag.is_none_or(|tag| service.tags.iter().any(|t| t.eq_ignore_ascii_case(tag)))
}

fn service_lookup(
    ctx: &mut Context<'_>,
    domain: &str,
    name: &str,
    tag: Option<&str>,
    qname: &str,
    qtype: QType,
) -> Option<Sections> {
    let only_passing = ctx.config.only_passing;
    let cached = ctx.cache.service(ctx.state, name, only_passing)?;
    let mut wanted = ctx.answers_wanted;
    if ctx.config.a_record_limit > 0 && matches!(qtype, QType::A | QType::Aaaa) {
        wanted = wanted.min(ctx.config.a_record_limit);
    }
    // Draw healthy instances in a random order until enough fit. A and AAAA answers are deduplicated by
    // address, and an instance may lack the family asked: read on until `wanted` of the right kind are found.
    let (instances, order) = cached.parts();
    let mut entries: Vec<(&Node, &Service, bool)> = Vec::new();
    let mut kept = 0;
    let mut seen_addresses = BTreeSet::new();
    let mut i = 0;
    while let Some(at) = draw(order, i, ctx.rng) {
        i += 1;
        let Some(instance) = instances.get(at) else {
            continue;
        };
        let (node, service) = (&*instance.node, &*instance.service);
        if !tag_fits(service, tag) {
            continue;
        }
        entries.push((node, service, instance.warning));
        let address = if service.address.is_empty() {
            &node.address
        } else {
            &service.address
        };
        let counts = match qtype {
            QType::Srv => true,
            QType::A | QType::Aaaa => {
                address_records("", address, qtype, 0).is_some()
                    && seen_addresses.insert(address.as_str())
            }
            _ => false,
        };
        if counts {
            kept += 1;
            if kept >= wanted {
                break;
            }
        }
    }
    if entries.is_empty() {
        return None;
    }
    let ttl_s = ctx.config.service_ttl.lookup(name).unwrap_or(0);
    let node_ttl_s = ctx.config.node_ttl_s;
    let dc = ctx.config.datacenter.clone();
    let mut answers: Vec<(Record, Vec<Record>)> = Vec::new();
    if qtype == QType::Srv {
        let mut seen = BTreeSet::new();
        for (node, service, warning) in entries {
            let weight = if warning {
                service.weights.warning
            } else {
                service.weights.passing
            };
            let port = u16::try_from(service.port).unwrap_or(0);
            let mut extras = Vec::new();
            let target = if service.address.is_empty() {
                let target = format!("{}.node.{dc}.{domain}", node.node);
                extras.extend(address_records(
                    &target,
                    &node.address,
                    QType::Any,
                    node_ttl_s,
                ));
                if ctx.config.node_meta_txt {
                    extras.extend(meta_txt(&target, node, node_ttl_s));
                }
                target
            } else if let Some(ip) = parse_ip(&service.address) {
                let target = format!("{}.addr.{dc}.{domain}", hex_ip(ip));
                extras.push(Record::new(&target, node_ttl_s, ip_data(ip)));
                target
            } else {
                service.address.trim_end_matches('.').to_string()
            };
            if !seen.insert((target.clone(), port)) {
                continue;
            }
            let srv = RData::Srv {
                priority: 1,
                weight: u16::try_from(weight).unwrap_or(u16::MAX),
                port,
                target,
            };
            answers.push((Record::new(qname, ttl_s, srv), extras));
        }
    } else {
        let mut seen = BTreeSet::new();
        let mut txt_seen = BTreeSet::new();
        for (node, service, _) in &entries {
            if qtype != QType::Txt {
                let address = if service.address.is_empty() {
                    &node.address
                } else {
                    &service.address
                };
                if let Some(record) = address_records(qname, address, qtype, ttl_s) {
                    if seen.insert(record.data.clone()) {
                        answers.push((record, Vec::new()));
                    }
                }
            }
            if matches!(qtype, QType::Txt | QType::Any) && txt_seen.insert(node.node.as_str()) {
                for record in meta_txt(qname, node, ttl_s) {
                    answers.push((record, Vec::new()));
                }
            }
        }
        let limit = ctx.config.a_record_limit;
        if limit > 0 && matches!(qtype, QType::A | QType::Aaaa | QType::Any) {
            answers.truncate(limit);
        }
    }
    Some(Sections {
        answers,
        ..Sections::default()
    })
}

/// Fisher-Yates with the seeded generator.
fn shuffle<T>(rng: &mut Rng, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = rng.range(0, i as u64 + 1) as usize;
        items.swap(i, j);
    }
}
