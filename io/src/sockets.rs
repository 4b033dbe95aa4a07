//! Socket creation shared by the listeners: a non-blocking UDP socket and a listening TCP socket, each
//! optionally shared with other executors through `SO_REUSEPORT` (the kernel then spreads datagrams and
//! connections across them). What is sent and how it is framed is the caller's business.

use glommio::net::{TcpListener, UdpSocket};
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::SocketAddr;
use std::os::unix::io::{FromRawFd, IntoRawFd};

/// Binds a non-blocking UDP socket on `addr`, with `SO_REUSEPORT` when `reuse_port`.
pub fn bind_udp(addr: SocketAddr, reuse_port: bool) -> io::Result<UdpSocket> {
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

/// A TCP socket bound and listening on `addr` with `backlog`: `SO_REUSEADDR` always (a restarted agent can bind
/// while old connections linger in `TIME_WAIT`), `SO_REUSEPORT` only when asked, so that by default an address
/// another socket listens on is an `AddrInUse` error (glommio's own `bind` would silently share it).
pub fn listening_socket(addr: SocketAddr, reuse_port: bool, backlog: i32) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket)
}

/// [`listening_socket`] handed to glommio.
pub fn bind_tcp(addr: SocketAddr, reuse_port: bool, backlog: i32) -> io::Result<TcpListener> {
    let fd = listening_socket(addr, reuse_port, backlog)?.into_raw_fd();
    // SAFETY: `fd` is a bound, listening TCP socket nothing else owns; glommio closes it on drop.
    Ok(unsafe { TcpListener::from_raw_fd(fd) })
}
