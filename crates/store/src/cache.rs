//! In-process caches of the two lookups every job-creating request makes: its API key and its
//! catalog.
//!
//! Reading both from the database cost each small bulk request two queries, which capped
//! acceptance far below what group commit allows (docs/PERFORMANCE.md). An entry here may be
//! stale: a key revoked, or a catalog deleted, by another process or node stays cached. That is
//! safe because nothing is created on a cached answer alone: the job insert re-checks the key
//! and the catalog inside its own transaction (`enqueue.rs`), and on a failed re-check the entry
//! is dropped and the request answered from the database. Requests that only read are not
//! served from here at all ([`Store::authenticate`] always asks the database).

use crate::error::StoreError;
use crate::model::{ApiKeyId, Catalog, Principal, ProjectId};
use crate::store::Store;
use crate::util::sha256_hex;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// Entries a map holds before it is emptied; a cache refills itself, and this bounds the memory
/// that many distinct tokens or catalog names could make it hold.
const MAX_ENTRIES: usize = 10_000;

/// The cached lookups of one [`Store`].
#[derive(Debug, Default)]
pub(crate) struct LookupCache {
    /// SHA-256 of a token → whom it authenticates.
    principals: Mutex<HashMap<String, Principal>>,
    /// (project, catalog name) → the live catalog of that name.
    catalogs: Mutex<HashMap<(ProjectId, String), Catalog>>,
}

/// Locks a cache map. A poisoned lock only means a panic elsewhere while holding it; every
/// write leaves the map consistent, so the map is still good.
fn lock<T>(map: &Mutex<T>) -> MutexGuard<'_, T> {
    map.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Inserts into a bounded map.
fn remember<K: std::hash::Hash + Eq, V>(map: &Mutex<HashMap<K, V>>, key: K, value: V) {
    let mut map = lock(map);
    if map.len() >= MAX_ENTRIES {
        map.clear();
    }
    map.insert(key, value);
}

impl Store {
    /// Like [`Store::authenticate`], but may answer from memory, so a key revoked since it was
    /// cached may still be accepted here.
    ///
    /// Use it only for a request whose one effect is creating a job with
    /// [`crate::JobOptions::requested_by`] set to the key: the insert re-checks the key and
    /// refuses a revoked one ([`StoreError::ApiKeyRevoked`]). Whatever else such a request
    /// answers before its insert (a validation error, a missing catalog) must be confirmed with
    /// [`Store::api_key_is_live`] before it is shown.
    pub async fn authenticate_cached(&self, token: &str) -> Result<Option<Principal>, StoreError> {
        let hash = sha256_hex(token.as_bytes());
        if let Some(principal) = lock(&self.inner.cache.principals).get(&hash) {
            return Ok(Some(principal.clone()));
        }
        let principal = self.authenticate_hash(&hash).await?;
        if let Some(principal) = &principal {
            remember(&self.inner.cache.principals, hash, principal.clone());
        }
        Ok(principal)
    }

    /// True when the key exists and is not revoked, asked of the database. Forgets a revoked key.
    pub async fn api_key_is_live(&self, key: ApiKeyId) -> Result<bool, StoreError> {
        let live = self.api_key_live_in_db(key).await?;
        if !live {
            self.forget_api_key(key);
        }
        Ok(live)
    }

    /// Drops a key from the cache (it was revoked).
    pub(crate) fn forget_api_key(&self, key: ApiKeyId) {
        lock(&self.inner.cache.principals).retain(|_, principal| principal.key_id != key);
    }

    /// The live catalog `name` of the project, from memory when it was looked up before. The
    /// job insert re-checks that it is still live.
    pub(crate) async fn find_catalog_cached(&self, project: ProjectId, name: &str) -> Result<Catalog, StoreError> {
        let key = (project, name.to_owned());
        if let Some(catalog) = lock(&self.inner.cache.catalogs).get(&key) {
            return Ok(catalog.clone());
        }
        let catalog = self.find_catalog(project, name).await?;
        remember(&self.inner.cache.catalogs, key, catalog.clone());
        Ok(catalog)
    }

    /// Drops a catalog from the cache (it was deleted).
    pub(crate) fn forget_catalog(&self, project: ProjectId, name: &str) {
        lock(&self.inner.cache.catalogs).remove(&(project, name.to_owned()));
    }
}
