//! Token-bucket rate limiting, per torrent and global.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A token bucket refilled at `rate` bytes per second, holding at most one second of tokens.
/// A rate of 0 means unlimited and costs nothing.
#[derive(Debug)]
pub struct RateLimiter {
    rate_bytes_per_s: u64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// A limiter at `rate_bytes_per_s` (0 = unlimited).
    pub fn new(rate_bytes_per_s: u64) -> Self {
        Self {
            rate_bytes_per_s,
            state: Mutex::new((rate_bytes_per_s as f64, Instant::now())),
        }
    }

    /// Whether this limiter never waits.
    pub fn is_unlimited(&self) -> bool {
        self.rate_bytes_per_s == 0
    }

    /// Takes `n` bytes of budget, returning how long the caller must wait before using them.
    fn reserve(&self, n: usize) -> Duration {
        if self.rate_bytes_per_s == 0 {
            return Duration::ZERO;
        }
        let rate = self.rate_bytes_per_s as f64;
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
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
    async fn zero_is_unlimited() {
        let l = RateLimiter::new(0);
        let t0 = Instant::now();
        l.acquire(usize::MAX / 2).await;
        assert_eq!(t0.elapsed(), Duration::ZERO);
    }
}
