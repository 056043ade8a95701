//! When and how long to wait before repeating a request, and the random numbers that spread
//! concurrent retries apart and name idempotency keys.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How a failed request is repeated.
///
/// A request is tried at most `max_attempts` times. Before retry number `n` (1-based) the client
/// waits an exponential backoff `b = min(max_delay, base_delay · 2^(n-1))`, jittered: without a
/// `Retry-After` the wait is uniform in `[b/2, b]`; with one, it is `Retry-After` plus a uniform
/// `[0, b/2]`, so the server's wish is always honoured and clients rejected together don't all come
/// back in the same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Most tries of one request, the first included; 1 means never retry.
    pub max_attempts: u32,
    /// Backoff before the first retry.
    pub base_delay: Duration,
    /// Largest backoff (the `Retry-After` may still be longer).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        // Eight tries span about a minute of backoff: long enough to ride out a rate-limit window
        // or a server restart, short enough that a dead server is reported promptly.
        RetryPolicy { max_attempts: 8, base_delay: Duration::from_millis(250), max_delay: Duration::from_secs(30) }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub const fn never() -> Self {
        RetryPolicy { max_attempts: 1, base_delay: Duration::ZERO, max_delay: Duration::ZERO }
    }

    /// True when a request that failed `failures` times may be tried again.
    pub fn allows_retry(&self, failures: u32) -> bool {
        failures < self.max_attempts.max(1)
    }

    /// The un-jittered backoff before retry number `retry` (1-based).
    pub fn backoff(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1).min(31);
        let factor = 1u32 << exponent;
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// The wait before retry number `retry` (1-based), given the server's `Retry-After` and a
    /// random number (any `u64`; it decides the jitter).
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>, random: u64) -> Duration {
        let backoff = self.backoff(retry);
        let half = backoff / 2;
        let jitter = fraction(half, random);
        match retry_after {
            Some(server_wait) => server_wait.saturating_add(jitter),
            None => (backoff - half).saturating_add(jitter),
        }
    }
}

/// A share of `span`, to the nanosecond, picked by `random` (uniform but for a negligible modulo bias).
fn fraction(span: Duration, random: u64) -> Duration {
    let nanos = span.as_nanos();
    if nanos == 0 {
        return Duration::ZERO;
    }
    let picked = u128::from(random) % (nanos + 1);
    Duration::from_nanos(u64::try_from(picked).unwrap_or(u64::MAX))
}

/// A random `u64` from the OS. Should the OS source fail, a process-unique value from std's
/// randomly keyed hasher stands in: jitter and idempotency keys need uniqueness, not secrecy.
pub(crate) fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    match getrandom::getrandom(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => {
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            let count = COUNTER.fetch_add(1, Ordering::Relaxed);
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            RandomState::new().hash_one((count, now, std::process::id()))
        }
    }
}

/// A fresh idempotency key: 128 random bits as 32 hex digits (visible ASCII, well under the
/// server's 255-character cap).
pub fn new_idempotency_key() -> String {
    format!("{:016x}{:016x}", random_u64(), random_u64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1_000),
        };
        let backoffs: Vec<u128> = (1..=6).map(|n| policy.backoff(n).as_millis()).collect();
        assert_eq!(backoffs, vec![100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(policy.backoff(u32::MAX), Duration::from_millis(1_000));
    }

    #[test]
    fn delay_without_retry_after_stays_in_upper_half_of_backoff() {
        let policy = RetryPolicy::default();
        for retry in 1..=8 {
            let backoff = policy.backoff(retry);
            for random in [0, 1, 12_345, u64::MAX / 2, u64::MAX] {
                let delay = policy.delay(retry, None, random);
                assert!(delay >= backoff / 2 && delay <= backoff, "retry {retry}: {delay:?} vs {backoff:?}");
            }
        }
    }

    #[test]
    fn delay_honours_retry_after_and_adds_bounded_jitter() {
        let policy = RetryPolicy::default();
        let server = Duration::from_secs(2);
        for retry in 1..=8 {
            for random in [0, 7, u64::MAX] {
                let delay = policy.delay(retry, Some(server), random);
                assert!(delay >= server, "never sooner than Retry-After");
                assert!(delay <= server + policy.backoff(retry) / 2);
            }
        }
    }

    #[test]
    fn jitter_varies_with_the_random_number() {
        let policy = RetryPolicy::default();
        let delays: std::collections::HashSet<Duration> =
            (0..50).map(|_| policy.delay(3, Some(Duration::from_secs(1)), random_u64())).collect();
        assert!(delays.len() > 1, "jitter should spread retries");
    }

    #[test]
    fn attempts_are_bounded() {
        let policy = RetryPolicy { max_attempts: 3, ..RetryPolicy::default() };
        assert!(policy.allows_retry(1) && policy.allows_retry(2));
        assert!(!policy.allows_retry(3));
        assert!(!RetryPolicy::never().allows_retry(1));
        // Zero is read as one try, not as "no request at all".
        assert!(!RetryPolicy { max_attempts: 0, ..RetryPolicy::default() }.allows_retry(1));
    }

    #[test]
    fn idempotency_keys_are_unique_visible_ascii() {
        let keys: std::collections::HashSet<String> = (0..1_000).map(|_| new_idempotency_key()).collect();
        assert_eq!(keys.len(), 1_000);
        assert!(keys.iter().all(|k| k.len() == 32 && k.bytes().all(|b| b.is_ascii_hexdigit())));
    }
}
