//! Connection tests: targeted protocol scenarios and an in-memory pair harness that drives two
//! connections over a simulated link (delay, jitter, loss, duplication, a rate-limited queue).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};

use super::*;

const BUF: usize = 2048;

/// A one-directional simulated link.
#[derive(Debug, Clone)]
struct Link {
    delay: Duration,
    jitter: Duration,
    loss: f64,
    duplicate: f64,
    /// Bottleneck rate; `None` is infinitely fast.
    rate_bytes_per_s: Option<u64>,
    /// Tail-drop when the bottleneck queue holds more than this much delay.
    max_queue: Duration,
}

impl Link {
    fn ideal(delay_ms: u64) -> Self {
        Self {
            delay: Duration::from_millis(delay_ms),
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            rate_bytes_per_s: None,
            max_queue: Duration::from_secs(10),
        }
    }
}

/// (arrival time, tie-break, towards b, datagram)
type InFlight = Reverse<(Instant, u64, bool, Vec<u8>)>;

struct Pair {
    now: Instant,
    a: Connection,
    b: Connection,
    link: Link,
    rng: SmallRng,
    wire: BinaryHeap<InFlight>,
    counter: u64,
    /// When each direction's bottleneck finishes serialising what it already holds.
    queue_free_at: [Instant; 2],
    dropped: u64,
}

impl Pair {
    fn new(config: Config, link: Link, seed: u64) -> Self {
        let now = Instant::now();
        let mut a = Connection::connect(config.clone(), 0x1234, 1, now);
        let mut buf = [0u8; BUF];
        let n = a.poll_transmit(now, &mut buf).unwrap();
        let b = Connection::accept(config, &buf[..n], 0x8000, now).unwrap();
        assert_eq!(b.recv_id(), a.send_id());
        assert_eq!(b.send_id(), a.recv_id());
        Self {
            now,
            a,
            b,
            link,
            rng: SmallRng::seed_from_u64(seed),
            wire: BinaryHeap::new(),
            counter: 0,
            queue_free_at: [now, now],
            dropped: 0,
        }
    }

    fn send(&mut self, to_b: bool, datagram: Vec<u8>) {
        if self.rng.gen_bool(self.link.loss) {
            self.dropped += 1;
            return;
        }
        let copies = if self.rng.gen_bool(self.link.duplicate) {
            2
        } else {
            1
        };
        let dir = usize::from(to_b);
        let mut depart = self.now;
        if let Some(rate) = self.link.rate_bytes_per_s {
            let start = self.queue_free_at[dir].max(self.now);
            if start.saturating_duration_since(self.now) > self.link.max_queue {
                self.dropped += 1;
                return;
            }
            depart = start + Duration::from_secs_f64(datagram.len() as f64 / rate as f64);
            self.queue_free_at[dir] = depart;
        }
        for _ in 0..copies {
            let jitter = if self.link.jitter.is_zero() {
                Duration::ZERO
            } else {
                self.link.jitter.mul_f64(self.rng.gen::<f64>())
            };
            self.counter += 1;
            self.wire.push(Reverse((
                depart + self.link.delay + jitter,
                self.counter,
                to_b,
                datagram.clone(),
            )));
        }
    }

    /// Flushes both sides, then advances time to the next event and processes it.
    /// Returns false when nothing will ever happen again.
    fn step(&mut self) -> bool {
        let mut buf = [0u8; BUF];
        while let Some(n) = self.a.poll_transmit(self.now, &mut buf) {
            self.send(true, buf[..n].to_vec());
        }
        while let Some(n) = self.b.poll_transmit(self.now, &mut buf) {
            self.send(false, buf[..n].to_vec());
        }
        let next = [
            self.wire.peek().map(|Reverse((t, ..))| *t),
            self.a.poll_timeout(),
            self.b.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next else {
            return false;
        };
        self.now = self.now.max(next);
        while let Some(Reverse((t, ..))) = self.wire.peek() {
            if *t > self.now {
                break;
            }
            let Some(Reverse((_, _, to_b, d))) = self.wire.pop() else {
                break;
            };
            let conn = if to_b { &mut self.b } else { &mut self.a };
            conn.handle_packet(&d, self.now).unwrap();
        }
        for conn in [&mut self.a, &mut self.b] {
            if conn.poll_timeout().is_some_and(|t| t <= self.now) {
                conn.handle_timeout(self.now);
            }
        }
        true
    }

    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Self) -> bool) {
        let start = self.now;
        while !done(self) {
            assert!(self.step(), "simulation ran dry");
            assert!(self.now - start < limit, "not done after {limit:?}");
        }
    }
}

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    SmallRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

