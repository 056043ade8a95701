//! The synchronous reads of Klaviyo's catalog: `GET /api/catalog-items[/{id}]` and
//! `GET /api/catalog-categories[/{id}]` (Klaviyo's `get_catalog_items`, `get_catalog_item`,
//! `get_catalog_categories`, `get_catalog_category`), so that every link the facade renders
//! resolves. Items and categories are those of the Klaviyo catalog, in id order, 100 a page; a
//! catalog not created yet reads as empty. Only `fields[...]` and (on lists) `page[cursor]` are
//! served; Klaviyo's `filter`, `sort`, `page[size]` and `include=variants` are refused as unknown
//! parameters (docs/compat/klaviyo.md).

use super::access::{guarded, method_not_allowed};
use super::error::KlaviyoError;
use super::params::{cursor, field_list};
use super::render::{base_url, category_resource, encode_component, item_resource};
use super::wire::{CATEGORIES_PATH, CATEGORY_FIELDS, CATEGORY_TYPE, ITEMS_PATH, ITEM_FIELDS, ITEM_TYPE, PAGE_SIZE};
use crate::state::AppState;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, MethodRouter};
use axum::Router;
use catalog_domain::klaviyo::CompoundId;
use catalog_store::{Page, StoreError};
use serde_json::{json, Value};

/// The two resources read here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resource {
    Item,
    Category,
}

impl Resource {
    fn path(self) -> &'static str {
        match self {
            Resource::Item => ITEMS_PATH,
            Resource::Category => CATEGORIES_PATH,
        }
    }

    fn type_name(self) -> &'static str {
        match self {
            Resource::Item => ITEM_TYPE,
            Resource::Category => CATEGORY_TYPE,
        }
    }

    fn fields(self) -> &'static [&'static str] {
        match self {
            Resource::Item => ITEM_FIELDS,
            Resource::Category => CATEGORY_FIELDS,
        }
    }
}

/// The four reads, each with and without a trailing slash.
pub fn routes() -> Router<AppState> {
    let mut router = Router::new();
    for resource in [Resource::Item, Resource::Category] {
        let collection = format!("/api/{}", resource.path());
        let member = format!("{collection}/{{id}}");
        let collection_routes = || -> MethodRouter<AppState> {
            get(move |State(state): State<AppState>, request: Request| list(state, resource, request))
                .fallback(method_not_allowed)
        };
        let member_routes = || -> MethodRouter<AppState> {
            get(move |State(state): State<AppState>, Path(id): Path<String>, request: Request| {
                get_one(state, resource, id, request)
            })
            .fallback(method_not_allowed)
        };
        router = router
            .route(&collection, collection_routes())
            .route(&format!("{collection}/"), collection_routes())
            .route(&member, member_routes())
            .route(&format!("{member}/"), member_routes());
    }
    router
}

/// A read's query string: `fields[<type>]`, and on lists `page[cursor]`.
struct Query {
    fields: Option<Vec<String>>,
    cursor: Option<String>,
}

fn parse_query(uri: &Uri, resource: Resource, list: bool) -> Result<Query, KlaviyoError> {
    let pairs: Vec<(String, String)> = match axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri) {
        Ok(axum::extract::Query(pairs)) => pairs,
        Err(rejection) => {
            return Err(KlaviyoError::parameter(
                "query",
                format!("The query string cannot be read: {}", rejection.body_text()),
            ))
        }
    };
    let fields_name = format!("fields[{}]", resource.type_name());
    let mut query = Query { fields: None, cursor: None };
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in &pairs {
        if seen.contains(&name.as_str()) {
            return Err(KlaviyoError::parameter(name, format!("The parameter '{name}' is given more than once.")));
        }
        seen.push(name);
        match name.as_str() {
            n if n == fields_name => query.fields = Some(field_list(name, value, resource.fields())?),
            "page[cursor]" if list => query.cursor = cursor(value),
            _ => {
                return Err(KlaviyoError::parameter(
                    name,
                    format!("'{name}' is not a valid query parameter for this endpoint."),
                ))
            }
        }
    }
    Ok(query)
}

