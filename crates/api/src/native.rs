//! The native API, `/v1/...`: parse, call the store, render. Request types deny unknown fields so
//! a typo is a 400, not a silently ignored option.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::views::{
    BulkView, CatalogView, CategoryView, ErrorBody, ErrorEnvelope, InputError, InputResult, ItemView, JobCreatedView,
    JobErrorView, JobView, PageView,
};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use catalog_domain::catalog::{validate_catalog_name, MAX_CATALOG_NAME_LEN};
use catalog_domain::ids::{is_safe_char, MAX_ID_LEN};
use catalog_domain::time::parse_rfc3339;
use catalog_domain::{Dialect, ErrorCode, JobKind, JobStatus, RawId};
use catalog_store::{BulkOutcome, CategoryInput, ItemInput, JobFilter, JobId, JobOptions, JobPaging, ProjectId};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::marker::PhantomData;
use std::sync::OnceLock;
use std::time::Duration;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, KnownFormat, Object, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat,
    SchemaType, Type,
};
use utoipa::openapi::{Ref, RefOr, Required};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Longest a `GET /v1/jobs/{id}?wait=` may hold the request, in seconds.
pub const MAX_WAIT_SECS: u64 = 60;
/// Rows per page when `limit` is not given.
pub const DEFAULT_PAGE_LIMIT: u32 = 100;
/// Largest `limit` a listing accepts.
pub const MAX_PAGE_LIMIT: u32 = 1_000;
/// Longest `Idempotency-Key`, in characters (after trimming).
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// The routes that need an API key (the guard is layered on by the caller), each registered
/// with its OpenAPI operation by `routes!`, so the served routes and the documented ones are one
/// list. One `routes!` per path: utoipa-axum routes every handler of a call on every path of it.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(NativeApiDoc::openapi())
        .routes(routes!(create_catalog, list_catalogs))
        .routes(routes!(get_catalog, delete_catalog))
        .routes(routes!(list_items))
        .routes(routes!(get_item))
        .routes(routes!(bulk_delete_items))
        .routes(routes!(bulk_upsert_items))
        .routes(routes!(bulk_patch_items))
        .routes(routes!(list_categories))
        .routes(routes!(bulk_update_categories))
        .routes(routes!(bulk_upsert_categories))
        .routes(routes!(bulk_delete_categories))
        .routes(routes!(list_jobs))
        .routes(routes!(get_job))
        .routes(routes!(list_job_errors))
        .routes(routes!(cancel_job))
        .merge(crate::events::routes())
        .merge(crate::webhooks::routes())
}

// ---------------------------------------------------------------------------------------------
// The contract: request schemas whose constraints come from catalog-domain's rules.
//
// A bulk request's inputs are judged one by one (a bad one is a `rejected` result, the others
// still make a job), so an element's schema is only the shape the request as a whole needs; the
// per-input rules are a `contains` (at least one input must pass them, or the request is 400
// `no_valid_items`), and under `atomic: true` they apply to every input (`if`/`then`). utoipa
// has no field for those keywords: they ride in the schema's flattened extensions.

/// `[` + the characters [`is_safe_char`] allows + `]`, computed from the rule itself (it is
/// ASCII-only) so the documented pattern cannot drift from it.
fn safe_char_class() -> String {
    let mut class = String::from("[");
    let mut run: Option<(u8, u8)> = None;
    for byte in 0u8..=0x7f {
        if is_safe_char(char::from(byte)) {
            run = Some(run.map_or((byte, byte), |(start, _)| (start, byte)));
        } else if let Some((start, end)) = run.take() {
            push_class_range(&mut class, start, end);
        }
    }
    if let Some((start, end)) = run {
        push_class_range(&mut class, start, end);
    }
    class.push(']');
    class
}

fn push_class_range(class: &mut String, start: u8, end: u8) {
    // `-` is escaped: bare inside a class it would read as a range.
    let char_of = |byte: u8| if byte == b'-' { "\\-".to_owned() } else { char::from(byte).to_string() };
    class.push_str(&char_of(start));
    if end > start {
        if end > start + 1 {
            class.push('-');
        }
        class.push_str(&char_of(end));
    }
}

/// The pattern of a catalog name or native id: safe characters, 1 to `max` of them.
pub fn safe_name_pattern(max: usize) -> String {
    format!("^{}{{1,{max}}}$", safe_char_class())
}

/// Any text without a NUL (U+0000), which no backend can store in every place.
pub const NO_NUL_PATTERN: &str = "^[^\\u0000]*$";

pub(crate) fn string_schema() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn nullable(schema: impl Into<RefOr<Schema>>) -> Schema {
    OneOfBuilder::new().item(schema).item(ObjectBuilder::new().schema_type(Type::Null)).build().into()
}

fn reference<T: ToSchema>() -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(T::name()))
}

fn schema_to_value(schema: impl Into<RefOr<Schema>>) -> Value {
    serde_json::to_value(schema.into()).unwrap_or(Value::Null)
}

fn extensions(pairs: impl IntoIterator<Item = (&'static str, Value)>) -> Option<Extensions> {
    let mut extensions = Extensions::default();
    extensions.extend(pairs.into_iter().map(|(key, value)| (key.to_owned(), value)));
    Some(extensions)
}

/// Declares a documentation-only schema component: a marker type whose [`ToSchema`] is written by
/// hand, so that its constraints can be computed from catalog-domain's constants (utoipa's
/// attributes take literals only).
macro_rules! component {
    ($(#[$doc:meta])* $name:ident, [$($dep:ty),*], $body:block) => {
        $(#[$doc])*
        pub struct $name;

        hand_written_schema!($name, [$($dep),*], $body);
    };
}

/// Implements [`ToSchema`] for `$name` from a block building its schema, registering the
/// components it refers to.
macro_rules! hand_written_schema {
    ($name:ident, [$($dep:ty),*], $body:block) => {
        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                $body
            }
        }

        impl ToSchema for $name {
            #[allow(unused_variables)]
            fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
                $(
                    schemas.push((<$dep as ToSchema>::name().into_owned(), <$dep as utoipa::PartialSchema>::schema()));
                    <$dep as ToSchema>::schemas(schemas);
                )*
            }
        }
    };
}