/// Moves `data` a->b and `back` b->a at once, closes both sides, and checks every byte.
fn transfer(link: Link, seed: u64, data_len: usize, back_len: usize) -> Pair {
    let mut pair = Pair::new(Config::default(), link, seed);
    let data = random_bytes(data_len, seed ^ 1);
    let back = random_bytes(back_len, seed ^ 2);
    let (mut sent_a, mut sent_b) = (0, 0);
    let (mut got_b, mut got_a) = (Vec::new(), Vec::new());
    let mut buf = vec![0u8; 64 * 1024];
    pair.run_until(Duration::from_secs(3600), |p| {
        sent_a += p.a.write(&data[sent_a..]);
        sent_b += p.b.write(&back[sent_b..]);
        if sent_a == data.len() {
            p.a.shutdown();
        }
        if sent_b == back.len() {
            p.b.shutdown();
        }
        loop {
            let n = p.b.read(&mut buf);
            if n == 0 {
                break;
            }
            got_b.extend_from_slice(&buf[..n]);
        }
        loop {
            let n = p.a.read(&mut buf);
            if n == 0 {
                break;
            }
            got_a.extend_from_slice(&buf[..n]);
        }
        assert!(p.a.error().is_none() && p.b.error().is_none());
        p.a.state() == ConnState::Closed && p.b.state() == ConnState::Closed
    });
    assert!(got_b == data, "a->b bytes differ");
    assert!(got_a == back, "b->a bytes differ");
    assert!(pair.a.is_read_closed() && pair.b.is_read_closed());
    pair
}

#[test]
fn transfers_over_an_ideal_link() {
    let p = transfer(Link::ideal(10), 1, 1 << 20, 1000);
    assert_eq!(p.a.stats().packets_retransmitted, 0);
    assert_eq!(p.a.stats().bytes_acked, 1 << 20);
}

#[test]
fn transfers_megabytes_with_loss_reordering_and_duplicates() {
    let link = Link {
        delay: Duration::from_millis(20),
        jitter: Duration::from_millis(15),
        loss: 0.03,
        duplicate: 0.02,
        rate_bytes_per_s: None,
        max_queue: Duration::from_secs(10),
    };
    let p = transfer(link, 7, 4 << 20, 256 * 1024);
    assert!(p.dropped > 100, "dropped only {}", p.dropped);
    assert!(p.a.stats().packets_retransmitted > 0);
}

#[test]
fn transfers_with_heavy_loss() {
    let link = Link {
        loss: 0.2,
        jitter: Duration::from_millis(5),
        ..Link::ideal(5)
    };
    transfer(link, 11, 512 * 1024, 64 * 1024);
}

#[test]
fn ledbat_keeps_the_bottleneck_queue_near_target() {
    // 1 MB/s bottleneck with a 2 s buffer: a loss-based sender would fill it.
    let link = Link {
        rate_bytes_per_s: Some(1_000_000),
        max_queue: Duration::from_secs(2),
        ..Link::ideal(10)
    };
    let mut p = Pair::new(Config::default(), link, 3);
    let chunk = vec![0u8; 256 * 1024];
    let mut buf = vec![0u8; 256 * 1024];
    let start = p.now;
    let mut queue_samples = Vec::new();
    p.run_until(Duration::from_secs(40), |p| {
        p.a.write(&chunk);
        while p.b.read(&mut buf) > 0 {}
        let elapsed = p.now - start;
        if elapsed > Duration::from_secs(20) {
            queue_samples.push(p.queue_free_at[1].saturating_duration_since(p.now));
        }
        elapsed > Duration::from_secs(30)
    });
    let mean = queue_samples.iter().sum::<Duration>() / queue_samples.len() as u32;
    assert!(
        mean > Duration::from_millis(40) && mean < Duration::from_millis(160),
        "mean queue {mean:?}"
    );
    assert_eq!(p.dropped, 0, "LEDBAT should never overflow the queue");
    let acked = p.a.stats().bytes_acked as f64;
    assert!(acked > 0.8 * 30e6, "only {acked} bytes in 30 s at 1 MB/s");
}

