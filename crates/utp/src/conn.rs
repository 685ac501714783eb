//! One uTP connection as a state machine without I/O.
//!
//! Inputs: [`Connection::handle_packet`] for each datagram addressed to this connection,
//! [`Connection::handle_timeout`] when [`Connection::poll_timeout`] passes, [`Connection::write`],
//! [`Connection::read`] and [`Connection::shutdown`] from the application. Output: datagrams from
//! [`Connection::poll_transmit`], to be sent to the peer until it returns `None`. Time is always a
//! parameter, so the whole protocol runs under a simulated clock in tests.
//!
//! # Invariants
//! - `inflight` holds every sent data/FIN packet not yet cumulatively acknowledged, in sequence
//!   order: entry `i` has sequence number `oldest_seq() + i`, and `seq_nr` is one past the last.
//! - `inflight_bytes` is the payload of entries that count against the windows: sent, not
//!   acknowledged (cumulatively or selectively) and not declared lost. Lost entries wait for a
//!   resend; `resend_pending` counts them.
//! - On the receive side `ack_nr` is the last sequence number received in order; `reorder[k]`
//!   holds the payload of packet `ack_nr + 1 + k` if it arrived early (`reorder[0]` is always empty
//!   between calls).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::ledbat::Ledbat;
use crate::packet::{Header, Packet, PacketError, PacketType, HEADER_LEN, MAX_SELECTIVE_ACK_BYTES};

/// Smallest retransmission timeout (BEP 29).
const MIN_RTO: Duration = Duration::from_millis(500);
/// Largest retransmission timeout after back-off.
const MAX_RTO: Duration = Duration::from_secs(30);
/// Timeout before the first round-trip sample (BEP 29).
const INITIAL_RTO: Duration = Duration::from_secs(1);
/// Duplicate acks (or selectively acked packets past a hole) that declare a packet lost.
const DUPLICATE_ACKS_BEFORE_RESEND: usize = 3;
/// Packets in flight at most; keeps sequence arithmetic far from wrapping ambiguity.
const MAX_INFLIGHT_PACKETS: usize = 4096;
/// Out-of-order packets buffered at most past the next expected one.
const MAX_REORDER_PACKETS: usize = 4096;
/// How long a zero receive window is honoured before one packet probes it.
const ZERO_WINDOW_PROBE: Duration = Duration::from_secs(1);

/// Tunables for a connection.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest payload per packet. 1400 keeps datagrams under a 1500-byte path MTU.
    pub max_payload_bytes: usize,
    /// Bytes accepted by [`Connection::write`] and not yet acknowledged, at most.
    pub send_buffer_bytes: usize,
    /// Bytes received and not yet read, at most; advertised to the peer as the receive window.
    pub recv_buffer_bytes: usize,
    /// How long [`Connection::connect`] retries its SYN before failing.
    pub connect_timeout: Duration,
    /// Interval between SYN retransmissions.
    pub syn_retransmit_interval: Duration,
    /// A connection that receives nothing for this long fails. Keep it well above BitTorrent's
    /// 2-minute keep-alive interval.
    pub idle_timeout: Duration,
    /// An ST_STATE is sent after this long without sending anything (keeps NAT mappings open).
    pub keepalive_interval: Duration,
    /// Consecutive retransmission timeouts without progress before the connection fails.
    pub max_retransmissions: u32,
    /// LEDBAT target queuing delay.
    pub target_delay: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_payload_bytes: 1400,
            send_buffer_bytes: 1024 * 1024,
            recv_buffer_bytes: 1024 * 1024,
            connect_timeout: Duration::from_secs(3),
            syn_retransmit_interval: Duration::from_millis(500),
            idle_timeout: Duration::from_secs(300),
            keepalive_interval: Duration::from_secs(29),
            max_retransmissions: 8,
            target_delay: Duration::from_millis(100),
        }
    }
}