component!(
    /// A native item or category id: `[A-Za-z0-9_-]{1,250}`.
    NativeId, [], {
        let max = Dialect::Native.limits().max_id_len.unwrap_or(MAX_ID_LEN);
        string_schema()
            .min_length(Some(1))
            .max_length(Some(max))
            .pattern(Some(safe_name_pattern(max)))
            .description(Some("A native id: letters, digits, `-` and `_`."))
            .into()
    }
);

component!(
    /// A catalog name: `[A-Za-z0-9_-]{1,250}`, the same in every dialect.
    CatalogName, [], {
        string_schema()
            .min_length(Some(1))
            .max_length(Some(MAX_CATALOG_NAME_LEN))
            .pattern(Some(safe_name_pattern(MAX_CATALOG_NAME_LEN)))
            .description(Some("A catalog name: letters, digits, `-` and `_`, unique in the project."))
            .into()
    }
);

component!(
    /// Free text a job or catalog carries: anything but NUL.
    FreeText, [], {
        string_schema().pattern(Some(NO_NUL_PATTERN)).description(Some("Free text without NUL (U+0000).")).into()
    }
);

component!(
    /// A value in an item's fields: any JSON with no NUL in any string or key, at any depth.
    FieldValue, [], {
        let no_nul = || string_schema().pattern(Some(NO_NUL_PATTERN));
        let value = reference::<FieldValue>();
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::Null))
            .item(ObjectBuilder::new().schema_type(Type::Boolean))
            .item(ObjectBuilder::new().schema_type(Type::Number))
            .item(no_nul())
            .item(ArrayBuilder::new().items(value.clone()))
            .item(
                ObjectBuilder::new()
                    .property_names(Some(no_nul()))
                    .additional_properties(Some(AdditionalProperties::RefOr(value))),
            )
            .description(Some("Any JSON value without NUL (U+0000) in a string or key, at any depth."))
            .into()
    }
);

/// An item's fields: an object of [`FieldValue`]s.
fn fields_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .property_names(Some(string_schema().pattern(Some(NO_NUL_PATTERN))))
        .additional_properties(Some(AdditionalProperties::RefOr(reference::<FieldValue>())))
}

component!(
    /// One item an upsert or patch accepts.
    ItemInputSchema, [NativeId, FieldValue], {
        ObjectBuilder::new()
            .property("id", reference::<NativeId>())
            .required("id")
            .property(
                "fields",
                fields_schema().description(Some("The fields (upsert: all of them; patch: those to change).")),
            )
            .required("fields")
            .description(Some("An item that is accepted: its id is valid and unique in the request."))
            .into()
    }
);

component!(
    /// One entry of `items`, as the request as a whole needs it: an object, with `fields` an
    /// object. Everything else is checked entry by entry.
    ItemEntry, [], {
        ObjectBuilder::new()
            .property("id", ObjectBuilder::new().schema_type(SchemaType::AnyValue).description(Some(
                "Checked on its own: a missing, non-string or invalid id rejects this entry only (see `results`).",
            )))
            .property("fields", ObjectBuilder::new().description(Some("The fields; required (a request with an entry without them is refused whole).")))
            .required("fields")
            .description(Some(
                "One entry, checked on its own: an entry that breaks the rules of `ItemInputSchema` is answered \
                 `rejected` in `results` and left out of the job.",
            ))
            .into()
    }
);

component!(
    /// One category a category request accepts.
    CategoryInputSchema, [NativeId, FreeText], {
        ObjectBuilder::new()
            .property("id", reference::<NativeId>())
            .required("id")
            .property("external_id", nullable(reference::<FreeText>()))
            .property("name", nullable(reference::<FreeText>()))
            .property(
                "item_ids",
                nullable(
                    ArrayBuilder::new()
                        .items(reference::<NativeId>())
                        .description(Some("Replaces the category's item set when present.")),
                ),
            )
            .description(Some("A category that is accepted: its id and every item id in it are valid."))
            .into()
    }
);

component!(
    /// One entry of `categories`, as the request as a whole needs it.
    CategoryEntry, [], {
        let text = || nullable(string_schema());
        ObjectBuilder::new()
            .property("id", ObjectBuilder::new().schema_type(SchemaType::AnyValue).description(Some(
                "Checked on its own: a missing, non-string or invalid id rejects this entry only (see `results`).",
            )))
            .property("external_id", text())
            .property("name", text())
            .property("item_ids", nullable(ArrayBuilder::new().items(string_schema())))
            .description(Some(
                "One entry, checked on its own: an entry that breaks the rules of `CategoryInputSchema` is answered \
                 `rejected` in `results` and left out of the job.",
            ))
            .into()
    }
);

/// The schema of a job-creating body: `inputs` (1 to the native limit of entries, each `entry`,
/// at least one `valid`), the job fields, and `atomic`, under which every entry must be `valid`.
fn job_body_schema(
    description: &str,
    inputs: &'static str,
    entry: RefOr<Schema>,
    valid: RefOr<Schema>,
    unique: bool,
) -> RefOr<Schema> {
    let max = Dialect::Native.limits().max_items_per_request;
    let array = |items: RefOr<Schema>| ArrayBuilder::new().items(items).min_items(Some(1)).max_items(Some(max));
    let inputs_schema = array(entry)
        .description(Some(format!(
            "1 to {max} entries, each judged on its own (see `results` in the answer); at least one must be valid, \
             or the request is refused with `no_valid_items`."
        )))
        .extensions(extensions([("contains", schema_to_value(valid.clone()))]));
    let atomic_inputs = array(valid).unique_items(unique);
    let atomic_then = ObjectBuilder::new().property(inputs, atomic_inputs);
    let atomic_if = ObjectBuilder::new()
        .property("atomic", ObjectBuilder::new().schema_type(Type::Boolean).enum_values(Some([true])))
        .required("atomic");
    ObjectBuilder::new()
        .description(Some(description))
        .property(inputs, inputs_schema)
        .required(inputs)
        .property(
            "start_at",
            nullable(
                string_schema()
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                    .description(Some("RFC 3339; a future time makes the job `scheduled` until then.")),
            ),
        )
        .property("description", nullable(reference::<FreeText>()))
        .property("reference_id", nullable(reference::<FreeText>()))
        .property(
            "atomic",
            ObjectBuilder::new().schema_type(Type::Boolean).description(Some(
                "Refuse the whole request (400, nothing created) unless every input is valid (and, for ids, unique).",
            )),
        )
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .extensions(extensions([("if", schema_to_value(atomic_if)), ("then", schema_to_value(atomic_then))]))
        .into()
}