#[test]
fn handshake_ids_and_sequence_numbers_follow_bep29() {
    let now = Instant::now();
    let mut a = Connection::connect(Config::default(), 100, 1, now);
    let mut buf = [0u8; BUF];
    let n = a.poll_transmit(now, &mut buf).unwrap();
    let syn = Packet::decode(&buf[..n]).unwrap().header;
    assert_eq!(syn.packet_type, PacketType::Syn);
    assert_eq!((syn.connection_id, syn.seq_nr), (100, 1));
    assert!(a.poll_transmit(now, &mut buf).is_none());

    let mut b = Connection::accept(Config::default(), &buf[..n], 5000, now).unwrap();
    assert_eq!((b.recv_id(), b.send_id()), (101, 100));
    let n = b.poll_transmit(now, &mut buf).unwrap();
    let synack = Packet::decode(&buf[..n]).unwrap().header;
    assert_eq!(synack.packet_type, PacketType::State);
    assert_eq!(
        (synack.connection_id, synack.seq_nr, synack.ack_nr),
        (100, 5000, 1)
    );

    let later = now + Duration::from_millis(40);
    a.handle_packet(&buf[..n], later).unwrap();
    assert!(a.is_established());
    assert_eq!(a.rtt(), Some(Duration::from_millis(40)));
    assert_eq!(a.write(b"hello"), 5);
    let n = a.poll_transmit(later, &mut buf).unwrap();
    let p = Packet::decode(&buf[..n]).unwrap();
    assert_eq!(p.header.packet_type, PacketType::Data);
    assert_eq!(
        (p.header.connection_id, p.header.seq_nr, p.header.ack_nr),
        (101, 2, 4999)
    );
    assert_eq!(p.payload, b"hello");
    b.handle_packet(&buf[..n], later).unwrap();
    let mut out = [0u8; 16];
    assert_eq!(b.read(&mut out), 5);
    assert_eq!(&out[..5], b"hello");
    let n = b.poll_transmit(later, &mut buf).unwrap();
    let ack = Packet::decode(&buf[..n]).unwrap().header;
    assert_eq!(
        (ack.packet_type, ack.seq_nr, ack.ack_nr),
        (PacketType::State, 5000, 2)
    );
}

#[test]
fn connect_retransmits_syn_then_times_out() {
    let t0 = Instant::now();
    let mut a = Connection::connect(Config::default(), 1, 1, t0);
    let mut buf = [0u8; BUF];
    let mut syns = 0;
    let mut now = t0;
    while !a.is_closed() {
        while a.poll_transmit(now, &mut buf).is_some() {
            syns += 1;
        }
        now = a.poll_timeout().unwrap();
        a.handle_timeout(now);
    }
    assert_eq!(a.error(), Some(ConnError::ConnectTimedOut));
    assert_eq!(now - t0, Duration::from_secs(3));
    assert_eq!(syns, 6);
    assert_eq!(a.poll_timeout(), None);
}

#[test]
fn lost_synack_is_answered_again() {
    let now = Instant::now();
    let mut a = Connection::connect(Config::default(), 7, 1, now);
    let mut buf = [0u8; BUF];
    let n = a.poll_transmit(now, &mut buf).unwrap();
    let syn = buf[..n].to_vec();
    let mut b = Connection::accept(Config::default(), &syn, 9, now).unwrap();
    assert!(b.poll_transmit(now, &mut buf).is_some()); // lost
    let t = a.poll_timeout().unwrap();
    a.handle_timeout(t);
    let n = a.poll_transmit(t, &mut buf).unwrap();
    assert_eq!(buf[..4], syn[..4]); // same type, version, id
    b.handle_packet(&buf[..n], t).unwrap();
    let n = b.poll_transmit(t, &mut buf).unwrap();
    a.handle_packet(&buf[..n], t).unwrap();
    assert!(a.is_established());
    assert_eq!(a.rtt(), None, "no rtt sample from a retransmitted SYN");
}

