//! The wire side: reading a query (header, the one question, EDNS) and writing a response with simple-dns,
//! trimmed to the size the transport allows.

use super::config::{EDNS_BYTES_MAX, TCP_BYTES_MAX, UDP_BYTES_DEFAULT};
use super::records::{RData, Record};
use core::net::IpAddr;
use simple_dns::rdata::{self, OPTCode, OPT};
use simple_dns::{
    CharacterString, Label, Name, Packet, PacketFlag, Question, ResourceRecord, CLASS, OPCODE,
    QCLASS, QTYPE, RCODE, TYPE,
};
use std::borrow::Cow;
use std::collections::BTreeSet;

/// The size of a DNS header.
pub const HEADER_BYTES: usize = 12;
/// The longest name on the wire (RFC 1035).
pub const NAME_BYTES_MAX: usize = 255;
/// The EDNS option code of the client subnet (RFC 7871).
const ECS_OPTION_CODE: u16 = 8;
/// TXT strings are at most this long on the wire.
const TXT_STRING_BYTES_MAX: usize = 255;

/// A query type, as far as the DNS interface tells them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QType {
    /// A.
    A,
    /// AAAA.
    Aaaa,
    /// SRV.
    Srv,
    /// TXT.
    Txt,
    /// PTR.
    Ptr,
    /// NS.
    Ns,
    /// SOA.
    Soa,
    /// CNAME.
    Cname,
    /// ANY.
    Any,
    /// AXFR or IXFR (zone transfers: not implemented).
    Transfer,
    /// Any other type (answered with no records).
    Other(u16),
}

impl QType {
    fn from_code(code: u16) -> QType {
        match code {
            1 => QType::A,
            28 => QType::Aaaa,
            33 => QType::Srv,
            16 => QType::Txt,
            12 => QType::Ptr,
            2 => QType::Ns,
            6 => QType::Soa,
            5 => QType::Cname,
            255 => QType::Any,
            251 | 252 => QType::Transfer,
            other => QType::Other(other),
        }
    }

    fn code(self) -> u16 {
        match self {
            QType::A => 1,
            QType::Aaaa => 28,
            QType::Srv => 33,
            QType::Txt => 16,
            QType::Ptr => 12,
            QType::Ns => 2,
            QType::Soa => 6,
            QType::Cname => 5,
            QType::Any => 255,
            QType::Transfer => 252,
            QType::Other(code) => code,
        }
    }
}

/// A query as read from the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// The message ID.
    pub id: u16,
    /// The opcode (0 = QUERY).
    pub opcode: u8,
    /// RD.
    pub recursion_desired: bool,
    /// CD.
    pub checking_disabled: bool,
    /// The question's labels, as sent (case kept).
    pub labels: Vec<Vec<u8>>,
    /// The question's type.
    pub qtype: QType,
    /// The question's class code.
    pub qclass: u16,
    /// The EDNS buffer size, when the query carries an OPT record.
    pub edns_bytes: Option<u16>,
    /// The EDNS client subnet option's data, echoed with scope 0.
    pub ecs: Option<Vec<u8>>,
}

impl Query {
    /// The question name lower-cased, dot-separated, without the trailing dot (`""` for the root).
    pub fn lower_name(&self) -> String {
        let mut out = String::new();
        for (i, label) in self.labels.iter().enumerate() {
            if i > 0 {
                out.push('.');
            }
            out.push_str(&String::from_utf8_lossy(label).to_ascii_lowercase());
        }
        out
    }

    /// The question name as sent, dot-separated, without the trailing dot.
    pub fn name(&self) -> String {
        let mut out = String::new();
        for (i, label) in self.labels.iter().enumerate() {
            if i > 0 {
                out.push('.');
            }
            out.push_str(&String::from_utf8_lossy(label));
        }
        out
    }
}

/// Why a packet is not answered normally.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// Too short for a header, or a response: nothing is sent back.
    Drop,
    /// Malformed after a readable header: FORMERR with this ID and opcode.
    FormErr {
        /// The message ID.
        id: u16,
        /// The opcode.
        opcode: u8,
    },
}