fn bulk_response(outcome: &BulkOutcome) -> Response {
    // A replayed idempotent request created nothing new: 200, not 202.
    let status = if outcome.replayed { StatusCode::OK } else { StatusCode::ACCEPTED };
    (status, Json(BulkView::from(outcome))).into_response()
}

// ---------------------------------------------------------------------------------------------
// Parsing

fn parse_time(field: &str, text: &str) -> Result<i64, ApiError> {
    parse_rfc3339(text).map_err(|e| ApiError::new(ErrorCode::InvalidRequest, format!("`{field}`: {e}")))
}

fn raw_id(value: Option<&Value>) -> RawId {
    match value {
        None => RawId::Missing,
        Some(Value::String(id)) => RawId::String(id.clone()),
        Some(_) => RawId::NotAString,
    }
}

/// What every job-creating body may carry besides its inputs.
#[derive(Debug, Default)]
struct JobFields {
    start_at: Option<String>,
    description: Option<String>,
    reference_id: Option<String>,
    atomic: bool,
}

impl JobFields {
    fn options(self, idempotency_header: Option<&HeaderValue>) -> Result<JobOptions, ApiError> {
        let idempotency_key = match idempotency_header {
            None => None,
            Some(value) => {
                let key =
                    value.to_str().ok().map(str::trim).filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY_LEN);
                Some(
                    key.ok_or_else(|| {
                        ApiError::new(
                            ErrorCode::InvalidRequest,
                            "Idempotency-Key must be 1 to 255 visible ASCII characters",
                        )
                    })?
                    .to_owned(),
                )
            }
        };
        for (field, text) in [("description", &self.description), ("reference_id", &self.reference_id)] {
            if let Some(Err(problem)) = text.as_deref().map(|text| catalog_domain::storable::check_text(field, text)) {
                return Err(ApiError::new(problem.code(), problem.to_string())
                    .with_details(json!({"pointer": format!("/{field}")})));
            }
        }
        Ok(JobOptions {
            start_at: self.start_at.as_deref().map(|t| parse_time("start_at", t)).transpose()?,
            description: self.description,
            reference_id: self.reference_id,
            idempotency_key,
            atomic: self.atomic,
            requested_by: None,
            in_progress_cap: false,
        })
    }
}

/// `POST /v1/catalogs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateCatalogBody {
    name: String,
    description: Option<String>,
}

hand_written_schema!(CreateCatalogBody, [CatalogName, FreeText], {
    ObjectBuilder::new()
        .description(Some("`POST /v1/catalogs`."))
        .property("name", reference::<CatalogName>())
        .required("name")
        .property("description", nullable(reference::<FreeText>()))
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .into()
});

/// Declares a job-creating body: its inputs plus the [`JobFields`]. Written out per body rather
/// than with `#[serde(flatten)]`, which serde cannot combine with `deny_unknown_fields`.
macro_rules! job_body {
    ($(#[$doc:meta])* $name:ident { $inputs:ident }) => {
        $(#[$doc])*
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $name {
            /// The inputs, parsed one by one by the route.
            $inputs: Vec<Value>,
            /// RFC 3339; a future time makes the job `scheduled` until then.
            start_at: Option<String>,
            /// Free text shown on the job.
            description: Option<String>,
            /// The caller's own reference, shown on the job.
            reference_id: Option<String>,
            /// Refuse the whole request (400, nothing created) when any input is invalid.
            #[serde(default)]
            atomic: bool,
        }

        impl JobBody for $name {
            fn split(self) -> (Vec<Value>, JobFields) {
                let job = JobFields {
                    start_at: self.start_at,
                    description: self.description,
                    reference_id: self.reference_id,
                    atomic: self.atomic,
                };
                (self.$inputs, job)
            }
        }
    };
}

job_body!(
    /// Ids to delete.
    IdsBody { ids }
);
hand_written_schema!(IdsBody, [NativeId, FreeText], {
    let any = ObjectBuilder::new().schema_type(SchemaType::AnyValue).description(Some(
        "An id, checked on its own: a non-string, invalid or repeated id is answered `rejected` in `results`.",
    ));
    job_body_schema("Ids to delete.", "ids", any.into(), reference::<NativeId>(), true)
});
job_body!(
    /// Items to upsert or patch: `{"id": "...", "fields": {...}}`.
    ItemsBody { items }
);
hand_written_schema!(ItemsBody, [ItemEntry, ItemInputSchema, FreeText], {
    job_body_schema(
        "Items to upsert or patch: `{\"id\": \"...\", \"fields\": {...}}`.",
        "items",
        reference::<ItemEntry>(),
        reference::<ItemInputSchema>(),
        false,
    )
});
job_body!(
    /// Categories: `{"id", "external_id"?, "name"?, "item_ids"?}`.
    CategoriesBody { categories }
);
hand_written_schema!(CategoriesBody, [CategoryEntry, CategoryInputSchema, FreeText], {
    job_body_schema(
        "Categories: `{\"id\", \"external_id\"?, \"name\"?, \"item_ids\"?}`.",
        "categories",
        reference::<CategoryEntry>(),
        reference::<CategoryInputSchema>(),
        false,
    )
});

/// A job-creating body: its inputs, and the fields every such body may carry.
trait JobBody: DeserializeOwned {
    fn split(self) -> (Vec<Value>, JobFields);
}

/// Everything a bulk route needs from its request: the caller's project, the catalog in the path,
/// the raw inputs, and the job options (body fields plus the `Idempotency-Key` header).
struct Bulk {
    project: ProjectId,
    catalog: String,
    inputs: Vec<Value>,
    options: JobOptions,
}

/// Extracts a [`Bulk`] from a request with a `B` body.
struct BulkRequest<B>(Bulk, PhantomData<B>);

impl<B: JobBody, S: Send + Sync> FromRequest<S> for BulkRequest<B>
where
    AppState: axum::extract::FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let (mut parts, body) = request.into_parts();
        let Caller(caller) = Caller::from_request_parts(&mut parts, state).await?;
        let ApiPath(catalog) = ApiPath::<String>::from_request_parts(&mut parts, state).await?;
        let idempotency_header = parts.headers.get("idempotency-key").cloned();
        let ApiJson(body) = ApiJson::<B>::from_request(axum::extract::Request::from_parts(parts, body), state).await?;
        let (inputs, fields) = body.split();
        let mut options = fields.options(idempotency_header.as_ref())?;
        // The key may have been authenticated from the cache: the insert re-checks it.
        options.requested_by = Some(caller.key_id);
        Ok(BulkRequest(Bulk { project: caller.project_id, catalog, inputs, options }, PhantomData))
    }
}

