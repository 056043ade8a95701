//! What every handler shares.

use crate::limits::{Policy, RateLimits};
use crate::metrics::Metrics;
use catalog_domain::rate::RateDecision;
use catalog_store::{ProjectId, Store, StoreError};
use std::sync::Arc;

/// The router's state: the store, the limits in force, and the metrics registry.
#[derive(Clone)]
pub struct AppState {
    /// The service layer.
    pub store: Store,
    /// Rate-limit quotas in force.
    pub rate_limits: Arc<RateLimits>,
    /// Request and job metrics.
    pub metrics: Arc<Metrics>,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// The catalog of the key's project that Klaviyo's `$default` catalog maps to.
    pub klaviyo_catalog: Arc<str>,
    /// How webhooks may be created and are sent.
    pub webhooks: Arc<crate::webhooks::WebhookSettings>,
}

impl AppState {
    /// Takes one request from each of `policies`' quotas for `project` (and `scope`, e.g. a
    /// catalog for Bloomreach's per-catalog quota). Returns the store's decision for the
    /// headers, or `None` when every policy is off. Quotas are consumed only if all allow.
    pub async fn take_quota(
        &self,
        project: ProjectId,
        policies: &[Policy],
        scope: Option<&str>,
    ) -> Result<Option<RateDecision>, StoreError> {
        let active: Vec<_> =
            policies.iter().filter_map(|p| self.rate_limits.quota(*p).map(|quota| (*p, quota))).collect();
        if active.is_empty() {
            return Ok(None);
        }
        let names: Vec<&str> = active.iter().map(|(p, _)| p.name()).collect();
        let key = match scope {
            Some(scope) => format!("{}:{}:{}", project.0, names.join("+"), scope),
            None => format!("{}:{}", project.0, names.join("+")),
        };
        let quotas: Vec<_> = active.iter().map(|(_, quota)| *quota).collect();
        self.store.take_quota(&key, &quotas, catalog_store::now_ms()).await.map(Some)
    }

    /// [`AppState::take_quota`], answering each active policy's own decision (in the order of
    /// `policies`; a policy that is off is left out): for a surface whose headers describe one
    /// window of several, as Klaviyo's describe the steady one. Consumed as `take_quota` does.
    pub async fn take_quota_each(
        &self,
        project: ProjectId,
        policies: &[Policy],
    ) -> Result<Vec<(Policy, RateDecision)>, StoreError> {
        let active: Vec<_> =
            policies.iter().filter_map(|p| self.rate_limits.quota(*p).map(|quota| (*p, quota))).collect();
        if active.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<&str> = active.iter().map(|(p, _)| p.name()).collect();
        // The same key as `take_quota` for the same policies: one quota state, however asked.
        let key = format!("{}:{}", project.0, names.join("+"));
        let quotas: Vec<_> = active.iter().map(|(_, quota)| *quota).collect();
        let decisions = self.store.take_quota_each(&key, &quotas, catalog_store::now_ms()).await?;
        Ok(active.into_iter().map(|(policy, _)| policy).zip(decisions).collect())
    }
}
