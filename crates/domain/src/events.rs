//! Job events and webhooks: the event types, a delivery's statuses, the retry schedule of a
//! webhook delivery, and which addresses a webhook may not point at. Semantics: docs/EVENTS.md.

use crate::job::UnknownWord;
use alloc::borrow::ToOwned;
use core::fmt;
use core::net::IpAddr;
use core::str::FromStr;

/// What happened to a job. Its word (`job.created`, ...) is the SSE `event:` field, the event
/// body's `type`, and what a webhook subscribes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    /// The job was accepted.
    Created,
    /// A runner took it for the first time.
    Started,
    /// A chunk was checkpointed and the job goes on.
    Progress,
    /// It ended with every input applied or failed individually.
    Completed,
    /// It ended early (its catalog was deleted, or it ran out of attempts).
    Failed,
    /// It was cancelled.
    Cancelled,
}

impl EventType {
    /// Every type, in the order a job can meet them.
    pub const ALL: &'static [EventType] = &[
        EventType::Created,
        EventType::Started,
        EventType::Progress,
        EventType::Completed,
        EventType::Failed,
        EventType::Cancelled,
    ];

    /// The word stored and shown; `FromStr` reads it back.
    ///
    /// ```
    /// use catalog_domain::events::EventType;
    /// assert_eq!(EventType::Completed.as_str(), "job.completed");
    /// assert_eq!("job.progress".parse::<EventType>(), Ok(EventType::Progress));
    /// assert!("completed".parse::<EventType>().is_err());
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::Created => "job.created",
            EventType::Started => "job.started",
            EventType::Progress => "job.progress",
            EventType::Completed => "job.completed",
            EventType::Failed => "job.failed",
            EventType::Cancelled => "job.cancelled",
        }
    }

    /// True for the last event a job has: after it, its stream ends.
    ///
    /// ```
    /// use catalog_domain::events::EventType;
    /// assert!(EventType::Cancelled.is_terminal());
    /// assert!(!EventType::Progress.is_terminal());
    /// ```
    pub const fn is_terminal(self) -> bool {
        matches!(self, EventType::Completed | EventType::Failed | EventType::Cancelled)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, UnknownWord> {
        EventType::ALL
            .iter()
            .copied()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownWord { kind: "event type", word: s.to_owned() })
    }
}

/// Where a webhook delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Not yet answered with a 2xx; another attempt is due at `next_attempt_at`.
    Pending,
    /// The receiver answered 2xx.
    Succeeded,
    /// Given up: no 2xx within [`RetrySchedule::give_up_after_ms`] of the event.
    Failed,
}

impl DeliveryStatus {
    /// The word stored and shown.
    ///
    /// ```
    /// use catalog_domain::events::DeliveryStatus;
    /// assert_eq!(DeliveryStatus::Succeeded.as_str(), "succeeded");
    /// assert_eq!("failed".parse::<DeliveryStatus>(), Ok(DeliveryStatus::Failed));
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
        }
    }
}

impl FromStr for DeliveryStatus {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, UnknownWord> {
        [DeliveryStatus::Pending, DeliveryStatus::Succeeded, DeliveryStatus::Failed]
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| UnknownWord { kind: "delivery status", word: s.to_owned() })
    }
}

/// When a failed webhook delivery is tried again: after `first_delay_ms`, then twice as long
/// after each further failure, until an attempt would come later than `give_up_after_ms` after
/// the delivery was created; then it fails for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySchedule {
    /// The wait after the first failed attempt.
    pub first_delay_ms: i64,
    /// How long after its creation a delivery is still tried.
    pub give_up_after_ms: i64,
}

/// One day: how long a delivery is retried by default.
pub const DEFAULT_GIVE_UP_AFTER_MS: i64 = 24 * 60 * 60 * 1_000;
/// The wait after a first failed attempt by default (then 1 min, 2 min, ... up to a day).
pub const DEFAULT_FIRST_DELAY_MS: i64 = 30_000;

impl Default for RetrySchedule {
    fn default() -> Self {
        RetrySchedule { first_delay_ms: DEFAULT_FIRST_DELAY_MS, give_up_after_ms: DEFAULT_GIVE_UP_AFTER_MS }
    }
}

impl RetrySchedule {
    /// When to try again after `failed_attempts` (at least 1) failed attempts, the latest at
    /// `now`, of a delivery created at `created_at`; `None`: give up (the delivery fails).
    ///
    /// ```
    /// use catalog_domain::events::RetrySchedule;
    /// let schedule = RetrySchedule { first_delay_ms: 1_000, give_up_after_ms: 10_000 };
    /// assert_eq!(schedule.next_attempt(0, 1, 0), Some(1_000));
    /// assert_eq!(schedule.next_attempt(0, 3, 3_000), Some(7_000));
    /// assert_eq!(schedule.next_attempt(0, 4, 7_000), None);
    /// ```
    pub fn next_attempt(&self, created_at: i64, failed_attempts: u32, now: i64) -> Option<i64> {
        let doublings = failed_attempts.saturating_sub(1).min(40);
        let delay = self.first_delay_ms.max(1).saturating_mul(1_i64 << doublings);
        let next = now.saturating_add(delay);
        (next <= created_at.saturating_add(self.give_up_after_ms)).then_some(next)
    }
}

/// The longest webhook URL accepted, in bytes.
pub const MAX_WEBHOOK_URL_LEN: usize = 2_048;

/// The longest webhook description accepted, in bytes.
pub const MAX_WEBHOOK_DESCRIPTION_LEN: usize = 1_024;

/// True when a webhook may not be sent to `ip` unless the operator allows private targets:
/// loopback, private (RFC 1918, unique local), link-local, unspecified, shared (RFC 6598),
/// broadcast, documentation and multicast addresses, and IPv4 mapped into IPv6 likewise.
///
/// ```
/// use catalog_domain::events::is_private_address;
/// assert!(is_private_address("127.0.0.1".parse().unwrap()));
/// assert!(is_private_address("10.1.2.3".parse().unwrap()));
/// assert!(is_private_address("::ffff:192.168.0.1".parse().unwrap()));
/// assert!(is_private_address("fd00::1".parse().unwrap()));
/// assert!(!is_private_address("93.184.216.34".parse().unwrap()));
/// ```
pub fn is_private_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private_address(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_reads_back() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>(), Ok(*t));
        }
    }

    #[test]
    fn the_retry_delay_doubles_and_gives_up_after_a_day() {
        let schedule = RetrySchedule::default();
        let mut now = 0;
        let mut attempts = 0;
        let mut delays = Vec::new();
        while let Some(next) = schedule.next_attempt(0, attempts + 1, now) {
            delays.push(next - now);
            now = next;
            attempts += 1;
        }
        assert_eq!(&delays[..3], &[30_000, 60_000, 120_000]);
        assert!(now <= DEFAULT_GIVE_UP_AFTER_MS && attempts < 20, "{attempts} attempts, last at {now}");
    }

    #[test]
    fn public_addresses_are_allowed() {
        for public in ["8.8.8.8", "2606:4700::1111", "100.128.0.1"] {
            assert_eq!(public.parse::<IpAddr>().map(is_private_address), Ok(false), "{public}");
        }
        for private in ["169.254.1.1", "100.64.0.1", "0.0.0.0", "::1", "fe80::1", "172.16.0.1"] {
            assert_eq!(private.parse::<IpAddr>().map(is_private_address), Ok(true), "{private}");
        }
    }
}