/// The ids of a request, taken out of the parsed body rather than copied.
fn raw_ids(inputs: Vec<Value>) -> Vec<RawId> {
    inputs
        .into_iter()
        .map(|id| match id {
            Value::String(id) => RawId::String(id),
            _ => RawId::NotAString,
        })
        .collect()
}

/// `limit`: 1 to [`MAX_PAGE_LIMIT`], default [`DEFAULT_PAGE_LIMIT`].
pub(crate) fn limit_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(MAX_PAGE_LIMIT))
        .default(Some(json!(DEFAULT_PAGE_LIMIT)))
        .build()
}

/// A listing's cursor: its tag, then the hex of the position. A text position (a name or an id)
/// is documented as ASCII bytes, which is all a real one holds; an integer one is 8 bytes.
pub(crate) fn cursor_schema<const TAG: char, const TEXT: bool>() -> Object {
    let body = if TEXT { "([2-7][0-9a-fA-F])+" } else { "[0-9a-fA-F]{16}" };
    string_schema().pattern(Some(format!("^{TAG}{body}$"))).build()
}

/// Declares the keyset paging query of one listing, whose cursors carry `$tag`.
macro_rules! page_query {
    ($(#[$doc:meta])* $name:ident, $tag:literal, $text:literal) => {
        $(#[$doc])*
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $name {
            /// Rows per page.
            limit: Option<u32>,
            /// The previous page's `next_cursor`, as given.
            cursor: Option<String>,
        }

        impl IntoParams for $name {
            fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
                vec![
                    query_param("limit", "Rows per page.", limit_schema()),
                    query_param("cursor", "The previous page's `next_cursor`, as given.", cursor_schema::<$tag, $text>()),
                ]
            }
        }
    };
}

/// An optional query parameter.
pub(crate) fn query_param(name: &str, description: &str, schema: impl Into<RefOr<Schema>>) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

/// A path parameter.
pub(crate) fn path_param(name: &str, description: &str, schema: impl Into<RefOr<Schema>>) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

page_query!(
    /// Paging of `GET /v1/catalogs`.
    CatalogsPage, 'n', true
);
page_query!(
    /// Paging of `GET /v1/catalogs/{catalog}/items`.
    ItemsPage, 'i', true
);
page_query!(
    /// Paging of `GET /v1/catalogs/{catalog}/categories`.
    CategoriesPage, 'c', true
);
page_query!(
    /// Paging of `GET /v1/jobs/{id}/errors`.
    ErrorsPage, 'e', false
);

pub(crate) fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit.unwrap_or(DEFAULT_PAGE_LIMIT) {
        limit @ 1..=MAX_PAGE_LIMIT => Ok(limit),
        other => {
            Err(ApiError::new(ErrorCode::InvalidQuery, format!("limit must be 1 to {MAX_PAGE_LIMIT}, not {other}")))
        }
    }
}

fn object_field<'v>(value: &'v Value, index: usize, field: &str) -> Result<Option<&'v Value>, ApiError> {
    match value {
        Value::Object(map) => Ok(map.get(field)),
        _ => Err(ApiError::new(ErrorCode::InvalidJson, format!("entry {index} must be a JSON object"))
            .with_details(json!({"pointer": format!("/{index}")}))),
    }
}

fn item_inputs(items: Vec<Value>, collection: &str) -> Result<Vec<ItemInput>, ApiError> {
    // Takes the parsed values apart rather than cloning them: a 10 MB body is held once, not twice.
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let Value::Object(mut item) = item else {
                return Err(ApiError::new(ErrorCode::InvalidJson, format!("entry {index} must be a JSON object"))
                    .with_details(json!({"pointer": format!("/{collection}/{index}")})));
            };
            let id = raw_id(item.get("id"));
            let fields = match item.remove("fields") {
                // A flat item (`{"id": "x", "title": "Boot"}`) would otherwise be stored with no
                // fields at all, its members silently dropped.
                None => {
                    return Err(ApiError::new(
                        ErrorCode::InvalidJson,
                        format!(
                            "{collection}[{index}] has no `fields`: an item's fields go under it, as in \
                             {{\"id\": \"sku-1\", \"fields\": {{\"title\": \"Boot\"}}}}"
                        ),
                    )
                    .with_details(json!({"pointer": format!("/{collection}/{index}/fields")})))
                }
                Some(Value::Object(fields)) => fields,
                Some(_) => {
                    return Err(ApiError::new(
                        ErrorCode::InvalidJson,
                        format!("{collection}[{index}].fields must be an object"),
                    )
                    .with_details(json!({"pointer": format!("/{collection}/{index}/fields")})))
                }
            };
            Ok(ItemInput { id, fields })
        })
        .collect()
}

