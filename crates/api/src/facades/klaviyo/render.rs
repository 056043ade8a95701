//! JSON:API documents of the facade: job resources, collections with their links, and items and
//! categories, included or read on their own (contracts/klaviyo.md, "The job resource").

use super::error::error_id;
use super::params::{Params, Revision};
use super::wire::{JobType, CATEGORIES_PATH, CATEGORY_TYPE, ITEMS_PATH, ITEM_STORED_ATTRIBUTES, ITEM_TYPE};
use axum::http::{HeaderMap, Uri};
use catalog_domain::klaviyo::CompoundId;
use catalog_domain::time::format_rfc3339_offset;
use catalog_domain::ErrorCode;
use catalog_store::{Category, Item, Job, JobErrorRecord};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Map, Value};

/// A stable id for one per-item error of a job: the same error shows the same id on every read.
fn job_error_id(job: &Job, index: u64) -> String {
    error_id(&format!("job\u{1f}{}\u{1f}{index}", job.id.0))
}

/// The `code`, `title` and `detail` of a per-item error in Klaviyo's words where catalogd's
/// differ: a create of an id that exists is Klaviyo's 409 conflict ("A catalog item with this ID
/// already exists."); any other error keeps the words the job recorded.
fn job_error_words(job_type: JobType, error: &JobErrorRecord) -> (&str, &str, &str) {
    if error.code == ErrorCode::AlreadyExists.as_str() {
        let detail = if job_type.on_items() {
            "A catalog item with this ID already exists."
        } else {
            "A catalog category with this ID already exists."
        };
        return ("conflict", "Conflict.", detail);
    }
    (&error.code, &error.title, &error.detail)
}

/// `scheme://host` of the request, for absolute links: the `Host` header, and `https` only when a
/// proxy says so with `X-Forwarded-Proto`.
pub fn base_url(headers: &HeaderMap) -> String {
    let scheme = match headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()) {
        Some(proto) if proto.trim().eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        // A host with characters no authority may contain is not worth echoing into links.
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || "-._:[]".contains(c)))
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

/// What a query component or path segment keeps as it is: RFC 3986's unreserved characters.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes a query component or a path segment.
pub fn encode_component(text: &str) -> String {
    utf8_percent_encode(text, UNRESERVED).to_string()
}

/// The absolute URL of the item `external_id`.
pub fn item_url(base: &str, external_id: &str) -> String {
    format!("{base}/api/{ITEMS_PATH}/{}", encode_component(&CompoundId::custom_default(external_id).render()))
}

/// The absolute URL of the category `external_id`.
pub fn category_url(base: &str, external_id: &str) -> String {
    format!("{base}/api/{CATEGORIES_PATH}/{}", encode_component(&CompoundId::custom_default(external_id).render()))
}

/// A `catalog-category` resource; `fields` is its sparse fieldset, if any.
pub fn category_resource(base: &str, category: &Category, fields: Option<&[String]>) -> Value {
    let compound = CompoundId::custom_default(category.id.as_str()).render();
    let mut attributes = Map::new();
    // In Klaviyo the external id is the compound id's last part, which is catalogd's id.
    attributes.insert("external_id".into(), json!(category.id));
    attributes.insert("name".into(), json!(category.name));
    attributes.insert("updated".into(), json!(format_rfc3339_offset(category.updated_at)));
    if let Some(fields) = fields {
        attributes.retain(|name, _| fields.iter().any(|f| f == name));
    }
    json!({
        "type": CATEGORY_TYPE,
        "id": compound,
        "attributes": attributes,
        "links": {"self": category_url(base, &category.id)},
    })
}

/// A `catalog-item` resource: the item's stored Klaviyo attributes (null when it has none of that
/// name), its id as `external_id`, and its times; `fields` is its sparse fieldset, if any.
pub fn item_resource(base: &str, item: &Item, fields: Option<&[String]>) -> Value {
    let mut attributes = Map::new();
    attributes.insert("external_id".into(), json!(item.id));
    for name in ITEM_STORED_ATTRIBUTES {
        attributes.insert((*name).into(), item.fields.get(*name).cloned().unwrap_or(Value::Null));
    }
    attributes.insert("created".into(), json!(format_rfc3339_offset(item.created_at)));
    attributes.insert("updated".into(), json!(format_rfc3339_offset(item.updated_at)));
    if let Some(fields) = fields {
        attributes.retain(|name, _| fields.iter().any(|f| f == name));
    }
    json!({
        "type": ITEM_TYPE,
        "id": CompoundId::custom_default(item.id.as_str()).render(),
        "attributes": attributes,
        "links": {"self": item_url(base, &item.id)},
    })
}

