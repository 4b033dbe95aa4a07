//! Unit tests of the pure parts: the request parser and the response encoder. Random inputs come
//! from a seeded PRNG, so every run checks the same cases.

use super::parser::CHUNK_LINE_BYTES_MAX;
use super::*;
use crate::testing::SplitMix64 as Rng;

fn default_parser() -> RequestParser {
    RequestParser::new(ParserLimits::default())
}

fn parser_with(limits: ParserLimits) -> RequestParser {
    RequestParser::new(limits)
}

/// Feeds `input` until the parser needs more, collecting the events. Bounded: each call must
/// consume bytes or change state, so more calls than bytes (plus a margin) is a bug.
fn feed(parser: &mut RequestParser, mut input: &[u8]) -> Result<Vec<ParseEvent>, ParseError> {
    let mut events = Vec::new();
    for _ in 0..input.len() + 16 {
        let parsed = parser.parse(input)?;
        assert!(
            parsed.consumed_bytes <= input.len(),
            "consumed past the input"
        );
        input = &input[parsed.consumed_bytes..];
        match parsed.event {
            ParseEvent::NeedMore => {
                assert!(input.is_empty(), "NeedMore must consume every byte");
                return Ok(events);
            }
            event => events.push(event),
        }
    }
    panic!("the parser made no progress");
}

/// Only the requests among the events (SendContinue depends on how the input was split).
fn requests(events: Vec<ParseEvent>) -> Vec<Request> {
    events
        .into_iter()
        .filter_map(|event| match event {
            ParseEvent::Request(request) => Some(request),
            _ => None,
        })
        .collect()
}

fn parse_one(input: &[u8]) -> Request {
    let mut requests = requests(feed(&mut default_parser(), input).expect("a valid request"));
    assert_eq!(requests.len(), 1, "exactly one request");
    requests.remove(0)
}

fn parse_err(input: &[u8]) -> ParseError {
    parse_err_with(ParserLimits::default(), input)
}

fn parse_err_with(limits: ParserLimits, input: &[u8]) -> ParseError {
    match feed(&mut parser_with(limits), input) {
        Ok(events) => panic!("expected an error, got {events:?}"),
        Err(error) => error,
    }
}

#[test]
fn parses_a_get_with_query_and_headers() {
    let request = parse_one(
        b"GET /v1/kv/foo?index=10&wait=5m HTTP/1.1\r\nHost: localhost:8500\r\n\
          X-Consul-Token: secret\r\nAccept: */*\r\n\r\n",
    );
    assert_eq!(request.method, Method::Get);
    assert_eq!(request.path, "/v1/kv/foo");
    assert_eq!(request.query, "index=10&wait=5m");
    assert_eq!(request.version, Version::Http11);
    assert_eq!(request.headers.len(), 3);
    assert_eq!(request.headers.get_str("x-consul-token"), Some("secret"));
    assert_eq!(request.headers.get("HOST"), Some(&b"localhost:8500"[..]));
    assert!(request.body.is_empty());
    assert!(request.keep_alive());
}