fn optional_string(value: Option<&Value>, pointer: String) -> Result<Option<String>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(ApiError::new(ErrorCode::InvalidJson, format!("{pointer} must be a string"))
            .with_details(json!({"pointer": pointer}))),
    }
}

fn category_inputs(categories: Vec<Value>) -> Result<Vec<CategoryInput>, ApiError> {
    categories
        .iter()
        .enumerate()
        .map(|(index, category)| {
            let item_ids = match object_field(category, index, "item_ids")? {
                None | Some(Value::Null) => None,
                Some(Value::Array(ids)) => {
                    Some(ids.iter().map(|id| id.as_str().map(str::to_owned)).collect::<Option<Vec<_>>>().ok_or_else(
                        || {
                            ApiError::new(
                                ErrorCode::InvalidJson,
                                format!("categories[{index}].item_ids must hold strings"),
                            )
                        },
                    )?)
                }
                Some(_) => {
                    return Err(ApiError::new(
                        ErrorCode::InvalidJson,
                        format!("categories[{index}].item_ids must be an array"),
                    ))
                }
            };
            Ok(CategoryInput {
                id: raw_id(object_field(category, index, "id")?),
                external_id: optional_string(category.get("external_id"), format!("/categories/{index}/external_id"))?,
                name: optional_string(category.get("name"), format!("/categories/{index}/name"))?,
                item_ids,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Catalogs

#[utoipa::path(post, path = "/v1/catalogs", tag = "catalogs", request_body = CreateCatalogBody, responses(GuardErrors, (status = 201, description = "Created", body = CatalogView), BodyErrors, (status = 409, description = "`catalog_already_exists`: the name is taken", body = ErrorEnvelope), WriteErrors), security(("bearer" = [])))]
async fn create_catalog(
    state: axum::extract::State<AppState>,
    Caller(caller): Caller,
    ApiJson(body): ApiJson<CreateCatalogBody>,
) -> Result<Response, ApiError> {
    let catalog = state.store.create_catalog(caller.project_id, &body.name, body.description.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(CatalogView::from(&catalog))).into_response())
}

#[utoipa::path(get, path = "/v1/catalogs", tag = "catalogs", params(CatalogsPage), responses(GuardErrors, (status = 200, description = "A page of catalogs", body = PageView<CatalogView>), QueryErrors), security(("bearer" = [])))]
async fn list_catalogs(
    state: axum::extract::State<AppState>,
    Caller(caller): Caller,
    ApiQuery(query): ApiQuery<CatalogsPage>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = page_limit(query.limit)?;
    let page = state.store.list_catalogs(caller.project_id, query.cursor.as_deref(), limit).await?;
    Ok(Json(PageView::<CatalogView>::of(&page)))
}

#[utoipa::path(get, path = "/v1/catalogs/{catalog}", tag = "catalogs", params(CatalogPath), responses(GuardErrors, (status = 200, description = "The catalog", body = CatalogView), CatalogNotFound), security(("bearer" = [])))]
async fn get_catalog(
    state: axum::extract::State<AppState>,
    Caller(caller): Caller,
    ApiPath(catalog): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(CatalogView::from(&state.store.get_catalog(caller.project_id, &catalog).await?)))
}

#[utoipa::path(delete, path = "/v1/catalogs/{catalog}", tag = "catalogs", params(CatalogPath), responses(GuardErrors, (status = 202, description = "The job that deletes the catalog", body = JobCreatedView), CatalogNotFound, WriteErrors), security(("bearer" = [])))]
async fn delete_catalog(
    state: axum::extract::State<AppState>,
    Caller(caller): Caller,
    ApiPath(catalog): ApiPath<String>,
) -> Result<Response, ApiError> {
    let job = state.store.delete_catalog(caller.project_id, &catalog).await?;
    Ok((StatusCode::ACCEPTED, Json(JobCreatedView { job: JobView::from(&job) })).into_response())
}

// ---------------------------------------------------------------------------------------------
// Items and categories

#[utoipa::path(get, path = "/v1/catalogs/{catalog}/items", tag = "items", params(CatalogPath, ItemsPage), responses(GuardErrors, (status = 200, description = "A page of items", body = PageView<ItemView>), QueryErrors, CatalogNotFound), security(("bearer" = [])))]
async fn list_items(
    state: axum::extract::State<AppState>,
    Caller(caller): Caller,
    ApiPath(catalog): ApiPath<String>,
    ApiQuery(query): ApiQuery<ItemsPage>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = page_limit(query.limit)?;
    let page = state.store.list_items(caller.project_id, &catalog, query.cursor.as_deref(), limit).await?;
    Ok(Json(PageView::<ItemView>::of(&page)))
}

#[utoipa::path(get, path = "/v1/catalogs/{catalog}/items/{id}", tag = "items", params(ItemPath), responses(GuardErrors, (status = 200, description = "The item", body = ItemView), (status = 404, description = "`catalog_not_found` or `item_not_found`", body = ErrorEnvelope)), security(("bearer" = [])))]
async fn get_item(
    state: axum::extract::State<AppState>,
    Caller(caller): Caller,
    ApiPath((catalog, id)): ApiPath<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(ItemView::from(&state.store.get_item(caller.project_id, &catalog, &id).await?)))
}

#[utoipa::path(get, path = "/v1/catalogs/{catalog}/categories", tag = "categories", params(CatalogPath, CategoriesPage), responses(GuardErrors, (status = 200, description = "A page of categories", body = PageView<CategoryView>), QueryErrors, CatalogNotFound), security(("bearer" = [])))]
async fn list_categories(
    state: axum::extract::State<AppState>,
    Caller(caller): Caller,
    ApiPath(catalog): ApiPath<String>,
    ApiQuery(query): ApiQuery<CategoriesPage>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = page_limit(query.limit)?;
    let page = state.store.list_categories(caller.project_id, &catalog, query.cursor.as_deref(), limit).await?;
    Ok(Json(PageView::<CategoryView>::of(&page)))
}

#[utoipa::path(post, path = "/v1/catalogs/{catalog}/items/bulk-delete", tag = "items", params(CatalogPath, IdempotencyHeader), request_body = IdsBody, responses(GuardErrors, BulkResponses, BodyErrors, CatalogNotFound, (status = 409, description = "`idempotency_key_reused`: the Idempotency-Key was used with another request", body = ErrorEnvelope), WriteErrors), security(("bearer" = [])))]
async fn bulk_delete_items(
    state: axum::extract::State<AppState>,
    BulkRequest(bulk, _): BulkRequest<IdsBody>,
) -> Result<Response, ApiError> {
    let Bulk { project, catalog, inputs, options } = bulk;
    let outcome = state.store.bulk_delete_items(project, &catalog, Dialect::Native, raw_ids(inputs), &options).await?;
    Ok(bulk_response(&outcome))
}

#[utoipa::path(post, path = "/v1/catalogs/{catalog}/items/bulk-upsert", tag = "items", params(CatalogPath, IdempotencyHeader), request_body = ItemsBody, responses(GuardErrors, BulkResponses, BodyErrors, CatalogNotFound, (status = 409, description = "`idempotency_key_reused`: the Idempotency-Key was used with another request", body = ErrorEnvelope), WriteErrors), security(("bearer" = [])))]
async fn bulk_upsert_items(
    state: axum::extract::State<AppState>,
    BulkRequest(bulk, _): BulkRequest<ItemsBody>,
) -> Result<Response, ApiError> {
    let Bulk { project, catalog, inputs, options } = bulk;
    let outcome = state
        .store
        .bulk_upsert_items(project, &catalog, Dialect::Native, item_inputs(inputs, "items")?, &options)
        .await?;
    Ok(bulk_response(&outcome))
}

#[utoipa::path(post, path = "/v1/catalogs/{catalog}/items/bulk-patch", tag = "items", params(CatalogPath, IdempotencyHeader), request_body = ItemsBody, responses(GuardErrors, BulkResponses, BodyErrors, CatalogNotFound, (status = 409, description = "`idempotency_key_reused`: the Idempotency-Key was used with another request", body = ErrorEnvelope), WriteErrors), security(("bearer" = [])))]
async fn bulk_patch_items(
    state: axum::extract::State<AppState>,
    BulkRequest(bulk, _): BulkRequest<ItemsBody>,
) -> Result<Response, ApiError> {
    let Bulk { project, catalog, inputs, options } = bulk;
    let outcome = state
        .store
        .bulk_patch_items(project, &catalog, Dialect::Native, item_inputs(inputs, "items")?, false, &options)
        .await?;
    Ok(bulk_response(&outcome))
}

#[utoipa::path(post, path = "/v1/catalogs/{catalog}/categories/bulk-update", tag = "categories", params(CatalogPath, IdempotencyHeader), request_body = CategoriesBody, responses(GuardErrors, BulkResponses, BodyErrors, CatalogNotFound, (status = 409, description = "`idempotency_key_reused`: the Idempotency-Key was used with another request", body = ErrorEnvelope), WriteErrors), security(("bearer" = [])))]
async fn bulk_update_categories(
    state: axum::extract::State<AppState>,
    BulkRequest(bulk, _): BulkRequest<CategoriesBody>,
) -> Result<Response, ApiError> {
    let Bulk { project, catalog, inputs, options } = bulk;
    let outcome = state
        .store
        .bulk_update_categories(project, &catalog, Dialect::Native, category_inputs(inputs)?, &options)
        .await?;
    Ok(bulk_response(&outcome))
}

#[utoipa::path(post, path = "/v1/catalogs/{catalog}/categories/bulk-upsert", tag = "categories", params(CatalogPath, IdempotencyHeader), request_body = CategoriesBody, responses(GuardErrors, BulkResponses, BodyErrors, CatalogNotFound, (status = 409, description = "`idempotency_key_reused`: the Idempotency-Key was used with another request", body = ErrorEnvelope), WriteErrors), security(("bearer" = [])))]
async fn bulk_upsert_categories(
    state: axum::extract::State<AppState>,
    BulkRequest(bulk, _): BulkRequest<CategoriesBody>,
) -> Result<Response, ApiError> {
    let Bulk { project, catalog, inputs, options } = bulk;
    let outcome = state
        .store
        .bulk_upsert_categories(project, &catalog, Dialect::Native, category_inputs(inputs)?, &options)
        .await?;
    Ok(bulk_response(&outcome))
}

#[utoipa::path(post, path = "/v1/catalogs/{catalog}/categories/bulk-delete", tag = "categories", params(CatalogPath, IdempotencyHeader), request_body = IdsBody, responses(GuardErrors, BulkResponses, BodyErrors, CatalogNotFound, (status = 409, description = "`idempotency_key_reused`: the Idempotency-Key was used with another request", body = ErrorEnvelope), WriteErrors), security(("bearer" = [])))]
async fn bulk_delete_categories(
    state: axum::extract::State<AppState>,
    BulkRequest(bulk, _): BulkRequest<IdsBody>,
) -> Result<Response, ApiError> {
    let Bulk { project, catalog, inputs, options } = bulk;
    let outcome =
        state.store.bulk_delete_categories(project, &catalog, Dialect::Native, raw_ids(inputs), &options).await?;
    Ok(bulk_response(&outcome))
}

// ---------------------------------------------------------------------------------------------
// Jobs

/// Filters and paging of `GET /v1/jobs`. `status` and `kind` take comma-separated lists; times are
/// RFC 3339.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobsQuery {
    /// Comma-separated statuses.
    status: Option<String>,
    /// Comma-separated kinds.
    kind: Option<String>,
    /// Only jobs of this catalog.
    catalog: Option<String>,
    /// Created at or after this time.
    created_after: Option<String>,
    /// Created before this time.
    created_before: Option<String>,
    /// Rows per page.
    limit: Option<u32>,
    /// The previous page's `next_cursor`, as given.
    cursor: Option<String>,
}

/// A comma-separated list of `words` (empty entries ignored), as [`word_list`] parses it.
impl IntoParams for JobsQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            query_param("status", "Comma-separated statuses.", status_list_schema()),
            query_param("kind", "Comma-separated kinds.", kind_list_schema()),
            query_param("catalog", "Only jobs of this catalog.", catalog_name_schema()),
            query_param("created_after", "Created at or after this time (RFC 3339).", date_time_schema()),
            query_param("created_before", "Created before this time (RFC 3339).", date_time_schema()),
            query_param("limit", "Rows per page.", limit_schema()),
            query_param("cursor", "The previous page's `next_cursor`, as given.", cursor_schema::<'j', false>()),
        ]
    }
}

