//! The values the service layer takes and returns.

use catalog_domain::{IdVerdict, JobKind, JobStatus, RawId};
use serde_json::{Map, Value};
use std::fmt;
use std::str::FromStr;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// A project (tenant). Every service call is scoped by one.
    ProjectId
);
id_type!(
    /// A job; increasing in creation order.
    JobId
);
id_type!(
    /// A catalog row. Callers name catalogs; the id is internal but shown on jobs.
    CatalogId
);
id_type!(
    /// An API key.
    ApiKeyId
);

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// Its id.
    pub id: ProjectId,
    /// Url-safe key used in facade paths.
    pub key: String,
    /// Display name.
    pub name: String,
    /// Creation time (epoch ms).
    pub created_at: i64,
}

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Read catalogs, items and categories.
    CatalogsRead,
    /// Create and delete catalogs, and change items and categories.
    CatalogsWrite,
    /// Read jobs.
    JobsRead,
    /// Cancel jobs.
    JobsWrite,
}

impl Scope {
    /// Every scope.
    pub const ALL: &'static [Scope] = &[Scope::CatalogsRead, Scope::CatalogsWrite, Scope::JobsRead, Scope::JobsWrite];

    /// The scope's word, e.g. `catalogs:read`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::CatalogsRead => "catalogs:read",
            Scope::CatalogsWrite => "catalogs:write",
            Scope::JobsRead => "jobs:read",
            Scope::JobsWrite => "jobs:write",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Scope::ALL.iter().copied().find(|scope| scope.as_str() == s).ok_or_else(|| format!("unknown scope `{s}`"))
    }
}

/// An API key as listed (never its token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Its id.
    pub id: ApiKeyId,
    /// The project it belongs to.
    pub project_id: ProjectId,
    /// The first characters of the token, to recognise it in a list.
    pub prefix: String,
    /// An optional label.
    pub name: Option<String>,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// Creation time (epoch ms).
    pub created_at: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
}

/// A freshly created key with its token, which is shown this once and stored only as a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedApiKey {
    /// The key's record.
    pub key: ApiKey,
    /// The secret bearer token.
    pub token: String,
}

/// Who is calling: the result of authenticating a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The caller's project; every call is scoped by it.
    pub project_id: ProjectId,
    /// The project's key.
    pub project_key: String,
    /// The key that authenticated.
    pub key_id: ApiKeyId,
    /// What the key may do.
    pub scopes: Vec<Scope>,
}

impl Principal {
    /// True when the key has `scope`.
    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// A catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    /// Its id.
    pub id: CatalogId,
    /// Its name, unique in the project.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Creation time (epoch ms).
    pub created_at: i64,
    /// Last change of the catalog record (epoch ms).
    pub updated_at: i64,
    /// Items in it; filled by [`crate::Store::get_catalog`] only (counting is not free).
    pub item_count: Option<u64>,
}

/// An item.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Its id, unique in the catalog.
    pub id: String,
    /// Its fields, a JSON object.
    pub fields: Map<String, Value>,
    /// Creation time (epoch ms).
    pub created_at: i64,
    /// Last change (epoch ms).
    pub updated_at: i64,
}

/// A category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    /// Its id, unique in the catalog.
    pub id: String,
    /// An id in the caller's own system.
    pub external_id: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Ids of its items, sorted.
    pub item_ids: Vec<String>,
    /// Creation time (epoch ms).
    pub created_at: i64,
    /// Last change (epoch ms).
    pub updated_at: i64,
}

/// One page of a keyset-paginated list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The rows of this page.
    pub rows: Vec<T>,
    /// Opaque cursor of the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// One item of an upsert or patch request.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemInput {
    /// The id as the facade found it.
    pub id: RawId,
    /// The fields to set (upsert: all of them; patch: those to change).
    pub fields: Map<String, Value>,
}

/// One category of a category upsert or update request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryInput {
    /// The id as the facade found it.
    pub id: RawId,
    /// External id (update: `None` keeps the current one).
    pub external_id: Option<String>,
    /// Name (update: `None` keeps the current one).
    pub name: Option<String>,
    /// The item set (update: `None` keeps it; upsert: `None` is empty).
    pub item_ids: Option<Vec<String>>,
}

