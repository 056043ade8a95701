//! Extractors whose rejections go through [`ApiError`], so a malformed body or query string gets
//! the same envelope as every other error (axum's own rejections answer in plain text).

use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use catalog_domain::ErrorCode;
use serde::de::{DeserializeOwned, DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// A JSON request body: `application/json` (or any `+json` type), within the body limit, with no
/// key repeated in any object ([`parse_json`]), and matching `T` exactly (request types deny
/// unknown fields).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

/// True when the `Content-Type` is JSON: `application/json` or `application/<something>+json`.
pub fn is_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The body length a request declares in `Content-Length`, when it declares a valid one.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok())
}

/// Reads the whole body, turning an over-limit body into 413 in the envelope. A body that declares
/// more than the server's limit is refused before a byte of it is read, so a client that waits for
/// `100 Continue` is answered at once and nothing is buffered.
pub async fn read_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError>
where
    AppState: FromRef<S>,
{
    let max = AppState::from_ref(state).max_body_bytes;
    read_body_within(request, state, max).await
}

/// [`read_body`] within `max` bytes (a dialect's limit, when it is below the server's).
pub async fn read_body_within<S: Send + Sync>(request: Request, state: &S, max: usize) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::new(ErrorCode::PayloadTooLarge, "the request body is larger than the limit");
    if declared_length(request.headers()).is_some_and(|len| len > max as u64) {
        return Err(too_large());
    }
    let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(ErrorCode::PayloadTooLarge, "the request body is larger than the limit")
        } else {
            ApiError::new(ErrorCode::InvalidJson, format!("cannot read the request body: {rejection}"))
        }
    })?;
    if bytes.len() > max {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Parses a JSON document the one way every surface does: like `serde_json::from_slice`, but an
/// object that names a key twice, at any depth, is an error (serde_json keeps the last one, so a
/// client's two values would silently become one).
pub fn parse_json(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// Builds a [`Value`] as serde_json's own visitor does, refusing repeated object keys.
struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(value) = seq.next_element_seed(StrictValue)? {
            values.push(value);
        }
        Ok(Value::Array(values))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(A::Error::custom(format_args!("duplicate key `{}`", key.escape_debug())));
            }
            let value = access.next_value_seed(StrictValue)?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T>
where
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json_content_type(request.headers()) {
            return Err(ApiError::new(ErrorCode::UnsupportedMediaType, "the request body must be application/json"));
        }
        let body = read_body(request, state).await?;
        parse_json(&body)
            .and_then(T::deserialize)
            .map(ApiJson)
            .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("invalid JSON body: {e}")))
    }
}

/// A query string matching `T` (query types deny unknown parameters), without a NUL.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        // A NUL matches nothing stored (catalog-domain's `storable`), and PostgreSQL cannot even
        // compare one: refused here rather than left to fail as a database error.
        if parts.uri.query().is_some_and(|query| query.contains("%00")) {
            return Err(ApiError::new(ErrorCode::InvalidQuery, "a query parameter contains a NUL character (%00)"));
        }
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| ApiQuery(value))
            .map_err(|rejection| ApiError::new(ErrorCode::InvalidQuery, rejection.body_text()))
    }
}

/// A path parameter; a value that does not parse (a job id that is not a number) is 404 — there is
/// no such resource — in the envelope.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| ApiPath(value))
            .map_err(|rejection| ApiError::new(ErrorCode::NotFound, rejection.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_json;

    #[test]
    fn parse_json_reads_what_serde_json_reads() {
        let text =
            r#"{"a": [1, -2, 3.5, 1e300, true, null, "s\u0000"], "b": {"c": {}, "d": []}, "e": 18446744073709551615}"#;
        let ours = parse_json(text.as_bytes()).expect("valid JSON");
        let theirs: serde_json::Value = serde_json::from_str(text).expect("valid JSON");
        assert_eq!(ours, theirs);
    }

    #[test]
    fn parse_json_refuses_a_repeated_key_at_any_depth() {
        for text in [r#"{"a": 1, "a": 1}"#, r#"[{"b": {"a": 1, "a": 2}}]"#, r#"{"x": [[{"k": 0, "l": 1, "k": 2}]]}"#] {
            let error = parse_json(text.as_bytes()).expect_err(text);
            assert!(error.to_string().contains("duplicate key"), "{error}");
        }
        // The same key in sibling objects is no repetition.
        assert!(parse_json(br#"[{"a": 1}, {"a": 2}]"#).is_ok());
    }

    #[test]
    fn parse_json_keeps_the_depth_limit_and_refuses_trailing_text() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse_json(deep.as_bytes()).is_err(), "nesting is bounded, not a stack overflow");
        assert!(parse_json(b"{} {}").is_err());
        assert!(parse_json(b"").is_err());
    }
}