/// Reads the header and the question of `packet`, then the EDNS record (with simple-dns).
pub fn read_query(packet: &[u8]) -> Result<Query, ReadError> {
    if packet.len() < HEADER_BYTES {
        return Err(ReadError::Drop);
    }
    let word = |at: usize| u16::from_be_bytes([packet[at], packet[at + 1]]);
    let id = word(0);
    let flags = word(2);
    if flags & 0x8000 != 0 {
        return Err(ReadError::Drop);
    }
    let opcode = ((flags >> 11) & 0x0f) as u8;
    let formerr = ReadError::FormErr { id, opcode };
    let (qdcount, ancount, nscount, arcount) = (word(4), word(6), word(8), word(10));
    // Each further record takes at least 11 bytes: counts the packet cannot hold are malformed (and would make
    // a parser reserve room for them).
    let others = usize::from(ancount) + usize::from(nscount) + usize::from(arcount);
    if qdcount != 1 || others * 11 > packet.len() - HEADER_BYTES {
        return Err(formerr);
    }
    let mut at = HEADER_BYTES;
    let mut labels = Vec::new();
    let mut name_bytes = 1;
    loop {
        let Some(&len) = packet.get(at) else {
            return Err(formerr);
        };
        at += 1;
        if len == 0 {
            break;
        }
        // Compression pointers (and the reserved label types) have no place in a query's first name.
        if len & 0xc0 != 0 {
            return Err(formerr);
        }
        let len = usize::from(len);
        name_bytes += len + 1;
        let Some(label) = packet.get(at..at + len) else {
            return Err(formerr);
        };
        if name_bytes > NAME_BYTES_MAX {
            return Err(formerr);
        }
        labels.push(label.to_vec());
        at += len;
    }
    if packet.len() < at + 4 {
        return Err(formerr);
    }
    let qtype = QType::from_code(word(at));
    let qclass = word(at + 2);
    let mut query = Query {
        id,
        opcode,
        recursion_desired: flags & 0x0100 != 0,
        checking_disabled: flags & 0x0010 != 0,
        labels,
        qtype,
        qclass,
        edns_bytes: None,
        ecs: None,
    };
    if ancount == 0 && nscount == 0 && arcount == 0 {
        if packet.len() != at + 4 {
            return Err(formerr);
        }
        return Ok(query);
    }
    match Packet::parse(packet) {
        Ok(parsed) => {
            if let Some(opt) = parsed.opt() {
                query.edns_bytes = Some(opt.udp_packet_size);
                query.ecs = opt
                    .opt_codes
                    .iter()
                    .find(|o| o.code == ECS_OPTION_CODE)
                    .map(|o| o.data.to_vec());
            }
            Ok(query)
        }
        // simple-dns refuses query types it does not know; such a query is read without its EDNS record.
        Err(_) if matches!(qtype, QType::Other(_)) => Ok(query),
        Err(_) => Err(formerr),
    }
}

/// How a response travels: its size limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Transport {
    /// A UDP datagram.
    Udp,
    /// A TCP stream (two-byte length prefix).
    Tcp,
}

/// A response's sections before encoding. Each answer has the additional records that belong to it, so
/// trimming an answer drops its extras too.
#[derive(Clone, Debug, Default)]
pub struct Sections {
    /// The response code.
    pub rcode: u8,
    /// Answers, each with its additional records.
    pub answers: Vec<(Record, Vec<Record>)>,
    /// Authority records (SOA, NS).
    pub authority: Vec<Record>,
    /// Additional records not tied to one answer (NS glue).
    pub additional: Vec<Record>,
}

/// Response codes used.
pub mod rcode {
    /// No error.
    pub const NOERROR: u8 = 0;
    /// Format error.
    pub const FORMERR: u8 = 1;
    /// Server failure.
    pub const SERVFAIL: u8 = 2;
    /// Name error (NXDOMAIN).
    pub const NXDOMAIN: u8 = 3;
    /// Not implemented.
    pub const NOTIMP: u8 = 4;
}

