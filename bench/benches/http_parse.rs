//! `http_parse`: cairn's incremental request parser (`cairn_io::http::RequestParser`, producing an owned
//! `Request`) beside its floor, a bare `httparse` parse of the same bytes (borrowed slices, plus a body copy
//! where there is a body), measured in the same run.
//!
//! Cases: a blocking KV read as Consul's Go client sends it (`GET /v1/kv/foo?index=10&wait=5m`, 6 header
//! fields); a KV write with a 4 KiB body; 16 such GETs pipelined in one buffer; and the GET arriving in two
//! reads (the parser's gathering path). Criterion reports bytes/s for each; then a summary prints the median
//! ns per request and the parser/floor ratios. Run: `cargo bench -p cairn-bench --bench http_parse`.

use cairn_bench::is_bench_run;
use cairn_io::http::{ParseEvent, ParserLimits, Request, RequestParser};
use criterion::{black_box, Criterion, Throughput};
use std::time::{Duration, Instant};

const GET: &[u8] = b"GET /v1/kv/foo?index=10&wait=5m HTTP/1.1\r\n\
Host: 127.0.0.1:8500\r\n\
User-Agent: Go-http-client/1.1\r\n\
Accept: application/json\r\n\
X-Consul-Token: 3f6c1d9e-7a41-4b0e-9f52-1c2d3e4f5a6b\r\n\
Accept-Encoding: gzip\r\n\
Connection: keep-alive\r\n\r\n";

const PIPELINED_REQUESTS: usize = 16;

fn put_4k() -> Vec<u8> {
    let mut bytes = b"PUT /v1/kv/config/app/settings HTTP/1.1\r\n\
Host: 127.0.0.1:8500\r\n\
User-Agent: Go-http-client/1.1\r\n\
Content-Length: 4096\r\n\
Content-Type: application/octet-stream\r\n\
X-Consul-Token: 3f6c1d9e-7a41-4b0e-9f52-1c2d3e4f5a6b\r\n\
Accept-Encoding: gzip\r\n\r\n"
        .to_vec();
    bytes.extend((0..4096).map(|i| b'a' + (i % 26) as u8));
    bytes
}

/// Feeds `pieces` to `parser` and returns the requests completed (the parser is reused, as on a connection).
fn parse_cairn(parser: &mut RequestParser, pieces: &[&[u8]], out: &mut Vec<Request>) {
    for piece in pieces {
        let mut input = *piece;
        loop {
            let parsed = parser.parse(input).expect("a valid request");
            input = &input[parsed.consumed_bytes..];
            match parsed.event {
                ParseEvent::Request(request) => out.push(request),
                ParseEvent::SendContinue => {}
                ParseEvent::NeedMore => break,
            }
        }
    }
}

/// The floor: httparse over each complete request, plus copying the body out. Returns requests parsed.
fn parse_floor(bytes: &[u8]) -> usize {
    let mut input = bytes;
    let mut count = 0;
    while !input.is_empty() {
        let mut fields = [httparse::EMPTY_HEADER; 100];
        let mut request = httparse::Request::new(&mut fields);
        let head = match request.parse(input).expect("a valid request") {
            httparse::Status::Complete(head) => head,
            httparse::Status::Partial => panic!("incomplete request"),
        };
        let length: usize = request
            .headers
            .iter()
            .find(|field| field.name.eq_ignore_ascii_case("content-length"))
            .and_then(|field| std::str::from_utf8(field.value).ok()?.parse().ok())
            .unwrap_or(0);
        black_box(request.path);
        black_box(input[head..head + length].to_vec());
        input = &input[head + length..];
        count += 1;
    }
    count
}

/// One case: its name, its bytes, and how they arrive (split points).
struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    cuts: Vec<usize>,
    requests: usize,
}

impl Case {
    fn pieces(&self) -> Vec<&[u8]> {
        let mut pieces = Vec::new();
        let mut from = 0;
        for &cut in self.cuts.iter().chain(std::iter::once(&self.bytes.len())) {
            pieces.push(&self.bytes[from..cut]);
            from = cut;
        }
        pieces
    }
}

fn cases() -> Vec<Case> {
    let pipelined: Vec<u8> = GET.repeat(PIPELINED_REQUESTS);
    vec![
        Case {
            name: "get_kv_blocking",
            bytes: GET.to_vec(),
            cuts: vec![],
            requests: 1,
        },
        Case {
            name: "put_kv_4k",
            bytes: put_4k(),
            cuts: vec![],
            requests: 1,
        },
        Case {
            name: "get_pipelined_16",
            bytes: pipelined,
            cuts: vec![],
            requests: PIPELINED_REQUESTS,
        },
        Case {
            name: "get_in_two_reads",
            bytes: GET.to_vec(),
            cuts: vec![GET.len() / 2],
            requests: 1,
        },
    ]
}

fn criterion_cases(c: &mut Criterion) {
    let mut group = c.benchmark_group("http_parse");
    for case in cases() {
        let pieces = case.pieces();
        group.throughput(Throughput::Bytes(case.bytes.len() as u64));
        let mut parser = RequestParser::new(ParserLimits::default());
        let mut out = Vec::with_capacity(case.requests);
        group.bench_function(format!("{}/cairn", case.name), |b| {
            b.iter(|| {
                out.clear();
                parse_cairn(&mut parser, &pieces, &mut out);
                assert_eq!(out.len(), case.requests);
            })
        });
        group.bench_function(format!("{}/httparse_floor", case.name), |b| {
            b.iter(|| assert_eq!(parse_floor(black_box(&case.bytes)), case.requests))
        });
    }
    group.finish();
}

/// Median ns per request of `rounds` interleaved batches of the parser and the floor.
fn summary(rounds: usize, batch: usize) {
    println!(
        "\nhttp_parse summary: median ns per request over {rounds} interleaved batches of {batch}"
    );
    println!(
        "  {:<18} {:>10} {:>10} {:>8}",
        "case", "cairn", "floor", "ratio"
    );
    for case in cases() {
        let pieces = case.pieces();
        let mut parser = RequestParser::new(ParserLimits::default());
        let mut out = Vec::with_capacity(case.requests);
        let mut cairn = Vec::with_capacity(rounds);
        let mut floor = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let start = Instant::now();
            for _ in 0..batch {
                out.clear();
                parse_cairn(&mut parser, &pieces, &mut out);
            }
            cairn.push(start.elapsed());
            assert_eq!(out.len(), case.requests);
            let start = Instant::now();
            for _ in 0..batch {
                black_box(parse_floor(black_box(&case.bytes)));
            }
            floor.push(start.elapsed());
        }
        let per_request = |samples: &mut Vec<Duration>| {
            samples.sort();
            samples[samples.len() / 2].as_nanos() as f64 / (batch * case.requests) as f64
        };
        let (cairn, floor) = (per_request(&mut cairn), per_request(&mut floor));
        println!(
            "  {:<18} {:>10.1} {:>10.1} {:>7.2}x",
            case.name,
            cairn,
            floor,
            cairn / floor
        );
    }
}

fn main() {
    if is_bench_run() {
        let mut c = Criterion::default().configure_from_args();
        criterion_cases(&mut c);
        c.final_summary();
        summary(200, 1000);
    } else {
        summary(3, 10);
    }
}
