//! Every shard receives the pool's datagrams: each shard binds the pool's UDP port with `SO_REUSEPORT` (the
//! kernel spreads datagrams across the sockets by source), checks the size, and hands what it received to the
//! owner on shard 0 over a bounded cross-executor channel. Shard 0's own socket feeds the owner directly; TCP
//! stays on shard 0 alone (its listener binds without `SO_REUSEPORT`, so a second agent on the same address
//! fails to start instead of silently sharing the port).

use super::owner::PACKET_BYTES_MAX;
use super::PoolSettings;
use cairn_io::sockets::bind_udp;
use glommio::channels::shared_channel::{self, ConnectedSender, SharedReceiver, SharedSender};
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::time::Duration;

/// Datagrams one shard may have queued to the owner at once (more are dropped, as a full socket would).
pub const FORWARD_QUEUE_MAX: usize = 1024;

/// One datagram: where it came from and its bytes.
pub type Datagram = (SocketAddr, Vec<u8>);

/// The cross-executor channels of one pool: a sender per shard above 0, and their receivers for the owner.
#[derive(Default)]
pub struct Forwarders {
    senders: Mutex<Vec<Option<SharedSender<Datagram>>>>,
    receivers: Mutex<Vec<SharedReceiver<Datagram>>>,
}

impl std::fmt::Debug for Forwarders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarders").finish_non_exhaustive()
    }
}

impl Forwarders {
    /// Channels for shards `1..shards` (built on the main thread, before the executors start).
    pub fn new(shards: usize) -> Forwarders {
        let mut senders = vec![None];
        let mut receivers = Vec::new();
        for _ in 1..shards.max(1) {
            let (tx, rx) = shared_channel::new_bounded(FORWARD_QUEUE_MAX);
            senders.push(Some(tx));
            receivers.push(rx);
        }
        Forwarders {
            senders: Mutex::new(senders),
            receivers: Mutex::new(receivers),
        }
    }

    /// Shard `index`'s sender (taken once).
    pub fn take_sender(&self, index: usize) -> Option<SharedSender<Datagram>> {
        self.senders.lock().get_mut(index).and_then(Option::take)
    }

    /// The owner's receivers (taken once).
    pub fn take_receivers(&self) -> Vec<SharedReceiver<Datagram>> {
        std::mem::take(&mut *self.receivers.lock())
    }
}

/// Binds the pool's UDP port on this shard (above 0) and forwards every datagram to the owner until the
/// task is dropped.
pub fn receive_on_shard(
    settings: &PoolSettings,
    to_owner: SharedSender<Datagram>,
) -> Result<glommio::Task<()>, String> {
    let udp = bind_udp(settings.bind, true)
        .map_err(|e| format!("gossip (udp) on {}: {e}", settings.bind))?;
    Ok(glommio::spawn_local(async move {
        let to_owner: ConnectedSender<Datagram> = to_owner.connect().await;
        let mut buf = vec![0u8; PACKET_BYTES_MAX];
        loop {
            match udp.recv_from(&mut buf).await {
                Ok((n, from)) if n > 0 => {
                    let _ = to_owner.try_send((from, buf[..n].to_vec()));
                }
                Ok(_) => {}
                Err(_) => glommio::timer::sleep(Duration::from_millis(10)).await,
            }
        }
    }))
}