pub(crate) fn word_list_schema(words: &[&str]) -> Object {
    let alternatives = words.join("|");
    string_schema().pattern(Some(format!("^,*(({alternatives})(,+|$))*$"))).build()
}

pub(crate) fn status_list_schema() -> Object {
    word_list_schema(&JobStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>())
}

fn kind_list_schema() -> Object {
    word_list_schema(&JobKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>())
}

pub(crate) fn catalog_name_schema() -> RefOr<Schema> {
    <CatalogName as utoipa::PartialSchema>::schema()
}

fn native_id_schema() -> RefOr<Schema> {
    <NativeId as utoipa::PartialSchema>::schema()
}

pub(crate) fn date_time_schema() -> Object {
    string_schema().format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))).build()
}

/// Parses a comma-separated list of words (`status=queued,running`).
pub(crate) fn word_list<T: std::str::FromStr<Err = catalog_domain::job::UnknownWord>>(
    text: Option<&str>,
) -> Result<Vec<T>, ApiError> {
    text.map(|text| {
        text.split(',')
            .filter(|w| !w.is_empty())
            .map(|w| w.parse::<T>().map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.to_string())))
            .collect()
    })
    .unwrap_or_else(|| Ok(Vec::new()))
}

#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(JobsQuery), responses(GuardErrors, (status = 200, description = "A page of jobs", body = PageView<JobView>), QueryErrors), security(("bearer" = [])))]
async fn list_jobs(
    state: axum::extract::State<AppState>,
    Caller(caller): Caller,
    ApiQuery(query): ApiQuery<JobsQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let query_time = |field: &str, text: &Option<String>| {
        text.as_deref()
            .map(|t| parse_rfc3339(t).map_err(|e| ApiError::new(ErrorCode::InvalidQuery, format!("`{field}`: {e}"))))
            .transpose()
    };
    if let Some(name) = query.catalog.as_deref() {
        // The filter is refused as the schema refuses it, rather than matching nothing.
        validate_catalog_name(name).map_err(|e| ApiError::new(ErrorCode::InvalidQuery, format!("`catalog`: {e}")))?;
    }
    let filter = JobFilter {
        statuses: word_list::<JobStatus>(query.status.as_deref())?,
        kinds: word_list::<JobKind>(query.kind.as_deref())?,
        catalog: query.catalog.clone(),
        created_after: query_time("created_after", &query.created_after)?,
        created_before: query_time("created_before", &query.created_before)?,
    };
    let paging = JobPaging::Cursor { cursor: query.cursor.clone(), limit: page_limit(query.limit)? };
    let page = state.store.list_jobs(caller.project_id, &filter, &paging).await?;
    Ok(Json(PageView::<JobView>::of(&page)))
}

