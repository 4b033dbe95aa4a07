//! A by-hand interop smoke check of the pure gossip core against a real Debian `serf` agent, through a minimal
//! blocking test driver (std sockets, one thread). Not the issue-6 driver or its CI e2e: it only checks the codec and
//! the state machine against serf. Needs `serf` on PATH (`tests/run.sh` installs Debian's package):
//! `cargo test --test gossip_serf_smoke -- --nocapture`.

mod support;

use cairn::gossip::{packet, Action, Addr, Config, Input, Keyring, NodeState, Swim};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::gossip::require_serf;

fn to_addr(s: SocketAddr) -> Addr {
    match s.ip() {
        IpAddr::V4(v4) => Addr {
            ip: v4.octets().to_vec(),
            port: s.port(),
        },
        IpAddr::V6(v6) => Addr {
            ip: v6.octets().to_vec(),
            port: s.port(),
        },
    }
}

fn to_socket(a: &Addr) -> SocketAddr {
    let ip: IpAddr = if a.ip.len() == 4 {
        IpAddr::from([a.ip[0], a.ip[1], a.ip[2], a.ip[3]])
    } else {
        let mut b = [0u8; 16];
        b.copy_from_slice(&a.ip[..16.min(a.ip.len())]);
        IpAddr::from(b)
    };
    SocketAddr::new(ip, a.port)
}

