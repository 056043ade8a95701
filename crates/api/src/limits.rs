//! Rate-limit policies: which quota guards which routes, their defaults (from the seed documents),
//! and the `POLICY=LIMIT/PERIOD` settings that override them.

use catalog_domain::rate::Quota;
use std::collections::HashMap;
use std::str::FromStr;

/// A named quota (or pair of quotas: burst and steady) shared by a group of routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Policy {
    /// Native API reads (GET), per project.
    NativeRead,
    /// Native API writes (POST/DELETE), per project.
    NativeWrite,
    /// Braze's asynchronous item endpoints, per project (seed: 100/min).
    BrazeAsync,
    /// Braze's catalog management endpoints (list, create, delete catalogs), per project (50/min).
    BrazeSync,
    /// Braze's synchronous item endpoints and item list, per project (50/min).
    BrazeSyncItems,
    /// Braze's catalog field and selection endpoints, per project (50/min).
    BrazeFields,
    /// Bloomreach's bulk endpoints, per catalog (seed: 5 per 10 s).
    BloomreachBulk,
    /// Klaviyo job listings and gets, burst (seed: 350/s).
    KlaviyoReadBurst,
    /// Klaviyo job listings and gets, steady (seed: 3,500/min).
    KlaviyoReadSteady,
    /// Klaviyo job creation, burst (75/s).
    KlaviyoCreateBurst,
    /// Klaviyo job creation, steady (750/min).
    KlaviyoCreateSteady,
}

impl Policy {
    /// Every policy.
    pub const ALL: &'static [Policy] = &[
        Policy::NativeRead,
        Policy::NativeWrite,
        Policy::BrazeAsync,
        Policy::BrazeSync,
        Policy::BrazeSyncItems,
        Policy::BrazeFields,
        Policy::BloomreachBulk,
        Policy::KlaviyoReadBurst,
        Policy::KlaviyoReadSteady,
        Policy::KlaviyoCreateBurst,
        Policy::KlaviyoCreateSteady,
    ];

    /// The name used in settings and in the quota key.
    pub const fn name(self) -> &'static str {
        match self {
            Policy::NativeRead => "native-read",
            Policy::NativeWrite => "native-write",
            Policy::BrazeAsync => "braze-async",
            Policy::BrazeSync => "braze-sync",
            Policy::BrazeSyncItems => "braze-sync-items",
            Policy::BrazeFields => "braze-fields",
            Policy::BloomreachBulk => "bloomreach-bulk",
            Policy::KlaviyoReadBurst => "klaviyo-read-burst",
            Policy::KlaviyoReadSteady => "klaviyo-read-steady",
            Policy::KlaviyoCreateBurst => "klaviyo-create-burst",
            Policy::KlaviyoCreateSteady => "klaviyo-create-steady",
        }
    }

    /// The default quota.
    pub const fn default_quota(self) -> Quota {
        match self {
            Policy::NativeRead => Quota::per_second(1_000),
            Policy::NativeWrite => Quota::per_second(200),
            Policy::BrazeAsync => Quota::per_minute(100),
            Policy::BrazeSync | Policy::BrazeSyncItems | Policy::BrazeFields => Quota::per_minute(50),
            Policy::BloomreachBulk => Quota::new(5, 10_000),
            Policy::KlaviyoReadBurst => Quota::per_second(350),
            Policy::KlaviyoReadSteady => Quota::per_minute(3_500),
            Policy::KlaviyoCreateBurst => Quota::per_second(75),
            Policy::KlaviyoCreateSteady => Quota::per_minute(750),
        }
    }
}

/// One `POLICY=LIMIT/PERIOD` or `POLICY=off` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSetting {
    /// The policy it overrides.
    pub policy: Policy,
    /// The new quota; `None` turns the policy off.
    pub quota: Option<Quota>,
}

impl FromStr for RateLimitSetting {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (name, value) = text.split_once('=').ok_or_else(|| format!("`{text}`: expected POLICY=LIMIT/PERIOD"))?;
        let policy = Policy::ALL.iter().copied().find(|p| p.name() == name.trim()).ok_or_else(|| {
            let names: Vec<_> = Policy::ALL.iter().map(|p| p.name()).collect();
            format!("unknown rate-limit policy `{name}` (one of {})", names.join(", "))
        })?;
        let value = value.trim();
        if value == "off" {
            return Ok(RateLimitSetting { policy, quota: None });
        }
        let (limit, period) =
            value.split_once('/').ok_or_else(|| format!("`{value}`: expected LIMIT/PERIOD, e.g. 100/1m"))?;
        let limit: u32 = limit.trim().parse().map_err(|_| format!("`{limit}` is not a request count"))?;
        if limit == 0 {
            return Err("a limit of 0 would refuse everything; use `off` to disable a policy".to_owned());
        }
        Ok(RateLimitSetting { policy, quota: Some(Quota::new(limit, parse_period_ms(period.trim())?)) })
    }
}

/// `500ms`, `10s`, `1m`, `1h` (a bare number is seconds).
fn parse_period_ms(text: &str) -> Result<i64, String> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().map_err(|_| format!("`{text}` is not a period such as 10s or 1m"))?;
    let unit_ms = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("`{text}`: the unit must be ms, s, m or h")),
    };
    match number.checked_mul(unit_ms) {
        Some(ms) if ms > 0 => Ok(ms),
        _ => Err(format!("`{text}` is not a positive period")),
    }
}

/// The quotas in force: defaults with the settings applied.
#[derive(Debug, Clone)]
pub struct RateLimits {
    quotas: HashMap<Policy, Quota>,
}

impl RateLimits {
    /// The defaults overridden by `settings`, later settings winning.
    pub fn new(settings: &[RateLimitSetting]) -> Self {
        let mut quotas: HashMap<Policy, Quota> = Policy::ALL.iter().map(|p| (*p, p.default_quota())).collect();
        for setting in settings {
            match setting.quota {
                Some(quota) => quotas.insert(setting.policy, quota),
                None => quotas.remove(&setting.policy),
            };
        }
        RateLimits { quotas }
    }

    /// The quota of `policy`, `None` when it is off.
    pub fn quota(&self, policy: Policy) -> Option<Quota> {
        self.quotas.get(&policy).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_settings() {
        let setting: RateLimitSetting = "bloomreach-bulk=5/10s".parse().expect("valid");
        assert_eq!(setting, RateLimitSetting { policy: Policy::BloomreachBulk, quota: Some(Quota::new(5, 10_000)) });
        let off: RateLimitSetting = "native-write=off".parse().expect("valid");
        assert_eq!(off.quota, None);
        for bad in ["native-write", "nope=1/1s", "native-write=0/1s", "native-write=1/1y", "native-write=x/1s"] {
            assert!(bad.parse::<RateLimitSetting>().is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_follow_the_seeds() {
        let limits = RateLimits::new(&[]);
        assert_eq!(limits.quota(Policy::BrazeAsync), Some(Quota::per_minute(100)));
        assert_eq!(limits.quota(Policy::BloomreachBulk), Some(Quota::new(5, 10_000)));
        assert_eq!(limits.quota(Policy::KlaviyoReadBurst), Some(Quota::per_second(350)));
        assert_eq!(limits.quota(Policy::KlaviyoReadSteady), Some(Quota::per_minute(3_500)));
        let off = RateLimits::new(&["braze-async=off".parse().expect("valid")]);
        assert_eq!(off.quota(Policy::BrazeAsync), None);
    }
}
