//! Integration tests of the framed TCP transport over loopback, each on its own small glommio
//! executor. Every wait has a deadline, so a broken transport fails a test instead of hanging it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cairn_io::net::frame::{encode_frame, FRAME_HEADER_BYTES};
use cairn_io::net::{
    ConnectionError, FrameError, InboundFrame, Listener, ListenerOptions, Peer, PeerOptions,
    TrySendErrorKind,
};
use cairn_io::runtime::Shutdown;
use cairn_io::testing::SplitMix64;
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::LocalReceiver;
use glommio::net::TcpStream;
use glommio::timer::{sleep, timeout};

mod common;

use common::{loopback_any_port, run, wait_until, WAIT_TIMEOUT_MS};

/// Frame `index`: a random length (mostly small, sometimes up to 128 KiB, sometimes empty) and
/// content derived from the index, so the receiver can check it without a copy.
fn payload(index: u64) -> Vec<u8> {
    let mut rng = SplitMix64::new(index.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0xC0FFEE);
    let len = match rng.below(20) {
        0 => 0,
        1 => 8 + rng.below(128 << 10),
        _ => 8 + rng.below(1024),
    };
    let mut bytes = Vec::with_capacity(len);
    if len >= 8 {
        bytes.extend_from_slice(&index.to_le_bytes());
    }
    while bytes.len() < len {
        bytes.push(rng.next_u64() as u8);
    }
    bytes
}