fn read_message(stream: &mut TcpStream) -> Option<Vec<u8>> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Ok(Some(n)) = packet::stream_message_len(&buf, 10_000) {
            buf.truncate(n);
            return Some(buf);
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

struct Driver {
    swim: Swim,
    udp: UdpSocket,
    tcp: TcpListener,
    start: Instant,
    wake_ms: u64,
    notes: Vec<Action>,
    conn: u64,
}

impl Driver {
    fn new(name: &str, port: u16, keyring: Option<Keyring>, compress: bool) -> Driver {
        let bind = SocketAddr::from(([127, 0, 0, 1], port));
        let udp = UdpSocket::bind(bind).expect("udp bind");
        udp.set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        let tcp = TcpListener::bind(bind).expect("tcp bind");
        tcp.set_nonblocking(true).unwrap();
        let mut cfg = Config::lan(name, to_addr(bind));
        cfg.tags.insert("role".into(), "cairn".into());
        cfg.enable_compression = compress;
        Driver {
            swim: Swim::new(cfg, 0x5eed ^ port as u64, keyring).unwrap(),
            udp,
            tcp,
            start: Instant::now(),
            wake_ms: 0,
            notes: Vec::new(),
            conn: 0,
        }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn step(&mut self, input: Input) -> Option<Vec<u8>> {
        let mut actions = Vec::new();
        if let Err(e) = self.swim.step(self.now(), input, &mut actions) {
            eprintln!("cairn: {e}");
        }
        let mut reply = None;
        for a in actions {
            match a {
                Action::SendPacket { to, bytes } => {
                    let _ = self.udp.send_to(&bytes, to_socket(&to));
                }
                Action::Dial { id, to, bytes } => {
                    let answer =
                        TcpStream::connect_timeout(&to_socket(&to), Duration::from_secs(2))
                            .ok()
                            .and_then(|mut s| {
                                s.write_all(&bytes).ok()?;
                                read_message(&mut s)
                            });
                    let input = match answer {
                        Some(bytes) => Input::DialReply { id, bytes },
                        None => Input::DialFailed { id },
                    };
                    self.step(input);
                }
                Action::StreamReply { bytes, .. } => reply = Some(bytes),
                Action::WakeAt { at_ms } => self.wake_ms = at_ms,
                other => {
                    eprintln!("cairn notification: {}", short(&other));
                    self.notes.push(other);
                }
            }
        }
        reply
    }

    fn poll(&mut self, ms: u64) {
        let until = self.now() + ms;
        let mut buf = vec![0u8; 65_536];
        while self.now() < until {
            if let Ok((n, from)) = self.udp.recv_from(&mut buf) {
                let bytes = buf[..n].to_vec();
                self.step(Input::Packet {
                    from: to_addr(from),
                    bytes,
                });
            }
            if let Ok((mut s, from)) = self.tcp.accept() {
                s.set_nonblocking(false).unwrap();
                if let Some(bytes) = read_message(&mut s) {
                    self.conn += 1;
                    let conn = self.conn;
                    if let Some(reply) = self.step(Input::Stream {
                        conn,
                        from: to_addr(from),
                        bytes,
                    }) {
                        let _ = s.write_all(&reply);
                    }
                }
            }
            if self.now() >= self.wake_ms {
                self.step(Input::Tick);
            }
        }
    }

    fn poll_until(&mut self, ms: u64, done: impl Fn(&Driver) -> bool) -> bool {
        let until = self.now() + ms;
        while self.now() < until {
            self.poll(50);
            if done(self) {
                return true;
            }
        }
        false
    }
}

fn short(a: &Action) -> String {
    match a {
        Action::MemberJoined(m) => format!("joined {} {:?}", m.name, m.tags),
        Action::MemberFailed(m) => format!("failed {}", m.name),
        Action::MemberLeft(m) => format!("left {}", m.name),
        Action::MemberUpdated(m) => format!("updated {} {:?}", m.name, m.tags),
        Action::UserEvent {
            name,
            payload,
            ltime,
            ..
        } => {
            format!(
                "event {name} {:?} @{ltime}",
                String::from_utf8_lossy(payload)
            )
        }
        other => format!("{other:?}"),
    }
}

fn serf(args: &[&str]) -> String {
    let out = Command::new("serf").args(args).output().expect("serf runs");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_serf(bind: &str, rpc: &str, key: Option<&str>, log: &str) -> Agent {
    let mut args = vec![
        "agent".to_string(),
        "-node=s1".into(),
        format!("-bind={bind}"),
        format!("-rpc-addr={rpc}"),
        "-tag".into(),
        "role=web".into(),
        "-log-level=debug".into(),
    ];
    if let Some(k) = key {
        args.push(format!("-encrypt={k}"));
    }
    let file = std::fs::File::create(log).unwrap();
    let child = Command::new("serf")
        .args(&args)
        .stdout(Stdio::from(file.try_clone().unwrap()))
        .stderr(Stdio::from(file))
        .spawn()
        .expect("serf agent starts");
    std::thread::sleep(Duration::from_millis(1500));
    Agent(child)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Ending {
    /// serf is killed: cairn must mark it failed.
    KillSerf,
    /// cairn leaves: serf must list it as left.
    CairnLeaves,
    /// cairn stops answering: serf must mark it failed.
    CairnStops,
}

fn scenario(encrypted: bool, ending: Ending) {
    let key = [0x42u8; 32];
    let key_b64 = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";
    let (serf_port, cairn_port, rpc) = if encrypted {
        (17956, 17957, "127.0.0.1:17383")
    } else {
        (17946, 17947, "127.0.0.1:17373")
    };
    let log = format!("/tmp/gossip_serf_smoke_{encrypted}.log");
    let mut agent = start_serf(
        &format!("127.0.0.1:{serf_port}"),
        rpc,
        encrypted.then_some(key_b64),
        &log,
    );
    let ring = encrypted.then(|| Keyring::new(key.to_vec()).unwrap());
    // The encrypted runs also send LZW-compressed packets and streams, as serf does.
    let mut d = Driver::new("c1", cairn_port, ring, encrypted);
    d.poll(100);
    if encrypted {
        // serf joins us (our listener side of push/pull); the command blocks until we answer, so it runs aside.
        let (rpc, target) = (rpc.to_string(), format!("127.0.0.1:{cairn_port}"));
        std::thread::spawn(move || {
            eprintln!(
                "serf join: {}",
                serf(&["join", &format!("-rpc-addr={rpc}"), &target])
            )
        });
    } else {
        d.step(Input::Join {
            seeds: vec![Addr::v4([127, 0, 0, 1], serf_port)],
        });
    }
    let joined = d.poll_until(5_000, |d| {
        d.swim
            .member("s1")
            .is_some_and(|m| m.state == NodeState::Alive)
    });
    assert!(joined, "cairn never saw s1 alive; serf log in {log}");
    let s1 = d.swim.member("s1").unwrap().clone();
    assert_eq!(s1.tags.get("role").map(String::as_str), Some("web"));
    d.poll(1_000);
    let members = serf(&["members", &format!("-rpc-addr={rpc}")]);
    eprintln!("serf members:\n{members}");
    assert!(
        members
            .lines()
            .any(|l| l.contains("c1") && l.contains("alive") && l.contains("role=cairn")),
        "{members}"
    );
    // serf → cairn user event.
    serf(&["event", &format!("-rpc-addr={rpc}"), "deploy", "v1"]);
    let got = d.poll_until(5_000, |d| {
        d.notes.iter().any(|a| matches!(a, Action::UserEvent { name, payload, .. } if name == "deploy" && payload == b"v1"))
    });
    assert!(got, "cairn never received serf's event");
    // cairn → serf user event.
    d.step(Input::UserEvent {
        name: "fromcairn".into(),
        payload: b"hello".to_vec(),
        coalesce: false,
    });
    d.poll(3_000);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("fromcairn"),
        "serf never logged cairn's event; see {log}"
    );
    // Stay alive in serf's eyes through several probe rounds.
    d.poll(8_000);
    let members = serf(&["members", &format!("-rpc-addr={rpc}")]);
    assert!(
        members
            .lines()
            .any(|l| l.contains("c1") && l.contains("alive")),
        "{members}"
    );
    assert!(!text.contains("Suspect c1"), "serf suspected c1");
    match ending {
        Ending::KillSerf => {}
        Ending::CairnLeaves => {
            d.step(Input::Leave);
            d.poll(3_000);
            let members = serf(&["members", &format!("-rpc-addr={rpc}")]);
            eprintln!("serf members after cairn left:\n{members}");
            assert!(
                members
                    .lines()
                    .any(|l| l.contains("c1") && l.contains("left")),
                "{members}"
            );
            return;
        }
        Ending::CairnStops => {
            let start = Instant::now();
            let mut seen = false;
            while start.elapsed() < Duration::from_secs(40) && !seen {
                std::thread::sleep(Duration::from_millis(500));
                let members = serf(&["members", &format!("-rpc-addr={rpc}")]);
                seen = members
                    .lines()
                    .any(|l| l.contains("c1") && l.contains("failed"));
            }
            assert!(seen, "serf never marked the silent cairn member failed");
            eprintln!(
                "serf marked silent cairn failed after {} ms",
                start.elapsed().as_millis()
            );
            return;
        }
    }
    // Kill serf: cairn marks it failed.
    let _ = agent.0.kill();
    let _ = agent.0.wait();
    let t0 = d.now();
    let failed = d.poll_until(30_000, |d| {
        d.swim
            .member("s1")
            .is_some_and(|m| m.state == NodeState::Dead)
    });
    assert!(failed, "cairn never marked the killed serf agent failed");
    eprintln!(
        "encrypted={encrypted}: killed serf agent marked failed after {} ms",
        d.now() - t0
    );
}

#[test]
fn cairn_and_a_real_serf_agent_see_each_other() {
    require_serf();
    scenario(false, Ending::KillSerf);
    scenario(false, Ending::CairnLeaves);
}

#[test]
fn cairn_and_a_real_serf_agent_see_each_other_encrypted() {
    require_serf();
    scenario(true, Ending::KillSerf);
    scenario(true, Ending::CairnStops);
}
