//! Rate-limit state: the theoretical arrival time (TAT) of each GCRA quota key.
//!
//! The arithmetic is catalog-domain's [`rate::check`]; this module only keeps the TATs.
//! - On PostgreSQL they live in `rate_limits`, read and written under row locks in one
//!   transaction, so every node shares one budget per key.
//! - On SQLite they live in a map in this process. An SQLite file is owned by one process, so the
//!   map sees every request; keeping quotas in memory spares each request a write transaction
//!   on a database that serialises writers (a rate limit should not queue behind bulk jobs).
//!   The cost: a restart forgets the quotas, which only errs towards allowing requests.

use crate::db::{now_ms, RowExt};
use crate::error::StoreError;
use crate::store::Store;
use catalog_domain::rate::{self, Quota, RateDecision};

/// The storage key of one quota of a request key (a key can carry several quotas, e.g. Klaviyo's
/// burst and steady rates).
fn quota_key(key: &str, quota: &Quota) -> String {
    format!("{key}|{}/{}", quota.limit, quota.period_ms)
}

/// Combines the decisions of all quotas: denied if any denies (with the longest wait), otherwise
/// the tightest one.
fn combine(decisions: &[RateDecision]) -> Option<RateDecision> {
    let denied = decisions.iter().filter(|d| !d.allowed).max_by_key(|d| d.retry_after_secs);
    denied.or_else(|| decisions.iter().min_by_key(|d| d.remaining)).copied()
}

/// The decisions of `sorted` (the quotas' keys, sorted and deduplicated) in the order of
/// `quotas`.
fn in_order(key: &str, quotas: &[Quota], sorted: &[(String, Quota)], decisions: &[RateDecision]) -> Vec<RateDecision> {
    quotas
        .iter()
        .filter_map(|q| {
            let k = quota_key(key, q);
            sorted.iter().position(|(s, _)| *s == k).and_then(|at| decisions.get(at)).copied()
        })
        .collect()
}

/// A decision for a request that has no quota at all.
fn unlimited() -> RateDecision {
    RateDecision {
        allowed: true,
        tat_ms: 0.0,
        limit: u32::MAX,
        remaining: u32::MAX,
        reset_secs: 0,
        retry_after_secs: 0,
    }
}

impl Store {
    /// Asks every quota of `key` for one request at `now_ms`. The request is allowed only when all
    /// allow, and only then is each quota consumed; a denied request consumes nothing.
    pub async fn take_quota(&self, key: &str, quotas: &[Quota], now_ms: i64) -> Result<RateDecision, StoreError> {
        let each = self.take_quota_each(key, quotas, now_ms).await?;
        Ok(combine(&each).unwrap_or_else(unlimited))
    }

    /// [`Store::take_quota`], answering each quota's own decision, in the order of `quotas`
    /// (empty when there is none): for a surface whose headers describe one window of several,
    /// as Klaviyo's describe the steady one. Consumed as [`Store::take_quota`] consumes.
    pub async fn take_quota_each(
        &self,
        key: &str,
        quotas: &[Quota],
        now_ms: i64,
    ) -> Result<Vec<RateDecision>, StoreError> {
        if quotas.is_empty() {
            return Ok(Vec::new());
        }
        let mut keys: Vec<(String, Quota)> = quotas.iter().map(|q| (quota_key(key, q), *q)).collect();
        // Sorted, so concurrent requests lock rows in the same order and cannot deadlock.
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        keys.dedup_by(|a, b| a.0 == b.0);
        match self.db() {
            crate::db::Db::Sqlite(_) => {
                let mut map =
                    self.inner.local_quotas.lock().map_err(|_| StoreError::Corrupt("quota map poisoned".into()))?;
                let decisions: Vec<RateDecision> =
                    keys.iter().map(|(k, q)| rate::check(*q, map.get(k).copied(), now_ms)).collect();
                let decision = combine(&decisions).unwrap_or_else(unlimited);
                if decision.allowed {
                    for ((k, _), d) in keys.iter().zip(&decisions) {
                        map.insert(k.clone(), d.tat_ms);
                    }
                }
                let decision = in_order(key, quotas, &keys, &decisions);
                // A TAT in the past equals no state: forget those now and then so the map stays small.
                if map.len() > 10_000 {
                    let now = now_ms as f64;
                    map.retain(|_, tat| *tat > now);
                }
                Ok(decision)
            }
            crate::db::Db::Pg(pool) => {
                // Every request writes here on PostgreSQL: its outcome tells the store's health.
                let taken: Result<Vec<RateDecision>, StoreError> = async {
                    let mut tx = pool.begin().await?;
                    let names: Vec<String> = keys.iter().map(|(k, _)| k.clone()).collect();
                    // Make every row exist, then lock them all: two nodes never read the same TAT.
                    sqlx::query("INSERT INTO rate_limits (key, tat) SELECT k, NULL FROM unnest($1::text[]) AS k ORDER BY k ON CONFLICT (key) DO NOTHING")
                        .bind(&names)
                        .execute(&mut *tx)
                        .await?;
                    let rows = sqlx::query("SELECT key, tat FROM rate_limits WHERE key = ANY($1) ORDER BY key FOR UPDATE")
                        .bind(&names)
                        .fetch_all(&mut *tx)
                        .await?;
                    let mut stored = std::collections::HashMap::new();
                    for row in &rows {
                        stored.insert(row.text("key")?, row.opt_float("tat")?);
                    }
                    let decisions: Vec<RateDecision> =
                        keys.iter().map(|(k, q)| rate::check(*q, stored.get(k).copied().flatten(), now_ms)).collect();
                    let each = in_order(key, quotas, &keys, &decisions);
                    let decision = combine(&decisions).unwrap_or_else(unlimited);
                    if decision.allowed {
                        let tats: Vec<f64> = decisions.iter().map(|d| d.tat_ms).collect();
                        sqlx::query("UPDATE rate_limits r SET tat = v.tat FROM unnest($1::text[], $2::float8[]) AS v(key, tat) WHERE r.key = v.key")
                            .bind(&names)
                            .bind(&tats)
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                    Ok(each)
                }
                .await;
                self.health().observe(&taken);
                taken
            }
        }
    }

    /// [`Store::take_quota`] at the current time.
    pub async fn take_quota_now(&self, key: &str, quotas: &[Quota]) -> Result<RateDecision, StoreError> {
        self.take_quota(key, quotas, now_ms()).await
    }
}