fn rcode_of(code: u8) -> RCODE {
    match code {
        rcode::NOERROR => RCODE::NoError,
        rcode::FORMERR => RCODE::FormatError,
        rcode::SERVFAIL => RCODE::ServerFailure,
        rcode::NXDOMAIN => RCODE::NameError,
        rcode::NOTIMP => RCODE::NotImplemented,
        _ => RCODE::Refused,
    }
}

/// What shapes the encoding.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// How the response travels.
    pub transport: Transport,
    /// The UDP answer limit without EDNS (`min(8, udp_answer_limit)`).
    pub udp_answers_max: usize,
    /// Set TC when answers were trimmed.
    pub enable_truncate: bool,
    /// Set RA.
    pub recursion_available: bool,
    /// Compress names.
    pub compress: bool,
}

/// A name as labels; `None` when a label is empty or too long, or the name too long.
fn name(text: &str) -> Option<Name<'_>> {
    let text = text.strip_suffix('.').unwrap_or(text);
    if text.is_empty() {
        return Some(Name::new_with_labels(&[]));
    }
    if text.len() + 2 > NAME_BYTES_MAX {
        return None;
    }
    let labels: Option<Vec<Label<'_>>> = text
        .split('.')
        .map(|l| Label::new(l.as_bytes()).ok())
        .collect();
    Some(Name::new_with_labels(&labels?))
}

/// The simple-dns record for `record`; `None` when a name or string does not fit the wire.
fn resource(record: &Record) -> Option<ResourceRecord<'_>> {
    let data = match &record.data {
        RData::A(ip) => rdata::RData::A(rdata::A {
            address: u32::from(*ip),
        }),
        RData::Aaaa(ip) => rdata::RData::AAAA(rdata::AAAA {
            address: u128::from(*ip),
        }),
        RData::Cname(target) => rdata::RData::CNAME(rdata::CNAME(name(target)?)),
        RData::Ptr(target) => rdata::RData::PTR(rdata::PTR(name(target)?)),
        RData::Ns(target) => rdata::RData::NS(rdata::NS(name(target)?)),
        RData::Srv {
            priority,
            weight,
            port,
            target,
        } => rdata::RData::SRV(rdata::SRV {
            priority: *priority,
            weight: *weight,
            port: *port,
            target: name(target)?,
        }),
        RData::Txt(strings) => {
            let mut txt = rdata::TXT::new();
            for s in strings {
                txt.add_char_string(CharacterString::new(s.as_bytes()).ok()?);
            }
            rdata::RData::TXT(txt)
        }
        RData::Soa {
            mname,
            rname,
            serial,
            refresh_s,
            retry_s,
            expire_s,
            minimum_s,
        } => rdata::RData::SOA(rdata::SOA {
            mname: name(mname)?,
            rname: name(rname)?,
            serial: *serial,
            refresh: i32::try_from(*refresh_s).unwrap_or(i32::MAX),
            retry: i32::try_from(*retry_s).unwrap_or(i32::MAX),
            expire: i32::try_from(*expire_s).unwrap_or(i32::MAX),
            minimum: *minimum_s,
        }),
    };
    Some(ResourceRecord::new(
        name(&record.name)?,
        CLASS::IN,
        record.ttl_s,
        data,
    ))
}

/// The size limit for `query` on `transport`.
pub fn size_limit(query: &Query, transport: Transport) -> usize {
    match transport {
        Transport::Tcp => TCP_BYTES_MAX,
        Transport::Udp => match query.edns_bytes {
            Some(bytes) => usize::from(bytes).clamp(UDP_BYTES_DEFAULT, EDNS_BYTES_MAX),
            None => UDP_BYTES_DEFAULT,
        },
    }
}

