//! The tokio driver: one UDP socket, many [`Connection`]s, streams for the application.
//!
//! A background task owns the receive side of the socket and the timers. Connections live in one
//! map keyed by (peer address, our receive id) behind a mutex; stream handles lock it to read and
//! write and send what the connection produces straight away (`try_send_to`), so the hot path does
//! not hop through the task. Datagrams that are not uTP are ignored; data for an unknown
//! connection is answered with ST_RESET.
//!
//! Lifetime: a connection stays in the map while a handle to it exists, and after both handles are
//! gone until our FIN is acknowledged (or the connection fails). The task ends once the
//! [`UtpSocket`] is dropped and no connection remains.

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UdpSocket;
use tokio::sync::Notify;

use crate::conn::{Config, ConnError, ConnState, Connection};
use crate::packet::{Header, Packet, PacketType};

/// Datagrams read in one go before acknowledgements are flushed.
const RECV_BATCH: usize = 64;

/// Socket-wide settings.
#[derive(Debug, Clone)]
pub struct SocketConfig {
    /// Settings for every connection.
    pub conn: Config,
    /// Accepted connections waiting for [`UtpSocket::accept`], at most; further SYNs are ignored.
    pub accept_backlog: usize,
}

impl Default for SocketConfig {
    fn default() -> Self {
        Self {
            conn: Config::default(),
            accept_backlog: 128,
        }
    }
}

/// Errors from the socket and its streams.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The UDP socket failed (bind, address lookup).
    #[error("utp socket i/o failed: {0}")]
    Io(#[from] io::Error),
    /// The connection ended abnormally.
    #[error(transparent)]
    Connection(#[from] ConnError),
    /// The socket was dropped.
    #[error("utp socket is closed; bind a new one")]
    SocketClosed,
    /// Every connection id towards this peer is taken.
    #[error("no free utp connection id towards {0}; close some connections to it")]
    NoFreeConnectionId(SocketAddr),
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Io(e) => e,
            Error::Connection(c) => conn_io_error(c),
            other => io::Error::other(other),
        }
    }
}

fn conn_io_error(e: ConnError) -> io::Error {
    let kind = match e {
        ConnError::ConnectTimedOut | ConnError::Unresponsive | ConnError::Idle => {
            io::ErrorKind::TimedOut
        }
        ConnError::Reset => io::ErrorKind::ConnectionReset,
    };
    io::Error::new(kind, e)
}

type Key = (SocketAddr, u16);

struct Entry {
    conn: Connection,
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
    /// Woken when the handshake completes, the FIN is acknowledged or the connection ends.
    state_waker: Option<Waker>,
    read_open: bool,
    write_open: bool,
}

struct State {
    conns: HashMap<Key, Entry>,
    accept_queue: VecDeque<Key>,
    /// Datagrams `try_send_to` could not take; the driver sends them when the socket is writable.
    backlog: VecDeque<(SocketAddr, Vec<u8>)>,
    scratch: Vec<u8>,
    closing: bool,
}

struct Shared {
    udp: UdpSocket,
    config: SocketConfig,
    state: Mutex<State>,
    wake_driver: Notify,
    accept_ready: Notify,
}

/// A UDP socket speaking uTP: accepts and opens any number of connections.
pub struct UtpSocket {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for UtpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UtpSocket")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl UtpSocket {
    /// Binds a UDP socket with default settings and starts its driver task on the current tokio
    /// runtime.
    pub async fn bind(addr: SocketAddr) -> Result<Arc<Self>, Error> {
        Self::bind_with_config(addr, SocketConfig::default()).await
    }

    /// Binds with explicit settings.
    pub async fn bind_with_config(
        addr: SocketAddr,
        config: SocketConfig,
    ) -> Result<Arc<Self>, Error> {
        let udp = UdpSocket::bind(addr).await?;
        let local_addr = udp.local_addr()?;
        let scratch = vec![
            0u8;
            Connection::connect(config.conn.clone(), 0, 0, Instant::now())
                .max_datagram_bytes()
        ];
        let shared = Arc::new(Shared {
            udp,
            config,
            state: Mutex::new(State {
                conns: HashMap::new(),
                accept_queue: VecDeque::new(),
                backlog: VecDeque::new(),
                scratch,
                closing: false,
            }),
            wake_driver: Notify::new(),
            accept_ready: Notify::new(),
        });
        tokio::spawn(drive(Arc::clone(&shared)));
        Ok(Arc::new(Self { shared, local_addr }))
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        Ok(self.local_addr)
    }

    /// Connections currently tracked (open, closing, or waiting to be accepted).
    pub fn connection_count(&self) -> usize {
        self.shared.lock().conns.len()
    }

