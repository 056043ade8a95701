//! `/v1/webhooks`: create, list, get, delete a webhook, rotate its secret, list its deliveries
//! and send one again. The sending itself is [`crate::webhook_sender`]'s. Semantics:
//! docs/EVENTS.md.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::native::{
    cursor_schema, limit_schema, page_limit, path_param, query_param, BodyErrors, GuardErrors, QueryErrors, WriteErrors,
};
use crate::state::AppState;
use crate::views::ErrorEnvelope;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use catalog_domain::events::{
    is_private_address, EventType, RetrySchedule, MAX_WEBHOOK_DESCRIPTION_LEN, MAX_WEBHOOK_URL_LEN,
};
use catalog_domain::time::format_rfc3339;
use catalog_domain::ErrorCode;
use catalog_store::{Delivery, Webhook};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::net::IpAddr;
use std::time::Duration;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::openapi::schema::{ArrayBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// How webhooks are sent, set by the operator (`catalogd serve --webhook-*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    /// Whether a webhook may point at loopback and private addresses (`--webhook-allow-private`).
    pub allow_private: bool,
    /// When a failed delivery is tried again, and when it is given up.
    pub retry: RetrySchedule,
    /// How long an attempt may take, connection included.
    pub timeout: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings { allow_private: false, retry: RetrySchedule::default(), timeout: Duration::from_secs(10) }
    }
}

/// The routes of this module, each with its operation.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(get_webhook, delete_webhook))
        .routes(routes!(rotate_secret))
        .routes(routes!(list_deliveries))
        .routes(routes!(redeliver))
}

/// Why a webhook URL is refused, or `None` when it may be used. Loopback and private targets
/// need `allow_private`; the sender checks the addresses a name resolves to before each attempt.
pub fn url_problem(url: &str, allow_private: bool) -> Option<String> {
    if url.len() > MAX_WEBHOOK_URL_LEN {
        return Some(format!("the URL is longer than {MAX_WEBHOOK_URL_LEN} bytes"));
    }
    let parsed = match reqwest::Url::parse(url) {
        Ok(parsed) => parsed,
        Err(error) => return Some(format!("not a URL: {error}")),
    };
    if !matches!(parsed.scheme(), "http" | "https") {
        return Some("the URL must be http or https".to_owned());
    }
    let Some(host) = parsed.host_str() else { return Some("the URL has no host".to_owned()) };
    if allow_private {
        return None;
    }
    let private = match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        Ok(ip) => is_private_address(ip),
        Err(_) => {
            let name = host.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
    };
    private.then(|| {
        format!("`{host}` is a loopback or private address; the operator allows those with --webhook-allow-private")
    })
}

/// `POST /v1/webhooks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateWebhookBody {
    url: String,
    events: Vec<String>,
    description: Option<String>,
}

fn event_type_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(EventType::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>()))
}

impl utoipa::PartialSchema for CreateWebhookBody {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .description(Some("`POST /v1/webhooks`."))
            .property(
                "url",
                ObjectBuilder::new().schema_type(Type::String).max_length(Some(MAX_WEBHOOK_URL_LEN)).description(Some(
                    "http or https; loopback and private addresses only when the operator allows them",
                )),
            )
            .required("url")
            .property("events", ArrayBuilder::new().items(event_type_schema()).min_items(Some(1)))
            .required("events")
            .property(
                "description",
                ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::SchemaType::from_iter([Type::String, Type::Null]))
                    .max_length(Some(MAX_WEBHOOK_DESCRIPTION_LEN))
                    .pattern(Some(crate::native::NO_NUL_PATTERN)),
            )
            .additional_properties(Some(utoipa::openapi::schema::AdditionalProperties::FreeForm(false)))
            .into()
    }
}

impl ToSchema for CreateWebhookBody {}

/// A webhook (its secret is shown only at creation and rotation).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    /// Its id.
    pub id: i64,
    /// Where deliveries are POSTed.
    pub url: String,
    /// The event types it receives.
    #[schema(example = json!(["job.completed", "job.failed"]))]
    pub events: Vec<String>,
    /// Free text.
    pub description: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

impl From<&Webhook> for WebhookView {
    fn from(hook: &Webhook) -> Self {
        WebhookView {
            id: hook.id,
            url: hook.url.clone(),
            events: hook.events.iter().map(|t| t.as_str().to_owned()).collect(),
            description: hook.description.clone(),
            created_at: format_rfc3339(hook.created_at),
        }
    }
}

