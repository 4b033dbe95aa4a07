//! Gossip, pure: SWIM membership with Lifeguard, wire-compatible with HashiCorp memberlist (protocol 2–5) and
//! Serf 0.8/0.9. No IO, no clock, no threads, no unseeded randomness (ARCHITECTURE.md rule 1).
//!
//! A [`Swim`] is driven like the Raft core: `step(now_ms, input, &mut actions)`. Inputs are received UDP packets,
//! TCP stream messages (a driver delimits them with [`packet::stream_message_len`]), push/pull replies, ticks, and
//! local requests (join, leave, user event, tags); actions are packets to send, push/pulls to dial, stream replies,
//! the next wake-up, and member/event notifications. The byte formats are in `WIRE.md` beside this file.
//!
//! Modules, by memberlist/Serf term:
//! - [`msgpack`]: go-msgpack-compatible writer and bounded reader;
//! - [`messages`]: memberlist message bodies; [`serf`]: Serf messages, tags and Lamport clocks;
//! - [`packet`]: compound, LZW ([`lzw`]), CRC and AES-GCM ([`security`]) layers, stream framing;
//! - [`broadcast`]: the retransmit-limited queue; [`suspicion`]: Lifeguard suspicion and awareness;
//! - [`config`]: LAN/WAN/local profiles; `swim`/`state`/`serf_state`: the state machine.

pub mod broadcast;
pub mod config;
pub mod lzw;
pub mod messages;
pub mod msgpack;
pub mod packet;
pub mod security;
pub mod serf;
mod serf_state;
mod state;
pub mod suspicion;
mod swim;

pub use config::{Addr, Config};
pub use security::Keyring;
pub use swim::{Action, GossipError, Input, Member, MemberStatus, NodeState, Swim};

#[cfg(test)]
mod tests;
