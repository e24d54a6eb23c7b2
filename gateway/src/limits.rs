//! Request-rate limits: a token bucket per access key (checked after the
//! signature, so nobody can spend another key's budget) and per client IP
//! (checked before anything else). A request over its budget is answered
//! `503 SlowDown`, which SDKs retry with back-off; nothing is done for it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Buckets kept at most; beyond, idle (full) ones are dropped.
const MAX_TRACKED: usize = 100_000;

/// A token bucket per name: `rate` requests per second on average, bursts
/// of `burst`.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// `rate` per second, bursts of `burst` (at least 1).
    pub fn new(rate: f64, burst: f64) -> Self {
        RateLimiter { rate, burst: burst.max(1.0), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one token for `who`; false when none is left.
    pub fn allow(&self, who: &str) -> bool {
        self.allow_at(who, Instant::now())
    }

    fn allow_at(&self, who: &str, now: Instant) -> bool {
        let Ok(mut m) = self.buckets.lock() else { return true };
        if m.len() >= MAX_TRACKED {
            let (rate, burst) = (self.rate, self.burst);
            m.retain(|_, (t, at)| *t + now.saturating_duration_since(*at).as_secs_f64() * rate < burst);
            if m.len() >= MAX_TRACKED / 2 {
                // Mostly busy names: start afresh rather than scan them on every request.
                m.clear();
            }
        }
        let (tokens, at) = m.entry(who.to_owned()).or_insert((self.burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The `503 SlowDown` answer's message.
pub const SLOW_DOWN: &str = "Please reduce your request rate.";

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_then_the_rate() {
        let l = RateLimiter::new(10.0, 5.0);
        let t0 = Instant::now();
        assert_eq!((0..8).filter(|_| l.allow_at("a", t0)).count(), 5, "a burst of 5");
        assert!(l.allow_at("b", t0), "another name has its own bucket");
        // 0.3 s later: 3 more tokens.
        let t1 = t0 + Duration::from_millis(300);
        assert_eq!((0..8).filter(|_| l.allow_at("a", t1)).count(), 3);
        // Never more than the burst after a long pause.
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!((0..20).filter(|_| l.allow_at("a", t2)).count(), 5);
    }
}
