//! Token-bucket rate limiting, per torrent and global.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A token bucket refilled at `rate` bytes per second, holding at most one second of tokens.
/// A rate of 0 means unlimited and costs nothing.
#[derive(Debug)]
pub struct RateLimiter {
    /// Changed at run time by [`RateLimiter::set_rate`]; read on every reservation.
    rate_bytes_per_s: AtomicU64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// A limiter at `rate_bytes_per_s` (0 = unlimited).
    pub fn new(rate_bytes_per_s: u64) -> Self {
        Self {
            rate_bytes_per_s: AtomicU64::new(rate_bytes_per_s),
            state: Mutex::new((rate_bytes_per_s as f64, Instant::now())),
        }
    }

    /// Whether this limiter never waits.
    pub fn is_unlimited(&self) -> bool {
        self.rate() == 0
    }

    /// The rate now (0 = unlimited).
    pub fn rate(&self) -> u64 {
        self.rate_bytes_per_s.load(Ordering::Relaxed)
    }

    /// Changes the rate (0 = unlimited); the bucket keeps at most one second of the new rate.
    pub fn set_rate(&self, rate_bytes_per_s: u64) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.rate_bytes_per_s
            .store(rate_bytes_per_s, Ordering::Relaxed);
        s.0 = s.0.min(rate_bytes_per_s as f64);
        s.1 = Instant::now();
    }

    /// Takes `n` bytes of budget, returning how long the caller must wait before using them.
    fn reserve(&self, n: usize) -> Duration {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let rate = self.rate();
        if rate == 0 {
            return Duration::ZERO;
        }
        let rate = rate as f64;
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(s.1).as_secs_f64();
        s.0 = (s.0 + elapsed * rate).min(rate);
        s.1 = now;
        s.0 -= n as f64;
        if s.0 >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-s.0 / rate)
        }
    }

    /// Waits until `n` bytes may pass.
    pub async fn acquire(&self, n: usize) {
        let wait = self.reserve(n);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn limits_to_rate() {
        let l = RateLimiter::new(1000);
        let t0 = Instant::now();
        for _ in 0..5 {
            l.acquire(1000).await;
        }
        // One second of burst, then four seconds at the rate.
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_secs(4) && waited < Duration::from_millis(4100),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn rate_changes_apply_to_the_next_reservation() {
        let l = RateLimiter::new(0);
        assert!(l.is_unlimited());
        l.set_rate(1000);
        assert_eq!(l.rate(), 1000);
        let t0 = Instant::now();
        // The bucket starts empty after a change from unlimited: three seconds for 3000 bytes.
        for _ in 0..3 {
            l.acquire(1000).await;
        }
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_secs(3) && waited < Duration::from_millis(3100),
            "{waited:?}"
        );
        l.set_rate(0);
        let t1 = Instant::now();
        l.acquire(1 << 30).await;
        assert_eq!(t1.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_is_unlimited() {
        let l = RateLimiter::new(0);
        let t0 = Instant::now();
        l.acquire(usize::MAX / 2).await;
        assert_eq!(t0.elapsed(), Duration::ZERO);
    }
}