/// A new webhook, with its signing secret (shown only here and on rotation).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookCreatedView {
    /// Its id.
    pub id: i64,
    /// Where deliveries are POSTed.
    pub url: String,
    /// The event types it receives.
    pub events: Vec<String>,
    /// Free text.
    pub description: Option<String>,
    /// The key of `Catalogd-Signature` (HMAC-SHA256); keep it secret.
    pub secret: String,
    /// RFC 3339.
    pub created_at: String,
}

/// The webhooks of the caller's project.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookListView {
    /// Oldest first.
    pub webhooks: Vec<WebhookView>,
}

/// A new secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretView {
    /// The key of `Catalogd-Signature` from now on.
    pub secret: String,
}

/// One event's delivery to the webhook.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// Its id.
    pub id: i64,
    /// The event delivered.
    pub event_id: i64,
    /// The event's type.
    pub event_type: String,
    /// `pending`, `succeeded` or `failed` (given up).
    #[schema(example = "succeeded")]
    pub status: String,
    /// Attempts made.
    pub attempts: u64,
    /// The HTTP status of the latest answer; null when there was none.
    pub response_code: Option<u16>,
    /// Why the latest attempt failed, when it did.
    pub last_error: Option<String>,
    /// When the latest attempt ended (RFC 3339).
    pub last_attempt_at: Option<String>,
    /// When the next attempt is due (RFC 3339; pending deliveries only).
    pub next_attempt_at: Option<String>,
    /// When the event became a delivery (RFC 3339).
    pub created_at: String,
}

impl From<&Delivery> for DeliveryView {
    fn from(d: &Delivery) -> Self {
        DeliveryView {
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type.as_str().to_owned(),
            status: d.status.as_str().to_owned(),
            attempts: d.attempts,
            response_code: d.response_code,
            last_error: d.last_error.clone(),
            last_attempt_at: d.last_attempt_at.map(format_rfc3339),
            next_attempt_at: d.next_attempt_at.map(format_rfc3339),
            created_at: format_rfc3339(d.created_at),
        }
    }
}

/// A page of deliveries, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryListView {
    /// The rows.
    pub deliveries: Vec<DeliveryView>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A delivery made due again.
#[derive(Debug, Serialize, ToSchema)]
pub struct RedeliveryView {
    /// The delivery.
    pub id: i64,
    /// `pending`: it is sent again shortly.
    pub status: String,
}

/// A webhook's path (documentation only).
struct WebhookPath;

fn int64() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::Integer).format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
}

impl IntoParams for WebhookPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![path_param("id", "Webhook id.", int64())]
    }
}

/// A delivery's path (documentation only).
struct DeliveryPath;

impl IntoParams for DeliveryPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![path_param("id", "Webhook id.", int64()), path_param("delivery_id", "Delivery id.", int64())]
    }
}

/// Paging of the deliveries.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveriesPage {
    limit: Option<u32>,
    cursor: Option<String>,
}

impl IntoParams for DeliveriesPage {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            query_param("limit", "Rows per page.", limit_schema()),
            query_param("cursor", "The previous page's `next_cursor`, as given.", cursor_schema::<'d', false>()),
        ]
    }
}

/// `webhook_not_found` (documentation only).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum WebhookNotFound {
    /// `webhook_not_found`: no webhook of that id in the caller's project.
    #[response(status = 404)]
    NotFound(ErrorEnvelope),
}

fn invalid(message: impl Into<String>, pointer: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, message).with_details(json!({"pointer": pointer}))
}