/// Long poll: hold the request until the job is finished or `wait` seconds (at most 60) pass.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitQuery {
    /// Seconds to wait for the job to finish.
    wait: Option<u64>,
}

impl IntoParams for WaitQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![query_param("wait", "Seconds to hold the request until the job is finished.", wait_schema())]
    }
}

/// `wait`: 0 to [`MAX_WAIT_SECS`].
fn wait_schema() -> Object {
    ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)).maximum(Some(MAX_WAIT_SECS)).build()
}

#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", params(JobPath, WaitQuery), responses(GuardErrors, (status = 200, description = "The job", body = JobView), QueryErrors, JobNotFound), security(("bearer" = [])))]
async fn get_job(
    state: axum::extract::State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<WaitQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let job = match query.wait {
        None | Some(0) => state.store.get_job(caller.project_id, JobId(id)).await?,
        Some(secs @ 1..=MAX_WAIT_SECS) => {
            state.store.wait_for_job(caller.project_id, JobId(id), Duration::from_secs(secs)).await?
        }
        Some(other) => {
            return Err(ApiError::new(
                ErrorCode::InvalidQuery,
                format!("wait must be 0 to {MAX_WAIT_SECS}, not {other}"),
            ))
        }
    };
    Ok(Json(JobView::from(&job)))
}

#[utoipa::path(get, path = "/v1/jobs/{id}/errors", tag = "jobs", params(JobPath, ErrorsPage), responses(GuardErrors, (status = 200, description = "A page of the job's per-input errors", body = PageView<JobErrorView>), QueryErrors, JobNotFound), security(("bearer" = [])))]
async fn list_job_errors(
    state: axum::extract::State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<ErrorsPage>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = page_limit(query.limit)?;
    let page = state.store.list_job_errors(caller.project_id, JobId(id), query.cursor.as_deref(), limit).await?;
    Ok(Json(PageView::<JobErrorView>::of(&page)))
}

#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs", params(JobPath), responses(GuardErrors, (status = 200, description = "The cancelled job", body = JobView), JobNotFound, (status = 409, description = "`job_not_cancellable`: the job has finished", body = ErrorEnvelope), WriteErrors), security(("bearer" = [])))]
async fn cancel_job(
    state: axum::extract::State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(JobView::from(&state.store.cancel_job(caller.project_id, JobId(id)).await?)))
}

/// The catalog in a route's path (documentation only: routes extract it themselves).
struct CatalogPath;

impl IntoParams for CatalogPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![path_param("catalog", "Catalog name.", catalog_name_schema())]
    }
}

/// An item's path (documentation only).
struct ItemPath;

impl IntoParams for ItemPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            path_param("catalog", "Catalog name.", catalog_name_schema()),
            path_param("id", "Item id.", native_id_schema()),
        ]
    }
}