async fn list(state: AppState, resource: Resource, request: Request) -> Response {
    guarded(state, request, false, move |state, guard, request| async move {
        let query = parse_query(request.uri(), resource, true)?;
        let (project, catalog) = (guard.principal.project_id, &*state.klaviyo_catalog);
        let cursor = query.cursor.as_deref();
        let base = base_url(request.headers());
        let page: Result<Page<Value>, StoreError> = match resource {
            Resource::Item => state.store.list_items(project, catalog, cursor, PAGE_SIZE).await.map(|page| Page {
                rows: page.rows.iter().map(|item| item_resource(&base, item, None)).collect(),
                next_cursor: page.next_cursor,
            }),
            Resource::Category => {
                state.store.list_categories(project, catalog, cursor, PAGE_SIZE).await.map(|page| Page {
                    rows: page.rows.iter().map(|category| category_resource(&base, category, None)).collect(),
                    next_cursor: page.next_cursor,
                })
            }
        };
        let page = match page {
            Ok(page) => page,
            // The catalog is created by the first job that needs it; until then it is empty.
            Err(StoreError::CatalogNotFound(_)) => Page { rows: Vec::new(), next_cursor: None },
            Err(StoreError::InvalidCursor) => {
                return Err(KlaviyoError::parameter("page[cursor]", "The page cursor is invalid or expired."))
            }
            Err(error) => return Err(error.into()),
        };
        let data: Vec<Value> =
            page.rows.into_iter().map(|resource| sparse(resource, query.fields.as_deref())).collect();
        let collection = format!("{base}/api/{}", resource.path());
        let fields_param = |url: String| match &query.fields {
            Some(fields) => {
                let name = encode_component(&format!("fields[{}]", resource.type_name()));
                let joiner = if url.contains('?') { '&' } else { '?' };
                format!("{url}{joiner}{name}={}", encode_component(&fields.join(",")))
            }
            None => url,
        };
        let next = page.next_cursor.map_or(Value::Null, |c| {
            Value::String(fields_param(format!(
                "{collection}?{}={}",
                encode_component("page[cursor]"),
                encode_component(&c)
            )))
        });
        let self_url = match request.uri().query() {
            Some(q) => format!("{base}{}?{q}", request.uri().path()),
            None => format!("{base}{}", request.uri().path()),
        };
        let document = json!({
            "data": data,
            "links": {"self": self_url, "first": fields_param(collection), "next": next, "prev": Value::Null},
        });
        Ok((StatusCode::OK, document))
    })
    .await
}

/// Keeps only `fields` of a rendered resource's attributes.
fn sparse(mut resource: Value, fields: Option<&[String]>) -> Value {
    if let (Some(fields), Some(attributes)) = (fields, resource.get_mut("attributes").and_then(Value::as_object_mut)) {
        attributes.retain(|name, _| fields.iter().any(|f| f == name));
    }
    resource
}

async fn get_one(state: AppState, resource: Resource, id: String, request: Request) -> Response {
    guarded(state, request, false, move |state, guard, request| async move {
        let query = parse_query(request.uri(), resource, false)?;
        let not_found = || KlaviyoError::not_found(format!("No {} with id '{id}' was found.", resource.type_name()));
        // Only `$custom:::$default:::` ids name anything here.
        let external_id = CompoundId::parse(&id).map_err(|_| not_found())?.external_id;
        let (project, catalog) = (guard.principal.project_id, &*state.klaviyo_catalog);
        let base = base_url(request.headers());
        let found = match resource {
            Resource::Item => match state.store.get_item(project, catalog, &external_id).await {
                Ok(item) => Some(item_resource(&base, &item, query.fields.as_deref())),
                Err(StoreError::ItemNotFound(_) | StoreError::CatalogNotFound(_)) => None,
                Err(error) => return Err(error.into()),
            },
            Resource::Category => {
                match state.store.get_categories(project, catalog, std::slice::from_ref(&external_id)).await {
                    Ok(mut categories) => {
                        categories.pop().map(|category| category_resource(&base, &category, query.fields.as_deref()))
                    }
                    Err(StoreError::CatalogNotFound(_)) => None,
                    Err(error) => return Err(error.into()),
                }
            }
        };
        let data = found.ok_or_else(not_found)?;
        let self_url = format!("{base}/api/{}/{}", resource.path(), encode_component(&id));
        Ok((StatusCode::OK, json!({"data": data, "links": {"self": self_url}})))
    })
    .await
}
