//! JSON:API documents of the facade: job resources, collections with their links, and included
//! categories (contracts/klaviyo.md, "The job resource").

use super::params::{Params, Revision};
use super::JobType;
use axum::http::{HeaderMap, Uri};
use catalog_domain::klaviyo::CompoundId;
use catalog_domain::time::format_rfc3339_offset;
use catalog_store::{Category, Job, JobErrorRecord};
use serde_json::{json, Map, Value};
use std::hash::{DefaultHasher, Hash, Hasher};

/// The media type of every response.
pub const VND_API_JSON: &str = "application/vnd.api+json";

/// Formats two 64-bit values as a version-4-shaped UUID string.
pub fn uuid_like(high: u64, low: u64) -> String {
    let high = (high & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
    let low = (low & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0xffff,
        low >> 48,
        low & 0xffff_ffff_ffff
    )
}

/// A stable id for one per-item error of a job: the same error shows the same id on every read.
fn job_error_id(job: &Job, index: u64) -> String {
    let mut hasher = DefaultHasher::new();
    (job.id.0, index, "catalogd-klaviyo-job-error").hash(&mut hasher);
    let high = hasher.finish();
    index.hash(&mut hasher);
    uuid_like(high, hasher.finish())
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

/// Percent-encodes a query component, keeping only RFC 3986 unreserved characters.
fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
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
                json!({
                    "id": job_error_id(job, error.index),
                    "code": error.code,
                    "title": error.title,
                    "detail": error.detail,
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
        let compound = CompoundId::custom_default(category.id.as_str()).render();
        let mut attributes = Map::new();
        // In Klaviyo the external id is the compound id's last part, which is catalogd's id.
        attributes.insert("external_id".into(), json!(category.id));
        attributes.insert("name".into(), json!(category.name));
        attributes.insert("updated".into(), json!(format_rfc3339_offset(category.updated_at)));
        if let Some(fields) = &self.params.category_fields {
            attributes.retain(|name, _| fields.iter().any(|f| f == name));
        }
        json!({
            "type": "catalog-category",
            "id": compound,
            "attributes": attributes,
            "links": {"self": format!("{}/api/catalog-categories/{}", self.base, encode_component(&compound))},
        })
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
    fn uuid_like_has_the_uuid_shape() {
        let id = uuid_like(u64::MAX, 0);
        assert_eq!(id.len(), 36);
        let groups: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert_eq!(id.chars().nth(14), Some('4'));
    }

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
    }
}
