//! The DNS transport on a real executor: UDP and TCP on one port, later answers, dropped messages, upstream
//! exchange with a timeout.

mod common;

use std::net::SocketAddr;

use cairn_io::dns_server::{exchange_udp, DnsServer, DnsServerOptions, DnsTransport, Handled};
use cairn_io::Shutdown;
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpStream, UdpSocket};

/// Echoes each message with a transport marker; `b"drop"` is dropped, `b"late"` answered later.
fn echo(message: &[u8], transport: DnsTransport, _peer: SocketAddr) -> Handled {
    let marker = match transport {
        DnsTransport::Udp => b'u',
        DnsTransport::Tcp => b't',
    };
    let mut reply = vec![marker];
    reply.extend_from_slice(message);
    match message {
        b"drop" => Handled::Drop,
        b"late" => Handled::Later(Box::pin(async move {
            glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
            Some(reply)
        })),
        _ => Handled::Reply(reply),
    }
}

#[test]
fn udp_and_tcp_share_a_port_and_answer() {
    common::run("dns-both", || async {
        let shutdown = Shutdown::new();
        let server = DnsServer::bind(
            common::loopback_any_port(),
            DnsServerOptions::default(),
            &shutdown,
            echo,
        )
        .expect("bind");
        let addr = server.local_addr();

        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut buffer = vec![0u8; 100];
        client.send_to(b"hello", addr).await.unwrap();
        let (len, _) = client.recv_from(&mut buffer).await.unwrap();
        assert_eq!(&buffer[..len], b"uhello");
        client.send_to(b"drop", addr).await.unwrap();
        client.send_to(b"late", addr).await.unwrap();
        let (len, _) = client.recv_from(&mut buffer).await.unwrap();
        assert_eq!(&buffer[..len], b"ulate");

        let mut stream = TcpStream::connect(addr).await.unwrap();
        for message in [&b"one"[..], b"late", b"three"] {
            let mut framed = (message.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(message);
            stream.write_all(&framed).await.unwrap();
            let mut prefix = [0u8; 2];
            stream.read_exact(&mut prefix).await.unwrap();
            let mut reply = vec![0u8; u16::from_be_bytes(prefix) as usize];
            stream.read_exact(&mut reply).await.unwrap();
            assert_eq!(reply[0], b't');
            assert_eq!(&reply[1..], message);
        }
        // A dropped TCP message closes the connection.
        stream
            .write_all(&[0, 4, b'd', b'r', b'o', b'p'])
            .await
            .unwrap();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
        assert!(rest.is_empty());

        // The exchange helper talks to the same server and gives up after its timeout.
        let reply = exchange_udp(addr, b"ping", 2_000, |r| r.starts_with(b"u"))
            .await
            .unwrap();
        assert_eq!(reply, b"uping");
        let silent = exchange_udp(addr, b"drop", 50, |_| true).await;
        assert_eq!(silent.unwrap_err().kind(), std::io::ErrorKind::TimedOut);

        let stats = server.stats();
        assert!(stats.udp_messages >= 4);
        assert_eq!(stats.tcp_messages, 4);
        server.close().await;
    });
}