/// Encodes the response to `query`, trimming answers (NS authority first, then answers from the end with
/// their extras) until it fits the transport; a single answer is sent even when it does not fit.
pub fn encode(query: &Query, mut sections: Sections, shape: Shape) -> Vec<u8> {
    let limit = size_limit(query, shape.transport);
    let total = sections.answers.len();
    if shape.transport == Transport::Udp && query.edns_bytes.is_none() {
        sections.answers.truncate(shape.udp_answers_max.max(1));
    }
    let mut bytes = build(query, &sections, &sections.answers, false, shape);
    if bytes.len() > limit && sections.answers.len() > 1 {
        let has_ns = sections
            .authority
            .iter()
            .any(|r| matches!(r.data, RData::Ns(_)));
        if has_ns {
            sections
                .authority
                .retain(|r| !matches!(r.data, RData::Ns(_)));
            sections.additional.clear();
            bytes = build(query, &sections, &sections.answers, false, shape);
        }
    }
    if bytes.len() > limit && sections.answers.len() > 1 {
        // The largest count that fits (at least one), by bisection.
        let (mut fits, mut too_many) = (1, sections.answers.len());
        while too_many - fits > 1 {
            let mid = fits + (too_many - fits) / 2;
            if build(query, &sections, &sections.answers[..mid], false, shape).len() <= limit {
                fits = mid;
            } else {
                too_many = mid;
            }
        }
        sections.answers.truncate(fits);
        bytes = build(query, &sections, &sections.answers, false, shape);
    }
    if bytes.len() > limit {
        // One answer that does not fit: without its extras, then without anything but the header.
        for (_, extras) in &mut sections.answers {
            extras.clear();
        }
        sections.additional.clear();
        bytes = build(query, &sections, &sections.answers, false, shape);
        if bytes.len() > TCP_BYTES_MAX {
            sections.answers.clear();
            sections.authority.clear();
            sections.rcode = rcode::SERVFAIL;
            bytes = build(query, &sections, &[], false, shape);
        }
    }
    let trimmed = sections.answers.len() < total;
    if trimmed && shape.enable_truncate {
        bytes = build(query, &sections, &sections.answers, true, shape);
    }
    bytes
}

/// Writes the response: directly ([`build_direct`]) where it can, else with simple-dns. Tests check that
/// both write the same bytes.
fn build(
    query: &Query,
    sections: &Sections,
    answers: &[(Record, Vec<Record>)],
    truncated: bool,
    shape: Shape,
) -> Vec<u8> {
    match build_direct(query, sections, answers, truncated, shape) {
        Some(bytes) => {
            #[cfg(test)]
            assert_eq!(
                bytes,
                build_with_simple_dns(query, sections, answers, truncated, shape),
                "the direct writer and simple-dns disagree"
            );
            bytes
        }
        None => build_with_simple_dns(query, sections, answers, truncated, shape),
    }
}