    /// Waits for a peer to open a connection.
    pub async fn accept(&self) -> Result<UtpStream, Error> {
        loop {
            let ready = self.shared.accept_ready.notified();
            {
                let mut st = self.shared.lock();
                while let Some(key) = st.accept_queue.pop_front() {
                    if st.conns.contains_key(&key) {
                        return Ok(UtpStream::new(&self.shared, key));
                    }
                }
                if st.closing {
                    return Err(Error::SocketClosed);
                }
            }
            ready.await;
        }
    }

    /// Opens a connection to `addr`: sends SYNs until the peer answers or
    /// [`Config::connect_timeout`] passes.
    pub async fn connect(&self, addr: SocketAddr) -> Result<UtpStream, Error> {
        let stream = {
            let mut st = self.shared.lock();
            let mut rng = rand::thread_rng();
            let mut recv_id = None;
            for _ in 0..64 {
                let id: u16 = rng.gen();
                // Our send id (id + 1) must not collide with an accepted connection's key either.
                if !st.conns.contains_key(&(addr, id))
                    && !st.conns.contains_key(&(addr, id.wrapping_add(1)))
                {
                    recv_id = Some(id);
                    break;
                }
            }
            let recv_id = recv_id.ok_or(Error::NoFreeConnectionId(addr))?;
            let conn = Connection::connect(
                self.shared.config.conn.clone(),
                recv_id,
                rng.gen(),
                Instant::now(),
            );
            let key = (addr, recv_id);
            st.conns.insert(key, Entry::new(conn));
            self.shared.flush(&mut st, key);
            UtpStream::new(&self.shared, key)
        };
        self.shared.wake_driver.notify_one();
        let key = stream.read.handle.key;
        poll_fn(|cx| {
            let mut st = self.shared.lock();
            let Some(entry) = st.conns.get_mut(&key) else {
                return Poll::Ready(Err(Error::SocketClosed));
            };
            match entry.conn.state() {
                ConnState::SynSent => {
                    entry.state_waker = Some(cx.waker().clone());
                    Poll::Pending
                }
                ConnState::Failed(e) => Poll::Ready(Err(Error::Connection(e))),
                ConnState::Connected | ConnState::Closed => Poll::Ready(Ok(())),
            }
        })
        .await?;
        Ok(stream)
    }
}

impl Drop for UtpSocket {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.closing = true;
        // Connections nobody accepted are shut down.
        while let Some(key) = st.accept_queue.pop_front() {
            if let Some(entry) = st.conns.get_mut(&key) {
                entry.read_open = false;
                entry.write_open = false;
                entry.conn.shutdown();
            }
            self.shared.flush(&mut st, key);
        }
        drop(st);
        self.shared.accept_ready.notify_waiters();
        self.shared.wake_driver.notify_one();
    }
}

impl Entry {
    fn new(conn: Connection) -> Self {
        Self {
            conn,
            read_waker: None,
            write_waker: None,
            state_waker: None,
            read_open: true,
            write_open: true,
        }
    }

    /// Wakes whichever handle can now make progress.
    fn wake(&mut self, scratch: &mut [u8]) {
        if !self.read_open {
            // Nobody will read: discard so the peer is not stalled by a full window.
            while self.conn.read(scratch) > 0 {}
        }
        let closed = self.conn.is_closed();
        if self.conn.readable_bytes() > 0 || self.conn.is_read_closed() || closed {
            if let Some(w) = self.read_waker.take() {
                w.wake();
            }
        }
        let writable = self.conn.send_capacity();
        if writable > 0 || closed {
            if let Some(w) = self.write_waker.take() {
                w.wake();
            }
        }
        if self.conn.state() != ConnState::SynSent {
            if let Some(w) = self.state_waker.take() {
                w.wake();
            }
        }
    }