/// Options every job-creating call takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobOptions {
    /// Start no earlier than this (epoch ms); in the future makes the job `scheduled`.
    pub start_at: Option<i64>,
    /// Free text shown on the job.
    pub description: Option<String>,
    /// The caller's own reference.
    pub reference_id: Option<String>,
    /// A retried request with the same key and request returns the first job.
    pub idempotency_key: Option<String>,
    /// Refuse the whole request when any input is invalid (otherwise valid inputs go ahead).
    pub atomic: bool,
    /// The API key the request came with. When set, the job is created only if that key is
    /// still unrevoked when the insert commits (and a replay is answered only then), which is
    /// what lets [`crate::Store::authenticate_cached`] answer from memory.
    pub requested_by: Option<ApiKeyId>,
    /// Refuse the job with [`crate::StoreError::TooManyJobsInProgress`] when its project already
    /// has [`catalog_domain::klaviyo::MAX_JOBS_IN_PROGRESS`] jobs in progress (Klaviyo's cap),
    /// counted in the insert's own transaction, so concurrent requests at the cap cannot all pass.
    pub in_progress_cap: bool,
}

/// The result of a bulk call.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkOutcome {
    /// The job created (or found again, see `replayed`); `None` when nothing was valid.
    pub job: Option<Job>,
    /// True when an idempotency key matched an earlier identical request: `job` is that request's.
    pub replayed: bool,
    /// One verdict per input, in request order.
    pub results: Vec<IdVerdict>,
}

/// A job, as every API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// Its project.
    pub project_id: ProjectId,
    /// Its catalog (none for jobs that have none).
    pub catalog_id: Option<CatalogId>,
    /// The catalog's name when the job was created.
    pub catalog_name: Option<String>,
    /// What it does.
    pub kind: JobKind,
    /// Canonical status.
    pub status: JobStatus,
    /// Inputs the job covers.
    pub total_count: u64,
    /// Inputs processed successfully.
    pub completed_count: u64,
    /// Inputs that failed individually (see the job's errors).
    pub failed_count: u64,
    /// Inputs applied so far (the checkpoint a resumed job starts from).
    pub cursor: u64,
    /// A cancel was asked while it ran; it ends at the next chunk boundary.
    pub cancel_requested: bool,
    /// Free text.
    pub description: Option<String>,
    /// The caller's reference.
    pub reference_id: Option<String>,
    /// The idempotency key it was created with.
    pub idempotency_key: Option<String>,
    /// How many times a runner claimed it.
    pub attempt: u32,
    /// The runner holding it.
    pub lease_owner: Option<String>,
    /// When that runner's lease runs out (epoch ms).
    pub lease_expires_at: Option<i64>,
    /// Creation time (epoch ms).
    pub created_at: i64,
    /// Last change (epoch ms).
    pub updated_at: i64,
    /// Earliest start asked for (epoch ms).
    pub start_at: Option<i64>,
    /// First claim (epoch ms).
    pub started_at: Option<i64>,
    /// When it reached a terminal status (epoch ms).
    pub finished_at: Option<i64>,
    /// When it will be purged (epoch ms).
    pub expires_at: Option<i64>,
    /// Why it failed, when it did.
    pub failure_reason: Option<String>,
}

/// One per-item failure of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobErrorRecord {
    /// Index of the input in the request.
    pub index: u64,
    /// The input's id.
    pub item_id: Option<String>,
    /// Stable snake_case code (a domain [`catalog_domain::ErrorCode`] word).
    pub code: String,
    /// Short summary.
    pub title: String,
    /// What went wrong with this input.
    pub detail: String,
    /// JSON pointer to the input in the request body, e.g. `/items/3`.
    pub pointer: Option<String>,
}

/// Which jobs a listing selects. Empty sets select everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Any of these statuses (a Klaviyo word maps to two).
    pub statuses: Vec<JobStatus>,
    /// Any of these kinds.
    pub kinds: Vec<JobKind>,
    /// Only jobs of the catalog of this name.
    pub catalog: Option<String>,
    /// Created at or after (epoch ms).
    pub created_after: Option<i64>,
    /// Created strictly before (epoch ms).
    pub created_before: Option<i64>,
}

/// How a job listing pages, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobPaging {
    /// Keyset: from an opaque cursor (or the start), `limit` rows. Flat cost at any depth.
    Cursor {
        /// The previous page's `next_cursor`.
        cursor: Option<String>,
        /// Rows per page (1..=1000).
        limit: u32,
    },
    /// OpenReplay's page numbers: page 1 is the newest `limit` jobs.
    Page {
        /// Page number, from 1.
        page: u32,
        /// Rows per page (1..=1000).
        limit: u32,
    },
}
