//! The `revision` header and the query parameters of the six endpoints: `fields[...]`, `filter`,
//! `include` and `page[cursor]` (contracts/klaviyo.md, "Collections, filters, sparse fields,
//! pagination"). Anything else in the query string is refused, as Klaviyo does.

use super::error::KlaviyoError;
use super::wire::{JobType, JOB_FIELDS};
use axum::http::{HeaderMap, Uri};
use catalog_domain::JobStatus;

/// The newest revision that still carried `attributes.job_id` on job resources.
const LAST_REVISION_WITH_JOB_ID: &str = "2023-10-15";

/// A request's `revision` header: `YYYY-MM-DD` with an optional `.suffix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// The date part, `YYYY-MM-DD`.
    pub date: String,
}

impl Revision {
    /// Reads and checks the header; missing or malformed is 400 `invalid` on `revision`.
    pub fn from_headers(headers: &HeaderMap) -> Result<Revision, KlaviyoError> {
        let value = headers.get("revision").ok_or_else(|| {
            KlaviyoError::parameter("revision", "The `revision` header is required (format: YYYY-MM-DD[.suffix]).")
        })?;
        let text = value.to_str().map_err(|_| malformed_revision())?.trim();
        Revision::parse(text).ok_or_else(malformed_revision)
    }

    /// Parses `YYYY-MM-DD[.suffix]`; the suffix is letters, digits, `-` or `_`.
    pub fn parse(text: &str) -> Option<Revision> {
        let (date, suffix) = match text.split_once('.') {
            Some((date, suffix)) => (date, Some(suffix)),
            None => (text, None),
        };
        if let Some(suffix) = suffix {
            if suffix.is_empty() || !suffix.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return None;
            }
        }
        let bytes = date.as_bytes();
        let digits_at =
            |range: std::ops::Range<usize>| bytes.get(range).is_some_and(|b| b.iter().all(u8::is_ascii_digit));
        let well_formed = bytes.len() == 10
            && digits_at(0..4)
            && bytes.get(4) == Some(&b'-')
            && digits_at(5..7)
            && bytes.get(7) == Some(&b'-')
            && digits_at(8..10);
        if !well_formed {
            return None;
        }
        let month: u32 = date.get(5..7)?.parse().ok()?;
        let day: u32 = date.get(8..10)?.parse().ok()?;
        ((1..=12).contains(&month) && (1..=31).contains(&day)).then(|| Revision { date: date.to_owned() })
    }

    /// Revisions up to 2023-10-15 showed the job id again as `attributes.job_id`.
    pub fn carries_job_id(&self) -> bool {
        // `YYYY-MM-DD` strings order like the dates they name.
        self.date.as_str() <= LAST_REVISION_WITH_JOB_ID
    }
}

fn malformed_revision() -> KlaviyoError {
    KlaviyoError::parameter("revision", "The `revision` header must have the format YYYY-MM-DD[.suffix].")
}

/// Which endpoint a query string is for: each accepts its own parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET` of a collection.
    List,
    /// `GET` of one job.
    Get,
    /// `POST` of a new job.
    Create,
}

/// The parsed query string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    /// `fields[<job type>]`: the attributes to show; `None` shows all.
    pub job_fields: Option<Vec<String>>,
    /// `fields[catalog-item]` or `fields[catalog-category]`: the attributes of the included
    /// resources; `None` shows all.
    pub included_fields: Option<Vec<String>>,
    /// `include=items` or `include=categories` (the job type's one relationship).
    pub include: bool,
    /// The canonical statuses `filter=equals(status,"...")` selects; empty selects all.
    pub statuses: Vec<JobStatus>,
    /// The store cursor from `page[cursor]`, quirks removed.
    pub cursor: Option<String>,
    /// The parameters to carry over into `links.next`/`prev` (all but the cursor), as received.
    pub carried: Vec<(String, String)>,
}