    fn removable(&self) -> bool {
        !self.read_open
            && !self.write_open
            && (self.conn.is_closed()
                || self.conn.state() == ConnState::SynSent
                || self.conn.is_fin_acked())
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends everything the connection has to send now, then drops it if it is finished.
    fn flush(&self, st: &mut State, key: Key) {
        let State {
            conns,
            backlog,
            scratch,
            ..
        } = st;
        let Some(entry) = conns.get_mut(&key) else {
            return;
        };
        let now = Instant::now();
        while let Some(n) = entry.conn.poll_transmit(now, scratch) {
            let datagram = &scratch[..n];
            if !backlog.is_empty() {
                backlog.push_back((key.0, datagram.to_vec()));
                continue;
            }
            match self.udp.try_send_to(datagram, key.0) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    backlog.push_back((key.0, datagram.to_vec()));
                }
                Err(e) => tracing::debug!(peer = %key.0, error = %e, "utp send failed"),
            }
        }
        if entry.removable() {
            conns.remove(&key);
        }
        if !backlog.is_empty() {
            self.wake_driver.notify_one();
        }
    }

    fn handle_datagram(
        &self,
        st: &mut State,
        data: &[u8],
        from: SocketAddr,
        touched: &mut Vec<Key>,
    ) {
        let Ok(packet) = Packet::decode(data) else {
            return; // not uTP: some other protocol shares the port
        };
        let h = packet.header;
        let now = Instant::now();
        let id = h.connection_id;
        let candidates: &[u16] = match h.packet_type {
            PacketType::Syn => &[id.wrapping_add(1)],
            PacketType::Reset => &[id, id.wrapping_sub(1), id.wrapping_add(1)],
            _ => &[id],
        };
        for &recv_id in candidates {
            let key = (from, recv_id);
            if let Some(entry) = st.conns.get_mut(&key) {
                if entry.conn.handle_packet(data, now).is_ok() {
                    touched.push(key);
                    return;
                }
            }
        }
        match h.packet_type {
            PacketType::Syn => {
                if st.closing || st.accept_queue.len() >= self.config.accept_backlog {
                    return;
                }
                let seq = rand::thread_rng().gen();
                let Ok(conn) = Connection::accept(self.config.conn.clone(), data, seq, now) else {
                    return;
                };
                let key = (from, conn.recv_id());
                if st.conns.contains_key(&key) {
                    return; // the id is taken by a connection of ours; the peer will retry
                }
                st.conns.insert(key, Entry::new(conn));
                st.accept_queue.push_back(key);
                touched.push(key);
                self.accept_ready.notify_one();
            }
            PacketType::Data | PacketType::Fin => {
                // Tell the peer this connection is gone so it stops retransmitting.
                let reset = Header {
                    packet_type: PacketType::Reset,
                    connection_id: id,
                    timestamp_us: 0,
                    timestamp_diff_us: 0,
                    wnd_size: 0,
                    seq_nr: 0,
                    ack_nr: h.seq_nr,
                };
                let mut buf = [0u8; crate::packet::HEADER_LEN];
                if let Ok(n) = reset.encode(None, &[], &mut buf) {
                    let _ = self.udp.try_send_to(&buf[..n], from);
                }
            }
            PacketType::State | PacketType::Reset => {}
        }
    }

    /// Wakes handles and flushes each touched connection once.
    fn finish_touched(&self, st: &mut State, touched: &mut Vec<Key>) {
        touched.sort_unstable();
        touched.dedup();
        for key in touched.drain(..) {
            let State { conns, scratch, .. } = &mut *st;
            if let Some(entry) = conns.get_mut(&key) {
                entry.wake(scratch);
            }
            self.flush(st, key);
        }
    }
}

async fn drive(shared: Arc<Shared>) {
    let mut buf = vec![0u8; 65_536];
    let mut touched = Vec::new();
    loop {
        let (deadline, has_backlog) = {
            let st = shared.lock();
            if st.closing && st.conns.is_empty() {
                return;
            }
            let deadline = st
                .conns
                .values()
                .filter_map(|e| e.conn.poll_timeout())
                .min();
            (deadline, !st.backlog.is_empty())
        };
        let sleep_until = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            received = shared.udp.recv_from(&mut buf) => {
                let mut st = shared.lock();
                match received {
                    Ok((n, from)) => shared.handle_datagram(&mut st, &buf[..n], from, &mut touched),
                    Err(e) => tracing::debug!(error = %e, "utp recv failed"),
                }
                for _ in 1..RECV_BATCH {
                    match shared.udp.try_recv_from(&mut buf) {
                        Ok((n, from)) => shared.handle_datagram(&mut st, &buf[..n], from, &mut touched),
                        Err(_) => break,
                    }
                }
                shared.finish_touched(&mut st, &mut touched);
            }
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(sleep_until)) => {
                let mut st = shared.lock();
                let now = Instant::now();
                for (key, entry) in st.conns.iter_mut() {
                    if entry.conn.poll_timeout().is_some_and(|t| t <= now) {
                        entry.conn.handle_timeout(now);
                        touched.push(*key);
                    }
                }
                shared.finish_touched(&mut st, &mut touched);
            }
            _ = shared.wake_driver.notified() => {}
            writable = shared.udp.writable(), if has_backlog => {
                if writable.is_ok() {
                    let mut st = shared.lock();
                    while let Some((to, datagram)) = st.backlog.pop_front() {
                        match shared.udp.try_send_to(&datagram, to) {
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                st.backlog.push_front((to, datagram));
                                break;
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
    }
}

/// The shared part of both stream halves.
struct Handle {
    shared: Arc<Shared>,
    key: Key,
}

impl Handle {
    fn with_entry<T>(&self, f: impl FnOnce(&mut Entry) -> T) -> Option<T> {
        let mut st = self.shared.lock();
        let result = st.conns.get_mut(&self.key).map(f);
        self.shared.flush(&mut st, self.key);
        result
    }
}

/// A uTP connection: `AsyncRead + AsyncWrite`. Dropping it (or calling `shutdown`) sends a FIN
/// after the buffered data.
pub struct UtpStream {
    read: OwnedReadHalf,
    write: OwnedWriteHalf,
}

impl std::fmt::Debug for UtpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UtpStream")
            .field("peer", &self.read.handle.key.0)
            .finish_non_exhaustive()
    }
}

/// The receiving half of a [`UtpStream`].
pub struct OwnedReadHalf {
    handle: Handle,
}

/// The sending half of a [`UtpStream`]; dropping it sends a FIN after the buffered data.
pub struct OwnedWriteHalf {
    handle: Handle,
}

impl std::fmt::Debug for OwnedReadHalf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedReadHalf")
            .field("peer", &self.handle.key.0)
            .finish()
    }
}