/// Sends `count` packets a->b in one burst; returns them.
fn burst(pair: &mut Pair, count: usize) -> Vec<Vec<u8>> {
    // Complete the handshake first.
    let mut buf = [0u8; BUF];
    let n = pair.b.poll_transmit(pair.now, &mut buf).unwrap();
    pair.a.handle_packet(&buf[..n], pair.now).unwrap();
    pair.a.ledbat = Ledbat::new(1400, Duration::from_millis(100));
    for _ in 0..10 {
        pair.a.ledbat.on_ack(1400 * 64, 1400 * 64);
    }
    pair.a.write(&vec![7u8; 1400 * count]);
    let mut out = Vec::new();
    while let Some(n) = pair.a.poll_transmit(pair.now, &mut buf) {
        out.push(buf[..n].to_vec());
    }
    assert_eq!(out.len(), count);
    out
}

#[test]
fn selective_ack_triggers_fast_retransmit_and_halves_cwnd() {
    let mut pair = Pair::new(Config::default(), Link::ideal(10), 1);
    let packets = burst(&mut pair, 6);
    let mut buf = [0u8; BUF];
    // Packet 0 is lost; 1..5 arrive and b acks each with a selective ack.
    let mut acks = Vec::new();
    for p in &packets[1..] {
        pair.b.handle_packet(p, pair.now).unwrap();
        let n = pair.b.poll_transmit(pair.now, &mut buf).unwrap();
        acks.push(buf[..n].to_vec());
    }
    let last = Packet::decode(acks.last().unwrap()).unwrap();
    assert_eq!(last.header.ack_nr, 1, "nothing in order past the SYN");
    assert_eq!(
        last.selective_ack.unwrap().acked().collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    let cwnd = pair.a.cwnd();
    for ack in &acks {
        pair.a.handle_packet(ack, pair.now).unwrap();
    }
    assert_eq!(pair.a.cwnd(), cwnd / 2);
    let n = pair.a.poll_transmit(pair.now, &mut buf).unwrap();
    assert_eq!(
        buf[..n],
        packets[0][..],
        "the hole is resent before any timeout"
    );
    assert_eq!(pair.a.stats().packets_retransmitted, 1);
    pair.b.handle_packet(&buf[..n], pair.now).unwrap();
    assert_eq!(pair.b.readable_bytes(), 6 * 1400);
}

#[test]
fn three_duplicate_acks_trigger_fast_retransmit() {
    let mut pair = Pair::new(Config::default(), Link::ideal(10), 1);
    let packets = burst(&mut pair, 5);
    let mut buf = [0u8; BUF];
    // b answers with plain duplicate acks (no selective ack), as a minimal peer might.
    let n = pair.b.poll_transmit(pair.now, &mut buf).unwrap_or(0);
    let _ = n;
    let dup = {
        let mut h = Packet::decode(&packets[1]).unwrap().header;
        h.packet_type = PacketType::State;
        h.connection_id = pair.a.recv_id();
        h.ack_nr = 1;
        h.seq_nr = 0x8000;
        h.timestamp_diff_us = 0;
        let n = h.encode(None, b"", &mut buf).unwrap();
        buf[..n].to_vec()
    };
    for i in 0..3 {
        assert!(
            pair.a.transmit_resend(pair.now, &mut buf).is_none(),
            "resent after {i} duplicates"
        );
        pair.a.handle_packet(&dup, pair.now).unwrap();
    }
    let n = pair.a.poll_transmit(pair.now, &mut buf).unwrap();
    assert_eq!(buf[..n], packets[0][..]);
}

#[test]
fn timeout_resends_and_backs_off_then_gives_up() {
    let mut pair = Pair::new(Config::default(), Link::ideal(10), 1);
    let _ = burst(&mut pair, 3);
    let mut buf = [0u8; BUF];
    let mut now = pair.now;
    let mut gaps = Vec::new();
    let mut last = now;
    while !pair.a.is_closed() {
        now = pair.a.poll_timeout().unwrap();
        pair.a.handle_timeout(now);
        let mut sent = 0;
        while pair.a.poll_transmit(now, &mut buf).is_some() {
            sent += 1;
        }
        if sent > 0 {
            assert_eq!(sent, 1, "the window is one packet after a timeout");
            gaps.push(now - last);
            last = now;
        }
    }
    assert_eq!(pair.a.error(), Some(ConnError::Unresponsive));
    // The handshake measured a zero round trip, so the timeout starts at its 500 ms floor.
    assert_eq!(gaps[0], Duration::from_millis(500));
    assert_eq!(gaps[1], Duration::from_secs(1));
    assert_eq!(gaps[2], Duration::from_secs(2));
    assert_eq!(pair.a.stats().packets_retransmitted, 8);
    assert_eq!(pair.a.cwnd(), 1400);
}

#[test]
fn reset_fails_the_connection() {
    let mut pair = Pair::new(Config::default(), Link::ideal(1), 1);
    pair.run_until(Duration::from_secs(1), |p| p.a.is_established());
    let mut buf = [0u8; BUF];
    let h = Header {
        packet_type: PacketType::Reset,
        connection_id: pair.a.recv_id(),
        timestamp_us: 0,
        timestamp_diff_us: 0,
        wnd_size: 0,
        seq_nr: 0,
        ack_nr: 0,
    };
    let n = h.encode(None, b"", &mut buf).unwrap();
    pair.a.handle_packet(&buf[..n], pair.now).unwrap();
    assert_eq!(pair.a.error(), Some(ConnError::Reset));
    assert_eq!(pair.a.write(b"x"), 0);
    assert!(pair.a.poll_transmit(pair.now, &mut buf).is_none());
}

#[test]
fn idle_connection_stays_open_past_keepalive_interval_and_times_out_when_peer_vanishes() {
    let mut pair = Pair::new(Config::default(), Link::ideal(1), 1);
    // Both sides idle for ten minutes: keep-alives keep them open.
    pair.run_until(Duration::from_secs(700), |p| {
        p.now - p.a.created > Duration::from_secs(600)
    });
    assert!(pair.a.is_established() && pair.b.is_established());
    // The peer disappears: a notices after the idle timeout.
    let t = pair.now;
    let mut buf = [0u8; BUF];
    while !pair.a.is_closed() {
        let next = pair.a.poll_timeout().unwrap();
        pair.a.handle_timeout(next);
        while pair.a.poll_transmit(next, &mut buf).is_some() {}
        pair.now = next;
    }
    assert_eq!(pair.a.error(), Some(ConnError::Idle));
    let waited = pair.now - t;
    assert!(waited >= Duration::from_secs(270) && waited <= Duration::from_secs(300));
}

#[test]
fn hostile_datagrams_change_nothing_and_never_panic() {
    let mut pair = Pair::new(Config::default(), Link::ideal(1), 1);
    pair.run_until(Duration::from_secs(1), |p| p.a.is_established());
    let mut rng = SmallRng::seed_from_u64(99);
    let mut buf = [0u8; BUF];
    for _ in 0..20_000 {
        let len = rng.gen_range(0..64);
        let mut d: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        if len >= 20 {
            d[0] = (rng.gen_range(0..5) << 4) | 1;
            if rng.gen_bool(0.3) {
                d[2..4].copy_from_slice(&pair.a.recv_id().to_be_bytes());
                d[0] = if rng.gen_bool(0.5) { 0x21 } else { 0x01 };
            }
        }
        let _ = pair.a.handle_packet(&d, pair.now);
        while pair.a.poll_transmit(pair.now, &mut buf).is_some() {}
    }
    // Wrong ids are rejected outright.
    let h = Header {
        packet_type: PacketType::Data,
        connection_id: pair.a.recv_id().wrapping_add(5),
        timestamp_us: 0,
        timestamp_diff_us: 0,
        wnd_size: 0,
        seq_nr: 0,
        ack_nr: 0,
    };
    let n = h.encode(None, b"zz", &mut buf).unwrap();
    assert_eq!(
        pair.b.handle_packet(&buf[..n], pair.now),
        Err(PacketError::NotForUs)
    );
}

#[test]
fn zero_window_stalls_the_sender_until_the_reader_catches_up() {
    let config = Config {
        recv_buffer_bytes: 64 * 1024,
        ..Config::default()
    };
    let mut pair = Pair::new(config, Link::ideal(5), 1);
    let data = random_bytes(512 * 1024, 5);
    let mut sent = 0;
    // Nobody reads: b's buffer fills and a stops.
    pair.run_until(Duration::from_secs(60), |p| {
        sent += p.a.write(&data[sent..]);
        p.now - p.a.created > Duration::from_secs(20)
    });
    assert!(pair.b.readable_bytes() <= 64 * 1024 + 1400);
    assert!(pair.a.error().is_none());
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    pair.run_until(Duration::from_secs(120), |p| {
        sent += p.a.write(&data[sent..]);
        loop {
            let n = p.b.read(&mut buf);
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got.len() == data.len()
    });
    assert!(got == data);
}
