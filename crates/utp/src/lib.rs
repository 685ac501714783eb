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
//! ```
//! # async fn demo() -> Result<(), utp::Error> {
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! let server = utp::UtpSocket::bind("127.0.0.1:0".parse().unwrap()).await?;
//! let client = utp::UtpSocket::bind("127.0.0.1:0".parse().unwrap()).await?;
//! let addr = server.local_addr()?;
//! let (accepted, connected) = tokio::join!(server.accept(), client.connect(addr));
//! let (mut a, mut b) = (accepted?, connected?);
//! b.write_all(b"ping").await?;
//! let mut buf = [0u8; 4];
//! a.read_exact(&mut buf).await?;
//! assert_eq!(&buf, b"ping");
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```
//!
//! Dependencies: `tokio` (UDP socket, timers) for the driver only; `rand` for connection ids and
//! initial sequence numbers; `thiserror`, `tracing`.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod conn;
pub mod ledbat;
pub mod packet;
mod socket;

pub use conn::{Config, ConnError, ConnState, Connection, Stats};
pub use ledbat::Ledbat;
pub use packet::PacketError;
pub use socket::{Error, OwnedReadHalf, OwnedWriteHalf, SocketConfig, UtpSocket, UtpStream};
