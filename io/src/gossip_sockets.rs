//! The sockets of a gossip pool: a UDP socket and a TCP listener on the same address, optionally shared with
//! other executors through `SO_REUSEPORT` (the kernel then spreads datagrams and connections across them).
//! Only socket creation lives here; what is sent and how it is framed is the caller's business.

use glommio::net::{TcpListener, UdpSocket};
use std::io;
use std::net::SocketAddr;
use std::os::unix::io::{FromRawFd, IntoRawFd};

/// Binds a non-blocking UDP socket on `addr`, with `SO_REUSEPORT` when `reuse_port`.
pub fn bind_udp(addr: SocketAddr, reuse_port: bool) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    let fd = socket.into_raw_fd();
    // SAFETY: `fd` is a bound UDP socket nothing else owns; glommio takes it over and closes it on drop.
    Ok(unsafe { UdpSocket::from_raw_fd(fd) })
}

/// Binds and listens on `addr` over TCP (`SO_REUSEADDR`, and `SO_REUSEPORT` when `reuse_port`).
pub fn bind_tcp(addr: SocketAddr, reuse_port: bool, backlog: i32) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    let fd = socket.into_raw_fd();
    // SAFETY: `fd` is a bound, listening TCP socket nothing else owns; glommio closes it on drop.
    Ok(unsafe { TcpListener::from_raw_fd(fd) })
}