/// The direct writer behind [`build`]: the same bytes simple-dns writes (same section order, OPT before the
/// additional records, names compressed against byte-identical earlier names in the question, the owner names,
/// and CNAME/PTR/NS/SOA data, never in SRV targets), without building a simple-dns packet first. `None` for
/// what it leaves to simple-dns: a name with a backslash (simple-dns unescapes those) or record data over
/// 64 KiB.
fn build_direct(
    query: &Query,
    sections: &Sections,
    answers: &[(Record, Vec<Record>)],
    truncated: bool,
    shape: Shape,
) -> Option<Vec<u8>> {
    if query.labels.iter().any(|l| l.contains(&b'\\')) {
        return None;
    }
    let mut w = Writer {
        out: Vec::with_capacity(512),
        suffixes: Vec::new(),
        compress: shape.compress,
    };
    let mut flags: u16 = 0x8000 | 0x0400 | u16::from(rcode_of(sections.rcode) as u8 & 0x0f);
    if query.recursion_desired {
        flags |= 0x0100;
    }
    if query.checking_disabled {
        flags |= 0x0010;
    }
    if shape.recursion_available {
        flags |= 0x0080;
    }
    if truncated {
        flags |= 0x0200;
    }
    w.out.extend_from_slice(&query.id.to_be_bytes());
    w.out.extend_from_slice(&flags.to_be_bytes());
    w.out.extend_from_slice(&[0; 8]);
    let question_fits = query.labels.iter().all(|l| !l.is_empty() && l.len() <= 63);
    if question_fits {
        let labels: Vec<&[u8]> = query.labels.iter().map(Vec::as_slice).collect();
        w.name(&labels, true);
        let qclass = match query.qclass {
            1..=4 | 254 | 255 => query.qclass,
            _ => 1,
        };
        w.out.extend_from_slice(&query.qtype.code().to_be_bytes());
        w.out.extend_from_slice(&qclass.to_be_bytes());
    }
    let mut counts = [u16::from(question_fits), 0, 0, 0];
    for (answer, _) in answers {
        if w.record(answer)? {
            counts[1] += 1;
        }
    }
    for record in &sections.authority {
        if w.record(record)? {
            counts[2] += 1;
        }
    }
    if let Some(bytes) = query.edns_bytes {
        // Root owner, type OPT, the buffer size as class, TTL 0 (extended rcode 0, version 0).
        w.out.push(0);
        w.out.extend_from_slice(&41u16.to_be_bytes());
        w.out
            .extend_from_slice(&bytes.max(UDP_BYTES_DEFAULT as u16).to_be_bytes());
        w.out.extend_from_slice(&0u32.to_be_bytes());
        match &query.ecs {
            Some(ecs) => {
                let len = u16::try_from(ecs.len() + 4).ok()?;
                w.out.extend_from_slice(&len.to_be_bytes());
                w.out.extend_from_slice(&ECS_OPTION_CODE.to_be_bytes());
                w.out.extend_from_slice(&(len - 4).to_be_bytes());
                let at = w.out.len();
                w.out.extend_from_slice(ecs);
                if let Some(scope) = w.out.get_mut(at + 3) {
                    *scope = 0;
                }
            }
            None => w.out.extend_from_slice(&0u16.to_be_bytes()),
        }
        counts[3] += 1;
    }
    let mut seen: BTreeSet<&Record> = BTreeSet::new();
    let extras = answers
        .iter()
        .flat_map(|(_, extras)| extras)
        .chain(&sections.additional);
    for record in extras {
        if seen.insert(record) && w.record(record)? {
            counts[3] += 1;
        }
    }
    for (i, count) in counts.iter().enumerate() {
        w.out[4 + 2 * i..6 + 2 * i].copy_from_slice(&count.to_be_bytes());
    }
    Some(w.out)
}

/// Writes names and records for [`build_direct`].
struct Writer {
    out: Vec<u8>,
    /// Where each name suffix written so far (compressed form) starts, first occurrence only.
    suffixes: Vec<u16>,
    compress: bool,
}

impl Writer {
    /// Writes `labels`, compressed when asked and enabled.
    fn name(&mut self, labels: &[&[u8]], compressed: bool) {
        let compressed = compressed && self.compress;
        for i in 0..labels.len() {
            if compressed {
                if let Some(at) = self.find(&labels[i..]) {
                    self.out.extend_from_slice(&(at | 0xc000).to_be_bytes());
                    return;
                }
                if let Ok(at) = u16::try_from(self.out.len()) {
                    if at <= 0x3fff {
                        self.suffixes.push(at);
                    }
                }
            }
            self.out.push(labels[i].len() as u8);
            self.out.extend_from_slice(labels[i]);
        }
        self.out.push(0);
    }

    /// The first recorded suffix equal (byte for byte) to `labels`.
    fn find(&self, labels: &[&[u8]]) -> Option<u16> {
        self.suffixes
            .iter()
            .copied()
            .find(|&at| self.equals(usize::from(at), labels))
    }

