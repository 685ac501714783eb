//! Byte streams to peers. A connection is TCP or uTP; the peer tasks see one boxed reader and one
//! boxed writer either way, so the protocol code has a single path.

use std::fmt;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The read half of a peer connection.
pub(crate) type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
/// The write half of a peer connection.
pub(crate) type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// How a peer connection is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP.
    Tcp,
    /// uTP (BEP 29) over UDP.
    Utp,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Tcp => "tcp",
            Transport::Utp => "utp",
        })
    }
}

/// A connected peer stream, split into halves so reading and writing run in separate tasks.
pub(crate) struct PeerStream {
    pub(crate) rd: BoxRead,
    pub(crate) wr: BoxWrite,
    pub(crate) transport: Transport,
}

impl PeerStream {
    /// Wraps a TCP connection (Nagle off: requests and haves are small and latency-bound).
    pub(crate) fn tcp(stream: TcpStream) -> Self {
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        Self {
            rd: Box::new(rd),
            wr: Box::new(wr),
            transport: Transport::Tcp,
        }
    }
}
