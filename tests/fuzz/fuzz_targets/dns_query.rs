//! Fuzzes the DNS query path (`cairn::dns::respond`): any bytes, as a UDP or a TCP query, against a small
//! catalog with healthy, warning and critical instances, tags, IPv6 and host-name addresses. It must never
//! panic, and a reply is always at least a DNS header.
//!
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir tests/fuzz dns_query -- -max_total_time=300` (from the repository root)
#![no_main]

use cairn::dns::{respond, DnsConfig, Outcome, Transport};
use cairn::fsm::{CheckStatus, Command, Fsm, HealthCheck, RegisterRequest, Service, State};
use cairn::raft::rng::Rng;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// Registers `service` (with a check in `status`) on `node` at `address`.
fn register(
    fsm: &mut Fsm,
    index: u64,
    node: &str,
    address: &str,
    service: &str,
    status: CheckStatus,
) {
    let request = RegisterRequest {
        node: node.to_string(),
        address: address.to_string(),
        service: Some(Service {
            id: format!("{service}-{node}"),
            service: service.to_string(),
            tags: vec!["primary".to_string()],
            port: 8080,
            ..Service::default()
        }),
        checks: vec![HealthCheck {
            check_id: format!("{service}-{node}-check"),
            service_id: format!("{service}-{node}"),
            status,
            ..HealthCheck::default()
        }],
        ..RegisterRequest::default()
    };
    fsm.apply(
        index,
        &Command::CatalogRegister {
            now_ms: 0,
            request: Box::new(request),
        },
    );
}

fn state() -> &'static State {
    static STATE: OnceLock<State> = OnceLock::new();
    STATE.get_or_init(|| {
        let mut fsm = Fsm::new();
        register(&mut fsm, 1, "n1", "10.0.0.1", "web", CheckStatus::Passing);
        register(&mut fsm, 2, "n2", "10.0.0.2", "web", CheckStatus::Warning);
        register(&mut fsm, 3, "n3", "10.0.0.3", "web", CheckStatus::Critical);
        register(
            &mut fsm,
            4,
            "v6",
            "2001:db8::5",
            "api",
            CheckStatus::Passing,
        );
        register(
            &mut fsm,
            5,
            "named",
            "host.example.com",
            "ext",
            CheckStatus::Passing,
        );
        fsm.state()
    })
}

fuzz_target!(|data: &[u8]| {
    let config = DnsConfig {
        alt_domain: Some("cairn.".to_string()),
        ..DnsConfig::default()
    };
    let transport = if data.first().is_some_and(|b| b & 1 == 1) {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    let mut rng = Rng::new(u64::from(data.len() as u32));
    if let Outcome::Reply(bytes) = respond(&config, state(), data, transport, 1, &mut rng) {
        assert!(bytes.len() >= 12, "a reply shorter than a DNS header");
    }
});