impl Params {
    /// Parses the query string of `uri` for `endpoint` of `job_type`.
    pub fn parse(uri: &Uri, job_type: JobType, endpoint: Endpoint) -> Result<Params, KlaviyoError> {
        let pairs: Vec<(String, String)> = match axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri) {
            Ok(axum::extract::Query(pairs)) => pairs,
            Err(rejection) => {
                return Err(KlaviyoError::parameter(
                    "query",
                    format!("The query string cannot be read: {}", rejection.body_text()),
                ))
            }
        };
        let job_fields_name = format!("fields[{}]", job_type.type_name());
        let includable = match endpoint {
            Endpoint::Get => job_type.includable(),
            Endpoint::List if job_type.includable_on_list() => job_type.includable(),
            Endpoint::List | Endpoint::Create => None,
        };
        let (included_fields_name, included_fields_allowed) = job_type.included_fields();
        let mut params = Params::default();
        let mut seen: Vec<&str> = Vec::new();
        for (name, value) in &pairs {
            if seen.contains(&name.as_str()) {
                return Err(KlaviyoError::parameter(name, format!("The parameter '{name}' is given more than once.")));
            }
            seen.push(name);
            match name.as_str() {
                n if n == job_fields_name => params.job_fields = Some(field_list(name, value, JOB_FIELDS)?),
                n if n == included_fields_name && includable.is_some() => {
                    params.included_fields = Some(field_list(name, value, included_fields_allowed)?);
                }
                "include" => match includable {
                    Some(relationship) => params.include = include(value, relationship)?,
                    None => {
                        return Err(KlaviyoError::parameter(
                            name,
                            "'include' is not a valid query parameter for this endpoint.".to_owned(),
                        ))
                    }
                },
                "filter" if endpoint == Endpoint::List => params.statuses = filter(value)?,
                "page[cursor]" if endpoint == Endpoint::List => {
                    params.cursor = cursor(value);
                    continue;
                }
                _ => {
                    return Err(KlaviyoError::parameter(
                        name,
                        format!("'{name}' is not a valid query parameter for this endpoint."),
                    ))
                }
            }
            params.carried.push((name.clone(), value.clone()));
        }
        Ok(params)
    }
}

/// A sparse fieldset: every name must be one of `allowed`.
pub fn field_list(name: &str, value: &str, allowed: &[&str]) -> Result<Vec<String>, KlaviyoError> {
    let fields: Vec<String> = value.split(',').map(|f| f.trim().to_owned()).collect();
    for field in &fields {
        if !allowed.contains(&field.as_str()) {
            return Err(KlaviyoError::parameter(
                name,
                format!("'{field}' is not a valid field for '{name}'; use any of: {}.", allowed.join(", ")),
            ));
        }
    }
    Ok(fields)
}

fn include(value: &str, allowed: &str) -> Result<bool, KlaviyoError> {
    for relationship in value.split(',').map(str::trim) {
        if relationship != allowed {
            return Err(KlaviyoError::parameter(
                "include",
                format!("'{relationship}' is not a valid relationship to include; use '{allowed}'."),
            ));
        }
    }
    Ok(true)
}

/// `equals(status,"processing")`, with single or double quotes: the only filter these lists know.
fn filter(value: &str) -> Result<Vec<JobStatus>, KlaviyoError> {
    let bad = |detail: String| KlaviyoError::parameter("filter", detail);
    let text = value.trim();
    let Some((operator, rest)) = text.split_once('(') else {
        return Err(bad(format!("Invalid filter '{text}': expected equals(status,\"<status>\").")));
    };
    let operator = operator.trim();
    if operator != "equals" {
        return Err(bad(format!(
            "The operator '{operator}' is not allowed in this filter; only 'equals' on 'status' is."
        )));
    }
    let Some(arguments) = rest.trim_end().strip_suffix(')') else {
        return Err(bad(format!("Invalid filter '{text}': missing ')'.")));
    };
    let Some((field, quoted)) = arguments.split_once(',') else {
        return Err(bad(format!("Invalid filter '{text}': expected equals(status,\"<status>\").")));
    };
    let field = field.trim();
    if field != "status" {
        return Err(bad(format!("Filtering on '{field}' is not allowed; only 'status' with 'equals' is.")));
    }
    let quoted = quoted.trim();
    let word = ['"', '\'']
        .iter()
        .find_map(|q| quoted.strip_prefix(*q).and_then(|rest| rest.strip_suffix(*q)))
        .ok_or_else(|| bad(format!("The status in '{text}' must be quoted, e.g. equals(status,\"queued\").")))?;
    JobStatus::from_klaviyo_word(word).map(<[JobStatus]>::to_vec).ok_or_else(|| {
        bad(format!("'{word}' is not a job status; use one of queued, processing, complete, cancelled."))
    })
}

