//! Byte streams to peers. A connection is TCP or uTP; the peer tasks see one boxed reader and one
//! boxed writer either way, so the protocol code has a single path.
//!
//! uTP (BEP 29, with LEDBAT congestion control) comes from our `utp` crate: one UDP socket on the
//! same port number as the TCP listener, as peers expect, multiplexing every uTP connection.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

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
    /// Wraps a uTP stream.
    pub(crate) fn utp(stream: utp::UtpStream) -> Self {
        let (rd, wr) = stream.into_split();
        Self {
            rd: Box::new(rd),
            wr: Box::new(wr),
            transport: Transport::Utp,
        }
    }

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

/// How long a uTP connect may take before the peer is taken to have no uTP (libtorrent waits
/// 3 s; on a path with uTP the SYN-ACK comes within one round trip).
const UTP_CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);

/// The session's uTP socket: one UDP port carrying every uTP connection.
pub(crate) struct UtpEndpoint {
    socket: Arc<utp::UtpSocket>,
    closed: tokio::sync::watch::Sender<bool>,
    /// Peers whose uTP connect failed: dialled over TCP only from then on.
    tcp_only: std::sync::Mutex<std::collections::HashSet<SocketAddr>>,
}

impl UtpEndpoint {
    /// Binds the uTP socket on `addr` (the TCP listener's address and port).
    pub(crate) async fn bind(addr: SocketAddr) -> Result<Self, String> {
        let socket = utp::UtpSocket::bind(addr)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Self {
            socket,
            closed: tokio::sync::watch::channel(false).0,
            tcp_only: Default::default(),
        })
    }

    /// Waits for the next incoming uTP connection; `None` once the endpoint is closed.
    pub(crate) async fn accept(&self) -> Option<(PeerStream, SocketAddr)> {
        let mut closed = self.closed.subscribe();
        loop {
            if *closed.borrow_and_update() {
                return None;
            }
            tokio::select! {
                r = self.socket.accept() => match r {
                    Ok(s) => {
                        let addr = s.peer_addr();
                        return Some((PeerStream::utp(s), addr));
                    }
                    Err(utp::Error::SocketClosed) => return None,
                    Err(e) => tracing::debug!("utp accept failed: {e}"),
                },
                _ = closed.changed() => return None,
            }
        }
    }

    /// Connects over uTP unless `addr` failed before; `None` means "use TCP".
    pub(crate) async fn connect(&self, addr: SocketAddr) -> Option<PeerStream> {
        if self.lock().contains(&addr) {
            return None;
        }
        match tokio::time::timeout(UTP_CONNECT_TIMEOUT, self.socket.connect(addr)).await {
            Ok(Ok(s)) => Some(PeerStream::utp(s)),
            _ => {
                self.lock().insert(addr);
                None
            }
        }
    }

    /// Remembers that `addr` answers over TCP but not uTP.
    pub(crate) fn prefer_tcp(&self, addr: SocketAddr) {
        self.lock().insert(addr);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<SocketAddr>> {
        self.tcp_only.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops accepting uTP connections (the socket closes when the last stream on it is gone).
    pub(crate) fn close(&self) {
        self.closed.send_replace(true);
    }
}
