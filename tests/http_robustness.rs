//! Bad input never takes the agent down: seeded random bodies, paths and query strings against every route
//! family; every request gets an HTTP answer and the agent keeps serving. A failure prints the seed.

mod support;

use std::time::Duration;
use support::Agent;

/// SplitMix64: the seeded generator for the inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const ROUTES: &[&str] = &[
    "/v1/kv/a",
    "/v1/kv/",
    "/v1/txn",
    "/v1/session/create",
    "/v1/session/renew/x",
    "/v1/session/info/x",
    "/v1/status/leader",
    "/v1/operator/raft/configuration",
    "/v1/operator/raft/peer",
    "/v1/catalog/register",
    "/v1/catalog/deregister",
    "/v1/catalog/service/web",
    "/v1/catalog/node/n1",
    "/v1/health/service/web",
    "/v1/health/state/any",
    "/v1/agent/service/register",
    "/v1/agent/check/register",
    "/v1/agent/check/update/x",
    "/v1/agent/self",
];

const QUERIES: &[&str] = &[
    "",
    "?recurse",
    "?index=18446744073709551615&wait=1ms",
    "?index=-1",
    "?wait=9999999999999999999h",
    "?filter=((((",
    "?filter=Service%20matches%20%22(%22",
    "?filter=a%20in%20b%20and%20not%20c%20is%20empty",
    "?cas=1&acquire=x&release=y",
    "?flags=99999999999999999999",
    "?tag=&node-meta=:&passing=maybe",
    "?stale&consistent",
    "?%ZZ=1",
    "?separator=%00&keys",
];

const BODIES: &[&str] = &[
    "",
    "{",
    "null",
    "[]",
    "[{}]",
    "{\"Name\": 1}",
    "{\"Node\": \"n1\", \"Address\": \"a\", \"Service\": {\"Port\": -1}}",
    "{\"TTL\": \"-5s\", \"LockDelay\": 1e309}",
    "[{\"KV\": {\"Verb\": \"set\", \"Key\": \"k\", \"Value\": \"!!!\"}}]",
    "{\"Checks\": [{\"TTL\": \"1x\"}], \"Name\": \"s\"}",
    "{\"Status\": \"sideways\"}",
    "\u{0}\u{1}\u{2}",
];

fn random_body(rng: &mut Rng) -> Vec<u8> {
    if rng.next().is_multiple_of(3) {
        let len = (rng.next() % 300) as usize;
        (0..len).map(|_| rng.next() as u8).collect()
    } else {
        rng.pick(BODIES).as_bytes().to_vec()
    }
}

#[test]
fn random_bad_input_never_takes_the_agent_down() {
    let seed: u64 = std::env::var("ROBUSTNESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_123);
    let a = Agent::dev("robust", &[]);
    let mut rng = Rng(seed);
    for round in 0..600 {
        let method = rng.pick(&["GET", "PUT", "POST", "DELETE", "PATCH"]);
        let target = format!("{}{}", rng.pick(ROUTES), rng.pick(QUERIES));
        let body = random_body(&mut rng);
        let answer = support::request(a.http, method, &target, &body, Duration::from_secs(15));
        match answer {
            Ok(r) => assert!(
                (200..600).contains(&r.status),
                "seed {seed} round {round}: {method} {target}: status {}",
                r.status
            ),
            Err(e) => panic!(
                "seed {seed} round {round}: {method} {target} with {} body bytes: no answer ({e})\n{}",
                body.len(),
                a.log_text()
            ),
        }
    }
    assert_eq!(
        a.call("GET", "/v1/status/leader", b"").status,
        200,
        "still serving"
    );
}
