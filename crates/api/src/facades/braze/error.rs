//! Braze's error envelope and every word of it: the error ids and messages of catalogd's codes and
//! of catalog-domain's problems (ids, fields, batches, catalog names), rendered with exhaustive
//! matches so a new code or problem is a compile error here, never a silent 500.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use catalog_domain::braze_fields::{BrazeFieldProblem, FieldDeclarationProblem, SelectionProblem, MAX_FIELD_NAME_LEN};
use catalog_domain::braze_fields::{MAX_NESTING_DEPTH, MAX_SELECTION_FILTERS, MAX_SELECTION_RESULTS, MAX_VALUE_CHARS};
use catalog_domain::{BatchProblem, CatalogNameError, ErrorCode, IdProblem, IdVerdict, Unstorable};
use catalog_store::StoreError;
use serde_json::{json, Value};

/// The top-level `message` of every Braze error answer.
const INVALID_REQUEST: &str = "Invalid Request";

/// One entry of the `errors` list.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct BrazeError {
    /// The error id, e.g. `invalid-ids`.
    pub id: &'static str,
    /// The human message.
    pub message: String,
    /// Names of what the error is about (`["id"]` for items, `["catalog_name"]`, ...).
    pub parameters: Vec<&'static str>,
    /// Their values: for items, the id of every item the error is about, so a client can map
    /// the error back to its batch.
    pub parameter_values: Vec<Value>,
}

impl BrazeError {
    pub(super) fn new(id: &'static str, message: impl Into<String>) -> Self {
        BrazeError { id, message: message.into(), parameters: Vec::new(), parameter_values: Vec::new() }
    }

    fn about(mut self, parameter: &'static str, value: impl Into<Value>) -> Self {
        self.parameters = vec![parameter];
        self.parameter_values = vec![value.into()];
        self
    }
}

/// A refused request: a status and Braze's error entries.
#[derive(Debug)]
pub(super) struct Failure {
    pub status: StatusCode,
    pub errors: Vec<BrazeError>,
    /// Seconds for `Retry-After` (429, 503 and 507).
    pub retry_after: Option<u64>,
}

impl Failure {
    pub(super) fn one(status: StatusCode, id: &'static str, message: impl Into<String>) -> Self {
        Failure::many(status, vec![BrazeError::new(id, message)])
    }

    pub(super) fn many(status: StatusCode, errors: Vec<BrazeError>) -> Self {
        Failure { status, errors, retry_after: None }
    }

    pub(super) fn bad_request(errors: Vec<BrazeError>) -> Self {
        Failure::many(StatusCode::BAD_REQUEST, errors)
    }

    /// The failure with its first error naming the `values` of `parameter`.
    pub(super) fn naming(mut self, parameter: &'static str, values: Vec<Value>) -> Self {
        if let Some(error) = self.errors.first_mut() {
            error.parameters = vec![parameter];
            error.parameter_values = values;
        }
        self
    }

    pub(super) fn item_array_invalid() -> Self {
        Failure::one(StatusCode::BAD_REQUEST, "item-array-invalid", "`items` must be an array of objects")
    }

    pub(super) fn catalog_not_found(name: &str) -> Self {
        let error = BrazeError::new("catalog-not-found", "Could not find catalog").about("catalog_name", name);
        Failure::many(StatusCode::NOT_FOUND, vec![error])
    }

    pub(super) fn item_not_found(id: &str) -> Self {
        let error = BrazeError::new("item-not-found", "Could not find item").about("item_id", id);
        Failure::many(StatusCode::NOT_FOUND, vec![error])
    }

    /// An unknown route under `/catalogs` (Braze's own 404 names no parameter).
    pub(super) fn route_not_found() -> Self {
        Failure::one(StatusCode::NOT_FOUND, "not-found", "This endpoint does not exist")
    }

    pub(super) fn method_not_allowed() -> Self {
        Failure::one(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "This method is not allowed on this endpoint",
        )
    }

    pub(super) fn rate_limited(limit: u32, retry_after_secs: u64) -> Self {
        let mut failure = Failure::one(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limit-exceeded",
            format!("Rate limit of {limit} requests reached; retry after the Retry-After seconds"),
        );
        failure.retry_after = Some(retry_after_secs);
        failure
    }