    /// Whether the name written at `at` (following pointers) is exactly `labels`.
    fn equals(&self, mut at: usize, labels: &[&[u8]]) -> bool {
        let mut rest = labels;
        // Pointers only go backwards, so this ends; the bound guards against a bug looping.
        for _ in 0..(NAME_BYTES_MAX + labels.len()) {
            let Some(&len) = self.out.get(at) else {
                return false;
            };
            if len & 0xc0 == 0xc0 {
                let Some(&low) = self.out.get(at + 1) else {
                    return false;
                };
                at = usize::from(u16::from_be_bytes([len & 0x3f, low]));
                continue;
            }
            if len == 0 {
                return rest.is_empty();
            }
            let Some((first, tail)) = rest.split_first() else {
                return false;
            };
            let len = usize::from(len);
            if self.out.get(at + 1..at + 1 + len) != Some(*first) {
                return false;
            }
            rest = tail;
            at += 1 + len;
        }
        false
    }

    /// Writes `record`: `Some(true)` when written, `Some(false)` when a name or string does not fit the wire
    /// (skipped, as simple-dns's records are), `None` when simple-dns must write the packet.
    fn record(&mut self, record: &Record) -> Option<bool> {
        let Some(owner) = direct_labels(&record.name)? else {
            return Some(false);
        };
        // Check the data's names before writing anything.
        let (first, second) = match &record.data {
            RData::Cname(t) | RData::Ptr(t) | RData::Ns(t) | RData::Srv { target: t, .. } => {
                match direct_labels(t)? {
                    Some(labels) => (Some(labels), None),
                    None => return Some(false),
                }
            }
            RData::Soa { mname, rname, .. } => {
                match (direct_labels(mname)?, direct_labels(rname)?) {
                    (Some(m), Some(r)) => (Some(m), Some(r)),
                    _ => return Some(false),
                }
            }
            RData::Txt(strings) if strings.iter().any(|s| s.len() > TXT_STRING_BYTES_MAX) => {
                return Some(false)
            }
            _ => (None, None),
        };
        let start = self.out.len();
        let suffixes = self.suffixes.len();
        self.name(&owner, true);
        let code: u16 = match record.data {
            RData::A(_) => 1,
            RData::Ns(_) => 2,
            RData::Cname(_) => 5,
            RData::Soa { .. } => 6,
            RData::Ptr(_) => 12,
            RData::Txt(_) => 16,
            RData::Aaaa(_) => 28,
            RData::Srv { .. } => 33,
        };
        self.out.extend_from_slice(&code.to_be_bytes());
        self.out.extend_from_slice(&1u16.to_be_bytes());
        self.out.extend_from_slice(&record.ttl_s.to_be_bytes());
        let len_at = self.out.len();
        self.out.extend_from_slice(&[0, 0]);
        match &record.data {
            RData::A(ip) => self.out.extend_from_slice(&ip.octets()),
            RData::Aaaa(ip) => self.out.extend_from_slice(&ip.octets()),
            RData::Cname(_) | RData::Ptr(_) | RData::Ns(_) => {
                self.name(first.as_deref().unwrap_or(&[]), true)
            }
            RData::Srv {
                priority,
                weight,
                port,
                ..
            } => {
                self.out.extend_from_slice(&priority.to_be_bytes());
                self.out.extend_from_slice(&weight.to_be_bytes());
                self.out.extend_from_slice(&port.to_be_bytes());
                self.name(first.as_deref().unwrap_or(&[]), false);
            }
            RData::Txt(strings) => {
                for s in strings {
                    self.out.push(s.len() as u8);
                    self.out.extend_from_slice(s.as_bytes());
                }
            }
            RData::Soa {
                serial,
                refresh_s,
                retry_s,
                expire_s,
                minimum_s,
                ..
            } => {
                self.name(first.as_deref().unwrap_or(&[]), true);
                self.name(second.as_deref().unwrap_or(&[]), true);
                for value in [
                    *serial,
                    (*refresh_s).min(i32::MAX as u32),
                    (*retry_s).min(i32::MAX as u32),
                    (*expire_s).min(i32::MAX as u32),
                    *minimum_s,
                ] {
                    self.out.extend_from_slice(&value.to_be_bytes());
                }
            }
        }
        let Ok(len) = u16::try_from(self.out.len() - len_at - 2) else {
            self.out.truncate(start);
            self.suffixes.truncate(suffixes);
            return None;
        };
        self.out[len_at..len_at + 2].copy_from_slice(&len.to_be_bytes());
        Some(true)
    }
}

