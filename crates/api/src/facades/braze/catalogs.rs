//! Braze's catalog endpoints: `POST /catalogs` (one catalog with its fields), `GET /catalogs`
//! (each with its fields and item count), `DELETE /catalogs/{catalog_name}`, and the fields:
//! `POST /catalogs/{catalog_name}/fields`, `DELETE /catalogs/{catalog_name}/fields/{field_name}`.
//!
//! The fields a catalog declares are kept (catalog-store, migration 0012 on SQLite, 0013 on PostgreSQL) and every item write
//! is checked against them (`items`); a catalog created without `fields`, or by another surface,
//! declares none and takes any field. The declaration rules are catalog-domain's
//! (`braze_fields::check_field_declarations`).

use super::auth::{guarded, Call, CATALOGS_READ, CATALOGS_WRITE, FIELDS_WRITE};
use super::error::{catalog_name_error, declaration_error, selection_error, store_failure, Failure};
use super::items::{declared_fields_of, json_body, kind_of};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use catalog_domain::braze_fields::{
    check_field_declarations, check_selection, FieldType, SelectionFilter, MAX_CATALOG_FIELDS, MAX_FIELDS_PER_REQUEST,
};
use catalog_domain::storable::check_text;
use catalog_domain::time::format_rfc3339_offset;
use catalog_domain::validate_catalog_name;
use catalog_store::{Catalog, CatalogField, StoreError};
use serde_json::{json, Map, Value};

/// Fields shown for a catalog that declared none: just the id.
fn shown_fields(fields: &[CatalogField]) -> Value {
    if fields.is_empty() {
        return json!([{"name": "id", "type": "string"}]);
    }
    fields.iter().map(|f| json!({"name": f.name, "type": f.field_type})).collect()
}

fn catalog_json(catalog: &Catalog, fields: &[CatalogField]) -> Value {
    json!({
        "name": catalog.name,
        "description": catalog.description,
        "fields": shown_fields(fields),
        "num_items": catalog.item_count.unwrap_or(0),
        "updated_at": format_rfc3339_offset(catalog.updated_at),
    })
}

fn catalog_array_invalid() -> Failure {
    Failure::one(
        StatusCode::BAD_REQUEST,
        "catalog-array-invalid",
        "`catalogs` must be an array of exactly one catalog object",
    )
}

fn fields_invalid() -> Failure {
    Failure::one(
        StatusCode::BAD_REQUEST,
        "invalid-fields",
        "`fields` must be an array of objects with a string `name` and `type`",
    )
}

/// Reads `fields`: objects with a string `name` and `type`, checked by the declaration rules.
fn declared_fields(value: Option<&Value>, id_first: bool, max: usize) -> Result<Vec<CatalogField>, Failure> {
    let Some(Value::Array(entries)) = value else {
        return Err(fields_invalid());
    };
    let mut fields = Vec::with_capacity(entries.len());
    for entry in entries {
        match (entry.get("name"), entry.get("type")) {
            (Some(Value::String(name)), Some(Value::String(word))) => {
                fields.push(CatalogField { name: name.clone(), field_type: word.clone(), searchable: None });
            }
            _ => return Err(fields_invalid()),
        }
    }
    check_field_declarations(fields.iter().map(|f| (f.name.as_str(), f.field_type.as_str())), id_first, max)
        .map_err(|problem| Failure::bad_request(vec![declaration_error(problem)]))?;
    Ok(fields)
}

fn one_catalog(body: Option<Value>) -> Result<Map<String, Value>, Failure> {
    let Some(Value::Object(mut body)) = body else {
        return Err(catalog_array_invalid());
    };
    match body.remove("catalogs") {
        Some(Value::Array(mut catalogs)) if catalogs.len() == 1 => match catalogs.pop() {
            Some(Value::Object(catalog)) => Ok(catalog),
            _ => Err(catalog_array_invalid()),
        },
        _ => Err(catalog_array_invalid()),
    }
}

