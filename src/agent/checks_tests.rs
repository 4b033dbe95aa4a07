//! Tests of the check runner's pure parts (specs, HTTP bytes, status mappings, the schedule, thresholds,
//! alias aggregation, the critical tracker).
use super::*;

fn http_check(id: &str, url: &str, interval: &str) -> HealthCheck {
    HealthCheck {
        check_id: id.to_string(),
        check_type: "http".to_string(),
        definition: CheckDefinition {
            http: url.to_string(),
            interval: interval.to_string(),
            ..CheckDefinition::default()
        },
        ..HealthCheck::default()
    }
}

#[test]
fn specs_take_defaults_and_skip_what_the_agent_does_not_run() {
    let check = http_check("h", "http://127.0.0.1:80/x", "200ms");
    let s = spec(&check).expect("runnable");
    assert_eq!(
        (s.interval_ms, s.timeout_ms),
        (INTERVAL_MS_MIN, INTERVAL_MS_MIN)
    );
    let mut long = http_check("h", "http://127.0.0.1:80/x", "1m");
    assert_eq!(spec(&long).map(|s| s.timeout_ms), Some(TIMEOUT_MS_DEFAULT));
    long.definition.timeout = "2s".to_string();
    assert_eq!(spec(&long).map(|s| s.timeout_ms), Some(2_000));
    long.definition.interval = "1s".to_string();
    assert_eq!(spec(&long).map(|s| s.timeout_ms), Some(1_000));
    let Probe::Http(probe) = &s.probe else {
        panic!("not http");
    };
    assert_eq!(probe.method, "GET");
    let ttl = HealthCheck {
        check_type: "ttl".to_string(),
        ..HealthCheck::default()
    };
    assert!(spec(&ttl).is_none());
    assert!(spec(&http_check("h", "http://x", "")).is_none());
}

#[test]
fn urls_and_addresses_parse() {
    let t = parse_http_url("http://127.0.0.1:8080/health?x=1#frag").expect("url");
    assert_eq!(
        (
            t.authority.as_str(),
            t.host.as_str(),
            t.port,
            t.path.as_str()
        ),
        ("127.0.0.1:8080", "127.0.0.1", 8080, "/health?x=1")
    );
    let t = parse_http_url("http://example.com").expect("url");
    assert_eq!((t.port, t.path.as_str()), (80, "/"));
    let t = parse_http_url("http://[::1]:9?q").expect("url");
    assert_eq!(
        (t.host.as_str(), t.port, t.path.as_str()),
        ("::1", 9, "/?q")
    );
    let t = parse_http_url("https://example.com/h").expect("url");
    assert_eq!((t.tls, t.port, t.path.as_str()), (true, 443, "/h"));
    assert!(!parse_http_url("http://x/").expect("url").tls);
    assert!(parse_http_url("ftp://x/").is_err());
    assert!(split_host_port("host:notaport", 1).is_err());
    assert_eq!(resolve("127.0.0.1", 5), Ok("127.0.0.1:5".parse().unwrap()));
}

#[test]
fn statuses_map_like_consul() {
    assert_eq!(http_status(200), CheckStatus::Passing);
    assert_eq!(http_status(204), CheckStatus::Passing);
    assert_eq!(http_status(429), CheckStatus::Warning);
    assert_eq!(http_status(503), CheckStatus::Critical);
    assert_eq!(http_status(301), CheckStatus::Critical);
    assert_eq!(script_status(Some(0)), CheckStatus::Passing);
    assert_eq!(script_status(Some(1)), CheckStatus::Warning);
    assert_eq!(script_status(Some(2)), CheckStatus::Critical);
    assert_eq!(script_status(None), CheckStatus::Critical);
}

