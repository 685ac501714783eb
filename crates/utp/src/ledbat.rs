//! LEDBAT congestion control (RFC 6817) with the BEP 29 growth limit.
//!
//! The controller keeps a congestion window in bytes. Each acknowledgement carries a one-way delay
//! sample (the peer's clock minus ours, plus the true delay); the smallest sample seen over the last
//! [`BASE_HISTORY_MINUTES`] minutes estimates the fixed part (propagation plus clock offset), the
//! smallest of the last [`CURRENT_FILTER`] samples estimates the current delay, and the difference is
//! the queuing delay our traffic causes. Below [`Config::target`](crate::Config) the window grows,
//! above it shrinks, proportionally to the distance from the target, by at most
//! [`MAX_CWND_INCREASE_BYTES_PER_RTT`] per round trip. A loss halves the window (once per round
//! trip); a retransmission timeout drops it to one packet.
//!
//! Delay samples are compared with wrapping arithmetic: timestamps are 32-bit microsecond clocks
//! with unrelated origins on the two hosts.

use std::time::{Duration, Instant};

/// Minutes of per-minute base delay minima kept (RFC 6817 `BASE_HISTORY`).
pub const BASE_HISTORY_MINUTES: usize = 10;
/// Recent samples whose minimum is the current delay (RFC 6817 `CURRENT_FILTER`).
pub const CURRENT_FILTER: usize = 4;
/// Multiplier on the proportional response (RFC 6817 `GAIN`, at most 1).
pub const GAIN: f64 = 1.0;
/// Largest window growth per round trip when the queue is empty (BEP 29).
pub const MAX_CWND_INCREASE_BYTES_PER_RTT: f64 = 3000.0;
/// Packets the window may exceed the bytes in flight by (RFC 6817 `ALLOWED_INCREASE`).
pub const ALLOWED_INCREASE: usize = 2;
/// Smallest window after a loss, in packets (RFC 6817 `MIN_CWND`).
pub const MIN_CWND: usize = 2;

/// `a < b` on a wrapping 32-bit clock.
fn wrapping_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

fn wrapping_min(a: u32, b: u32) -> u32 {
    if wrapping_lt(a, b) {
        a
    } else {
        b
    }
}

/// LEDBAT state for one connection.
#[derive(Debug, Clone)]
pub struct Ledbat {
    mss: usize,
    target_us: u32,
    cwnd: f64,
    /// Slow start runs while set, the window is below `ssthresh` and the queue is short.
    slow_start: bool,
    ssthresh: f64,
    base_history: [Option<u32>; BASE_HISTORY_MINUTES],
    base_index: usize,
    base_rolled_at: Option<Instant>,
    current: [u32; CURRENT_FILTER],
    current_len: usize,
    current_next: usize,
    last_cut: Option<Instant>,
}

impl Ledbat {
    /// A controller for packets of up to `mss` payload bytes and the given target queuing delay.
    /// The window starts at [`MIN_CWND`] packets in slow start.
    pub fn new(mss: usize, target: Duration) -> Self {
        let mss = mss.max(1);
        Self {
            mss,
            target_us: u32::try_from(target.as_micros()).unwrap_or(u32::MAX).max(1),
            cwnd: (MIN_CWND * mss) as f64,
            slow_start: true,
            ssthresh: f64::INFINITY,
            base_history: [None; BASE_HISTORY_MINUTES],
            base_index: 0,
            base_rolled_at: None,
            current: [0; CURRENT_FILTER],
            current_len: 0,
            current_next: 0,
            last_cut: None,
        }
    }

    /// Congestion window in bytes.
    pub fn cwnd(&self) -> usize {
        self.cwnd as usize
    }

    /// Whether the window still grows exponentially.
    pub fn in_slow_start(&self) -> bool {
        self.slow_start && self.cwnd < self.ssthresh
    }