/// `POST /catalogs`: creates one catalog with its fields (none given: it declares none).
pub(super) async fn create_catalog(call: Call<()>) -> Response {
    guarded(call, CATALOGS_WRITE, |state, principal, (), request| async move {
        let catalog = one_catalog(json_body(&state, request).await?)?;
        let name = match catalog.get("name") {
            Some(Value::String(name)) => name.clone(),
            _ => return Err(Failure::bad_request(vec![catalog_name_error(&catalog_domain::CatalogNameError::Empty)])),
        };
        validate_catalog_name(&name).map_err(|e| Failure::bad_request(vec![catalog_name_error(&e)]))?;
        let description = match catalog.get("description") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => {
                check_text("description", text)
                    .map_err(|e| Failure::one(StatusCode::BAD_REQUEST, "invalid-description", e.to_string()))?;
                Some(text.clone())
            }
            Some(_) => {
                return Err(Failure::one(
                    StatusCode::BAD_REQUEST,
                    "invalid-description",
                    "`description` must be a string",
                ));
            }
        };
        let fields = match catalog.get("fields") {
            None | Some(Value::Null) => Vec::new(),
            given => declared_fields(given, true, MAX_CATALOG_FIELDS)?,
        };
        let created = state
            .store
            .create_catalog_with_fields(principal.project_id, &name, description.as_deref(), None, &fields)
            .await
            .map_err(|e| store_failure(e, &name))?;
        let body = json!({"catalogs": [catalog_json(&created, &fields)], "message": "success"});
        Ok((StatusCode::CREATED, Json(body)).into_response())
    })
    .await
}

/// `GET /catalogs`: every catalog of the project, with its fields and item count.
pub(super) async fn list_catalogs(call: Call<()>) -> Response {
    guarded(call, CATALOGS_READ, |state, principal, (), _| async move {
        let catalogs =
            state.store.list_catalogs_with_fields(principal.project_id).await.map_err(|e| store_failure(e, ""))?;
        let catalogs: Vec<Value> = catalogs.iter().map(|(c, fields)| catalog_json(c, fields)).collect();
        Ok(Json(json!({"catalogs": catalogs, "message": "success"})).into_response())
    })
    .await
}

/// `DELETE /catalogs/{catalog_name}`: the catalog is gone at once (its name is free); a job
/// removes its items.
pub(super) async fn delete_catalog(call: Call<String>) -> Response {
    guarded(call, CATALOGS_WRITE, |state, principal, catalog, _| async move {
        state.store.delete_catalog(principal.project_id, &catalog).await.map_err(|e| store_failure(e, &catalog))?;
        Ok(Json(json!({"message": "success"})).into_response())
    })
    .await
}

/// `POST /catalogs/{catalog_name}/fields`: declares up to 50 more fields (202, as Braze: its
/// field changes are asynchronous; here they hold when the answer is sent).
pub(super) async fn create_fields(call: Call<String>) -> Response {
    guarded(call, FIELDS_WRITE, |state, principal, catalog, request| async move {
        let declared = declared_fields_of(&state, &principal, &catalog).await?;
        let Some(Value::Object(body)) = json_body(&state, request).await? else {
            return Err(fields_invalid());
        };
        let fields = declared_fields(body.get("fields"), false, MAX_FIELDS_PER_REQUEST)?;
        if fields.is_empty() {
            return Err(fields_invalid());
        }
        if declared.len().max(1) + fields.len() > MAX_CATALOG_FIELDS {
            return Err(Failure::one(
                StatusCode::BAD_REQUEST,
                "catalog-exceeds-fields-limit",
                format!("Catalog cannot have more than {MAX_CATALOG_FIELDS} fields"),
            ));
        }
        // A catalog that declared nothing declares `id` first, as one created with fields does.
        let mut added = Vec::with_capacity(fields.len() + 1);
        if declared.is_empty() {
            added.push(CatalogField { name: "id".to_owned(), field_type: "string".to_owned(), searchable: None });
        }
        added.extend(fields);
        let existing = state
            .store
            .add_catalog_fields(principal.project_id, &catalog, &added)
            .await
            .map_err(|e| store_failure(e, &catalog))?;
        if !existing.is_empty() {
            let failure =
                Failure::one(StatusCode::BAD_REQUEST, "field-names-not-unique", "Some of the fields already exist");
            return Err(failure.naming("name", existing.into_iter().map(Value::String).collect()));
        }
        Ok((StatusCode::ACCEPTED, Json(json!({"message": "success"}))).into_response())
    })
    .await
}

/// `DELETE /catalogs/{catalog_name}/fields/{field_name}`: the field is no longer declared (the
/// items keep their values); `id` cannot be removed.
pub(super) async fn delete_field(call: Call<(String, String)>) -> Response {
    guarded(call, FIELDS_WRITE, |state, principal, (catalog, field), _| async move {
        if field == "id" {
            return Err(Failure::one(
                StatusCode::BAD_REQUEST,
                "id-field-cannot-be-removed",
                "The `id` field cannot be removed",
            ));
        }
        let removed = state.store.remove_catalog_field(principal.project_id, &catalog, &field).await;
        removal_answer(removed, &catalog, ("field-not-found", "Could not find field", "field_name"), field)
    })
    .await
}