/// The labels of `text` as [`name`] reads it: `Some(None)` when it does not fit the wire, `None` when it
/// has a backslash (left to simple-dns).
fn direct_labels(text: &str) -> Option<Option<Vec<&[u8]>>> {
    if text.contains('\\') {
        return None;
    }
    let text = text.strip_suffix('.').unwrap_or(text);
    if text.is_empty() {
        return Some(Some(Vec::new()));
    }
    if text.len() + 2 > NAME_BYTES_MAX {
        return Some(None);
    }
    let labels: Vec<&[u8]> = text.split('.').map(str::as_bytes).collect();
    if labels.iter().any(|l| l.is_empty() || l.len() > 63) {
        return Some(None);
    }
    Some(Some(labels))
}

/// Writes the response with simple-dns.
fn build_with_simple_dns(
    query: &Query,
    sections: &Sections,
    answers: &[(Record, Vec<Record>)],
    truncated: bool,
    shape: Shape,
) -> Vec<u8> {
    let mut packet = Packet::new_reply(query.id);
    *packet.opcode_mut() = OPCODE::StandardQuery;
    packet.set_flags(PacketFlag::AUTHORITATIVE_ANSWER);
    if query.recursion_desired {
        packet.set_flags(PacketFlag::RECURSION_DESIRED);
    }
    if query.checking_disabled {
        packet.set_flags(PacketFlag::CHECKING_DISABLED);
    }
    if shape.recursion_available {
        packet.set_flags(PacketFlag::RECURSION_AVAILABLE);
    }
    if truncated {
        packet.set_flags(PacketFlag::TRUNCATION);
    }
    *packet.rcode_mut() = rcode_of(sections.rcode);
    let labels: Option<Vec<Label<'_>>> = query
        .labels
        .iter()
        .map(|l| Label::new(l.as_slice()).ok())
        .collect();
    let code = query.qtype.code();
    let qtype = QTYPE::try_from(code).unwrap_or(QTYPE::TYPE(TYPE::from(code)));
    let qclass = QCLASS::try_from(query.qclass).unwrap_or(QCLASS::CLASS(CLASS::IN));
    if let Some(labels) = labels {
        packet.questions.push(Question::new(
            Name::new_with_labels(&labels),
            qtype,
            qclass,
            false,
        ));
    }
    for (answer, _) in answers {
        if let Some(rr) = resource(answer) {
            packet.answers.push(rr);
        }
    }
    for record in &sections.authority {
        if let Some(rr) = resource(record) {
            packet.name_servers.push(rr);
        }
    }
    let mut seen: BTreeSet<&Record> = BTreeSet::new();
    let extras = answers
        .iter()
        .flat_map(|(_, extras)| extras)
        .chain(&sections.additional);
    for record in extras {
        if seen.insert(record) {
            if let Some(rr) = resource(record) {
                packet.additional_records.push(rr);
            }
        }
    }
    if let Some(bytes) = query.edns_bytes {
        let mut opt_codes = Vec::new();
        if let Some(ecs) = &query.ecs {
            let mut data = ecs.clone();
            // FAMILY(2) SOURCE PREFIX(1) SCOPE PREFIX(1) ADDRESS: the answers are the same for every subnet.
            if let Some(scope) = data.get_mut(3) {
                *scope = 0;
            }
            opt_codes.push(OPTCode {
                code: ECS_OPTION_CODE,
                data: Cow::Owned(data),
            });
        }
        *packet.opt_mut() = Some(OPT {
            opt_codes,
            udp_packet_size: bytes.max(UDP_BYTES_DEFAULT as u16),
            version: 0,
        });
    }
    let written = if shape.compress {
        packet.build_bytes_vec_compressed()
    } else {
        packet.build_bytes_vec()
    };
    written.unwrap_or_else(|_| header_only(query.id, query.opcode, rcode::SERVFAIL))
}