    /// Records a one-way delay sample (`timestamp_difference_microseconds` from the peer).
    pub fn on_delay_sample(&mut self, delay_us: u32, now: Instant) {
        let rolled = self
            .base_rolled_at
            .is_some_and(|t| now.saturating_duration_since(t) >= Duration::from_secs(60));
        if self.base_rolled_at.is_none() || rolled {
            if rolled {
                self.base_index = (self.base_index + 1) % BASE_HISTORY_MINUTES;
            }
            self.base_history[self.base_index] = Some(delay_us);
            self.base_rolled_at = Some(now);
        } else {
            let slot = &mut self.base_history[self.base_index];
            *slot = Some(slot.map_or(delay_us, |b| wrapping_min(b, delay_us)));
        }
        self.current[self.current_next] = delay_us;
        self.current_next = (self.current_next + 1) % CURRENT_FILTER;
        self.current_len = (self.current_len + 1).min(CURRENT_FILTER);
    }

    /// The smallest delay sample of the last [`BASE_HISTORY_MINUTES`] minutes.
    pub fn base_delay_us(&self) -> Option<u32> {
        self.base_history
            .iter()
            .flatten()
            .copied()
            .reduce(wrapping_min)
    }

    /// Current delay minus base delay, or `None` before the first sample.
    pub fn queuing_delay_us(&self) -> Option<u32> {
        let base = self.base_delay_us()?;
        let current = self.current[..self.current_len]
            .iter()
            .copied()
            .reduce(wrapping_min)?;
        // Never negative: the base is a minimum over a superset of the current samples.
        Some(current.wrapping_sub(base).min(i32::MAX as u32))
    }

    /// Applies `bytes_acked` newly acknowledged bytes; `flight_bytes` were in flight before the ack.
    pub fn on_ack(&mut self, bytes_acked: usize, flight_bytes: usize) {
        if bytes_acked == 0 {
            return;
        }
        let queuing = self.queuing_delay_us().unwrap_or(0);
        let target = f64::from(self.target_us);
        let old = self.cwnd;
        let mut cwnd = old;
        if self.in_slow_start() && f64::from(queuing) < target / 2.0 {
            cwnd += bytes_acked as f64;
        } else {
            // The queue is building (or the threshold was reached): slow start is over.
            self.slow_start = false;
            let off_target = ((target - f64::from(queuing)) / target).clamp(-1.0, 1.0);
            cwnd += GAIN * off_target * bytes_acked as f64 * MAX_CWND_INCREASE_BYTES_PER_RTT / old;
        }
        // An application-limited sender must not inflate the window it does not use (RFC 6817
        // 2.4.2); growth is capped, shrinking is not.
        let allowed = if self.slow_start {
            (2 * flight_bytes + ALLOWED_INCREASE * self.mss) as f64
        } else {
            (flight_bytes + ALLOWED_INCREASE * self.mss) as f64
        };
        if cwnd > old {
            cwnd = cwnd.min(old.max(allowed));
        }
        self.cwnd = cwnd.max(self.min_cwnd());
    }

    /// A packet was lost (duplicate or selective acks): halve the window, at most once per `rtt`.
    pub fn on_loss(&mut self, now: Instant, rtt: Duration) {
        if self
            .last_cut
            .is_some_and(|t| now.saturating_duration_since(t) < rtt)
        {
            return;
        }
        self.last_cut = Some(now);
        self.cwnd = (self.cwnd / 2.0).max(self.min_cwnd());
        self.ssthresh = self.cwnd;
        self.slow_start = false;
    }

    /// The retransmission timer fired: fall back to one packet and slow start to half the old window.
    pub fn on_timeout(&mut self, now: Instant) {
        self.last_cut = Some(now);
        self.ssthresh = (self.cwnd / 2.0).max(self.min_cwnd());
        self.cwnd = self.mss as f64;
        self.slow_start = true;
    }

