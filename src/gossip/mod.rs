//! Gossip, pure: SWIM membership with Lifeguard, wire-compatible with HashiCorp memberlist (protocol 2–5) and
//! Serf 0.8/0.9. No IO, no clock, no threads, no unseeded randomness (ARCHITECTURE.md rule 1).
//!
//! A [`Swim`] is driven like the Raft core: `step(now_ms, input, &mut actions)`. Inputs are received UDP packets,
//! TCP stream messages (a driver delimits them with [`packet::stream_message_len`]), push/pull replies, ticks, and
//! local requests (join, leave, user event, tags); actions are packets to send, push/pulls to dial, stream replies,
//! the next wake-up, and member/event notifications. The byte formats are in `WIRE.md` beside this file.
//!
//! The driver's contract (one owner of the `Swim`, all calls from one task):
//! 1. `Swim::new(Config::lan(name, addr), seed, keyring)` with `seed` from OS entropy (it also makes AES-GCM nonces).
//! 2. A UDP datagram from `from` → `step(now, Input::Packet { from, bytes })`.
//! 3. An accepted TCP connection → read until `packet::stream_message_len(&buf, cfg.members_max)` is `Some(n)` →
//!    `step(now, Input::Stream { conn, from, bytes: buf[..n] })` → write the `Action::StreamReply` for `conn`, close.
//! 4. `Action::Dial { id, to, bytes }` (push/pull or TCP fallback ping) → dial `to`, write, read one message the same way →
//!    `Input::DialReply { id, bytes }`, or `Input::DialFailed { id }` on any error or timeout (TCPTimeout).
//! 5. `Action::SendPacket` → send from the gossip socket; `Action::WakeAt { at_ms }` → one timer, then `Input::Tick`.
//! 6. Leaving: `step(Input::Leave)`, keep running until `pending_broadcasts() == 0` or BroadcastTimeout, then stop.
//!
//! Errors returned by `step` are for the log; the input has been dropped or used as far as it was valid.
//!
//! Modules, by memberlist/Serf term:
//! - [`msgpack`]: go-msgpack-compatible writer and bounded reader;
//! - [`messages`]: memberlist message bodies; [`serf`]: Serf messages, tags and Lamport clocks;
//! - [`packet`]: compound, LZW ([`lzw`]), CRC and AES-GCM ([`security`]) layers, stream framing;
//! - [`broadcast`]: the retransmit-limited queue; [`suspicion`]: Lifeguard suspicion and awareness;
//! - [`config`]: LAN/WAN/local profiles; `swim`/`state`/`serf_state`: the state machine.

pub mod broadcast;
pub mod config;
pub mod key_query;
pub mod lzw;
pub mod messages;
pub mod msgpack;
pub mod packet;
mod probe;
mod push_pull;
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
#[cfg(test)]
mod tests_network;