/// The answer of a removal by name (a field, a selection): 202, or 404 with Braze's `not_found`
/// (error id, message, parameter) naming what was not there.
fn removal_answer(
    removed: Result<bool, StoreError>,
    catalog: &str,
    not_found: (&'static str, &'static str, &'static str),
    name: String,
) -> Result<Response, Failure> {
    let (id, message, parameter) = not_found;
    if !removed.map_err(|e| store_failure(e, catalog))? {
        return Err(Failure::one(StatusCode::NOT_FOUND, id, message).naming(parameter, vec![Value::String(name)]));
    }
    Ok((StatusCode::ACCEPTED, Json(json!({"message": "success"}))).into_response())
}

fn selection_invalid(message: &str) -> Failure {
    Failure::one(StatusCode::BAD_REQUEST, "invalid-selection", message)
}

/// `POST /catalogs/{catalog_name}/selections` `{"selection": {"name", "description"?, "filters"?,
/// "results_limit"?, "sort_field"?, "sort_order"?}}`: keeps a selection of the catalog, checked
/// against its declared fields (catalog-domain's `check_selection`); 202.
pub(super) async fn create_selection(call: Call<String>) -> Response {
    guarded(call, FIELDS_WRITE, |state, principal, catalog, request| async move {
        let declared = declared_fields_of(&state, &principal, &catalog).await?;
        let Some(Value::Object(mut body)) = json_body(&state, request).await? else {
            return Err(selection_invalid("The body must be an object with a `selection` object"));
        };
        let Some(Value::Object(selection)) = body.remove("selection") else {
            return Err(selection_invalid("The body must be an object with a `selection` object"));
        };
        let Some(Value::String(name)) = selection.get("name") else {
            return Err(selection_invalid("The selection needs a string `name`"));
        };
        if !matches!(selection.get("description"), None | Some(Value::Null | Value::String(_))) {
            return Err(selection_invalid("`description` must be a string"));
        }
        let mut filters = Vec::new();
        match selection.get("filters") {
            None | Some(Value::Null) => {}
            Some(Value::Array(entries)) => {
                for entry in entries {
                    match (entry.get("field"), entry.get("operator"), entry.get("value")) {
                        (Some(Value::String(field)), Some(Value::String(operator)), Some(value)) => {
                            filters.push(SelectionFilter { field, operator, value: kind_of(value) });
                        }
                        _ => {
                            return Err(selection_invalid(
                                "Each filter needs a string `field` and `operator` and a `value`",
                            ))
                        }
                    }
                }
            }
            Some(_) => return Err(selection_invalid("`filters` must be an array of filter objects")),
        }
        let results_limit = match selection.get("results_limit") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(n.as_i64().unwrap_or(0)),
            Some(_) => Some(0),
        };
        let text = |key: &str| match selection.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.as_str())),
            Some(_) => Err(selection_invalid("`sort_field` and `sort_order` must be strings")),
        };
        let (sort_field, sort_order) = (text("sort_field")?, text("sort_order")?);
        let declared: Vec<(&str, FieldType)> =
            declared.iter().filter_map(|f| FieldType::parse(&f.field_type).map(|ty| (f.name.as_str(), ty))).collect();
        check_selection(name, &filters, &declared, results_limit, sort_field, sort_order)
            .map_err(|problem| Failure::bad_request(vec![selection_error(problem)]))?;
        let added = state
            .store
            .add_selection(principal.project_id, &catalog, name, &Value::Object(selection.clone()))
            .await
            .map_err(|e| store_failure(e, &catalog))?;
        if !added {
            return Err(Failure::one(
                StatusCode::BAD_REQUEST,
                "selection-name-already-exists",
                "A selection with that name already exists in the catalog",
            ));
        }
        Ok((StatusCode::ACCEPTED, Json(json!({"message": "success"}))).into_response())
    })
    .await
}

/// `DELETE /catalogs/{catalog_name}/selections/{selection_name}`: forgets the selection; 202, or
/// 404 `selection-not-found`.
pub(super) async fn delete_selection(call: Call<(String, String)>) -> Response {
    guarded(call, FIELDS_WRITE, |state, principal, (catalog, selection), _| async move {
        let removed = state.store.remove_selection(principal.project_id, &catalog, &selection).await;
        removal_answer(
            removed,
            &catalog,
            ("selection-not-found", "Could not find selection", "selection_name"),
            selection,
        )
    })
    .await
}
