//! Server-to-server networking: a CRC-checked frame codec and a framed TCP transport on glommio.
//!
//! - [`frame`]: the pure codec (`u32 len | u32 crc32 | payload`, little-endian) and the
//!   incremental [`FrameDecoder`].
//! - [`transport`]: a [`Listener`] that accepts connections and delivers inbound frames through a
//!   bounded channel, and a [`Peer`] that sends frames to one address over a lazily connected,
//!   automatically reconnecting connection with a bounded send queue.
//!
//! The transport carries opaque payloads; it knows nothing about Raft or Consul.

pub mod frame;
pub mod transport;

pub use frame::{
    encode_frame, encode_header, Decoded, FrameDecoder, FrameError, FRAME_BYTES_MAX_DEFAULT,
    FRAME_HEADER_BYTES,
};
pub use transport::{
    ConnectionError, InboundFrame, IoFailure, Listener, ListenerOptions, ListenerStats, Peer,
    PeerError, PeerOptions, PeerSender, PeerStats, TransportError, TrySendError, TrySendErrorKind,
};
