//! Rate limiting by GCRA (the generic cell rate algorithm).
//!
//! A quota allows `limit` requests per `period`, in bursts of up to `limit`. The only state a
//! quota needs per key is one instant, the theoretical arrival time (TAT), so it can be kept in a
//! map or in one database row shared by every node. This module is the arithmetic; the store
//! keeps the TATs.

/// `limit` requests per `period_ms` milliseconds, with bursts of up to `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    /// Requests allowed per period (also the largest burst).
    pub limit: u32,
    /// The period, in milliseconds.
    pub period_ms: i64,
}

impl Quota {
    /// A quota of `limit` requests per `period_ms` milliseconds.
    ///
    /// ```
    /// use catalog_domain::rate::Quota;
    /// assert_eq!(Quota::new(100, 60_000), Quota::per_minute(100));
    /// ```
    pub const fn new(limit: u32, period_ms: i64) -> Self {
        Quota { limit, period_ms }
    }

    /// `limit` requests per second.
    ///
    /// ```
    /// use catalog_domain::rate::Quota;
    /// assert_eq!(Quota::per_second(5).period_ms, 1_000);
    /// ```
    pub const fn per_second(limit: u32) -> Self {
        Quota::new(limit, 1_000)
    }

    /// `limit` requests per minute.
    ///
    /// ```
    /// use catalog_domain::rate::Quota;
    /// assert_eq!(Quota::per_minute(5).period_ms, 60_000);
    /// ```
    pub const fn per_minute(limit: u32) -> Self {
        Quota::new(limit, 60_000)
    }

    /// Time between two requests at the steady rate, in milliseconds (at least 1 µs-equivalent:
    /// never zero, so a huge limit cannot divide by zero).
    fn emission_interval_ms(self) -> f64 {
        let limit = f64::from(self.limit.max(1));
        (self.period_ms.max(1) as f64) / limit
    }
}

/// The outcome of asking a quota for one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateDecision {
    /// The request may proceed.
    pub allowed: bool,
    /// The TAT to store: the new one when allowed, the old one (unchanged) when not.
    pub tat_ms: f64,
    /// The quota's limit (for `RateLimit-Limit` / `X-RateLimit-Limit`).
    pub limit: u32,
    /// Requests still allowed right now after this one.
    pub remaining: u32,
    /// Whole seconds until the quota is fully replenished (`RateLimit-Reset`).
    pub reset_secs: u64,
    /// Whole seconds to wait before retrying, when not allowed (`Retry-After`, at least 1).
    pub retry_after_secs: u64,
}

/// Asks `quota` for one request at `now_ms`, given the stored TAT (`None` for a fresh key).
///
/// ```
/// use catalog_domain::rate::{check, Quota};
/// let quota = Quota::per_second(2);
/// let first = check(quota, None, 0);
/// let second = check(quota, Some(first.tat_ms), 0);
/// let third = check(quota, Some(second.tat_ms), 0);
/// assert!(first.allowed && second.allowed);
/// assert!(!third.allowed); // a burst of two, then wait
/// assert_eq!((third.remaining, third.retry_after_secs), (0, 1));
/// ```
pub fn check(quota: Quota, stored_tat_ms: Option<f64>, now_ms: i64) -> RateDecision {
    let now = now_ms as f64;
    let interval = quota.emission_interval_ms();
    let period = quota.period_ms.max(1) as f64;
    let tat = stored_tat_ms.map_or(now, |t| t.max(now));
    let new_tat = tat + interval;
    // Allowed while the backlog after this request fits in one period: that is `limit` at once.
    // The small epsilon absorbs float rounding when limit does not divide the period evenly.
    let allowed = new_tat - now <= period + 1e-6;
    let effective_tat = if allowed { new_tat } else { tat };
    // libm's `floor` and `ceil`, as core's `f64` has none (no_std); they are exact, like std's.
    let remaining = libm::floor((period - (effective_tat - now)) / interval + 1e-6).max(0.0) as u32;
    let reset_secs = libm::ceil((effective_tat - now) / 1_000.0).max(0.0) as u64;
    let retry_after_secs = if allowed { 0 } else { libm::ceil((new_tat - now - period) / 1_000.0).max(1.0) as u64 };
    RateDecision { allowed, tat_ms: effective_tat, limit: quota.limit, remaining, reset_secs, retry_after_secs }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(quota: Quota, times: &[i64]) -> Vec<bool> {
        let mut tat = None;
        times
            .iter()
            .map(|&now| {
                let decision = check(quota, tat, now);
                tat = Some(decision.tat_ms);
                decision.allowed
            })
            .collect()
    }

    #[test]
    fn braze_100_per_minute_allows_a_burst_of_100_then_limits() {
        let allowed = run(Quota::per_minute(100), &[0; 101]);
        assert_eq!(allowed.iter().filter(|a| **a).count(), 100);
        assert!(!allowed[100]);
    }

    #[test]
    fn bloomreach_5_per_10_seconds_refills_one_every_2_seconds() {
        let quota = Quota::new(5, 10_000);
        assert_eq!(
            run(quota, &[0, 0, 0, 0, 0, 0, 1_999, 2_000]),
            vec![true, true, true, true, true, false, false, true]
        );
    }

    #[test]
    fn limited_request_reports_integer_retry_after() {
        let quota = Quota::new(5, 10_000);
        let mut tat = None;
        for _ in 0..5 {
            tat = Some(check(quota, tat, 0).tat_ms);
        }
        let denied = check(quota, tat, 0);
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after_secs, 2);
        assert_eq!(denied.remaining, 0);
        assert_eq!(denied.tat_ms, tat.unwrap_or_default(), "a denied request consumes nothing");
    }

    #[test]
    fn remaining_counts_down() {
        let quota = Quota::per_second(3);
        let first = check(quota, None, 0);
        assert_eq!((first.allowed, first.remaining), (true, 2));
        let second = check(quota, Some(first.tat_ms), 0);
        assert_eq!(second.remaining, 1);
    }
}
