//! Byte streams to peers. A connection is TCP or uTP; the peer tasks see one boxed reader and one
//! boxed writer either way, so the protocol code has a single path.
//!
//! uTP (BEP 29) comes from `librqbit-utp`: a tokio uTP socket that multiplexes many streams over
//! one UDP port (the same number as the TCP listener, as peers expect) with `AsyncRead`/
//! `AsyncWrite` halves. It is the maintained crate that fits this shape; its congestion control
//! is CUBIC rather than LEDBAT (see the crate docs).

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
    pub(crate) fn utp(stream: librqbit_utp::UtpStream) -> Self {
        let (rd, wr) = stream.split();
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

/// How long a uTP connect may take before TCP is tried (libtorrent waits 3 s; on a network
/// path with uTP the SYN-ACK comes within one round trip).
const UTP_CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);
/// A quiet uTP stream is closed after this long; BitTorrent keep-alives come every two minutes.
const UTP_INACTIVITY_TIMEOUT: Duration = Duration::from_secs(180);

/// The session's uTP socket: one UDP port carrying every uTP connection.
pub(crate) struct UtpEndpoint {
    socket: Arc<librqbit_utp::UtpSocketUdp>,
    close: Box<dyn Fn() + Send + Sync>,
    /// Peers whose uTP connect failed: dialled over TCP only from then on.
    tcp_only: std::sync::Mutex<std::collections::HashSet<SocketAddr>>,
}

impl UtpEndpoint {
    /// Binds the uTP socket on `addr` (the TCP listener's address and port).
    pub(crate) async fn bind(addr: SocketAddr) -> Result<Self, String> {
        let opts = librqbit_utp::SocketOpts {
            remote_inactivity_timeout: Some(UTP_INACTIVITY_TIMEOUT),
            ..Default::default()
        };
        let token = opts.cancellation_token.clone();
        let socket = librqbit_utp::UtpSocketUdp::new_udp_with_opts(addr, opts, Default::default())
            .await
            .map_err(|e| format!("{e:#}"))?;
        Ok(Self {
            socket,
            close: Box::new(move || token.cancel()),
            tcp_only: Default::default(),
        })
    }

    /// Waits for the next incoming uTP connection; `None` once the socket is gone.
    pub(crate) async fn accept(&self) -> Option<(PeerStream, SocketAddr)> {
        let s = self.socket.accept().await.ok()?;
        let addr = s.remote_addr();
        Some((PeerStream::utp(s), addr))
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

    /// Closes the UDP socket and every uTP stream on it.
    pub(crate) fn close(&self) {
        (self.close)();
    }
}
