//! The native API's resources as the client reads and writes them (DESIGN §5, `crates/api/src/native.rs`).
//!
//! Times stay RFC 3339 strings, as the server sends them: the client only shows and forwards them,
//! and `catalog_domain::time::parse_rfc3339` converts one when a caller needs arithmetic.

use catalog_domain::{JobKind, JobStatus};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    /// Its name, unique in the project.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Items in it, when the server counted them.
    #[serde(default)]
    pub item_count: Option<u64>,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
}

/// An item of a catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// Its id, unique in the catalog.
    pub id: String,
    /// Its fields.
    pub fields: Map<String, Value>,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
}

/// A category of a catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Category {
    /// Its id, unique in the catalog.
    pub id: String,
    /// An id in the caller's own system.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Ids of its items.
    #[serde(default)]
    pub item_ids: Vec<String>,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
}

/// A job: one bulk change, run asynchronously by the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Its id.
    pub id: i64,
    /// What it does.
    pub kind: JobKind,
    /// Where it is in its lifecycle.
    pub status: JobStatus,
    /// The catalog it works on (none for jobs that have none).
    #[serde(default)]
    pub catalog: Option<String>,
    /// Inputs the job covers.
    pub total_count: u64,
    /// Inputs processed successfully.
    pub completed_count: u64,
    /// Inputs that failed individually (see [`crate::Client::job_errors`]).
    pub failed_count: u64,
    /// Free text given at creation.
    #[serde(default)]
    pub description: Option<String>,
    /// The caller's reference given at creation.
    #[serde(default)]
    pub reference_id: Option<String>,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
    /// Earliest start asked for.
    #[serde(default)]
    pub start_at: Option<String>,
    /// When a runner first started it.
    #[serde(default)]
    pub started_at: Option<String>,
    /// When it reached a terminal status.
    #[serde(default)]
    pub finished_at: Option<String>,
    /// When the server will purge it.
    #[serde(default)]
    pub expires_at: Option<String>,
}

impl Job {
    /// True once the job is completed, failed or cancelled.
    pub fn is_terminal(&self) -> bool {
        self.status.is_terminal()
    }

    /// True when the job finished with every input applied: completed with no failed input.
    pub fn succeeded(&self) -> bool {
        self.status == JobStatus::Completed && self.failed_count == 0
    }

    /// Inputs processed so far, successfully or not.
    pub fn processed_count(&self) -> u64 {
        self.completed_count.saturating_add(self.failed_count)
    }
}

/// One per-input failure recorded by a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    /// Index of the input in its request.
    pub index: u64,
    /// The input's id.
    #[serde(default)]
    pub item_id: Option<String>,
    /// Stable snake_case code.
    pub code: String,
    /// Short summary.
    #[serde(default)]
    pub title: Option<String>,
    /// What went wrong with this input.
    #[serde(default)]
    pub detail: Option<String>,
    /// JSON pointer to the input in its request body.
    #[serde(default)]
    pub pointer: Option<String>,
}

/// One page of a keyset-paginated listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The rows.
    pub data: Vec<T>,
    /// Pass as `cursor` to get the next page; `None` on the last one.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// An item to create, replace or patch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemInput {
    /// The item's id.
    pub id: String,
    /// Its fields (all of them for an upsert, those to change for a patch).
    #[serde(default)]
    pub fields: Map<String, Value>,
}

impl ItemInput {
    /// An item with an id and fields.
    pub fn new(id: impl Into<String>, fields: Map<String, Value>) -> Self {
        ItemInput { id: id.into(), fields }
    }
}

/// A category to create, replace or change.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CategoryInput {
    /// The category's id.
    pub id: String,
    /// An id in the caller's own system (update: `None` keeps the current one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Display name (update: `None` keeps the current one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The category's items; replaces its item set when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_ids: Option<Vec<String>>,
}

/// The server's verdict on one input of a bulk request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ItemResult {
    /// The input is part of the job.
    Accepted {
        /// Its index in the request.
        index: u64,
        /// Its id.
        id: String,
    },
    /// The input was refused and is not part of the job.
    Rejected {
        /// Its index in the request.
        index: u64,
        /// Why.
        error: ItemResultError,
    },
}

/// Why the server refused one input of a bulk request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemResultError {
    /// The error code (`invalid_item_id`).
    pub code: String,
    /// The stable reason (`invalid_character`, `duplicate_id`...).
    pub reason: String,
    /// A sentence for humans.
    pub message: String,
}

/// The answer to a bulk request: the job it created (or, for a replayed idempotency key, the job
/// the first request created) and one result per input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkResponse {
    /// The job, when one was created.
    pub job: Option<Job>,
    /// One result per input, in request order.
    #[serde(default)]
    pub results: Vec<ItemResult>,
    /// True when the server answered 200: the idempotency key was seen before with this body, and
    /// `job` is the first request's job.
    #[serde(skip)]
    pub replayed: bool,
}

/// Options every job-creating request may carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobOptions {
    /// Don't start before this time (RFC 3339).
    pub start_at: Option<String>,
    /// Free text stored with the job.
    pub description: Option<String>,
    /// The caller's reference stored with the job.
    pub reference_id: Option<String>,
    /// Refuse the whole request if any input is invalid.
    pub atomic: bool,
    /// The `Idempotency-Key` header; `None` sends none.
    pub idempotency_key: Option<String>,
}

/// Filters of `GET /v1/jobs`; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only jobs in one of these statuses.
    pub statuses: Vec<JobStatus>,
    /// Only jobs of one of these kinds.
    pub kinds: Vec<JobKind>,
    /// Only jobs of this catalog.
    pub catalog: Option<String>,
    /// Only jobs created at or after this time (RFC 3339).
    pub created_after: Option<String>,
    /// Only jobs created before this time (RFC 3339).
    pub created_before: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn job_parses_the_wire_shape() {
        let job: Job = serde_json::from_value(json!({
            "id": 7, "kind": "item_bulk_delete", "status": "running", "catalog": "shoes",
            "total_count": 10, "completed_count": 4, "failed_count": 1,
            "description": null, "reference_id": "r-1",
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:01Z",
            "start_at": null, "started_at": "2026-01-01T00:00:01Z", "finished_at": null, "expires_at": null
        }))
        .expect("job parses");
        assert_eq!(job.id, 7);
        assert_eq!(job.kind, JobKind::ItemBulkDelete);
        assert_eq!(job.status, JobStatus::Running);
        assert_eq!(job.processed_count(), 5);
        assert!(!job.is_terminal() && !job.succeeded());
    }

    #[test]
    fn bulk_results_parse_both_verdicts() {
        let response: BulkResponse = serde_json::from_value(json!({
            "job": null,
            "results": [
                {"index": 0, "id": "a", "status": "accepted"},
                {"index": 1, "status": "rejected",
                 "error": {"code": "invalid_item_id", "reason": "empty_id", "message": "the item id is empty"}}
            ]
        }))
        .expect("response parses");
        assert_eq!(response.results[0], ItemResult::Accepted { index: 0, id: "a".into() });
        assert!(matches!(&response.results[1], ItemResult::Rejected { index: 1, error } if error.reason == "empty_id"));
    }
}