    pub(super) fn into_response(self) -> Response {
        let errors: Vec<Value> = self
            .errors
            .iter()
            .map(|e| json!({"id": e.id, "message": e.message, "parameters": e.parameters, "parameter_values": e.parameter_values}))
            .collect();
        let mut response = (self.status, Json(json!({"errors": errors, "message": INVALID_REQUEST}))).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A store error in Braze's words. The variants that carry what Braze shows (a name, an id, the
/// verdicts) are rendered from it; every other is rendered from its code.
pub(super) fn store_failure(error: StoreError, catalog: &str) -> Failure {
    match error {
        StoreError::CatalogNotFound(_) => Failure::catalog_not_found(catalog),
        StoreError::ItemNotFound(id) => Failure::item_not_found(&id),
        StoreError::InvalidCatalogName(e) => Failure::bad_request(vec![catalog_name_error(&e)]),
        StoreError::Batch(problem) => Failure::bad_request(vec![batch_error(&problem)]),
        // The facade checks the same rules before it calls the store, so these only come from a
        // rule the store adds; the store keeps no copy of a refused id to name.
        StoreError::InvalidItems { results } | StoreError::NoValidItems { results } => {
            let mut errors = ItemErrors::default();
            for problem in results.iter().filter_map(|verdict| verdict.as_ref().err()) {
                errors.problem(problem, None);
            }
            Failure::bad_request(errors.into_errors())
        }
        StoreError::QueueFull { retry_after_secs, .. } => {
            let mut failure = Failure::one(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limit-exceeded",
                "Too many items are waiting to be applied; retry after the Retry-After seconds",
            );
            failure.retry_after = Some(retry_after_secs);
            failure
        }
        other => code_failure(other.code(), &other),
    }
}

/// A code in Braze's words, for the errors that carry nothing Braze would show.
fn code_failure(code: ErrorCode, error: &StoreError) -> Failure {
    let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut failure = match code {
        ErrorCode::InvalidJson
        | ErrorCode::InvalidQuery
        | ErrorCode::InvalidRequest
        | ErrorCode::InvalidItemId
        | ErrorCode::InvalidItem
        | ErrorCode::InvalidCatalogName
        | ErrorCode::TooManyItems
        | ErrorCode::NoValidItems
        | ErrorCode::ItemRefused => Failure::one(StatusCode::BAD_REQUEST, "invalid-request", error.to_string()),
        ErrorCode::Unauthenticated => Failure::one(status, "invalid-api-key", "Invalid API key"),
        ErrorCode::Forbidden => {
            Failure::one(status, "insufficient-permissions", "The API key lacks the permission for this endpoint")
        }
        ErrorCode::NotFound
        | ErrorCode::JobNotFound
        | ErrorCode::ProjectNotFound
        | ErrorCode::WebhookNotFound
        | ErrorCode::DeliveryNotFound => Failure::route_not_found(),
        ErrorCode::CatalogNotFound => Failure::one(status, "catalog-not-found", "Could not find catalog"),
        ErrorCode::ItemNotFound => Failure::one(status, "item-not-found", "Could not find item"),
        ErrorCode::MethodNotAllowed => Failure::method_not_allowed(),
        ErrorCode::CatalogAlreadyExists => catalog_name_taken(),
        ErrorCode::ProjectAlreadyExists
        | ErrorCode::AlreadyExists
        | ErrorCode::IdempotencyKeyReused
        | ErrorCode::JobNotCancellable => Failure::one(status, "conflict", error.to_string()),
        ErrorCode::PayloadTooLarge => {
            Failure::one(status, "request-too-large", "The request body is larger than the limit")
        }
        ErrorCode::UnsupportedMediaType => Failure::one(
            status,
            "invalid-content-type",
            "The request body must be sent as Content-Type: application/json",
        ),
        ErrorCode::RateLimited | ErrorCode::TooManyJobsInProgress | ErrorCode::QueueFull => {
            Failure::one(status, "rate-limit-exceeded", "Too many requests; retry later")
        }
        ErrorCode::Internal => {
            // The cause may name tables or hosts: log it, tell the client only what happened.
            tracing::error!(error = %error, "store error");
            Failure::one(status, "internal-error", "Internal error")
        }
        ErrorCode::Unavailable => {
            tracing::warn!(error = %error, "storage trouble");
            Failure::one(status, "service-unavailable", "Service unavailable")
        }
        ErrorCode::InsufficientStorage => {
            tracing::warn!(error = %error, "storage trouble");
            Failure::one(status, "insufficient-storage", "Insufficient storage")
        }
    };
    failure.retry_after = failure.retry_after.or(code.retry_after_secs());
    failure
}

pub(super) fn catalog_name_taken() -> Failure {
    Failure::one(StatusCode::BAD_REQUEST, "catalog-name-already-exists", "A catalog with that name already exists")
}

/// Braze's error for a catalog name the rule refuses (`invalid_catalog_name` really is spelt with
/// underscores in Braze's reference).
pub(super) fn catalog_name_error(error: &CatalogNameError) -> BrazeError {
    match error {
        CatalogNameError::TooLong { max, .. } => {
            BrazeError::new("catalog-name-too-large", format!("Catalog name can't be more than {max} characters"))
        }
        CatalogNameError::Empty | CatalogNameError::InvalidCharacter { .. } => BrazeError::new(
            "invalid_catalog_name",
            "Catalog name can only include letters, numbers, hyphens, and underscores",
        ),
    }
}

/// Braze's error for a refused batch. An empty batch has no documented id: it is a malformed
/// `items`.
pub(super) fn batch_error(problem: &BatchProblem) -> BrazeError {
    match problem {
        BatchProblem::TooManyItems { max, .. } => {
            BrazeError::new("request-includes-too-many-items", format!("The item limit per request is {max}"))
        }
        BatchProblem::Empty => BrazeError::new("item-array-invalid", "`items` must be a non-empty array of objects"),
    }
}

/// Braze's error for refused field declarations (Braze's `POST /catalogs` ids).
pub(super) fn declaration_error(problem: FieldDeclarationProblem) -> BrazeError {
    match problem {
        FieldDeclarationProblem::IdNotFirst => {
            BrazeError::new("id-not-first-column", "The first field must be `id` of type `string`")
        }
        FieldDeclarationProblem::InvalidName => BrazeError::new(
            "invalid-field-names",
            format!("Field names can only include letters, numbers, hyphens, and underscores, and be at most {MAX_FIELD_NAME_LEN} characters; `id` only first"),
        ),
        FieldDeclarationProblem::InvalidType => BrazeError::new(
            "invalid-field-types",
            "Field types must be one of string, number, boolean, time, object, array",
        ),
        FieldDeclarationProblem::NotUnique => BrazeError::new("field-names-not-unique", "Field names must be unique"),
        FieldDeclarationProblem::TooMany { max } => {
            BrazeError::new("request-includes-too-many-fields", format!("At most {max} fields are allowed"))
        }
    }
}

/// Braze's error for a refused selection (its "create catalog selection" ids).
pub(super) fn selection_error(problem: SelectionProblem) -> BrazeError {
    match problem {
        SelectionProblem::InvalidName => BrazeError::new(
            "invalid-selection",
            "Selection names can only include letters, numbers, hyphens, and underscores",
        ),
        SelectionProblem::TooManyFilters => {
            BrazeError::new("too-many-filters", format!("A selection can have at most {MAX_SELECTION_FILTERS} filters"))
        }
        SelectionProblem::InvalidFilter => BrazeError::new(
            "selection-has-invalid-filter",
            "Each filter needs a field of the catalog, an operator of its type and a value of its type",
        ),
        SelectionProblem::TooManyArrays => BrazeError::new(
            "selection-contains-too-many-arrays",
            "A selection can filter on at most one field of type array",
        ),
        SelectionProblem::InvalidResultsLimit => BrazeError::new(
            "selection-invalid-results-limit",
            format!("The results limit must be a number between 1 and {MAX_SELECTION_RESULTS}"),
        ),
        SelectionProblem::InvalidSorting => {
            BrazeError::new("invalid-sorting", "`sort_field` and `sort_order` go together")
        }
        SelectionProblem::InvalidSortField => {
            BrazeError::new("invalid-sort-field", "The sort field must be a field of the catalog")
        }
        SelectionProblem::InvalidSortOrder => {
            BrazeError::new("invalid-sort-order", "The sort order must be asc or desc")
        }
    }
}

/// The per-item errors of one request: one entry per distinct error id, in first-seen order,
/// naming in `parameter_values` the id of every item it is about (as Braze does, so a client
/// fails those items of its batch alone); `items-missing-ids` counts the items instead.
#[derive(Debug, Default)]
pub(super) struct ItemErrors {
    errors: Vec<BrazeError>,
    missing_ids: usize,
}

impl ItemErrors {
    pub(super) fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Records `id`/`message` for the item `item` (`None`: the item has no id to name).
    pub(super) fn push(&mut self, id: &'static str, message: impl FnOnce() -> String, item: Option<&str>) {
        let index = match self.errors.iter().position(|e| e.id == id) {
            Some(index) => index,
            None => {
                self.errors.push(BrazeError::new(id, message()));
                self.errors.len() - 1
            }
        };
        if let (Some(error), Some(item)) = (self.errors.get_mut(index), item) {
            let value = Value::String(item.to_owned());
            if !error.parameter_values.contains(&value) {
                error.parameters = vec!["id"];
                error.parameter_values.push(value);
            }
        }
    }

    /// Records an id problem of the item whose id is `item`.
    pub(super) fn problem(&mut self, problem: &IdProblem, item: Option<&str>) {
        if *problem == IdProblem::Missing {
            self.missing_ids += 1;
        }
        let (id, message) = id_problem_words(problem);
        self.push(id, || message, item);
    }

    /// Records a field problem of the item `item`.
    pub(super) fn field(&mut self, problem: BrazeFieldProblem, item: Option<&str>) {
        let (id, message) = field_problem_words(problem);
        self.push(id, || message, item);
    }

    /// Records every refused verdict, naming the item by its id where it has one.
    pub(super) fn verdicts(&mut self, verdicts: &[IdVerdict], raw_ids: &[Option<&str>]) {
        for (index, verdict) in verdicts.iter().enumerate() {
            if let Err(problem) = verdict {
                self.problem(problem, raw_ids.get(index).copied().flatten());
            }
        }
    }

    pub(super) fn into_errors(mut self) -> Vec<BrazeError> {
        if let Some(error) = self.errors.iter_mut().find(|e| e.id == "items-missing-ids") {
            error.message = missing_ids_message(self.missing_ids);
        }
        self.errors
    }
}

fn missing_ids_message(count: usize) -> String {
    format!("There are {count} item(s) that do not have ids")
}

/// Braze's error id and message for an id problem (contracts/braze.md).
fn id_problem_words(problem: &IdProblem) -> (&'static str, String) {
    match problem {
        IdProblem::Missing => ("items-missing-ids", missing_ids_message(1)),
        IdProblem::NotAString => ("ids-not-strings", "Item IDs must be of type string".to_owned()),
        // Braze has no id for these; an empty id or one with `/` breaks its charset rule.
        IdProblem::Empty | IdProblem::InvalidCharacter { .. } | IdProblem::ContainsSlash => {
            ("invalid-ids", "Item IDs can only include letters, numbers, hyphens, and underscores".to_owned())
        }
        IdProblem::TooLong { max, .. } => ("ids-too-large", format!("Item IDs can't be more than {max} characters")),
        IdProblem::TooManyBytes { max, .. } => ("ids-too-large", format!("Item IDs can't be more than {max} bytes")),
        IdProblem::Duplicate { .. } => ("ids-not-unique", "Item IDs must be unique in the request".to_owned()),
        IdProblem::Unstorable(problem) => unstorable_words(problem),
    }
}

/// Braze documents no id for a NUL: `invalid-fields` is its error for a field it cannot take; a
/// size problem is its `items-too-large`.
fn unstorable_words(problem: &Unstorable) -> (&'static str, String) {
    match problem {
        Unstorable::NulInFields { .. } | Unstorable::NulIn { .. } => {
            ("invalid-fields", "Item fields can't contain the NUL character (U+0000)".to_owned())
        }
        Unstorable::TooLarge { max, .. } => {
            ("items-too-large", format!("Items can't be more than {max} bytes as JSON"))
        }
    }
}

/// Braze's error id and message for a field problem (the messages are a choice: Braze documents
/// the ids, and `invalid-fields`' message is its example's).
fn field_problem_words(problem: BrazeFieldProblem) -> (&'static str, String) {
    match problem {
        BrazeFieldProblem::InvalidFieldName => (
            "invalid-fields",
            format!("Item field names can only include letters, numbers, hyphens, and underscores, and be at most {MAX_FIELD_NAME_LEN} characters"),
        ),
        BrazeFieldProblem::UndeclaredField => {
            ("invalid-fields", "Some of the fields given do not exist in the catalog".to_owned())
        }
        BrazeFieldProblem::UncoercibleValue => {
            ("unable-to-coerce-value", "Item types can't be converted".to_owned())
        }
        BrazeFieldProblem::ValueTooLarge => {
            ("items-too-large", format!("Item values can't be more than {MAX_VALUE_CHARS} characters"))
        }
        BrazeFieldProblem::InvalidKeyInValueObject => {
            ("invalid-keys-in-value-object", "Keys in item object values can't include `.` or `$`".to_owned())
        }
        BrazeFieldProblem::TooDeepNesting => (
            "too-deep-nesting-in-value-object",
            format!("Item object values can't be nested more than {MAX_NESTING_DEPTH} levels"),
        ),
        BrazeFieldProblem::NulCharacter => {
            ("invalid-fields", "Item fields can't contain the NUL character (U+0000)".to_owned())
        }
    }
}