#[test]
fn requests_and_answers() {
    let probe = HttpProbe {
        url: "http://h:1/p".to_string(),
        method: "POST".to_string(),
        headers: vec![("X-A".to_string(), "b".to_string())],
        body: "hi".to_string(),
        tls: TlsOptions::default(),
        follow_redirects: true,
    };
    let target = parse_http_url(&probe.url).expect("url");
    let text = String::from_utf8(request_bytes(&probe, &target)).expect("utf8");
    assert!(
        text.starts_with("POST /p HTTP/1.1\r\nHost: h:1\r\n"),
        "{text}"
    );
    assert!(text.contains("X-A: b\r\nContent-Length: 2\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nhi"), "{text}");
    let answer = parse_answer(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nfine").expect("answer");
    assert_eq!((answer.code, answer.status.as_str()), (200, "200 OK"));
    assert_eq!(
        http_output(&probe, &answer, 4096),
        "HTTP POST http://h:1/p: 200 OK Output: fine"
    );
    let chunked = b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    let answer = parse_answer(chunked).expect("answer");
    assert_eq!((answer.code, answer.body.as_slice()), (503, &b"abcde"[..]));
    assert!(parse_answer(b"HTTP/1.1 200 OK\r\n").is_none());
    assert!(answer_complete(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    ));
    assert!(!answer_complete(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok"
    ));
    assert!(!answer_complete(b"HTTP/1.1 200 OK\r\n\r\nok"));
}

#[test]
fn the_schedule_follows_the_catalog_and_bounds_runs() {
    let mut schedule = Schedule::default();
    let a = http_check("a", "http://127.0.0.1:1/", "1s");
    let b = http_check("b", "http://127.0.0.1:2/", "2s");
    assert_eq!(schedule.sync(&[&a, &b], 0), 0);
    let runs = schedule.take_due(0, 1, 1);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].id, "a");
    assert!(schedule.take_due(0, 1, 1).is_empty());
    let def_a = a.definition.clone();
    schedule.finish("a", &def_a, CheckStatus::Passing);
    assert_eq!(schedule.take_due(0, 2, 1)[0].id, "b");
    schedule.finish("b", &b.definition, CheckStatus::Passing);
    assert!(schedule.take_due(999, 2, 1).is_empty());
    assert_eq!(schedule.take_due(1_000, 2, 1)[0].id, "a");
    schedule.finish("a", &def_a, CheckStatus::Passing);
    let changed = http_check("a", "http://127.0.0.1:3/", "1s");
    schedule.sync(&[&changed], 1_100);
    assert_eq!(schedule.len(), 1);
    let runs = schedule.take_due(1_100, 2, 1);
    assert_eq!(runs[0].definition.http, "http://127.0.0.1:3/");
    schedule.sync(&[], 1_200);
    assert!(schedule.is_empty());
}

fn thresholds(success: u32, warning: u32, critical: u32) -> Thresholds {
    Thresholds {
        success_before_passing: success,
        failures_before_warning: warning,
        failures_before_critical: critical,
    }
}

#[test]
fn counters_follow_consuls_thresholds() {
    use CheckStatus::{Critical, Passing, Warning};
    let mut c = Counters::default();
    let none = thresholds(0, 0, 0);
    assert_eq!(c.count(&none, Passing), Some(Passing));
    assert_eq!(c.count(&none, Critical), Some(Critical));
    assert_eq!(c.count(&none, Warning), Some(Warning));

    let t = thresholds(3, 0, 2);
    let mut c = Counters::default();
    assert_eq!(c.count(&t, Passing), None);
    assert_eq!(c.count(&t, Passing), None);
    assert_eq!(c.count(&t, Passing), Some(Passing));
    assert_eq!(c.count(&t, Passing), Some(Passing));
    // One failure is not enough; a failure resets the successes.
    assert_eq!(c.count(&t, Critical), None);
    assert_eq!(c.count(&t, Passing), None);
    assert_eq!(c.count(&t, Critical), None);
    assert_eq!(c.count(&t, Critical), Some(Critical));
    assert_eq!(
        c,
        Counters {
            successes: 0,
            failures: 2
        }
    );

    // Warning after 1 failure, critical after 3.
    let t = thresholds(0, 1, 3);
    let mut c = Counters::default();
    assert_eq!(c.count(&t, Critical), Some(Warning));
    assert_eq!(c.count(&t, Critical), Some(Warning));
    assert_eq!(c.count(&t, Critical), Some(Critical));
    // A warning counts as a success.
    assert_eq!(c.count(&t, Warning), Some(Warning));
    assert_eq!(c.failures, 0);
}

