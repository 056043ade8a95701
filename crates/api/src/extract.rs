//! Extractors whose rejections go through [`ApiError`], so a malformed body or query string gets
//! the same envelope as every other error (axum's own rejections answer in plain text).

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use catalog_domain::ErrorCode;
use serde::de::DeserializeOwned;

/// A JSON request body: `application/json` (or any `+json` type), within the body limit, and
/// matching `T` exactly (request types deny unknown fields).
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

/// Reads the whole body, turning an over-limit body into 413 in the envelope.
pub async fn read_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state).await.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(ErrorCode::PayloadTooLarge, "the request body is larger than the limit")
        } else {
            ApiError::new(ErrorCode::InvalidJson, format!("cannot read the request body: {rejection}"))
        }
    })
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json_content_type(request.headers()) {
            return Err(ApiError::new(ErrorCode::UnsupportedMediaType, "the request body must be application/json"));
        }
        let body = read_body(request, state).await?;
        serde_json::from_slice(&body)
            .map(ApiJson)
            .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("invalid JSON body: {e}")))
    }
}

/// A query string matching `T` (query types deny unknown parameters).
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
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