#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = CreateWebhookBody, responses(GuardErrors, (status = 201, description = "Created; the secret is shown only now", body = WebhookCreatedView), BodyErrors, WriteErrors), security(("bearer" = [])))]
async fn create_webhook(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiJson(body): ApiJson<CreateWebhookBody>,
) -> Result<Response, ApiError> {
    if let Some(problem) = url_problem(&body.url, state.webhooks.allow_private) {
        return Err(invalid(problem, "/url"));
    }
    if body.events.is_empty() {
        return Err(invalid("name at least one event type", "/events"));
    }
    let events = body
        .events
        .iter()
        .enumerate()
        .map(|(index, word)| word.parse::<EventType>().map_err(|e| invalid(e.to_string(), &format!("/events/{index}"))))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(text) = body.description.as_deref() {
        if text.len() > MAX_WEBHOOK_DESCRIPTION_LEN {
            return Err(invalid(format!("at most {MAX_WEBHOOK_DESCRIPTION_LEN} bytes"), "/description"));
        }
        if let Err(problem) = catalog_domain::storable::check_text("description", text) {
            return Err(
                ApiError::new(problem.code(), problem.to_string()).with_details(json!({"pointer": "/description"}))
            );
        }
    }
    let hook = state
        .store
        .create_webhook(caller.project_id, &body.url, &events, body.description.as_deref(), catalog_store::now_ms())
        .await?;
    let view = WebhookView::from(&hook);
    let created = WebhookCreatedView {
        id: view.id,
        url: view.url,
        events: view.events,
        description: view.description,
        secret: hook.secret,
        created_at: view.created_at,
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", responses(GuardErrors, (status = 200, description = "The project's webhooks", body = WebhookListView)), security(("bearer" = [])))]
async fn list_webhooks(State(state): State<AppState>, Caller(caller): Caller) -> Result<impl IntoResponse, ApiError> {
    let hooks = state.store.list_webhooks(caller.project_id).await?;
    Ok(Json(WebhookListView { webhooks: hooks.iter().map(WebhookView::from).collect() }))
}

#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", params(WebhookPath), responses(GuardErrors, (status = 200, description = "The webhook", body = WebhookView), WebhookNotFound), security(("bearer" = [])))]
async fn get_webhook(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(WebhookView::from(&state.store.get_webhook(caller.project_id, id).await?)))
}

#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", params(WebhookPath), responses(GuardErrors, (status = 204, description = "Deleted, with its deliveries"), WebhookNotFound, WriteErrors), security(("bearer" = [])))]
async fn delete_webhook(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    state.store.delete_webhook(caller.project_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", tag = "webhooks", params(WebhookPath), responses(GuardErrors, (status = 200, description = "The new secret; later attempts are signed with it", body = SecretView), WebhookNotFound, WriteErrors), security(("bearer" = [])))]
async fn rotate_secret(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<impl IntoResponse, ApiError> {
    let hook = state.store.rotate_webhook_secret(caller.project_id, id).await?;
    Ok(Json(SecretView { secret: hook.secret }))
}

#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks", params(WebhookPath, DeliveriesPage), responses(GuardErrors, (status = 200, description = "A page of deliveries, newest first", body = DeliveryListView), QueryErrors, WebhookNotFound), security(("bearer" = [])))]
async fn list_deliveries(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<DeliveriesPage>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = page_limit(query.limit)?;
    let page = state.store.list_deliveries(caller.project_id, id, query.cursor.as_deref(), limit).await?;
    Ok(Json(DeliveryListView {
        deliveries: page.rows.iter().map(DeliveryView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", tag = "webhooks", params(DeliveryPath), responses(GuardErrors, (status = 202, description = "The delivery is due again and is sent shortly", body = RedeliveryView), (status = 404, description = "`webhook_not_found` or `delivery_not_found`", body = ErrorEnvelope), WriteErrors), security(("bearer" = [])))]
async fn redeliver(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath((id, delivery)): ApiPath<(i64, i64)>,
) -> Result<Response, ApiError> {
    state.store.redeliver(caller.project_id, id, delivery, catalog_store::now_ms()).await?;
    Ok((StatusCode::ACCEPTED, Json(RedeliveryView { id: delivery, status: "pending".to_owned() })).into_response())
}

#[cfg(test)]
mod tests {
    use super::url_problem;

    #[test]
    fn private_targets_need_the_operators_leave() {
        for url in [
            "http://127.0.0.1:9/h",
            "http://localhost/h",
            "https://[::1]/h",
            "http://10.0.0.8/h",
            "http://api.localhost/",
        ] {
            assert!(url_problem(url, false).is_some(), "{url}");
            assert_eq!(url_problem(url, true), None, "{url}");
        }
        assert_eq!(url_problem("https://hooks.example.com/catalogd", false), None);
        assert!(url_problem("ftp://example.com/", true).is_some());
        assert!(url_problem("not a url", true).is_some());
    }
}