/// A response with only a header: `rcode`, QR and the ID (for FORMERR, and when nothing else can be
/// written).
pub fn header_only(id: u16, opcode: u8, rcode: u8) -> Vec<u8> {
    let flags: u16 = 0x8000 | (u16::from(opcode & 0x0f) << 11) | u16::from(rcode & 0x0f);
    let mut out = Vec::with_capacity(HEADER_BYTES);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&[0; 8]);
    out
}

/// A reverse-lookup helper for tests and callers: the IP of an A/AAAA record's data.
pub fn record_ip(record: &Record) -> Option<IpAddr> {
    match record.data {
        RData::A(ip) => Some(IpAddr::V4(ip)),
        RData::Aaaa(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    }
}

#[cfg(test)]
mod direct_tests {
    use super::*;
    use core::net::Ipv4Addr;

    fn record(name: &str, data: RData) -> Record {
        Record {
            name: name.to_string(),
            ttl_s: 5,
            data,
        }
    }

    #[test]
    fn the_direct_writer_writes_what_simple_dns_writes() {
        let query = Query {
            id: 7,
            opcode: 0,
            recursion_desired: true,
            checking_disabled: true,
            labels: vec![b"Web".to_vec(), b"service".to_vec(), b"consul".to_vec()],
            qtype: QType::Srv,
            qclass: 1,
            edns_bytes: Some(1232),
            ecs: Some(vec![0, 1, 24, 9, 10, 0, 0]),
        };
        let target = "web-1.node.dc1.consul";
        let sections = Sections {
            rcode: 0,
            answers: vec![
                (
                    record(
                        "Web.service.consul",
                        RData::Srv {
                            priority: 1,
                            weight: 1,
                            port: 8080,
                            target: target.to_string(),
                        },
                    ),
                    vec![
                        record(target, RData::A(Ipv4Addr::new(10, 0, 0, 1))),
                        record(target, RData::Txt(vec!["a=b".to_string()])),
                    ],
                ),
                (
                    record(
                        "Web.service.consul",
                        RData::Cname("db.example.".to_string()),
                    ),
                    Vec::new(),
                ),
                (
                    record("bad..name", RData::A(Ipv4Addr::LOCALHOST)),
                    Vec::new(),
                ),
            ],
            authority: vec![
                record(
                    "consul",
                    RData::Soa {
                        mname: "ns.consul".to_string(),
                        rname: "hostmaster.consul".to_string(),
                        serial: 3,
                        refresh_s: u32::MAX,
                        retry_s: 2,
                        expire_s: 3,
                        minimum_s: 4,
                    },
                ),
                record("consul", RData::Ns("server1.node.dc1.consul".to_string())),
            ],
            additional: vec![record(
                "server1.node.dc1.consul",
                RData::Aaaa("::1".parse().unwrap_or(core::net::Ipv6Addr::LOCALHOST)),
            )],
        };
        for compress in [true, false] {
            for truncated in [true, false] {
                let shape = Shape {
                    transport: Transport::Udp,
                    udp_answers_max: 3,
                    enable_truncate: false,
                    recursion_available: true,
                    compress,
                };
                let direct = build_direct(&query, &sections, &sections.answers, truncated, shape);
                assert_eq!(
                    direct,
                    Some(build_with_simple_dns(
                        &query,
                        &sections,
                        &sections.answers,
                        truncated,
                        shape
                    ))
                );
            }
        }
        // A backslash is left to simple-dns.
        let mut escaped = query.clone();
        escaped.labels[0] = b"w\\065b".to_vec();
        let shape = Shape {
            transport: Transport::Tcp,
            udp_answers_max: 3,
            enable_truncate: false,
            recursion_available: false,
            compress: true,
        };
        assert_eq!(build_direct(&escaped, &sections, &[], false, shape), None);
    }
}
