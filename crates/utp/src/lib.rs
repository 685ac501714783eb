//! uTP, the uTorrent transport protocol (BEP 29), with LEDBAT congestion control (RFC 6817).
//!
//! uTP carries BitTorrent peer connections over UDP and yields to other traffic: it measures the
//! one-way queuing delay its own packets cause and keeps it near a target (100 ms), so a seeding
//! client does not fill the uplink's buffers.
//!
//! # Layout
//! - [`packet`]: the wire format (header, selective ack extension); total decoding, encoding
//!   into caller buffers.
//! - [`ledbat`]: the delay-based congestion controller.
//! - [`Connection`] (`conn.rs`): one connection as a sans-IO state machine: `handle_packet`,
//!   `handle_timeout` in, `poll_transmit`, `poll_timeout` out; `write`, `read`, `shutdown` for the
//!   application. Retransmission (RTT/RTO per BEP 29, fast retransmit on duplicate or selective
//!   acks), reordering, receive window, FIN/RESET.
//! - [`UtpSocket`] / [`UtpStream`] (`socket.rs`): the tokio driver. One UDP socket multiplexes any
//!   number of connections keyed by (peer address, connection id); streams implement
//!   `AsyncRead`/`AsyncWrite`.
//!
//!
//! Dependencies: `tokio` (UDP socket, timers) for the driver only; `rand` for connection ids and
//! initial sequence numbers; `thiserror`, `tracing`.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod conn;
pub mod ledbat;
pub mod packet;

pub use conn::{Config, ConnError, ConnState, Connection, Stats};
pub use ledbat::Ledbat;
pub use packet::PacketError;
