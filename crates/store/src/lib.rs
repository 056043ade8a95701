//! catalog-store: catalogd's persistence, service layer and durable job engine.
//!
//! This crate owns everything that touches the database, on SQLite (the embedded default) and
//! PostgreSQL (several nodes sharing one database):
//! - the schema and the numbered migrations of both backends, applied by [`Store::connect`];
//! - the service layer the HTTP crate calls — projects and API keys, catalogs, items, categories,
//!   bulk changes that validate through catalog-domain and become jobs atomically with their
//!   payload, idempotency keys, job listing/cancel/long-poll/purge, and rate-limit state. Every
//!   call takes the caller's [`ProjectId`]; another project's data is reported as not found and
//!   is never returned or changed;
//! - the [`Runner`], which leases due jobs, applies them chunk by chunk with set-based statements,
//!   checkpoints each chunk in the same transaction (fenced by the attempt number), honours
//!   cancels at chunk boundaries, and releases its leases on shutdown.
//!
//! It knows nothing of HTTP: errors carry a domain [`catalog_domain::ErrorCode`]
//! ([`StoreError::code`]) and the API crate decides how to render them. Times are `i64` epoch
//! milliseconds throughout.

mod bulk;
mod cache;
mod catalogs;
mod db;
mod enqueue;
mod error;
mod events;
mod facade_support;
pub mod hooks;
mod idlist;
mod jobs;
mod klaviyo_support;
mod model;
mod ops;
mod projects;
pub mod queue;
mod rate;
mod runner;
mod store;
mod supervise;
mod util;
mod webhooks;

pub use db::{now_ms, with_database};
pub use error::StoreError;
pub use events::{Event, EventFilter, EVENT_POLL_INTERVAL, MAX_EVENTS_PER_READ};
pub use facade_support::{CatalogField, ItemSearch, ItemWindow, PatchInput, SearchPage};
pub use klaviyo_support::{JobDetails, JobSelection, JobWindow, MAX_ERRORS_PER_JOB};
pub use model::{
    ApiKey, ApiKeyId, BulkOutcome, Catalog, CatalogId, Category, CategoryInput, CreatedApiKey, Item, ItemInput, Job,
    JobErrorRecord, JobFilter, JobId, JobOptions, JobPaging, Page, Principal, Project, ProjectId, Scope,
};
pub use ops::JobMetrics;
pub use runner::{default_chunk_size, Heartbeat, Lease, Runner, RunnerConfig, Step};
pub use store::{Store, StoreConfig};
pub use webhooks::{AttemptOutcome, Delivery, DueDelivery, Webhook};
