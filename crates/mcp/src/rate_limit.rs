//! Optional per-server rate limit on executions (sliding window).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::config::RateLimitConfig;

/// Sliding-window counter: at most `max_requests` accepted per `window_ms`.
pub struct RateLimiter {
    cfg: RateLimitConfig,
    accepted: Mutex<VecDeque<Instant>>,
}

impl RateLimiter {
    pub fn new(cfg: RateLimitConfig) -> Self {
        RateLimiter {
            cfg,
            accepted: Mutex::new(VecDeque::new()),
        }
    }

    /// Record a request now; `Err(message)` when it is over the limit.
    pub fn check(&self) -> Result<(), String> {
        self.check_at(Instant::now())
    }

    fn check_at(&self, now: Instant) -> Result<(), String> {
        let window = Duration::from_millis(self.cfg.window_ms);
        // A poisoned lock only means another thread panicked mid-update; the queue is still usable.
        let mut q = self.accepted.lock().unwrap_or_else(|e| e.into_inner());
        while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
            q.pop_front();
        }
        if q.len() as u64 >= self.cfg.max_requests {
            let retry = q
                .front()
                .map(|t| window.saturating_sub(now.duration_since(*t)))
                .unwrap_or_default();
            return Err(format!(
                "rate limit exceeded: at most {} executions per {} ms (security.rateLimit / CODE_EXECUTOR_RATE_LIMIT_RPM); retry in {:.1}s",
                self.cfg.max_requests,
                self.cfg.window_ms,
                retry.as_secs_f64()
            ));
        }
        q.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_slides() {
        let rl = RateLimiter::new(RateLimitConfig {
            window_ms: 1000,
            max_requests: 2,
        });
        let t0 = Instant::now();
        assert!(rl.check_at(t0).is_ok());
        assert!(rl.check_at(t0).is_ok());
        assert!(rl.check_at(t0).unwrap_err().contains("rate limit exceeded"));
        assert!(rl.check_at(t0 + Duration::from_millis(1000)).is_ok());
    }
}
