//! Bloomreach's catalog endpoints: create, list, get, rename, delete.
//!
//! A catalog has an id apart from its display name: `POST .../catalogs` gives it a new id (24 hex
//! digits, its catalogd name, which addresses it everywhere) and keeps the `name` it was sent, any
//! text, as its display name; `PUT .../catalogs/{catalog_id}` changes the name. A catalog made by
//! another surface shows its catalogd name as both. Its `fields` (name, type, searchable) are kept
//! and the items' properties are checked against their names and types (`items`); the item list
//! searches only the searchable ones.

use super::auth::{native, Call};
use super::error::Failure;
use super::items::json_body;
use crate::state::AppState;
use axum::extract::Request;
use axum::response::Response;
use catalog_domain::catalog::PropertyType;
use catalog_store::{CatalogField, Scope};
use serde_json::{json, Map, Value};

/// The field definitions of a create or rename body: `[{"name", "type"?, "searchable"?}]`, each
/// name once; the type is one of Bloomreach's (catalog-domain's `PropertyType`) and defaults to
/// `string`.
fn field_definitions(value: Option<&Value>) -> Result<Option<Vec<CatalogField>>, Failure> {
    let entries = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(entries)) => entries,
        Some(_) => return Err(Failure::bad_request("Malformed fields. Fields should be a list")),
    };
    let malformed = || {
        Failure::bad_request(
            "Malformed field. A field should be an object with a name, and optionally a type and searchable",
        )
    };
    let mut fields: Vec<CatalogField> = Vec::with_capacity(entries.len());
    for entry in entries {
        let Value::Object(entry) = entry else { return Err(malformed()) };
        let name = match entry.get("name") {
            Some(Value::String(name)) if !name.is_empty() && !name.contains('\0') => name.clone(),
            _ => return Err(malformed()),
        };
        let field_type = match entry.get("type") {
            None | Some(Value::Null) => "string".to_owned(),
            Some(Value::String(word)) if PropertyType::parse(word).is_some() => word.clone(),
            Some(Value::String(word)) => {
                let known: Vec<&str> = PropertyType::ALL.iter().map(|t| t.as_str()).collect();
                return Err(Failure::bad_request(format!(
                    "Invalid field type. The type of field '{name}' should be one of: {}, not '{word}'",
                    known.join(", ")
                )));
            }
            Some(_) => return Err(malformed()),
        };
        let searchable = match entry.get("searchable") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(flag)) => *flag,
            Some(_) => return Err(malformed()),
        };
        if fields.iter().any(|f| f.name == name) {
            return Err(Failure::bad_request(format!("Duplicate field. The field '{name}' is defined twice")));
        }
        fields.push(CatalogField { name, field_type, searchable: Some(searchable) });
    }
    Ok(Some(fields))
}

fn fields_json(fields: &[CatalogField]) -> Value {
    fields
        .iter()
        .map(|f| json!({"name": f.name, "type": f.field_type, "searchable": f.searchable.unwrap_or(false)}))
        .collect()
}

/// The `name` of a create or rename body: any non-empty text without NUL.
fn display_name(body: &Map<String, Value>) -> Result<String, Failure> {
    match body.get("name") {
        Some(Value::String(name)) if !name.trim().is_empty() && !name.contains('\0') => Ok(name.clone()),
        _ => Err(Failure::bad_request("Missing name. The catalog should have a name")),
    }
}

async fn object_body(state: &AppState, request: Request) -> Result<Map<String, Value>, Failure> {
    match json_body(state, request).await? {
        Value::Object(body) => Ok(body),
        _ => Err(Failure::bad_request("Malformed payload. The payload should be an object with a name")),
    }
}

/// `POST /data/v2/projects/{project_id}/catalogs` `{"name", "fields"}`: creates a catalog and
/// answers its new id.
pub(super) async fn create_catalog(call: Call<String>) -> Response {
    native(call, Scope::CatalogsWrite, |state, principal, _, request| async move {
        let body = object_body(&state, request).await?;
        let name = display_name(&body)?;
        let fields = field_definitions(body.get("fields"))?.unwrap_or_default();
        let catalog = state.store.create_titled_catalog(principal.project_id, &name, &fields).await?;
        Ok(json!({"id": catalog.name, "success": true}))
    })
    .await
}

/// `GET /data/v2/projects/{project_id}/catalogs`: every catalog of the project, its id and name.
pub(super) async fn list_catalogs(call: Call<String>) -> Response {
    native(call, Scope::CatalogsRead, |state, principal, _, _| async move {
        let catalogs = state.store.list_catalog_titles(principal.project_id).await?;
        let data: Vec<Value> = catalogs
            .into_iter()
            .map(|(catalog, title)| json!({"id": catalog.name, "name": title.unwrap_or(catalog.name)}))
            .collect();
        Ok(json!({"data": data, "success": true}))
    })
    .await
}

/// `GET .../catalogs/{catalog_id}`: the catalog's id, name and fields.
pub(super) async fn get_catalog(call: Call<(String, String)>) -> Response {
    native(call, Scope::CatalogsRead, |state, principal, (_, catalog), _| async move {
        let (found, title) = state.store.catalog_title(principal.project_id, &catalog).await?;
        let (_, fields) = state.store.find_catalog_with_fields(principal.project_id, &catalog).await?;
        let name = title.unwrap_or_else(|| found.name.clone());
        Ok(json!({"data": {"id": found.name, "name": name, "fields": fields_json(&fields)}, "success": true}))
    })
    .await
}

/// `PUT .../catalogs/{catalog_id}` `{"name", "fields"?}`: renames the catalog (its id stays) and,
/// when `fields` is given, replaces its field definitions.
pub(super) async fn update_catalog(call: Call<(String, String)>) -> Response {
    native(call, Scope::CatalogsWrite, |state, principal, (_, catalog), request| async move {
        state.store.find_live_catalog(principal.project_id, &catalog).await?;
        let body = object_body(&state, request).await?;
        let name = display_name(&body)?;
        let fields = field_definitions(body.get("fields"))?;
        state.store.retitle_catalog(principal.project_id, &catalog, &name, fields.as_deref()).await?;
        Ok(json!({"success": true}))
    })
    .await
}

/// `DELETE .../catalogs/{catalog_id}`: the catalog is gone at once; a job removes its items.
pub(super) async fn delete_catalog(call: Call<(String, String)>) -> Response {
    native(call, Scope::CatalogsWrite, |state, principal, (_, catalog), _| async move {
        state.store.delete_catalog(principal.project_id, &catalog).await?;
        Ok(json!({"success": true}))
    })
    .await
}