impl std::fmt::Debug for OwnedWriteHalf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedWriteHalf")
            .field("peer", &self.handle.key.0)
            .finish()
    }
}

impl UtpStream {
    fn new(shared: &Arc<Shared>, key: Key) -> Self {
        let handle = || Handle {
            shared: Arc::clone(shared),
            key,
        };
        Self {
            read: OwnedReadHalf { handle: handle() },
            write: OwnedWriteHalf { handle: handle() },
        }
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.read.handle.key.0
    }

    /// The local socket's address.
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        Ok(self.read.handle.shared.udp.local_addr()?)
    }

    /// Splits into halves that can move to different tasks.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        (self.read, self.write)
    }

    /// Connection counters (packets, retransmissions, bytes).
    pub fn stats(&self) -> crate::Stats {
        self.read
            .handle
            .with_entry(|e| e.conn.stats())
            .unwrap_or_default()
    }
}

impl OwnedReadHalf {
    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.handle.key.0
    }
}

impl OwnedWriteHalf {
    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.handle.key.0
    }
}

impl AsyncRead for OwnedReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let handle = &self.handle;
        let mut st = handle.shared.lock();
        let Some(entry) = st.conns.get_mut(&handle.key) else {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        };
        let n = entry.conn.read(buf.initialize_unfilled());
        if n > 0 {
            buf.advance(n);
            // Reading may reopen the receive window: tell the peer.
            handle.shared.flush(&mut st, handle.key);
            return Poll::Ready(Ok(()));
        }
        if entry.conn.is_read_closed() || entry.conn.state() == ConnState::Closed {
            return Poll::Ready(Ok(()));
        }
        if let Some(e) = entry.conn.error() {
            return Poll::Ready(Err(conn_io_error(e)));
        }
        entry.read_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl AsyncWrite for OwnedWriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let handle = &self.handle;
        let mut st = handle.shared.lock();
        let Some(entry) = st.conns.get_mut(&handle.key) else {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        };
        if let Some(e) = entry.conn.error() {
            return Poll::Ready(Err(conn_io_error(e)));
        }
        if entry.conn.is_closed() {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = entry.conn.write(data);
        if n == 0 {
            entry.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        handle.shared.flush(&mut st, handle.key);
        drop(st);
        // New packets may have armed a retransmission timer earlier than the driver's sleep.
        handle.shared.wake_driver.notify_one();
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Sends a FIN after the buffered data and waits until the peer acknowledges it.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let handle = &self.handle;
        let mut st = handle.shared.lock();
        let Some(entry) = st.conns.get_mut(&handle.key) else {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        };
        entry.conn.shutdown();
        if entry.conn.is_fin_acked() {
            return Poll::Ready(Ok(()));
        }
        if let Some(e) = entry.conn.error() {
            return Poll::Ready(Err(conn_io_error(e)));
        }
        entry.state_waker = Some(cx.waker().clone());
        handle.shared.flush(&mut st, handle.key);
        drop(st);
        handle.shared.wake_driver.notify_one();
        Poll::Pending
    }
}

impl Drop for OwnedReadHalf {
    fn drop(&mut self) {
        let mut st = self.handle.shared.lock();
        let State { conns, scratch, .. } = &mut *st;
        if let Some(entry) = conns.get_mut(&self.handle.key) {
            entry.read_open = false;
            entry.read_waker = None;
            entry.wake(scratch);
        }
        self.handle.shared.flush(&mut st, self.handle.key);
    }
}

impl Drop for OwnedWriteHalf {
    fn drop(&mut self) {
        let mut st = self.handle.shared.lock();
        if let Some(entry) = st.conns.get_mut(&self.handle.key) {
            entry.write_open = false;
            entry.write_waker = None;
            entry.conn.shutdown();
        }
        self.handle.shared.flush(&mut st, self.handle.key);
        drop(st);
        self.handle.shared.wake_driver.notify_one();
    }
}

impl AsyncRead for UtpStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for UtpStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.write).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.write).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.write).poll_shutdown(cx)
    }
}