/// Why a connection ended abnormally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnError {
    /// The peer never answered the SYN.
    #[error(
        "utp connect timed out: the peer did not answer; check the address and that it accepts uTP"
    )]
    ConnectTimedOut,
    /// The peer sent ST_RESET.
    #[error("utp connection reset by the peer")]
    Reset,
    /// Data went unacknowledged through every retransmission.
    #[error("utp peer stopped acknowledging data; the connection is dead")]
    Unresponsive,
    /// Nothing arrived for [`Config::idle_timeout`].
    #[error("utp connection idle for longer than the idle timeout; the peer is gone")]
    Idle,
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    /// SYN sent, waiting for the peer's answer.
    SynSent,
    /// Open: data flows (either side may have sent its FIN already).
    Connected,
    /// Both FINs exchanged and ours acknowledged.
    Closed,
    /// Ended by an error.
    Failed(ConnError),
}

/// Counters for diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams produced by `poll_transmit`.
    pub packets_sent: u64,
    /// Data/FIN packets sent again.
    pub packets_retransmitted: u64,
    /// Payload bytes acknowledged by the peer.
    pub bytes_acked: u64,
    /// Payload bytes delivered in order to the receive buffer.
    pub bytes_received: u64,
}

#[derive(Debug)]
struct Sent {
    kind: PacketType,
    payload: Vec<u8>,
    last_sent: Instant,
    transmissions: u32,
    acked: bool,
    in_flight: bool,
    fast_resent: bool,
}

/// A uTP connection (see the module docs).
#[derive(Debug)]
pub struct Connection {
    config: Config,
    state: ConnState,
    epoch: Instant,
    created: Instant,
    recv_id: u16,
    send_id: u16,

    // Handshake.
    initiator: bool,
    syn_seq: u16,
    syn_due: bool,
    syn_sent_at: Option<Instant>,
    syn_transmissions: u32,

    // Send side.
    seq_nr: u16,
    unsent: VecDeque<u8>,
    inflight: VecDeque<Sent>,
    inflight_bytes: usize,
    buffered_bytes: usize,
    resend_pending: usize,
    peer_wnd: usize,
    peer_wnd_zero_since: Option<Instant>,
    shutdown_requested: bool,
    fin_seq: Option<u16>,
    fin_acked: bool,
    duplicate_acks: usize,
    last_ack_seen: Option<u16>,

    // Timing.
    ledbat: Ledbat,
    rtt: Option<Duration>,
    rtt_var: Duration,
    rto: Duration,
    rto_deadline: Option<Instant>,
    consecutive_timeouts: u32,
    last_recv_at: Instant,
    last_send_at: Instant,

    // Receive side.
    ack_nr: u16,
    ready: VecDeque<u8>,
    reorder: VecDeque<Option<Vec<u8>>>,
    reorder_bytes: usize,
    remote_fin: Option<u16>,
    eof: bool,
    ack_pending: bool,
    reply_micro: u32,

    stats: Stats,
}

impl Connection {
    /// Opens a connection as the initiator: `recv_id` is our (random, unused) receive id, the peer
    /// will address us with it; we send with `recv_id + 1`. `seq_nr` is the SYN's sequence number.
    /// The SYN is the first datagram `poll_transmit` yields.
    pub fn connect(config: Config, recv_id: u16, seq_nr: u16, now: Instant) -> Self {
        let mut c = Self::new(config, recv_id, recv_id.wrapping_add(1), now);
        c.initiator = true;
        c.syn_seq = seq_nr;
        c.seq_nr = seq_nr.wrapping_add(1);
        c.syn_due = true;
        c.state = ConnState::SynSent;
        c
    }

    /// Accepts a connection from a received SYN datagram. `seq_nr` is our (random) first sequence
    /// number. The SYN-ACK is the first datagram `poll_transmit` yields.
    pub fn accept(
        config: Config,
        syn: &[u8],
        seq_nr: u16,
        now: Instant,
    ) -> Result<Self, PacketError> {
        let packet = Packet::decode(syn)?;
        let h = packet.header;
        if h.packet_type != PacketType::Syn {
            return Err(PacketError::NotForUs);
        }
        let mut c = Self::new(
            config,
            h.connection_id.wrapping_add(1),
            h.connection_id,
            now,
        );
        c.syn_seq = h.seq_nr;
        c.ack_nr = h.seq_nr;
        c.seq_nr = seq_nr;
        c.peer_wnd = h.wnd_size as usize;
        c.reply_micro = c.timestamp(now).wrapping_sub(h.timestamp_us);
        c.ack_pending = true;
        c.state = ConnState::Connected;
        Ok(c)
    }