#[test]
fn the_schedule_applies_thresholds_per_check_and_resets_on_change() {
    let mut check = http_check("a", "http://127.0.0.1:1/", "1s");
    check.definition.success_before_passing = 2;
    let mut schedule = Schedule::default();
    schedule.sync(&[&check], 0);
    let def = check.definition.clone();
    assert_eq!(schedule.take_due(0, 4, 1).len(), 1);
    assert_eq!(schedule.finish("a", &def, CheckStatus::Passing), None);
    schedule.take_due(1_000, 4, 1);
    assert_eq!(
        schedule.finish("a", &def, CheckStatus::Passing),
        Some(CheckStatus::Passing)
    );
    assert_eq!(schedule.counters("a").map(|c| c.successes), Some(2));
    // A result of an older definition is not recorded.
    let mut other = def.clone();
    other.http = "http://127.0.0.1:2/".to_string();
    assert_eq!(schedule.finish("a", &other, CheckStatus::Passing), None);
    check.definition = other;
    schedule.sync(&[&check], 2_000);
    assert_eq!(schedule.counters("a"), Some(Counters::default()));
    // The agent's default output limit applies when the check names none.
    let mut schedule = Schedule::new(100);
    schedule.sync(&[&check], 0);
    assert_eq!(schedule.take_due(0, 4, 1)[0].spec.output_max_bytes, 100);
}

#[test]
fn specs_of_the_other_kinds() {
    let mut grpc = http_check("g", "", "2s");
    grpc.check_type = "grpc".to_string();
    grpc.definition.grpc = "127.0.0.1:50051/my.Service".to_string();
    grpc.definition.grpc_use_tls = true;
    grpc.definition.tls_skip_verify = true;
    let s = spec(&grpc).expect("grpc");
    let Probe::Grpc(probe) = &s.probe else {
        panic!("not grpc");
    };
    assert_eq!(
        (
            probe.address.as_str(),
            probe.service.as_str(),
            probe.use_tls
        ),
        ("127.0.0.1:50051", "my.Service", true)
    );
    assert!(probe.tls.skip_verify);
    assert_eq!(grpc_probe("h:1", false, TlsOptions::default()).service, "");

    let mut alias = HealthCheck {
        check_id: "al".to_string(),
        check_type: "alias".to_string(),
        ..HealthCheck::default()
    };
    alias.definition.alias_service = "web".to_string();
    let s = spec(&alias).expect("alias");
    assert_eq!(s.interval_ms, ALIAS_INTERVAL_MS);

    let mut script = http_check("s", "", "5s");
    script.check_type = "script".to_string();
    script.definition.script_args = vec!["/bin/true".to_string()];
    script.definition.output_max_size = 100;
    let s = spec(&script).expect("script");
    assert_eq!(
        (s.timeout_ms, s.output_max_bytes),
        (SCRIPT_TIMEOUT_MS_DEFAULT, 100)
    );
    let mut udp = http_check("u", "", "1s");
    udp.check_type = "udp".to_string();
    udp.definition.udp = "127.0.0.1:53".to_string();
    udp.definition.timeout = "300ms".to_string();
    let s = spec(&udp).expect("udp");
    assert_eq!(
        (s.probe, s.timeout_ms, s.output_max_bytes),
        (Probe::Udp("127.0.0.1:53".to_string()), 300, 4096)
    );
}

fn check_on(node: &str, id: &str, service: &str, status: CheckStatus) -> HealthCheck {
    HealthCheck {
        node: node.to_string(),
        check_id: id.to_string(),
        name: format!("{id} name"),
        service_id: service.to_string(),
        status,
        output: format!("{id} out"),
        ..HealthCheck::default()
    }
}