#[test]
fn parses_targets_and_methods() {
    let request = parse_one(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(
        (request.method, request.path.as_str()),
        (Method::Options, "*")
    );
    let request =
        parse_one(b"GET http://example.com:8500/v1/status/leader?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(
        (request.path.as_str(), request.query.as_str()),
        ("/v1/status/leader", "x=1")
    );
    let request = parse_one(b"GET HTTP://example.com HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(request.path, "/");
    let request = parse_one(b"PURGE /x? HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(request.method, Method::Other("PURGE".to_string()));
    assert_eq!((request.path.as_str(), request.query.as_str()), ("/x", ""));
    assert_eq!(
        parse_err(b"GET foo HTTP/1.1\r\nHost: a\r\n\r\n").status(),
        400
    );
}

#[test]
fn keep_alive_follows_version_and_connection() {
    let cases: [(&[u8], bool); 6] = [
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            false,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Close\r\n\r\n",
            false,
        ),
        (b"GET / HTTP/1.0\r\n\r\n", false),
        (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
        (
            b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
            false,
        ),
    ];
    for (input, keep_alive) in cases {
        let request = parse_one(input);
        assert_eq!(
            request.keep_alive(),
            keep_alive,
            "{}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn pipelined_requests_come_out_in_order() {
    let input = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n\
                  PUT /b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc\
                  POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n\
                  DELETE /d HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut parser = default_parser();
    let first = parser.parse(input).expect("parse");
    assert_eq!(first.consumed_bytes, 28);
    let mut requests = requests(vec![first.event]);
    requests.extend(self::requests(
        feed(&mut parser, &input[28..]).expect("parse"),
    ));
    let summary: Vec<(Method, String, Vec<u8>)> = requests
        .into_iter()
        .map(|request| (request.method, request.path, request.body))
        .collect();
    assert_eq!(
        summary,
        vec![
            (Method::Get, "/a".to_string(), vec![]),
            (Method::Put, "/b".to_string(), b"abc".to_vec()),
            (Method::Post, "/c".to_string(), b"hi".to_vec()),
            (Method::Delete, "/d".to_string(), vec![]),
        ]
    );
    assert!(parser.is_idle());
}

#[test]
fn content_length_body_across_inputs() {
    let mut parser = default_parser();
    let events = feed(
        &mut parser,
        b"PUT /v1/kv/k HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n01234",
    )
    .expect("head");
    assert!(events.is_empty());
    assert!(!parser.is_idle());
    assert_eq!(parser.buffered_bytes(), 5);
    let mut requests = requests(feed(&mut parser, b"56789GET").expect("body"));
    assert_eq!(requests.len(), 1);
    assert_eq!(requests.remove(0).body, b"0123456789");
    // "GET" of the next request is held as a partial head.
    assert!(!parser.is_idle());
}

#[test]
fn chunked_body_with_extensions_and_trailers() {
    let request = parse_one(
        b"POST /v1/txn HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n\
          5;name=value\r\nhello\r\n1 \r\n \r\nA\r\n0123456789\r\n0\r\n\
          X-Trailer: one\r\nX-Other: two\r\n\r\n",
    );
    assert_eq!(request.body, b"hello 0123456789");
    // Trailers are skipped, not merged into the headers.
    assert!(!request.headers.contains("x-trailer"));
    let request =
        parse_one(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\n");
    assert!(request.body.is_empty());
}

#[test]
fn chunked_framing_errors() {
    let head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    for body in [
        "zz\r\n",
        "5\r\nhelloXY",
        "5\n",
        "-1\r\n",
        "12345678901234567\r\n",
    ] {
        let error = parse_err(format!("{head}{body}").as_bytes());
        assert_eq!(error.status(), 400, "{body:?}: {error}");
    }
    let long_line = format!("{head}1;{}", "x".repeat(CHUNK_LINE_BYTES_MAX));
    assert_eq!(parse_err(long_line.as_bytes()).status(), 400);
    let long_trailers = format!("{head}0\r\nX-T: {}", "x".repeat(64 << 10));
    assert_eq!(parse_err(long_trailers.as_bytes()).status(), 431);
}

#[test]
fn expect_continue_asks_for_an_interim_response() {
    let head =
        b"PUT /v1/kv/k HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
    let mut parser = default_parser();
    let parsed = parser.parse(head).expect("head");
    assert_eq!(parsed.consumed_bytes, head.len());
    assert_eq!(parsed.event, ParseEvent::SendContinue);
    let parsed = parser.parse(b"").expect("nothing");
    assert_eq!(parsed.event, ParseEvent::NeedMore);
    let request = requests(feed(&mut parser, b"data").expect("body")).remove(0);
    assert_eq!(request.body, b"data");
    assert!(request.expects_continue());

    // Body bytes already here: no interim response.
    let mut whole = head.to_vec();
    whole.extend_from_slice(b"data");
    let events = feed(&mut default_parser(), &whole).expect("whole");
    assert!(matches!(events.as_slice(), [ParseEvent::Request(_)]));
    // No body, or HTTP/1.0: no interim response either.
    let events = feed(
        &mut default_parser(),
        b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
    )
    .expect("no body");
    assert!(matches!(events.as_slice(), [ParseEvent::Request(_)]));
    let events = feed(
        &mut default_parser(),
        b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
    )
    .expect("1.0");
    assert!(events.is_empty());
    // Other expectations are refused.
    assert_eq!(
        parse_err(b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n").status(),
        417
    );
}

#[test]
fn body_limit_is_checked_before_the_body_arrives() {
    let limits = ParserLimits {
        body_bytes_max: 100,
        ..ParserLimits::default()
    };
    let error = parse_err_with(
        limits.clone(),
        b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n",
    );
    assert_eq!(
        error,
        ParseError::BodyTooLarge {
            body_bytes: 101,
            body_bytes_max: 100
        }
    );
    assert_eq!(error.status(), 413);
    // A huge declared length neither overflows nor allocates.
    let error =
        parse_err(b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n");
    assert_eq!(error.status(), 413);
    // With 100-continue the check comes before the interim response.
    let error = parse_err_with(
        limits.clone(),
        b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 500\r\n\r\n",
    );
    assert_eq!(error.status(), 413);
    // A chunked body is checked as it grows, before the chunk that would cross the limit.
    let mut parser = parser_with(limits.clone());
    let ok = feed(
        &mut parser,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n32\r\n",
    );
    assert!(ok.is_ok());
    let chunk = [b'x'; 50];
    assert!(feed(&mut parser, &chunk).is_ok());
    let error = feed(&mut parser, b"\r\n33\r\n").expect_err("over the limit");
    assert_eq!(
        error,
        ParseError::BodyTooLarge {
            body_bytes: 101,
            body_bytes_max: 100
        }
    );
    assert_eq!(parser.buffered_bytes(), 0);
    // The error is sticky: the framing is lost.
    assert_eq!(parser.parse(b"GET / HTTP/1.1\r\n\r\n"), Err(error));
}

#[test]
fn body_limit_can_be_raised_per_route() {
    let limits = ParserLimits {
        body_bytes_max: 10,
        body_limit: Some(BodyLimit::new(|head: &Request| {
            if head.path.starts_with("/v1/snapshot") {
                1000
            } else {
                10
            }
        })),
        ..ParserLimits::default()
    };
    let big = format!(
        "PUT /v1/snapshot HTTP/1.1\r\nHost: a\r\nContent-Length: 500\r\n\r\n{}",
        "s".repeat(500)
    );
    let request =
        requests(feed(&mut parser_with(limits.clone()), big.as_bytes()).expect("raised")).remove(0);
    assert_eq!(request.body.len(), 500);
    let error = parse_err_with(
        limits,
        b"PUT /v1/kv/k HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n",
    );
    assert_eq!(error.status(), 413);
}

#[test]
fn head_limits_answer_431() {
    let limits = ParserLimits {
        header_bytes_max: 1024,
        header_count_max: 5,
        ..ParserLimits::default()
    };
    let big = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "v".repeat(1024)
    );
    let error = parse_err_with(limits.clone(), big.as_bytes());
    assert_eq!(
        error,
        ParseError::HeadersTooLarge {
            header_bytes_max: 1024
        }
    );
    // The same in pieces, and without the end ever arriving.
    let mut parser = parser_with(limits.clone());
    let mut result = Ok(Vec::new());
    for piece in big.as_bytes()[..big.len() - 4].chunks(7) {
        result = feed(&mut parser, piece);
        if result.is_err() {
            break;
        }
        assert!(parser.buffered_bytes() <= 1025);
    }
    assert_eq!(
        result.map(|_| ()),
        Err(ParseError::HeadersTooLarge {
            header_bytes_max: 1024
        })
    );
    let many: String = (0..6).map(|i| format!("X-{i}: v\r\n")).collect();
    let error = parse_err_with(
        limits.clone(),
        format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes(),
    );
    assert_eq!(
        error,
        ParseError::TooManyHeaders {
            header_count_max: 5
        }
    );
    assert_eq!(error.status(), 431);
    // Exactly at the limits is fine.
    let five: String = (0..4).map(|i| format!("X-{i}: v\r\n")).collect();
    parse_one(format!("GET / HTTP/1.1\r\nHost: a\r\n{five}\r\n").as_bytes());
    let exact = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
        "v".repeat(1024 - 32)
    );
    assert_eq!(exact.len(), 1024);
    let events = feed(&mut parser_with(limits), exact.as_bytes()).expect("at the limit");
    assert_eq!(requests(events).len(), 1);
}

#[test]
fn malformed_heads_name_their_status() {
    let cases: [(&[u8], u16); 14] = [
        (b"garbage\r\n\r\n", 400),
        (b"\x00\x01\x02\x03", 400),
        (b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        (b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505),
        (b"GET / HTTP/2\r\n\r\n", 505),
        (b"GET / FTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400),
        (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    ];
    for (input, status) in cases {
        let error = parse_err(input);
        assert_eq!(
            error.status(),
            status,
            "{:?}: {error}",
            String::from_utf8_lossy(input)
        );
        let response = error.to_response();
        assert_eq!(response.status, status);
        assert!(!response.body.is_empty());
    }
    for value in ["", "abc", "-1", "+5", "1 2", "0x10"] {
        let input = format!("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: {value}\r\n\r\n");
        assert_eq!(parse_err(input.as_bytes()).status(), 400, "{value:?}");
    }
    let conflicting =
        b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
    assert_eq!(parse_err(conflicting).status(), 400);
    let same = b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx";
    assert_eq!(parse_one(same).body, b"x");
}

#[test]
fn garbage_is_refused_before_the_head_limit() {
    let mut parser = default_parser();
    let error = parser
        .parse(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        .expect_err("TLS hello");
    assert_eq!(error.status(), 400);
    let mut parser = default_parser();
    assert!(parser.parse(b"GE").is_ok());
    assert_eq!(
        parser
            .parse(b"T /\x7f")
            .map(|_| ())
            .expect_err("bad")
            .status(),
        400
    );
}

#[test]
fn empty_lines_between_requests_are_ignored() {
    let mut parser = default_parser();
    let events = feed(&mut parser, b"\r\n\r\n\n").expect("empty lines");
    assert!(events.is_empty());
    assert!(parser.is_idle());
    let input = b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n";
    let paths: Vec<String> = requests(feed(&mut parser, input).expect("requests"))
        .into_iter()
        .map(|request| request.path)
        .collect();
    assert_eq!(paths, ["/", "/2"]);
}

/// Valid requests covering every framing, concatenated (pipelined) for the split tests.
fn valid_stream() -> Vec<u8> {
    let mut stream = Vec::new();
    stream.extend_from_slice(b"GET /v1/kv/foo?index=10&wait=5m HTTP/1.1\r\nHost: 127.0.0.1:8500\r\nUser-Agent: consul\r\nAccept-Encoding: gzip\r\nX-Consul-Token: 3f6c\r\nAccept: */*\r\nX-Request-Id: 1\r\n\r\n");
    stream.extend_from_slice(b"\r\nPUT /v1/kv/bar HTTP/1.1\r\nhost: a\r\nContent-Length: 12\r\nExpect: 100-continue\r\n\r\nhello world!");
    stream.extend_from_slice(b"POST /v1/txn HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: never\r\n\r\n");
    stream.extend_from_slice(b"GET /lf HTTP/1.0\nConnection: keep-alive\n\n");
    stream
        .extend_from_slice(b"HEAD /v1/agent/self HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    stream
}

fn parse_in_pieces(input: &[u8], cuts: &[usize]) -> Result<Vec<Request>, ParseError> {
    let mut parser = default_parser();
    let mut all = Vec::new();
    let mut from = 0;
    for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
        all.extend(requests(feed(&mut parser, &input[from..cut])?));
        from = cut;
    }
    assert!(parser.is_idle(), "a complete stream leaves the parser idle");
    Ok(all)
}

#[test]
fn splitting_a_valid_stream_anywhere_gives_the_same_requests() {
    let stream = valid_stream();
    let whole = parse_in_pieces(&stream, &[]).expect("whole");
    assert_eq!(whole.len(), 5);
    assert_eq!(whole[1].body, b"hello world!");
    assert_eq!(whole[2].body, b"Wikipedia in\r\n\r\nchunks.");
    assert_eq!(whole[3].version, Version::Http10);
    assert!(whole[3].keep_alive());
    assert_eq!(whole[4].method, Method::Head);
    // Every single cut point, then every pair of nearby cut points.
    for cut in 0..=stream.len() {
        assert_eq!(
            parse_in_pieces(&stream, &[cut]).expect("one cut"),
            whole,
            "cut at {cut}"
        );
    }
    for first in 0..stream.len() {
        for second in first..(first + 8).min(stream.len()) {
            assert_eq!(
                parse_in_pieces(&stream, &[first, second]).expect("two cuts"),
                whole
            );
        }
    }
    // Random cuts, byte by byte included.
    let mut rng = Rng::new(0x5EED_0001);
    for round in 0..500 {
        let mut cuts: Vec<usize> = (0..rng.below(40))
            .map(|_| rng.below(stream.len() + 1))
            .collect();
        cuts.sort_unstable();
        assert_eq!(
            parse_in_pieces(&stream, &cuts).expect("random cuts"),
            whole,
            "round {round}"
        );
    }
    let every_byte: Vec<usize> = (1..stream.len()).collect();
    assert_eq!(
        parse_in_pieces(&stream, &every_byte).expect("byte by byte"),
        whole
    );
}

#[test]
fn random_garbage_never_panics_or_overbuffers() {
    let limits = ParserLimits {
        header_bytes_max: 512,
        header_count_max: 8,
        body_bytes_max: 256,
        body_limit: None,
    };
    let buffered_max = 512 + 1 + CHUNK_LINE_BYTES_MAX + 256;
    let stream = valid_stream();
    let mut rng = Rng::new(0x5EED_0002);
    for round in 0..3000 {
        let input: Vec<u8> = match round % 3 {
            // Pure noise, biased towards HTTP-looking bytes.
            0 => (0..rng.below(2048))
                .map(|_| {
                    let alphabet = b"GET /HTP1.0\r\n:chunked;0123456789abcdefABCDEF ";
                    if rng.below(4) == 0 {
                        rng.next_u64() as u8
                    } else {
                        alphabet[rng.below(alphabet.len())]
                    }
                })
                .collect(),
            // A valid stream with a few bytes changed, inserted or removed.
            _ => {
                let mut mutated = stream.clone();
                for _ in 0..1 + rng.below(6) {
                    let at = rng.below(mutated.len());
                    match rng.below(3) {
                        0 => mutated[at] = rng.next_u64() as u8,
                        1 => mutated.insert(at, rng.next_u64() as u8),
                        _ => {
                            mutated.remove(at);
                        }
                    }
                }
                mutated
            }
        };
        let mut parser = parser_with(limits.clone());
        let mut from = 0;
        while from < input.len() {
            let to = (from + 1 + rng.below(64)).min(input.len());
            let result = feed(&mut parser, &input[from..to]);
            assert!(
                parser.buffered_bytes() <= buffered_max,
                "round {round}: buffered too much"
            );
            if let Err(error) = result {
                assert!([400, 413, 417, 431, 501, 505].contains(&error.status()));
                assert_eq!(parser.error(), Some(&error));
                break;
            }
            from = to;
        }
    }
}

#[test]
fn headers_lookup_and_edit() {
    let mut headers = Headers::new();
    headers.push("X-Consul-Index", "10");
    headers.push("Vary", "a");
    headers.push("vary", "b, c");
    assert_eq!(headers.get_str("x-consul-index"), Some("10"));
    assert_eq!(
        headers.get_all("VARY").collect::<Vec<_>>(),
        [&b"a"[..], &b"b, c"[..]]
    );
    assert!(headers.has_token("vary", "C"));
    assert!(!headers.has_token("vary", "d"));
    headers.set("Vary", "z");
    assert_eq!(headers.len(), 2);
    assert_eq!(headers.iter().last(), Some(("Vary", &b"z"[..])));
    assert_eq!(headers.remove("x-consul-index"), 1);
    assert_eq!(headers.get("x-consul-index"), None);
}

fn encode(response: &Response, version: Version, head_request: bool, close: bool) -> String {
    let mut out = Vec::new();
    encode_response(
        response,
        ResponseFraming {
            version,
            head_request,
            close,
        },
        &mut out,
    );
    String::from_utf8(out).expect("utf-8")
}

#[test]
fn responses_are_framed_by_the_writer() {
    let response = Response::json(200, "true").with_header("X-Consul-Index", "7");
    assert_eq!(
        encode(&response, Version::Http11, false, false),
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Consul-Index: 7\r\n\
         Content-Length: 4\r\n\r\ntrue"
    );
    // HEAD: the length of the body a GET would get, and no body.
    assert_eq!(
        encode(&response, Version::Http11, true, true),
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Consul-Index: 7\r\n\
         Content-Length: 4\r\nConnection: close\r\n\r\n"
    );
    // HTTP/1.0 keep-alive says so.
    assert_eq!(
        encode(&Response::text(404, "no"), Version::Http10, false, false),
        "HTTP/1.0 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: 2\r\nConnection: keep-alive\r\n\r\nno"
    );
    // 204 has neither body nor length; framing and unsafe fields from handlers are dropped.
    let response = Response::new(204)
        .with_body("ignored")
        .with_header("Content-Length", "99")
        .with_header("Connection", "keep-alive")
        .with_header("X-Split", "a\r\nInjected: yes")
        .with_header("Bad Name", "x")
        .with_header("X-Ok", "ok");
    assert_eq!(
        encode(&response, Version::Http11, false, false),
        "HTTP/1.1 204 No Content\r\nX-Ok: ok\r\n\r\n"
    );
    assert_eq!(
        encode(&Response::new(299), Version::Http11, false, false),
        "HTTP/1.1 299 \r\nContent-Length: 0\r\n\r\n"
    );
    assert!(encode(&Response::new(7), Version::Http11, false, false).starts_with("HTTP/1.1 500 "));
}