/// The index a payload was made for; empty payloads carry none.
fn index_of(payload: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = payload.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// A payload that always carries its index (for tests that look for specific frames).
fn tagged(index: u64) -> Vec<u8> {
    let mut bytes = index.to_le_bytes().to_vec();
    bytes.extend_from_slice(&[index as u8; 24]);
    bytes
}

async fn recv_within(receiver: &LocalReceiver<InboundFrame>, wait_ms: u64) -> Option<InboundFrame> {
    timeout(Duration::from_millis(wait_ms), async {
        Ok(receiver.recv().await)
    })
    .await
    .ok()
    .flatten()
}

async fn recv(receiver: &LocalReceiver<InboundFrame>) -> InboundFrame {
    recv_within(receiver, WAIT_TIMEOUT_MS)
        .await
        .expect("a frame within the deadline")
}

/// A listener with `options` on a free loopback port, and a peer with default options sending to
/// it (nothing is connected until a frame is queued).
fn listener_and_peer(
    options: ListenerOptions,
    shutdown: &Shutdown,
) -> (Listener, LocalReceiver<InboundFrame>, Peer) {
    let (listener, inbound) = Listener::bind(loopback_any_port(), options, shutdown).expect("bind");
    let peer = Peer::start(listener.local_addr(), PeerOptions::default(), shutdown).expect("peer");
    (listener, inbound, peer)
}

/// Queues frame `index` on `peer` and checks that it is the next frame to arrive.
async fn send_and_receive(peer: &Peer, inbound: &LocalReceiver<InboundFrame>, index: u64) {
    peer.try_send(tagged(index)).expect("queue");
    assert_eq!(recv(inbound).await.payload, tagged(index));
}

/// Queues `payload`, waiting (bounded) while the send queue is full.
async fn send_when_room(peer: &Peer, mut payload: Vec<u8>) {
    let deadline = Instant::now() + Duration::from_millis(WAIT_TIMEOUT_MS);
    loop {
        match peer.try_send(payload) {
            Ok(()) => return,
            Err(error) => {
                assert!(
                    matches!(error.kind(), TrySendErrorKind::QueueFull { .. }),
                    "unexpected send error: {error}"
                );
                assert!(Instant::now() < deadline, "the send queue stayed full");
                payload = error.into_payload();
                sleep(Duration::from_millis(1)).await;
            }
        }
    }
}

/// Reads until the remote end closes the connection (EOF or reset); false on timeout.
async fn closed_by_remote(stream: &mut TcpStream) -> bool {
    let deadline = Instant::now() + Duration::from_millis(WAIT_TIMEOUT_MS);
    let mut buffer = [0u8; 64];
    while Instant::now() < deadline {
        let read = timeout(Duration::from_millis(WAIT_TIMEOUT_MS), async {
            Ok(stream.read(&mut buffer).await)
        })
        .await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
    false
}

/// An address nothing listens on (a port just released by the OS).
fn unused_addr() -> SocketAddr {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("probe bind");
    probe.local_addr().expect("probe address")
}

#[test]
fn ten_thousand_frames_arrive_in_order_with_backpressure() {
    run("net-10k", || async {
        const FRAMES: u64 = 10_000;
        let shutdown = Shutdown::new();
        let listener_options = ListenerOptions {
            // A small inbound queue and a receiver that starts late: readers must wait, not drop.
            inbound_queue_frames_max: 16,
            ..ListenerOptions::default()
        };
        let (listener, inbound) =
            Listener::bind(loopback_any_port(), listener_options, &shutdown).expect("bind");
        let addr = listener.local_addr();
        assert_ne!(addr.port(), 0);
        let peer_options = PeerOptions {
            send_queue_frames_max: 256,
            ..PeerOptions::default()
        };
        let peer = Peer::start(addr, peer_options, &shutdown).expect("peer");
        assert_eq!(
            peer.stats().connects,
            0,
            "nothing connects before a frame is queued"
        );

        let receiver = glommio::spawn_local(async move {
            sleep(Duration::from_millis(100)).await;
            let mut bytes = 0u64;
            for index in 0..FRAMES {
                let frame = recv(&inbound).await;
                let expected = payload(index);
                if let Some(got) = index_of(&frame.payload) {
                    assert_eq!(got, index, "frames out of order");
                }
                assert_eq!(frame.payload, expected, "frame {index} has wrong content");
                bytes += frame.payload.len() as u64;
            }
            (inbound, bytes)
        });
        for index in 0..FRAMES {
            send_when_room(&peer, payload(index)).await;
        }
        let (inbound, payload_bytes) = receiver.await;

        let peer_stats = peer.stats();
        assert_eq!(peer_stats.frames_sent, FRAMES);
        assert_eq!(peer_stats.frames_dropped, 0);
        assert_eq!(peer_stats.connects, 1);
        assert_eq!(
            peer_stats.bytes_sent,
            payload_bytes + FRAMES * FRAME_HEADER_BYTES as u64
        );
        assert!(
            peer_stats.writes < peer_stats.frames_sent,
            "queued frames are batched into fewer writes ({} writes for {} frames)",
            peer_stats.writes,
            peer_stats.frames_sent
        );
        let listener_stats = listener.stats();
        assert_eq!(listener_stats.frames_received, FRAMES);
        assert_eq!(listener_stats.bytes_received, peer_stats.bytes_sent);
        assert_eq!(listener_stats.frame_errors, 0);
        assert_eq!(listener_stats.connections_active, 1);

        peer.close().await;
        listener.close().await;
        assert_eq!(
            recv_within(&inbound, 1_000).await,
            None,
            "the channel ends once the listener is closed"
        );
    });
}

#[test]
fn frames_queued_while_the_listener_is_down_are_delivered_once_it_is_up() {
    run("net-refused", || async {
        let shutdown = Shutdown::new();
        let addr = unused_addr();
        let options = PeerOptions {
            connect_timeout_ms: 500,
            ..PeerOptions::default()
        };
        let peer = Peer::start(addr, options, &shutdown).expect("peer");
        for index in 0..10 {
            peer.try_send(tagged(index)).expect("queue");
        }
        wait_until("a connect attempt was refused", || {
            peer.stats().connect_failures >= 2
        })
        .await;
        assert!(!peer.stats().connected);
        assert_eq!(peer.stats().frames_queued, 10, "frames wait in the queue");
        assert!(peer.last_error().is_some());

        let (listener, inbound) =
            Listener::bind(addr, ListenerOptions::default(), &shutdown).expect("bind");
        for index in 0..10 {
            assert_eq!(recv(&inbound).await.payload, tagged(index));
        }
        let stats = peer.stats();
        assert!(stats.connected);
        assert_eq!(stats.frames_dropped, 0);
        assert_eq!(stats.frames_queued, 0);
        drop(peer);
        listener.close().await;
    });
}

#[test]
fn the_sender_reconnects_after_the_listener_restarts_on_the_same_port() {
    run("net-restart", || async {
        let shutdown = Shutdown::new();
        let (listener, inbound, peer) = listener_and_peer(ListenerOptions::default(), &shutdown);
        let addr = listener.local_addr();
        for index in 0..100 {
            send_when_room(&peer, tagged(index)).await;
        }
        for index in 0..100 {
            assert_eq!(recv(&inbound).await.payload, tagged(index));
        }

        // Restart: drop the listener (and its channel) and bind the same port again at once.
        drop(listener);
        drop(inbound);
        let (listener, inbound) =
            Listener::bind(addr, ListenerOptions::default(), &shutdown).expect("rebind");
        assert_eq!(listener.local_addr(), addr);

        // Frames sent around the restart may be lost (Raft retransmits); keep sending until one
        // arrives on the new listener. What arrives is in order.
        let mut next = 100u64;
        let mut last_seen = None;
        let deadline = Instant::now() + Duration::from_millis(WAIT_TIMEOUT_MS);
        while last_seen.is_none() {
            assert!(
                Instant::now() < deadline,
                "no frame reached the new listener"
            );
            send_when_room(&peer, tagged(next)).await;
            next += 1;
            if let Some(frame) = recv_within(&inbound, 20).await {
                last_seen = index_of(&frame.payload);
            }
        }
        // Once a frame arrived on the new connection, every later frame arrives, in order: the
        // ones still in flight from the loop above and 100 more.
        let last = next + 99;
        for index in next..=last {
            send_when_room(&peer, tagged(index)).await;
        }
        let mut previous = last_seen.expect("a frame arrived");
        while previous < last {
            let index = index_of(&recv(&inbound).await.payload).expect("tagged");
            assert_eq!(index, previous + 1, "a frame was lost after reconnecting");
            previous = index;
        }
        let stats = peer.stats();
        assert!(stats.connects >= 2, "reconnected: {stats:?}");
        assert!(stats.disconnects >= 1, "noticed the restart: {stats:?}");
        peer.close().await;
        listener.close().await;
    });
}

#[test]
fn a_connection_sending_a_bad_frame_is_closed_and_others_are_still_served() {
    run("net-corrupt", || async {
        const FRAME_BYTES_MAX: usize = 1 << 20;
        let shutdown = Shutdown::new();
        let options = ListenerOptions {
            frame_bytes_max: FRAME_BYTES_MAX,
            ..ListenerOptions::default()
        };
        let (listener, inbound, peer) = listener_and_peer(options, &shutdown);
        let addr = listener.local_addr();
        send_and_receive(&peer, &inbound, 1).await;

        // A good frame, then one whose payload does not match its CRC.
        let mut corrupt = TcpStream::connect(addr).await.expect("connect");
        let mut wire = Vec::new();
        encode_frame(b"good", FRAME_BYTES_MAX, &mut wire).expect("encode");
        let bad_start = wire.len();
        encode_frame(b"tampered", FRAME_BYTES_MAX, &mut wire).expect("encode");
        wire[bad_start + FRAME_HEADER_BYTES] ^= 0x01;
        corrupt.write_all(&wire).await.expect("write");
        let frame = recv(&inbound).await;
        assert_eq!(frame.payload, b"good");
        assert!(
            closed_by_remote(&mut corrupt).await,
            "a bad CRC closes the connection"
        );
        wait_until("the CRC error is counted", || {
            listener.stats().frame_errors == 1
        })
        .await;
        match listener.last_error() {
            Some(ConnectionError::Frame {
                error: FrameError::Checksum { len_bytes: 8, .. },
                ..
            }) => {}
            other => panic!("expected a checksum error, got {other:?}"),
        }

        // A header announcing more than frame_bytes_max: closed before any payload is read.
        let mut oversized = TcpStream::connect(addr).await.expect("connect");
        let mut header = Vec::new();
        header.extend_from_slice(&(FRAME_BYTES_MAX as u32 + 1).to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        oversized.write_all(&header).await.expect("write");
        assert!(
            closed_by_remote(&mut oversized).await,
            "an over-limit length closes the connection"
        );
        wait_until("the length error is counted", || {
            listener.stats().frame_errors == 2
        })
        .await;
        match listener.last_error() {
            Some(ConnectionError::Frame {
                error: FrameError::TooLarge { len_bytes, .. },
                ..
            }) => assert_eq!(len_bytes, FRAME_BYTES_MAX as u64 + 1),
            other => panic!("expected a length error, got {other:?}"),
        }

        // The well-behaved peer is still served on its connection, and new connections work.
        for index in 2..50 {
            peer.try_send(tagged(index)).expect("queue");
        }
        for index in 2..50 {
            assert_eq!(recv(&inbound).await.payload, tagged(index));
        }
        let other = Peer::start(addr, PeerOptions::default(), &shutdown).expect("peer");
        send_and_receive(&other, &inbound, 1000).await;
        let stats = listener.stats();
        assert_eq!(stats.frame_errors, 2);
        assert_eq!(stats.connections_accepted, 4);
        assert_eq!(peer.stats().disconnects, 0);
        peer.close().await;
        other.close().await;
        listener.close().await;
    });
}

#[test]
fn the_bounded_send_queue_reports_full_and_hands_the_frame_back() {
    run("net-full", || async {
        let shutdown = Shutdown::new();
        let addr = unused_addr();
        let options = PeerOptions {
            send_queue_frames_max: 4,
            send_queue_bytes_max: 100,
            frame_bytes_max: 80,
            ..PeerOptions::default()
        };
        let peer = Peer::start(addr, options, &shutdown).expect("peer");
        let sender = peer.sender();
        for index in 0..4 {
            sender.try_send(vec![index; 10]).expect("room for 4 frames");
        }
        let error = sender.try_send(vec![9; 10]).unwrap_err();
        assert_eq!(
            error.kind(),
            &TrySendErrorKind::QueueFull {
                frames_queued: 4,
                bytes_queued: 40
            }
        );
        assert!(error.to_string().contains("send queue is full"));
        assert_eq!(error.into_payload(), vec![9; 10]);

        let error = peer.try_send(vec![0; 81]).unwrap_err();
        assert_eq!(
            error.kind(),
            &TrySendErrorKind::FrameTooLarge {
                len_bytes: 81,
                frame_bytes_max: 80
            }
        );
        let stats = peer.stats();
        assert_eq!(stats.frames_queued, 4);
        assert_eq!(stats.frames_rejected, 2);

        // The byte bound: a frame that fits an empty queue but not next to the others.
        let bytes_bound = Peer::start(
            addr,
            PeerOptions {
                send_queue_bytes_max: 100,
                ..PeerOptions::default()
            },
            &shutdown,
        )
        .expect("peer");
        bytes_bound
            .try_send(vec![0; 150])
            .expect("one frame always fits");
        let error = bytes_bound.try_send(vec![0; 1]).unwrap_err();
        assert!(matches!(error.kind(), TrySendErrorKind::QueueFull { .. }));

        // After close, senders report Closed and the queued frames are discarded.
        peer.close().await;
        let error = sender.try_send(vec![1]).unwrap_err();
        assert_eq!(error.kind(), &TrySendErrorKind::Closed);
        assert!(sender.is_closed());
        assert_eq!(sender.stats().frames_discarded, 4);
        bytes_bound.close().await;
    });
}

#[test]
fn triggering_shutdown_stops_listeners_and_peers() {
    run("net-shutdown", || async {
        let shutdown = Shutdown::new();
        let (listener, inbound, peer) = listener_and_peer(ListenerOptions::default(), &shutdown);
        send_and_receive(&peer, &inbound, 7).await;

        shutdown.trigger();
        assert_eq!(
            recv_within(&inbound, WAIT_TIMEOUT_MS).await,
            None,
            "the inbound channel ends after shutdown"
        );
        let error = peer.try_send(tagged(8)).unwrap_err();
        assert_eq!(error.kind(), &TrySendErrorKind::Closed);
        wait_until("the peer's task ended", || !peer.stats().connected).await;
        assert_eq!(listener.stats().connections_active, 0);
        peer.close().await;
        listener.close().await;
    });
}

#[test]
fn connections_beyond_connections_max_are_closed() {
    run("net-conn-max", || async {
        let shutdown = Shutdown::new();
        let options = ListenerOptions {
            connections_max: 1,
            ..ListenerOptions::default()
        };
        let (listener, inbound, peer) = listener_and_peer(options, &shutdown);
        let addr = listener.local_addr();
        send_and_receive(&peer, &inbound, 1).await;

        let mut extra = TcpStream::connect(addr).await.expect("connect");
        assert!(
            closed_by_remote(&mut extra).await,
            "the connection over the limit is closed"
        );
        let stats = listener.stats();
        assert_eq!(stats.connections_rejected, 1);
        assert_eq!(stats.connections_active, 1);
        assert!(matches!(
            listener.last_error(),
            Some(ConnectionError::Rejected {
                connections_max: 1,
                ..
            })
        ));
        send_and_receive(&peer, &inbound, 2).await;
        peer.close().await;
        listener.close().await;
    });
}

#[test]
fn options_are_validated() {
    run("net-options", || async {
        let shutdown = Shutdown::new();
        let bad_listener = ListenerOptions {
            inbound_queue_frames_max: 0,
            ..ListenerOptions::default()
        };
        let error = Listener::bind(loopback_any_port(), bad_listener, &shutdown).unwrap_err();
        assert!(error.to_string().contains("inbound_queue_frames_max"));
        let bad_peer = PeerOptions {
            reconnect_backoff_ms_min: 100,
            reconnect_backoff_ms_max: 10,
            ..PeerOptions::default()
        };
        let error = Peer::start(unused_addr(), bad_peer, &shutdown).unwrap_err();
        assert!(error.to_string().contains("reconnect_backoff_ms_max"));

        // Without SO_REUSEPORT, binding a port that is already listened on is an error.
        let (listener, _inbound) =
            Listener::bind(loopback_any_port(), ListenerOptions::default(), &shutdown)
                .expect("bind");
        let error = Listener::bind(listener.local_addr(), ListenerOptions::default(), &shutdown)
            .unwrap_err();
        assert!(error.to_string().contains("cannot listen on"), "{error}");
        listener.close().await;
    });
}
