//! Klaviyo's wire vocabulary: the media type, the job types with their paths and JSON:API type
//! names, the attributes each resource may show, and the page size.
//!
//! A leaf: it names no other module of the facade, so the error, parameter and rendering modules
//! all depend on it and none of them on each other in a circle.

use catalog_domain::JobKind;

/// The media type of every response.
pub const VND_API_JSON: &str = "application/vnd.api+json";

/// Most resources on one page of a collection.
pub const PAGE_SIZE: u32 = 100;

/// The collection of catalog items under `/api/`.
pub const ITEMS_PATH: &str = "catalog-items";

/// The collection of catalog categories under `/api/`.
pub const CATEGORIES_PATH: &str = "catalog-categories";

/// JSON:API type of an item.
pub const ITEM_TYPE: &str = "catalog-item";

/// JSON:API type of a category.
pub const CATEGORY_TYPE: &str = "catalog-category";

/// The variant job collections: catalogd's model has no item with a parent item, so these answer
/// in Klaviyo's envelope that they are not available (docs/compat/klaviyo.md).
pub const VARIANT_JOB_PATHS: [&str; 3] =
    ["catalog-variant-bulk-create-jobs", "catalog-variant-bulk-update-jobs", "catalog-variant-bulk-delete-jobs"];

/// The attributes a job's sparse fieldset may name (`id` is accepted and always shown).
pub const JOB_FIELDS: &[&str] = &[
    "completed_at",
    "completed_count",
    "created_at",
    "errors",
    "expires_at",
    "failed_count",
    "id",
    "job_id",
    "status",
    "total_count",
];

/// The attributes `fields[catalog-category]` may name.
pub const CATEGORY_FIELDS: &[&str] = &["external_id", "id", "name", "updated"];

/// The attributes `fields[catalog-item]` may name.
pub const ITEM_FIELDS: &[&str] = &[
    "created",
    "custom_metadata",
    "description",
    "external_id",
    "id",
    "image_full_url",
    "image_thumbnail_url",
    "images",
    "price",
    "published",
    "title",
    "updated",
    "url",
];

/// The attributes of a Klaviyo item that catalogd keeps as the item's fields, under the same
/// names (the external id is the item's id; `created` and `updated` are its times).
pub const ITEM_STORED_ATTRIBUTES: &[&str] = &[
    "title",
    "description",
    "url",
    "price",
    "image_full_url",
    "image_thumbnail_url",
    "images",
    "custom_metadata",
    "published",
];

/// The attributes an item create must carry (Klaviyo's `CatalogItemCreateQueryResourceObject`).
pub const ITEM_REQUIRED_ATTRIBUTES: &[&str] = &["external_id", "title", "description", "url"];

/// The job types of this dialect that catalogd serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobType {
    /// `catalog-item-bulk-create-job`.
    ItemCreate,
    /// `catalog-item-bulk-update-job`.
    ItemUpdate,
    /// `catalog-item-bulk-delete-job`.
    ItemDelete,
    /// `catalog-category-bulk-create-job`.
    CategoryCreate,
    /// `catalog-category-bulk-update-job`.
    CategoryUpdate,
    /// `catalog-category-bulk-delete-job`.
    CategoryDelete,
}

impl JobType {
    /// Every served job type.
    pub const ALL: [JobType; 6] = [
        JobType::ItemCreate,
        JobType::ItemUpdate,
        JobType::ItemDelete,
        JobType::CategoryCreate,
        JobType::CategoryUpdate,
        JobType::CategoryDelete,
    ];

    /// The JSON:API `type`.
    pub const fn type_name(self) -> &'static str {
        match self {
            JobType::ItemCreate => "catalog-item-bulk-create-job",
            JobType::ItemUpdate => "catalog-item-bulk-update-job",
            JobType::ItemDelete => "catalog-item-bulk-delete-job",
            JobType::CategoryCreate => "catalog-category-bulk-create-job",
            JobType::CategoryUpdate => "catalog-category-bulk-update-job",
            JobType::CategoryDelete => "catalog-category-bulk-delete-job",
        }
    }

    /// The collection's path segment under `/api/`.
    pub const fn path(self) -> &'static str {
        match self {
            JobType::ItemCreate => "catalog-item-bulk-create-jobs",
            JobType::ItemUpdate => "catalog-item-bulk-update-jobs",
            JobType::ItemDelete => "catalog-item-bulk-delete-jobs",
            JobType::CategoryCreate => "catalog-category-bulk-create-jobs",
            JobType::CategoryUpdate => "catalog-category-bulk-update-jobs",
            JobType::CategoryDelete => "catalog-category-bulk-delete-jobs",
        }
    }

    /// True for the jobs whose inputs are items (otherwise categories).
    pub const fn on_items(self) -> bool {
        matches!(self, JobType::ItemCreate | JobType::ItemUpdate | JobType::ItemDelete)
    }

    /// The attribute (and relationship) holding the job's inputs.
    pub const fn member(self) -> &'static str {
        if self.on_items() {
            "items"
        } else {
            "categories"
        }
    }

    /// The JSON:API type of the inputs.
    pub const fn related_type(self) -> &'static str {
        if self.on_items() {
            ITEM_TYPE
        } else {
            CATEGORY_TYPE
        }
    }

    /// The catalogd job kinds its collection lists and reads (docs/compat/klaviyo.md, "How the job
    /// types map"). The first is the kind a create of this type makes: the creates are
    /// create-only, as Klaviyo's are. The create collections also list the catalog's upserts:
    /// before the creates were create-only a create made an upsert job, so a client polling a
    /// create job accepted before an upgrade still finds it, and a native upsert of the catalog
    /// shows among the create jobs, as it always did.
    pub const fn kinds(self) -> &'static [JobKind] {
        match self {
            JobType::ItemCreate => &[JobKind::ItemBulkCreate, JobKind::ItemBulkUpsert],
            JobType::ItemUpdate => &[JobKind::ItemBulkPatch],
            JobType::ItemDelete => &[JobKind::ItemBulkDelete],
            JobType::CategoryCreate => &[JobKind::CategoryBulkCreate, JobKind::CategoryBulkUpsert],
            JobType::CategoryUpdate => &[JobKind::CategoryBulkUpdate],
            JobType::CategoryDelete => &[JobKind::CategoryBulkDelete],
        }
    }

    /// The relationship a single job's `include` may name: the created or updated resources, as
    /// Klaviyo's references list; delete jobs have none (their resources are gone).
    pub const fn includable(self) -> Option<&'static str> {
        match self {
            JobType::ItemCreate | JobType::ItemUpdate => Some("items"),
            JobType::CategoryCreate | JobType::CategoryUpdate => Some("categories"),
            JobType::ItemDelete | JobType::CategoryDelete => None,
        }
    }

    /// True when the collection accepts `include` too: only the category update jobs, whose seed
    /// (seeds/001) shows `included` on the list.
    pub const fn includable_on_list(self) -> bool {
        matches!(self, JobType::CategoryUpdate)
    }

    /// The `fields[...]` parameter of the included resources, and the attributes it may name.
    pub const fn included_fields(self) -> (&'static str, &'static [&'static str]) {
        if self.on_items() {
            ("fields[catalog-item]", ITEM_FIELDS)
        } else {
            ("fields[catalog-category]", CATEGORY_FIELDS)
        }
    }
}