    fn new(config: Config, recv_id: u16, send_id: u16, now: Instant) -> Self {
        let mss = config.max_payload_bytes.max(1);
        let ledbat = Ledbat::new(mss, config.target_delay);
        Self {
            config,
            state: ConnState::SynSent,
            epoch: now,
            created: now,
            recv_id,
            send_id,
            initiator: false,
            syn_seq: 0,
            syn_due: false,
            syn_sent_at: None,
            syn_transmissions: 0,
            seq_nr: 0,
            unsent: VecDeque::new(),
            inflight: VecDeque::new(),
            inflight_bytes: 0,
            buffered_bytes: 0,
            resend_pending: 0,
            peer_wnd: mss,
            peer_wnd_zero_since: None,
            shutdown_requested: false,
            fin_seq: None,
            fin_acked: false,
            duplicate_acks: 0,
            last_ack_seen: None,
            ledbat,
            rtt: None,
            rtt_var: Duration::ZERO,
            rto: INITIAL_RTO,
            rto_deadline: None,
            consecutive_timeouts: 0,
            last_recv_at: now,
            last_send_at: now,
            ack_nr: 0,
            ready: VecDeque::new(),
            reorder: VecDeque::new(),
            reorder_bytes: 0,
            remote_fin: None,
            eof: false,
            ack_pending: false,
            reply_micro: 0,
            stats: Stats::default(),
        }
    }

    // ----- accessors -------------------------------------------------------------------------

    /// Current state.
    pub fn state(&self) -> ConnState {
        self.state
    }

