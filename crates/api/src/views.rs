//! The native API's response bodies, typed so the OpenAPI document is generated from the same
//! structs that render the responses.

use catalog_domain::time::format_rfc3339;
use catalog_domain::{IdVerdict, JobKind, JobStatus};
use catalog_store::{BulkOutcome, Catalog, Category, Item, Job, JobErrorRecord, Page};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

fn time(ms: i64) -> String {
    format_rfc3339(ms)
}

/// A bulk job.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    /// Increasing integer id.
    pub id: i64,
    /// What the job does.
    #[schema(value_type = String, example = "item_bulk_delete")]
    pub kind: JobKind,
    /// scheduled, queued, running, completed, failed or cancelled.
    #[schema(value_type = String, example = "queued")]
    pub status: JobStatus,
    /// The catalog's name.
    pub catalog: Option<String>,
    /// Inputs the job covers.
    pub total_count: u64,
    /// Inputs processed successfully.
    pub completed_count: u64,
    /// Inputs that failed individually (see `/v1/jobs/{id}/errors`).
    pub failed_count: u64,
    /// Free text given at creation.
    pub description: Option<String>,
    /// The caller's reference given at creation.
    pub reference_id: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// When it may start (RFC 3339); a future value makes it `scheduled`.
    pub start_at: Option<String>,
    /// When a runner first took it (RFC 3339).
    pub started_at: Option<String>,
    /// When it reached a final status (RFC 3339).
    pub finished_at: Option<String>,
    /// When it will be purged (RFC 3339).
    pub expires_at: Option<String>,
}

impl From<&Job> for JobView {
    fn from(job: &Job) -> Self {
        JobView {
            id: job.id.0,
            kind: job.kind,
            status: job.status,
            catalog: job.catalog_name.clone(),
            total_count: job.total_count,
            completed_count: job.completed_count,
            failed_count: job.failed_count,
            description: job.description.clone(),
            reference_id: job.reference_id.clone(),
            created_at: time(job.created_at),
            updated_at: time(job.updated_at),
            start_at: job.start_at.map(time),
            started_at: job.started_at.map(time),
            finished_at: job.finished_at.map(time),
            expires_at: job.expires_at.map(time),
        }
    }
}

/// A catalog.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogView {
    /// Unique in the project: `[A-Za-z0-9_-]{1,250}`.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Items in the catalog (on single-catalog responses).
    pub item_count: Option<u64>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<&Catalog> for CatalogView {
    fn from(catalog: &Catalog) -> Self {
        CatalogView {
            name: catalog.name.clone(),
            description: catalog.description.clone(),
            item_count: catalog.item_count,
            created_at: time(catalog.created_at),
            updated_at: time(catalog.updated_at),
        }
    }
}

/// An item.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemView {
    /// Unique in the catalog.
    pub id: String,
    /// The item's fields.
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<&Item> for ItemView {
    fn from(item: &Item) -> Self {
        ItemView {
            id: item.id.clone(),
            fields: item.fields.clone(),
            created_at: time(item.created_at),
            updated_at: time(item.updated_at),
        }
    }
}

/// A category.
#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryView {
    /// Unique in the catalog.
    pub id: String,
    /// An id in the caller's own system.
    pub external_id: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Ids of the items in the category, sorted.
    pub item_ids: Vec<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<&Category> for CategoryView {
    fn from(category: &Category) -> Self {
        CategoryView {
            id: category.id.clone(),
            external_id: category.external_id.clone(),
            name: category.name.clone(),
            item_ids: category.item_ids.clone(),
            created_at: time(category.created_at),
            updated_at: time(category.updated_at),
        }
    }
}

/// One per-item failure of a job.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobErrorView {
    /// Position of the input in the request.
    pub index: u64,
    /// The input's id, when it had one.
    pub item_id: Option<String>,
    /// Stable snake_case code.
    pub code: String,
    /// Short summary.
    pub title: String,
    /// What went wrong.
    pub detail: String,
    /// JSON pointer to the input in the request body.
    pub pointer: Option<String>,
}

impl From<&JobErrorRecord> for JobErrorView {
    fn from(error: &JobErrorRecord) -> Self {
        JobErrorView {
            index: error.index,
            item_id: error.item_id.clone(),
            code: error.code.clone(),
            title: error.title.clone(),
            detail: error.detail.clone(),
            pointer: error.pointer.clone(),
        }
    }
}

/// One page of a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageView<T> {
    /// The rows.
    pub data: Vec<T>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl<T> PageView<T> {
    /// Renders a store page row by row.
    pub fn of<R>(page: &Page<R>) -> Self
    where
        for<'r> T: From<&'r R>,
    {
        PageView { data: page.rows.iter().map(T::from).collect(), next_cursor: page.next_cursor.clone() }
    }
}

/// Why one input was refused.
#[derive(Debug, Serialize, ToSchema)]
pub struct InputError {
    /// `invalid_item_id` (the id), or `invalid_item` (what else the input carries).
    pub code: &'static str,
    /// What was wrong: missing_id, id_not_a_string, empty_id, id_too_long, invalid_character,
    /// contains_slash, duplicate_id; nul_character, item_too_large.
    pub reason: &'static str,
    /// A sentence for humans.
    pub message: String,
}

/// The verdict on one input of a bulk request.
#[derive(Debug, Serialize, ToSchema)]
pub struct InputResult {
    /// Position in the request.
    pub index: usize,
    /// The id, when it was accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `accepted` or `rejected`.
    pub status: &'static str,
    /// Why it was rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<InputError>,
}

/// The answer to a bulk request: the job, and one result per input in request order.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkView {
    /// The job that will apply the accepted inputs.
    pub job: Option<JobView>,
    /// One per input, in request order.
    pub results: Vec<InputResult>,
}

impl From<&BulkOutcome> for BulkView {
    fn from(outcome: &BulkOutcome) -> Self {
        BulkView { job: outcome.job.as_ref().map(JobView::from), results: input_results(&outcome.results) }
    }
}

/// One [`InputResult`] per verdict, in order.
pub fn input_results(verdicts: &[IdVerdict]) -> Vec<InputResult> {
    verdicts
        .iter()
        .enumerate()
        .map(|(index, verdict)| match verdict {
            Ok(id) => InputResult { index, id: Some(id.clone()), status: "accepted", error: None },
            Err(problem) => InputResult {
                index,
                id: None,
                status: "rejected",
                error: Some(InputError {
                    code: problem.code().as_str(),
                    reason: problem.reason(),
                    message: problem.to_string(),
                }),
            },
        })
        .collect()
}

/// The answer to a catalog delete.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobCreatedView {
    /// The job that deletes the catalog.
    pub job: JobView,
}

/// The error envelope of every native error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorBody,
}

/// The body of the error envelope.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable snake_case code.
    pub code: String,
    /// A sentence for humans.
    pub message: String,
    /// Structured detail, when there is any.
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
}