#[test]
fn alias_takes_the_worst_of_the_node_and_the_service() {
    use CheckStatus::{Critical, Maintenance, Passing, Warning};
    let checks = [
        check_on("n", "serfHealth", "", Passing),
        check_on("n", "web-check", "web", Passing),
        check_on("n", "db-check", "db", Critical),
        check_on("n", "alias", "proxy", Critical),
    ];
    fn view(checks: &[HealthCheck]) -> AliasView<'_> {
        AliasView {
            node: "n",
            service_found: true,
            checks: checks.iter().collect(),
        }
    }
    let v = view(&checks);
    assert_eq!(
        alias_status("n", "alias", "web", &v),
        (Passing, "All checks passing.".to_string())
    );
    assert_eq!(alias_status("n", "alias", "db", &v).0, Critical);
    // The node alone: node-level checks only.
    assert_eq!(alias_status("n", "alias", "", &v).0, Passing);
    let warn = [
        check_on("n", "w", "web", Warning),
        check_on("n", "c", "web", Passing),
    ];
    assert_eq!(
        alias_status("n", "alias", "web", &view(&warn)),
        (
            Warning,
            "Aliased check \"w name\" failing: w out".to_string()
        )
    );
    let mixed = [
        check_on("n", "w", "web", Warning),
        check_on("n", "m", "", Maintenance),
    ];
    assert_eq!(alias_status("n", "alias", "web", &view(&mixed)).0, Critical);
    assert_eq!(
        alias_status("n", "alias", "web", &view(&[])),
        (Passing, "No checks found.".to_string())
    );
    let missing = AliasView {
        node: "n",
        service_found: false,
        checks: Vec::new(),
    };
    assert_eq!(
        alias_status("n", "alias", "web", &missing),
        (
            Critical,
            "Service web could not be found on node n".to_string()
        )
    );
    // The alias check itself (node-level, on the aliased node) is left out.
    let own = [check_on("n", "alias", "", Critical)];
    assert_eq!(alias_status("n", "alias", "", &view(&own)).0, Passing);
}

#[test]
fn services_critical_for_too_long_are_named_once() {
    let mut a = check_on("n", "a", "web", CheckStatus::Critical);
    a.definition.deregister_critical_service_after = "1s".to_string();
    let mut b = check_on("n", "b", "web", CheckStatus::Critical);
    b.definition.deregister_critical_service_after = "2s".to_string();
    let plain = check_on("n", "c", "db", CheckStatus::Critical);
    let mut tracker = CriticalTracker::default();
    let all = [a.clone(), b.clone(), plain];
    assert!(tracker.observe(&all, 10_000, 0).is_empty());
    assert!(tracker.observe(&all, 11_000, 0).is_empty());
    assert_eq!(tracker.observe(&all, 11_001, 0), vec!["web".to_string()]);
    // The minimum raises the setting.
    assert!(tracker.observe(&all, 11_001, 5_000).is_empty());
    // Passing again resets the clock.
    let healthy = HealthCheck {
        status: CheckStatus::Passing,
        ..a.clone()
    };
    tracker.observe(&[healthy], 12_000, 0);
    assert!(tracker.observe(&[a.clone()], 12_500, 0).is_empty());
    assert_eq!(tracker.observe(&[a], 13_501, 0), vec!["web".to_string()]);
}

#[test]
fn redirects_follow_gos_rules() {
    let probe = HttpProbe {
        url: "http://h:1/a/b?q".to_string(),
        method: "POST".to_string(),
        headers: Vec::new(),
        body: "x".to_string(),
        tls: TlsOptions::default(),
        follow_redirects: true,
    };
    let answer = |code: u16, location: &str| HttpAnswer {
        code,
        status: code.to_string(),
        body: Vec::new(),
        location: Some(location.to_string()),
    };
    let next = redirect(&probe, &probe.url, &answer(302, "c")).expect("redirect");
    assert_eq!(
        (next.url.as_str(), next.method.as_str(), next.body.as_str()),
        ("http://h:1/a/c", "GET", "")
    );
    let next = redirect(&probe, &probe.url, &answer(307, "/z")).expect("redirect");
    assert_eq!(
        (next.url.as_str(), next.method.as_str(), next.body.as_str()),
        ("http://h:1/z", "POST", "x")
    );
    let next = redirect(&probe, &probe.url, &answer(301, "https://o/p")).expect("redirect");
    assert_eq!(next.url, "https://o/p");
    let next = redirect(&probe, &probe.url, &answer(308, "//o:2/p")).expect("redirect");
    assert_eq!(next.url, "http://o:2/p");
    assert!(redirect(&probe, &probe.url, &answer(200, "/x")).is_none());
    assert!(redirect(&probe, &probe.url, &answer(302, "")).is_none());
    let raw = b"HTTP/1.1 302 Found\r\nLocation: /next\r\nContent-Length: 0\r\n\r\n";
    let parsed = parse_answer(raw).expect("answer");
    assert_eq!(parsed.location.as_deref(), Some("/next"));
}
