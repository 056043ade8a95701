//! catalog-client: a typed async client for catalogd's native API, and the `catalogctl` binary.
//!
//! [`Client`] has one method per native route (catalogs, items, jobs), each with the
//! [`RetryPolicy`]: 429 and 503 are retried after the server's `Retry-After` with jittered
//! exponential backoff, and so are connection failures where repeating is harmless. Errors carry
//! the server's code and message ([`Error::Api`]).
//!
//! For bulk changes of any size, [`Client::bulk_delete`], [`Client::bulk_upsert`] and
//! [`Client::bulk_patch`] validate every input with catalog-domain's native rules before sending
//! (bad ones are reported, never sent), chunk to the server's 10,000-per-request limit, submit
//! with bounded concurrency and one `Idempotency-Key` per chunk, and return a [`BulkReport`] with
//! the jobs; [`Client::wait`] follows a job to its end with the server's long poll.
//!
//! ```no_run
//! # async fn demo() -> catalog_client::Result<()> {
//! use catalog_client::{BulkOptions, Client};
//! let client = Client::new("http://127.0.0.1:8080", "cat_...")?;
//! let ids = (0..1_000_000).map(|n| format!("sku-{n}"));
//! let report = client.bulk_delete("shoes", ids, &BulkOptions::default()).await?;
//! for job in report.jobs() {
//!     let job = client.wait(job.id).await?;
//!     println!("job {}: {} ({} deleted)", job.id, job.status, job.completed_count);
//! }
//! # Ok(()) }
//! ```
//!
//! A complete program, `examples/bulk-delete.rs`, deletes the ids of a file and prints each
//! job's outcome (`cargo run -p catalog-client --example bulk-delete -- --catalog shoes ids.txt`).
//!
//! It depends on catalog-domain and never on the server crates. What it promises across versions
//! is in catalogd's `docs/ARCHITECTURE.md`, "What the libraries promise".

pub mod bulk;
mod client;
mod error;
pub mod events;
mod retry;
pub mod types;

pub use bulk::{
    BulkEvent, BulkOptions, BulkReport, ChunkFailure, ChunkOutcome, IdChecker, Observer, Problem, Rejection,
    UnreadableInput,
};
/// catalog-domain types that appear in this API: job words (for filters) and id problems.
pub use catalog_domain::{IdProblem, JobKind, JobStatus};
pub use client::{Client, ClientBuilder, RetryNotice, WaitOptions, MAX_WAIT};
pub use error::{Error, Result};
pub use events::{Delivery, DeliveryPage, Event, EventFilter, EventStream, Webhook};
pub use retry::{new_idempotency_key, RetryPolicy};
pub use types::{
    BulkResponse, Catalog, Category, CategoryInput, Item, ItemInput, ItemResult, ItemResultError, Job, JobError,
    JobFilter, JobOptions, Page,
};
