//! Batched UDP receive and send (`recvmmsg`/`sendmmsg`) on a non-blocking socket, for a server that answers
//! many small datagrams: one system call moves up to a batch of datagrams each way instead of one each.
//!
//! Both calls never block (`MSG_DONTWAIT`); the caller waits for the socket to become readable with the
//! executor (e.g. glommio's `peek_from`) when a receive finds nothing, and sends what a batched send left
//! over through the executor.
//!
//! Bounds: a [`RecvBatch`] holds `messages_max` buffers of `message_bytes_max` bytes each, allocated once.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::unix::io::RawFd;

/// A peer address in the kernel's form, kept to send the answer back without converting twice.
#[derive(Clone, Copy)]
pub struct RawPeer {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl RawPeer {
    /// The address as a `SocketAddr`; `None` for a family other than IPv4 and IPv6.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match i32::from(self.storage.ss_family) {
            libc::AF_INET if self.len as usize >= mem::size_of::<libc::sockaddr_in>() => {
                // SAFETY: the family says the storage holds a sockaddr_in, and it is long enough.
                let sin = unsafe {
                    &*(&self.storage as *const libc::sockaddr_storage as *const libc::sockaddr_in)
                };
                let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                Some(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 if self.len as usize >= mem::size_of::<libc::sockaddr_in6>() => {
                // SAFETY: the family says the storage holds a sockaddr_in6, and it is long enough.
                let sin6 = unsafe {
                    &*(&self.storage as *const libc::sockaddr_storage as *const libc::sockaddr_in6)
                };
                let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                Some(SocketAddr::V6(SocketAddrV6::new(
                    ip,
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

/// Receive buffers for up to `messages_max` datagrams per call.
pub struct RecvBatch {
    buffers: Vec<Vec<u8>>,
    peers: Vec<RawPeer>,
    lengths: Vec<usize>,
    received: usize,
}

impl RecvBatch {
    /// Buffers for `messages_max` (at least 1) datagrams of up to `message_bytes_max` bytes each (longer
    /// ones are cut to that length).
    pub fn new(messages_max: usize, message_bytes_max: usize) -> RecvBatch {
        let messages_max = messages_max.max(1);
        // SAFETY: sockaddr_storage is plain data; all zeroes is a valid (unspecified-family) value.
        let empty = RawPeer {
            storage: unsafe { mem::zeroed() },
            len: 0,
        };
        RecvBatch {
            buffers: vec![vec![0u8; message_bytes_max]; messages_max],
            peers: vec![empty; messages_max],
            lengths: vec![0; messages_max],
            received: 0,
        }
    }

    /// Receives what is queued on `fd`, up to the batch size, without blocking: the number of datagrams
    /// (0 when none is queued). Errors: the socket's, other than "would block".
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.received = 0;
        let count = self.buffers.len();
        let mut iovecs: Vec<libc::iovec> = self
            .buffers
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        // SAFETY: mmsghdr is plain data; all zeroes is valid, and every pointer is set below.
        let mut headers: Vec<libc::mmsghdr> =
            (0..count).map(|_| unsafe { mem::zeroed() }).collect();
        for ((header, iovec), peer) in headers
            .iter_mut()
            .zip(iovecs.iter_mut())
            .zip(self.peers.iter_mut())
        {
            header.msg_hdr.msg_name = (&mut peer.storage as *mut libc::sockaddr_storage).cast();
            header.msg_hdr.msg_namelen =
                mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_hdr.msg_iov = iovec;
            header.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `headers` points at `count` live buffers and address slots owned by `self` and `iovecs`,
        // all outliving the call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                headers.as_mut_ptr(),
                count as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let error = io::Error::last_os_error();
            return match error.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(error),
            };
        }
        let n = (n as usize).min(count);
        for (((header, length), peer), buffer) in headers
            .iter()
            .zip(self.lengths.iter_mut())
            .zip(self.peers.iter_mut())
            .zip(&self.buffers)
            .take(n)
        {
            *length = (header.msg_len as usize).min(buffer.len());
            peer.len = header.msg_hdr.msg_namelen;
        }
        self.received = n;
        Ok(n)
    }

    /// How many datagrams the last [`RecvBatch::recv`] received.
    pub fn len(&self) -> usize {
        self.received
    }

    /// Whether the last receive got nothing.
    pub fn is_empty(&self) -> bool {
        self.received == 0
    }

    /// Datagram `i` of the last receive and its sender.
    pub fn get(&self, i: usize) -> Option<(&[u8], &RawPeer)> {
        if i >= self.received {
            return None;
        }
        Some((&self.buffers[i][..self.lengths[i]], &self.peers[i]))
    }
}

/// Sends `messages` (each with its peer) on `fd` in one call where the kernel takes them, without blocking:
/// how many from the front were sent. "Would block" sends none; another error on the first message is
/// returned (the kernel reports errors after the first as a short count).
pub fn send_batch(fd: RawFd, messages: &[(Vec<u8>, RawPeer)]) -> io::Result<usize> {
    if messages.is_empty() {
        return Ok(0);
    }
    let mut iovecs: Vec<libc::iovec> = messages
        .iter()
        .map(|(bytes, _)| libc::iovec {
            iov_base: bytes.as_ptr() as *mut libc::c_void,
            iov_len: bytes.len(),
        })
        .collect();
    // SAFETY: mmsghdr is plain data; all zeroes is valid, and every pointer is set below.
    let mut headers: Vec<libc::mmsghdr> =
        messages.iter().map(|_| unsafe { mem::zeroed() }).collect();
    for ((header, iovec), (_, peer)) in headers.iter_mut().zip(iovecs.iter_mut()).zip(messages) {
        header.msg_hdr.msg_name =
            (&peer.storage as *const libc::sockaddr_storage as *mut libc::sockaddr_storage).cast();
        header.msg_hdr.msg_namelen = peer.len;
        header.msg_hdr.msg_iov = iovec;
        header.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: every header points at bytes and an address borrowed from `messages` for the call; the
    // kernel only reads them.
    let n = unsafe {
        libc::sendmmsg(
            fd,
            headers.as_mut_ptr(),
            headers.len() as libc::c_uint,
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        let error = io::Error::last_os_error();
        return match error.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
            _ => Err(error),
        };
    }
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::unix::io::AsRawFd;

    #[test]
    fn a_batch_is_received_and_answered_in_one_call_each() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server.set_nonblocking(true).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = server.local_addr().unwrap();
        let mut batch = RecvBatch::new(4, 16);
        assert_eq!(batch.recv(server.as_raw_fd()).unwrap(), 0);
        for i in 0..6u8 {
            client.send_to(&[i; 20][..usize::from(i) + 1], to).unwrap();
        }
        let n = batch.recv(server.as_raw_fd()).unwrap();
        assert_eq!(n, 4);
        let mut replies = Vec::new();
        for i in 0..n {
            let (bytes, peer) = batch.get(i).unwrap();
            assert_eq!(bytes.len(), i + 1);
            assert_eq!(peer.socket_addr(), Some(client.local_addr().unwrap()));
            replies.push((bytes.to_vec(), *peer));
        }
        assert!(batch.get(n).is_none());
        assert_eq!(send_batch(server.as_raw_fd(), &replies).unwrap(), 4);
        let mut buffer = [0u8; 64];
        for i in 0..4 {
            let (len, from) = client.recv_from(&mut buffer).unwrap();
            assert_eq!((len, from), (i + 1, to));
        }
        // The rest, and a datagram longer than the buffers is cut to their size.
        client.send_to(&[9; 40], to).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(batch.recv(server.as_raw_fd()).unwrap(), 3);
        assert_eq!(batch.get(2).unwrap().0.len(), 16);
        assert_eq!(send_batch(server.as_raw_fd(), &[]).unwrap(), 0);
    }
}