/// Everything a job resource's rendering depends on besides the job.
pub struct Context<'a> {
    /// `scheme://host`.
    pub base: &'a str,
    /// The request's revision.
    pub revision: &'a Revision,
    /// Sparse fieldsets and includes.
    pub params: &'a Params,
    /// Which job type.
    pub job_type: JobType,
}

impl Context<'_> {
    /// The absolute URL of one job.
    pub fn job_url(&self, job: &Job) -> String {
        format!("{}/api/{}/{}", self.base, self.job_type.path(), job.id.0)
    }

    /// The job resource. `inputs` are the external ids the job was created with, when known;
    /// `errors` its per-item failures.
    pub fn job(&self, job: &Job, inputs: Option<&[String]>, errors: &[JobErrorRecord]) -> Value {
        let id = job.id.0.to_string();
        let time = |ms: Option<i64>| ms.map_or(Value::Null, |ms| Value::String(format_rfc3339_offset(ms)));
        let member = self.job_type.member();
        let rendered_errors: Vec<Value> = errors
            .iter()
            .map(|error| {
                let (code, title, detail) = job_error_words(self.job_type, error);
                json!({
                    "id": job_error_id(job, error.index),
                    "code": code,
                    "title": title,
                    "detail": detail,
                    "source": {"pointer": format!("/data/attributes/{member}/data/{}", error.index)},
                })
            })
            .collect();
        let mut attributes = Map::new();
        if self.revision.carries_job_id() {
            attributes.insert("job_id".into(), Value::String(id.clone()));
        }
        attributes.insert("status".into(), json!(job.status.klaviyo_word()));
        attributes.insert("created_at".into(), json!(format_rfc3339_offset(job.created_at)));
        attributes.insert("total_count".into(), json!(job.total_count));
        attributes.insert("completed_count".into(), json!(job.completed_count));
        attributes.insert("failed_count".into(), json!(job.failed_count));
        attributes.insert("completed_at".into(), time(job.finished_at));
        attributes.insert("expires_at".into(), time(job.expires_at));
        attributes.insert("errors".into(), Value::Array(rendered_errors));
        if let Some(fields) = &self.params.job_fields {
            attributes.retain(|name, _| fields.iter().any(|f| f == name));
        }
        let mut resource = json!({
            "type": self.job_type.type_name(),
            "id": id,
            "attributes": attributes,
            "links": {"self": self.job_url(job)},
        });
        if let Some(inputs) = inputs {
            let related_type = self.job_type.related_type();
            let data: Vec<Value> = inputs
                .iter()
                .map(|external| json!({"type": related_type, "id": CompoundId::custom_default(external.as_str()).render()}))
                .collect();
            resource["relationships"] = json!({ member: {"data": data} });
        }
        resource
    }

    /// An included `catalog-category` resource.
    pub fn category(&self, category: &Category) -> Value {
        category_resource(self.base, category, self.params.included_fields.as_deref())
    }

    /// An included `catalog-item` resource.
    pub fn item(&self, item: &Item) -> Value {
        item_resource(self.base, item, self.params.included_fields.as_deref())
    }

    /// A collection URL of this job type carrying the request's parameters and `cursor`.
    pub fn collection_url(&self, cursor: Option<&str>) -> String {
        let mut query: Vec<String> = self
            .params
            .carried
            .iter()
            .map(|(name, value)| format!("{}={}", encode_component(name), encode_component(value)))
            .collect();
        if let Some(cursor) = cursor {
            query.push(format!("{}={}", encode_component("page[cursor]"), encode_component(cursor)));
        }
        let mut url = format!("{}/api/{}", self.base, self.job_type.path());
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query.join("&"));
        }
        url
    }

    /// `links.self` of the request as received.
    pub fn self_url(&self, uri: &Uri) -> String {
        match uri.query() {
            Some(query) => format!("{}{}?{query}", self.base, uri.path()),
            None => format!("{}{}", self.base, uri.path()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_honours_forwarded_proto_and_refuses_odd_hosts() {
        let mut headers = HeaderMap::new();
        assert_eq!(base_url(&headers), "http://localhost");
        headers.insert("host", axum::http::HeaderValue::from_static("example.test:8080"));
        headers.insert("x-forwarded-proto", axum::http::HeaderValue::from_static("https"));
        assert_eq!(base_url(&headers), "https://example.test:8080");
        headers.insert("host", axum::http::HeaderValue::from_static("evil\"host"));
        assert_eq!(base_url(&headers), "https://localhost");
    }

    #[test]
    fn components_are_percent_encoded() {
        assert_eq!(encode_component("page[cursor]"), "page%5Bcursor%5D");
        assert_eq!(encode_component("equals(status,\"queued\")"), "equals%28status%2C%22queued%22%29");
        assert_eq!(
            encode_component("$custom:::$default:::A b/é"),
            "%24custom%3A%3A%3A%24default%3A%3A%3AA%20b%2F%C3%A9"
        );
    }
}