/// A job's path (documentation only).
pub(crate) struct JobPath;

impl IntoParams for JobPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let id =
            ObjectBuilder::new().schema_type(Type::Integer).format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)));
        vec![path_param("id", "Job id.", id)]
    }
}

/// The `Idempotency-Key` header as [`JobFields::options`] reads it: visible ASCII, spaces and tabs,
/// of which 1 to 255 characters are left once the spaces and tabs around them are trimmed.
fn idempotency_key_schema() -> Object {
    let inner = MAX_IDEMPOTENCY_KEY_LEN.saturating_sub(2);
    string_schema().pattern(Some(format!("^[\\t ]*[!-~]([\\t -~]{{0,{inner}}}[!-~])?[\\t ]*$"))).build()
}

/// The header every job-creating route reads (documentation only).
struct IdempotencyHeader;

impl IntoParams for IdempotencyHeader {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![ParameterBuilder::new()
            .name("Idempotency-Key")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some("A retry with the same key and body returns the first job instead of a second one."))
            .schema(Some(idempotency_key_schema()))
            .build()]
    }
}

/// The successful answers of every bulk route (documentation only).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum BulkResponses {
    /// Accepted: the job, and one result per input.
    #[response(status = 202)]
    Accepted(BulkView),
    /// An idempotent replay: the first request's job.
    #[response(status = 200)]
    Replayed(BulkView),
}

/// The errors of the guard every `/v1` route sits behind, and of the store behind every route
/// (documentation only). Listed first in each route's `responses`: a route's own 400 (query,
/// body) replaces this one, and says the same of the header.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum GuardErrors {
    /// `invalid_request`: more than one `Authorization` header.
    #[response(status = 400)]
    RepeatedAuthorization(ErrorEnvelope),
    /// `unauthenticated`: no valid API key.
    #[response(status = 401)]
    Unauthenticated(ErrorEnvelope),
    /// `forbidden`: the key lacks the route's scope.
    #[response(status = 403)]
    Forbidden(ErrorEnvelope),
    /// `rate_limited` (see `Retry-After`), `too_many_jobs_in_progress`, or, on a request that creates
    /// a job, `queue_full`: the queue limits (see `Retry-After`).
    #[response(status = 429, headers(("Retry-After" = u64, description = "Seconds to wait before retrying")))]
    RateLimited(ErrorEnvelope),
    /// `internal`: a fault of the server, never caused by the request.
    #[response(status = 500)]
    Internal(ErrorEnvelope),
    /// `unavailable`: the database cannot be reached or is shutting down; retry after `Retry-After`.
    #[response(status = 503, headers(("Retry-After" = u64, description = "Seconds to wait before retrying")))]
    Unavailable(ErrorEnvelope),
}

/// The errors of a route with a query string (documentation only).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum QueryErrors {
    /// `invalid_query`: an unknown, malformed or out-of-range query parameter; or
    /// `invalid_request`: more than one `Authorization` header.
    #[response(status = 400)]
    InvalidQuery(ErrorEnvelope),
}

/// The errors of a route with a JSON body (documentation only).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum BodyErrors {
    /// The body breaks the schema (`invalid_json`, `invalid_request`, `invalid_catalog_name`,
    /// `too_many_items`), or no input is valid (`no_valid_items`, or any invalid one under
    /// `atomic`: `invalid_item_id`); or `invalid_request`: more than one `Authorization` header.
    #[response(status = 400)]
    Invalid(ErrorEnvelope),
    /// `payload_too_large`: the body is over the limit (10 MiB by default).
    #[response(status = 413)]
    PayloadTooLarge(ErrorEnvelope),
    /// `unsupported_media_type`: the body is not `application/json`.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorEnvelope),
}

/// The errors of a route that writes (documentation only).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum WriteErrors {
    /// `insufficient_storage`: the database has no room left; nothing was written.
    #[response(status = 507)]
    InsufficientStorage(ErrorEnvelope),
}

/// A route under a catalog (documentation only).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum CatalogNotFound {
    /// `catalog_not_found`: no catalog of that name in the caller's project.
    #[response(status = 404)]
    NotFound(ErrorEnvelope),
}

/// A route under a job (documentation only).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum JobNotFound {
    /// `job_not_found`: no job of that id in the caller's project.
    #[response(status = 404)]
    NotFound(ErrorEnvelope),
}

/// The native API's OpenAPI document, without its paths: [`routes()`] adds each with its route.
#[derive(OpenApi)]
#[openapi(
    info(title = "catalogd native API", description = "Catalogs whose bulk changes run as durable asynchronous jobs."),
    components(schemas(BulkView, InputResult, InputError, JobView, ErrorEnvelope, ErrorBody)),
    modifiers(&BearerAuth),
    tags(
        (name = "catalogs", description = "Catalogs of a project"),
        (name = "items", description = "Items, and their bulk jobs"),
        (name = "categories", description = "Categories, and their bulk jobs"),
        (name = "jobs", description = "List, inspect, wait for and cancel jobs"),
        (name = "events", description = "Live job events (Server-Sent Events)"),
        (name = "webhooks", description = "Signed webhooks of job events, and their deliveries"),
        (name = "service", description = "Health, readiness, metrics and this document; no key needed"),
    )
)]
pub struct NativeApiDoc;

/// Declares the `bearer` security scheme the paths refer to.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// The OpenAPI document of every documented route: the service routes and the native API, taken
/// from the routers that serve them.
pub fn openapi() -> utoipa::openapi::OpenApi {
    // The native document comes first: `merge` keeps the receiver's `info`.
    let mut doc = routes().merge(crate::app::service_routes()).into_openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// The OpenAPI document as pretty JSON, exactly as committed in `docs/openapi.json`; computed once.
/// It goes through a `serde_json::Value`, whose maps are sorted, because the keywords utoipa
/// carries as extensions sit in a `HashMap`, whose order changes from process to process.
pub fn openapi_json() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        let mut text = serde_json::to_value(openapi())
            .and_then(|doc| serde_json::to_string_pretty(&doc))
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        text.push('\n');
        text
    })
}
