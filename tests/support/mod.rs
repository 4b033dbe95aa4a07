//! Shared by the end-to-end tests: running `cairn agent` processes and a small blocking HTTP/1.1 client.
//! Every wait is bounded; processes are killed (SIGKILL) when their handle is dropped, also on failure.

#![allow(dead_code)]

pub mod dig;
pub mod gossip;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_cairn");

/// A response: status, header fields (names lower-cased) and body.
#[derive(Clone, Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    /// `X-Consul-Index` as a number.
    pub fn index(&self) -> u64 {
        self.header("x-consul-index")
            .unwrap_or_else(|| panic!("no X-Consul-Index in {self:?}"))
            .parse()
            .expect("numeric X-Consul-Index")
    }
}

/// One request over a fresh connection (`Connection: close`), answered within `timeout`.
pub fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    body: &[u8],
    timeout: Duration,
) -> std::io::Result<Resp> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw).ok_or_else(|| {
        std::io::Error::other(format!("bad response: {:?}", String::from_utf8_lossy(&raw)))
    })
}

fn parse_response(raw: &[u8]) -> Option<Resp> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some(Resp {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    })
}

/// A request that must be answered within 10 s.
pub fn call(addr: SocketAddr, method: &str, target: &str, body: &[u8]) -> Resp {
    request(addr, method, target, body, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{method} {target} on {addr}: {e}"))
}

/// A port free on `ip` right now (a small race remains until the agent binds it).
pub fn free_port(ip: IpAddr) -> u16 {
    TcpListener::bind((ip, 0))
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A port free on every address in `ips` and not in `avoid` (checked by binding each; a tiny race
/// remains until the agents bind it).
pub fn common_free_port(ips: &[IpAddr], avoid: &[u16]) -> u16 {
    for _ in 0..200 {
        let probe = TcpListener::bind((ips[0], 0)).expect("bind");
        let port = probe.local_addr().expect("addr").port();
        let free = ips[1..]
            .iter()
            .all(|ip| TcpListener::bind((*ip, port)).is_ok());
        if free && !avoid.contains(&port) {
            return port;
        }
    }
    panic!("no port free on {ips:?}");
}

/// A directory for one test under the target dir, emptied first.
pub fn test_dir(name: &str) -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test dir");
    dir
}

/// A running `cairn agent`; killed when dropped.
pub struct Agent {
    pub child: Child,
    pub http: SocketAddr,
    pub log: PathBuf,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    /// Starts `cairn agent <args>` serving HTTP on `http`, logging to `log`.
    pub fn start(args: &[String], http: SocketAddr, log: PathBuf) -> Agent {
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(BIN)
            .arg("agent")
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start cairn");
        Agent { child, http, log }
    }

    /// A `-dev` agent on 127.0.0.1 with free ports, plus `extra` arguments, with a leader.
    pub fn dev(name: &str, extra: &[&str]) -> Agent {
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        let http = SocketAddr::new(ip, free_port(ip));
        let server_port = free_port(ip);
        let mut args: Vec<String> = vec![
            "-dev".into(),
            format!("-node={name}"),
            format!("-http-port={}", http.port()),
            format!("-server-port={server_port}"),
            format!("-serf-lan-port={}", free_port(ip)),
            "-serf-wan-port=-1".into(),
            "-dns-port=-1".into(),
            "-grpc-port=-1".into(),
            "-log-level=info".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = test_dir(&format!("agent-{name}")).join("agent.log");
        let agent = Agent::start(&args, http, log);
        agent.wait_leader(Duration::from_secs(15));
        agent.wait_registered(name, Duration::from_secs(15));
        agent
    }

    /// Waits until the agent's own node `name` is in the catalog with the `consul` service (a server
    /// registers itself once it has a leader).
    pub fn wait_registered(&self, name: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(r) = request(
                self.http,
                "GET",
                "/v1/catalog/service/consul",
                b"",
                Duration::from_secs(1),
            ) {
                let listed = serde_json::from_slice::<serde_json::Value>(&r.body)
                    .ok()
                    .and_then(|v| v.as_array().cloned())
                    .is_some_and(|nodes| nodes.iter().any(|n| n["Node"] == name));
                if r.status == 200 && listed {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "node {name} not registered within {timeout:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `/v1/status/leader` names a leader.
    pub fn wait_leader(&self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(r) = request(
                self.http,
                "GET",
                "/v1/status/leader",
                b"",
                Duration::from_secs(1),
            ) {
                if r.status == 200 && r.text().len() > 2 {
                    return r.json().as_str().unwrap_or_default().to_string();
                }
            }
            assert!(
                Instant::now() < deadline,
                "no leader on {} within {timeout:?}; log:\n{}",
                self.http,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The agent's output so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A request to this agent that must be answered within 10 s.
    pub fn call(&self, method: &str, target: &str, body: &[u8]) -> Resp {
        call(self.http, method, target, body)
    }

    /// A PUT that must answer `200` (any body).
    pub fn put_ok(&self, target: &str, body: &str) {
        let r = self.call("PUT", target, body.as_bytes());
        assert_eq!(r.status, 200, "PUT {target} {body}: {}", r.text());
    }

    /// A PUT that must answer `200` with an empty body.
    pub fn put_empty(&self, target: &str, body: &str) {
        let r = self.call("PUT", target, body.as_bytes());
        assert_eq!(
            (r.status, r.text()),
            (200, String::new()),
            "PUT {target} {body}"
        );
    }
}