/// The cursor in a `page[cursor]` value. Klaviyo's SDK may send the whole `links.next` URL as the
/// value (it only strips `https://` URLs) or, after stripping, keep the `=` that followed the
/// parameter name: both are undone here. An empty value means the first page.
pub fn cursor(value: &str) -> Option<String> {
    let mut value = value.trim();
    for marker in ["page[cursor]=", "page%5Bcursor%5D=", "page%5bcursor%5d="] {
        if let Some(at) = value.find(marker) {
            value = value.get(at + marker.len()..).unwrap_or_default();
            value = value.split('&').next().unwrap_or_default();
            break;
        }
    }
    let value = value.trim_start_matches('=');
    (!value.is_empty()).then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions() {
        for good in ["2023-02-22", "2026-07-15.pre", "2024-10-15.beta-1"] {
            assert!(Revision::parse(good).is_some(), "{good}");
        }
        for bad in ["", "2023-2-22", "20230222", "2023-13-01", "2023-02-22.", "2023-02-22.a b", "latest"] {
            assert!(Revision::parse(bad).is_none(), "{bad}");
        }
        assert!(Revision::parse("2023-10-15").is_some_and(|r| r.carries_job_id()));
        assert!(Revision::parse("2024-02-15").is_some_and(|r| !r.carries_job_id()));
    }

    #[test]
    fn include_is_the_job_types_own_relationship() {
        let uri = |q: &str| format!("http://h/x?{q}").parse::<Uri>().expect("uri");
        let get = |job_type, q: &str| Params::parse(&uri(q), job_type, Endpoint::Get);
        assert!(get(JobType::ItemCreate, "include=items&fields[catalog-item]=title").is_ok_and(|p| p.include));
        assert!(get(JobType::CategoryCreate, "include=categories").is_ok_and(|p| p.include));
        assert!(get(JobType::ItemUpdate, "include=categories").is_err());
        assert!(get(JobType::ItemDelete, "include=items").is_err());
        assert!(get(JobType::CategoryDelete, "fields[catalog-category]=name").is_err());
        let list = |job_type, q: &str| Params::parse(&uri(q), job_type, Endpoint::List);
        assert!(list(JobType::CategoryUpdate, "include=categories").is_ok_and(|p| p.include));
        assert!(list(JobType::ItemCreate, "include=items").is_err());
    }

    #[test]
    fn filters() {
        assert_eq!(filter("equals(status,\"processing\")").ok(), Some(vec![JobStatus::Running]));
        assert_eq!(filter(" equals( status , 'cancelled' ) ").ok(), Some(vec![JobStatus::Cancelled]));
        assert_eq!(filter("equals(status,'queued')").ok(), Some(vec![JobStatus::Scheduled, JobStatus::Queued]));
        for bad in [
            "",
            "status=queued",
            "any(status,['queued'])",
            "equals(id,\"1\")",
            "equals(status,queued)",
            "equals(status,\"done\")",
            "equals(status,\"queued\"",
        ] {
            assert!(filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursors_undo_the_sdk_quirks() {
        assert_eq!(cursor("o00ff").as_deref(), Some("o00ff"));
        assert_eq!(cursor("=o00ff").as_deref(), Some("o00ff"));
        assert_eq!(
            cursor("http://h/api/catalog-item-bulk-delete-jobs?filter=x&page%5Bcursor%5D=o00ff&y=1").as_deref(),
            Some("o00ff")
        );
        assert_eq!(cursor("http://h/api/x?page[cursor]=o00ff").as_deref(), Some("o00ff"));
        assert_eq!(cursor(""), None);
    }
}