    /// The error that ended the connection, if any.
    pub fn error(&self) -> Option<ConnError> {
        match self.state {
            ConnState::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// Whether the handshake completed and the connection has not ended.
    pub fn is_established(&self) -> bool {
        self.state == ConnState::Connected
    }

    /// Whether the connection has ended (closed cleanly or failed).
    pub fn is_closed(&self) -> bool {
        matches!(self.state, ConnState::Closed | ConnState::Failed(_))
    }

    /// The id the peer puts on packets to us.
    pub fn recv_id(&self) -> u16 {
        self.recv_id
    }

    /// The id we put on packets to the peer.
    pub fn send_id(&self) -> u16 {
        self.send_id
    }

    /// Bytes [`Connection::read`] can return now.
    pub fn readable_bytes(&self) -> usize {
        self.ready.len()
    }

    /// Whether the peer's FIN arrived and every byte before it has been read.
    pub fn is_read_closed(&self) -> bool {
        self.eof && self.ready.is_empty()
    }

    /// Bytes [`Connection::write`] would accept now.
    pub fn send_capacity(&self) -> usize {
        if self.shutdown_requested || self.is_closed() {
            return 0;
        }
        self.config
            .send_buffer_bytes
            .saturating_sub(self.unsent.len() + self.buffered_bytes)
    }

    /// Whether every written byte (and the FIN, after [`Connection::shutdown`]) is acknowledged.
    pub fn is_flushed(&self) -> bool {
        self.unsent.is_empty()
            && self.inflight.is_empty()
            && (!self.shutdown_requested || self.fin_acked)
    }

    /// Whether our FIN has been acknowledged.
    pub fn is_fin_acked(&self) -> bool {
        self.fin_acked
    }

    /// LEDBAT congestion window in bytes.
    pub fn cwnd(&self) -> usize {
        self.ledbat.cwnd()
    }

    /// The congestion controller (for inspection).
    pub fn ledbat(&self) -> &Ledbat {
        &self.ledbat
    }

    /// Smoothed round-trip time, once measured.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// Current retransmission timeout.
    pub fn rto(&self) -> Duration {
        self.rto
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Largest datagram [`Connection::poll_transmit`] produces; size its buffer at least this big.
    pub fn max_datagram_bytes(&self) -> usize {
        HEADER_LEN + 2 + MAX_SELECTIVE_ACK_BYTES + self.config.max_payload_bytes
    }

    // ----- application side ------------------------------------------------------------------

    /// Queues bytes for sending; returns how many were accepted (limited by the send buffer).
    /// Accepts nothing after [`Connection::shutdown`] or once the connection ended.
    pub fn write(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.send_capacity());
        self.unsent.extend(&data[..n]);
        n
    }

    /// Copies received in-order bytes into `buf`; returns how many. Zero means either nothing is
    /// buffered yet or the stream ended: see [`Connection::is_read_closed`].
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        let before = self.recv_window();
        let n = buf.len().min(self.ready.len());
        let (a, b) = self.ready.as_slices();
        let from_a = n.min(a.len());
        buf[..from_a].copy_from_slice(&a[..from_a]);
        buf[from_a..n].copy_from_slice(&b[..n - from_a]);
        self.ready.drain(..n);
        // Tell a sender stalled on our window that it reopened.
        let half = self.config.recv_buffer_bytes / 2;
        if before < half && self.recv_window() >= half && !self.is_closed() {
            self.ack_pending = true;
        }
        n
    }

    /// Ends our direction: once queued data is sent, a FIN follows. Reading continues.
    pub fn shutdown(&mut self) {
        self.shutdown_requested = true;
    }

    // ----- packets in ------------------------------------------------------------------------

    /// Processes one datagram from the peer. Malformed datagrams and packets for another
    /// connection return an error and change nothing.
    pub fn handle_packet(&mut self, datagram: &[u8], now: Instant) -> Result<(), PacketError> {
        let packet = Packet::decode(datagram)?;
        let h = packet.header;
        if matches!(self.state, ConnState::Failed(_)) {
            return Ok(());
        }
        match h.packet_type {
            PacketType::Syn => {
                // A retransmitted SYN: our SYN-ACK was lost.
                if !self.initiator && h.connection_id == self.send_id && h.seq_nr == self.syn_seq {
                    self.ack_pending = true;
                    return Ok(());
                }
                return Err(PacketError::NotForUs);
            }
            PacketType::Reset => {
                if h.connection_id == self.recv_id || h.connection_id == self.send_id {
                    self.fail(ConnError::Reset);
                    return Ok(());
                }
                return Err(PacketError::NotForUs);
            }
            _ => {}
        }
        if h.connection_id != self.recv_id {
            return Err(PacketError::NotForUs);
        }
        if self.state == ConnState::SynSent {
            if h.ack_nr != self.syn_seq {
                return Ok(());
            }
            self.state = ConnState::Connected;
            // An ST_STATE carries the next sequence number the peer will use.
            self.ack_nr = h.seq_nr.wrapping_sub(1);
            if let (1, Some(sent)) = (self.syn_transmissions, self.syn_sent_at) {
                self.update_rtt(now.saturating_duration_since(sent));
            }
            self.syn_due = false;
        }
        self.last_recv_at = now;
        self.set_peer_window(h.wnd_size as usize, now);
        self.reply_micro = self.timestamp(now).wrapping_sub(h.timestamp_us);
        if h.timestamp_diff_us != 0 {
            self.ledbat.on_delay_sample(h.timestamp_diff_us, now);
        }
        self.process_ack(&packet, now);
        match h.packet_type {
            PacketType::Data => {
                self.receive(h.seq_nr, packet.payload);
                self.ack_pending = true;
            }
            PacketType::Fin => {
                let ahead = h.seq_nr.wrapping_sub(self.ack_nr.wrapping_add(1));
                if self.remote_fin.is_none() && usize::from(ahead) < MAX_REORDER_PACKETS {
                    self.remote_fin = Some(h.seq_nr);
                    self.reorder.truncate(usize::from(ahead));
                    self.reorder_bytes = self.reorder.iter().flatten().map(Vec::len).sum();
                    self.deliver_in_order();
                }
                self.ack_pending = true;
            }
            _ => {}
        }
        self.check_closed();
        Ok(())
    }

    fn set_peer_window(&mut self, wnd: usize, now: Instant) {
        self.peer_wnd = wnd;
        if wnd == 0 {
            self.peer_wnd_zero_since.get_or_insert(now);
        } else {
            self.peer_wnd_zero_since = None;
        }
    }

    fn process_ack(&mut self, packet: &Packet<'_>, now: Instant) {
        let ack = packet.header.ack_nr;
        let oldest = self.oldest_seq();
        let cumulative = usize::from(ack.wrapping_sub(oldest).wrapping_add(1));
        if cumulative > self.inflight.len() {
            // Acks something we never sent (or long ago): ignore the ack fields.
            return;
        }
        let flight_before = self.inflight_bytes;
        let mut acked_bytes = 0;
        let mut rtt_sample = None;
        for _ in 0..cumulative {
            let Some(e) = self.inflight.pop_front() else {
                break;
            };
            self.buffered_bytes -= e.payload.len();
            if e.kind == PacketType::Fin {
                self.fin_acked = true;
            }
            if !e.acked {
                acked_bytes += e.payload.len();
                self.forget_unacked(&e);
                if e.transmissions == 1 {
                    rtt_sample = Some(now.saturating_duration_since(e.last_sent));
                }
            }
        }
        let mut lost = false;
        let mut newly_sacked = false;
        if let Some(sack) = packet.selective_ack {
            // Bit j speaks of `ack + 2 + j`, which is inflight[j + 1] after the pops above.
            for j in sack.acked() {
                let Some(e) = self.inflight.get_mut(j + 1) else {
                    break;
                };
                if e.acked {
                    continue;
                }
                e.acked = true;
                newly_sacked = true;
                let len = e.payload.len();
                let (in_flight, transmissions, last_sent) =
                    (e.in_flight, e.transmissions, e.last_sent);
                acked_bytes += len;
                if in_flight {
                    self.inflight_bytes -= len;
                } else if transmissions > 0 {
                    self.resend_pending -= 1;
                }
                if transmissions == 1 {
                    rtt_sample = Some(now.saturating_duration_since(last_sent));
                }
            }
            // A packet with DUPLICATE_ACKS_BEFORE_RESEND acknowledged packets after it is lost.
            let mut acked_above = 0;
            for i in (0..self.inflight.len()).rev() {
                let e = &self.inflight[i];
                if e.acked {
                    acked_above += 1;
                } else if acked_above >= DUPLICATE_ACKS_BEFORE_RESEND
                    && e.in_flight
                    && !e.fast_resent
                {
                    self.declare_lost(i);
                    lost = true;
                }
            }
        }
        // Duplicate acks: the same ack_nr again, with data outstanding and nothing new acked.
        if cumulative == 0 && !newly_sacked && packet.header.packet_type == PacketType::State {
            if self.last_ack_seen == Some(ack) && !self.inflight.is_empty() {
                self.duplicate_acks += 1;
                if self.duplicate_acks == DUPLICATE_ACKS_BEFORE_RESEND {
                    if let Some(e) = self.inflight.front() {
                        if !e.acked && e.in_flight && !e.fast_resent {
                            self.declare_lost(0);
                            lost = true;
                        }
                    }
                }
            }
        } else if cumulative > 0 {
            self.duplicate_acks = 0;
        }
        self.last_ack_seen = Some(ack);

        if let Some(sample) = rtt_sample {
            self.update_rtt(sample);
        }
        if acked_bytes > 0 {
            self.stats.bytes_acked += acked_bytes as u64;
            self.ledbat.on_ack(acked_bytes, flight_before);
            self.consecutive_timeouts = 0;
            self.rto_deadline = (!self.inflight.is_empty()).then(|| now + self.rto);
        }
        if lost {
            let rtt = self.rtt.unwrap_or(INITIAL_RTO);
            self.ledbat.on_loss(now, rtt);
        }
    }

    /// Removes a popped, not selectively acked entry from the window accounting.
    fn forget_unacked(&mut self, e: &Sent) {
        if e.in_flight {
            self.inflight_bytes -= e.payload.len();
        } else if e.transmissions > 0 {
            self.resend_pending -= 1;
        }
    }

    fn declare_lost(&mut self, index: usize) {
        let Some(e) = self.inflight.get_mut(index) else {
            return;
        };
        e.fast_resent = true;
        e.in_flight = false;
        let len = e.payload.len();
        self.inflight_bytes -= len;
        self.resend_pending += 1;
    }

    fn update_rtt(&mut self, sample: Duration) {
        match self.rtt {
            None => {
                self.rtt = Some(sample);
                self.rtt_var = sample / 2;
            }
            Some(rtt) => {
                let delta = rtt.abs_diff(sample);
                // rtt_var += (|delta| - rtt_var) / 4; rtt += (sample - rtt) / 8
                self.rtt_var = (self.rtt_var * 3 + delta) / 4;
                self.rtt = Some((rtt * 7 + sample) / 8);
            }
        }
        let rtt = self.rtt.unwrap_or(sample);
        self.rto = (rtt + self.rtt_var * 4).clamp(MIN_RTO, MAX_RTO);
    }

    fn receive(&mut self, seq: u16, payload: &[u8]) {
        let ahead = usize::from(seq.wrapping_sub(self.ack_nr.wrapping_add(1)));
        if ahead >= MAX_REORDER_PACKETS {
            return; // old duplicate (wrapped) or absurdly far ahead
        }
        if let Some(fin) = self.remote_fin {
            if usize::from(fin.wrapping_sub(self.ack_nr.wrapping_add(1))) <= ahead {
                return; // at or past the peer's FIN
            }
        }
        let slack = self.config.max_payload_bytes;
        if self.ready.len() + self.reorder_bytes + payload.len()
            > self.config.recv_buffer_bytes + slack
        {
            return; // the peer overran our window; it will resend
        }
        if self.reorder.len() <= ahead {
            self.reorder.resize(ahead + 1, None);
        }
        if self.reorder[ahead].is_none() {
            self.reorder_bytes += payload.len();
            self.reorder[ahead] = Some(payload.to_vec());
        }
        self.deliver_in_order();
    }

    fn deliver_in_order(&mut self) {
        while let Some(Some(_)) = self.reorder.front() {
            if let Some(Some(data)) = self.reorder.pop_front() {
                self.reorder_bytes -= data.len();
                self.stats.bytes_received += data.len() as u64;
                self.ready.extend(&data);
                self.ack_nr = self.ack_nr.wrapping_add(1);
            }
        }
        if !self.eof && self.remote_fin == Some(self.ack_nr.wrapping_add(1)) {
            self.ack_nr = self.ack_nr.wrapping_add(1);
            self.eof = true;
            self.reorder.clear();
            self.reorder_bytes = 0;
        }
    }

    fn check_closed(&mut self) {
        if self.state == ConnState::Connected && self.fin_acked && self.eof {
            self.state = ConnState::Closed;
            self.rto_deadline = None;
        }
    }

    fn fail(&mut self, error: ConnError) {
        self.state = ConnState::Failed(error);
        self.rto_deadline = None;
        self.ack_pending = false;
    }

    // ----- timers ----------------------------------------------------------------------------

    /// When [`Connection::handle_timeout`] must next run, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            ConnState::SynSent => {
                let give_up = self.created + self.config.connect_timeout;
                let resend = self
                    .syn_sent_at
                    .map(|t| t + self.config.syn_retransmit_interval);
                Some(resend.map_or(give_up, |r| r.min(give_up)))
            }
            ConnState::Connected => {
                let mut t = self.last_recv_at + self.config.idle_timeout;
                t = t.min(self.last_send_at + self.config.keepalive_interval);
                if let Some(d) = self.rto_deadline {
                    t = t.min(d);
                }
                if let Some(z) = self.zero_window_probe_at() {
                    t = t.min(z);
                }
                Some(t)
            }
            ConnState::Closed | ConnState::Failed(_) => None,
        }
    }

    fn zero_window_probe_at(&self) -> Option<Instant> {
        let since = self.peer_wnd_zero_since?;
        (self.inflight_bytes == 0 && !self.unsent.is_empty()).then_some(since + ZERO_WINDOW_PROBE)
    }

    /// Runs timers due at `now`: SYN retransmission and connect timeout, retransmission timeout
    /// (the window falls to one packet and every unacknowledged packet is resent), idle timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            ConnState::SynSent => {
                if now >= self.created + self.config.connect_timeout {
                    self.fail(ConnError::ConnectTimedOut);
                } else if self
                    .syn_sent_at
                    .is_some_and(|t| now >= t + self.config.syn_retransmit_interval)
                {
                    self.syn_due = true;
                }
            }
            ConnState::Connected => {
                if now >= self.last_recv_at + self.config.idle_timeout {
                    self.fail(ConnError::Idle);
                    return;
                }
                let Some(deadline) = self.rto_deadline else {
                    return;
                };
                if now < deadline {
                    return;
                }
                if !self.inflight.iter().any(|e| !e.acked) {
                    self.rto_deadline = None;
                    return;
                }
                self.consecutive_timeouts += 1;
                if self.consecutive_timeouts > self.config.max_retransmissions {
                    self.fail(ConnError::Unresponsive);
                    return;
                }
                self.ledbat.on_timeout(now);
                for e in self.inflight.iter_mut() {
                    if !e.acked && e.in_flight {
                        e.in_flight = false;
                        self.inflight_bytes -= e.payload.len();
                        self.resend_pending += 1;
                    }
                }
                self.rto = (self.rto * 2).min(MAX_RTO);
                self.rto_deadline = Some(now + self.rto);
            }
            ConnState::Closed | ConnState::Failed(_) => {}
        }
    }

    // ----- packets out -----------------------------------------------------------------------

    /// Writes the next datagram to send into `buf` (at least [`Connection::max_datagram_bytes`]
    /// long) and returns its length, or `None` when there is nothing to send now.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        match self.state {
            ConnState::Failed(_) => return None,
            ConnState::SynSent => {
                if !self.syn_due {
                    return None;
                }
                let n = self.encode(PacketType::Syn, self.syn_seq, None, now, buf)?;
                self.syn_due = false;
                self.syn_sent_at = Some(now);
                self.syn_transmissions += 1;
                return Some(n);
            }
            ConnState::Connected | ConnState::Closed => {}
        }
        if self.state == ConnState::Connected {
            if let Some(n) = self.transmit_resend(now, buf) {
                return Some(n);
            }
            if let Some(n) = self.transmit_new_data(now, buf) {
                return Some(n);
            }
            if self.shutdown_requested
                && self.unsent.is_empty()
                && self.fin_seq.is_none()
                && self.inflight.len() < MAX_INFLIGHT_PACKETS
            {
                let seq = self.seq_nr;
                self.inflight.push_back(Sent {
                    kind: PacketType::Fin,
                    payload: Vec::new(),
                    last_sent: now,
                    transmissions: 0,
                    acked: false,
                    in_flight: false,
                    fast_resent: false,
                });
                self.seq_nr = self.seq_nr.wrapping_add(1);
                self.fin_seq = Some(seq);
                let index = self.inflight.len() - 1;
                return self.send_entry(index, now, buf);
            }
        }
        let keepalive = self.state == ConnState::Connected
            && now >= self.last_send_at + self.config.keepalive_interval;
        if self.ack_pending || keepalive {
            return self.encode(PacketType::State, self.seq_nr, None, now, buf);
        }
        None
    }

    fn window(&self) -> usize {
        self.ledbat.cwnd().min(self.peer_wnd)
    }

    fn may_send(&self, len: usize, now: Instant) -> bool {
        if self.inflight_bytes == 0 {
            return self.peer_wnd > 0 || self.zero_window_probe_at().is_some_and(|t| now >= t);
        }
        self.inflight_bytes + len <= self.window()
    }

    fn transmit_resend(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if self.resend_pending == 0 {
            return None;
        }
        let index = self
            .inflight
            .iter()
            .position(|e| !e.acked && !e.in_flight && e.transmissions > 0)?;
        if !self.may_send(self.inflight[index].payload.len(), now) {
            return None;
        }
        self.resend_pending -= 1;
        self.stats.packets_retransmitted += 1;
        self.send_entry(index, now, buf)
    }

    fn transmit_new_data(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if self.unsent.is_empty() || self.inflight.len() >= MAX_INFLIGHT_PACKETS {
            return None;
        }
        let mut len = self.unsent.len().min(self.config.max_payload_bytes);
        if !self.may_send(len, now) {
            return None;
        }
        if self.inflight_bytes == 0 && self.peer_wnd > 0 {
            len = len.min(self.peer_wnd);
        }
        let payload: Vec<u8> = self.unsent.drain(..len).collect();
        self.buffered_bytes += len;
        self.inflight.push_back(Sent {
            kind: PacketType::Data,
            payload,
            last_sent: now,
            transmissions: 0,
            acked: false,
            in_flight: false,
            fast_resent: false,
        });
        self.seq_nr = self.seq_nr.wrapping_add(1);
        let index = self.inflight.len() - 1;
        self.send_entry(index, now, buf)
    }

    /// Encodes `inflight[index]` and marks it sent.
    fn send_entry(&mut self, index: usize, now: Instant, buf: &mut [u8]) -> Option<usize> {
        let seq = self.oldest_seq().wrapping_add(index as u16);
        let (header, mask, mask_len) = self.header(self.inflight[index].kind, seq, now);
        let sack = (mask_len > 0).then_some(&mask[..mask_len]);
        let n = header
            .encode(sack, &self.inflight[index].payload, buf)
            .ok()?;
        let e = &mut self.inflight[index];
        e.transmissions += 1;
        e.last_sent = now;
        e.in_flight = true;
        self.inflight_bytes += e.payload.len();
        self.after_send(now);
        if self.rto_deadline.is_none() {
            self.rto_deadline = Some(now + self.rto);
        }
        Some(n)
    }

    fn encode(
        &mut self,
        kind: PacketType,
        seq: u16,
        payload: Option<&[u8]>,
        now: Instant,
        buf: &mut [u8],
    ) -> Option<usize> {
        let (mut header, mask, mask_len) = self.header(kind, seq, now);
        if kind == PacketType::Syn {
            header.connection_id = self.recv_id;
            header.ack_nr = 0;
        }
        let sack = (mask_len > 0).then_some(&mask[..mask_len]);
        let n = header.encode(sack, payload.unwrap_or(&[]), buf).ok()?;
        self.after_send(now);
        Some(n)
    }

    fn after_send(&mut self, now: Instant) {
        self.ack_pending = false;
        self.last_send_at = now;
        self.stats.packets_sent += 1;
    }

    fn header(
        &self,
        packet_type: PacketType,
        seq_nr: u16,
        now: Instant,
    ) -> (Header, [u8; MAX_SELECTIVE_ACK_BYTES], usize) {
        let header = Header {
            packet_type,
            connection_id: self.send_id,
            timestamp_us: self.timestamp(now),
            timestamp_diff_us: self.reply_micro,
            wnd_size: u32::try_from(self.recv_window()).unwrap_or(u32::MAX),
            seq_nr,
            ack_nr: self.ack_nr,
        };
        let mut mask = [0u8; MAX_SELECTIVE_ACK_BYTES];
        let mut highest = None;
        // reorder[k] is packet ack_nr + 1 + k; bit j is packet ack_nr + 2 + j, so j = k - 1.
        for (k, slot) in self
            .reorder
            .iter()
            .enumerate()
            .skip(1)
            .take(MAX_SELECTIVE_ACK_BYTES * 8)
        {
            if slot.is_some() {
                let j = k - 1;
                mask[j / 8] |= 1 << (j % 8);
                highest = Some(j);
            }
        }
        let mask_len = highest.map_or(0, |j| (j / 32 + 1) * 4);
        (header, mask, mask_len)
    }

    fn recv_window(&self) -> usize {
        self.config
            .recv_buffer_bytes
            .saturating_sub(self.ready.len() + self.reorder_bytes)
    }

    fn oldest_seq(&self) -> u16 {
        self.seq_nr.wrapping_sub(self.inflight.len() as u16)
    }

    fn timestamp(&self, now: Instant) -> u32 {
        now.saturating_duration_since(self.epoch).as_micros() as u32
    }
}

#[cfg(test)]
mod tests;