    fn min_cwnd(&self) -> f64 {
        (MIN_CWND * self.mss) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: usize = 1000;

    /// A controller out of slow start with a base delay of `base` and window `cwnd`.
    fn steady(base: u32, cwnd: usize, now: Instant) -> Ledbat {
        let mut l = Ledbat::new(MSS, Duration::from_millis(100));
        l.on_delay_sample(base, now);
        l.cwnd = cwnd as f64;
        l.slow_start = false;
        l
    }

    #[test]
    fn grows_when_queuing_delay_is_below_target() {
        let now = Instant::now();
        let mut l = steady(5_000, 50_000, now);
        for _ in 0..CURRENT_FILTER {
            l.on_delay_sample(5_000 + 10_000, now); // 10 ms queue
        }
        assert_eq!(l.queuing_delay_us(), Some(10_000));
        let before = l.cwnd();
        // One window's worth of acks grows the window by about 0.9 * 3000 bytes.
        for _ in 0..50 {
            let flight = l.cwnd();
            l.on_ack(MSS, flight);
        }
        let grown = l.cwnd() - before;
        assert!((2_600..=2_800).contains(&grown), "grew {grown}");
    }

    #[test]
    fn shrinks_when_queuing_delay_exceeds_target() {
        let now = Instant::now();
        let mut l = steady(5_000, 50_000, now);
        for _ in 0..CURRENT_FILTER {
            l.on_delay_sample(5_000 + 150_000, now); // 150 ms queue
        }
        for _ in 0..50 {
            l.on_ack(MSS, 50_000);
        }
        let shrunk = 50_000 - l.cwnd();
        assert!((1_400..=1_600).contains(&shrunk), "shrunk {shrunk}");
        // Far above target the response is clamped to one growth quantum per round trip.
        for _ in 0..CURRENT_FILTER {
            l.on_delay_sample(5_000 + 2_000_000, now);
        }
        let before = l.cwnd();
        for _ in 0..48 {
            l.on_ack(MSS, 48_000);
        }
        let shrunk = before - l.cwnd();
        assert!((2_900..=3_200).contains(&shrunk), "shrunk {shrunk}");
    }

    #[test]
    fn halves_on_loss_once_per_rtt() {
        let now = Instant::now();
        let mut l = steady(0, 64_000, now);
        let rtt = Duration::from_millis(50);
        l.on_loss(now, rtt);
        assert_eq!(l.cwnd(), 32_000);
        l.on_loss(now + Duration::from_millis(10), rtt);
        assert_eq!(l.cwnd(), 32_000);
        l.on_loss(now + Duration::from_millis(60), rtt);
        assert_eq!(l.cwnd(), 16_000);
        for i in 0..20 {
            l.on_loss(now + Duration::from_secs(1 + i), rtt);
        }
        assert_eq!(l.cwnd(), MIN_CWND * MSS);
        l.on_timeout(now + Duration::from_secs(60));
        assert_eq!(l.cwnd(), MSS);
    }

    #[test]
    fn slow_start_doubles_then_stops_at_half_target() {
        let now = Instant::now();
        let mut l = Ledbat::new(MSS, Duration::from_millis(100));
        l.on_delay_sample(1_000, now);
        assert!(l.in_slow_start());
        let w = l.cwnd();
        l.on_ack(w, w);
        assert_eq!(l.cwnd(), 2 * w);
        for _ in 0..CURRENT_FILTER {
            l.on_delay_sample(1_000 + 60_000, now);
        }
        let w = l.cwnd();
        l.on_ack(MSS, w);
        assert!(!l.in_slow_start());
        assert!(l.cwnd() < w + MSS);
    }

    #[test]
    fn application_limited_sender_does_not_inflate_window() {
        let now = Instant::now();
        let mut l = steady(0, 10_000, now);
        for _ in 0..10_000 {
            l.on_ack(MSS, MSS);
        }
        assert_eq!(l.cwnd(), 10_000);
    }

    #[test]
    fn base_delay_uses_wrapping_minimum_and_expires() {
        let t0 = Instant::now();
        let mut l = Ledbat::new(MSS, Duration::from_millis(100));
        l.on_delay_sample(u32::MAX - 10, t0);
        l.on_delay_sample(5, t0); // later than MAX-10 on a wrapping clock
        assert_eq!(l.base_delay_us(), Some(u32::MAX - 10));
        assert_eq!(l.queuing_delay_us(), Some(0));
        // Each minute a new bucket; the old minimum falls out after BASE_HISTORY_MINUTES.
        for m in 1..=BASE_HISTORY_MINUTES as u64 {
            l.on_delay_sample(1_000, t0 + Duration::from_secs(60 * m));
        }
        assert_eq!(l.base_delay_us(), Some(1_000));
    }
}
